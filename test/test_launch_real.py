"""The launch files, run for real (only where launch_ros is importable: a ROS 2 install, or
the scratch environment with launch / launch_ros / ros2cli built from their jazzy sources).

Each file runs with the simulated armband and without RViz, through `ros2 launch
emg_hand_bringup <file>` (or launch's LaunchService where the ros2 command is missing),
stopped with SIGINT as Ctrl-C would; assertions are on what the running graph publishes:

* teleop.launch.py twice, namespace:=left and namespace:=right side by side: both hands'
  topics, frames prefixed with the namespace, the controller disabled by default;
* record.launch.py recorder:=emg_hand_bag: the bag holds the recorded topics; then
  replay.launch.py plays it (use_sim_time, /clock) into a fresh pose node, which poses
  again, and stops by itself at the end of the bag;
* calibrate.launch.py mode:=reference exit_after:=true: the calibration runs to its result
  and the launch ends.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from rcl_interfaces.srv import GetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from emg_hand_bringup import graph
from emg_interfaces.msg import EMG, HandKeypoints

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                       reason="launch_ros is not importable here (pip environment); "
                              "test_launch_files.py checks the launch files statically"),
    pytest.mark.timeout(300),
]

ROOT = Path(__file__).resolve().parents[1]
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
STARTUP_S = 120.0  # pose nodes load torch and the model: tens of seconds on a busy machine

_RUNNER = """
import sys
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
args = [a.split(':=', 1) for a in sys.argv[2:]]
service = LaunchService(argv=sys.argv[2:])
service.include_launch_description(IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=args))
sys.exit(service.run())
"""


def launch_command(name: str, *arguments: str) -> list[str]:
    if shutil.which("ros2") and importlib.util.find_spec("ros2launch"):
        return ["ros2", "launch", "emg_hand_bringup", name, *arguments]
    return [sys.executable, "-c", _RUNNER, graph.share_file(graph.PACKAGE, "launch", name),
            *arguments]


def _tf_pairs(messages) -> set[tuple[str, str]]:
    return {(t.header.frame_id, t.child_frame_id) for m in messages for t in m.transforms}


def test_two_hands_side_by_side(command, ros_node):
    from tf2_msgs.msg import TFMessage

    tf_static = ros_node.collect(TFMessage, "/tf_static", LATCHED)
    hands = {}
    for side in ("left", "right"):
        hands[side] = {
            "launch": command(launch_command("teleop.launch.py", f"namespace:={side}",
                                             "rviz:=false")),
            "poses": ros_node.collect(JointState, f"/{side}/hand/joint_states", RELIABLE),
            "keypoints": ros_node.collect(HandKeypoints, f"/{side}/hand/keypoints", RELIABLE),
            "emg": ros_node.collect(EMG, f"/{side}/emg/raw", RELIABLE),
        }
    for side, h in hands.items():
        h["poses"].wait_for(20, timeout_s=STARTUP_S)
        h["keypoints"].wait_for(1, timeout_s=10.0)
        h["emg"].wait_for(1, timeout_s=10.0)
        assert h["keypoints"].messages[-1].header.frame_id == f"{side}/hand_base"
        assert h["emg"].messages[-1].header.frame_id == f"{side}/armband"
        for node in ("emg_driver", "emg_pose", "hand_visualizer", "hand_controller"):
            ros_node.wait_for_node(node, f"/{side}", timeout_s=10.0)
        # the controller starts disabled: enabling it is an explicit act
        enable = ros_node.service_client(SetBool, f"/{side}/hand_controller/enable")
        assert ros_node.call(enable, SetBool.Request(data=True)).success
        if not graph.installed("robot_state_publisher"):
            assert "robot_state_publisher is not installed here" in h["launch"].output
    tf_static.wait_until(
        lambda msgs: {("left/armband", "left/hand_base"),
                      ("right/armband", "right/hand_base")} <= _tf_pairs(msgs),
        10.0, "both hands' armband -> hand_base transforms")
    for h in hands.values():
        assert h["launch"].stop() == 0, h["launch"].output[-3000:]
        assert "process has finished cleanly" in h["launch"].output


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return tmp_path_factory.mktemp("record") / "session"


def test_record(command, ros_node, recorded):
    launch = command(launch_command("record.launch.py", "recorder:=emg_hand_bag",
                                    f"output:={recorded}", "rviz:=false", "controller:=false"))
    poses = ros_node.collect(JointState, "/hand/joint_states", RELIABLE)
    poses.wait_for(150, timeout_s=STARTUP_S)
    assert launch.stop() == 0, launch.output[-3000:]
    assert "with emg_hand_bag" in launch.output
    meta = yaml.safe_load((recorded / "metadata.yaml").read_text())
    counts = {t["topic_metadata"]["name"]: t["message_count"]
              for t in meta["rosbag2_bagfile_information"]["topics_with_message_count"]}
    assert set(counts) == {graph.resolve_topic("", t) for t in graph.RECORD_TOPICS}
    assert counts["/emg/raw"] >= 300 and counts["/hand/joint_states"] >= 150
    assert counts["/hand/reference/joint_states"] >= 300 and counts["/tf_static"] >= 1


def test_replay(command, ros_node, recorded):
    if not recorded.exists():
        pytest.skip("needs test_record's bag")
    clock = ros_node.collect(Clock, "/clock", 10)
    poses = ros_node.collect(JointState, "/hand/joint_states", RELIABLE)
    launch = command(launch_command("replay.launch.py", f"bag:={recorded}",
                                    "player:=emg_hand_bag", "rviz:=false"))
    poses.wait_for(100, timeout_s=STARTUP_S)
    assert "emg_driver" not in [n for n, _ in ros_node.node.get_node_names_and_namespaces()]
    client = ros_node.service_client(GetParameters, "/emg_pose/get_parameters")
    values = ros_node.call(client, GetParameters.Request(names=["use_sim_time"])).values
    assert values[0].bool_value is True
    assert clock.messages, "the player publishes /clock"
    # the bag ends, the player exits, exit_at_end stops the launch
    assert launch.wait(timeout_s=120.0) == 0, launch.output[-3000:]
    assert "the bag has been played; stopping" in launch.output


def test_calibrate(command):
    launch = command(launch_command(
        "calibrate.launch.py", "mode:=reference", "duration_s:=4", "epochs:=3",
        "exit_after:=true", "rviz:=false", "controller:=false"))
    assert launch.wait(timeout_s=240.0) == 0, launch.output[-4000:]
    out = launch.output
    for line in ("sending the goal: reference calibration: 4 s",
                 "fine-tuning: epoch 13/13",  # 3 head epochs after the 10 input-adapter ones
                 "calibration done:", "held-out error:", "calibration finished"):
        assert line in out, f"{line!r} missing:\n{out[-4000:]}"


def test_show_args_lists_every_argument(command):
    if not shutil.which("ros2"):
        pytest.skip("no ros2 command")
    for name in ("teleop.launch.py", "record.launch.py", "replay.launch.py",
                 "calibrate.launch.py"):
        c = command(["ros2", "launch", "emg_hand_bringup", name, "--show-args"])
        assert c.wait(timeout_s=60.0) == 0, c.output
        for argument in ("'namespace'", "'rviz'", "'controller_enabled'"):
            assert argument in c.output, f"{name}: {argument}"
        # replay runs no driver: its arguments would not act there
        for argument in ("'source'", "'driver'", "'port'"):
            assert (argument in c.output) == (name != "replay.launch.py"), f"{name}: {argument}"
