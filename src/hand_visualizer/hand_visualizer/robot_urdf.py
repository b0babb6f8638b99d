"""URDF of a robot or prosthetic hand, generated from its hand_controller profile.

The profile (``hand_controller.profile``, the YAML the controller reads) gives the joints:
names, kinds, limits, velocities, efforts, and the ``body`` (scale, coupling). The layout
comes from :mod:`emg_hand_core.hand_model`: each finger starts where the human finger
starts (``little`` is the model's ``pinky``), its phalanges have the human bone lengths,
all times ``body.scale``. Per finger, in the profile's joint order:

* its ``abduction`` joints (about the finger base's z) and ``rotation`` joints (about the
  palm's -x: a thumb swinging from beside the index in front of the palm) sit at its base;
* its ``flexion`` joints (about the phalanx's y; positive closes, or negative with
  ``closes_toward: lower``) turn phalanx 1, 2, ...; a finger with fewer flexion joints than
  its three phalanges gets coupled joints ``<joint>_<segment>`` (URDF ``<mimic>``, the
  multipliers of ``body.coupling``) for the rest, as a prosthesis' linkage;
  (``body.thumb_coupling`` for the thumb);
* a fixed ``<finger>_tip_joint`` gives the fingertip frame ``<finger>_tip``.

Every moving link has a visual, a collision (cylinder phalanges, sphere knuckles, a box
palm) and an inertial computed from that geometry at :data:`DENSITY_KG_M3`. The root link is
``hand_base`` (same axes as the human hand). robot_state_publisher computes the coupled
joints itself; hand_sim loads the same URDF into MuJoCo (mimic -> equality constraints).
Pure standard library + numpy; the committed ``urdf/<profile>.urdf`` files are this
module's output (a test keeps them equal): ``hand_urdf --profile NAME -o PATH``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

import numpy as np

from emg_hand_core.hand_model import (
    BONE_LENGTHS_M,
    FINGERS,
    HAND_FRAME,
    KINEMATIC_TREE,
    JointSpec,
    rpy_matrix,
)
from hand_controller.profile import HandProfile

from .urdf import PHALANX_RADIUS_M, num, palm_box, vec

DENSITY_KG_M3 = 1100.0  # a 3D-printed / moulded plastic hand with metal parts inside
FINGER_ALIASES = {"little": "pinky"}  # a robot finger name -> the hand model's finger
SEGMENTS = {"thumb": ("cmc", "mcp", "ip")}  # the phalanges' joint names (coupled joints)
LONG_SEGMENTS = ("mcp", "pip", "dip")
ROTATION_AXIS_PALM = (-1.0, 0.0, 0.0)  # a rotation joint's axis in hand_base
# A robot thumb is mounted less rolled than the human thumb (-1.2 rad), so that its flexion
# curls it under the palm toward the fingers rather than flat across the palm.
ROBOT_THUMB_ROLL_RAD = -0.5
MATERIALS = {"shell": "0.22 0.24 0.27 1", "link": "0.82 0.84 0.86 1",
             "knuckle": "0.15 0.45 0.80 1"}


class RobotUrdfError(ValueError):
    """A profile whose hand cannot be built (the message names the joint and why)."""


@dataclass(frozen=True)
class Shape:
    """One geometry, with its pose in the link: ``kind`` box | cylinder | sphere."""

    kind: str
    size: tuple[float, ...]  # box (x, y, z); cylinder (radius, length); sphere (radius,)
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    material: str = "link"

    def volume(self) -> float:
        if self.kind == "box":
            return float(np.prod(self.size))
        if self.kind == "cylinder":
            return math.pi * self.size[0] ** 2 * self.size[1]
        return 4.0 / 3.0 * math.pi * self.size[0] ** 3

    def inertia(self, mass: float) -> tuple[float, float, float]:
        """Principal moments (ixx, iyy, izz) about the centre, in the shape's own axes."""
        if self.kind == "box":
            x, y, z = self.size
            return (mass * (y * y + z * z) / 12, mass * (x * x + z * z) / 12,
                    mass * (x * x + y * y) / 12)
        if self.kind == "cylinder":
            r, length = self.size
            side = mass * (3 * r * r + length * length) / 12
            return side, side, mass * r * r / 2  # about its own z (the URDF cylinder axis)
        i = 0.4 * mass * self.size[0] ** 2
        return i, i, i

    def xml(self) -> str:
        if self.kind == "box":
            return f'<box size="{vec(self.size)}"/>'
        if self.kind == "cylinder":
            return f'<cylinder radius="{num(self.size[0])}" length="{num(self.size[1])}"/>'
        return f'<sphere radius="{num(self.size[0])}"/>'


@dataclass
class Link:
    name: str
    shapes: list[Shape] = field(default_factory=list)

    def inertial(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """(mass [kg], centre of mass (3,) [m], inertia (3, 3) [kg m^2] about it), or None."""
        if not self.shapes:
            return None
        masses = [DENSITY_KG_M3 * s.volume() for s in self.shapes]
        total = sum(masses)
        com = sum(m * np.asarray(s.xyz) for m, s in zip(masses, self.shapes)) / total
        inertia = np.zeros((3, 3))
        for m, s in zip(masses, self.shapes):
            r = rpy_matrix(*s.rpy)
            d = np.asarray(s.xyz) - com
            inertia += r @ np.diag(s.inertia(m)) @ r.T + m * (d @ d * np.eye(3) - np.outer(d, d))
        return total, com, inertia


@dataclass
class Joint:
    name: str
    kind: str  # revolute | fixed
    parent: str
    child: str
    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    axis: tuple[float, float, float] = (0.0, 1.0, 0.0)
    lower: float = 0.0
    upper: float = 0.0
    effort: float = 0.0
    velocity: float = 0.0
    mimic: tuple[str, float] | None = None  # (driving joint, multiplier)


def _finger_bases() -> dict[str, JointSpec]:
    """Finger -> the hand model's joint placing its base on the palm."""
    return {j.child.removesuffix("_base_link"): j for j in KINEMATIC_TREE
            if j.parent == HAND_FRAME}


def _rounded(values) -> tuple[float, ...]:
    return tuple(round(float(v), 9) for v in values)


def hand_parts(profile: HandProfile) -> tuple[list[Link], list[Joint]]:
    """Links and joints of ``profile``'s hand (raises RobotUrdfError)."""
    scale = profile.body_scale
    bases = _finger_bases()
    fingers = list(dict.fromkeys(profile.fingers))  # in order of appearance
    links: list[Link] = []
    joints: list[Joint] = []
    base_points = []
    for finger in fingers:
        model = FINGER_ALIASES.get(finger, finger)
        if model not in FINGERS:
            first = profile.joint_names[profile.finger_joints(finger)[0]]
            raise RobotUrdfError(
                f"profile {profile.name}: joint {first!r} does not start with a finger name "
                f"({', '.join(FINGERS)} or little): cannot place it on a hand")
        base = bases[model]
        rpy = base.origin_rpy if model != "thumb" else \
            (ROBOT_THUMB_ROLL_RAD, *base.origin_rpy[1:])
        xyz = _rounded(np.asarray(base.origin_xyz) * scale)
        if model != "thumb":
            base_points.append(xyz)
        rot = rpy_matrix(*rpy)
        coupling = profile.thumb_coupling if model == "thumb" else profile.coupling
        lengths = [v * scale for v in BONE_LENGTHS_M[model]]
        radii = [PHALANX_RADIUS_M[model] * scale * (1.0 - 0.1 * k) for k in range(3)]
        segments = SEGMENTS.get(model, LONG_SEGMENTS)
        index = profile.finger_joints(finger)
        at_base = [j for j in index if profile.kinds[j] != "flexion"]
        flexion = [j for j in index if profile.kinds[j] == "flexion"]
        if not flexion or len(flexion) > 3:
            raise RobotUrdfError(f"profile {profile.name}: finger {finger} has "
                                 f"{len(flexion)} flexion joints; 1 to 3 are supported")
        if any(j > flexion[0] for j in at_base):
            raise RobotUrdfError(f"profile {profile.name}: finger {finger}: list its "
                                 "abduction/rotation joints before its flexion joints")
        parent, origin = HAND_FRAME, (xyz, _rounded(rpy))

        def add(name: str, j: int | None, axis, limits, mimic=None, shapes=()) -> None:
            nonlocal parent, origin
            child = f"{name}_link"
            lo, hi = limits
            joints.append(Joint(
                name, "revolute", parent, child, *origin, axis=_rounded(axis), lower=lo,
                upper=hi, effort=float(profile.max_effort[j]),
                velocity=float(profile.max_velocity[j]) * (mimic[1] if mimic else 1.0),
                mimic=mimic))
            links.append(Link(child, list(shapes)))
            parent, origin = child, ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))

        knuckle = [Shape("sphere", (radii[0] * 1.15,), material="knuckle")]
        for j in at_base:
            axis = (0.0, 0.0, 1.0) if profile.kinds[j] == "abduction" else \
                rot.T @ np.asarray(ROTATION_AXIS_PALM)
            add(profile.joint_names[j], j, axis, (profile.lower[j], profile.upper[j]),
                shapes=knuckle)
        driver = None
        for k in range(3):
            phalanx = [Shape("cylinder", (radii[k], lengths[k]), (lengths[k] / 2, 0.0, 0.0),
                             (0.0, math.pi / 2, 0.0)),
                       Shape("sphere", (radii[k] * 1.05,), material="knuckle")]
            if k == 2:
                phalanx.append(Shape("sphere", (radii[k],), (lengths[k], 0.0, 0.0)))
            if k < len(flexion):
                j = flexion[k]
                driver = j
                sign = 1.0 if profile.closed[j] == profile.upper[j] else -1.0
                add(profile.joint_names[j], j, (0.0, sign, 0.0),
                    (profile.lower[j], profile.upper[j]), shapes=phalanx)
            else:
                ratio = coupling[k - len(flexion)] if len(flexion) == 1 else coupling[1]
                sign = 1.0 if profile.closed[driver] == profile.upper[driver] else -1.0
                lo, hi = sorted((ratio * profile.lower[driver], ratio * profile.upper[driver]))
                add(f"{profile.joint_names[driver]}_{segments[k]}", driver, (0.0, sign, 0.0),
                    (lo, hi), mimic=(profile.joint_names[driver], ratio), shapes=phalanx)
            origin = ((lengths[k], 0.0, 0.0), (0.0, 0.0, 0.0))
        joints.append(Joint(f"{finger}_tip_joint", "fixed", parent, f"{finger}_tip", *origin))
        links.append(Link(f"{finger}_tip"))
    centre, size = palm_box([_rounded(p) for p in base_points] or None,
                            margin_m=0.012 * scale, thickness_m=0.026 * scale)
    palm = Link(HAND_FRAME, [Shape("box", _rounded(size), _rounded(centre), material="shell")])
    return [palm, *links], joints


def generate_robot_urdf(profile: HandProfile) -> str:
    """The URDF of ``profile``'s hand as a string (deterministic)."""
    links, joints = hand_parts(profile)
    lines = [
        '<?xml version="1.0"?>',
        # (no double hyphen inside an XML comment)
        f"<!-- Generated by hand_visualizer.robot_urdf from the hand_controller profile "
        f"{profile.name}. Do not edit; regenerate it with hand_urdf, option profile "
        f"{profile.name} (see the hand_visualizer README) -->",
        f"<robot name={quoteattr(profile.name)}>",
        *(f'  <material name="{n}"><color rgba="{c}"/></material>'
          for n, c in MATERIALS.items()),
    ]
    for link in links:
        lines.append(f"  <link name={quoteattr(link.name)}>")
        inertial = link.inertial()
        if inertial is not None:
            mass, com, inertia = inertial
            i = np.where(np.abs(inertia) < 1e-15, 0.0, inertia)
            lines += [
                "    <inertial>",
                f'      <origin xyz="{vec(com)}" rpy="0 0 0"/>',
                f'      <mass value="{num(mass)}"/>',
                f'      <inertia ixx="{num(i[0, 0])}" ixy="{num(i[0, 1])}" ixz="{num(i[0, 2])}"'
                f' iyy="{num(i[1, 1])}" iyz="{num(i[1, 2])}" izz="{num(i[2, 2])}"/>',
                "    </inertial>",
            ]
        for shape in link.shapes:
            origin = f'<origin xyz="{vec(shape.xyz)}" rpy="{vec(shape.rpy)}"/>'
            lines += [
                "    <visual>", f"      {origin}",
                f"      <geometry>{shape.xml()}</geometry>",
                f'      <material name="{shape.material}"/>', "    </visual>",
                "    <collision>", f"      {origin}",
                f"      <geometry>{shape.xml()}</geometry>", "    </collision>",
            ]
        lines.append("  </link>")
    for joint in joints:
        lines += [
            f"  <joint name={quoteattr(joint.name)} type=\"{joint.kind}\">",
            f"    <parent link={quoteattr(joint.parent)}/>",
            f"    <child link={quoteattr(joint.child)}/>",
            f'    <origin xyz="{vec(joint.xyz)}" rpy="{vec(joint.rpy)}"/>',
        ]
        if joint.kind == "revolute":
            lines += [
                f'    <axis xyz="{vec(joint.axis)}"/>',
                f'    <limit lower="{num(joint.lower)}" upper="{num(joint.upper)}"'
                f' effort="{num(joint.effort)}" velocity="{num(joint.velocity)}"/>',
            ]
            if joint.mimic is not None:
                lines.append(f"    <mimic joint={quoteattr(joint.mimic[0])} "
                             f'multiplier="{num(joint.mimic[1])}" offset="0"/>')
        lines.append("  </joint>")
    lines.append("</robot>")
    return "\n".join(lines) + "\n"


def robot_urdf_for(profile: str, search_dirs=()) -> str:
    """The URDF of a profile given as ``hand_controller``'s ``profile`` parameter is (a
    shipped name or a YAML path); the ``human`` profile's hand is the human hand's URDF."""
    from hand_controller.profile import load_profile, resolve_profile_path

    from .urdf import generate_urdf

    loaded = load_profile(resolve_profile_path(profile, search_dirs))
    if loaded.name == "human":
        return generate_urdf()
    return generate_robot_urdf(loaded)
