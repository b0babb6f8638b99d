"""Fine-tuning in a child process, so that training can never stall live poses.

Measured (``bench/pose_node_bench.py``): a fine-tune on a thread of the pose node stalled
publishing by 50-70 ms at 100 Hz. The training thread holds the GIL between torch's small
ops (the head's batches are tiny), so the EMG subscription and the inference thread wait
for the interpreter's switch interval (5 ms) at every hand-over; torch's lazy imports and
the ONNX export of the new model hold it for seconds. A child process has its own
interpreter: no GIL is shared, it runs at a lower priority (``niceness``) with
``threads`` torch threads, and torch is imported only there.

Parent side (no torch): :class:`FinetuneProcess` starts ``python -m
emg_pose_node.finetune_worker`` at once (it imports torch and warms up while the
calibration records), then :meth:`FinetuneProcess.run` writes the running checkpoint and
the calibration arrays to a private directory, sends the job, relays progress, sends a
cancel when ``should_stop()`` says so, and loads the fine-tuned checkpoint the child saved
(with its ONNX graphs, exported in the child) into a :class:`FinetuneOutcome`.

Protocol, one JSON object per line: parent -> child on stdin ``{"job": {...}}``, then
optionally ``{"cancel": id}``, then the next job; the end of input cancels a running job
and ends the child (the parent is done or gone); child ->
parent on stdout ``{"event": "ready"}``, ``{"event": "progress", "epoch", "total",
"loss"}``, and per job ``{"event": "result", ...}`` or ``{"event": "error", "kind",
"message"}``. Everything else the child prints goes to a log file whose tail is reported
if it fails.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emg_hand_core.recordings import DataError

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint


class FinetuneError(RuntimeError):
    """The fine-tune process failed (not a data problem); the message says how."""


@dataclass
class FinetuneOutcome:
    """What :func:`training.finetune` returned, without torch objects. ``checkpoint``: the
    fine-tuned model if ``accepted`` (else None)."""

    accepted: bool
    cancelled: bool
    error_before: float
    error_after: float
    seconds_used: float
    epochs_run: int
    message: str
    checkpoint: Checkpoint | None = None


class FinetuneProcess:
    """A fine-tune worker process (see the module docstring): :meth:`run` one job after
    the other, then :meth:`close`."""

    def __init__(self, *, threads: int = 1, niceness: int = 10,
                 python: str = sys.executable) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="emg_pose_finetune_"))
        self._log = open(self._dir / "worker.log", "wb")
        self._events: queue.Queue = queue.Queue()
        self._jobs = 0
        command = [python, "-m", __name__, "--threads", str(int(threads))]
        nice = shutil.which("nice")
        if nice and niceness:  # lower from the first instruction: starting takes CPU too
            command = [nice, "-n", str(int(niceness)), *command]
        else:
            command += ["--niceness", str(int(niceness))]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self._reader = threading.Thread(target=self._read, name="finetune_reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._events.put(event)
        self._events.put(None)  # the child closed its output (exited)

    def _send(self, obj: dict) -> None:
        try:
            self.process.stdin.write((json.dumps(obj) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the child is gone; _read reports it

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return (self._dir / "worker.log").read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    def run(self, checkpoint: Checkpoint, emg: np.ndarray, targets: np.ndarray,
            settings: dict, *, label_mask: np.ndarray | None = None,
            progress_cb: Callable[[int, int, float], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            poll_s: float = 0.1) -> FinetuneOutcome:
        """:func:`training.finetune` in the child. ``settings``: FinetuneSettings fields.
        Raises DataError (too little / bad calibration data) or FinetuneError."""
        self._jobs += 1
        job = self._dir / f"job{self._jobs}"
        job.mkdir()
        source = job / "input.safetensors"
        save_checkpoint(checkpoint, source,  # never exports here: no torch in this process
                        embed_graphs=checkpoint.streaming_graphs() is not None)
        data = job / "data.npz"
        mask = np.ones(len(emg), bool) if label_mask is None else np.asarray(label_mask, bool)
        np.savez(data, emg=np.asarray(emg, np.float32), targets=np.asarray(targets, np.float64),
                 mask=mask)
        out = job / "result.safetensors"
        self._send({"job": {"id": self._jobs, "checkpoint": str(source), "data": str(data),
                            "out": str(out), "settings": dict(settings)}})
        cancel_sent = False
        while True:
            if should_stop is not None and not cancel_sent and should_stop():
                self._send({"cancel": self._jobs})
                cancel_sent = True
            try:
                event = self._events.get(timeout=poll_s)
            except queue.Empty:
                continue
            if event is None:
                code = self.process.wait()
                raise FinetuneError(f"the fine-tune process exited with code {code}: "
                                    f"{self.log_tail() or '(no output)'}")
            kind = event.get("event")
            if kind == "progress" and progress_cb is not None:
                progress_cb(int(event["epoch"]), int(event["total"]), float(event["loss"]))
            elif kind == "error":
                if event.get("kind") == "DataError":
                    raise DataError(str(event.get("message")))
                raise FinetuneError(f"fine-tuning failed: {event.get('kind')}: "
                                    f"{event.get('message')}")
            elif kind == "result":
                ckpt = load_checkpoint(event["checkpoint"]) if event.get("checkpoint") else None
                return FinetuneOutcome(
                    accepted=bool(event["accepted"]) and ckpt is not None,
                    cancelled=bool(event["cancelled"]), error_before=float(event["error_before"]),
                    error_after=float(event["error_after"]),
                    seconds_used=float(event["seconds_used"]),
                    epochs_run=int(event["epochs_run"]), message=str(event["message"]),
                    checkpoint=ckpt)

    def close(self, timeout_s: float = 5.0) -> None:
        """End the child (cancel, then kill) and remove its files."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=timeout_s)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FinetuneProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the child ------------------------------------------------------------------------


def _child(threads: int, niceness: int) -> int:
    if niceness:
        os.nice(niceness)  # (without the nice command) before torch's seconds of imports
    out = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol channel
    os.dup2(2, 1)  # anything else printed (libraries, C code) goes to the log
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def emit(**event) -> None:
        with lock:
            out.write(json.dumps(event) + "\n")

    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    from .training import warm_up

    warm_up()
    emit(event="ready")
    cancelled, closing = threading.Event(), threading.Event()
    jobs: queue.Queue = queue.Queue()
    current = {"id": None}

    def read_stdin() -> None:
        for line in sys.stdin:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and isinstance(msg.get("job"), dict):
                current["id"] = msg["job"].get("id")  # jobs come one at a time
                cancelled.clear()
                jobs.put(msg["job"])
            elif isinstance(msg, dict) and msg.get("cancel") == current["id"]:
                cancelled.set()  # (a late cancel of an earlier job is ignored)
        closing.set()  # the parent closed the pipe (or died)
        jobs.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    while (job := jobs.get()) is not None:
        _run_job(job, emit, lambda: cancelled.is_set() or closing.is_set())
    return 0


def _run_job(job: dict, emit, stop) -> None:
    from .training import FinetuneSettings, finetune

    try:
        ckpt = load_checkpoint(job["checkpoint"])
        with np.load(job["data"], allow_pickle=False) as data:
            emg, targets, mask = data["emg"], data["targets"], data["mask"]
        result = finetune(ckpt, emg, targets, FinetuneSettings(**job["settings"]),
                          label_mask=mask,
                          progress_cb=lambda e, n, loss: emit(event="progress", epoch=e,
                                                              total=n, loss=float(loss)),
                          should_stop=stop)
        path = None
        if result.accepted and not stop():
            path = str(save_checkpoint(result.checkpoint, job["out"]))  # exports the graphs
        emit(event="result", accepted=result.accepted and path is not None,
             cancelled=result.cancelled or stop(),
             error_before=float(result.error_before), error_after=float(result.error_after),
             seconds_used=float(result.seconds_used), epochs_run=int(result.epochs_run),
             message=result.message, checkpoint=path)
    except DataError as err:
        emit(event="error", kind="DataError", message=str(err))
    except Exception as err:  # reported to the parent, which decides
        emit(event="error", kind=type(err).__name__, message=str(err))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="emg_pose fine-tune worker (started by the "
                                     "emg_pose node; speaks JSON lines on stdin/stdout)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--niceness", type=int, default=0, help="added to the niceness")
    args = parser.parse_args(argv)
    return _child(max(1, args.threads), max(0, args.niceness))


if __name__ == "__main__":
    sys.exit(main())
