"""EMGToPose shapes, frame geometry and streaming parity with the full-window path."""

import numpy as np
import pytest
import torch

from emg_pose_node.architecture import LIMITS, parameter_count, parameter_shapes
from emg_pose_node.network import EMGToPose, NetworkConfig, aligned_window, count_parameters
from emg_pose_node.testing import tiny_checkpoint


def tiny(frontend="conv", **kw):
    if frontend == "conv":
        base = dict(in_channels=3, window=40, conv_channels=(8, 8), lstm_hidden=16,
                    fc_hidden=8, lstm_layers=2)
    else:
        base = dict(in_channels=3, window=aligned_window(60, "log_power", (8,), 9, 8),
                    frontend="log_power", conv_channels=(8,), kernel_size=9, pool=8,
                    lstm_hidden=16, fc_hidden=8, lstm_layers=2)
    base.update(kw)
    return NetworkConfig(**base)


def randomise_batchnorm(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)


def test_seed_design_shapes_and_size():
    cfg = NetworkConfig(in_channels=8, window=200)  # the seed: 64, 128, LSTM 256 x 2
    model = EMGToPose(cfg).eval()
    assert cfg.frame_receptive_field == 16 and cfg.frame_stride == 4
    assert cfg.num_frames == 47 and model.receptive_field == 200 and model.left_context == 199
    x = torch.randn(5, 8, 200)
    assert model.frames(x).shape == (5, 47, 128)
    assert model(x).shape == (5, 20)
    assert 0.9e6 < count_parameters(model) < 1.1e6  # ~1.0 M as measured for the seed


@pytest.mark.parametrize("output,names,dim", [("joint_angles", (), 20), ("keypoints", (), 63),
                                              ("values", ("a", "b"), 2)])
def test_output_conventions(output, names, dim):
    cfg = tiny(output=output, output_names=names)
    assert cfg.out_dim == dim and len(cfg.output_names) == dim
    assert EMGToPose(cfg).eval()(torch.randn(2, 3, cfg.window)).shape == (2, dim)


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="frame aligned"):
        tiny(window=41)
    assert tiny().frame_aligned(41) == 40
    with pytest.raises(ValueError, match="output"):
        tiny(output="angles")
    with pytest.raises(ValueError, match="output_names"):
        tiny(output="values", output_names=())
    cfg = tiny("log_power")
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        NetworkConfig.from_dict({**cfg.to_dict(), "extra": 1})


@pytest.mark.parametrize("kw", [
    dict(frontend="conv"), dict(frontend="conv", conv_channels=(4, 6, 8), window=68,
                                lstm_layers=1),
    dict(frontend="log_power"), dict(frontend="log_power", lstm_layers=3, output="keypoints"),
    dict(frontend="conv", output="values", output_names=("a", "b", "c"))])
def test_parameter_shapes_are_the_torch_models(kw):
    """The torch-free layout (checked against a checkpoint's header before loading) is
    exactly the state_dict of the model these hyperparameters build."""
    cfg = tiny(**kw)
    state = EMGToPose(cfg).state_dict()
    expected = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in
                state.items()}
    assert parameter_shapes(cfg) == expected
    assert parameter_count(cfg) == sum(v.numel() for v in state.values())
    assert cfg.frame_width == EMGToPose(cfg).frames(torch.zeros(1, 3, cfg.window)).shape[-1]


@pytest.mark.parametrize("field, value, match", [
    ("window", 10**9 + 4, "window"), ("in_channels", 10**6, "in_channels"),
    ("lstm_hidden", 10**7, "lstm_hidden"), ("conv_channels", (8, 10**9), "conv_channels"),
    ("lstm_layers", 10**4, "lstm_layers"), ("kernel_size", 2.5, "integer"),
    ("in_channels", True, "integer"), ("fc_hidden", "8", "integer"),
    ("dropout", float("nan"), "dropout"), ("output_names", "abc", "output_names"),
    ("conv_channels", (), "conv_channels")])
def test_absurd_sizes_are_refused(field, value, match):
    """A checkpoint is data from a file: sizes beyond LIMITS never reach an allocation."""
    with pytest.raises(ValueError, match=match):
        tiny(**{field: value})
    with pytest.raises(ValueError, match="parameters"):  # each size fine, the product not
        tiny(lstm_hidden=LIMITS["width"], lstm_layers=LIMITS["lstm_layers"])


@pytest.mark.parametrize("frontend", ["conv", "log_power"])
def test_folded_input_mixing_equals_mixing_the_input(frontend):
    ckpt = tiny_checkpoint(channels=3, frontend=frontend)
    model, folded = ckpt.build_model().eval(), ckpt.build_model().eval()
    mixing = torch.tensor([[0.8, 0.2, 0.0], [0.0, 0.9, 0.3], [0.1, 0.0, 1.1]])
    folded.fold_input_mixing(mixing)
    x = torch.randn(4, 3, ckpt.network.window)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(torch.einsum("cd,bdw->bcw", mixing, x)),
                              atol=1e-5)
    with pytest.raises(ValueError, match=r"mixing must be \(3, 3\)"):
        folded.fold_input_mixing(torch.eye(4))


def test_predict_needs_no_labels_and_restores_mode():
    model = EMGToPose(tiny())
    model.train()
    out = model.predict(torch.randn(7, 3, 40), batch_size=3)
    assert out.shape == (7, 20) and model.training


@pytest.mark.parametrize("frontend", ["conv", "log_power"])
def test_streaming_matches_full_window(frontend):
    torch.manual_seed(0)
    cfg = tiny(frontend)
    model = EMGToPose(cfg)
    randomise_batchnorm(model)
    model.eval()
    x = torch.randn(3, 700)
    rng = np.random.default_rng(0)
    outputs, i = {}, 0
    while i < x.shape[1]:
        n = int(rng.integers(1, 3 * cfg.frame_stride + 5))
        out, index = model.stream(x[:, i:i + n])
        i += n
        if out is not None:
            outputs[index] = out
    assert len(outputs) > 20
    for index, out in outputs.items():
        assert (index - (cfg.window - 1)) % cfg.frame_stride == 0
        full = model(x[None, :, index - cfg.window + 1:index + 1])[0]
        assert torch.allclose(out, full, atol=1e-5), index
    model.reset_state()
    out, index = model.stream(x[:, :cfg.window])
    assert index == cfg.window - 1 and torch.allclose(out, model(x[None, :, :cfg.window])[0],
                                                      atol=1e-5)


def test_stream_large_chunk_gives_newest_window_and_needs_eval():
    model = EMGToPose(tiny()).eval()
    x = torch.randn(3, 333)
    out, index = model.stream(x)
    assert index == 39 + ((333 - 40) // 4) * 4
    assert torch.allclose(out, model(x[None, :, index - 39:index + 1])[0], atol=1e-5)
    model.train()
    with pytest.raises(RuntimeError, match="eval"):
        model.stream(x)
    model.eval()
    with pytest.raises(ValueError, match="shape"):
        model.stream(torch.randn(4, 10))
