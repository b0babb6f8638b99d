"""The one hand model of emg_hand: names, geometry, limits and forward kinematics.

Everything that knows about the hand imports it from here: the network's output
convention, the simulator, the URDF generator, the visualizer and the controller.
Pure numpy (torch only inside :func:`forward_kinematics_torch`); no rclpy.

Conventions (shared/DESIGN.md, REP-103):

* Frame ``hand_base``: origin at the wrist, x toward the middle finger, y toward the
  thumb side of a right hand, z out of the back of the hand. Lengths in metres,
  angles in radians.
* 20 joint angles in emg2pose order (:data:`JOINT_NAMES`). ``*_fe`` is flexion, positive
  closes the hand (rotation about the bone's local +y, which swings a finger pointing
  along +x toward the palm, -z). ``*_mcp_aa`` is abduction, positive toward the thumb
  side (rotation about local +z). ``thumb_cmc_aa`` is palmar abduction, positive moves
  the thumb away from the palm plane toward the palm side. All zeros = flat open hand.
* 21 keypoints in MediaPipe order (:data:`KEYPOINT_NAMES`).
* A left hand is the right hand mirrored in y (:func:`mirror_keypoints`); joint angles
  keep their meaning.

The geometry is a kinematic tree of :class:`JointSpec` (revolute joints plus one fixed
joint per fingertip). Forward kinematics walks that tree, and the URDF generator emits
the same tree, so the two agree by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")
LONG_FINGERS: tuple[str, ...] = FINGERS[1:]

JOINT_NAMES: tuple[str, ...] = (
    "thumb_cmc_fe",
    "thumb_cmc_aa",
    "thumb_mcp_fe",
    "thumb_ip_fe",
) + tuple(
    f"{finger}_{joint}"
    for finger in LONG_FINGERS
    for joint in ("mcp_aa", "mcp_fe", "pip_fe", "dip_fe")
)
"""The 20 joint angles, in the emg2pose order [rad]."""

KEYPOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
) + tuple(
    f"{finger}_{point}" for finger in LONG_FINGERS for point in ("mcp", "pip", "dip", "tip")
)
"""The 21 keypoints, in MediaPipe order [m, frame hand_base]."""

NUM_JOINTS = len(JOINT_NAMES)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
HAND_FRAME = "hand_base"

JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Bones as (parent keypoint, child keypoint) index pairs, for drawing and bone lengths.
BONES: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_INDEX[a], KEYPOINT_INDEX[b])
    for a, b in (
        [("wrist", "thumb_cmc"), ("thumb_cmc", "thumb_mcp"), ("thumb_mcp", "thumb_ip"),
         ("thumb_ip", "thumb_tip")]
        + [
            pair
            for f in LONG_FINGERS
            for pair in (
                ("wrist" if f in ("index", "pinky") else None, f"{f}_mcp"),
                (f"{f}_mcp", f"{f}_pip"),
                (f"{f}_pip", f"{f}_dip"),
                (f"{f}_dip", f"{f}_tip"),
            )
            if pair[0] is not None
        ]
        + [("index_mcp", "middle_mcp"), ("middle_mcp", "ring_mcp"), ("ring_mcp", "pinky_mcp")]
    )
)

# --- geometry of an adult right hand (about 19 cm wrist to middle fingertip) ----------

# Palm: position of each finger's base joint (thumb CMC, finger MCPs) in hand_base [m],
# and the finger's resting direction as (yaw about z, roll about its own axis) [rad].
_FINGER_BASE = {
    #         position (x, y, z)           yaw    roll
    "thumb": ((0.024, 0.021, -0.012), 0.65, -1.20),
    "index": ((0.093, 0.024, 0.000), 0.10, 0.00),
    "middle": ((0.096, 0.004, 0.000), 0.00, 0.00),
    "ring": ((0.090, -0.014, 0.000), -0.09, 0.00),
    "pinky": ((0.080, -0.031, 0.000), -0.19, 0.00),
}

# Bone lengths from each finger's base joint outward [m]:
# thumb: metacarpal, proximal, distal; fingers: proximal, middle, distal phalanx.
BONE_LENGTHS_M = {
    "thumb": (0.046, 0.032, 0.027),
    "index": (0.040, 0.023, 0.020),
    "middle": (0.045, 0.027, 0.021),
    "ring": (0.042, 0.026, 0.021),
    "pinky": (0.033, 0.019, 0.019),
}

# Joint limits [rad], (lower, upper), per joint-name suffix; the thumb has its own.
_LIMITS = {
    "thumb_cmc_fe": (-0.35, 1.00),
    "thumb_cmc_aa": (-0.20, 1.20),
    "thumb_mcp_fe": (-0.20, 1.00),
    "thumb_ip_fe": (-0.30, 1.40),
    "mcp_aa": (-0.35, 0.35),
    "mcp_fe": (-0.35, 1.57),
    "pip_fe": (0.00, 1.75),
    "dip_fe": (-0.10, 1.40),
}

# Largest joint speed a healthy hand reaches [rad/s]; the URDF's velocity limit.
MAX_JOINT_VELOCITY_RAD_S = 15.0


def _limit_for(joint: str) -> tuple[float, float]:
    if joint in _LIMITS:
        return _LIMITS[joint]
    return _LIMITS[joint.split("_", 1)[1]]


JOINT_LOWER = np.array([_limit_for(j)[0] for j in JOINT_NAMES], dtype=np.float64)
JOINT_UPPER = np.array([_limit_for(j)[1] for j in JOINT_NAMES], dtype=np.float64)
"""Joint limits in :data:`JOINT_NAMES` order [rad]."""


@dataclass(frozen=True)
class JointSpec:
    """One joint of the kinematic tree, in URDF terms.

    The child frame is ``parent * Trans(origin_xyz) * RotRPY(origin_rpy) * Rot(axis, q)``.
    ``name`` is a :data:`JOINT_NAMES` entry for revolute joints; fixed joints (fingertips,
    palm mounts) carry ``q = 0`` always.
    """

    name: str
    parent: str
    child: str
    origin_xyz: tuple[float, float, float]
    origin_rpy: tuple[float, float, float]
    axis: tuple[float, float, float] | None  # None = fixed joint
    lower: float = 0.0
    upper: float = 0.0
    keypoint: str | None = None  # keypoint located at the child frame's origin


def _build_tree() -> tuple[JointSpec, ...]:
    joints: list[JointSpec] = []
    for finger in FINGERS:
        xyz, yaw, roll = _FINGER_BASE[finger]
        lengths = BONE_LENGTHS_M[finger]
        if finger == "thumb":
            base_joints = ("thumb_cmc_aa", "thumb_cmc_fe")
            bend_joints = ("thumb_mcp_fe", "thumb_ip_fe")
            keypoints = ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip")
        else:
            base_joints = (f"{finger}_mcp_aa", f"{finger}_mcp_fe")
            bend_joints = (f"{finger}_pip_fe", f"{finger}_dip_fe")
            keypoints = tuple(f"{finger}_{p}" for p in ("mcp", "pip", "dip", "tip"))
        aa, fe = base_joints
        # Base joint: abduction about the finger's z, then flexion about the new y.
        joints.append(
            JointSpec(aa, HAND_FRAME, f"{finger}_base_link", xyz, (roll, 0.0, yaw),
                      (0.0, 0.0, 1.0), *_limit_for(aa), keypoint=keypoints[0])
        )
        joints.append(
            JointSpec(fe, f"{finger}_base_link", f"{finger}_link_1", (0.0, 0.0, 0.0),
                      (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), *_limit_for(fe))
        )
        for k, joint in enumerate(bend_joints):
            joints.append(
                JointSpec(joint, f"{finger}_link_{k + 1}", f"{finger}_link_{k + 2}",
                          (lengths[k], 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0),
                          *_limit_for(joint), keypoint=keypoints[k + 1])
            )
        joints.append(
            JointSpec(f"{finger}_tip_joint", f"{finger}_link_3", f"{finger}_tip",
                      (lengths[2], 0.0, 0.0), (0.0, 0.0, 0.0), None, keypoint=keypoints[3])
        )
    return tuple(joints)


KINEMATIC_TREE: tuple[JointSpec, ...] = _build_tree()
"""Joints in topological order (every parent frame comes before its children)."""

FINGERTIP_FRAMES: tuple[str, ...] = tuple(f"{f}_tip" for f in FINGERS)


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def axis_angle_matrices(axis: Sequence[float], angles: np.ndarray) -> np.ndarray:
    """Rotation matrices about a unit ``axis`` for a batch of angles: (...,) -> (..., 3, 3)."""
    x, y, z = (float(a) for a in axis)
    c = np.cos(angles)[..., None, None]
    s = np.sin(angles)[..., None, None]
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    kk = k @ k
    return np.eye(3) + s * k + (1.0 - c) * kk  # Rodrigues


def forward_kinematics_frames(q: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pose of every frame of the tree in ``hand_base``.

    q: (..., 20) joint angles [rad] -> {frame: (R (..., 3, 3), p (..., 3) [m])}.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != NUM_JOINTS:
        raise ValueError(f"expected {NUM_JOINTS} joint angles in the last axis, got {q.shape}")
    batch = q.shape[:-1]
    eye = np.broadcast_to(np.eye(3), batch + (3, 3))
    frames = {HAND_FRAME: (eye, np.zeros(batch + (3,)))}
    for joint in KINEMATIC_TREE:
        r_parent, p_parent = frames[joint.parent]
        p = p_parent + np.einsum("...ij,j->...i", r_parent, np.asarray(joint.origin_xyz))
        r = r_parent @ rpy_matrix(*joint.origin_rpy)
        if joint.axis is not None:
            r = r @ axis_angle_matrices(joint.axis, q[..., JOINT_INDEX[joint.name]])
        frames[joint.child] = (r, p)
    return frames


_KEYPOINT_FRAME = {j.keypoint: j.child for j in KINEMATIC_TREE if j.keypoint is not None}


def forward_kinematics(q: np.ndarray) -> np.ndarray:
    """Joint angles to keypoints: (..., 20) [rad] -> (..., 21, 3) [m] in ``hand_base``."""
    frames = forward_kinematics_frames(q)
    batch = np.asarray(q).shape[:-1]
    out = np.zeros(batch + (NUM_KEYPOINTS, 3))
    for name, frame in _KEYPOINT_FRAME.items():
        out[..., KEYPOINT_INDEX[name], :] = frames[frame][1]
    return out  # wrist stays at the origin


def clamp_to_limits(q: np.ndarray) -> np.ndarray:
    """Clip joint angles (..., 20) to the hand's limits [rad]."""
    return np.clip(q, JOINT_LOWER, JOINT_UPPER)


def mirror_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Right hand <-> left hand: negate y of keypoints (..., 21, 3)."""
    out = np.array(keypoints, dtype=np.float64, copy=True)
    out[..., 1] = -out[..., 1]
    return out
