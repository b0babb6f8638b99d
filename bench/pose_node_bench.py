#!/usr/bin/env python3
"""Benchmark: the emg_pose node live, with the simulated armband, in separate processes.

    scripts/with-env python bench/pose_node_bench.py            # 30 s live + 120 s calibration
    scripts/with-env python bench/pose_node_bench.py --quick --json bench/out/pose_node.json

Three processes over DDS, as installed executables: emg_driver (sim, 8 ch x 500 Hz),
emg_pose (default model, update_rate_hz 100), and this one, which receives
hand/joint_states. Figures:

* start-up: the pose node's process start -> the first hand/joint_states received here [s]
  (the driver already running; ``--startup-only N``: only this, N times, median);
* end-to-end latency: the JointState's stamp (acquisition time of the newest EMG sample the
  pose used) to its receipt here [ms], p50/p99; target p99 < 15 ms;
* inference time per update [ms], p50/p99, from the node's /diagnostics;
* the pose node's CPU [% of one core] while publishing;
* during a reference calibration (recording + fine-tune): the longest gap between poses
  received here [ms] (target < 3 periods = 30 ms at 100 Hz) and the fine-tune wall time [s].

Timings on a shared 2-core machine are indicative; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from emg_hand_testing.domain import isolate_ros_domain
from emg_hand_testing.processes import NodeProcess, ros_args
from emg_hand_testing.ros import RosTestNode, wait_future
from emg_interfaces.action import Calibrate

NS = 1_000_000_000
RATE_HZ = 100.0


def _percentiles(values, scale: float = 1.0) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64) * scale
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "n": int(a.size)}


def _diag_value(node: RosTestNode, key: str) -> str:
    collector = node.collect(DiagnosticArray, "/diagnostics")
    msgs = collector.wait_until(lambda ms: any(
        s.hardware_id == "emg_pose" for m in ms for s in m.status), 10, "pose diagnostics")
    for m in reversed(msgs):
        for s in m.status:
            if s.hardware_id == "emg_pose":
                return {kv.key: kv.value for kv in s.values}[key]
    raise RuntimeError("no emg_pose diagnostics")


def _start_pose(node: RosTestNode, models: str):
    """Start emg_pose; return (process, pose collector, seconds to the first pose)."""
    qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    poses = node.collect(JointState, "hand/joint_states", qos)
    t0 = time.monotonic()
    pose = NodeProcess("emg_pose_node", "emg_pose", ros_args(params={
        "update_rate_hz": RATE_HZ, "models_dir": models}))
    poses.wait_for(1, timeout_s=120)
    return pose, poses, poses.receive_times[0] - t0


def _start_driver(node: RosTestNode) -> NodeProcess:
    driver = NodeProcess("emg_driver", "emg_driver", ros_args(params={
        "source": "sim", "autostart": True, "seed": 21}))
    node.collect(JointState, "hand/reference/joint_states").wait_for(1, timeout_s=60)
    return driver


def startup_only(runs: int) -> list[float]:
    """Start and stop the pose node ``runs`` times next to a running driver."""
    isolate_ros_domain()
    models = tempfile.mkdtemp(prefix="pose_bench_models_")
    node = RosTestNode("pose_bench")
    driver = _start_driver(node)
    times = []
    try:
        for _ in range(runs):
            pose, poses, seconds = _start_pose(node, models)
            times.append(seconds)
            node.node.destroy_subscription(poses.subscription)
            pose.close()
    finally:
        node.close()
        driver.close()
    return times


def run(live_s: float, calibration_s: float) -> dict:
    isolate_ros_domain()
    models = tempfile.mkdtemp(prefix="pose_bench_models_")
    node = RosTestNode("pose_bench")
    driver = pose = None
    try:
        driver = _start_driver(node)
        pose, poses, startup_s = _start_pose(node, models)
        poses.wait_for(50, timeout_s=60)
        time.sleep(2.0)  # let start-up transients pass before measuring
        proc = psutil.Process(pose.process.pid)
        proc.cpu_percent()
        poses.clear()
        latencies = []
        time.sleep(live_s)  # measuring window
        msgs, received = poses.messages, poses.receive_times
        cpu = proc.cpu_percent()
        # receive_times are monotonic; latency needs the same clock as the stamps
        wall_minus_mono = time.time() - time.monotonic()
        for m, t in zip(msgs, received):
            latencies.append(t + wall_minus_mono - (m.header.stamp.sec + m.header.stamp.nanosec
                                                    / NS))
        rate = (len(received) - 1) / (received[-1] - received[0])
        inference = _diag_value(node, "inference_ms")

        client = node.action_client(Calibrate, "/emg_pose/calibrate", timeout_s=20)
        phases: list[tuple[float, int]] = []
        poses.clear()
        handle = wait_future(client.send_goal_async(
            Calibrate.Goal(mode=Calibrate.Goal.MODE_REFERENCE, duration_s=calibration_s),
            feedback_callback=lambda f: phases.append((time.monotonic(), f.feedback.phase))),
            10, "goal response")
        result = wait_future(handle.get_result_async(), calibration_s + 300, "result").result
        t_end = time.monotonic()
        received = np.asarray(poses.receive_times)
        gaps = np.diff(received)
        # The same gaps in the poses' stamps (EMG acquisition time): a gap there was made in
        # the pose node; a gap only in receive times was made on the way (or here).
        stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec / NS
                           for m in poses.messages])
        worst = int(np.argmax(gaps)) if len(gaps) else 0
        phase_at_worst = max((ph for t, ph in phases if t <= received[worst]), default=-1) \
            if len(gaps) else -1
        training = [t for t, ph in phases if ph == Calibrate.Feedback.PHASE_TRAINING]
        finetune_s = t_end - training[0] if training else float("nan")
        # the same split by phase: recording (the baseline: what the machine does anyway)
        # and training + swap (what the fine-tune adds)
        t_train = training[0] if training else t_end
        by_phase = {}
        for name, sel in (("recording", received[1:] < t_train),
                          ("training", received[1:] >= t_train)):
            by_phase[name] = float(gaps[sel].max() * 1e3) if sel.any() else float("nan")
        return {
            "startup_s": startup_s,
            "latency_ms": _percentiles(latencies, 1e3),
            "output_rate_hz": rate,
            "inference_ms": inference,
            "pose_node_cpu_percent": cpu,
            "calibration": {
                "duration_s": calibration_s, "success": result.success,
                "message": result.message, "swapped": result.model_swapped,
                "longest_gap_ms": float(gaps.max() * 1e3) if len(gaps) else float("nan"),
                "longest_gap_by_phase_ms": by_phase,
                "longest_stamp_gap_ms": float(np.diff(stamps).max() * 1e3)
                if len(stamps) > 1 else float("nan"),
                "gaps_over_3_periods": int(np.sum(gaps > 3.0 / RATE_HZ)),
                "longest_gap_phase": int(phase_at_worst),
                "longest_gap_after_goal_s": float(received[worst] - phases[0][0])
                if len(gaps) and phases else float("nan"),
                "period_ms": 1e3 / RATE_HZ, "finetune_wall_s": finetune_s,
                "error_before_deg": float(np.degrees(result.error_before_rad)),
                "error_after_deg": float(np.degrees(result.error_after_rad)),
            },
        }
    finally:
        node.close()
        for proc in (pose, driver):
            if proc is not None:
                proc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s live, 30 s calibration")
    parser.add_argument("--live-s", type=float, default=None)
    parser.add_argument("--calibration-s", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--startup-only", type=int, default=0, metavar="N",
                        help="only start the pose node N times and print the start-up times")
    args = parser.parse_args()
    if args.startup_only:
        times = startup_only(args.startup_only)
        print("pose node: process start -> first pose [s]: "
              + ", ".join(f"{t:.2f}" for t in times) + f"; median {np.median(times):.2f}")
        return 0
    live_s = args.live_s or (10.0 if args.quick else 30.0)
    calibration_s = args.calibration_s or (30.0 if args.quick else 120.0)
    r = run(live_s, calibration_s)
    c = r["calibration"]
    lat = r["latency_ms"]
    figures = [
        {"what": "pose node: process start -> first pose received (driver running)",
         "value": r["startup_s"], "unit": "s", "target": "< 2"},
        {"what": "pose node: EMG acquisition -> JointState receipt (3rd process), p50",
         "value": lat["p50"], "unit": "ms"},
        {"what": "pose node: EMG acquisition -> JointState receipt (3rd process), p99",
         "value": lat["p99"], "unit": "ms", "target": "< 15"},
        {"what": "pose node: output rate at update_rate_hz 100", "value": r["output_rate_hz"],
         "unit": "Hz"},
        {"what": "pose node: inference per update (diagnostics)", "value": r["inference_ms"],
         "unit": "ms"},
        {"what": "pose node: CPU while publishing", "value": r["pose_node_cpu_percent"],
         "unit": "% of a core"},
        {"what": f"pose node: longest pose gap during a {c['duration_s']:.0f} s calibration "
                 "+ fine-tune", "value": c["longest_gap_ms"], "unit": "ms",
         "target": f"< {3 * c['period_ms']:.0f} (3 periods)"},
        {"what": "pose node: fine-tune wall time (training + swap)",
         "value": c["finetune_wall_s"], "unit": "s"},
    ]
    for f in figures:
        value = f["value"] if isinstance(f["value"], str) else f"{f['value']:.2f}"
        print(f"{f['what']:<78} {value:>14} {f['unit']}" + (f"  (target {f['target']})"
                                                             if "target" in f else ""))
    phase = c["longest_gap_by_phase_ms"]
    print(f"calibration: {c['message']}; longest gap {c['longest_gap_ms']:.0f} ms (in the "
          f"stamps {c['longest_stamp_gap_ms']:.0f} ms) {c['longest_gap_after_goal_s']:.1f} s "
          f"after the goal, phase {c['longest_gap_phase']}; {c['gaps_over_3_periods']} gaps "
          f"over 3 periods; longest gap while recording {phase['recording']:.0f} ms, while "
          f"training + swap {phase['training']:.0f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "name": "pose_node", "machine": platform.platform(), "figures": figures,
            "details": r}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
