"""The predicted and reference hand poses of a recording, for ``hand_render``.

Sources (read with ``emg_hand_core.recordings``; no rclpy):

* a rosbag2 folder (sqlite3 or MCAP; or one of its .db3/.mcap files): the
  ``sensor_msgs/msg/JointState`` streams ``hand/joint_states`` (predicted) and
  ``hand/reference/joint_states`` (reference), under any namespace
  (:func:`emg_hand_core.recordings.rosbag2.read_joint_tracks`);
* an ``.npz`` file with ``t`` (N,) [s], ``q_pred`` (N, 20) and/or ``q_ref`` (N, 20) [rad]
  (optionally ``t_ref`` when the reference has its own times), e.g. from an evaluation;
* any other recording with joint angles (emg2pose HDF5, ...): its joint angles are the
  reference.

Times are made relative to the earliest pose, in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emg_hand_core.hand_plot import Series
from emg_hand_core.recordings import DataError, load_recording
from emg_hand_core.recordings.rosbag2 import looks_like as is_bag
from emg_hand_core.recordings.rosbag2 import read_joint_tracks
from emg_hand_core.topics import JOINT_STATES_TOPIC, REFERENCE_TOPIC

PREDICTED_TOPIC = JOINT_STATES_TOPIC


class RecordingError(ValueError):
    """A recording that cannot be rendered, with the reason."""


def read_bag(path: str | Path, predicted_topic: str = PREDICTED_TOPIC,
             reference_topic: str = REFERENCE_TOPIC) -> tuple[Series | None, Series | None]:
    """(predicted, reference) series from a rosbag2; either may be None when absent."""
    try:
        tracks = read_joint_tracks(path, [predicted_topic, reference_topic])
    except DataError as exc:
        raise RecordingError(str(exc)) from None
    if not tracks:
        raise RecordingError(f"{path}: no {predicted_topic} or {reference_topic} topic")
    usable = {name: t for name, t in tracks.items() if len(t.stamps_ns)}
    if not usable:
        raise RecordingError(f"{path}: no usable joint states (20 named, finite angles)")
    t0 = min(int(t.stamps_ns[0]) for t in usable.values())
    def series(name: str, label: str) -> Series | None:
        track = usable.get(name)
        if track is None:
            return None
        return Series((track.stamps_ns - t0).astype(np.float64) * 1e-9, track.angles, label)

    return series(predicted_topic, "predicted"), series(reference_topic, "reference")


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


def read_reference(path: str | Path) -> tuple[None, Series]:
    """The joint angles of any recording with them, as the reference series."""
    try:
        rec = load_recording(path)
    except DataError as exc:
        raise RecordingError(str(exc)) from None
    if rec.joint_angles is None:
        raise RecordingError(f"{path}: no joint angles to draw (it holds "
                             f"{rec.describe_labels()})")
    ok = rec.valid_labels()
    t = rec.timestamps_s if rec.timestamps_s is not None else (
        np.arange(rec.num_samples) / rec.sample_rate_hz)
    return None, Series(t[ok] - t[ok][0], rec.joint_angles[ok], "reference")


def read_recording(path: str | Path, predicted_topic: str = PREDICTED_TOPIC,
                   reference_topic: str = REFERENCE_TOPIC) -> tuple[Series | None,
                                                                    Series | None]:
    """Dispatch on the kind of ``path``: rosbag2, .npz, or another recording format."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path} does not exist")
    if is_bag(path):
        return read_bag(path, predicted_topic, reference_topic)
    if path.suffix == ".npz":
        return read_npz(path)
    return read_reference(path)


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
