"""Cross-process EMG over real DDS: this process publishes, the installed emg_monitor
console script (started as `ros2 run emg_driver emg_monitor` would) subscribes and prints
every chunk; the chunks must arrive complete, in order, with their stream indices."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from emg_hand_core.emg_codec import encode_emg, rclpy_types
from emg_hand_testing.ros import wait_until
from emg_interfaces.msg import EMG

CHANNELS = [f"ch_{i + 1}" for i in range(8)]
RATE_HZ = 500.0
CHUNK = 5  # samples per chunk (10 ms at 500 Hz)
N_CHUNKS = 40


def make_chunks(rng: np.random.Generator) -> list[tuple[int, int, np.ndarray]]:
    """(first_sample_index, stamp_ns, samples [V]) for a stream with one 3-sample gap."""
    chunks = []
    index = 1000
    t0_ns = 1_700_000_000_000_000_000
    for k in range(N_CHUNKS):
        if k == 20:
            index += 3  # dropped samples must stay visible as a gap
        samples = (rng.standard_normal((CHUNK, len(CHANNELS))) * 50e-6).astype(np.float32)
        stamp = t0_ns + int(round((index - 1000) * 1e9 / RATE_HZ))
        chunks.append((index, stamp, samples))
        index += CHUNK
    return chunks


@pytest.mark.timeout(60)
def test_emg_chunks_cross_process_intact(ros_node, node_process):
    monitor = node_process("emg_driver", "emg_monitor", ["--jsonl", "--count", str(N_CHUNKS)])
    publisher = ros_node.node.create_publisher(
        EMG, "emg/raw", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    # The subscriber in the other process has matched this publisher: no message is lost.
    wait_until(lambda: publisher.get_subscription_count() >= 1, 20.0,
               "emg_monitor's subscription to match emg/raw")

    chunks = make_chunks(np.random.default_rng(7))
    for index, stamp, samples in chunks:
        publisher.publish(encode_emg(rclpy_types(), samples, index, stamp, RATE_HZ, CHANNELS,
                                     "emg_armband"))

    assert monitor.wait(timeout_s=30.0) == 0, monitor.output
    received = [json.loads(line) for line in monitor.output.splitlines()
                if line.startswith("{")]
    assert len(received) == N_CHUNKS, monitor.output[-2000:]
    for (index, stamp, samples), got in zip(chunks, received):
        assert got["first_sample_index"] == index
        assert got["stamp_ns"] == stamp
        assert got["num_samples"] == CHUNK
        assert got["channel_names"] == CHANNELS
        assert got["frame_id"] == "emg_armband"
        assert got["sample_rate_hz"] == RATE_HZ
        np.testing.assert_array_equal(np.asarray(got["data"], dtype=np.float32), samples)
    # order and the gap survive the trip
    indices = [r["first_sample_index"] for r in received]
    assert indices == sorted(indices)
    gaps = [b - a - CHUNK for a, b in zip(indices, indices[1:]) if b - a != CHUNK]
    assert gaps == [3]
