"""Teleoperation: armband -> emg_pose -> hand in RViz -> robot or prosthetic hand.

    ros2 launch emg_hand_bringup teleop.launch.py                    # simulated armband
    ros2 launch emg_hand_bringup teleop.launch.py source:=serial \\
        port:=/dev/serial/by-id/usb-...-if00 protocol:=binary
    ros2 launch emg_hand_bringup teleop.launch.py namespace:=left    # two hands: run again
    ros2 launch emg_hand_bringup teleop.launch.py namespace:=right   #   with namespace:=right
    ros2 launch emg_hand_bringup teleop.launch.py control:=gesture gesture_model:=grips.safetensors
    ros2 launch emg_hand_bringup teleop.launch.py --show-args

Nodes (emg_hand_bringup.graph describes them, for this file and for `make demo`):
emg_driver, emg_pose (or emg_gesture with control:=gesture), hand_visualizer,
robot_state_publisher (our URDF, on hand/joint_states), hand_controller (disabled until
~/enable, unless controller_enabled:=true), and RViz with config/hand.rviz when rviz:=true.
Parameters come from share/emg_hand_bringup/config/<node>.yaml; the arguments below
override them.
robot_state_publisher and RViz are started when installed; otherwise the log says so and
the rest runs.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, LogInfo, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue

from emg_hand_bringup import graph

BOOL = ["true", "false"]


def _typed(parameters):
    """Strings stay strings (launch_ros would read 'left/' or a URDF as YAML otherwise)."""
    return {name: ParameterValue(value, value_type=str) if isinstance(value, str) else value
            for name, value in parameters.items()}


def _nodes(context):
    """Resolve the arguments and return the graph's Node actions (and notes)."""
    values = dict(context.launch_configurations)  # every argument, resolved
    # the full namespace, including any pushed by a launch file that includes this one
    namespace = context.launch_configurations.get("ros_namespace", "") or ""
    options = graph.TeleopOptions.from_strings({**values, "namespace": namespace})
    try:
        teleop = graph.teleop_graph(options)
    except (graph.GraphError, FileNotFoundError) as err:
        raise RuntimeError(f"teleop.launch.py: {err}") from None
    actions = [LogInfo(msg=f"emg_hand: {note}") for note in teleop.notes]
    for spec in teleop.nodes:
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name,
            parameters=[*spec.params_files, _typed(spec.parameters)],
            remappings=list(spec.remappings), arguments=list(spec.arguments),
            ros_arguments=["--log-level", spec.log_level], output="screen",
            emulate_tty=True))

    rviz = IfCondition(LaunchConfiguration("rviz"))
    if graph.installed("rviz2"):
        actions.append(Node(
            package="rviz2", executable="rviz2", name="rviz2", condition=rviz,
            arguments=graph.rviz_arguments(namespace, values.get("rviz_config", "")),
            remappings=graph.rviz_remappings(namespace), output="screen",
            parameters=[{"use_sim_time": options.use_sim_time}]))
    else:
        actions.append(LogInfo(condition=rviz, msg="emg_hand: rviz2 is not installed here "
                               "(ros-jazzy-rviz2): RViz not started; rviz:=false hides this"))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of every node and relative topic (e.g. left, right: two "
                        "hands side by side); frames get the prefix <namespace>/."),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=BOOL,
            description="Use /clock (a bag played with --clock) as every node's time."),
        DeclareLaunchArgument(
            "log_level", default_value="info", choices=["debug", "info", "warn", "error"],
            description="Log level of every node."),
        # --- driver
        DeclareLaunchArgument(
            "driver", default_value="true", choices=BOOL,
            description="Start emg_driver (false: emg/raw comes from elsewhere, e.g. a bag)."),
        DeclareLaunchArgument(
            "source", default_value="sim", choices=["sim", "serial", "replay"],
            description="EMG source of emg_driver: sim (simulated armband), serial (a real "
                        "armband on `port`), replay (the recording `replay_file`)."),
        DeclareLaunchArgument(
            "port", default_value="",
            description="Serial device of the armband (source serial), e.g. "
                        "/dev/serial/by-id/usb-...; empty: driver_params_file's port."),
        DeclareLaunchArgument(
            "protocol", default_value="", choices=["", "text", "binary"],
            description="Serial wire protocol (source serial): text lines or binary frames; "
                        "empty: driver_params_file's protocol."),
        DeclareLaunchArgument(
            "replay_file", default_value="",
            description="Recording for source replay (emg2pose .h5, EEG-EMG-Hands CSV, "
                        "BrainFlow, Myo .txt); empty: driver_params_file's file."),
        DeclareLaunchArgument(
            "wearer", default_value="", choices=["", "a", "b"],
            description="Simulated wearer (source sim): a (the default model's training "
                        "conditions) or b (armband rotated, uneven gains: calibrate!); empty: "
                        "driver_params_file's wearer (a)."),
        DeclareLaunchArgument(
            "follow_prompts", default_value="false", choices=BOOL,
            description="Simulated wearer (source sim) follows guided-calibration prompts "
                        "(calibration/prompt), so a guided calibration works on the sim."),
        DeclareLaunchArgument(
            "driver_params_file", default_value="",
            description="emg_driver parameter file; empty: share/emg_hand_bringup/config/"
                        "emg_driver.yaml."),
        DeclareLaunchArgument(
            "armband_frame", default_value="armband",
            description="Frame of the armband (emg/raw frame_id, parent of hand_base), "
                        "prefixed with <namespace>/."),
        # --- pose
        DeclareLaunchArgument(
            "pose_node", default_value="true", choices=BOOL,
            description="Start emg_pose (false: hand/joint_states comes from elsewhere)."),
        DeclareLaunchArgument(
            "model", default_value="",
            description="emg_pose model: 'default' (shipped), a name saved in models_dir, "
                        "or a checkpoint path; empty: pose_params_file's model (default)."),
        DeclareLaunchArgument(
            "pose_params_file", default_value="",
            description="emg_pose parameter file; empty: share/emg_hand_bringup/config/"
                        "emg_pose.yaml."),
        DeclareLaunchArgument(
            "control", default_value="pose", choices=["pose", "gesture"],
            description="pose: emg_pose estimates the hand pose and the controller follows "
                        "it; gesture: emg_gesture classifies grips (pattern recognition, "
                        "gesture_model) and the controller runs in grip mode on hand/gesture."),
        DeclareLaunchArgument(
            "gesture_model", default_value="",
            description="control:=gesture: the gesture checkpoint (a path, or a name in "
                        "models_dir) from emg_gesture_train; required there."),
        DeclareLaunchArgument(
            "gesture_params_file", default_value="",
            description="emg_gesture parameter file; empty: share/emg_hand_bringup/config/"
                        "emg_gesture.yaml."),
        # --- visualisation
        DeclareLaunchArgument(
            "visualizer", default_value="true", choices=BOOL,
            description="Start hand_visualizer (markers on hand/markers, TF)."),
        DeclareLaunchArgument(
            "visualizer_params_file", default_value="",
            description="hand_visualizer parameter file; empty: share/emg_hand_bringup/"
                        "config/hand_visualizer.yaml."),
        DeclareLaunchArgument(
            "robot_state_publisher", default_value="true", choices=BOOL,
            description="Start robot_state_publisher with hand_visualizer's URDF on "
                        "hand/joint_states (when installed; the log says if it is not)."),
        DeclareLaunchArgument(
            "rviz", default_value="true", choices=BOOL,
            description="Start RViz with config/hand.rviz (when installed)."),
        DeclareLaunchArgument(
            "rviz_config", default_value="",
            description="RViz config; empty: share/emg_hand_bringup/config/hand.rviz."),
        # --- controller
        DeclareLaunchArgument(
            "controller", default_value="true", choices=BOOL,
            description="Start hand_controller (it starts disabled: see controller_enabled)."),
        DeclareLaunchArgument(
            "controller_profile", default_value="",
            description="Target hand: prosthetic_6, four_finger_16, human, or a profile YAML "
                        "path; empty: controller_params_file's profile (prosthetic_6)."),
        DeclareLaunchArgument(
            "controller_output", default_value="",
            choices=["", "forward_position", "joint_trajectory", "serial", "none"],
            description="Command output of hand_controller; empty: controller_params_file's "
                        "output (forward_position)."),
        DeclareLaunchArgument(
            "controller_enabled", default_value="false", choices=BOOL,
            description="Command the hand from start-up. false (default): call "
                        "<namespace>/hand_controller/enable (std_srvs/SetBool) first."),
        DeclareLaunchArgument(
            "controller_serial_port", default_value="",
            description="Serial device of the hand for controller_output serial."),
        DeclareLaunchArgument(
            "controller_params_file", default_value="",
            description="hand_controller parameter file; empty: share/emg_hand_bringup/"
                        "config/hand_controller.yaml."),
        GroupAction([
            PushRosNamespace(LaunchConfiguration("namespace")),
            OpaqueFunction(function=_nodes),
        ]),
    ])
