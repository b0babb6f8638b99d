"""Honest evaluation: baselines fitted on the model's training data only (a test where
fitting them on the scored data would change the numbers), the emg2pose metrics, windows
that never straddle two files, and leave-one-file-out over generated files."""

import numpy as np
import pytest

from emg_hand_core.hand_model import JOINT_NAMES
from emg_pose_node.evaluation import (
    cross_validate,
    evaluate,
    format_cv_table,
    format_table,
    metrics_for,
)
from emg_pose_node.synthetic import synthetic_recording
from emg_pose_node.testing import tiny_train_settings
from emg_pose_node.training import prepare_data, train


@pytest.fixture(scope="module")
def sessions():
    """Training session A, and B: another session whose poses sit elsewhere (offset), so
    a baseline fitted on B itself would score B far better than one fitted on A."""
    a = synthetic_recording(duration_s=20.0, sample_rate_hz=250.0, channels=8, seed=11)
    b = synthetic_recording(duration_s=12.0, sample_rate_hz=250.0, channels=8, seed=12)
    b.joint_angles = b.joint_angles + 0.4
    b.source = "session_b"
    a.source = "session_a"
    return a, b


@pytest.fixture(scope="module")
def model_a(sessions):
    return train([sessions[0]], tiny_train_settings(epochs=2)).checkpoint


def test_baselines_are_fitted_on_the_training_data_not_the_scored_data(sessions, model_a):
    a, b = sessions
    result = evaluate(model_a, [b], split="all")
    true = result["_arrays"]["true"]
    # the training mean comes from the checkpoint: A's train split, not B
    stored = np.asarray(model_a.training["baselines"]["train_mean"])
    y_a = prepare_data([a], tiny_train_settings(), preprocess=model_a.preprocess,
                       network=model_a.network)
    assert np.allclose(stored, y_a.y.numpy()[y_a.ends["train"]].mean(0), atol=1e-6)
    # older checkpoints fall back on the output offset: the same mean, never trained
    assert np.allclose(np.asarray(model_a.state_dict["out_mean"]), stored, atol=1e-6)
    expected = metrics_for("joint_angles", (), true, np.broadcast_to(stored, true.shape))
    own = metrics_for("joint_angles", (), true, np.broadcast_to(true.mean(0), true.shape))
    got = result["models"]["train_mean"]["joint_angle_error_deg"]
    assert got == pytest.approx(expected["joint_angle_error_deg"])
    assert own["joint_angle_error_deg"] < 0.7 * got  # fitted on B it would flatter itself
    # no ridge without the training data, and the table says why
    assert "ridge" not in result["models"] and "refused" in result["baselines"]["ridge"]
    table = format_table(result)
    assert "ridge: not fitted" in table and "stored in the checkpoint" in table
    # with --train A it is fitted there; fitted on B it would be better than it really is
    fair = evaluate(model_a, [b], split="all", train_recordings=[a])
    cheat = evaluate(model_a, [b], split="all", train_recordings=[b])
    fair_err = fair["models"]["ridge"]["joint_angle_error_deg"]
    assert cheat["models"]["ridge"]["joint_angle_error_deg"] < 0.8 * fair_err
    assert fair["baselines"]["ridge"]["fitted_on"].startswith("train split of session_a")
    assert "chosen on its validation split" in format_table(fair)
    # on its own training recordings the train split is the model's: no --train needed
    own_data = evaluate(model_a, [a], split="test")
    assert "ridge" in own_data["models"]
    assert "the model's training data" in own_data["baselines"]["ridge"]["fitted_on"]


def test_per_finger_per_group_and_fingertip_metrics():
    q = np.full((6, 20), 0.3)
    pred = q.copy()
    pred[:, JOINT_NAMES.index("index_pip_fe")] += np.radians(2.0)
    m = metrics_for("joint_angles", (), q, pred)
    assert m["joint_angle_error_deg_per_finger"]["index"] == pytest.approx(0.5)
    assert m["joint_angle_error_deg_per_finger"]["thumb"] == 0.0
    assert m["joint_angle_error_deg_per_group"] == pytest.approx(
        {"proximal": 0.0, "middle": 2.0 / 5, "distal": 0.0})
    assert m["fingertip_error_mm"] == pytest.approx(m["keypoint_error_mm"]["index_tip"] / 5)
    assert m["fingertip_error_mm"] > 0 and m["keypoint_error_mm"]["middle_tip"] == 0.0


def test_windows_never_straddle_two_files(sessions):
    a, b = sessions
    data = prepare_data([a, b], tiny_train_settings())
    window = data.network.window
    bounds = np.cumsum([0] + [len(p) for p in data.recordings])
    for split, ends in data.ends.items():
        file_of_end = np.searchsorted(bounds, ends, side="right") - 1
        file_of_start = np.searchsorted(bounds, ends - window + 1, side="right") - 1
        assert np.array_equal(file_of_end, file_of_start), split
        assert np.array_equal(file_of_end, data.sources[split])


def test_leave_one_file_out_over_generated_files():
    recs = []
    for k in range(3):
        rec = synthetic_recording(duration_s=10.0, sample_rate_hz=250.0, channels=4,
                                  seed=30 + k)
        rec.source = f"file_{k}.h5"
        recs.append(rec)
    cv = cross_validate(recs, tiny_train_settings(epochs=1, val_fraction=0.2))
    assert [f["test_file"] for f in cv["folds"]] == ["file_0.h5", "file_1.h5", "file_2.h5"]
    for k, fold in enumerate(cv["folds"]):
        assert fold["split"] == "all" and fold["train_files"] == [
            f"file_{j}.h5" for j in range(3) if j != k]
        assert f"file_{k}" not in fold["baselines"]["ridge"]["fitted_on"]
    stat = cv["summary"]["model"]["joint_angle_error_deg"]
    folds = [f["models"]["model"]["joint_angle_error_deg"] for f in cv["folds"]]
    assert stat["mean"] == pytest.approx(np.mean(folds)) and stat["std"] == pytest.approx(
        np.std(folds))
    assert "gain_over_train_mean" in cv["summary"]["model"]
    table = format_cv_table(cv)
    assert "3 folds" in table and "file_2.h5" in table and "±" in table
