"""Training, fine-tuning (shared loop, frozen features, gating, cancel) and evaluation."""

import threading

import numpy as np
import pytest

from emg_hand_core.hand_model import forward_kinematics
from emg_pose_node.evaluation import evaluate, format_table, metrics_for, r2_scores
from emg_pose_node.streaming import StreamingPredictor
from emg_pose_node.synthetic import synthetic_recording
from emg_pose_node.testing import tiny_train_settings as tiny_settings
from emg_pose_node.training import FinetuneSettings, TrainSettings, finetune, train


def test_training_learns_and_checkpoint_describes_itself(trained):
    hist = trained.history
    assert hist[-1].train_loss < 0.7 * hist[0].train_loss
    ckpt = trained.checkpoint
    assert ckpt.output == "joint_angles" and ckpt.in_channels == 8
    assert ckpt.training["data"][0]["num_samples"] == 7500
    assert ckpt.training["settings"]["window_s"] == 0.3
    assert ckpt.metrics["best_epoch"] >= 1 and "test_mae" in ckpt.metrics
    # The normalisation statistics come from the training split only.
    assert ckpt.preprocess.fitted and len(ckpt.preprocess.mean) == 8


def test_evaluation_beats_the_mean_baseline(trained, sim_recording):
    result = evaluate(trained.checkpoint, [sim_recording], split="test")
    models = result["models"]
    assert set(models) == {"model", "train_mean", "ridge"}
    assert result["windows"] > 20
    assert models["model"]["mpjpe_mm"] < models["train_mean"]["mpjpe_mm"]
    assert models["ridge"]["mpjpe_mm"] < models["train_mean"]["mpjpe_mm"]
    assert len(models["model"]["keypoint_error_mm"]) == 21
    table = format_table(result)
    assert "MPJPE [mm]" in table and "ridge" in table


def test_metrics():
    y = np.random.default_rng(0).normal(size=(50, 3))
    assert np.allclose(r2_scores(y, y), 1.0)
    assert np.allclose(r2_scores(y, np.broadcast_to(y.mean(0), y.shape)), 0.0)
    m = metrics_for("values", ("a", "b", "c"), y, y)
    assert m["mean_r2"] == pytest.approx(1.0) and m["mae"] == 0.0
    q = np.zeros((4, 20))
    q[:, 5] = 0.5
    m = metrics_for("joint_angles", (), q, q + np.radians(2.0))
    assert m["joint_angle_error_deg"] == pytest.approx(2.0)
    assert m["mpjpe_mm"] > 0
    kp = forward_kinematics(q).reshape(4, -1)
    assert metrics_for("keypoints", (), kp, kp)["mpjpe_mm"] == pytest.approx(0.0, abs=1e-9)


def test_values_output_and_early_stopping():
    rec = synthetic_recording(duration_s=20.0, sample_rate_hz=250.0, channels=4, seed=5)
    rec.values = rec.joint_angles[:, [5, 9]]
    rec.value_names = ("index", "middle")
    s = tiny_settings(output="values", value_names=("index", "middle"), epochs=40,
                      early_stop_patience=1, lr_patience=0, learning_rate=3e-2)
    result = train([rec], s)
    assert len(result.history) < 40  # stopped early on the validation loss
    assert result.checkpoint.output_names == ("index", "middle")
    ev = evaluate(result.checkpoint, [rec])
    assert set(ev["models"]["model"]["r2"]) == {"index", "middle"}


def test_training_is_reproducible_with_a_seed():
    rec = synthetic_recording(duration_s=10.0, sample_rate_hz=250.0, channels=4, seed=6)
    a = train([rec], tiny_settings(epochs=2))
    b = train([rec], tiny_settings(epochs=2))
    for k, v in a.checkpoint.state_dict.items():
        assert np.array_equal(v, b.checkpoint.state_dict[k]), k


def calibration_data(seed=11, duration_s=40.0):
    """The same hand motion model but another 'wearer': channel gains changed."""
    rec = synthetic_recording(duration_s=duration_s, sample_rate_hz=250.0, channels=8, seed=seed)
    gains = np.random.default_rng(seed).uniform(0.5, 2.0, 8).astype(np.float32)
    return rec.emg * gains, rec.joint_angles


def test_finetune_improves_and_is_accepted(trained):
    emg, q = calibration_data()
    before = {k: v.copy() for k, v in trained.checkpoint.state_dict.items()}
    calls = []
    res = finetune(trained.checkpoint, emg, q, FinetuneSettings(epochs=15, adapter_epochs=0),
                   progress_cb=lambda e, n, loss: calls.append((e, n, loss)))
    assert res.accepted and res.error_after < res.error_before
    assert res.checkpoint is not trained.checkpoint
    assert [c[:2] for c in calls] == [(e, 15) for e in range(1, 16)]
    assert res.seconds_used == pytest.approx(40.0, rel=0.02)
    assert res.train_windows > 3 * res.heldout_windows / 2
    # The starting checkpoint is untouched; only the head changed.
    for k, v in trained.checkpoint.state_dict.items():
        assert np.array_equal(v, before[k])
    new = res.checkpoint.state_dict
    assert all(np.array_equal(new[k], before[k]) for k in new if not k.startswith("head."))
    assert any(not np.array_equal(new[k], before[k]) for k in new if k.startswith("head."))
    assert res.checkpoint.training["finetunes"][0]["error_after"] == res.error_after


def test_finetune_input_adapter_undoes_an_armband_rotation(trained):
    """A new wearer whose armband sits 0.3 electrodes round: each channel picks up its
    neighbour. The adapter stage learns the channel mixing and folds it into the first
    convolution; nothing else changes when the head stage is off."""
    rec = synthetic_recording(duration_s=40.0, sample_rate_hz=250.0, channels=8, seed=18)
    rotation = 0.7 * np.eye(8) + 0.3 * np.roll(np.eye(8), 1, axis=1)
    calls = []
    res = finetune(trained.checkpoint, rec.emg @ rotation.T.astype(np.float32),
                   rec.joint_angles, FinetuneSettings(adapter_epochs=8, epochs=0),
                   progress_cb=lambda e, n, loss: calls.append((e, n)))
    assert res.accepted and res.error_after < 0.8 * res.error_before, res.message
    assert calls == [(e, 8) for e in range(1, 9)]
    old, new = trained.checkpoint.state_dict, res.checkpoint.state_dict
    assert {k for k in new if not np.array_equal(new[k], old[k])} == {"frontend.0.conv.weight"}


def test_finetune_unfreezing_last_lstm_trains_it(trained):
    emg, q = calibration_data(seed=12, duration_s=20.0)
    res = finetune(trained.checkpoint, emg, q, FinetuneSettings(
        epochs=3, adapter_epochs=0, unfreeze_last_lstm=True, min_improvement=-10.0))
    assert res.accepted
    old, new = trained.checkpoint.state_dict, res.checkpoint.state_dict
    assert not np.array_equal(old["lstm.0.weight_hh_l0"], new["lstm.0.weight_hh_l0"])
    assert np.array_equal(old["frontend.0.conv.weight"], new["frontend.0.conv.weight"])


def test_finetune_keeps_old_model_when_not_better(trained):
    emg, q = calibration_data(seed=13, duration_s=20.0)
    bad = q.copy()
    split = len(q) - len(q) // 4
    bad[:split] += 0.6  # mislabelled training part; the held-out part keeps true labels
    res = finetune(trained.checkpoint, emg, bad, FinetuneSettings(epochs=10,
                                                                  learning_rate=3e-2))
    assert not res.accepted and res.checkpoint is trained.checkpoint
    assert res.error_after >= res.error_before
    assert "kept the old model" in res.message


def test_finetune_cancel_and_too_little_data(trained):
    emg, q = calibration_data(seed=14, duration_s=10.0)
    res = finetune(trained.checkpoint, emg, q, FinetuneSettings(epochs=50),
                   should_stop=lambda: True)
    assert res.cancelled and not res.accepted and res.epochs_run == 0
    from emg_hand_core.recordings import DataError

    with pytest.raises(DataError, match="too little usable calibration data"):
        finetune(trained.checkpoint, emg[:100], q[:100])
    with pytest.raises(ValueError, match="expects 8 EMG channels, the stream has 4"):
        finetune(trained.checkpoint, emg[:, :4], q)
    n = len(q)
    masked = finetune(trained.checkpoint, emg, q, FinetuneSettings(epochs=1, adapter_epochs=1),
                      label_mask=(np.arange(n) < n // 4) | (np.arange(n) >= n // 2))
    assert masked.seconds_used == pytest.approx(7.5, abs=0.1)


def test_finetune_in_a_thread_while_inference_runs(trained):
    """The live node fine-tunes in the background while the old model keeps predicting."""
    emg, q = calibration_data(seed=15, duration_s=20.0)
    stream = synthetic_recording(duration_s=4.0, sample_rate_hz=250.0, channels=8, seed=16).emg
    reference = StreamingPredictor(trained.checkpoint)
    expected = [p.values for p in (reference.push(c) for c in np.array_split(stream, 100))
                if p is not None]
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault(
        "res", finetune(trained.checkpoint, emg, q, FinetuneSettings(epochs=20))))
    live = StreamingPredictor(trained.checkpoint)
    worker.start()
    got = [p.values for p in (live.push(c) for c in np.array_split(stream, 100))
           if p is not None]
    worker.join(timeout=120)
    assert not worker.is_alive() and out["res"].epochs_run == 20 + 10  # adapter + head
    assert len(got) == len(expected)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(got, expected))


def test_settings_validation():
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainSettings.from_dict({"epoch": 3})


def test_keypoint_model_trains_and_finetunes_from_joint_angles():
    rec = synthetic_recording(duration_s=15.0, sample_rate_hz=250.0, channels=4, seed=17)
    result = train([rec], tiny_settings(output="keypoints", epochs=2, fk_loss_weight=0.0))
    ckpt = result.checkpoint
    assert ckpt.output == "keypoints" and len(ckpt.output_names) == 63
    ev = evaluate(ckpt, [rec])
    assert ev["models"]["model"]["joint_angle_error_deg"] > 0  # through IK
    res = finetune(ckpt, rec.emg, rec.joint_angles, FinetuneSettings(epochs=2))
    assert np.isfinite(res.error_after) and res.train_windows > 0


def test_fk_loss_for_joint_angles():
    rec = synthetic_recording(duration_s=10.0, sample_rate_hz=250.0, channels=4, seed=18)
    result = train([rec], tiny_settings(epochs=1, fk_loss_weight=1.0))
    assert np.isfinite(result.history[0].train_loss)
