"""Robot hand profiles: the target hand's joints, limits and the mapping from the human hand.

A profile is a YAML file (see ``config/profiles/*.yaml`` and the package README). Each target
joint is a linear combination of human joint angles::

    target_j = offset_j + sum_i gains_j[i] * human_i        [rad]

with human joints named as :data:`emg_hand_core.hand_model.JOINT_NAMES`. The profile also
gives each joint's limits [rad], maximum velocity [rad/s], maximum effort [N m], kind
(flexion, abduction, rotation) and, for flexion joints, which limit closes the hand; the safe
posture the watchdog drives to; optionally, the hand's ``body`` (size and finger coupling)
from which hand_visualizer generates its URDF and hand_sim simulates it; and, for grip mode
(pattern-recognition control from ``hand/gesture``), optional ``grips``: the posture of each
gesture class, a named pose or ``{joint: angle}`` like the safe posture (a class without one
uses ``emg_hand_core.poses.GESTURE_POSTURES``). A joint belongs to the finger its name
starts with (``index_mcp`` -> ``index``). Pure (numpy + PyYAML); no rclpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from emg_hand_core.hand_model import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS
from emg_hand_core.poses import NAMED_POSES, gesture_posture

KINDS = ("flexion", "abduction", "rotation")
SHIPPED_PROFILE_DIR = Path(__file__).resolve().parents[1] / "config" / "profiles"
"""Profiles next to the sources (a source checkout or a --symlink-install build)."""

_JOINT_KEYS = {"name", "kind", "closes_toward", "lower", "upper", "max_velocity", "max_effort",
               "offset", "gains"}
_TOP_KEYS = {"name", "description", "joints", "safe_posture", "body", "grips"}
_BODY_KEYS = {"scale", "coupling", "thumb_coupling"}
DEFAULT_MAX_EFFORT_NM = 1.0
DEFAULT_COUPLING = (1.0, 0.8)
"""A finger with fewer flexion joints than phalanges: each further phalanx turns by these
multiples of the last actuated flexion joint (a linkage, as in multi-articulating
prostheses)."""
DEFAULT_THUMB_COUPLING = (0.5, 0.4)  # the same for the thumb, which curls less


class ProfileError(ValueError):
    """A profile file that cannot be used, with the file and field that are wrong."""


@dataclass(frozen=True)
class HandProfile:
    """A target hand: joints in command order and the linear map from the human hand."""

    name: str
    description: str
    joint_names: tuple[str, ...]
    kinds: tuple[str, ...]
    lower: np.ndarray  # (n,) [rad]
    upper: np.ndarray  # (n,) [rad]
    max_velocity: np.ndarray  # (n,) [rad/s]
    gains: np.ndarray  # (n, 20): d target / d human joint
    offsets: np.ndarray  # (n,) [rad]
    closed: np.ndarray  # (n,) the limit a flexion joint reaches when closing (nan otherwise)
    safe_posture: np.ndarray  # (n,) [rad], inside the limits
    source: str = ""
    max_effort: np.ndarray | None = None  # (n,) [N m]; None: DEFAULT_MAX_EFFORT_NM each
    body_scale: float = 1.0  # body size relative to emg_hand_core.hand_model's hand
    coupling: tuple[float, ...] = DEFAULT_COUPLING
    thumb_coupling: tuple[float, ...] = DEFAULT_THUMB_COUPLING
    grips: Mapping[str, np.ndarray] = field(default_factory=dict)  # class -> (n,) [rad]

    def __post_init__(self) -> None:
        if self.max_effort is None:
            object.__setattr__(self, "max_effort",
                               np.full(len(self.joint_names), DEFAULT_MAX_EFFORT_NM))

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def fingers(self) -> tuple[str, ...]:
        """The finger of each joint: its name up to the first ``_`` (``index_mcp`` ->
        ``index``)."""
        return tuple(name.split("_", 1)[0] for name in self.joint_names)

    def finger_joints(self, finger: str) -> np.ndarray:
        """Indices of ``finger``'s joints, in command order."""
        return np.array([j for j, f in enumerate(self.fingers) if f == finger], dtype=int)

    def retarget(self, human: np.ndarray) -> np.ndarray:
        """Human joint angles (..., 20) [rad] -> target joints (..., n) [rad], not clamped."""
        human = np.asarray(human, dtype=np.float64)
        return human @ self.gains.T + self.offsets

    def clamp(self, target: np.ndarray) -> np.ndarray:
        return np.clip(target, self.lower, self.upper)

    def grip(self, class_name: str) -> np.ndarray | None:
        """The posture (n,) [rad] of a gesture class: the profile's ``grips``, else the named
        pose of the class (``GESTURE_POSTURES``) retargeted; None for a class with neither."""
        if class_name in self.grips:
            return self.grips[class_name].copy()
        pose = gesture_posture(class_name)
        return None if pose is None else self.clamp(self.retarget(NAMED_POSES[pose]))

    def open_limit(self) -> np.ndarray:
        """Per joint, the limit opposite to closing (flexion); the offset clamped otherwise."""
        opened = self.clamp(self.offsets)
        flex = ~np.isnan(self.closed)
        opened[flex] = np.where(self.closed[flex] == self.upper[flex], self.lower[flex],
                                self.upper[flex])
        return opened


def _err(source: str, where: str, message: str) -> ProfileError:
    return ProfileError(f"profile {source}: {where}: {message}")


def _number(source: str, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(source, where, f"expected a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise _err(source, where, f"must be finite, got {value!r}")
    return float(value)


def profile_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> HandProfile:
    """Validate a parsed profile and build it; raises :class:`ProfileError` naming the field."""
    if not isinstance(data, Mapping):
        raise _err(source, "top level", "expected a mapping with name, joints, safe_posture")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise _err(source, "top level", f"unknown keys {unknown}; allowed {sorted(_TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise _err(source, "name", "a non-empty string is required")
    joints = data.get("joints")
    if not isinstance(joints, list) or not joints:
        raise _err(source, "joints", "a non-empty list of joints is required")

    names, kinds, lower, upper, vmax, effort, offsets, closed = [], [], [], [], [], [], [], []
    gains = np.zeros((len(joints), NUM_JOINTS))
    for j, joint in enumerate(joints):
        where = f"joints[{j}]"
        if not isinstance(joint, Mapping):
            raise _err(source, where, "expected a mapping")
        unknown = sorted(set(joint) - _JOINT_KEYS)
        if unknown:
            raise _err(source, where, f"unknown keys {unknown}; allowed {sorted(_JOINT_KEYS)}")
        jname = joint.get("name")
        if not isinstance(jname, str) or not jname:
            raise _err(source, where, "name: a non-empty string is required")
        where = f"joint {jname!r}"
        if jname in names:
            raise _err(source, where, "duplicate joint name")
        for key in ("lower", "upper", "max_velocity"):
            if key not in joint:
                raise _err(source, where, f"{key} is required")
        lo = _number(source, f"{where}.lower", joint["lower"])
        hi = _number(source, f"{where}.upper", joint["upper"])
        if not lo < hi:
            raise _err(source, where, f"lower ({lo}) must be below upper ({hi})")
        v = _number(source, f"{where}.max_velocity", joint["max_velocity"])
        if v <= 0:
            raise _err(source, where, f"max_velocity must be > 0 rad/s, got {v}")
        e = _number(source, f"{where}.max_effort", joint.get("max_effort",
                                                               DEFAULT_MAX_EFFORT_NM))
        if e <= 0:
            raise _err(source, where, f"max_effort must be > 0 N m, got {e}")
        kind = joint.get("kind", "flexion")
        if kind not in KINDS:
            raise _err(source, where, f"kind must be one of {KINDS}, got {kind!r}")
        closes = joint.get("closes_toward", "upper" if kind == "flexion" else None)
        if kind != "flexion" and "closes_toward" in joint:
            raise _err(source, where, "closes_toward applies to flexion joints only")
        if kind == "flexion" and closes not in ("upper", "lower"):
            raise _err(source, where, f"closes_toward must be upper or lower, got {closes!r}")
        gmap = joint.get("gains", {})
        if not isinstance(gmap, Mapping):
            raise _err(source, where, "gains: expected {human_joint: gain}")
        for human, gain in gmap.items():
            if human not in JOINT_INDEX:
                raise _err(source, f"{where}.gains", f"unknown human joint {human!r}; "
                           f"expected one of emg_hand_core.hand_model.JOINT_NAMES")
            gains[j, JOINT_INDEX[human]] = _number(source, f"{where}.gains.{human}", gain)
        names.append(jname)
        kinds.append(kind)
        lower.append(lo)
        upper.append(hi)
        vmax.append(v)
        effort.append(e)
        offsets.append(_number(source, f"{where}.offset", joint.get("offset", 0.0)))
        closed.append(np.nan if kind != "flexion" else (hi if closes == "upper" else lo))

    profile = HandProfile(
        name=name, description=str(data.get("description", "")).strip(),
        joint_names=tuple(names), kinds=tuple(kinds),
        lower=np.array(lower), upper=np.array(upper), max_velocity=np.array(vmax),
        gains=gains, offsets=np.array(offsets), closed=np.array(closed),
        safe_posture=np.zeros(len(names)), source=source, max_effort=np.array(effort),
        **_body(data.get("body", {}), source),
    )
    object.__setattr__(profile, "safe_posture",
                       _posture(profile, data.get("safe_posture", "open"), source))
    grips = data.get("grips", {})
    if not isinstance(grips, Mapping):
        raise _err(source, "grips", "expected {gesture class: pose name or {joint: angle}}")
    object.__setattr__(profile, "grips", {
        str(k): _posture(profile, v, source, f"grips.{k}") for k, v in grips.items()})
    return profile


def _body(spec: Any, source: str) -> dict[str, Any]:
    """The optional ``body`` section: ``scale`` (> 0), ``coupling`` and ``thumb_coupling``."""
    if not isinstance(spec, Mapping):
        raise _err(source, "body", "expected a mapping with scale and/or coupling")
    unknown = sorted(set(spec) - _BODY_KEYS)
    if unknown:
        raise _err(source, "body", f"unknown keys {unknown}; allowed {sorted(_BODY_KEYS)}")
    scale = _number(source, "body.scale", spec.get("scale", 1.0))
    if not 0.1 <= scale <= 10.0:
        raise _err(source, "body.scale", f"must be within [0.1, 10], got {scale}")
    out: dict[str, Any] = {"body_scale": scale}
    for key, default in (("coupling", DEFAULT_COUPLING),
                         ("thumb_coupling", DEFAULT_THUMB_COUPLING)):
        values = spec.get(key, list(default))
        if not isinstance(values, list) or len(values) != 2:
            raise _err(source, f"body.{key}", "expected two multipliers, e.g. [1.0, 0.8]")
        ratios = tuple(_number(source, f"body.{key}[{k}]", c) for k, c in enumerate(values))
        if any(not 0.0 < c <= 3.0 for c in ratios):
            raise _err(source, f"body.{key}", f"multipliers must be within (0, 3], got {ratios}")
        out[key] = ratios
    return out


def _posture(profile: HandProfile, spec: Any, source: str,
             where: str = "safe_posture") -> np.ndarray:
    """A posture (n,) [rad] from a named pose (retargeted, clamped) or {joint: angle} (joints
    left out at their open limit)."""
    if isinstance(spec, str):
        if spec not in NAMED_POSES:
            raise _err(source, where, f"unknown pose {spec!r}; a name from "
                       f"emg_hand_core.poses.NAMED_POSES or {{joint: angle}} is required")
        return profile.clamp(profile.retarget(NAMED_POSES[spec]))
    if isinstance(spec, Mapping):
        posture = profile.open_limit()
        for jname, value in spec.items():
            if jname not in profile.joint_names:
                raise _err(source, where, f"unknown target joint {jname!r}")
            k = profile.joint_names.index(jname)
            v = _number(source, f"{where}.{jname}", value)
            if not profile.lower[k] <= v <= profile.upper[k]:
                raise _err(source, f"{where}.{jname}",
                           f"{v} outside [{profile.lower[k]}, {profile.upper[k]}]")
            posture[k] = v
        return posture
    raise _err(source, where, f"expected a pose name or a mapping, got {spec!r}")


def load_profile(path: str | Path) -> HandProfile:
    """Load and validate a profile YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"profile {path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile {path}: not valid YAML: {exc}") from exc
    return profile_from_dict(data, str(path))


def installed_profile_dirs() -> list[Path]:
    """The installed ``share/hand_controller/config/profiles`` (ament index), if any."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return [Path(get_package_share_directory("hand_controller")) / "config" / "profiles"]
    except (ImportError, LookupError, ValueError):
        return []


def resolve_profile_path(profile: str, search_dirs: list[Path] | tuple[Path, ...] = ()) -> Path:
    """A profile argument -> file: an existing path as is, else ``<dir>/<name>.yaml``.

    Searched in ``search_dirs`` (for example the installed share directory) and then
    :data:`SHIPPED_PROFILE_DIR`.
    """
    candidate = Path(profile).expanduser()
    if candidate.suffix in (".yaml", ".yml") or "/" in profile:
        if candidate.is_file():
            return candidate
        raise ProfileError(f"profile file {candidate} does not exist")
    dirs = [Path(d) for d in search_dirs] + [SHIPPED_PROFILE_DIR]
    for d in dirs:
        path = d / f"{profile}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise ProfileError(f"no profile named {profile!r}; shipped profiles: {known} "
                       "(or give the path of a YAML file)")


def human_profile_dict() -> dict[str, Any]:
    """The ``human`` identity profile as data (what ``config/profiles/human.yaml`` holds)."""
    from emg_hand_core.hand_model import JOINT_LOWER, JOINT_UPPER, MAX_JOINT_VELOCITY_RAD_S

    joints = []
    for i, jname in enumerate(JOINT_NAMES):
        joints.append({
            "name": jname, "kind": "flexion" if jname.endswith("_fe") else "abduction",
            "lower": float(JOINT_LOWER[i]), "upper": float(JOINT_UPPER[i]),
            "max_velocity": float(MAX_JOINT_VELOCITY_RAD_S), "offset": 0.0,
            "gains": {jname: 1.0},
        })
    return {"name": "human", "description": "Identity: the 20-joint human hand of the URDF "
            "(hand_visualizer/urdf/hand.urdf), joint for joint.", "joints": joints,
            "safe_posture": "open"}


def describe(profile: HandProfile, poses: tuple[str, ...] = ("open", "rest", "fist", "pinch",
                                                            "point")) -> str:
    """A readable summary: each joint's mapping and limits, and what named poses map to."""
    lines = [f"profile {profile.name} ({profile.num_joints} joints) from {profile.source}"]
    if profile.description:
        lines.append(f"  {profile.description}")
    width = max(len(n) for n in profile.joint_names)
    lines.append(f"  {'joint':{width}s}  kind       limits [rad]      vmax   mapping")
    for j, name in enumerate(profile.joint_names):
        terms = " ".join(f"{g:+g}*{JOINT_NAMES[i]}" for i, g in enumerate(profile.gains[j])
                         if g != 0.0)
        lines.append(f"  {name:{width}s}  {profile.kinds[j]:9s}  [{profile.lower[j]:+.3f}, "
                     f"{profile.upper[j]:+.3f}]  {profile.max_velocity[j]:5.2g}  "
                     f"{profile.offsets[j]:+g} {terms}")
    lines.append(f"  {'safe posture':{width}s}  " + " ".join(
        f"{v:+.3f}" for v in profile.safe_posture))
    for pose in poses:
        target = profile.clamp(profile.retarget(NAMED_POSES[pose]))
        lines.append(f"  {pose:{width}s}  " + " ".join(f"{v:+.3f}" for v in target))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Console script ``hand_profile``: validate a profile and show what it does."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="hand_profile", description="Check a hand_controller profile: print its joints, "
        "mapping, safe posture and the targets of a few named poses.")
    parser.add_argument("profile", help="shipped profile name or path of a YAML file")
    args = parser.parse_args(argv)
    try:
        print(describe(load_profile(resolve_profile_path(args.profile))))
    except ProfileError as exc:
        print(f"hand_profile: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
