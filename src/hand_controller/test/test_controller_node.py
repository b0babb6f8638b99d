"""hand_controller over real DDS: the installed node in its own process, driven by this one.

Covers each profile's mapping on known poses, limits and velocity on random input, the
watchdog's timing, rejection of bad input, enable/stop, the serial frame on a pty and the
JointTrajectory output.
"""

from __future__ import annotations

import math
import os
import select
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from emg_hand_core.hand_model import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from emg_hand_core.poses import NAMED_POSES
from emg_hand_testing.processes import ros_args
from emg_hand_testing.ros import PoseStreamer, joint_state, wait_until
from hand_controller.profile import load_profile, resolve_profile_path
from hand_controller.serial_frame import decode_commands

pytestmark = pytest.mark.timeout(90)

STATUS = "hand_controller: safety"


@pytest.fixture
def streamer(ros_node):
    s = PoseStreamer(ros_node)
    yield s
    s.stop()


def start_controller(node_process, **params):
    params.setdefault("diagnostics_period_s", 0.1)
    proc = node_process("hand_controller", "hand_controller", ros_args(params))
    proc.wait_for_output(r"hand_controller: profile", timeout_s=30.0)
    return proc


def status(diag) -> dict[str, str]:
    """Key-values of the controller's latest diagnostics status ({} before the first)."""
    for msg in reversed(diag.messages):
        for s in msg.status:
            if s.name == STATUS:
                return {kv.key: kv.value for kv in s.values} | {"_level": s.level,
                                                               "_message": s.message}
    return {}


def wait_status(diag, predicate, what: str, timeout_s: float = 10.0) -> dict[str, str]:
    diag.wait_until(lambda _m: bool(status(diag)) and predicate(status(diag)), timeout_s, what)
    return status(diag)


def expected(profile, pose_name):
    return profile.clamp(profile.retarget(NAMED_POSES[pose_name]))


def fraction_closed(profile, target):
    flex = ~np.isnan(profile.closed)
    rng = profile.upper - profile.lower
    frac = np.where(profile.closed == profile.upper, (target - profile.lower) / rng,
                    (profile.upper - target) / rng)
    return frac[flex]


def close_to(values, target, atol=1e-9) -> bool:
    return len(values) == len(target) and np.allclose(values, target, atol=atol)


@pytest.mark.parametrize("profile_name", ["prosthetic_6", "four_finger_16"])
def test_fist_closes_and_open_opens_each_profile(ros_node, node_process, streamer,
                                                 profile_name):
    profile = load_profile(resolve_profile_path(profile_name))
    commands = ros_node.collect(Float64MultiArray, "forward_position_controller/commands")
    start_controller(node_process, profile=profile_name, start_enabled=True)
    streamer.wait_matched().start(NAMED_POSES["fist"])
    fist = expected(profile, "fist")
    commands.wait_until(lambda m: bool(m) and close_to(m[-1].data, fist), 10.0,
                        "commands to reach the fist")
    assert np.all(fraction_closed(profile, fist) >= 0.8)  # every flexion joint near closed
    streamer.pose = NAMED_POSES["open"]
    opened = expected(profile, "open")
    commands.wait_until(lambda m: close_to(m[-1].data, opened), 10.0, "commands to open")
    assert np.all(fraction_closed(profile, opened) <= 0.2)
    assert all(len(m.data) == profile.num_joints for m in commands.messages)


def test_human_profile_joint_trajectory_output(ros_node, node_process, streamer):
    trajectories = ros_node.collect(JointTrajectory, "joint_trajectory_controller/joint_trajectory")
    start_controller(node_process, profile="human", output="joint_trajectory",
                     start_enabled=True, control_rate_hz=50.0)
    streamer.wait_matched().start(NAMED_POSES["pinch"])
    msgs = trajectories.wait_until(
        lambda m: bool(m) and close_to(m[-1].points[0].positions, NAMED_POSES["pinch"]), 10.0,
        "the trajectory to reach the pinch")
    last = msgs[-1]
    assert list(last.joint_names) == list(JOINT_NAMES)
    assert len(last.points) == 1
    tfs = last.points[0].time_from_start
    assert (tfs.sec, tfs.nanosec) == (0, 20_000_000)  # one period at 50 Hz
    assert (last.header.stamp.sec, last.header.stamp.nanosec) == (0, 0)  # start now


def test_random_input_never_exceeds_limits_or_velocity(ros_node, node_process, streamer):
    profile = load_profile(resolve_profile_path("four_finger_16"))
    states = ros_node.collect(JointState, "robot_hand/joint_states", 1000)
    commands = ros_node.collect(Float64MultiArray, "forward_position_controller/commands", 1000)
    start_controller(node_process, profile="four_finger_16", start_enabled=True,
                     lowpass_cutoff_hz=8.0)
    streamer.period = 1.0 / 200.0
    streamer.wait_matched()
    rng = np.random.default_rng(5)
    wild = rng.uniform(JOINT_LOWER - 2.0, JOINT_UPPER + 2.0, size=(20,))
    streamer.start(wild)
    for _ in range(150):  # a new random target every ~2 ms, far outside the limits too
        streamer.pose = rng.uniform(JOINT_LOWER - 2.0, JOINT_UPPER + 2.0)
        time.sleep(0.002)
    streamer.stop()
    msgs = states.wait_for(100, 10.0)
    q = np.array([m.position for m in msgs])
    t_ns = np.array([m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in msgs])
    assert list(msgs[0].name) == list(profile.joint_names)
    assert np.all(q >= profile.lower - 1e-12) and np.all(q <= profile.upper + 1e-12)
    dt = (np.diff(t_ns) * 1e-9)[:, None]  # differences in integer ns, then seconds
    # The stamps are the safety filter's own (steady) times, to the nanosecond.
    assert np.all(np.abs(np.diff(q, axis=0)) <= profile.max_velocity * (dt + 1e-8) + 1e-9)
    assert np.ptp(q, axis=0).max() > 0.05  # it did move
    # forward_position_controller/commands carries the same commands, in the same order
    # (either subscription may have joined a few messages late: align on the first one).
    sent = [list(m.data) for m in commands.wait_for(50, 10.0)]
    states_now = [list(m.position) for m in states.messages]
    j = states_now.index(sent[0])
    overlap = min(len(sent), len(states_now) - j)
    assert overlap >= 50
    assert sent[:overlap] == states_now[j:j + overlap]


def test_watchdog_fires_within_one_period_after_the_timeout(ros_node, node_process, streamer):
    profile = load_profile(resolve_profile_path("prosthetic_6"))
    states = ros_node.collect(JointState, "robot_hand/joint_states", 1000)
    diag = ros_node.collect(DiagnosticArray, "/diagnostics", 1000)
    rate_hz, timeout_ms = 50.0, 200
    start_controller(node_process, profile="prosthetic_6", start_enabled=True,
                     control_rate_hz=rate_hz, input_timeout_ms=timeout_ms)
    streamer.wait_matched().start(NAMED_POSES["fist"])
    fist = expected(profile, "fist")
    states.wait_until(lambda m: bool(m) and close_to(m[-1].position, fist), 10.0, "the fist")
    trips_before = int(wait_status(diag, lambda s: s["state"] == "active", "active")[
        "watchdog_trips"])
    streamer.stop()
    msgs = states.wait_until(
        lambda m: not close_to(m[-1].position, fist), 5.0, "the watchdog to move the hand")
    first = next(i for i, m in enumerate(msgs) if i > 0 and not close_to(m.position, fist)
                 and close_to(msgs[i - 1].position, fist))
    stamp = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs]
    delay = stamp[first] - stamp[first - 1]  # last input-driven command -> watchdog
    period = 1.0 / rate_hz
    # Fires at the first control tick after the timeout; 0.1 s allowance for the scheduling
    # of a loaded 2-core test machine (the exact bound is unit-tested in test_safety.py).
    assert timeout_ms / 1000.0 < delay <= timeout_ms / 1000.0 + period + 0.1, delay
    # ... toward the safe posture, and it gets there
    states.wait_until(lambda m: close_to(m[-1].position, profile.safe_posture), 10.0,
                      "the safe posture")
    s = wait_status(diag, lambda s: s["state"] == "watchdog", "watchdog state")
    assert int(s["watchdog_trips"]) == trips_before + 1
    assert s["_level"] == DiagnosticStatus.WARN


def test_bad_input_rejected_and_enable_stop_respected(ros_node, node_process):
    profile = load_profile(resolve_profile_path("prosthetic_6"))
    commands = ros_node.collect(Float64MultiArray, "forward_position_controller/commands")
    diag = ros_node.collect(DiagnosticArray, "/diagnostics", 1000)
    start_controller(node_process, profile="prosthetic_6", input_timeout_ms=60000)
    pub = PoseStreamer(ros_node).wait_matched().pub
    fist = joint_state(NAMED_POSES["fist"])

    def send(*msgs):
        for m in msgs:
            pub.publish(m)
            time.sleep(0.005)

    # Disabled by default: input is read and counted, nothing is commanded. (Publish until
    # it counts: our side may see the match before the node's side does.)
    def accepted_at_least(n):
        return bool(status(diag)) and int(status(diag)["accepted"]) >= n

    deadline = time.monotonic() + 10.0
    while not accepted_at_least(5) and time.monotonic() < deadline:
        send(fist)
        time.sleep(0.02)
    s = wait_status(diag, lambda s: int(s["accepted"]) >= 5, "5 accepted inputs")
    assert s["state"] == "disabled" and s["enabled"] == "False"
    assert commands.messages == []

    enable = ros_node.service_client(SetBool, "hand_controller/enable")
    stop = ros_node.service_client(Trigger, "hand_controller/stop")
    resp = ros_node.call(enable, SetBool.Request(data=True))
    assert resp.success, resp.message
    send(fist)
    commands.wait_for(1, 10.0)

    # NaN, inf, wrong length and missing joints are rejected and command nothing.
    n_before = len(commands.messages)
    s = wait_status(diag, lambda s: int(s["commands"]) == n_before, "diagnostics to catch up")
    accepted = int(s["accepted"])
    bad = [joint_state([math.nan] + list(NAMED_POSES["fist"][1:])),
           joint_state([0.0] * 19 + [math.inf]),
           JointState(position=[0.0] * 19),
           joint_state([0.0] * 19, JOINT_NAMES[:19])]
    send(*bad, fist)
    s = wait_status(diag, lambda s: int(s["accepted"]) == accepted + 1
                    and int(s["commands"]) == n_before + 1, "the valid input to be commanded")
    assert (s["rejected_nonfinite"], s["rejected_length"]) == ("2", "2")
    commands.wait_for(n_before + 1, 5.0)
    assert len(commands.messages) == n_before + 1  # only the valid one commanded
    assert s["_level"] == DiagnosticStatus.WARN and "rejected" in s["_message"]

    # Stop: one last command holding the position, then nothing until enabled again.
    last = list(commands.messages[-1].data)
    resp = ros_node.call(stop, Trigger.Request())
    assert resp.success
    commands.wait_for(n_before + 2, 5.0)
    assert list(commands.messages[-1].data) == last
    accepted = int(status(diag)["accepted"])
    send(*[fist] * 3)
    s = wait_status(diag, lambda s: int(s["accepted"]) >= accepted + 3, "inputs after stop")
    assert s["state"] == "disabled" and len(commands.messages) == n_before + 2
    assert ros_node.call(enable, SetBool.Request(data=True)).success
    send(fist)
    commands.wait_for(n_before + 3, 5.0)
    resp = ros_node.call(enable, SetBool.Request(data=False))
    assert resp.success and "holding" in resp.message
    assert np.all(np.abs(np.array(commands.messages[-1].data) - last)
                  <= profile.max_velocity * 0.01 + 1e-9)


def test_serial_backend_writes_documented_frames_to_a_pty(ros_node, node_process, streamer):
    profile = load_profile(resolve_profile_path("prosthetic_6"))
    states = ros_node.collect(JointState, "robot_hand/joint_states", 1000)
    master, slave = os.openpty()
    try:
        start_controller(node_process, profile="prosthetic_6", output="serial",
                         serial_port=os.ttyname(slave), start_enabled=True)
        streamer.wait_matched().start(NAMED_POSES["fist"])
        fist = expected(profile, "fist")
        # Read frames until one carries the fist: every earlier command has gone out by then.
        data, frames, skipped = b"", [], 0
        deadline = time.monotonic() + 10.0
        while not (frames and np.allclose(frames[-1].positions_rad, fist, atol=0.0005 + 1e-12)):
            assert time.monotonic() < deadline, f"no fist frame among {len(frames)} frames"
            if select.select([master], [], [], 0.2)[0]:
                data += os.read(master, 4096)
                frames, _, skipped = decode_commands(data)
        assert len(frames) >= 10 and skipped == 0
        assert all(f.enabled and not f.stop for f in frames)
        seq = [f.sequence for f in frames]
        assert all((b - a) % 256 == 1 for a, b in zip(seq, seq[1:]))
        assert all(len(f.positions_rad) == profile.num_joints for f in frames)
        # Every command reported on robot_hand/joint_states up to the fist went out as a
        # frame, to the mrad.
        msgs = states.wait_until(lambda m: any(close_to(x.position, fist) for x in m), 5.0,
                                 "the fist on robot_hand/joint_states")
        positions = np.array([f.positions_rad for f in frames])
        moving = [m for m in msgs if not close_to(m.position, profile.safe_posture)]
        assert moving
        for m in msgs:
            assert np.abs(positions - np.array(m.position)).max(axis=1).min() <= 0.0005 + 1e-12
            if close_to(m.position, fist):
                break
        streamer.stop()
        stop = ros_node.service_client(Trigger, "hand_controller/stop")
        assert ros_node.call(stop, Trigger.Request()).success
        deadline = time.monotonic() + 5.0
        while not (frames and frames[-1].stop) and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                data += os.read(master, 4096)
                frames, _, _ = decode_commands(data)
        assert frames[-1].stop and not frames[-1].enabled
        np.testing.assert_allclose(frames[-1].positions_rad, frames[-2].positions_rad,
                                   atol=0.0005 + 1e-12)
    finally:
        os.close(master)
        os.close(slave)


def test_bad_parameters_exit_with_a_clear_message(node_process):
    proc = node_process("hand_controller", "hand_controller",
                        ros_args({"profile": "no_such_hand"}))
    assert proc.wait(30.0) == 2
    assert "no profile named 'no_such_hand'" in proc.output
    proc = node_process("hand_controller", "hand_controller",
                        ros_args({"output": "serial"}))
    assert proc.wait(30.0) == 2
    assert "output serial needs serial_port" in proc.output


def test_parameters_take_ints_for_doubles_and_refuse_what_is_out_of_range(ros_node,
                                                                          node_process):
    for params, message in (({"control_rate_hz": 1e9}, "control_rate_hz=1000000000.0 refused: "
                             "must be within [1, 1000] Hz"),
                            ({"input_timeout_ms": 200.5}, "input_timeout_ms=200.5 refused: "
                             "expected an integer")):
        proc = node_process("hand_controller", "hand_controller", ros_args(params))
        assert proc.wait(30.0) == 2
        assert message in proc.output and "Traceback" not in proc.output
    start_controller(node_process, control_rate_hz=100)  # an int for a double: taken
    results = ros_node.set_parameters("/hand_controller", {
        "input_timeout_ms": 10**12, "diagnostics_period_s": 1e-9, "lowpass_cutoff_hz": 5})
    # refused by the declared range (rclpy checks it before the node's own check)
    assert not results[0].successful and "60000" in results[0].reason
    assert not results[1].successful and "0.05" in results[1].reason
    assert results[2].successful  # an int for a double at run time too
    timeout, rate = ros_node.describe_parameters("/hand_controller",
                                                 ["input_timeout_ms", "control_rate_hz"])
    assert (timeout.integer_range[0].from_value, timeout.integer_range[0].to_value) == (1, 60000)
    assert rate.floating_point_range[0].to_value == 1000.0 and rate.read_only
    assert "[1, 1000] Hz" in rate.description


def test_unopenable_serial_port_refuses_enable_and_reports_error(ros_node, node_process,
                                                                  tmp_path):
    diag = ros_node.collect(DiagnosticArray, "/diagnostics", 100)
    missing = tmp_path / "no_such_tty"
    proc = start_controller(node_process, output="serial", serial_port=str(missing),
                            start_enabled=True)
    assert "cannot open serial port" in proc.output
    s = wait_status(diag, lambda s: True, "a status")
    assert s["_level"] == DiagnosticStatus.ERROR and str(missing) in s["_message"]
    assert s["enabled"] == "False"
    enable = ros_node.service_client(SetBool, "hand_controller/enable")
    resp = ros_node.call(enable, SetBool.Request(data=True))
    assert not resp.success and "cannot open serial port" in resp.message


def test_grip_mode_follows_hand_gesture_with_its_safety(ros_node, node_process):
    """mode grip: toward the class's grip at level x max velocity, rest holds, the
    watchdog takes over when decisions stop, limits and velocity hold throughout."""
    from emg_interfaces.msg import Gesture

    profile = load_profile(resolve_profile_path("prosthetic_6"))
    states = ros_node.collect(JointState, "robot_hand/joint_states", 5000)
    pub = ros_node.node.create_publisher(Gesture, "hand/gesture", QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE))
    start_controller(node_process, profile="prosthetic_6", mode="grip", start_enabled=True,
                     input_timeout_ms=300)
    wait_until(lambda: pub.get_subscription_count() >= 1, 20, "hand_controller on hand/gesture")
    names = ["rest", "wrist_flexion", "wrist_extension"]

    def decide(name, until, level=1.0, rejected=False, timeout_s=15.0):
        """Publish decisions at 20 Hz (as emg_gesture does) until ``until()`` holds."""
        deadline = time.monotonic() + timeout_s
        while not until():
            assert time.monotonic() < deadline, f"timed out deciding {name}"
            pub.publish(Gesture(class_index=names.index(name), class_name=name,
                                class_names=names, probabilities=[0.0, 1.0, 0.0],
                                confidence=1.0, rejected=rejected, level=level))
            time.sleep(0.05)  # pacing of the decision stream

    fist = profile.grip("wrist_flexion")
    decide("wrist_flexion", lambda: bool(states.messages) and close_to(
        states.messages[-1].position, fist, 1e-6))
    count = len(states.messages)
    decide("wrist_extension", lambda: len(states.messages) > count + 30, rejected=True)
    decide("rest", lambda: len(states.messages) > count + 60)
    for m in states.messages[count:]:  # a rejected decision and rest hold the grip
        assert close_to(m.position, fist, 1e-6)
    msgs = states.wait_until(lambda m: not close_to(m[-1].position, fist, 1e-3), 5.0,
                             "the watchdog when decisions stop")
    states.wait_until(lambda m: close_to(m[-1].position, profile.safe_posture), 10.0,
                      "the safe posture")
    msgs = states.messages
    q = np.asarray([m.position for m in msgs])
    t = np.asarray([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])
    assert np.all(q >= profile.lower - 1e-9) and np.all(q <= profile.upper + 1e-9)
    speed = np.abs(np.diff(q, axis=0)) / np.maximum(np.diff(t), 1e-9)[:, None]
    assert np.all(speed <= profile.max_velocity * 1.001 + 1e-6)
