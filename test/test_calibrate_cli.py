"""emg_hand_calibrate against a real emg_pose over DDS: a reference calibration fed from a
recording (the sim session's bag played into /replay: its EMG and its true pose), and a
guided one cancelled with Ctrl-C. The pose node's model is reset to the default after each
test, so the other tests on the same node see the default model."""

from __future__ import annotations

import pytest
from std_srvs.srv import Trigger

from emg_hand_testing.processes import NodeProcess

pytestmark = pytest.mark.timeout(180)

NS = ["--ros-args", "-r", "__ns:=/replay"]


@pytest.fixture
def replay_node(sim_session, ros_node):
    reset = ros_node.service_client(Trigger, "/replay/emg_pose/reset_model", timeout_s=90.0)
    yield sim_session
    assert ros_node.call(reset, Trigger.Request(), timeout_s=30.0).success


def test_reference_calibration_from_a_recording(replay_node, node_process):
    client = node_process("emg_hand_bringup", "emg_hand_calibrate", [
        "--mode", "reference", "--duration-s", "2.5", "--epochs", "3", *NS])
    client.wait_for_output("goal accepted", timeout_s=60.0)
    with NodeProcess("emg_hand_bringup", "emg_hand_bag", [
            "play", str(replay_node.bag), "--topics", "/emg/raw",
            "/hand/reference/joint_states", "--remap", "/emg/raw:=/replay/emg/raw",
            "/hand/reference/joint_states:=/replay/hand/reference/joint_states"]) as player:
        code = client.wait(timeout_s=120.0)
        player.stop()
    out = client.output
    assert code == 0, out[-3000:]
    for line in ("sending the goal: reference calibration: 2.5 s", "recording: 2 s of",
                 # 3 head epochs after the node's 10 input-adapter epochs
                 "fine-tuning: epoch 13/13 loss", "calibration done:", "held-out error:"):
        assert line in out, f"{line!r} missing from:\n{out[-3000:]}"


def test_ctrl_c_cancels_the_calibration(replay_node, node_process):
    client = node_process("emg_hand_bringup", "emg_hand_calibrate", [
        "--poses", "rest", "fist", "--hold-s", "2", *NS])
    client.wait_for_output("goal accepted", timeout_s=60.0)
    assert client.stop(timeout_s=30.0) == 130, client.output[-3000:]
    assert "cancelling the calibration" in client.output
    assert "cancelled:" in client.output, client.output[-3000:]


def test_no_server_is_reported(node_process):
    client = node_process("emg_hand_bringup", "emg_hand_calibrate", [
        "--server-timeout-s", "0.5", "--ros-args", "-r", "__ns:=/nobody"])
    assert client.wait(timeout_s=30.0) == 2
    assert "no action server /nobody/emg_pose/calibrate" in client.output
