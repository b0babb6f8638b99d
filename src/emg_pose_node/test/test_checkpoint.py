"""Checkpoints: round trip reproduces outputs; bad files are refused with clear errors."""

import json
import math
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emg_pose_node.architecture import LIMITS
from emg_pose_node.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    tensor_digest,
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


def _edit_doc(edit):
    def apply(meta):
        doc = json.loads(meta["checkpoint"])
        edit(doc)
        meta["checkpoint"] = json.dumps(doc)
    return apply


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["network"].update(window=10**9), "window"),  # once: 51 GB allocated
    (lambda d: d["network"].update(in_channels=10**6), "in_channels"),
    (lambda d: d["network"].update(lstm_hidden=10**8), "lstm_hidden"),
    (lambda d: d["network"].update(conv_channels=[8, 10**9]), "conv_channels"),
    (lambda d: d["network"].update(lstm_hidden=4000), "parameters"),
    (lambda d: d["network"].update(lstm_hidden=32), "shape or dtype mismatch"),
    (lambda d: d["preprocess"].update(decimation=10**6), "decimation"),
    (lambda d: d["preprocess"].update(mean=[1e300, 0.0, None]), "mean"),
    (lambda d: d["preprocess"].update(mean=[float("inf"), 0.0, 0.0]), "non-finite"),
    (lambda d: d["preprocess"].update(filter_order=10**6), "filter_order"),
    (lambda d: d["preprocess"].update(sample_rate_hz="fast"), "sample_rate_hz"),
    (lambda d: d.update(network=[1, 2]), "mapping"),
])
def test_absurd_descriptions_are_refused_before_reading_tensors(tmp_path, edit, match):
    """Well-formed safetensors files whose description is absurd: refused with the reason,
    from the header alone (nothing sized by the description is allocated)."""
    path = save_checkpoint(make_checkpoint(), tmp_path / "m.safetensors", embed_graphs=False)
    bad = tmp_path / "bad.safetensors"
    _rewrite_metadata(path, bad, _edit_doc(edit))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(bad)


def test_an_overflowing_number_is_refused(tmp_path):
    """1e999 is valid JSON that parses as inf."""
    path = save_checkpoint(make_checkpoint(), tmp_path / "m.safetensors", embed_graphs=False)
    bad = tmp_path / "bad.safetensors"

    def edit(meta):
        doc = json.loads(meta["checkpoint"])
        doc["preprocess"]["std"][0] = 12345.5
        meta["checkpoint"] = json.dumps(doc).replace("12345.5", "1e999")
    _rewrite_metadata(path, bad, edit)
    with pytest.raises(CheckpointError, match="std"):
        load_checkpoint(bad)


def test_graphs_are_embedded_at_save_and_checked(tmp_path):
    ckpt = make_checkpoint()
    path = save_checkpoint(ckpt, tmp_path / "m.safetensors")
    back = load_checkpoint(path)
    assert back.streaming_graphs() is not None and back.graphs == ckpt.graphs
    assert back.weights_sha256() == ckpt.weights_sha256()
    # graphs that claim to come from other weights are refused
    other = tmp_path / "other.safetensors"
    _rewrite_metadata(path, other, _edit_doc(lambda d: d["onnx"].update(weights_sha256="0")))
    with pytest.raises(CheckpointError, match="other weights"):
        load_checkpoint(other)
    # an older checkpoint (no graphs) still loads; its graphs are missing, not wrong
    old = load_checkpoint(save_checkpoint(make_checkpoint(), tmp_path / "old.safetensors",
                                          embed_graphs=False))
    assert old.graphs is None and old.streaming_graphs() is None


def _torch_digest(tensors):
    """The digest as checkpoints before the numpy loader computed it (torch tensors)."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(tensors):
        t = torch.from_numpy(np.array(tensors[key]))
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).numpy().tobytes())
    return h.hexdigest()


def test_digest_is_the_one_older_checkpoints_recorded():
    state = make_checkpoint().state_dict
    assert any(v.ndim == 0 for v in state.values())  # num_batches_tracked: a 0-d int64
    assert tensor_digest(state) == _torch_digest(state)


# --- property: metadata never gets past the loader unless it is sane ---------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    return save_checkpoint(make_checkpoint(), path, embed_graphs=False)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(["network", "preprocess", "", "onnx"]), key=st.text(max_size=20)
       | st.sampled_from(["window", "in_channels", "conv_channels", "lstm_hidden", "mean",
                          "std", "decimation", "sample_rate_hz", "output_names", "dropout",
                          "highpass_hz", "notch_q", "joint_names", "training"]),
       value=_JSON)
def test_any_metadata_edit_is_refused_or_harmless(saved, tmp_path, section, key, value):
    """Whatever a field is replaced by, the loader raises CheckpointError (and nothing else)
    or returns a checkpoint whose numbers are finite and within the limits."""
    def edit(doc):
        target = doc if not section else doc.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = value
    bad = tmp_path / "edited.safetensors"
    _rewrite_metadata(saved, bad, _edit_doc(edit))
    try:
        ckpt = load_checkpoint(bad)
    except CheckpointError:
        return
    pre = ckpt.preprocess
    numbers = [pre.sample_rate_hz, *pre.mean, *pre.std, ckpt.network.dropout]
    assert all(math.isfinite(v) for v in numbers)
    assert ckpt.network.window <= LIMITS["window"] and ckpt.in_channels <= LIMITS["in_channels"]
