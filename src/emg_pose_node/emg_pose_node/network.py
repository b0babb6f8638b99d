"""EMGToPose: the EMG-to-hand-pose network, full-window and streaming.

Input is preprocessed EMG at the model rate (:mod:`preprocessing`), one window of
``window`` samples per prediction; the prediction belongs to the window's last sample.

Architecture (shapes for a batch B, channels C, window W; F = frame features, T = frames)::

    x (B, C, W)
      -> frontend: a stack of "frame" stages, valid convolutions (no padding) and
         non-overlapping pooling, so every output frame depends on a fixed span of
         ``frame_receptive_field`` input samples and frames advance by ``frame_stride``
         * "conv" (the seed design): per stage Conv1d(k) + BatchNorm + ReLU + MaxPool(pool)
         * "log_power": Conv1d(C -> F, k) spatio-temporal filters, squared, AvgPool(pool),
           log, BatchNorm: the log band power of learnt spatial filters (the same
           information as log channel covariances, which carry most of the finger signal)
      -> frames (B, T, F)
      -> LSTM layers (zero initial state at the window start), last time step (B, H)
      -> head: Linear(H -> fc) + ReLU + Dropout + Linear(fc -> out)
      -> y = out_mean + out_scale * raw   (B, out) in output units

Output conventions (``output``): "joint_angles" (20, :data:`hand_model.JOINT_NAMES`,
radians; keypoints through forward kinematics), "keypoints" (63 = 21 x 3, metres,
:data:`hand_model.KEYPOINT_NAMES`), "values" (named scalars, e.g. five finger values).

Torch-free (:mod:`architecture`): :class:`NetworkConfig`, frame geometry, parameter shapes,
output names and :class:`FrameCache`.

Streaming: because the frontend is shift-equivariant with stride ``frame_stride``, the
frames of a window are the frames of the stream. :meth:`EMGToPose.stream` computes only
the frames completed by new samples, caches the last ``num_frames``, and runs the LSTM
over the cached frames. The LSTM is not carried across windows: it was trained from a
zero state at each window start, so carrying it would not be what was trained. A streamed
prediction equals the full-window prediction for the window ending at that frame (tested).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# The torch-free side lives in architecture (the live node imports only that); these
# names are re-exported here for the training code and its users.
from .architecture import (  # noqa: F401
    FRONTENDS,
    OUTPUT_CONVENTIONS,
    FrameCache,
    NetworkConfig,
    aligned_window,
    frame_geometry,
    output_names_for,
)

_LOG_EPS = 1e-4  # floor of the band power before log (inputs are normalised to unit variance)


class _LogPower(nn.Module):
    """(B, C, L) -> (B, F, T): log of the average power of learnt spatio-temporal filters."""

    def __init__(self, in_channels: int, filters: int, kernel: int, pool: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, kernel)
        self.pool = nn.AvgPool1d(pool, pool)
        self.norm = nn.BatchNorm1d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.log(self.pool(self.conv(x).square()) + _LOG_EPS))


class EMGToPose(nn.Module):
    """Conv frontend + LSTM + MLP head; see the module docstring for shapes."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.frontend == "log_power":
            self.frontend = nn.Sequential(
                _LogPower(c.in_channels, c.conv_channels[0], c.kernel_size, c.pool))
        else:
            stages: list[nn.Module] = []
            width = c.in_channels
            for out in c.conv_channels:
                stages += [nn.Conv1d(width, out, c.kernel_size), nn.BatchNorm1d(out), nn.ReLU(),
                           nn.MaxPool1d(c.pool, c.pool)]
                width = out
            self.frontend = nn.Sequential(*stages)
        width = c.conv_channels[-1]
        self.lstm = nn.ModuleList()
        for _ in range(c.lstm_layers):
            self.lstm.append(nn.LSTM(width, c.lstm_hidden, batch_first=True))
            width = c.lstm_hidden
        self.lstm_dropout = nn.Dropout(c.dropout)
        self.head = nn.Sequential(nn.Linear(c.lstm_hidden, c.fc_hidden), nn.ReLU(),
                                  nn.Dropout(c.dropout), nn.Linear(c.fc_hidden, c.out_dim))
        # Output scaling (set from training targets): y = out_mean + out_scale * raw.
        self.register_buffer("out_mean", torch.zeros(c.out_dim))
        self.register_buffer("out_scale", torch.ones(c.out_dim))
        self.reset_state()

    # --- geometry shortcuts -----------------------------------------------------------
    @property
    def receptive_field(self) -> int:
        """Samples at the model rate one prediction needs (sizes the live buffer)."""
        return self.config.receptive_field

    @property
    def left_context(self) -> int:
        return self.config.left_context

    # --- full-window path -----------------------------------------------------------------
    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """Frontend: (B, C, L) -> frames (B, T, F), T = (L - rf) // stride + 1."""
        return self.frontend(x).transpose(1, 2)

    def temporal(self, frames: torch.Tensor, first_layer: int = 0) -> torch.Tensor:
        """LSTM layers ``first_layer``.. over frames (B, T, F) -> last hidden state (B, H).

        ``first_layer > 0`` takes the (dropout-applied) output sequence of layer
        ``first_layer - 1`` as ``frames`` (fine-tuning caches it).
        """
        seq = frames
        for i in range(first_layer, len(self.lstm)):
            if i > 0:
                seq = self.lstm_dropout(seq)
            seq, _ = self.lstm[i](seq)
        return seq[:, -1]

    def sequence_until(self, frames: torch.Tensor, layer: int) -> torch.Tensor:
        """Input sequence of LSTM layer ``layer`` (B, T, F or H): frames through layers < layer."""
        seq = frames
        for i in range(layer):
            if i > 0:
                seq = self.lstm_dropout(seq)
            seq, _ = self.lstm[i](seq)
        if layer > 0:
            seq = self.lstm_dropout(seq)
        return seq

    def input_conv(self) -> nn.Conv1d:
        """The first convolution (the only layer that mixes input channels)."""
        first = self.frontend[0]
        return first.conv if isinstance(first, _LogPower) else first

    @torch.no_grad()
    def fold_input_mixing(self, mixing: torch.Tensor) -> None:
        """Make ``self(x)`` compute what ``self(mixing @ x)`` did: mixing (C, C) applied to
        the normalised input channels is folded into the first convolution's weights."""
        conv = self.input_conv()
        c = conv.weight.shape[1]
        if tuple(mixing.shape) != (c, c):
            raise ValueError(f"mixing must be ({c}, {c}), got {tuple(mixing.shape)}")
        conv.weight.copy_(torch.einsum("fck,cd->fdk", conv.weight,
                                       mixing.to(conv.weight.dtype)))

    def decode(self, hidden: torch.Tensor) -> torch.Tensor:
        """Head: (B, H) -> (B, out) in output units."""
        return self.out_mean + self.out_scale * self.head(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Windows (B, C, W) of normalised EMG -> outputs (B, out). No labels needed."""
        return self.decode(self.temporal(self.frames(x)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Inference over many windows (N, C, W) -> (N, out), eval mode, in batches."""
        was_training = self.training
        self.eval()
        try:
            outs = [self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(outs) if outs else x.new_zeros((0, self.config.out_dim))

    # --- streaming path -------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the stream: the next :meth:`stream` call starts a new stream."""
        self._cache = FrameCache(
            self.config,
            lambda chunk: self.frames(torch.from_numpy(chunk)[None])[0].numpy(),
            lambda frames: self.decode(self.temporal(torch.from_numpy(frames)[None]))[0].numpy())

    @torch.no_grad()
    def stream(self, x: torch.Tensor) -> tuple[torch.Tensor | None, int]:
        """Feed new normalised samples (C, n) of the stream (eval mode only).

        Returns (output (out,) for the newest complete window, or None when no new frame
        completed or the window is not yet full; that window's last sample, counted in
        model-rate samples since :meth:`reset_state`, or -1). Only new frames are
        computed; the LSTM runs over the cached window of frames.
        """
        if self.training:
            raise RuntimeError("stream() needs eval mode (call model.eval())")
        out, index = self._cache.push(np.asarray(x, dtype=np.float32))
        return (None if out is None else torch.from_numpy(out)), index


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
