"""Node ``hand_visualizer``: RViz markers and TF for the estimated (and reference) hand.

Subscribes ``hand/keypoints`` (emg_interfaces/HandKeypoints), ``hand/joint_states`` and,
optionally, ``hand/reference/joint_states``; publishes ``hand/markers``
(visualization_msgs/MarkerArray), TF (the static armband -> hand_base transform from
parameters, fingertip frames from the predicted joint angles) and ``/diagnostics``.
All geometry comes from emg_hand_core.hand_model; this module only wires ROS.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from visualization_msgs.msg import MarkerArray

from emg_hand_core.hand_model import (
    FINGERTIP_FRAMES,
    HAND_FRAME,
    forward_kinematics,
    forward_kinematics_frames,
    keypoints_from_frames,
)
from emg_hand_core.names import KEYPOINT_ORDER, joint_angles_in_order, keypoints_in_order
from emg_hand_core.topics import (
    DIAGNOSTICS_TOPIC,
    JOINT_STATES_TOPIC,
    KEYPOINTS_TOPIC,
    MARKERS_TOPIC,
    REFERENCE_TOPIC,
)
from emg_interfaces.msg import HandKeypoints

from .markers import (
    PREDICTION_RGBA,
    REFERENCE_RGBA,
    confidence_colors,
    hand_markers,
    quaternion_from_matrix,
    quaternion_from_rpy,
    transform,
)
from .tf_output import TfOutput

PARAMETERS = {
    # name: (default, description)
    "armband_frame": ("armband", "Parent frame of the static armband -> hand_base transform "
                      "(the EMG chunks' header.frame_id); empty: no static transform."),
    "hand_base_xyz_m": ([0.15, 0.0, 0.0], "Position of hand_base (the wrist) in armband_frame "
                        "[m], x y z."),
    "hand_base_rpy_rad": ([0.0, 0.0, 0.0], "Orientation of hand_base in armband_frame, fixed-"
                          "axis roll pitch yaw [rad]."),
    "frame_prefix": ("", "Prefix of every frame this node names (hand_base, fingertips, "
                     "markers), e.g. 'left/' when two hands run side by side; use the same "
                     "frame_prefix for their robot_state_publisher. armband_frame is taken "
                     "as given."),
    "publish_fingertip_tf": (True, "Broadcast the predicted fingertip frames (teleoperation "
                             "targets) as hand_base -> <prefix><finger>_tip."),
    "fingertip_frame_prefix": ("target_", "Prefix of the fingertip TF frames. Keep it non-empty "
                               "when robot_state_publisher runs the hand URDF, whose own "
                               "<finger>_tip frames would otherwise get a second parent."),
    "show_reference": (True, "Draw hand/reference/joint_states as a translucent ghost."),
    "keypoints_timeout_s": (0.5, "Draw the prediction from hand/joint_states (through forward "
                            "kinematics) when no hand/keypoints arrived for this long [s]."),
    "max_marker_rate_hz": (30.0, "Most marker updates per second per hand (0: every message)."),
    "joint_radius_m": (0.008, "Radius of the joint spheres [m]."),
    "bone_width_m": (0.005, "Width of the bone lines [m]."),
    "marker_lifetime_s": (0.5, "Markers vanish this long after the last update [s]."),
    "diagnostics_period_s": (1.0, "Period of the /diagnostics status [s]."),
}


class HandVisualizer(Node):
    def __init__(self, **kwargs):
        super().__init__("hand_visualizer", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        problems = self._check({n: self.get_parameter(n).value for n in PARAMETERS})
        if problems:
            raise ValueError("invalid parameters: " + "; ".join(problems))
        self._p = {n: self.get_parameter(n).value for n in PARAMETERS}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.counts = {"keypoints": 0, "joint_states": 0, "reference": 0, "rejected": 0,
                       "marker_updates": 0}
        self._last_error = ""
        self._last_keypoints_s = -math.inf
        self._last_draw_s = {"prediction": -math.inf, "reference": -math.inf}

        self.markers_pub = self.create_publisher(MarkerArray, MARKERS_TOPIC, 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self.tf = TfOutput(self)
        self.create_subscription(HandKeypoints, KEYPOINTS_TOPIC, self._on_keypoints,
                                 qos_profile_sensor_data)
        self.create_subscription(JointState, JOINT_STATES_TOPIC, self._on_joint_states,
                                 qos_profile_sensor_data)
        self.create_subscription(JointState, REFERENCE_TOPIC, self._on_reference,
                                 qos_profile_sensor_data)
        self._publish_static_tf()
        self._diag_timer = self.create_timer(self._p["diagnostics_period_s"],
                                             self._publish_diagnostics)
        self.get_logger().info(
            f"hand_visualizer: hand/markers, TF via {self.tf.backend}; static "
            f"{self._p['armband_frame'] or '(none)'} -> {self._frame(HAND_FRAME)}")

    # --- parameters -----------------------------------------------------------------------
    @staticmethod
    def _check(values: dict) -> list[str]:
        problems = []
        for name in ("hand_base_xyz_m", "hand_base_rpy_rad"):
            if name in values:
                v = list(values[name])
                if len(v) != 3 or not all(math.isfinite(float(x)) for x in v):
                    problems.append(f"{name} must be 3 finite numbers, got {v}")
        for name in ("joint_radius_m", "bone_width_m", "marker_lifetime_s",
                     "diagnostics_period_s", "keypoints_timeout_s"):
            if name in values and not float(values[name]) > 0:
                problems.append(f"{name} must be > 0, got {values[name]}")
        if "max_marker_rate_hz" in values and not float(values["max_marker_rate_hz"]) >= 0:
            problems.append(f"max_marker_rate_hz must be >= 0, got {values['max_marker_rate_hz']}")
        if str(values.get("fingertip_frame_prefix", "")).startswith("/") or \
                str(values.get("frame_prefix", "")).startswith("/"):
            problems.append("frame prefixes must not start with '/' (tf2 frame names)")
        return problems

    def _on_set_parameters(self, params) -> SetParametersResult:
        values = {p.name: p.value for p in params if p.name in PARAMETERS}
        problems = self._check(values)
        if problems:
            return SetParametersResult(successful=False, reason="; ".join(problems))
        static_changed = any(n in values for n in ("armband_frame", "hand_base_xyz_m",
                                                   "hand_base_rpy_rad", "frame_prefix"))
        self._p.update(values)
        if "diagnostics_period_s" in values:
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(values["diagnostics_period_s"],
                                                 self._publish_diagnostics)
        if static_changed:
            self._publish_static_tf()
        return SetParametersResult(successful=True)

    # --- TF ---------------------------------------------------------------------------------
    def _publish_static_tf(self) -> None:
        parent = self._p["armband_frame"]
        if not parent:
            return
        rotation = quaternion_from_rpy(*self._p["hand_base_rpy_rad"])
        t = transform(parent, self._frame(HAND_FRAME), self.get_clock().now().to_msg(),
                      self._p["hand_base_xyz_m"], rotation)
        self.tf.send_static([t])

    def _frame(self, name: str) -> str:
        return self._p["frame_prefix"] + name

    def _fingertip_tf(self, frames: dict, stamp) -> None:
        prefix = self._p["frame_prefix"] + self._p["fingertip_frame_prefix"]
        self.tf.send([transform(self._frame(HAND_FRAME), prefix + tip, stamp, frames[tip][1],
                                quaternion_from_matrix(frames[tip][0]))
                      for tip in FINGERTIP_FRAMES])

    # --- inputs -----------------------------------------------------------------------------
    def _reject(self, what: str, exc: Exception) -> None:
        self.counts["rejected"] += 1
        self._last_error = f"{what}: {exc}"
        self.get_logger().warn(f"rejected {what}: {exc}", throttle_duration_sec=5.0)

    def _stamp(self, header):
        if header.stamp.sec == 0 and header.stamp.nanosec == 0:
            return self.get_clock().now().to_msg()
        return header.stamp

    def _due(self, ns: str) -> bool:
        rate = self._p["max_marker_rate_hz"]
        now = self.get_clock().now().nanoseconds * 1e-9
        if rate > 0 and now - self._last_draw_s[ns] < 1.0 / rate:
            return False
        self._last_draw_s[ns] = now
        return True

    def _publish_hand(self, keypoints, ns, colors, frame_id, stamp) -> None:
        if not frame_id or frame_id == HAND_FRAME:
            frame_id = self._frame(HAND_FRAME)
        markers = hand_markers(keypoints, frame_id=frame_id, stamp=stamp, ns=ns,
                               colors=colors, joint_radius_m=self._p["joint_radius_m"],
                               bone_width_m=self._p["bone_width_m"],
                               lifetime_s=self._p["marker_lifetime_s"])
        self.markers_pub.publish(MarkerArray(markers=markers))
        self.counts["marker_updates"] += 1

    def _on_keypoints(self, msg: HandKeypoints) -> None:
        self.counts["keypoints"] += 1
        try:
            kp = keypoints_in_order(msg.names, [(p.x, p.y, p.z) for p in msg.positions])
            conf = np.asarray(msg.confidence, dtype=np.float64)
            if conf.size not in (0, len(msg.positions)):
                raise ValueError(f"{conf.size} confidences for {len(msg.positions)} keypoints")
            if conf.size:
                conf = KEYPOINT_ORDER.order(msg.names, conf, finite=False)
        except ValueError as exc:
            self._reject(KEYPOINTS_TOPIC, exc)
            return
        self._last_keypoints_s = self.get_clock().now().nanoseconds * 1e-9
        if self._due("prediction"):
            colors = confidence_colors(conf) if conf.size else PREDICTION_RGBA
            self._publish_hand(kp, "prediction", colors, msg.header.frame_id,
                               self._stamp(msg.header))

    def _on_joint_states(self, msg: JointState) -> None:
        self.counts["joint_states"] += 1
        try:
            q = joint_angles_in_order(msg.name, msg.position)
        except ValueError as exc:
            self._reject(JOINT_STATES_TOPIC, exc)
            return
        stamp = self._stamp(msg.header)
        frames = None  # forward kinematics once per message, for TF and markers
        if self._p["publish_fingertip_tf"]:
            frames = forward_kinematics_frames(q)
            self._fingertip_tf(frames, stamp)
        now = self.get_clock().now().nanoseconds * 1e-9
        if now - self._last_keypoints_s > self._p["keypoints_timeout_s"] and \
                self._due("prediction"):
            keypoints = keypoints_from_frames(
                frames if frames is not None else forward_kinematics_frames(q))
            self._publish_hand(keypoints, "prediction", PREDICTION_RGBA, HAND_FRAME, stamp)

    def _on_reference(self, msg: JointState) -> None:
        self.counts["reference"] += 1
        if not self._p["show_reference"]:
            return
        try:
            q = joint_angles_in_order(msg.name, msg.position)
        except ValueError as exc:
            self._reject(REFERENCE_TOPIC, exc)
            return
        if self._due("reference"):
            self._publish_hand(forward_kinematics(q), "reference", REFERENCE_RGBA, HAND_FRAME,
                               self._stamp(msg.header))

    # --- diagnostics ------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        status = DiagnosticStatus(name="hand_visualizer: markers and TF",
                                  hardware_id=self.get_fully_qualified_name())
        if self.tf.backend == "none":
            status.level, status.message = DiagnosticStatus.WARN, "TF unavailable"
        elif self.counts["rejected"]:
            status.level = DiagnosticStatus.WARN
            status.message = f"rejected input: {self._last_error}"
        else:
            status.level, status.message = DiagnosticStatus.OK, "ok"
        status.values = [KeyValue(key=k, value=str(v)) for k, v in self.counts.items()]
        status.values.append(KeyValue(key="tf_backend", value=self.tf.backend))
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = HandVisualizer()
    except ValueError as exc:
        print(f"hand_visualizer: {exc}", file=sys.stderr)
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
