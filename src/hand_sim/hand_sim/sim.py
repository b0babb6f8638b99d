"""Stepping a simulated hand: commands in, measured joint states and contact forces out.

:class:`HandSim` stands in for a ros2_control hardware interface with position command
interfaces. A command is either positions for every profile joint (what a
``forward_command_controller`` forwards) or a trajectory (``JointTrajectory`` points,
followed by linear interpolation from where the setpoint was when it arrived, as
``joint_trajectory_controller`` does). Each physics step the servo setpoint moves toward the
commanded position by at most ``max_velocity * dt`` (a servo's motion profile, so no command
moves a joint faster than the profile allows) and the position servos of
:mod:`hand_sim.model` pull the joints after it; contacts, gravity and the finger linkages
act on the way, so the measured state lags, saturates and stops at objects as a real hand's
would. Positions outside the limits are clamped (and counted); commands that cannot be used
(wrong length, unknown names, NaN) raise :class:`CommandError` and change nothing.

Pure (MuJoCo + numpy); no rclpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emg_hand_core.names import NameOrder, NameOrderError

from .mj import mujoco
from .model import SimModel


class CommandError(ValueError):
    """A command that was not applied; ``kind``: length | names | nonfinite | time."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class JointReading:
    """The profile's joints, in profile order: positions [rad], velocities [rad/s],
    efforts (the servo torques) [N m], at sim time ``t_s``."""

    t_s: float
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclass(frozen=True)
class ContactReading:
    """Per finger (``fingers`` order): summed normal force [N], net force on the finger in
    ``hand_base`` (3,) [N], number of contact points."""

    t_s: float
    fingers: tuple[str, ...]
    normal_force: np.ndarray
    force: np.ndarray
    count: np.ndarray

    def of(self, finger: str) -> float:
        return float(self.normal_force[self.fingers.index(finger)])


class HandSim:
    """One simulated hand; not thread-safe (the node serialises calls with a lock)."""

    def __init__(self, sim_model: SimModel, start: np.ndarray | None = None):
        self.sm = sim_model
        self.model = sim_model.model
        self.data = mujoco.MjData(self.model)
        p = sim_model.profile
        self.joint_names = p.joint_names
        self.lower, self.upper, self.vmax = p.lower, p.upper, p.max_velocity
        self._order = NameOrder(p.joint_names, "joints of the profile")
        self._contact = np.zeros(6)
        self.clamped = 0  # commanded positions outside the limits, clamped
        self.reset(p.safe_posture if start is None else start)

    # --- state ------------------------------------------------------------------------------
    @property
    def t_s(self) -> float:
        """Simulated time since the start [s]."""
        return float(self.data.time)

    @property
    def dt_s(self) -> float:
        return self.sm.timestep_s

    @property
    def setpoint(self) -> np.ndarray:
        return self._setpoint.copy()

    def reset(self, positions: np.ndarray) -> None:
        """Put the hand at rest at ``positions`` (clamped), commanded to stay there."""
        q = np.clip(np.asarray(positions, dtype=np.float64), self.lower, self.upper)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.sm.qpos_adr] = q
        for qadr, driver, ratio in self.sm.coupled:
            self.data.qpos[qadr] = ratio * q[driver]
        mujoco.mj_forward(self.model, self.data)
        self._setpoint = q.copy()
        self._goal = q.copy()
        self._trajectory: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
        self.data.ctrl[:] = q

    def joints(self) -> JointReading:
        d = self.data
        return JointReading(self.t_s, d.qpos[self.sm.qpos_adr].copy(),
                            d.qvel[self.sm.dof_adr].copy(), d.actuator_force.copy())

    def contacts(self) -> ContactReading:
        """Contact forces on each finger now (from the last step's solution)."""
        sm, m, d = self.sm, self.model, self.data
        n = len(sm.fingers)
        normal, force, count = np.zeros(n), np.zeros((n, 3)), np.zeros(n, dtype=int)
        for i in range(d.ncon):
            c = d.contact[i]
            b1, b2 = m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]
            f1, f2 = sm.body_finger[b1], sm.body_finger[b2]
            if f1 < 0 and f2 < 0:
                continue
            mujoco.mj_contactForce(m, d, i, self._contact)
            # contact frame rows: normal (geom1 -> geom2), two tangents; the force acts on
            # geom2 along +normal and on geom1 the opposite way
            world = np.asarray(c.frame).reshape(3, 3).T @ self._contact[:3]
            for finger, sign in ((f1, -1.0), (f2, 1.0)):
                if finger >= 0:
                    normal[finger] += self._contact[0]
                    force[finger] += sign * world
                    count[finger] += 1
        return ContactReading(self.t_s, sm.fingers, normal, force, count)

    # --- commands ---------------------------------------------------------------------------
    def _checked(self, positions) -> np.ndarray:
        q = np.asarray(positions, dtype=np.float64).ravel()
        if q.shape != (len(self.joint_names),):
            raise CommandError("length", f"expected {len(self.joint_names)} positions "
                               f"({', '.join(self.joint_names)}), got {q.size}")
        if not np.all(np.isfinite(q)):
            raise CommandError("nonfinite", "positions must be finite")
        clipped = np.clip(q, self.lower, self.upper)
        self.clamped += int(np.count_nonzero(clipped != q))
        return clipped

    def command_positions(self, positions: Sequence[float]) -> None:
        """Move every joint to ``positions`` (profile order) [rad], at its max velocity."""
        self._goal = self._checked(positions)
        self._trajectory = None

    def command_trajectory(self, names: Sequence[str],
                           points: Sequence[tuple[float, Sequence[float]]]) -> None:
        """Follow ``points`` = [(time from now [s], positions by ``names``)], linearly
        interpolated from the current setpoint; the last point is then held."""
        if not points:
            raise CommandError("length", "a trajectory needs at least one point")
        try:
            index = self._order.index(list(names))
        except NameOrderError as err:
            raise CommandError("names", f"trajectory joint names: {err}") from None
        times = np.array([float(t) for t, _ in points])
        if np.any(times < 0) or np.any(np.diff(times) <= 0):
            raise CommandError("time", "time_from_start must be >= 0 and increasing")
        goals = []
        for _, positions in points:
            values = np.asarray(positions, dtype=np.float64)
            if values.shape != (len(names),):
                raise CommandError("length", f"a point has {values.size} positions for "
                                   f"{len(names)} joint names")
            goals.append(self._checked(values[index]))
        self._trajectory = (self.t_s, self._setpoint.copy(), times, np.array(goals))
        self._goal = self._trajectory_goal(self.t_s)

    def _trajectory_goal(self, t_s: float) -> np.ndarray:
        t0, start, times, goals = self._trajectory
        t = t_s - t0
        if t >= times[-1]:
            self._trajectory = None  # done: hold the last point
            return goals[-1]
        k = int(np.searchsorted(times, t, side="right"))
        t_a, q_a = (0.0, start) if k == 0 else (times[k - 1], goals[k - 1])
        w = (t - t_a) / (times[k] - t_a)
        return q_a + w * (goals[k] - q_a)

    # --- physics ----------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """``n`` physics steps, the setpoint slewing toward the command at max velocity."""
        limit = self.vmax * self.dt_s
        for _ in range(n):
            if self._trajectory is not None:
                self._goal = self._trajectory_goal(self.t_s + self.dt_s)
            self._setpoint += np.clip(self._goal - self._setpoint, -limit, limit)
            self.data.ctrl[:] = self._setpoint
            mujoco.mj_step(self.model, self.data)

    def run_for(self, seconds: float) -> None:
        """Step for ``seconds`` of simulated time."""
        self.step(max(1, int(round(seconds / self.dt_s))))


def tracking_lag(t_cmd: np.ndarray, q_cmd: np.ndarray, t_meas: np.ndarray,
                 q_meas: np.ndarray, max_lag_s: float = 0.3,
                 step_s: float = 0.002) -> tuple[float, float]:
    """How far the measured joint positions trail the commanded ones: (lag [s], mean
    absolute error at that lag [rad]). The lag is the delay of the commanded signal that
    best matches the measured one (both (M, n) by their stamps [s]; joints that move)."""
    t_cmd, q_cmd = np.asarray(t_cmd, dtype=np.float64), np.asarray(q_cmd, dtype=np.float64)
    t_meas, q_meas = np.asarray(t_meas, dtype=np.float64), np.asarray(q_meas, dtype=np.float64)
    inside = (t_meas >= t_cmd[0] + max_lag_s) & (t_meas <= t_cmd[-1])
    if inside.sum() < 10:
        return float("nan"), float("nan")
    t, q = t_meas[inside], q_meas[inside]
    best = (float("nan"), float("inf"))
    for lag in np.arange(0.0, max_lag_s + 1e-12, step_s):
        shifted = np.column_stack([np.interp(t - lag, t_cmd, q_cmd[:, j])
                                   for j in range(q_cmd.shape[1])])
        error = float(np.mean(np.abs(shifted - q)))
        if error < best[1]:
            best = (float(lag), error)
    return best
