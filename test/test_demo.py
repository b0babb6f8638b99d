"""`make demo` end to end: scripts/demo.py with DEMO_SECONDS=8 runs the whole graph over
DDS in separate processes (ros2 launch where available, else the same executables) and
must leave its artifacts, each meaningful: a rosbag2 with EMG chunks and predicted poses, a
PNG of the predicted vs reference hand, a PNG and GIF of the simulated robot hand (where
offscreen GL works), and a summary whose figures parse and describe a working system (EMG
at the simulator's rate, poses flowing, the controller enabled and commanding, hand_sim in
real time measuring the hand and its contacts)."""

from __future__ import annotations

import math
import struct
import sys
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader

from emg_hand_core.bag_types import typestore

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(240)


def read_summary(path: Path) -> dict[str, str]:
    figures = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(": ")
            figures[key] = value
    return figures


def test_demo_leaves_a_bag_a_png_and_a_summary(tmp_path, command):
    out = tmp_path / "demo_output"
    demo = command([sys.executable, ROOT / "scripts" / "demo.py"],
                   env={"DEMO_SECONDS": "8", "DEMO_OUTPUT": str(out)})
    assert demo.wait(timeout_s=200.0) == 0, demo.output[-4000:]
    assert "first pose after" in demo.output and "real time, contact" in demo.output

    figures = read_summary(out / "summary.txt")
    assert figures["demo_seconds"] == "8"
    assert 400 <= float(figures["emg_rate_hz"]) <= 600  # the simulated armband's 500 Hz
    assert int(figures["emg_channels"]) == 8
    assert float(figures["pose_rate_hz"]) > 10 and int(figures["poses"]) > 80
    p50, p99 = float(figures["latency_p50_ms"]), float(figures["latency_p99_ms"])
    assert 0 < p50 <= p99 and math.isfinite(p99)
    # the default model on the wearer it was trained for: far better than chance (~0.4 rad)
    assert float(figures["pose_error_mean_rad"]) < 0.2
    assert figures["controller_enabled"] == "True"
    assert figures["controller_state"] in ("active", "watchdog")
    # the simulated prosthetic hand: physics >= 500 Hz in real time, measured states
    # following the commands, and the wearer's fist grasping the cylinder
    assert float(figures["sim_physics_rate_hz"]) >= 500
    assert 0.8 <= float(figures["sim_real_time_factor"]) <= 1.2
    assert int(figures["sim_measured_states"]) > 400  # 100 Hz
    assert 0 <= float(figures["sim_tracking_lag_ms"]) < 150
    contacts = figures["sim_contact_max_n"].split()
    assert dict(zip(contacts[::2], map(float, contacts[1::2]))).keys() == \
        {"thumb", "index", "middle", "ring", "little"}
    assert figures["png_status"] == "ok"
    assert all(code.endswith("=0") for code in figures["exit_codes"].split()), \
        figures["exit_codes"]  # every process stopped cleanly on SIGINT

    bag = out / "bag"
    counts = {k.split(" ", 1)[1]: int(v) for k, v in figures.items()
              if k.startswith("bag_count ")}
    assert counts["/emg/raw"] >= 8 * 100 * 0.8  # 8 s of 10 ms chunks at least
    assert counts["/hand/joint_states"] >= int(figures["poses"]) * 0.9
    assert counts["/robot_hand/joint_states"] > 400  # measured, by hand_sim
    assert counts["/robot_hand/commanded_joint_states"] > 80  # the controller's
    assert counts["/robot_hand/contacts"] > 400
    with AnyReader([bag], default_typestore=typestore()) as reader:
        by_topic = {c.topic: c for c in reader.connections}
        assert by_topic["/emg/raw"].msgtype == "emg_interfaces/msg/EMG"
        assert sum(1 for _ in reader.messages(connections=[by_topic["/emg/raw"]])) == \
            counts["/emg/raw"]
        _, _, raw = next(reader.messages(connections=[by_topic["/hand/joint_states"]]))
        pose = reader.deserialize(raw, "sensor_msgs/msg/JointState")
        assert len(pose.name) == 20 and all(math.isfinite(v) for v in pose.position)

    png = (out / "hand.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 800 and height >= 400 and len(png) > 50_000

    from hand_sim.render import gl_problem

    if gl_problem() is not None:  # no GL: physics ran, the picture was skipped with why
        assert figures["robot_png_status"].startswith("skipped: ")
        return
    assert figures["robot_png_status"] == "ok"
    robot = (out / "robot_hand.png").read_bytes()
    assert robot[:8] == b"\x89PNG\r\n\x1a\n" and len(robot) > 20_000
    assert struct.unpack(">II", robot[16:24]) == (4 * 480, 360)  # 4 frames
    gif = (out / "robot_hand.gif").read_bytes()
    assert gif[:6] == b"GIF89a" and len(gif) > 50_000
