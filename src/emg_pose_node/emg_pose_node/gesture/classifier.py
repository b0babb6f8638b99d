"""Running a gesture checkpoint: windows in, class probabilities out; offline and streaming.

:class:`GestureClassifier` turns windows of filtered EMG (N, C, W) [V] into probabilities
(N, K): LDA through its features and their normalisation, the networks through the
per-channel normalisation of the checkpoint. :meth:`GestureClassifier.session` runs windows
of one session in time order through the causal armband-rotation estimate first
(:mod:`.alignment`), as the live node does. :class:`GestureStream` is the live path: EMG
chunks in (the checkpoint's filters run statefully), one :class:`WindowOutput` every ``hop``
samples out. No rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..preprocessing import PreprocessConfig, Preprocessor
from ..stream_guard import SampleRing
from . import lda
from .alignment import RingAligner, roll_channels, window_log_rms
from .checkpoint import GestureCheckpoint
from .features import extract, mav


def window_mav(windows: np.ndarray) -> np.ndarray:
    """(N, C, W) [V] -> (N,): the mean over channels of each window's MAV [V] (the
    proportional-control amplitude)."""
    return mav(np.asarray(windows, dtype=np.float64)).mean(axis=-1)


def normalise_windows(windows: np.ndarray, preprocess: PreprocessConfig) -> np.ndarray:
    """Windows (N, C, W) [V] -> float32 normalised with the checkpoint's per-channel mean/std
    (the networks' input)."""
    mean = np.asarray(preprocess.mean, dtype=np.float32)[:, None]
    std = np.asarray(preprocess.std, dtype=np.float32)[:, None]
    return ((np.asarray(windows, dtype=np.float32) - mean) / std).astype(np.float32)


class GestureClassifier:
    """Probabilities of a checkpoint's classes for windows of filtered EMG [V]."""

    def __init__(self, ckpt: GestureCheckpoint, threads: int | None = None) -> None:
        self.ckpt = ckpt
        if ckpt.kind == "lda":
            self._lda = lda.LDAParams.from_tensors(ckpt.tensors)
            self._fmean = np.asarray(ckpt.feature_norm["mean"])
            self._fstd = np.asarray(ckpt.feature_norm["std"])
            self.network = None
        else:
            import torch

            from .networks import build, load_numpy

            if threads:
                torch.set_num_threads(threads)
            self.network = build(ckpt.kind, ckpt.in_channels, ckpt.num_classes, ckpt.window,
                                 ckpt.hyperparameters)
            load_numpy(self.network, ckpt.tensors)
            self.network.eval()

    def normalise(self, windows: np.ndarray) -> np.ndarray:
        """Windows (N, C, W) [V] -> normalised float32 (the networks' input)."""
        return normalise_windows(windows, self.ckpt.preprocess)

    def features(self, windows: np.ndarray) -> np.ndarray:
        """LDA models: standardised feature vectors (N, F)."""
        return (extract(windows, self.ckpt.features) - self._fmean) / self._fstd

    def probabilities(self, windows: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Windows (N, C, W) [V], already in the training channel layout -> (N, K)."""
        windows = np.asarray(windows)
        if windows.ndim != 3 or windows.shape[1:] != (self.ckpt.in_channels, self.ckpt.window):
            raise ValueError(f"expected windows (N, {self.ckpt.in_channels}, "
                             f"{self.ckpt.window}), got {windows.shape}")
        if self.network is None:
            return lda.probabilities(self._lda, self.features(windows))
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(windows), batch_size):
                x = torch.from_numpy(self.normalise(windows[i:i + batch_size]))
                out.append(torch.softmax(self.network(x), dim=1).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.ckpt.num_classes))

    def session(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows of one session in time order -> (probabilities (N, K), the ring shift
        applied to each (N,)), the shift estimated causally as live."""
        aligner = RingAligner(self.ckpt.alignment)
        shifts = aligner.update(window_log_rms(windows))
        aligned = np.empty_like(windows)
        for shift in np.unique(shifts):
            sel = shifts == shift
            aligned[sel] = roll_channels(windows[sel], int(shift))
        return self.probabilities(aligned), shifts


@dataclass(frozen=True)
class WindowOutput:
    """The model's output for the window ending at stream sample ``index``."""

    index: int  # stream index of the window's newest sample
    probabilities: np.ndarray  # (K,)
    mav_v: float  # mean MAV over channels [V]
    shift: int  # armband rotation undone [channels]


class GestureStream:
    """Live: EMG chunks (n, C) [V] in, a :class:`WindowOutput` every ``hop`` samples out.

    Decisions fall on the stream grid: the first when ``window`` samples have arrived, then
    every ``hop`` samples. :meth:`reset` (after a gap or a restart) starts over.
    """

    def __init__(self, classifier: GestureClassifier) -> None:
        self.classifier = classifier
        ckpt = classifier.ckpt
        self.window, self.hop = ckpt.window, ckpt.hop
        self._pre = Preprocessor(ckpt.preprocess)
        self._ring = SampleRing(self.window, ckpt.in_channels)
        self.aligner = RingAligner(ckpt.alignment)
        self.reset()

    def reset(self) -> None:
        """Forget the stream (the rotation estimate is kept: the band did not move)."""
        self._state = self._pre.initial_state(self.classifier.ckpt.in_channels)
        self._ring.clear()
        self._count = 0  # samples since reset

    def push(self, samples: np.ndarray, first_index: int) -> list[WindowOutput]:
        """Append a chunk whose first sample has stream index ``first_index``."""
        filtered, self._state = self._pre.filter(samples, self._state)
        out = []
        pos = 0
        n = len(filtered)
        while pos < n:
            # samples until the next decision point (count reaches window + k * hop)
            due = self.window - self._count if self._count < self.window else (
                self.hop - (self._count - self.window) % self.hop) % self.hop or self.hop
            take = min(due, n - pos)
            self._ring.push(filtered[pos:pos + take].astype(np.float32), first_index + pos, 0,
                            1.0)
            self._count += take
            pos += take
            if take == due:
                out.append(self._decide(first_index + pos - 1))
        return out

    def _decide(self, index: int) -> WindowOutput:
        x = self._ring.latest(self.window).T[None]  # (1, C, W)
        shift = int(self.aligner.update(window_log_rms(x))[0])
        probabilities = self.classifier.probabilities(roll_channels(x, shift))[0]
        return WindowOutput(index, probabilities, float(window_mav(x)[0]), shift)


__all__ = ["GestureClassifier", "GestureStream", "WindowOutput", "normalise_windows",
           "window_mav"]
