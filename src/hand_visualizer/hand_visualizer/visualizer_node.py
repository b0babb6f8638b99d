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
from emg_hand_core.params import Param, ParamTable, positive
from emg_hand_core.ros_params import declare_parameters, on_set_parameters
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


def _xyz(v: list) -> str | None:
    return None if len(v) == 3 else "must be 3 numbers (x y z / roll pitch yaw)"


def _prefix(v: str) -> str | None:
    return "must not start with '/' (tf2 frame names)" if v.startswith("/") else None


PARAMETERS = ParamTable((
    Param("armband_frame", "armband", "Parent frame of the static armband -> hand_base "
          "transform (the EMG chunks' header.frame_id); empty: no static transform."),
    Param("hand_base_xyz_m", [0.15, 0.0, 0.0], "Position of hand_base (the wrist) in "
          "armband_frame, x y z.", unit="m", min=-10.0, max=10.0, check=_xyz),
    Param("hand_base_rpy_rad", [0.0, 0.0, 0.0], "Orientation of hand_base in armband_frame, "
          "fixed-axis roll pitch yaw.", unit="rad", min=-7.0, max=7.0, check=_xyz),
    Param("frame_prefix", "", "Prefix of every frame this node names (hand_base, fingertips, "
          "markers), e.g. 'left/' when two hands run side by side; use the same "
          "frame_prefix for their robot_state_publisher. armband_frame is taken as given.",
          check=_prefix),
    Param("publish_fingertip_tf", True, "Broadcast the predicted fingertip frames "
          "(teleoperation targets) as hand_base -> <prefix><finger>_tip."),
    Param("fingertip_frame_prefix", "target_", "Prefix of the fingertip TF frames. Keep it "
          "non-empty when robot_state_publisher runs the hand URDF, whose own <finger>_tip "
          "frames would otherwise get a second parent.", check=_prefix),
    Param("robot_hand_frame", "robot_hand/hand_base", "Root frame of the robot hand's "
          "model (its robot_state_publisher's frame_prefix + hand_base), placed beside the "
          "human hand by a static hand_base -> <prefix><robot_hand_frame> transform; empty: "
          "none.", check=_prefix),
    Param("robot_hand_xyz_m", [0.0, -0.25, 0.0], "Position of robot_hand_frame in hand_base "
          "(beside the little finger), x y z.", unit="m", min=-10.0, max=10.0, check=_xyz),
    Param("robot_hand_rpy_rad", [0.0, 0.0, 0.0], "Orientation of robot_hand_frame in "
          "hand_base, fixed-axis roll pitch yaw.", unit="rad", min=-7.0, max=7.0, check=_xyz),
    Param("show_reference", True, "Draw hand/reference/joint_states as a translucent ghost."),
    positive("keypoints_timeout_s", 0.5, "Draw the prediction from hand/joint_states "
             "(through forward kinematics) when no hand/keypoints arrived for this long.",
             "s", max=60.0),
    Param("max_marker_rate_hz", 30.0, "Most marker updates per second per hand (0: every "
          "message).", unit="Hz", min=0.0, max=1000.0),
    positive("joint_radius_m", 0.008, "Radius of the joint spheres.", "m", max=1.0),
    positive("bone_width_m", 0.005, "Width of the bone lines.", "m", max=1.0),
    positive("marker_lifetime_s", 0.5, "Markers vanish this long after the last update.", "s",
             max=3600.0),
    Param("diagnostics_period_s", 1.0, "Period of the /diagnostics status.", unit="s",
          min=0.05, max=60.0),
))


class HandVisualizer(Node):
    def __init__(self, **kwargs):
        super().__init__("hand_visualizer", **kwargs)
        self._p, _ = declare_parameters(self, PARAMETERS)  # ParamError: refused, with why
        self.add_on_set_parameters_callback(on_set_parameters(PARAMETERS, self._apply))

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
    def _apply(self, values: dict) -> None:
        """Run-time changes (already checked)."""
        static_changed = any(n in values for n in (
            "armband_frame", "hand_base_xyz_m", "hand_base_rpy_rad", "frame_prefix",
            "robot_hand_frame", "robot_hand_xyz_m", "robot_hand_rpy_rad"))
        self._p.update(values)
        if "diagnostics_period_s" in values:
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(values["diagnostics_period_s"],
                                                 self._publish_diagnostics)
        if static_changed:
            self._publish_static_tf()

    # --- TF ---------------------------------------------------------------------------------
    def _publish_static_tf(self) -> None:
        """armband -> hand_base, and hand_base -> the robot hand's root beside it."""
        stamp = self.get_clock().now().to_msg()
        transforms = []
        if self._p["armband_frame"]:
            transforms.append(transform(
                self._p["armband_frame"], self._frame(HAND_FRAME), stamp,
                self._p["hand_base_xyz_m"], quaternion_from_rpy(*self._p["hand_base_rpy_rad"])))
        if self._p["robot_hand_frame"]:
            transforms.append(transform(
                self._frame(HAND_FRAME), self._frame(self._p["robot_hand_frame"]), stamp,
                self._p["robot_hand_xyz_m"],
                quaternion_from_rpy(*self._p["robot_hand_rpy_rad"])))
        self.tf.send_static(transforms)

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
