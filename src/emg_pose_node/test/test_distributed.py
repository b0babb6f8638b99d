"""Training under torchrun (2 gloo processes on the CPU) and resuming a killed run."""

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emg_hand_core.recordings import emg2pose
from emg_hand_testing.processes import Process
from emg_pose_node.checkpoint import load_checkpoint
from emg_pose_node.cli import train_main
from emg_pose_node.synthetic import synthetic_recording

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_ddp_worker", HERE / "_ddp_worker.py")
_worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_worker)
TINY = ["--frontend", "log_power", "--conv-channels", "8", "--kernel-size", "5", "--pool", "8",
        "--lstm-hidden", "16", "--lstm-layers", "1", "--fc-hidden", "16", "--window-s", "0.3",
        "--eval-hop-s", "0.04", "--batch-size", "32", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions")
    return [str(emg2pose.write(root / f"session{i}.h5", synthetic_recording(
        duration_s=20.0, sample_rate_hz=250.0, channels=4, seed=40 + i))) for i in range(3)]


def test_two_gloo_processes_end_identical_and_equal_one_process(sessions, tmp_path):
    """2 processes x batch 16 (one DataLoader worker each) against 1 process x batch 32:
    the same windows per step, BatchNorm over the global batch, the uneven last batch
    weighted; so the same weights up to float rounding."""
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", HERE / "_ddp_worker.py", tmp_path, "16", "1", cache, *sessions]
    with Process(cmd, name="torchrun") as proc:
        assert proc.wait(timeout_s=300) == 0, proc.tail(30)
        assert proc.output.count("streamed training:") == 1, proc.output  # rank 0 logs
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}_of_2.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:  # parameters and buffers (BatchNorm statistics)
        assert torch.equal(rank0[key], rank1[key]), key
    one = _worker.run(sessions, 32, str(cache))
    history = one.train.history
    assert history[-1].train_loss < history[0].train_loss  # it trained
    for key, value in one.model.state_dict().items():
        if value.is_floating_point():
            diff = float((rank0[key] - value).norm() / value.norm().clamp_min(1e-6))
            assert diff < 1e-4, (key, diff)
        else:
            assert torch.equal(rank0[key], value), key


def test_a_killed_run_resumes_from_its_last_epoch(sessions, tmp_path, capsys):
    """SIGKILL after an epoch's state is written; --resume continues from it and ends with
    the weights of a run that was never interrupted."""
    common = [*sessions, "--stream", "--cache-dir", str(tmp_path / "cache"), *TINY,
              "--epochs", "12", "--patience", "0", "--hop-s", "0.04", "--epoch-windows", "256",
              "--eval-windows", "64", "--seed", "3"]
    out = tmp_path / "resumed.safetensors"
    cmd = [sys.executable, "-m", "emg_pose_node.cli", "train", *common, "--out", out, "--resume"]
    with Process(cmd, name="train") as first:  # --resume without a state: starts afresh
        first.wait_for_output(r"^epoch 2/12: .*state in", timeout_s=240)
        first.process.kill()
        assert first.wait(timeout_s=30) == -9, "finished before the kill: make it longer"
    assert not out.exists()
    with Process(cmd, name="train --resume") as second:
        assert second.wait(timeout_s=300) == 0, second.tail(30)
        resumed_after = int(re.search(r"resuming from \S+ after epoch (\d+)",
                                      second.output).group(1))
    assert 2 <= resumed_after < 12
    resumed = load_checkpoint(out)
    assert [h["epoch"] for h in resumed.training["history"]] == list(range(1, 13))

    reference = tmp_path / "reference.safetensors"
    assert train_main([*common, "--out", str(reference), "--state-file",
                       str(tmp_path / "reference.train_state.pt")]) == 0
    for key, value in load_checkpoint(reference).state_dict.items():
        assert np.array_equal(value, resumed.state_dict[key]), key

    capsys.readouterr()
    assert train_main([*common, "--out", str(out), "--resume", "--lr", "0.01"]) == 2
    assert "written by a run with other settings.learning_rate" in capsys.readouterr().err
