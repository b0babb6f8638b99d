"""Safety of the commanded hand: clamp, low-pass, rate limit, input checks and the watchdog.

Pure numpy; no rclpy. Times are seconds of a monotonic clock, passed in by the caller, so
tests drive the controller with made-up times and the node with its steady clock.

:class:`ControllerCore` is the whole controller behaviour the node wires to ROS:

* input (human joint angles, by name) is checked: wrong length / missing joints, NaN/inf
  and angles so large that the retargeted command is not finite (1e308 times a gain of 2
  overflows to inf, and inf - inf is NaN) are rejected and counted, nothing else happens;
* while enabled, each accepted input is retargeted through the profile and passed through
  :class:`SafetyFilter` (clamp to limits, optional first-order low-pass, rate limit to each
  joint's max velocity), giving one command;
* :meth:`ControllerCore.on_tick` runs every control period: when no input was accepted for
  longer than the input timeout it trips the watchdog and commands the safe posture
  (or holds), still through the filter, until input returns;
* it starts disabled unless told otherwise; :meth:`disable` (stop) issues one last hold
  command and then nothing until :meth:`enable`;
* with a contact force limit (> 0) and the hand's contact forces per finger
  (:meth:`ControllerCore.on_contacts`, e.g. hand_sim's robot_hand/contacts), a finger
  pressing on something with at least that force stops closing: its flexion joints are not
  commanded further toward closed than they are (opening stays free) until the force drops
  below the limit or the reading is older than the input timeout.

Grip mode (``mode="grip"``, pattern-recognition control): the input is a gesture decision
(class name, rejected, level in [0, 1]; :meth:`ControllerCore.on_gesture`) instead of a hand
pose. Each control tick moves the hand toward the class's posture of the profile
(:meth:`HandProfile.grip`) at ``level x max_velocity`` per joint; rest, a rejected
decision or a class without a posture holds the position. The same filter (limits, rate
limit, low-pass), watchdog (on stale decisions), input checks and enable/stop apply.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from emg_hand_core.names import JOINT_ORDER, NameOrderError
from emg_hand_core.poses import move_toward

from .profile import HandProfile

WATCHDOG_ACTIONS = ("safe_posture", "hold")
MODES = ("pose", "grip")
HOLD_CLASSES = ("rest",)  # grip mode: classes that hold the hand where it is


class SafetyFilter:
    """Clamp to limits, optional low-pass, and rate limit to a maximum velocity per joint.

    Between two outputs at times t0 < t1, ``|out1 - out0| <= max_velocity * min(t1 - t0,
    max_step_dt_s)`` and every output lies within [lower, upper]. Capping the step time at
    ``max_step_dt_s`` (one control period) means a command after a pause moves no further
    than one period's worth, instead of jumping.
    """

    def __init__(self, lower: np.ndarray, upper: np.ndarray, max_velocity: np.ndarray, *,
                 max_step_dt_s: float, lowpass_cutoff_hz: float = 0.0,
                 position: np.ndarray | None = None, t_s: float = 0.0):
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.max_velocity = np.asarray(max_velocity, dtype=np.float64)
        if max_step_dt_s <= 0:
            raise ValueError(f"max_step_dt_s must be > 0, got {max_step_dt_s}")
        self.max_step_dt_s = float(max_step_dt_s)
        self.lowpass_cutoff_hz = float(lowpass_cutoff_hz)
        start = self.lower if position is None else position
        self.reset(np.asarray(start, dtype=np.float64), t_s)

    def reset(self, position: np.ndarray, t_s: float) -> None:
        """Assume the hand is at ``position`` (clamped) at time ``t_s``."""
        self.position = np.clip(np.asarray(position, dtype=np.float64), self.lower, self.upper)
        self._smoothed = self.position.copy()
        self._t = float(t_s)

    @property
    def t_s(self) -> float:
        """Time of the last output (or reset) [s]."""
        return self._t

    def step(self, target: np.ndarray, t_s: float) -> np.ndarray:
        """One command toward ``target`` (n,) [rad] at time ``t_s`` [s]; returns a copy."""
        dt = min(max(float(t_s) - self._t, 0.0), self.max_step_dt_s)
        x = np.clip(target, self.lower, self.upper)
        if self.lowpass_cutoff_hz > 0.0:
            alpha = 1.0 - math.exp(-2.0 * math.pi * self.lowpass_cutoff_hz * dt)
            self._smoothed += alpha * (x - self._smoothed)
            x = self._smoothed
        limit = self.max_velocity * dt
        self.position = np.clip(self.position + np.clip(x - self.position, -limit, limit),
                                self.lower, self.upper)
        self._t = max(self._t, float(t_s))
        return self.position.copy()


class State(enum.StrEnum):
    DISABLED = "disabled"
    WAITING = "waiting"  # enabled, no input accepted yet
    ACTIVE = "active"  # following the input
    WATCHDOG = "watchdog"  # input stale: driving to the safe posture (or holding)


@dataclass
class Counters:
    received: int = 0
    accepted: int = 0
    rejected_nonfinite: int = 0
    rejected_length: int = 0
    commands: int = 0
    watchdog_trips: int = 0
    contact_limited: int = 0  # commands in which a finger in contact was kept from closing

    @property
    def rejected(self) -> int:
        return self.rejected_nonfinite + self.rejected_length


@dataclass(frozen=True)
class Command:
    """One command to send: target joint positions [rad] in the profile's joint order."""

    positions: np.ndarray
    t_s: float
    watchdog: bool = False  # produced by the watchdog (safe posture / hold)
    stop: bool = False  # the last command before output stops (disable / ~/stop)


@dataclass
class InputError:
    reason: str  # "length" or "nonfinite"
    message: str


@dataclass
class ControllerCore:
    """The controller's behaviour, independent of ROS (see the module docstring)."""

    profile: HandProfile
    input_timeout_s: float = 0.2
    period_s: float = 0.01
    lowpass_cutoff_hz: float = 0.0
    watchdog_action: str = "safe_posture"
    enabled: bool = False
    mode: str = "pose"  # "pose" (hand/joint_states) | "grip" (hand/gesture)
    t_s: float = 0.0
    contact_force_limit_n: float = 0.0  # 0: contacts are not used
    counters: Counters = field(default_factory=Counters)
    last_error: InputError | None = None

    def __post_init__(self) -> None:
        if self.input_timeout_s <= 0 or self.period_s <= 0:
            raise ValueError("input_timeout_s and period_s must be > 0")
        if self.watchdog_action not in WATCHDOG_ACTIONS:
            raise ValueError(f"watchdog_action must be one of {WATCHDOG_ACTIONS}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        p = self.profile
        self.filter = SafetyFilter(p.lower, p.upper, p.max_velocity, max_step_dt_s=self.period_s,
                                   lowpass_cutoff_hz=self.lowpass_cutoff_hz,
                                   position=p.safe_posture, t_s=self.t_s)
        self._last_input_t: float | None = None
        self._enabled_t = self.t_s
        self._contacts: tuple[float, dict[str, float]] = (-math.inf, {})
        flexion = ~np.isnan(p.closed)
        self._closes_up = flexion & (p.closed == p.upper)
        self._closes_down = flexion & (p.closed == p.lower)
        self.grip_target: np.ndarray | None = None  # grip mode: None = hold
        self.grip_level = 0.0
        self.grip_class = ""
        self.state = State.DISABLED
        if self.enabled:
            self.enabled = False
            self.enable(self.t_s)

    # --- configuration ------------------------------------------------------------------
    def set_lowpass_cutoff_hz(self, cutoff_hz: float) -> None:
        self.lowpass_cutoff_hz = self.filter.lowpass_cutoff_hz = float(cutoff_hz)

    @property
    def position(self) -> np.ndarray:
        """The last commanded (or assumed) position [rad]."""
        return self.filter.position.copy()

    # --- input --------------------------------------------------------------------------
    def parse_input(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray | None:
        """The target (n,) [rad] retargeted from human joint angles given by name, not yet
        clamped; None when the input is rejected (and counted)."""
        self.counters.received += 1
        try:
            q = JOINT_ORDER.order(names, positions)
        except NameOrderError as err:
            return self._reject("nonfinite" if err.kind == "nonfinite" else "length", str(err))
        with np.errstate(over="ignore", invalid="ignore"):
            target = self.profile.retarget(q)
        if not np.all(np.isfinite(target)):
            return self._reject("nonfinite", "joint angles out of range: the retargeted "
                                f"command is not finite (largest |angle| {np.abs(q).max():.3g} "
                                "rad)")
        self.counters.accepted += 1
        return target

    def _reject(self, reason: str, message: str) -> None:
        if reason == "length":
            self.counters.rejected_length += 1
        else:
            self.counters.rejected_nonfinite += 1
        self.last_error = InputError(reason, message)
        return None

    def on_input(self, names: Sequence[str], positions: Sequence[float],
                 t_s: float) -> Command | None:
        """A human hand pose arrived: the command to send now, or None."""
        target = self.parse_input(names, positions)
        if target is None or not self.enabled:
            return None
        self._last_input_t = t_s
        self.state = State.ACTIVE
        return self._command(target, t_s)

    def on_contacts(self, fingers: Sequence[str], normal_force_n: Sequence[float],
                    t_s: float) -> None:
        """The hand's contact forces now: normal force [N] per finger name."""
        self._contacts = (t_s, {f: float(n) for f, n in zip(fingers, normal_force_n)})

    def limited_fingers(self, t_s: float) -> list[str]:
        """Fingers pressing with at least the contact force limit (a fresh reading)."""
        since, forces = self._contacts
        if self.contact_force_limit_n <= 0 or t_s - since > self.input_timeout_s:
            return []
        return [f for f, n in forces.items() if n >= self.contact_force_limit_n]

    def _hold_fingers_in_contact(self, target: np.ndarray, t_s: float) -> np.ndarray:
        limited = self.limited_fingers(t_s)
        if not limited:
            return target
        held = np.isin(np.array(self.profile.fingers), limited)
        if not held.any():
            return target
        now = self.filter.position
        out = np.asarray(target, dtype=np.float64).copy()
        up, down = held & self._closes_up, held & self._closes_down
        out[up] = np.minimum(out[up], now[up])
        out[down] = np.maximum(out[down], now[down])
        if np.any(out != target):
            self.counters.contact_limited += 1
        return out

    def on_gesture(self, class_name: str, rejected: bool, level: float,
                   t_s: float) -> None:
        """Grip mode: a gesture decision arrived; the next ticks move toward its posture.
        A non-finite level or one outside [0, 1] is rejected and counted."""
        self.counters.received += 1
        if not (math.isfinite(level) and 0.0 <= level <= 1.0):
            self._reject("nonfinite", f"gesture level {level!r} is not in [0, 1]")
            return
        self.counters.accepted += 1
        if not self.enabled:
            return
        self._last_input_t = t_s
        self.state = State.ACTIVE
        hold = rejected or class_name in HOLD_CLASSES
        self.grip_target = None if hold else self.profile.grip(class_name)
        self.grip_class = "" if self.grip_target is None else class_name
        self.grip_level = 0.0 if self.grip_target is None else float(level)

    # --- time ---------------------------------------------------------------------------
    def stale(self, t_s: float) -> bool:
        since = self._last_input_t if self._last_input_t is not None else self._enabled_t
        return t_s - since > self.input_timeout_s

    def on_tick(self, t_s: float) -> Command | None:
        """Every control period: the watchdog's command when input is stale; in grip mode
        the step toward the grip posture (or a hold) otherwise; else None."""
        if not self.enabled:
            return None
        if not self.stale(t_s):
            if self.mode != "grip" or self._last_input_t is None:
                return None
            position = self.filter.position
            if self.grip_target is None:
                return self._command(position, t_s)
            dt = min(max(t_s - self.filter.t_s, 0.0), self.period_s)
            target = move_toward(position, self.grip_target,
                                 self.grip_level * self.profile.max_velocity * dt)
            return self._command(target, t_s)
        if self.state != State.WATCHDOG:
            self.state = State.WATCHDOG
            self.counters.watchdog_trips += 1
        target = self.profile.safe_posture if self.watchdog_action == "safe_posture" \
            else self.filter.position
        return self._command(target, t_s, watchdog=True)

    # --- enable / stop ------------------------------------------------------------------
    def enable(self, t_s: float) -> None:
        if self.enabled:
            return
        self.enabled = True
        self.state = State.WAITING
        self._enabled_t = t_s
        self._last_input_t = None
        self.grip_target, self.grip_level, self.grip_class = None, 0.0, ""
        self.filter.reset(self.filter.position, t_s)

    def disable(self, t_s: float) -> Command | None:
        """Stop commanding: returns one last command holding the current position."""
        if not self.enabled:
            return None
        self.enabled = False
        was_commanding = self.state in (State.ACTIVE, State.WATCHDOG)
        self.state = State.DISABLED
        if not was_commanding:
            return None
        self.counters.commands += 1
        return Command(self.filter.position.copy(), t_s, stop=True)

    def _command(self, target: np.ndarray, t_s: float, watchdog: bool = False) -> Command:
        positions = self.filter.step(self._hold_fingers_in_contact(target, t_s), t_s)
        self.counters.commands += 1
        self.t_s = t_s
        return Command(positions, t_s, watchdog=watchdog)
