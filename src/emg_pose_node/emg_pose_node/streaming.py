"""Live inference: EMG chunks in, the newest pose out (what the emg_pose node calls).

::

    predictor = StreamingPredictor(load_checkpoint(path, channels=8, sample_rate_hz=500.0))
    for chunk in chunks:                                   # (n, C) float [V]
        pred = predictor.push(chunk, first_sample_index=i)  # Prediction or None
        if pred is not None:
            publish(pred.joint_angles, pred.keypoints)
    predictor.reset()                                      # e.g. after a model swap

Per push the chunk goes through the checkpoint's :class:`preprocessing.Preprocessor`
(stateful causal filters, decimation, normalisation with the training statistics), then
through :class:`network.FrameCache`: only the frames completed by the new samples are
computed; the LSTM and head run over the cached window of frames. A prediction exists
once a full window has arrived (``warmup_s``) and then every ``frame_stride`` model-rate
samples; pushes that complete no new frame return None. Prediction ``k`` equals the
full-window model output for the window ending at ``sample_index`` (tested).

Backends: "torch" (the model itself) or "onnx" (ONNX Runtime sessions of the graphs the
checkpoint embeds, :mod:`onnx_runtime`; torch is not imported). A checkpoint saved without
graphs (older files) gets them exported with torch first (seconds; ``exported_graphs``
says it happened). Not thread-safe: one predictor per thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emg_hand_core.hand_model import NUM_KEYPOINTS, forward_kinematics, inverse_kinematics

from .architecture import FrameCache
from .checkpoint import Checkpoint, check_compatible, load_checkpoint
from .preprocessing import Preprocessor

BACKENDS = ("torch", "onnx")


@dataclass(frozen=True)
class Prediction:
    """One model output for the window ending at ``sample_index``."""

    values: np.ndarray  # (out,) in the output convention's units
    sample_index: int  # input-rate index (since reset) of the newest EMG sample used
    stream_index: int | None  # same, in the stream's first_sample_index numbering, if known
    joint_angles: np.ndarray | None  # (20,) [rad]: predicted, or IK of predicted keypoints
    keypoints: np.ndarray | None  # (21, 3) [m]: predicted, or FK of predicted joint angles


class StreamingPredictor:
    """push(samples (n, C)) -> newest :class:`Prediction` or None; reset().

    checkpoint: a :class:`Checkpoint` or a path (loaded safely). ``channel_names``: if
    given, must match the checkpoint's (CheckpointError otherwise). ``threads``: intra-op
    threads of the ONNX backend (the torch backend uses torch's global setting).
    ``kinematics``: also compute keypoints (FK) / joint angles (IK) for each prediction.
    """

    def __init__(self, checkpoint: Checkpoint | str | Path, *, backend: str = "torch",
                 threads: int | None = None, channel_names: tuple[str, ...] | None = None,
                 kinematics: bool = True, align_to_chunks: bool = False) -> None:
        """``align_to_chunks``: at each stream start (after a reset) leave out the first
        :meth:`alignment_skip` samples, so that predictions come from each chunk's newest
        sample (the live node; lower latency)."""
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = load_checkpoint(checkpoint)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        check_compatible(checkpoint, channel_names=channel_names)
        self.checkpoint = checkpoint
        self.backend = backend
        self.kinematics = kinematics
        self.align_to_chunks = align_to_chunks
        self._pre = Preprocessor(checkpoint.preprocess)
        config = checkpoint.network
        self.exported_graphs = False
        if backend == "torch":
            import torch

            model = checkpoint.build_model()
            self.model = model

            @torch.no_grad()
            def frames_fn(chunk: np.ndarray) -> np.ndarray:
                return model.frames(torch.from_numpy(chunk)[None])[0].numpy()

            @torch.no_grad()
            def head_fn(frames: np.ndarray) -> np.ndarray:
                return model.decode(model.temporal(torch.from_numpy(frames)[None]))[0].numpy()
        else:
            from .onnx_runtime import OnnxStreamingSessions

            graphs = checkpoint.streaming_graphs()
            if graphs is None:  # an older checkpoint: export now (imports torch; seconds)
                from .export import streaming_graphs

                graphs = checkpoint.graphs = streaming_graphs(checkpoint)
                self.exported_graphs = True
            sessions = OnnxStreamingSessions(config, graphs, threads=threads)
            self.model = None
            frames_fn, head_fn = sessions.frames, sessions.head
        self._cache = FrameCache(config, frames_fn, head_fn)
        self.reset()

    # --- what the node needs to know -------------------------------------------------
    @property
    def sample_rate_hz(self) -> float:
        return self.checkpoint.sample_rate_hz

    @property
    def channels(self) -> int:
        return self.checkpoint.in_channels

    @property
    def output(self) -> str:
        return self.checkpoint.output

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.checkpoint.output_names

    @property
    def warmup_s(self) -> float:
        """Seconds of EMG after a reset before the first prediction."""
        return self.checkpoint.window_s

    @property
    def update_period_s(self) -> float:
        """Seconds of EMG between predictions (one frame stride at the model rate)."""
        return self.checkpoint.network.frame_stride / self.checkpoint.model_rate_hz

    def alignment_skip(self, block_len: int) -> int:
        """Samples to leave out at the start of a stream whose first block has ``block_len``
        samples so that a prediction falls on that block's last sample, and on every later
        chunk's last sample when chunks are a multiple of the frame stride: each chunk then
        gives a prediction from its newest sample, not from a few samples before it."""
        d = self.checkpoint.preprocess.decimation
        stride = self.checkpoint.network.frame_stride * d
        return (block_len - self.checkpoint.network.frame_receptive_field * d) % stride

    @property
    def gaps(self) -> int:
        """Number of stream gaps (dropped samples) that caused a reset."""
        return self._gaps

    # --- streaming ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all past samples (filters, frames); the next window starts fresh."""
        self._state = self._pre.initial_state(self.channels)
        self._cache.reset()
        self._input_seen = 0
        self._expected_index: int | None = None
        self._index_base: int | None = None
        self._gaps = getattr(self, "_gaps", 0)

    def push(self, samples: np.ndarray, first_sample_index: int | None = None
             ) -> Prediction | None:
        """Add EMG samples (n, C) [V]; return the newest new prediction or None.

        ``first_sample_index`` (the EMG message's stream index): when it does not continue
        the previous chunk (dropped samples), the predictor resets first, so no window
        spans a gap. Raises ValueError for a wrong shape or non-finite values (the state
        is left unchanged).
        """
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"expected samples of shape (n, {self.channels}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("EMG samples contain NaN or inf")
        if first_sample_index is not None:
            if self._expected_index is not None and first_sample_index != self._expected_index:
                self._gaps += 1
                self.reset()
        if self.align_to_chunks and self._input_seen == 0:
            skip = self.alignment_skip(len(x))
            if skip < len(x):  # (else: chunks too short to align; never mind)
                x = x[skip:]
                if first_sample_index is not None:
                    first_sample_index += skip
        if first_sample_index is not None:
            if self._index_base is None:
                self._index_base = int(first_sample_index) - self._input_seen
            self._expected_index = int(first_sample_index) + len(x)
        if len(x) == 0:
            return None
        y, self._state = self._pre.process(x, self._state)
        self._input_seen += len(x)
        if len(y) == 0:
            return None
        out, model_index = self._cache.push(np.ascontiguousarray(y.T, dtype=np.float32))
        if out is None:
            return None
        d = self.checkpoint.preprocess.decimation
        sample_index = (model_index + 1) * d - 1
        stream_index = None if self._index_base is None else self._index_base + sample_index
        return self._prediction(np.asarray(out, dtype=np.float64), sample_index, stream_index)

    def _prediction(self, out: np.ndarray, sample_index: int, stream_index: int | None
                    ) -> Prediction:
        q = kp = None
        if self.output == "joint_angles":
            q = out
            kp = forward_kinematics(q) if self.kinematics else None
        elif self.output == "keypoints":
            kp = out.reshape(NUM_KEYPOINTS, 3)
            q = inverse_kinematics(kp) if self.kinematics else None
        return Prediction(out, sample_index, stream_index, q, kp)

    def predict_recording(self, emg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offline helper: outputs (K, out) and sample indices (K,) for every frame-aligned
        window of a whole recording (N, C), through the full-window model path (torch)."""
        import torch

        model = self.checkpoint.build_model()
        y = self._pre.run(np.asarray(emg, dtype=np.float64))
        c = self.checkpoint.network
        ends = np.arange(c.window - 1, len(y), c.frame_stride)
        if len(ends) == 0:
            return np.zeros((0, c.out_dim)), ends
        xt = torch.from_numpy(np.ascontiguousarray(y.T))
        windows = torch.stack([xt[:, e - c.window + 1:e + 1] for e in ends])
        out = model.predict(windows).numpy()
        return out, (ends + 1) * self.checkpoint.preprocess.decimation - 1
