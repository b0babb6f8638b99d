"""Name ordering, track interpolation and the EMG codec (rclpy and rosbags messages)."""

import numpy as np
import pytest

from emg_hand_core.emg_codec import (
    EmgDecodeError,
    decode_emg,
    encode_emg,
    rclpy_types,
    rosbags_types,
    stamp_to_ns,
)
from emg_hand_core.hand_model import JOINT_NAMES, KEYPOINT_NAMES
from emg_hand_core.names import (
    JOINT_ORDER,
    NameOrder,
    NameOrderError,
    joint_angles_in_order,
    keypoints_in_order,
)
from emg_hand_core.topics import find_topic, topic_matches
from emg_hand_core.tracks import interpolate_track


def test_joint_angles_by_name_in_any_order_or_unnamed():
    q = np.arange(20) * 0.01
    names = list(reversed(JOINT_NAMES)) + ["wrist_extra"]
    values = list(reversed(q.tolist())) + [9.0]
    assert np.array_equal(joint_angles_in_order(names, values), q)
    assert np.array_equal(joint_angles_in_order([], q), q)
    for names, values, kind in (
            (JOINT_NAMES[:19], q[:19], "missing"),
            (JOINT_NAMES, q[:19], "length"),
            ([], q[:19], "length"),
            (JOINT_NAMES, np.r_[q[:19], np.nan], "nonfinite")):
        with pytest.raises(NameOrderError) as err:
            joint_angles_in_order(names, values)
        assert err.value.kind == kind
    kp = np.random.default_rng(0).normal(size=(21, 3))
    order = np.random.default_rng(1).permutation(21)
    assert np.array_equal(keypoints_in_order([KEYPOINT_NAMES[i] for i in order], kp[order]), kp)


def test_name_order_caches_each_name_tuple_once():
    order = NameOrder(("a", "b"))
    first = order.index(("b", "a"))
    assert order.index(("b", "a")) is first and first.tolist() == [1, 0]
    assert JOINT_ORDER.order([], np.zeros(20)).shape == (20,)


def test_track_interpolation_masks_gaps_and_the_outside():
    t = np.array([0.0, 0.1, 0.2, 1.0, 1.1])
    v = np.c_[t * 10, -t]
    q = np.array([-0.05, 0.05, 0.15, 0.2, 0.5, 1.0, 1.05, 1.2])
    values, valid = interpolate_track(t, v, q, max_gap_s=0.15)
    assert valid.tolist() == [False, True, True, True, False, True, True, False]
    assert np.allclose(values[valid][:, 0], q[valid] * 10)
    one_v, one_ok = interpolate_track([1.0], [[2.0]], [1.0, 2.0])
    assert one_ok.tolist() == [True, False] and one_v[0, 0] == 2.0
    with pytest.raises(ValueError, match="increase"):
        interpolate_track([0.0, 0.0], [[1.0], [2.0]], [0.0])


def test_topics_match_under_namespaces_only_as_whole_names():
    assert topic_matches("/left/emg/raw", "emg/raw") and topic_matches("/emg/raw", "emg/raw")
    assert not topic_matches("/hand/reference/joint_states", "hand/joint_states")
    assert find_topic(["/b/emg/raw", "/a/emg/raw"], "emg/raw") == "/a/emg/raw"
    assert find_topic(["/b/emg/raw", "/emg/raw"], "emg/raw") == "/emg/raw"


@pytest.mark.parametrize("kind", ["rclpy", "rosbags"])
def test_codec_round_trip_for_both_message_implementations(kind):
    if kind == "rclpy":
        pytest.importorskip("emg_interfaces.msg")
        types = rclpy_types()
    else:
        from emg_hand_core.bag_types import typestore

        types = rosbags_types(typestore())
    samples = np.arange(24, dtype=np.float32).reshape(3, 8) * 1e-6
    stamp_ns = 1_700_000_000_123_456_789
    names = [f"ch_{i}" for i in range(8)]
    msg = encode_emg(types, samples, 42, stamp_ns, 500.0, names, "armband")
    chunk = decode_emg(msg)
    assert chunk.first_sample_index == 42 and chunk.num_samples == 3 and chunk.end_index == 45
    assert chunk.stamp_ns == stamp_ns and stamp_to_ns(msg.header.stamp) == stamp_ns
    assert chunk.channel_names == tuple(names) and chunk.frame_id == "armband"
    np.testing.assert_array_equal(chunk.samples, samples)
    assert chunk.sample_times_ns()[2] == stamp_ns + 4_000_000
    with pytest.raises(ValueError, match="8 channel names"):
        encode_emg(types, np.zeros((3, 4)), 0, 0, 500.0, names)
    with pytest.raises(ValueError, match="positive"):
        encode_emg(types, samples, 0, 0, float("nan"), names)
    msg.num_samples = 4
    with pytest.raises(EmgDecodeError, match="expected 4 samples x 8 channels"):
        decode_emg(msg)


def test_decoding_never_raises_on_a_stamp():
    class Stamp:
        sec, nanosec = -1, 5

    assert stamp_to_ns(Stamp()) == -999_999_995
