"""Checkpoints: everything needed to rebuild and run a model, loaded without executing code.

One safetensors file (``*.safetensors``): the tensors are the model's weights and buffers;
the string metadata holds one JSON document with the format version, the network
hyperparameters (:class:`network.NetworkConfig`), the preprocessing settings with the
normalisation statistics fitted on training data (:class:`preprocessing.PreprocessConfig`:
sample rate, decimation, filters, channel names), the output convention and names, the
joint names, a training-data summary, metrics and a SHA-256 of the tensor bytes.

safetensors parses a length-prefixed JSON header and raw tensor bytes: there is no pickle
and nothing is executed. :func:`load_checkpoint` refuses, with :class:`CheckpointError`
naming the problem, files that are truncated, corrupt (checksum), of another format
version, inconsistent (weights vs. hyperparameters, joint names), or that do not match
what the caller expects (channel count or names, sample rate).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emg_hand_core.hand_model import JOINT_NAMES

from .network import EMGToPose, NetworkConfig
from .preprocessing import PreprocessConfig

FORMAT_NAME = "emg_pose_checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_EXTENSION = ".safetensors"


class CheckpointError(ValueError):
    """A checkpoint was refused; the message names the file and the mismatch."""


@dataclass
class Checkpoint:
    """A model with everything needed to run it (see module docstring)."""

    network: NetworkConfig
    preprocess: PreprocessConfig
    state_dict: dict[str, torch.Tensor]
    training: dict = field(default_factory=dict)  # data summary, settings, history
    metrics: dict = field(default_factory=dict)
    joint_names: tuple[str, ...] = tuple(JOINT_NAMES)
    created: str = ""
    format_version: int = FORMAT_VERSION

    # --- what the model expects -------------------------------------------------------
    @property
    def sample_rate_hz(self) -> float:
        """Rate of the EMG stream the model takes [Hz]."""
        return self.preprocess.sample_rate_hz

    @property
    def model_rate_hz(self) -> float:
        return self.preprocess.model_rate_hz

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.preprocess.channel_names

    @property
    def in_channels(self) -> int:
        return self.network.in_channels

    @property
    def window(self) -> int:
        """Window length in model-rate samples."""
        return self.network.window

    @property
    def window_s(self) -> float:
        return self.network.window / self.model_rate_hz

    @property
    def output(self) -> str:
        return self.network.output

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.network.output_names

    def build_model(self) -> EMGToPose:
        """A fresh model with these weights, in eval mode (each call: an independent copy)."""
        model = EMGToPose(self.network)
        model.load_state_dict(self.state_dict)
        return model.eval()

    @classmethod
    def from_model(cls, model: EMGToPose, preprocess: PreprocessConfig,
                   training: dict | None = None, metrics: dict | None = None) -> Checkpoint:
        state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
        return cls(network=model.config, preprocess=preprocess, state_dict=state,
                   training=dict(training or {}), metrics=dict(metrics or {}),
                   created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def describe(self) -> str:
        return (f"{self.output} x{len(self.output_names)} from {self.in_channels} ch at "
                f"{self.sample_rate_hz:g} Hz (model {self.model_rate_hz:g} Hz, window "
                f"{self.window} = {self.window_s:.3f} s, {self.network.frontend} frontend)")


def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).numpy().tobytes())
    return h.hexdigest()


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write atomically (temporary file + rename); returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in ckpt.state_dict.items()}
    doc = {
        "format": FORMAT_NAME,
        "format_version": ckpt.format_version,
        "network": ckpt.network.to_dict(),
        "preprocess": ckpt.preprocess.to_dict(),
        "joint_names": list(ckpt.joint_names),
        "training": ckpt.training,
        "metrics": ckpt.metrics,
        "created": ckpt.created,
        "tensor_sha256": _tensor_digest(tensors),
    }
    metadata = {"format": FORMAT_NAME, "format_version": str(ckpt.format_version),
                "checkpoint": json.dumps(_jsonable(doc), allow_nan=False)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, *, channels: int | None = None,
                    sample_rate_hz: float | None = None,
                    channel_names: tuple[str, ...] | list[str] | None = None) -> Checkpoint:
    """Load and validate a checkpoint; optional expectations of the EMG stream.

    Raises CheckpointError (a ValueError) naming the problem; never executes code.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated "
                              f"safetensors file): {exc}") from exc
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not an emg_pose checkpoint (format "
                              f"{metadata.get('format')!r}, expected {FORMAT_NAME!r})")
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: checkpoint format version {version} is not supported "
                              f"(this code reads version {FORMAT_VERSION})")
    try:
        doc = json.loads(metadata["checkpoint"])
        network = NetworkConfig.from_dict(doc["network"])
        preprocess = PreprocessConfig.from_dict(doc["preprocess"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad checkpoint description: {exc}") from exc
    if doc.get("tensor_sha256") != _tensor_digest(tensors):
        raise CheckpointError(f"{path}: weights are corrupt (SHA-256 of the tensors does not "
                              f"match the one recorded at save time)")
    ckpt = Checkpoint(network=network, preprocess=preprocess, state_dict=tensors,
                      training=doc.get("training", {}), metrics=doc.get("metrics", {}),
                      joint_names=tuple(doc.get("joint_names", ())),
                      created=doc.get("created", ""), format_version=int(version))
    validate(ckpt, str(path))
    check_compatible(ckpt, channels=channels, sample_rate_hz=sample_rate_hz,
                     channel_names=channel_names, where=str(path))
    return ckpt


def validate(ckpt: Checkpoint, where: str = "checkpoint") -> None:
    """Internal consistency: joint names, normalisation, weights vs. hyperparameters."""
    if tuple(ckpt.joint_names) != tuple(JOINT_NAMES):
        raise CheckpointError(f"{where}: joint names differ from hand_model.JOINT_NAMES")
    pre, net = ckpt.preprocess, ckpt.network
    if not pre.fitted:
        raise CheckpointError(f"{where}: normalisation statistics are missing")
    if len(pre.mean) != net.in_channels:
        raise CheckpointError(f"{where}: normalisation has {len(pre.mean)} channels, the network "
                              f"{net.in_channels}")
    if pre.channel_names and len(pre.channel_names) != net.in_channels:
        raise CheckpointError(f"{where}: {len(pre.channel_names)} channel names for "
                              f"{net.in_channels} channels")
    expected = EMGToPose(net).state_dict()
    missing = sorted(set(expected) - set(ckpt.state_dict))
    unexpected = sorted(set(ckpt.state_dict) - set(expected))
    shapes = sorted(k for k in set(expected) & set(ckpt.state_dict)
                    if tuple(expected[k].shape) != tuple(ckpt.state_dict[k].shape))
    if missing or unexpected or shapes:
        raise CheckpointError(f"{where}: weights do not match the hyperparameters: missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]}, shape mismatch "
                              f"{shapes[:5]}")
    bad = [k for k, v in ckpt.state_dict.items()
           if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{where}: non-finite weights in {bad[:5]}")


def check_compatible(ckpt: Checkpoint, *, channels: int | None = None,
                     sample_rate_hz: float | None = None,
                     channel_names: tuple[str, ...] | list[str] | None = None,
                     where: str = "checkpoint") -> None:
    """Raise CheckpointError if the model cannot run on the described EMG stream."""
    if channels is not None and channels != ckpt.in_channels:
        raise CheckpointError(f"{where}: channel mismatch: the model expects "
                              f"{ckpt.in_channels} EMG channels, the stream has {channels}")
    if sample_rate_hz is not None and abs(sample_rate_hz - ckpt.sample_rate_hz) > (
            1e-6 * ckpt.sample_rate_hz):
        raise CheckpointError(f"{where}: sample rate mismatch: the model expects "
                              f"{ckpt.sample_rate_hz:g} Hz, the stream has {sample_rate_hz:g} Hz")
    if channel_names is not None and ckpt.channel_names and (
            tuple(channel_names) != tuple(ckpt.channel_names)):
        if len(channel_names) != len(ckpt.channel_names):
            raise CheckpointError(f"{where}: channel mismatch: the model expects "
                                  f"{len(ckpt.channel_names)} channels, the stream has "
                                  f"{len(channel_names)}")
        raise CheckpointError(f"{where}: channel names mismatch: the model expects "
                              f"{list(ckpt.channel_names)}, the stream has {list(channel_names)}")
