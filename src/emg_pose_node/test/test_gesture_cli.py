"""emg_gesture_train / emg_gesture_eval on generated myo_readings-format sessions: train on
some sessions, test on another, leave-one-session-out, the LDA baseline in the same table,
reports (JSON + confusion PNG), and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emg_pose_node.gesture.checkpoint import load_gesture_checkpoint
from emg_pose_node.gesture.cli import BASELINE, eval_main, train_main
from emg_pose_node.gesture.synthetic import synthetic_gesture_recording


def write_session(folder, seed: int) -> str:
    """Two Myo logger files (c1..c8,label in counts of 10 uV) of generated gestures."""
    folder.mkdir()
    for k in range(2):
        rec = synthetic_gesture_recording(seed=10 * seed + k, hold_s=2.0, repetitions=2)
        counts = np.clip(np.round(rec.emg / 1e-5), -128, 127).astype(int)
        lines = [",".join(map(str, row)) + f",{label}" for row, label in zip(counts, rec.gesture)]
        (folder / f"{k}.txt").write_text("\n".join(lines) + "\n")
    return str(folder)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("myo")
    return [write_session(root / f"p-{s}", s) for s in (1, 2, 3)]


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_train_on_two_sessions_test_on_the_third_with_the_baseline(sessions, tmp_path, capsys):
    a, b, c = sessions
    out = tmp_path / "model.safetensors"
    assert train_main(["--train", a, b, "--test", c, "--preset", "lda_logtd", "--out",
                       str(out), "--report-dir", str(tmp_path / "report"), "--json"]) == 0
    result = _json(capsys)
    rows = result["models"]
    assert set(rows) == {"lda td8", BASELINE}
    for r in rows.values():
        assert r["accuracy"] > 0.7 and r["windows"] > 100
        assert set(r["recall"]) == {"rest", "wrist_flexion", "wrist_extension",
                                    "radial_deviation"}
        assert np.asarray(r["confusion"]).sum() == r["windows"]
        assert r["decision_latency"]["compute_ms_p99"] > 0 and r["sessions"] == ["p-3"]
    ckpt = load_gesture_checkpoint(out)
    assert ckpt.kind == "lda" and ckpt.metrics["test"][BASELINE]["accuracy"] > 0.7
    report = json.loads((tmp_path / "report" / "model.json").read_text())
    assert set(report["models"]) == set(rows)
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert len(pngs) == 2 and all((tmp_path / "report" / p).stat().st_size > 1000 for p in pngs)
    # the printed table (no --json) names both rows
    assert train_main(["--train", a, "--test", c, "--model", "lda", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "lda hudgins_td" in table and "recall per class" in table

    # eval: the baseline refitted on the checkpoint's own training sessions
    assert eval_main(["--checkpoint", str(out), "--test", c, "--json"]) == 0
    evaluated = _json(capsys)["models"]
    assert set(evaluated) == {"lda (model.safetensors)", BASELINE}
    assert evaluated[BASELINE]["accuracy"] == pytest.approx(rows[BASELINE]["accuracy"])
    # never fitted on the tested session
    assert eval_main(["--checkpoint", str(out), "--test", c, "--train", c]) == 2
    assert "fitted on a tested session" in capsys.readouterr().err


def test_leave_one_session_out_with_a_network(sessions, capsys, tmp_path):
    assert train_main(["--loso", *sessions, "--model", "cnn_lstm", "--epochs", "2",
                       "--hp", "conv_channels=8", "--hp", "lstm1=8", "--hp", "lstm2=8",
                       "--hp", "dense=8", "--train-hop-s", "0.05", "--no-progress",
                       "--json"]) == 0
    result = _json(capsys)
    assert set(result["folds"]) == {"p-1", "p-2", "p-3"}
    for fold in result["folds"].values():
        assert set(fold) == {"cnn_lstm", BASELINE}
    assert set(result["mean"]) == {"cnn_lstm", BASELINE}
    assert result["mean"][BASELINE] > 0.7


def test_bad_input_is_refused_with_the_reason(sessions, tmp_path, capsys):
    a, b, c = sessions
    assert train_main(["--train", str(tmp_path / "nothing"), "--test", c]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert train_main(["--loso", a]) == 2
    assert "at least 2 sessions" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert train_main(["--train", str(tmp_path / "empty")]) == 2
    assert "no recordings in this folder" in capsys.readouterr().err
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    assert eval_main(["--checkpoint", str(tmp_path / "junk.safetensors"), "--test", c]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err
