"""One calibration of the live model (the ``~/calibrate`` action's work). No rclpy, no torch.

:func:`goal_problem` checks a goal before it is accepted. A :class:`CalibrationSession`
then runs on a worker thread of the node: it records EMG from the
:class:`inference.InferenceWorker` (reference mode: until ``duration_s`` with a
:class:`calibration.ReferenceTrack` filled by the node's subscription; guided mode: along a
:class:`calibration.GuidedSchedule`, prompting each pose), labels it, fine-tunes the
running model in a child process (:class:`finetune_worker.FinetuneProcess`, started when
the session starts so that torch is imported while the wearer records), and, if the
fine-tuned model is better on the held-out end, saves it (``save_as``) and swaps it in.
The node supplies callbacks: ``feedback(Progress)``, ``prompt(...)``, ``cancelled()`` and
a clock; :meth:`CalibrationSession.run` returns a :class:`Result` in every case and keeps
the running model whenever anything goes wrong.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from emg_hand_core.poses import NAMED_POSES
from emg_hand_core.recordings import DataError

from .calibration import PHASE_DONE, CalibrationRecording, GuidedSchedule, ReferenceTrack
from .finetune_worker import FinetuneProcess
from .inference import InferenceWorker
from .model_store import ModelStore

# emg_interfaces/action/Calibrate constants (a test checks they are the interface's)
MODE_REFERENCE, MODE_GUIDED = 0, 1
PHASE_WAITING, PHASE_RECORDING, PHASE_TRAINING, PHASE_EVALUATING = 0, 1, 2, 3

SUCCEEDED, CANCELED, ABORTED = "succeeded", "canceled", "aborted"


@dataclass
class Settings:
    """Node parameters a goal's zero (or negative ``transition_s``) fields fall back to."""

    duration_s: float = 60.0
    hold_s: float = 4.0
    rest_s: float = 2.0
    transition_s: float = 1.0
    repetitions: int = 2
    poses: Sequence[str] = ()
    epochs: int = 40
    adapter_epochs: int = 10
    learning_rate: float = 3e-3
    validation_fraction: float = 0.25
    data_timeout_s: float = 5.0
    training_threads: int = 1
    training_niceness: int = 10


@dataclass
class Progress:
    """The action feedback (fields as in Calibrate.Feedback)."""

    phase: int
    prompt: str = ""
    seconds_recorded: float = 0.0
    seconds_total: float = 0.0
    epoch: int = 0
    epochs_total: int = 0
    loss: float = 0.0


@dataclass
class Result:
    """The action result (fields as in Calibrate.Result) and how the goal ends."""

    status: str = ABORTED  # SUCCEEDED | CANCELED | ABORTED
    success: bool = False
    message: str = ""
    error_before_rad: float = 0.0
    error_after_rad: float = 0.0
    model_swapped: bool = False
    seconds_used: float = 0.0
    model_path: str = ""
    accuracy_before: float = 0.0  # gesture models only (emg_gesture); 0 for a pose model
    accuracy_after: float = 0.0


class CalibrationAborted(Exception):
    """Ends a calibration with success=false and this message."""


def goal_problem(goal, model_loaded: bool) -> str | None:
    """Why a Calibrate goal is refused, or None."""
    if goal.mode not in (MODE_REFERENCE, MODE_GUIDED):
        return f"unknown mode {goal.mode}"
    if not model_loaded:
        return "no model is loaded"
    unknown = [p for p in goal.poses if p not in NAMED_POSES]
    if goal.mode == MODE_GUIDED and unknown:
        return f"unknown poses {unknown}; known: {sorted(NAMED_POSES)}"
    if not (0.0 <= goal.validation_fraction < 1.0 and goal.duration_s >= 0):
        return "validation_fraction must be in [0, 1) and duration_s >= 0"
    return None


class CalibrationSession:
    """Runs one accepted goal (see the module docstring)."""

    def __init__(self, goal, settings: Settings, worker: InferenceWorker, store: ModelStore,
                 *, feedback: Callable[[Progress], None],
                 prompt: Callable[[int, str, int, int, float, np.ndarray | None], None],
                 cancelled: Callable[[], bool], now_s: Callable[[], float],
                 log: Callable[[str, str], None] = lambda _level, _text: None,
                 track: ReferenceTrack | None = None, reference_topic: str = "",
                 finetuner: Callable[..., FinetuneProcess] = FinetuneProcess,
                 tick_s: float = 0.1) -> None:
        self.goal, self.settings = goal, settings
        self.worker, self.store = worker, store
        self._feedback, self._prompt, self._cancelled = feedback, prompt, cancelled
        self._now_s = now_s
        self._log = log  # (level "info" | "warning" | "error", text)
        self.track = track
        self.reference_topic = reference_topic
        self._finetuner = finetuner
        self._tick_s = tick_s

    def run(self) -> Result:
        result = Result()
        goal = self.goal
        finetuner = None
        try:
            running = self.worker.model
            if running is None:
                raise CalibrationAborted("no model is loaded")
            mode = "reference" if goal.mode == MODE_REFERENCE else "guided"
            self._log("info", f"calibration ({mode}) started")
            # started now: it imports torch (seconds) while the wearer records
            finetuner = self._finetuner(threads=self.settings.training_threads,
                                        niceness=self.settings.training_niceness)
            if goal.mode == MODE_REFERENCE:
                emg, times, breaks = self._record_reference()
                targets, valid = self.track.interpolate(times)
            else:
                schedule = self._schedule()
                emg, times, breaks, t0 = self._record_guided(schedule)
                targets, valid = schedule.label_times(times - t0)
            valid &= self._break_mask(len(times), breaks, running.checkpoint)
            self._finish(finetuner, running, emg, targets, valid, result)
        except (CalibrationAborted, DataError) as err:
            result.success, result.message = False, str(err)
            result.status = CANCELED if self._cancelled() else ABORTED
            self._log("warning", f"calibration ended: {err}; the running model is kept")
        except Exception as err:  # the goal ends, the node keeps running
            result.success = False
            result.message = f"calibration failed: {type(err).__name__}: {err}"
            result.status = ABORTED
            self._log("error", result.message + "; the running model is kept")
        else:
            result.status = SUCCEEDED
        finally:
            self.worker.stop_recording()
            if finetuner is not None:
                finetuner.close()
            self._prompt(PHASE_DONE, "", 0, 0, 0.0, None)
        return result

    # --- recording ---------------------------------------------------------------------
    def _schedule(self) -> GuidedSchedule:
        g, s = self.goal, self.settings
        try:
            return GuidedSchedule(
                list(g.poses) or list(s.poses), hold_s=g.hold_s or s.hold_s,
                rest_s=g.rest_s or s.rest_s,
                transition_s=g.transition_s if g.transition_s >= 0 else s.transition_s,
                repetitions=g.repetitions or s.repetitions)
        except ValueError as err:
            raise CalibrationAborted(str(err)) from None

    def _check_running(self, recorder: CalibrationRecording, last: dict, what: str) -> None:
        """Raise CalibrationAborted on cancel or when data stopped arriving."""
        if self._cancelled():
            raise CalibrationAborted("cancelled")
        now = time.monotonic()
        if recorder.samples != last["samples"]:
            last["samples"], last["t"] = recorder.samples, now
        elif now - last["t"] > self.settings.data_timeout_s:
            raise CalibrationAborted(f"no usable EMG for {now - last['t']:.1f} s ({what})")

    def _record_reference(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        timeout = self.settings.data_timeout_s
        duration = self.goal.duration_s or self.settings.duration_s
        recorder = self.worker.start_recording()
        progress = Progress(PHASE_WAITING, seconds_total=duration)
        last = {"samples": 0, "t": time.monotonic()}
        wait_start = time.monotonic()
        while recorder.samples == 0 or len(self.track) == 0:
            if self._cancelled():
                raise CalibrationAborted("cancelled")
            if time.monotonic() - wait_start > timeout:
                missing = ("EMG on emg/raw" if recorder.samples == 0
                           else "reference on " + self.reference_topic)
                raise CalibrationAborted(f"no {missing} within {timeout:.0f} s")
            self._feedback(progress)
            time.sleep(self._tick_s)
        progress.phase = PHASE_RECORDING
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration:
            self._check_running(recorder, last, "reference calibration")
            progress.seconds_recorded = elapsed
            self._feedback(progress)
            time.sleep(self._tick_s)
        breaks = self.worker.stop_recording()
        emg, times = recorder.arrays()
        return emg, times, breaks

    def _record_guided(self, schedule: GuidedSchedule):
        recorder = self.worker.start_recording()
        progress = Progress(PHASE_RECORDING, seconds_total=schedule.duration_s)
        t0 = self._now_s()
        last = {"samples": 0, "t": time.monotonic()}
        while True:
            t = self._now_s() - t0
            state = schedule.state_at(t)
            if state.phase == PHASE_DONE:
                break
            self._check_running(recorder, last, "guided calibration")
            self._prompt(state.phase, state.pose_name, state.index, state.count,
                         state.seconds_remaining, schedule.library.get(state.pose_name))
            progress.prompt = state.pose_name
            progress.seconds_recorded = min(t, schedule.duration_s)
            self._feedback(progress)
            time.sleep(self._tick_s)
        breaks = self.worker.stop_recording()
        emg, times = recorder.arrays()
        return emg, times, breaks, t0

    @staticmethod
    def _break_mask(n: int, breaks: list[int], ckpt) -> np.ndarray:
        """False for the first window after each stream restart inside the recording."""
        mask = np.ones(n, dtype=bool)
        span = int(math.ceil(ckpt.window_s * ckpt.sample_rate_hz))
        for start in breaks:
            mask[start:start + span] = False
        return mask

    # --- fine-tune, accept ----------------------------------------------------------------
    def _finish(self, finetuner: FinetuneProcess, running, emg: np.ndarray,
                targets: np.ndarray, valid: np.ndarray, result: Result) -> None:
        g, s = self.goal, self.settings
        settings = {"epochs": g.epochs or s.epochs, "adapter_epochs": s.adapter_epochs,
                    "learning_rate": g.learning_rate or s.learning_rate,
                    "unfreeze_last_lstm": bool(g.unfreeze_last_lstm),
                    "validation_fraction": g.validation_fraction or s.validation_fraction}
        ckpt = running.checkpoint
        progress = Progress(PHASE_TRAINING,
                            epochs_total=settings["epochs"] + settings["adapter_epochs"],
                            seconds_recorded=float(len(emg)) / (ckpt.sample_rate_hz or 1.0))
        self._feedback(progress)
        if int(valid.sum()) == 0:
            raise CalibrationAborted(f"too little usable calibration data: {len(emg)} EMG "
                                     "samples, none labelled")

        def on_progress(epoch: int, total: int, loss: float) -> None:
            progress.epoch, progress.epochs_total, progress.loss = epoch, total, float(loss)
            self._feedback(progress)

        outcome = finetuner.run(ckpt, emg, targets, settings, label_mask=valid,
                                progress_cb=on_progress, should_stop=self._cancelled)
        if outcome.cancelled or self._cancelled():
            raise CalibrationAborted("cancelled")
        progress.phase = PHASE_EVALUATING
        self._feedback(progress)
        result.error_before_rad = float(outcome.error_before)
        result.error_after_rad = float(outcome.error_after)
        result.seconds_used = float(outcome.seconds_used)
        result.success = True
        if outcome.accepted:
            name = g.save_as or f"{running.name}+calibrated"
            if g.save_as:
                result.model_path = str(self.store.save(outcome.checkpoint, g.save_as))
            self.worker.swap(self.store.build(outcome.checkpoint, name,
                                              result.model_path or "(not saved)"))
            result.model_swapped = True
            result.message = (f"calibrated: held-out error {outcome.error_before:.4f} -> "
                              f"{outcome.error_after:.4f} rad; now running {name!r}")
        else:
            result.message = (f"kept the running model: the fine-tuned one was not better "
                              f"({outcome.error_before:.4f} -> {outcome.error_after:.4f} rad "
                              "held-out error)")
        self._log("info", result.message)
