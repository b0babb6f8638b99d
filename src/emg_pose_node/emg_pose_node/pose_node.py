"""Node ``emg_pose``: live hand pose from ``emg/raw``, calibration and model management.

Wiring only; the work is done by the pure modules:

* :class:`stream_guard.EmgStreamGuard` judges every EMG chunk (gaps, time going backwards,
  NaN/inf, channel count or rate unlike the model's) before it reaches the model;
* :class:`streaming.StreamingPredictor` turns samples into poses (ONNX Runtime or torch);
* :class:`one_euro.OneEuroFilter` optionally smooths the output;
* :mod:`calibration` collects labelled calibration data, :func:`training.finetune` adapts
  the model; :mod:`model_names` keeps service calls inside the models directory.

Threads: one executor thread does ROS I/O only, with callbacks that never block (the EMG
subscription checks and queues chunks; services and the calibrate action hand their slow
work to worker threads and await it). An inference thread runs the model at
``update_rate_hz`` on everything queued and publishes the newest pose, so a slow step never
delays EMG reception. A calibration records and then fine-tunes (1 torch thread) in its own
worker thread while inference continues with the old model. A new model is handed to the
inference thread, which primes it with the last window of samples before swapping, so
publishing does not pause at the swap. (rclpy's MultiThreadedExecutor was measured to spend
over half a core on its own bookkeeping at 100 EMG chunks/s; this layout avoids it.)
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
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
from std_srvs.srv import Trigger

from emg_hand_core.emg_codec import EmgDecodeError, decode_emg, stamp_to_ns
from emg_hand_core.hand_model import (
    HAND_FRAME,
    JOINT_NAMES,
    KEYPOINT_NAMES,
    clamp_to_limits,
    forward_kinematics,
)
from emg_hand_core.params import Param, ParamTable, positive
from emg_hand_core.poses import GUIDED_CALIBRATION_POSES, NAMED_POSES
from emg_hand_core.ros_params import declare_parameters, on_set_parameters
from emg_hand_core.topics import REFERENCE_TOPIC
from emg_interfaces.action import Calibrate
from emg_interfaces.msg import EMG, CalibrationPrompt, HandKeypoints
from emg_interfaces.srv import LoadModel, SaveModel

from .calibration import (
    PHASE_DONE,
    CalibrationRecording,
    GuidedSchedule,
    ReferenceTrack,
)
from .checkpoint import CHECKPOINT_EXTENSION, Checkpoint, load_checkpoint, save_checkpoint
from .model_names import model_path, validate_model_name
from .one_euro import OneEuroFilter
from .stream_guard import EmgStreamGuard, Fault, SampleRing
from .streaming import BACKENDS, StreamingPredictor

DEFAULT_MODEL = "default"
STAMP_HISTORY = 400  # recent chunks kept to map a stream index to its acquisition time
STATS_WINDOW = 2000  # inference / latency samples kept for percentiles

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
    Param("training_threads", 1, "torch threads for fine-tuning (leave cores for inference).",
          min=1, max=64, read_only=True),
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


def shipped_models_dir() -> Path:
    try:
        return Path(get_package_share_directory("emg_pose_node")) / "models"
    except PackageNotFoundError:  # running from the source tree
        return Path(__file__).resolve().parents[1] / "models"


class Percentiles:
    """Rolling p50/p99 of the last ``STATS_WINDOW`` values."""

    def __init__(self) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=STATS_WINDOW)

    def add(self, value: float) -> None:
        self._values.append(value)

    def summary(self, scale: float = 1.0) -> str:
        if not self._values:
            return "n/a"
        a = np.asarray(self._values) * scale
        return f"p50 {np.percentile(a, 50):.2f} p99 {np.percentile(a, 99):.2f}"


@dataclass
class _Chunk:
    reset: bool
    first_index: int
    stamp_ns: int
    samples: np.ndarray
    rate_hz: float


@dataclass
class _Model:
    """A checkpoint, its predictor and where it came from."""

    checkpoint: Checkpoint
    predictor: StreamingPredictor
    name: str
    path: str


class CalibrationAborted(Exception):
    """Ends a calibration with success=false and this message."""


class EmgPoseNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("emg_pose", **kwargs)
        p, _ = declare_parameters(self, PARAMETERS)  # ParamError: refused with the reason
        self._p = p
        self.add_on_set_parameters_callback(on_set_parameters(PARAMETERS, self._apply))
        self.models_dir = Path(p["models_dir"]).expanduser()

        import torch  # only here: the node's module imports stay light for tests

        from .training import warm_up

        torch.set_num_threads(p["training_threads"])
        # torch's lazy imports (seconds, holding the GIL) now, not in the middle of the first
        # calibration where they would stall inference
        warm_up()

        self._lock = threading.Lock()  # queue, pending model, recorder, counters
        self._queue: collections.deque[_Chunk] = collections.deque()
        self._queued_samples = 0
        self._pending: _Model | None = None
        self._swapped = threading.Condition(self._lock)
        self._model: _Model | None = None
        self._guard: EmgStreamGuard | None = None
        self._history: SampleRing | None = None
        self._stamps: collections.deque[tuple[int, int, float]] = collections.deque(
            maxlen=STAMP_HISTORY)
        self._filter = self._make_filter()
        self._last_published_index: int | None = None
        self._stream_shape: tuple[int, float] | None = None  # (channels, rate) last seen
        self._recorder: CalibrationRecording | None = None
        self._record_breaks: list[int] = []
        self._calibrating = False
        self._goal_lock = threading.Lock()
        self._stats = {"chunks": 0, "samples": 0, "published": 0, "no_model": 0,
                       "malformed": 0, "queue_overflow": 0}
        self._faults: dict[Fault, int] = {f: 0 for f in Fault}
        self._last_fault = ""
        self._inference_ms = Percentiles()
        self._latency_ms = Percentiles()
        self._stats_t0 = time.monotonic()

        self._load_initial_model(p["model"])

        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        # EMG: reliable (as published), deep enough for 1 s of 10 ms chunks: a lost chunk
        # would restart the model's window.
        self.create_subscription(EMG, "emg/raw", self._on_emg, reliable)
        self._joint_pub = self.create_publisher(JointState, "hand/joint_states", 10)
        self._keypoint_pub = self.create_publisher(HandKeypoints, "hand/keypoints", 10)
        self._prompt_pub = self.create_publisher(CalibrationPrompt, "calibration/prompt", 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        # Async callbacks keep their group busy while they await a worker thread: give them
        # a reentrant group so the EMG subscription (default group) never waits on them.
        slow = self._slow_group = ReentrantCallbackGroup()
        self.create_service(SaveModel, "~/save_model", self._on_save, callback_group=slow)
        self.create_service(LoadModel, "~/load_model", self._on_load, callback_group=slow)
        self.create_service(Trigger, "~/reset_model", self._on_reset, callback_group=slow)
        self._action = ActionServer(
            self, Calibrate, "~/calibrate", execute_callback=self._execute_calibration,
            goal_callback=self._on_goal, cancel_callback=lambda _g: CancelResponse.ACCEPT,
            callback_group=slow)
        self._stop = threading.Event()
        self._data_ready = threading.Event()
        self._inference = threading.Thread(target=self._inference_loop, name="inference",
                                           daemon=True)
        self._inference.start()

    def destroy_node(self) -> None:
        self._stop.set()
        if self._inference.is_alive():
            self._inference.join(timeout=5.0)
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

    # --- parameters -------------------------------------------------------------------

    def _apply(self, values: dict) -> None:
        """Run-time changes (already checked)."""
        self._p.update(values)
        if any(k.startswith("smoothing") for k in values):
            self._filter = self._make_filter()

    def _make_filter(self) -> OneEuroFilter:
        p = self._p
        return OneEuroFilter(p["smoothing_min_cutoff_hz"], p["smoothing_beta"],
                             p["smoothing_d_cutoff_hz"])

    # --- models -----------------------------------------------------------------------

    def _named_model(self, name: str) -> Path:
        """A plain model name: models_dir first, then the shipped models ('default' is
        always the shipped one). Raises ValueError for anything but a plain name."""
        user = model_path(self.models_dir, name, CHECKPOINT_EXTENSION)
        if name != DEFAULT_MODEL and user.exists():
            return user
        return model_path(shipped_models_dir(), name, CHECKPOINT_EXTENSION)

    def _resolve_model(self, name: str) -> Path:
        """The ``model`` parameter: 'default', a plain name or a checkpoint path."""
        if name == DEFAULT_MODEL or ("/" not in name and not name.endswith(CHECKPOINT_EXTENSION)
                                    and validate_model_name(name)):
            return self._named_model(name)
        return Path(name).expanduser()

    def _build(self, path: Path, name: str, checkpoint: Checkpoint | None = None) -> _Model:
        """Load (safely) and build a predictor; raises ValueError/OSError with the reason."""
        if checkpoint is None:
            shape = self._stream_shape
            checkpoint = load_checkpoint(path, channels=shape[0] if shape else None,
                                         sample_rate_hz=shape[1] if shape else None)
        if checkpoint.output not in ("joint_angles", "keypoints"):
            raise ValueError(f"{path}: the model outputs {checkpoint.output} "
                             f"({', '.join(checkpoint.output_names)}), not a hand pose")
        predictor = StreamingPredictor(checkpoint, backend=self._p["backend"],
                                       threads=self._p["inference_threads"],
                                       kinematics=checkpoint.output == "keypoints",
                                       align_to_chunks=True)
        return _Model(checkpoint, predictor, name, str(path))

    def _load_initial_model(self, name: str) -> None:
        try:
            path = self._resolve_model(name)
            model = self._build(path, name)
        except (ValueError, OSError) as err:
            self.get_logger().error(f"no model loaded: {name!r}: {err}. The node runs and "
                                    "reports; load one with ~/load_model.")
            return
        self._install(model)
        self.get_logger().info(f"model {name!r} ({path}): {model.checkpoint.describe()}; "
                               f"backend {self._p['backend']}, one pose per "
                               f"{model.predictor.update_period_s * 1e3:.0f} ms of EMG")

    def _install(self, model: _Model) -> None:
        """Make ``model`` the running one (inference thread, or before spinning starts)."""
        ckpt = model.checkpoint
        window = int(math.ceil(ckpt.window_s * ckpt.sample_rate_hz)) + 64
        history = self._history
        if history is not None and history.filled:
            samples = history.latest(history.filled)
            first = history.newest_index - history.filled + 1
            try:  # prime the new model with the last window: no publish gap at the swap
                model.predictor.push(np.array(samples), first_sample_index=first)
            except ValueError:
                model.predictor.reset()
        with self._lock:
            self._model = model
            self._guard = EmgStreamGuard(ckpt.in_channels, ckpt.sample_rate_hz)
            if history is None or history.capacity < window or \
                    history.channels != ckpt.in_channels:
                self._history = SampleRing(window, ckpt.in_channels)
            self._swapped.notify_all()

    def _swap_to(self, model: _Model, timeout_s: float = 10.0) -> None:
        """Hand ``model`` to the inference thread and wait until it runs."""
        with self._lock:
            self._pending = model
            if not self._swapped.wait_for(lambda: self._pending is None, timeout_s):
                self._pending = None
                raise TimeoutError("the inference thread did not take the new model")

    # --- EMG in -----------------------------------------------------------------------

    def _on_emg(self, msg: EMG) -> None:
        try:
            chunk = decode_emg(msg)
        except EmgDecodeError as err:
            with self._lock:
                self._stats["malformed"] += 1
            self._report(f"malformed EMG chunk: {err}")
            return
        samples, stamp_ns, first = chunk.samples, chunk.stamp_ns, chunk.first_sample_index
        channels = chunk.num_channels
        with self._lock:
            self._stream_shape = (channels, float(msg.sample_rate_hz))
            self._stats["chunks"] += 1
            self._stats["samples"] += msg.num_samples
            guard = self._guard
            if guard is None:
                self._stats["no_model"] += 1
                verdict = None
            else:
                verdict = guard.check(first, stamp_ns, samples, msg.sample_rate_hz)
                if verdict.fault is not None:
                    self._faults[verdict.fault] += 1
            if verdict is not None and verdict.accept:
                self._queue.append(_Chunk(verdict.reset, first, stamp_ns, samples,
                                          float(msg.sample_rate_hz)))
                self._queued_samples += msg.num_samples
                limit = self._p["max_queue_s"] * msg.sample_rate_hz
                while self._queued_samples > limit and len(self._queue) > 1:
                    dropped = self._queue.popleft()
                    self._queued_samples -= dropped.samples.shape[0]
                    self._queue[0].reset = True
                    self._stats["queue_overflow"] += 1
                if self._recorder is not None:
                    if verdict.reset:
                        self._record_breaks.append(self._recorder.samples)
                    self._recorder.add_chunk(samples, stamp_ns * 1e-9, msg.sample_rate_hz)
            self._data_ready.set()
        if verdict is None:
            self._report("EMG arriving but no model is loaded: no pose is published; "
                         "load one with ~/load_model")
        elif verdict.fault is not None:
            what = "stream restarted" if verdict.reset else "no pose from it"
            self._report(f"{verdict.fault.value}: {verdict.detail} ({what})")

    def _report(self, text: str) -> None:
        self._last_fault = text
        self.get_logger().warning(text, throttle_duration_sec=5.0)

    # --- inference ----------------------------------------------------------------------

    def _inference_loop(self) -> None:
        """Run the model as soon as EMG arrives, at most update_rate_hz times a second (and
        at least that often, so a pending model swap happens without EMG)."""
        last = 0.0
        while not self._stop.is_set():
            period = 1.0 / self._p["update_rate_hz"]
            self._data_ready.wait(period)
            early = last + period - time.monotonic()
            if early > 0 and self._stop.wait(early):
                break
            self._data_ready.clear()
            last = time.monotonic()
            try:
                self._on_tick()
            except Exception as err:  # keep inferring; report what broke
                self._report(f"inference step failed: {type(err).__name__}: {err}")

    def _on_tick(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            chunks = list(self._queue)
            self._queue.clear()
            self._queued_samples = 0
        if pending is not None:
            self._install(pending)
            self._filter.reset()
        model, history = self._model, self._history
        if model is None or history is None:
            return
        predictor = model.predictor
        newest = None
        t0 = time.perf_counter()
        for c in chunks:
            if c.reset:
                predictor.reset()
                history.clear()
                self._filter.reset()
                self._last_published_index = None
            history.push(c.samples, c.first_index, c.stamp_ns, c.rate_hz)
            self._stamps.append((c.first_index, c.stamp_ns, c.rate_hz))
            try:
                prediction = predictor.push(c.samples, first_sample_index=c.first_index)
            except ValueError as err:  # the guard already filters these; keep running
                self._report(f"inference refused a chunk: {err}")
                predictor.reset()
                continue
            if prediction is not None:
                newest = prediction
        if newest is None or newest.joint_angles is None:
            return
        self._inference_ms.add((time.perf_counter() - t0) * 1e3)
        index = newest.stream_index
        if index is None or index == self._last_published_index:
            return
        stamp_ns = self._stamp_of(index)
        if stamp_ns is None:
            return
        self._last_published_index = index
        self._publish(newest.joint_angles, stamp_ns)

    def _stamp_of(self, index: int) -> int | None:
        for first, stamp, rate in reversed(self._stamps):
            if first <= index:
                return stamp + int(round((index - first) * 1e9 / rate))
        return None

    def _publish(self, joint_angles: np.ndarray, stamp_ns: int) -> None:
        q = clamp_to_limits(np.asarray(joint_angles, dtype=np.float64))
        if self._p["smoothing"]:
            q = clamp_to_limits(self._filter(q, stamp_ns * 1e-9))
        stamp = Time(nanoseconds=stamp_ns).to_msg()
        js = JointState()
        js.header.stamp = stamp
        js.name = list(JOINT_NAMES)
        js.position = q.tolist()
        self._joint_pub.publish(js)
        kp = HandKeypoints()
        kp.header.stamp = stamp
        kp.header.frame_id = self._p["frame_id"]
        kp.names = list(KEYPOINT_NAMES)
        kp.positions = [Point(x=float(x), y=float(y), z=float(z))
                        for x, y, z in forward_kinematics(q)]
        self._keypoint_pub.publish(kp)
        self._latency_ms.add((self.get_clock().now().nanoseconds - stamp_ns) * 1e-6)
        with self._lock:
            self._stats["published"] += 1

    # --- diagnostics --------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            stats = dict(self._stats)
            for key in ("chunks", "samples", "published"):
                self._stats[key] = 0
            faults = dict(self._faults)
            calibrating = self._calibrating
        elapsed = max(now - self._stats_t0, 1e-6)
        self._stats_t0 = now
        model = self._model
        status = DiagnosticStatus(name=f"{self.get_name()}: pose estimation",
                                  hardware_id="emg_pose")
        if model is None:
            status.level, status.message = DiagnosticStatus.ERROR, "no model loaded"
        elif stats["samples"] == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no EMG arriving on emg/raw"
        elif stats["published"] == 0:
            status.level = DiagnosticStatus.WARN
            status.message = "EMG arriving but no pose published: " + (self._last_fault or
                                                                        "filling the window")
        else:
            status.level, status.message = DiagnosticStatus.OK, "publishing"
        if calibrating and status.level == DiagnosticStatus.OK:
            status.message = "publishing; calibration running"
        values = {
            "input_rate_hz": f"{stats['samples'] / elapsed:.1f}",
            "input_chunks_per_s": f"{stats['chunks'] / elapsed:.1f}",
            "output_rate_hz": f"{stats['published'] / elapsed:.1f}",
            "inference_ms": self._inference_ms.summary(),
            "latency_ms": self._latency_ms.summary(),
            "model": model.name if model else "",
            "model_path": model.path if model else "",
            "model_description": model.checkpoint.describe() if model else "",
            "model_metrics": ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in (model.checkpoint.metrics.items()
                                                    if model else [])
                                       if isinstance(v, (int, float, str))),
            "chunks_without_model": str(stats["no_model"]),
            "malformed_chunks": str(stats["malformed"]),
            "queue_overflows": str(stats["queue_overflow"]),
            "calibrating": str(calibrating).lower(),
            "last_problem": self._last_fault,
        }
        values.update({f"fault_{f.name.lower()}": str(n) for f, n in faults.items()})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        diag = DiagnosticArray()
        diag.header.stamp = self.get_clock().now().to_msg()
        diag.status = [status]
        self._diag_pub.publish(diag)

    # --- services -----------------------------------------------------------------------

    def _on_save(self, request: SaveModel.Request, response: SaveModel.Response):
        model = self._model
        try:
            if model is None:
                raise ValueError("no model is loaded")
            path = model_path(self.models_dir, request.name, CHECKPOINT_EXTENSION)
            if path.exists() and not request.overwrite:
                raise ValueError(f"{path.name} exists in {path.parent}; set overwrite")
            save_checkpoint(model.checkpoint, path)
        except (ValueError, OSError) as err:
            response.success, response.message = False, f"not saved: {err}"
            self.get_logger().warning(response.message)
            return response
        response.success, response.path = True, str(path)
        response.message = f"saved model {model.name!r} as {request.name!r}"
        self.get_logger().info(f"{response.message} ({path})")
        return response

    async def _on_load(self, request: LoadModel.Request, response: LoadModel.Response):
        response.success, response.message, response.path = await self._in_thread(
            self._load_named, request.name)
        return response

    async def _on_reset(self, _request: Trigger.Request, response: Trigger.Response):
        response.success, response.message, _ = await self._in_thread(
            self._load_named, DEFAULT_MODEL)
        return response

    def _load_named(self, name: str) -> tuple[bool, str, str]:
        try:
            if self._calibrating:
                raise ValueError("a calibration is running; cancel it first")
            path = self._named_model(name)  # services take names, never paths
            if not path.exists():
                raise ValueError(f"no model {name!r} in {self.models_dir} or the shipped models")
            self._swap_to(self._build(path, name))
        except (ValueError, OSError, TimeoutError) as err:
            message = f"model {name!r} not loaded, the running model is kept: {err}"
            self.get_logger().warning(message)
            return False, message, ""
        message = f"running model {name!r} ({self._model.checkpoint.describe()})"
        self.get_logger().info(message)
        return True, message, str(path)

    # --- calibration --------------------------------------------------------------------

    def _on_goal(self, goal: Calibrate.Goal) -> GoalResponse:
        reason = None
        if goal.mode not in (Calibrate.Goal.MODE_REFERENCE, Calibrate.Goal.MODE_GUIDED):
            reason = f"unknown mode {goal.mode}"
        elif self._model is None:
            reason = "no model is loaded"
        elif goal.mode == Calibrate.Goal.MODE_GUIDED and any(
                p not in NAMED_POSES for p in goal.poses):
            reason = (f"unknown poses {[p for p in goal.poses if p not in NAMED_POSES]}; known: "
                      f"{sorted(NAMED_POSES)}")
        elif not 0.0 <= goal.validation_fraction < 1.0 or goal.duration_s < 0:
            reason = "validation_fraction must be in [0, 1) and duration_s >= 0"
        with self._goal_lock:
            if reason is None and self._calibrating:
                reason = "a calibration is already running; cancel it or wait for its result"
            if reason is None:
                self._calibrating = True
        if reason is not None:
            self._last_fault = f"calibration goal rejected: {reason}"
            self.get_logger().warning(self._last_fault)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    async def _execute_calibration(self, goal_handle) -> Calibrate.Result:
        """Executor side: the reference subscription lives here; the work in a thread."""
        goal: Calibrate.Goal = goal_handle.request
        track = reference_sub = None
        if goal.mode == Calibrate.Goal.MODE_REFERENCE:
            track = ReferenceTrack()
            reference_sub = self.create_subscription(
                JointState, goal.reference_topic or self._p["reference_topic"],
                lambda m: track.add(stamp_to_ns(m.header.stamp) * 1e-9, m.name, m.position),
                QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE),
                callback_group=self._slow_group)
        try:
            return await self._in_thread(self._calibrate, goal_handle, track)
        finally:
            if reference_sub is not None:
                self.destroy_subscription(reference_sub)

    def _calibrate(self, goal_handle, track: ReferenceTrack | None) -> Calibrate.Result:
        """Worker thread: record, fine-tune, swap; ends the goal in every case."""
        goal: Calibrate.Goal = goal_handle.request
        result = Calibrate.Result()
        try:
            mode = "reference" if goal.mode == Calibrate.Goal.MODE_REFERENCE else "guided"
            self.get_logger().info(f"calibration ({mode}) started")
            if track is not None:
                topic = goal.reference_topic or self._p["reference_topic"]
                emg, times, t0 = self._record_reference(goal_handle, goal, track, topic)
                targets, valid = track.interpolate(times)
            else:
                schedule = self._guided_schedule(goal)
                emg, times, t0 = self._record_guided(goal_handle, schedule)
                targets, valid = schedule.label_times(times - t0)
            valid &= self._break_mask(len(times))
            self._finish_calibration(goal_handle, goal, emg, targets, valid, result)
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

    def _guided_schedule(self, goal: Calibrate.Goal) -> GuidedSchedule:
        p = self._p
        try:
            return GuidedSchedule(
                list(goal.poses) or list(p["calibration_poses"]),
                hold_s=goal.hold_s or p["calibration_hold_s"],
                rest_s=goal.rest_s or p["calibration_rest_s"],
                transition_s=(goal.transition_s if goal.transition_s >= 0
                              else p["calibration_transition_s"]),
                repetitions=goal.repetitions or p["calibration_repetitions"])
        except ValueError as err:
            raise CalibrationAborted(str(err)) from None

    def _start_recording(self) -> CalibrationRecording:
        with self._lock:
            recorder = CalibrationRecording(self._model.checkpoint.in_channels)
            self._recorder = recorder
            self._record_breaks = []
        return recorder

    def _check_running(self, goal_handle, recorder: CalibrationRecording,
                       last: dict, what: str) -> None:
        """Raise CalibrationAborted on cancel or when data stopped arriving."""
        if goal_handle.is_cancel_requested:
            raise CalibrationAborted("cancelled")
        now = time.monotonic()
        if recorder.samples != last["samples"]:
            last["samples"], last["t"] = recorder.samples, now
        elif now - last["t"] > self._p["calibration_data_timeout_s"]:
            raise CalibrationAborted(f"no usable EMG for {now - last['t']:.1f} s ({what})")

    def _record_reference(self, goal_handle, goal, track: ReferenceTrack, topic: str):
        duration = goal.duration_s or self._p["calibration_duration_s"]
        recorder = self._start_recording()
        feedback = Calibrate.Feedback(phase=Calibrate.Feedback.PHASE_WAITING,
                                      seconds_total=duration)
        last = {"samples": 0, "t": time.monotonic()}
        wait_start = time.monotonic()
        while recorder.samples == 0 or len(track) == 0:
            if goal_handle.is_cancel_requested:
                raise CalibrationAborted("cancelled")
            if time.monotonic() - wait_start > self._p["calibration_data_timeout_s"]:
                raise CalibrationAborted(
                    f"no {'EMG on emg/raw' if recorder.samples == 0 else 'reference on ' + topic}"
                    f" within {self._p['calibration_data_timeout_s']:.0f} s")
            goal_handle.publish_feedback(feedback)
            time.sleep(0.1)
        feedback.phase = Calibrate.Feedback.PHASE_RECORDING
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < duration:
            self._check_running(goal_handle, recorder, last, "reference calibration")
            feedback.seconds_recorded = elapsed
            goal_handle.publish_feedback(feedback)
            time.sleep(0.1)
        with self._lock:
            self._recorder = None
        emg, times = recorder.arrays()
        return emg, times, times[0] if len(times) else 0.0

    def _record_guided(self, goal_handle, schedule: GuidedSchedule):
        recorder = self._start_recording()
        feedback = Calibrate.Feedback(phase=Calibrate.Feedback.PHASE_RECORDING,
                                      seconds_total=schedule.duration_s)
        t0 = self.get_clock().now().nanoseconds * 1e-9
        last = {"samples": 0, "t": time.monotonic()}
        while True:
            t = self.get_clock().now().nanoseconds * 1e-9 - t0
            state = schedule.state_at(t)
            if state.phase == PHASE_DONE:
                break
            self._check_running(goal_handle, recorder, last, "guided calibration")
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

    def _break_mask(self, n: int) -> np.ndarray:
        """False for the first window after each stream restart inside the recording."""
        mask = np.ones(n, dtype=bool)
        ckpt = self._model.checkpoint
        span = int(math.ceil(ckpt.window_s * ckpt.sample_rate_hz))
        for start in self._record_breaks:
            mask[start:start + span] = False
        return mask

    def _finish_calibration(self, goal_handle, goal, emg, targets, valid, result) -> None:
        from .training import DataError, FinetuneSettings, finetune

        p = self._p
        running = self._model
        settings = FinetuneSettings(
            epochs=goal.epochs or p["calibration_epochs"],
            adapter_epochs=p["calibration_adapter_epochs"],
            learning_rate=goal.learning_rate or p["calibration_learning_rate"],
            unfreeze_last_lstm=goal.unfreeze_last_lstm,
            validation_fraction=goal.validation_fraction
            or p["calibration_validation_fraction"])
        feedback = Calibrate.Feedback(phase=Calibrate.Feedback.PHASE_TRAINING,
                                      epochs_total=settings.epochs
                                      + settings.adapter_epochs,
                                      seconds_recorded=float(len(emg)) / (
                                          running.checkpoint.sample_rate_hz or 1.0))
        goal_handle.publish_feedback(feedback)

        def progress(epoch: int, total: int, loss: float) -> None:
            feedback.epoch, feedback.epochs_total, feedback.loss = epoch, total, float(loss)
            goal_handle.publish_feedback(feedback)

        if int(valid.sum()) == 0:
            raise CalibrationAborted(f"too little usable calibration data: {len(emg)} EMG "
                                     "samples, none labelled")
        try:
            outcome = finetune(running.checkpoint, emg, targets, settings, label_mask=valid,
                               progress_cb=progress,
                               should_stop=lambda: goal_handle.is_cancel_requested)
        except DataError as err:
            raise CalibrationAborted(str(err)) from None
        if outcome.cancelled:
            raise CalibrationAborted("cancelled")
        feedback.phase = Calibrate.Feedback.PHASE_EVALUATING
        goal_handle.publish_feedback(feedback)
        result.error_before_rad = float(outcome.error_before_rad)
        result.error_after_rad = float(outcome.error_after_rad)
        result.seconds_used = float(outcome.seconds_used)
        result.success = True
        if outcome.accepted:
            name = goal.save_as or f"{running.name}+calibrated"
            if goal.save_as:
                path = model_path(self.models_dir, goal.save_as, CHECKPOINT_EXTENSION)
                save_checkpoint(outcome.checkpoint, path)
                result.model_path = str(path)
            self._swap_to(self._build(Path(result.model_path or "(not saved)"), name,
                                      outcome.checkpoint))
            result.model_swapped = True
            result.message = (f"calibrated: held-out error {outcome.error_before_rad:.4f} -> "
                              f"{outcome.error_after_rad:.4f} rad; now running {name!r}")
        else:
            result.message = (f"kept the running model: the fine-tuned one was not better "
                              f"({outcome.error_before_rad:.4f} -> "
                              f"{outcome.error_after_rad:.4f} rad held-out error)")
        self.get_logger().info(result.message)



def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    try:
        node = EmgPoseNode()
    except ValueError as err:
        print(f"emg_pose: {err}", file=sys.stderr)
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
