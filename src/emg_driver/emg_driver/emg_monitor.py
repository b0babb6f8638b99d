"""emg_monitor: watch an emg/raw stream from the command line.

By default prints a status line once a second (chunk and sample rate, dropped samples,
per-channel RMS in microvolts). ``--jsonl`` prints one JSON object per chunk instead
(header stamp, stream index, sample count, channel names, rate and the samples), for
scripts and tests. ``--count N`` exits after N chunks. ``--check`` listens for
``--seconds`` (5) and judges the armband (``emg_driver.signal_check``): measured vs nominal
rate, channel count (``--channels``), dropped samples, clock drift, and per channel flat,
stuck, saturated or mains-dominated; exit status 0 when all is well, 1 with problems, 2
when nothing arrived (``--json``: the findings as one JSON object).

    ros2 run emg_driver emg_monitor [--jsonl] [--count N] [--ros-args -r emg/raw:=...]
    ros2 run emg_driver emg_monitor --check --seconds 5 --channels 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from emg_hand_core.emg_codec import EmgDecodeError, decode_emg
from emg_hand_core.topics import EMG_TOPIC
from emg_interfaces.msg import EMG


class EmgMonitor(Node):
    def __init__(self, jsonl: bool, count: int | None, check_s: float = 0.0) -> None:
        super().__init__("emg_monitor")
        self._jsonl = jsonl
        self._check_s = check_s
        self.collected: list[tuple[int, float, float, np.ndarray]] = []  # --check
        self.rate_hz = 0.0
        self.names: list[str] = []
        self._remaining = count
        self._next_index: int | None = None
        self._dropped = 0
        self._chunks = 0
        self._samples = 0
        self._sum_sq: np.ndarray | None = None
        self._window_start = time.monotonic()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(EMG, EMG_TOPIC, self._on_emg, qos)
        if not jsonl and not check_s:
            self.create_timer(1.0, self._print_status)
        self.done = False

    def _on_emg(self, msg: EMG) -> None:
        try:
            chunk = decode_emg(msg)
        except EmgDecodeError as err:
            self.get_logger().warning(f"malformed EMG chunk: {err}")
            return
        if self._next_index is not None and chunk.first_sample_index != self._next_index:
            self._dropped += max(0, chunk.first_sample_index - self._next_index)
        self._next_index = chunk.end_index
        if self._check_s:
            now = time.monotonic()
            self.collected.append((chunk.first_sample_index, chunk.stamp_ns * 1e-9, now,
                                   chunk.samples))
            self.rate_hz, self.names = chunk.sample_rate_hz, list(chunk.channel_names)
            self.done = now - self.collected[0][2] >= self._check_s
        self._chunks += 1
        self._samples += chunk.num_samples
        sq = np.sum(chunk.samples.astype(np.float64) ** 2, axis=0)
        if self._sum_sq is None or self._sum_sq.shape != sq.shape:
            self._sum_sq = sq
        else:
            self._sum_sq += sq
        if self._jsonl:
            print(json.dumps({
                "stamp_ns": chunk.stamp_ns,
                "frame_id": chunk.frame_id,
                "sample_rate_hz": chunk.sample_rate_hz,
                "channel_names": list(chunk.channel_names),
                "first_sample_index": chunk.first_sample_index,
                "num_samples": chunk.num_samples,
                "data": chunk.samples.tolist(),
            }), flush=True)
        if self._remaining is not None:
            self._remaining -= 1
            if self._remaining <= 0:
                self.done = True

    def _print_status(self) -> None:
        elapsed = max(time.monotonic() - self._window_start, 1e-9)
        rms_uv = (np.sqrt(self._sum_sq / max(self._samples, 1)) * 1e6
                  if self._sum_sq is not None else np.zeros(0))
        print(f"chunks {self._chunks / elapsed:6.1f}/s  samples {self._samples / elapsed:8.1f}/s  "
              f"dropped {self._dropped}  RMS uV [{' '.join(f'{v:.1f}' for v in rms_uv)}]",
              flush=True)
        self._window_start = time.monotonic()
        self._chunks = self._samples = 0
        self._sum_sq = None


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv if argv is None else argv
    non_ros = rclpy.utilities.remove_ros_args(args_in)[1:]
    parser = argparse.ArgumentParser(prog="emg_monitor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jsonl", action="store_true", help="one JSON object per chunk")
    parser.add_argument("--count", type=int, default=None, help="exit after this many chunks")
    parser.add_argument("--check", action="store_true",
                        help="judge the stream and each channel, then exit (0: ok, 1: problems)")
    parser.add_argument("--seconds", type=float, default=5.0, help="--check: listen this long")
    parser.add_argument("--channels", type=int, default=None,
                        help="--check: the channel count expected")
    parser.add_argument("--json", action="store_true", help="--check: print JSON")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="--check: give up when nothing arrives for this long [s]")
    args = parser.parse_args(non_ros)
    rclpy.init(args=args_in)
    node = EmgMonitor(args.jsonl, args.count, args.seconds if args.check else 0.0)
    print("emg_monitor: listening on " + node.resolve_topic_name(EMG_TOPIC), file=sys.stderr,
          flush=True)
    started = time.monotonic()
    try:
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
            if args.check and not node.collected and time.monotonic() - started > args.timeout:
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return report_check(node, args.channels, args.json) if args.check else 0


def report_check(node: EmgMonitor, channels: int | None, as_json: bool) -> int:
    from .signal_check import check_stream

    if not node.collected:
        print("emg_monitor --check: no emg/raw chunk arrived", file=sys.stderr)
        return 2
    first, stamps, received, chunks = zip(*node.collected, strict=True)
    result = check_stream(np.array(first), np.array(stamps), list(chunks), node.rate_hz,
                          node.names, np.array(received), channels)
    if as_json:
        print(json.dumps(result.as_dict()), flush=True)
    else:
        print("\n".join(result.lines()), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
