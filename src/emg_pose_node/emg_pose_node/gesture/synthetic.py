"""Small generated gesture recordings for tests (not a physiological model).

Every class has a fixed amplitude pattern over the channels (``rest``: a low, even one); a
window's EMG is zero-mean Gaussian noise with that pattern's amplitude [V] times a slowly
varying effort, plus sensor noise. ``rotation`` turns the pattern around the electrode ring
(an armband put on rotated), ``gain`` scales it (a different skin contact).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emg_hand_core.recordings import Recording

CLASSES = ("rest", "fist", "open", "pinch")


def class_patterns(class_names: Sequence[str], channels: int, seed: int = 7) -> np.ndarray:
    """(K, C) amplitudes [V]: rest 10 uV everywhere, each gesture 40-300 uV on a few channels."""
    rng = np.random.default_rng(seed)
    out = []
    for name in class_names:
        if name == "rest":
            out.append(np.full(channels, 10e-6))
        else:
            out.append(40e-6 + 260e-6 * rng.uniform(0, 1, channels) ** 3)
    return np.stack(out)


def emg_for(pattern: np.ndarray, n: int, sample_rate_hz: float, rng: np.random.Generator,
            rotation: int = 0, gain: float = 1.0, noise_v: float = 3e-6) -> np.ndarray:
    """(n, C) float32 EMG [V] of one class pattern (C,)."""
    t = np.arange(n) / sample_rate_hz
    effort = 0.75 + 0.25 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6.3))
    amplitude = gain * np.roll(pattern, rotation)[None] * effort[:, None]
    emg = amplitude * rng.standard_normal((n, len(pattern)))
    return (emg + noise_v * rng.standard_normal(emg.shape)).astype(np.float32)


def synthetic_gesture_recording(class_names: Sequence[str] = CLASSES, channels: int = 8,
                                sample_rate_hz: float = 200.0, hold_s: float = 2.0,
                                repetitions: int = 3, seed: int = 0, rotation: int = 0,
                                gain: float = 1.0, pattern_seed: int = 7) -> Recording:
    """Each class held ``hold_s`` in turn, ``repetitions`` times; per-sample labels."""
    rng = np.random.default_rng(seed)
    patterns = class_patterns(class_names, channels, pattern_seed)
    n = int(round(hold_s * sample_rate_hz))
    emg, labels = [], []
    for _ in range(repetitions):
        for k in range(len(class_names)):
            emg.append(emg_for(patterns[k], n, sample_rate_hz, rng, rotation, gain))
            labels.append(np.full(n, k))
    emg = np.concatenate(emg)
    return Recording(emg=emg, sample_rate_hz=sample_rate_hz,
                     channel_names=tuple(f"ch_{i + 1}" for i in range(channels)),
                     gesture=np.concatenate(labels), gesture_names=tuple(class_names),
                     source=f"synthetic-gestures(seed={seed}, rotation={rotation})",
                     format="synthetic")


__all__ = ["CLASSES", "class_patterns", "emg_for", "synthetic_gesture_recording"]
