"""Fixtures of emg_pose_node's tests: tiny synthetic data and a tiny trained model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from emg_pose_node.synthetic import synthetic_recording
from emg_pose_node.testing import tiny_train_settings

torch.set_num_threads(1)  # 2 shared cores: keep tests predictable


@pytest.fixture(scope="session")
def shared_data(pytestconfig) -> Path:
    """``../shared/data`` beside the repository (or $EMG_HAND_SHARED_DATA), else a skip;
    the same rule as emg_hand_testing's fixture, usable without the harness installed."""
    try:
        from emg_hand_testing.pytest_plugin import find_shared_data
    except ImportError:
        def find_shared_data(start):
            if os.environ.get("EMG_HAND_SHARED_DATA"):
                path = Path(os.environ["EMG_HAND_SHARED_DATA"])
                return path if path.is_dir() else None
            for parent in (start.resolve(), *start.resolve().parents):
                if (parent.parent / "shared" / "data").is_dir():
                    return parent.parent / "shared" / "data"
            return None
    path = find_shared_data(Path(pytestconfig.rootpath))
    if path is None:
        pytest.skip("real sEMG recordings not found: expected ../shared/data beside the "
                    "repository (or set EMG_HAND_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def sim_recording():
    """30 s, 8 channels, 250 Hz synthetic EMG with joint angles."""
    return synthetic_recording(duration_s=30.0, sample_rate_hz=250.0, channels=8, seed=3)


@pytest.fixture(scope="session")
def trained(sim_recording):
    """A tiny model trained for a few epochs (shared by several tests)."""
    from emg_pose_node.training import train

    return train([sim_recording], tiny_train_settings(epochs=6))
