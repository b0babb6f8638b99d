"""Record a session: the teleop graph plus a rosbag2 recording of what replay and training need.

    ros2 launch emg_hand_bringup record.launch.py output:=runs/session1
    ros2 launch emg_hand_bringup record.launch.py output:=runs/s2 source:=serial \\
        port:=/dev/ttyACM0 rviz:=false duration_s:=120
    ros2 launch emg_hand_bringup record.launch.py recorder:=emg_hand_bag   # no ros2 bag

Recorded topics (relative ones in `namespace`): emg/raw, hand/reference/joint_states,
hand/joint_states, hand/keypoints, /tf_static, /diagnostics, plus extra_topics.
`ros2 bag record` gets config/record_qos.yaml (reliable, deep history, /tf_static transient
local) as QoS overrides so nothing is lost; emg_hand_bag adapts its QoS to the publishers
the same way by itself. Every teleop.launch.py argument applies too (see --show-args).
Train from the result: `ros2 run emg_pose_node emg_pose_train runs/session1 --out m.safetensors`.
"""

import tempfile

import yaml
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    GroupAction,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    TimerAction,
)
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.substitutions import FindPackageShare

from emg_hand_bringup import graph


def _recorder(context):
    config = context.launch_configurations
    namespace = config.get("ros_namespace", "") or ""
    try:
        tool, why = graph.choose_bag_tool(config["recorder"])
    except graph.GraphError as err:
        raise RuntimeError(f"record.launch.py: {err}") from None
    topics = [*graph.RECORD_TOPICS, *config["extra_topics"].split()]
    output = config["output"]
    actions = [LogInfo(msg=f"emg_hand: recording {len(topics)} topics to "
                           f"{output or 'rosbag2_<date-time>'} with {why}")]
    if tool == "ros2_bag":
        with open(config["qos_overrides_file"] or graph.config_file(graph.RECORD_QOS_FILE)) as f:
            overrides = graph.record_qos_overrides(namespace, yaml.safe_load(f))
        qos_file = tempfile.NamedTemporaryFile(
            "w", prefix="emg_hand_record_qos_", suffix=".yaml", delete=False)
        with qos_file:
            yaml.safe_dump(overrides, qos_file)
        actions.append(ExecuteProcess(
            cmd=graph.record_command(tool, namespace, output, topics, qos_file.name,
                                     config["storage"]),
            name="ros2_bag_record", output="screen"))
    else:
        actions.append(Node(
            package="emg_hand_bringup", executable="emg_hand_bag", output="screen",
            arguments=graph.record_command(tool, namespace, output, topics,
                                           storage=config["storage"])))
    duration_s = float(config["duration_s"])
    if duration_s > 0:
        actions.append(TimerAction(period=duration_s, actions=[
            LogInfo(msg=f"emg_hand: duration_s={duration_s:g} reached, stopping"),
            EmitEvent(event=Shutdown(reason="duration_s reached"))]))
    return actions


def generate_launch_description():
    teleop = PathJoinSubstitution(
        [FindPackageShare("emg_hand_bringup"), "launch", "teleop.launch.py"])
    return LaunchDescription([
        DeclareLaunchArgument(
            "recorder", default_value="auto", choices=["auto", "ros2_bag", "emg_hand_bag"],
            description="auto: ros2 bag record when installed, else emg_hand_bag record "
                        "(rosbags-based, same rosbag2 format)."),
        DeclareLaunchArgument(
            "output", default_value="",
            description="Bag folder to create (must not exist); empty: "
                        "rosbag2_<date-time> in the current directory."),
        DeclareLaunchArgument(
            "storage", default_value="mcap", choices=["mcap", "sqlite3"],
            description="rosbag2 storage format."),
        DeclareLaunchArgument(
            "extra_topics", default_value="",
            description="More topics to record, space-separated (e.g. '/tf "
                        "robot_hand/joint_states calibration/prompt')."),
        DeclareLaunchArgument(
            "qos_overrides_file", default_value="",
            description="ros2 bag QoS overrides; empty: share/emg_hand_bringup/config/"
                        "record_qos.yaml (moved into `namespace`)."),
        DeclareLaunchArgument(
            "duration_s", default_value="0",
            description="Stop everything after this many seconds; 0: until Ctrl-C."),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(teleop)),
        GroupAction([
            PushRosNamespace(LaunchConfiguration("namespace")),
            OpaqueFunction(function=_recorder),
        ]),
    ])
