"""A tiny synthetic EMG generator for tests and benchmarks (not the simulator).

Smooth random hand motion inside the joint limits; each channel's EMG is zero-mean noise
whose amplitude is a fixed positive mix of "muscle activations" derived from the joint
angles, plus a little sensor noise. Enough structure for a model to learn quickly,
nothing physiological. The real simulator lives in emg_driver (this package must not
import it); its offline recorder writes the same emg2pose HDF5 format.
"""

from __future__ import annotations

import numpy as np

from emg_hand_core.hand_model import JOINT_LOWER, JOINT_UPPER, NUM_JOINTS
from emg_hand_core.recordings import Recording


def smooth_joint_angles(num: int, sample_rate_hz: float, rng: np.random.Generator,
                        speed_hz: float = 0.4) -> np.ndarray:
    """(num, 20) joint angles [rad]: sums of slow sinusoids mapped into the limits."""
    t = np.arange(num) / sample_rate_hz
    phase = np.zeros((num, NUM_JOINTS))
    for _ in range(3):
        freq = rng.uniform(0.3, 1.0, NUM_JOINTS) * speed_hz
        offset = rng.uniform(0, 2 * np.pi, NUM_JOINTS)
        phase += np.sin(2 * np.pi * freq * t[:, None] + offset) / 3.0
    # Correlated fingers, as in real hands: a shared grasp component.
    grasp = np.sin(2 * np.pi * 0.2 * speed_hz * t + rng.uniform(0, 6.3))[:, None]
    level = 0.5 + 0.3 * phase + 0.2 * grasp
    return JOINT_LOWER + np.clip(level, 0.0, 1.0) * (JOINT_UPPER - JOINT_LOWER)


def synthetic_recording(duration_s: float = 20.0, sample_rate_hz: float = 500.0,
                        channels: int = 8, seed: int = 0, noise_v: float = 2e-6,
                        mixing: np.ndarray | None = None) -> Recording:
    """A recording with joint angles: EMG amplitude = mixing @ activations (see module)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * sample_rate_hz))
    q = smooth_joint_angles(n, sample_rate_hz, rng)
    span = JOINT_UPPER - JOINT_LOWER
    activation = (q - JOINT_LOWER) / span  # (n, 20) in [0, 1]
    if mixing is None:
        mixing = np.random.default_rng(1234).uniform(0.0, 1.0, (channels, NUM_JOINTS)) ** 3
    amplitude = 20e-6 + 200e-6 * activation @ mixing.T / NUM_JOINTS * 4  # (n, C) [V]
    emg = amplitude * rng.standard_normal((n, channels)) + noise_v * rng.standard_normal(
        (n, channels))
    return Recording(emg=emg.astype(np.float32), sample_rate_hz=sample_rate_hz,
                     channel_names=tuple(f"ch_{i + 1}" for i in range(channels)),
                     timestamps_s=np.arange(n) / sample_rate_hz, joint_angles=q,
                     label_mask=np.ones(n, bool), source=f"synthetic(seed={seed})",
                     format="synthetic")
