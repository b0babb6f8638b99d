"""Writing command frames to a serial port without blocking the caller.

The caller (the node's executor) queues frames; a writer thread sends everything queued in
one write. The queue is short (``max_queued`` frames, 80 ms at 100 Hz): when the port is
slower than the command rate the oldest unsent frames are dropped and counted, since a hand
needs the latest command, not a backlog (the frame's sequence number shows the gap to the
firmware). Pure pyserial + threading; no rclpy.
"""

from __future__ import annotations

import collections
import threading

import serial


class SerialBackend:
    """Open ``port`` and write submitted frames, in order, from a background thread."""

    def __init__(self, port: str, baud_rate: int = 115200, write_timeout_s: float = 0.5,
                 max_queued: int = 8):
        self.port_name = port
        self._serial = serial.Serial(port, baudrate=baud_rate, timeout=0,
                                     write_timeout=write_timeout_s)
        self._cond = threading.Condition()
        self._queue: collections.deque[bytes] = collections.deque()
        self._max_queued = max_queued
        self._busy = False
        self._closed = False
        self.frames_written = 0
        self.frames_dropped = 0  # oldest unsent frames dropped because the port fell behind
        self.write_errors = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="hand_serial_writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, frame: bytes) -> None:
        with self._cond:
            if len(self._queue) >= self._max_queued:
                self._queue.popleft()
                self.frames_dropped += 1
            self._queue.append(frame)
            self._cond.notify()

    def flush(self, timeout_s: float = 1.0) -> bool:
        """Wait until every submitted frame has been written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (not self._queue and not self._busy) or self._closed, timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if self._closed:
                    return
                frames = list(self._queue)
                self._queue.clear()
                self._busy = True
            try:
                self._serial.write(b"".join(frames))
                self.frames_written += len(frames)
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
