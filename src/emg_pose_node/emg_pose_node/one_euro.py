"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012) for joint-angle streams. No rclpy.

A low-pass filter whose cut-off rises with speed: steady poses are smoothed hard
(``min_cutoff_hz``), fast motion passes with little lag (``beta``). Vectorised over joints.
"""

from __future__ import annotations

import math

import numpy as np


class OneEuroFilter:
    """Filter a vector signal sampled at irregular times.

    min_cutoff_hz: cut-off at rest [Hz]; lower = smoother, more lag.
    beta: speed coefficient [s/rad]; higher = less lag during fast motion.
    d_cutoff_hz: cut-off of the speed estimate [Hz].
    """

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.05,
                 d_cutoff_hz: float = 1.0) -> None:
        if min_cutoff_hz <= 0 or d_cutoff_hz <= 0 or beta < 0:
            raise ValueError("One Euro filter needs min_cutoff_hz > 0, d_cutoff_hz > 0, beta >= 0")
        self.min_cutoff_hz = min_cutoff_hz
        self.beta = beta
        self.d_cutoff_hz = d_cutoff_hz
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * math.pi * cutoff_hz)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Filtered value of sample ``x`` taken at time ``t_s`` [s]."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or t_s <= self._t:
            # first sample, or time did not advance: restart from this sample
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
            return x.copy()
        dt = t_s - self._t
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff_hz, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self._dx)
        a = self._alpha(cutoff, dt)
        self._x = a * x + (1.0 - a) * self._x
        self._t = t_s
        return self._x.copy()
