"""The torch forward kinematics of training against the numpy hand model."""

import numpy as np
import torch

from emg_hand_core.hand_model import (
    JOINT_INDEX,
    JOINT_LOWER,
    JOINT_NAMES,
    JOINT_UPPER,
    KEYPOINT_INDEX,
    forward_kinematics,
    keypoints_for_side,
)
from emg_pose_node.torch_kinematics import forward_kinematics_torch


def random_poses(n, seed=0, margin=0.05):
    rng = np.random.default_rng(seed)
    return rng.uniform(JOINT_LOWER + margin, JOINT_UPPER - margin, (n, len(JOINT_NAMES)))


def test_left_hand_is_mirrored():
    q = random_poses(20, seed=6)
    left = keypoints_for_side(forward_kinematics(q), "left")
    assert np.allclose(forward_kinematics_torch(torch.tensor(q), side="left").numpy(), left)


def test_torch_fk_matches_numpy_and_is_differentiable():
    q = random_poses(64, seed=7)
    kt = forward_kinematics_torch(torch.tensor(q))
    assert np.abs(kt.numpy() - forward_kinematics(q)).max() < 1e-12
    q64 = torch.tensor(q[:4], requires_grad=True)
    out = forward_kinematics_torch(q64)
    out[:, KEYPOINT_INDEX["index_tip"], 2].sum().backward()
    grad = q64.grad.numpy()
    # Autograd agrees with finite differences of the numpy FK.
    j, eps = JOINT_INDEX["index_mcp_fe"], 1e-6
    dq = np.zeros(20)
    dq[j] = eps
    numeric = (forward_kinematics(q[:4] + dq) - forward_kinematics(q[:4] - dq))[
        :, KEYPOINT_INDEX["index_tip"], 2] / (2 * eps)
    assert np.allclose(grad[:, j], numeric, atol=1e-7)
    assert np.all(grad[:, JOINT_INDEX["pinky_mcp_fe"]] == 0)  # other fingers do not matter
    out32 = forward_kinematics_torch(torch.zeros(4, 20, dtype=torch.float32))
    assert out32.dtype == torch.float32 and out32.shape == (4, 21, 3)
    batch = forward_kinematics_torch(torch.zeros(2, 3, 20, dtype=torch.float64))
    assert batch.shape == (2, 3, 21, 3)
