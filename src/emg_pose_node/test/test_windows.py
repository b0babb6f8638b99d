"""Chronological splits without leakage; targets at each window's last sample."""

import numpy as np
import pytest

from emg_hand_core.recordings import Recording
from emg_pose_node.preprocessing import PreprocessConfig
from emg_pose_node.testing import tiny_train_settings as tiny_settings
from emg_pose_node.training import prepare_data
from emg_pose_node.windows import prepare, split_bounds, window_ends


def ramp_recording(n=1000, decimation_rate=100.0):
    q = np.zeros((n, 20))
    q[:, 0] = np.arange(n)  # the label is the sample number
    return Recording(emg=np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32),
                     sample_rate_hz=decimation_rate, channel_names=("a", "b"), joint_angles=q)


def test_split_bounds():
    assert split_bounds(1000, 0.1, 0.2) == (700, 800)
    with pytest.raises(ValueError):
        split_bounds(10, 0.5, 0.6)


def test_no_window_crosses_a_split_boundary_and_targets_are_last_samples():
    rec = ramp_recording()
    data = prepare_data([rec], tiny_settings(window_s=0.4, hop_s=0.03, eval_hop_s=0.05,
                                             val_fraction=0.2, test_fraction=0.2))
    w = data.network.window
    a, b = split_bounds(1000, 0.2, 0.2)
    train, val, test = (data.ends[s] for s in ("train", "val", "test"))
    assert train.max() < a and (val - w + 1).min() >= a and val.max() < b
    assert (test - w + 1).min() >= b
    assert np.all(np.diff(train) == 3) and np.all(np.diff(test) == 5)
    y = data.y.numpy()
    assert np.array_equal(y[test, 0], test)  # target = label of the window's last sample
    # Normalisation saw only the training part.
    assert np.allclose(data.preprocess.mean, rec.emg[:a].mean(0), atol=1e-6)


def test_decimated_targets_come_from_the_kept_input_samples():
    rec = ramp_recording(n=1200, decimation_rate=400.0)
    cfg = PreprocessConfig(400.0, decimation=4)
    prep = prepare(rec, cfg, "joint_angles")
    assert np.array_equal(prep.targets[:, 0], np.arange(3, 1200, 4))
    assert np.array_equal(prep.input_index, np.arange(3, 1200, 4))


def test_windows_skip_dropped_emg_and_unlabelled_samples():
    rec = ramp_recording(n=300)
    rec.emg_valid = np.ones(300, bool)
    rec.emg_valid[100:105] = False
    rec.label_mask = np.ones(300, bool)
    rec.label_mask[200] = False
    prep = prepare(rec, PreprocessConfig(100.0), "joint_angles")
    ends = window_ends(prep, 20, 1, 0, 300)
    assert not np.any((ends >= 100) & (ends - 19 <= 104))  # no window over the gap
    assert 200 not in ends and 199 in ends and 201 in ends
    grid = window_ends(prep, 20, 3, 0, 300, grid=(15, 4))
    assert np.all((grid - 15) % 4 == 0) and np.all(np.diff(grid) % 4 == 0)
