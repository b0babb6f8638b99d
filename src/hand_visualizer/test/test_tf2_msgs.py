"""The tf2_msgs in use (pip_env's stand-in here, the real one on a ROS install) defines
TFMessage exactly as upstream: same fields, hence the same RIHS01 type hash as Jazzy's."""

import json
from pathlib import Path

import pytest
from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from rosbags.typesys import Stores, get_typestore


def test_tfmessage_has_the_standard_type_hash():
    try:
        share = Path(get_package_share_directory("tf2_msgs"))
    except PackageNotFoundError:
        pytest.skip("tf2_msgs is not built (pip mode builds pip_env/tf2_msgs)")
    description = json.loads((share / "msg" / "TFMessage.json").read_text())
    ours = {h["type_name"]: h["hash_string"] for h in description["type_hashes"]}
    standard = get_typestore(Stores.ROS2_JAZZY).hash_rihs01("tf2_msgs/msg/TFMessage")
    assert ours["tf2_msgs/msg/TFMessage"] == standard
