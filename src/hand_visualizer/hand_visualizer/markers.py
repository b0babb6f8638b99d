"""RViz markers and TF transforms for the hand, built from numpy arrays.

No rclpy: message classes only (visualization_msgs, geometry_msgs), so everything here is
tested without DDS. Keypoints (21, 3) [m] in ``hand_base``; colours RGBA in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, TransformStamped
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker

from emg_hand_core.hand_model import BONES, NUM_KEYPOINTS

PREDICTION_RGBA = (0.85, 0.15, 0.15, 1.0)  # when no confidence is known
REFERENCE_RGBA = (0.55, 0.65, 0.85, 0.45)  # the ghost of hand/reference/joint_states


def confidence_colors(confidence: np.ndarray | Sequence[float], alpha: float = 1.0) -> np.ndarray:
    """Confidence (N,) in [0, 1] -> RGBA (N, 4): red (0) through yellow (0.5) to green (1).

    Non-finite confidence counts as 0 (red: do not trust it).
    """
    c = np.nan_to_num(np.asarray(confidence, dtype=np.float64), nan=0.0, posinf=1.0,
                      neginf=0.0)
    c = np.clip(c, 0.0, 1.0)
    rgba = np.empty(c.shape + (4,))
    rgba[..., 0] = np.clip(2.0 * (1.0 - c), 0.0, 1.0)
    rgba[..., 1] = np.clip(2.0 * c, 0.0, 1.0) * 0.85
    rgba[..., 2] = 0.1
    rgba[..., 3] = alpha
    return rgba


def _color(rgba) -> ColorRGBA:
    r, g, b, a = (float(v) for v in rgba)
    return ColorRGBA(r=r, g=g, b=b, a=a)


def _point(p) -> Point:
    return Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))


def _duration(seconds: float) -> Duration:
    sec = int(seconds)
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)))


def hand_markers(
    keypoints: np.ndarray,
    *,
    frame_id: str,
    stamp: Time,
    ns: str,
    colors: np.ndarray | Sequence[float],
    joint_radius_m: float = 0.008,
    bone_width_m: float = 0.005,
    lifetime_s: float = 0.5,
) -> list[Marker]:
    """Two markers for one hand: joints as a SPHERE_LIST (id 0), bones as a LINE_LIST (id 1).

    colors: one RGBA for the whole hand, or (21, 4) per keypoint (a bone takes the colours of
    its two ends, so a low-confidence joint shows on its bones too).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints ({NUM_KEYPOINTS}, 3), got {kp.shape}")
    rgba = np.asarray(colors, dtype=np.float64)
    if rgba.shape == (4,):
        rgba = np.broadcast_to(rgba, (NUM_KEYPOINTS, 4))
    if rgba.shape != (NUM_KEYPOINTS, 4):
        raise ValueError(f"expected one RGBA or ({NUM_KEYPOINTS}, 4) colours, got {rgba.shape}")
    points = [_point(p) for p in kp]
    point_colors = [_color(c) for c in rgba]

    joints = Marker(ns=ns, id=0, type=Marker.SPHERE_LIST, action=Marker.ADD)
    joints.scale.x = joints.scale.y = joints.scale.z = 2.0 * joint_radius_m
    joints.points = points
    joints.colors = point_colors

    bones = Marker(ns=ns, id=1, type=Marker.LINE_LIST, action=Marker.ADD)
    bones.scale.x = bone_width_m
    for a, b in BONES:
        bones.points += [points[a], points[b]]
        bones.colors += [point_colors[a], point_colors[b]]

    for m in (joints, bones):
        m.header.frame_id = frame_id
        m.header.stamp = stamp
        m.pose.orientation.w = 1.0
        m.color = _color(rgba.mean(axis=0))  # used by displays that ignore per-point colours
        m.lifetime = _duration(lifetime_s)
        m.frame_locked = False
    return [joints, bones]


def quaternion_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """Rotation matrix (3, 3) -> unit quaternion (x, y, z, w), w >= 0."""
    r = np.asarray(r, dtype=np.float64)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0.0:
        s = 2.0 * np.sqrt(trace + 1.0)
        w, x = 0.25 * s, (r[2, 1] - r[1, 2]) / s
        y, z = (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        w, x = (r[2, 1] - r[1, 2]) / s, 0.25 * s
        y, z = (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        w, x = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s
        y, z = 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        w, x = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s
        y, z = (r[1, 2] + r[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


def quaternion_from_rpy(roll: float, pitch: float, yaw: float) -> tuple[float, float, float,
                                                                         float]:
    """Fixed-axis roll, pitch, yaw [rad] (R = Rz Ry Rx, as URDF and tf2) -> (x, y, z, w)."""
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    return (float(sr * cp * cy - cr * sp * sy), float(cr * sp * cy + sr * cp * sy),
            float(cr * cp * sy - sr * sp * cy), float(cr * cp * cy + sr * sp * sy))


def transform(parent: str, child: str, stamp: Time, xyz, quat_xyzw) -> TransformStamped:
    t = TransformStamped()
    t.header.frame_id = parent
    t.header.stamp = stamp
    t.child_frame_id = child
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
        float(v) for v in xyz)
    (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
     t.transform.rotation.w) = (float(v) for v in quat_xyzw)
    return t
