"""From decoded samples to stamped chunks: the one path every live source shares (pure).

A live source (a serial armband, a BrainFlow board, an LSL stream) hands each batch of
decoded samples to :meth:`SamplePipeline.push` with the device counters (if any) and the
time the batch arrived (or per-sample times the library measured). The pipeline assigns
stream indices (:class:`~emg_driver.clock.StreamIndexer`: counter gaps are dropped samples),
updates the acquisition clock (:class:`~emg_driver.clock.SampleClock`), cuts chunks
(:class:`~emg_driver.stream.Chunker`), stamps them with strictly increasing acquisition
times and hands them to the sink; IMU readings that came with the batch are stamped on the
same clock and handed to their own sink. :meth:`interrupted` marks a loss of the device (an
unplugged port, a radio link down, a lost LSL outlet): the time until samples return
becomes a gap in the stream index (``samples_lost_disconnected``).

Not thread-safe by itself: the owning source calls it from its reader thread and reads the
counters from others (plain ints; a lock guards the state that must stay consistent).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .clock import SampleClock, StreamIndexer, counters_from_times
from .stream import Chunk, Chunker, ImuReading

ChunkSink = Callable[[list[Chunk]], None]
ImuSink = Callable[[list[ImuReading]], None]
EventSink = Callable[[str, str], None]  # (level "info" | "warn" | "error", message)


class SamplePipeline:
    """Indexed, clocked, chunked samples for one stream of ``num_channels`` at ``rate_hz``."""

    def __init__(self, rate_hz: float, chunk_len: int, num_channels: int,
                 on_chunks: ChunkSink, clock_fn: Callable[[], float],
                 on_event: EventSink | None = None, on_imu: ImuSink | None = None) -> None:
        self.rate_hz = float(rate_hz)
        self.chunk_len = int(chunk_len)
        # a stream that stops must not hold its last samples back; short USB stalls must
        # not cut chunks short either
        self.idle_flush_s = max(4.0 * self.chunk_len / self.rate_hz, 0.1)
        self.indexer = StreamIndexer(max_gap=int(max(10.0 * self.rate_hz, 1000)))
        self.clock = SampleClock(self.rate_hz)
        self.chunker = Chunker(self.chunk_len, int(num_channels))
        self.lock = threading.Lock()
        self.streaming = False
        self.samples_decoded = 0
        self.samples_discarded_inactive = 0
        self.samples_lost_disconnected = 0
        self.sink_errors = 0
        self._on_chunks = on_chunks
        self._on_imu = on_imu
        self._on_event = on_event or (lambda level, msg: None)
        self._clock_fn = clock_fn
        self._last_stamp_ns = -(1 << 62)
        self._last_imu_ns = -(1 << 62)
        self._time_origin: float | None = None  # first device timestamp (text time column)
        self._last_arrival: float | None = None
        self._lost = False

    # --- control --------------------------------------------------------------------

    def set_streaming(self, on: bool) -> None:
        with self.lock:
            self.streaming = bool(on)
            if not on:
                self.chunker.flush()  # paused: held samples are not published

    @property
    def lost(self) -> bool:
        return self._lost

    def interrupted(self) -> None:
        """The device went away: publish what is held, then treat the time until samples
        return as a gap."""
        with self.lock:
            self._emit(self.chunker.flush())
            self._lost = True

    def idle(self, now_s: float) -> None:
        """Nothing arrived for a while: a stream that paused must not hold samples back."""
        if self.chunker.pending and self._last_arrival is not None and (
                now_s - self._last_arrival > self.idle_flush_s):
            with self.lock:
                self._emit(self.chunker.flush())

    def samples_until_chunk(self) -> int:
        """Samples still needed to complete the current chunk."""
        return self.chunk_len - self.chunker.pending

    # --- data -----------------------------------------------------------------------

    def push(self, values: np.ndarray, arrival_s: float | np.ndarray,
             counters: np.ndarray | None = None, modulus: int = 0,
             device_times_s: np.ndarray | None = None,
             imu: list[ImuReading] | None = None) -> None:
        """Samples ``values`` (n, C) [V] that arrived by ``arrival_s`` (one time for the
        batch, or (n,) per-sample times such as BrainFlow's), with device ``counters``
        (wrapping at ``modulus``) or device timestamps, and the IMU readings decoded with
        them (``ImuReading.sample`` = position in ``values``)."""
        n = len(values)
        with self.lock:
            arrivals = np.asarray(arrival_s, dtype=np.float64)
            last_arrival = float(arrivals.max()) if arrivals.ndim else float(arrivals)
            self._last_arrival = last_arrival
            if n == 0:
                return
            if counters is None and device_times_s is not None:
                if self._time_origin is None:
                    self._time_origin = float(device_times_s[0])
                counters = counters_from_times(device_times_s, self.rate_hz, self._time_origin)
                modulus = 0
            if self._lost:
                first = float(arrivals[0]) if arrivals.ndim else last_arrival - (n - 1) / \
                    self.rate_hz
                self._resume_after_loss(first)
            keep, idx = self.indexer.assign(n, counters, modulus)
            if len(idx) == 0:
                return
            self.samples_decoded += len(idx)
            if arrivals.ndim:
                kept = arrivals[keep]
                for i, t in zip(idx.tolist(), kept.tolist(), strict=True):
                    self.clock.observe(i, t)
            else:
                self.clock.observe(int(idx[-1]), last_arrival)
            if imu:
                self._stamp_imu(imu, keep, idx)
            if not self.streaming:
                self.samples_discarded_inactive += len(idx)
                return
            kept_values = values if keep.all() else values[keep]
            self._emit(self.chunker.push(idx, kept_values))
            if imu and self._on_imu is not None:
                try:
                    self._on_imu(imu)
                except Exception as exc:  # a failing sink must not stop the reader
                    self._sink_failed(exc)

    def _stamp_imu(self, imu: list[ImuReading], keep: np.ndarray, idx: np.ndarray) -> None:
        # index of each batch position's sample (dropped positions: the kept one before)
        positions = np.flatnonzero(keep)
        for reading in imu:
            k = int(np.searchsorted(positions, reading.sample, side="right")) - 1
            index = int(idx[k]) if k >= 0 else int(idx[0]) - 1
            stamp = int(round(float(self.clock.time_of(max(index, 0))) * 1e9))
            reading.stamp_ns = max(stamp, self._last_imu_ns + 1000)
            self._last_imu_ns = reading.stamp_ns

    def _resume_after_loss(self, first_new_s: float) -> None:
        """First data after a loss: mark the time without samples as a gap."""
        self._lost = False
        self._time_origin = None
        skip = 0
        if self.clock.anchored:
            expected = self.clock.time_of(self.indexer.next_index)
            skip = max(0, int(round((first_new_s - expected) * self.rate_hz)))
        self.samples_lost_disconnected += skip
        self.indexer.restart(skip)
        self.clock.reset()

    def _emit(self, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        for chunk in chunks:
            stamp = float(self.clock.time_of(chunk.first_index)) if self.clock.anchored \
                else self._clock_fn()
            # stamps strictly increase even while the clock model settles
            stamp_ns = max(int(round(stamp * 1e9)), self._last_stamp_ns + 1000)
            self._last_stamp_ns = stamp_ns
            chunk.stamp_ns = stamp_ns
        try:
            self._on_chunks(chunks)
        except Exception as exc:  # a failing sink must not stop the reader
            self._sink_failed(exc)

    def _sink_failed(self, exc: Exception) -> None:
        self.sink_errors += 1
        if self.sink_errors == 1:
            self._on_event("error", f"publishing failed: {exc!r}")

    # --- status ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "dropped_samples": self.indexer.stats.dropped_samples,
            "duplicate_samples": self.indexer.stats.duplicate_samples,
            "counter_resets": self.indexer.stats.counter_resets,
            "samples_lost_disconnected": self.samples_lost_disconnected,
            "pending_samples": self.chunker.pending,
            "clock_drift_ppm": round(self.clock.drift_ppm, 1),
        }


__all__ = ["ChunkSink", "EventSink", "ImuSink", "SamplePipeline"]
