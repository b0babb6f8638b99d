"""Pure core of emg_hand_bag (no rclpy): QoS translation, the play schedule, bag info.

Everything here is plain Python on rosbags' QoS records and plain numbers, unit-tested
directly; the record/play nodes only convert between these and rclpy objects.

QoS follows rosbag2 (Jazzy, ``rosbag2_storage/qos.cpp``):

* recording asks for *reliable* only if every publisher offers it, and *transient local*
  only if every publisher offers it (then latched messages such as ``/tf_static``
  published before the recorder started are still received); deadline, lifespan and
  liveliness stay unspecified, so the subscription matches every publisher;
* playback offers the recorded profile when all recorded publishers offered the same
  compatibility-relevant policies, else the default (reliable, volatile); the history depth
  is ours (rosbag2 uses 10; we keep more so bursts at high play rates are not dropped).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

# Topics `emg_hand_bag record` takes by default (relative names resolve in the node's
# namespace, so `--ros-args -r __ns:=/left` records /left/emg/raw but still /tf).
DEFAULT_TOPICS: tuple[str, ...] = (
    "emg/raw",
    "hand/reference/joint_states",
    "hand/joint_states",
    "hand/keypoints",
    "/tf",
    "/tf_static",
    "/diagnostics",
    "calibration/prompt",
    "robot_hand/joint_states",
    "robot_hand/commanded_joint_states",
    "robot_hand/contacts",
)

STORAGE_IDS: tuple[str, ...] = ("mcap", "sqlite3")
# metadata.yaml version written by rosbag2 in Jazzy (BagMetadata::version): offered QoS
# profiles as a YAML list with policy names, type_description_hash, ros_distro.
METADATA_VERSION = 9

RECORD_DEPTH = 1000  # subscription history: room for bursts while the executor writes
# Publisher history when playing volatile topics (rosbag2: 10): a reliable keep-last writer
# drops samples a slow subscriber has not acknowledged once this many newer ones are queued,
# so keep about a second of our fastest stream at 4x speed. Transient-local topics keep
# rosbag2's 10: that is how many latched messages a late subscriber receives.
PLAY_DEPTH = 1000
LATCHED_PLAY_DEPTH = 10

# rmw's RMW_DURATION_INFINITE as (sec, nsec), what the graph reports for "no deadline".
INFINITE_TIME = QosTime(9223372036, 854775807)
_NS_PER_S = 1_000_000_000


class BagError(RuntimeError):
    """A bag that cannot be read, written or played as asked; the message says why."""


# --- QoS -----------------------------------------------------------------------------------

def ns_to_qos_time(nanoseconds: int) -> QosTime:
    """Duration in ns -> (sec, nsec); int64 max is rmw's infinite duration."""
    nanoseconds = max(0, int(nanoseconds))
    return QosTime(nanoseconds // _NS_PER_S, nanoseconds % _NS_PER_S)


def qos_time_to_ns(value: QosTime) -> int:
    return int(value.sec) * _NS_PER_S + int(value.nsec)


def is_unspecified_time(value: QosTime) -> bool:
    """True for rmw's unspecified (0, 0) and infinite durations (the default)."""
    return (value.sec, value.nsec) in ((0, 0), tuple(INFINITE_TIME)) or (
        qos_time_to_ns(value) >= 2**63 - 1)


def make_qos(*, history: int, depth: int, reliability: int, durability: int,
             deadline_ns: int, lifespan_ns: int, liveliness: int,
             liveliness_lease_duration_ns: int,
             avoid_ros_namespace_conventions: bool = False) -> Qos:
    """A rosbags QoS record from rmw policy numbers (rclpy's policy enum values)."""
    return Qos(
        _enum(QosHistory, history), int(depth), _enum(QosReliability, reliability),
        _enum(QosDurability, durability), ns_to_qos_time(deadline_ns),
        ns_to_qos_time(lifespan_ns), _enum(QosLiveliness, liveliness),
        ns_to_qos_time(liveliness_lease_duration_ns), bool(avoid_ros_namespace_conventions))


E = TypeVar("E")


def _enum(enum: type[E], value: int) -> E:
    try:
        return enum(int(value))  # type: ignore[call-arg]
    except ValueError:
        return enum.UNKNOWN  # type: ignore[attr-defined]


@dataclass(frozen=True)
class QosChoice:
    """The QoS the recorder subscribes with or the player publishes with.

    ``deadline``/``lifespan``/``liveliness_lease_duration`` of None and ``liveliness`` of
    None mean "leave the rmw default".
    """

    reliability: QosReliability
    durability: QosDurability
    depth: int
    deadline: QosTime | None = None
    lifespan: QosTime | None = None
    liveliness: QosLiveliness | None = None
    liveliness_lease_duration: QosTime | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        return (f"{self.reliability.name.lower()}, {self.durability.name.lower()}, "
                f"depth {self.depth}")


def recording_qos(topic: str, offers: Sequence[Qos], depth: int = RECORD_DEPTH) -> QosChoice:
    """QoS to subscribe with so that every publisher in ``offers`` matches and nothing offered
    reliably or transient-local is lost (rosbag2's adapt_request_to_offers)."""
    warnings: list[str] = []
    reliable = sum(o.reliability == QosReliability.RELIABLE for o in offers)
    latched = sum(o.durability == QosDurability.TRANSIENT_LOCAL for o in offers)
    if offers and reliable == len(offers):
        reliability = QosReliability.RELIABLE
    else:
        reliability = QosReliability.BEST_EFFORT
        if reliable:
            warnings.append(
                f"{topic}: some but not all publishers are reliable; recording best effort "
                f"to match all of them (messages of reliable publishers may be dropped)")
    if offers and latched == len(offers):
        durability = QosDurability.TRANSIENT_LOCAL
    else:
        durability = QosDurability.VOLATILE
        if latched:
            warnings.append(
                f"{topic}: some but not all publishers are transient local; recording "
                f"volatile (latched messages published earlier will not be received)")
    return QosChoice(reliability, durability, depth, warnings=tuple(warnings))


def playback_qos(topic: str, recorded: Sequence[Qos], depth: int = PLAY_DEPTH,
                 latched_depth: int = LATCHED_PLAY_DEPTH) -> QosChoice:
    """QoS to publish a recorded topic with (rosbag2's adapt_offer_to_recorded_offers)."""
    default = QosChoice(QosReliability.RELIABLE, QosDurability.VOLATILE, depth)
    if not recorded:
        return default
    first = recorded[0]

    def key(q: Qos) -> tuple:
        return (q.reliability, q.durability, q.deadline, q.liveliness,
                q.liveliness_lease_duration)

    if any(key(q) != key(first) for q in recorded[1:]):
        return QosChoice(
            default.reliability, default.durability, depth,
            warnings=(f"{topic}: the recorded publishers offered different QoS; playing "
                      f"with the default (reliable, volatile)",))
    reliability = (first.reliability if first.reliability in (
        QosReliability.RELIABLE, QosReliability.BEST_EFFORT) else default.reliability)
    durability = (first.durability if first.durability in (
        QosDurability.TRANSIENT_LOCAL, QosDurability.VOLATILE) else default.durability)
    liveliness = (first.liveliness if first.liveliness in (
        QosLiveliness.AUTOMATIC, QosLiveliness.MANUAL_BY_TOPIC) else None)
    if durability == QosDurability.TRANSIENT_LOCAL:
        depth = latched_depth
    return QosChoice(
        reliability, durability, max(depth, first.depth),
        deadline=None if is_unspecified_time(first.deadline) else first.deadline,
        lifespan=None if is_unspecified_time(first.lifespan) else first.lifespan,
        liveliness=liveliness,
        liveliness_lease_duration=(None if is_unspecified_time(first.liveliness_lease_duration)
                                   else first.liveliness_lease_duration),
    )


# --- command-line helpers ---------------------------------------------------------------

def split_ros_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``argv`` into (ours, ROS arguments): ``--ros-args ... [--]`` blocks are ROS's."""
    ours: list[str] = []
    ros: list[str] = []
    inside = False
    for arg in argv:
        if arg == "--ros-args":
            inside = True
            ros.append(arg)
        elif inside and arg == "--":
            inside = False
        elif inside:
            ros.append(arg)
        else:
            ours.append(arg)
    return ours, ros


def parse_remaps(pairs: Iterable[str]) -> dict[str, str]:
    """``["a:=b", ...]`` -> ``{"a": "b"}``; raises ValueError naming a malformed pair."""
    remaps: dict[str, str] = {}
    for pair in pairs:
        src, sep, dst = pair.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"bad remap {pair!r}: expected FROM:=TO")
        remaps[src] = dst
    return remaps


def remap_topic(topic: str, remaps: dict[str, str]) -> str:
    """The topic a recorded ``topic`` is played on; keys match with or without leading '/'."""
    if topic in remaps:
        return remaps[topic]
    return remaps.get(topic.lstrip("/"), topic)


def default_bag_name(now: datetime | None = None) -> str:
    """rosbag2's default output folder name: rosbag2_YYYY_MM_DD-HH_MM_SS."""
    return (now or datetime.now()).strftime("rosbag2_%Y_%m_%d-%H_%M_%S")


# --- play schedule -----------------------------------------------------------------------

T = TypeVar("T")

MIN_LOOP_PERIOD_S = 1e-3  # a bag whose messages share one time stamp still loops at <= 1 kHz


@dataclass(frozen=True)
class PlaySchedule:
    """When each recorded message is due, in seconds after play started.

    ``first_ns`` is the log time played at t = 0 (bag start + start offset), ``last_ns`` the
    bag's end; with ``loop`` each pass takes (last - first) / rate seconds and the next pass
    starts at once. Due times are absolute from the play start, so waiting on a monotonic
    clock for each one never accumulates drift.
    """

    first_ns: int
    last_ns: int
    rate: float = 1.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number, got {self.rate}")
        if self.last_ns < self.first_ns:
            raise ValueError("bag end is before the play start")

    @property
    def period_s(self) -> float:
        """Length of one pass [s] (at this rate)."""
        return max((self.last_ns - self.first_ns) / _NS_PER_S / self.rate, MIN_LOOP_PERIOD_S)

    def due_s(self, log_time_ns: int, iteration: int = 0) -> float:
        """Seconds after play start at which the message logged at ``log_time_ns`` is due."""
        return iteration * self.period_s + (log_time_ns - self.first_ns) / _NS_PER_S / self.rate

    def bag_time_ns(self, elapsed_s: float, loop: bool = False) -> int:
        """The bag time being played ``elapsed_s`` after play start (for /clock)."""
        if loop:
            elapsed_s = math.fmod(max(elapsed_s, 0.0), self.period_s)
        offset = min(max(elapsed_s, 0.0) * self.rate * _NS_PER_S, self.last_ns - self.first_ns)
        return self.first_ns + int(round(offset))


def iter_schedule(schedule: PlaySchedule, open_messages: Callable[[], Iterable[T]],
                  log_time: Callable[[T], int], loop: bool = False) -> Iterator[tuple[float, T]]:
    """Yield ``(due_s, message)`` in play order; ``open_messages()`` starts one pass.

    Messages logged before ``schedule.first_ns`` are skipped. With ``loop`` the passes
    repeat until the consumer stops iterating.
    """
    iteration = 0
    while True:
        for message in open_messages():
            stamp = log_time(message)
            if stamp < schedule.first_ns:
                continue
            yield schedule.due_s(stamp, iteration), message
        if not loop:
            return
        iteration += 1


def wait_until(deadline: float, stop: Callable[[float], bool],
               clock: Callable[[], float] = time.monotonic) -> bool:
    """Wait for the monotonic ``deadline``; ``stop(timeout)`` waits up to ``timeout`` s and
    returns True when asked to stop (e.g. ``threading.Event.wait``). Returns False if stopped.
    """
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            return True
        if stop(remaining):
            return False


class LatenessStats:
    """How late the player published each message against its due time, in a histogram of
    0.1 ms bins up to 10 s (constant memory however long a loop runs)."""

    BIN_S = 1e-4
    BINS = 100_000

    def __init__(self) -> None:
        self.counts = [0] * (self.BINS + 1)  # last bin: 10 s or later
        self.n = 0
        self.max_s = 0.0

    def add(self, late_s: float) -> None:
        late_s = max(late_s, 0.0)
        self.counts[min(int(late_s / self.BIN_S), self.BINS)] += 1
        self.n += 1
        self.max_s = max(self.max_s, late_s)

    def percentile_s(self, q: float) -> float:
        """Upper edge of the bin holding the q-th percentile (0 <= q <= 100)."""
        if not self.n:
            return 0.0
        rank = max(1, math.ceil(q / 100 * self.n))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min((index + 1) * self.BIN_S, self.max_s)
        return self.max_s

    def summary(self) -> str:
        return (f"late p50 {self.percentile_s(50) * 1e3:.1f} ms, "
                f"p99 {self.percentile_s(99) * 1e3:.1f} ms, max {self.max_s * 1e3:.1f} ms")


# --- bag info (what `ros2 bag info` prints) ------------------------------------------------

def read_metadata(bag_dir: str | Path) -> dict[str, Any]:
    """The ``rosbag2_bagfile_information`` mapping of ``<bag_dir>/metadata.yaml``."""
    path = Path(bag_dir) / "metadata.yaml"
    if not path.is_file():
        raise BagError(f"{bag_dir}: not a rosbag2 folder (no metadata.yaml)")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BagError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or "rosbag2_bagfile_information" not in document:
        raise BagError(f"{path}: no rosbag2_bagfile_information mapping")
    return document["rosbag2_bagfile_information"]


def directory_size(bag_dir: str | Path) -> int:
    """Bytes in the bag folder (what `ros2 bag info` calls the bag size)."""
    return sum(p.stat().st_size for p in Path(bag_dir).rglob("*") if p.is_file())


def format_file_size(size: int) -> str:
    value = float(size)
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while value >= 1024 and index < len(units) - 1:
        value /= 1024
        index += 1
    return f"{value:.0f} {units[index]}" if index == 0 else f"{value:.1f} {units[index]}"


def _seconds_text(ns: int) -> str:
    return f"{ns // _NS_PER_S}.{ns % _NS_PER_S:09d}"


def _time_point_text(ns: int) -> str:
    when = time.localtime(ns // _NS_PER_S)
    return (f"{time.strftime('%b %e %Y', when)} {time.strftime('%H:%M:%S', when)}."
            f"{ns % _NS_PER_S:09d} ({_seconds_text(ns)})")


def _is_service_event(name: str, msgtype: str) -> bool:
    return name.endswith("/_service_event") and msgtype.endswith("_Event")


def format_info(info: dict[str, Any], bag_size: int) -> str:
    """The text `ros2 bag info` (Jazzy) prints for a bag's metadata."""
    indent = " " * 19
    start = int(info["starting_time"]["nanoseconds_since_epoch"])
    duration = int(info["duration"]["nanoseconds"])
    topics = info.get("topics_with_message_count") or []
    services = [t for t in topics if _is_service_event(t["topic_metadata"]["name"],
                                                       t["topic_metadata"]["type"])]
    plain = [t for t in topics if t not in services]
    service_messages = sum(int(t["message_count"]) for t in services)
    lines = [""]
    files = info.get("relative_file_paths") or []
    lines.append("Files:             " + (files[0] if files else ""))
    lines += [indent + f for f in files[1:]]
    lines.append(f"Bag size:          {format_file_size(bag_size)}")
    lines.append(f"Storage id:        {info.get('storage_identifier', '')}")
    lines.append(f"ROS Distro:        {info.get('ros_distro') or 'unknown'}")
    lines.append(f"Duration:          {_seconds_text(duration)}s")
    lines.append(f"Start:             {_time_point_text(start)}")
    lines.append(f"End:               {_time_point_text(start + duration)}")
    lines.append(f"Messages:          {int(info['message_count']) - service_messages}")

    def topic_line(t: dict[str, Any]) -> str:
        meta = t["topic_metadata"]
        return (f"Topic: {meta['name']} | Type: {meta['type']} | Count: {t['message_count']} | "
                f"Serialization Format: {meta['serialization_format']}")

    lines.append("Topic information: " + (topic_line(plain[0]) if plain else ""))
    lines += [indent + topic_line(t) for t in plain[1:]]
    lines.append(f"Service:           {len(services)}")
    service_lines = [
        f"Service: {t['topic_metadata']['name'][:-len('/_service_event')]} | "
        f"Type: {t['topic_metadata']['type'][:-len('_Event')]} | "
        f"Event Count: {t['message_count']} | "
        f"Serialization Format: {t['topic_metadata']['serialization_format']}"
        for t in services]
    lines.append("Service information: " + (service_lines[0] if service_lines else ""))
    lines += [indent + "  " + s for s in service_lines[1:]]
    return "\n".join(lines) + "\n"
