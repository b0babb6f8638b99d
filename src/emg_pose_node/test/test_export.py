"""ONNX export: parity with PyTorch within 1e-4; the CLI checks it too."""

import json

import numpy as np
import onnx
import torch

from emg_pose_node.checkpoint import save_checkpoint
from emg_pose_node.cli import export_main
from emg_pose_node.export import OnnxFullModel, export_onnx
from emg_pose_node.testing import tiny_checkpoint as make_checkpoint


def test_onnx_full_model_parity(tmp_path):
    ckpt = make_checkpoint()
    path = export_onnx(ckpt, tmp_path / "m.onnx")
    x = torch.randn(6, 3, ckpt.window, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        ref = ckpt.build_model()(x).numpy()
    for runner in (OnnxFullModel(path, threads=1), OnnxFullModel(ckpt)):
        assert np.abs(runner.run(x.numpy()) - ref).max() < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    desc = json.loads(meta["emg_pose"])
    assert desc["channels"] == 3 and desc["window"] == ckpt.window


def test_export_cli(tmp_path, capsys):
    ckpt_path = save_checkpoint(make_checkpoint(), tmp_path / "m.safetensors")
    assert export_main(["--checkpoint", str(ckpt_path), "--out", str(tmp_path / "x.onnx")]) == 0
    assert "max |onnx - torch|" in capsys.readouterr().out
    (tmp_path / "bad.safetensors").write_bytes(b"xx")
    assert export_main(["--checkpoint", str(tmp_path / "bad.safetensors"), "--out",
                        str(tmp_path / "y.onnx")]) == 2
