"""Loaders into the one Recording form: CSV formats, emg2pose HDF5, rosbag2."""

import json

import h5py
import numpy as np
import pytest

from emg_pose_node.data import (
    DataError,
    Recording,
    emg_msg_definition,
    load_emg2pose_hdf5,
    load_recording,
    resample_recording,
    usable_channels,
    write_emg2pose_hdf5,
    write_rosbag,
)
from emg_pose_node.hand_model import JOINT_NAMES
from emg_pose_node.synthetic import synthetic_recording

FINGERS = ["thumb", "index", "middle", "ring", "pinky"]


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(f"{v:g}" for v in r)
                                                        for r in rows) + "\n")


def test_emg_mp_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 250
    t = np.arange(n) * 8.0 + rng.integers(-1, 2, n)
    fingers = rng.uniform(0, 1, (n, 5))
    emg = rng.normal(0, 10, (n, 16))
    path = tmp_path / "emg_mp_1.csv"
    write_csv(path, ["timestamp"] + FINGERS + [f"ch_{i}" for i in range(1, 17)],
              np.c_[t, fingers, emg])
    rec = load_recording(path, channels=[f"ch_{i}" for i in range(1, 11)])
    assert rec.num_channels == 10 and rec.value_names == tuple(FINGERS)
    assert rec.sample_rate_hz == pytest.approx((n - 1) / ((t[-1] - t[0]) / 1000))
    assert np.allclose(rec.emg, emg[:, :10] * 1e-6, rtol=1e-5)  # uV -> V
    assert np.allclose(rec.values, fingers, atol=1e-5)
    assert np.allclose(rec.targets("values", ("index", "thumb")), fingers[:, [1, 0]], atol=1e-5)
    with pytest.raises(DataError, match="ch_20"):
        rec.select_channels(["ch_20"])


def test_merged_csv_uses_raw_channels(tmp_path):
    rng = np.random.default_rng(1)
    header = ["timestamp"] + FINGERS
    for k in range(1, 3):
        header += [f"ch_{k}_raw"] + [f"ch_{k}_ema_{e}" for e in (1, 2, 4)]
    data = np.c_[np.arange(50) * 8.0, rng.uniform(size=(50, 5)), rng.normal(size=(50, 8))]
    path = tmp_path / "data_1.csv"
    write_csv(path, header, data)
    rec = load_recording(path)
    assert rec.channel_names == ("ch_1", "ch_2")
    assert np.allclose(rec.emg[:, 1], data[:, 6 + 4] * 1e-6, rtol=1e-5)


def test_prompted_folder_and_myo(tmp_path):
    folder = tmp_path / "r_1"
    folder.mkdir()
    (tmp_path / "frequency_info.json").write_text(json.dumps({"exg_fs": 250.0}))
    t = 1000 + np.arange(500) * 4.0
    write_csv(folder / "exg.csv", ["timestamp"] + [f"exg_{i}" for i in range(1, 5)],
              np.c_[t, np.random.default_rng(2).normal(size=(500, 4))])
    write_csv(folder / "prompt.csv", ["timestamp"] + FINGERS,
              [[1400, 0, 1, 1, 0, 0], [1800, 1, 1, 1, 1, 1]])
    rec = load_recording(folder)
    assert rec.sample_rate_hz == 250.0 and rec.channel_names[0] == "ch_1"
    assert not rec.label_mask[t < 1400].any() and rec.label_mask[t >= 1400].all()
    assert np.array_equal(rec.values[t >= 1800][0], [1, 1, 1, 1, 1])
    assert np.array_equal(rec.values[(t >= 1400) & (t < 1800)][0], [0, 1, 1, 0, 0])
    myo = tmp_path / "1.txt"
    myo.write_text("\n".join("1,-2,3,4,5,6,7,-8,1" for _ in range(30)))
    m = load_recording(myo)
    assert m.num_channels == 8 and m.emg_unit == "counts" and m.gesture[0] == 1


def test_emg2pose_hdf5_masks_zero_rows_and_reads_attributes(tmp_path):
    rec = synthetic_recording(duration_s=2.0, sample_rate_hz=500.0, channels=4, seed=1)
    rec.joint_angles[100:150] = 0.0  # failed labels
    path = tmp_path / "sim.h5"
    write_emg2pose_hdf5(path, rec)
    back = load_recording(path)
    assert back.sample_rate_hz == 500.0 and back.channel_names == rec.channel_names
    assert np.array_equal(back.emg, rec.emg)
    assert not back.label_mask[100:150].any() and back.label_mask[:100].all()
    assert np.allclose(back.joint_angles[:100], rec.joint_angles[:100])


def test_emg2pose_hdf5_without_attributes(tmp_path):
    n = 300
    dtype = np.dtype([("time", "f8"), ("emg", "f4", (2,)), ("joint_angles", "f8", (20,))])
    table = np.zeros(n, dtype)
    table["time"] = 100.0 + np.arange(n) / 2000.0
    table["emg"] = np.random.default_rng(0).normal(size=(n, 2))
    table["joint_angles"][:, 3] = 0.2
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f.create_group("emg2pose").create_dataset("timeseries", data=table)
    rec = load_emg2pose_hdf5(path)
    assert rec.sample_rate_hz == pytest.approx(2000.0)
    assert rec.channel_names == ("ch_1", "ch_2") and rec.label_mask.all()
    with h5py.File(path, "a") as f:
        f["emg2pose"].attrs["sample_rate_hz"] = 2000.0
        f.attrs["channel_names"] = "left, right"
    rec = load_emg2pose_hdf5(path)
    assert rec.sample_rate_hz == 2000.0 and rec.channel_names == ("left", "right")
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(DataError, match="emg2pose/timeseries"):
        load_recording(bad)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="cannot read HDF5"):
        load_recording(tmp_path / "junk.h5")


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_rosbag_round_trip_with_gap(tmp_path, storage):
    rec = synthetic_recording(duration_s=1.0, sample_rate_hz=500.0, channels=3, seed=2)
    path = tmp_path / "bag"
    write_rosbag(path, rec, chunk_samples=10, storage=storage, drop_chunks=(7,),
                 joint_state_every=5)
    assert (path / "metadata.yaml").exists()
    back = load_recording(path)
    assert back.sample_rate_hz == 500.0 and back.channel_names == rec.channel_names
    assert back.num_samples == rec.num_samples
    gap = slice(70, 80)
    assert not back.emg_valid[gap].any() and back.emg_valid[:70].all()
    assert np.array_equal(back.emg[back.emg_valid], rec.emg[back.emg_valid])
    assert np.allclose(back.timestamps_s - back.timestamps_s[0],
                       rec.timestamps_s - rec.timestamps_s[0], atol=1e-6)
    ok = back.label_mask
    assert ok.mean() > 0.95
    # Smooth motion sampled every 10 ms, interpolated back to 2 ms: close to the truth.
    assert np.abs(back.joint_angles[ok] - rec.joint_angles[ok]).max() < 2e-3
    assert not back.valid_labels()[gap].any()


def test_rosbag_joint_states_in_any_order_and_missing_topic(tmp_path):
    from rosbags.rosbag2 import Writer

    from emg_pose_node.data import ros_typestore

    store = ros_typestore()
    emg_cls = store.types["emg_interfaces/msg/EMG"]
    header = store.types["std_msgs/msg/Header"]
    stamp = store.types["builtin_interfaces/msg/Time"]
    js_cls = store.types["sensor_msgs/msg/JointState"]
    order = list(reversed(JOINT_NAMES))
    path = tmp_path / "ns_bag"
    with Writer(path, version=9) as w:
        c_emg = w.add_connection("/robot1/emg/raw", "emg_interfaces/msg/EMG", typestore=store)
        c_js = w.add_connection("/robot1/hand/reference/joint_states",
                                "sensor_msgs/msg/JointState", typestore=store)
        for k in range(20):
            t_ns = 10**9 + k * 10**7
            msg = emg_cls(header=header(stamp=stamp(sec=1, nanosec=k * 10**7), frame_id="a"),
                          sample_rate_hz=100.0, channel_names=["x", "y"], first_sample_index=k,
                          num_samples=1, data=np.array([k, -k], np.float32))
            w.write(c_emg, t_ns, bytes(store.serialize_cdr(msg, "emg_interfaces/msg/EMG")))
            js = js_cls(header=header(stamp=stamp(sec=1, nanosec=k * 10**7), frame_id=""),
                        name=order, position=np.array([0.01 * k] * 19 + [0.5]),
                        velocity=np.zeros(0), effort=np.zeros(0))
            w.write(c_js, t_ns, bytes(store.serialize_cdr(js, "sensor_msgs/msg/JointState")))
    rec = load_recording(path)
    assert rec.emg[5].tolist() == [5, -5]
    assert np.allclose(rec.joint_angles[:, 0], 0.5)  # thumb_cmc_fe was written last
    assert np.allclose(rec.joint_angles[:, 1], 0.01 * np.arange(20))
    with pytest.raises(DataError, match="no emg/other topic"):
        load_recording(path, emg_topic="emg/other")


def test_msg_definition_is_the_interface_package_file():
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "emg_interfaces" / "msg" / "EMG.msg"
    assert emg_msg_definition() == source.read_text()


def test_recording_validation_and_helpers():
    with pytest.raises(DataError, match="NaN"):
        Recording(emg=np.array([[np.nan]]), sample_rate_hz=10.0, channel_names=("a",))
    with pytest.raises(DataError, match="joint_angles"):
        Recording(emg=np.zeros((5, 1)), sample_rate_hz=10.0, channel_names=("a",),
                  joint_angles=np.zeros((4, 20)))
    with pytest.raises(DataError, match="no such file"):
        load_recording("/nonexistent/file.h5")
    rec = synthetic_recording(duration_s=2.0, sample_rate_hz=500.0, channels=3)
    rec.emg[:, 2] *= 0.01  # an unused electrode
    assert usable_channels(rec) == ("ch_1", "ch_2")
    down = resample_recording(rec, 250.0)
    assert down.num_samples == 500 and down.sample_rate_hz == 250.0
    assert np.allclose(down.joint_angles[::10], rec.joint_angles[::20][:50], atol=1e-9)
    s = rec.summary()
    json.dumps(s)
    assert s["labels"] == ["joint_angles"] and s["num_samples"] == 1000


def test_real_eeg_emg_hands_file(shared_data):
    rec = load_recording(shared_data / "eeg_emg_hands" / "s_0" / "emg_mp_1734156561.csv")
    assert rec.num_samples == 18736 and rec.num_channels == 16
    assert 124.0 < rec.sample_rate_hz < 126.0
    assert usable_channels(rec) == tuple(f"ch_{i}" for i in range(1, 11))
    assert 0.0 <= rec.values.min() and rec.values.max() <= 1.0
