"""Safety core: limits and velocity never exceeded, watchdog timing, rejection, enable/stop."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emg_hand_core.hand_model import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from emg_hand_core.poses import NAMED_POSES
from hand_controller.profile import load_profile, profile_from_dict, resolve_profile_path
from hand_controller.safety import ControllerCore, SafetyFilter, State

PERIOD = 0.01


@pytest.fixture(scope="module")
def prosthetic():
    return load_profile(resolve_profile_path("prosthetic_6"))


def core(profile, **kwargs):
    kwargs.setdefault("period_s", PERIOD)
    return ControllerCore(profile, **kwargs)


def test_starts_disabled_and_sends_nothing(prosthetic):
    c = core(prosthetic)
    assert c.state == State.DISABLED
    assert c.on_input(JOINT_NAMES, NAMED_POSES["fist"], 0.01) is None
    assert c.on_tick(5.0) is None
    assert c.counters.accepted == 1 and c.counters.commands == 0


def test_follows_a_fist_at_most_at_max_velocity(prosthetic):
    c = core(prosthetic, enabled=True)
    fist = prosthetic.clamp(prosthetic.retarget(NAMED_POSES["fist"]))
    cmd = c.on_input(JOINT_NAMES, NAMED_POSES["fist"], 0.01)
    np.testing.assert_allclose(cmd.positions - prosthetic.safe_posture,
                               np.clip(fist - prosthetic.safe_posture,
                                       -prosthetic.max_velocity * 0.01,
                                       prosthetic.max_velocity * 0.01))
    t = 0.01
    for _ in range(100):
        t += PERIOD
        cmd = c.on_input(JOINT_NAMES, NAMED_POSES["fist"], t)
    np.testing.assert_allclose(cmd.positions, fist)
    assert c.state == State.ACTIVE


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 0.05), st.lists(st.floats(-10, 10), min_size=20,
                                                        max_size=20)), min_size=1, max_size=40),
       st.floats(0.0, 20.0))
def test_random_input_never_exceeds_limits_or_velocity(steps, cutoff):
    profile = load_profile(resolve_profile_path("four_finger_16"))
    c = core(profile, enabled=True, lowpass_cutoff_hz=cutoff)
    t, last = 0.0, c.position
    for dt, q in steps:
        t += dt
        cmd = c.on_input(JOINT_NAMES, q, t) or c.on_tick(t)
        if cmd is None:
            continue
        assert np.all(cmd.positions >= profile.lower) and np.all(cmd.positions <= profile.upper)
        assert np.all(np.abs(cmd.positions - last) <= profile.max_velocity * dt + 1e-12)
        last = cmd.positions


def test_filter_caps_a_step_after_a_pause_at_one_period():
    f = SafetyFilter(np.zeros(1), np.ones(1), np.array([2.0]), max_step_dt_s=PERIOD)
    out = f.step(np.ones(1), 10.0)  # ten seconds later: still one period's worth
    assert out[0] == pytest.approx(2.0 * PERIOD)
    assert f.step(np.ones(1), 9.0)[0] == out[0]  # time going backwards moves nothing


def test_lowpass_smooths_a_step_as_a_first_order_filter():
    f = SafetyFilter(np.zeros(1), np.ones(1), np.array([1e6]), max_step_dt_s=1.0,
                     lowpass_cutoff_hz=1.0)
    out = f.step(np.ones(1), 0.1)
    assert out[0] == pytest.approx(1 - math.exp(-2 * math.pi * 1.0 * 0.1))


def test_watchdog_fires_at_the_first_tick_after_the_timeout(prosthetic):
    c = core(prosthetic, enabled=True, input_timeout_s=0.2)
    fist = NAMED_POSES["fist"]
    t = 0.0
    for _ in range(50):
        t += PERIOD
        assert c.on_tick(t) is None or c.state == State.WATCHDOG
        c.on_input(JOINT_NAMES, fist, t)
    last_input = t
    fired = None
    while fired is None:
        t += PERIOD
        fired = c.on_tick(t)
    assert fired.watchdog and c.state == State.WATCHDOG and c.counters.watchdog_trips == 1
    assert 0.2 < t - last_input <= 0.2 + PERIOD + 1e-9
    # It drives to the safe posture, rate-limited, and input brings it back.
    for _ in range(200):
        t += PERIOD
        cmd = c.on_tick(t)
    np.testing.assert_allclose(cmd.positions, prosthetic.safe_posture)
    assert c.on_input(JOINT_NAMES, fist, t + PERIOD).watchdog is False
    assert c.state == State.ACTIVE and c.on_tick(t + 2 * PERIOD) is None


def test_watchdog_hold_keeps_the_position(prosthetic):
    c = core(prosthetic, enabled=True, watchdog_action="hold")
    t = 0.0
    for _ in range(30):
        t += PERIOD
        c.on_input(JOINT_NAMES, NAMED_POSES["fist"], t)
    held = c.position
    cmd = c.on_tick(t + 0.5)
    assert cmd.watchdog
    np.testing.assert_array_equal(cmd.positions, held)


def test_watchdog_runs_from_enable_when_no_input_ever_comes(prosthetic):
    c = core(prosthetic)
    c.enable(1.0)
    assert c.on_tick(1.1) is None
    assert c.on_tick(1.21).watchdog


@pytest.mark.parametrize("names,values,reason", [
    (JOINT_NAMES, [math.nan] + [0.0] * 19, "nonfinite"),
    (JOINT_NAMES, [0.0] * 19 + [math.inf], "nonfinite"),
    ((), [0.0] * 19, "length"),
    (JOINT_NAMES[:19], [0.0] * 19, "length"),
    (JOINT_NAMES, [0.0] * 21, "length"),
])
def test_bad_input_is_rejected_counted_and_moves_nothing(prosthetic, names, values, reason):
    c = core(prosthetic, enabled=True)
    before = c.position
    assert c.on_input(names, values, 0.01) is None
    assert c.last_error.reason == reason
    assert c.counters.rejected == 1 and c.counters.accepted == 0
    np.testing.assert_array_equal(c.position, before)
    # rejected input does not feed the watchdog
    assert c.on_tick(0.25).watchdog


def test_angles_whose_command_overflows_are_rejected_and_never_poison_the_position():
    """1e308 rad through gains 2 and -2 is inf - inf = NaN: rejected, not commanded (a NaN
    command used to stick: every later command was NaN too)."""
    profile = profile_from_dict({"name": "mixed", "joints": [
        {"name": "j0", "kind": "rotation", "lower": -1.0, "upper": 1.0, "max_velocity": 1.0,
         "gains": {JOINT_NAMES[0]: 2.0, JOINT_NAMES[1]: -2.0}}], "safe_posture": {"j0": 0.0}})
    c = core(profile, enabled=True)
    huge = [1e308, 1e308] + [0.0] * 18
    assert c.on_input(JOINT_NAMES, huge, 0.01) is None
    assert c.last_error.reason == "nonfinite" and "out of range" in c.last_error.message
    assert c.counters.rejected_nonfinite == 1 and c.counters.accepted == 0
    cmd = c.on_input(JOINT_NAMES, [0.2] * 20, 0.02)
    assert np.all(np.isfinite(cmd.positions)) and np.all(np.isfinite(c.position))


def test_names_in_any_order_and_extra_joints_are_accepted(prosthetic):
    c = core(prosthetic, enabled=True)
    order = list(reversed(JOINT_NAMES)) + ["wrist_flex"]
    fist = dict(zip(JOINT_NAMES, NAMED_POSES["fist"]))
    values = [fist[n] for n in order[:-1]] + [math.nan]  # the extra joint is ignored
    for k in range(100):
        cmd = c.on_input(order, values, 0.01 * (k + 1))
    np.testing.assert_allclose(cmd.positions, prosthetic.clamp(prosthetic.retarget(
        NAMED_POSES["fist"])))


def test_stop_holds_once_then_nothing_until_enabled(prosthetic):
    c = core(prosthetic, enabled=True)
    c.on_input(JOINT_NAMES, NAMED_POSES["fist"], 0.01)
    stop = c.disable(0.02)
    assert stop.stop and c.state == State.DISABLED
    np.testing.assert_array_equal(stop.positions, c.position)
    assert c.disable(0.03) is None
    assert c.on_input(JOINT_NAMES, NAMED_POSES["fist"], 0.04) is None
    assert c.on_tick(1.0) is None
    c.enable(2.0)
    cmd = c.on_input(JOINT_NAMES, NAMED_POSES["fist"], 2.01)
    assert np.all(np.abs(cmd.positions - stop.positions) <= prosthetic.max_velocity * 0.01
                  + 1e-12)


def test_random_human_poses_within_limits_map_inside_the_robot_limits():
    rng = np.random.default_rng(3)
    for name in ("prosthetic_6", "four_finger_16", "human"):
        profile = load_profile(resolve_profile_path(name))
        q = rng.uniform(JOINT_LOWER, JOINT_UPPER, size=(200, 20))
        out = profile.clamp(profile.retarget(q))
        assert out.shape == (200, profile.num_joints)
        assert np.all(np.isfinite(out))


def test_a_finger_in_contact_stops_closing_the_others_go_on(prosthetic):
    c = core(prosthetic, enabled=True, contact_force_limit_n=2.0)
    index = prosthetic.joint_names.index("index_flexion")
    middle = prosthetic.joint_names.index("middle_flexion")
    t = 0.0
    for _ in range(20):  # closing: 0.2 s
        t += PERIOD
        cmd = c.on_input(JOINT_NAMES, NAMED_POSES["fist"], t)
    c.on_contacts(["index", "middle"], [5.0, 1.0], t)  # index pressing, middle lightly
    held = cmd.positions[index]
    for _ in range(20):
        t += PERIOD
        cmd = c.on_input(JOINT_NAMES, NAMED_POSES["fist"], t)
        c.on_contacts(["index", "middle"], [5.0, 1.0], t)
    assert cmd.positions[index] == pytest.approx(held)  # stopped where it touched
    assert cmd.positions[middle] > held + 0.3  # under the limit: closes on
    assert c.counters.contact_limited >= 20 and c.limited_fingers(t) == ["index"]
    cmd = c.on_input(JOINT_NAMES, NAMED_POSES["open"], t + PERIOD)
    assert cmd.positions[index] < held  # opening is always allowed
    # a stale reading (older than the input timeout) no longer holds anything
    assert c.limited_fingers(t + 2 * c.input_timeout_s) == []
    assert core(prosthetic, enabled=True).limited_fingers(t) == []  # limit 0: off


# --- grip mode (hand/gesture) ------------------------------------------------------------

def _ticks(c, t0: float, n: int):
    return [c.on_tick(t0 + (k + 1) * PERIOD) for k in range(n)]


def test_grip_moves_toward_the_class_posture_at_level_times_max_velocity(prosthetic):
    c = core(prosthetic, enabled=True, mode="grip")
    start = c.position
    fist = prosthetic.grip("wrist_flexion")  # wrist flexion closes the hand
    np.testing.assert_allclose(fist, prosthetic.clamp(prosthetic.retarget(NAMED_POSES["fist"])))
    c.on_gesture("wrist_flexion", False, 0.5, 0.0)
    first = c.on_tick(PERIOD)
    np.testing.assert_allclose(np.abs(first.positions - start),
                               np.minimum(np.abs(fist - start),
                                          0.5 * prosthetic.max_velocity * PERIOD))
    t = PERIOD
    for _ in range(300):
        t += PERIOD
        c.on_gesture("wrist_flexion", False, 0.5, t)
        cmd = c.on_tick(t)
    np.testing.assert_allclose(cmd.positions, fist)
    assert c.state == State.ACTIVE and not cmd.watchdog


def test_grip_rest_and_rejected_hold_the_position(prosthetic):
    c = core(prosthetic, enabled=True, mode="grip")
    c.on_gesture("wrist_extension", False, 1.0, 0.0)
    _ticks(c, 0.0, 20)
    held = c.position
    for k, (name, rejected) in enumerate([("rest", False), ("fist", True),
                                          ("unknown_class", False)]):
        t = 0.2 + k * 0.05
        c.on_gesture(name, rejected, 1.0, t)
        for cmd in _ticks(c, t, 4):
            np.testing.assert_allclose(cmd.positions, held)
    assert c.grip_target is None and c.grip_class == ""


def test_grip_watchdog_disable_and_bad_levels(prosthetic):
    c = core(prosthetic, mode="grip")
    c.on_gesture("fist", False, 1.0, 0.0)
    assert c.on_tick(PERIOD) is None and c.counters.accepted == 1  # disabled: nothing
    c.enable(1.0)
    c.on_gesture("fist", False, 1.0, 1.0)
    _ticks(c, 1.0, 5)
    cmds = _ticks(c, 1.05, 30)  # no gesture for 300 ms > 200 ms timeout
    assert cmds[-1].watchdog and c.state == State.WATCHDOG and c.counters.watchdog_trips == 1
    assert not any(cmd.watchdog for cmd in cmds[:14])
    for bad in (float("nan"), 1.5, -0.1):
        c.on_gesture("fist", False, bad, 1.5)
    assert c.counters.rejected_nonfinite == 3 and c.state == State.WATCHDOG
    c.on_gesture("fist", False, 1.0, 1.5)
    assert c.state == State.ACTIVE
    stop = c.disable(1.6)
    assert stop.stop and c.on_tick(1.61) is None
    with pytest.raises(ValueError, match="mode"):
        core(prosthetic, mode="dance")
