"""Shared fixtures of the workspace tests (test/): commands as processes, and one recorded
simulator session (driver sim + pose node, recorded with emg_hand_bag) used by the bag
round-trip test and the README's runnable commands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# The live and the replay pose node publish every model frame (one per 10 ms of EMG), so
# the two pose streams can be compared stamp by stamp.
POSE_RATE = {"update_rate_hz": 200.0}
RECORD_TOPICS = ["emg/raw", "hand/reference/joint_states", "hand/joint_states"]
MIN_POSES = 400  # ~4 s of poses at one per 10 ms


@pytest.fixture
def command():
    """Factory: start a command (an emg_hand_testing Process); every one is stopped at
    teardown."""
    from emg_hand_testing.processes import Process

    started: list[Process] = []

    def start(cmd, cwd=None, env=None) -> Process:
        started.append(Process(cmd, env=env, cwd=cwd))
        return started[-1]

    yield start
    for c in reversed(started):
        c.close(timeout_s=20.0)


@dataclass
class SimSession:
    bag: Path
    replay_pose: object  # a NodeProcess: a fresh emg_pose in /replay, idle until fed


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _change_state(node, transition_id: int) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = node.service_client(ChangeState, "/emg_driver/change_state", timeout_s=60.0)
    response = node.call(client, ChangeState.Request(transition=Transition(id=transition_id)),
                         timeout_s=30.0)
    assert response.success, f"lifecycle transition {transition_id} failed"


@pytest.fixture(scope="session")
def sim_session(tmp_path_factory):
    """A recorded sim session: emg/raw from stream index 0, and the live poses of it.

    emg_driver (sim, autostart off), the live emg_pose and `emg_hand_bag record` start; a
    second, fresh emg_pose in namespace /replay starts at the same time (it loads the model
    while the recording runs; the round-trip test feeds it the bag). The driver is
    configured, and activated only once the pose node and the recorder subscribe to
    emg/raw, so both see the stream from its first sample.
    """
    from lifecycle_msgs.msg import Transition
    from sensor_msgs.msg import JointState

    from emg_hand_testing.processes import NodeProcess, ros_args
    from emg_hand_testing.ros import RosTestNode, wait_until
    from emg_interfaces.msg import EMG

    bag = tmp_path_factory.mktemp("sim_session") / "bag"
    processes = []
    replay = None
    try:
        replay = NodeProcess("emg_pose_node", "emg_pose", ros_args(
            POSE_RATE, remaps={"__ns": "/replay"}))
        live = NodeProcess("emg_pose_node", "emg_pose", ros_args(POSE_RATE))
        recorder = NodeProcess("emg_hand_bringup", "emg_hand_bag",
                               ["record", "-o", str(bag), *RECORD_TOPICS])
        driver = NodeProcess("emg_driver", "emg_driver", ros_args({"autostart": False}))
        processes += [live, recorder, driver]
        with RosTestNode("sim_session") as ros:
            poses = ros.collect(JointState, "/hand/joint_states", 2000)
            emg = ros.collect(EMG, "/emg/raw", 2000)
            _change_state(ros, Transition.TRANSITION_CONFIGURE)
            wait_until(lambda: ros.node.count_subscribers("/emg/raw") >= 3, 90.0,
                       "emg_pose, emg_hand_bag record and this test subscribed to /emg/raw")
            ros.wait_for_subscribers("/hand/joint_states", count=2, timeout_s=30.0)
            ros.wait_for_publishers("/hand/joint_states", timeout_s=30.0)
            _change_state(ros, Transition.TRANSITION_ACTIVATE)
            poses.wait_for(MIN_POSES, timeout_s=60.0)
            _change_state(ros, Transition.TRANSITION_DEACTIVATE)
            # the pose of the last chunk: stamped at most one model frame before its end
            last = _stamp_ns(emg.messages[-1]) - 10_000_000
            poses.wait_until(lambda msgs: _stamp_ns(msgs[-1]) >= last, 20.0,
                             "the pose of the last EMG chunk")
        assert driver.stop() == 0, driver.output[-3000:]
        assert live.stop() == 0, live.output[-3000:]
        assert recorder.stop() == 0, recorder.output[-3000:]
        meta = yaml.safe_load((bag / "metadata.yaml").read_text())
        assert meta["rosbag2_bagfile_information"]["message_count"] > 0
        yield SimSession(bag, replay)
    finally:
        for p in [*processes, replay]:
            if p is not None:
                p.close()
