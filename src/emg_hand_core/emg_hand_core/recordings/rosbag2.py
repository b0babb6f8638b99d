"""rosbag2 folders (sqlite3 or MCAP) of our topics, read and written with ``rosbags`` (no ROS).

Reading a recording: ``emg/raw`` (``emg_interfaces/msg/EMG`` chunks, decoded by
:func:`~emg_hand_core.emg_codec.decode_emg`) and, where present, a reference pose
(``sensor_msgs/msg/JointState`` on ``hand/reference/joint_states``, joints by name in any
order). Topics match with or without a namespace prefix. Chunks are placed on the sample
grid by ``first_sample_index``; dropped samples become zero rows with ``emg_valid`` False.
Joint states are interpolated onto each EMG sample's time (``header.stamp + k /
sample_rate_hz``) with :func:`~emg_hand_core.tracks.interpolate_track`. Joint-state
messages that cannot be ordered (missing joints, NaN) are skipped and counted.

A bag of a guided calibration (``calibration/prompt``, ``emg_interfaces/msg/CalibrationPrompt``)
also gives gesture labels: each EMG sample gets the prompt state it was acquired in (HOLD:
the prompted pose; REST: ``rest``; get-ready and done: unlabelled), leaving out the first
``transition_s`` after every change of state (the wearer is moving); ``gesture_names`` are
``rest`` and the prompted poses in order of appearance.

:func:`read_joint_tracks` gives the joint-state streams themselves (the predicted and the
reference pose of a session, for rendering).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..emg_codec import EMG_TYPE, EmgDecodeError, decode_emg, encode_emg, rosbags_types, stamp_to_ns
from ..hand_model import JOINT_NAMES
from ..names import JOINT_ORDER, NameOrder, NameOrderError
from ..topics import EMG_TOPIC, PROMPT_TOPIC, REFERENCE_TOPIC, find_topic
from ..tracks import DEFAULT_MAX_GAP_S, interpolate_track
from .recording import DataError, Recording

JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
PROMPT_TYPE = "emg_interfaces/msg/CalibrationPrompt"
PROMPT_HOLD, PROMPT_REST = 1, 2  # CalibrationPrompt.PHASE_HOLD, PHASE_REST
DEFAULT_TRANSITION_S = 1.0


def bag_folder(path: str | Path) -> Path:
    """The bag folder of ``path`` (the folder itself, or the folder of a .mcap/.db3 file)."""
    path = Path(path)
    return path.parent if path.is_file() else path


def _open(path: Path):
    from rosbags.highlevel import AnyReader

    from ..bag_types import typestore

    return AnyReader([path], default_typestore=typestore())


@dataclass
class JointTrack:
    """One JointState topic of a bag: stamps [ns] and the angles (M, n) [rad] (the 20 of the
    hand, or the joints asked for)."""

    topic: str
    stamps_ns: np.ndarray
    angles: np.ndarray
    skipped: int = 0  # messages that could not be ordered into the 20 joints


def _scan(path: Path, emg_topic: str | None, js_topics: Sequence[str],
          names: NameOrder = JOINT_ORDER, prompt_topic: str | None = None):
    """One pass over a bag: (EMG chunks, malformed EMG count, {js name: JointTrack} with the
    joint states in the order of ``names``, prompts [(stamp_ns, phase, pose_name, index)])."""
    if not (path / "metadata.yaml").is_file():
        raise DataError(f"{path}: not a rosbag2 folder (no metadata.yaml)")
    chunks = []
    malformed = 0
    found: dict[str, tuple[list[int], list[np.ndarray], list[int]]] = {}
    prompts: list[tuple[int, int, str, int]] = []
    try:
        with _open(path) as reader:
            available = sorted({c.topic for c in reader.connections})
            role: dict[str, str | None] = {}  # bag topic -> js name (None: the EMG topic)
            if emg_topic is not None:
                topic = find_topic(available, emg_topic)
                if topic is None:
                    raise DataError(f"{path}: no {emg_topic} topic (topics: {available})")
                role[topic] = None
            for name in js_topics:
                topic = find_topic(available, name)
                if topic is not None and topic not in role:
                    role[topic] = name
            prompt = find_topic(available, prompt_topic) if prompt_topic else None
            if prompt is not None and prompt not in role:
                role[prompt] = PROMPT_TYPE
            connections = [c for c in reader.connections if c.topic in role]
            for conn in connections:
                wanted = {None: EMG_TYPE, PROMPT_TYPE: PROMPT_TYPE}.get(role[conn.topic],
                                                                       JOINT_STATE_TYPE)
                if conn.msgtype != wanted:
                    raise DataError(f"{path}: {conn.topic} has type {conn.msgtype}, expected "
                                    f"{wanted}")
            for conn, log_ns, raw in reader.messages(connections=connections):
                msg = reader.deserialize(raw, conn.msgtype)
                name = role[conn.topic]
                if name is None:
                    try:
                        chunks.append(decode_emg(msg))
                    except EmgDecodeError:
                        malformed += 1
                    continue
                if name == PROMPT_TYPE:
                    stamp = stamp_to_ns(msg.header.stamp)
                    prompts.append((stamp if stamp else log_ns, int(msg.phase),
                                    str(msg.pose_name), int(msg.index)))
                    continue
                stamps, poses, skipped = found.setdefault(name, ([], [], [0]))
                try:
                    q = names.order(list(msg.name), msg.position)
                except NameOrderError:
                    skipped[0] += 1
                    continue
                stamp = stamp_to_ns(msg.header.stamp)
                stamps.append(stamp if stamp else log_ns)
                poses.append(q)
    except DataError:
        raise
    except Exception as exc:  # rosbags raises several types for unreadable bags
        raise DataError(f"{path}: cannot read rosbag2: {exc}") from exc
    tracks = {}
    for name, (stamps, poses, skipped) in found.items():
        t = np.asarray(stamps, dtype=np.int64)
        order = np.argsort(t, kind="stable")
        q = np.asarray(poses, dtype=np.float64).reshape(-1, len(names))
        topic = next(t for t, n in role.items() if n == name)
        tracks[name] = JointTrack(topic, t[order], q[order], skipped[0])
    return chunks, malformed, tracks, sorted(prompts)


def prompt_labels(prompts: Sequence[tuple[int, int, str, int]], times_s: np.ndarray,
                  transition_s: float = DEFAULT_TRANSITION_S
                  ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Gesture labels (N,) (-1 unlabelled) and class names for sample times [s] from
    CalibrationPrompt messages [(stamp_ns, phase, pose_name, index)] (module docstring)."""
    starts, states = [], []
    for stamp, phase, pose, index in sorted(prompts):
        if not states or states[-1] != (phase, pose, index):
            starts.append(stamp * 1e-9)
            states.append((phase, pose, index))
    names = ["rest"]
    for phase, pose, _ in states:
        if phase == PROMPT_HOLD and pose and pose not in names:
            names.append(pose)
    codes = np.array([names.index(pose) if phase == PROMPT_HOLD and pose else
                      0 if phase == PROMPT_REST else -1 for phase, pose, _ in states] + [-1])
    t = np.asarray(times_s, dtype=np.float64)
    k = np.searchsorted(np.asarray(starts), t, side="right") - 1
    labels = np.where(k >= 0, codes[k], -1)
    settled = (k >= 0) & (t - np.asarray(starts + [0.0])[k] >= transition_s)
    return np.where(settled, labels, -1).astype(np.int64), tuple(names)


def read_joint_tracks(path: str | Path, topics: Sequence[str],
                      joint_names: Sequence[str] | None = None) -> dict[str, JointTrack]:
    """The JointState streams of a bag named (relative names, any namespace) ``topics``:
    {requested name: track}; a name with no topic in the bag is left out. Stamps are the
    header stamps, or the bag's receive time where a stamp is zero. ``joint_names``: the
    joints to read (default the hand's 20; a robot hand's own, e.g.)."""
    names = JOINT_ORDER if joint_names is None else NameOrder(joint_names)
    return _scan(bag_folder(path), None, topics, names)[2]


def read(path: str | Path, emg_topic: str = EMG_TOPIC, joint_state_topic: str = REFERENCE_TOPIC,
         max_label_gap_s: float = DEFAULT_MAX_GAP_S, prompt_topic: str = PROMPT_TOPIC,
         transition_s: float = DEFAULT_TRANSITION_S) -> Recording:
    """A bag of EMG chunks and (optionally) a reference pose and calibration prompts (see
    module docstring)."""
    path = bag_folder(path)
    chunks, malformed, tracks, prompts = _scan(path, emg_topic, [joint_state_topic],
                                               prompt_topic=prompt_topic)
    if not chunks:
        raise DataError(f"{path}: no usable messages on {emg_topic}")
    names, rate = chunks[0].channel_names, chunks[0].sample_rate_hz
    chunks.sort(key=lambda c: c.first_sample_index)
    start = chunks[0].first_sample_index
    n = max(c.end_index for c in chunks) - start
    emg = np.zeros((n, len(names)), np.float32)
    valid = np.zeros(n, bool)
    times = np.full(n, np.nan)
    for c in chunks:
        if c.channel_names != names or abs(c.sample_rate_hz - rate) > 1e-9:
            raise DataError(f"{path}: channel layout or sample rate changes within {emg_topic}")
        i = c.first_sample_index - start
        emg[i:i + c.num_samples] = c.samples
        valid[i:i + c.num_samples] = np.all(np.isfinite(c.samples), axis=1)
        times[i:i + c.num_samples] = c.stamp_ns * 1e-9 + np.arange(c.num_samples) / rate
    emg[~valid] = 0.0
    known = np.flatnonzero(np.isfinite(times))
    times = np.interp(np.arange(n), known, times[known])
    joint_angles = mask = None
    skipped = 0
    track = tracks.get(joint_state_topic)
    if track is not None and len(track.stamps_ns):
        skipped = track.skipped
        t_ns, keep = np.unique(track.stamps_ns, return_index=True)
        joint_angles, mask = interpolate_track(t_ns * 1e-9, track.angles[keep], times,
                                               max_label_gap_s)
    gesture, gesture_names = (prompt_labels(prompts, times, transition_s) if prompts
                              else (None, ()))
    return Recording(emg=emg, sample_rate_hz=rate, channel_names=names, timestamps_s=times,
                     joint_angles=joint_angles, label_mask=mask, emg_valid=valid,
                     gesture=gesture, gesture_names=gesture_names,
                     source=str(path), format="rosbag2", units_note="volts (emg/raw)",
                     meta={"first_sample_index": start, "malformed_chunks": malformed,
                           "skipped_joint_states": skipped, "prompts": len(prompts)})


def write(path: str | Path, rec: Recording, chunk_samples: int = 5,
          emg_topic: str = "/" + EMG_TOPIC, joint_state_topic: str = "/" + REFERENCE_TOPIC,
          joint_state_every: int = 4, storage: str = "sqlite3",
          drop_chunks: tuple[int, ...] = (), start_s: float = 1_700_000_000.0,
          frame_id: str = "armband",
          prompts: Sequence[tuple[float, int, str, int, int]] = (),
          prompt_topic: str = "/" + PROMPT_TOPIC) -> Path:
    """Write a recording as a rosbag2 of our topics (tests, examples, conversions).

    EMG in chunks of ``chunk_samples``; with joint angles, a JointState every
    ``joint_state_every`` samples. ``drop_chunks``: chunk numbers left out, to make gaps.
    Times are ``start_s`` plus the recording's own times. ``prompts``: CalibrationPrompt
    messages to write, (t_s, phase, pose_name, index, count) on the recording's clock.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from ..bag_types import typestore

    store = typestore()
    types = rosbags_types(store)
    js_cls = store.types[JOINT_STATE_TYPE]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    ts = rec.timestamps_s if rec.timestamps_s is not None else (
        np.arange(rec.num_samples) / rec.sample_rate_hz)
    path = Path(path)

    def ns(t: float) -> int:
        return int(round((start_s + t) * 1e9))

    with Writer(path, version=9, storage_plugin=plugin) as writer:
        emg_conn = writer.add_connection(emg_topic, EMG_TYPE, typestore=store)
        js_conn = (writer.add_connection(joint_state_topic, JOINT_STATE_TYPE, typestore=store)
                   if rec.joint_angles is not None else None)
        if prompts:
            prompt_conn = writer.add_connection(prompt_topic, PROMPT_TYPE, typestore=store)
            prompt_cls = store.types[PROMPT_TYPE]
            for t, phase, pose, index, count in prompts:
                stamp = types.time(sec=ns(t) // 1_000_000_000, nanosec=ns(t) % 1_000_000_000)
                msg = prompt_cls(header=types.header(stamp=stamp, frame_id=""), phase=phase,
                                 pose_name=pose, index=index, count=count,
                                 seconds_remaining=0.0, joint_names=[],
                                 joint_positions=np.zeros(0))
                writer.write(prompt_conn, ns(t), bytes(store.serialize_cdr(msg, PROMPT_TYPE)))
        for k, i in enumerate(range(0, rec.num_samples, chunk_samples)):
            block = rec.emg[i:i + chunk_samples]
            if k not in drop_chunks:
                msg = encode_emg(types, block, i, ns(ts[i]), rec.sample_rate_hz,
                                 rec.channel_names, frame_id)
                writer.write(emg_conn, ns(ts[i]), bytes(store.serialize_cdr(msg, EMG_TYPE)))
            if js_conn is None:
                continue
            for j in range(i, min(i + chunk_samples, rec.num_samples)):
                if j % joint_state_every:
                    continue
                stamp = types.time(sec=ns(ts[j]) // 1_000_000_000,
                                   nanosec=ns(ts[j]) % 1_000_000_000)
                js = js_cls(header=types.header(stamp=stamp, frame_id=""),
                            name=list(JOINT_NAMES),
                            position=rec.joint_angles[j].astype(np.float64),
                            velocity=np.zeros(0), effort=np.zeros(0))
                writer.write(js_conn, ns(ts[j]),
                             bytes(store.serialize_cdr(js, JOINT_STATE_TYPE)))
    return path


def looks_like(path: Path) -> bool:
    if path.is_dir():
        return (path / "metadata.yaml").is_file() or any(path.glob("*.mcap")) or any(
            path.glob("*.db3"))
    return path.suffix.lower() in (".mcap", ".db3")
