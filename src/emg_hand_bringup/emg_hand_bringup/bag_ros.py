"""rclpy side of emg_hand_bag: the recorder and player nodes and their run loops.

The nodes are thin: QoS choice, schedule and bag I/O live in :mod:`.bag_core` and
:mod:`.bag_io`. Messages stay CDR bytes end to end: the recorder subscribes with
``raw=True`` (rclpy hands the callback the serialized bytes, nothing is deserialized) and
the player publishes bytes (``Publisher.publish(bytes)`` publishes them as they are).
Both install their own SIGINT/SIGTERM handlers, so a signal ends the loop and the bag is
always closed (recording) or the publishers flushed (playing).
"""

from __future__ import annotations

import importlib
import itertools
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import Qos, QosDurability, QosLiveliness, QosReliability

from emg_hand_core.bag_types import split_type_name

from .bag_core import (
    BagError,
    LatenessStats,
    PlaySchedule,
    QosChoice,
    iter_schedule,
    make_qos,
    playback_qos,
    qos_time_to_ns,
    recording_qos,
    remap_topic,
    wait_until,
)
from .bag_io import BagSource, BagWriter, TopicRecord

GRAPH_POLL_S = 0.1  # how often the recorder looks for publishers of topics not yet recorded
DRAIN_MAX_S = 0.5  # after a stop request, keep taking already-delivered messages this long
ACK_TIMEOUT_S = 5.0  # at the end of play, wait this long for reliable subscribers' acks


def message_class(msgtype: str) -> type:
    """The generated Python class of ``pkg/msg/Name`` (needed for the type support)."""
    package, kind, name = split_type_name(msgtype)
    module = importlib.import_module(f"{package}.{kind}")
    return getattr(module, name)


def qos_from_profile(profile: QoSProfile) -> Qos:
    """A publisher's offered rclpy QoSProfile as a rosbags QoS record (for metadata)."""
    return make_qos(
        history=int(profile.history), depth=profile.depth,
        reliability=int(profile.reliability), durability=int(profile.durability),
        deadline_ns=profile.deadline.nanoseconds, lifespan_ns=profile.lifespan.nanoseconds,
        liveliness=int(profile.liveliness),
        liveliness_lease_duration_ns=profile.liveliness_lease_duration.nanoseconds,
        avoid_ros_namespace_conventions=profile.avoid_ros_namespace_conventions,
    )


_RELIABILITY = {QosReliability.RELIABLE: ReliabilityPolicy.RELIABLE,
                QosReliability.BEST_EFFORT: ReliabilityPolicy.BEST_EFFORT}
_DURABILITY = {QosDurability.TRANSIENT_LOCAL: DurabilityPolicy.TRANSIENT_LOCAL,
               QosDurability.VOLATILE: DurabilityPolicy.VOLATILE}
_LIVELINESS = {QosLiveliness.AUTOMATIC: LivelinessPolicy.AUTOMATIC,
               QosLiveliness.MANUAL_BY_TOPIC: LivelinessPolicy.MANUAL_BY_TOPIC}


def profile_from_choice(choice: QosChoice) -> QoSProfile:
    """The rclpy QoSProfile for a QoS chosen by the core."""
    kwargs: dict[str, Any] = {
        "history": HistoryPolicy.KEEP_LAST, "depth": choice.depth,
        "reliability": _RELIABILITY[choice.reliability],
        "durability": _DURABILITY[choice.durability],
    }
    if choice.deadline is not None:
        kwargs["deadline"] = Duration(nanoseconds=qos_time_to_ns(choice.deadline))
    if choice.lifespan is not None:
        kwargs["lifespan"] = Duration(nanoseconds=qos_time_to_ns(choice.lifespan))
    if choice.liveliness is not None:
        kwargs["liveliness"] = _LIVELINESS[choice.liveliness]
    if choice.liveliness_lease_duration is not None:
        kwargs["liveliness_lease_duration"] = Duration(
            nanoseconds=qos_time_to_ns(choice.liveliness_lease_duration))
    return QoSProfile(**kwargs)


class _Signals:
    """SIGINT/SIGTERM set an event instead of raising inside rclpy (restored on exit)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, lambda *_: self.stop.set())
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _init_rclpy(ros_args: Sequence[str]) -> rclpy.context.Context:
    context = rclpy.context.Context()
    rclpy.init(args=["emg_hand_bag", *ros_args], context=context,
               signal_handler_options=SignalHandlerOptions.NO)
    return context


# --- record --------------------------------------------------------------------------------

class Recorder(Node):
    """Subscribes (raw) to each wanted topic once it has a publisher and writes every message.

    Topic types and the publishers' QoS come from the graph, polled every GRAPH_POLL_S, so
    topics whose publishers start after the recorder are picked up too.
    """

    def __init__(self, writer: BagWriter, topics: Sequence[str], **kwargs: Any) -> None:
        super().__init__("emg_hand_bag_recorder", **kwargs)
        self.writer = writer
        self.wanted: list[str] = list(dict.fromkeys(self.resolve_topic_name(t) for t in topics))
        self.failed: set[str] = set()
        self.received = 0
        self._recording: dict[str, Any] = {}
        self._timer = self.create_timer(GRAPH_POLL_S, self.discover)

    @property
    def pending(self) -> list[str]:
        return [t for t in self.wanted if t not in self._recording and t not in self.failed]

    def discover(self) -> None:
        for name in self.pending:
            infos = self.get_publishers_info_by_topic(name)
            if infos:
                self._subscribe(name, infos)

    def _subscribe(self, name: str, infos: list) -> None:
        types = [i.topic_type for i in infos]
        msgtype = max(set(types), key=types.count)
        if len(set(types)) > 1:
            self.get_logger().warning(
                f"{name}: publishers of several types {sorted(set(types))}; recording {msgtype}")
        infos = [i for i in infos if i.topic_type == msgtype]
        offers = [qos_from_profile(i.qos_profile) for i in infos]
        choice = recording_qos(name, offers)
        for warning in choice.warnings:
            self.get_logger().warning(warning)
        try:
            cls = message_class(msgtype)
        except (ImportError, AttributeError, ValueError) as exc:
            self.failed.add(name)
            self.get_logger().error(
                f"{name}: cannot subscribe, message type {msgtype} is not importable here "
                f"({exc}); not recording this topic")
            return
        type_hash = str(infos[0].topic_type_hash)
        record = self.writer.add_topic(
            name, msgtype, offers, type_hash=type_hash if type_hash.startswith("RIHS") else None)
        for warning in self.writer.warnings:
            self.get_logger().warning(warning)
        self.writer.warnings.clear()
        self._recording[name] = self.create_subscription(
            cls, name, self._callback(record), profile_from_choice(choice), raw=True)
        print(f"Subscribed to {name} [{msgtype}] ({choice.describe()})", flush=True)

    def _callback(self, record: TopicRecord):
        writer = self.writer

        def on_message(data: bytes, info: dict) -> None:
            # The middleware's receipt time (system clock, ns) is the log time.
            stamp = info.get("received_timestamp") or time.time_ns()
            writer.write(record, stamp, data)
            self.received += 1

        return on_message

    def stop_discovery(self) -> None:
        self.destroy_timer(self._timer)


def run_record(out_dir: Path, topics: Sequence[str], storage: str, duration_s: float | None,
               ros_args: Sequence[str]) -> int:
    """Record until SIGINT/SIGTERM or ``duration_s``; the bag is closed on every way out
    (our signal handlers stay installed while it closes, so a second Ctrl-C cannot cut the
    index short). Returns 0, or 1 if an error stopped the recording early."""
    status = 0
    with _Signals() as signals:
        writer = BagWriter(out_dir, storage)
        context = _init_rclpy(ros_args)
        node: Recorder | None = None
        try:
            node = Recorder(writer, topics, context=context)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            print(f"Recording to {out_dir} ({storage}): {', '.join(node.wanted)}", flush=True)
            node.discover()
            deadline = time.monotonic() + duration_s if duration_s else float("inf")
            while not signals.stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                executor.spin_once(timeout_sec=min(0.1, remaining))
            # Take what the middleware has already delivered, then stop.
            node.stop_discovery()
            drain_end = time.monotonic() + DRAIN_MAX_S
            idle = 0
            while idle < 3 and time.monotonic() < drain_end:
                before = node.received
                executor.spin_once(timeout_sec=0.01)
                idle = idle + 1 if node.received == before else 0
        except Exception as exc:  # e.g. the disk filled up: keep what was written
            print(f"emg_hand_bag record: stopped by an error: {exc!r}", file=sys.stderr)
            status = 1
        finally:
            writer.close()
            if node is not None:
                node.destroy_node()
            if context.ok():
                rclpy.shutdown(context=context)
    wanted = node.wanted if node is not None else list(topics)
    missing = [t for t in wanted if t not in writer.topics]
    print(f"Recorded {writer.message_count} messages on {len(writer.topics)} topics to "
          f"{out_dir}" + (f" (no publishers seen on {', '.join(missing)})" if missing else ""),
          flush=True)
    return status


# --- play ----------------------------------------------------------------------------------

class Player(Node):
    """One publisher per played topic, with the QoS its recorded publishers offered."""

    def __init__(self, source: BagSource, topics: Sequence[str], remaps: dict[str, str],
                 clock: bool, **kwargs: Any) -> None:
        super().__init__("emg_hand_bag_player", **kwargs)
        self.publishers_by_topic: dict[str, Any] = {}
        self.reliable: list[Any] = []
        for name in topics:
            info = source.topics[name]
            try:
                cls = message_class(info.msgtype)
            except (ImportError, AttributeError, ValueError) as exc:
                raise BagError(f"{name}: message type {info.msgtype} is not importable here "
                               f"({exc}); leave it out with --topics") from None
            choice = playback_qos(name, info.offered_qos)
            for warning in choice.warnings:
                self.get_logger().warning(warning)
            target = remap_topic(name, remaps)
            publisher = self.create_publisher(cls, target, profile_from_choice(choice))
            self.publishers_by_topic[name] = publisher
            if choice.reliability == QosReliability.RELIABLE:
                self.reliable.append(publisher)
            print(f"Publishing {name} on {publisher.topic_name} [{info.msgtype}] "
                  f"({choice.describe()})", flush=True)
        self.clock_publisher = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self.clock_publisher = self.create_publisher(Clock, "/clock", 10)

    def publish_clock(self, bag_time_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(bag_time_ns, 1_000_000_000)
        self.clock_publisher.publish(msg)

    def wait_for_subscribers(self, stop: threading.Event, timeout_s: float) -> list[str]:
        """Wait until every publisher has a matched subscription; return topics without."""
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [p.topic_name for p in self.publishers_by_topic.values()
                       if p.get_subscription_count() == 0]
            if not missing or time.monotonic() > deadline or stop.wait(0.01):
                return missing

    def wait_for_acks(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        ok = True
        for publisher in self.reliable:
            remaining = max(deadline - time.monotonic(), 0.0)
            ok = publisher.wait_for_all_acked(Duration(nanoseconds=int(remaining * 1e9))) and ok
        return ok


def select_topics(source: BagSource, requested: Sequence[str] | None) -> list[str]:
    """Bag topics to play: all, or those requested (with or without the leading '/')."""
    if not requested:
        return list(source.topics)
    chosen = []
    for name in requested:
        for candidate in (name, "/" + name.lstrip("/")):
            if candidate in source.topics:
                chosen.append(candidate)
                break
        else:
            raise BagError(f"topic {name} is not in the bag (it has "
                           f"{', '.join(sorted(source.topics))})")
    return list(dict.fromkeys(chosen))


def run_play(bag_dir: Path, *, rate: float, loop: bool, start_offset_s: float,
             topics: Sequence[str] | None, remaps: dict[str, str], clock_hz: float | None,
             wait_for_subscribers_s: float | None, ros_args: Sequence[str]) -> int:
    with BagSource(bag_dir) as source:
        names = select_topics(source, topics)
        duration_s = (source.end_ns - source.start_ns) / 1e9
        if not 0 <= start_offset_s <= duration_s:
            raise BagError(f"--start-offset {start_offset_s} s is outside the bag "
                           f"(0 .. {duration_s:.3f} s)")
        schedule = PlaySchedule(source.start_ns + int(round(start_offset_s * 1e9)),
                                source.end_ns, rate)
        with _Signals() as signals:
            context = _init_rclpy(ros_args)
            node: Player | None = None
            published = 0
            lateness = LatenessStats()
            try:
                node = Player(source, names, remaps, clock=clock_hz is not None, context=context)
                if wait_for_subscribers_s is not None:
                    missing = node.wait_for_subscribers(signals.stop, wait_for_subscribers_s)
                    if missing:
                        node.get_logger().warning(
                            f"no subscriber after {wait_for_subscribers_s} s on "
                            f"{', '.join(missing)}; playing anyway")
                print(f"Playing {bag_dir}: {sum(source.topics[n].count for n in names)} "
                      f"messages on {len(names)} topics at rate {rate}"
                      + (" (loop)" if loop else ""), flush=True)
                published = _play_loop(node, source, names, schedule, loop, clock_hz,
                                       signals.stop, lateness)
                if not node.wait_for_acks(1.0 if signals.stop.is_set() else ACK_TIMEOUT_S):
                    node.get_logger().warning("not every reliable message was acknowledged")
            finally:
                if node is not None:
                    node.destroy_node()
                if context.ok():
                    rclpy.shutdown(context=context)
    print(f"Done: published {published} messages ({lateness.summary()})", flush=True)
    return 0


def _play_loop(node: Player, source: BagSource, names: list[str], schedule: PlaySchedule,
               loop: bool, clock_hz: float | None, stop: threading.Event,
               lateness: LatenessStats) -> int:
    publishers = node.publishers_by_topic
    clock_period = 1.0 / clock_hz if clock_hz else None
    next_clock = 0.0 if clock_period else float("inf")
    published = 0
    plan = iter_schedule(schedule, lambda: source.messages(names, start_ns=schedule.first_ns),
                         lambda m: m[1], loop=loop)
    first = next(plan, None)  # opening the storage reader takes a while: before t = 0
    if first is None:
        return 0
    t0 = time.monotonic()
    for due, (topic, _stamp, data) in itertools.chain([first], plan):
        while next_clock <= due:  # /clock ticks falling before this message
            if not wait_until(t0 + next_clock, stop.wait):
                return published
            node.publish_clock(schedule.bag_time_ns(time.monotonic() - t0, loop))
            next_clock += clock_period
        if not wait_until(t0 + due, stop.wait):
            return published
        publishers[topic].publish(data if isinstance(data, bytes) else bytes(data))
        lateness.add(time.monotonic() - t0 - due)
        published += 1
    return published
