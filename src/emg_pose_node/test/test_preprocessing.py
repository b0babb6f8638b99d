"""One preprocessing path: chunked streaming equals the whole recording, stats fitted once."""

import numpy as np
import pytest

from emg_pose_node.preprocessing import (
    PreprocessConfig,
    Preprocessor,
    fit_normalisation,
    model_rate_indices,
)

CONFIGS = [
    dict(sample_rate_hz=500.0),
    dict(sample_rate_hz=500.0, highpass_hz=20.0, notch_hz=50.0, lowpass_hz=200.0),
    dict(sample_rate_hz=500.0, highpass_hz=20.0, rectify=True, envelope_hz=5.0, decimation=5),
    dict(sample_rate_hz=500.0, decimation=4),
    dict(sample_rate_hz=500.0, highpass_hz=20.0, decimation=2, adapt_s=0.2, adapt_max_s=1.0),
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_chunked_stream_equals_whole_recording(kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1003, 3)) * 1e-4
    cfg = fit_normalisation(PreprocessConfig(**kw), [Preprocessor(PreprocessConfig(**kw)).filter(
        x, Preprocessor(PreprocessConfig(**kw)).initial_state(3))[0]])
    pre = Preprocessor(cfg)
    whole = pre.run(x)
    state, parts, i = pre.initial_state(3), [], 0
    while i < len(x):
        n = int(rng.integers(1, 40))
        y, state = pre.process(x[i:i + n], state)
        parts.append(y)
        i += n
    chunked = np.concatenate(parts)
    assert whole.dtype == np.float32
    assert chunked.shape == whole.shape == (len(model_rate_indices(1003, cfg.decimation)), 3)
    assert np.allclose(chunked, whole, atol=1e-5)


def test_decimation_keeps_the_last_sample_of_each_block():
    cfg = fit_normalisation(PreprocessConfig(500.0, decimation=4), [np.zeros((2, 1)),
                                                                    np.ones((2, 1))])
    assert list(model_rate_indices(10, 4)) == [3, 7]
    pre = Preprocessor(cfg)
    state = pre.initial_state(1)
    kept = []
    for chunk in np.array_split(np.arange(10.0)[:, None], 3):
        y, state = pre.filter(chunk, state)
        kept.append(y)
    assert np.concatenate(kept).shape == (2, 1)


def test_process_does_not_mutate_state():
    pre = Preprocessor(fit_normalisation(PreprocessConfig(250.0, highpass_hz=10.0),
                                         [np.random.default_rng(1).normal(size=(50, 2))]))
    state = pre.initial_state(2)
    x = np.random.default_rng(2).normal(size=(30, 2))
    a, _ = pre.process(x, state)
    b, _ = pre.process(x, state)
    assert np.array_equal(a, b)


def test_normalisation_from_training_data_only():
    rng = np.random.default_rng(3)
    train = rng.normal(5.0, 2.0, size=(4000, 2))
    test = rng.normal(50.0, 20.0, size=(1000, 2))  # a shifted test set must not leak in
    cfg = fit_normalisation(PreprocessConfig(100.0), [train])
    assert np.allclose(cfg.mean, [5, 5], atol=0.2) and np.allclose(cfg.std, [2, 2], atol=0.1)
    out = Preprocessor(cfg).run(np.concatenate([train, test]))
    assert abs(out[:4000].mean()) < 0.05 and out[4000:].mean() > 10


def test_config_round_trip_and_validation():
    cfg = fit_normalisation(PreprocessConfig(500.0, highpass_hz=20.0, channel_names=("a", "b")),
                            [np.random.default_rng(0).normal(size=(10, 2))])
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.num_channels == 2 and cfg.model_rate_hz == 500.0
    with pytest.raises(ValueError, match="Nyquist"):
        PreprocessConfig(500.0, lowpass_hz=300.0)
    with pytest.raises(ValueError, match="rectify"):
        PreprocessConfig(500.0, envelope_hz=5.0)
    with pytest.raises(ValueError, match="decimation"):
        PreprocessConfig(500.0, decimation=0)
    with pytest.raises(ValueError, match="not fitted"):
        Preprocessor(PreprocessConfig(500.0)).run(np.zeros((5, 2)))
    dead = fit_normalisation(PreprocessConfig(10.0), [np.c_[np.random.default_rng(0).normal(
        size=20), np.zeros(20)]])
    assert min(dead.std) > 0  # a dead channel does not divide by zero


def test_adaptive_normalisation_follows_a_new_session():
    """Trained on one gain per channel, streamed on another: the running statistics give
    unit variance again within seconds; the fitted ones keep the gain change."""
    rng = np.random.default_rng(1)
    train = rng.normal(size=(5000, 3)) * 1e-4
    cfg = fit_normalisation(PreprocessConfig(500.0, adapt_s=1.0, adapt_max_s=4.0), [train])
    session = rng.normal(size=(5000, 3)) * 1e-4 * np.array([3.0, 1.0, 0.5])
    adaptive = Preprocessor(cfg).run(session)
    static = Preprocessor(PreprocessConfig(500.0, mean=cfg.mean, std=cfg.std)).run(session)
    assert np.allclose(adaptive[:5], static[:5], rtol=0.05)  # starts from the training stats
    assert np.allclose(adaptive[-2000:].std(0), 1.0, atol=0.1)
    assert np.allclose(static[-2000:].std(0), [3.0, 1.0, 0.5], rtol=0.1)
