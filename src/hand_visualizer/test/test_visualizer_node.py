"""hand_visualizer over real DDS: one installed node process, driven and observed from here.

Markers from keypoints (coloured by confidence) and from joint states, the reference ghost,
TF (the static armband -> hand_base from parameters, fingertip frames), rejection of bad
input, and hand.rviz's topics checked against the live graph.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from emg_hand_core.hand_model import (
    FINGERTIP_FRAMES,
    JOINT_NAMES,
    KEYPOINT_NAMES,
    forward_kinematics,
    forward_kinematics_frames,
)
from emg_hand_core.poses import NAMED_POSES
from emg_hand_testing.processes import NodeProcess, ros_args
from emg_hand_testing.ros import RosTestNode, wait_until
from emg_interfaces.msg import HandKeypoints
from hand_visualizer.markers import REFERENCE_RGBA, quaternion_from_matrix

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[3]
RVIZ = ROOT / "config" / "hand.rviz"
PARAMS = {
    "armband_frame": "emg_armband",
    "hand_base_xyz_m": [0.2, 0.01, -0.03],
    "hand_base_rpy_rad": [0.0, 0.0, 1.0],
    "keypoints_timeout_s": 0.3,
    "max_marker_rate_hz": 0.0,
    "diagnostics_period_s": 0.1,
}
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def graph():
    """(test node, visualizer process), shared by this module's tests."""
    proc = NodeProcess("hand_visualizer", "hand_visualizer", ros_args(PARAMS))
    node = RosTestNode("test_hand_visualizer")
    try:
        proc.wait_for_output(r"hand_visualizer: hand/markers", timeout_s=30.0)
        yield node, proc
    finally:
        node.close()
        proc.close()


def publish_until(node, pub, msg, collector, predicate, what, timeout_s=10.0):
    """Publish ``msg`` every 50 ms until the collector's messages satisfy ``predicate``.

    Repeats because this side may see the match before the node's side does."""
    wait_until(lambda: pub.get_subscription_count() >= 1, timeout_s, f"a subscriber on {what}")
    deadline = time.monotonic() + timeout_s
    while True:
        pub.publish(msg)
        try:
            return collector.wait_until(predicate, 0.05, what)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def markers_in(msgs, ns):
    return [m for a in msgs for m in a.markers if m.ns == ns]


def points(marker) -> np.ndarray:
    return np.array([(p.x, p.y, p.z) for p in marker.points])


def keypoints_msg(kp, names, confidence):
    msg = HandKeypoints(names=list(names), confidence=[float(c) for c in confidence])
    msg.header.frame_id = "hand_base"
    msg.positions = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in kp]
    return msg


def test_logs_which_tf_path_it_uses(graph):
    _, proc = graph
    match = proc.wait_for_output(r"TF: (broadcasting through tf2_ros|tf2_ros is not importable"
                                 r"; publishing tf2_msgs/msg/TFMessage on /tf and /tf_static)")
    try:
        import tf2_ros  # noqa: F401
        assert "through tf2_ros" in match.group(0)
    except ImportError:
        assert "publishing tf2_msgs" in match.group(0)


def test_static_armband_transform_from_parameters_reaches_late_joiners(graph):
    node, _ = graph
    static = node.collect(TFMessage, "/tf_static", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    msgs = static.wait_until(lambda m: any(t.child_frame_id == "hand_base"
                                           for msg in m for t in msg.transforms), 10.0,
                             "the static armband -> hand_base transform")
    t = next(t for msg in msgs for t in msg.transforms if t.child_frame_id == "hand_base")
    assert t.header.frame_id == "emg_armband"
    tr, rot = t.transform.translation, t.transform.rotation
    np.testing.assert_allclose([tr.x, tr.y, tr.z], PARAMS["hand_base_xyz_m"])
    np.testing.assert_allclose([rot.x, rot.y, rot.z, rot.w],
                               [0, 0, math.sin(0.5), math.cos(0.5)], atol=1e-12)
    # the robot hand's model, placed beside the human hand (default parameters)
    robot = next(t for msg in msgs for t in msg.transforms
                 if t.child_frame_id == "robot_hand/hand_base")
    assert robot.header.frame_id == "hand_base"
    assert robot.transform.translation.y == pytest.approx(-0.25)


def test_keypoint_markers_coloured_by_confidence(graph):
    node, _ = graph
    markers = node.collect(MarkerArray, "hand/markers")
    pub = node.node.create_publisher(HandKeypoints, "hand/keypoints", RELIABLE)
    kp = forward_kinematics(NAMED_POSES["pinch"])
    conf = np.linspace(0.0, 1.0, 21)
    # names in reverse order: the node must put them back in KEYPOINT_NAMES order
    msg = keypoints_msg(kp[::-1], KEYPOINT_NAMES[::-1], conf[::-1])
    msgs = publish_until(node, pub, msg, markers,
                         lambda m: bool(markers_in(m, "prediction")), "hand/markers")
    joints, bones = markers_in(msgs, "prediction")[-2:]
    assert joints.type == Marker.SPHERE_LIST and bones.type == Marker.LINE_LIST
    np.testing.assert_allclose(points(joints), kp)
    assert joints.header.frame_id == "hand_base"
    wrist, pinky_tip = joints.colors[0], joints.colors[20]
    assert (wrist.r, wrist.g) == (1.0, 0.0)  # confidence 0: red
    assert pinky_tip.r == 0.0 and pinky_tip.g > 0.8  # confidence 1: green


def test_joint_states_give_fingertip_tf_and_markers_without_keypoints(graph):
    node, _ = graph
    tf = node.collect(TFMessage, "/tf", 1000)
    markers = node.collect(MarkerArray, "hand/markers")
    pub = node.node.create_publisher(JointState, "hand/joint_states", RELIABLE)
    q = NAMED_POSES["point"]
    js = JointState(name=list(JOINT_NAMES), position=list(q))
    fk = forward_kinematics(q)
    # Drawn through forward kinematics once keypoints (from an earlier test) are older
    # than keypoints_timeout_s.
    publish_until(node, pub, js, markers, lambda m: any(
        len(k.points) == 21 and np.allclose(points(k), fk, atol=1e-12)
        for k in markers_in(m, "prediction")), "markers of the joint states", 10.0)
    frames = forward_kinematics_frames(q)
    tfs = tf.wait_for(1, 5.0)[-1].transforms
    assert sorted(t.child_frame_id for t in tfs) == sorted(f"target_{f}" for f in
                                                           FINGERTIP_FRAMES)
    for t in tfs:
        r, p = frames[t.child_frame_id.removeprefix("target_")]
        assert t.header.frame_id == "hand_base"
        tr, rot = t.transform.translation, t.transform.rotation
        np.testing.assert_allclose([tr.x, tr.y, tr.z], p, atol=1e-12)
        expected = np.array(quaternion_from_matrix(r))
        got = np.array([rot.x, rot.y, rot.z, rot.w])
        assert min(np.abs(got - expected).max(), np.abs(got + expected).max()) < 1e-9


def test_reference_ghost(graph):
    node, _ = graph
    markers = node.collect(MarkerArray, "hand/markers")
    pub = node.node.create_publisher(JointState, "hand/reference/joint_states", RELIABLE)
    q = NAMED_POSES["fist"]
    msgs = publish_until(node, pub, JointState(name=list(JOINT_NAMES), position=list(q)),
                         markers, lambda m: bool(markers_in(m, "reference")), "hand/markers")
    joints = markers_in(msgs, "reference")[-2]
    np.testing.assert_allclose(points(joints), forward_kinematics(q), atol=1e-12)
    c = joints.colors[0]
    np.testing.assert_allclose([c.r, c.g, c.b, c.a], REFERENCE_RGBA, atol=1e-6)


def test_bad_input_is_counted_and_the_node_keeps_drawing(graph):
    node, proc = graph
    diag = node.collect(DiagnosticArray, "/diagnostics", 1000)
    markers = node.collect(MarkerArray, "hand/markers")
    pub = node.node.create_publisher(HandKeypoints, "hand/keypoints", RELIABLE)
    kp = forward_kinematics(NAMED_POSES["open"])
    bad = keypoints_msg(np.vstack([kp[:20], [[math.nan, 0, 0]]]), KEYPOINT_NAMES, [])

    def rejected(msgs):
        for m in reversed(msgs):
            for s in m.status:
                if s.name.startswith("hand_visualizer"):
                    return int({kv.key: kv.value for kv in s.values}["rejected"])
        return 0

    publish_until(node, pub, bad, diag, lambda m: rejected(m) >= 1, "a counted rejection")
    proc.wait_for_output(r"rejected hand/keypoints: non-finite values for \[.pinky_tip.\]")
    good = keypoints_msg(kp, KEYPOINT_NAMES, [])
    msgs = publish_until(node, pub, good, markers,
                         lambda m: bool(markers_in(m, "prediction")), "hand/markers")
    np.testing.assert_allclose(points(markers_in(msgs, "prediction")[-2]), kp)
    assert proc.process.poll() is None


# Topics that other nodes of our launch graph publish (robot_state_publisher runs
# src/hand_visualizer/urdf/hand.urdf in the teleop launch, robot_hand_state_publisher the
# URDF of the controller's profile): topic -> (node, type).
LAUNCH_GRAPH_TOPICS = {
    "/robot_description": ("robot_state_publisher", "std_msgs/msg/String"),
    "/robot_hand/robot_description": ("robot_hand_state_publisher", "std_msgs/msg/String"),
}
DISPLAY_TYPES = {
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/RobotModel": "std_msgs/msg/String",
}


def rviz_topics() -> list[tuple[str, str]]:
    """(display class, topic) for every display of config/hand.rviz that has one."""
    config = yaml.safe_load(RVIZ.read_text())
    found = []
    for display in config["Visualization Manager"]["Displays"]:
        for key in ("Topic", "Description Topic"):
            if isinstance(display.get(key), dict) and display.get("Description Source",
                                                                  "Topic") == "Topic":
                found.append((display["Class"], display[key]["Value"]))
    return found


def test_every_rviz_display_topic_exists_in_our_graph(graph):
    node, _ = graph
    topics = rviz_topics()
    classes = {c for c, _ in topics}
    assert {"rviz_default_plugins/MarkerArray", "rviz_default_plugins/RobotModel"} <= classes
    config = yaml.safe_load(RVIZ.read_text())
    models = {d["Description Topic"]["Value"]: d.get("TF Prefix", "") for d in
              config["Visualization Manager"]["Displays"]
              if d["Class"] == "rviz_default_plugins/RobotModel"}
    # both hands: the human hand's links as they are, the robot hand's under robot_hand/
    assert models == {"/robot_description": "", "/robot_hand/robot_description": "robot_hand"}
    assert "rviz_default_plugins/TF" in {d["Class"] for d in
                                         config["Visualization Manager"]["Displays"]}
    # live: what the running hand_visualizer advertises
    wait_until(lambda: "/hand/markers" in dict(node.node.get_topic_names_and_types()), 10.0,
               "hand/markers in the graph")
    live = dict(node.node.get_topic_names_and_types())
    assert live["/tf"] == ["tf2_msgs/msg/TFMessage"]
    assert live["/tf_static"] == ["tf2_msgs/msg/TFMessage"]
    for display_class, topic in topics:
        if topic in LAUNCH_GRAPH_TOPICS:
            assert LAUNCH_GRAPH_TOPICS[topic][1] == DISPLAY_TYPES[display_class]
            continue
        assert topic in live, f"{display_class} shows {topic}, which nobody publishes"
        assert DISPLAY_TYPES[display_class] in live[topic]


def test_frame_prefix_names_every_frame_for_a_second_hand(node_process, ros_node):
    """Two hands side by side: frame_prefix keeps their TF frames apart."""
    proc = node_process("hand_visualizer", "hand_visualizer", ros_args(
        {"frame_prefix": "left/", "armband_frame": "left/armband"}))
    proc.wait_for_output(r"static left/armband -> left/hand_base", timeout_s=30.0)
    static = ros_node.collect(TFMessage, "/tf_static", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    tf = ros_node.collect(TFMessage, "/tf", 100)
    markers = ros_node.collect(MarkerArray, "hand/markers")
    static.wait_until(lambda m: any(t.child_frame_id == "left/hand_base" and
                                    t.header.frame_id == "left/armband"
                                    for msg in m for t in msg.transforms), 10.0,
                      "left/armband -> left/hand_base")
    pub = ros_node.node.create_publisher(JointState, "hand/joint_states", RELIABLE)
    js = JointState(name=list(JOINT_NAMES), position=list(NAMED_POSES["rest"]))
    # (this module's other visualizer may be running too: look for the prefixed frames)
    publish_until(ros_node, pub, js, markers, lambda m: any(
        k.header.frame_id == "left/hand_base" for k in markers_in(m, "prediction")),
        "markers in left/hand_base")
    msgs = tf.wait_until(lambda m: any(t.header.frame_id == "left/hand_base"
                                       for msg in m for t in msg.transforms), 5.0,
                         "fingertips under left/hand_base")
    tfs = next(msg.transforms for msg in msgs
               if any(t.header.frame_id == "left/hand_base" for t in msg.transforms))
    assert {t.header.frame_id for t in tfs} == {"left/hand_base"}
    assert sorted(t.child_frame_id for t in tfs) == sorted(
        f"left/target_{f}" for f in FINGERTIP_FRAMES)
