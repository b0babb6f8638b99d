"""Calibration data collection, shared by both calibration modes. No rclpy.

* :class:`GuidedSchedule`: the prompt timeline of a guided calibration (hold a named pose,
  rest, next pose, ...) and the label of every instant, skipping the transition after each
  prompt change.
* :class:`ReferenceTrack`: joint angles from a reference topic (simulator truth, a camera
  hand tracker, a data glove), time-aligned to EMG sample times by interpolation.
* :class:`CalibrationRecording`: EMG samples with their acquisition times [s], turned into
  (emg, joint_angles) training arrays by either label source.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emg_hand_core.hand_model import JOINT_NAMES, NUM_JOINTS
from emg_hand_core.names import NameOrderError, joint_angles_in_order
from emg_hand_core.poses import NAMED_POSES
from emg_hand_core.tracks import DEFAULT_MAX_GAP_S, interpolate_track

PHASE_GET_READY, PHASE_HOLD, PHASE_REST, PHASE_DONE = 0, 1, 2, 3  # CalibrationPrompt phases


@dataclass(frozen=True)
class PromptState:
    phase: int                 # PHASE_* (CalibrationPrompt constants)
    pose_name: str             # pose to hold now (HOLD) or next (GET_READY / REST)
    index: int                 # index of that pose in the whole prompt sequence
    count: int                 # prompts in the sequence
    seconds_remaining: float   # left in this phase [s]
    label: str | None          # pose the EMG of this instant is labelled with, or None


class GuidedSchedule:
    """Timeline: get ready, then for every prompt ``hold_s`` holding it and ``rest_s`` resting.

    Hold periods are labelled with the prompted pose and rest periods with ``rest``, each
    only after ``transition_s`` [s] have passed since the phase began (the wearer is moving).
    """

    def __init__(self, poses: Sequence[str], hold_s: float, rest_s: float,
                 transition_s: float, repetitions: int = 1, get_ready_s: float = 2.0,
                 library: dict[str, np.ndarray] | None = None) -> None:
        self.library = dict(NAMED_POSES if library is None else library)
        unknown = [p for p in poses if p not in self.library]
        if unknown:
            raise ValueError(f"unknown poses {unknown}; known: {sorted(self.library)}")
        if not poses:
            raise ValueError("guided calibration needs at least one pose")
        if hold_s <= 0 or rest_s < 0 or transition_s < 0 or repetitions < 1 or get_ready_s < 0:
            raise ValueError("need hold_s > 0, rest_s >= 0, transition_s >= 0, repetitions >= 1")
        if transition_s >= hold_s:
            raise ValueError(f"transition_s ({transition_s} s) leaves nothing of hold_s "
                             f"({hold_s} s) to record")
        self.prompts = [p for _ in range(repetitions) for p in poses]
        self.hold_s, self.rest_s, self.transition_s = hold_s, rest_s, transition_s
        self.get_ready_s = get_ready_s
        # segments: (start_s, end_s, phase, prompt index)
        self.segments: list[tuple[float, float, int, int]] = []
        t = 0.0
        if get_ready_s > 0:
            self.segments.append((t, t + get_ready_s, PHASE_GET_READY, 0))
            t += get_ready_s
        for i in range(len(self.prompts)):
            self.segments.append((t, t + hold_s, PHASE_HOLD, i))
            t += hold_s
            if rest_s > 0 and i + 1 < len(self.prompts):
                self.segments.append((t, t + rest_s, PHASE_REST, i + 1))
                t += rest_s
        self.duration_s = t
        self._starts = [s[0] for s in self.segments]

    def state_at(self, t_s: float) -> PromptState:
        """What the wearer is asked to do ``t_s`` seconds after the start."""
        count = len(self.prompts)
        if t_s >= self.duration_s:
            return PromptState(PHASE_DONE, "", count, count, 0.0, None)
        k = max(0, bisect.bisect_right(self._starts, t_s) - 1)
        start, end, phase, index = self.segments[k]
        label = None
        if t_s - start >= self.transition_s:
            if phase == PHASE_HOLD:
                label = self.prompts[index]
            elif phase == PHASE_REST and "rest" in self.library:
                label = "rest"
        return PromptState(phase, self.prompts[min(index, count - 1)], index, count,
                           end - t_s, label)

    def labelled_spans(self) -> list[tuple[float, float, str]]:
        """(start_s, end_s, pose) of every labelled stretch: holds and rests, each after its
        transition."""
        spans = []
        for start, end, phase, index in self.segments:
            if phase == PHASE_HOLD:
                name = self.prompts[index]
            elif phase == PHASE_REST and "rest" in self.library:
                name = "rest"
            else:
                continue
            spans.append((start + self.transition_s, end, name))
        return spans

    def label_times(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joint-angle labels (n, 20) [rad] and a validity mask (n,) for times [s]."""
        t_s = np.asarray(t_s, dtype=np.float64)
        q = np.zeros((t_s.size, NUM_JOINTS))
        valid = np.zeros(t_s.size, dtype=bool)
        for start, end, name in self.labelled_spans():
            sel = (t_s >= start) & (t_s < end)
            q[sel] = self.library[name]
            valid |= sel
        return q, valid

    def label_indices(self, t_s: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Class labels (n,): the index in ``names`` of the pose prompted at each time [s]
        (gesture models: the class), -1 where unlabelled."""
        t_s = np.asarray(t_s, dtype=np.float64)
        labels = np.full(t_s.size, -1, dtype=np.int64)
        for start, end, name in self.labelled_spans():
            labels[(t_s >= start) & (t_s < end)] = list(names).index(name)
        return labels


class ReferenceTrack:
    """Reference joint angles over time, for alignment to EMG sample times.

    ``add`` takes JointState-like data (names, positions, stamp); joints are reordered into
    :data:`JOINT_NAMES` (``emg_hand_core.names``). Messages that cannot be ordered (missing
    joints, wrong counts, non-finite values) or whose time does not increase are refused
    (counted in ``rejected``). Interpolation onto EMG times: ``emg_hand_core.tracks``.
    """

    def __init__(self, max_gap_s: float = DEFAULT_MAX_GAP_S) -> None:
        self.max_gap_s = max_gap_s
        self._t: list[float] = []
        self._q: list[np.ndarray] = []
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._t)

    def add(self, t_s: float, names: Sequence[str], positions: Sequence[float]) -> bool:
        try:
            q = joint_angles_in_order(names, positions)
        except NameOrderError:
            self.rejected += 1
            return False
        if not math.isfinite(t_s) or (self._t and t_s <= self._t[-1]):
            self.rejected += 1
            return False
        self._t.append(float(t_s))
        self._q.append(q)
        return True

    def interpolate(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joint angles (n, 20) at times ``t_s`` and a mask of times bracketed by reference
        samples no more than ``max_gap_s`` apart."""
        if not self._t:
            t_s = np.asarray(t_s, dtype=np.float64)
            return np.zeros((t_s.size, NUM_JOINTS)), np.zeros(t_s.size, dtype=bool)
        return interpolate_track(np.asarray(self._t), np.stack(self._q), t_s, self.max_gap_s)


class CalibrationRecording:
    """EMG samples [V] with acquisition times [s], appended chunk by chunk."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._emg: list[np.ndarray] = []
        self._t: list[np.ndarray] = []
        self.samples = 0

    def add_chunk(self, samples: np.ndarray, t0_s: float, sample_rate_hz: float) -> None:
        n = samples.shape[0]
        self._emg.append(np.array(samples, dtype=np.float32, copy=True))
        self._t.append(t0_s + np.arange(n) / sample_rate_hz)
        self.samples += n

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(emg (n, C) float32 [V], times (n,) [s])."""
        if not self._emg:
            return np.zeros((0, self.channels), np.float32), np.zeros(0)
        return np.concatenate(self._emg), np.concatenate(self._t)


def labelled_segments(valid: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """Runs [start, end) of consecutive valid samples at least ``min_len`` long."""
    runs = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start >= min_len:
            runs.append((int(start), int(end)))
    return runs


__all__ = ["GuidedSchedule", "ReferenceTrack", "CalibrationRecording", "PromptState",
           "labelled_segments", "JOINT_NAMES"]
