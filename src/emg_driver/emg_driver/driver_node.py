"""emg_driver: the ROS 2 node publishing emg/raw from a serial, simulated or replayed armband.

A lifecycle node (configure: check parameters, open the source; activate: stream;
deactivate: pause; cleanup: release). With ``autostart`` (default true) it configures and
activates itself, so ``ros2 run emg_driver emg_driver`` just streams the simulator.

Only wiring lives here: every source is a :class:`~emg_driver.sources.Source` (made once by
``make_source``); decoding, timing, simulation are in the pure modules (protocols, clock,
stream, sim, sources, params), file formats in ``emg_hand_core.recordings``.

    ros2 run emg_driver emg_driver --ros-args -p source:=serial -p port:=/dev/ttyACM0
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu, JointState

from emg_hand_core.emg_codec import encode_emg, rclpy_types, split_ns
from emg_hand_core.hand_model import JOINT_NAMES
from emg_hand_core.ros_params import declare_parameters, on_set_parameters
from emg_hand_core.topics import (
    DIAGNOSTICS_TOPIC,
    EMG_TOPIC,
    IMU_TOPIC,
    PROMPT_TOPIC,
    REFERENCE_TOPIC,
)
from emg_interfaces.msg import EMG, CalibrationPrompt

from .params import PARAMS, DriverSettings, build_settings, check_value
from .sources import Source, make_source
from .stream import Chunk, ImuReading

NODE_NAME = "emg_driver"
_LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN,
           "error": DiagnosticStatus.ERROR}


def emg_qos(depth: int) -> QoSProfile:
    """emg/raw: reliable, keep-last ``depth`` (one second of chunks), volatile."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class EmgDriverNode(LifecycleNode):
    """Lifecycle node wiring parameters, topics and /diagnostics to one EMG source."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        # a start value refused here keeps the node unconfigured, with the reason, until set
        _, self._param_problems = declare_parameters(self, PARAMS, strict=False)
        for problem in self._param_problems.values():
            self.get_logger().error(problem)
        self.add_on_set_parameters_callback(on_set_parameters(PARAMS, self._on_parameters_set))
        self.settings: DriverSettings | None = None
        self.source: Source | None = None
        self._emg_pub = None
        self._ref_pub = None
        self._imu_pub = None
        self._prompt_sub = None
        self._prompt_pose = ""
        self._timer = None
        self._problem = ""  # why the node is not streaming (for /diagnostics)
        self._stats = {"chunks": 0, "samples": 0, "gaps": 0}
        self._next_index: int | None = None
        self._period_samples = 0
        self._period_start = time.monotonic()
        self._rate_measured = 0.0
        self._active = False
        self._stats_lock = threading.Lock()  # the serial reader thread publishes too
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        period = self._initial_diag_period()
        self._diag_timer = self.create_timer(period, self._publish_diagnostics)
        if self.get_parameter("autostart").value is True:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    def _initial_diag_period(self) -> float:
        try:
            return check_value("diagnostics_period_s",
                               self.get_parameter("diagnostics_period_s").value)
        except ValueError as err:
            self.get_logger().error(str(err))
            return 1.0

    # --- parameters -------------------------------------------------------------------

    def _on_parameters_set(self, changed: dict[str, Any]) -> None:
        for name in changed:
            self._param_problems.pop(name, None)
        if self.source is not None:
            self.get_logger().info(f"parameter change ({', '.join(changed)}) takes effect at "
                                   "the next configure (cleanup + configure + activate)")

    def _values(self) -> dict[str, Any]:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMS}

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _arrival_clock(self):
        """Clock for serial arrival times: the system clock (what ROS time is, unless
        use_sim_time is set; then the node's clock), read cheaply on the reader thread."""
        use_sim_time = self.get_parameter("use_sim_time").value
        return self._now_s if use_sim_time else time.time

    # --- lifecycle --------------------------------------------------------------------

    def _on_prompt(self, msg: CalibrationPrompt) -> None:
        """The source does what a guided calibration asks (the simulated wearer holds the
        pose, a Myo vibrates)."""
        if self.source is None:
            return
        if msg.phase == CalibrationPrompt.PHASE_DONE:
            pose = ""
        elif msg.phase == CalibrationPrompt.PHASE_HOLD:
            pose = msg.pose_name
        else:
            pose = "rest"
        if pose == self._prompt_pose:
            return
        self._prompt_pose = pose
        try:
            self.source.follow_prompt(pose)
        except ValueError as err:
            self.get_logger().warning(f"cannot follow prompt: {err}")
            return
        self.get_logger().info(f"calibration prompt passed to the source: {pose or 'done'}")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            if self._param_problems:
                raise ValueError("; ".join(self._param_problems.values()))
            settings = build_settings(self._values())
            source = make_source(settings, arrival_clock=self._arrival_clock(),
                                 on_chunks=self._publish, on_event=self._log_event,
                                 on_imu=self._publish_imu)
        except Exception as err:  # any reason (bad value, unreadable file): report, stay up
            self._problem = f"configure failed: {err}"
            self.get_logger().error(self._problem)
            return TransitionCallbackReturn.FAILURE
        self.settings = settings
        self.source = source
        self._problem = ""
        depth = settings.qos_depth(source.chunk_len, source.emit_rate_hz)
        self._emg_pub = self.create_lifecycle_publisher(EMG, EMG_TOPIC, emg_qos(depth))
        if settings.publish_reference and source.has_reference:
            # one pose per chunk: the same 1 s of history as emg/raw
            self._ref_pub = self.create_lifecycle_publisher(JointState, REFERENCE_TOPIC,
                                                            emg_qos(depth))
        if source.has_imu:
            self._imu_pub = self.create_lifecycle_publisher(Imu, IMU_TOPIC, emg_qos(100))
        if source.follows_prompts:
            self._prompt_sub = self.create_subscription(
                CalibrationPrompt, PROMPT_TOPIC, self._on_prompt,
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        problem = source.open()
        if problem:
            # not fatal: the armband may be plugged in later; the source keeps retrying
            self._problem = problem
            self.get_logger().error(problem + "; will keep retrying")
        self._reset_stats()
        self.get_logger().info(
            f"configured: {source.describe()} on {self.resolve_topic_name(EMG_TOPIC)} "
            f"(reliable, depth {depth})")
        return TransitionCallbackReturn.SUCCESS

    def _log_event(self, level: str, message: str) -> None:
        # one call site per severity: rclpy refuses a call site that changes severity
        if level == "error":
            self.get_logger().error(message)
        elif level == "warn":
            self.get_logger().warning(message)
        else:
            self.get_logger().info(message)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        src = self.source
        assert src is not None and self.settings is not None
        self._next_index = None
        src.start(self.get_clock().now().nanoseconds)
        if not src.pushes:
            period = max(0.001, src.chunk_len / src.emit_rate_hz)
            self._timer = self.create_timer(period, self._on_timer)
        self._active = True
        self._period_start, self._period_samples = time.monotonic(), 0
        self.get_logger().info("active: streaming")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_streaming()
        self.get_logger().info("inactive: paused")
        return super().on_deactivate(state)

    def _stop_streaming(self) -> None:
        self._active = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self.source is not None:
            self.source.stop()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: source released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._stop_streaming()
        if self.source is not None:
            self.source.close()
        self.source = None
        for pub in (self._emg_pub, self._ref_pub, self._imu_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._emg_pub = self._ref_pub = self._imu_pub = None
        if self._prompt_sub is not None:
            self.destroy_subscription(self._prompt_sub)
        self._prompt_sub = None
        self._prompt_pose = ""

    def destroy_node(self) -> None:
        if self.source is not None:
            self.source.close()
        super().destroy_node()

    # --- streaming --------------------------------------------------------------------

    def _on_timer(self) -> None:
        src = self.source
        if src is None:
            return
        self._publish(src.poll(self.get_clock().now().nanoseconds))
        if src.finished and self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
            self.get_logger().info(f"{src.kind} finished after {self._stats['samples']} "
                                   "samples")

    def _publish(self, chunks: list[Chunk]) -> None:
        if not chunks or not self._active or self._emg_pub is None:
            return
        src = self.source
        assert src is not None and self.settings is not None
        rate = src.sample_rate_hz
        names = src.channel_names
        frame = self.settings.frame_id
        emit_rate = src.emit_rate_hz
        types = rclpy_types()
        for chunk in chunks:
            self._emg_pub.publish(encode_emg(types, chunk.data, chunk.first_index,
                                             chunk.stamp_ns, rate, names, frame))
            with self._stats_lock:
                if self._next_index is not None and chunk.first_index != self._next_index:
                    self._stats["gaps"] += 1
                self._next_index = chunk.end_index
                self._stats["chunks"] += 1
                self._stats["samples"] += chunk.num_samples
                self._period_samples += chunk.num_samples
            if self._ref_pub is not None and chunk.joint_angles is not None:
                js = JointState()
                last = chunk.num_samples - 1
                sec, nanosec = split_ns(chunk.stamp_ns + int(round(last * 1e9 / emit_rate)))
                js.header.stamp.sec, js.header.stamp.nanosec = sec, nanosec
                js.header.frame_id = ""
                js.name = list(JOINT_NAMES)
                js.position = chunk.joint_angles[last].astype(float).tolist()
                self._ref_pub.publish(js)

    def _publish_imu(self, readings: list[ImuReading]) -> None:
        """imu/raw (REP-103, REP-145): unmeasured parts get covariance[0] = -1."""
        pub = self._imu_pub
        if pub is None or not self._active or self.settings is None:
            return
        frame = self.settings.frame_id
        for r in readings:
            msg = Imu()
            msg.header.stamp.sec, msg.header.stamp.nanosec = split_ns(r.stamp_ns)
            msg.header.frame_id = frame
            if r.orientation_xyzw is None:
                msg.orientation_covariance[0] = -1.0
            else:
                q = msg.orientation
                q.x, q.y, q.z, q.w = r.orientation_xyzw
            for value, vector, cov in (
                    (r.angular_velocity, msg.angular_velocity, msg.angular_velocity_covariance),
                    (r.linear_acceleration, msg.linear_acceleration,
                     msg.linear_acceleration_covariance)):
                if value is None:
                    cov[0] = -1.0
                else:
                    vector.x, vector.y, vector.z = value
            pub.publish(msg)

    # --- diagnostics ------------------------------------------------------------------

    def _reset_stats(self) -> None:
        self._stats = {"chunks": 0, "samples": 0, "gaps": 0}

    def _publish_diagnostics(self) -> None:
        with self._stats_lock:
            now = time.monotonic()
            elapsed = max(now - self._period_start, 1e-6)
            self._rate_measured = self._period_samples / elapsed
            self._period_start, self._period_samples = now, 0
            stats = dict(self._stats)
        st = DiagnosticStatus()
        st.name = f"{self.get_name()}: EMG source"
        src = self.source
        state = "active" if self._active else ("inactive" if src is not None else "unconfigured")
        values: dict[str, Any] = {"state": state}
        level, message = DiagnosticStatus.OK, state
        if src is None:
            st.hardware_id = "none"
            if self._problem:
                level, message = DiagnosticStatus.ERROR, self._problem
        else:
            assert self.settings is not None
            nominal = src.expected_rate_hz
            st.hardware_id = src.hardware_id
            values.update({
                "source": src.kind,
                "sample_rate_nominal_hz": round(src.sample_rate_hz, 3),
                "sample_rate_measured_hz": round(self._rate_measured, 2),
                "num_channels": src.num_channels,
                "chunks_published": stats["chunks"],
                "samples_published": stats["samples"],
                "stream_gaps": stats["gaps"],
            })
            values.update(src.status())
            health = src.health(self._active)
            if health is not None:
                level = _LEVELS[health[0]]
                message = health[1] if health[0] != "ok" else f"{state}, {health[1]}"
            if (self._active and level == DiagnosticStatus.OK and nominal > 0
                    and abs(self._rate_measured - nominal) > 0.1 * nominal
                    and stats["samples"] > 0):
                level = DiagnosticStatus.WARN
                message = (f"measured {self._rate_measured:.1f} Hz vs nominal {nominal:.1f} Hz")
        st.level = level
        st.message = message
        st.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [st]
        self._diag_pub.publish(arr)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = EmgDriverNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
