"""Node ``emg_pose``: live hand pose from ``emg/raw``, calibration and model management.

Wiring only (parameters, topics, services, the action, diagnostics); the work is done by
pure modules, each tested without rclpy:

* :class:`model_store.ModelStore`: model names (``models_dir``, the shipped models), guarded
  loads that can never take the node down, saves;
* :class:`inference.InferenceWorker`: the EMG queue, :class:`stream_guard.EmgStreamGuard`
  (gaps, time going backwards or jumping, implausible stamps, NaN/inf, channel count or
  rate unlike the model's), the sample history, stamp mapping, the
  :class:`streaming.StreamingPredictor` (ONNX Runtime), One Euro smoothing, primed atomic
  model swaps and the statistics; it calls :meth:`EmgPoseNode._publish_pose`;
* :class:`calibration_session.CalibrationSession`: goal checks, reference / guided recording,
  prompts, the fine-tune in a child process (:mod:`finetune_worker`), accept and save.

Threads: the executor thread does ROS I/O only, with callbacks that never block (the EMG
subscription checks and queues chunks; services and the calibrate action hand their slow
work to worker threads and await it); the inference thread runs the model and publishes.
Training runs in another process, so it can never stall poses (no shared GIL; lower
priority). Start-up imports neither torch nor scipy (for the shipped model): checkpoints
load with safetensors' numpy API and carry their ONNX graphs. (rclpy's
MultiThreadedExecutor was measured to spend over half a core on its own bookkeeping at 100
EMG chunks/s; this layout avoids it.)

Shutdown: SIGINT / SIGTERM only set a flag that the spin loop checks; the inference thread
and a running fine-tune are stopped before the node and the context go, so nothing fires
or publishes on a dead context, and a second SIGINT (launch passing on the terminal's
Ctrl-C) is ignored instead of killing the cleanup.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from emg_hand_core.emg_codec import split_ns, stamp_to_ns
from emg_hand_core.hand_model import HAND_FRAME, JOINT_NAMES, KEYPOINT_NAMES
from emg_hand_core.params import Param, ParamTable, positive
from emg_hand_core.poses import GUIDED_CALIBRATION_POSES, NAMED_POSES
from emg_hand_core.ros_params import declare_parameters, on_set_parameters
from emg_hand_core.topics import REFERENCE_TOPIC
from emg_interfaces.action import Calibrate
from emg_interfaces.msg import EMG, CalibrationPrompt, HandKeypoints
from emg_interfaces.srv import LoadModel, SaveModel

from .calibration import ReferenceTrack
from .calibration_session import (
    CANCELED,
    SUCCEEDED,
    CalibrationSession,
    Progress,
    Settings,
    goal_problem,
)
from .inference import InferenceWorker, Pose, Smoothing
from .model_store import DEFAULT_MODEL, ModelLoadError, ModelStore, shipped_models_dir
from .streaming import BACKENDS

__all__ = ["PARAMETERS", "EmgPoseNode", "main", "shipped_models_dir"]


def _known_poses(poses: list) -> str | None:
    unknown = [p for p in poses if p not in NAMED_POSES]
    if unknown or not poses:
        return f"has unknown or no poses {unknown}; known: {sorted(NAMED_POSES)}"
    return None


def _not_empty(v: str) -> str | None:
    return None if v else "must not be empty"


PARAMETERS = ParamTable((
    Param("model", DEFAULT_MODEL, "Model to start with: 'default' (the shipped model), a plain "
          "name in models_dir, or a checkpoint path.", read_only=True, check=_not_empty),
    Param("models_dir", "~/.ros/emg_hand/models", "Directory of named models (save/load "
          "services).", read_only=True, check=_not_empty),
    Param("backend", "onnx", f"Inference runtime: one of {BACKENDS} (onnx is the faster "
          "measured).", choices=BACKENDS, read_only=True),
    Param("inference_threads", 1, "Threads of the inference runtime.", min=1, max=64,
          read_only=True),
    Param("update_rate_hz", 50.0, "Rate at which the model runs and poses are published; at "
          "most one new pose per model frame (see diagnostics).", unit="Hz", min=1.0,
          max=200.0),
    Param("frame_id", HAND_FRAME, "Frame of hand/keypoints.", read_only=True, check=_not_empty),
    Param("smoothing", False, "One Euro filter on the joint angles (false = raw model output)."),
    positive("smoothing_min_cutoff_hz", 2.0, "One Euro cut-off at rest.", "Hz", max=1000.0),
    Param("smoothing_beta", 0.3, "One Euro speed coefficient.", unit="s/rad", min=0.0,
          max=1000.0),
    positive("smoothing_d_cutoff_hz", 1.0, "One Euro cut-off of the speed estimate.", "Hz",
             max=1000.0),
    positive("max_queue_s", 1.0, "EMG waiting for inference beyond this is dropped (and the "
             "stream restarted).", "s", max=60.0),
    Param("diagnostics_period_s", 1.0, "Period of /diagnostics.", unit="s", min=0.05, max=60.0,
          read_only=True),
    Param("training_threads", 1, "torch threads of the fine-tuning process (leave cores for "
          "inference).", min=1, max=64, read_only=True),
    Param("training_niceness", 10, "Niceness of the fine-tuning process (0 = the node's "
          "priority; higher = gives way to inference and the rest of the graph).", min=0,
          max=19, read_only=True),
    positive("calibration_duration_s", 60.0, "Reference calibration length when the goal "
             "gives 0.", "s", max=3600.0),
    positive("calibration_hold_s", 4.0, "Guided calibration: seconds each pose is held.", "s",
             max=600.0),
    Param("calibration_rest_s", 2.0, "Guided calibration: rest between poses.", unit="s",
          min=0.0, max=600.0),
    Param("calibration_transition_s", 1.0, "Guided calibration: seconds after each prompt "
          "change left out of the labels.", unit="s", min=0.0, max=60.0),
    Param("calibration_repetitions", 2, "Guided calibration: repetitions of the pose "
          "sequence.", min=1, max=100),
    Param("calibration_poses", list(GUIDED_CALIBRATION_POSES), "Guided calibration: default "
          f"pose sequence (from {sorted(NAMED_POSES)}).", check=_known_poses),
    Param("calibration_epochs", 40, "Fine-tuning epochs of the head when the goal gives 0.",
          min=1, max=10_000),
    Param("calibration_adapter_epochs", 10, "Epochs of the input-adapter stage that undoes an "
          "armband rotation or gain change before the head is fine-tuned (0 = head only).",
          min=0, max=10_000),
    positive("calibration_learning_rate", 3e-3, "Fine-tuning learning rate when the goal "
             "gives 0.", max=1.0),
    Param("calibration_validation_fraction", 0.25, "Chronological end of the calibration data "
          "held out to decide whether the new model is better.", min=0.0, max=0.9,
          min_exclusive=True),
    positive("calibration_data_timeout_s", 5.0, "Abort a calibration when no EMG (or no "
             "reference) arrives for this long.", "s", max=600.0),
    Param("reference_topic", REFERENCE_TOPIC, "Default reference pose topic "
          "(sensor_msgs/JointState) of reference calibration.", read_only=True,
          check=_not_empty),
))


class EmgPoseNode(Node):
    def __init__(self, **kwargs) -> None:
        t0 = time.monotonic()
        super().__init__("emg_pose", **kwargs)
        p, _ = declare_parameters(self, PARAMETERS)  # ParamError: refused with the reason
        self._p = p
        self.add_on_set_parameters_callback(on_set_parameters(PARAMETERS, self._apply))
        self._t0 = t0
        self._first_pose_logged = False
        self._last_problem = ""
        self._goal_lock = threading.Lock()
        self._calibrating = False
        self._closing = threading.Event()
        self.store = ModelStore(p["models_dir"], backend=p["backend"],
                                threads=p["inference_threads"],
                                log=lambda text: self.get_logger().warning(text))
        self.worker = InferenceWorker(
            self._publish_pose, update_rate_hz=p["update_rate_hz"],
            max_queue_s=p["max_queue_s"], smoothing=self._smoothing(), report=self._report,
            now_ns=lambda: self.get_clock().now().nanoseconds)
        # publishers first: their discovery by the subscribers runs while the model loads
        self._joint_pub = self.create_publisher(JointState, "hand/joint_states", 10)
        self._keypoint_pub = self.create_publisher(HandKeypoints, "hand/keypoints", 10)
        self._load_initial_model(p["model"])

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        # EMG: reliable (as published), deep enough for 1 s of 10 ms chunks: a lost chunk
        # would restart the model's window.
        self.create_subscription(EMG, "emg/raw", self.worker.on_message, reliable)
        self._prompt_pub = self.create_publisher(CalibrationPrompt, "calibration/prompt", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        # Async callbacks keep their group busy while they await a worker thread: give them
        # a reentrant group so the EMG subscription (default group) never waits on them.
        slow = self._slow_group = ReentrantCallbackGroup()
        self.create_service(SaveModel, "~/save_model", self._on_save, callback_group=slow)
        self.create_service(LoadModel, "~/load_model", self._on_load, callback_group=slow)
        self.create_service(Trigger, "~/reset_model", self._on_reset, callback_group=slow)
        # Feedback: every epoch is reported, and the fine-tune process can finish a few
        # epochs within milliseconds: a history deeper than the default 10 keeps them all.
        self._action = ActionServer(
            self, Calibrate, "~/calibrate", execute_callback=self._execute_calibration,
            goal_callback=self._on_goal, cancel_callback=lambda _g: CancelResponse.ACCEPT,
            callback_group=slow, feedback_pub_qos_profile=QoSProfile(
                depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.worker.start()

    def close(self) -> None:
        """Stop publishing from threads (inference, a calibration) before the node goes."""
        self._closing.set()
        self.worker.stop()

    def destroy_node(self) -> None:
        self.close()
        self._action.destroy()
        super().destroy_node()

    async def _in_thread(self, fn, *args):
        """Run ``fn(*args)`` on a worker thread; await its result without blocking the
        executor (exceptions propagate)."""
        future = Future()
        executor = self.executor

        def work() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # re-raised in the awaiting callback
                future.set_exception(err)
            if executor is not None:
                executor.wake()  # the awaiting task resumes on the executor's next pass

        threading.Thread(target=work, daemon=True).start()
        return await future

    def _report(self, text: str) -> None:
        self._last_problem = text
        self.get_logger().warning(text, throttle_duration_sec=5.0)

    def _log(self, level: str, text: str) -> None:
        logger = self.get_logger()  # one call site per severity (rclpy requires it)
        if level == "error":
            logger.error(text)
        elif level == "warning":
            logger.warning(text)
        else:
            logger.info(text)

    # --- parameters -------------------------------------------------------------------

    def _apply(self, values: dict) -> None:
        """Run-time changes (already checked)."""
        self._p.update(values)
        self.worker.configure(update_rate_hz=self._p["update_rate_hz"],
                              max_queue_s=self._p["max_queue_s"], smoothing=self._smoothing())

    def _smoothing(self) -> Smoothing:
        p = self._p
        return Smoothing(p["smoothing"], p["smoothing_min_cutoff_hz"], p["smoothing_beta"],
                         p["smoothing_d_cutoff_hz"])

    # --- models -----------------------------------------------------------------------

    def _load_initial_model(self, spec: str) -> None:
        t0 = time.monotonic()
        try:
            path = self.store.resolve(spec)
            model = self.store.load(path, spec)
            self.worker.install(model)
        except (ValueError, ModelLoadError) as err:
            self.get_logger().error(f"no model loaded: {spec!r}: {err}. The node runs and "
                                    "reports; load one with ~/load_model.")
            return
        self.get_logger().info(
            f"model {spec!r} ({path}): {model.checkpoint.describe()}; backend "
            f"{self._p['backend']}, one pose per {model.predictor.update_period_s * 1e3:.0f} ms "
            f"of EMG; loaded in {time.monotonic() - t0:.2f} s")

    def _load_named(self, name: str) -> tuple[bool, str, str]:
        try:
            if self._calibrating:
                raise ValueError("a calibration is running; cancel it first")
            path = self.store.named_path(name)  # services take names, never paths
            if not path.exists():
                raise ValueError(f"no model {name!r} in {self.store.models_dir} or the shipped "
                                 "models")
            shape = self.worker.stream_shape
            self.worker.swap(self.store.load(path, name, channels=shape[0] if shape else None,
                                             sample_rate_hz=shape[1] if shape else None))
        except (ValueError, OSError, TimeoutError, ModelLoadError) as err:
            message = f"model {name!r} not loaded, the running model is kept: {err}"
            self.get_logger().warning(message)
            return False, message, ""
        message = f"running model {name!r} ({self.worker.model.checkpoint.describe()})"
        self.get_logger().info(message)
        return True, message, str(path)

    def _save(self, name: str, overwrite: bool) -> tuple[bool, str, str]:
        model = self.worker.model
        try:
            if model is None:
                raise ValueError("no model is loaded")
            path = self.store.save(model.checkpoint, name, overwrite=overwrite)
        except (ValueError, OSError) as err:
            message = f"not saved: {err}"
            self.get_logger().warning(message)
            return False, message, ""
        message = f"saved model {model.name!r} as {name!r}"
        self.get_logger().info(f"{message} ({path})")
        return True, message, str(path)

    # --- poses and diagnostics out ------------------------------------------------------

    def _publish_pose(self, pose: Pose) -> None:
        """Inference thread: one pose on hand/joint_states and hand/keypoints."""
        if self._closing.is_set() or not self.context.ok():
            return
        sec, nanosec = split_ns(pose.stamp_ns)  # in range: the stream guard saw to it
        js = JointState()
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nanosec
        js.name = list(JOINT_NAMES)
        js.position = pose.joint_angles.tolist()
        self._joint_pub.publish(js)
        kp = HandKeypoints()
        kp.header.stamp = js.header.stamp
        kp.header.frame_id = self._p["frame_id"]
        kp.names = list(KEYPOINT_NAMES)
        kp.positions = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in pose.keypoints]
        self._keypoint_pub.publish(kp)
        if not self._first_pose_logged:
            self._first_pose_logged = True
            self.get_logger().info(f"first pose published {time.monotonic() - self._t0:.2f} s "
                                   "after the node started")

    def _publish_diagnostics(self) -> None:
        stats = self.worker.snapshot()
        model = self.worker.model
        calibrating = self._calibrating
        status = DiagnosticStatus(name=f"{self.get_name()}: pose estimation",
                                  hardware_id="emg_pose")
        if model is None:
            status.level, status.message = DiagnosticStatus.ERROR, "no model loaded"
        elif stats.samples == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no EMG arriving on emg/raw"
        elif stats.published == 0:
            status.level = DiagnosticStatus.WARN
            status.message = "EMG arriving but no pose published: " + (self._last_problem or
                                                                        "filling the window")
        else:
            status.level, status.message = DiagnosticStatus.OK, "publishing"
        if calibrating and status.level == DiagnosticStatus.OK:
            status.message = "publishing; calibration running"
        values = {
            "input_rate_hz": f"{stats.samples / stats.seconds:.1f}",
            "input_chunks_per_s": f"{stats.chunks / stats.seconds:.1f}",
            "output_rate_hz": f"{stats.published / stats.seconds:.1f}",
            "inference_ms": stats.inference_ms,
            "latency_ms": stats.latency_ms,
            "model": model.name if model else "",
            "model_path": model.path if model else "",
            "model_description": model.checkpoint.describe() if model else "",
            "model_metrics": ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in (model.checkpoint.metrics.items()
                                                    if model else [])
                                       if isinstance(v, (int, float, str))),
            "chunks_without_model": str(stats.no_model),
            "malformed_chunks": str(stats.malformed),
            "queue_overflows": str(stats.queue_overflow),
            "calibrating": str(calibrating).lower(),
            "last_problem": self._last_problem,
        }
        values.update({f"fault_{f.name.lower()}": str(n) for f, n in stats.faults.items()})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        diag = DiagnosticArray()
        diag.header.stamp = self.get_clock().now().to_msg()
        diag.status = [status]
        self._diag_pub.publish(diag)

    def _prompt(self, phase: int, pose: str, index: int, count: int, remaining: float,
                q=None) -> None:
        if self._closing.is_set() or not self.context.ok():
            return
        msg = CalibrationPrompt(phase=phase, pose_name=pose, index=index, count=count,
                                seconds_remaining=float(remaining))
        msg.header.stamp = self.get_clock().now().to_msg()
        if q is not None:
            msg.joint_names = list(JOINT_NAMES)
            msg.joint_positions = [float(v) for v in q]
        self._prompt_pub.publish(msg)

    # --- services -----------------------------------------------------------------------

    async def _on_save(self, request: SaveModel.Request, response: SaveModel.Response):
        response.success, response.message, response.path = await self._in_thread(
            self._save, request.name, request.overwrite)
        return response

    async def _on_load(self, request: LoadModel.Request, response: LoadModel.Response):
        response.success, response.message, response.path = await self._in_thread(
            self._load_named, request.name)
        return response

    async def _on_reset(self, _request: Trigger.Request, response: Trigger.Response):
        response.success, response.message, _ = await self._in_thread(
            self._load_named, DEFAULT_MODEL)
        return response

    # --- calibration --------------------------------------------------------------------

    def _on_goal(self, goal: Calibrate.Goal) -> GoalResponse:
        reason = goal_problem(goal, self.worker.model is not None)
        with self._goal_lock:
            if reason is None and self._calibrating:
                reason = "a calibration is already running; cancel it or wait for its result"
            if reason is None:
                self._calibrating = True
        if reason is not None:
            self._last_problem = f"calibration goal rejected: {reason}"
            self.get_logger().warning(self._last_problem)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _settings(self) -> Settings:
        p = self._p
        return Settings(
            duration_s=p["calibration_duration_s"], hold_s=p["calibration_hold_s"],
            rest_s=p["calibration_rest_s"], transition_s=p["calibration_transition_s"],
            repetitions=p["calibration_repetitions"], poses=list(p["calibration_poses"]),
            epochs=p["calibration_epochs"], adapter_epochs=p["calibration_adapter_epochs"],
            learning_rate=p["calibration_learning_rate"],
            validation_fraction=p["calibration_validation_fraction"],
            data_timeout_s=p["calibration_data_timeout_s"],
            training_threads=p["training_threads"], training_niceness=p["training_niceness"])

    async def _execute_calibration(self, goal_handle) -> Calibrate.Result:
        """Executor side: the reference subscription lives here; the work in a thread."""
        goal: Calibrate.Goal = goal_handle.request
        track = reference_sub = None
        topic = goal.reference_topic or self._p["reference_topic"]
        try:
            if goal.mode == Calibrate.Goal.MODE_REFERENCE:
                track = ReferenceTrack()
                reference_sub = self.create_subscription(
                    JointState, topic,
                    lambda m: track.add(stamp_to_ns(m.header.stamp) * 1e-9, m.name, m.position),
                    QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE),
                    callback_group=self._slow_group)

            def feedback(progress: Progress) -> None:
                if not self._closing.is_set():
                    goal_handle.publish_feedback(Calibrate.Feedback(**vars(progress)))

            session = CalibrationSession(
                goal, self._settings(), self.worker, self.store, feedback=feedback,
                prompt=self._prompt, now_s=lambda: self.get_clock().now().nanoseconds * 1e-9,
                cancelled=lambda: goal_handle.is_cancel_requested or self._closing.is_set(),
                log=self._log, track=track, reference_topic=topic)
            outcome = await self._in_thread(session.run)
        finally:
            if reference_sub is not None:
                self.destroy_subscription(reference_sub)
            with self._goal_lock:
                self._calibrating = False
        result = Calibrate.Result(
            success=outcome.success, message=outcome.message,
            error_before_rad=outcome.error_before_rad, error_after_rad=outcome.error_after_rad,
            model_swapped=outcome.model_swapped, seconds_used=outcome.seconds_used,
            model_path=outcome.model_path)
        if outcome.status == SUCCEEDED:
            goal_handle.succeed()
        elif outcome.status == CANCELED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result


def main(args: list[str] | None = None) -> int:
    # Our own signal handling: rclpy's would shut the context down under the inference
    # thread, which would then publish on a dead context ("publisher's context is invalid").
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    try:
        node = EmgPoseNode()
    except ValueError as err:
        print(f"emg_pose: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        # Under ros2 launch a Ctrl-C comes twice (the terminal's, then launch's): the second
        # must not kill the cleanup (exit -2); SIGTERM still ends a cleanup that hangs.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
