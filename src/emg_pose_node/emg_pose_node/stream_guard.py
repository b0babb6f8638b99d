"""Checks on the live EMG stream and the sample buffer the model reads. No rclpy.

:class:`EmgStreamGuard` decides, chunk by chunk, whether samples may enter the buffer, and
when the buffer (and the model's streaming state) must be reset: dropped samples (a gap in
stream indices), time going backwards (a replayed bag looping) or jumping far ahead,
non-finite values, stamps no ROS time can hold (negative, or past 2038: a pose stamped
with it could not be published), or a stream whose channel count or sample rate (NaN
included) differs from what the model was trained on. Every chunk gets exactly one
verdict and at most one fault, counted once; it never raises for any field values.
:class:`SampleRing` keeps the newest samples with their stream index and time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class Fault(enum.Enum):
    """Why a chunk was not appended as-is."""

    GAP = "dropped samples (stream index gap)"
    INDEX_BACKWARDS = "stream index went backwards (stream restarted)"
    TIME_BACKWARDS = "time went backwards (replay looped?)"
    NON_FINITE = "NaN/inf samples"
    CHANNEL_MISMATCH = "channel count differs from the model's"
    RATE_MISMATCH = "sample rate differs from the model's"
    BAD_STAMP = "stamp outside the time range of a ROS stamp"
    TIME_JUMP = "time jumped ahead of the sample count"


NS_PER_S = 1_000_000_000
MAX_STAMP_NS = (2**31 - 1) * NS_PER_S  # builtin_interfaces/Time: int32 seconds


@dataclass(frozen=True)
class Verdict:
    accept: bool                 # append this chunk's samples
    reset: bool                  # clear the buffer and the model's streaming state first
    fault: Fault | None = None
    detail: str = ""
    dropped_samples: int = 0


class EmgStreamGuard:
    """Stateful checker of consecutive EMG chunks against the model's expectations."""

    def __init__(self, channels: int, sample_rate_hz: float,
                 rate_tolerance: float = 0.01, max_time_jump_s: float = 10.0) -> None:
        self.channels = int(channels)
        self.sample_rate_hz = float(sample_rate_hz)
        self.rate_tolerance = float(rate_tolerance)
        self.max_time_jump_s = float(max_time_jump_s)
        self._next_index: int | None = None
        self._last_stamp_ns: int | None = None
        self._last_index = 0  # first index of the chunk stamped _last_stamp_ns
        self._reset_next = False  # a dropped chunk broke the stream: the next one restarts it
        self.counts: dict[Fault, int] = {f: 0 for f in Fault}
        self.dropped_samples = 0

    def restart(self) -> None:
        """Forget continuity (the next chunk is accepted as a new stream)."""
        self._next_index = None
        self._last_stamp_ns = None

    def _drop(self, fault: Fault, detail: str) -> Verdict:
        """The chunk is lost, so the samples after it do not continue the buffer."""
        self._count(fault)
        self.restart()
        self._reset_next = True
        return Verdict(False, True, fault, detail + "; chunk dropped")

    def check(self, first_index: int, stamp_ns: int, samples: np.ndarray,
              sample_rate_hz: float) -> Verdict:
        """Judge a chunk of ``samples`` (n, channels) [V] starting at stream ``first_index``."""
        n, channels = samples.shape
        if channels != self.channels:
            return self._reject(Fault.CHANNEL_MISMATCH,
                                f"stream has {channels} channels, model expects {self.channels}")
        if not abs(sample_rate_hz - self.sample_rate_hz) <= (self.rate_tolerance
                                                            * self.sample_rate_hz):  # NaN too
            return self._reject(Fault.RATE_MISMATCH, f"stream at {sample_rate_hz:g} Hz, model "
                                f"expects {self.sample_rate_hz:g} Hz")
        if not 0 <= stamp_ns <= MAX_STAMP_NS or (
                stamp_ns + max(n - 1, 0) * NS_PER_S / sample_rate_hz > MAX_STAMP_NS):
            return self._drop(Fault.BAD_STAMP, f"chunk stamped {stamp_ns / NS_PER_S:.9g} s "
                              f"(valid: 0 to {MAX_STAMP_NS // NS_PER_S} s)")
        if not np.all(np.isfinite(samples)):
            bad = int(np.count_nonzero(~np.isfinite(samples)))
            return self._drop(Fault.NON_FINITE, f"{bad} non-finite values in samples "
                              f"{first_index}..{first_index + n - 1}")
        verdict = Verdict(True, self._reset_next)
        self._reset_next = False
        ahead_s = 0.0
        if self._last_stamp_ns is not None:
            expected = self._last_stamp_ns + (first_index - self._last_index) * (
                NS_PER_S / self.sample_rate_hz)
            ahead_s = (stamp_ns - expected) / NS_PER_S
        if self._last_stamp_ns is not None and stamp_ns < self._last_stamp_ns:
            verdict = Verdict(True, True, Fault.TIME_BACKWARDS,
                              f"chunk stamped {(self._last_stamp_ns - stamp_ns) / 1e9:.3f} s "
                              "before the previous one")
        elif self._next_index is not None and first_index < self._next_index:
            verdict = Verdict(True, True, Fault.INDEX_BACKWARDS,
                              f"index {first_index} after {self._next_index - 1}")
        elif ahead_s > self.max_time_jump_s:
            verdict = Verdict(True, True, Fault.TIME_JUMP, f"chunk stamped {ahead_s:.6g} s "
                              f"after its sample count implies (limit {self.max_time_jump_s:g} s)")
        elif self._next_index is not None and first_index > self._next_index:
            dropped = first_index - self._next_index
            self.dropped_samples += dropped
            verdict = Verdict(True, True, Fault.GAP, f"{dropped} samples dropped before "
                              f"index {first_index}", dropped)
        if verdict.fault is not None:
            self._count(verdict.fault)
        self._next_index = first_index + n
        self._last_stamp_ns = stamp_ns
        self._last_index = first_index
        return verdict

    def _count(self, fault: Fault) -> None:
        self.counts[fault] += 1

    def _reject(self, fault: Fault, detail: str) -> Verdict:
        self._count(fault)
        return Verdict(False, False, fault, detail + "; chunk ignored")


class SampleRing:
    """The newest ``capacity`` samples (n, channels), with the newest sample's index and time."""

    def __init__(self, capacity: int, channels: int) -> None:
        if capacity < 1 or channels < 1:
            raise ValueError("SampleRing needs capacity >= 1 and channels >= 1")
        self._buf = np.zeros((2 * capacity, channels), dtype=np.float32)
        self.capacity = capacity
        self.channels = channels
        self._end = 0  # samples valid in _buf[_end - filled:_end]
        self.filled = 0
        self.newest_index: int | None = None
        self.newest_stamp_ns: int | None = None
        self.total_pushed = 0

    def clear(self) -> None:
        self._end = 0
        self.filled = 0
        self.newest_index = None
        self.newest_stamp_ns = None

    def push(self, samples: np.ndarray, first_index: int, stamp_ns: int,
             sample_rate_hz: float) -> None:
        """Append (n, channels) samples; the first was acquired at ``stamp_ns`` [ns]."""
        n = samples.shape[0]
        if n == 0:
            return
        if n >= self.capacity:
            self._buf[: self.capacity] = samples[-self.capacity:]
            self._end = self.capacity
        else:
            if self._end + n > self._buf.shape[0]:
                keep = min(self.filled, self.capacity)
                self._buf[:keep] = self._buf[self._end - keep: self._end]
                self._end = keep
            self._buf[self._end: self._end + n] = samples
            self._end += n
        self.filled = min(self.filled + n, self.capacity)
        self.total_pushed += n
        self.newest_index = first_index + n - 1
        self.newest_stamp_ns = stamp_ns + int(round((n - 1) * 1e9 / sample_rate_hz))

    def latest(self, n: int) -> np.ndarray | None:
        """The newest ``n`` samples (a view), or None while fewer are buffered."""
        if n > self.filled:
            return None
        return self._buf[self._end - n: self._end]
