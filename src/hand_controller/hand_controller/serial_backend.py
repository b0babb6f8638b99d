"""Writing command frames to a serial port without blocking the caller.

The caller (the node's executor) hands over the newest frame; a writer thread sends it.
If the port is slower than the command rate, older unsent frames are replaced by newer
ones (a hand needs the latest command, not a backlog). Pure pyserial + threading; no rclpy.
"""

from __future__ import annotations

import threading

import serial


class SerialBackend:
    """Open ``port`` and write the latest submitted frame from a background thread."""

    def __init__(self, port: str, baud_rate: int = 115200, write_timeout_s: float = 0.5):
        self.port_name = port
        self._serial = serial.Serial(port, baudrate=baud_rate, timeout=0,
                                     write_timeout=write_timeout_s)
        self._cond = threading.Condition()
        self._pending: bytes | None = None
        self._busy = False
        self._closed = False
        self.frames_written = 0
        self.frames_dropped = 0  # replaced before the port took them
        self.write_errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="hand_serial_writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, frame: bytes) -> None:
        with self._cond:
            if self._pending is not None:
                self.frames_dropped += 1
            self._pending = frame
            self._cond.notify()

    def flush(self, timeout_s: float = 1.0) -> bool:
        """Wait until the pending frame has been written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (self._pending is None and not self._busy) or self._closed, timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                frame, self._pending, self._busy = self._pending, None, True
            try:
                self._serial.write(frame)
                self.frames_written += 1
            except (serial.SerialException, OSError) as exc:
                self.write_errors += 1
                self.last_error = str(exc)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
        self._serial.close()
