"""The simulation core, directly (no ROS): model from each profile, tracking within the
velocity limits, trajectories, refused commands, contact on a grasp, offscreen pictures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emg_hand_core.poses import NAMED_POSES
from hand_controller.profile import load_profile, resolve_profile_path
from hand_sim.mj import mujoco
from hand_sim.model import SceneObject, SimModelError, build_model
from hand_sim.render import HandRenderer, gl_problem
from hand_sim.sim import CommandError, HandSim, tracking_lag

PROFILES = ("prosthetic_6", "four_finger_16")


def profile(name):
    return load_profile(resolve_profile_path(name))


def pose(p, name):
    return p.clamp(p.retarget(NAMED_POSES[name]))


@pytest.fixture(scope="module", params=PROFILES)
def hand(request):
    p = profile(request.param)
    return p, build_model(p, scene_object=SceneObject.in_front_of_palm(p))


@pytest.fixture(scope="module", params=PROFILES)
def free_hand(request):
    p = profile(request.param)
    return p, build_model(p, scene_object=None)


def test_model_has_the_profiles_servos_limits_and_coupling(hand):
    p, sm = hand
    m = sm.model
    assert m.nu == p.num_joints
    for k, name in enumerate(p.joint_names):
        a = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, name)
        assert a == k
        np.testing.assert_allclose(m.actuator_ctrlrange[a], (p.lower[k], p.upper[k]))
        np.testing.assert_allclose(m.actuator_forcerange[a], (-p.max_effort[k], p.max_effort[k]))
        assert sm.kp[k] > 0 and sm.kv[k] > 0
    single = sum(1 for f in set(p.fingers)
                 if sum(1 for j, g in enumerate(p.fingers) if g == f and p.kinds[j] == "flexion")
                 == 1)
    assert len(sm.coupled) == 2 * single  # two coupled phalanges per one-actuator finger
    assert sm.object_body > 0 and sm.timestep_s == pytest.approx(0.001)


def test_measured_positions_follow_commands_within_the_velocity_limits(free_hand):
    p, sm = free_hand
    sim = HandSim(sm)
    target = pose(p, "fist")
    sim.command_positions(target)
    worst = 0.0
    travel_s = float(np.max(np.abs(target - sim.joints().position) / p.max_velocity))
    for _ in range(int((travel_s + 0.3) / 0.01)):
        sim.run_for(0.01)
        worst = max(worst, float(np.max(np.abs(sim.joints().velocity) / p.max_velocity)))
    assert worst <= 1.1, f"a joint moved at {worst:.2f} x its max velocity"
    assert worst > 0.8  # and the hand did move about as fast as allowed
    np.testing.assert_allclose(sim.joints().position, target, atol=0.03)


def test_trajectory_is_interpolated_by_name_and_bad_commands_change_nothing(free_hand):
    p, sm = free_hand
    sim = HandSim(sm)
    start = sim.joints().position
    goal = pose(p, "rest")
    order = list(reversed(range(p.num_joints)))  # names in another order
    sim.command_trajectory([p.joint_names[k] for k in order], [(2.0, goal[order])])
    sim.run_for(1.0)  # half way through the trajectory's time
    np.testing.assert_allclose(sim.setpoint, start + 0.5 * (goal - start), atol=0.01)
    sim.run_for(1.3)
    np.testing.assert_allclose(sim.joints().position, goal, atol=0.03)
    held = sim.setpoint
    for bad, kind in ((lambda: sim.command_positions([0.1]), "length"),
                      (lambda: sim.command_positions([np.nan] * p.num_joints), "nonfinite"),
                      (lambda: sim.command_trajectory(["nope"], [(0.1, [0.0])]), "names"),
                      (lambda: sim.command_trajectory(p.joint_names, [(0.2, goal), (0.1, goal)]),
                       "time")):
        with pytest.raises(CommandError) as err:
            bad()
        assert err.value.kind == kind
    sim.run_for(0.1)
    np.testing.assert_allclose(sim.setpoint, held)
    before = sim.clamped
    sim.command_positions(p.upper + 1.0)  # outside the limits: clamped, counted
    assert sim.clamped == before + p.num_joints
    sim.run_for(0.05)
    assert np.all(sim.setpoint <= p.upper + 1e-12)


def test_a_grasp_of_the_scene_object_makes_contact_on_the_flexing_fingers(hand):
    p, sm = hand
    sim = HandSim(sm)
    sim.run_for(0.2)
    assert np.all(sim.contacts().normal_force == 0)  # open: nothing touched
    sim.command_positions(pose(p, "fist"))
    sim.run_for(1.0)
    c = sim.contacts()
    for finger in set(p.fingers) - {"thumb"}:
        assert c.of(finger) > 0.5, (finger, dict(zip(c.fingers, c.normal_force)))
    # the object stops the fingers short of the commanded fist; the servos push (effort)
    closed = [k for k in range(p.num_joints) if p.kinds[k] == "flexion"]
    assert np.any(sim.joints().position[closed] < pose(p, "fist")[closed] - 0.2)
    assert np.max(np.abs(sim.joints().effort)) > 0.5 * p.max_effort.min()
    # each finger's net force lies within its contacts' friction cones (mu = 1)
    magnitude = np.linalg.norm(c.force, axis=1)
    assert np.all(magnitude <= np.sqrt(2.0) * c.normal_force + 1e-9)
    assert np.all(magnitude[c.normal_force > 0] > 0)


def test_no_object_no_contact(free_hand):
    p, sm = free_hand
    sim = HandSim(sm)
    sim.command_positions(pose(p, "fist"))
    sim.run_for(1.0)
    assert sim.contacts().normal_force.sum() == 0  # no self-collision either


def test_bad_model_options_are_refused():
    p = profile("prosthetic_6")
    with pytest.raises(SimModelError, match="physics_rate_hz"):
        build_model(p, physics_rate_hz=50.0)
    with pytest.raises(SimModelError, match="scene object"):
        SceneObject.in_front_of_palm(p, "cube")


@pytest.mark.skipif(gl_problem() is not None, reason=f"no offscreen GL here: {gl_problem()}")
def test_rendering_produces_an_image_of_the_hand(hand):
    p, sm = hand
    renderer = HandRenderer(sm, 160, 120)
    try:
        opened, fist = renderer.render(pose(p, "open")), renderer.render(pose(p, "fist"))
    finally:
        renderer.close()
    assert opened.shape == (120, 160, 3) and opened.dtype == np.uint8
    assert opened.std() > 10  # not a blank frame
    assert np.mean(np.abs(opened.astype(int) - fist)) > 2  # the pose shows


def test_without_gl_physics_runs_and_the_picture_is_skipped_with_the_reason():
    """A GL backend that cannot load (osmesa, not installed here; or any broken one)."""
    script = ("from hand_sim.mj import GL_PROBLEM, mujoco\n"
              "from hand_sim.render import gl_problem\n"
              "from hand_sim.model import build_model\n"
              "from hand_sim.sim import HandSim\n"
              "from hand_controller.profile import load_profile, resolve_profile_path\n"
              "s = HandSim(build_model(load_profile(resolve_profile_path('prosthetic_6'))))\n"
              "s.run_for(0.05)\n"
              "print(round(s.t_s, 3)); print(gl_problem())\n")
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=60, cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr[-2000:]
    t, problem = out.stdout.splitlines()[-2:]
    assert float(t) == pytest.approx(0.05)
    if problem == "None":
        pytest.skip("osmesa works here: nothing to fall back from")
    assert "MUJOCO_GL=osmesa" in problem


def test_tracking_lag_finds_the_delay_of_a_follower():
    t = np.arange(0.0, 3.0, 0.01)
    q = np.column_stack([np.sin(2 * t), np.cos(3 * t)])
    lag, error = tracking_lag(t, q, t, np.column_stack([np.sin(2 * (t - 0.04)),
                                                        np.cos(3 * (t - 0.04))]))
    assert lag == pytest.approx(0.04, abs=0.003) and error < 0.01


def test_readme_documents_every_parameter():
    from hand_sim.sim_node import PARAMETERS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [p.name for p in PARAMETERS if f"| `{p.name}` |" not in readme]
    assert not missing, f"parameters missing from the README's table: {missing}"
