"""The one Recording form and one reader per format: generated files of every layout, the
shared real recordings (skipped when ../shared/data is absent), and the rules every reader
follows (volts, NaN rows, lines that do not parse, scales)."""

import json

import h5py
import numpy as np
import pytest

from emg_hand_core.hand_model import JOINT_NAMES
from emg_hand_core.recordings import (
    FORMAT_CHOICES,
    FORMATS,
    DataError,
    Recording,
    detect_format,
    emg2pose,
    load_recording,
    resample_recording,
    rosbag2,
    usable_channels,
)
from emg_hand_core.units import MYO_VOLTS_PER_COUNT

FINGERS = ["thumb", "index", "middle", "ring", "pinky"]
EEG = "eeg_emg_hands"


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(f"{v:g}" for v in r)
                                                        for r in rows) + "\n")


def smooth_recording(n=1000, rate=500.0, channels=3, seed=2) -> Recording:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    q = 0.4 + 0.3 * np.sin(2 * np.pi * 0.5 * t[:, None] + rng.uniform(0, 6, 20))
    return Recording(emg=rng.normal(0, 1e-4, (n, channels)).astype(np.float32),
                     sample_rate_hz=rate, timestamps_s=t, joint_angles=q)


# --- every format, generated --------------------------------------------------------------

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
    assert rec.format == "eeg_emg_hands" and detect_format(path) == "eeg_emg_hands"
    assert rec.num_channels == 10 and rec.value_names == tuple(FINGERS)
    assert rec.sample_rate_hz == pytest.approx((n - 1) / ((t[-1] - t[0]) / 1000))
    assert np.allclose(rec.emg, emg[:, :10] * 1e-6, rtol=1e-5)  # uV -> V
    assert rec.scale_v_per_unit == 1e-6 and rec.emg_unit == "V"
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
    assert rec.format == "eeg_emg_hands_merged"
    assert rec.channel_names == ("ch_1", "ch_2")
    assert np.allclose(rec.emg[:, 1], data[:, 6 + 4] * 1e-6, rtol=1e-5)


def test_prompted_folder_and_its_exg_file(tmp_path):
    folder = tmp_path / "r_1"
    folder.mkdir()
    (tmp_path / "frequency_info.json").write_text(json.dumps({"exg_fs": 250.0}))
    t = 1000 + np.arange(500) * 4.0
    write_csv(folder / "exg.csv", ["timestamp"] + [f"exg_{i}" for i in range(1, 5)],
              np.c_[t, np.random.default_rng(2).normal(size=(500, 4))])
    write_csv(folder / "prompt.csv", ["timestamp"] + FINGERS,
              [[1400, 0, 1, 1, 0, 0], [1800, 1, 1, 1, 1, 1]])
    for path in (folder, folder / "exg.csv"):
        rec = load_recording(path)
        assert rec.format == "eeg_emg_hands_prompted"
        assert rec.sample_rate_hz == 250.0 and rec.channel_names[0] == "ch_1"
        assert not rec.label_mask[t < 1400].any() and rec.label_mask[t >= 1400].all()
        assert np.array_equal(rec.values[t >= 1800][0], [1, 1, 1, 1, 1])
        assert np.array_equal(rec.values[(t >= 1400) & (t < 1800)][0], [0, 1, 1, 0, 0])


def test_myo_counts_become_volts_with_the_nominal_or_a_given_scale(tmp_path):
    myo = tmp_path / "1.txt"
    myo.write_text("\n".join("1,-2,3,4,5,6,7,-8,1" for _ in range(30)))
    m = load_recording(myo)
    assert m.format == "myo_readings" and m.num_channels == 8 and m.emg_unit == "V"
    assert m.scale_v_per_unit == MYO_VOLTS_PER_COUNT and "nominal" in m.units_note
    assert np.allclose(m.emg[0], np.array([1, -2, 3, 4, 5, 6, 7, -8]) * MYO_VOLTS_PER_COUNT)
    assert m.gesture[0] == 1 and m.gesture_names[7] == "fist"
    given = load_recording(myo, scale_v_per_unit=2e-6)
    assert np.allclose(given.emg, m.emg / MYO_VOLTS_PER_COUNT * 2e-6)
    assert load_recording(myo, format="myo_txt").format == "myo_readings"  # an older name


def test_emg2pose_round_trip_partial_read_and_masked_labels(tmp_path):
    rec = smooth_recording(n=4000, rate=2000.0, channels=16)
    rec.joint_angles[100:150] = 0.0  # failed labels (emg2pose's IK failures)
    path = emg2pose.write(tmp_path / "s.hdf5", rec, attrs={"user": "x"})
    back = load_recording(path)
    assert back.format == "emg2pose" and back.sample_rate_hz == 2000.0
    assert np.array_equal(back.emg, rec.emg) and back.meta["user"] == "x"
    assert not back.label_mask[100:150].any() and back.label_mask[:100].all()
    assert np.allclose(back.joint_angles[:100], rec.joint_angles[:100])
    part = load_recording(path, start_s=0.5, duration_s=0.25)
    np.testing.assert_array_equal(part.emg, rec.emg[1000:1500])
    with emg2pose.File(path) as f:  # rows by number, as training at scale reads them
        assert f.num_rows == 4000 and f.sample_rate_hz == 2000.0
        rows = f.rows(90, 160)
        np.testing.assert_array_equal(rows.emg, back.emg[90:160])
        np.testing.assert_array_equal(rows.label_mask, back.label_mask[90:160])
        emg, angles = f.arrays(3000, 3100)
        np.testing.assert_array_equal(emg, back.emg[3000:3100])
        np.testing.assert_array_equal(angles, back.joint_angles[3000:3100])


def test_emg2pose_without_attributes_and_with_a_unit(tmp_path):
    n = 300
    table = np.zeros(n, emg2pose.dtype(2))
    table["time"] = 100.0 + np.arange(n) / 2000.0
    table["emg"] = np.random.default_rng(0).normal(size=(n, 2))
    table["joint_angles"][:, 3] = 0.2
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f.create_group("emg2pose").create_dataset("timeseries", data=table)
    rec = load_recording(path)
    assert rec.sample_rate_hz == pytest.approx(2000.0)
    assert rec.channel_names == ("ch_1", "ch_2") and rec.label_mask.all()
    assert "does not state" in rec.units_note
    with h5py.File(path, "a") as f:
        f["emg2pose"].attrs["sample_rate_hz"] = 2000.0
        f.attrs["channel_names"] = "left, right"
        f["emg2pose"].attrs["emg_units"] = "uV"
    rec = load_recording(path)
    assert rec.sample_rate_hz == 2000.0 and rec.channel_names == ("left", "right")
    assert np.allclose(rec.emg, table["emg"] * 1e-6)
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
    rec = smooth_recording()
    path = tmp_path / "bag"
    rosbag2.write(path, rec, chunk_samples=10, storage=storage, drop_chunks=(7,),
                  joint_state_every=5)
    assert (path / "metadata.yaml").exists() and detect_format(path) == "rosbag2"
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


def test_rosbag_joint_states_in_any_order_namespaced_and_missing_topic(tmp_path):
    from rosbags.rosbag2 import Writer

    from emg_hand_core.bag_types import typestore

    store = typestore()
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
            position = np.array([0.01 * k] * 19 + [0.5])
            if k == 3:
                position[0] = np.nan  # a reference message that cannot be used: skipped
            js = js_cls(header=header(stamp=stamp(sec=1, nanosec=k * 10**7), frame_id=""),
                        name=order, position=position, velocity=np.zeros(0),
                        effort=np.zeros(0))
            w.write(c_js, t_ns, bytes(store.serialize_cdr(js, "sensor_msgs/msg/JointState")))
    rec = load_recording(path)
    assert rec.emg[5].tolist() == [5, -5]
    assert np.allclose(rec.joint_angles[:, 0], 0.5)  # thumb_cmc_fe was written last
    assert np.allclose(rec.joint_angles[:, 1], 0.01 * np.arange(20))
    assert rec.meta["skipped_joint_states"] == 1
    with pytest.raises(DataError, match="no emg/other topic"):
        load_recording(path, emg_topic="emg/other")
    tracks = rosbag2.read_joint_tracks(path, ["hand/reference/joint_states", "absent"])
    assert list(tracks) == ["hand/reference/joint_states"]
    assert tracks["hand/reference/joint_states"].angles.shape == (19, 20)


# --- rules every reader follows -----------------------------------------------------------

def test_nonfinite_rows_and_unparsed_lines_stay_in_place_as_dropped_samples(tmp_path):
    lines = [f"{k},{-k},1,1,1,1,1,1,0" for k in range(10)]
    lines[4] = "4,2,1,0,-1,0,0,0,00,3,2,0,1,1,-1,0,0"  # two samples run together
    lines[6] = "nan,1,1,1,1,1,1,1,0"
    path = tmp_path / "merged.txt"
    path.write_text("\n".join(lines) + "\n")
    rec = load_recording(path)
    assert rec.num_samples == 10  # nothing shifted
    assert rec.emg_valid.tolist() == [True] * 4 + [False, True, False] + [True] * 3
    assert np.all(rec.emg[[4, 6]] == 0) and rec.emg[9, 1] == pytest.approx(-9e-5)
    assert "line 5" in rec.meta["bad_lines"] and rec.meta["nonfinite_rows"] == 2
    assert rec.gesture[4] == -1
    with pytest.raises(DataError, match="NaN"):
        Recording(emg=np.array([[np.nan]]), sample_rate_hz=10.0)


def test_scale_only_for_counts_and_unknown_inputs_are_clear_errors(tmp_path):
    rec = smooth_recording()
    path = emg2pose.write(tmp_path / "v.h5", rec)
    with pytest.raises(DataError, match="physical units"):
        load_recording(path, scale_v_per_unit=1e-6)
    with pytest.raises(DataError, match="takes no option"):
        load_recording(path, emg_topic="x")
    with pytest.raises(DataError, match="no such file"):
        load_recording(tmp_path / "nope.h5")
    notes = tmp_path / "notes.csv"
    notes.write_text("hello,world\nsome,text\n")
    with pytest.raises(DataError, match="unknown recording format"):
        load_recording(notes)
    with pytest.raises(DataError, match="unknown recording format 'csvx'"):
        load_recording(path, format="csvx")
    assert set(FORMATS) <= set(FORMAT_CHOICES) and "brainflow" in FORMAT_CHOICES
    assert load_recording(path, sample_rate_hz=250.0).sample_rate_hz == 250.0


def test_recording_validation_and_helpers():
    with pytest.raises(DataError, match="joint_angles"):
        Recording(emg=np.zeros((5, 1)), sample_rate_hz=10.0, joint_angles=np.zeros((4, 20)))
    rec = smooth_recording(channels=3)
    rec.emg[:, 2] *= 0.01  # an unused electrode
    assert usable_channels(rec) == ("ch_1", "ch_2")
    down = resample_recording(rec, 250.0)
    assert down.num_samples == 500 and down.sample_rate_hz == 250.0
    assert np.allclose(down.joint_angles[::10], rec.joint_angles[::20][:50], atol=1e-9)
    s = rec.summary()
    json.dumps(s)
    assert s["labels"] == ["joint_angles"] and s["num_samples"] == 1000 and s["emg_unit"] == "V"
    gestures = Recording(emg=np.zeros((3, 1)), sample_rate_hz=1.0, gesture=np.array([0, 2, 2]))
    with pytest.raises(DataError, match=r"gesture labels \(classes \[0, 2\]\)"):
        gestures.targets("joint_angles")


# --- the shared real recordings -------------------------------------------------------------

def test_real_emg_mp_csv(shared_data):
    rec = load_recording(shared_data / EEG / "s_0" / "emg_mp_1734156561.csv")
    assert rec.format == "eeg_emg_hands" and rec.emg.shape == (18736, 16)
    assert 124.0 < rec.sample_rate_hz < 126.0
    assert rec.emg[0, 0] == pytest.approx(-2.5310152e-6, rel=1e-6)  # -2.5310152 uV in the file
    assert usable_channels(rec) == tuple(f"ch_{i}" for i in range(1, 11))
    assert 0.0 <= rec.values.min() and rec.values.max() <= 1.0
    assert 1e-6 < np.std(rec.emg[:, 0]) < 1e-3  # volts, surface-EMG sized


def test_real_merged_and_prompted(shared_data):
    rec = load_recording(shared_data / EEG / "s_0" / "merged" / "data_1734923885.csv")
    assert rec.format == "eeg_emg_hands_merged" and rec.emg.shape == (4881, 8)
    assert rec.emg[0, 0] == pytest.approx(6.736995e-6, rel=1e-6)  # ch_1_raw, not an envelope
    run = load_recording(shared_data / EEG / "s_04_29_25" / "r_1")
    assert run.format == "eeg_emg_hands_prompted" and run.num_channels == 8
    assert run.sample_rate_hz == 250.0  # from frequency_info.json
    assert run.emg[0, 0] == pytest.approx(-2284.884765625e-6, rel=1e-6)
    shown = run.values[run.label_mask]
    assert set(np.unique(shown)) <= {0.0, 1.0} and len(shown) > 0.9 * run.num_samples


def test_real_myo_files_including_the_published_malformed_line(shared_data):
    path = shared_data / "myo_readings" / "right_hand" / "45612-1" / "7.txt"
    rec = load_recording(path)
    assert rec.sample_rate_hz == 200.0 and rec.emg.shape[1] == 8
    np.testing.assert_allclose(rec.emg[0], np.array([-27, -4, -1, -13, 5, 12, 15, -1])
                               * MYO_VOLTS_PER_COUNT, rtol=1e-6)
    assert set(np.unique(rec.gesture)) == {0, 7}
    bad = load_recording(shared_data / "myo_readings" / "right_hand" / "19999-2" / "2.txt")
    assert bad.num_samples == 14213 and (~bad.emg_valid).sum() == 1
    assert "line 12322" in bad.meta["bad_lines"]


def test_real_emg2pose_test_file(shared_data):
    """The file emg2pose's own test script writes: metadata on the group, 16 ch at 2 kHz."""
    rec = load_recording(shared_data / "emg2pose" / "test_data.hdf5")
    assert rec.format == "emg2pose" and rec.emg.shape == (100, 16)
    assert rec.sample_rate_hz == 2000.0 and rec.side == "right"
    assert rec.joint_angles.shape == (100, 20)
    assert rec.meta["user"] == "d387095792" and rec.meta["num_channels"] == 16
    with h5py.File(shared_data / "emg2pose" / "test_data.hdf5") as f:
        np.testing.assert_array_equal(rec.emg, f["emg2pose"]["timeseries"]["emg"])


def test_guided_calibration_bag_gives_gesture_labels(tmp_path):
    """calibration/prompt in a bag: each EMG sample labelled with the prompt state it was
    acquired in (hold: the pose; rest: rest), the first transition_s after a change left
    out, get-ready and done unlabelled."""
    rate, n = 200.0, 2000
    emg = np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32) * 1e-4
    script = [(0.0, 0, "fist", 0), (1.0, 1, "fist", 0), (3.0, 2, "open", 1),
              (4.0, 1, "open", 1), (6.0, 3, "", 2)]
    prompts = []
    for t in np.arange(0.0, 7.0, 0.1):  # the node repeats its prompt state every 0.1 s
        start, phase, pose, index = [s for s in script if s[0] <= t + 1e-9][-1]
        prompts.append((float(t), phase, pose, index, 2))
    bag = rosbag2.write(tmp_path / "guided", Recording(emg=emg, sample_rate_hz=rate),
                        prompts=prompts)
    rec = load_recording(bag, transition_s=0.5)
    assert rec.gesture_names == ("rest", "fist", "open") and rec.meta["prompts"] == 70
    t = np.arange(n) / rate
    expected = np.full(n, -1)
    expected[(t >= 1.5) & (t < 3.0)] = 1  # fist, after 0.5 s of transition
    expected[(t >= 3.5) & (t < 4.0)] = 0  # rest
    expected[(t >= 4.5) & (t < 6.0)] = 2  # open
    np.testing.assert_array_equal(rec.gesture, expected)
