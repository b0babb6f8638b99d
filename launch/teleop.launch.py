"""Teleoperation: armband -> emg_pose -> hand in RViz -> robot or prosthetic hand.

    ros2 launch emg_hand_bringup teleop.launch.py                    # simulated armband
    ros2 launch emg_hand_bringup teleop.launch.py source:=serial \\
        port:=/dev/serial/by-id/usb-...-if00 protocol:=binary
    ros2 launch emg_hand_bringup teleop.launch.py device:=cyton \\
        port:=/dev/serial/by-id/usb-FTDI_...-if00-port0            # OpenBCI Cyton
    ros2 launch emg_hand_bringup teleop.launch.py namespace:=left    # two hands: run again
    ros2 launch emg_hand_bringup teleop.launch.py namespace:=right   #   with namespace:=right
    ros2 launch emg_hand_bringup teleop.launch.py robot:=sim controller_enabled:=true
    ros2 launch emg_hand_bringup teleop.launch.py control:=gesture gesture_model:=grips.safetensors
    ros2 launch emg_hand_bringup teleop.launch.py --show-args

Nodes (emg_hand_bringup.graph describes them, for this file and for `make demo`):
emg_driver, emg_pose (or emg_gesture with control:=gesture), hand_visualizer,
robot_state_publisher (our URDF, on hand/joint_states), hand_controller (disabled until
~/enable, unless controller_enabled:=true), a second robot_state_publisher with the URDF of the
controller's profile (on robot_hand/joint_states, frames robot_hand/...), hand_sim with
robot:=sim, and RViz with config/hand.rviz when rviz:=true. Parameters come
from share/emg_hand_bringup/config/<node>.yaml; the arguments (graph.TELEOP_ARGUMENTS, listed
by --show-args) override them.
robot_state_publisher and RViz are started when installed; otherwise the log says so and
the rest runs.
"""

from launch import LaunchDescription
from launch.actions import GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import PushRosNamespace

from emg_hand_bringup import graph
from emg_hand_bringup.launch_actions import declare, graph_nodes


def generate_launch_description():
    # every argument (graph.TELEOP_ARGUMENTS: name, default, choices, description)
    return LaunchDescription([
        *declare(graph.teleop_arguments()),
        GroupAction([
            PushRosNamespace(LaunchConfiguration("namespace")),
            OpaqueFunction(function=graph_nodes),
        ]),
    ])
