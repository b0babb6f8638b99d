"""Conversion between a chunk of samples and emg_interfaces/msg/EMG (no rclpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time

from emg_interfaces.msg import EMG


def chunk_to_msg(samples: np.ndarray, first_sample_index: int, stamp_ns: int,
                 sample_rate_hz: float, channel_names: Sequence[str], frame_id: str) -> EMG:
    """An EMG message for ``samples`` (n, channels) [V] whose first sample was acquired at
    ``stamp_ns`` [ns since the epoch of the node's clock]."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.ndim != 2 or samples.shape[1] != len(channel_names):
        raise ValueError(f"samples of shape {samples.shape} do not match "
                         f"{len(channel_names)} channel names")
    msg = EMG()
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    msg.header.frame_id = frame_id
    msg.sample_rate_hz = float(sample_rate_hz)
    msg.channel_names = list(channel_names)
    msg.first_sample_index = int(first_sample_index)
    msg.num_samples = int(samples.shape[0])
    msg.data = samples.ravel()
    return msg


def msg_to_chunk(msg: EMG) -> np.ndarray:
    """The samples of an EMG message as (num_samples, channels) float32 [V].

    Raises ValueError when the data length does not match num_samples x channels.
    """
    channels = len(msg.channel_names)
    data = np.asarray(msg.data, dtype=np.float32)
    if channels == 0 or data.size != msg.num_samples * channels:
        raise ValueError(f"EMG message carries {data.size} values, expected "
                         f"{msg.num_samples} samples x {channels} channels")
    return data.reshape(msg.num_samples, channels)


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
