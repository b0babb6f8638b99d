"""Fixtures for the emg_driver tests: a pseudo-terminal armband and the driver process.

The ROS isolation, ``ros_node``, ``node_process`` and ``shared_data`` fixtures come from
the workspace harness (emg_hand_testing's pytest plugin).
"""

from __future__ import annotations

import importlib.util
import os
import pty
import sys
import termios
import time
import tty
from pathlib import Path

import pytest

# emg_pose_node is a package of this workspace that the driver imports (hand model, poses).
# Until it is built and installed like the others, import it from the source tree, here and
# in the driver processes the tests start.
if importlib.util.find_spec("emg_pose_node") is None:  # pragma: no cover - set-up dependent
    _src = str(Path(__file__).resolve().parents[2] / "emg_pose_node")
    sys.path.insert(0, _src)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (_src, os.environ.get("PYTHONPATH", "")) if p)


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
        attrs = termios.tcgetattr(slave)
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
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

    def write_paced(self, chunks: list[bytes], rate_per_s: float) -> None:
        """Write ``chunks`` one after another at ``rate_per_s`` chunks per second."""
        t0 = time.monotonic()
        for k, chunk in enumerate(chunks):
            delay = t0 + k / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing a producer, not synchronising with the driver
            self.write(chunk)

    def close(self) -> None:
        self.unplug()


@pytest.fixture
def pty_armband(tmp_path):
    armband = PtyArmband(tmp_path)
    yield armband
    armband.close()
