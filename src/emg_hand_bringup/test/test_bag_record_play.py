"""emg_hand_bag record / play / info over real DDS, as separate processes, with real files.

One recording is made per module: this process publishes EMG chunks, reference
JointStates and HandKeypoints while the installed `emg_hand_bag record` runs; a latched
(transient-local) message is published *before* the recorder starts and must still be
recorded. The bag is then checked with rosbags' AnyReader, the mcap package's reader and
its metadata.yaml, and played back into this process: every message must arrive, in order,
equal field by field to what was published (content and order are asserted; timing only
loosely, the player's timing figures are measured by bench/bag_play_timing.py).

Messages are compared decoded (rclpy message equality), not as bytes: CDR alignment padding
is not specified content (rclpy's serialize_message leaves it uninitialised).

The latched topic is /tf_static (tf2_msgs/TFMessage) where tf2_msgs is importable, else
`robot_description` (std_msgs/String, latched by robot_state_publisher on a real install).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import Point
from mcap.reader import make_reader
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from emg_hand_core.bag_types import typestore
from emg_hand_testing.processes import NodeProcess, executable_path
from emg_hand_testing.ros import RosTestNode, wait_until
from emg_interfaces.msg import EMG, HandKeypoints

try:
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage
except ImportError:  # pip environment without the tf2_msgs interface package
    TFMessage = None

pytestmark = pytest.mark.timeout(120)

PKG, EXE = "emg_hand_bringup", "emg_hand_bag"
N_EMG = 100  # 10 ms chunks: a 1 s recording
EMG_PERIOD_S = 0.01
# Deep histories on this side: on a loaded 2-core machine the test's executor can stall for
# a fraction of a second, and a keep-last reader then overwrites what it has not taken yet.
RELIABLE = QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def latched_topic():
    """(topic, type, message) of the transient-local message published before recording."""
    if TFMessage is not None:
        t = TransformStamped()
        t.header.frame_id, t.child_frame_id = "world", "hand_base"
        t.transform.translation.x, t.transform.rotation.w = 0.25, 1.0
        return "/tf_static", TFMessage, TFMessage(transforms=[t])
    return "robot_description", String, String(data="<robot name='hand'/>")


LATCHED_TOPIC, LATCHED_TYPE, LATCHED_MSG = latched_topic()
LATCHED_NAME = "/" + LATCHED_TOPIC.lstrip("/")
TOPICS = {"/emg/raw": EMG, "/hand/reference/joint_states": JointState,
          "/hand/keypoints": HandKeypoints, LATCHED_NAME: LATCHED_TYPE}


def emg_chunk(i: int) -> EMG:
    msg = EMG()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i // 100, (i % 100) * 10_000_000
    msg.header.frame_id = "emg_armband"
    msg.sample_rate_hz = 1000.0
    msg.channel_names = [f"ch_{c}" for c in range(1, 9)]
    msg.first_sample_index = 10 * i
    msg.num_samples = 10
    rng = np.random.default_rng(i)
    msg.data = (rng.standard_normal(80) * 50e-6).astype(np.float32).tolist()
    return msg


def joint_state(i: int) -> JointState:
    msg = JointState()
    msg.header.stamp.sec = 1000 + i
    msg.name = [f"j{k}" for k in range(20)]
    msg.position = [0.01 * i + 0.001 * k for k in range(20)]
    return msg


def keypoints(i: int) -> HandKeypoints:
    msg = HandKeypoints()
    msg.header.frame_id = "hand_base"
    msg.names = [f"k{k}" for k in range(21)]
    msg.positions = [Point(x=0.001 * i, y=0.002 * k, z=0.0) for k in range(21)]
    msg.confidence = [1.0] * 21
    return msg


@dataclass
class Recording:
    bag: Path
    sent: dict[str, list]  # topic -> messages published, in order
    output: str
    returncode: int


def bag_messages(bag: Path) -> dict[str, list[tuple[int, bytes]]]:
    """topic -> [(log_time_ns, cdr bytes)] read with rosbags' AnyReader."""
    out: dict[str, list[tuple[int, bytes]]] = {}
    with AnyReader([bag], default_typestore=typestore()) as reader:
        for connection, stamp, raw in reader.messages():
            out.setdefault(connection.topic, []).append((stamp, bytes(raw)))
    return out


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    bag = tmp_path_factory.mktemp("record") / "run"
    sent: dict[str, list] = {name: [] for name in TOPICS}
    with RosTestNode("bag_test_publisher") as ros:
        node = ros.node
        latched = node.create_publisher(LATCHED_TYPE, LATCHED_TOPIC, LATCHED)
        latched.publish(LATCHED_MSG)  # before the recorder exists
        sent[LATCHED_NAME].append(LATCHED_MSG)
        pubs = {"/emg/raw": node.create_publisher(EMG, "emg/raw", RELIABLE),
                "/hand/reference/joint_states": node.create_publisher(
                    JointState, "hand/reference/joint_states", RELIABLE),
                "/hand/keypoints": node.create_publisher(HandKeypoints, "hand/keypoints",
                                                         RELIABLE)}
        with NodeProcess(PKG, EXE, ["record", "-o", str(bag), "emg/raw",
                                    "hand/reference/joint_states", "hand/keypoints",
                                    LATCHED_TOPIC]) as recorder:
            for name, pub in pubs.items():
                wait_until(lambda p=pub: p.get_subscription_count() >= 1, 20.0,
                           f"the recorder subscribing to {name}")
            recorder.wait_for_output(rf"Subscribed to {re.escape(LATCHED_NAME)} ", 20.0)
            t0 = time.monotonic()
            for i in range(N_EMG):
                # pacing the stream like a 100 Hz driver (data timing, not synchronisation)
                delay = t0 + i * EMG_PERIOD_S - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                batch = [("/emg/raw", emg_chunk(i))]
                if i % 2 == 0:
                    batch.append(("/hand/reference/joint_states", joint_state(i)))
                if i % 5 == 0:
                    batch.append(("/hand/keypoints", keypoints(i)))
                for name, msg in batch:
                    pubs[name].publish(msg)
                    sent[name].append(msg)
            for pub in pubs.values():
                assert pub.wait_for_all_acked(Duration(seconds=10))
            returncode = recorder.stop(timeout_s=20.0)
            output = recorder.output
    return Recording(bag, sent, output, returncode)


# --- the recording ---------------------------------------------------------------------

def test_record_stops_cleanly_on_sigint_and_reports(recording):
    assert recording.returncode == 0, recording.output
    total = sum(len(v) for v in recording.sent.values())
    assert f"Recorded {total} messages on {len(TOPICS)} topics" in recording.output
    assert "differs from the local definition" not in recording.output


def decoded(name: str, raws: list[bytes]) -> list:
    return [deserialize_message(raw, TOPICS[name]) for raw in raws]


def test_every_message_is_recorded_in_order_identical(recording):
    recorded = bag_messages(recording.bag)
    assert set(recorded) == set(TOPICS)
    for name, sent in recording.sent.items():
        got = decoded(name, [raw for _, raw in recorded[name]])
        assert len(got) == len(sent), name
        assert got == sent, f"{name}: recorded messages differ from what was published"
    stamps = sorted(t for msgs in recorded.values() for t, _ in msgs)
    emg_stamps = [t for t, _ in recorded["/emg/raw"]]
    assert emg_stamps == sorted(emg_stamps)
    # receipt times as log times: the 100 chunks span about the 1 s they were published over
    assert 0.5 < (emg_stamps[-1] - emg_stamps[0]) / 1e9 < 5.0
    assert abs(stamps[0] / 1e9 - time.time()) < 600  # wall-clock receipt times


def test_messages_decode_with_rosbags_and_our_typestore(recording):
    with AnyReader([recording.bag], default_typestore=typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == "/emg/raw"]
        decoded = [reader.deserialize(raw, c.msgtype)
                   for c, _, raw in reader.messages(connections=connections)]
    assert connections[0].msgtype == "emg_interfaces/msg/EMG"
    assert [m.first_sample_index for m in decoded] == [10 * i for i in range(N_EMG)]
    np.testing.assert_array_equal(decoded[7].data, np.asarray(emg_chunk(7).data, np.float32))
    assert decoded[7].channel_names == [f"ch_{c}" for c in range(1, 9)]
    assert decoded[7].header.frame_id == "emg_armband"


def test_latched_message_published_before_recording_is_in_the_bag(recording):
    recorded = bag_messages(recording.bag)[LATCHED_NAME]
    assert decoded(LATCHED_NAME, [raw for _, raw in recorded]) == recording.sent[LATCHED_NAME]
    assert f"Subscribed to {LATCHED_NAME} " in recording.output
    assert "reliable, transient_local" in recording.output.split(
        f"Subscribed to {LATCHED_NAME} ")[1].splitlines()[0]


def test_mcap_reader_finds_our_embedded_definition(recording):
    (mcap_file,) = recording.bag.glob("*.mcap")
    with open(mcap_file, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        assert schemas["emg_interfaces/msg/EMG"].encoding == "ros2msg"
        definition = schemas["emg_interfaces/msg/EMG"].data.decode()
        for line in ("std_msgs/Header header", "float64 sample_rate_hz",
                     "string[] channel_names", "uint64 first_sample_index",
                     "uint32 num_samples", "float32[] data"):
            assert line in definition
        assert "sensor_msgs/msg/JointState" in schemas
        assert "emg_interfaces/msg/HandKeypoints" in schemas
        counts = {summary.channels[cid].topic: n
                  for cid, n in summary.statistics.channel_message_counts.items()}
        f.seek(0)
        emg = [m.data for _, _, m in make_reader(f).iter_messages(topics=["/emg/raw"])]
    assert counts["/emg/raw"] == N_EMG
    assert decoded("/emg/raw", emg) == recording.sent["/emg/raw"]


def test_metadata_is_what_ros2_bag_info_expects(recording):
    info = yaml.safe_load((recording.bag / "metadata.yaml").read_text())[
        "rosbag2_bagfile_information"]
    recorded = bag_messages(recording.bag)
    stamps = sorted(t for msgs in recorded.values() for t, _ in msgs)
    assert info["version"] == 9
    assert info["storage_identifier"] == "mcap"
    assert info["relative_file_paths"] == [p.name for p in recording.bag.glob("*.mcap")]
    assert info["message_count"] == len(stamps)
    assert info["starting_time"]["nanoseconds_since_epoch"] == stamps[0]
    assert info["duration"]["nanoseconds"] == stamps[-1] - stamps[0]
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert set(topics) == set(TOPICS)
    store = typestore()
    for name, entry in topics.items():
        meta = entry["topic_metadata"]
        assert entry["message_count"] == len(recording.sent[name])
        assert meta["serialization_format"] == "cdr"
        assert meta["type"] == TOPICS[name].__module__.split(".")[0] + "/msg/" + \
            TOPICS[name].__name__
        assert meta["type_description_hash"] == store.hash_rihs01(meta["type"])
        (qos,) = meta["offered_qos_profiles"]  # one publisher each
        assert qos["reliability"] == "reliable"
        assert qos["durability"] == ("transient_local" if name == LATCHED_NAME else "volatile")
        assert set(qos) >= {"history", "depth", "deadline", "lifespan", "liveliness",
                            "liveliness_lease_duration", "avoid_ros_namespace_conventions"}


def test_info_command_prints_the_bag_summary(recording):
    result = subprocess.run([str(executable_path(PKG, EXE)), "info", str(recording.bag)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    total = sum(len(v) for v in recording.sent.values())
    assert re.search(r"^Storage id:\s+mcap$", text, re.M)
    assert re.search(rf"^Messages:\s+{total}$", text, re.M)
    assert re.search(r"^Duration:\s+\d+\.\d{9}s$", text, re.M)
    assert (f"Topic: /emg/raw | Type: emg_interfaces/msg/EMG | Count: {N_EMG} | "
            f"Serialization Format: cdr") in text


# --- playing it back -------------------------------------------------------------------

def _collectors(ros_node, topics: dict[str, type], prefix: str = ""):
    return {name: ros_node.collect(
        msg_type, prefix + name, LATCHED if name == LATCHED_NAME else RELIABLE)
        for name, msg_type in topics.items()}


def _play(node_process, bag: Path, *args: str) -> NodeProcess:
    return node_process(PKG, EXE, ["play", str(bag), "--wait-for-subscribers", "20", *args])


@pytest.mark.parametrize("rate", [1.0, 4.0])
def test_play_delivers_every_message_in_order_identical(recording, ros_node, node_process,
                                                         rate):
    collectors = _collectors(ros_node, TOPICS)
    player = _play(node_process, recording.bag, "--rate", str(rate))
    player.wait_for_output(r"^Done: published \d+ messages", 60.0)
    assert player.wait(20.0) == 0, player.output
    for name, sent in recording.sent.items():
        received = collectors[name].wait_for(len(sent), timeout_s=10.0)
        assert received == sent, name

    # Timing, loosely: the player never publishes early, so the replayed EMG stream takes at
    # least about its recorded span / rate; the upper bound only catches a gross failure.
    log_times = [t for t, _ in bag_messages(recording.bag)["/emg/raw"]]
    recorded_span = (log_times[-1] - log_times[0]) / 1e9
    arrivals = collectors["/emg/raw"].receive_times
    played_span = arrivals[-1] - arrivals[0]
    assert played_span > 0.8 * recorded_span / rate - 0.05
    assert played_span < recorded_span / rate + 2.0


def test_play_loop_repeats_until_sigterm(recording, ros_node, node_process):
    collector = ros_node.collect(EMG, "/emg/raw", RELIABLE)
    player = _play(node_process, recording.bag, "--loop", "--rate", "4", "--topics", "emg/raw")
    player.wait_for_output(r"^Playing .*\(loop\)", 30.0)
    received = collector.wait_for(2 * N_EMG + 10, timeout_s=30.0)
    player.process.send_signal(signal.SIGTERM)
    assert player.wait(20.0) == 0, player.output
    assert "Done: published" in player.output
    indices = [m.first_sample_index for m in received]
    one_pass = [10 * i for i in range(N_EMG)]
    assert indices[:2 * N_EMG] == one_pass + one_pass
    assert indices[2 * N_EMG:2 * N_EMG + 10] == one_pass[:10]


def test_play_start_offset_remap_and_clock(recording, ros_node, node_process):
    emg_log = bag_messages(recording.bag)["/emg/raw"]
    info = yaml.safe_load((recording.bag / "metadata.yaml").read_text())[
        "rosbag2_bagfile_information"]
    start_ns = info["starting_time"]["nanoseconds_since_epoch"]
    end_ns = start_ns + info["duration"]["nanoseconds"]
    offset_s = 0.5 * (emg_log[-1][0] - start_ns) / 1e9
    expected = decoded("/emg/raw", [raw for t, raw in emg_log
                                    if t >= start_ns + int(round(offset_s * 1e9))])
    assert 0 < len(expected) < N_EMG

    collector = ros_node.collect(EMG, "/replay/emg/raw", RELIABLE)
    clock = ros_node.collect(Clock, "/clock", 100)
    player = _play(node_process, recording.bag, "--topics", "/emg/raw", "--start-offset",
                   f"{offset_s:.9f}", "--remap", "/emg/raw:=/replay/emg/raw", "--clock", "100")
    player.wait_for_output(r"^Done: published \d+ messages", 60.0)
    assert player.wait(20.0) == 0, player.output
    received = collector.wait_for(len(expected), timeout_s=10.0)
    assert received == expected

    ticks = [m.clock.sec * 1_000_000_000 + m.clock.nanosec for m in clock.wait_for(5, 10.0)]
    assert ticks == sorted(ticks)
    assert start_ns + int(offset_s * 1e9) - 1_000_000 <= ticks[0] and ticks[-1] <= end_ns


# --- other ways in and out ---------------------------------------------------------------

def test_record_sqlite3_in_a_namespace_for_a_duration(tmp_path, node_process):
    bag = tmp_path / "left"
    with RosTestNode("left_driver", namespace="/left") as ros:
        latched = ros.node.create_publisher(JointState, "robot_hand/joint_states", LATCHED)
        latched.publish(joint_state(3))
        other = ros.node.create_publisher(EMG, "/emg/raw", RELIABLE)  # not in /left: ignored
        other.publish(emg_chunk(0))
        recorder = node_process(PKG, EXE, ["record", "-o", str(bag), "--storage", "sqlite3",
                                           "--duration", "4", "--ros-args", "-r",
                                           "__ns:=/left"])
        # --duration leaves the recorder 4 s to discover the latched publisher (it polls the
        # graph every 0.1 s); then it must stop by itself with a readable bag
        assert recorder.wait(30.0) == 0, recorder.output
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "sqlite3"
    assert info["relative_file_paths"][0].endswith(".db3")
    recorded = bag_messages(bag)
    assert list(recorded) == ["/left/robot_hand/joint_states"]
    assert [deserialize_message(raw, JointState)
            for _, raw in recorded["/left/robot_hand/joint_states"]] == [joint_state(3)]
    assert "/left/emg/raw" in recorder.output  # default topics resolved in the namespace


def test_bad_input_gets_a_clear_error(tmp_path):
    exe = str(executable_path(PKG, EXE))
    (tmp_path / "exists").mkdir()
    cases = [
        (["play", str(tmp_path / "missing")], "not a rosbag2 folder"),
        (["info", str(tmp_path)], "no metadata.yaml"),
        (["record", "-o", str(tmp_path / "exists")], "exists already"),
        (["play", str(tmp_path), "--remap", "nonsense"], "FROM:=TO"),
    ]
    for args, message in cases:
        result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
