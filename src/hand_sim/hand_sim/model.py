"""The MuJoCo model of a profile's hand: its URDF, servos, and a scene object to grasp.

The hand is the URDF that ``hand_visualizer.robot_urdf`` generates from the profile (the
one robot_state_publisher shows), loaded with MuJoCo's URDF importer: the palm is fixed
(``hand_base`` is the world frame: x toward the middle finger, z out of the back of the
hand, gravity along -z), the collision shapes collide, the URDF ``<mimic>`` joints become
joint equality constraints (a prosthesis' finger linkage, stiff but not rigid). Added here:

* one position servo per profile joint (``ctrlrange`` = the joint limits, ``forcerange`` =
  +-max_effort), a critically damped PD of bandwidth ``servo_bandwidth_hz`` on the joint's
  effective inertia (its links, the links it drives through coupling, and the motor's
  armature); :class:`hand_sim.sim.HandSim` moves its setpoint at most max_velocity;
* an optional static scene object (cylinder or ball) in front of the palm, sized to the
  hand, that the fingers touch when the hand closes. Hand geoms collide with the object only
  (not with each other: no self-collision), so a grasp is what makes contact.

Pure (MuJoCo + numpy); no rclpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hand_controller.profile import HandProfile
from hand_visualizer.robot_urdf import generate_robot_urdf

from .mj import mujoco

OBJECT_SHAPES = ("cylinder", "ball", "none")
ARMATURE_KG_M2 = 1.0e-4  # reflected motor inertia at scale 1 (a geared micro motor)
JOINT_DAMPING_NMS = 0.002  # passive friction of a joint [N m s/rad]
COUPLING_SOLREF = (0.004, 1.0)  # stiffness of the finger linkages (time constant [s], ratio)
COLORS = {"box": (0.22, 0.24, 0.27, 1.0), "cylinder": (0.82, 0.84, 0.86, 1.0),
          "sphere": (0.15, 0.45, 0.80, 1.0), "object": (0.95, 0.55, 0.15, 1.0)}
HAND_CONTYPE, OBJECT_CONAFFINITY = 1, 1  # hand geoms: contype 1, conaffinity 0


class SimModelError(ValueError):
    """A model that cannot be built (the message says why)."""


@dataclass(frozen=True)
class SceneObject:
    """A static object in ``hand_base`` [m]: a cylinder along y (across the fingers) or a
    ball, centre ``xyz_m``."""

    shape: str
    radius_m: float
    xyz_m: tuple[float, float, float]
    half_length_m: float = 0.0

    @classmethod
    def in_front_of_palm(cls, profile: HandProfile, shape: str = "cylinder",
                         radius_m: float = 0.0,
                         xyz_m: tuple[float, ...] = ()) -> SceneObject | None:
        """The default object for ``profile``'s hand (sizes scale with its body), or the
        given radius / position; None for shape ``none``."""
        if shape not in OBJECT_SHAPES:
            raise SimModelError(f"scene object must be one of {OBJECT_SHAPES}, got {shape!r}")
        if shape == "none":
            return None
        s = profile.body_scale
        r = radius_m or 0.024 * s
        if xyz_m and len(xyz_m) != 3:
            raise SimModelError(f"object position needs x y z [m], got {list(xyz_m)}")
        # under the knuckles, clear of the open fingers: a closing hand wraps around it
        xyz = tuple(float(v) for v in xyz_m) if xyz_m else (0.10 * s, -0.004 * s,
                                                             -(0.025 * s + r))
        return cls(shape, float(r), xyz, 0.065 * s)


@dataclass
class SimModel:
    """A compiled model and where the profile's joints, coupled joints and fingers are."""

    profile: HandProfile
    model: object  # mujoco.MjModel
    qpos_adr: np.ndarray  # (n,) of the profile's joints, in profile order
    dof_adr: np.ndarray  # (n,)
    coupled: list[tuple[int, int, float]]  # (qpos address, driving joint index, multiplier)
    fingers: tuple[str, ...]  # the hand's fingers, in profile order
    body_finger: np.ndarray  # (nbody,) index into fingers, -1 for the palm/world/object
    object_body: int  # -1 without an object
    kp: np.ndarray  # (n,) servo stiffness [N m/rad]
    kv: np.ndarray  # (n,) servo damping [N m s/rad]
    scene_object: SceneObject | None

    @property
    def timestep_s(self) -> float:
        return float(self.model.opt.timestep)


def build_model(profile: HandProfile, *, physics_rate_hz: float = 1000.0,
                servo_bandwidth_hz: float = 20.0, scene_object: SceneObject | None = None,
                gravity: bool = True, urdf: str | None = None) -> SimModel:
    """Compile ``profile``'s hand (its generated URDF unless ``urdf`` is given)."""
    if not 100.0 <= physics_rate_hz <= 20_000.0:
        raise SimModelError(f"physics_rate_hz must be within [100, 20000], got {physics_rate_hz}")
    spec = mujoco.MjSpec.from_string(urdf or generate_robot_urdf(profile))
    spec.modelname = profile.name
    spec.compiler.fusestatic = False  # keep the scene object a body of its own
    spec.option.timestep = 1.0 / physics_rate_hz
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.gravity = [0.0, 0.0, -9.81 if gravity else 0.0]
    spec.visual.global_.offwidth, spec.visual.global_.offheight = 1600, 1200
    scale = profile.body_scale
    for joint in spec.joints:
        joint.armature = ARMATURE_KG_M2 * scale ** 3
        joint.damping = [JOINT_DAMPING_NMS * scale ** 3, 0.0, 0.0]  # linear term only
    for geom in spec.geoms:
        geom.contype, geom.conaffinity = HAND_CONTYPE, 0
        geom.rgba = COLORS.get(mujoco.mjtGeom(geom.type).name.removeprefix("mjGEOM_").lower(),
                               COLORS["cylinder"])
    for eq in spec.equalities:
        eq.solref = COUPLING_SOLREF
    names = set(j.name for j in spec.joints)
    missing = [n for n in profile.joint_names if n not in names]
    if missing:
        raise SimModelError(f"the URDF has no joints {missing} of profile {profile.name}")
    for k, name in enumerate(profile.joint_names):
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=1.0, kv=0.0)  # gains set below from the compiled inertia
        act.ctrllimited = act.forcelimited = True
        act.ctrlrange = [profile.lower[k], profile.upper[k]]
        act.forcerange = [-profile.max_effort[k], profile.max_effort[k]]
    if scene_object is not None:
        _add_object(spec, scene_object)
    spec.worldbody.add_light(pos=[0.1 * scale, 0.1 * scale, 0.6 * scale], dir=[0, -0.1, -1],
                             diffuse=[0.8, 0.8, 0.8], castshadow=False)
    try:
        model = spec.compile()
    except Exception as exc:  # mujoco raises ValueError with the compiler's message
        raise SimModelError(f"MuJoCo cannot compile the {profile.name} hand: {exc}") from exc

    jnt = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in profile.joint_names]
    qpos_adr = model.jnt_qposadr[jnt].astype(int)
    dof_adr = model.jnt_dofadr[jnt].astype(int)
    coupled = []
    for e in range(model.neq):
        if model.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT and model.eq_obj2id[e] in jnt:
            coupled.append((int(model.jnt_qposadr[model.eq_obj1id[e]]),
                            jnt.index(int(model.eq_obj2id[e])), float(model.eq_data[e, 1])))
    fingers = tuple(dict.fromkeys(profile.fingers))
    body_finger = np.full(model.nbody, -1, dtype=int)
    for b in range(1, model.nbody):
        prefix = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b).split("_", 1)[0]
        if prefix in fingers:
            body_finger[b] = fingers.index(prefix)
    object_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "scene_object")
    kp, kv = _servo_gains(model, dof_adr, coupled, servo_bandwidth_hz)
    for a in range(len(jnt)):
        model.actuator_gainprm[a, 0] = kp[a]
        model.actuator_biasprm[a, :3] = (0.0, -kp[a], -kv[a])
    return SimModel(profile, model, qpos_adr, dof_adr, coupled, fingers, body_finger,
                    object_body, kp, kv, scene_object)


def _add_object(spec, obj: SceneObject) -> None:
    body = spec.worldbody.add_body(name="scene_object", pos=list(obj.xyz_m))
    geom = body.add_geom(name="scene_object")
    if obj.shape == "cylinder":
        geom.type = mujoco.mjtGeom.mjGEOM_CYLINDER
        geom.size = [obj.radius_m, obj.half_length_m, 0.0]
        geom.quat = [math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0]  # axis along y
    else:
        geom.type = mujoco.mjtGeom.mjGEOM_SPHERE
        geom.size = [obj.radius_m, 0.0, 0.0]
    geom.contype, geom.conaffinity = 0, OBJECT_CONAFFINITY
    geom.rgba = COLORS["object"]


def _servo_gains(model, dof_adr: np.ndarray, coupled, bandwidth_hz: float):
    """kp = I w^2, kv = 2 I w (critically damped) with I the joint's effective inertia."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, full)
    qpos_to_dof = {int(model.jnt_qposadr[j]): int(model.jnt_dofadr[j]) for j in range(model.njnt)}
    inertia = full[dof_adr, dof_adr].copy()
    for qadr, driver, ratio in coupled:
        inertia[driver] += ratio ** 2 * full[qpos_to_dof[qadr], qpos_to_dof[qadr]]
    w = 2.0 * math.pi * bandwidth_hz
    return inertia * w * w, 2.0 * inertia * w
