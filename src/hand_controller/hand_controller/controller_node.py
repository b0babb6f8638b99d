"""Node ``hand_controller``: drives a robot or prosthetic hand from ``hand/joint_states``
(mode ``pose``) or from gesture decisions on ``hand/gesture`` (mode ``grip``).

Thin wiring around :class:`hand_controller.safety.ControllerCore`: parameters, the input
subscription, the command output (ros2_control forward position controller, a
JointTrajectory, or the serial frame), ``robot_hand/joint_states``, the ``~/enable`` and
``~/stop`` services, the control-period timer that runs the watchdog, and ``/diagnostics``.
Safety times use a steady (monotonic) clock; message stamps use the node's clock.
"""

from __future__ import annotations

import collections
import sys
import time

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from emg_hand_core.params import Param, ParamError, ParamTable
from emg_hand_core.ros_params import declare_parameters, on_set_parameters
from emg_hand_core.topics import CONTACTS_TOPIC, GESTURE_TOPIC, JOINT_STATES_TOPIC
from emg_interfaces.msg import Gesture, HandContacts

from .profile import (
    HandProfile,
    ProfileError,
    installed_profile_dirs,
    load_profile,
    resolve_profile_path,
)
from .safety import MODES, WATCHDOG_ACTIONS, Command, ControllerCore, State
from .serial_frame import FLAG_ENABLED, FLAG_STOP, FLAG_WATCHDOG, encode_command

OUTPUTS = ("forward_position", "joint_trajectory", "serial", "none")
DEFAULT_COMMAND_TOPICS = {
    "forward_position": "forward_position_controller/commands",
    "joint_trajectory": "joint_trajectory_controller/joint_trajectory",
}
LATENCY_WINDOW = 10_000
STAMP_RESYNC_S = 0.05

PARAMETERS = ParamTable((
    Param("profile", "prosthetic_6", "Target hand: a shipped profile name (prosthetic_6, "
          "four_finger_16, human) or the path of a profile YAML file.", read_only=True,
          check=lambda v: None if v else "must not be empty"),
    Param("output", "forward_position", "Command output: forward_position (std_msgs/"
          "Float64MultiArray for a ros2_control forward position controller), "
          "joint_trajectory (trajectory_msgs/JointTrajectory, one point), serial (the "
          "documented frame on serial_port) or none (robot_hand/joint_states only).",
          choices=OUTPUTS, read_only=True),
    Param("mode", "pose", "Input: pose (follow the hand pose on hand/joint_states) or grip "
          "(pattern-recognition control: move toward the profile's posture of the class on "
          "hand/gesture at level x max velocity; rest or rejected holds).", choices=MODES,
          read_only=True),
    Param("command_topic", "", "Command topic; empty: forward_position_controller/commands or "
          "joint_trajectory_controller/joint_trajectory by output.", read_only=True),
    Param("control_rate_hz", 100.0, "Control period for the watchdog and the rate limiter's "
          "largest step; a trajectory point's time_from_start is one period.", unit="Hz",
          min=1.0, max=1000.0, read_only=True),
    Param("input_timeout_ms", 200, "Input older than this trips the watchdog.", unit="ms",
          min=1, max=60_000),
    Param("watchdog_action", "safe_posture", "On stale input: safe_posture (the profile's) "
          "or hold.", choices=WATCHDOG_ACTIONS),
    Param("lowpass_cutoff_hz", 0.0, "First-order low-pass on the target before rate limiting; "
          "0 disables it.", unit="Hz", min=0.0, max=1000.0),
    Param("contact_force_limit_n", 0.0, "A finger pressing on something with at least this "
          "normal force (robot_hand/contacts, e.g. from hand_sim) stops closing; 0: contacts "
          "are not used.", unit="N", min=0.0, max=1000.0),
    Param("start_enabled", False, "Command the hand from start-up. Default false: call "
          "~/enable (std_srvs/SetBool) first.", read_only=True),
    Param("serial_port", "", "Serial device for output serial, e.g. /dev/ttyACM0.",
          read_only=True),
    Param("serial_baud_rate", 115200, "Serial baud rate.", unit="bit/s", min=300,
          max=4_000_000, read_only=True),
    Param("diagnostics_period_s", 1.0, "Period of the /diagnostics status.", unit="s",
          min=0.05, max=60.0),
))


def _check(values: dict) -> list[str]:
    """Problems of combinations (each value is checked by PARAMETERS)."""
    if values.get("output") == "serial" and not values.get("serial_port"):
        return ["output serial needs serial_port"]
    return []


class HandController(Node):
    def __init__(self, **kwargs):
        super().__init__("hand_controller", **kwargs)
        p, _ = declare_parameters(self, PARAMETERS)  # ParamError: refused with the reason
        problems = _check(p)
        if problems:
            raise ParamError("; ".join(problems))
        self.profile: HandProfile = load_profile(
            resolve_profile_path(p["profile"], installed_profile_dirs()))
        self.output = p["output"]
        self.period_s = 1.0 / p["control_rate_hz"]
        self.core = ControllerCore(
            self.profile, input_timeout_s=p["input_timeout_ms"] / 1000.0, period_s=self.period_s,
            lowpass_cutoff_hz=p["lowpass_cutoff_hz"], watchdog_action=p["watchdog_action"],
            t_s=time.monotonic_ns() * 1e-9, contact_force_limit_n=p["contact_force_limit_n"],
            mode=p["mode"])
        self.input_topic = GESTURE_TOPIC if p["mode"] == "grip" else JOINT_STATES_TOPIC
        self._serial_port = p["serial_port"]
        self._serial_baud = p["serial_baud_rate"]
        self.serial = None
        self._serial_error = ""
        self._sequence = 0
        self._stamp_offset_ns: int | None = None
        self._latency_s: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self._reported_rejections = 0
        self._logged_trips = 0

        self.command_topic = p["command_topic"] or DEFAULT_COMMAND_TOPICS.get(self.output, "")
        self.command_pub = None
        if self.output == "forward_position":
            self.command_pub = self.create_publisher(Float64MultiArray, self.command_topic, 10)
        elif self.output == "joint_trajectory":
            self.command_pub = self.create_publisher(JointTrajectory, self.command_topic, 10)
        elif self.output == "serial":
            self._open_serial()
        self.state_pub = self.create_publisher(JointState, "robot_hand/joint_states", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if p["mode"] == "grip":
            self.create_subscription(Gesture, GESTURE_TOPIC, self._on_gesture,
                                     qos_profile_sensor_data)
        else:
            self.create_subscription(JointState, JOINT_STATES_TOPIC, self._on_joint_states,
                                     qos_profile_sensor_data)
        self.create_subscription(HandContacts, CONTACTS_TOPIC, self._on_contacts,
                                 qos_profile_sensor_data)
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.period_s, self._on_tick, clock=self._steady)
        self._diag_timer = self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        self.add_on_set_parameters_callback(on_set_parameters(PARAMETERS, self._apply))

        if p["start_enabled"]:
            ok, message = self._enable()
            if not ok:
                self.get_logger().error(f"start_enabled: {message}")
        where = self.command_topic if self.command_pub else (
            f"serial {self._serial_port}" if self.output == "serial" else "robot_hand/joint_states")
        self.get_logger().info(
            f"hand_controller: profile {self.profile.name} ({self.profile.num_joints} joints) "
            f"from {self.input_topic} -> {self.output} on {where}; "
            + ("enabled" if self.core.enabled else "disabled, call ~/enable"))

    # --- parameters -------------------------------------------------------------------------
    def _apply(self, values: dict) -> None:
        """Run-time changes (already checked)."""
        if "input_timeout_ms" in values:
            self.core.input_timeout_s = values["input_timeout_ms"] / 1000.0
        if "watchdog_action" in values:
            self.core.watchdog_action = values["watchdog_action"]
        if "lowpass_cutoff_hz" in values:
            self.core.set_lowpass_cutoff_hz(values["lowpass_cutoff_hz"])
        if "contact_force_limit_n" in values:
            self.core.contact_force_limit_n = values["contact_force_limit_n"]
        if "diagnostics_period_s" in values:
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(values["diagnostics_period_s"],
                                                 self._publish_diagnostics)

    # --- serial -----------------------------------------------------------------------------
    def _open_serial(self) -> bool:
        if self.serial is not None:
            return True
        try:
            from .serial_backend import SerialBackend

            self.serial = SerialBackend(self._serial_port, self._serial_baud)
        except (OSError, ValueError, ImportError) as exc:  # serial.SerialException is OSError
            self._serial_error = f"cannot open serial port {self._serial_port}: {exc}"
            self.get_logger().error(self._serial_error)
            return False
        self._serial_error = ""
        return True

    # --- commands ---------------------------------------------------------------------------
    def _now(self) -> tuple[Time, float]:
        """(ROS time for stamps, steady seconds for safety) of one instant.

        The stamp is the steady time plus an offset to the node's clock, re-measured only
        when the two drift apart by more than ``STAMP_RESYNC_S`` (a clock step, sim time).
        So stamp differences equal the safety filter's time differences, and consumers can
        check the velocity limit against robot_hand/joint_states stamps.
        """
        t_ns = time.monotonic_ns()
        offset_ns = self.get_clock().now().nanoseconds - t_ns
        if self._stamp_offset_ns is None or \
                abs(offset_ns - self._stamp_offset_ns) > STAMP_RESYNC_S * 1e9:
            self._stamp_offset_ns = offset_ns
        stamp = Time(nanoseconds=t_ns + self._stamp_offset_ns,
                     clock_type=self.get_clock().clock_type)
        return stamp, t_ns * 1e-9

    def _send(self, cmd: Command, stamp, on_command_sent=None) -> None:
        """Publish one command, then robot_hand/joint_states.

        ``stamp`` is the ROS time read together with the command's steady time, so the
        robot_hand/joint_states stamps and the velocity limit share one time base.
        ``on_command_sent`` runs right after the command went out (latency measurement).
        """
        positions = cmd.positions.tolist()
        if self.output == "forward_position":
            self.command_pub.publish(Float64MultiArray(data=positions))
        elif self.output == "joint_trajectory":
            sec = int(self.period_s)
            msg = JointTrajectory(joint_names=list(self.profile.joint_names), points=[
                JointTrajectoryPoint(positions=positions, time_from_start=Duration(
                    sec=sec, nanosec=int(round((self.period_s - sec) * 1e9))))])
            self.command_pub.publish(msg)  # header.stamp zero: start now
        elif self.output == "serial" and self.serial is not None:
            flags = (0 if cmd.stop else FLAG_ENABLED) | (FLAG_WATCHDOG if cmd.watchdog else 0) \
                | (FLAG_STOP if cmd.stop else 0)
            self.serial.submit(encode_command(cmd.positions, self._sequence, flags))
            self._sequence = (self._sequence + 1) & 0xFF
        if on_command_sent is not None:
            on_command_sent()
        state = JointState(name=list(self.profile.joint_names), position=positions)
        state.header.stamp = stamp.to_msg()
        self.state_pub.publish(state)

    def _on_joint_states(self, msg: JointState) -> None:
        received = time.perf_counter()
        stamp, t_s = self._now()
        cmd = self.core.on_input(msg.name, msg.position, t_s)
        if cmd is None:
            self._report_rejections()
            return
        self._send(cmd, stamp, lambda: self._latency_s.append(time.perf_counter() - received))

    def _on_contacts(self, msg: HandContacts) -> None:
        if len(msg.fingers) == len(msg.normal_force):
            self.core.on_contacts(msg.fingers, msg.normal_force, time.monotonic_ns() * 1e-9)

    def _on_gesture(self, msg: Gesture) -> None:
        """Grip mode: the decision is kept; the control tick moves the hand."""
        self.core.on_gesture(msg.class_name, msg.rejected, msg.level, self._now()[1])
        self._report_rejections()

    def _report_rejections(self) -> None:
        if self.core.counters.rejected > self._reported_rejections:
            self._reported_rejections = self.core.counters.rejected
            self.get_logger().warn(
                f"rejected {self.input_topic} ({self.core.counters.rejected} so far): "
                f"{self.core.last_error.message}", throttle_duration_sec=2.0)

    def _on_tick(self) -> None:
        stamp, t_s = self._now()
        cmd = self.core.on_tick(t_s)
        if cmd is None:
            return
        if self.core.counters.watchdog_trips > self._logged_trips:
            self._logged_trips = self.core.counters.watchdog_trips
            self.get_logger().warn(
                f"no valid {self.input_topic} for {self.core.input_timeout_s * 1000:.0f} ms: "
                f"watchdog -> {self.core.watchdog_action}")
        self._send(cmd, stamp)

    # --- services ---------------------------------------------------------------------------
    def _enable(self) -> tuple[bool, str]:
        if self.output == "serial" and not self._open_serial():
            return False, self._serial_error
        self.core.enable(self._now()[1])
        return True, f"enabled: profile {self.profile.name}, output {self.output}"

    def _disable(self, why: str) -> str:
        stamp, t_s = self._now()
        cmd = self.core.disable(t_s)
        if cmd is not None:
            self._send(cmd, stamp)
        self.get_logger().info(f"{why}: output stopped, holding the last position")
        return f"{why}; holding the last commanded position"

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        if request.data:
            response.success, response.message = self._enable()
            self.get_logger().info(response.message)
        else:
            response.success, response.message = True, self._disable("disabled")
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response):
        response.success, response.message = True, self._disable("stopped")
        return response

    # --- diagnostics ------------------------------------------------------------------------
    def latency_percentiles_us(self) -> tuple[float, float]:
        if not self._latency_s:
            return float("nan"), float("nan")
        lat = np.asarray(self._latency_s) * 1e6
        return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))

    def _publish_diagnostics(self) -> None:
        c = self.core.counters
        status = DiagnosticStatus(name="hand_controller: safety",
                                  hardware_id=f"{self.profile.name} ({self.output})")
        if self._serial_error:
            status.level, status.message = DiagnosticStatus.ERROR, self._serial_error
        elif self.core.state == State.WATCHDOG:
            status.level = DiagnosticStatus.WARN
            status.message = f"input stale: watchdog ({self.core.watchdog_action})"
        elif self.core.last_error is not None and c.rejected:
            status.level = DiagnosticStatus.WARN
            status.message = f"{self.core.state.value}; rejected input: " \
                             f"{self.core.last_error.message}"
        else:
            status.level, status.message = DiagnosticStatus.OK, self.core.state.value
        p50, p99 = self.latency_percentiles_us()
        values = {
            "state": self.core.state.value, "enabled": self.core.enabled,
            "profile": self.profile.name, "output": self.output, "mode": self.core.mode,
            "input_topic": self.input_topic,
            "command_topic": self.command_topic, "received": c.received,
            "accepted": c.accepted, "rejected_nonfinite": c.rejected_nonfinite,
            "rejected_length": c.rejected_length, "commands": c.commands,
            "watchdog_trips": c.watchdog_trips, "contact_limited": c.contact_limited,
            "contact_limited_fingers": " ".join(self.core.limited_fingers(
                time.monotonic_ns() * 1e-9)), "latency_p50_us": f"{p50:.1f}",
            "latency_p99_us": f"{p99:.1f}", "latency_samples": len(self._latency_s),
        }
        if self.core.mode == "grip":
            values.update(grip_class=self.core.grip_class or "(hold)",
                          grip_level=f"{self.core.grip_level:.2f}")
        if self.serial is not None:
            values.update(serial_frames_written=self.serial.frames_written,
                          serial_frames_dropped=self.serial.frames_dropped,
                          serial_write_errors=self.serial.write_errors)
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)

    def destroy_node(self):
        if self.serial is not None:
            self.serial.close()
            self.serial = None
        return super().destroy_node()


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = HandController()
    except (ValueError, ProfileError) as exc:
        print(f"hand_controller: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
