"""Calibrate to the wearer: the teleop graph plus a Calibrate goal to emg_pose.

    ros2 launch emg_hand_bringup calibrate.launch.py source:=serial port:=/dev/ttyACM0
    ros2 launch emg_hand_bringup calibrate.launch.py mode:=reference duration_s:=60
    ros2 launch emg_hand_bringup calibrate.launch.py wearer:=b   # the simulator's 2nd wearer
    ros2 launch emg_hand_bringup calibrate.launch.py poses:="rest open fist" save_as:=alice

emg_hand_calibrate (a console script of emg_hand_bringup, also usable alone:
`ros2 run emg_hand_bringup emg_hand_calibrate --help`) waits for <namespace>/emg_pose/calibrate,
sends the goal, prints the prompts of a guided calibration (hold / rest, from the
calibration/prompt topic) and the action's feedback (recording, fine-tuning epochs and
loss), and ends with the result: held-out error before and after and whether the new model
now runs. Modes: guided (prompted named poses, no reference needed: the usual case) and
reference (record EMG with hand/reference/joint_states: the simulator's truth, a camera
tracker or a glove). The graph keeps running with the calibrated model unless
exit_after:=true. Every teleop.launch.py argument applies too (see --show-args).
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.substitutions import FindPackageShare

BOOL = ["true", "false"]


def _client(context):
    config = context.launch_configurations
    args = ["--mode", config["mode"], "--server-timeout-s", config["server_timeout_s"]]
    for option in ("duration_s", "hold_s", "rest_s", "repetitions", "epochs"):
        if float(config[option]) > 0:
            args += [f"--{option.replace('_', '-')}", config[option]]
    if config["save_as"]:
        args += ["--save-as", config["save_as"]]
    if config["poses"].split():
        args += ["--poses", *config["poses"].split()]
    client = Node(package="emg_hand_bringup", executable="emg_hand_calibrate",
                  arguments=args, output="screen", emulate_tty=True)
    return [client, RegisterEventHandler(
        OnProcessExit(target_action=client, on_exit=[
            LogInfo(msg="emg_hand: calibration finished (exit_after:=true): stopping"),
            EmitEvent(event=Shutdown(reason="calibration finished"))]),
        condition=IfCondition(LaunchConfiguration("exit_after")))]


def generate_launch_description():
    teleop = PathJoinSubstitution(
        [FindPackageShare("emg_hand_bringup"), "launch", "teleop.launch.py"])
    return LaunchDescription([
        DeclareLaunchArgument(
            "mode", default_value="guided", choices=["guided", "reference"],
            description="guided: prompt named poses (no reference needed); reference: "
                        "record EMG with hand/reference/joint_states (sim, tracker, glove)."),
        DeclareLaunchArgument(
            "duration_s", default_value="0",
            description="Reference mode: seconds to record; 0: the node's "
                        "calibration_duration_s (60)."),
        DeclareLaunchArgument(
            "poses", default_value="",
            description="Guided mode: poses to prompt, space-separated (rest open fist pinch "
                        "point thumbs_up tripod thumb_flex index_flex ...); empty: the node's "
                        "calibration_poses."),
        DeclareLaunchArgument(
            "hold_s", default_value="0",
            description="Guided mode: seconds each pose is held; 0: node default (4)."),
        DeclareLaunchArgument(
            "rest_s", default_value="0",
            description="Guided mode: seconds of rest between poses; 0: node default (2)."),
        DeclareLaunchArgument(
            "repetitions", default_value="0",
            description="Guided mode: repetitions of the pose sequence; 0: node default (2)."),
        DeclareLaunchArgument(
            "epochs", default_value="0",
            description="Fine-tuning epochs; 0: node default (40)."),
        DeclareLaunchArgument(
            "save_as", default_value="",
            description="Also save an accepted model under this plain name (load it later "
                        "with model:=<name>)."),
        DeclareLaunchArgument(
            "server_timeout_s", default_value="120",
            description="How long to wait for emg_pose's calibrate action (model loading)."),
        DeclareLaunchArgument(
            "exit_after", default_value="false", choices=BOOL,
            description="Stop every node when the calibration has finished."),
        # teleop arguments whose defaults differ here (first declaration wins)
        DeclareLaunchArgument(
            "follow_prompts", default_value="true", choices=BOOL,
            description="Simulated wearer (source sim) follows the guided prompts, so a "
                        "guided calibration on the simulator has something to learn."),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(teleop)),
        GroupAction([
            PushRosNamespace(LaunchConfiguration("namespace")),
            OpaqueFunction(function=_client),
        ]),
    ])
