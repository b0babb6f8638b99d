"""Export for fast CPU inference: ONNX, run with ONNX Runtime.

Why ONNX Runtime (see bench/model_bench.py for the figures): it is faster than eager
PyTorch for a single small window, an ``.onnx`` file is data (protobuf), not code, so it
loads as safely as the safetensors checkpoint (a TorchScript archive carries code), and
the runtime needs no torch at all.

* :func:`export_onnx` writes the full-window model: input ``emg`` (B, C, W) of normalised
  model-rate samples, output ``pose`` (B, out); metadata properties carry the
  checkpoint's description (channels, rates, window, output convention and names).
* :func:`streaming_graphs` exports the two graphs the streaming path uses: ``frames`` (the
  frontend on a chunk of any length) and ``head`` (LSTM + head on one window of frames).
  :func:`checkpoint.save_checkpoint` embeds them in the checkpoint, and
  :class:`onnx_runtime.OnnxStreamingSessions` (no torch) runs them for
  :class:`streaming.StreamingPredictor` with backend="onnx".

Parity with PyTorch is tested to 1e-4 (it is typically 1e-6).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint, StreamingGraphs
from .onnx_runtime import session

OPSET = 17


class _Frames(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, chunk: torch.Tensor) -> torch.Tensor:  # (1, C, L) -> (1, T, F)
        return self.model.frames(chunk)


class _Head(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (1, T, F) -> (1, out)
        return self.model.decode(self.model.temporal(frames))


def _to_onnx(module: nn.Module, example: torch.Tensor, input_name: str, output_name: str,
             dynamic: dict) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns it is legacy
        torch.onnx.export(module.eval(), (example,), buf, input_names=[input_name],
                          output_names=[output_name], dynamic_axes=dynamic, opset_version=OPSET,
                          dynamo=False)
    return buf.getvalue()


def onnx_bytes_full(ckpt: Checkpoint) -> bytes:
    model = ckpt.build_model()
    x = torch.zeros(1, ckpt.in_channels, ckpt.window)
    return _to_onnx(model, x, "emg", "pose", {"emg": {0: "batch"}, "pose": {0: "batch"}})


def export_onnx(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write the full-window model as ONNX with the checkpoint's description as metadata
    (the metadata needs the ``onnx`` package; without it the graph is written as is)."""
    model_bytes = onnx_bytes_full(ckpt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import onnx
    except ImportError:
        path.write_bytes(model_bytes)
        return path
    proto = onnx.load_from_string(model_bytes)
    description = {
        "channels": ckpt.in_channels, "channel_names": list(ckpt.channel_names),
        "sample_rate_hz": ckpt.sample_rate_hz, "model_rate_hz": ckpt.model_rate_hz,
        "window": ckpt.window, "output": ckpt.output, "output_names": list(ckpt.output_names),
        "preprocess": ckpt.preprocess.to_dict(),
        "note": "input: normalised model-rate EMG windows (B, C, W); see emg_pose_node "
                "preprocessing",
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = "emg_pose", json.dumps(description)
    onnx.save(proto, str(path))
    return path


class OnnxFullModel:
    """Full-window ONNX Runtime inference: run(x (B, C, W) float32) -> (B, out)."""

    def __init__(self, ckpt_or_path: Checkpoint | str | Path, threads: int | None = None) -> None:
        if isinstance(ckpt_or_path, Checkpoint):
            self._sess = session(onnx_bytes_full(ckpt_or_path), threads)
        else:
            self._sess = session(str(ckpt_or_path), threads)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._sess.run(None, {"emg": np.ascontiguousarray(x, dtype=np.float32)})[0]


def streaming_graphs(ckpt: Checkpoint) -> StreamingGraphs:
    """Export the streaming path's two graphs from the checkpoint's weights (seconds)."""
    model = ckpt.build_model()
    c = ckpt.network
    chunk = torch.zeros(1, c.in_channels, c.frame_receptive_field + 3 * c.frame_stride)
    frames = torch.zeros(1, c.num_frames, c.frame_width)
    return StreamingGraphs(
        frames=_to_onnx(_Frames(model), chunk, "chunk", "frames",
                        {"chunk": {2: "samples"}, "frames": {1: "frames"}}),
        head=_to_onnx(_Head(model), frames, "frames", "pose", {}),
        weights_sha256=ckpt.weights_sha256(), opset=OPSET)


def export_torchscript(ckpt: Checkpoint, path: str | Path) -> Path:
    """TorchScript (traced) full-window model; benchmarks only: loading it runs code."""
    model = ckpt.build_model()
    x = torch.zeros(1, ckpt.in_channels, ckpt.window)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (x,))
    traced.save(str(path))
    return Path(path)
