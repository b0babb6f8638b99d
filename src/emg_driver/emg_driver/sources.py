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

from .pipeline import ChunkSink, EventSink, ImuSink, SamplePipeline
from .protocols import BinaryConfig, DecoderDevice, SerialDevice, TextConfig, make_decoder
from .sim import ArmbandSimulator
from .stream import Chunk
from .transport import SerialReader


class Source:
    """What the node needs of an EMG source (defaults: a pulled source with no extras).

    Attributes every source sets: ``kind`` (its ``source`` parameter value),
    ``sample_rate_hz`` (nominal), ``num_channels``, ``channel_names``, ``chunk_len``
    (samples per published chunk), ``has_reference`` (it knows the true pose: the node
    publishes ``hand/reference/joint_states``), ``follows_prompts`` (it acts on guided
    calibration prompts: the node subscribes ``calibration/prompt``), ``has_imu`` (IMU
    readings arrive through ``on_imu``: the node publishes ``imu/raw``), ``pushes`` (chunks
    arrive through a callback, not ``poll``).
    """

    kind = ""
    pushes = False
    has_reference = False
    follows_prompts = False
    has_imu = False
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
    protocol: str = "text"  # "text" or "binary" (devices with a protocol of their own: kind)
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


def grown_counters(values: dict[str, Any], reported: dict[str, int]) -> list[str]:
    """The watched error counters of ``values`` that grew since ``reported`` (updated)."""
    new = []
    for key in SERIAL_WATCHED:
        now = int(values.get(key, 0))
        grown = now - reported.get(key, 0)
        reported[key] = now
        if grown > 0:
            new.append(f"{grown} new {key.replace('_', ' ')}")
    return new


class SerialSource(Source):
    """Serial armband: reader thread -> device (decoder, commands) -> stream index -> clock
    -> chunks -> sink.

    ``device`` is what sits behind the port (:class:`~emg_driver.protocols.SerialDevice`):
    by default a plain decoder of ``config.protocol``; an OpenBCI Cyton or a Myo's BLED112
    dongle is a device that is also talked to (handshake, start/stop, reconnect).
    """

    kind = "serial"
    pushes = True

    def __init__(self, config: SerialConfig, clock: Callable[[], float],
                 on_chunks: ChunkSink = lambda chunks: None,
                 on_event: EventSink | None = None, device: SerialDevice | None = None,
                 on_imu: ImuSink | None = None) -> None:
        self.config = config
        self.device = device or DecoderDevice(
            make_decoder(config.protocol, config.text, config.binary), config.sample_rate_hz)
        self.kind = self.device.kind
        self.has_imu = self.device.has_imu and on_imu is not None
        self.follows_prompts = self.device.follows_prompts
        self.sample_rate_hz = float(self.device.sample_rate_hz)
        self.num_channels = self.device.num_channels
        self.channel_names = list(getattr(self.device, "channel_names", None)
                                  or default_channel_names(self.num_channels))
        self.chunk_len = int(config.chunk_len)
        self._on_event = on_event or (lambda level, msg: None)
        self.pipeline = SamplePipeline(self.sample_rate_hz, self.chunk_len, self.num_channels,
                                       on_chunks, clock, self._on_event,
                                       on_imu if self.has_imu else None)
        self._reported: dict[str, int] = {}  # watched counters at the last health() call
        self.reader = SerialReader(
            config.port, config.baud_rate, self._on_data, clock=clock, on_event=self._on_event,
            on_idle=self._on_idle, on_connect=self._on_connect,
            on_disconnect=self._on_disconnect, read_delay=self.read_delay,
            read_timeout_s=config.read_timeout_s, backoff_max_s=config.reconnect_max_s,
            stale_timeout_s=config.stale_timeout_s)
        self._clock_fn = clock

    @property
    def decoder(self):
        """The device's decoder statistics holder (text / binary: the decoder itself)."""
        return getattr(self.device, "decoder", self.device)

    @property
    def hardware_id(self) -> str:
        return self.config.port

    def describe(self) -> str:
        what = self.device.describe() or f"{self.config.protocol} protocol"
        return (f"{super().describe()}, {what} on {self.config.port} at "
                f"{self.config.baud_rate} baud")

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
        """Leave the device clean (a Myo: disconnected), stop the reader thread (no callback
        runs after this returns) and close the port."""
        with self.pipeline.lock:
            self.device.closing(self.reader.write)
        self.reader.stop()

    def follow_prompt(self, pose: str) -> None:
        with self.pipeline.lock:
            self.device.follow_prompt(pose, self.reader.write)

    def _set_streaming(self, on: bool) -> None:
        self.pipeline.set_streaming(on)
        with self.pipeline.lock:
            self.device.set_streaming(on, self.reader.write)

    # --- reader thread ---------------------------------------------------------------

    READ_MARGIN_S = 0.003

    def read_delay(self) -> float:
        """How long the reader may wait before its next read without delaying a chunk: the
        time until the sample before the one that completes the current chunk is due at the
        nominal rate, less a margin.

        Reading only when a chunk can complete halves the reads of a steady stream (and
        their CPU); the completing sample still finds the reader waiting in ``select``,
        even at low rates (250 Hz: a sample every 4 ms, more than the margin) and when the
        last read came late after its sample."""
        if not self.pipeline.streaming or self.pipeline.lost:
            return 0.0
        remaining = self.pipeline.samples_until_chunk()
        return max(0.0, (remaining - 1) / self.sample_rate_hz - self.READ_MARGIN_S)

    def _on_connect(self, first: bool) -> None:
        with self.pipeline.lock:
            self.device.connected(self.reader.write, self._clock_fn())

    def _on_disconnect(self) -> None:
        self.pipeline.interrupted()
        with self.pipeline.lock:
            self.device.reset()

    def _on_idle(self, now_s: float) -> None:
        with self.pipeline.lock:
            self.device.tick(now_s, self.reader.write)
        self._check_link()
        self.pipeline.idle(now_s)

    def _check_link(self) -> None:
        if self.device.link_lost:
            self.device.link_lost = False
            self.pipeline.interrupted()

    def _on_data(self, data: bytes, arrival_s: float) -> None:
        with self.pipeline.lock:
            batch = self.device.feed(data, arrival_s)
            self.device.tick(arrival_s, self.reader.write)
        # samples decoded before a link loss in the same read belong to the old link
        self.pipeline.push(batch.values, arrival_s, batch.counters, batch.counter_modulus,
                           batch.device_times_s, batch.imu)
        self._check_link()

    # --- status ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counters for /diagnostics (read from any thread)."""
        d: dict[str, Any] = dict(self.device.stats.as_dict())
        d.update({
            "connected": self.reader.connected,
            "port": self.config.port,
            "reconnects": self.reader.stats.reconnects,
            "disconnects": self.reader.stats.disconnects,
            "open_failures": self.reader.stats.open_failures,
            "stale_reopens": self.reader.stats.stale_reopens,
            "last_error": self.reader.last_error,
            "queue_depth_bytes": self.reader.bytes_waiting(),
            **self.pipeline.status(),
            **self.device.status(),
        })
        return d

    def health(self, active: bool) -> tuple[str, str] | None:
        """Disconnected, or a port that sends nothing since it was reopened (stale): an
        error; the device's own complaint; counters grown since the last call: a warning
        (errors that keep growing keep warning)."""
        new = grown_counters(self.status(), self._reported)
        if self.reader.stale:
            return "error", self.reader.last_error
        if not self.reader.connected:
            return "error", self.reader.last_error or f"serial port {self.config.port} lost"
        device = self.device.health()
        if device is not None and device[0] != "ok":
            return device
        if new and active:
            return "warn", "; ".join(new)
        return "ok", device[1] if device is not None else "connected"


# --- live libraries (BrainFlow, LSL) ---------------------------------------------------


class LibrarySource(Source):
    """A device read through a vendor library on a thread of its own.

    Subclasses implement ``_connect()`` (raise with the reason), ``_read(now_s) -> int``
    (samples pushed into ``self.pipeline``) and ``_disconnect()``. The thread reads every
    ``poll_s``; when nothing arrives for ``stall_timeout_s`` it reports the stall,
    disconnects and reconnects with a backoff (0.05 s doubling to ``reconnect_max_s``), and
    the time without samples becomes a gap in the stream index.
    """

    pushes = True

    def __init__(self, sample_rate_hz: float, num_channels: int, chunk_len: int,
                 clock: Callable[[], float], on_chunks: ChunkSink, on_event: EventSink,
                 stall_timeout_s: float = 2.0, reconnect_max_s: float = 0.5,
                 poll_s: float = 0.002) -> None:
        self.sample_rate_hz = float(sample_rate_hz)
        self.num_channels = int(num_channels)
        self.chunk_len = int(chunk_len)
        self.channel_names = list(default_channel_names(self.num_channels))
        self.stall_timeout_s = float(stall_timeout_s)
        self.reconnect_max_s = float(reconnect_max_s)
        self.poll_s = float(poll_s)
        self._clock = clock
        self._on_event = on_event
        self.pipeline = SamplePipeline(self.sample_rate_hz, self.chunk_len, self.num_channels,
                                       on_chunks, clock, on_event)
        self.connected = False
        self.last_error = ""
        self.open_failures = 0
        self.reconnects = 0
        self.stalls = 0
        self._reported: dict[str, int] = {}
        self._ever_connected = False
        self._last_data = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _connect(self) -> None:
        raise NotImplementedError

    def _read(self, now_s: float) -> int:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def open(self) -> str:
        problem = self._try_connect()
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}_reader",
                                        daemon=True)
        self._thread.start()
        return problem

    def start(self, now_ns: int) -> None:
        self.pipeline.set_streaming(True)

    def stop(self) -> None:
        self.pipeline.set_streaming(False)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self.connected:
            self._safely(self._disconnect)
            self.connected = False

    def _safely(self, fn) -> str:
        try:
            fn()
        except Exception as exc:  # the library's own errors: reported, never fatal
            return f"{type(exc).__name__}: {exc}"
        return ""

    def _try_connect(self) -> str:
        problem = self._safely(self._connect)
        if problem:
            self.open_failures += 1
            if problem != self.last_error:
                self._on_event("error", f"{self.kind}: {problem}; retrying")
            self.last_error = problem
            return problem
        if self._ever_connected:
            self.reconnects += 1
            self._on_event("info", f"{self.kind}: streaming again")
        self._ever_connected = True
        self.connected = True
        self.last_error = ""
        self._last_data = self._clock()
        return ""

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            if not self.connected:
                if self._try_connect():
                    self._stop.wait(backoff)
                    backoff = min(2 * backoff, self.reconnect_max_s)
                    continue
                backoff = 0.05
            now = self._clock()
            problem = ""
            try:
                got = self._read(now)
            except Exception as exc:  # a lost stream (LSL LostError), a library error
                got, problem = 0, f"{type(exc).__name__}: {exc}"
            if got:
                self._last_data = now
            elif not problem and now - self._last_data > self.stall_timeout_s:
                problem = f"no samples for {now - self._last_data:.1f} s"
            if problem:
                self.stalls += 1
                self.last_error = problem
                self._on_event("warn", f"{self.kind}: {problem}; reconnecting")
                self._safely(self._disconnect)
                self.connected = False
                self.pipeline.interrupted()
                continue
            if not got:
                self.pipeline.idle(now)
            self._stop.wait(self.poll_s)

    def status(self) -> dict[str, Any]:
        return {"connected": self.connected, "last_error": self.last_error,
                "reconnects": self.reconnects, "open_failures": self.open_failures,
                "stalls": self.stalls, "samples_decoded": self.pipeline.samples_decoded,
                **self.pipeline.status()}

    def health(self, active: bool) -> tuple[str, str] | None:
        """Lost: an error; dropped samples since the last call: a warning."""
        new = grown_counters(self.pipeline.status(), self._reported)
        if not self.connected:
            return "error", self.last_error or f"{self.kind} not connected"
        if new and active:
            return "warn", "; ".join(new)
        return "ok", "connected"


# --- the one place that picks a source -----------------------------------------------------


def make_source(settings, *, arrival_clock: Callable[[], float], on_chunks: ChunkSink,
                on_event: EventSink, on_imu: ImuSink | None = None) -> Source:
    """The source the settings (:class:`~emg_driver.params.DriverSettings`) ask for, with
    the channel names it asks for. Raises ValueError / DataError with the reason."""
    v = settings.values
    src: Source
    imu_sink = on_imu if v["publish_imu"] else None
    serial_kw = dict(port=v["port"], baud_rate=v["baud_rate"], read_timeout_s=v["timeout_s"],
                     reconnect_max_s=v["reconnect_max_s"], stale_timeout_s=v["stale_timeout_s"])
    if settings.source == "sim":
        src = SimSource(ArmbandSimulator(settings.sim_config(), seed=v["seed"]),
                        settings.chunk_len())
        src.follows_prompts = v["follow_prompts"]
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
        cfg = SerialConfig(protocol=v["protocol"], sample_rate_hz=settings.sample_rate_hz,
                           chunk_len=settings.chunk_len(), text=settings.text_config(),
                           binary=settings.binary_config(), **serial_kw)
        src = SerialSource(cfg, clock=arrival_clock, on_chunks=on_chunks, on_event=on_event)
    elif settings.source in ("cyton", "myo"):
        device: SerialDevice
        if settings.source == "cyton":
            from .openbci import CytonDevice

            device = CytonDevice(settings.cyton_config())
        else:
            from .myo import MyoDevice

            device = MyoDevice(v["myo_address"], imu=imu_sink is not None,
                               vibrate_on_prompt=v["vibrate_on_prompt"])
        cfg = SerialConfig(sample_rate_hz=device.sample_rate_hz,
                           chunk_len=settings.chunk_len(device.sample_rate_hz), **serial_kw)
        src = SerialSource(cfg, clock=arrival_clock, on_chunks=on_chunks, on_event=on_event,
                           device=device, on_imu=imu_sink)
    elif settings.source == "brainflow":
        from .brainflow_source import BrainFlowSource

        params = {"serial_port": v["brainflow_serial_port"],
                  "mac_address": v["brainflow_mac_address"],
                  "ip_address": v["brainflow_ip_address"], "ip_port": v["brainflow_ip_port"],
                  "serial_number": v["brainflow_serial_number"],
                  "other_info": v["brainflow_other_info"], "timeout": v["brainflow_timeout_s"]}
        src = BrainFlowSource(v["brainflow_board"], params, v["brainflow_channels"],
                              settings.chunk_ms, arrival_clock, on_chunks, on_event,
                              stall_timeout_s=v["stall_timeout_s"],
                              reconnect_max_s=v["reconnect_max_s"])
    elif settings.source == "lsl":
        from .lsl_source import LslSource

        src = LslSource(v["lsl_name"], v["lsl_type"], v["lsl_source_id"],
                        v["lsl_resolve_timeout_s"], v["scale_v_per_unit"], settings.chunk_ms,
                        arrival_clock, on_chunks, on_event,
                        stall_timeout_s=v["stall_timeout_s"], reconnect_max_s=v["reconnect_max_s"])
    else:
        raise ValueError(f"unknown source {settings.source!r}")
    if settings.channel_names:
        if len(settings.channel_names) != src.num_channels:
            raise ValueError(f"channel_names has {len(settings.channel_names)} names but the "
                             f"source has {src.num_channels} channels")
        src.channel_names = list(settings.channel_names)
    return src


__all__ = ["LibrarySource", "PacedSource", "ReplaySource", "SerialConfig", "SerialSource",
           "SimSource", "Source", "make_source"]
