"""Node ``hand_sim``: a profile's robot hand simulated in MuJoCo, in place of the real one.

Thin wiring around :class:`hand_sim.sim.HandSim`: the command interfaces of ros2_control
(``forward_position_controller/commands``, ``joint_trajectory_controller/joint_trajectory``)
in, ``robot_hand/joint_states`` (measured positions, velocities, efforts) and
``robot_hand/contacts`` (forces per finger) out, ``/diagnostics``, and ``/clock`` with
``publish_clock``. The physics runs on its own thread, paced to real time (times
``real_time_factor``), never on the executor; the executor's callbacks only hand commands
to it under a lock.
"""

from __future__ import annotations

import collections
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Vector3
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from emg_hand_core.params import Param, ParamTable
from emg_hand_core.ros_params import declare_parameters, on_set_parameters
from emg_hand_core.topics import (
    CLOCK_TOPIC,
    CONTACTS_TOPIC,
    DIAGNOSTICS_TOPIC,
    FORWARD_COMMANDS_TOPIC,
    ROBOT_JOINT_STATES_TOPIC,
    TRAJECTORY_TOPIC,
)
from emg_interfaces.msg import HandContacts
from hand_controller.profile import installed_profile_dirs, load_profile, resolve_profile_path

from .model import OBJECT_SHAPES, SceneObject, build_model
from .sim import CommandError, HandSim

WAKE_PERIOD_S = 0.002  # the physics thread runs the steps due every 2 ms
MAX_CATCH_UP_S = 0.1  # further behind than this: skip ahead (counted as overruns)
STEP_TIME_WINDOW = 2000

PARAMETERS = ParamTable((
    Param("profile", "prosthetic_6", "The simulated hand: a hand_controller profile (shipped "
          "name or YAML path); its URDF, limits, velocities and efforts.", read_only=True,
          check=lambda v: None if v else "must not be empty"),
    Param("physics_rate_hz", 1000.0, "Physics steps per simulated second.", unit="Hz",
          min=500.0, max=10_000.0, read_only=True),
    Param("real_time_factor", 1.0, "Simulated seconds per wall-clock second.", min=0.1,
          max=10.0),
    Param("publish_rate_hz", 100.0, "Rate of robot_hand/joint_states and robot_hand/contacts "
          "(simulated time).", unit="Hz", min=1.0, max=1000.0, read_only=True),
    Param("servo_bandwidth_hz", 20.0, "Bandwidth of each joint's position servo (critically "
          "damped PD on the joint's effective inertia).", unit="Hz", min=1.0, max=100.0,
          read_only=True),
    Param("scene_object", "cylinder", "A static object in front of the palm to grasp: "
          "cylinder (across the fingers), ball or none.", choices=OBJECT_SHAPES,
          read_only=True),
    Param("object_radius_m", 0.0, "Radius of the scene object; 0: sized to the hand.",
          unit="m", min=0.0, max=0.5, read_only=True),
    Param("object_xyz_m", [], "Centre of the scene object in the hand's root frame, x y z; "
          "empty: in front of the palm, sized to the hand.", unit="m", kind="double_array",
          min=-2.0, max=2.0, read_only=True,
          check=lambda v: None if len(v) in (0, 3) else "needs 3 values (x y z) or none"),
    Param("gravity", True, "Gravity along the hand frame's -z (the palm faces down).",
          read_only=True),
    Param("publish_clock", False, "Publish the simulated time on /clock and stamp with it "
          "(run the other nodes with use_sim_time:=true).", read_only=True),
    Param("frame_id", "robot_hand/hand_base", "header.frame_id of robot_hand/contacts (the "
          "hand's root frame, with robot_state_publisher's frame_prefix).", read_only=True),
    Param("diagnostics_period_s", 1.0, "Period of the /diagnostics status.", unit="s",
          min=0.05, max=60.0),
))


class HandSimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("hand_sim", **kwargs)
        p, _ = declare_parameters(self, PARAMETERS)  # ParamError: refused with the reason
        self._p = p
        profile = load_profile(resolve_profile_path(p["profile"], installed_profile_dirs()))
        scene = SceneObject.in_front_of_palm(profile, p["scene_object"], p["object_radius_m"],
                                             tuple(p["object_xyz_m"]))
        self.sim = HandSim(build_model(
            profile, physics_rate_hz=p["physics_rate_hz"],
            servo_bandwidth_hz=p["servo_bandwidth_hz"], scene_object=scene,
            gravity=p["gravity"]))
        self.profile = profile
        self._lock = threading.Lock()
        self._rtf = p["real_time_factor"]
        self._publish_every = max(1, int(round(p["physics_rate_hz"] / p["publish_rate_hz"])))
        self._sim_clock = p["publish_clock"]
        self.counters = collections.Counter()
        self._last_problem = ""
        self._step_s: collections.deque[float] = collections.deque(maxlen=STEP_TIME_WINDOW)
        self._wall_rate = (0.0, 0.0, 0)  # (wall start, sim start, steps) of the last window

        self.state_pub = self.create_publisher(JointState, ROBOT_JOINT_STATES_TOPIC, 10)
        self.contacts_pub = self.create_publisher(HandContacts, CONTACTS_TOPIC, 10)
        self.clock_pub = self.create_publisher(Clock, CLOCK_TOPIC, 10) if self._sim_clock else None
        self.diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self.create_subscription(Float64MultiArray, FORWARD_COMMANDS_TOPIC, self._on_forward, 10)
        self.create_subscription(JointTrajectory, TRAJECTORY_TOPIC, self._on_trajectory, 10)
        self._diag_timer = self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics)
        self.add_on_set_parameters_callback(on_set_parameters(PARAMETERS, self._apply))

        self._stamp_origin = (self.get_clock().now().nanoseconds, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hand_sim_physics", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"hand_sim: profile {profile.name} ({profile.num_joints} joints), physics "
            f"{p['physics_rate_hz']:g} Hz x {self._rtf:g} real time, object "
            f"{p['scene_object']}; commands on {FORWARD_COMMANDS_TOPIC} and "
            f"{TRAJECTORY_TOPIC}; state on {ROBOT_JOINT_STATES_TOPIC}"
            + (", /clock" if self._sim_clock else ""))

    def _apply(self, values: dict) -> None:
        if "real_time_factor" in values:
            with self._lock:
                self._rtf = values["real_time_factor"]
                self._restart_pacing = True
        if "diagnostics_period_s" in values:
            self._diag_timer.cancel()
            self._diag_timer = self.create_timer(values["diagnostics_period_s"],
                                                 self._publish_diagnostics)

    # --- commands (executor thread) --------------------------------------------------------
    def _command(self, apply, kind: str) -> None:
        try:
            with self._lock:
                apply()
            self.counters[f"{kind}_commands"] += 1
        except CommandError as err:
            self.counters[f"rejected_{err.kind}"] += 1
            self._last_problem = f"{kind} command refused: {err}"
            self.get_logger().warn(self._last_problem, throttle_duration_sec=2.0)

    def _on_forward(self, msg: Float64MultiArray) -> None:
        self._command(lambda: self.sim.command_positions(msg.data), "forward")

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        points = [(pt.time_from_start.sec + pt.time_from_start.nanosec * 1e-9, pt.positions)
                  for pt in msg.points]
        self._command(lambda: self.sim.command_trajectory(msg.joint_names, points),
                      "trajectory")

    # --- physics (its own thread) ----------------------------------------------------------
    def _run(self) -> None:
        self._restart_pacing = True
        steps = 0
        while not self._stop.is_set():
            with self._lock:
                if self._restart_pacing:
                    wall0, sim0, self._restart_pacing = time.monotonic(), self.sim.t_s, False
                    self._stamp_origin = (self.get_clock().now().nanoseconds, sim0)
                due = int((sim0 + (time.monotonic() - wall0) * self._rtf - self.sim.t_s)
                          / self.sim.dt_s)
                if due * self.sim.dt_s > MAX_CATCH_UP_S * self._rtf:
                    self.counters["overruns"] += 1
                    self._restart_pacing = True
                    due = 1
                for _ in range(due):
                    t = time.perf_counter()
                    self.sim.step()
                    self._step_s.append(time.perf_counter() - t)
                    steps += 1
                    if steps % self._publish_every == 0:
                        self._publish_state()
            self.counters["steps"] = steps
            self._stop.wait(WAKE_PERIOD_S)

    def _stamp(self):
        """The time of the current physics state: the simulated time with publish_clock,
        else the ROS time at which real time (times real_time_factor) reaches it."""
        if self._sim_clock:
            return Time(nanoseconds=int(round(self.sim.t_s * 1e9))).to_msg()
        ros0_ns, sim0 = self._stamp_origin
        return Time(nanoseconds=ros0_ns + int(round((self.sim.t_s - sim0) / self._rtf * 1e9)),
                    clock_type=self.get_clock().clock_type).to_msg()

    def _publish_state(self) -> None:
        stamp = self._stamp()
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=stamp))
        j = self.sim.joints()
        state = JointState(name=list(self.profile.joint_names), position=j.position.tolist(),
                           velocity=j.velocity.tolist(), effort=j.effort.tolist())
        state.header.stamp = stamp
        self.state_pub.publish(state)
        c = self.sim.contacts()
        contacts = HandContacts(fingers=list(c.fingers), normal_force=c.normal_force.tolist(),
                                force=[Vector3(x=f[0], y=f[1], z=f[2]) for f in c.force.tolist()],
                                contact_count=c.count.tolist())
        contacts.header.stamp = stamp
        contacts.header.frame_id = self._p["frame_id"]
        self.contacts_pub.publish(contacts)

    # --- diagnostics ----------------------------------------------------------------------
    def physics_figures(self) -> dict[str, float]:
        """Measured since the last call: physics rate [Hz] and real-time factor, step time."""
        wall, sim_t, steps = time.monotonic(), self.sim.t_s, self.counters["steps"]
        w0, s0, n0 = self._wall_rate
        self._wall_rate = (wall, sim_t, steps)
        dt = wall - w0 if w0 else float("nan")
        step = np.asarray(self._step_s) * 1e6 if self._step_s else np.array([np.nan])
        return {"physics_rate_hz": (steps - n0) / dt, "real_time_factor": (sim_t - s0) / dt,
                "step_p50_us": float(np.percentile(step, 50)),
                "step_p99_us": float(np.percentile(step, 99))}

    def _publish_diagnostics(self) -> None:
        figures = self.physics_figures()
        with self._lock:
            contacts = self.sim.contacts()
            clamped = self.sim.clamped
        status = DiagnosticStatus(name="hand_sim: physics", hardware_id=self.profile.name)
        rejected = sum(v for k, v in self.counters.items() if k.startswith("rejected_"))
        if self.counters["overruns"] and figures["real_time_factor"] < 0.9 * self._rtf:
            status.level = DiagnosticStatus.WARN
            status.message = f"behind real time: factor {figures['real_time_factor']:.2f}"
        elif rejected:
            status.level, status.message = DiagnosticStatus.WARN, self._last_problem
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        values = {"sim_time_s": f"{self.sim.t_s:.3f}", **{k: f"{v:.4g}" for k, v in
                                                            figures.items()},
                  "clamped_positions": clamped, **dict(self.counters),
                  **{f"contact_n {f}": f"{v:.2f}" for f, v in
                     zip(contacts.fingers, contacts.normal_force)}}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._stamp()
        self.diag_pub.publish(msg)

    def destroy_node(self):
        self._stop.set()
        self._thread.join(timeout=2.0)
        return super().destroy_node()


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = HandSimNode()
    except ValueError as exc:
        print(f"hand_sim: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
