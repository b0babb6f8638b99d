"""Armband rotation: find how far the electrode ring turned since training, from unlabelled EMG.

An armband whose electrodes sit in a ring around the forearm (the Myo: 8) is put on a little
rotated every session; one electrode step moves every muscle's signal to the neighbouring
channel, and a classifier trained on the old layout fails (myo_readings participant 12548,
session 3: LDA 0.58 -> 0.86 accuracy once undone). The activity profile across the ring - the
mean log RMS of each channel over a stretch of use, whatever gestures it holds - keeps its
shape and turns with the band. :func:`best_shift` compares a stream's profile with the
training profile (both centred) at every shift within ``max_shift`` electrodes (mean absolute
difference) and :func:`roll_channels` undoes the shift.

:class:`RingAligner` does it causally on a stream: an exponential average of window
profiles with time constant ``tau_windows``; the shift changes only after ``min_windows``
windows and only when the new one fits better by ``margin`` (hysteresis). Offline
evaluation runs the same class over the test windows in time order, so the figures are
what the live node does. No labels are used anywhere. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG_FLOOR_V = 1e-9


def window_log_rms(windows: np.ndarray) -> np.ndarray:
    """(N, C, W) [V] -> (N, C): log RMS of each channel of each window."""
    x = np.asarray(windows, dtype=np.float64)
    return np.log(np.sqrt(np.mean(x * x, axis=-1)) + LOG_FLOOR_V)


def ring_profile(windows: np.ndarray) -> np.ndarray:
    """The centred activity profile (C,) of windows (N, C, W) [V]."""
    p = window_log_rms(windows).mean(axis=0)
    return p - p.mean()


def shifts(max_shift: int) -> np.ndarray:
    """Candidate shifts, 0 first, then -1, +1, -2, ..."""
    out = [0]
    for k in range(1, max_shift + 1):
        out += [-k, k]
    return np.asarray(out)


def shift_errors(profile: np.ndarray, reference: np.ndarray, max_shift: int) -> np.ndarray:
    """Mismatch of ``profile`` rolled by each of :func:`shifts` against ``reference``;
    profile (..., C) -> (..., S)."""
    p = profile - profile.mean(axis=-1, keepdims=True)
    r = reference - reference.mean()
    return np.stack([np.mean(np.abs(np.roll(p, k, axis=-1) - r), axis=-1)
                     for k in shifts(max_shift)], axis=-1)


def best_shift(profile: np.ndarray, reference: np.ndarray, max_shift: int) -> int:
    """The shift (channels to roll by) that makes ``profile`` match ``reference`` best."""
    if max_shift <= 0:
        return 0
    return int(shifts(max_shift)[int(np.argmin(shift_errors(profile, reference, max_shift)))])


def roll_channels(windows: np.ndarray, shift: int) -> np.ndarray:
    """Windows (..., C, W) with channel c moved to c + shift (mod C)."""
    return windows if shift == 0 else np.roll(windows, shift, axis=-2)


@dataclass
class AlignmentConfig:
    """Stored in gesture checkpoints; ``max_shift`` 0 = off."""

    max_shift: int = 0
    reference: tuple[float, ...] = ()  # training profile (C,)
    tau_windows: float = 2000.0
    min_windows: int = 200
    margin: float = 0.05

    def to_dict(self) -> dict:
        return {"max_shift": self.max_shift, "reference": [float(v) for v in self.reference],
                "tau_windows": self.tau_windows, "min_windows": self.min_windows,
                "margin": self.margin}

    @classmethod
    def from_dict(cls, d: dict) -> AlignmentConfig:
        return cls(int(d.get("max_shift", 0)), tuple(d.get("reference", ())),
                   float(d.get("tau_windows", 2000.0)), int(d.get("min_windows", 200)),
                   float(d.get("margin", 0.05)))


class RingAligner:
    """Causal estimate of the ring shift of a stream (module docstring)."""

    def __init__(self, config: AlignmentConfig) -> None:
        self.config = config
        self.reference = np.asarray(config.reference, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        self.shift = 0
        self.windows = 0
        self._profile: np.ndarray | None = None

    @property
    def enabled(self) -> bool:
        return self.config.max_shift > 0 and len(self.reference) > 0

    def update(self, log_rms: np.ndarray) -> np.ndarray:
        """Log RMS of consecutive windows (N, C) -> the shift to apply to each (N,)."""
        log_rms = np.atleast_2d(np.asarray(log_rms, dtype=np.float64))
        out = np.zeros(len(log_rms), dtype=np.int64)
        if not self.enabled:
            return out
        c = self.config
        alpha = 1.0 / c.tau_windows
        candidates = shifts(c.max_shift)
        for i, value in enumerate(log_rms):
            self.windows += 1
            # running mean until tau windows, then exponential forgetting
            rate = max(alpha, 1.0 / self.windows)
            self._profile = value.copy() if self._profile is None else (
                self._profile + rate * (value - self._profile))
            if self.windows >= c.min_windows:
                errors = shift_errors(self._profile, self.reference, c.max_shift)
                best = int(np.argmin(errors))
                current = int(np.flatnonzero(candidates == self.shift)[0])
                if errors[best] < errors[current] - c.margin:
                    self.shift = int(candidates[best])
            out[i] = self.shift
        return out


__all__ = ["AlignmentConfig", "RingAligner", "best_shift", "ring_profile", "roll_channels",
           "shift_errors", "shifts", "window_log_rms"]
