"""What makes a model survive a new session: adaptive normalisation (the same statistics
live as in training) and the training-window augmentations."""

from dataclasses import replace

import numpy as np
import torch

from emg_pose_node.preprocessing import Preprocessor, fit_normalisation
from emg_pose_node.streaming import StreamingPredictor
from emg_pose_node.synthetic import synthetic_recording
from emg_pose_node.testing import tiny_checkpoint, tiny_train_settings
from emg_pose_node.training import make_augment, train


def test_adaptive_normalisation_streams_as_it_trains():
    ckpt = tiny_checkpoint()
    rec = synthetic_recording(duration_s=1.5, sample_rate_hz=500.0, channels=3)
    pre = Preprocessor(ckpt.preprocess)
    fitted = fit_normalisation(ckpt.preprocess, [pre.filter(rec.emg, pre.initial_state(3))[0]])
    ckpt.preprocess = replace(fitted, adapt_s=0.2, adapt_max_s=0.6)
    rec.emg *= np.array([4.0, 1.0, 0.3], np.float32)  # another session's gains
    offline, ends = StreamingPredictor(ckpt).predict_recording(rec.emg)
    static = replace(ckpt, preprocess=replace(ckpt.preprocess, adapt_s=None))
    not_adapted, _ = StreamingPredictor(static).predict_recording(rec.emg)
    assert not np.allclose(offline[-5:], not_adapted[-5:], atol=1e-3)
    predictor = StreamingPredictor(ckpt)
    rng = np.random.default_rng(0)
    live, i = {}, 0
    while i < rec.num_samples:
        n = int(rng.integers(1, 30))
        pred = predictor.push(rec.emg[i:i + n])
        if pred is not None:
            live[pred.sample_index] = pred.values
        i += n
    lookup = dict(zip(ends.tolist(), offline))
    assert len(live) > 10
    for index, values in live.items():
        assert np.allclose(values, lookup[index], atol=1e-4), index


def test_augmentations():
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3).repeat(50, 1, 1)
    gen = torch.Generator().manual_seed(0)
    rolled = make_augment(tiny_train_settings(rotation_augment=1))(x, gen)
    shifts = set()
    for a, b in zip(x, rolled):
        match = [k for k in (-1, 0, 1) if torch.equal(torch.roll(a, k, dims=0), b)]
        assert len(match) == 1
        shifts.add(match[0])
    assert shifts == {-1, 0, 1}
    assert make_augment(tiny_train_settings()) is None
    y = make_augment(tiny_train_settings(amplitude_augment=0.3))(torch.ones(500, 4, 3), gen)
    assert torch.allclose(y, y[:, :1, :1].expand_as(y))  # one gain for all channels
    assert 0.2 < float(torch.log(y[:, 0, 0]).std()) < 0.4
    z = make_augment(tiny_train_settings(noise_augment=0.5))(torch.zeros(200, 4, 30), gen)
    assert 0.45 < float(z.std()) < 0.55


def test_training_with_adaptive_normalisation_stores_it():
    rec = synthetic_recording(duration_s=12.0, sample_rate_hz=250.0, channels=4, seed=8)
    result = train([rec], tiny_train_settings(epochs=1, adapt_norm_s=5.0, rotation_augment=1,
                                              noise_augment=0.1))
    assert result.checkpoint.preprocess.adapt_s == 5.0
    assert result.checkpoint.training["settings"]["rotation_augment"] == 1
