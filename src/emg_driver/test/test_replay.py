"""Recording readers on the real shared recordings and on generated emg2pose files."""

from __future__ import annotations

import numpy as np
import pytest

from emg_driver.replay import (
    Emg2PoseWriter,
    detect_format,
    load_recording,
    read_emg2pose_h5,
    write_emg2pose_h5,
)
from emg_driver.sources import ReplaySource

EEG = "eeg_emg_hands"


def test_eeg_emg_csv(shared_data):
    path = shared_data / EEG / "s_0" / "emg_mp_1734156561.csv"
    rec = load_recording(path)
    assert rec.format == "eeg_emg_csv"
    assert rec.emg.shape == (18736, 16) and rec.channel_names[0] == "ch_1"
    assert rec.sample_rate_hz == pytest.approx(125.0, rel=0.01)
    # first row, ch_1, is -2.5310152 uV in the file
    assert rec.emg[0, 0] == pytest.approx(-2.5310152e-6, rel=1e-6)
    assert rec.extras["fingers"].shape == (18736, 5) and rec.joint_angles is None
    assert 1e-6 < np.std(rec.emg[:, 0]) < 1e-3  # volts, surface-EMG sized


def test_merged_csv_takes_the_raw_channels(shared_data):
    rec = load_recording(shared_data / EEG / "s_0" / "merged" / "data_1734923885.csv")
    assert rec.format == "merged_csv" and rec.emg.shape == (4881, 8)
    assert rec.channel_names == [f"ch_{k}" for k in range(1, 9)]
    assert rec.emg[0, 0] == pytest.approx(6.736995e-6, rel=1e-6)  # ch_1_raw, not an envelope
    assert rec.sample_rate_hz == pytest.approx(125.0, rel=0.02)


def test_brainflow_run_folder_with_prompts(shared_data):
    rec = load_recording(shared_data / EEG / "s_04_29_25" / "r_1")
    assert rec.format == "brainflow" and rec.emg.shape[1] == 8
    assert rec.sample_rate_hz == 250.0  # from frequency_info.json
    assert rec.emg[0, 0] == pytest.approx(-2284.884765625e-6, rel=1e-6)
    prompt = rec.extras["prompt"]
    assert prompt.shape == (rec.num_samples, 5)
    shown = prompt[~np.isnan(prompt[:, 0])]
    assert set(np.unique(shown)) <= {0.0, 1.0} and len(shown) > 0.9 * rec.num_samples


def test_myo_text_counts_scaled(shared_data):
    path = shared_data / "myo_readings" / "right_hand" / "45612-1" / "7.txt"
    assert detect_format(path) == "myo_txt"
    rec = load_recording(path, scale_v_per_unit=1e-5)
    assert rec.sample_rate_hz == 200.0 and rec.emg.shape[1] == 8
    np.testing.assert_allclose(rec.emg[0], np.array([-27, -4, -1, -13, 5, 12, 15, -1]) * 1e-5,
                               rtol=1e-6)
    assert set(np.unique(rec.extras["label"])) == {0, 7}


def test_emg2pose_round_trip_and_partial_read(tmp_path):
    rng = np.random.default_rng(0)
    emg = rng.normal(0, 1e-4, (4000, 16)).astype(np.float32)
    q = rng.uniform(-0.2, 1.2, (4000, 20)).astype(np.float32)
    path = write_emg2pose_h5(tmp_path / "s.hdf5", emg, q, 2000.0, attrs={"user": "x"})
    rec = load_recording(path)
    assert rec.format == "emg2pose" and rec.sample_rate_hz == 2000.0
    np.testing.assert_array_equal(rec.emg, emg)
    np.testing.assert_array_equal(rec.joint_angles, q)
    assert rec.attrs["user"] == "x"
    part = read_emg2pose_h5(path, start_s=0.5, duration_s=0.25)
    np.testing.assert_array_equal(part.emg, emg[1000:1500])


def test_emg2pose_without_rate_attribute_uses_the_time_field(tmp_path):
    import h5py

    path = tmp_path / "raw.h5"
    with Emg2PoseWriter(path, 1000.0, [f"c{k}" for k in range(4)]) as w:
        w.append(np.zeros((100, 4)), np.zeros((100, 20)))
    with h5py.File(path, "a") as f:
        del f["emg2pose"].attrs["sample_rate"]
        del f["emg2pose"].attrs["sample_rate_hz"]
    rec = load_recording(path)
    assert rec.sample_rate_hz == pytest.approx(1000.0)
    assert rec.channel_names == ["c0", "c1", "c2", "c3"]


def test_unknown_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_recording(tmp_path / "nope.csv")
    bad = tmp_path / "notes.csv"
    bad.write_text("hello,world\n1,2\n")
    with pytest.raises(ValueError, match="unknown recording format"):
        load_recording(bad)


def test_replay_source_paces_loops_and_keeps_the_index_monotonic(tmp_path):
    emg = np.arange(30 * 2, dtype=np.float32).reshape(30, 2)
    path = write_emg2pose_h5(tmp_path / "r.h5", emg, np.zeros((30, 20)), 100.0)
    src = ReplaySource(load_recording(path), chunk_len=4, speed=2.0, loop=True)
    t0 = 1_000_000_000_000
    src.start(t0)
    assert src.poll(t0 + 14_000_000) == []  # samples 0..2 due: not a whole chunk yet
    chunks = src.poll(t0 + 95_000_000)  # samples 0..19 due at 200 samples/s
    assert sum(c.num_samples for c in chunks) == 20
    chunks += src.poll(t0 + 445_000_000)  # up to sample 89: three passes through 30 rows
    index = [i for c in chunks for i in range(c.first_index, c.end_index)]
    assert index == list(range(len(index)))
    data = np.concatenate([c.data for c in chunks])
    np.testing.assert_array_equal(data, emg[np.arange(len(index)) % 30])
    assert src.loops_completed >= 2
    # stamps follow the replay clock, not the poll times
    assert chunks[1].stamp_ns == t0 + chunks[1].first_index * 5_000_000
