"""The column-mapped reader: any CSV through a mapping (flags, a preset or a YAML file saved
next to the data). Generated files: the seed notebooks' layout with corrupt rows and lost
samples, tracked keypoints in mm in a rotated frame, a CSV with text columns and bad rows."""

import argparse
import datetime as dt

import numpy as np
import pytest

from emg_hand_core.hand_model import (
    JOINT_LOWER,
    JOINT_NAMES,
    JOINT_UPPER,
    KEYPOINT_NAMES,
    forward_kinematics,
    rpy_matrix,
)
from emg_hand_core.recordings import DataError, detect_format, load_recording
from emg_hand_core.recordings.columns import (
    ColumnMapping,
    add_mapping_arguments,
    mapping_from_args,
    mapping_path,
    save_mapping,
)

NOTEBOOK_HEADER = ("timestamp,iteration,env0,raw0,env1,raw1,env2,raw2,env3,raw3,thumb_tip,"
                   "thumb_base,index,middle,ring,pinky,hand_label")
RATE = 200.0


def notebook_csv(path, n=400, lost=(50, 51, 52, 300), epoch_s=False):
    """The seed notebooks' layout: date-string (or epoch-second) times, the loop counter
    with gaps at ``lost``, raw = 512 + iteration % 97 (so a shifted row shows), six finger
    values, a text hand label; plus corrupt lines. Returns the iterations written."""
    start = dt.datetime(2025, 5, 1, 14, 3, 7)
    lines = [NOTEBOOK_HEADER]
    iters = [i for i in range(n) if i not in lost]
    for i in iters:
        t = start + dt.timedelta(seconds=i / RATE)
        stamp = f"{t.timestamp():.4f}" if epoch_s else t.isoformat(sep=" ", timespec="microseconds")
        sensors = ",".join(f"{100 + k},{512 + (i + k) % 97}" for k in range(4))
        fingers = ",".join(f"{(i % 50) / 50 + k / 10:.3f}" for k in range(6))
        lines.append(f"{stamp},{i + 1000},{sensors},{fingers},Right")
    # corrupt rows: a non-numeric EMG field, a truncated line, missing finger values, and a
    # repeated line (the logger wrote a sample twice)
    fields = lines[100].split(",")
    fields[3] = "x"  # raw0
    lines[100] = ",".join(fields)
    lines[150] = lines[150][:25]
    fields = lines[200].split(",")
    fields[10:16] = [""] * 6
    lines[200] = ",".join(fields)
    lines.insert(251, lines[250])
    path.write_text("\n".join(lines) + "\n")
    return iters


def test_seed_notebook_layout_loads_with_one_preset(tmp_path):
    path = tmp_path / "session1.csv"
    iters = notebook_csv(path)
    rec = load_recording(path, mapping="arduino_myoware")
    assert rec.format == "columns" and rec.channel_names == ("raw0", "raw1", "raw2", "raw3")
    assert rec.value_names == ("thumb_tip", "thumb_base", "index", "middle", "ring", "pinky")
    assert rec.num_samples == 400  # iterations 1000..1399: lost samples are back in place
    assert rec.sample_rate_hz == pytest.approx(RATE, rel=1e-3)
    valid = rec.valid_emg()
    lost = {50, 51, 52, 300}
    corrupt = {iters[99], iters[149]}  # lines[100], lines[150] (lines[0] is the header)
    assert set(np.flatnonzero(~valid)) == lost | corrupt
    # never shifted: every valid sample holds the value of its own iteration
    k = np.flatnonzero(valid)
    expected = (k % 97) * 2.44e-5  # raw0 = 512 + i % 97, at 24.4 uV per count
    assert np.allclose(rec.emg[k, 0], expected, atol=1e-9)
    # the row without finger values keeps its EMG but is unlabelled
    unlabelled = iters[199]
    assert valid[unlabelled] and not rec.valid_labels()[unlabelled]
    assert rec.valid_labels().sum() == 400 - len(lost | corrupt) - 1
    report = rec.meta["report"]
    # 4 lost samples + the truncated line's; the repeated line dropped
    assert "shows 5 samples missing" in report and "1 row with a repeated" in report
    assert "1 line did not parse (line 151)" in report and "non-numeric EMG" in report
    assert "1 row without targets" in report


def test_epoch_times_a_saved_mapping_and_flags(tmp_path):
    path = tmp_path / "session2.csv"
    notebook_csv(path, epoch_s=True)
    with pytest.raises(DataError, match="no column mapping given"):
        load_recording(path, format="columns")
    parser = argparse.ArgumentParser()
    add_mapping_arguments(parser)
    args = parser.parse_args(["--columns", "arduino_myoware", "--emg-columns", "env*,raw*"])
    mapping = mapping_from_args(args)
    assert mapping.emg == ("env*", "raw*") and mapping.counter == "iteration"
    saved = save_mapping(mapping, path)
    assert saved == mapping_path(path) == tmp_path / "session2.columns.yaml"
    assert detect_format(path) == "columns"  # found next to the data: no options needed
    rec = load_recording(path)
    assert rec.num_channels == 8 and rec.channel_names[0] == "env0"
    assert rec.sample_rate_hz == pytest.approx(RATE, rel=1e-3)
    again = load_recording(path, mapping=mapping)
    assert np.array_equal(rec.emg, again.emg) and np.array_equal(rec.valid_labels(),
                                                                  again.valid_labels())


def random_angles(n, seed=0):
    rng = np.random.default_rng(seed)
    return JOINT_LOWER + rng.uniform(0.1, 0.9, (n, 20)) * (JOINT_UPPER - JOINT_LOWER)


@pytest.mark.parametrize("order", ["mediapipe", "palm_wrist_4"])
def test_keypoints_in_mm_in_a_rotated_frame_give_the_angles_back(tmp_path, order):
    n = 60
    q = random_angles(n)
    rot = rpy_matrix(0.7, -0.4, 2.1)
    kp_mm = 1000.0 * (forward_kinematics(q) @ rot.T + np.array([0.3, -0.2, 0.5]))
    points = list(KEYPOINT_NAMES)
    if order == "palm_wrist_4":  # a palm point first, then ours
        kp_mm = np.concatenate([kp_mm[:, 9:10] * 0.5 + kp_mm[:, :1] * 0.5, kp_mm], axis=1)
        points = ["palm"] + points
    names = [f"{p}_{a}" for p in points for a in "xyz"]
    rng = np.random.default_rng(1)
    emg = rng.normal(0, 5, (n, 3))
    header = ["t_ms", "c1", "c2", "c3", *names]
    rows = np.c_[np.arange(n) * 4.0, emg, kp_mm.reshape(n, -1)]
    path = tmp_path / "tracked.csv"
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(f"{v:.6f}" for v in r)
                                                        for r in rows) + "\n")
    rec = load_recording(path, mapping={"emg": "c*", "emg_unit": "uV", "time": "t_ms",
                                        "time_unit": "ms", "keypoints": "4:",
                                        "keypoint_order": order, "keypoint_unit": "mm"})
    assert rec.sample_rate_hz == pytest.approx(250.0)
    assert np.allclose(rec.emg, emg * 1e-6, rtol=1e-5)
    err = np.degrees(np.abs(rec.joint_angles - q))
    assert err.max() < 0.01, err.max()
    # the palm is fitted: the stored keypoints are the hand model's, in hand_base [m]
    assert np.allclose(rec.keypoints, forward_kinematics(q), atol=1e-6)
    auto = load_recording(path, mapping={"emg": "c*", "emg_unit": "uV", "time": "t_ms",
                                         "time_unit": "ms", "keypoints": "auto",
                                         "keypoint_unit": "mm"})
    assert np.allclose(auto.joint_angles, rec.joint_angles)


def test_text_columns_bad_rows_degrees_and_gestures(tmp_path):
    n = 50
    q = random_angles(n, seed=3)
    path = tmp_path / "mixed.csv"
    header = ["when", "note", *JOINT_NAMES[::-1], "e1", "e2", "gesture"]
    lines = [",".join(header)]
    for i in range(n):
        angles = ",".join(f"{v:.6f}" for v in np.degrees(q[i])[::-1])
        lines.append(f"2025-01-01T00:00:{i / 10:06.3f},\"free, text\",{angles},{i},{-i},"
                     f"{'fist' if i % 2 else 'rest'}")
    lines[11] = lines[11].replace(f",{10},{-10},", ",,-10,")  # missing EMG field
    lines[21] = "garbage"
    path.write_text("\n".join(lines) + "\n")
    rec = load_recording(path, mapping={"emg": "e1,e2", "time": "when", "time_unit": "datetime",
                                        "joint_angles": "auto", "angle_unit": "deg",
                                        "gesture": "gesture"})
    assert rec.num_samples == n and rec.sample_rate_hz == pytest.approx(10.0)
    assert np.flatnonzero(~rec.valid_emg()).tolist() == [10, 20]  # in place, not shifted
    ok = rec.valid_emg()
    assert np.allclose(rec.emg[ok, 0], np.arange(n)[ok])
    assert np.allclose(rec.joint_angles[ok], q[ok], atol=1e-6)
    assert rec.gesture_names == ("fist", "rest")
    assert rec.gesture[:4].tolist() == [1, 0, 1, 0] and rec.gesture[20] == -1
    assert "line 22" in rec.meta["report"] and "line 12" in rec.meta["report"]


def test_mapping_errors_are_clear(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,t\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError, match="matches no column.*columns: a, b, t"):
        load_recording(path, mapping={"emg": "ch_*", "time": "t"})
    with pytest.raises(DataError, match="counts needs scale_v_per_unit"):
        ColumnMapping(emg=("a",), emg_unit="counts")
    with pytest.raises(DataError, match="no sample rate"):
        load_recording(path, mapping={"emg": "a,b"})
    with pytest.raises(DataError, match="plain numbers.*give time_unit"):
        load_recording(path, mapping={"emg": "a,b", "time": "t", "time_unit": "auto"})
    with pytest.raises(DataError, match="unknown keys"):
        load_recording(path, mapping={"emg": "a", "colour": "red"})
    with pytest.raises(DataError, match="need 20"):
        load_recording(path, mapping={"emg": "a", "sample_rate_hz": 10, "joint_angles": "b"})
    rec = load_recording(path, mapping={"emg": "0:2", "sample_rate_hz": 10})
    assert rec.channel_names == ("a", "b") and rec.labels == ()
