"""Property-based fuzzing of the controller's joint-state input (ControllerCore).

Any sequence of hand/joint_states (names in any order, missing, extra or repeated; any
count of values; NaN, inf, 1e308), control ticks and enable/stop calls, on the shipped
profiles and on generated ones with gains of either sign: the core never raises, every
command is finite, within the joint limits and within the velocity limit of the previous
one, and every input is either accepted or counted as rejected (the counters add up). It
found the NaN command of angles whose retargeted sum overflows (inf - inf).

Budget: the hypothesis profile (``make test``: the default 100 examples per property;
``make fuzz``: ``HYPOTHESIS_PROFILE=fuzz``, see the Makefile).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emg_hand_core.hand_model import JOINT_NAMES
from hand_controller.profile import load_profile, profile_from_dict, resolve_profile_path
from hand_controller.safety import ControllerCore

pytestmark = pytest.mark.fuzz

PERIOD = 0.01
SHIPPED = {name: load_profile(resolve_profile_path(name))
           for name in ("prosthetic_6", "four_finger_16", "human")}

_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, 0.0, -0.0]),
    st.floats(-4.0, 4.0))
_gain = st.one_of(st.sampled_from([2.0, -2.0, 1.0, -1.0]), st.floats(-3.0, 3.0))
_name = st.one_of(st.sampled_from(JOINT_NAMES), st.sampled_from(["", "wrist_flex", "x"]),
                  st.text(max_size=8))


@st.composite
def _joint_state(draw):
    """(names, positions) as a JointState may carry them, valid or not."""
    kind = draw(st.sampled_from(["full", "shuffled", "bare", "any"]))
    if kind == "bare":  # positions only
        names: list[str] = []
        count = draw(st.sampled_from([20, 20, 19, 21, 0]))
    elif kind == "any":
        names = draw(st.lists(_name, max_size=24))
        count = draw(st.sampled_from([len(names), len(names), len(names) + 1, 0]))
    else:
        names = list(JOINT_NAMES) + draw(st.lists(_name, max_size=3))
        if kind == "shuffled":
            names = draw(st.permutations(names))
        count = len(names)
    return names, draw(st.lists(_value, min_size=count, max_size=count))


def _valid(profile, names: list[str], values: list[float]) -> bool:
    """The rule of emg_hand_core.names, written out: every joint named (the last of repeated
    names counts) or exactly 20 bare values, all 20 used values finite; and a finite
    retargeted command."""
    if not names:
        q = values if len(values) == 20 else None
    elif len(names) != len(values) or not set(JOINT_NAMES) <= set(names):
        q = None
    else:
        where = {n: i for i, n in enumerate(names)}
        q = [values[where[n]] for n in JOINT_NAMES]
    if q is None or not all(math.isfinite(v) for v in q):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.all(np.isfinite(profile.retarget(np.array(q)))))


@st.composite
def _profile(draw):
    """A shipped profile, or a generated one: 1-6 joints, gains of either sign (so 1e308
    inputs can sum to inf - inf), any limits and velocities."""
    if draw(st.booleans()):
        return SHIPPED[draw(st.sampled_from(sorted(SHIPPED)))]
    joints = []
    for j in range(draw(st.integers(1, 6))):
        lo = draw(st.floats(-3.0, 2.9))
        hi = draw(st.floats(lo + 0.01, 3.0))
        humans = draw(st.lists(st.sampled_from(JOINT_NAMES), min_size=1, max_size=4,
                               unique=True))
        joints.append({"name": f"j{j}", "kind": "rotation", "lower": lo, "upper": hi,
                       "max_velocity": draw(st.floats(0.01, 50.0)),
                       "offset": draw(st.floats(-2.0, 2.0)),
                       "gains": {h: draw(_gain) for h in humans}})
    return profile_from_dict({"name": "fuzz", "joints": joints,
                              "safe_posture": {"j0": joints[0]["lower"]}})


_event = st.one_of(
    st.tuples(st.just("input"), st.floats(0.0, 0.3), _joint_state()),
    st.tuples(st.just("tick"), st.floats(0.0, 0.3), st.none()),
    st.tuples(st.sampled_from(["enable", "disable"]), st.floats(0.0, 0.1), st.none()))


@settings(deadline=None)
@given(profile=_profile(), events=st.lists(_event, max_size=60),
       start_enabled=st.booleans(), timeout_s=st.floats(0.01, 2.0),
       cutoff_hz=st.sampled_from([0.0, 0.5, 5.0, 200.0]),
       action=st.sampled_from(["safe_posture", "hold"]))
def test_any_input_gives_finite_commands_within_the_limits(profile, events, start_enabled,
                                                            timeout_s, cutoff_hz, action):
    core = ControllerCore(profile, input_timeout_s=timeout_s, period_s=PERIOD,
                          lowpass_cutoff_hz=cutoff_hz, watchdog_action=action,
                          enabled=start_enabled)
    t = 0.0
    last = core.position
    inputs = valid = commands = 0
    for kind, dt, payload in events:
        t += dt
        if kind == "input":
            names, values = payload
            inputs += 1
            valid += _valid(profile, names, values)
            cmd = core.on_input(names, values, t)
        elif kind == "tick":
            cmd = core.on_tick(t)
        elif kind == "enable":
            core.enable(t)
            cmd = None
        else:
            cmd = core.disable(t)
        if cmd is None:
            continue
        commands += 1
        pos = cmd.positions
        assert pos.shape == (profile.num_joints,) and np.all(np.isfinite(pos)), pos
        assert np.all(pos >= profile.lower) and np.all(pos <= profile.upper)
        step = profile.max_velocity * PERIOD  # no command moves more than one period's worth
        assert np.all(np.abs(pos - last) <= step + 1e-9), (pos, last)
        last = pos
    c = core.counters
    assert c.received == inputs and c.accepted == valid
    assert c.accepted + c.rejected == c.received
    assert c.commands == commands
