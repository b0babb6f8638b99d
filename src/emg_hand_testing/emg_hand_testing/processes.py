"""Start installed executables as separate processes, the way ``ros2 run`` does.

``ros2 run <pkg> <exe>`` runs ``<prefix of pkg>/lib/<pkg>/<exe>``; :func:`executable_path`
finds the same file through the ament index, so tests exercise what colcon installed.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ament_index_python.packages import get_package_prefix


def executable_path(package: str, executable: str) -> Path:
    """Path of an installed executable of ``package`` (raises FileNotFoundError)."""
    path = Path(get_package_prefix(package)) / "lib" / package / executable
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{package}: executable {executable!r} not installed at {path}")
    return path


def ros_args(params: dict[str, Any] | None = None, remaps: dict[str, str] | None = None,
             params_file: str | os.PathLike | None = None,
             log_level: str | None = None) -> list[str]:
    """``--ros-args`` for parameters (``-p name:=value``), remaps and a params file."""
    args = ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    for name, value in (params or {}).items():
        args += ["-p", f"{name}:={_param_literal(value)}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    if log_level:
        args += ["--log-level", log_level]
    return args


def _param_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return f"'{value}'" if value == "" or any(c in value for c in " ,[]:") else value
    return repr(value)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM when the parent dies (Linux). Strictly, when
    the *thread* that started it ends, so start processes from a long-lived thread (the
    test's main thread)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: atexit below still stops them on a normal exit


class NodeProcess:
    """An installed executable running in its own process; output captured to a file.

    The child inherits this process's environment (ROS domain included) plus ``env``.
    ``stop()`` sends SIGINT (rclpy's clean shutdown), then SIGKILL after a grace period. A
    child never outlives the test process: it gets SIGTERM when its parent dies, and any
    still running at exit are stopped.
    """

    def __init__(self, package: str, executable: str, args: Sequence[str] = (),
                 env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None) -> None:
        self.command = [str(executable_path(package, executable)), *args]
        self.name = f"{package}/{executable}"
        self._log = tempfile.NamedTemporaryFile(
            prefix=f"{executable}_", suffix=".log", delete=False, mode="w+b")
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        _RUNNING.add(self)
        self._lock = threading.Lock()

    @property
    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        with self._lock, open(self._log.name, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def wait_for_output(self, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
        """Wait until the output matches regex ``pattern``; fail early if the process exits."""
        deadline = time.monotonic() + timeout_s
        regex = re.compile(pattern, re.MULTILINE)
        while True:
            match = regex.search(self.output)
            if match:
                return match
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before printing "
                    f"{pattern!r}; output:\n{self.output[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout_s:.1f} s waiting for {pattern!r} from {self.name}; "
                    f"output:\n{self.output[-4000:]}")
            time.sleep(0.02)

    def wait(self, timeout_s: float = 10.0) -> int:
        """Wait for the process to exit on its own; return its exit code."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} still running after {timeout_s:.1f} s; output:\n"
                               f"{self.output[-4000:]}") from None

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGINT, then SIGKILL if it does not exit within ``timeout_s``; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        self.stop()
        self._log.close()
        os.unlink(self._log.name)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_RUNNING: weakref.WeakSet[NodeProcess] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_RUNNING):
        proc.stop(timeout_s=3.0)
