"""Recordings the driver can replay, read into one in-memory form (pure numpy + h5py).

Every reader returns a :class:`Recording`: EMG in volts, the nominal sample rate, channel
names, and joint angles [rad] where the file has them. Known formats (``detect_format``
picks one from the path and the header):

================ ====================================================================
``emg2pose``     HDF5, group ``emg2pose``, compound dataset ``timeseries`` with fields
                 ``time`` [s], ``emg`` (C,), ``joint_angles`` (20,) [rad]; group attrs
                 ``sample_rate`` / ``sample_rate_hz``, ``channel_names`` (optional).
                 Our simulator recordings (``emg_sim_record``) use this layout, in volts.
``eeg_emg_csv``  EEG-EMG-Hands ``emg_mp_*.csv``: ``timestamp`` [ms], ``thumb..pinky``
                 (finger straightness 0..1), ``ch_1..ch_16`` [uV].
``merged_csv``   EEG-EMG-Hands ``merged/data_*.csv``: ``timestamp`` [ms], fingers,
                 per channel ``ch_k_raw`` [uV] and envelopes (ignored).
``brainflow``    EEG-EMG-Hands raw BrainFlow ``exg.csv`` (or its folder): ``timestamp``
                 [ms], ``exg_1..exg_8`` [uV, with DC offset]; rate from
                 ``../frequency_info.json`` (``exg_fs``); ``prompt.csv`` beside it gives the
                 prompted finger targets (extras ``prompt``).
``myo_txt``      Myo logger lines ``c1,...,c8,label``: int8 counts at 200 Hz; volts =
                 counts x ``scale_v_per_unit``; extras ``label``.
================ ====================================================================

:func:`write_emg2pose_h5` / :class:`Emg2PoseWriter` write the emg2pose layout.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .stream import channel_names_for

MYO_SAMPLE_RATE_HZ = 200.0
UV = 1.0e-6
FORMATS = ("emg2pose", "eeg_emg_csv", "merged_csv", "brainflow", "myo_txt")
EMG2POSE_GROUP = "emg2pose"
EMG2POSE_TIMESERIES = "timeseries"


@dataclass
class Recording:
    """A recording in memory. emg (N, C) float32 [V]; joint_angles (N, 20) float32 [rad] or
    None; time_s (N,) float64 seconds from the first sample (the file's own clock)."""

    emg: np.ndarray
    sample_rate_hz: float
    channel_names: list[str]
    time_s: np.ndarray
    joint_angles: np.ndarray | None = None
    format: str = ""
    path: str = ""
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    nonfinite_replaced: int = 0  # NaN/inf values in the file, replaced by 0

    @property
    def num_samples(self) -> int:
        return int(self.emg.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.emg.shape[1])

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate_hz


def _finite(emg: np.ndarray) -> tuple[np.ndarray, int]:
    bad = ~np.isfinite(emg)
    count = int(bad.sum())
    if count:
        emg = np.where(bad, 0.0, emg)
    return emg.astype(np.float32), count


def _rate_from_ms(timestamps_ms: np.ndarray) -> float:
    """Nominal rate from a millisecond time column: samples / span (robust to jitter)."""
    t = np.asarray(timestamps_ms, dtype=np.float64)
    span = (t[-1] - t[0]) * 1e-3
    if len(t) < 2 or not span > 0:
        raise ValueError("cannot infer the sample rate: fewer than 2 samples or no time span")
    return (len(t) - 1) / span


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    header = [h.strip() for h in header]
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    if data.shape[1] != len(header):
        raise ValueError(f"{path}: {data.shape[1]} columns but {len(header)} header names")
    return header, data


def _cols(header: list[str], names: Sequence[str], path: Path) -> list[int]:
    missing = [n for n in names if n not in header]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return [header.index(n) for n in names]


def _numbered(header: list[str], prefix: str, suffix: str = "") -> list[str]:
    out = []
    k = 1
    while f"{prefix}{k}{suffix}" in header:
        out.append(f"{prefix}{k}{suffix}")
        k += 1
    return out


FINGER_COLUMNS = ("thumb", "index", "middle", "ring", "pinky")


def read_eeg_emg_csv(path: str | Path) -> Recording:
    """EEG-EMG-Hands ``emg_mp_*.csv`` (timestamp ms, fingers, ch_1..ch_N in uV)."""
    path = Path(path)
    header, data = _read_csv(path)
    chans = _numbered(header, "ch_")
    if not chans:
        raise ValueError(f"{path}: no ch_1.. columns")
    t_ms = data[:, _cols(header, ["timestamp"], path)[0]]
    emg, bad = _finite(data[:, _cols(header, chans, path)] * UV)
    extras = {}
    if all(f in header for f in FINGER_COLUMNS):
        extras["fingers"] = data[:, _cols(header, FINGER_COLUMNS, path)].astype(np.float32)
    return Recording(emg, _rate_from_ms(t_ms), chans, (t_ms - t_ms[0]) * 1e-3,
                     format="eeg_emg_csv", path=str(path), extras=extras, nonfinite_replaced=bad)


def read_merged_csv(path: str | Path) -> Recording:
    """EEG-EMG-Hands ``merged/data_*.csv`` (``ch_k_raw`` in uV; envelopes ignored)."""
    path = Path(path)
    header, data = _read_csv(path)
    raw = _numbered(header, "ch_", "_raw")
    if not raw:
        raise ValueError(f"{path}: no ch_k_raw columns")
    t_ms = data[:, _cols(header, ["timestamp"], path)[0]]
    emg, bad = _finite(data[:, _cols(header, raw, path)] * UV)
    extras = {}
    if all(f in header for f in FINGER_COLUMNS):
        extras["fingers"] = data[:, _cols(header, FINGER_COLUMNS, path)].astype(np.float32)
    names = [n[: -len("_raw")] for n in raw]
    return Recording(emg, _rate_from_ms(t_ms), names, (t_ms - t_ms[0]) * 1e-3,
                     format="merged_csv", path=str(path), extras=extras, nonfinite_replaced=bad)


def read_brainflow(path: str | Path) -> Recording:
    """EEG-EMG-Hands raw BrainFlow run: ``exg.csv`` (or the run folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "exg.csv"
    header, data = _read_csv(path)
    chans = _numbered(header, "exg_")
    if not chans:
        raise ValueError(f"{path}: no exg_1.. columns")
    t_ms = data[:, _cols(header, ["timestamp"], path)[0]]
    emg, bad = _finite(data[:, _cols(header, chans, path)] * UV)
    rate = _rate_from_ms(t_ms)
    info = path.parent.parent / "frequency_info.json"
    if info.is_file():
        rate = float(json.loads(info.read_text()).get("exg_fs", rate))
    extras = {}
    prompt = path.parent / "prompt.csv"
    if prompt.is_file():
        p_header, p_data = _read_csv(prompt)
        p_t = p_data[:, _cols(p_header, ["timestamp"], prompt)[0]]
        p_f = p_data[:, _cols(p_header, FINGER_COLUMNS, prompt)]
        k = np.searchsorted(p_t, t_ms, side="right") - 1  # prompt shown at or before t
        target = np.where(k[:, None] >= 0, p_f[np.clip(k, 0, None)], np.nan)
        extras["prompt"] = target.astype(np.float32)
    names = channel_names_for(len(chans))
    return Recording(emg, rate, names, (t_ms - t_ms[0]) * 1e-3, format="brainflow",
                     path=str(path), extras=extras, nonfinite_replaced=bad)


def read_myo_txt(path: str | Path, scale_v_per_unit: float = 1.0e-6,
                 sample_rate_hz: float = MYO_SAMPLE_RATE_HZ) -> Recording:
    """Myo logger text: ``c1,...,c8,label`` per line, int8 counts; volts = counts x scale."""
    path = Path(path)
    data = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    if data.shape[1] < 2:
        raise ValueError(f"{path}: expected c1,...,cN,label lines")
    counts = data[:, :-1]
    emg, bad = _finite(counts * scale_v_per_unit)
    n = len(emg)
    names = channel_names_for(counts.shape[1])
    return Recording(emg, float(sample_rate_hz), names, np.arange(n) / sample_rate_hz,
                     format="myo_txt", path=str(path),
                     extras={"label": data[:, -1].astype(np.int16)},
                     attrs={"scale_v_per_unit": scale_v_per_unit}, nonfinite_replaced=bad)


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_emg2pose_h5(path: str | Path, start_s: float = 0.0,
                     duration_s: float | None = None) -> Recording:
    """An emg2pose-layout HDF5 file (the dataset's sessions, or our simulator's)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        if EMG2POSE_GROUP not in f or EMG2POSE_TIMESERIES not in f[EMG2POSE_GROUP]:
            raise ValueError(f"{path}: no {EMG2POSE_GROUP}/{EMG2POSE_TIMESERIES} dataset")
        group = f[EMG2POSE_GROUP]
        ts = group[EMG2POSE_TIMESERIES]
        names = ts.dtype.names or ()
        for needed in ("time", "emg"):
            if needed not in names:
                raise ValueError(f"{path}: timeseries has no {needed!r} field (fields: {names})")
        attrs = {k: _attr(v) for k, v in group.attrs.items()}
        t_all = ts["time"]
        i0 = int(np.searchsorted(t_all, t_all[0] + start_s)) if start_s > 0 else 0
        i1 = len(ts) if duration_s is None else int(
            np.searchsorted(t_all, t_all[0] + start_s + duration_s))
        block = ts[i0:i1]
    t = np.asarray(block["time"], dtype=np.float64)
    emg, bad = _finite(np.asarray(block["emg"], dtype=np.float64))
    joints = None
    if "joint_angles" in names:
        joints = np.asarray(block["joint_angles"], dtype=np.float32)
        if joints.ndim != 2 or joints.shape[1] != 20:
            joints = None
        else:
            joints = np.nan_to_num(joints, nan=0.0, posinf=0.0, neginf=0.0)
    rate = attrs.get("sample_rate_hz", attrs.get("sample_rate"))
    if rate is None or not float(rate) > 0:
        dt = np.median(np.diff(t)) if len(t) > 1 else 0.0
        if not dt > 0:
            raise ValueError(f"{path}: no sample rate attribute and no usable time field")
        rate = 1.0 / dt
    channels = attrs.get("channel_names")
    if not channels or len(channels) != emg.shape[1]:
        channels = channel_names_for(emg.shape[1])
    return Recording(emg, float(rate), list(channels), t - (t[0] if len(t) else 0.0),
                     joint_angles=joints, format="emg2pose", path=str(path), attrs=attrs,
                     nonfinite_replaced=bad)


def detect_format(path: str | Path) -> str:
    """Which reader fits ``path`` (by extension and header); raises ValueError if none."""
    path = Path(path)
    if path.is_dir():
        if (path / "exg.csv").is_file():
            return "brainflow"
        raise ValueError(f"{path}: a folder, but no exg.csv in it")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".hdf"):
        return "emg2pose"
    with open(path, "rb") as f:
        head = f.read(4096).split(b"\n", 1)[0].decode("utf-8", errors="replace")
    names = [h.strip() for h in head.split(",")]
    if "ch_1_raw" in names:
        return "merged_csv"
    if "exg_1" in names:
        return "brainflow"
    if "ch_1" in names:
        return "eeg_emg_csv"
    try:
        [float(x) for x in names]
    except ValueError:
        raise ValueError(f"{path}: unknown recording format (header {head[:80]!r}); "
                         f"known formats: {', '.join(FORMATS)}") from None
    return "myo_txt"


def load_recording(path: str | Path, fmt: str = "auto", scale_v_per_unit: float = 1.0e-6,
                   sample_rate_hz: float = 0.0) -> Recording:
    """Read any known format. ``sample_rate_hz`` > 0 overrides the file's (or format's) rate;
    ``scale_v_per_unit`` applies to formats in raw counts (myo_txt)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recording {path} does not exist")
    fmt = detect_format(path) if fmt in ("", "auto") else fmt
    if fmt == "emg2pose":
        rec = read_emg2pose_h5(path)
    elif fmt == "eeg_emg_csv":
        rec = read_eeg_emg_csv(path)
    elif fmt == "merged_csv":
        rec = read_merged_csv(path)
    elif fmt == "brainflow":
        rec = read_brainflow(path)
    elif fmt == "myo_txt":
        rec = read_myo_txt(path, scale_v_per_unit=scale_v_per_unit)
    else:
        raise ValueError(f"unknown recording format {fmt!r}; known: auto, {', '.join(FORMATS)}")
    if sample_rate_hz and sample_rate_hz > 0:
        rec.sample_rate_hz = float(sample_rate_hz)
    if rec.num_samples == 0:
        raise ValueError(f"{path}: recording holds no samples")
    return rec


# --- writing the emg2pose layout ------------------------------------------------------


def emg2pose_dtype(num_channels: int) -> np.dtype:
    """The compound row type of ``emg2pose/timeseries``."""
    return np.dtype([("time", "<f8"), ("emg", "<f4", (num_channels,)),
                     ("joint_angles", "<f4", (20,))])


class Emg2PoseWriter:
    """Append rows to an emg2pose-layout HDF5 file (resizable, chunked, gzip-free).

    ``attrs`` go on the ``emg2pose`` group; ``sample_rate`` (the emg2pose key) and
    ``sample_rate_hz``, ``num_channels`` and ``channel_names`` are always written.
    """

    def __init__(self, path: str | Path, sample_rate_hz: float, channel_names: Sequence[str],
                 attrs: dict[str, Any] | None = None) -> None:
        import h5py

        self.path = Path(path)
        self.sample_rate_hz = float(sample_rate_hz)
        self.num_channels = len(channel_names)
        self._file = h5py.File(self.path, "w")
        group = self._file.create_group(EMG2POSE_GROUP)
        chunk_rows = max(1, min(8192, int(sample_rate_hz)))
        self._ds = group.create_dataset(EMG2POSE_TIMESERIES, shape=(0,), maxshape=(None,),
                                        dtype=emg2pose_dtype(self.num_channels),
                                        chunks=(chunk_rows,))
        base = {"sample_rate": self.sample_rate_hz, "sample_rate_hz": self.sample_rate_hz,
                "num_channels": self.num_channels,
                "channel_names": [str(c) for c in channel_names],
                "emg_units": "V", "joint_angle_units": "rad", "time_units": "s"}
        for key, value in {**base, **(attrs or {})}.items():
            group.attrs[key] = _h5_attr(value)
        self.rows = 0

    def append(self, emg: np.ndarray, joint_angles: np.ndarray,
               time_s: np.ndarray | None = None) -> None:
        emg = np.asarray(emg, dtype=np.float32)
        n = emg.shape[0]
        if emg.shape != (n, self.num_channels) or np.shape(joint_angles) != (n, 20):
            raise ValueError(f"expected emg ({n}, {self.num_channels}) and joint_angles ({n}, 20)")
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

    def __enter__(self) -> Emg2PoseWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def write_emg2pose_h5(path: str | Path, emg: np.ndarray, joint_angles: np.ndarray,
                      sample_rate_hz: float, channel_names: Sequence[str] | None = None,
                      attrs: dict[str, Any] | None = None) -> Path:
    """Write a whole recording in the emg2pose layout; returns the path."""
    emg = np.asarray(emg)
    names = list(channel_names) if channel_names else channel_names_for(emg.shape[1])
    with Emg2PoseWriter(path, sample_rate_hz, names, attrs) as w:
        w.append(emg, joint_angles)
    return Path(path)


__all__ = [
    "FORMATS", "MYO_SAMPLE_RATE_HZ", "Emg2PoseWriter", "Recording", "detect_format",
    "emg2pose_dtype", "load_recording", "read_brainflow", "read_eeg_emg_csv",
    "read_emg2pose_h5", "read_merged_csv", "read_myo_txt", "write_emg2pose_h5",
]
