"""Named hand poses: the library the simulator plays and guided calibration prompts.

Each pose is 20 joint angles in :data:`hand_model.JOINT_NAMES` order [rad], inside the
hand's limits. Pure numpy; no rclpy. The YAML form (``{name: {joint: angle, ...}}``,
unnamed joints from ``rest``) lets a user add poses without code.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .hand_model import JOINT_INDEX, JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, LONG_FINGERS


def _pose(base: np.ndarray | None = None, **angles: float) -> np.ndarray:
    q = np.zeros(len(JOINT_NAMES)) if base is None else base.copy()
    for name, value in angles.items():
        q[JOINT_INDEX[name]] = value
    return q


def _curl(finger: str, mcp: float, pip: float, dip: float) -> dict[str, float]:
    return {f"{finger}_mcp_fe": mcp, f"{finger}_pip_fe": pip, f"{finger}_dip_fe": dip}


_FIST_FINGERS = {k: v for f in LONG_FINGERS for k, v in _curl(f, 1.45, 1.60, 1.10).items()}
_FIST_THUMB = {"thumb_cmc_fe": 0.55, "thumb_cmc_aa": 0.45, "thumb_mcp_fe": 0.55,
               "thumb_ip_fe": 0.45}

REST = _pose(
    **{k: v for f in LONG_FINGERS for k, v in _curl(f, 0.25, 0.35, 0.20).items()},
    thumb_cmc_fe=0.10, thumb_cmc_aa=0.25, thumb_mcp_fe=0.15, thumb_ip_fe=0.15,
)

NAMED_POSES: dict[str, np.ndarray] = {
    "rest": REST,
    "open": _pose(index_mcp_aa=0.15, ring_mcp_aa=-0.10, pinky_mcp_aa=-0.20,
                  thumb_cmc_aa=0.10, thumb_cmc_fe=-0.10),
    "fist": _pose(**_FIST_FINGERS, **_FIST_THUMB),
    "pinch": _pose(REST, **_curl("index", 0.75, 0.80, 0.45), thumb_cmc_fe=0.45,
                   thumb_cmc_aa=0.90, thumb_mcp_fe=0.25, thumb_ip_fe=0.30),
    "point": _pose(**{k: v for f in ("middle", "ring", "pinky")
                      for k, v in _curl(f, 1.45, 1.60, 1.10).items()}, **_FIST_THUMB),
    "thumbs_up": _pose(**_FIST_FINGERS, thumb_cmc_fe=-0.20, thumb_cmc_aa=0.20),
    "tripod": _pose(REST, **_curl("index", 0.80, 0.75, 0.40), **_curl("middle", 0.85, 0.75, 0.40),
                    thumb_cmc_fe=0.45, thumb_cmc_aa=0.95, thumb_mcp_fe=0.30, thumb_ip_fe=0.25),
    "thumb_flex": _pose(thumb_cmc_fe=0.80, thumb_cmc_aa=0.60, thumb_mcp_fe=0.80,
                        thumb_ip_fe=1.00),
    **{f"{f}_flex": _pose(**_curl(f, 1.30, 1.50, 1.00)) for f in LONG_FINGERS},
}
"""Pose name -> joint angles (20,) [rad]."""

GUIDED_CALIBRATION_POSES: tuple[str, ...] = (
    "rest", "open", "fist", "pinch", "point", "thumb_flex", "index_flex", "middle_flex",
    "ring_flex", "pinky_flex",
)
"""Default prompt sequence of a guided calibration."""

GESTURE_POSTURES: dict[str, str] = {
    "rest": "rest", "open": "open", "fist": "fist", "wrist_flexion": "fist",
    "wrist_extension": "open", "radial_deviation": "pinch", "ulnar_deviation": "point",
    "pronation": "tripod", "supination": "thumbs_up",
}
"""Gesture class -> named pose it drives the hand to (pattern-recognition control): a class
that is itself a pose name maps to that pose; the wrist movements of the myo_readings classes
map to grips as in common prosthesis practice (flexion closes, extension opens)."""


def gesture_posture(class_name: str) -> str | None:
    """The named pose of a gesture class (:data:`GESTURE_POSTURES`, else the class itself if
    it names a pose), or None."""
    pose = GESTURE_POSTURES.get(class_name, class_name)
    return pose if pose in NAMED_POSES else None


def move_toward(current: np.ndarray, target: np.ndarray, max_step: np.ndarray | float
                ) -> np.ndarray:
    """One step from ``current`` toward ``target``, each element moving at most ``max_step``
    (>= 0, same units); returns a new array."""
    current = np.asarray(current, dtype=np.float64)
    step = np.clip(np.asarray(target, dtype=np.float64) - current, -np.abs(max_step),
                   np.abs(max_step))
    return current + step


def pose_from_mapping(angles: Mapping[str, float], base: str = "rest") -> np.ndarray:
    """A pose from ``{joint_name: angle_rad}``; joints not given come from ``base``.

    Raises ValueError for unknown joint names or angles outside the hand's limits.
    """
    unknown = sorted(set(angles) - set(JOINT_NAMES))
    if unknown:
        raise ValueError(f"unknown joint names {unknown}; expected names from JOINT_NAMES")
    q = _pose(NAMED_POSES[base], **{k: float(v) for k, v in angles.items()})
    check_pose(q)
    return q


def check_pose(q: np.ndarray, name: str = "pose") -> None:
    """Raise ValueError naming the joints of ``q`` (20,) that are non-finite or out of limits."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (len(JOINT_NAMES),):
        raise ValueError(f"{name}: expected {len(JOINT_NAMES)} joint angles, got shape {q.shape}")
    bad = [JOINT_NAMES[i] for i in np.flatnonzero(
        ~np.isfinite(q) | (q < JOINT_LOWER - 1e-9) | (q > JOINT_UPPER + 1e-9))]
    if bad:
        raise ValueError(f"{name}: joints outside the hand's limits or not finite: {bad}")
