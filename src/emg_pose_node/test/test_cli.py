"""Console scripts end to end on a generated emg2pose HDF5 (the simulator's format)."""

import json

import numpy as np
import pytest

from emg_hand_core.recordings import emg2pose
from emg_pose_node.checkpoint import load_checkpoint
from emg_pose_node.cli import eval_main, train_main
from emg_pose_node.synthetic import synthetic_recording

TINY = ["--frontend", "log_power", "--conv-channels", "8", "--kernel-size", "5", "--pool", "8",
        "--lstm-hidden", "16", "--lstm-layers", "1", "--fc-hidden", "16", "--window-s", "0.3",
        "--hop-s", "0.04", "--eval-hop-s", "0.04", "--batch-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def sim_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "sim_record.h5"
    rec = synthetic_recording(duration_s=20.0, sample_rate_hz=250.0, channels=8, seed=21)
    rec.joint_angles[:50] = 0.0  # a failed-label stretch, masked by the loader
    emg2pose.write(path, rec)
    return path


@pytest.fixture(scope="module")
def trained_cli(sim_h5, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    code = train_main([str(sim_h5), "--out", str(out / "default.safetensors"), "--report-dir",
                       str(out / "report"), "--epochs", "3", *TINY])
    assert code == 0
    return out


def test_train_writes_checkpoint_and_report(trained_cli, capsys):
    ckpt = load_checkpoint(trained_cli / "default.safetensors", channels=8,
                           sample_rate_hz=250.0)
    assert ckpt.output == "joint_angles" and ckpt.network.frontend == "log_power"
    assert ckpt.training["data"][0]["labelled_fraction"] < 1.0
    assert "model" in ckpt.metrics["test"]
    report = json.loads((trained_cli / "report" / "default.json").read_text())
    assert len(report["history"]) == 3 and report["evaluation"]["split"] == "test"
    png = (trained_cli / "report" / "default.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_eval_json_is_one_object(trained_cli, sim_h5, capsys):
    capsys.readouterr()
    assert eval_main(["--checkpoint", str(trained_cli / "default.safetensors"), str(sim_h5),
                      "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["models"]) == {"model", "ridge", "train_mean"}
    assert result["split"] == "test" and result["models"]["model"]["mpjpe_mm"] > 0
    assert eval_main(["--checkpoint", str(trained_cli / "default.safetensors"), str(sim_h5),
                      "--split", "val"]) == 0
    assert "MPJPE [mm]" in capsys.readouterr().out


def test_finetune_through_the_cli(trained_cli, tmp_path, capsys):
    rec = synthetic_recording(duration_s=20.0, sample_rate_hz=250.0, channels=8, seed=22)
    rec.emg *= np.linspace(0.5, 2.0, 8, dtype=np.float32)
    calib = tmp_path / "calib.h5"
    emg2pose.write(calib, rec)
    capsys.readouterr()
    code = train_main([str(calib), "--out", str(tmp_path / "tuned.safetensors"),
                       "--finetune-from", str(trained_cli / "default.safetensors"),
                       "--epochs", "5"])
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[1])
    assert summary["accepted"] == (tmp_path / "tuned.safetensors").exists()


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert train_main([str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.st")]) == 2
    assert "no such file" in capsys.readouterr().err
    wrong = tmp_path / "wrong.h5"
    emg2pose.write(wrong, synthetic_recording(duration_s=2.0, sample_rate_hz=250.0,
                                                   channels=8))
    assert train_main([str(wrong), "--out", str(tmp_path / "x.st"), "--model-rate-hz", "100",
                       *TINY]) == 2
    assert "integer" in capsys.readouterr().err


def test_a_gesture_only_recording_names_what_it_holds_and_the_gesture_command(tmp_path, capsys):
    """A Myo recording (c1..c8,label: gesture classes, no pose) cannot train a pose model:
    the error says what the file holds and which command trains on it."""
    rng = np.random.default_rng(0)
    rows = [",".join(str(v) for v in rng.integers(-20, 20, 8)) + f",{k // 200}"
            for k in range(800)]
    path = tmp_path / "myo" / "1.txt"
    path.parent.mkdir()
    path.write_text("\n".join(rows) + "\n")
    assert train_main([str(path), "--out", str(tmp_path / "x.safetensors"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "gesture labels (classes [0, 1, 2, 3])" in err and "emg_gesture_train" in err
    assert "output_names" not in err


def notebook_csv(path, seed, bad_line=40):
    """A seed-notebook layout file (timestamp, iteration, env/raw of 4 MyoWare sensors,
    6 finger values, hand_label) made from synthetic EMG, with one corrupt line."""
    import datetime as dt

    rec = synthetic_recording(duration_s=12.0, sample_rate_hz=250.0, channels=4, seed=seed)
    raw = rec.emg / 2.44e-5 + 512
    fingers = rec.joint_angles[:, [0, 2, 5, 9, 13, 17]]
    start = dt.datetime(2025, 5, 1, 10, 0, 0)
    lines = ["timestamp,iteration,env0,raw0,env1,raw1,env2,raw2,env3,raw3,thumb_tip,"
             "thumb_base,index,middle,ring,pinky,hand_label"]
    for i in range(rec.num_samples):
        t = (start + dt.timedelta(seconds=i / 250.0)).isoformat(sep=" ")
        sensors = ",".join(f"{abs(raw[i, k] - 512):.1f},{raw[i, k]:.2f}" for k in range(4))
        lines.append(f"{t},{i},{sensors},{','.join(f'{v:.4f}' for v in fingers[i])},Right")
    lines[bad_line] = lines[bad_line].replace(",Right", "")  # a field short
    path.write_text("\n".join(lines) + "\n")
    return path


def test_any_csv_train_with_test_files_eval_and_leave_one_file_out(tmp_path, capsys):
    a, b, c = (notebook_csv(tmp_path / f"{name}.csv", seed) for name, seed in
               (("a", 41), ("b", 42), ("c", 43)))
    model = tmp_path / "m.safetensors"
    assert train_main([str(a), str(b), "--test", str(c), "--columns", "arduino_myoware",
                       "--save-columns", "--out", str(model), "--epochs", "1", *TINY]) == 0
    out = capsys.readouterr()
    assert (tmp_path / "a.columns.yaml").is_file() and (tmp_path / "c.columns.yaml").is_file()
    assert "1 line did not parse (line 41)" in out.err
    assert "all split" in out.out and "ridge: fitted on train split of a.csv, b.csv" in out.out
    ckpt = load_checkpoint(model)
    assert ckpt.output_names == ("thumb_tip", "thumb_base", "index", "middle", "ring", "pinky")
    assert ckpt.training["test_data"][0]["source"] == str(c)
    assert ckpt.training["settings"]["test_fraction"] == 0.0
    # the saved mappings make the files readable with no flags; other data: no ridge
    assert eval_main(["--checkpoint", str(model), str(c), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "ridge" not in result["models"] and "--train" in result["baselines"]["ridge"]["refused"]
    assert eval_main(["--checkpoint", str(model), str(c), "--train", str(a), str(b),
                      "--split", "all", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["models"]) == {"model", "ridge", "train_mean"}
    assert eval_main(["--cv", "file", str(a), str(b), str(c), "--epochs", "1", *TINY,
                      "--json"]) == 0
    cv = json.loads(capsys.readouterr().out)
    assert len(cv["folds"]) == 3 and "mean_r2" in cv["summary"]["model"]
