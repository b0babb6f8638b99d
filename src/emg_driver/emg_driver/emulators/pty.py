"""A serial cable in software: a pseudo-terminal behind a stable name, and a device thread.

:class:`PtyPort` is the far end of a serial cable: the driver opens ``port`` (a symlink,
like ``/dev/serial/by-id/...``), pyserial sees a real tty, the device side reads and writes
the master. ``unplug()`` closes the pty (the driver's reads fail with EIO, the device node
disappears); ``replug()`` creates a new pty and points the symlink at it, as udev does.

:class:`DeviceEmulator` runs a device on a port in its own thread: it reads what the host
sends (``on_host``) and writes what the device streams when it is due (``due``).
"""

from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty
from pathlib import Path


class PtyPort:
    """A pseudo-terminal pair behind the symlink ``<directory>/<name>``."""

    def __init__(self, directory: str | Path, name: str = "ttyEMG0") -> None:
        self.port = str(Path(directory) / name)
        self.master: int | None = None
        self.slave: int | None = None
        self.replug()

    def replug(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)  # no echo, no line editing, even before the driver configures it
        tmp = self.port + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.port)
        self.master, self.slave = master, slave

    def unplug(self) -> None:
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None
        if os.path.lexists(self.port):
            os.unlink(self.port)

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def write(self, data: bytes) -> None:
        assert self.master is not None, "unplugged"
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def close(self) -> None:
        self.unplug()


class DeviceEmulator:
    """A device on a :class:`PtyPort`, on its own thread.

    Subclasses implement ``on_host(data, now)`` (bytes the host wrote) and ``due(now)``
    (bytes to send now, b"" when none) and may set ``next_due`` (monotonic seconds of the
    next call to ``due``; the thread also wakes for host bytes). ``unplug()`` / ``replug()``
    pull and re-insert the device; the thread survives both.
    """

    poll_s = 0.05

    def __init__(self, port: PtyPort) -> None:
        self.pty = port
        self.lock = threading.RLock()
        self.next_due = time.monotonic()
        self.host_bytes = bytearray()  # everything the host ever sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    @property
    def port(self) -> str:
        return self.pty.port

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def close(self) -> None:
        self.stop()
        with self.lock:
            self.pty.close()

    def unplug(self) -> None:
        with self.lock:
            self.pty.unplug()
            self.on_unplug()

    def replug(self) -> None:
        with self.lock:
            self.pty.replug()

    def on_unplug(self) -> None:
        """The device lost power (it was pulled out)."""

    def on_host(self, data: bytes, now: float) -> None:
        raise NotImplementedError

    def due(self, now: float) -> bytes:
        return b""

    def send(self, data: bytes) -> None:
        """Write to the host now (from ``on_host`` / ``due``, the lock held)."""
        if data and self.pty.plugged:
            try:
                self.pty.write(data)
            except OSError:
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            master = self.pty.master
            if master is None:
                self._stop.wait(0.01)
                continue
            wait = min(self.poll_s, max(0.0, self.next_due - time.monotonic()))
            try:
                ready, _, _ = select.select([master], [], [], wait)
                data = os.read(master, 4096) if ready else b""
            except (OSError, ValueError):
                self._stop.wait(0.01)  # unplugged under us
                continue
            with self.lock:
                if self.pty.master != master:
                    continue
                now = time.monotonic()
                if data:
                    self.host_bytes += data
                    self.on_host(data, now)
                if now >= self.next_due:
                    self.send(self.due(now))


__all__ = ["DeviceEmulator", "PtyPort"]
