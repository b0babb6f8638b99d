"""Bag files written and read with rosbags by emg_hand_bag's core (no ROS graph; real files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader

from emg_hand_bringup.bag_core import BagError, make_qos
from emg_hand_bringup.bag_io import BagSource, BagWriter
from emg_hand_core.bag_types import (
    typestore,
)

INF_NS = 2**63 - 1
RELIABLE_LATCHED = make_qos(history=3, depth=0, reliability=1, durability=1,
                            deadline_ns=INF_NS, lifespan_ns=INF_NS, liveliness=1,
                            liveliness_lease_duration_ns=INF_NS)
RELIABLE = make_qos(history=3, depth=0, reliability=1, durability=2, deadline_ns=INF_NS,
                    lifespan_ns=INF_NS, liveliness=1, liveliness_lease_duration_ns=INF_NS)
T0 = 1_700_000_000_000_000_000


def _emg(store, index: int):
    EMG = store.types["emg_interfaces/msg/EMG"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    data = (np.arange(80, dtype=np.float32) * 1e-6 + index).astype(np.float32)
    return EMG(header=Header(stamp=Time(sec=index, nanosec=5), frame_id="emg_armband"),
               sample_rate_hz=1000.0, channel_names=[f"ch_{i}" for i in range(1, 9)],
               first_sample_index=10 * index, num_samples=10, data=data)


def _write_bag(path: Path, storage: str) -> list[bytes]:
    store = typestore()
    raws = [bytes(store.serialize_cdr(_emg(store, i), "emg_interfaces/msg/EMG"))
            for i in range(5)]
    with BagWriter(path, storage) as writer:
        emg = writer.add_topic("/emg/raw", "emg_interfaces/msg/EMG", [RELIABLE])
        static = writer.add_topic("/tf_static", "tf2_msgs/msg/TFMessage", [RELIABLE_LATCHED])
        tf = store.types["tf2_msgs/msg/TFMessage"](transforms=[])
        writer.write(static, T0, bytes(store.serialize_cdr(tf, "tf2_msgs/msg/TFMessage")))
        for i, raw in enumerate(raws):
            writer.write(emg, T0 + 10_000_000 * (i + 1), raw)
        assert writer.message_count == 6 and not writer.warnings
    return raws


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_has_the_metadata_ros2_bag_expects(tmp_path, storage):
    bag = tmp_path / "bag"
    _write_bag(bag, storage)
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 9
    assert info["storage_identifier"] == storage
    assert info["message_count"] == 6
    assert info["starting_time"]["nanoseconds_since_epoch"] == T0
    assert info["duration"]["nanoseconds"] == 50_000_000
    files = info["relative_file_paths"]
    assert len(files) == 1 and (bag / files[0]).is_file()
    assert files[0].endswith(".mcap" if storage == "mcap" else ".db3")
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert topics["/emg/raw"]["message_count"] == 5
    meta = topics["/emg/raw"]["topic_metadata"]
    assert meta["type"] == "emg_interfaces/msg/EMG"
    assert meta["serialization_format"] == "cdr"
    assert meta["type_description_hash"] == typestore().hash_rihs01("emg_interfaces/msg/EMG")
    (qos,) = meta["offered_qos_profiles"]
    assert (qos["reliability"], qos["durability"]) == ("reliable", "volatile")
    assert qos["deadline"] == {"sec": 9223372036, "nsec": 854775807}
    static_qos = topics["/tf_static"]["topic_metadata"]["offered_qos_profiles"][0]
    assert static_qos["durability"] == "transient_local"


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_reads_back_with_rosbags_and_our_source(tmp_path, storage):
    bag = tmp_path / "bag"
    raws = _write_bag(bag, storage)
    with AnyReader([bag], default_typestore=typestore()) as reader:
        emg = [(t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()
               if c.topic == "/emg/raw"]
    assert [m.first_sample_index for _, m in emg] == [0, 10, 20, 30, 40]
    assert emg[2][1].channel_names[0] == "ch_1"
    np.testing.assert_array_equal(emg[3][1].data, _emg(typestore(), 3).data)

    with BagSource(bag) as source:
        assert source.topics["/emg/raw"].msgtype == "emg_interfaces/msg/EMG"
        assert source.topics["/tf_static"].offered_qos[0].durability.name == "TRANSIENT_LOCAL"
        assert (source.start_ns, source.end_ns) == (T0, T0 + 50_000_000)
        played = list(source.messages(["/emg/raw"]))
        assert [bytes(d) for _, _, d in played] == raws  # CDR bytes untouched
        later = list(source.messages(start_ns=T0 + 30_000_000))
        assert [t for _, t, _ in later] == [T0 + 30_000_000, T0 + 40_000_000, T0 + 50_000_000]
        with pytest.raises(BagError, match="no topic"):
            list(source.messages(["/nope"]))


def test_mcap_embeds_our_definition_for_the_mcap_reader(tmp_path):
    bag = tmp_path / "bag"
    raws = _write_bag(bag, "mcap")
    with open(bag / "bag.mcap", "rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        schemas = {s.name: s for s in summary.schemas.values()}
        emg = schemas["emg_interfaces/msg/EMG"]
        assert emg.encoding == "ros2msg"
        text = emg.data.decode()
        assert "float32[] data" in text and "uint64 first_sample_index" in text
        assert "MSG: std_msgs/Header" in text  # dependencies embedded too
        channels = {c.topic: c for c in summary.channels.values()}
        assert channels["/emg/raw"].message_encoding == "cdr"
        assert "offered_qos_profiles" in channels["/emg/raw"].metadata
        f.seek(0)
        data = [m.data for _, c, m in make_reader(f).iter_messages(topics=["/emg/raw"])]
    assert data == raws
    # and rosbags' own low-level reader agrees on the message definition
    with Reader(bag) as r:
        (conn,) = [c for c in r.connections if c.topic == "/emg/raw"]
        assert "float32[] data" in conn.msgdef.data


def test_writer_refuses_existing_folders_and_bad_storage(tmp_path):
    with pytest.raises(BagError, match="exists"):
        BagWriter(tmp_path, "mcap")
    with pytest.raises(BagError, match="unknown storage"):
        BagWriter(tmp_path / "x", "rosbag1")


def test_unknown_type_is_still_recorded_with_a_warning(tmp_path):
    with BagWriter(tmp_path / "bag", "mcap") as writer:
        record = writer.add_topic("/odd", "nothing_here_msgs/msg/Thing", [RELIABLE])
        writer.write(record, T0, b"\x00\x01\x00\x00\x01\x02\x03\x04")
        assert not record.definition_found
        assert any("no definition" in w for w in writer.warnings)
    with BagSource(tmp_path / "bag") as source:
        assert [bytes(d) for _, _, d in source.messages()] == [b"\x00\x01\x00\x00\x01\x02\x03\x04"]


def test_source_errors_are_clear(tmp_path):
    with pytest.raises(BagError, match="no metadata.yaml"):
        BagSource(tmp_path)
