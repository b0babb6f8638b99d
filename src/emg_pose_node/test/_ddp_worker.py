"""Run by test_distributed.py in every process of a torchrun group (and in the test's own
process): streamed training of a tiny model; each process saves its final weights."""

from __future__ import annotations

import sys

import torch

from emg_pose_node.dataset import SourceSpec
from emg_pose_node.distributed import ScaleSettings, StreamedResult, train_streamed
from emg_pose_node.testing import tiny_train_settings


def run(files: list[str], batch_size: int, cache_dir: str, workers: int = 0) -> StreamedResult:
    """Three epochs of 301 windows without dropout (nothing drawn per process); 301 windows
    leave an uneven last global batch."""
    torch.set_num_threads(1)
    settings = tiny_train_settings(epochs=3, batch_size=batch_size, dropout=0.0)
    return train_streamed([SourceSpec(f) for f in files], settings,
                          ScaleSettings(cache_dir=cache_dir, workers=workers, epoch_windows=301,
                                        eval_windows=64))


if __name__ == "__main__":
    out, batch, workers, cache, *paths = sys.argv[1:]
    result = run(paths, int(batch), cache, int(workers))
    torch.save(result.model.state_dict(), f"{out}/rank{result.rank}_of_{result.world_size}.pt")
