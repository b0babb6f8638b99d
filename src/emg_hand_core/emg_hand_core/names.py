"""Named values -> a fixed order: JointState-like (names, positions) to the 20 joint angles.

Every place that receives joint angles or keypoints by name (the visualizer, the controller's
safety filter, calibration references, bag and recording readers, the demo) goes through
:class:`NameOrder`, so they all accept and refuse the same inputs:

* names given: every expected name must be present (extra names are ignored, any order);
  the number of names must equal the number of values;
* no names: the values are taken as already in the expected order, if there are exactly
  as many as expected (a bare ``JointState`` with only positions);
* every selected value must be finite.

A refusal raises :class:`NameOrderError`, a ValueError whose ``kind`` is ``"length"``,
``"missing"`` or ``"nonfinite"`` (for counters) and whose message says what was wrong.
Pure Python + numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .hand_model import JOINT_NAMES, KEYPOINT_NAMES


class NameOrderError(ValueError):
    """Named values that cannot be put in order; ``kind``: length | missing | nonfinite."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class NameOrder:
    """Reorders named values into ``expected`` order (see module docstring).

    The index of each distinct name tuple is cached (a stream sends the same names in
    every message), so ordering one message costs one fancy-index.
    """

    CACHE_SIZE = 16

    def __init__(self, expected: Sequence[str], what: str = "joints") -> None:
        self.expected = tuple(expected)
        self.what = what
        self._where = {n: i for i, n in enumerate(self.expected)}
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.expected)

    def index(self, names: Sequence[str]) -> np.ndarray:
        """Positions in ``names`` of the expected names, in expected order (cached)."""
        key = tuple(names)
        index = self._cache.get(key)
        if index is None:
            where = {n: i for i, n in enumerate(key)}
            missing = [n for n in self.expected if n not in where]
            if missing:
                more = "..." if len(missing) > 4 else ""
                raise NameOrderError("missing", f"missing {self.what} {missing[:4]}{more}")
            index = np.array([where[n] for n in self.expected], dtype=np.intp)
            if len(self._cache) < self.CACHE_SIZE:
                self._cache[key] = index
        return index

    def order(self, names: Sequence[str], values, finite: bool = True) -> np.ndarray:
        """``values`` (len(names), ...) reordered to (len(expected), ...) float64."""
        values = np.asarray(values, dtype=np.float64)
        n = len(self.expected)
        if len(names) == 0:
            if values.shape[:1] != (n,):
                raise NameOrderError("length", f"{len(values)} values without names; expected "
                                     f"{n} {self.what} in their standard order")
            out = values
        else:
            if len(names) != len(values):
                raise NameOrderError("length", f"{len(names)} names but {len(values)} values")
            out = values[self.index(names)]
        if finite and not np.all(np.isfinite(out)):
            flat = out.reshape(n, -1)
            bad = [self.expected[i] for i in np.flatnonzero(~np.all(np.isfinite(flat), axis=1))]
            raise NameOrderError("nonfinite", f"non-finite values for {bad[:4]}")
        return out


JOINT_ORDER = NameOrder(JOINT_NAMES, "joints")
KEYPOINT_ORDER = NameOrder(KEYPOINT_NAMES, "keypoints")


def joint_angles_in_order(names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
    """JointState (name, position) -> 20 finite angles (20,) in JOINT_NAMES order [rad].

    Raises :class:`NameOrderError`.
    """
    return JOINT_ORDER.order(names, positions)


def keypoints_in_order(names: Sequence[str], points) -> np.ndarray:
    """Named 3-D points (K, 3) -> the 21 keypoints (21, 3) in KEYPOINT_NAMES order [m].

    Raises :class:`NameOrderError`.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return KEYPOINT_ORDER.order(names, points)


__all__ = ["JOINT_ORDER", "KEYPOINT_ORDER", "NameOrder", "NameOrderError",
           "joint_angles_in_order", "keypoints_in_order"]
