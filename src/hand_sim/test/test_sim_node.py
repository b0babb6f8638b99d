"""hand_sim over real DDS: the installed node in its own process, driven by the installed
hand_controller (as teleop.launch.py robot:=sim wires them) and by this test."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from emg_hand_core.poses import NAMED_POSES
from emg_hand_core.topics import (
    CLOCK_TOPIC,
    CONTACTS_TOPIC,
    FORWARD_COMMANDS_TOPIC,
    ROBOT_COMMANDED_JOINT_STATES_TOPIC,
    ROBOT_JOINT_STATES_TOPIC,
)
from emg_hand_testing.processes import ros_args
from emg_hand_testing.ros import PoseStreamer
from emg_interfaces.msg import HandContacts
from hand_controller.profile import load_profile, resolve_profile_path

pytestmark = pytest.mark.timeout(120)
PROFILE = "prosthetic_6"


def start_sim(node_process, **params):
    params.setdefault("profile", PROFILE)
    params.setdefault("diagnostics_period_s", 0.2)
    proc = node_process("hand_sim", "hand_sim", ros_args(params))
    proc.wait_for_output(r"hand_sim: profile", timeout_s=60.0)
    return proc


def start_controller(node_process, **params):
    """The controller as the launch file starts it next to the sim: its commanded states
    moved off robot_hand/joint_states, which the sim publishes."""
    params = {"profile": PROFILE, "start_enabled": True, **params}
    proc = node_process("hand_controller", "hand_controller", ros_args(
        params, remaps={ROBOT_JOINT_STATES_TOPIC: ROBOT_COMMANDED_JOINT_STATES_TOPIC}))
    proc.wait_for_output(r"hand_controller: profile", timeout_s=30.0)
    return proc


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_controller_drives_the_sim_within_velocity_limits_then_the_watchdog_opens_it(
        ros_node, node_process):
    profile = load_profile(resolve_profile_path(PROFILE))
    measured = ros_node.collect(JointState, ROBOT_JOINT_STATES_TOPIC, 5000)
    commanded = ros_node.collect(JointState, ROBOT_COMMANDED_JOINT_STATES_TOPIC, 5000)
    start_sim(node_process, scene_object="none")
    start_controller(node_process, input_timeout_ms=200)
    streamer = PoseStreamer(ros_node).wait_matched()
    fist = profile.clamp(profile.retarget(NAMED_POSES["fist"]))
    try:
        streamer.start(NAMED_POSES["fist"])
        measured.wait_until(lambda m: len(m) > 0 and np.allclose(m[-1].position, fist,
                                                                 atol=0.05),
                            15.0, "the simulated hand to reach the fist")
    finally:
        streamer.stop()
    assert commanded.messages, "the controller's commands did not arrive"
    msgs = measured.messages
    assert list(msgs[-1].name) == list(profile.joint_names)
    q = np.array([m.position for m in msgs])
    t = np.array([stamp_s(m) for m in msgs])
    velocity = np.array([m.velocity for m in msgs])
    assert np.array([m.effort for m in msgs]).shape == q.shape
    # measured velocities (from the physics) and finite differences both within the limits
    assert np.all(np.abs(velocity) <= 1.1 * profile.max_velocity)
    moving = np.diff(t) > 0
    rate = np.abs(np.diff(q, axis=0)[moving]) / np.diff(t)[moving, None]
    assert np.all(rate <= 1.15 * profile.max_velocity), rate.max(axis=0)
    assert np.max(np.abs(velocity)) > 0.7 * profile.max_velocity.min()  # it did move

    # input stops: the controller's watchdog drives the sim to the safe posture (open)
    measured.wait_until(lambda m: np.allclose(m[-1].position, profile.safe_posture, atol=0.05),
                        15.0, "the simulated hand to reach the safe posture")


def test_grasp_makes_contact_and_clock_and_bad_commands(ros_node, node_process):
    profile = load_profile(resolve_profile_path(PROFILE))
    contacts = ros_node.collect(HandContacts, CONTACTS_TOPIC, 2000)
    clock = ros_node.collect(Clock, CLOCK_TOPIC, 2000)
    states = ros_node.collect(JointState, ROBOT_JOINT_STATES_TOPIC, 2000)
    diagnostics = ros_node.collect(DiagnosticArray, "/diagnostics", 500)
    start_sim(node_process, publish_clock=True)
    pub = ros_node.node.create_publisher(Float64MultiArray, FORWARD_COMMANDS_TOPIC, 10)
    ros_node.wait_for_subscribers(FORWARD_COMMANDS_TOPIC, timeout_s=20.0)
    pub.publish(Float64MultiArray(data=[0.0, 1.0]))  # wrong length: refused, counted
    fist = profile.clamp(profile.retarget(NAMED_POSES["fist"]))
    pub.publish(Float64MultiArray(data=fist.tolist()))
    long_fingers = [f for f in dict.fromkeys(profile.fingers) if f != "thumb"]

    def gripping(msgs) -> bool:
        if not msgs:
            return False
        force = dict(zip(msgs[-1].fingers, msgs[-1].normal_force))
        return all(force[f] > 0.5 for f in long_fingers)

    msgs = contacts.wait_until(gripping, 15.0, "contact on every flexing finger")
    assert msgs[0].header.frame_id == "robot_hand/hand_base"
    assert all(sum(m.normal_force) == 0 for m in msgs[:3])  # open at first: no contact
    # /clock carries the simulated time, and the states are stamped with it
    ticks = [c.clock.sec + c.clock.nanosec * 1e-9 for c in clock.messages]
    assert np.all(np.diff(ticks) > 0) and ticks[-1] < 600.0  # from 0, not the epoch
    stamps = [stamp_s(m) for m in states.messages]
    assert ticks[0] - 0.05 <= stamps[len(stamps) // 2] <= ticks[-1] + 0.05
    diagnostics.wait_until(lambda m: any(kv.key == "rejected_length" and kv.value == "1"
                                         for msg in m for s in msg.status
                                         if s.name == "hand_sim: physics" for kv in s.values),
                           10.0, "the refused command in /diagnostics")


def test_controller_stops_closing_fingers_that_touch_with_the_force_limit(ros_node,
                                                                          node_process):
    """The controller reads hand_sim's contacts: with contact_force_limit_n a fist closes
    until each finger presses on the cylinder, then holds there instead of squeezing on."""
    profile = load_profile(resolve_profile_path(PROFILE))
    contacts = ros_node.collect(HandContacts, CONTACTS_TOPIC, 2000)
    commanded = ros_node.collect(JointState, ROBOT_COMMANDED_JOINT_STATES_TOPIC, 2000)
    start_sim(node_process)
    start_controller(node_process, contact_force_limit_n=2.0)
    streamer = PoseStreamer(ros_node).wait_matched()
    fist = profile.clamp(profile.retarget(NAMED_POSES["fist"]))
    index = profile.joint_names.index("index_flexion")
    try:
        streamer.start(NAMED_POSES["fist"])
        contacts.wait_until(lambda m: bool(m) and dict(zip(m[-1].fingers,
                                                           m[-1].normal_force))["index"] > 2.0,
                            15.0, "the index finger pressing on the cylinder")
        held = commanded.messages[-1].position[index]
        count = len(commanded.messages)
        commanded.wait_for(count + 50, 10.0)  # half a second more of a commanded fist
    finally:
        streamer.stop()
    assert commanded.messages[-1].position[index] == pytest.approx(held, abs=0.05)
    assert held < fist[index] - 0.3  # it stopped at the object, short of the fist


def test_a_bad_parameter_is_refused_with_the_reason(node_process):
    proc = node_process("hand_sim", "hand_sim", ros_args({"physics_rate_hz": 100.0}))
    assert proc.wait(timeout_s=60.0) == 2
    assert "physics_rate_hz=100.0 refused: must be within [500, 10000] Hz" in proc.output
