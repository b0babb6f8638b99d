"""Gesture models on small generated sessions: training beats chance by a wide margin, the
checkpoint round trip reproduces the outputs, corrupt and mismatched files are refused, the
live stream decides what the offline path decides, armband rotation is found, calibration
is accepted only when it helps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from emg_pose_node.checkpoint import CheckpointError, save_checkpoint
from emg_pose_node.gesture.alignment import AlignmentConfig, RingAligner, window_log_rms
from emg_pose_node.gesture.checkpoint import (
    load_gesture_checkpoint,
    save_gesture_checkpoint,
)
from emg_pose_node.gesture.classifier import GestureClassifier, GestureStream
from emg_pose_node.gesture.data import Session, gesture_labels, make_windows
from emg_pose_node.gesture.evaluation import evaluate_gesture
from emg_pose_node.gesture.synthetic import CLASSES, synthetic_gesture_recording
from emg_pose_node.gesture.training import (
    GestureTrainSettings,
    calibrate_gesture,
    train_gesture,
)
from emg_pose_node.testing import tiny_checkpoint

TINY = {
    "lda": {},
    "cnn_lstm": dict(epochs=4, hyperparameters=dict(conv_channels=8, lstm1=16, lstm2=8,
                                                    dense=8), learning_rate=3e-3),
    "lstm_fin": dict(epochs=4, fin_epochs=3, hyperparameters=dict(hidden=8,
                                                                  classifier_hidden=16),
                     learning_rate=3e-3),
}


def session(seed: int, rotation: int = 0, gain: float = 1.0, name: str = "",
            pattern_seed: int = 7) -> Session:
    return Session(name or f"s{seed}", [synthetic_gesture_recording(
        seed=seed, rotation=rotation, gain=gain, hold_s=2.0, repetitions=3,
        pattern_seed=pattern_seed)])


@pytest.fixture(scope="module")
def models():
    """One tiny model of each kind, trained on two generated sessions."""
    torch.set_num_threads(1)
    train = [session(1), session(2)]
    out = {}
    for kind, extra in TINY.items():
        settings = GestureTrainSettings(model=kind, train_hop_s=0.025, batch_size=32,
                                        ring_max_shift=1, **extra)
        out[kind] = train_gesture(train, settings)
    return out


@pytest.mark.parametrize("kind", sorted(TINY))
def test_each_model_beats_chance_by_a_wide_margin(models, kind):
    result = evaluate_gesture(models[kind].checkpoint, [session(3)], latency_repeats=20)
    assert result["class_names"] == list(CLASSES)
    assert result["accuracy"] > 0.75, result["accuracy"]  # chance: 0.25
    assert result["balanced_accuracy"] > 0.7
    assert sum(sum(row) for row in result["confusion"]) == result["windows"]
    assert result["decision_latency"]["compute_ms_p50"] > 0


def test_lstm_fin_imitates_its_features(models):
    r2 = models["lstm_fin"].fin_r2
    assert set(r2) == {"ENT", "log_RMS", "log_VAR", "log_SSI"}
    assert r2["log_RMS"] > 0.5, r2  # three epochs of a tiny LSTM already follow the power
    assert len(models["lstm_fin"].fin_history) == 3


@pytest.mark.parametrize("kind", sorted(TINY))
def test_checkpoint_round_trip_reproduces_outputs(models, kind, tmp_path):
    ckpt = models[kind].checkpoint
    path = save_gesture_checkpoint(ckpt, tmp_path / f"{kind}.safetensors")
    back = load_gesture_checkpoint(path, channels=8, sample_rate_hz=200.0)
    assert back.class_names == ckpt.class_names and back.window == 40 and back.hop == 10
    assert back.preprocess == ckpt.preprocess and back.alignment == ckpt.alignment
    x = make_windows(session(4).recordings, 40, 10, CLASSES, ckpt.preprocess).x[:50]
    np.testing.assert_allclose(GestureClassifier(back).probabilities(x),
                               GestureClassifier(ckpt).probabilities(x), atol=1e-6)


def test_corrupt_truncated_and_mismatched_files_are_refused(models, tmp_path):
    ckpt = models["lda"].checkpoint
    path = save_gesture_checkpoint(ckpt, tmp_path / "m.safetensors")
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_gesture_checkpoint(tmp_path / "trunc.safetensors")
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF  # inside the last tensor's bytes
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_gesture_checkpoint(tmp_path / "flip.safetensors")
    with pytest.raises(CheckpointError, match="channel mismatch"):
        load_gesture_checkpoint(path, channels=4)
    with pytest.raises(CheckpointError, match="sample rate mismatch"):
        load_gesture_checkpoint(path, sample_rate_hz=500.0)
    pose = save_checkpoint(tiny_checkpoint(), tmp_path / "pose.safetensors")
    with pytest.raises(CheckpointError, match="hand-pose model"):
        load_gesture_checkpoint(pose)
    # a description that does not fit the weights
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    doc = json.loads(meta["checkpoint"])
    doc["class_names"] = doc["class_names"][:3]
    save_file(load_file(path), tmp_path / "bad.safetensors",
              metadata=dict(meta, checkpoint=json.dumps(doc)))
    with pytest.raises(CheckpointError, match="3 classes"):
        load_gesture_checkpoint(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="no such"):
        load_gesture_checkpoint(tmp_path / "missing.safetensors")


def test_stream_decides_what_the_offline_path_decides(models):
    ckpt = models["cnn_lstm"].checkpoint
    rec = session(5).recordings[0]
    clf = GestureClassifier(ckpt)
    offline = make_windows([rec], ckpt.window, ckpt.hop, CLASSES, ckpt.preprocess)
    expected, _ = clf.session(offline.x)
    stream = GestureStream(clf)
    outputs = []
    for i in range(0, rec.num_samples, 3):  # 3-sample chunks: decisions fall inside chunks
        outputs += stream.push(rec.emg[i:i + 3], 1000 + i)
    assert [o.index - 1000 for o in outputs] == list(offline.end)
    np.testing.assert_allclose([o.probabilities for o in outputs], expected, atol=1e-5)
    assert all(o.mav_v > 0 for o in outputs)


def test_armband_rotation_is_found_and_undone(models):
    ckpt = models["lda"].checkpoint
    rotated = [session(6, rotation=1, name="rotated")]
    plain = GestureTrainSettings(model="lda", ring_max_shift=0)
    no_search = train_gesture([session(1), session(2)], plain).checkpoint
    found = evaluate_gesture(ckpt, rotated, latency_repeats=1)
    blind = evaluate_gesture(no_search, rotated, latency_repeats=1)
    assert found["ring_shifts"]["rotated"].get(-1, 0) > 0.5 * found["windows"]
    assert found["accuracy"] > blind["accuracy"] + 0.2, (found["accuracy"], blind["accuracy"])
    aligner = RingAligner(AlignmentConfig(1, ckpt.alignment.reference, min_windows=5))
    w = make_windows(rotated[0].recordings, 40, 10, CLASSES, ckpt.preprocess)
    assert aligner.update(window_log_rms(w.x[:4])).tolist() == [0, 0, 0, 0]  # waits
    assert aligner.update(window_log_rms(w.x[4:200]))[-1] == -1


@pytest.mark.parametrize("kind", ["lda", "cnn_lstm"])
def test_calibration_on_a_new_wearer_is_accepted_and_helps(models, kind):
    ckpt = models[kind].checkpoint
    wearer = dict(gain=1.5, pattern_seed=11)  # other muscles: other patterns
    new = session(7, **wearer).recordings[0]
    labels, _ = gesture_labels(new)
    result = calibrate_gesture(ckpt, new.emg, labels)
    assert result.heldout_windows > 10 and result.seconds_used == pytest.approx(24.0)
    test = [session(8, **wearer)]
    before = evaluate_gesture(ckpt, test, latency_repeats=1)["accuracy"]
    after = evaluate_gesture(result.checkpoint, test, latency_repeats=1)["accuracy"]
    assert result.accepted and result.accuracy_after > result.accuracy_before
    assert after > before, (before, after)
    assert ckpt.tensors is not result.checkpoint.tensors  # the original is untouched
    assert result.checkpoint.training["calibrations"][-1]["accuracy_after"] == \
        result.accuracy_after


def test_calibration_that_does_not_help_keeps_the_model(models):
    ckpt = models["lda"].checkpoint
    rec = session(9).recordings[0]
    labels, _ = gesture_labels(rec)
    result = calibrate_gesture(ckpt, rec.emg, labels)  # the same wearer: nothing to gain
    assert result.accuracy_before > 0.95
    assert not result.accepted and result.checkpoint is ckpt and "kept" in result.message
    with pytest.raises(ValueError, match="too little usable calibration data"):
        calibrate_gesture(ckpt, rec.emg[:100], labels[:100])
