#!/usr/bin/env python3
"""Benchmark: hand_sim's physics rate, real-time factor, CPU and command -> state latency.

* ``core``: HandSim.step alone, in-process, per profile, free and grasping the scene object:
  how many times faster than real time the physics could run (1 kHz steps).
* ``node``: the installed ``hand_sim`` (prosthetic_6, 1 kHz, 100 Hz states) in its own
  process: the physics rate and real-time factor it reports on /diagnostics, its step time,
  and its CPU use (psutil, % of one core) while it follows commands.
* ``latency``: this process publishes a position step on
  ``forward_position_controller/commands`` and waits for the first ``robot_hand/joint_states``
  that moved toward it (command -> measured state: two DDS hops, the 2 ms physics wake-up,
  the 10 ms state period); and ``tracking lag``: a sine within the velocity limits commanded
  at 100 Hz, the delay of the measured positions behind it (hand_sim.sim.tracking_lag).

    scripts/with-env python bench/sim_bench.py            # full run
    scripts/with-env python bench/sim_bench.py --quick --json bench/out/sim.json

Timings on a shared 2-core machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np


def bench_core(seconds: float) -> list[dict]:
    from emg_hand_core.poses import NAMED_POSES
    from hand_controller.profile import load_profile, resolve_profile_path
    from hand_sim.model import SceneObject, build_model
    from hand_sim.sim import HandSim

    figures = []
    for name in ("prosthetic_6", "four_finger_16"):
        profile = load_profile(resolve_profile_path(name))
        for grasp in (False, True):
            obj = SceneObject.in_front_of_palm(profile) if grasp else None
            sim = HandSim(build_model(profile, scene_object=obj))
            sim.command_positions(profile.clamp(profile.retarget(NAMED_POSES["fist"])))
            sim.run_for(0.5)  # closed (on the object when there is one)
            start = time.perf_counter()
            sim.run_for(seconds)
            wall = time.perf_counter() - start
            figures.append({"what": f"sim core {name} {'grasping' if grasp else 'free'}: "
                            "physics faster than real time", "value": round(seconds / wall, 1),
                            "unit": "x", "target": ">= 1"})
    return figures


def bench_node(seconds: float, steps: int) -> list[dict]:
    from emg_hand_testing.domain import isolate_ros_domain

    isolate_ros_domain()  # before rclpy starts; the node process inherits it
    import psutil
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from emg_hand_core.topics import FORWARD_COMMANDS_TOPIC, ROBOT_JOINT_STATES_TOPIC
    from emg_hand_testing.processes import NodeProcess, ros_args
    from emg_hand_testing.ros import RosTestNode, wait_until
    from hand_controller.profile import load_profile, resolve_profile_path
    from hand_sim.sim import tracking_lag

    profile = load_profile(resolve_profile_path("prosthetic_6"))
    proc = NodeProcess("hand_sim", "hand_sim", ros_args({
        "profile": profile.name, "scene_object": "none", "diagnostics_period_s": 0.5}))
    node = RosTestNode("sim_bench")
    try:
        proc.wait_for_output(r"hand_sim: profile", timeout_s=60.0)
        pub = node.node.create_publisher(Float64MultiArray, FORWARD_COMMANDS_TOPIC, 10)
        states: list[tuple[float, float, np.ndarray]] = []  # (receipt, stamp, positions)
        moved = threading.Event()
        target = {"q": None}

        def on_state(msg: JointState) -> None:
            q = np.asarray(msg.position)
            states.append((time.perf_counter(), msg.header.stamp.sec
                           + msg.header.stamp.nanosec * 1e-9, q))
            if target["q"] is not None and abs(q[2] - target["q"][0]) > 1e-3:
                moved.set()

        node.node.create_subscription(JointState, ROBOT_JOINT_STATES_TOPIC, on_state, 100)
        diag: list[dict[str, str]] = []
        node.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.extend(
            {kv.key: kv.value for kv in s.values} for s in m.status
            if s.name == "hand_sim: physics"), 100)
        wait_until(lambda: pub.get_subscription_count() >= 1 and len(states) > 5, 20.0,
                   "hand_sim's subscription and states")

        # command -> first measured motion: steps of 0.3 rad on index_flexion
        latencies = []
        rest = profile.safe_posture.copy()
        for k in range(steps):
            q = rest.copy()
            q[2] = 0.3 if k % 2 == 0 else 0.0
            time.sleep(0.3)  # settled at the previous target
            target["q"] = (states[-1][2][2],)
            moved.clear()
            start = time.perf_counter()
            pub.publish(Float64MultiArray(data=q.tolist()))
            if moved.wait(1.0):
                latencies.append(time.perf_counter() - start)
            target["q"] = None

        # a sine within the velocity limits, at 100 Hz, while measuring CPU
        process = psutil.Process(proc.process.pid)
        process.cpu_percent(None)
        commanded = []
        amplitude, omega = 0.5, 2.0  # peak speed 1.0 rad/s < 2.5..3 rad/s
        t0 = time.perf_counter()
        first = len(states)
        while (t := time.perf_counter() - t0) < seconds:
            q = rest + amplitude * (1 - np.cos(omega * t)) * (profile.upper > 0.5)
            q = profile.clamp(q)
            pub.publish(Float64MultiArray(data=q.tolist()))
            commanded.append((node.node.get_clock().now().nanoseconds * 1e-9, q))
            time.sleep(0.01)
        cpu = process.cpu_percent(None)
        before = len(diag)
        wait_until(lambda: len(diag) > before, 5.0, "fresh diagnostics")
        d = diag[-1]
        measured = states[first:]
        lag, error = tracking_lag(np.array([c[0] for c in commanded]),
                                  np.array([c[1] for c in commanded]),
                                  np.array([m[1] for m in measured]),
                                  np.array([m[2] for m in measured]))
        lat = np.asarray(latencies) * 1e3
        return [
            {"what": "sim node: physics rate", "value": float(d["physics_rate_hz"]),
             "unit": "Hz", "target": ">= 500"},
            {"what": "sim node: real-time factor", "value": float(d["real_time_factor"]),
             "unit": "x", "target": "1"},
            {"what": "sim node: physics step p50 / p99",
             "value": f"{float(d['step_p50_us']):.0f} / {float(d['step_p99_us']):.0f}",
             "unit": "us", "target": ""},
            {"what": "sim node: CPU while following 100 Hz commands", "value": round(cpu, 1),
             "unit": "% of a core", "target": ""},
            {"what": "sim: command -> first measured motion p50 / p99",
             "value": f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 99):.1f}",
             "unit": "ms", "target": ""},
            {"what": "sim: tracking lag of a 1 rad/s sine (error at that lag)",
             "value": f"{lag * 1e3:.0f} ({error:.3f} rad)", "unit": "ms", "target": ""},
        ]
    finally:
        node.close()
        proc.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs (~20 s)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    figures = bench_core(2.0 if quick else 10.0)
    figures += bench_node(5.0 if quick else 20.0, 10 if quick else 40)
    results = {
        "benchmark": "sim", "description": "hand_sim: physics rate, real time, latency",
        "quick": quick,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_version()}, "
                   f"load {os.getloadavg()[0]:.2f}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "figures": figures,
    }
    print(f"hand_sim ({results['machine']})")
    for f in figures:
        print(f"  {f['what']:62s} {f['value']} {f['unit']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
