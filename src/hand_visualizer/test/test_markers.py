"""Markers and transforms built from the hand model (no DDS)."""

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from visualization_msgs.msg import Marker

from emg_hand_core.hand_model import (
    BONES,
    forward_kinematics,
    rpy_matrix,
)
from emg_hand_core.poses import NAMED_POSES
from hand_visualizer.markers import (
    confidence_colors,
    hand_markers,
    quaternion_from_matrix,
    quaternion_from_rpy,
)


def quat_to_matrix(x, y, z, w):
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def test_confidence_colours_go_from_red_to_green():
    c = confidence_colors([0.0, 0.5, 1.0, np.nan, 7.0], alpha=0.5)
    assert c.shape == (5, 4) and np.all(c[:, 3] == 0.5)
    assert c[0, 0] == 1.0 and c[0, 1] == 0.0  # red
    assert c[2, 0] == 0.0 and c[2, 1] > 0.8  # green
    assert c[1, 0] == 1.0 and c[1, 1] > 0.8  # yellow
    np.testing.assert_array_equal(c[3], c[0])  # unknown = untrusted
    np.testing.assert_array_equal(c[4], c[2])


def test_hand_markers_carry_every_joint_and_bone():
    kp = forward_kinematics(NAMED_POSES["fist"])
    conf = np.linspace(0, 1, 21)
    joints, bones = hand_markers(kp, frame_id="hand_base", stamp=Time(sec=3), ns="prediction",
                                 colors=confidence_colors(conf), joint_radius_m=0.01)
    assert joints.type == Marker.SPHERE_LIST and bones.type == Marker.LINE_LIST
    assert (joints.ns, joints.id, bones.id) == ("prediction", 0, 1)
    assert joints.scale.x == pytest.approx(0.02)
    got = np.array([(p.x, p.y, p.z) for p in joints.points])
    np.testing.assert_allclose(got, kp)
    assert len(bones.points) == 2 * len(BONES) == len(bones.colors)
    a, b = BONES[5]
    assert (bones.points[10].x, bones.points[11].x) == (kp[a, 0], kp[b, 0])
    assert joints.colors[0].r == 1.0 and joints.colors[20].g > 0.8  # by confidence
    assert joints.header.frame_id == "hand_base" and joints.header.stamp.sec == 3
    assert joints.lifetime.nanosec == 500_000_000


def test_bad_marker_input_raises():
    with pytest.raises(ValueError):
        hand_markers(np.zeros((20, 3)), frame_id="h", stamp=Time(), ns="p", colors=(1, 0, 0, 1))
    with pytest.raises(ValueError):
        hand_markers(np.zeros((21, 3)), frame_id="h", stamp=Time(), ns="p", colors=(1, 0, 0))


@pytest.mark.parametrize("seed", range(5))
def test_quaternions_match_rotation_matrices(seed):
    rng = np.random.default_rng(seed)
    rpy = rng.uniform(-np.pi, np.pi, 3)
    r = rpy_matrix(*rpy)
    q_rpy = quaternion_from_rpy(*rpy)
    q_mat = quaternion_from_matrix(r)
    np.testing.assert_allclose(quat_to_matrix(*q_rpy), r, atol=1e-12)
    np.testing.assert_allclose(quat_to_matrix(*q_mat), r, atol=1e-12)
    # near 180 degree rotations take the other branches
    for axis in np.eye(3):
        r180 = 2 * np.outer(axis, axis) - np.eye(3)
        np.testing.assert_allclose(quat_to_matrix(*quaternion_from_matrix(r180)), r180,
                                   atol=1e-12)
