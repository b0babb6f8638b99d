"""Shared fixtures: tiny synthetic recordings and tiny training settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from emg_pose_node.synthetic import synthetic_recording
from emg_pose_node.training import TrainSettings

torch.set_num_threads(1)  # 2 shared cores: keep tests predictable


def shared_data_dir() -> Path:
    """<repo root>/../shared/data (tests skip when it is absent).

    EMG_HAND_SHARED_DATA overrides it (e.g. from a git worktree in another folder).
    """
    override = os.environ.get("EMG_HAND_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(scope="session")
def sim_recording():
    """30 s, 8 channels, 250 Hz synthetic EMG with joint angles."""
    return synthetic_recording(duration_s=30.0, sample_rate_hz=250.0, channels=8, seed=3)


def tiny_settings(**overrides) -> TrainSettings:
    base = dict(output="joint_angles", window_s=0.3, hop_s=0.04, eval_hop_s=0.04,
                frontend="log_power", conv_channels=(8,), kernel_size=5, pool=8,
                lstm_hidden=16, lstm_layers=1, fc_hidden=16, dropout=0.1, epochs=3,
                batch_size=32, learning_rate=3e-3, show_progress=False, seed=0)
    base.update(overrides)
    return TrainSettings.from_dict(base)


@pytest.fixture(scope="session")
def trained(sim_recording):
    """A tiny model trained for a few epochs (shared by several tests)."""
    from emg_pose_node.training import train

    return train([sim_recording], tiny_settings(epochs=6))
