"""Forward and inverse kinematics and mirroring of the one hand model (numpy)."""

import numpy as np
import pytest

from emg_hand_core.hand_model import (
    FINGERS,
    JOINT_INDEX,
    JOINT_LOWER,
    JOINT_NAMES,
    JOINT_UPPER,
    KEYPOINT_INDEX,
    align_palm,
    forward_kinematics,
    inverse_kinematics,
    keypoints_for_side,
    mirror_keypoints,
)
from emg_hand_core.poses import NAMED_POSES


def random_poses(n, seed=0, margin=0.05):
    rng = np.random.default_rng(seed)
    return rng.uniform(JOINT_LOWER + margin, JOINT_UPPER - margin, (n, len(JOINT_NAMES)))


def test_ik_of_fk_reproduces_angles():
    q = random_poses(3000)
    q_ik = inverse_kinematics(forward_kinematics(q))
    assert np.abs(q_ik - q).max() < 1e-4


def test_fk_of_ik_reproduces_keypoints_for_all_named_poses_and_limits():
    poses = np.stack(list(NAMED_POSES.values()) + [JOINT_LOWER, JOINT_UPPER])
    k = forward_kinematics(poses)
    assert np.abs(forward_kinematics(inverse_kinematics(k)) - k).max() < 1e-5


def test_flat_hand_geometry():
    k = forward_kinematics(np.zeros(20))
    q = inverse_kinematics(k)
    assert np.abs(q).max() < 1e-6
    for finger in FINGERS[1:]:
        chain = [KEYPOINT_INDEX[f"{finger}_{p}"] for p in ("mcp", "pip", "dip", "tip")]
        # A flat finger is a straight line in the palm plane pointing away from the wrist.
        assert np.abs(k[chain, 2]).max() < 1e-9
        assert np.all(np.diff(k[chain, 0]) > 0)
    middle_tip = k[KEYPOINT_INDEX["middle_tip"]]
    assert 0.17 < np.linalg.norm(middle_tip) < 0.21  # adult hand, wrist to middle tip


def test_fist_geometry():
    flat = forward_kinematics(np.zeros(20))
    fist = forward_kinematics(NAMED_POSES["fist"])
    for finger in FINGERS[1:]:
        tip = KEYPOINT_INDEX[f"{finger}_tip"]
        assert fist[tip, 2] < -0.01  # curled toward the palm side (-z)
        assert np.linalg.norm(fist[tip]) < 0.7 * np.linalg.norm(flat[tip])
    q = inverse_kinematics(fist)
    assert np.abs(q - NAMED_POSES["fist"]).max() < 1e-5


def test_ik_clamps_to_limits_and_handles_noise():
    q = random_poses(500, seed=1, margin=0.0)
    k = forward_kinematics(q)
    noisy = k + np.random.default_rng(2).normal(0, 0.004, k.shape)
    q_ik = inverse_kinematics(noisy)
    assert np.all(q_ik >= JOINT_LOWER - 1e-12) and np.all(q_ik <= JOINT_UPPER + 1e-12)
    assert np.all(np.isfinite(q_ik))
    # Robust: 4 mm noise on 2-5 cm bones gives a bounded error, no outliers of pi.
    assert np.degrees(np.abs(q_ik - q)).mean() < 12.0
    assert np.abs(q_ik - q).max() < 1.5
    unclamped = inverse_kinematics(forward_kinematics(np.full(20, 0.0)) * 1.0, clamp=False)
    assert np.abs(unclamped).max() < 1e-6


def test_ik_out_of_limit_pose_is_clamped():
    q = np.zeros(20)
    q[JOINT_INDEX["index_pip_fe"]] = -0.4  # hyperextension beyond the lower limit 0
    q_ik = inverse_kinematics(forward_kinematics(q))
    assert q_ik[JOINT_INDEX["index_pip_fe"]] == pytest.approx(0.0)
    assert np.abs(inverse_kinematics(forward_kinematics(q), clamp=False)
                  [JOINT_INDEX["index_pip_fe"]] + 0.4) < 1e-6


def test_ik_is_scale_invariant_and_aligns_other_frames():
    q = random_poses(50, seed=4)
    k = forward_kinematics(q)
    assert np.abs(inverse_kinematics(1.2 * k) - q).max() < 1e-4  # a bigger hand
    rot = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))
    moved = k @ rot.T + np.array([0.3, -0.2, 0.5])
    assert np.abs(inverse_kinematics(moved, palm_aligned=False) - q).max() < 1e-4
    assert np.abs(align_palm(moved) - k).max() < 1e-9


def test_left_hand_mirroring():
    q = random_poses(20, seed=6)
    right = forward_kinematics(q)
    left = keypoints_for_side(right, "left")
    assert np.allclose(left, mirror_keypoints(right))
    assert np.allclose(left[..., 1], -right[..., 1])
    assert np.abs(inverse_kinematics(left, side="left") - q).max() < 1e-4
    with pytest.raises(ValueError, match="side"):
        inverse_kinematics(right, side="middle")
