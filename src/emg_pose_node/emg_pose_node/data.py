"""Recordings: one in-memory form for every EMG source, and the loaders into it.

A :class:`Recording` is EMG (N samples x C channels) at a nominal sample rate with
optional labels on the same sample grid: joint angles (N, 20) [rad] with a label mask,
keypoints (N, 21, 3) [m], named values (N, K) such as finger flexion, timestamps [s].

Sources (:func:`load_recording` picks by path):

* ``*.h5`` / ``*.hdf5``: emg2pose format (group ``emg2pose``, compound dataset
  ``timeseries`` with fields ``time`` [s], ``emg`` (C,) [V], ``joint_angles`` (20,) [rad];
  attributes on the dataset, the group or the file, all optional: ``sample_rate_hz`` /
  ``sample_rate`` / ``sampling_rate`` / ``fs`` [Hz] (else from ``time``), ``channel_names``
  (list or comma-separated string), ``side``).
  Rows whose angles are all zero are failed labels (emg2pose's IK failures): masked.
  The simulator's offline recorder writes this format.
* a rosbag2 directory (sqlite3 or MCAP) of our topics: ``emg/raw`` (emg_interfaces/msg/EMG
  chunks) and ``hand/reference/joint_states`` (sensor_msgs/JointState), read with
  ``rosbags``, no ROS needed.
* ``../shared/data/eeg_emg_hands``: ``emg_mp_*.csv`` (finger values + ch_1..ch_16 [uV]),
  ``merged/data_*.csv`` (finger angle / pi + ch_k_raw [uV]), a ``s_04_29_25/r_*`` folder
  (``exg.csv`` [uV] + ``prompt.csv`` targets, 250 Hz from ``frequency_info.json``).
* ``myo_readings`` ``*.txt``: ``c1..c8,label`` int8 counts at about 200 Hz, gesture labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .hand_model import JOINT_NAMES, NUM_JOINTS, NUM_KEYPOINTS, forward_kinematics

FINGER_VALUE_NAMES = ("thumb", "index", "middle", "ring", "pinky")
MICROVOLT = 1e-6


class DataError(ValueError):
    """A recording could not be read or is inconsistent; the message says why."""


@dataclass
class Recording:
    """EMG with optional labels on the same sample grid (see module docstring)."""

    emg: np.ndarray  # (N, C) float32, in emg_unit
    sample_rate_hz: float
    channel_names: tuple[str, ...]
    timestamps_s: np.ndarray | None = None  # (N,) [s]
    joint_angles: np.ndarray | None = None  # (N, 20) [rad], JOINT_NAMES order
    keypoints: np.ndarray | None = None  # (N, 21, 3) [m]
    values: np.ndarray | None = None  # (N, K), named by value_names
    value_names: tuple[str, ...] = ()
    label_mask: np.ndarray | None = None  # (N,) bool: labels valid at this sample
    emg_valid: np.ndarray | None = None  # (N,) bool: False = gap-filled (dropped) EMG
    gesture: np.ndarray | None = None  # (N,) int class labels (myo)
    emg_unit: str = "V"
    side: str = "right"
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.emg = np.asarray(self.emg, dtype=np.float32)
        if self.emg.ndim != 2 or self.emg.shape[0] == 0:
            raise DataError(f"{self.source}: EMG must be (samples, channels), got {self.emg.shape}")
        n, c = self.emg.shape
        self.channel_names = tuple(self.channel_names) or tuple(f"ch_{i + 1}" for i in range(c))
        self.value_names = tuple(self.value_names)
        if len(self.channel_names) != c:
            raise DataError(f"{self.source}: {c} EMG channels but {len(self.channel_names)} names")
        if not (np.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0):
            raise DataError(f"{self.source}: bad sample rate {self.sample_rate_hz}")
        if not np.all(np.isfinite(self.emg)):
            raise DataError(f"{self.source}: EMG contains NaN or inf")
        shapes = {"timestamps_s": (n,), "joint_angles": (n, NUM_JOINTS),
                  "keypoints": (n, NUM_KEYPOINTS, 3), "label_mask": (n,), "emg_valid": (n,),
                  "gesture": (n,)}
        if self.values is not None:
            shapes["values"] = (n, len(self.value_names))
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise DataError(f"{self.source}: {name} has shape {np.shape(value)}, "
                                f"expected {shape}")
        for name in ("label_mask", "emg_valid"):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=bool))

    # --- properties ----------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return self.emg.shape[0]

    @property
    def num_channels(self) -> int:
        return self.emg.shape[1]

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate_hz

    def valid_labels(self) -> np.ndarray:
        """(N,) bool: rows whose labels (and EMG) are usable."""
        mask = np.ones(self.num_samples, bool) if self.label_mask is None else self.label_mask
        return mask if self.emg_valid is None else mask & self.emg_valid

    def targets(self, output: str, names: tuple[str, ...] = ()) -> np.ndarray:
        """Labels for an output convention (see :mod:`network`): (N, out) float32.

        "keypoints" uses recorded keypoints or, failing that, forward kinematics of the
        joint angles; "values" picks ``names`` from :attr:`value_names`.
        """
        if output == "joint_angles":
            if self.joint_angles is None:
                raise DataError(f"{self.source}: no joint angles to train joint_angles on")
            return self.joint_angles.astype(np.float32)
        if output == "keypoints":
            if self.keypoints is not None:
                kp = self.keypoints
            elif self.joint_angles is not None:
                kp = forward_kinematics(self.joint_angles)
            else:
                raise DataError(f"{self.source}: no keypoints or joint angles")
            return kp.reshape(self.num_samples, -1).astype(np.float32)
        if output == "values":
            if self.values is None:
                raise DataError(f"{self.source}: no named values (e.g. finger values)")
            missing = [n for n in names if n not in self.value_names]
            if missing:
                raise DataError(f"{self.source}: values {missing} not in {self.value_names}")
            idx = [self.value_names.index(n) for n in names]
            return self.values[:, idx].astype(np.float32)
        raise DataError(f"unknown output convention {output!r}")

    def select_channels(self, names: list[str] | tuple[str, ...]) -> Recording:
        """A copy with only the named EMG channels, in the given order."""
        missing = [n for n in names if n not in self.channel_names]
        if missing:
            raise DataError(f"{self.source}: channels {missing} not in {list(self.channel_names)}")
        idx = [self.channel_names.index(n) for n in names]
        return replace(self, emg=self.emg[:, idx], channel_names=tuple(names))

    def slice(self, start: int, stop: int) -> Recording:
        """Samples [start, stop) as a new recording."""
        def cut(a):
            return None if a is None else a[start:stop]
        return replace(self, emg=self.emg[start:stop], timestamps_s=cut(self.timestamps_s),
                       joint_angles=cut(self.joint_angles), keypoints=cut(self.keypoints),
                       values=cut(self.values), label_mask=cut(self.label_mask),
                       emg_valid=cut(self.emg_valid), gesture=cut(self.gesture))

    def summary(self) -> dict:
        """Plain-data description (stored in checkpoints as training-data summary)."""
        valid = self.valid_labels()
        labels = [name for name in ("joint_angles", "keypoints", "values", "gesture")
                  if getattr(self, name) is not None]
        return {"source": self.source, "num_samples": int(self.num_samples),
                "duration_s": round(float(self.duration_s), 3),
                "sample_rate_hz": float(self.sample_rate_hz),
                "channel_names": list(self.channel_names), "labels": labels,
                "value_names": list(self.value_names), "emg_unit": self.emg_unit,
                "labelled_fraction": round(float(valid.mean()), 4)}


def usable_channels(rec: Recording, rel_threshold: float = 0.15) -> tuple[str, ...]:
    """Names of channels whose RMS is at least ``rel_threshold`` x the largest channel RMS."""
    rms = np.sqrt(np.mean(np.square(rec.emg - rec.emg.mean(axis=0)), axis=0))
    keep = rms >= rel_threshold * rms.max()
    return tuple(n for n, k in zip(rec.channel_names, keep) if k)


def resample_recording(rec: Recording, rate_hz: float) -> Recording:
    """Resample EMG (polyphase, anti-aliased) and labels (linear / nearest) to ``rate_hz``."""
    from fractions import Fraction

    from scipy import signal

    if abs(rate_hz - rec.sample_rate_hz) < 1e-9:
        return rec
    ratio = Fraction(rate_hz / rec.sample_rate_hz).limit_denominator(1000)
    emg = signal.resample_poly(rec.emg.astype(np.float64), ratio.numerator, ratio.denominator,
                               axis=0)
    n = emg.shape[0]
    t_old = np.arange(rec.num_samples) / rec.sample_rate_hz
    t_new = np.arange(n) / rate_hz

    def lin(a):
        if a is None:
            return None
        flat = a.reshape(len(a), -1)
        out = np.stack([np.interp(t_new, t_old, flat[:, j]) for j in range(flat.shape[1])], 1)
        return out.reshape((n,) + a.shape[1:])

    def nearest(a):
        if a is None:
            return None
        idx = np.clip(np.round(t_new * rec.sample_rate_hz).astype(int), 0, rec.num_samples - 1)
        return a[idx]

    mask = rec.label_mask
    if mask is not None:  # a resampled row is valid only if both neighbours were
        lo = np.clip(np.floor(t_new * rec.sample_rate_hz).astype(int), 0, rec.num_samples - 1)
        hi = np.clip(lo + 1, 0, rec.num_samples - 1)
        mask = mask[lo] & mask[hi]
    ts = None if rec.timestamps_s is None else rec.timestamps_s[0] + t_new
    return replace(rec, emg=emg.astype(np.float32), sample_rate_hz=float(rate_hz),
                   timestamps_s=ts, joint_angles=lin(rec.joint_angles),
                   keypoints=lin(rec.keypoints), values=lin(rec.values), label_mask=mask,
                   emg_valid=nearest(rec.emg_valid), gesture=nearest(rec.gesture))


# --- CSV: eeg_emg_hands --------------------------------------------------------------


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().strip().split(",")
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read CSV: {exc}") from exc
    if data.shape[1] != len(header):
        raise DataError(f"{path}: {len(header)} header columns but {data.shape[1]} data columns")
    if len(data) < 2:
        raise DataError(f"{path}: fewer than 2 rows")
    return header, data


def _rate_from_ms(t_ms: np.ndarray, source) -> float:
    span = (t_ms[-1] - t_ms[0]) / 1000.0
    if span <= 0:
        raise DataError(f"{source}: timestamps do not increase")
    return (len(t_ms) - 1) / span


def load_eeg_emg_hands_csv(path: str | Path, channels: list[str] | None = None) -> Recording:
    """``emg_mp_*.csv`` or ``merged/data_*.csv`` of eeg_emg_hands (EMG converted uV -> V).

    Rows are consecutive device samples; the logged millisecond timestamps jitter, so the
    nominal rate is the mean rate over the file and rows are not resampled.
    """
    path = Path(path)
    header, data = _read_csv(path)
    col = {name: i for i, name in enumerate(header)}
    missing = [n for n in ("timestamp",) + FINGER_VALUE_NAMES if n not in col]
    if missing:
        raise DataError(f"{path}: not an eeg_emg_hands CSV, missing columns {missing}")
    if any(h.endswith("_raw") for h in header):  # merged: ch_k_raw + envelopes
        names = [h[:-4] for h in header if h.startswith("ch_") and h.endswith("_raw")]
        emg_cols = [col[n + "_raw"] for n in names]
        kind = "merged (finger angle / pi)"
    else:
        names = [h for h in header if h.startswith("ch_")]
        emg_cols = [col[n] for n in names]
        kind = "emg_mp (finger straightness, 1 = extended)"
    if not names:
        raise DataError(f"{path}: no EMG channel columns")
    t_ms = data[:, col["timestamp"]]
    rec = Recording(
        emg=data[:, emg_cols] * MICROVOLT, sample_rate_hz=_rate_from_ms(t_ms, path),
        channel_names=tuple(names), timestamps_s=(t_ms - t_ms[0]) / 1000.0,
        values=data[:, [col[n] for n in FINGER_VALUE_NAMES]], value_names=FINGER_VALUE_NAMES,
        source=str(path), meta={"format": "eeg_emg_hands", "kind": kind})
    return rec.select_channels(channels) if channels else rec


def load_eeg_emg_hands_prompted(folder: str | Path, channels: list[str] | None = None,
                                sample_rate_hz: float | None = None) -> Recording:
    """A ``s_04_29_25/r_*`` folder: raw exg.csv [uV] + prompt.csv per-finger 0/1 targets.

    Each EMG sample is labelled with the latest prompt; samples before the first prompt
    are masked. The rate comes from ``../frequency_info.json`` (``exg_fs``) if present.
    """
    folder = Path(folder)
    header, data = _read_csv(folder / "exg.csv")
    p_header, prompts = _read_csv(folder / "prompt.csv")
    if sample_rate_hz is None:
        info = folder.parent / "frequency_info.json"
        if info.exists():
            sample_rate_hz = float(json.loads(info.read_text())["exg_fs"])
        else:
            sample_rate_hz = _rate_from_ms(data[:, 0], folder)
    names = [h.replace("exg_", "ch_") for h in header[1:]]
    t = data[:, 0]
    idx = np.searchsorted(prompts[:, 0], t, side="right") - 1
    mask = idx >= 0
    pcol = {n: i for i, n in enumerate(p_header)}
    values = prompts[np.clip(idx, 0, None)][:, [pcol[n] for n in FINGER_VALUE_NAMES]]
    rec = Recording(emg=data[:, 1:] * MICROVOLT, sample_rate_hz=sample_rate_hz,
                    channel_names=tuple(names), timestamps_s=(t - t[0]) / 1000.0, values=values,
                    value_names=FINGER_VALUE_NAMES, label_mask=mask, source=str(folder),
                    meta={"format": "eeg_emg_hands_prompted", "kind": "prompted 0/1 targets"})
    return rec.select_channels(channels) if channels else rec


# --- myo_readings --------------------------------------------------------------------


def load_myo_txt(path: str | Path, sample_rate_hz: float = 200.0) -> Recording:
    """A myo_readings file: ``c1..c8,label`` per line, int8 counts; gesture labels 0..7."""
    path = Path(path)
    try:
        data = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read myo text: {exc}") from exc
    if data.shape[1] != 9:
        raise DataError(f"{path}: expected 9 columns (c1..c8,label), got {data.shape[1]}")
    return Recording(emg=data[:, :8], sample_rate_hz=sample_rate_hz,
                     channel_names=tuple(f"ch_{i}" for i in range(1, 9)),
                     gesture=data[:, 8].astype(int), emg_unit="counts", source=str(path),
                     meta={"format": "myo_readings"})


# --- emg2pose HDF5 -------------------------------------------------------------------


def _attr(attrs_list, *names):
    for attrs in attrs_list:
        for name in names:
            if name in attrs:
                return attrs[name]
    return None


def load_emg2pose_hdf5(path: str | Path) -> Recording:
    """emg2pose-format HDF5 (see module docstring); all-zero angle rows are masked."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "emg2pose" not in f or "timeseries" not in f["emg2pose"]:
                raise DataError(f"{path}: no emg2pose/timeseries dataset")
            ds = f["emg2pose"]["timeseries"]
            fields = ds.dtype.fields or {}
            missing = [n for n in ("time", "emg", "joint_angles") if n not in fields]
            if missing:
                raise DataError(f"{path}: emg2pose/timeseries lacks fields {missing}")
            ts = ds[()]
            attrs = [dict(ds.attrs), dict(f["emg2pose"].attrs), dict(f.attrs)]
    except OSError as exc:
        raise DataError(f"{path}: cannot read HDF5: {exc}") from exc
    t = np.asarray(ts["time"], dtype=np.float64)
    emg = np.asarray(ts["emg"], dtype=np.float32)
    angles = np.asarray(ts["joint_angles"], dtype=np.float64)
    if emg.ndim == 1:
        emg = emg[:, None]
    if angles.shape[1:] != (NUM_JOINTS,):
        raise DataError(f"{path}: joint_angles has shape {angles.shape[1:]}, expected (20,)")
    rate = _attr(attrs, "sample_rate_hz", "sample_rate", "sampling_rate", "fs")
    if rate is None:
        if len(t) < 2 or t[-1] <= t[0]:
            raise DataError(f"{path}: no sample rate attribute and no usable time field")
        rate = (len(t) - 1) / (t[-1] - t[0])
    names = _attr(attrs, "channel_names")
    if isinstance(names, bytes):
        names = names.decode()
    if isinstance(names, str):  # one comma-separated string
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names) if (
        names is not None) else ()
    side = _attr(attrs, "side")
    if isinstance(side, bytes):
        side = side.decode()
    side = "right" if side is None else str(side)
    side = side.lower() if side.lower() in ("left", "right") else "right"
    mask = ~np.all(np.isclose(angles, 0.0), axis=1) & np.all(np.isfinite(angles), axis=1)
    angles = np.where(np.isfinite(angles), angles, 0.0)
    return Recording(emg=emg, sample_rate_hz=float(rate), channel_names=names,
                     timestamps_s=t, joint_angles=angles, label_mask=mask, side=side,
                     source=str(path), meta={"format": "emg2pose"})


def write_emg2pose_hdf5(path: str | Path, rec: Recording) -> None:
    """Write a recording with joint angles in the emg2pose format (masked rows as zeros)."""
    import h5py

    if rec.joint_angles is None:
        raise DataError("emg2pose format needs joint angles")
    c = rec.num_channels
    dtype = np.dtype([("time", "f8"), ("emg", "f4", (c,)), ("joint_angles", "f8", (NUM_JOINTS,))])
    table = np.zeros(rec.num_samples, dtype=dtype)
    table["time"] = (rec.timestamps_s if rec.timestamps_s is not None
                     else np.arange(rec.num_samples) / rec.sample_rate_hz)
    table["emg"] = rec.emg
    mask = rec.valid_labels()
    table["joint_angles"] = np.where(mask[:, None], rec.joint_angles, 0.0)
    with h5py.File(path, "w") as f:
        ds = f.create_group("emg2pose").create_dataset("timeseries", data=table)
        ds.attrs["sample_rate"] = rec.sample_rate_hz
        ds.attrs["channel_names"] = list(rec.channel_names)
        ds.attrs["num_channels"] = c
        ds.attrs["side"] = rec.side


# --- rosbag2 -------------------------------------------------------------------------

EMG_TYPE = "emg_interfaces/msg/EMG"


def emg_msg_definition() -> str:
    """Text of emg_interfaces/msg/EMG.msg: from the installed package, else the source tree."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("emg_interfaces")) / "msg" / "EMG.msg")
    except Exception:
        pass
    candidates.append(Path(__file__).resolve().parents[2] / "emg_interfaces" / "msg" / "EMG.msg")
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise DataError("cannot find emg_interfaces/msg/EMG.msg (install emg_interfaces)")


def ros_typestore():
    """A rosbags typestore of ROS 2 Jazzy plus our emg_interfaces/msg/EMG."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    store.register(get_types_from_msg(emg_msg_definition(), EMG_TYPE))
    return store


def _topic_matches(topic: str, name: str) -> bool:
    topic, name = topic.strip("/"), name.strip("/")
    return topic == name or topic.endswith("/" + name)


def _stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def load_rosbag(path: str | Path, emg_topic: str = "emg/raw",
                joint_state_topic: str = "hand/reference/joint_states",
                max_label_gap_s: float = 0.1) -> Recording:
    """A rosbag2 of ``emg/raw`` EMG chunks and (optionally) reference joint states.

    Chunks are placed by ``first_sample_index``; dropped samples become zero rows with
    ``emg_valid`` False. Joint states (by name, any order) are linearly interpolated to each
    EMG sample's time (``header.stamp + k / sample_rate_hz``); samples outside the joint
    state stream or between states further apart than ``max_label_gap_s`` are masked.
    Topics match with or without a namespace prefix.
    """
    from rosbags.highlevel import AnyReader

    path = Path(path)
    store = ros_typestore()
    chunks, states = [], []
    try:
        with AnyReader([path], default_typestore=store) as reader:
            emg_conns = [c for c in reader.connections if _topic_matches(c.topic, emg_topic)]
            js_conns = [c for c in reader.connections
                        if _topic_matches(c.topic, joint_state_topic)]
            if not emg_conns:
                raise DataError(f"{path}: no {emg_topic} topic "
                                f"(topics: {sorted({c.topic for c in reader.connections})})")
            for conn, stamp_ns, raw in reader.messages(connections=emg_conns + js_conns):
                msg = reader.deserialize(raw, conn.msgtype)
                if conn in js_conns:
                    t = _stamp_s(msg.header.stamp) or stamp_ns * 1e-9
                    states.append((t, list(msg.name), np.asarray(msg.position, np.float64)))
                else:
                    chunks.append(msg)
    except DataError:
        raise
    except Exception as exc:  # rosbags raises several types for unreadable bags
        raise DataError(f"{path}: cannot read rosbag2: {exc}") from exc
    if not chunks:
        raise DataError(f"{path}: no messages on {emg_topic}")
    names = tuple(chunks[0].channel_names)
    rate = float(chunks[0].sample_rate_hz)
    c = len(names)
    chunks.sort(key=lambda m: m.first_sample_index)
    start = int(chunks[0].first_sample_index)
    end = max(int(m.first_sample_index) + int(m.num_samples) for m in chunks)
    n = end - start
    emg = np.zeros((n, c), np.float32)
    valid = np.zeros(n, bool)
    times = np.full(n, np.nan)
    for m in chunks:
        if tuple(m.channel_names) != names or abs(float(m.sample_rate_hz) - rate) > 1e-9:
            raise DataError(f"{path}: channel layout or sample rate changes within {emg_topic}")
        k = int(m.num_samples)
        data = np.asarray(m.data, np.float32)
        if data.size != k * c:
            raise DataError(f"{path}: chunk at index {m.first_sample_index} has {data.size} "
                            f"values for {k} samples x {c} channels")
        i = int(m.first_sample_index) - start
        emg[i:i + k] = data.reshape(k, c)
        valid[i:i + k] = True
        times[i:i + k] = _stamp_s(m.header.stamp) + np.arange(k) / rate
    known = np.flatnonzero(valid)
    times = np.interp(np.arange(n), known, times[known])
    joint_angles = mask = None
    if states:
        states.sort(key=lambda s: s[0])
        t_js = np.array([s[0] for s in states])
        q = np.zeros((len(states), NUM_JOINTS))
        for row, (_, js_names, pos) in enumerate(states):
            missing = [j for j in JOINT_NAMES if j not in js_names]
            if missing:
                raise DataError(f"{path}: {joint_state_topic} lacks joints {missing}")
            q[row] = pos[[js_names.index(j) for j in JOINT_NAMES]]
        joint_angles = np.stack([np.interp(times, t_js, q[:, j]) for j in range(NUM_JOINTS)], 1)
        after = np.searchsorted(t_js, times, side="left")
        before = np.clip(after - 1, 0, len(t_js) - 1)
        after_c = np.clip(after, 0, len(t_js) - 1)
        gap = np.where(t_js[after_c] == times, 0.0, t_js[after_c] - t_js[before])
        mask = (times >= t_js[0]) & (times <= t_js[-1]) & (gap <= max_label_gap_s)
    return Recording(emg=emg, sample_rate_hz=rate, channel_names=names, timestamps_s=times,
                     joint_angles=joint_angles, label_mask=mask, emg_valid=valid,
                     source=str(path), meta={"format": "rosbag2", "first_sample_index": start})


def write_rosbag(path: str | Path, rec: Recording, chunk_samples: int = 5,
                 emg_topic: str = "/emg/raw",
                 joint_state_topic: str = "/hand/reference/joint_states",
                 joint_state_every: int = 4, storage: str = "sqlite3",
                 drop_chunks: tuple[int, ...] = ()) -> None:
    """Write a recording as a rosbag2 of our topics (tests, examples).

    ``drop_chunks``: chunk numbers left out, to make gaps.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = ros_typestore()
    emg_cls = store.types[EMG_TYPE]
    header_cls = store.types["std_msgs/msg/Header"]
    time_cls = store.types["builtin_interfaces/msg/Time"]
    js_cls = store.types["sensor_msgs/msg/JointState"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    t0 = 1_700_000_000.0
    ts = rec.timestamps_s if rec.timestamps_s is not None else (
        np.arange(rec.num_samples) / rec.sample_rate_hz)

    def stamp(t):
        ns = int(round((t0 + t) * 1e9))
        return time_cls(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    with Writer(path, version=9, storage_plugin=plugin) as writer:
        emg_conn = writer.add_connection(emg_topic, EMG_TYPE, typestore=store)
        js_conn = (writer.add_connection(joint_state_topic, "sensor_msgs/msg/JointState",
                                         typestore=store)
                   if rec.joint_angles is not None else None)
        for k, i in enumerate(range(0, rec.num_samples, chunk_samples)):
            block = rec.emg[i:i + chunk_samples]
            msg = emg_cls(header=header_cls(stamp=stamp(ts[i]), frame_id="emg_armband"),
                          sample_rate_hz=float(rec.sample_rate_hz),
                          channel_names=list(rec.channel_names), first_sample_index=i,
                          num_samples=len(block),
                          data=np.ascontiguousarray(block, np.float32).ravel())
            t_ns = int(round((t0 + ts[i]) * 1e9))
            if k not in drop_chunks:
                writer.write(emg_conn, t_ns, bytes(store.serialize_cdr(msg, EMG_TYPE)))
            if js_conn is None:
                continue
            for j in range(i, min(i + chunk_samples, rec.num_samples)):
                if j % joint_state_every:
                    continue
                js = js_cls(header=header_cls(stamp=stamp(ts[j]), frame_id=""),
                            name=list(JOINT_NAMES),
                            position=rec.joint_angles[j].astype(np.float64),
                            velocity=np.zeros(0), effort=np.zeros(0))
                writer.write(js_conn, int(round((t0 + ts[j]) * 1e9)),
                             bytes(store.serialize_cdr(js, "sensor_msgs/msg/JointState")))


# --- dispatch ------------------------------------------------------------------------

FORMATS = ("auto", "emg2pose", "rosbag2", "eeg_emg_hands", "eeg_emg_hands_prompted", "myo")


def detect_format(path: str | Path) -> str:
    path = Path(path)
    if path.is_dir():
        if (path / "metadata.yaml").exists() or any(path.glob("*.mcap")) or any(
                path.glob("*.db3")):
            return "rosbag2"
        if (path / "exg.csv").exists() and (path / "prompt.csv").exists():
            return "eeg_emg_hands_prompted"
        raise DataError(f"{path}: directory is neither a rosbag2 nor an exg/prompt folder")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return "emg2pose"
    if suffix in (".mcap", ".db3"):
        return "rosbag2"
    if suffix == ".csv":
        return "eeg_emg_hands"
    if suffix == ".txt":
        return "myo"
    raise DataError(f"{path}: unknown recording format (suffix {suffix!r})")


def load_recording(path: str | Path, format: str = "auto", channels: list[str] | None = None,
                   **options) -> Recording:
    """Load any supported recording (see module docstring); ``channels`` selects EMG columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "emg2pose":
        rec = load_emg2pose_hdf5(path)
    elif fmt == "rosbag2":
        rec = load_rosbag(path.parent if path.is_file() else path, **options)
    elif fmt == "eeg_emg_hands":
        rec = load_eeg_emg_hands_csv(path)
    elif fmt == "eeg_emg_hands_prompted":
        rec = load_eeg_emg_hands_prompted(path, **options)
    elif fmt == "myo":
        rec = load_myo_txt(path, **options)
    else:
        raise DataError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    return rec.select_channels(channels) if channels else rec
