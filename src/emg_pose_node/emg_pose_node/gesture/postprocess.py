"""Online post-processing of gesture decisions: rejection, majority vote, proportional level,
and the hand posture that follows the decisions. Pure numpy.

:class:`DecisionFilter`, per window:

1. **rejection**: the most likely class's probability (``confidence``) below
   ``rejection_threshold`` makes the window a "rejected" vote;
2. **majority vote** over the last ``vote_window`` votes (rejected votes included): the most
   frequent wins, a tie goes to the most recent of the tied; a rejected majority is a
   rejected decision (class: rest);
3. **proportional level** of the decided class c in [0, 1]:
   ``gain * (mav - low_c) / (high_c - low_c)``, clipped, where mav is the window's mean MAV
   [V] and low/high the class's 5th/95th percentile in training (stored in the checkpoint);
   0 at rest or when rejected, 1 for a decided gesture when proportional control is off.

:class:`PostureFollower` moves 20 joint angles toward the named pose of the decided class
(``emg_hand_core.poses.GESTURE_POSTURES``, or a mapping given): gestures at ``level x
max_speed``, rest (also when rejected) at ``max_speed``.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from emg_hand_core.poses import NAMED_POSES, gesture_posture, move_toward

REJECTED = -1


@dataclass(frozen=True)
class PostSettings:
    rejection_threshold: float = 0.0  # [0, 1]; 0 = never reject
    vote_window: int = 1  # decisions voted over; 1 = no voting
    proportional: bool = True
    proportional_gain: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rejection_threshold <= 1.0:
            raise ValueError(f"rejection_threshold must be in [0, 1], got "
                             f"{self.rejection_threshold}")
        if self.vote_window < 1 or self.proportional_gain <= 0:
            raise ValueError("vote_window must be >= 1 and proportional_gain > 0")


@dataclass(frozen=True)
class Decision:
    class_index: int  # decided class (rest index when rejected)
    class_name: str
    probabilities: np.ndarray  # (K,) of this window
    confidence: float  # max probability of this window
    rejected: bool
    level: float  # [0, 1]
    window_class: int  # this window's most likely class (before rejection and voting)


class DecisionFilter:
    """Rejection, voting and proportional level over a stream of windows (module docstring)."""

    def __init__(self, class_names: Sequence[str], settings: PostSettings | None = None,
                 low: Sequence[float] | None = None, high: Sequence[float] | None = None,
                 rest_index: int | None = None) -> None:
        self.class_names = tuple(class_names)
        k = len(self.class_names)
        self.rest_index = (self.class_names.index("rest") if "rest" in self.class_names else 0
                           ) if rest_index is None else rest_index
        self.low = np.zeros(k) if low is None else np.asarray(low, dtype=np.float64)
        self.high = np.ones(k) if high is None else np.asarray(high, dtype=np.float64)
        if self.low.shape != (k,) or self.high.shape != (k,):
            raise ValueError(f"low/high need one value per class ({k})")
        self.configure(settings or PostSettings())

    def configure(self, settings: PostSettings) -> None:
        self.settings = settings
        self._votes: collections.deque[int] = collections.deque(maxlen=settings.vote_window)

    def reset(self) -> None:
        self._votes.clear()

    def level(self, class_index: int, mav_v: float) -> float:
        if class_index == self.rest_index:
            return 0.0
        if not self.settings.proportional:
            return 1.0
        lo, hi = self.low[class_index], self.high[class_index]
        span = max(hi - lo, 1e-12)
        return float(np.clip(self.settings.proportional_gain * (mav_v - lo) / span, 0.0, 1.0))

    def step(self, probabilities: np.ndarray, mav_v: float) -> Decision:
        p = np.asarray(probabilities, dtype=np.float64)
        window_class = int(np.argmax(p))
        confidence = float(p[window_class])
        vote = REJECTED if confidence < self.settings.rejection_threshold else window_class
        self._votes.append(vote)
        counts = collections.Counter(self._votes)
        best = max(counts.values())
        tied = {v for v, n in counts.items() if n == best}
        decided = next(v for v in reversed(self._votes) if v in tied)
        rejected = decided == REJECTED
        index = self.rest_index if rejected else decided
        level = 0.0 if rejected else self.level(index, mav_v)
        return Decision(index, self.class_names[index], p, confidence, rejected, level,
                        window_class)


def posture_targets(class_names: Sequence[str], mapping: Mapping[str, str] | None = None
                    ) -> np.ndarray:
    """(K, 20) joint angles [rad] of each class's posture; ValueError naming classes that
    have none (give them one in ``mapping``: class -> pose name of NAMED_POSES)."""
    mapping = dict(mapping or {})
    out, missing = [], []
    for name in class_names:
        pose = mapping.get(name) or gesture_posture(name)
        if pose not in NAMED_POSES:
            missing.append(name)
            continue
        out.append(NAMED_POSES[pose])
    if missing:
        raise ValueError(f"no hand posture for classes {missing}: map them to poses of "
                         f"{sorted(NAMED_POSES)} (class=pose)")
    return np.stack(out)


class PostureFollower:
    """Joint angles (20,) [rad] that move toward the decided class's posture."""

    def __init__(self, class_names: Sequence[str], mapping: Mapping[str, str] | None = None,
                 max_speed_rad_s: float = 3.0, rest_index: int = 0) -> None:
        self.targets = posture_targets(class_names, mapping)
        self.rest_index = rest_index
        self.max_speed_rad_s = float(max_speed_rad_s)
        self.q = self.targets[rest_index].copy()

    def step(self, decision: Decision, dt_s: float) -> np.ndarray:
        gesture = not decision.rejected and decision.class_index != self.rest_index
        speed = self.max_speed_rad_s * (decision.level if gesture else 1.0)
        self.q = move_toward(self.q, self.targets[decision.class_index],
                             speed * max(dt_s, 0.0))
        return self.q.copy()


def parse_mapping(items: Sequence[str]) -> dict[str, str]:
    """``["class=pose", ...]`` -> {class: pose}; ValueError for a malformed item or an
    unknown pose."""
    out = {}
    for item in items:
        name, sep, pose = item.partition("=")
        if not sep or not name.strip() or pose.strip() not in NAMED_POSES:
            raise ValueError(f"{item!r}: expected class=pose with a pose of "
                             f"{sorted(NAMED_POSES)}")
        out[name.strip()] = pose.strip()
    return out


__all__ = ["Decision", "DecisionFilter", "PostSettings", "PostureFollower", "REJECTED",
           "parse_mapping", "posture_targets"]
