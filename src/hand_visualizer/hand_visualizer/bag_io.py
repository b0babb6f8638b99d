"""Reading predicted and reference hand poses from recordings, for ``hand_render``.

Sources:

* a rosbag2 folder (sqlite3 or MCAP; or one of its .db3/.mcap files), read with the
  ``rosbags`` library (no ROS needed): ``sensor_msgs/msg/JointState`` on
  ``hand/joint_states`` (predicted) and ``hand/reference/joint_states`` (reference), under
  any namespace;
* an ``.npz`` file with ``t`` (N,) [s], ``q_pred`` (N, 20) and/or ``q_ref`` (N, 20) [rad]
  (optionally ``t_ref`` when the reference has its own times), e.g. from an evaluation;
* an emg2pose-format HDF5 file (group ``emg2pose``, dataset ``timeseries`` with ``time`` and
  ``joint_angles``): its joint angles are the reference.

Times come from header stamps (the bag's receive time when a stamp is zero) and are made
relative to the earliest message, in seconds. Pure: no rclpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emg_pose_node.hand_model import JOINT_NAMES, NUM_JOINTS
from emg_pose_node.hand_plot import Series

PREDICTED_TOPIC = "hand/joint_states"
REFERENCE_TOPIC = "hand/reference/joint_states"


class RecordingError(ValueError):
    """A recording that cannot be rendered, with the reason."""


def _match_topic(available: list[str], wanted: str) -> str | None:
    """The bag topic for a relative name: exact (``/name``) or under a namespace."""
    wanted = wanted.strip("/")
    exact = [t for t in available if t.strip("/") == wanted]
    if exact:
        return exact[0]
    namespaced = sorted(t for t in available if t.endswith("/" + wanted))
    # hand/joint_states must not match .../hand/reference/joint_states: the suffix
    # check already requires the whole relative name after a slash.
    return namespaced[0] if namespaced else None


def _reorder(names, positions, topic: str) -> np.ndarray | None:
    values = np.asarray(positions, dtype=np.float64)
    if not len(names):
        return values if values.shape == (NUM_JOINTS,) else None
    where = {n: i for i, n in enumerate(names)}
    if len(names) != values.size or any(n not in where for n in JOINT_NAMES):
        return None
    return values[[where[n] for n in JOINT_NAMES]]


def read_bag(path: str | Path, predicted_topic: str = PREDICTED_TOPIC,
             reference_topic: str = REFERENCE_TOPIC) -> tuple[Series | None, Series | None]:
    """(predicted, reference) series from a rosbag2; either may be None when absent."""
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
    except ImportError as exc:  # not a rosdep key: pip install rosbags
        raise RecordingError("reading bags needs the 'rosbags' Python package "
                             "(pip install rosbags)") from exc
    path = Path(path)
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        path = path.parent
    if not (path / "metadata.yaml").is_file():
        raise RecordingError(f"{path} is not a rosbag2 folder (no metadata.yaml)")
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        topics = sorted({c.topic for c in reader.connections})
        chosen = {}
        for role, wanted in (("predicted", predicted_topic), ("reference", reference_topic)):
            topic = _match_topic(topics, wanted)
            if topic is not None:
                chosen[topic] = role
        if not chosen:
            raise RecordingError(f"{path}: no {predicted_topic} or {reference_topic} topic; "
                                 f"the bag has {topics}")
        data = {role: ([], []) for role in chosen.values()}
        skipped = 0
        connections = [c for c in reader.connections if c.topic in chosen]
        for conn, bag_time_ns, raw in reader.messages(connections=connections):
            if conn.msgtype != "sensor_msgs/msg/JointState":
                raise RecordingError(f"{conn.topic} has type {conn.msgtype}, "
                                     "expected sensor_msgs/msg/JointState")
            msg = reader.deserialize(raw, conn.msgtype)
            q = _reorder(list(msg.name), msg.position, conn.topic)
            if q is None or not np.all(np.isfinite(q)):
                skipped += 1
                continue
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            times, poses = data[chosen[conn.topic]]
            times.append(stamp if stamp else bag_time_ns)
            poses.append(q)
    return _series(data, str(path))


def _series(data: dict, source: str) -> tuple[Series | None, Series | None]:
    starts = [min(times) for times, _ in data.values() if times]
    if not starts:
        raise RecordingError(f"{source}: no usable joint states (20 named, finite angles)")
    t0 = min(starts)
    out = {}
    for role, (times, poses) in data.items():
        if not times:
            continue
        t = (np.asarray(times, dtype=np.int64) - t0).astype(np.float64) * 1e-9
        order = np.argsort(t, kind="stable")
        out[role] = Series(t[order], np.asarray(poses)[order], role)
    return out.get("predicted"), out.get("reference")


def read_npz(path: str | Path) -> tuple[Series | None, Series | None]:
    with np.load(path) as f:
        if "t" not in f or not ({"q_pred", "q_ref"} & set(f.files)):
            raise RecordingError(f"{path}: expected arrays t and q_pred and/or q_ref, "
                                 f"got {f.files}")
        t = f["t"]
        pred = Series(t, f["q_pred"], "predicted") if "q_pred" in f else None
        ref = Series(f["t_ref"] if "t_ref" in f else t, f["q_ref"], "reference") \
            if "q_ref" in f else None
    return pred, ref


def read_emg2pose_hdf5(path: str | Path) -> tuple[Series | None, Series | None]:
    try:
        import h5py
    except ImportError as exc:
        raise RecordingError("reading HDF5 needs h5py") from exc
    with h5py.File(path, "r") as f:
        try:
            ts = f["emg2pose"]["timeseries"]
            t = np.asarray(ts["time"], dtype=np.float64)
            q = np.asarray(ts["joint_angles"], dtype=np.float64)
        except (KeyError, ValueError) as exc:
            raise RecordingError(f"{path}: not an emg2pose file (emg2pose/timeseries with "
                                 f"time and joint_angles): {exc}") from exc
    return None, Series(t - t[0], q, "reference")


def read_recording(path: str | Path, predicted_topic: str = PREDICTED_TOPIC,
                   reference_topic: str = REFERENCE_TOPIC) -> tuple[Series | None,
                                                                    Series | None]:
    """Dispatch on the kind of ``path``: rosbag2 folder/file, .npz, or emg2pose HDF5."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path} does not exist")
    if path.is_dir() or path.suffix in (".mcap", ".db3"):
        return read_bag(path, predicted_topic, reference_topic)
    if path.suffix == ".npz":
        return read_npz(path)
    if path.suffix in (".h5", ".hdf5"):
        return read_emg2pose_hdf5(path)
    raise RecordingError(f"{path}: unknown recording type (a rosbag2 folder, .npz or .hdf5)")


def clip_time(series: Series | None, start_s: float | None,
              end_s: float | None) -> Series | None:
    if series is None:
        return None
    keep = np.ones(series.t.shape, dtype=bool)
    if start_s is not None:
        keep &= series.t >= start_s
    if end_s is not None:
        keep &= series.t <= end_s
    if not keep.any():
        return None
    return Series(series.t[keep], series.q[keep], series.label)
