"""Start commands and installed executables as separate processes (:class:`Process`).

``ros2 run <pkg> <exe>`` runs ``<prefix of pkg>/lib/<pkg>/<exe>``; :func:`executable_path`
finds the same file through the ament index, so tests exercise what colcon installed
(:class:`NodeProcess`).
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


def _child_setup() -> None:
    """Runs in the child before exec: SIGINT back to its default (our own process may have
    been started with SIGINT ignored, as a background job; the child must stop on SIGINT
    as it does in a terminal), and SIGTERM when the parent dies (Linux). Strictly, when
    the *thread* that started it ends, so start processes from a long-lived thread (the
    test's main thread)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    except ValueError:  # started from a thread other than the main one: nothing to restore
        pass
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: atexit below still stops them on a normal exit


class Process:
    """A command in its own process session; stdout and stderr captured to a log file.

    The one process wrapper of the workspace: tests, benchmarks and ``make demo`` start
    nodes, ``ros2 launch`` and scripts with it. The child inherits this process's
    environment (ROS domain included) plus ``env``. ``log_path``: where the output goes
    (default: a temporary file, removed by :meth:`close`). :meth:`stop` sends SIGINT
    (rclpy's and launch's clean shutdown) once, then SIGKILL to the whole session after a
    grace period; :meth:`close` also kills whatever the command left in its session
    (launch's children). A child never outlives this process: it gets SIGTERM when its
    parent dies, and any still running at exit are stopped.
    """

    def __init__(self, cmd: Sequence[str | os.PathLike], name: str | None = None,
                 env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
                 log_path: str | os.PathLike | None = None) -> None:
        self.command = [str(c) for c in cmd]
        self.name = name or Path(self.command[0]).name
        if log_path is None:
            tmp = tempfile.NamedTemporaryFile(prefix=f"{Path(self.name).name}_", suffix=".log",
                                              delete=False)
            tmp.close()
            self.log_path, self._temporary_log = Path(tmp.name), True
        else:
            self.log_path, self._temporary_log = Path(log_path), False
        self._log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
            start_new_session=True, preexec_fn=_child_setup,
        )
        self.killed = False  # stop() had to SIGKILL it
        self._interrupted = False
        _RUNNING.add(self)
        self._lock = threading.Lock()

    @property
    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        with self._lock, open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def tail(self, lines: int = 15, indent: str = "    ") -> str:
        """The last ``lines`` lines of the output, indented."""
        return "\n".join(f"{indent}{line}" for line in self.output.splitlines()[-lines:])

    def running(self) -> bool:
        return self.process.poll() is None

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

    def interrupt(self) -> None:
        """SIGINT (what Ctrl-C sends), once; :meth:`stop` then only waits."""
        if self.process.poll() is None and not self._interrupted:
            self._interrupted = True
            self.process.send_signal(signal.SIGINT)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGINT, then SIGKILL to its session if it does not exit within ``timeout_s``;
        return the exit code."""
        if self.process.poll() is None:
            self.interrupt()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.killed = True
                self._kill_session()
                self.process.wait()
        return self.process.returncode

    def _kill_session(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self, timeout_s: float = 20.0) -> int:
        """Stop it, kill anything it left in its session, close (a temporary) log."""
        code = self.stop(timeout_s)
        self._kill_session()
        if not self._log.closed:
            self._log.close()
            if self._temporary_log:
                self.log_path.unlink(missing_ok=True)
        return code

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NodeProcess(Process):
    """An installed executable (``ros2 run <package> <executable> args...``) as a
    :class:`Process`."""

    def __init__(self, package: str, executable: str, args: Sequence[str] = (),
                 env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None,
                 log_path: str | os.PathLike | None = None) -> None:
        super().__init__([executable_path(package, executable), *args],
                         name=f"{package}/{executable}", env=env, cwd=cwd, log_path=log_path)


_RUNNING: weakref.WeakSet[Process] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_RUNNING):
        proc.stop(timeout_s=3.0)
