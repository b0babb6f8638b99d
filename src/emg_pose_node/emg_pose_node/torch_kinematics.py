"""Differentiable forward kinematics for training: the tree of ``emg_hand_core.hand_model``
in torch (the keypoint loss of joint-angle models)."""

from __future__ import annotations

import torch

from emg_hand_core.hand_model import (
    HAND_FRAME,
    KEYPOINT_FRAME,
    KEYPOINT_INDEX,
    NUM_JOINTS,
    NUM_KEYPOINTS,
    TREE_CONSTANTS,
    check_side,
)


def forward_kinematics_torch(q: torch.Tensor, side: str = "right") -> torch.Tensor:
    """Batched forward kinematics, the same tree as ``hand_model.forward_kinematics``.

    q: (..., 20) [rad] -> keypoints (..., 21, 3) [m] in ``hand_base``, same dtype and device
    as ``q``. ``side="left"`` mirrors the result in y.
    """
    check_side(side)
    if q.shape[-1] != NUM_JOINTS:
        raise ValueError(
            f"expected {NUM_JOINTS} joint angles in the last axis, got {tuple(q.shape)}")
    batch = q.shape[:-1]
    kw = {"dtype": q.dtype, "device": q.device}
    eye = torch.eye(3, **kw)
    frames = {HAND_FRAME: (eye.expand(*batch, 3, 3), torch.zeros(*batch, 3, **kw))}
    for parent, child, xyz, r_fixed, axis, index in TREE_CONSTANTS:
        r_parent, p_parent = frames[parent]
        p = p_parent + r_parent @ torch.as_tensor(xyz, **kw)
        r = r_parent @ torch.as_tensor(r_fixed, **kw)
        if axis is not None:
            x, y, z = axis
            k = torch.as_tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], **kw)
            angle = q[..., index][..., None, None]
            r = r @ (eye + torch.sin(angle) * k + (1.0 - torch.cos(angle)) * (k @ k))
        frames[child] = (r, p)
    points = [torch.zeros(*batch, 3, **kw)] * NUM_KEYPOINTS
    for name, frame in KEYPOINT_FRAME.items():
        points[KEYPOINT_INDEX[name]] = frames[frame][1]
    out = torch.stack(points, dim=-2)
    if side == "left":
        out = out * torch.as_tensor([1.0, -1.0, 1.0], **kw)
    return out
