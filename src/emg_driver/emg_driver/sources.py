"""The driver's sources behind one interface, :class:`Source` (plain Python, no rclpy).

The node only talks to a :class:`Source`: it opens it at configure, starts and stops it at
activate / deactivate, polls it from a timer (pulled sources) or receives its chunks on the
source's own thread (pushed sources), publishes ``status()`` and ``health()`` on
/diagnostics and closes it at cleanup. Which source runs is decided once, by
:func:`make_source`.

* :class:`SimSource` and :class:`ReplaySource` are *pulled*: ``poll(now_ns)`` returns every
  chunk whose last sample is due by ``now_ns``. Their stamps come from the sample clock
  (``start time + index / rate``, exact to the nanosecond), not from timer jitter.
* :class:`SerialSource` *pushes*: its reader thread decodes bytes, assigns stream indices,
  stamps with the drift-corrected :class:`~emg_driver.clock.SampleClock` and hands the
  finished chunks to ``on_chunks`` on that same thread. The node publishes them there:
  rclpy publishers are thread-safe, and the hop through the executor (a guard condition per
  chunk) measured 6 % of a core at 100 chunks/s for nothing (see the README's benchmark).

Times are integer nanoseconds of the node's clock (the serial reader's arrival times are
float seconds of the same clock).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from emg_hand_core.recordings import Recording, default_channel_names, load_recording

from .clock import SampleClock, StreamIndexer, counters_from_times
from .protocols import BinaryConfig, Decoder, TextConfig, make_decoder
from .sim import ArmbandSimulator
from .stream import Chunk, Chunker
from .transport import SerialReader

ChunkSink = Callable[[list[Chunk]], None]
EventSink = Callable[[str, str], None]  # (level "info" | "warn" | "error", message)


class Source:
    """What the node needs of an EMG source (defaults: a pulled source with no extras).

    Attributes every source sets: ``kind`` (its ``source`` parameter value),
    ``sample_rate_hz`` (nominal), ``num_channels``, ``channel_names``, ``chunk_len``
    (samples per published chunk), ``has_reference`` (it knows the true pose: the node
    publishes ``hand/reference/joint_states``), ``follows_prompts`` (it can act on guided
    calibration prompts), ``pushes`` (chunks arrive through a callback, not ``poll``).
    """

    kind = ""
    pushes = False
    has_reference = False
    follows_prompts = False
    sample_rate_hz: float
    num_channels: int
    channel_names: list[str]
    chunk_len: int

    @property
    def emit_rate_hz(self) -> float:
        """Samples per second of the node's clock this source emits."""
        return self.sample_rate_hz

    @property
    def finished(self) -> bool:
        """True once a finite source has emitted everything."""
        return False

    @property
    def expected_rate_hz(self) -> float:
        """The rate /diagnostics compares the measured rate with (0: none expected)."""
        return 0.0 if self.finished else self.emit_rate_hz

    @property
    def hardware_id(self) -> str:
        return self.kind

    def describe(self) -> str:
        """One line for the log at configure."""
        return (f"source={self.kind} {self.num_channels} ch at {self.sample_rate_hz:g} Hz, "
                f"{self.chunk_len} samples per chunk")

    def open(self) -> str:
        """Acquire the device (configure); "" or the problem (the source keeps retrying)."""
        return ""

    def start(self, now_ns: int) -> None:
        """Begin streaming (activate)."""

    def stop(self) -> None:
        """Pause streaming (deactivate); held samples are not published."""

    def poll(self, now_ns: int) -> list[Chunk]:
        """Chunks due by ``now_ns`` (pulled sources)."""
        return []

    def close(self) -> None:
        """Release the device (cleanup, shutdown); no callback runs after this returns."""

    def status(self) -> dict[str, Any]:
        """Key/values for /diagnostics."""
        return {}

    def health(self, active: bool) -> tuple[str, str] | None:
        """("error" | "warn", message) when something is wrong, ("ok", note) to add a note
        to the state, or None."""
        return None

    def follow_prompt(self, pose: str) -> None:
        """Hold ``pose`` ("" = free motion); sources with ``follows_prompts`` only."""


# --- pulled sources -------------------------------------------------------------------


class PacedSource(Source):
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

    def status(self) -> dict[str, Any]:
        return {"pacing_restarts": self.skipped_catch_up}


class SimSource(PacedSource):
    """The simulated armband, in real time."""

    kind = "sim"
    has_reference = True
    follows_prompts = True

    def __init__(self, simulator: ArmbandSimulator, chunk_len: int) -> None:
        super().__init__(simulator.sample_rate_hz, chunk_len)
        self.sim = simulator
        self.num_channels = simulator.num_channels
        self.channel_names = list(simulator.channel_names)

    @property
    def hardware_id(self) -> str:
        return "simulated armband"

    def poll(self, now_ns: int) -> list[Chunk]:
        n = self.due(now_ns)
        chunks = []
        for _ in range(n // self.chunk_len):
            emg, q = self.sim.generate(self.chunk_len)
            first = self.next_index
            chunks.append(Chunk(first, emg, self.stamp_of(first), q))
            self.next_index += self.chunk_len
        return chunks

    def follow_prompt(self, pose: str) -> None:
        if pose:
            self.sim.command_pose(pose)  # ValueError for an unknown pose
        else:
            self.sim.release_pose()


class ReplaySource(PacedSource):
    """A recording (any format of ``emg_hand_core.recordings``) played at its rate times
    ``speed``, optionally looping.

    The stream index keeps counting across loops (monotonic): row r of pass L has index
    ``L * N + r``. Rows the reader marked as unreadable EMG (``emg_valid`` False: NaN in
    the file, a line that did not parse, a gap in a bag) are not published: their indices
    are a gap, as dropped samples of a live stream are. A chunk carries the reference pose
    only when its last sample is labelled. ``finished`` turns true at the end when not
    looping.
    """

    kind = "replay"

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
        self._valid = recording.valid_emg()
        self._labelled = recording.valid_labels()
        self.loops_completed = 0
        self.rows_skipped = 0  # unreadable rows not published (all passes)
        self._pos = 0  # row in the recording

    @property
    def finished(self) -> bool:
        return not self.loop and self._pos >= self.rec.num_samples

    @property
    def hardware_id(self) -> str:
        return self.rec.source

    def describe(self) -> str:
        rec = self.rec
        extra = ", with joint angles" if self.has_reference else ""
        return (f"replaying {rec.source} ({rec.format}, {rec.num_channels} ch, "
                f"{rec.sample_rate_hz:.2f} Hz, {rec.duration_s:.1f} s{extra}; EMG "
                f"{rec.units_note}), {self.chunk_len} samples per chunk at {self.speed:g}x")

    def poll(self, now_ns: int) -> list[Chunk]:
        n = self.due(now_ns)
        chunks: list[Chunk] = []
        total = self.rec.num_samples
        while n > 0 and not self.finished:
            take = min(self.chunk_len, total - self._pos)
            first = self.next_index
            self._emit_rows(self._pos, take, first, chunks)
            self.next_index += take
            self._pos += take
            n -= take
            if self._pos >= total and self.loop:
                self._pos = 0
                self.loops_completed += 1
        return chunks

    def _emit_rows(self, pos: int, take: int, first: int, out: list[Chunk]) -> None:
        valid = self._valid[pos:pos + take]
        if valid.all():
            runs = [(0, take)]
        else:
            self.rows_skipped += int((~valid).sum())
            edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(np.int8), [0]])))
            runs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
        joints = self.rec.joint_angles
        for a, b in runs:
            rows = slice(pos + a, pos + b)
            q = None
            if joints is not None and self._labelled[pos + b - 1]:
                q = joints[rows].astype(np.float32)
            out.append(Chunk(first + a, self.rec.emg[rows], self.stamp_of(first + a), q))

    def status(self) -> dict[str, Any]:
        return {**super().status(), "replay_loops": self.loops_completed,
                "replay_finished": self.finished, "replay_speed": self.speed,
                "replay_format": self.rec.format, "replay_rows_skipped": self.rows_skipped}


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
    stale_timeout_s: float = 3.0

    @property
    def num_channels(self) -> int:
        return self.text.num_channels if self.protocol == "text" else self.binary.num_channels


# counters whose growth since the last report is a warning on /diagnostics
SERIAL_WATCHED = ("parse_errors", "column_errors", "nonfinite_values", "overlong_lines",
                  "crc_errors", "header_errors", "dropped_samples")


class SerialSource(Source):
    """Serial armband: reader thread -> decoder -> stream index -> clock -> chunks -> sink."""

    kind = "serial"
    pushes = True

    def __init__(self, config: SerialConfig, clock: Callable[[], float],
                 on_chunks: ChunkSink = lambda chunks: None,
                 on_event: EventSink | None = None) -> None:
        self.config = config
        self.sample_rate_hz = float(config.sample_rate_hz)
        self.decoder: Decoder = make_decoder(config.protocol, config.text, config.binary)
        self.num_channels = self.decoder.num_channels
        self.channel_names = list(default_channel_names(self.num_channels))
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
        self._reported: dict[str, int] = {}  # watched counters at the last health() call
        self.reader = SerialReader(
            config.port, config.baud_rate, self._on_data, clock=clock, on_event=self._on_event,
            on_idle=self._on_idle, on_disconnect=self._on_disconnect,
            read_delay=self.read_delay,
            read_timeout_s=config.read_timeout_s, backoff_max_s=config.reconnect_max_s,
            stale_timeout_s=config.stale_timeout_s)

    @property
    def hardware_id(self) -> str:
        return self.config.port

    def describe(self) -> str:
        return (f"{super().describe()}, {self.config.protocol} protocol on {self.config.port} "
                f"at {self.config.baud_rate} baud")

    # --- control (executor thread) ---------------------------------------------------

    def open(self) -> str:
        """Try to open the port now and start the reader thread (which keeps retrying);
        "" or the error."""
        problem = self.reader.try_open()
        self.reader.start()
        return problem

    def start(self, now_ns: int) -> None:
        self._set_streaming(True)

    def stop(self) -> None:
        self._set_streaming(False)

    def close(self) -> None:
        """Stop the reader thread (no callback runs after this returns) and close the port."""
        self.reader.stop()

    def _set_streaming(self, on: bool) -> None:
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

    def status(self) -> dict[str, Any]:
        """Counters for /diagnostics (read from any thread)."""
        d: dict[str, Any] = dict(self.decoder.stats.as_dict())
        d.update({
            "connected": self.reader.connected,
            "port": self.config.port,
            "reconnects": self.reader.stats.reconnects,
            "disconnects": self.reader.stats.disconnects,
            "open_failures": self.reader.stats.open_failures,
            "stale_reopens": self.reader.stats.stale_reopens,
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

    def health(self, active: bool) -> tuple[str, str] | None:
        """Disconnected, or a port that sends nothing since it was reopened (stale): an
        error; counters grown since the last call: a warning (errors that keep growing keep
        warning)."""
        values = self.status()
        new = []
        for key in SERIAL_WATCHED:
            now = int(values.get(key, 0))
            grown = now - self._reported.get(key, 0)
            self._reported[key] = now
            if grown > 0:
                new.append(f"{grown} new {key.replace('_', ' ')}")
        if self.reader.stale:
            return "error", self.reader.last_error
        if not self.reader.connected:
            return "error", self.reader.last_error or f"serial port {self.config.port} lost"
        if new and active:
            return "warn", "; ".join(new)
        return "ok", "connected"


# --- the one place that picks a source -----------------------------------------------------


def make_source(settings, *, arrival_clock: Callable[[], float], on_chunks: ChunkSink,
                on_event: EventSink) -> Source:
    """The source the settings (:class:`~emg_driver.params.DriverSettings`) ask for, with
    the channel names it asks for. Raises ValueError / DataError with the reason."""
    v = settings.values
    src: Source
    if settings.source == "sim":
        src = SimSource(ArmbandSimulator(settings.sim_config(), seed=v["seed"]),
                        settings.chunk_len())
    elif settings.source == "replay":
        rec = load_recording(v["file"], v["format"],
                             scale_v_per_unit=v["replay_scale_v_per_unit"] or None,
                             sample_rate_hz=v["replay_sample_rate_hz"] or None)
        src = ReplaySource(rec, settings.chunk_len(rec.sample_rate_hz), speed=v["rate"],
                           loop=v["loop"])
        # one report: the readers count a line that did not parse as a row without EMG too
        skipped = int(rec.meta.get("nonfinite_rows") or 0)
        bad_lines = rec.meta.get("bad_lines") or ""
        if skipped or bad_lines:
            on_event("warn", f"{rec.source}: {skipped} unreadable row{'s' * (skipped != 1)} "
                             "(NaN/inf EMG or a line that did not parse) replayed as dropped "
                             f"samples{'; ' + bad_lines if bad_lines else ''}")
    elif settings.source == "serial":
        cfg = SerialConfig(
            port=v["port"], baud_rate=v["baud_rate"], protocol=v["protocol"],
            sample_rate_hz=settings.sample_rate_hz, chunk_len=settings.chunk_len(),
            text=settings.text_config(), binary=settings.binary_config(),
            read_timeout_s=v["timeout_s"], reconnect_max_s=v["reconnect_max_s"],
            stale_timeout_s=v["stale_timeout_s"])
        src = SerialSource(cfg, clock=arrival_clock, on_chunks=on_chunks, on_event=on_event)
    else:
        raise ValueError(f"unknown source {settings.source!r}")
    if settings.channel_names:
        if len(settings.channel_names) != src.num_channels:
            raise ValueError(f"channel_names has {len(settings.channel_names)} names but the "
                             f"source has {src.num_channels} channels")
        src.channel_names = list(settings.channel_names)
    return src


__all__ = ["PacedSource", "ReplaySource", "SerialConfig", "SerialSource", "SimSource", "Source",
           "make_source"]
