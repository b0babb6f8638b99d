"""hand_render: reads a generated rosbag2 (and .npz) and draws a PNG that shows the poses."""

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from emg_hand_core.hand_model import JOINT_NAMES
from emg_hand_core.poses import NAMED_POSES
from hand_visualizer.bag_io import RecordingError, read_recording
from hand_visualizer.render import main

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
JointState = TYPESTORE.types["sensor_msgs/msg/JointState"]
Header = TYPESTORE.types["std_msgs/msg/Header"]
Time = TYPESTORE.types["builtin_interfaces/msg/Time"]


def write_bag(path: Path, predicted: np.ndarray, reference: np.ndarray, *, rate_hz=50.0,
              namespace="", storage=StoragePlugin.MCAP, names=JOINT_NAMES) -> Path:
    """A rosbag2 with predicted and reference JointState streams (N, 20) each."""
    t0_ns = 1_700_000_000 * 10**9
    with Writer(path, version=9, storage_plugin=storage) as writer:
        conns = {}
        for role, topic in (("pred", f"{namespace}/hand/joint_states"),
                            ("ref", f"{namespace}/hand/reference/joint_states")):
            conns[role] = writer.add_connection(topic, JointState.__msgtype__,
                                                typestore=TYPESTORE)
        # The reference is published slightly before the prediction of the same instant.
        for k in range(len(predicted)):
            for role, data, lag_ns in (("ref", reference, 0), ("pred", predicted, 3_000_000)):
                t_ns = t0_ns + int(k * 1e9 / rate_hz) + lag_ns
                msg = JointState(
                    header=Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9),
                                  frame_id=""),
                    name=list(names), position=np.asarray(data[k], dtype=np.float64),
                    velocity=np.zeros(0), effort=np.zeros(0))
                writer.write(conns[role], t_ns + 1000,
                             TYPESTORE.serialize_cdr(msg, JointState.__msgtype__))
    return path


def poses(name: str, n: int = 40) -> np.ndarray:
    return np.repeat(NAMED_POSES[name][None], n, axis=0)


def render(tmp_path: Path, source: Path, name: str, *extra: str) -> np.ndarray:
    out = tmp_path / f"{name}.png"
    assert main([str(source), "-o", str(out), "--width-in", "8", "--dpi", "50", *extra]) == 0
    return imread(out)


def hand_region(img: np.ndarray) -> np.ndarray:
    return img[: img.shape[0] // 2]  # the hand frames are the top half


def test_bag_to_png_shows_the_poses(tmp_path):
    rng = np.random.default_rng(0)
    fist = write_bag(tmp_path / "fist", poses("fist") + rng.normal(0, 0.02, (40, 20)),
                     poses("fist"))
    opened = write_bag(tmp_path / "open", poses("open"), poses("open"),
                       storage=StoragePlugin.SQLITE3)
    img_fist = render(tmp_path, fist, "fist")
    img_open = render(tmp_path, opened, "open")
    img_fist2 = render(tmp_path, fist, "fist2")
    # size = width_in * dpi by width_in * 0.55 * dpi, RGBA
    assert img_fist.shape == (220, 400, 4) == img_open.shape
    # A real drawing: plenty of non-white pixels, and the prediction's red among them.
    rgb = img_fist[..., :3]
    assert (rgb.min(axis=2) < 0.9).mean() > 0.02
    red = (rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.35) & (rgb[..., 2] < 0.35)
    assert red.sum() > 50
    # Different poses draw different hands; the same input draws the same picture.
    diff = np.abs(hand_region(img_fist) - hand_region(img_open)).max(axis=2)
    assert (diff > 0.2).mean() > 0.01
    np.testing.assert_array_equal(img_fist, img_fist2)


def test_prediction_and_reference_are_both_read_under_a_namespace(tmp_path):
    bag = write_bag(tmp_path / "ns", poses("pinch", 10), poses("point", 10), namespace="/left")
    pred, ref = read_recording(bag)
    assert pred.q.shape == ref.q.shape == (10, 20)
    np.testing.assert_allclose(pred.q[0], NAMED_POSES["pinch"])
    np.testing.assert_allclose(ref.q[0], NAMED_POSES["point"])
    assert ref.t[0] == 0.0 and pred.t[0] == pytest.approx(0.003)
    np.testing.assert_allclose(np.diff(pred.t), 0.02, atol=1e-6)


def test_joint_names_in_another_order_are_reordered(tmp_path):
    order = list(reversed(JOINT_NAMES))
    fist = NAMED_POSES["fist"]
    perm = [JOINT_NAMES.index(n) for n in order]
    bag = write_bag(tmp_path / "rev", np.repeat(fist[perm][None], 5, 0),
                    np.repeat(fist[perm][None], 5, 0), names=order)
    pred, _ = read_recording(bag)
    np.testing.assert_allclose(pred.q[0], fist)


def test_npz_recording_and_reference_only(tmp_path):
    t = np.linspace(0, 2, 50)
    q = np.linspace(NAMED_POSES["open"], NAMED_POSES["fist"], 50)
    np.savez(tmp_path / "eval.npz", t=t, q_pred=q, q_ref=q[::-1])
    img = render(tmp_path, tmp_path / "eval.npz", "npz", "--frames", "3")
    assert img.shape == (220, 400, 4)
    np.savez(tmp_path / "ref.npz", t=t, q_ref=q)
    assert render(tmp_path, tmp_path / "ref.npz", "ref").shape == (220, 400, 4)


def test_bad_inputs_fail_clearly(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")]) == 1
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    with Writer(empty, version=9) as writer:
        writer.add_connection("/emg/raw_other", JointState.__msgtype__, typestore=TYPESTORE)
    with pytest.raises(RecordingError, match="no hand/joint_states"):
        read_recording(empty)
    assert not (tmp_path / "x.png").exists()
