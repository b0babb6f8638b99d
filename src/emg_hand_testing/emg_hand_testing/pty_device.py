"""A serial device on a pseudo-terminal: the far end of a cable, for tests and the soak.

The driver opens ``port`` (a symlink, like /dev/serial/by-id/...) with pyserial and sees a
real tty; the caller writes bytes into the master side, unplugs and replugs it.
"""

from __future__ import annotations

import os
import pty
import sys
import time
import tty
from pathlib import Path


class PtyArmband:
    """The far end of a serial cable: a pseudo-terminal pair behind a stable symlink.

    The driver opens ``port`` (a symlink, like /dev/serial/by-id/...), pyserial sees a real
    tty; the test writes bytes into the master side. ``unplug()`` closes the pty (the
    driver's reads fail with EIO, the device node disappears); ``replug()`` creates a new pty
    and points the symlink at it, as udev does when the armband comes back.
    """

    def __init__(self, directory: Path) -> None:
        self.port = str(directory / "ttyEMG0")
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

    def write(self, data: bytes) -> None:
        assert self.master is not None, "armband unplugged"
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def write_paced(self, chunks: list[bytes], rate_per_s: float) -> list[float]:
        """Write ``chunks`` one after another at ``rate_per_s`` chunks per second; return
        the wall-clock time at which each write completed."""
        # this process also runs the test's executor threads: hand the GIL over often, or
        # the writer (the "armband") falls behind its own clock by seconds
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-4)
        try:
            t0 = time.monotonic()
            done = []
            for k, chunk in enumerate(chunks):
                delay = t0 + k / rate_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing a producer, not synchronising with the driver
                self.write(chunk)
                done.append(time.time())
            return done
        finally:
            sys.setswitchinterval(interval)

    def close(self) -> None:
        self.unplug()


__all__ = ["PtyArmband"]
