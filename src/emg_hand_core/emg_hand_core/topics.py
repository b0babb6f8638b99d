"""Topic names of the emg_hand graph, in one place (shared/DESIGN.md).

Relative names resolve in a node's namespace (``namespace:=left`` moves them all);
``/diagnostics`` and the TF topics are global, as everywhere in ROS 2.
"""

from __future__ import annotations

EMG_TOPIC = "emg/raw"
"""emg_interfaces/msg/EMG chunks [V] from emg_driver."""
IMU_TOPIC = "imu/raw"
"""sensor_msgs/msg/Imu of armbands with an IMU."""
REFERENCE_TOPIC = "hand/reference/joint_states"
"""sensor_msgs/msg/JointState: the true pose (simulator, replay, a tracker)."""
JOINT_STATES_TOPIC = "hand/joint_states"
"""sensor_msgs/msg/JointState: the predicted 20 joint angles [rad]."""
KEYPOINTS_TOPIC = "hand/keypoints"
"""emg_interfaces/msg/HandKeypoints: the predicted 21 keypoints [m]."""
GESTURE_TOPIC = "hand/gesture"
"""emg_interfaces/msg/Gesture (gesture models)."""
MARKERS_TOPIC = "hand/markers"
"""visualization_msgs/msg/MarkerArray of the hand."""
PROMPT_TOPIC = "calibration/prompt"
"""emg_interfaces/msg/CalibrationPrompt of a guided calibration."""
ROBOT_JOINT_STATES_TOPIC = "robot_hand/joint_states"
"""sensor_msgs/msg/JointState of the robot hand: measured (hand_sim, a real hand's driver),
or, with no robot running, what the controller commands."""
ROBOT_COMMANDED_JOINT_STATES_TOPIC = "robot_hand/commanded_joint_states"
"""Where the launch files move the controller's commanded robot_hand/joint_states while a
robot (hand_sim) publishes the measured ones."""
ROBOT_DESCRIPTION_TOPIC = "robot_hand/robot_description"
"""std_msgs/msg/String: the robot hand's URDF (its robot_state_publisher)."""
CONTACTS_TOPIC = "robot_hand/contacts"
"""emg_interfaces/msg/HandContacts: contact forces per finger [N] (hand_sim)."""
FORWARD_COMMANDS_TOPIC = "forward_position_controller/commands"
"""std_msgs/msg/Float64MultiArray for ros2_control's forward position controller."""
TRAJECTORY_TOPIC = "joint_trajectory_controller/joint_trajectory"
"""trajectory_msgs/msg/JointTrajectory for ros2_control's joint trajectory controller."""
DIAGNOSTICS_TOPIC = "/diagnostics"
CLOCK_TOPIC = "/clock"
"""rosgraph_msgs/msg/Clock: simulated time (hand_sim with publish_clock)."""
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"


def topic_matches(topic: str, name: str) -> bool:
    """A recorded ``topic`` is relative ``name`` under some namespace (or none):
    ``/left/emg/raw`` matches ``emg/raw``; ``/hand/reference/joint_states`` does not match
    ``joint_states`` only partly (the whole name must follow a ``/``)."""
    topic, name = topic.strip("/"), name.strip("/")
    return topic == name or topic.endswith("/" + name)


def find_topic(available, name: str) -> str | None:
    """The topic of ``available`` that is ``name`` itself, else the first (sorted) one under a
    namespace, else None."""
    exact = [t for t in available if t.strip("/") == name.strip("/")]
    if exact:
        return exact[0]
    under = sorted(t for t in available if topic_matches(t, name))
    return under[0] if under else None
