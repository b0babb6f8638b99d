#!/usr/bin/env python3
"""Benchmark of the emg_driver serial path through a pseudo-terminal.

For each case the installed ``emg_driver`` opens the slave side of a pty (pyserial, as with
a real armband); this script writes samples into the master side at the armband's real rate
and subscribes to ``emg/raw`` over DDS. It reports:

* lost samples: written but never published (target 0), after 1 s of warm-up at the same
  rate (DDS matching; the warm-up is not counted);
* driver CPU: user + system time of the driver process over the run, in % of one core
  (target < 15 % at 16 ch x 2 kHz);
* latency: from the moment the sample that completes a chunk was written into the pty to
  the moment this process received the chunk (p50 / p99 / max; target p99 < 5 ms). This
  includes DDS delivery to another process, so it is an upper bound on write -> publish.

Cases: ``text8``: 8 channels at 500 Hz, one text line per sample with a counter column,
written every 2 ms; ``binary16``: 16 channels at 2 kHz, binary frames (int16), 4 frames
written every 2 ms. Device paths, on our OpenBCI Cyton emulator (8 channels at 250 Hz, a
33-byte packet every 4 ms, written by the emulator's thread in this process): ``cyton``
(our native source, ``source:=cyton``) and ``cyton_brainflow`` (``source:=brainflow`` with
BrainFlow's own Cyton driver) on the same emulated stream, side by side; latency from the
emulator's write of the packet that completes a chunk.

    scripts/with-env python bench/driver_bench.py                 # 60 s per case
    scripts/with-env python bench/driver_bench.py --quick         # 5 s per case
    scripts/with-env python bench/driver_bench.py --seconds 20 --case binary16 --json out.json

Timings depend on the machine and its load: run on a quiet machine for reportable figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import sys
import threading
import time
import tty
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Case:
    name: str
    protocol: str
    channels: int
    rate_hz: float
    samples_per_write: int
    params: dict = field(default_factory=dict)


CASES = {
    "text8": Case("text_8ch_500hz", "text", 8, 500.0, 1,
                  {"text_counter_column": 8, "text_num_columns": 9, "scale_v_per_unit": 1e-6}),
    "binary16": Case("binary_16ch_2khz", "binary", 16, 2000.0, 4,
                     {"scale_v_per_unit": 5e-7, "baud_rate": 2000000}),
}


def make_payload(case: Case, n: int) -> tuple[list[bytes], int]:
    """Pre-encoded writes (so encoding costs nothing during the run) and samples per write."""
    from emg_driver.protocols import encode_frame

    rng = np.random.default_rng(0)
    raw = rng.integers(-2000, 2000, (n, case.channels))
    if case.protocol == "text":
        lines = [(",".join(str(int(v)) for v in raw[k]) + f",{k}\n").encode() for k in range(n)]
        per = case.samples_per_write
        return [b"".join(lines[k:k + per]) for k in range(0, n, per)], per
    frames = [encode_frame(raw[k:k + 1], k, "int16", 1.0) for k in range(n)]
    per = case.samples_per_write
    return [b"".join(frames[k:k + per]) for k in range(0, n, per)], per


def run_case(case: Case, seconds: float) -> dict:
    import psutil
    import rclpy

    from emg_hand_testing.processes import NodeProcess, ros_args
    from emg_hand_testing.ros import wait_until

    master, slave = pty.openpty()
    tty.setraw(slave)
    port = os.ttyname(slave)
    params = {"source": "serial", "port": port, "protocol": case.protocol,
              "sample_rate_hz": case.rate_hz, "num_channels": case.channels, **case.params}
    n = int(seconds * case.rate_hz)
    # 1 s of warm-up at the same rate first (DDS matching, the driver's clock settling);
    # figures count only the measured samples after it
    n_warm = int(case.rate_hz) // case.samples_per_write * case.samples_per_write
    writes, per = make_payload(case, n_warm + n)
    write_times = np.zeros(len(writes))
    w_warm = n_warm // per

    node, executor, received = _receiver()
    proc = NodeProcess("emg_driver", "emg_driver", ros_args(params),
                       log_path=f"/tmp/driver_bench_{case.name}.log")
    try:
        wait_until(lambda: node.count_publishers("/emg/raw") >= 1 and _matched(node)
                   or not proc.running(), 30.0, "the driver's emg/raw matched")
        if not proc.running():
            raise RuntimeError(f"driver exited; see {proc.log_path}")
        ps = psutil.Process(proc.process.pid)
        period = per / case.rate_hz
        t0 = time.monotonic() + 0.05
        for k, payload in enumerate(writes):
            if k == w_warm:
                cpu0, wall0 = ps.cpu_times(), time.monotonic()
            target = t0 + k * period
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            os.write(master, payload)
            write_times[k] = time.time()
        wall1 = time.monotonic()
        cpu1 = ps.cpu_times()
        # wait for the tail (a partial chunk is flushed after 0.1 s of silence)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            if received and received[-1][1] + received[-1][2] >= n_warm + n:
                break
            time.sleep(0.02)
    finally:
        proc.close(timeout_s=10.0)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        os.close(master)
        os.close(slave)

    recv = np.array(received, dtype=np.float64).reshape(-1, 3)
    idx = set()
    latencies = []
    measured = range(n_warm, n_warm + n)
    for t_recv, first, num in recv:
        first, num = int(first), int(num)
        idx.update(range(first, first + num))
        last = first + num - 1
        if n_warm <= last < n_warm + n:
            latencies.append(t_recv - write_times[last // per])
    lat_ms = np.array(latencies) * 1e3
    received_measured = len(idx & set(measured))
    missing = sorted(set(measured) - idx)
    gaps = []  # first few runs of missing samples, (first, count)
    for k in missing:
        if gaps and gaps[-1][0] + gaps[-1][1] == k:
            gaps[-1][1] += 1
        elif len(gaps) < 10:
            gaps.append([k, 1])
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    wall = wall1 - wall0
    achieved = n / (write_times[-1] - write_times[w_warm] + period)
    return {
        "case": case.name, "channels": case.channels, "sample_rate_hz": case.rate_hz,
        "protocol": case.protocol, "seconds": seconds, "samples_written": n,
        "write_rate_achieved_hz": round(achieved, 1),
        "warm_up_samples": n_warm,
        "samples_received": received_measured,
        "lost_samples": n - received_measured,
        "chunks_received": len(recv),
        "missing_runs_first_count": gaps,
        "driver_cpu_percent_of_one_core": round(100.0 * cpu_s / wall, 2),
        "latency_ms_p50": round(float(np.percentile(lat_ms, 50)), 3) if len(lat_ms) else None,
        "latency_ms_p99": round(float(np.percentile(lat_ms, 99)), 3) if len(lat_ms) else None,
        "latency_ms_max": round(float(lat_ms.max()), 3) if len(lat_ms) else None,
    }


DEVICE_CASES = {
    "cyton": ("cyton_native_8ch_250hz", {"source": "cyton", "chunk_ms": 20.0}),
    "cyton_brainflow": ("cyton_brainflow_8ch_250hz",
                        {"source": "brainflow", "brainflow_board": "cyton", "chunk_ms": 20.0}),
}


def run_device_case(key: str, seconds: float) -> dict:
    """Our Cyton emulator on a pty; the driver reads it with the case's source."""
    import tempfile

    import psutil
    import rclpy

    from emg_driver.emulators.cyton import CytonEmulator
    from emg_driver.emulators.pty import PtyPort
    from emg_hand_testing.processes import NodeProcess, ros_args
    from emg_hand_testing.ros import wait_until

    name, params = DEVICE_CASES[key]
    rate = 250.0
    signal = np.random.default_rng(0).normal(0, 50e-6, (int(rate * 20), 8))
    folder = tempfile.mkdtemp(prefix="driver_bench_")
    emulator = CytonEmulator(PtyPort(folder), signal)
    emulator.record = False
    emulator.sent_at = []
    # the emulator (the "armband") and the receiving executor share this process: hand the
    # GIL over often, or each waits up to 5 ms for the other
    sys.setswitchinterval(1e-4)
    emulator.start()
    port_key = "brainflow_serial_port" if params["source"] == "brainflow" else "port"
    node, executor, received = _receiver()
    proc = NodeProcess("emg_driver", "emg_driver", ros_args({**params, port_key: emulator.port}),
                       log_path=f"/tmp/driver_bench_{name}.log")
    try:
        wait_until(lambda: (_matched(node) and emulator.streaming) or not proc.running(), 60.0,
                   "the driver streaming from the emulator")
        if not proc.running():
            raise RuntimeError(f"driver exited; see {proc.log_path}")
        time.sleep(1.0)  # warm-up: DDS matching, the clock settling (not measured)
        ps = psutil.Process(proc.process.pid)
        cpu0, wall0, n0 = ps.cpu_times(), time.monotonic(), emulator.packets_sent
        time.sleep(seconds)
        cpu1, wall1, n1 = ps.cpu_times(), time.monotonic(), emulator.packets_sent
        wait_until(lambda: bool(received) and received[-1][1] + received[-1][2] >= n1, 5.0,
                   "the last chunk")
    finally:
        proc.close(timeout_s=10.0)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        emulator.close()
    # stream index k = packet k since 'b' (both sources start at the first packet)
    counts = np.array([c for c, _ in emulator.sent_at])
    times = np.array([w for _, w in emulator.sent_at])
    idx: set[int] = set()
    latencies = []
    for t_recv, first, num in received:
        idx.update(range(first, first + num))
        last = first + num - 1
        if n0 <= last < n1:
            written = times[np.searchsorted(counts, last + 1)]  # the write that carried it
            latencies.append(t_recv - written)
    lat_ms = np.array(latencies) * 1e3
    n = n1 - n0
    got = len(idx & set(range(n0, n1)))
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "case": name, "channels": 8, "sample_rate_hz": rate, "protocol": params["source"],
        "seconds": seconds, "samples_written": n, "samples_received": got,
        "lost_samples": n - got, "chunks_received": len(received),
        "driver_cpu_percent_of_one_core": round(100.0 * cpu_s / (wall1 - wall0), 2),
        "latency_ms_p50": round(float(np.percentile(lat_ms, 50)), 3) if len(lat_ms) else None,
        "latency_ms_p99": round(float(np.percentile(lat_ms, 99)), 3) if len(lat_ms) else None,
        "latency_ms_max": round(float(lat_ms.max()), 3) if len(lat_ms) else None,
        "write_rate_achieved_hz": round(n / (wall1 - wall0), 1),
    }


def _receiver():
    """A node spinning on its own thread that records (receive time, first index, samples)
    of every emg/raw chunk."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from emg_interfaces.msg import EMG

    rclpy.init()
    node = rclpy.create_node("driver_bench")
    received: list[tuple[float, int, int]] = []
    node.create_subscription(
        EMG, "emg/raw", lambda m: received.append((time.time(), m.first_sample_index,
                                                   m.num_samples)),
        QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    return node, executor, received


def _matched(node) -> bool:
    subs = node.subscriptions
    return any(s.topic_name == "/emg/raw" and s.get_publisher_count() > 0 for s in subs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per case (60)")
    parser.add_argument("--quick", action="store_true", help="5 s per case")
    parser.add_argument("--case", choices=[*CASES, *DEVICE_CASES, "all"], default="all")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else args.seconds
    from emg_hand_testing.domain import isolate_ros_domain

    domain = isolate_ros_domain()
    cases = [*CASES, *DEVICE_CASES] if args.case == "all" else [args.case]
    results = []
    for key in cases:
        res = run_case(CASES[key], seconds) if key in CASES else run_device_case(key, seconds)
        results.append(res)
        print(f"{res['case']:>18}: lost {res['lost_samples']} of {res['samples_written']}, "
              f"driver CPU {res['driver_cpu_percent_of_one_core']:.1f} % of one core, "
              f"latency p50 {res['latency_ms_p50']} ms p99 {res['latency_ms_p99']} ms "
              f"max {res['latency_ms_max']} ms (written at {res['write_rate_achieved_hz']} Hz)",
              flush=True)
    report = {
        "benchmark": "emg_driver serial path through a pty",
        "targets": {"lost_samples": 0, "driver_cpu_percent_of_one_core_16ch_2khz": 15.0,
                    "latency_ms_p99": 5.0},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_avg_1min": round(os.getloadavg()[0], 2)},
        "ros_domain_id": domain,
        "results": results,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CASES", "DEVICE_CASES", "Case", "asdict", "main", "run_case", "run_device_case"]
