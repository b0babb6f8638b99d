"""emg2pose HDF5: the dataset's layout, which our simulator's recorder writes too.

Group ``emg2pose`` holding a compound dataset ``timeseries`` with fields ``time`` [s],
``emg`` (C,) and ``joint_angles`` (20,) [rad] in JOINT_NAMES order. Attributes (on the
dataset, the group or the file; all optional): ``sample_rate`` / ``sample_rate_hz`` /
``sampling_rate`` / ``fs`` [Hz] (else from ``time``), ``channel_names`` (a list or one
comma-separated string), ``side``, ``emg_units`` (``V``, ``mV``, ``uV``). The dataset's own
files (emg2pose's writer: ``filename, session, stage, user, side, sample_rate,
num_channels, start, end`` on the group) do not state the EMG unit; it is taken as volts
and the recording says so. Rows whose angles are all zero are failed labels (emg2pose's IK
failures) and are masked, as are rows with non-finite angles.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..hand_model import NUM_JOINTS
from ..units import VOLTS_PER_UNIT
from .recording import DataError, Recording, finite_rows

GROUP = "emg2pose"
TIMESERIES = "timeseries"
RATE_KEYS = ("sample_rate_hz", "sample_rate", "sampling_rate", "fs")
UNIT_SCALES = VOLTS_PER_UNIT


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [v.decode() if isinstance(v, bytes) else str(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attr(attrs_list: list[dict], *names: str) -> Any:
    for attrs in attrs_list:
        for name in names:
            if name in attrs:
                return attrs[name]
    return None


def _channel_names(value: Any, count: int) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [n.strip() for n in value.split(",") if n.strip()]
    if not value or len(value) != count:
        return ()
    return tuple(str(v) for v in value)


class File:
    """An emg2pose-layout file opened for reading by rows: :func:`read` is built on it, and
    training at dataset scale reads blocks and windows through it, so a file far larger
    than memory is never loaded whole.

    ``rows(i0, i1)`` returns rows [i0, i1) as a :class:`Recording` (volts, masks), exactly
    as :func:`read` would for the same rows. ``chunk_cache_bytes``: the HDF5 chunk cache of
    this handle (h5py's default, 1 MiB, when None). One handle per process: HDF5 handles do
    not survive a fork.
    """

    def __init__(self, path: str | Path, chunk_cache_bytes: int | None = None) -> None:
        import h5py

        self.path = Path(path)
        kw = {} if chunk_cache_bytes is None else {"rdcc_nbytes": int(chunk_cache_bytes)}
        try:
            self._file = h5py.File(self.path, "r", **kw)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read HDF5: {exc}") from exc
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        f, path = self._file, self.path
        if GROUP not in f or TIMESERIES not in f[GROUP]:
            raise DataError(f"{path}: no {GROUP}/{TIMESERIES} dataset (not an emg2pose file)")
        ds = self._ds = f[GROUP][TIMESERIES]
        fields = ds.dtype.fields or {}
        missing = [n for n in ("time", "emg", "joint_angles") if n not in fields]
        if missing:
            raise DataError(f"{path}: {GROUP}/{TIMESERIES} lacks fields {missing}")
        if len(ds) == 0:
            raise DataError(f"{path}: {GROUP}/{TIMESERIES} holds no samples")
        if fields["joint_angles"][0].shape != (NUM_JOINTS,):
            raise DataError(f"{path}: joint_angles has shape {fields['joint_angles'][0].shape}, "
                            f"expected (20,)")
        self.num_rows = len(ds)
        emg_shape = fields["emg"][0].shape
        self.num_channels = int(emg_shape[0]) if emg_shape else 1
        attrs = [{k: _plain(v) for k, v in a.items()} for a in (ds.attrs, f[GROUP].attrs, f.attrs)]
        rate = _attr(attrs, *RATE_KEYS)
        if rate is None or not (isinstance(rate, (int, float)) and math.isfinite(rate)
                                and rate > 0):
            t = ds["time"]
            if len(t) < 2 or not t[-1] > t[0]:
                raise DataError(f"{path}: no sample rate attribute and no usable time field")
            rate = (len(t) - 1) / (t[-1] - t[0])
        self.sample_rate_hz = float(rate)
        unit = _attr(attrs, "emg_units", "emg_unit")
        if unit is None:
            self.scale = 1.0
            self.units_note = "volts (the file does not state its EMG unit; taken as V)"
        elif str(unit).strip().lower() in UNIT_SCALES:
            self.scale = UNIT_SCALES[str(unit).strip().lower()]
            self.units_note = f"file unit {unit}"
        else:
            raise DataError(f"{path}: unknown emg_units {unit!r}; expected one of V, mV, uV")
        side = str(_attr(attrs, "side") or "right").lower()
        self.side = side if side in ("left", "right") else "right"
        self.channel_names = _channel_names(_attr(attrs, "channel_names"), self.num_channels)
        self.meta = {k: v for k, v in attrs[1].items()
                     if isinstance(v, (str, int, float, bool, list))}

    def time_index(self, t_from_start_s: float) -> int:
        """The first row at or after ``t_from_start_s`` seconds from the first sample."""
        t_all = self._ds["time"]
        return int(np.searchsorted(t_all, t_all[0] + t_from_start_s))

    def _read(self, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            block = self._ds[i0:i1]
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read rows {i0}..{i1}: {exc}") from exc
        if len(block) == 0:
            raise DataError(f"{self.path}: no samples in the requested range")
        emg = np.asarray(block["emg"], dtype=np.float64)
        emg = emg[:, None] if emg.ndim == 1 else emg
        return (np.asarray(block["time"], dtype=np.float64), emg * self.scale,
                np.asarray(block["joint_angles"], dtype=np.float64))

    def rows(self, i0: int, i1: int) -> Recording:
        """Rows [i0, i1) as a Recording (EMG in volts, label and EMG masks)."""
        t, emg, angles = self._read(i0, i1)
        emg, emg_valid, bad = finite_rows(emg)
        mask = ~np.all(np.isclose(angles, 0.0), axis=1) & np.all(np.isfinite(angles), axis=1)
        angles = np.where(np.isfinite(angles), angles, 0.0)
        return Recording(emg=emg, sample_rate_hz=self.sample_rate_hz,
                         channel_names=self.channel_names, timestamps_s=t, joint_angles=angles,
                         label_mask=mask, emg_valid=emg_valid, side=self.side,
                         source=str(self.path), format="emg2pose", scale_v_per_unit=self.scale,
                         units_note=self.units_note,
                         meta={**self.meta, "nonfinite_rows": bad})

    def arrays(self, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
        """EMG (n, C) float32 [V] and joint angles (n, 20) [rad] of rows [i0, i1) that
        :meth:`rows` found valid (finite EMG and angles): the same values, without the
        masks and the Recording (a training window is read this way)."""
        _, emg, angles = self._read(i0, i1)
        return emg.astype(np.float32), angles

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read(path: str | Path, start_s: float = 0.0, duration_s: float | None = None) -> Recording:
    """An emg2pose-layout file; ``start_s``/``duration_s`` read only part of it (seconds
    from its first sample)."""
    with File(path) as f:
        i0 = f.time_index(start_s) if start_s > 0 else 0
        i1 = f.time_index(start_s + duration_s) if duration_s is not None else f.num_rows
        if i1 <= i0:
            raise DataError(f"{path}: no samples in the requested time range")
        return f.rows(i0, i1)


# --- writing ----------------------------------------------------------------------------

def dtype(num_channels: int) -> np.dtype:
    """The compound row type of ``emg2pose/timeseries``."""
    return np.dtype([("time", "<f8"), ("emg", "<f4", (num_channels,)),
                     ("joint_angles", "<f8", (NUM_JOINTS,))])


def _h5_attr(value: Any) -> Any:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return np.array([v.encode() for v in value], dtype="S")
        if all(isinstance(v, (int, float)) for v in value):
            return np.asarray(value, dtype=np.float64)
        return json.dumps(value)
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class Writer:
    """Append rows to an emg2pose-layout HDF5 file (resizable, chunked).

    ``attrs`` go on the ``emg2pose`` group; ``sample_rate`` (the emg2pose key),
    ``sample_rate_hz``, ``num_channels``, ``channel_names`` and the units are always written.
    """

    def __init__(self, path: str | Path, sample_rate_hz: float, channel_names: Sequence[str],
                 attrs: dict[str, Any] | None = None, side: str = "right") -> None:
        import h5py

        self.path = Path(path)
        self.sample_rate_hz = float(sample_rate_hz)
        self.num_channels = len(channel_names)
        self._file = h5py.File(self.path, "w")
        group = self._file.create_group(GROUP)
        chunk_rows = max(1, min(8192, int(sample_rate_hz)))
        self._ds = group.create_dataset(TIMESERIES, shape=(0,), maxshape=(None,),
                                        dtype=dtype(self.num_channels), chunks=(chunk_rows,))
        base = {"sample_rate": self.sample_rate_hz, "sample_rate_hz": self.sample_rate_hz,
                "num_channels": self.num_channels,
                "channel_names": [str(c) for c in channel_names], "side": side,
                "emg_units": "V", "joint_angle_units": "rad", "time_units": "s"}
        for key, value in {**base, **(attrs or {})}.items():
            group.attrs[key] = _h5_attr(value)
        self.rows = 0

    def append(self, emg: np.ndarray, joint_angles: np.ndarray,
               time_s: np.ndarray | None = None) -> None:
        """Rows of EMG (n, C) [V] and joint angles (n, 20) [rad]; times default to the
        sample grid."""
        emg = np.asarray(emg, dtype=np.float32)
        n = emg.shape[0]
        if emg.shape != (n, self.num_channels) or np.shape(joint_angles) != (n, NUM_JOINTS):
            raise ValueError(f"expected emg ({n}, {self.num_channels}) and joint_angles "
                             f"({n}, {NUM_JOINTS})")
        rows = np.empty(n, dtype=self._ds.dtype)
        rows["time"] = ((self.rows + np.arange(n)) / self.sample_rate_hz
                        if time_s is None else time_s)
        rows["emg"] = emg
        rows["joint_angles"] = joint_angles
        self._ds.resize((self.rows + n,))
        self._ds[self.rows:self.rows + n] = rows
        self.rows += n

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write(path: str | Path, rec: Recording, attrs: dict[str, Any] | None = None) -> Path:
    """Write a recording with joint angles (masked rows as zeros, emg2pose's convention)."""
    if rec.joint_angles is None:
        raise DataError("the emg2pose format needs joint angles")
    times = (rec.timestamps_s if rec.timestamps_s is not None
             else np.arange(rec.num_samples) / rec.sample_rate_hz)
    angles = np.where(rec.valid_labels()[:, None], rec.joint_angles, 0.0)
    with Writer(path, rec.sample_rate_hz, rec.channel_names, attrs, side=rec.side) as w:
        w.append(rec.emg, angles, times)
    return Path(path)


def write_arrays(path: str | Path, emg: np.ndarray, joint_angles: np.ndarray,
                 sample_rate_hz: float, channel_names: Sequence[str] | None = None,
                 attrs: dict[str, Any] | None = None) -> Path:
    """Write EMG (N, C) [V] and joint angles (N, 20) [rad] on the sample grid."""
    rec = Recording(emg=emg, sample_rate_hz=sample_rate_hz,
                    channel_names=tuple(channel_names or ()),
                    joint_angles=np.asarray(joint_angles, dtype=np.float64))
    return write(path, rec, attrs)


def looks_like(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".h5", ".hdf5", ".hdf")
