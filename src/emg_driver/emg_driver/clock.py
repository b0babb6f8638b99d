"""Stream indices and acquisition timestamps from a device's sample counter (pure numpy).

:class:`StreamIndexer` turns device sample counters (which wrap, restart after a device reset,
or are absent) into the monotonic stream index of emg/raw; a forward jump of the counter is a
gap of dropped samples and is counted.

:class:`SampleClock` reconstructs each sample's acquisition time from its stream index and
the nominal rate, corrected continuously for the drift between the device's oscillator and the
host clock, using the arrival times of serial reads. Arrival times carry the transport's
latency plus jitter (USB polling, OS scheduling); acquisition is never later than arrival, so
the clock follows the *lower envelope* of arrival time against index:

* the model is ``t(i) = t_anchor + (i - i_anchor) * period + offset``;
* an arrival earlier than the model predicts proves the model late: the offset steps down
  at once;
* otherwise the offset may creep up slowly (``creep_ppm``), never following jitter quickly;
* once per window (``window_s`` of samples) the window's earliest arrival is stored; a line
  fitted through the last ``num_windows`` of these minima gives the period (device rate as
  seen by the host clock), re-anchored so that time stays continuous;
* if even a whole window's earliest arrival is later than the model by more than
  ``step_threshold_s`` (the device paused, or the model was wrong), the offset steps up.

Timestamps therefore estimate acquisition time plus the transport's *minimum* latency, with
arrival jitter filtered out. All times are float seconds on the caller's clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

# --- stream index ---------------------------------------------------------------------


@dataclass
class IndexStats:
    dropped_samples: int = 0  # counted from gaps in the device counter
    duplicate_samples: int = 0  # counter repeated (a resent line or frame): sample dropped
    counter_resets: int = 0  # counter went far back or jumped too far: device restarted


class StreamIndexer:
    """Device counters -> monotonic stream indices, counting gaps as dropped samples.

    Without counters every sample gets the next index. With counters (``modulus`` > 0 for
    counters that wrap), an increase of ``d`` samples from the newest counter so far gives
    an index ``d`` higher (``d - 1`` dropped). A counter equal to the newest, or less than
    ``max_rewind`` behind it (a line or frame sent again: a resent frame of S samples goes
    back by S - 1), is a duplicate: the sample is dropped and counted. A counter further
    back, or an increase of more than ``max_gap``, is a device restart: the index simply
    continues (no gap) and ``counter_resets`` is counted. (The price: a device that restarts
    within its first ``max_rewind`` samples has those samples counted as duplicates until
    its counter passes the old one.) For counters that wrap, the window behind is at most a
    quarter of the modulus, and only what lies outside it can be a gap.
    """

    def __init__(self, max_gap: int = 10_000, first_index: int = 0,
                 max_rewind: int = 256) -> None:
        if max_gap < 1 or max_rewind < 1:
            raise ValueError("max_gap and max_rewind must be >= 1")
        self.max_gap = int(max_gap)
        self.max_rewind = int(max_rewind)
        self.next_index = int(first_index)
        self.stats = IndexStats()
        self._last_counter: int | None = None

    def restart(self, skip: int = 0) -> None:
        """Forget the device counter (after a reconnect); the next index is ``next + skip``."""
        self._last_counter = None
        self.next_index += max(0, int(skip))

    def assign(self, n: int, counters: np.ndarray | None = None,
               modulus: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Indices for ``n`` new samples: (keep mask (n,) bool, indices of kept (k,) int64)."""
        if n == 0:
            return np.ones(0, dtype=bool), np.zeros(0, dtype=np.int64)
        if counters is None:
            idx = self.next_index + np.arange(n, dtype=np.int64)
            self.next_index += n
            return np.ones(n, dtype=bool), idx
        counters = np.asarray(counters, dtype=np.int64)
        prev = self._last_counter
        c0, cl = int(counters[0]), int(counters[-1])
        if prev is None:
            prev = (c0 - 1) % modulus if modulus else c0 - 1
        # fast path (the common case): the batch continues the previous one without a gap
        step0 = (c0 - prev) % modulus if modulus else c0 - prev
        if step0 == 1 and cl - c0 == n - 1 and (n <= 2 or bool(np.all(np.diff(counters) == 1))):
            idx = np.arange(self.next_index, self.next_index + n, dtype=np.int64)
            self.next_index += n
            self._last_counter = cl
            return np.ones(n, dtype=bool), idx
        keep = np.ones(n, dtype=bool)
        idx: list[int] = []
        nxt = self.next_index
        last = prev
        rewind = min(self.max_rewind, modulus // 4) if modulus else self.max_rewind
        for k in range(n):
            c = int(counters[k])
            d = c - last
            if modulus:
                d %= modulus
            behind = (modulus - d) % modulus if modulus else -d
            if d == 0 or 0 < behind < rewind:
                keep[k] = False
                self.stats.duplicate_samples += 1
                continue
            if d < 0 or d > self.max_gap:
                self.stats.counter_resets += 1
                d = 1
            self.stats.dropped_samples += d - 1
            nxt += d - 1
            idx.append(nxt)
            nxt += 1
            last = c
        self.next_index = nxt
        self._last_counter = last
        return keep, np.asarray(idx, dtype=np.int64)


def counters_from_times(times_s: np.ndarray, rate_hz: float, origin_s: float) -> np.ndarray:
    """Device timestamps -> sample counters ``round((t - origin) * rate)`` (for text streams
    that carry a timestamp column instead of a counter)."""
    return np.rint((np.asarray(times_s, dtype=np.float64) - origin_s) * rate_hz).astype(np.int64)


# --- acquisition clock ----------------------------------------------------------------


class SampleClock:
    """Acquisition time of stream indices, from arrival times, with drift correction.

    Call :meth:`observe` with the index of the newest sample of each read and the time the
    read returned; :meth:`time_of` gives the reconstructed acquisition time of any index.
    """

    def __init__(self, rate_hz: float, window_s: float = 0.25, num_windows: int = 120,
                 creep_ppm: float = 500.0, step_threshold_s: float = 0.05,
                 max_drift_ppm: float = 5000.0) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        self.nominal_period_s = 1.0 / self.rate_hz
        self.window_samples = max(1, int(round(window_s * rate_hz)))
        self.num_windows = int(num_windows)
        self.creep = creep_ppm * 1e-6
        self.step_threshold_s = float(step_threshold_s)
        self.max_drift = max_drift_ppm * 1e-6
        self.reset()

    def reset(self) -> None:
        """Forget everything; the next observation anchors the clock again."""
        self._anchor_index: int | None = None
        self._anchor_time = 0.0
        self.period_s = self.nominal_period_s
        self._offset = 0.0
        self._last_arrival = 0.0
        self._win_start = 0
        self._win_min: tuple[int, float] | None = None  # (x, arrival - nominal line)
        self._minima: deque[tuple[int, float]] = deque(maxlen=self.num_windows)
        self.steps_up = 0

    @property
    def anchored(self) -> bool:
        return self._anchor_index is not None

    @property
    def drift_ppm(self) -> float:
        """Estimated device rate error seen by the host clock [ppm]; > 0 = device slow."""
        return (self.period_s / self.nominal_period_s - 1.0) * 1e6

    def time_of(self, index: int | np.ndarray) -> float | np.ndarray:
        """Reconstructed acquisition time [s] of stream index ``index``."""
        if self._anchor_index is None:
            raise RuntimeError("SampleClock.time_of before the first observe()")
        return self._anchor_time + (index - self._anchor_index) * self.period_s + self._offset

    def observe(self, index: int, arrival_s: float) -> None:
        """Sample ``index`` had arrived by ``arrival_s``."""
        if self._anchor_index is None:
            self._anchor_index = int(index)
            self._anchor_time = float(arrival_s)
            self._last_arrival = float(arrival_s)
            self._win_start = 0
            self._win_min = (0, 0.0)
            return
        x = int(index) - self._anchor_index
        if x >= self._win_start + self.window_samples:
            self._close_window(x)
        residual = arrival_s - self.time_of(index)
        if residual < 0.0:
            self._offset += residual  # arrival earlier than the model: the model was late
        else:
            dt = max(0.0, arrival_s - self._last_arrival)
            self._offset += min(residual, self.creep * dt)
        self._last_arrival = max(self._last_arrival, float(arrival_s))
        rn = arrival_s - self._anchor_time - x * self.nominal_period_s
        if self._win_min is None or rn < self._win_min[1]:
            self._win_min = (x, rn)

    def _close_window(self, x_now: int) -> None:
        if self._win_min is not None:
            self._minima.append(self._win_min)
            xm, rm = self._win_min
            # the window's earliest arrival vs the current model
            late = (self._anchor_time + xm * self.nominal_period_s + rm) - self.time_of(
                self._anchor_index + xm)
            if late > self.step_threshold_s:
                self._offset += late
                self.steps_up += 1
                # minima before the step describe another timeline: keep only this one
                self._minima.clear()
                self._minima.append(self._win_min)
        self._win_start = x_now
        self._win_min = None
        if len(self._minima) >= 3:
            xs = np.array([m[0] for m in self._minima], dtype=np.float64)
            rs = np.array([m[1] for m in self._minima], dtype=np.float64)
            xc = xs - xs.mean()
            denom = float(np.dot(xc, xc))
            if denom > 0:
                slope = float(np.dot(xc, rs - rs.mean()) / denom)
                period = self.nominal_period_s + slope
                lo = self.nominal_period_s * (1 - self.max_drift)
                hi = self.nominal_period_s * (1 + self.max_drift)
                period = min(max(period, lo), hi)
                # re-anchor so the model's time at x_now does not jump ...
                t_now = self.time_of(self._anchor_index + x_now)
                self.period_s = period
                self._offset = t_now - self._anchor_time - x_now * period
                # ... unless the envelope of the minima says the model is early: catch up
                t_fit = (self._anchor_time + x_now * self.nominal_period_s + rs.mean()
                         + slope * (x_now - xs.mean()))
                if t_fit > t_now:
                    self._offset += t_fit - t_now


__all__ = ["IndexStats", "SampleClock", "StreamIndexer", "counters_from_times"]
