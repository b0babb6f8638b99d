"""The one hand model of emg_hand: names, geometry, limits and forward kinematics.

Everything that knows about the hand imports it from here (``emg_hand_core.hand_model``):
the network's output convention, the simulator, the URDF generator, the visualizer and the
controller.
Pure numpy; no rclpy, no torch (the differentiable forward kinematics of training is
``emg_pose_node.torch_kinematics``, built from :data:`TREE_CONSTANTS` and
:data:`KEYPOINT_FRAME` here).

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
    for parent, child, xyz, r_fixed, axis, index in TREE_CONSTANTS:
        r_parent, p_parent = frames[parent]
        p = p_parent + r_parent @ xyz
        r = r_parent @ r_fixed
        if axis is not None:
            k, kk = _AXIS_CROSS[index]
            angle = q[..., index, None, None]
            r = r @ (np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * kk)  # Rodrigues
        frames[child] = (r, p)
    return frames


KEYPOINT_FRAME = {j.keypoint: j.child for j in KINEMATIC_TREE if j.keypoint is not None}
"""Keypoint name -> the tree frame whose origin it is."""


def forward_kinematics(q: np.ndarray) -> np.ndarray:
    """Joint angles to keypoints: (..., 20) [rad] -> (..., 21, 3) [m] in ``hand_base``."""
    return keypoints_from_frames(forward_kinematics_frames(q))


def keypoints_from_frames(frames: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """The 21 keypoints (..., 21, 3) [m] of :func:`forward_kinematics_frames`' result (for a
    caller that needs the frames too)."""
    batch = frames[HAND_FRAME][1].shape[:-1]
    out = np.zeros(batch + (NUM_KEYPOINTS, 3))
    for name, frame in KEYPOINT_FRAME.items():
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


# --- sides ---------------------------------------------------------------------------

HAND_SIDES: tuple[str, ...] = ("right", "left")
"""Hand sides; the model is a right hand, a left hand is its mirror image in y."""


def check_side(side: str) -> None:
    if side not in HAND_SIDES:
        raise ValueError(f"side must be one of {HAND_SIDES}, got {side!r}")


def keypoints_for_side(keypoints_right: np.ndarray, side: str) -> np.ndarray:
    """Keypoints (..., 21, 3) of the right-hand model as seen on ``side`` [m].

    Joint angles mean the same on both sides, so ``keypoints_for_side(FK(q), "left")``
    is the left hand in pose ``q``.
    """
    check_side(side)
    if side == "left":
        return mirror_keypoints(keypoints_right)
    return np.asarray(keypoints_right, dtype=np.float64)


# --- constants of the tree (shared with emg_pose_node.torch_kinematics) ---------------


def _tree_constants() -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray | None, int]]:
    """Per joint: (parent, child, origin xyz (3,), fixed rotation (3, 3), axis or None, q index)."""
    out = []
    for joint in KINEMATIC_TREE:
        axis = None if joint.axis is None else np.asarray(joint.axis, dtype=np.float64)
        index = -1 if joint.axis is None else JOINT_INDEX[joint.name]
        out.append((joint.parent, joint.child, np.asarray(joint.origin_xyz, dtype=np.float64),
                    rpy_matrix(*joint.origin_rpy), axis, index))
    return out


TREE_CONSTANTS = _tree_constants()
"""Per joint of :data:`KINEMATIC_TREE`: (parent frame, child frame, origin xyz (3,) [m],
fixed rotation (3, 3), axis (3,) or None, index into the 20 angles or -1)."""


def _cross_matrices(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return k, k @ k


# q index -> (K, K @ K) of its joint axis: the Rodrigues terms that do not depend on q
_AXIS_CROSS = {index: _cross_matrices(axis) for _, _, _, _, axis, index in TREE_CONSTANTS
               if axis is not None}


# --- inverse kinematics ---------------------------------------------------------------

# Per finger: keypoint indices of its 4 chain points (base joint, then 3 bone ends), the
# joint indices (aa, fe, bend 1, bend 2) and the fixed rotation of its base frame.
_IK_FINGERS = []
for _finger in FINGERS:
    _names = ([f"thumb_{p}" for p in ("cmc", "mcp", "ip", "tip")] if _finger == "thumb"
              else [f"{_finger}_{p}" for p in ("mcp", "pip", "dip", "tip")])
    _joints = (("thumb_cmc_aa", "thumb_cmc_fe", "thumb_mcp_fe", "thumb_ip_fe") if _finger == "thumb"
               else tuple(f"{_finger}_{j}" for j in ("mcp_aa", "mcp_fe", "pip_fe", "dip_fe")))
    _xyz, _yaw, _roll = _FINGER_BASE[_finger]
    _IK_FINGERS.append((
        np.array([KEYPOINT_INDEX[n] for n in _names]),
        np.array([JOINT_INDEX[j] for j in _joints]),
        rpy_matrix(_roll, 0.0, _yaw),
    ))
del _finger, _names, _joints, _xyz, _yaw, _roll

# Palm points that a rigid palm alignment matches: the wrist and the four finger MCPs.
_PALM_KEYPOINTS = np.array([KEYPOINT_INDEX[n] for n in
                            ("wrist", "index_mcp", "middle_mcp", "ring_mcp", "pinky_mcp")])


def align_palm(keypoints: np.ndarray) -> np.ndarray:
    """Rigidly move keypoints (..., 21, 3) so their palm best matches the model's palm.

    Kabsch fit (rotation + translation, no scaling) of the wrist and four MCPs onto the
    model's; use it for keypoints given in another frame (e.g. a camera's).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    model = forward_kinematics(np.zeros(NUM_JOINTS))[_PALM_KEYPOINTS]  # (5, 3)
    src = kp[..., _PALM_KEYPOINTS, :]  # (..., 5, 3)
    src_c = src.mean(axis=-2, keepdims=True)
    dst_c = model.mean(axis=0)
    h = np.swapaxes(src - src_c, -1, -2) @ (model - dst_c)  # (..., 3, 3)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, -1, -2) @ np.swapaxes(u, -1, -2)))
    fix = np.broadcast_to(np.eye(3), d.shape + (3, 3)).copy()
    fix[..., 2, 2] = d
    rot = np.swapaxes(vt, -1, -2) @ fix @ np.swapaxes(u, -1, -2)  # src -> model
    return np.einsum("...ij,...kj->...ki", rot, kp - src_c) + dst_c


def inverse_kinematics(keypoints: np.ndarray, side: str = "right", palm_aligned: bool = True,
                       clamp: bool = True) -> np.ndarray:
    """Keypoints to joint angles, analytically per finger: (..., 21, 3) [m] -> (..., 20) [rad].

    Uses only bone directions, so bone lengths and palm shape may differ from the model's
    (another person's hand, noisy tracking). Per finger, in its base frame:

    * abduction from the plane the finger's three bones lie in: every bone is orthogonal to
      the rotated flexion axis ``(-sin aa, cos aa, 0)``, found as the least-squares null
      direction of the bones' xy-parts (robust for curled fingers, where the first bone
      alone points along the axis of abduction), with a tiny pull toward ``aa = 0`` that
      only decides the degenerate straight-down finger;
    * flexions as differences of the bones' pitch angles in that plane.

    ``side="left"``: the keypoints are a left hand (mirrored first). ``palm_aligned=False``:
    keypoints are in another frame; the palm is first fitted onto the model's
    (:func:`align_palm`). ``clamp``: clip the result to the joint limits.
    """
    check_side(side)
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints of shape (..., {NUM_KEYPOINTS}, 3), got {kp.shape}")
    if side == "left":
        kp = mirror_keypoints(kp)
    if not palm_aligned:
        kp = align_palm(kp)
    q = np.zeros(kp.shape[:-2] + (NUM_JOINTS,))
    for points, joints, r_base in _IK_FINGERS:
        chain = kp[..., points, :]  # (..., 4, 3)
        bones = chain[..., 1:, :] - chain[..., :-1, :]  # (..., 3, 3) world directions
        bones = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-12)
        local = bones @ r_base  # rows: r_base.T @ bone, i.e. in the finger's base frame
        xy = local[..., :2]
        m = np.swapaxes(xy, -1, -2) @ xy  # (..., 2, 2)
        m = m + np.diag([1e-9, 0.0])  # tie-break toward aa = 0 (penalises sin aa)
        _, vecs = np.linalg.eigh(m)
        n = vecs[..., :, 0]  # smallest eigenvalue: (-sin aa, cos aa)
        n = np.where(n[..., 1:2] < 0, -n, n)
        aa = np.arctan2(-n[..., 0], n[..., 1])
        ca, sa = np.cos(aa)[..., None], np.sin(aa)[..., None]
        # Undo the abduction: the x component in the rotated frame; the pitch is about -z.
        along = ca * local[..., 0] + sa * local[..., 1]
        pitch = np.arctan2(-local[..., 2], along)  # (..., 3) absolute bone pitch
        q[..., joints[0]] = aa
        q[..., joints[1]] = pitch[..., 0]
        q[..., joints[2]] = _wrap(pitch[..., 1] - pitch[..., 0])
        q[..., joints[3]] = _wrap(pitch[..., 2] - pitch[..., 1])
    return clamp_to_limits(q) if clamp else q


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi
