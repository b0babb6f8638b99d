"""Pure core of emg_hand_bag: QoS translation, play schedule, argument helpers, bag info."""

from __future__ import annotations

import time

import pytest
from rosbags.interfaces import QosDurability, QosLiveliness, QosReliability, QosTime

from emg_hand_bringup.bag_cli import build_parser, record_topics
from emg_hand_bringup.bag_core import (
    INFINITE_TIME,
    LATCHED_PLAY_DEPTH,
    MIN_LOOP_PERIOD_S,
    PLAY_DEPTH,
    BagError,
    LatenessStats,
    PlaySchedule,
    default_bag_name,
    format_file_size,
    format_info,
    is_unspecified_time,
    iter_schedule,
    make_qos,
    ns_to_qos_time,
    parse_remaps,
    playback_qos,
    qos_time_to_ns,
    read_metadata,
    recording_qos,
    remap_topic,
    split_ros_args,
    wait_until,
)

INF_NS = 2**63 - 1


def offer(reliability: int = 1, durability: int = 2, deadline_ns: int = INF_NS,
          liveliness: int = 1, depth: int = 0):
    """A publisher's QoS as the graph reports it (history unknown, depth 0, infinite times)."""
    return make_qos(history=3, depth=depth, reliability=reliability, durability=durability,
                    deadline_ns=deadline_ns, lifespan_ns=INF_NS, liveliness=liveliness,
                    liveliness_lease_duration_ns=INF_NS)


RELIABLE, BEST_EFFORT = 1, 2
TRANSIENT_LOCAL, VOLATILE = 1, 2


# --- QoS ---------------------------------------------------------------------------------

def test_times_convert_both_ways_and_infinite_is_rmw_infinite():
    assert ns_to_qos_time(1_500_000_000) == QosTime(1, 500_000_000)
    assert qos_time_to_ns(QosTime(2, 5)) == 2_000_000_005
    assert ns_to_qos_time(INF_NS) == INFINITE_TIME == QosTime(9223372036, 854775807)
    assert is_unspecified_time(INFINITE_TIME) and is_unspecified_time(QosTime(0, 0))
    assert not is_unspecified_time(QosTime(0, 100_000_000))


def test_make_qos_maps_rmw_numbers_and_unknown_values():
    q = make_qos(history=1, depth=7, reliability=2, durability=1, deadline_ns=0,
                 lifespan_ns=0, liveliness=1, liveliness_lease_duration_ns=0)
    assert (q.depth, q.reliability, q.durability) == (
        7, QosReliability.BEST_EFFORT, QosDurability.TRANSIENT_LOCAL)
    assert make_qos(history=99, depth=0, reliability=99, durability=1, deadline_ns=0,
                    lifespan_ns=0, liveliness=1,
                    liveliness_lease_duration_ns=0).reliability == QosReliability.UNKNOWN


def test_recording_qos_is_reliable_and_latched_only_when_every_publisher_offers_it():
    both = recording_qos("/tf_static", [offer(RELIABLE, TRANSIENT_LOCAL)] * 2)
    assert both.reliability == QosReliability.RELIABLE
    assert both.durability == QosDurability.TRANSIENT_LOCAL
    assert not both.warnings

    mixed = recording_qos("/x", [offer(RELIABLE, TRANSIENT_LOCAL), offer(BEST_EFFORT, VOLATILE)])
    assert mixed.reliability == QosReliability.BEST_EFFORT
    assert mixed.durability == QosDurability.VOLATILE
    assert len(mixed.warnings) == 2 and all("/x" in w for w in mixed.warnings)

    sensor = recording_qos("/emg/raw", [offer(BEST_EFFORT, VOLATILE)])
    assert (sensor.reliability, sensor.durability) == (
        QosReliability.BEST_EFFORT, QosDurability.VOLATILE)
    assert not sensor.warnings
    # deadline / liveliness left unspecified so that every publisher matches
    assert both.deadline is None and both.liveliness is None


def test_playback_qos_offers_what_was_recorded():
    latched = playback_qos("/tf_static", [offer(RELIABLE, TRANSIENT_LOCAL)])
    assert latched.reliability == QosReliability.RELIABLE
    assert latched.durability == QosDurability.TRANSIENT_LOCAL
    assert latched.deadline is None and latched.lifespan is None  # infinite = default
    assert latched.liveliness == QosLiveliness.AUTOMATIC
    assert latched.depth == LATCHED_PLAY_DEPTH  # late joiners get this many, as in rosbag2

    best_effort = playback_qos("/emg/raw", [offer(BEST_EFFORT, VOLATILE, deadline_ns=10**8)])
    assert best_effort.reliability == QosReliability.BEST_EFFORT
    assert best_effort.deadline == QosTime(0, 100_000_000)  # a real deadline is kept
    assert best_effort.depth == PLAY_DEPTH

    mixed = playback_qos("/x", [offer(RELIABLE, TRANSIENT_LOCAL), offer(BEST_EFFORT, VOLATILE)])
    assert (mixed.reliability, mixed.durability) == (
        QosReliability.RELIABLE, QosDurability.VOLATILE)
    assert mixed.warnings

    assert playback_qos("/none", []).reliability == QosReliability.RELIABLE


# --- arguments ---------------------------------------------------------------------------

def test_ros_args_are_split_off():
    ours, ros = split_ros_args(["record", "-o", "x", "--ros-args", "-r", "__ns:=/left", "--",
                                "emg/raw", "--ros-args", "--log-level", "warn"])
    assert ours == ["record", "-o", "x", "emg/raw"]
    assert ros == ["--ros-args", "-r", "__ns:=/left", "--ros-args", "--log-level", "warn"]


def test_remaps_parse_and_apply_with_or_without_leading_slash():
    remaps = parse_remaps(["/emg/raw:=/replay/emg/raw", "hand/joint_states:=/live"])
    assert remap_topic("/emg/raw", remaps) == "/replay/emg/raw"
    assert remap_topic("/hand/joint_states", remaps) == "/live"
    assert remap_topic("/tf", remaps) == "/tf"
    for bad in ("nope", ":=x", "a:="):
        with pytest.raises(ValueError, match="FROM:=TO"):
            parse_remaps([bad])


def test_record_topic_selection():
    assert record_topics([], all_ours=False)[0] == "emg/raw"
    assert "/tf_static" in record_topics([], all_ours=False)
    assert record_topics(["a", "b", "a"], all_ours=False) == ["a", "b"]
    both = record_topics(["extra"], all_ours=True)
    assert both[0] == "extra" and "emg/raw" in both


def test_parser_rejects_bad_values():
    parser = build_parser()
    args = parser.parse_args(["play", "bag", "--rate", "4", "--loop", "--clock"])
    assert (args.rate, args.loop, args.clock) == (4.0, True, 40.0)
    for bad in (["play", "bag", "--rate", "0"], ["play", "bag", "--start-offset", "-1"],
                ["record", "--storage", "rosbag1"], ["record", "--duration", "-2"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_default_bag_name_is_rosbag2_style():
    from datetime import datetime

    assert default_bag_name(datetime(2025, 1, 2, 3, 4, 5)) == "rosbag2_2025_01_02-03_04_05"


# --- schedule ----------------------------------------------------------------------------

def test_due_times_follow_log_times_scaled_by_rate():
    s = PlaySchedule(first_ns=10_000_000_000, last_ns=12_000_000_000, rate=4.0)
    assert s.due_s(10_000_000_000) == 0.0
    assert s.due_s(11_000_000_000) == pytest.approx(0.25)
    assert s.period_s == pytest.approx(0.5)
    assert s.due_s(10_000_000_000, iteration=2) == pytest.approx(1.0)


def test_schedule_rejects_bad_rates():
    for rate in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            PlaySchedule(0, 1, rate)


def test_iter_schedule_skips_before_offset_and_loops():
    messages = [("a", 0), ("b", 1_000_000_000), ("c", 2_000_000_000)]
    s = PlaySchedule(first_ns=1_000_000_000, last_ns=2_000_000_000, rate=2.0)
    once = list(iter_schedule(s, lambda: iter(messages), lambda m: m[1]))
    assert once == [(0.0, ("b", 1_000_000_000)), (0.5, ("c", 2_000_000_000))]

    looped = iter_schedule(s, lambda: iter(messages), lambda m: m[1], loop=True)
    first_six = [next(looped) for _ in range(6)]
    assert [m[0] for _, m in first_six] == ["b", "c"] * 3
    assert [d for d, _ in first_six] == pytest.approx([0.0, 0.5, 0.5, 1.0, 1.0, 1.5])


def test_loop_of_a_single_instant_does_not_spin_at_zero_period():
    s = PlaySchedule(first_ns=5, last_ns=5)
    assert s.period_s == MIN_LOOP_PERIOD_S


def test_bag_time_for_clock():
    s = PlaySchedule(first_ns=1_000_000_000, last_ns=3_000_000_000, rate=2.0)
    assert s.bag_time_ns(0.0) == 1_000_000_000
    assert s.bag_time_ns(0.5) == 2_000_000_000
    assert s.bag_time_ns(10.0) == 3_000_000_000  # clamped at the end
    assert s.bag_time_ns(1.25, loop=True) == 1_500_000_000  # second pass


def test_wait_until_uses_an_absolute_deadline_and_can_be_stopped():
    now = [0.0]
    waits: list[float] = []

    def stop(timeout: float) -> bool:
        waits.append(timeout)
        now[0] += timeout
        return False

    assert wait_until(1.5, stop, clock=lambda: now[0]) is True
    assert waits == [1.5] and now[0] == 1.5
    assert wait_until(1.0, stop, clock=lambda: now[0]) is True  # already past: no wait
    assert waits == [1.5]
    assert wait_until(5.0, lambda _t: True, clock=lambda: now[0]) is False


def test_lateness_stats_percentiles_in_constant_memory():
    stats = LatenessStats()
    assert stats.percentile_s(50) == 0.0
    for late_ms in [0.05] * 98 + [3.0, 250.0]:
        stats.add(late_ms / 1e3)
    stats.add(-0.001)  # early (cannot happen, but counts as on time)
    assert stats.n == 101
    assert stats.percentile_s(50) == pytest.approx(1e-4)  # the 0.1 ms bin
    assert stats.percentile_s(99) == pytest.approx(3.1e-3)
    assert stats.percentile_s(100) == pytest.approx(0.25)
    assert stats.max_s == pytest.approx(0.25)
    assert "p99 3.1 ms" in stats.summary()


# --- info --------------------------------------------------------------------------------

METADATA = {
    "version": 9, "storage_identifier": "mcap", "relative_file_paths": ["run.mcap"],
    "duration": {"nanoseconds": 2_500_000_000},
    "starting_time": {"nanoseconds_since_epoch": 1_700_000_000_123_456_789},
    "message_count": 12, "ros_distro": "rosbags",
    "topics_with_message_count": [
        {"topic_metadata": {"name": "/emg/raw", "type": "emg_interfaces/msg/EMG",
                            "serialization_format": "cdr", "offered_qos_profiles": []},
         "message_count": 10},
        {"topic_metadata": {"name": "/tf_static", "type": "tf2_msgs/msg/TFMessage",
                            "serialization_format": "cdr", "offered_qos_profiles": []},
         "message_count": 2},
    ],
}


def test_info_prints_what_ros2_bag_info_prints():
    text = format_info(METADATA, bag_size=3 * 1024 * 1024 // 2)
    lines = text.splitlines()
    assert lines[0] == ""
    assert lines[1] == "Files:             run.mcap"
    assert lines[2] == "Bag size:          1.5 MiB"
    assert lines[3] == "Storage id:        mcap"
    assert lines[4] == "ROS Distro:        rosbags"
    assert lines[5] == "Duration:          2.500000000s"
    start = time.strftime("%b %e %Y %H:%M:%S", time.localtime(1_700_000_000))
    assert lines[6] == f"Start:             {start}.123456789 (1700000000.123456789)"
    assert lines[7].endswith("(1700000002.623456789)")
    assert lines[8] == "Messages:          12"
    assert lines[9] == ("Topic information: Topic: /emg/raw | Type: emg_interfaces/msg/EMG | "
                        "Count: 10 | Serialization Format: cdr")
    assert lines[10] == " " * 19 + ("Topic: /tf_static | Type: tf2_msgs/msg/TFMessage | "
                                    "Count: 2 | Serialization Format: cdr")
    assert lines[11] == "Service:           0"


def test_file_sizes_like_rosbag2():
    assert format_file_size(999) == "999 B"
    assert format_file_size(2048) == "2.0 KiB"
    assert format_file_size(5 * 1024**3) == "5.0 GiB"


def test_read_metadata_errors_are_clear(tmp_path):
    with pytest.raises(BagError, match="no metadata.yaml"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.yaml").write_text("just: text\n")
    with pytest.raises(BagError, match="rosbag2_bagfile_information"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.yaml").write_text("a: [\n")
    with pytest.raises(BagError, match="not valid YAML"):
        read_metadata(tmp_path)
