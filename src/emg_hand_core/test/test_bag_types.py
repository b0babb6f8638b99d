"""Message types for bags without ROS: our definitions registered from the .msg files."""

from __future__ import annotations

import json
import os

import pytest

from emg_hand_core import bag_types
from emg_hand_core.bag_types import ensure_type, interface_dir, split_type_name, typestore


def test_split_type_name():
    assert split_type_name("emg_interfaces/msg/EMG") == ("emg_interfaces", "msg", "EMG")
    assert split_type_name("std_msgs/String") == ("std_msgs", "msg", "String")
    with pytest.raises(ValueError):
        split_type_name("EMG")


def test_typestore_has_our_messages_and_the_jazzy_standard_ones():
    store = typestore()
    for name in ("emg_interfaces/msg/EMG", "emg_interfaces/msg/HandKeypoints",
                 "emg_interfaces/msg/CalibrationPrompt", "sensor_msgs/msg/JointState",
                 "tf2_msgs/msg/TFMessage", "diagnostic_msgs/msg/DiagnosticArray",
                 "rosgraph_msgs/msg/Clock"):
        assert name in store.types, name
    emg = store.types["emg_interfaces/msg/EMG"]
    assert list(emg.__dataclass_fields__)[:6] == [
        "header", "sample_rate_hz", "channel_names", "first_sample_index", "num_samples", "data"]
    prompt = store.types["emg_interfaces/msg/CalibrationPrompt"]
    assert prompt.PHASE_HOLD == 1  # constants come through


def test_our_definitions_hash_like_rosidl_generated_them():
    """The RIHS01 hash of our registered EMG equals the one rosidl wrote at build time, so the
    definition embedded in bags is exactly the one the nodes were generated from."""
    folder = interface_dir("emg_interfaces")
    generated = folder / "EMG.json" if folder is not None else None
    if generated is None or not generated.is_file():
        pytest.skip("emg_interfaces not built (no share/emg_interfaces/msg/EMG.json)")
    hashes = json.loads(generated.read_text())["type_hashes"]
    expected = next(h["hash_string"] for h in hashes if h["type_name"] == "emg_interfaces/msg/EMG")
    assert typestore().hash_rihs01("emg_interfaces/msg/EMG") == expected


def test_typestore_falls_back_to_the_source_tree(monkeypatch, tmp_path):
    if not (bag_types._SRC_DIR / "emg_interfaces" / "msg").is_dir():
        pytest.skip("emg_hand_core is not running from the source tree (no symlink install)")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))  # an index without our packages
    folder = interface_dir("emg_interfaces")
    assert folder is not None and folder.parts[-3:] == ("src", "emg_interfaces", "msg")
    assert "emg_interfaces/msg/EMG" in typestore().types


def test_ensure_type_registers_installed_definitions_with_their_dependencies(monkeypatch,
                                                                           tmp_path):
    """Any installed interface package (found through the ament index) can be recorded."""
    prefix = tmp_path / "prefix"
    (prefix / "share/ament_index/resource_index/packages").mkdir(parents=True)
    (prefix / "share/ament_index/resource_index/packages/probe_msgs").write_text("")
    msg_dir = prefix / "share/probe_msgs/msg"
    msg_dir.mkdir(parents=True)
    (msg_dir / "Outer.msg").write_text("std_msgs/Header header\nprobe_msgs/Inner[] items\n")
    (msg_dir / "Inner.msg").write_text("float64 value\nstring label\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH",
                       os.pathsep.join([str(prefix), os.environ.get("AMENT_PREFIX_PATH", "")]))
    store = typestore()
    assert "probe_msgs/msg/Outer" not in store.types
    assert ensure_type(store, "probe_msgs/msg/Outer")
    assert {"probe_msgs/msg/Outer", "probe_msgs/msg/Inner"} <= set(store.types)
    assert not ensure_type(store, "probe_msgs/msg/Missing")
    assert not ensure_type(store, "nothing_here_msgs/msg/X")
