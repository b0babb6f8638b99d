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

Streaming: because the frontend is shift-equivariant with stride ``frame_stride``, the
frames of a window are the frames of the stream. :meth:`EMGToPose.stream` computes only
the frames completed by new samples, caches the last ``num_frames``, and runs the LSTM
over the cached frames. The LSTM is not carried across windows: it was trained from a
zero state at each window start, so carrying it would not be what was trained. A streamed
prediction equals the full-window prediction for the window ending at that frame (tested).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from emg_hand_core.hand_model import JOINT_NAMES, KEYPOINT_NAMES

OUTPUT_CONVENTIONS = ("joint_angles", "keypoints", "values")
FRONTENDS = ("conv", "log_power")
_LOG_EPS = 1e-4  # floor of the band power before log (inputs are normalised to unit variance)


def output_names_for(output: str, names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The names of the output vector's entries for an output convention."""
    if output == "joint_angles":
        return tuple(JOINT_NAMES)
    if output == "keypoints":
        return tuple(f"{k}_{a}" for k in KEYPOINT_NAMES for a in "xyz")
    if output == "values":
        if not names:
            raise ValueError("output 'values' needs output_names")
        return tuple(names)
    raise ValueError(f"output must be one of {OUTPUT_CONVENTIONS}, got {output!r}")


@dataclass(frozen=True)
class NetworkConfig:
    """Hyperparameters that rebuild an :class:`EMGToPose` (stored in every checkpoint)."""

    in_channels: int = 8
    window: int = 200  # samples at the model rate; must be frame aligned (see frame_aligned)
    frontend: str = "conv"
    conv_channels: tuple[int, ...] = (64, 128)  # "log_power": (filters,)
    kernel_size: int = 5
    pool: int = 2
    lstm_hidden: int = 256
    lstm_layers: int = 2
    dropout: float = 0.3
    fc_hidden: int = 128
    output: str = "joint_angles"
    output_names: tuple[str, ...] = field(default=tuple(JOINT_NAMES))

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        object.__setattr__(self, "output_names",
                           output_names_for(self.output, tuple(self.output_names)))
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {self.frontend!r}")
        if self.frontend == "log_power" and len(self.conv_channels) != 1:
            raise ValueError("frontend 'log_power' takes one conv_channels entry (filters)")
        positive = {"in_channels": self.in_channels, "kernel_size": self.kernel_size,
                    "pool": self.pool, "lstm_hidden": self.lstm_hidden,
                    "lstm_layers": self.lstm_layers, "fc_hidden": self.fc_hidden}
        bad = {k: v for k, v in positive.items() if int(v) < 1}
        if bad or not self.conv_channels or min(self.conv_channels) < 1:
            raise ValueError(f"sizes must be >= 1: {bad or self.conv_channels}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        rf, stride = self.frame_receptive_field, self.frame_stride
        if self.window < rf or (self.window - rf) % stride:
            raise ValueError(
                f"window {self.window} is not frame aligned: need window >= {rf} and "
                f"(window - {rf}) % {stride} == 0; nearest: {self.frame_aligned(self.window)}")

    # --- frame geometry -----------------------------------------------------------
    @property
    def frame_receptive_field(self) -> int:
        """Input samples one frame depends on."""
        return frame_geometry(self.frontend, self.conv_channels, self.kernel_size, self.pool)[0]

    @property
    def frame_stride(self) -> int:
        """Input samples between consecutive frames."""
        return frame_geometry(self.frontend, self.conv_channels, self.kernel_size, self.pool)[1]

    @property
    def num_frames(self) -> int:
        return (self.window - self.frame_receptive_field) // self.frame_stride + 1

    @property
    def receptive_field(self) -> int:
        """Samples (at the model rate) one prediction depends on: the window."""
        return self.window

    @property
    def left_context(self) -> int:
        """Past samples a prediction needs besides the newest one."""
        return self.window - 1

    @property
    def out_dim(self) -> int:
        return len(self.output_names)

    def frame_aligned(self, window: int) -> int:
        """The frame-aligned window nearest to ``window`` (not below one frame)."""
        return aligned_window(window, self.frontend, self.conv_channels, self.kernel_size,
                              self.pool)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_channels"] = list(self.conv_channels)
        d["output_names"] = list(self.output_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown network hyperparameters {unknown}")
        d = dict(d)
        d["conv_channels"] = tuple(d.get("conv_channels", ()))
        d["output_names"] = tuple(d.get("output_names", ()))
        return cls(**d)


def frame_geometry(frontend: str, conv_channels: tuple[int, ...], kernel_size: int,
                   pool: int) -> tuple[int, int]:
    """(frame receptive field, frame stride) in input samples for a frontend."""
    stages = 1 if frontend == "log_power" else len(conv_channels)
    rf, jump = 1, 1
    for _ in range(stages):
        rf += (kernel_size - 1) * jump + (pool - 1) * jump
        jump *= pool
    return rf, jump


def aligned_window(window: int, frontend: str = "conv", conv_channels: tuple[int, ...] = (64, 128),
                   kernel_size: int = 5, pool: int = 2) -> int:
    """The frame-aligned window length nearest to ``window`` samples (at least one frame)."""
    rf, stride = frame_geometry(frontend, tuple(conv_channels), kernel_size, pool)
    return rf + max(0, round((window - rf) / stride)) * stride


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


class FrameCache:
    """Streaming over frames: computes only the frames new samples complete.

    ``frames_fn(chunk (C, L)) -> (T, F)`` is the frontend on a chunk (T = (L - rf) //
    stride + 1); ``head_fn(frames (num_frames, F)) -> (out,)`` is the LSTM + head on one
    window of frames. Both may be any backend (PyTorch, ONNX Runtime). Frames are on the
    stream's grid (frame k ends at sample rf - 1 + k * stride), which is also the grid of
    any frame-aligned window ending on it, so a streamed output equals the full-window
    output for that window.
    """

    def __init__(self, config: NetworkConfig, frames_fn, head_fn) -> None:
        self.config = config
        self.frames_fn, self.head_fn = frames_fn, head_fn
        self.reset()

    def reset(self) -> None:
        c = self.config
        self._pending = np.zeros((c.in_channels, 0), np.float32)  # samples not yet in a frame
        self._frames: np.ndarray | None = None  # last num_frames frames (T, F)
        self._seen = 0  # model-rate samples since reset

    def push(self, x: np.ndarray) -> tuple[np.ndarray | None, int]:
        """New samples (C, n) -> (output of the newest complete window or None, its last
        sample's index since reset or -1)."""
        c = self.config
        if x.ndim != 2 or x.shape[0] != c.in_channels:
            raise ValueError(f"expected samples of shape ({c.in_channels}, n), got {x.shape}")
        rf, stride = c.frame_receptive_field, c.frame_stride
        buf = np.concatenate([self._pending, x], axis=1) if self._pending.shape[1] else x
        self._seen += x.shape[1]
        new = 0 if buf.shape[1] < rf else (buf.shape[1] - rf) // stride + 1
        if new == 0:
            self._pending = buf
            return None, -1
        used = rf + (new - 1) * stride
        skip = max(0, new - c.num_frames)  # frames that would fall out of the window at once
        frames = self.frames_fn(np.ascontiguousarray(buf[:, skip * stride:used]))
        self._pending = buf[:, new * stride:]
        if self._frames is None or skip:
            cached = frames
        else:
            cached = np.concatenate([self._frames, frames])
        self._frames = cached[-c.num_frames:]
        if self._frames.shape[0] < c.num_frames:
            return None, -1
        last_index = self._seen - 1 - self._pending.shape[1] + (rf - stride)
        return self.head_fn(np.ascontiguousarray(self._frames)), last_index


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
