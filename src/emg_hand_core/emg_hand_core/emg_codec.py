"""The one codec between a chunk of EMG samples and an ``emg_interfaces/msg/EMG`` message.

It works on both message implementations without importing either:

* rclpy's generated classes (``emg_interfaces.msg.EMG``), used by the nodes;
* rosbags' classes from a type store (``store.types["emg_interfaces/msg/EMG"]``), used to
  read and write bags without ROS.

:func:`decode_emg` reads any object with the message's fields; :func:`encode_emg` builds
one with a :class:`MessageTypes` (:func:`rclpy_types` or :func:`rosbags_types`). The
float32[] field is filled from the array's bytes for rclpy (``array.array('f')``, more than
ten times faster than letting the generated setter iterate over a numpy array) and read
back without a copy through the buffer protocol.

Stamps are integer nanoseconds; :func:`stamp_to_ns` accepts any ``sec``/``nanosec`` pair,
negative or huge ones included (whether such a stamp is plausible is for the receiver to
judge, see ``emg_pose_node.stream_guard``), so decoding never raises on a stamp.
"""

from __future__ import annotations

import array
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EMG_TYPE = "emg_interfaces/msg/EMG"
NS_PER_S = 1_000_000_000
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1


class EmgDecodeError(ValueError):
    """An EMG message whose fields do not describe a chunk; the message says why."""


@dataclass
class EmgChunk:
    """Consecutive samples of one stream (see emg_interfaces/msg/EMG).

    samples: (n, channels) float32 [V]; stamp_ns: acquisition time of the first sample
    [ns]; first_sample_index: stream index of the first sample.
    """

    samples: np.ndarray
    first_sample_index: int
    stamp_ns: int
    sample_rate_hz: float
    channel_names: tuple[str, ...]
    frame_id: str = ""

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def end_index(self) -> int:
        """Stream index one past the last sample."""
        return self.first_sample_index + self.num_samples

    def sample_times_ns(self) -> np.ndarray:
        """Acquisition time of every sample [ns] (int64), from the stamp and the rate."""
        k = np.arange(self.num_samples, dtype=np.float64)
        return self.stamp_ns + np.round(k * NS_PER_S / self.sample_rate_hz).astype(np.int64)


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time``-like (``sec``, ``nanosec``) -> integer ns (never raises
    for integer fields; a negative ``sec`` gives a negative time)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def split_ns(stamp_ns: int) -> tuple[int, int]:
    """ns -> (sec, nanosec) with 0 <= nanosec < 1e9."""
    stamp_ns = int(stamp_ns)
    return stamp_ns // NS_PER_S, stamp_ns % NS_PER_S


def decode_emg(msg: Any) -> EmgChunk:
    """The chunk an EMG message carries; :class:`EmgDecodeError` when its fields disagree
    (no channels, data length not num_samples x channels).

    The samples are a read-only view of the message's data where possible (rclpy).
    """
    names = tuple(str(n) for n in msg.channel_names)
    channels = len(names)
    data = msg.data
    if isinstance(data, array.array) and data.typecode == "f":
        values = np.frombuffer(data, dtype=np.float32)
    else:
        values = np.asarray(data, dtype=np.float32).reshape(-1)
    n = int(msg.num_samples)
    if channels == 0:
        raise EmgDecodeError(f"EMG message without channel names ({values.size} values)")
    if values.size != n * channels:
        raise EmgDecodeError(f"EMG message carries {values.size} values, expected "
                             f"{n} samples x {channels} channels")
    return EmgChunk(values.reshape(n, channels), int(msg.first_sample_index),
                    stamp_to_ns(msg.header.stamp), float(msg.sample_rate_hz), names,
                    str(msg.header.frame_id))


@dataclass(frozen=True)
class MessageTypes:
    """The classes :func:`encode_emg` builds a message from, and how it fills ``data``."""

    emg: type
    header: type
    time: type
    pack_data: Callable[[np.ndarray], Any]


@functools.cache
def rclpy_types() -> MessageTypes:
    """rclpy's generated classes (imports emg_interfaces, std_msgs, builtin_interfaces)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from emg_interfaces.msg import EMG

    def pack(samples: np.ndarray) -> array.array:
        data = array.array("f")
        data.frombytes(samples.tobytes())
        return data

    return MessageTypes(EMG, Header, Time, pack)


def rosbags_types(store: Any) -> MessageTypes:
    """The classes of a rosbags type store holding emg_interfaces/msg/EMG."""
    return MessageTypes(store.types[EMG_TYPE], store.types["std_msgs/msg/Header"],
                        store.types["builtin_interfaces/msg/Time"],
                        lambda samples: samples.reshape(-1))


def encode_emg(types: MessageTypes, samples: np.ndarray, first_sample_index: int,
               stamp_ns: int, sample_rate_hz: float, channel_names: Sequence[str],
               frame_id: str = "") -> Any:
    """An EMG message for ``samples`` (n, channels) [V] whose first sample was acquired at
    ``stamp_ns``. Raises ValueError for a shape that does not match the names, a rate
    that is not a positive number, or an index or count outside the message's fields."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.ndim != 2 or samples.shape[1] != len(channel_names) or not channel_names:
        raise ValueError(f"samples of shape {samples.shape} do not match "
                         f"{len(channel_names)} channel names")
    if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise ValueError(f"sample rate must be a positive number, got {sample_rate_hz}")
    if not (0 <= int(first_sample_index) <= UINT64_MAX and samples.shape[0] <= UINT32_MAX):
        raise ValueError(f"first_sample_index {first_sample_index} outside uint64")
    sec, nanosec = split_ns(stamp_ns)
    return types.emg(
        header=types.header(stamp=types.time(sec=sec, nanosec=nanosec), frame_id=str(frame_id)),
        sample_rate_hz=float(sample_rate_hz), channel_names=[str(c) for c in channel_names],
        first_sample_index=int(first_sample_index), num_samples=int(samples.shape[0]),
        data=types.pack_data(samples))


def encode_chunk(types: MessageTypes, chunk: EmgChunk) -> Any:
    """:func:`encode_emg` of an :class:`EmgChunk`."""
    return encode_emg(types, chunk.samples, chunk.first_sample_index, chunk.stamp_ns,
                      chunk.sample_rate_hz, chunk.channel_names, chunk.frame_id)


__all__ = ["EMG_TYPE", "EmgChunk", "EmgDecodeError", "MessageTypes", "decode_emg",
           "encode_chunk", "encode_emg", "rclpy_types", "rosbags_types", "split_ns",
           "stamp_to_ns"]
