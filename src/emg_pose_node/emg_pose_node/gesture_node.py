"""Node ``emg_gesture``: live gesture recognition (pattern-recognition control) on ``emg/raw``.

A sibling of ``emg_pose`` in the same package, not a mode of it: a gesture model outputs
classes, not 20 angles, and has its own post-processing (rejection, voting, proportional
level) and calibration (an LDA refits in milliseconds); a separate node keeps each simple,
lets both run side by side on one stream, and the launch graph picks one (``control:=``).

Wiring only; the work is done by the pure modules of :mod:`emg_pose_node.gesture`:
:class:`~.stream_guard.EmgStreamGuard` judges each chunk (gaps, time going backwards, NaN,
channel count or rate unlike the model's), :class:`~.gesture.classifier.GestureStream` turns
samples into one window output every hop, :class:`~.gesture.postprocess.DecisionFilter`
rejects, votes and scales, :class:`~.gesture.postprocess.PostureFollower` moves the posture.

Per decision it publishes ``hand/gesture`` (``emg_interfaces/msg/Gesture``, stamped with the
acquisition time of the newest sample used), ``hand/joint_states`` and ``hand/keypoints``
(the decided class's named posture, moved at the proportional speed; rest when rejected),
so the visualizer and the controller work unchanged. The action ``~/calibrate`` (guided
mode) prompts the model's classes on ``calibration/prompt``, records, and calibrates the
model on a worker thread (:func:`~.gesture.training.calibrate_gesture`) while the old model
keeps deciding; the new one replaces it only if its held-out accuracy is higher.
``~/save_model`` / ``~/load_model`` keep named models in ``models_dir``.

Decisions run in the EMG callback (an LDA decision takes about 0.05 ms, the CNN-LSTM's
about 1 ms; see the README's figures), so no inference thread is needed.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import JointState

from emg_hand_core.emg_codec import EmgDecodeError, decode_emg
from emg_hand_core.hand_model import HAND_FRAME, JOINT_NAMES, KEYPOINT_NAMES, forward_kinematics
from emg_hand_core.params import Param, ParamTable, positive
from emg_hand_core.ros_params import declare_parameters, on_set_parameters
from emg_hand_core.topics import (
    EMG_TOPIC,
    GESTURE_TOPIC,
    JOINT_STATES_TOPIC,
    KEYPOINTS_TOPIC,
    PROMPT_TOPIC,
)
from emg_interfaces.action import Calibrate
from emg_interfaces.msg import EMG, CalibrationPrompt, Gesture, HandKeypoints
from emg_interfaces.srv import LoadModel, SaveModel

from .calibration import PHASE_DONE, CalibrationRecording, GuidedSchedule
from .checkpoint import CHECKPOINT_EXTENSION
from .gesture.checkpoint import (
    GestureCheckpoint,
    load_gesture_checkpoint,
    save_gesture_checkpoint,
)
from .gesture.classifier import GestureClassifier, GestureStream
from .gesture.postprocess import (
    DecisionFilter,
    PostSettings,
    PostureFollower,
    parse_mapping,
    posture_targets,
)
from .model_names import model_path, validate_model_name
from .stream_guard import EmgStreamGuard, Fault

STATS_WINDOW = 2000


def _mapping_problem(items: list) -> str | None:
    try:
        parse_mapping(items)
    except ValueError as err:
        return str(err)
    return None


PARAMETERS = ParamTable((
    Param("model", "", "Gesture checkpoint to run: a path, or a plain name in models_dir "
          "(train one with emg_gesture_train); empty: none until ~/load_model.",
          read_only=True),
    Param("models_dir", "~/.ros/emg_hand/models", "Directory of named models (save/load "
          "services).", read_only=True, check=lambda v: None if v else "must not be empty"),
    Param("rejection_threshold", 0.5, "A window whose most likely class has a lower "
          "probability is rejected (no gesture: rest); 0 = never reject.", min=0.0, max=1.0),
    Param("vote_window", 5, "Majority vote over this many latest decisions (1 = none).",
          min=1, max=200),
    Param("proportional", True, "Proportional level from the window's MAV scaled by the "
          "class's range in training (false: 1 for every decided gesture)."),
    positive("proportional_gain", 1.0, "Multiplies the proportional level (then clipped to "
             "[0, 1]).", max=100.0),
    positive("posture_speed_rad_s", 3.0, "hand/joint_states: joint speed toward the decided "
             "posture at level 1 (and toward rest).", "rad/s", max=100.0),
    Param("class_postures", [""], "class=pose pairs overriding the named posture of a class "
          "(default: emg_hand_core.poses.GESTURE_POSTURES, or the class's own name).",
          kind="string_array", read_only=True,
          check=lambda v: _mapping_problem([x for x in v if x])),
    Param("frame_id", HAND_FRAME, "Frame of hand/keypoints.", read_only=True),
    Param("inference_threads", 1, "torch threads of a neural model's decisions.", min=1,
          max=64, read_only=True),
    Param("training_threads", 1, "torch threads of a calibration fine-tune.", min=1, max=64,
          read_only=True),
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics.", unit="s", min=0.05,
          max=60.0, read_only=True),
    positive("calibration_hold_s", 4.0, "Guided calibration: seconds each class is held.",
             "s", max=600.0),
    Param("calibration_rest_s", 2.0, "Guided calibration: rest between classes.", unit="s",
          min=0.0, max=600.0),
    Param("calibration_transition_s", 1.0, "Guided calibration: seconds after each prompt "
          "change left out of the labels.", unit="s", min=0.0, max=60.0),
    Param("calibration_repetitions", 2, "Guided calibration: repetitions of the class "
          "sequence.", min=1, max=100),
    Param("calibration_epochs", 30, "Neural models: head fine-tuning epochs when the goal "
          "gives 0.", min=1, max=10_000),
    Param("calibration_validation_fraction", 0.25, "Last part of every class's calibration "
          "windows held out to decide whether the new model is better.", min=0.0, max=0.9,
          min_exclusive=True),
    positive("calibration_data_timeout_s", 5.0, "Abort a calibration when no EMG arrives "
             "for this long.", "s", max=600.0),
))


class CalibrationAborted(Exception):
    """Ends a calibration with success=false and this message."""


class _Running:
    """The running model and its per-stream state (swapped as a whole)."""

    def __init__(self, ckpt: GestureCheckpoint, name: str, path: str, params: dict) -> None:
        self.ckpt, self.name, self.path = ckpt, name, path
        self.stream = GestureStream(GestureClassifier(ckpt, params["inference_threads"]))
        self.filter = DecisionFilter(ckpt.class_names, _post_settings(params),
                                     ckpt.proportional.get("low"), ckpt.proportional.get("high"),
                                     ckpt.rest_index)
        mapping = parse_mapping([x for x in params["class_postures"] if x])
        self.posture = PostureFollower(ckpt.class_names, mapping, params["posture_speed_rad_s"],
                                       ckpt.rest_index)
        self.guard = EmgStreamGuard(ckpt.in_channels, ckpt.sample_rate_hz)
        self.last_decision_ns: int | None = None


def _post_settings(p: dict) -> PostSettings:
    return PostSettings(p["rejection_threshold"], p["vote_window"], p["proportional"],
                        p["proportional_gain"])


class EmgGestureNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("emg_gesture", **kwargs)
        p, _ = declare_parameters(self, PARAMETERS)  # ParamError: refused with the reason
        self._p = p
        self.models_dir = Path(p["models_dir"]).expanduser()
        self._lock = threading.Lock()
        self._goal_lock = threading.Lock()
        self._calibrating = False
        self._recorder: CalibrationRecording | None = None
        self._stats = {"chunks": 0, "decisions": 0, "rejected": 0, "malformed": 0,
                       "no_model": 0}
        self._faults = {f: 0 for f in Fault}
        self._last_problem = ""
        self._compute_ms: collections.deque[float] = collections.deque(maxlen=STATS_WINDOW)
        self._stats_t0 = time.monotonic()
        self._running: _Running | None = None
        try:
            self._running = self._build(self._resolve(p["model"]), p["model"])
        except (ValueError, OSError) as err:
            self._last_problem = f"no model loaded: {p['model']!r}: {err}"
            self.get_logger().error(f"{self._last_problem}. The node runs and reports; load "
                                    "one with ~/load_model.")
        self.add_on_set_parameters_callback(on_set_parameters(PARAMETERS, self._apply))

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        # EMG reliable and 1 s deep, as emg_pose: a lost chunk restarts the window.
        self.create_subscription(EMG, EMG_TOPIC, self._on_emg, reliable)
        self._gesture_pub = self.create_publisher(Gesture, GESTURE_TOPIC, 10)
        self._joint_pub = self.create_publisher(JointState, JOINT_STATES_TOPIC, 10)
        self._keypoint_pub = self.create_publisher(HandKeypoints, KEYPOINTS_TOPIC, 10)
        self._prompt_pub = self.create_publisher(CalibrationPrompt, PROMPT_TOPIC, 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        slow = ReentrantCallbackGroup()
        self.create_service(SaveModel, "~/save_model", self._on_save, callback_group=slow)
        self.create_service(LoadModel, "~/load_model", self._on_load, callback_group=slow)
        self._action = ActionServer(
            self, Calibrate, "~/calibrate", execute_callback=self._execute_calibration,
            goal_callback=self._on_goal, cancel_callback=lambda _g: CancelResponse.ACCEPT,
            callback_group=slow)
        r = self._running
        if r is not None:
            self.get_logger().info(f"model {r.name!r} ({r.path}): {r.ckpt.describe()}")

    # --- parameters and models ---------------------------------------------------------

    def _apply(self, values: dict) -> None:
        self._p.update(values)
        with self._lock:
            if self._running is not None:
                self._running.filter.configure(_post_settings(self._p))
                self._running.posture.max_speed_rad_s = self._p["posture_speed_rad_s"]

    def _resolve(self, name: str) -> Path:
        if not name:
            raise ValueError("the model parameter is empty")
        if "/" not in name and not name.endswith(CHECKPOINT_EXTENSION):
            validate_model_name(name)
            return model_path(self.models_dir, name, CHECKPOINT_EXTENSION)
        return Path(name).expanduser()

    def _build(self, path: Path, name: str, ckpt: GestureCheckpoint | None = None) -> _Running:
        """Load (safely) and build; ValueError naming the problem."""
        ckpt = ckpt or load_gesture_checkpoint(path)
        posture_targets(ckpt.class_names, parse_mapping([x for x in self._p["class_postures"]
                                                         if x]))  # every class has a posture
        return _Running(ckpt, name, str(path), self._p)

    def _swap(self, running: _Running) -> None:
        with self._lock:
            if self._running is not None:
                running.posture.q = self._running.posture.q.copy()
            self._running = running

    # --- EMG in, decisions out ----------------------------------------------------------

    def _on_emg(self, msg: EMG) -> None:
        try:
            chunk = decode_emg(msg)
        except EmgDecodeError as err:
            self._stats["malformed"] += 1
            self._problem(f"malformed EMG chunk: {err}")
            return
        with self._lock:
            r = self._running
            self._stats["chunks"] += 1
            if r is None:
                self._stats["no_model"] += 1
                self._problem("EMG arriving but no model is loaded: no decision is published; "
                              "load one with ~/load_model")
                return
            verdict = r.guard.check(chunk.first_sample_index, chunk.stamp_ns, chunk.samples,
                                    chunk.sample_rate_hz)
            if verdict.fault is not None:
                self._faults[verdict.fault] += 1
                self._problem(f"{verdict.fault.value}: {verdict.detail}")
            if verdict.reset:
                r.stream.reset()
                r.filter.reset()
            if not verdict.accept:
                return
            if self._recorder is not None:
                self._recorder.add_chunk(chunk.samples, chunk.stamp_ns * 1e-9,
                                         chunk.sample_rate_hz)
            t0 = time.perf_counter()
            try:
                outputs = r.stream.push(chunk.samples, chunk.first_sample_index)
            except ValueError as err:  # the guard filters these; keep running and say so
                self._problem(f"decision failed on a chunk: {err}; stream restarted")
                r.stream.reset()
                return
            for out in outputs:
                decision = r.filter.step(out.probabilities, out.mav_v)
                stamp_ns = chunk.stamp_ns + int(round(
                    (out.index - chunk.first_sample_index) * 1e9 / chunk.sample_rate_hz))
                dt = (stamp_ns - r.last_decision_ns) * 1e-9 if r.last_decision_ns else 0.0
                r.last_decision_ns = stamp_ns
                q = r.posture.step(decision, dt)
                self._publish(r, decision, q, stamp_ns, chunk.frame_id)
            if outputs:
                self._compute_ms.append((time.perf_counter() - t0) * 1e3 / len(outputs))

    def _publish(self, r: _Running, d, q: np.ndarray, stamp_ns: int, frame_id: str) -> None:
        stamp = Time(nanoseconds=stamp_ns).to_msg()
        g = Gesture(class_index=d.class_index, class_name=d.class_name,
                    class_names=list(r.ckpt.class_names),
                    probabilities=[float(v) for v in d.probabilities],
                    confidence=float(d.confidence), rejected=bool(d.rejected),
                    level=float(d.level))
        g.header.stamp, g.header.frame_id = stamp, frame_id
        self._gesture_pub.publish(g)
        js = JointState(name=list(JOINT_NAMES), position=q.tolist())
        js.header.stamp = stamp
        self._joint_pub.publish(js)
        kp = HandKeypoints(names=list(KEYPOINT_NAMES), positions=[
            Point(x=float(x), y=float(y), z=float(z)) for x, y, z in forward_kinematics(q)])
        kp.header.stamp, kp.header.frame_id = stamp, self._p["frame_id"]
        self._keypoint_pub.publish(kp)
        self._stats["decisions"] += 1
        self._stats["rejected"] += int(d.rejected)

    def _problem(self, text: str) -> None:
        self._last_problem = text
        self.get_logger().warning(text, throttle_duration_sec=5.0)

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            stats, faults, r = dict(self._stats), dict(self._faults), self._running
            self._stats.update(chunks=0, decisions=0, rejected=0)
            compute = np.asarray(self._compute_ms)
        elapsed, self._stats_t0 = max(now - self._stats_t0, 1e-6), now
        status = DiagnosticStatus(name=f"{self.get_name()}: gesture recognition",
                                  hardware_id="emg_gesture")
        if r is None:
            status.level, status.message = DiagnosticStatus.ERROR, "no model loaded"
        elif stats["chunks"] == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no EMG arriving on emg/raw"
        elif stats["decisions"] == 0:
            status.level = DiagnosticStatus.WARN
            status.message = "EMG arriving but no decision: " + (self._last_problem or
                                                                 "filling the window")
        else:
            status.level, status.message = DiagnosticStatus.OK, "deciding"
        values = {
            "decisions_per_s": f"{stats['decisions'] / elapsed:.1f}",
            "rejected_fraction": f"{stats['rejected'] / max(stats['decisions'], 1):.3f}",
            "compute_ms": (f"p50 {np.percentile(compute, 50):.3f} p99 "
                           f"{np.percentile(compute, 99):.3f}") if len(compute) else "n/a",
            "model": r.name if r else "", "model_path": r.path if r else "",
            "model_description": r.ckpt.describe() if r else "",
            "ring_shift": str(r.stream.aligner.shift) if r else "",
            "chunks_without_model": str(stats["no_model"]),
            "malformed_chunks": str(stats["malformed"]),
            "calibrating": str(self._calibrating).lower(), "last_problem": self._last_problem,
            **{f"fault_{f.name.lower()}": str(n) for f, n in faults.items()},
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        diag = DiagnosticArray(status=[status])
        diag.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(diag)

    # --- services -------------------------------------------------------------------------

    async def _in_thread(self, fn, *args):
        """Run ``fn(*args)`` on a worker thread; await it without blocking the executor."""
        future = Future()
        executor = self.executor

        def work() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # re-raised in the awaiting callback
                future.set_exception(err)
            if executor is not None:
                executor.wake()

        threading.Thread(target=work, daemon=True).start()
        return await future

    def _on_save(self, request: SaveModel.Request, response: SaveModel.Response):
        running = self._running
        try:
            if running is None:
                raise ValueError("no model is loaded")
            path = model_path(self.models_dir, request.name, CHECKPOINT_EXTENSION)
            if path.exists() and not request.overwrite:
                raise ValueError(f"{path.name} exists in {path.parent}; set overwrite")
            save_gesture_checkpoint(running.ckpt, path)
        except (ValueError, OSError) as err:
            response.success, response.message = False, f"not saved: {err}"
            return response
        response.success, response.path = True, str(path)
        response.message = f"saved model {running.name!r} as {request.name!r}"
        return response

    async def _on_load(self, request: LoadModel.Request, response: LoadModel.Response):
        def load() -> tuple[bool, str, str]:
            try:
                if self._calibrating:
                    raise ValueError("a calibration is running; cancel it first")
                path = model_path(self.models_dir, request.name, CHECKPOINT_EXTENSION)
                running = self._build(path, request.name)
                ch = self._running.ckpt if self._running is not None else running.ckpt
                if (running.ckpt.in_channels, running.ckpt.sample_rate_hz) != (
                        ch.in_channels, ch.sample_rate_hz):
                    raise ValueError(f"it takes {running.ckpt.in_channels} channels at "
                                     f"{running.ckpt.sample_rate_hz:g} Hz, the running model "
                                     f"{ch.in_channels} at {ch.sample_rate_hz:g} Hz")
            except (ValueError, OSError) as err:
                return False, f"model {request.name!r} not loaded, the running model is " \
                              f"kept: {err}", ""
            self._swap(running)
            return True, f"running model {request.name!r} ({running.ckpt.describe()})", str(path)

        response.success, response.message, response.path = await self._in_thread(load)
        self.get_logger().info(response.message)
        return response

    # --- calibration ------------------------------------------------------------------------

    def _on_goal(self, goal: Calibrate.Goal) -> GoalResponse:
        names = self._running.ckpt.class_names if self._running is not None else ()
        reason = None
        if self._running is None:
            reason = "no model is loaded"
        elif goal.mode != Calibrate.Goal.MODE_GUIDED:
            reason = ("gesture models calibrate in guided mode (mode 1): the prompted class is "
                      "the label")
        elif any(p not in names for p in goal.poses):
            reason = (f"unknown classes {[p for p in goal.poses if p not in names]}; the "
                      f"model's classes: {list(names)}")
        elif not 0.0 <= goal.validation_fraction < 1.0:
            reason = "validation_fraction must be in [0, 1)"
        with self._goal_lock:
            if reason is None and self._calibrating:
                reason = "a calibration is already running; cancel it or wait for its result"
            if reason is None:
                self._calibrating = True
        if reason is not None:
            self._problem(f"calibration goal rejected: {reason}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute_calibration(self, goal_handle) -> Calibrate.Result:
        return await self._in_thread(self._calibrate, goal_handle)

    def _calibrate(self, goal_handle) -> Calibrate.Result:
        """Worker thread: prompt and record, calibrate, swap; ends the goal in every case."""
        result = Calibrate.Result()
        try:
            self._calibrate_steps(goal_handle, result)
        except CalibrationAborted as err:
            result.success, result.message = False, str(err)
            self.get_logger().warning(f"calibration ended: {err}; the running model is kept")
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
            else:
                goal_handle.abort()
        except Exception as err:
            result.success = False
            result.message = f"calibration failed: {type(err).__name__}: {err}"
            self.get_logger().error(result.message + "; the running model is kept")
            goal_handle.abort()
        else:
            goal_handle.succeed()
        finally:
            with self._lock:
                self._recorder = None
            self._prompt(CalibrationPrompt.PHASE_DONE, "", 0, 0, 0.0)
            with self._goal_lock:
                self._calibrating = False
        return result

    def _calibrate_steps(self, goal_handle, result: Calibrate.Result) -> None:
        from .gesture.training import DataError, GestureCalibrationSettings, calibrate_gesture

        goal, p, running = goal_handle.request, self._p, self._running
        names = running.ckpt.class_names
        library = dict(zip(names, running.posture.targets))
        try:
            schedule = GuidedSchedule(
                list(goal.poses) or [n for n in names if n != "rest" or len(names) == 1],
                hold_s=goal.hold_s or p["calibration_hold_s"],
                rest_s=goal.rest_s or p["calibration_rest_s"],
                transition_s=(goal.transition_s if goal.transition_s >= 0
                              else p["calibration_transition_s"]),
                repetitions=goal.repetitions or p["calibration_repetitions"], library=library)
        except ValueError as err:
            raise CalibrationAborted(str(err)) from None
        emg, times, t0 = self._record(goal_handle, schedule, running.ckpt.in_channels)
        labels = schedule.label_indices(times - t0, names)
        settings = GestureCalibrationSettings(
            validation_fraction=goal.validation_fraction or p["calibration_validation_fraction"],
            epochs=goal.epochs or p["calibration_epochs"],
            learning_rate=goal.learning_rate or GestureCalibrationSettings.learning_rate)
        feedback = Calibrate.Feedback(phase=Calibrate.Feedback.PHASE_TRAINING,
                                      seconds_recorded=len(emg) / running.ckpt.sample_rate_hz,
                                      seconds_total=schedule.duration_s,
                                      epochs_total=settings.epochs if running.ckpt.kind != "lda"
                                      else 0)
        goal_handle.publish_feedback(feedback)

        def progress(epoch: int, total: int, loss: float) -> None:
            feedback.epoch, feedback.epochs_total, feedback.loss = epoch, total, float(loss)
            goal_handle.publish_feedback(feedback)

        if running.ckpt.kind != "lda":
            import torch

            torch.set_num_threads(p["training_threads"])
        try:
            outcome = calibrate_gesture(running.ckpt, emg, labels, settings, progress,
                                        lambda: goal_handle.is_cancel_requested)
        except DataError as err:
            raise CalibrationAborted(str(err)) from None
        if outcome.cancelled:
            raise CalibrationAborted("cancelled")
        feedback.phase = Calibrate.Feedback.PHASE_EVALUATING
        goal_handle.publish_feedback(feedback)
        result.success = True
        result.accuracy_before = outcome.accuracy_before
        result.accuracy_after = outcome.accuracy_after
        result.seconds_used = outcome.seconds_used
        if outcome.accepted:
            name = goal.save_as or f"{running.name}+calibrated"
            if goal.save_as:
                path = model_path(self.models_dir, goal.save_as, CHECKPOINT_EXTENSION)
                save_gesture_checkpoint(outcome.checkpoint, path)
                result.model_path = str(path)
            self._swap(self._build(Path(result.model_path or "(not saved)"), name,
                                   outcome.checkpoint))
            result.model_swapped = True
            result.message = (f"calibrated: held-out accuracy {outcome.accuracy_before:.3f} -> "
                              f"{outcome.accuracy_after:.3f}; now running {name!r}")
        else:
            result.message = (f"kept the running model: the calibrated one was not better "
                              f"(held-out accuracy {outcome.accuracy_before:.3f} -> "
                              f"{outcome.accuracy_after:.3f})")
        self.get_logger().info(result.message)

    def _record(self, goal_handle, schedule: GuidedSchedule, channels: int):
        """Prompt the schedule and record EMG: (emg (n, C) [V], sample times [s], t0 [s])."""
        recorder = CalibrationRecording(channels)
        with self._lock:
            self._recorder = recorder
        feedback = Calibrate.Feedback(phase=Calibrate.Feedback.PHASE_RECORDING,
                                      seconds_total=schedule.duration_s)
        t0 = self.get_clock().now().nanoseconds * 1e-9
        last_samples, last_t = 0, time.monotonic()
        while True:
            t = self.get_clock().now().nanoseconds * 1e-9 - t0
            state = schedule.state_at(t)
            if state.phase == PHASE_DONE:
                break
            if goal_handle.is_cancel_requested:
                raise CalibrationAborted("cancelled")
            if recorder.samples != last_samples:
                last_samples, last_t = recorder.samples, time.monotonic()
            elif time.monotonic() - last_t > self._p["calibration_data_timeout_s"]:
                raise CalibrationAborted(f"no usable EMG for {time.monotonic() - last_t:.1f} s "
                                         "(guided calibration)")
            self._prompt(state.phase, state.pose_name, state.index, state.count,
                         state.seconds_remaining, schedule.library.get(state.pose_name))
            feedback.prompt = state.pose_name
            feedback.seconds_recorded = min(t, schedule.duration_s)
            goal_handle.publish_feedback(feedback)
            time.sleep(0.1)
        with self._lock:
            self._recorder = None
        emg, times = recorder.arrays()
        return emg, times, t0

    def _prompt(self, phase: int, pose: str, index: int, count: int, remaining: float,
                q: np.ndarray | None = None) -> None:
        msg = CalibrationPrompt(phase=phase, pose_name=pose, index=index, count=count,
                                seconds_remaining=float(remaining))
        msg.header.stamp = self.get_clock().now().to_msg()
        if q is not None:
            msg.joint_names = list(JOINT_NAMES)
            msg.joint_positions = [float(v) for v in q]
        self._prompt_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = EmgGestureNode()
    except ValueError as err:  # a refused parameter, or a model that cannot run
        print(f"emg_gesture: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
