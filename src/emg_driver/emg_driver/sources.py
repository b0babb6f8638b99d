"""The driver's three sources, as plain Python objects producing stamped :class:`Chunk`s.

* :class:`SimSource` and :class:`ReplaySource` are *pulled*: the node calls ``poll(now_ns)``
  from a timer and gets every chunk whose last sample is due by ``now_ns``. Their stamps
  come from the sample clock (``start time + index / rate``, exact to the nanosecond), not
  from timer jitter.
* :class:`SerialSource` *pushes*: its reader thread decodes bytes, assigns stream indices,
  stamps with the drift-corrected :class:`~emg_driver.clock.SampleClock` and hands the
  finished chunks to ``on_chunks`` on that same thread. The node publishes them there:
  rclpy publishers are thread-safe, and the hop through the executor (a guard condition per
  chunk) measured 6 % of a core at 100 chunks/s for nothing (see the README's benchmark).

No rclpy here; times are integer nanoseconds of the node's clock (the serial reader's
arrival times are float seconds of the same clock).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .clock import SampleClock, StreamIndexer, counters_from_times
from .protocols import BinaryConfig, Decoder, TextConfig, make_decoder
from .replay import Recording
from .sim import ArmbandSimulator
from .stream import Chunk, Chunker, channel_names_for
from .transport import SerialReader

# --- pulled sources -------------------------------------------------------------------


class _PacedSource:
    """Emits samples at ``rate_hz * speed`` of the caller's clock, in whole chunks."""

    def __init__(self, sample_rate_hz: float, chunk_len: int, speed: float = 1.0,
                 max_catch_up_s: float = 1.0) -> None:
        self.sample_rate_hz = float(sample_rate_hz)
        self.chunk_len = int(chunk_len)
        self.speed = float(speed)
        self.max_catch_up_s = float(max_catch_up_s)
        self.next_index = 0
        self._t0_ns: int | None = None  # clock time of stream index 0 (for this run)
        self.skipped_catch_up = 0  # times the caller fell so far behind we re-anchored

    @property
    def emit_rate_hz(self) -> float:
        return self.sample_rate_hz * self.speed

    def start(self, now_ns: int) -> None:
        """(Re)start pacing at ``now_ns``: the next sample is due now."""
        self._t0_ns = int(now_ns) - self._offset_ns(self.next_index)

    def stop(self) -> None:
        self._t0_ns = None

    @property
    def running(self) -> bool:
        return self._t0_ns is not None

    def _offset_ns(self, index: int) -> int:
        return int(round(index * 1e9 / self.emit_rate_hz))

    def stamp_of(self, index: int) -> int:
        """Clock time [ns] at which sample ``index`` is due."""
        assert self._t0_ns is not None
        return self._t0_ns + self._offset_ns(index)

    def due(self, now_ns: int) -> int:
        """Whole chunks' worth of samples due by ``now_ns``."""
        if self._t0_ns is None:
            return 0
        n = int(math.floor((now_ns - self._t0_ns) * 1e-9 * self.emit_rate_hz + 1e-9)) + 1 \
            - self.next_index
        if n > self.max_catch_up_s * self.emit_rate_hz:
            # the caller stalled for a long time: jump instead of bursting seconds of data
            self.skipped_catch_up += 1
            self.start(int(now_ns) - self._offset_ns(self.chunk_len - 1))
            n = self.chunk_len
        return max(0, n // self.chunk_len) * self.chunk_len


class SimSource(_PacedSource):
    """The simulated armband, in real time."""

    def __init__(self, simulator: ArmbandSimulator, chunk_len: int) -> None:
        super().__init__(simulator.sample_rate_hz, chunk_len)
        self.sim = simulator
        self.num_channels = simulator.num_channels
        self.channel_names = list(simulator.channel_names)
        self.has_reference = True

    def poll(self, now_ns: int) -> list[Chunk]:
        n = self.due(now_ns)
        chunks = []
        for _ in range(n // self.chunk_len):
            emg, q = self.sim.generate(self.chunk_len)
            first = self.next_index
            chunks.append(Chunk(first, emg, self.stamp_of(first), q))
            self.next_index += self.chunk_len
        return chunks


class ReplaySource(_PacedSource):
    """A recording played at its rate times ``speed``, optionally looping.

    The stream index keeps counting across loops (monotonic); ``finished`` turns true at the
    end when not looping.
    """

    def __init__(self, recording: Recording, chunk_len: int, speed: float = 1.0,
                 loop: bool = False) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"replay rate must be > 0, got {speed}")
        super().__init__(recording.sample_rate_hz, chunk_len, speed)
        self.rec = recording
        self.loop = bool(loop)
        self.num_channels = recording.num_channels
        self.channel_names = list(recording.channel_names)
        self.has_reference = recording.joint_angles is not None
        self.loops_completed = 0
        self._pos = 0  # row in the recording

    @property
    def finished(self) -> bool:
        return not self.loop and self._pos >= self.rec.num_samples

    def poll(self, now_ns: int) -> list[Chunk]:
        n = self.due(now_ns)
        if self.finished:
            return []
        chunks = []
        total = self.rec.num_samples
        while n > 0 and not self.finished:
            take = min(self.chunk_len, total - self._pos)
            sl = slice(self._pos, self._pos + take)
            joints = None if self.rec.joint_angles is None else self.rec.joint_angles[sl]
            first = self.next_index
            chunks.append(Chunk(first, self.rec.emg[sl], self.stamp_of(first), joints))
            self.next_index += take
            self._pos += take
            n -= take
            if self._pos >= total and self.loop:
                self._pos = 0
                self.loops_completed += 1
        return chunks


# --- serial ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SerialConfig:
    port: str = "/dev/ttyACM0"
    baud_rate: int = 115200
    protocol: str = "text"  # "text" or "binary"
    sample_rate_hz: float = 500.0
    chunk_len: int = 5
    text: TextConfig = TextConfig()
    binary: BinaryConfig = BinaryConfig()
    read_timeout_s: float = 0.02
    reconnect_max_s: float = 0.5

    @property
    def num_channels(self) -> int:
        return self.text.num_channels if self.protocol == "text" else self.binary.num_channels


class SerialSource:
    """Serial armband: reader thread -> decoder -> stream index -> clock -> chunks -> sink."""

    def __init__(self, config: SerialConfig, clock: Callable[[], float],
                 on_chunks: Callable[[list[Chunk]], None] = lambda chunks: None,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        self.config = config
        self.sample_rate_hz = float(config.sample_rate_hz)
        self.decoder: Decoder = make_decoder(config.protocol, config.text, config.binary)
        self.num_channels = self.decoder.num_channels
        self.channel_names = channel_names_for(self.num_channels)
        self.has_reference = False
        self.chunk_len = int(config.chunk_len)
        # a stream that stops must not hold its last samples back; short USB stalls must
        # not cut chunks short either
        self.idle_flush_s = max(4.0 * self.chunk_len / self.sample_rate_hz, 0.1)
        self.indexer = StreamIndexer(max_gap=int(max(10.0 * self.sample_rate_hz, 1000)))
        self.clock = SampleClock(self.sample_rate_hz)
        self.chunker = Chunker(self.chunk_len, self.num_channels)
        self.streaming = False
        self.samples_decoded = 0
        self.samples_discarded_inactive = 0
        self.samples_lost_disconnected = 0
        self.sink_errors = 0
        self._on_chunks = on_chunks
        self._on_event = on_event or (lambda level, msg: None)
        self._clock_fn = clock
        self._lock = threading.Lock()  # decoder/indexer/chunker state vs. stats readers
        self._last_stamp_ns = -(1 << 62)
        self._time_origin: float | None = None  # first device timestamp (text time column)
        self._last_data_arrival: float | None = None
        self._lost = False
        self.reader = SerialReader(
            config.port, config.baud_rate, self._on_data, clock=clock, on_event=self._on_event,
            on_idle=self._on_idle, on_disconnect=self._on_disconnect,
            read_delay=self.read_delay,
            read_timeout_s=config.read_timeout_s, backoff_max_s=config.reconnect_max_s)

    # --- control (executor thread) ---------------------------------------------------

    def open(self) -> str:
        """Try to open the port now; "" or the error (the reader keeps retrying)."""
        return self.reader.try_open()

    def start(self) -> None:
        self.reader.start()

    def close(self) -> None:
        """Stop the reader thread (no callback runs after this returns) and close the port."""
        self.reader.stop()

    def set_streaming(self, on: bool) -> None:
        with self._lock:
            self.streaming = bool(on)
            if not on:
                self.chunker.flush()  # paused: held samples are not published

    # --- reader thread ---------------------------------------------------------------

    READ_MARGIN_S = 0.003

    def read_delay(self) -> float:
        """How long the reader may wait before its next read without delaying a chunk: the
        time until the current chunk can complete at the nominal rate, less a margin.

        Reading only when a chunk can complete halves the reads of a steady stream (and
        their CPU); the completing sample still finds the reader waiting in ``select``."""
        if not self.streaming or self._lost:
            return 0.0
        remaining = self.chunk_len - self.chunker.pending
        return max(0.0, remaining / self.sample_rate_hz - self.READ_MARGIN_S)

    def _on_disconnect(self) -> None:
        with self._lock:
            self._emit(self.chunker.flush())
            self.decoder.reset()
            self._lost = True

    def _on_idle(self, now_s: float) -> None:
        # a stream that paused must not hold its last samples back
        if self.chunker.pending and self._last_data_arrival is not None and (
                now_s - self._last_data_arrival > self.idle_flush_s):
            with self._lock:
                self._emit(self.chunker.flush())

    def _on_data(self, data: bytes, arrival_s: float) -> None:
        with self._lock:
            self._last_data_arrival = arrival_s
            batch = self.decoder.feed(data)
            n = len(batch)
            if n == 0:
                return
            counters = batch.counters
            modulus = batch.counter_modulus
            if counters is None and batch.device_times_s is not None:
                if self._time_origin is None:
                    self._time_origin = float(batch.device_times_s[0])
                counters = counters_from_times(batch.device_times_s, self.sample_rate_hz,
                                               self._time_origin)
                modulus = 0
            if self._lost:
                self._resume_after_loss(arrival_s, n)
            keep, idx = self.indexer.assign(n, counters, modulus)
            values = batch.values if keep.all() else batch.values[keep]
            if len(idx) == 0:
                return
            self.samples_decoded += len(idx)
            self.clock.observe(int(idx[-1]), arrival_s)
            if not self.streaming:
                self.samples_discarded_inactive += len(idx)
                return
            self._emit(self.chunker.push(idx, values))

    def _resume_after_loss(self, arrival_s: float, n_new: int) -> None:
        """First data after a reconnect: mark the time without samples as a gap."""
        self._lost = False
        self._time_origin = None
        skip = 0
        if self.clock.anchored:
            expected = self.clock.time_of(self.indexer.next_index)
            first_new = arrival_s - (n_new - 1) / self.sample_rate_hz
            skip = max(0, int(round((first_new - expected) * self.sample_rate_hz)))
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
            self.sink_errors += 1
            if self.sink_errors == 1:
                self._on_event("error", f"publishing a chunk failed: {exc!r}")

    # --- status ----------------------------------------------------------------------

    def status(self) -> dict[str, float | int | str | bool]:
        """Counters for /diagnostics (read from any thread)."""
        d = self.decoder.stats.as_dict()
        d.update({
            "connected": self.reader.connected,
            "port": self.config.port,
            "reconnects": self.reader.stats.reconnects,
            "disconnects": self.reader.stats.disconnects,
            "open_failures": self.reader.stats.open_failures,
            "last_error": self.reader.last_error,
            "dropped_samples": self.indexer.stats.dropped_samples,
            "duplicate_samples": self.indexer.stats.duplicate_samples,
            "counter_resets": self.indexer.stats.counter_resets,
            "samples_lost_disconnected": self.samples_lost_disconnected,
            "queue_depth_bytes": self.reader.bytes_waiting(),
            "pending_samples": self.chunker.pending,
            "clock_drift_ppm": round(self.clock.drift_ppm, 1),
        })
        return d


__all__ = ["ReplaySource", "SerialConfig", "SerialSource", "SimSource"]
