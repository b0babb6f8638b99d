"""emg_driver: the ROS 2 node publishing emg/raw from a serial, simulated or replayed armband.

A lifecycle node (configure: check parameters, open the source; activate: stream;
deactivate: pause; cleanup: release). With ``autostart`` (default true) it configures and
activates itself, so ``ros2 run emg_driver emg_driver`` just streams the simulator.

Only wiring lives here; decoding, timing, simulation and file formats are in the pure
modules (protocols, clock, stream, sim, replay, sources, params).

    ros2 run emg_driver emg_driver --ros-args -p source:=serial -p port:=/dev/ttyACM0
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from emg_interfaces.msg import EMG, CalibrationPrompt
from emg_pose_node.hand_model import JOINT_NAMES

from .emg_msg import chunk_to_msg, ns_to_stamp
from .params import PARAMS, DriverSettings, build_settings, check_value
from .replay import load_recording
from .sim import ArmbandSimulator
from .sources import ReplaySource, SerialConfig, SerialSource, SimSource
from .stream import Chunk

NODE_NAME = "emg_driver"
EMG_TOPIC = "emg/raw"
REFERENCE_TOPIC = "hand/reference/joint_states"
PROMPT_TOPIC = "calibration/prompt"


def emg_qos(depth: int) -> QoSProfile:
    """emg/raw: reliable, keep-last ``depth`` (one second of chunks), volatile."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class EmgDriverNode(LifecycleNode):
    """Lifecycle node wiring parameters, topics and /diagnostics to one EMG source."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMS:
            self.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description, dynamic_typing=True))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.settings: DriverSettings | None = None
        self.source: SimSource | ReplaySource | SerialSource | None = None
        self._emg_pub = None
        self._ref_pub = None
        self._prompt_sub = None
        self._prompt_pose = ""
        self._timer = None
        self._problem = ""  # why the node is not streaming (for /diagnostics)
        self._stats = {"chunks": 0, "samples": 0, "gaps": 0}
        self._next_index: int | None = None
        self._period_samples = 0
        self._period_start = time.monotonic()
        self._last_counts: dict[str, int] = {}
        self._rate_measured = 0.0
        self._active = False
        self._stats_lock = threading.Lock()  # the serial reader thread publishes too
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
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

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        for p in params:
            try:
                check_value(p.name, p.value)
            except ValueError as err:
                return SetParametersResult(successful=False, reason=str(err))
        if self.source is not None:
            names = ", ".join(p.name for p in params)
            self.get_logger().info(f"parameter change ({names}) takes effect at the next "
                                   f"configure (cleanup + configure + activate)")
        return SetParametersResult(successful=True)

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
        """The simulated wearer does what a guided calibration asks."""
        if not isinstance(self.source, SimSource):
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
            if pose:
                self.source.sim.command_pose(pose)
            else:
                self.source.sim.release_pose()
        except ValueError as err:
            self.get_logger().warning(f"cannot follow prompt: {err}")
            return
        self.get_logger().info(f"simulated wearer: {pose or 'free motion'}")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            settings = build_settings(self._values())
            source = self._make_source(settings)
        except Exception as err:  # any reason (bad value, unreadable file): report, stay up
            self._problem = f"configure failed: {err}"
            self.get_logger().error(self._problem)
            return TransitionCallbackReturn.FAILURE
        self.settings = settings
        self.source = source
        self._problem = ""
        depth = settings.qos_depth(source.chunk_len,
                                   getattr(source, "emit_rate_hz", source.sample_rate_hz))
        self._emg_pub = self.create_lifecycle_publisher(EMG, EMG_TOPIC, emg_qos(depth))
        if settings.publish_reference and getattr(source, "has_reference", False):
            # one pose per chunk: the same 1 s of history as emg/raw
            self._ref_pub = self.create_lifecycle_publisher(JointState, REFERENCE_TOPIC,
                                                            emg_qos(depth))
        if isinstance(source, SimSource) and settings.values["follow_prompts"]:
            self._prompt_sub = self.create_subscription(
                CalibrationPrompt, PROMPT_TOPIC, self._on_prompt,
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        if isinstance(source, SerialSource):
            problem = source.open()
            if problem:
                # not fatal: the armband may be plugged in later; the reader keeps retrying
                self._problem = problem
                self.get_logger().error(problem + "; will keep retrying")
            source.start()
        self._reset_stats()
        self.get_logger().info(
            f"configured: source={settings.source} {source.num_channels} ch at "
            f"{source.sample_rate_hz:g} Hz, {source.chunk_len} samples per chunk on "
            f"{self.resolve_topic_name(EMG_TOPIC)} (reliable, depth {depth})")
        return TransitionCallbackReturn.SUCCESS

    def _make_source(self, s: DriverSettings):
        v = s.values
        if s.source == "sim":
            sim = ArmbandSimulator(s.sim_config(), seed=v["seed"])
            src = SimSource(sim, s.chunk_len())
        elif s.source == "replay":
            rec = load_recording(v["file"], v["format"], scale_v_per_unit=v["scale_v_per_unit"],
                                 sample_rate_hz=v["replay_sample_rate_hz"])
            src = ReplaySource(rec, s.chunk_len(rec.sample_rate_hz), speed=v["rate"],
                               loop=v["loop"])
            self.get_logger().info(
                f"replaying {rec.path} ({rec.format}, {rec.num_channels} ch, "
                f"{rec.sample_rate_hz:.2f} Hz, {rec.duration_s:.1f} s"
                f"{', with joint angles' if rec.joint_angles is not None else ''})")
            if rec.nonfinite_replaced:
                self.get_logger().warning(
                    f"{rec.nonfinite_replaced} NaN/inf values in {rec.path} replaced by 0")
        else:
            cfg = SerialConfig(
                port=v["port"], baud_rate=v["baud_rate"], protocol=v["protocol"],
                sample_rate_hz=s.sample_rate_hz, chunk_len=s.chunk_len(),
                text=s.text_config(), binary=s.binary_config(), read_timeout_s=v["timeout_s"],
                reconnect_max_s=v["reconnect_max_s"])
            # chunks are published from the reader thread (publishers are thread-safe)
            src = SerialSource(cfg, clock=self._arrival_clock(), on_chunks=self._publish,
                               on_event=self._log_event)
        if s.channel_names:
            if len(s.channel_names) != src.num_channels:
                raise ValueError(f"channel_names has {len(s.channel_names)} names but the "
                                 f"source has {src.num_channels} channels")
            src.channel_names = list(s.channel_names)
        return src

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
        if isinstance(src, SerialSource):
            src.set_streaming(True)
        else:
            src.start(self.get_clock().now().nanoseconds)
            period = max(0.001, self.settings.chunk_ms * 1e-3 / getattr(src, "speed", 1.0))
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
        if isinstance(self.source, SerialSource):
            self.source.set_streaming(False)
        elif self.source is not None:
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
        if isinstance(self.source, SerialSource):
            self.source.close()
        self.source = None
        for pub in (self._emg_pub, self._ref_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._emg_pub = self._ref_pub = None
        if self._prompt_sub is not None:
            self.destroy_subscription(self._prompt_sub)
        self._prompt_sub = None
        self._prompt_pose = ""

    def destroy_node(self) -> None:
        if isinstance(self.source, SerialSource):
            self.source.close()
        super().destroy_node()

    # --- streaming --------------------------------------------------------------------

    def _on_timer(self) -> None:
        src = self.source
        if src is None or isinstance(src, SerialSource):
            return
        self._publish(src.poll(self.get_clock().now().nanoseconds))
        if isinstance(src, ReplaySource) and src.finished and self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
            self.get_logger().info(f"replay finished after {src.next_index} samples")

    def _publish(self, chunks: list[Chunk]) -> None:
        if not chunks or not self._active or self._emg_pub is None:
            return
        src = self.source
        assert src is not None and self.settings is not None
        rate = src.sample_rate_hz
        names = src.channel_names
        frame = self.settings.frame_id
        emit_rate = getattr(src, "emit_rate_hz", rate)
        for chunk in chunks:
            self._emg_pub.publish(chunk_to_msg(chunk.data, chunk.first_index, chunk.stamp_ns,
                                               rate, names, frame))
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
                js.header.stamp = ns_to_stamp(chunk.stamp_ns + int(round(last * 1e9 / emit_rate)))
                js.header.frame_id = ""
                js.name = list(JOINT_NAMES)
                js.position = chunk.joint_angles[last].astype(float).tolist()
                self._ref_pub.publish(js)

    # --- diagnostics ------------------------------------------------------------------

    def _reset_stats(self) -> None:
        self._stats = {"chunks": 0, "samples": 0, "gaps": 0}
        self._last_counts = {}

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
            nominal = getattr(src, "emit_rate_hz", src.sample_rate_hz)
            values.update({
                "source": self.settings.source,
                "sample_rate_nominal_hz": round(src.sample_rate_hz, 3),
                "sample_rate_measured_hz": round(self._rate_measured, 2),
                "num_channels": src.num_channels,
                "chunks_published": stats["chunks"],
                "samples_published": stats["samples"],
                "stream_gaps": stats["gaps"],
            })
            if isinstance(src, SerialSource):
                st.hardware_id = src.config.port
                values.update(src.status())
                warn = self._serial_warnings(values)
                if not src.reader.connected:
                    level = DiagnosticStatus.ERROR
                    message = src.reader.last_error or f"serial port {src.config.port} lost"
                elif warn and self._active:
                    level, message = DiagnosticStatus.WARN, "; ".join(warn)
                else:
                    message = f"{state}, connected"
            else:
                st.hardware_id = "simulated armband" if isinstance(src, SimSource) else \
                    src.rec.path
                if isinstance(src, ReplaySource):
                    values.update({"replay_loops": src.loops_completed,
                                   "replay_finished": src.finished,
                                   "replay_speed": src.speed})
                    nominal = 0.0 if src.finished else nominal
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

    def _serial_warnings(self, values: dict[str, Any]) -> list[str]:
        """Problems new since the last report (errors that keep growing keep warning)."""
        watched = ("parse_errors", "column_errors", "nonfinite_values", "overlong_lines",
                   "crc_errors", "header_errors", "dropped_samples")
        out = []
        for key in watched:
            now = int(values.get(key, 0))
            new = now - self._last_counts.get(key, 0)
            self._last_counts[key] = now
            if new > 0:
                out.append(f"{new} new {key.replace('_', ' ')}")
        return out


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
