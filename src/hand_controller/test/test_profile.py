"""Profiles: the shipped ones load and retarget known poses sensibly; bad files are refused."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from emg_hand_core.hand_model import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from emg_hand_core.poses import NAMED_POSES
from hand_controller.profile import (
    SHIPPED_PROFILE_DIR,
    ProfileError,
    human_profile_dict,
    load_profile,
    profile_from_dict,
    resolve_profile_path,
)

SHIPPED = ("prosthetic_6", "four_finger_16", "human")
NEAR = 0.2  # "near a limit": within this fraction of the joint's range


def fraction_closed(profile, target):
    """0 at the open limit, 1 at the closed limit, for each flexion joint."""
    flex = ~np.isnan(profile.closed)
    rng = profile.upper - profile.lower
    closed_upper = profile.closed == profile.upper
    frac = np.where(closed_upper, (target - profile.lower) / rng, (profile.upper - target) / rng)
    return frac[flex]


def test_shipped_profiles_are_all_there():
    assert sorted(p.stem for p in SHIPPED_PROFILE_DIR.glob("*.yaml")) == sorted(SHIPPED)


@pytest.mark.parametrize("name,n", [("prosthetic_6", 6), ("four_finger_16", 16), ("human", 20)])
def test_shipped_profile_loads(name, n):
    profile = load_profile(resolve_profile_path(name))
    assert profile.name == name and profile.num_joints == n
    assert np.all(profile.lower < profile.upper) and np.all(profile.max_velocity > 0)
    assert np.all(profile.safe_posture >= profile.lower)
    assert np.all(profile.safe_posture <= profile.upper)


@pytest.mark.parametrize("name", ["prosthetic_6", "four_finger_16"])
def test_fist_closes_and_open_opens_every_flexion_joint(name):
    profile = load_profile(resolve_profile_path(name))
    fist = profile.clamp(profile.retarget(NAMED_POSES["fist"]))
    opened = profile.clamp(profile.retarget(NAMED_POSES["open"]))
    assert np.all(fraction_closed(profile, fist) >= 1 - NEAR), fraction_closed(profile, fist)
    assert np.all(fraction_closed(profile, opened) <= NEAR), fraction_closed(profile, opened)


def test_prosthetic_point_closes_all_but_the_index():
    profile = load_profile(resolve_profile_path("prosthetic_6"))
    target = dict(zip(profile.joint_names, profile.clamp(profile.retarget(NAMED_POSES["point"]))))
    assert target["index_flexion"] < 0.2 * 1.45
    for finger in ("middle", "ring", "little"):
        assert target[f"{finger}_flexion"] > 0.8 * 1.45


def test_human_profile_is_the_identity_and_matches_the_hand_model():
    profile = load_profile(resolve_profile_path("human"))
    assert profile.joint_names == JOINT_NAMES
    np.testing.assert_array_equal(profile.gains, np.eye(len(JOINT_NAMES)))
    np.testing.assert_array_equal(profile.lower, JOINT_LOWER)
    np.testing.assert_array_equal(profile.upper, JOINT_UPPER)
    for pose in NAMED_POSES.values():
        np.testing.assert_allclose(profile.clamp(profile.retarget(pose)), pose)
    generated = profile_from_dict(human_profile_dict())
    np.testing.assert_array_equal(generated.max_velocity, profile.max_velocity)
    assert generated.kinds == profile.kinds


def test_profile_written_by_a_user_works(tmp_path: Path):
    """Adding a hand is writing a YAML file (the README's example)."""
    path = tmp_path / "gripper.yaml"
    path.write_text(yaml.safe_dump({
        "name": "gripper", "description": "two-finger gripper",
        "joints": [{"name": "finger", "kind": "flexion", "closes_toward": "lower",
                    "lower": -0.8, "upper": 0.0, "max_velocity": 1.0,
                    "gains": {"index_mcp_fe": -0.25, "thumb_cmc_fe": -0.25}}],
        "safe_posture": {"finger": 0.0}}))
    profile = load_profile(resolve_profile_path(str(path)))
    assert profile.joint_names == ("finger",)
    assert profile.clamp(profile.retarget(NAMED_POSES["fist"]))[0] < -0.45
    assert fraction_closed(profile, profile.clamp(profile.retarget(NAMED_POSES["fist"])))[0] > 0.5
    np.testing.assert_array_equal(profile.open_limit(), [0.0])


GOOD_JOINT = {"name": "a", "lower": 0.0, "upper": 1.0, "max_velocity": 1.0,
              "gains": {"index_mcp_fe": 1.0}}


@pytest.mark.parametrize("change,message", [
    ({"joints": []}, "joints"),
    ({"name": ""}, "name"),
    ({"extra": 1}, "unknown keys"),
    ({"joints": [dict(GOOD_JOINT, lower=2.0)]}, "below upper"),
    ({"joints": [dict(GOOD_JOINT, max_velocity=0)]}, "max_velocity"),
    ({"joints": [dict(GOOD_JOINT, max_velocity=float("nan"))]}, "finite"),
    ({"joints": [dict(GOOD_JOINT, gains={"index_knuckle": 1.0})]}, "unknown human joint"),
    ({"joints": [dict(GOOD_JOINT, kind="twist")]}, "kind"),
    ({"joints": [dict(GOOD_JOINT, kind="rotation", closes_toward="upper")]}, "flexion joints"),
    ({"joints": [GOOD_JOINT, GOOD_JOINT]}, "duplicate"),
    ({"safe_posture": "jazz_hands"}, "unknown pose"),
    ({"safe_posture": {"a": 5.0}}, "outside"),
    ({"safe_posture": {"b": 0.0}}, "unknown target joint"),
])
def test_bad_profiles_are_refused_with_the_field_named(change, message):
    data = {"name": "x", "joints": [GOOD_JOINT], "safe_posture": "open", **change}
    with pytest.raises(ProfileError, match=message):
        profile_from_dict(data, "test.yaml")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ProfileError, match="no profile named 'nope'.*prosthetic_6"):
        resolve_profile_path("nope")
    with pytest.raises(ProfileError, match="does not exist"):
        resolve_profile_path(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("joints: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad)


def test_search_dirs_come_before_the_shipped_profiles(tmp_path):
    (tmp_path / "human.yaml").write_text(yaml.safe_dump(
        {"name": "human", "joints": [GOOD_JOINT]}))
    assert resolve_profile_path("human", [tmp_path]) == tmp_path / "human.yaml"


def test_hand_profile_command(capsys, tmp_path):
    from hand_controller.profile import main

    assert main(["prosthetic_6"]) == 0
    out = capsys.readouterr().out
    assert "index_flexion" in out and "+0.4*index_mcp_fe" in out and "fist" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\njoints: []\n")
    assert main([str(bad)]) == 1
    assert "joints" in capsys.readouterr().err


def test_grips_of_a_profile_and_their_defaults(tmp_path: Path):
    base = load_profile(resolve_profile_path("prosthetic_6"))
    assert np.allclose(base.grip("wrist_extension"), base.clamp(base.retarget(
        NAMED_POSES["open"])))
    assert base.grip("no_such_class") is None
    text = (resolve_profile_path("prosthetic_6").read_text()
            + "grips:\n  fist: pinch\n  wave: {index_flexion: 1.0}\n")
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    mine = load_profile(path)
    assert np.allclose(mine.grip("fist"), base.clamp(base.retarget(NAMED_POSES["pinch"])))
    wave = mine.grip("wave")
    assert wave[mine.joint_names.index("index_flexion")] == 1.0
    path.write_text(text.replace("wave: {index_flexion: 1.0}", "wave: {index_flexion: 9.0}"))
    with pytest.raises(ProfileError, match="grips.wave.index_flexion"):
        load_profile(path)
    path.write_text(text.replace("fist: pinch", "fist: nonsense"))
    with pytest.raises(ProfileError, match="grips.fist"):
        load_profile(path)
