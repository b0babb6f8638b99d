"""The bag round trip of the launch issue, over real DDS between processes, with real files.

A sim session (emg_driver sim + emg_pose, recorded with `emg_hand_bag record`; see the
``sim_session`` fixture) is replayed: `emg_hand_bag play` publishes its emg/raw into a
fresh emg_pose (namespace /replay, the same default model). The same model on the same
samples from the same stream start must give the same poses: every replayed pose is
matched to the live one recorded in the bag by its stamp (the acquisition time of the
newest EMG sample used) and must agree within 1e-4 rad. Then `emg_pose_train` trains a
(tiny) model from the bag, as a user trains from a recording.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import JointState

from emg_hand_core.bag_types import typestore
from emg_hand_core.hand_model import JOINT_NAMES
from emg_hand_testing.processes import NodeProcess
from emg_pose_node.checkpoint import load_checkpoint

pytestmark = pytest.mark.timeout(180)

TOLERANCE_RAD = 1e-4
MIN_MATCHED = 0.9  # of the live poses (a loaded machine may merge two frames into one)


def _stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def _ordered(names, positions) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    return np.array([positions[index[j]] for j in JOINT_NAMES])


def recorded_poses(bag: Path, topic: str = "/hand/joint_states") -> dict[int, np.ndarray]:
    with AnyReader([bag], default_typestore=typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        out = {}
        for connection, _t, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            out[_stamp_ns(msg.header.stamp)] = _ordered(msg.name, msg.position)
    return out


def test_replayed_emg_gives_the_live_poses(sim_session, ros_node):
    live = recorded_poses(sim_session.bag)
    assert len(live) >= 300, f"the recording holds only {len(live)} live poses"
    replayed = ros_node.collect(JointState, "/replay/hand/joint_states",
                                QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE))
    ros_node.wait_for_publishers("/replay/hand/joint_states", timeout_s=90.0)
    with NodeProcess("emg_hand_bringup", "emg_hand_bag", [
            "play", str(sim_session.bag), "--topics", "/emg/raw", "--remap",
            "/emg/raw:=/replay/emg/raw", "--wait-for-subscribers", "60"]) as player:
        assert player.wait(timeout_s=90.0) == 0, player.output[-3000:]
    last_live = max(live)
    replayed.wait_until(lambda msgs: msgs and _stamp_ns(msgs[-1].header.stamp) >= last_live,
                        30.0, "the replayed pose of the last recorded one")
    got = {_stamp_ns(m.header.stamp): _ordered(m.name, m.position) for m in replayed.messages}
    common = sorted(set(live) & set(got))
    assert len(common) >= MIN_MATCHED * len(live), (
        f"only {len(common)} of {len(live)} live pose stamps were replayed "
        f"({len(got)} replayed poses)")
    diff = np.array([np.max(np.abs(live[s] - got[s])) for s in common])
    worst = int(np.argmax(diff))
    assert diff.max() < TOLERANCE_RAD, (
        f"replayed pose differs by {diff.max():.2e} rad at stamp {common[worst]} "
        f"({np.sum(diff >= TOLERANCE_RAD)} of {len(common)} beyond {TOLERANCE_RAD} rad)")


def test_emg_pose_train_trains_from_the_bag(sim_session, tmp_path, node_process):
    out = tmp_path / "from_bag.safetensors"
    train = node_process("emg_pose_node", "emg_pose_train", [
        str(sim_session.bag), "--out", str(out), "--no-progress", "--epochs", "2",
        "--conv-channels", "8", "--lstm-hidden", "16", "--fc-hidden", "16",
        "--window-s", "0.3", "--hop-s", "0.05", "--threads", "1"])
    assert train.wait(timeout_s=120.0) == 0, train.output[-3000:]
    checkpoint = load_checkpoint(out)
    assert checkpoint.in_channels == 8
    assert checkpoint.output == "joint_angles"
