"""Serial transport: a reader thread that survives unplugging (pyserial; no rclpy).

:class:`SerialReader` owns the port. Its thread opens the port, waits for bytes with
``select`` and reads whatever has arrived in one ``os.read`` (chunked reads: never a byte
at a time, never blocking an executor), and hands each chunk with its arrival time to a
callback. When the port disappears (USB unplug: EIO, hang-up, or a readable port that
returns no bytes) it closes it, reports once, and reopens with exponential backoff
(``backoff_min_s`` doubling to ``backoff_max_s``), so streaming resumes within about
``backoff_max_s`` of the port returning. A port that opens but sends no byte within
``stale_timeout_s`` (a stale device node left behind by an unplug, opened before the new
device appeared at the same path) is closed and reopened, and reported once. Every failure
to open is turned into one clear, actionable message (:func:`describe_open_error`).
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

STANDARD_BAUD_RATES: tuple[int, ...] = tuple(sorted(set(serial.Serial.BAUDRATES) | {
    250000, 500000, 1000000, 2000000, 3000000, 4000000}))


def baud_rate_problem(baud_rate: int) -> str | None:
    """Why ``baud_rate`` is not a standard serial rate, or None."""
    if int(baud_rate) in STANDARD_BAUD_RATES:
        return None
    return ("not a standard serial rate; use one of "
            f"{', '.join(str(b) for b in STANDARD_BAUD_RATES if b >= 9600)}")


def check_baud_rate(baud_rate: int) -> None:
    """Raise ValueError unless ``baud_rate`` is a standard serial rate."""
    problem = baud_rate_problem(baud_rate)
    if problem:
        raise ValueError(f"baud_rate {baud_rate} is {problem}")


def describe_open_error(port: str, exc: BaseException) -> str:
    """An actionable one-line description of why ``port`` could not be opened."""
    err = getattr(exc, "errno", None)
    text = str(exc)
    if err == errno.ENOENT or "No such file" in text or "[Errno 2]" in text:
        return (f"serial port {port} does not exist: is the armband plugged in and powered? "
                f"(list ports with `ls /dev/ttyACM* /dev/ttyUSB* /dev/serial/by-id/`)")
    if err in (errno.EACCES, errno.EPERM) or "Permission denied" in text or "[Errno 13]" in text:
        return (f"permission denied opening {port}: add your user to the 'dialout' group "
                f"(`sudo usermod -aG dialout $USER`, then log in again) or fix the udev rule")
    if err == errno.EBUSY or "busy" in text.lower() or "exclusively lock" in text:
        return (f"serial port {port} is in use by another program (close it, or check for a "
                f"second driver)")
    if isinstance(exc, ValueError):
        return f"cannot configure {port}: {text}"
    return f"cannot open serial port {port}: {text}"


def open_port(port: str, baud_rate: int) -> serial.Serial:
    """Open ``port`` raw, non-blocking reads, exclusive; raise OSError/ValueError on failure.

    pyserial's open drops bytes already waiting in the OS buffer (their timing is unknown),
    so after a replug streaming resumes with the bytes that arrive once the port is open."""
    ser = serial.Serial()
    ser.port = port
    ser.baudrate = int(baud_rate)
    ser.timeout = 0
    ser.write_timeout = 0.1
    if os.name == "posix":
        ser.exclusive = True
    ser.open()  # serial.SerialException is an OSError subclass carrying errno
    return ser


@dataclass
class ReaderStats:
    bytes_read: int = 0
    reads: int = 0
    reconnects: int = 0  # successful reopen after a loss
    disconnects: int = 0
    open_failures: int = 0
    stale_reopens: int = 0  # opened, no byte within stale_timeout_s: closed and reopened
    internal_errors: int = 0  # exceptions caught in the reader thread (a bug if > 0)


class SerialReader:
    """Reads ``port`` on its own thread; calls ``on_data(bytes, arrival_s)`` per read.

    Callbacks run on the reader thread: ``on_data`` for each read, ``on_idle(now_s)`` when
    no byte came for ``read_timeout_s``, ``read_delay()`` after each read (seconds to wait
    before the next one: reads are scheduled, not one per USB packet),
    ``on_connect(first: bool)`` after each open,
    ``on_disconnect()`` when the port is lost (or closed as stale), ``on_event(level,
    message)`` for log lines (levels "info", "warn", "error"), each situation reported
    once, not per retry. ``stale_timeout_s`` > 0: after each open, the first byte must come
    within that time, else the port is closed and reopened (0 = never).
    """

    def __init__(self, port: str, baud_rate: int, on_data: Callable[[bytes, float], None],
                 clock: Callable[[], float] = time.time,
                 on_event: Callable[[str, str], None] | None = None,
                 on_idle: Callable[[float], None] | None = None,
                 on_connect: Callable[[bool], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 read_delay: Callable[[], float] | None = None,
                 read_timeout_s: float = 0.02, backoff_min_s: float = 0.05,
                 backoff_max_s: float = 0.5, max_read_bytes: int = 65536,
                 stale_timeout_s: float = 0.0) -> None:
        check_baud_rate(baud_rate)
        self.port = port
        self.baud_rate = int(baud_rate)
        self._on_data = on_data
        self._clock = clock
        self._on_event = on_event or (lambda level, msg: None)
        self._on_idle = on_idle or (lambda now: None)
        self._on_connect = on_connect or (lambda first: None)
        self._on_disconnect = on_disconnect or (lambda: None)
        self._read_delay = read_delay or (lambda: 0.0)
        self.read_timeout_s = float(read_timeout_s)
        self.backoff_min_s = float(backoff_min_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_read_bytes = int(max_read_bytes)
        self.stale_timeout_s = float(stale_timeout_s)
        self.stats = ReaderStats()
        self.last_error: str = ""
        self._ser: serial.Serial | None = None
        self._fd = -1
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ever_connected = False
        self._lost_at: float | None = None
        self._opened_at = 0.0  # monotonic time of the last open
        self._silent_since_open = False  # no byte has come since the last open
        self.stale = False  # closed as stale and no byte since: reported, not yet resolved

    @property
    def connected(self) -> bool:
        return self._ser is not None

    def silent_for_s(self) -> float:
        """Seconds since the port was opened without a byte arriving (0 once one did)."""
        if self._ser is None or not self._silent_since_open:
            return 0.0
        return time.monotonic() - self._opened_at

    def bytes_waiting(self) -> int:
        """Bytes received by the OS but not yet read (the driver's input queue); -1 if
        unknown (port closed)."""
        ser = self._ser
        if ser is None:
            return -1
        try:
            return int(ser.in_waiting)
        except (OSError, serial.SerialException, TypeError, ValueError):
            return -1

    def write(self, data: bytes) -> bool:
        """Send ``data`` to the device (commands); False when the port is not open or the
        write failed (a lost port is noticed and reopened by the reader thread)."""
        ser = self._ser
        if ser is None:
            return False
        try:
            with self._write_lock:
                ser.write(data)
            return True
        except (OSError, serial.SerialException, TypeError, ValueError):
            return False

    def try_open(self) -> str:
        """Open the port now (from the caller's thread, before :meth:`start`).

        Returns "" on success, else the error description; the reader thread keeps retrying.
        """
        if self._ser is not None:
            return ""
        try:
            self._ser = open_port(self.port, self.baud_rate)
        except (OSError, ValueError) as exc:
            self.stats.open_failures += 1
            self.last_error = describe_open_error(self.port, exc)
            return self.last_error
        self._connected(first=True)
        return ""

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"serial_reader({self.port})",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the thread and close the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._close()

    # --- thread ---------------------------------------------------------------------

    def _connected(self, first: bool) -> None:
        assert self._ser is not None
        self._fd = self._ser.fileno() if os.name == "posix" else -1
        self._opened_at = time.monotonic()
        self._silent_since_open = True
        if self._lost_at is not None:
            self.stats.reconnects += 1
            self._on_event("info", f"serial port {self.port} is back after "
                                   f"{time.monotonic() - self._lost_at:.2f} s; streaming resumed")
        elif not self._ever_connected:
            self._on_event("info", f"opened serial port {self.port} at {self.baud_rate} baud")
        self._lost_at = None
        if not self.stale:  # a stale episode ends with a byte, not with an open
            self.last_error = ""
        self._on_connect(not self._ever_connected)
        self._ever_connected = True

    def _close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except (OSError, serial.SerialException):
                pass

    def _lost(self, reason: str) -> None:
        self._close()
        self.stats.disconnects += 1
        self._lost_at = time.monotonic()
        self._on_event("warn", f"serial port {self.port} lost ({reason}); retrying every "
                               f"<= {self.backoff_max_s:g} s")
        self._on_disconnect()

    def _reopen_stale(self, silent_s: float) -> None:
        """Opened, but no byte for ``silent_s``: close; the loop reopens at once."""
        self._close()
        self.stats.stale_reopens += 1
        if not self.stale:
            self.stale = True
            self.last_error = (f"serial port {self.port} sent no bytes for {silent_s:.1f} s "
                               "after it was opened (a stale device node left by an unplug, "
                               "or a device that does not stream); reopening it every "
                               f"{self.stale_timeout_s:g} s")
            self._on_event("warn", self.last_error)
        self._on_disconnect()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception as exc:
                self.stats.internal_errors += 1
                try:
                    self._on_event("error", f"serial reader error (recovering): {exc!r}")
                except Exception:
                    pass
                self._close()
                self._lost_at = self._lost_at or time.monotonic()
                self._stop.wait(self.backoff_max_s)

    def _loop(self) -> None:
        backoff = self.backoff_min_s
        reported_error = ""
        while not self._stop.is_set():
            if self._ser is None:
                try:
                    self._ser = open_port(self.port, self.baud_rate)
                except (OSError, ValueError) as exc:
                    self.stats.open_failures += 1
                    self.last_error = describe_open_error(self.port, exc)
                    # report each new reason once; a missing port right after a loss is
                    # the loss itself, already reported
                    expected = self._lost_at is not None and getattr(
                        exc, "errno", None) == errno.ENOENT
                    if self.last_error != reported_error and not expected:
                        self._on_event("error", self.last_error + "; retrying")
                    reported_error = self.last_error
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2.0, self.backoff_max_s)
                    continue
                backoff = self.backoff_min_s
                reported_error = ""
                self._connected(first=False)
            self._read_once()

    def _read_once(self) -> None:
        ser = self._ser
        assert ser is not None
        try:
            if os.name == "posix":
                fd = self._fd
                ready, _, _ = select.select([fd], [], [], self.read_timeout_s)
                if not ready:
                    silent = self.silent_for_s()
                    if 0.0 < self.stale_timeout_s < silent:
                        self._reopen_stale(silent)
                        return
                    self._on_idle(self._clock())
                    return
                data = os.read(fd, self.max_read_bytes)
                if not data:  # readable but empty: hang-up (device gone)
                    self._lost("device reports end of data")
                    return
            else:  # pragma: no cover - Windows: pyserial's API, still chunked
                ser.timeout = self.read_timeout_s
                data = ser.read(max(1, ser.in_waiting))
                if not data:
                    self._on_idle(self._clock())
                    return
                data += ser.read(ser.in_waiting)
        except (OSError, serial.SerialException, TypeError, ValueError) as exc:
            # TypeError/ValueError: pyserial on a port closed under it
            self._lost(str(exc) or type(exc).__name__)
            return
        arrival = self._clock()
        self._silent_since_open = False
        if self.stale:
            self.stale = False
            self.last_error = ""
            self._on_event("info", f"serial port {self.port}: bytes arriving after "
                                   f"{self.stats.stale_reopens} reopen(s); streaming resumed")
        self.stats.reads += 1
        self.stats.bytes_read += len(data)
        self._on_data(data, arrival)
        # nothing can be published before the consumer's next chunk completes: sleep until
        # shortly before then instead of waking for every USB packet (the OS buffers)
        delay = self._read_delay()
        if delay > 0.0:
            self._stop.wait(min(delay, 0.1))


__all__ = ["STANDARD_BAUD_RATES", "ReaderStats", "SerialReader", "check_baud_rate",
           "describe_open_error", "open_port"]
