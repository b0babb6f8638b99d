"""Chunks of consecutive samples, the unit published on emg/raw (pure numpy).

:class:`Chunker` collects indexed samples and cuts them into chunks of ``chunk_len``
consecutive samples; a gap in the stream index ends a chunk early, so every chunk is
consecutive (sample k of a chunk has index ``first_index + k``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Chunk:
    """Consecutive samples ready to publish.

    data: (n, channels) float32 [V]. stamp_ns: acquisition time of the first sample [ns on
    the node's clock]; -1 until the source stamps the chunk.
    joint_angles: (n, 20) float32 [rad] of the true/recorded pose per sample, or None.
    """

    first_index: int
    data: np.ndarray
    stamp_ns: int = -1
    joint_angles: np.ndarray | None = None

    @property
    def num_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def end_index(self) -> int:
        """Index one past the last sample."""
        return self.first_index + self.num_samples


@dataclass
class ImuReading:
    """One IMU reading of an armband, in SI units (REP-103), for ``imu/raw``.

    orientation_xyzw: unit quaternion (x, y, z, w) or None (not measured);
    angular_velocity: (3,) [rad/s] or None; linear_acceleration: (3,) [m/s^2] or None.
    sample: position, in the decoded batch it came with, of the EMG sample measured at the
    same time (or the latest before it; -1: none in that batch), which gives its stamp.
    stamp_ns: acquisition time [ns on the node's clock]; -1 until the source stamps it.
    """

    orientation_xyzw: tuple[float, float, float, float] | None = None
    angular_velocity: tuple[float, float, float] | None = None
    linear_acceleration: tuple[float, float, float] | None = None
    sample: int = -1
    stamp_ns: int = -1


def chunk_len_for(chunk_ms: float, sample_rate_hz: float) -> int:
    """Samples per chunk: ``chunk_ms`` of samples, at least 1."""
    return max(1, int(round(chunk_ms * 1e-3 * sample_rate_hz)))


class Chunker:
    """Cut a stream of (index, sample) runs into chunks of ``chunk_len`` consecutive samples."""

    def __init__(self, chunk_len: int, num_channels: int) -> None:
        if chunk_len < 1:
            raise ValueError("chunk_len must be >= 1")
        self.chunk_len = int(chunk_len)
        self.num_channels = int(num_channels)
        self._parts: list[np.ndarray] = []
        self._joint_parts: list[np.ndarray] = []
        self._first: int | None = None
        self._count = 0

    @property
    def pending(self) -> int:
        """Samples held, waiting to fill a chunk."""
        return self._count

    def push(self, indices: np.ndarray, values: np.ndarray,
             joint_angles: np.ndarray | None = None) -> list[Chunk]:
        """Add samples with their stream indices (increasing); return the completed chunks."""
        out: list[Chunk] = []
        n = len(indices)
        if n == 0:
            return out
        indices = np.asarray(indices, dtype=np.int64)
        first, last = int(indices[0]), int(indices[-1])
        if last - first == n - 1:  # increasing indices spanning n: one consecutive run
            if self._first is not None and first != self._first + self._count:
                out.extend(self.flush())
            self._add_run(first, values, joint_angles, out)
            return out
        # split where the index is not consecutive
        breaks = np.flatnonzero(np.diff(indices) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [n]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            first = int(indices[s])
            if self._first is not None and first != self._first + self._count:
                out.extend(self.flush())
            self._add_run(first, values[s:e], None if joint_angles is None else joint_angles[s:e],
                          out)
        return out

    def _add_run(self, first: int, values: np.ndarray, joints: np.ndarray | None,
                 out: list[Chunk]) -> None:
        pos = 0
        n = len(values)
        while pos < n:
            if self._first is None:
                self._first = first + pos
            take = min(self.chunk_len - self._count, n - pos)
            self._parts.append(values[pos:pos + take])
            if joints is not None:
                self._joint_parts.append(joints[pos:pos + take])
            self._count += take
            pos += take
            if self._count == self.chunk_len:
                out.extend(self.flush())

    def flush(self) -> list[Chunk]:
        """Emit the held samples as a (possibly short) chunk."""
        if self._first is None or self._count == 0:
            self._first, self._count = None, 0
            return []
        data = (self._parts[0] if len(self._parts) == 1
                else np.concatenate(self._parts)).astype(np.float32, copy=False)
        joints = None
        if self._joint_parts and sum(len(j) for j in self._joint_parts) == self._count:
            joints = np.concatenate(self._joint_parts).astype(np.float32, copy=False)
        chunk = Chunk(self._first, data, joint_angles=joints)
        self._parts, self._joint_parts = [], []
        self._first, self._count = None, 0
        return [chunk]


__all__ = ["Chunk", "Chunker", "ImuReading", "chunk_len_for"]
