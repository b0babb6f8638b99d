"""Replay a recording into the pose node, the visualizer and (optionally) the controller.

    ros2 launch emg_hand_bringup replay.launch.py bag:=runs/session1
    ros2 launch emg_hand_bringup replay.launch.py bag:=runs/session1 rate:=2.0 loop:=true
    ros2 launch emg_hand_bringup replay.launch.py bag:=runs/session1 model:=wearer_b
    ros2 launch emg_hand_bringup replay.launch.py bag:=runs/session1 pose_node:=false

The bag's emg/raw (and hand/reference/joint_states, for the reference ghost) are played
with `ros2 bag play --clock` (or `emg_hand_bag play --clock`) into a fresh emg_pose, so a
recording can be re-run through another model; with pose_node:=false the recorded
hand/joint_states and hand/keypoints are played instead. Every node runs with
use_sim_time:=true on the bag's /clock. No driver runs, so the driver's arguments of
teleop.launch.py are not offered; every other one applies (see --show-args). Topics are
played under their recorded names, so replay a bag recorded in namespace `left` with
namespace:=left.
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    GroupAction,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    TimerAction,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from emg_hand_bringup import graph
from emg_hand_bringup.launch_actions import declare, graph_nodes

BOOL = ["true", "false"]


def _player(context):
    config = context.launch_configurations
    namespace = config.get("ros_namespace", "") or ""
    try:
        tool, why = graph.choose_bag_tool(config["player"])
    except graph.GraphError as err:
        raise RuntimeError(f"replay.launch.py: {err}") from None
    names = list(graph.REPLAY_INPUT_TOPICS)
    if config["pose_node"] == "false":
        names += graph.REPLAY_POSE_TOPICS
    topics = [graph.resolve_topic(namespace, t) for t in names]
    cmd = graph.play_command(tool, config["bag"], topics, rate=float(config["rate"]),
                             loop=config["loop"] == "true")
    actions = [LogInfo(msg=f"emg_hand: playing {' '.join(topics)} from {config['bag']} "
                           f"with {why}")]
    if tool == "ros2_bag":
        # ros2 bag play cannot wait for subscribers: give the nodes time to start
        player = ExecuteProcess(cmd=cmd, name="ros2_bag_play", output="screen")
        actions.append(TimerAction(period=float(config["start_delay_s"]), actions=[player]))
    else:  # waits until the played topics have subscribers
        player = Node(package="emg_hand_bringup", executable="emg_hand_bag", arguments=cmd,
                      output="screen")
        actions.append(player)
    actions.append(RegisterEventHandler(
        OnProcessExit(target_action=player, on_exit=[
            LogInfo(msg="emg_hand: the bag has been played; stopping"),
            EmitEvent(event=Shutdown(reason="bag played"))]),
        condition=IfCondition(LaunchConfiguration("exit_at_end"))))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            "bag", description="rosbag2 folder to play (from record.launch.py, ros2 bag "
                               "record or emg_hand_bag record)."),
        DeclareLaunchArgument(
            "player", default_value="auto", choices=["auto", "ros2_bag", "emg_hand_bag"],
            description="auto: ros2 bag play when installed, else emg_hand_bag play."),
        DeclareLaunchArgument(
            "rate", default_value="1.0", description="Play speed factor (2.0: twice as fast)."),
        DeclareLaunchArgument(
            "loop", default_value="false", choices=BOOL,
            description="Play the bag again from the start at its end (the pose node resets "
                        "its stream when time jumps back)."),
        DeclareLaunchArgument(
            "start_delay_s", default_value="5.0",
            description="ros2 bag play only: seconds to wait for the nodes to start (emg_hand_"
                        "bag play waits until the played topics have subscribers)."),
        DeclareLaunchArgument(
            "exit_at_end", default_value="true", choices=BOOL,
            description="Stop every node when the bag has been played (not with loop)."),
        # teleop arguments whose defaults differ here
        DeclareLaunchArgument(
            "use_sim_time", default_value="true", choices=BOOL,
            description="Use the bag's /clock as every node's time."),
        DeclareLaunchArgument(
            "controller", default_value="false", choices=BOOL,
            description="Also run hand_controller on the replayed poses (disabled until "
                        "~/enable unless controller_enabled:=true)."),
        # the rest of teleop's, without the driver's: no driver runs here
        *declare(graph.teleop_arguments(driver=False, exclude=("use_sim_time", "controller"))),
        GroupAction([
            PushRosNamespace(LaunchConfiguration("namespace")),
            OpaqueFunction(function=graph_nodes, kwargs={"driver": False}),
            OpaqueFunction(function=_player),
        ]),
    ])
