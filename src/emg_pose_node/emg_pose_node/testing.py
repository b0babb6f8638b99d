"""Tiny models and settings for tests (this package's and the node's): seconds, not minutes.

    ckpt = tiny_checkpoint()                 # untrained, 3 channels at 500 Hz, window 40
    result = train([synthetic_recording()], tiny_train_settings(epochs=3))
"""

from __future__ import annotations

import numpy as np
import torch

from .checkpoint import Checkpoint
from .network import EMGToPose, NetworkConfig
from .preprocessing import PreprocessConfig, fit_normalisation
from .training import TrainSettings


def tiny_train_settings(**overrides) -> TrainSettings:
    """A small log-power model and few epochs; ``overrides`` are TrainSettings fields."""
    base = dict(output="joint_angles", window_s=0.3, hop_s=0.04, eval_hop_s=0.04,
                frontend="log_power", conv_channels=(8,), kernel_size=5, pool=8,
                lstm_hidden=16, lstm_layers=1, fc_hidden=16, dropout=0.1, weight_decay=1e-2,
                epochs=3, batch_size=32, learning_rate=3e-3, show_progress=False, seed=0)
    base.update(overrides)
    return TrainSettings.from_dict(base)


def tiny_checkpoint(channels: int = 3, sample_rate_hz: float = 500.0, seed: int = 0,
                    frontend: str = "conv") -> Checkpoint:
    """An untrained but deterministic checkpoint (random BatchNorm statistics, so the
    normalisation layers are not identities), with a 20 Hz high-pass in preprocessing."""
    torch.manual_seed(seed)
    if frontend == "conv":
        net = NetworkConfig(in_channels=channels, window=40, conv_channels=(8, 8),
                            lstm_hidden=16, fc_hidden=8)
    else:
        net = NetworkConfig(in_channels=channels, window=56, frontend="log_power",
                            conv_channels=(8,), kernel_size=9, pool=8, lstm_hidden=16,
                            fc_hidden=8)
    model = EMGToPose(net)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
    names = tuple(f"ch_{i + 1}" for i in range(channels))
    pre = fit_normalisation(
        PreprocessConfig(sample_rate_hz, highpass_hz=20.0, channel_names=names),
        [np.random.default_rng(seed).normal(size=(100, channels))])
    return Checkpoint.from_model(model.eval(), pre, training={"data": [{"source": "x"}]},
                                 metrics={"test_mae": 0.1})
