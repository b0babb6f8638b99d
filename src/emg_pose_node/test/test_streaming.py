"""StreamingPredictor: chunked live inference equals the offline full-window path."""

from dataclasses import replace

import numpy as np
import pytest

from emg_hand_core.hand_model import forward_kinematics
from emg_pose_node.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from emg_pose_node.streaming import StreamingPredictor
from emg_pose_node.synthetic import synthetic_recording
from emg_pose_node.testing import tiny_checkpoint as make_checkpoint


def push_all(predictor, emg, rng, max_chunk=30, with_index=False):
    out, i = {}, 0
    while i < len(emg):
        n = int(rng.integers(1, max_chunk))
        pred = predictor.push(emg[i:i + n], first_sample_index=i if with_index else None)
        if pred is not None:
            out[pred.sample_index] = pred
        i += n
    return out


@pytest.mark.parametrize("decimation", [1, 2])
def test_stream_equals_offline_path_with_filters_and_decimation(decimation):
    from dataclasses import replace

    ckpt = make_checkpoint()
    ckpt.preprocess = replace(ckpt.preprocess, decimation=decimation, notch_hz=50.0)
    rec = synthetic_recording(duration_s=1.5, sample_rate_hz=500.0, channels=3)
    offline, ends = StreamingPredictor(ckpt).predict_recording(rec.emg)
    predictor = StreamingPredictor(ckpt)
    live = push_all(predictor, rec.emg, np.random.default_rng(0))
    assert len(live) > 10
    lookup = dict(zip(ends.tolist(), offline))
    for index, pred in live.items():
        assert np.allclose(pred.values, lookup[index], atol=1e-4), index
        assert np.allclose(pred.keypoints, forward_kinematics(pred.joint_angles))
    assert predictor.warmup_s == pytest.approx(40 * decimation / 500.0)
    assert predictor.update_period_s == pytest.approx(4 * decimation / 500.0)


@pytest.mark.parametrize("frontend,kernel,pool,decimation,chunk,skip",
                         [("log_power", 9, 5, 1, 5, 2),  # the default model's geometry
                          ("log_power", 9, 5, 1, 10, 2), ("conv", 4, 2, 2, 8, 6)])
def test_aligned_stream_predicts_from_each_chunks_newest_sample(frontend, kernel, pool,
                                                                decimation, chunk, skip):
    """align_to_chunks (the live node) leaves alignment_skip samples out at a stream start:
    every chunk (a multiple of the frame stride) then yields a prediction ending on its last
    sample, also after a gap restarts the stream."""
    from dataclasses import replace

    from emg_pose_node.checkpoint import Checkpoint
    from emg_pose_node.network import EMGToPose, NetworkConfig, aligned_window

    base = make_checkpoint()
    channels = (8,) if frontend == "log_power" else (8, 8)
    net = NetworkConfig(in_channels=3, frontend=frontend, kernel_size=kernel, pool=pool,
                        window=aligned_window(60, frontend, channels, kernel, pool),
                        conv_channels=channels, lstm_hidden=8, fc_hidden=8)
    ckpt = Checkpoint.from_model(EMGToPose(net).eval(),
                                 replace(base.preprocess, decimation=decimation))
    predictor = StreamingPredictor(ckpt, align_to_chunks=True)
    assert predictor.alignment_skip(chunk) == skip
    emg = synthetic_recording(duration_s=1.0, sample_rate_hz=500.0, channels=3).emg
    ends = []
    for start in (1000, 5000):  # a stream, then after a gap (the predictor resets itself)
        for i in range(0, len(emg) - chunk + 1, chunk):
            pred = predictor.push(emg[i:i + chunk], first_sample_index=start + i)
            if pred is not None:
                assert pred.stream_index == start + i + chunk - 1
                ends.append(pred.stream_index)
            elif ends and ends[-1] > start:
                raise AssertionError(f"no pose from the chunk at {start + i} once warm")
    assert predictor.gaps == 1 and sum(e > 5000 for e in ends) > 10


def test_gap_resets_and_bad_input_is_refused(tmp_path):
    ckpt = make_checkpoint()
    rec = synthetic_recording(duration_s=0.5, sample_rate_hz=500.0, channels=3)
    p = StreamingPredictor(save_checkpoint(ckpt, tmp_path / "m.safetensors"))  # from a path
    assert p.push(rec.emg[:45], first_sample_index=1000) is not None
    pred = p.push(rec.emg[45:50], first_sample_index=1045)
    assert pred is None or pred.stream_index == 1000 + pred.sample_index
    # Dropped samples: the window restarts instead of spanning the gap.
    assert p.push(rec.emg[60:95], first_sample_index=1060) is None and p.gaps == 1
    pred = p.push(rec.emg[95:110], first_sample_index=1095)
    assert pred is not None and pred.stream_index == 1060 + pred.sample_index
    with pytest.raises(ValueError, match="shape"):
        p.push(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        p.push(np.full((4, 3), np.nan))
    p.reset()
    assert p.push(rec.emg[:39]) is None
    assert p.push(rec.emg[39:40]) is not None


def test_channel_name_mismatch_is_refused():
    with pytest.raises(CheckpointError, match="channel names"):
        StreamingPredictor(make_checkpoint(), channel_names=("x", "y", "z"))


def test_onnx_backend_matches_torch(tmp_path):
    """Exported on the fly (a checkpoint without graphs) and embedded at save time."""
    ckpt = make_checkpoint()
    rec = synthetic_recording(duration_s=1.0, sample_rate_hz=500.0, channels=3)
    a = push_all(StreamingPredictor(ckpt), rec.emg, np.random.default_rng(1))
    exported = StreamingPredictor(ckpt, backend="onnx", threads=1)
    assert exported.exported_graphs
    embedded = StreamingPredictor(load_checkpoint(save_checkpoint(ckpt, tmp_path / "m.st")),
                                  backend="onnx", threads=1)
    assert not embedded.exported_graphs
    for predictor in (exported, embedded):
        b = push_all(predictor, rec.emg, np.random.default_rng(1))
        assert a.keys() == b.keys() and len(a) > 10
        for k in a:
            assert np.abs(a[k].values - b[k].values).max() < 1e-4


def test_graphs_of_another_architecture_are_refused():
    from emg_pose_node.export import streaming_graphs

    ckpt, other = make_checkpoint(channels=3), make_checkpoint(channels=4)
    ckpt.graphs = replace(streaming_graphs(other), weights_sha256=ckpt.weights_sha256())
    with pytest.raises(CheckpointError, match="does not match the hyperparameters"):
        StreamingPredictor(ckpt, backend="onnx")
