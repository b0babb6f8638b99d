"""Benchmark emg_hand_bag: bag write/read throughput, recorder capacity, player timing.

    scripts/with-env python bench/bag_bench.py [--json OUT.json]      (BENCH_QUICK=1: shorter)

Figures printed (one line each, `name: value unit`):
* write/read: BagWriter / BagSource throughput on EMG chunks (8 channels x 10 samples,
  the 10 ms chunks of emg/raw), MCAP and sqlite3, no ROS involved;
* record: the installed `emg_hand_bag record` receiving EMG chunks published from this
  process at 1 kHz (10x the driver's chunk rate), share of chunks recorded;
* play: the installed `emg_hand_bag play` publishing a 100 Hz EMG bag at rate 1 and 4 into
  a subscriber in this process. For each arrival, offset = arrival time - (log_i - log_0) /
  rate; jitter = |offset - median offset| (p50 / p99 / max), drift = median offset of the
  last tenth minus that of the first tenth (a schedule built on sleeps would grow it), and
  the median interval between arrivals. Subscriber-side delivery latency is included; the
  player's own figure (publish time minus due time, printed when it ends) is reported as
  play_rate*_publish_late_*.

Timings depend on the machine's load; run on a quiet machine for figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

QUICK = os.environ.get("BENCH_QUICK") == "1"


def emg_cdr_messages(count: int) -> list[bytes]:
    from emg_hand_core.bag_types import typestore

    store = typestore()
    EMG = store.types["emg_interfaces/msg/EMG"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    rng = np.random.default_rng(0)
    names = [f"ch_{i}" for i in range(1, 9)]
    out = []
    for i in range(count):
        msg = EMG(header=Header(stamp=Time(sec=i // 100, nanosec=(i % 100) * 10_000_000),
                                frame_id="emg_armband"),
                  sample_rate_hz=1000.0, channel_names=names, first_sample_index=10 * i,
                  num_samples=10,
                  data=(rng.standard_normal(80) * 50e-6).astype(np.float32))
        out.append(bytes(store.serialize_cdr(msg, "emg_interfaces/msg/EMG")))
    return out


def write_bag(path: Path, messages: list[bytes], period_ns: int, storage: str = "mcap") -> None:
    from emg_hand_bringup.bag_core import make_qos
    from emg_hand_bringup.bag_io import BagWriter

    inf = 2**63 - 1
    qos = make_qos(history=3, depth=0, reliability=1, durability=2, deadline_ns=inf,
                   lifespan_ns=inf, liveliness=1, liveliness_lease_duration_ns=inf)
    t0 = time.time_ns()
    with BagWriter(path, storage) as writer:
        topic = writer.add_topic("/emg/raw", "emg_interfaces/msg/EMG", [qos])
        for i, raw in enumerate(messages):
            writer.write(topic, t0 + i * period_ns, raw)


def bench_io(figures: dict, tmp: Path) -> None:
    from emg_hand_bringup.bag_io import BagSource

    count = 5_000 if QUICK else 50_000
    messages = emg_cdr_messages(count)
    size_mb = sum(len(m) for m in messages) / 1e6
    for storage in ("mcap", "sqlite3"):
        path = tmp / f"io_{storage}"
        start = time.perf_counter()
        write_bag(path, messages, 10_000_000, storage)
        elapsed = time.perf_counter() - start
        figures[f"write_{storage}_msgs_per_s"] = count / elapsed
        figures[f"write_{storage}_mb_per_s"] = size_mb / elapsed
        start = time.perf_counter()
        with BagSource(path) as source:
            n = sum(1 for _ in source.messages())
        elapsed = time.perf_counter() - start
        assert n == count
        figures[f"read_{storage}_msgs_per_s"] = count / elapsed


def bench_record(figures: dict, tmp: Path) -> None:
    from rclpy.duration import Duration
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message

    from emg_hand_bringup.bag_io import BagSource
    from emg_hand_testing.processes import NodeProcess
    from emg_hand_testing.ros import RosTestNode, wait_until
    from emg_interfaces.msg import EMG

    rate_hz = 1000.0
    count = 2_000 if QUICK else 10_000
    msgs = [deserialize_message(raw, EMG) for raw in emg_cdr_messages(count)]
    bag = tmp / "record"
    with RosTestNode("bench_publisher") as ros:
        pub = ros.node.create_publisher(
            EMG, "emg/raw", QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE))
        with NodeProcess("emg_hand_bringup", "emg_hand_bag",
                         ["record", "-o", str(bag), "emg/raw"]) as recorder:
            wait_until(lambda: pub.get_subscription_count() >= 1, 30.0, "the recorder")
            t0 = time.monotonic()
            for i, msg in enumerate(msgs):
                delay = t0 + i / rate_hz - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pub.publish(msg)
            elapsed = time.monotonic() - t0
            pub.wait_for_all_acked(Duration(seconds=30))
            recorder.stop(timeout_s=60.0)
    with BagSource(bag) as source:
        recorded = source.topics["/emg/raw"].count
    figures["record_publish_rate_hz"] = count / elapsed
    figures["record_recorded_fraction"] = recorded / count


def bench_play(figures: dict, tmp: Path) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from emg_hand_testing.processes import NodeProcess
    from emg_hand_testing.ros import RosTestNode
    from emg_interfaces.msg import EMG

    seconds = 3 if QUICK else 10
    count = int(seconds * 100)
    period_ns = 10_000_000
    bag = tmp / "play"
    write_bag(bag, emg_cdr_messages(count), period_ns)
    for rate in (1.0, 4.0):
        with RosTestNode("bench_subscriber") as ros:
            collector = ros.collect(EMG, "emg/raw",
                                    QoSProfile(depth=10_000,
                                               reliability=ReliabilityPolicy.RELIABLE))
            with NodeProcess("emg_hand_bringup", "emg_hand_bag",
                             ["play", str(bag), "--rate", str(rate),
                              "--wait-for-subscribers", "30"]) as player:
                collector.wait_for(count, timeout_s=seconds / rate + 60)
                player.wait(30.0)
                done = player.wait_for_output(
                    r"late p50 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms", 10.0)
            arrivals = np.asarray(collector.receive_times[:count])
        ideal = np.arange(count) * period_ns / 1e9 / rate
        offsets = arrivals - ideal  # arrival minus schedule, up to a constant
        base = float(np.median(offsets))
        jitter = np.abs(offsets - base)
        tenth = max(count // 10, 1)
        key = f"play_rate{rate:g}"
        # the player's own account: publish time minus due time
        for label, value in zip(("p50", "p99", "max"), done.groups()):
            figures[f"{key}_publish_late_{label}_ms"] = float(value)
        figures[f"{key}_jitter_p50_ms"] = float(np.percentile(jitter, 50) * 1e3)
        figures[f"{key}_jitter_p99_ms"] = float(np.percentile(jitter, 99) * 1e3)
        figures[f"{key}_jitter_max_ms"] = float(np.max(jitter) * 1e3)
        figures[f"{key}_drift_ms"] = float(
            (np.median(offsets[-tenth:]) - np.median(offsets[:tenth])) * 1e3)
        figures[f"{key}_interval_median_ms"] = float(statistics.median(np.diff(arrivals)) * 1e3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    from emg_hand_testing.domain import isolate_ros_domain

    isolate_ros_domain()  # before rclpy starts: our own domain, localhost only
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bag_bench_") as tmp:
        bench_io(figures, Path(tmp))
        bench_record(figures, Path(tmp))
        bench_play(figures, Path(tmp))
    units = {"_per_s": "/s", "_ms": "ms", "_hz": "Hz", "_fraction": ""}
    print(f"# emg_hand_bag benchmark ({'quick' if QUICK else 'full'}), "
          f"{platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    for name, value in figures.items():
        unit = next((u for suffix, u in units.items() if name.endswith(suffix)), "")
        print(f"{name}: {value:.3f} {unit}".rstrip())
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "bag", "quick": QUICK,
                                         "machine": platform.platform(),
                                         "cpus": os.cpu_count(), "figures": figures},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
