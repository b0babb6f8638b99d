#!/usr/bin/env python3
"""`make demo`: simulated armband -> live hand pose -> prosthetic hand, simulated, recorded.

Starts the whole graph over real DDS, each node in its own process: emg_driver (sim),
emg_pose (the default model), hand_visualizer, hand_controller (prosthetic_6 profile,
forward position commands, enabled through its ~/enable service so it visibly commands)
and hand_sim (robot:=sim: the prosthetic hand in MuJoCo, with a cylinder to grasp), plus
`emg_hand_bag record` of the run. With `ros2 launch`
available (a ROS 2 install) the graph is `ros2 launch emg_hand_bringup teleop.launch.py`;
otherwise the same installed executables with the same parameter files and overrides
(emg_hand_bringup.graph describes both).

Shows a live status line (EMG rate, pose rate, end-to-end latency from the EMG acquisition
stamp to JointState receipt here, the nearest named pose, controller state), runs for
DEMO_SECONDS (default 20) after the first pose or until Ctrl-C, stops every process
cleanly, then leaves in DEMO_OUTPUT (default demo_output/): bag/ (rosbag2), hand.png
(predicted vs reference hand and joint traces, hand_visualizer's renderer on the bag),
robot_hand.png and robot_hand.gif (the simulated hand's measured states, drawn offscreen
by hand_sim_render with MUJOCO_GL=egl; skipped with the reason where no GL works),
summary.txt (the measured figures) and logs/ (each process's output).

Run it inside the workspace environment: `make demo`, or `scripts/with-env python
scripts/demo.py`. The ROS domain is the environment's (ROS_DOMAIN_ID), so `ros2 topic
echo` in another terminal sees the demo.
"""

from __future__ import annotations

import collections
import datetime
import importlib.util
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 120.0  # model loading on a busy machine takes tens of seconds
STOP_TIMEOUT_S = 15.0
PROFILE = "prosthetic_6"
SIM_STATUS = "hand_sim: physics"


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def start_process(name: str, cmd: list[str], log_dir: Path):
    """A command in its own session (so Ctrl-C reaches only this script), its output in
    ``log_dir/<name>.log`` (emg_hand_testing's process wrapper)."""
    from emg_hand_testing.processes import Process

    return Process(cmd, name=name, log_path=log_dir / f"{name}.log")


def stop_process(process, timeout_s: float) -> int:
    """SIGINT (once), SIGKILL after ``timeout_s``; the log stays."""
    code = process.close(timeout_s)
    if process.killed:
        say(f"{process.name} did not stop within {timeout_s:g} s: killed it")
    return code


class Monitor:
    """A node of this script that watches the graph and keeps every figure it shows."""

    def __init__(self, controller_node: str) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState

        from emg_hand_core.poses import NAMED_POSES
        from emg_hand_core.topics import (
            CONTACTS_TOPIC,
            ROBOT_COMMANDED_JOINT_STATES_TOPIC,
            ROBOT_JOINT_STATES_TOPIC,
        )
        from emg_interfaces.msg import EMG, HandContacts

        self._pose_names = list(NAMED_POSES)
        self._poses = np.stack([NAMED_POSES[n] for n in self._pose_names])
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("emg_hand_demo", context=self.context)
        self._lock = threading.Lock()
        self.emg = collections.deque()  # (receipt s, samples)
        self.emg_chunks = 0
        self.emg_samples = 0
        self.emg_channels = 0
        self.poses = collections.deque()  # receipt s
        self.pose_count = 0
        self.latencies_ms: list[float] = []
        self.predicted: list[tuple[int, np.ndarray]] = []  # (stamp ns, q)
        self.reference: dict[int, np.ndarray] = {}  # stamp ns -> q
        self.names: collections.Counter = collections.Counter()
        self.current_pose = "-"
        self.commands = collections.deque()  # receipt s of the controller's commands
        self.commanded: list[tuple[float, list[float]]] = []  # (stamp s, positions)
        self.measured: list[tuple[float, list[float]]] = []  # hand_sim's (stamp s, positions)
        self.contact_max_n: dict[str, float] = {}
        self.contact_now = 0.0
        self.controller: dict[str, str] = {}
        self.sim: dict[str, str] = {}
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        n = self.node
        n.create_subscription(EMG, "emg/raw", self._on_emg, reliable)
        n.create_subscription(JointState, "hand/joint_states", self._on_pose, reliable)
        n.create_subscription(JointState, "hand/reference/joint_states", self._on_reference,
                              reliable)
        n.create_subscription(JointState, ROBOT_COMMANDED_JOINT_STATES_TOPIC, self._on_command,
                              reliable)
        n.create_subscription(JointState, ROBOT_JOINT_STATES_TOPIC, self._on_measured, reliable)
        n.create_subscription(HandContacts, CONTACTS_TOPIC, self._on_contacts, reliable)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self._controller_status = f"{controller_node}: safety"
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="monitor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # shutdown
            pass

    @staticmethod
    def _order(msg) -> np.ndarray | None:
        from emg_hand_core.names import NameOrderError, joint_angles_in_order

        try:
            return joint_angles_in_order(msg.name, msg.position)
        except NameOrderError:
            return None

    def _on_emg(self, msg) -> None:
        now = time.monotonic()
        with self._lock:
            self.emg.append((now, msg.num_samples))
            self.emg_chunks += 1
            self.emg_samples += msg.num_samples
            self.emg_channels = len(msg.channel_names)

    def _on_pose(self, msg) -> None:
        received_ns = time.time_ns()
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        q = self._order(msg)
        with self._lock:
            self.poses.append(time.monotonic())
            self.pose_count += 1
            self.latencies_ms.append((received_ns - stamp_ns) * 1e-6)
            if q is not None:
                self.predicted.append((stamp_ns, q))
                nearest = int(np.argmin(np.linalg.norm(self._poses - q, axis=1)))
                self.current_pose = self._pose_names[nearest]
                self.names[self.current_pose] += 1

    def _on_reference(self, msg) -> None:
        q = self._order(msg)
        if q is not None:
            with self._lock:
                self.reference[msg.header.stamp.sec * 1_000_000_000
                               + msg.header.stamp.nanosec] = q

    @staticmethod
    def _stamp_s(msg) -> float:
        return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    def _on_command(self, msg) -> None:
        with self._lock:
            self.commands.append(time.monotonic())
            self.commanded.append((self._stamp_s(msg), list(msg.position)))

    def _on_measured(self, msg) -> None:
        with self._lock:
            self.measured.append((self._stamp_s(msg), list(msg.position)))

    def _on_contacts(self, msg) -> None:
        with self._lock:
            for finger, force in zip(msg.fingers, msg.normal_force):
                self.contact_max_n[finger] = max(self.contact_max_n.get(finger, 0.0), force)
            self.contact_now = float(sum(msg.normal_force))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name in (self._controller_status, SIM_STATUS):
                values = {kv.key: kv.value for kv in status.values}
                values["message"] = status.message
                with self._lock:
                    if status.name == SIM_STATUS:
                        self.sim = values
                    else:
                        self.controller = values

    def tracking(self) -> tuple[float, float, int]:
        """Measured (hand_sim) vs commanded (controller): (lag [s], mean |error| [rad] at
        that lag, measured states)."""
        from hand_sim.sim import tracking_lag

        with self._lock:
            commanded, measured = list(self.commanded), list(self.measured)
        if len(commanded) < 20 or len(measured) < 20:
            return float("nan"), float("nan"), len(measured)
        lag, error = tracking_lag(np.array([t for t, _ in commanded]),
                                  np.array([q for _, q in commanded]),
                                  np.array([t for t, _ in measured]),
                                  np.array([q for _, q in measured]))
        return lag, error, len(measured)

    def rates(self) -> tuple[float, float, float]:
        """EMG samples/s, poses/s, controller commands/s over the last 2 s."""
        now = time.monotonic()
        with self._lock:
            for queue in (self.emg, self.poses, self.commands):
                while queue and now - (queue[0][0] if queue is self.emg else queue[0]) > 2.0:
                    queue.popleft()
            emg = sum(n for _, n in self.emg) / 2.0
            return emg, len(self.poses) / 2.0, len(self.commands) / 2.0

    def latency(self, last: int = 100) -> tuple[float, float]:
        with self._lock:
            values = self.latencies_ms[-last:]
        if not values:
            return float("nan"), float("nan")
        return float(np.percentile(values, 50)), float(np.percentile(values, 99))

    def enable_controller(self, service: str, timeout_s: float) -> str:
        from std_srvs.srv import SetBool

        client = self.node.create_client(SetBool, service)
        if not client.wait_for_service(timeout_sec=timeout_s):
            return f"no service {service}"
        future = client.call_async(SetBool.Request(data=True))
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout_s):
            return f"{service}: no response"
        response = future.result()
        return response.message if response.success else f"refused: {response.message}"

    def pose_error_rad(self) -> tuple[float, int]:
        """Mean absolute joint error of the predictions against the reference pose at the
        same stamp (linearly interpolated between reference messages no more than 50 ms
        apart): the simulator publishes its true pose at each chunk's last sample."""
        with self._lock:
            predicted = list(self.predicted)
            reference = sorted(self.reference.items())
        if len(reference) < 2 or not predicted:
            return float("nan"), 0
        t_ref = np.array([s for s, _ in reference], dtype=np.int64)
        q_ref = np.stack([q for _, q in reference])
        t = np.array([s for s, _ in predicted], dtype=np.int64)
        q = np.stack([q for _, q in predicted])
        i = np.searchsorted(t_ref, t)
        ok = (i > 0) & (i < len(t_ref))
        i = np.clip(i, 1, len(t_ref) - 1)
        gap = t_ref[i] - t_ref[i - 1]
        ok &= gap <= 50_000_000
        if not ok.any():
            return float("nan"), 0
        w = ((t - t_ref[i - 1]) / np.maximum(gap, 1))[:, None]
        q_true = q_ref[i - 1] * (1 - w) + q_ref[i] * w
        return float(np.mean(np.abs(q[ok] - q_true[ok]))), int(ok.sum())

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)


def launch_available() -> bool:
    return (shutil.which("ros2") is not None and importlib.util.find_spec("launch_ros")
            is not None and importlib.util.find_spec("ros2launch") is not None)


def start_graph(log_dir: Path) -> tuple[list, str]:
    from emg_hand_bringup import graph

    arguments = {"rviz": "false", "controller_profile": PROFILE,
                 "controller_output": "forward_position", "robot": "sim"}
    if launch_available():
        cmd = ["ros2", "launch", "emg_hand_bringup", "teleop.launch.py",
               *(f"{k}:={v}" for k, v in arguments.items())]
        say("starting: " + " ".join(cmd))
        return [start_process("ros2_launch", cmd, log_dir)], \
            "ros2 launch emg_hand_bringup teleop.launch.py"
    opts = graph.TeleopOptions.from_strings(arguments)
    teleop = graph.teleop_graph(opts)
    say("ros2 launch is not available here: starting teleop.launch.py's nodes as processes "
        "(same executables, parameter files and overrides)")
    for note in teleop.notes:
        say(note)
    processes = []
    for spec in teleop.nodes:
        cmd = spec.command(opts.namespace)
        processes.append(start_process(spec.name, cmd, log_dir))
        say(f"started {spec.package}/{spec.executable} as {spec.name}")
    return processes, "installed executables (teleop.launch.py's graph without launch_ros)"


def status_line(elapsed: float, monitor: Monitor) -> str:
    emg, pose, commands = monitor.rates()
    p50, p99 = monitor.latency()
    c = monitor.controller
    state = c.get("state", "?") if c else "starting"
    rtf = monitor.sim.get("real_time_factor", "?")
    return (f"[{elapsed:5.1f} s] EMG {emg:4.0f} Hz x {monitor.emg_channels} ch | pose "
            f"{pose:4.1f} Hz, latency {p50:4.1f} ms (p99 {p99:4.1f}) | {monitor.current_pose:11s}"
            f"| controller {state}, {commands:3.0f} cmd/s | sim x{rtf} real time, contact "
            f"{monitor.contact_now:4.1f} N")


def render_png(bag: Path, png: Path) -> str:
    from hand_visualizer.render import main as hand_render

    code = hand_render([str(bag), "-o", str(png), "--frames", "4",
                        "--title", "emg_hand demo: predicted (red) vs reference (grey)"])
    return "ok" if code == 0 and png.is_file() else f"hand_render failed ({code})"


def render_robot(bag: Path, png: Path, gif: Path) -> str:
    """robot_hand.png and .gif of the simulated hand; 'ok', 'skipped: <why>' or a failure."""
    import contextlib
    import io

    from hand_sim.render import main as hand_sim_render

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = hand_sim_render([str(bag), "-o", str(png), "--gif", str(gif), "--profile",
                                PROFILE])
    message = err.getvalue().strip().splitlines()[-1:] or [""]
    if code == 3:  # no GL here: physics ran, the picture is skipped
        return "skipped: " + message[0].removeprefix("hand_sim_render: ")
    return "ok" if code == 0 and png.is_file() else f"hand_sim_render failed ({code}): " \
        f"{message[0]}"


def bag_counts(bag: Path) -> dict[str, int]:
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return {t["topic_metadata"]["name"]: int(t["message_count"])
            for t in meta["topics_with_message_count"]}


def write_summary(path: Path, figures: dict[str, object]) -> None:
    lines = ["# emg_hand demo: measured figures (key: value)"]
    lines += [f"{key}: {value}" for key, value in figures.items()]
    path.write_text("\n".join(lines) + "\n")


def prepare_output(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("bag", "logs"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in ("hand.png", "robot_hand.png", "robot_hand.gif", "summary.txt"):
        (out / name).unlink(missing_ok=True)
    (out / "logs").mkdir()


def run(seconds: float, out: Path) -> int:
    from emg_hand_bringup import graph

    prepare_output(out)
    log_dir = out / "logs"
    bag = out / "bag"
    recorder = start_process("recorder", [graph.executable_path("emg_hand_bringup",
                                                            "emg_hand_bag"),
                                     "record", "-o", str(bag)], log_dir)
    processes, mode = start_graph(log_dir)
    monitor = Monitor("hand_controller")
    interactive = sys.stdout.isatty()
    figures: dict[str, object] = {}
    failure = None
    started = time.monotonic()
    try:
        say(f"waiting for the first pose (loading the model; up to {STARTUP_TIMEOUT_S:g} s)")
        while monitor.pose_count == 0:
            dead = [p for p in [*processes, recorder] if not p.running()]
            if dead:
                failure = f"{dead[0].name} exited ({dead[0].process.returncode}):\n" \
                          f"{dead[0].tail()}"
                break
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                failure = f"no pose after {STARTUP_TIMEOUT_S:g} s; see {log_dir}"
                break
            time.sleep(0.1)
        if failure is None:
            startup_s = time.monotonic() - started
            say(f"first pose after {startup_s:.1f} s; enabling the controller: "
                + monitor.enable_controller("hand_controller/enable", 30.0))
            figures["startup_s"] = f"{startup_s:.1f}"
            t0 = time.monotonic()
            last_print = 0.0
            while (elapsed := time.monotonic() - t0) < seconds:
                if interactive:
                    print("\r" + status_line(elapsed, monitor), end="", flush=True)
                elif elapsed - last_print >= 2.0:
                    last_print = elapsed
                    print(status_line(elapsed, monitor), flush=True)
                time.sleep(0.25)
            if interactive:
                print()
            figures["final_status"] = status_line(time.monotonic() - t0, monitor)
    except KeyboardInterrupt:
        if interactive:
            print()
        say("Ctrl-C: stopping")
    run_s = time.monotonic() - started
    emg, pose_rate, command_rate = monitor.rates()
    p50, p99 = monitor.latency(last=10**9)
    error, pairs = monitor.pose_error_rad()
    lag_s, tracking_error, measured = monitor.tracking()
    say("stopping the graph, then the recorder")
    for p in processes:
        p.interrupt()
    codes = {p.name: stop_process(p, STOP_TIMEOUT_S) for p in processes}
    recorder.interrupt()
    codes["recorder"] = stop_process(recorder, STOP_TIMEOUT_S)
    controller, sim = dict(monitor.controller), dict(monitor.sim)
    contact_max = dict(monitor.contact_max_n)
    monitor.close()
    if failure is not None:
        say(f"failed: {failure}")
        return 1

    png = out / "hand.png"
    counts = bag_counts(bag)
    figures = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "graph": mode,
        "demo_seconds": f"{seconds:g}",
        "run_s": f"{run_s:.1f}",
        **figures,
        "emg_rate_hz": f"{emg:.1f}",
        "emg_channels": monitor.emg_channels,
        "emg_chunks": monitor.emg_chunks,
        "pose_rate_hz": f"{pose_rate:.1f}",
        "poses": monitor.pose_count,
        "latency_p50_ms": f"{p50:.2f}",
        "latency_p99_ms": f"{p99:.2f}",
        "pose_error_mean_rad": f"{error:.3f}",
        "pose_error_pairs": pairs,
        "pose_names": ", ".join(f"{name} {count}" for name, count
                                in monitor.names.most_common()),
        "controller_profile": PROFILE,
        "controller_state": controller.get("state", "unknown"),
        "controller_enabled": controller.get("enabled", "unknown"),
        "controller_commands": controller.get("commands", "0"),
        "controller_command_rate_hz": f"{command_rate:.1f}",
        "controller_latency_p50_us": controller.get("latency_p50_us", "nan"),
        "sim_physics_rate_hz": sim.get("physics_rate_hz", "nan"),
        "sim_real_time_factor": sim.get("real_time_factor", "nan"),
        "sim_step_p50_us": sim.get("step_p50_us", "nan"),
        "sim_overruns": sim.get("overruns", "nan"),
        "sim_measured_states": measured,
        "sim_tracking_lag_ms": f"{lag_s * 1000:.0f}",
        "sim_tracking_error_rad": f"{tracking_error:.3f}",
        "sim_contact_max_n": " ".join(f"{f} {v:.1f}" for f, v in contact_max.items()),
        "bag": str(bag),
        "bag_messages": sum(counts.values()),
        **{f"bag_count {topic}": n for topic, n in sorted(counts.items())},
        "png": str(png),
        "robot_png": str(out / "robot_hand.png"),
        "exit_codes": " ".join(f"{k}={v}" for k, v in codes.items()),
    }
    figures["png_status"] = render_png(bag, png)
    figures["robot_png_status"] = render_robot(bag, out / "robot_hand.png",
                                               out / "robot_hand.gif")
    write_summary(out / "summary.txt", figures)
    say(f"EMG {emg:.0f} Hz, poses {pose_rate:.1f} Hz, latency p50 {p50:.1f} ms p99 "
        f"{p99:.1f} ms, pose error {error:.3f} rad; simulated hand x"
        f"{figures['sim_real_time_factor']} real time, tracking lag {lag_s * 1000:.0f} ms")
    say(f"wrote {bag}/ ({sum(counts.values())} messages), {png}, {out / 'summary.txt'}")
    robot = figures["robot_png_status"]
    say(f"robot hand picture: {out / 'robot_hand.png'}, {out / 'robot_hand.gif'}"
        if robot == "ok" else f"robot hand picture {robot}")
    return 0 if figures["png_status"] == "ok" and not robot.startswith("hand_sim_render") \
        else 1


def main() -> int:
    try:
        seconds = float(os.environ.get("DEMO_SECONDS", "20"))
    except ValueError:
        say(f"DEMO_SECONDS must be a number of seconds, got {os.environ['DEMO_SECONDS']!r}")
        return 2
    out = Path(os.environ.get("DEMO_OUTPUT", ROOT / "demo_output"))
    try:
        return run(seconds, out)
    except FileNotFoundError as err:
        say(f"{err} (run it through `make demo`, which builds the workspace first)")
        return 2


if __name__ == "__main__":
    sys.exit(main())
