"""The installed URDF is the generator's output and moves exactly like our forward kinematics.

The URDF is parsed with xml.etree and walked with a URDF FK written here from the URDF
specification (origin = translation then fixed-axis roll-pitch-yaw, then a rotation about
the joint axis), independent of hand_model's own matrices.
"""

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from emg_hand_core.hand_model import (
    FINGERTIP_FRAMES,
    HAND_FRAME,
    JOINT_LOWER,
    JOINT_NAMES,
    JOINT_UPPER,
    KEYPOINT_NAMES,
    forward_kinematics,
    forward_kinematics_frames,
)
from emg_hand_core.poses import NAMED_POSES
from hand_visualizer.urdf import generate_urdf, main

URDF_PATH = Path(__file__).resolve().parents[1] / "urdf" / "hand.urdf"


def _floats(text: str | None, default: str) -> list[float]:
    return [float(v) for v in (text or default).split()]


def _rot_x(a):
    return [[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]]


def _rot_y(a):
    return [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]


def _rot_z(a):
    return [[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]]


def _axis_angle(axis, a):
    """Rotation about a unit axis, from the quaternion (independent of Rodrigues' form)."""
    n = math.sqrt(sum(c * c for c in axis))
    x, y, z = (c / n for c in axis)
    w, s = math.cos(a / 2), math.sin(a / 2)
    x, y, z = x * s, y * s, z * s
    return [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]


def _homogeneous(r, p):
    t = np.eye(4)
    t[:3, :3] = np.asarray(r, dtype=float)
    t[:3, 3] = p
    return t


class UrdfModel:
    """The kinematic tree of a URDF file: joints with origin, axis, type and limits."""

    def __init__(self, text: str):
        self.root = ET.fromstring(text)
        self.links = [link.get("name") for link in self.root.findall("link")]
        self.joints = {}
        for joint in self.root.findall("joint"):
            origin = joint.find("origin")
            axis = joint.find("axis")
            limit = joint.find("limit")
            mimic = joint.find("mimic")
            self.joints[joint.get("name")] = {
                "type": joint.get("type"),
                "parent": joint.find("parent").get("link"),
                "child": joint.find("child").get("link"),
                "xyz": _floats(origin.get("xyz") if origin is not None else None, "0 0 0"),
                "rpy": _floats(origin.get("rpy") if origin is not None else None, "0 0 0"),
                "axis": _floats(axis.get("xyz") if axis is not None else None, "1 0 0"),
                "limit": None if limit is None else (float(limit.get("lower")),
                                                     float(limit.get("upper"))),
                "velocity": None if limit is None else float(limit.get("velocity")),
                "effort": None if limit is None else float(limit.get("effort")),
                "mimic": None if mimic is None else (mimic.get("joint"),
                                                     float(mimic.get("multiplier", "1")),
                                                     float(mimic.get("offset", "0"))),
            }
        children = {j["child"] for j in self.joints.values()}
        roots = [link for link in self.links if link not in children]
        assert len(roots) == 1, f"a URDF has exactly one root link, got {roots}"
        self.root_link = roots[0]

    def fk(self, positions: dict[str, float]) -> dict[str, np.ndarray]:
        """Every link's 4x4 pose in the root link for the given joint positions."""
        poses = {self.root_link: np.eye(4)}
        pending = dict(self.joints)
        while pending:
            progressed = False
            for name, j in list(pending.items()):
                if j["parent"] not in poses:
                    continue
                roll, pitch, yaw = j["rpy"]
                rpy = np.asarray(_rot_z(yaw)) @ np.asarray(_rot_y(pitch)) @ np.asarray(
                    _rot_x(roll))
                t = poses[j["parent"]] @ _homogeneous(rpy, j["xyz"])
                if j["type"] in ("revolute", "continuous"):
                    if j["mimic"] is not None:  # URDF: q = multiplier * q_driver + offset
                        driver, multiplier, offset = j["mimic"]
                        q = multiplier * positions[driver] + offset
                    else:
                        q = positions[name]
                    t = t @ _homogeneous(_axis_angle(j["axis"], q), [0, 0, 0])
                elif j["type"] != "fixed":
                    raise AssertionError(f"unexpected joint type {j['type']}")
                poses[j["child"]] = t
                del pending[name]
                progressed = True
            assert progressed, f"joints not connected to the root: {sorted(pending)}"
        return poses


# Where each keypoint sits in the URDF: written out by hand from the URDF's link layout.
KEYPOINT_LINKS = {"wrist": "hand_base", "thumb_cmc": "thumb_base_link",
                  "thumb_mcp": "thumb_link_2", "thumb_ip": "thumb_link_3",
                  "thumb_tip": "thumb_tip"}
for _f in ("index", "middle", "ring", "pinky"):
    KEYPOINT_LINKS.update({f"{_f}_mcp": f"{_f}_base_link", f"{_f}_pip": f"{_f}_link_2",
                           f"{_f}_dip": f"{_f}_link_3", f"{_f}_tip": f"{_f}_tip"})


@pytest.fixture(scope="module")
def urdf() -> UrdfModel:
    return UrdfModel(URDF_PATH.read_text(encoding="utf-8"))


def test_committed_urdf_is_the_generators_output():
    assert URDF_PATH.read_text(encoding="utf-8") == generate_urdf(), (
        "src/hand_visualizer/urdf/hand.urdf is stale: regenerate it with "
        "`hand_urdf --output src/hand_visualizer/urdf/hand.urdf`")


def test_console_script_writes_the_same_file(tmp_path):
    out = tmp_path / "sub" / "hand.urdf"
    assert main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == URDF_PATH.read_text(encoding="utf-8")


def test_joint_names_types_and_limits(urdf):
    revolute = {n: j for n, j in urdf.joints.items() if j["type"] == "revolute"}
    assert sorted(revolute) == sorted(JOINT_NAMES)
    for i, name in enumerate(JOINT_NAMES):
        assert revolute[name]["limit"] == pytest.approx((JOINT_LOWER[i], JOINT_UPPER[i]),
                                                        abs=1e-9), name
    fixed = {n: j for n, j in urdf.joints.items() if j["type"] == "fixed"}
    assert sorted(j["child"] for j in fixed.values()) == sorted(FINGERTIP_FRAMES)
    assert urdf.root_link == HAND_FRAME
    # Every link is named once and every <link> has a <joint> leading to it but the root.
    assert len(set(urdf.links)) == len(urdf.links) == len(urdf.joints) + 1


def test_every_velocity_and_effort_limit_is_positive(urdf):
    for joint in urdf.root.findall("joint"):
        if joint.get("type") == "revolute":
            limit = joint.find("limit")
            assert float(limit.get("velocity")) > 0 and float(limit.get("effort")) > 0


def _random_poses(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.uniform(JOINT_LOWER, JOINT_UPPER, size=(n, len(JOINT_NAMES))),
                      np.array(list(NAMED_POSES.values()))])


def test_urdf_fk_matches_hand_model_keypoints_within_1mm(urdf):
    poses = _random_poses(40)
    ours = forward_kinematics(poses)
    for q, kp in zip(poses, ours):
        links = urdf.fk(dict(zip(JOINT_NAMES, q)))
        for k, name in enumerate(KEYPOINT_NAMES):
            err = np.linalg.norm(links[KEYPOINT_LINKS[name]][:3, 3] - kp[k])
            assert err < 1e-3, f"{name}: URDF and FK differ by {err * 1000:.2f} mm"


def test_urdf_fk_matches_every_frame_orientation(urdf):
    for q in _random_poses(10, seed=11):
        ours = forward_kinematics_frames(q)
        links = urdf.fk(dict(zip(JOINT_NAMES, q)))
        assert set(ours) == set(links)
        for frame, (r, p) in ours.items():
            np.testing.assert_allclose(links[frame][:3, :3], r, atol=1e-6, err_msg=frame)
            np.testing.assert_allclose(links[frame][:3, 3], p, atol=1e-6, err_msg=frame)


def test_the_check_would_catch_a_wrong_bone_length(urdf):
    """A URDF with one bone 2 mm longer fails the comparison (the test has teeth)."""
    model = UrdfModel(generate_urdf())
    model.joints["index_dip_fe"]["xyz"][0] += 0.002
    q = np.zeros(len(JOINT_NAMES))
    tip = model.fk(dict(zip(JOINT_NAMES, q)))["index_tip"][:3, 3]
    ours = forward_kinematics(q)[KEYPOINT_NAMES.index("index_tip")]
    assert np.linalg.norm(tip - ours) > 1e-3


# --- the robot hands of the controller's profiles --------------------------------------------

ROBOT_PROFILES = ("prosthetic_6", "four_finger_16")


def _robot(name: str):
    from hand_controller.profile import load_profile, resolve_profile_path

    profile = load_profile(resolve_profile_path(name))
    path = URDF_PATH.parent / f"{name}.urdf"
    return profile, path, UrdfModel(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ROBOT_PROFILES)
def test_robot_urdf_is_committed_and_matches_its_profile(name):
    from hand_visualizer.robot_urdf import generate_robot_urdf

    profile, path, model = _robot(name)
    assert path.read_text(encoding="utf-8") == generate_robot_urdf(profile), (
        f"{path} is stale: regenerate it with `hand_urdf --profile {name} -o {path}`")
    assert model.root.get("name") == name and model.root_link == HAND_FRAME
    actuated = {n: j for n, j in model.joints.items()
                if j["type"] == "revolute" and j["mimic"] is None}
    assert list(actuated) == list(profile.joint_names)  # the profile's joints, in its order
    for k, joint in enumerate(profile.joint_names):
        j = actuated[joint]
        assert j["limit"] == pytest.approx((profile.lower[k], profile.upper[k]), abs=1e-9)
        assert j["velocity"] == pytest.approx(profile.max_velocity[k])
        assert j["effort"] == pytest.approx(profile.max_effort[k])
    for n, j in model.joints.items():
        if j["mimic"] is not None:  # coupled: driven by an actuated joint of the same finger
            assert j["mimic"][0] in actuated and n.startswith(j["mimic"][0] + "_")
            assert j["mimic"][1] in profile.coupling + profile.thumb_coupling
    tips = {j["child"] for j in model.joints.values() if j["type"] == "fixed"}
    assert tips == {f"{finger}_tip" for finger in profile.fingers}


@pytest.mark.parametrize("name", ROBOT_PROFILES)
def test_robot_urdf_links_have_visuals_collisions_and_physical_inertias(name):
    _, _, model = _robot(name)
    moving = {j["child"] for j in model.joints.values() if j["type"] == "revolute"}
    for link in model.root.findall("link"):
        if link.find("inertial") is None:
            assert link.get("name") not in moving, f"moving link {link.get('name')} has no mass"
            continue
        assert len(link.findall("visual")) == len(link.findall("collision")) >= 1
        mass = float(link.find("inertial/mass").get("value"))
        i = {k: float(v) for k, v in link.find("inertial/inertia").attrib.items()}
        tensor = np.array([[i["ixx"], i["ixy"], i["ixz"]], [i["ixy"], i["iyy"], i["iyz"]],
                           [i["ixz"], i["iyz"], i["izz"]]])
        moments = np.linalg.eigvalsh(tensor)
        assert 1e-4 < mass < 1.0 and moments.min() > 0, link.get("name")
        a, b, c = moments  # principal moments of a real body obey the triangle inequality
        assert a + b >= c * (1 - 1e-9), link.get("name")


@pytest.mark.parametrize("name", ROBOT_PROFILES)
def test_robot_hand_closes_toward_the_palm_in_a_fist(name):
    """The profile's fist moves every fingertip to the palm side (-z) and closer to the
    wrist than when open: joint axes and coupling turn the right way."""
    profile, _, model = _robot(name)
    opened = model.fk(dict(zip(profile.joint_names, profile.clamp(
        profile.retarget(NAMED_POSES["open"])))))
    fist = model.fk(dict(zip(profile.joint_names, profile.clamp(
        profile.retarget(NAMED_POSES["fist"])))))
    for finger in set(profile.fingers) - {"thumb"}:
        o, f = opened[f"{finger}_tip"][:3, 3], fist[f"{finger}_tip"][:3, 3]
        assert f[2] < o[2] - 0.02 and f[0] < o[0] - 0.05, (finger, o, f)
    thumb_o, thumb_f = opened["thumb_tip"][:3, 3], fist["thumb_tip"][:3, 3]
    assert thumb_f[2] < -0.02 and thumb_f[1] < thumb_o[1] - 0.05  # under the palm, across it


def test_robot_urdf_console_script_and_bad_profile(tmp_path):
    out = tmp_path / "p.urdf"
    assert main(["--profile", "prosthetic_6", "--output", str(out)]) == 0
    assert out.read_text() == (URDF_PATH.parent / "prosthetic_6.urdf").read_text()
    bad = tmp_path / "gripper.yaml"
    bad.write_text("name: gripper\njoints:\n  - {name: jaw, lower: 0.0, upper: 1.0, "
                   "max_velocity: 1.0}\n")
    assert main(["--profile", str(bad)]) == 1  # 'jaw' is no finger: refused, with the reason
