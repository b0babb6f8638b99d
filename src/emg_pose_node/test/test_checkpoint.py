"""Checkpoints: round trip reproduces outputs; bad files are refused with clear errors."""

import json
import pickle
import struct

import pytest
import torch

from emg_pose_node.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from emg_pose_node.testing import tiny_checkpoint


def make_checkpoint(channels=3, rate=500.0):
    return tiny_checkpoint(channels=channels, sample_rate_hz=rate)


def test_round_trip_reproduces_outputs(tmp_path):
    ckpt = make_checkpoint()
    path = save_checkpoint(ckpt, tmp_path / "m.safetensors")
    back = load_checkpoint(path, channels=3, sample_rate_hz=500.0,
                           channel_names=("ch_1", "ch_2", "ch_3"))
    x = torch.randn(4, 3, 40)
    with torch.no_grad():
        assert torch.equal(ckpt.build_model()(x), back.build_model()(x))
    assert back.network == ckpt.network and back.preprocess == ckpt.preprocess
    assert back.metrics == {"test_mae": 0.1} and back.training["data"][0]["source"] == "x"
    assert back.window_s == pytest.approx(40 / 500.0) and "conv" in back.describe()
    assert not list(tmp_path.glob(".tmp-*"))  # atomic write left nothing behind


def test_refuses_stream_mismatches_naming_them(tmp_path):
    path = save_checkpoint(make_checkpoint(), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="expects 3 EMG channels, the stream has 8"):
        load_checkpoint(path, channels=8)
    with pytest.raises(CheckpointError, match="sample rate mismatch.*500 Hz.*1000 Hz"):
        load_checkpoint(path, sample_rate_hz=1000.0)
    with pytest.raises(CheckpointError, match="channel names mismatch"):
        load_checkpoint(path, channel_names=("a", "b", "c"))


def test_refuses_truncated_and_corrupt_files(tmp_path):
    path = save_checkpoint(make_checkpoint(), tmp_path / "m.safetensors")
    raw = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(cut)
    flipped = bytearray(raw)
    flipped[-100] ^= 0xFF  # a weight byte
    bad = tmp_path / "flip.safetensors"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(bad)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(empty)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")


def _rewrite_metadata(src, dst, edit):
    """Rewrite a safetensors header's metadata (the tensors stay valid)."""
    raw = src.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    edit(header["__metadata__"])
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    dst.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def test_refuses_other_versions_formats_and_inconsistent_weights(tmp_path):
    path = save_checkpoint(make_checkpoint(), tmp_path / "m.safetensors")
    v2 = tmp_path / "v2.safetensors"
    _rewrite_metadata(path, v2, lambda m: m.update(format_version="2"))
    with pytest.raises(CheckpointError, match=f"version 2 is not supported.*{FORMAT_VERSION}"):
        load_checkpoint(v2)
    other = tmp_path / "other.safetensors"
    _rewrite_metadata(path, other, lambda m: m.update(format="something_else"))
    with pytest.raises(CheckpointError, match="not an emg_pose checkpoint"):
        load_checkpoint(other)

    def wider(meta):
        doc = json.loads(meta["checkpoint"])
        doc["network"]["lstm_hidden"] = 32
        meta["checkpoint"] = json.dumps(doc)
    mismatch = tmp_path / "mismatch.safetensors"
    _rewrite_metadata(path, mismatch, wider)
    with pytest.raises(CheckpointError, match="weights do not match the hyperparameters"):
        load_checkpoint(mismatch)

    def names(meta):
        doc = json.loads(meta["checkpoint"])
        doc["joint_names"] = doc["joint_names"][::-1]
        meta["checkpoint"] = json.dumps(doc)
    renamed = tmp_path / "names.safetensors"
    _rewrite_metadata(path, renamed, names)
    with pytest.raises(CheckpointError, match="joint names"):
        load_checkpoint(renamed)


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/emg_pose_pickle_was_executed",))


def test_loading_never_unpickles(tmp_path):
    import os

    marker = "/tmp/emg_pose_pickle_was_executed"
    if os.path.exists(marker):
        os.remove(marker)
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"weights": _Boom()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "torch.safetensors")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "torch.safetensors")
    assert not os.path.exists(marker)
