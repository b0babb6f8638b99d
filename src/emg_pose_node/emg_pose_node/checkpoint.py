"""Checkpoints: everything needed to rebuild and run a model, loaded without executing code
and without torch.

One safetensors file (``*.safetensors``): the tensors are the model's weights and buffers
(numpy arrays here; :meth:`Checkpoint.build_model` makes the torch model) and, since the
graphs are exported at save time, the two ONNX graphs of the live streaming path
(``onnx.frames``, ``onnx.head``: uint8 tensors holding the serialised graphs, so the node
runs ONNX Runtime without importing torch); the string metadata holds one JSON document
with the format version, the network hyperparameters (:class:`architecture.NetworkConfig`),
the preprocessing settings with the normalisation statistics fitted on training data
(:class:`preprocessing.PreprocessConfig`: sample rate, decimation, filters, channel names),
the output convention and names, the joint names, a training-data summary, metrics, the
digest of the weights the graphs were exported from and a SHA-256 of all tensor bytes.
Checkpoints written before graphs were embedded load as before (the live node then exports
the graphs with torch, which is slow, and says so).

safetensors parses a length-prefixed JSON header and raw tensor bytes: there is no pickle
and nothing is executed. :func:`load_checkpoint` refuses, with :class:`CheckpointError`
naming the problem, files that are truncated, corrupt (checksum), of another format
version, absurd (sizes beyond :data:`architecture.LIMITS`, checked from the header before
any tensor is read), inconsistent (weights vs. hyperparameters, joint names, graphs of
other weights), or that do not match what the caller expects (channel count or names,
sample rate).
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

from emg_hand_core.hand_model import JOINT_NAMES

from .architecture import NetworkConfig, parameter_shapes
from .preprocessing import PreprocessConfig

FORMAT_NAME = "emg_pose_checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_EXTENSION = ".safetensors"
GRAPH_PREFIX = "onnx."  # tensor keys of the embedded ONNX graphs
GRAPH_NAMES = ("frames", "head")
MAX_GRAPH_BYTES = 256 * 2**20
MAX_DESCRIPTION_CHARS = 16 * 2**20
MAX_SAMPLE_BUFFER = 2**24  # window x decimation x channels: the node's sample buffer [values]

# safetensors dtype codes <-> numpy names; the digest uses torch's names (older files)
_DTYPES = {"F32": "float32", "F64": "float64", "F16": "float16", "I64": "int64",
           "I32": "int32", "U8": "uint8", "BOOL": "bool"}


class CheckpointError(ValueError):
    """A checkpoint was refused; the message names the file and the mismatch."""


@dataclass(frozen=True)
class StreamingGraphs:
    """Serialised ONNX graphs of the streaming path (:mod:`export`), and the digest of the
    weights they were exported from."""

    frames: bytes  # chunk (1, C, L) -> frames (1, T, F)
    head: bytes  # frames (1, num_frames, F) -> pose (1, out)
    weights_sha256: str
    opset: int


@dataclass
class Checkpoint:
    """A model with everything needed to run it (see module docstring)."""

    network: NetworkConfig
    preprocess: PreprocessConfig
    state_dict: dict[str, np.ndarray]
    training: dict = field(default_factory=dict)  # data summary, settings, history
    metrics: dict = field(default_factory=dict)
    joint_names: tuple[str, ...] = tuple(JOINT_NAMES)
    created: str = ""
    format_version: int = FORMAT_VERSION
    graphs: StreamingGraphs | None = None

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

    def weights_sha256(self) -> str:
        return tensor_digest(self.state_dict)

    def streaming_graphs(self) -> StreamingGraphs | None:
        """The embedded ONNX graphs if they were exported from these weights, else None."""
        g = self.graphs
        return g if g is not None and g.weights_sha256 == self.weights_sha256() else None

    # --- torch (imported only here) ---------------------------------------------------
    def build_model(self):
        """A fresh :class:`network.EMGToPose` with these weights, in eval mode (each call: an
        independent copy). Imports torch."""
        import torch

        from .network import EMGToPose

        model = EMGToPose(self.network)
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                               self.state_dict.items()})
        return model.eval()

    @classmethod
    def from_model(cls, model, preprocess: PreprocessConfig, training: dict | None = None,
                   metrics: dict | None = None) -> Checkpoint:
        """From a torch :class:`network.EMGToPose` (its weights are copied)."""
        state = {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
        return cls(network=model.config, preprocess=preprocess, state_dict=state,
                   training=dict(training or {}), metrics=dict(metrics or {}),
                   created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def describe(self) -> str:
        return (f"{self.output} x{len(self.output_names)} from {self.in_channels} ch at "
                f"{self.sample_rate_hz:g} Hz (model {self.model_rate_hz:g} Hz, window "
                f"{self.window} = {self.window_s:.3f} s, {self.network.frontend} frontend)")


def tensor_digest(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over names, shapes, dtypes and bytes (the same digest torch tensors gave)."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = np.asarray(tensors[key], order="C")  # (ascontiguousarray makes 0-d 1-d)
        h.update(key.encode())
        h.update(str(tuple(int(d) for d in t.shape)).encode())
        h.update(f"torch.{t.dtype.name}".encode())
        h.update(t.reshape(-1).view(np.uint8).tobytes())
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


def save_checkpoint(ckpt: Checkpoint, path: str | Path, *, embed_graphs: bool = True) -> Path:
    """Write atomically (temporary file + rename); returns the path.

    ``embed_graphs``: include the streaming ONNX graphs, exporting them first (with torch,
    a second or two) unless the checkpoint already carries graphs of these weights.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    graphs = ckpt.streaming_graphs() if embed_graphs else None
    if embed_graphs and graphs is None:
        from .export import streaming_graphs

        graphs = ckpt.graphs = streaming_graphs(ckpt)
    tensors = {k: np.asarray(v, order="C") for k, v in ckpt.state_dict.items()}
    doc = {
        "format": FORMAT_NAME,
        "format_version": ckpt.format_version,
        "network": ckpt.network.to_dict(),
        "preprocess": ckpt.preprocess.to_dict(),
        "joint_names": list(ckpt.joint_names),
        "training": ckpt.training,
        "metrics": ckpt.metrics,
        "created": ckpt.created,
    }
    if graphs is not None:
        tensors[GRAPH_PREFIX + "frames"] = np.frombuffer(graphs.frames, np.uint8)
        tensors[GRAPH_PREFIX + "head"] = np.frombuffer(graphs.head, np.uint8)
        doc["onnx"] = {"graphs": list(GRAPH_NAMES), "opset": graphs.opset,
                       "weights_sha256": graphs.weights_sha256}
    doc["tensor_sha256"] = tensor_digest(tensors)
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


def _refuse_constant(name: str):
    raise ValueError(f"non-finite number {name} in the description")


def _description(metadata: dict, where: str) -> tuple[dict, NetworkConfig, PreprocessConfig]:
    """The JSON document of a checkpoint's metadata, checked; CheckpointError otherwise."""
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{where}: not an emg_pose checkpoint (format "
                              f"{metadata.get('format')!r}, expected {FORMAT_NAME!r})")
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{where}: checkpoint format version {version} is not supported "
                              f"(this code reads version {FORMAT_VERSION})")
    raw = metadata.get("checkpoint")
    if not isinstance(raw, str) or len(raw) > MAX_DESCRIPTION_CHARS:
        raise CheckpointError(f"{where}: bad checkpoint description: missing or over "
                              f"{MAX_DESCRIPTION_CHARS} characters")
    try:
        doc = json.loads(raw, parse_constant=_refuse_constant)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        network = NetworkConfig.from_dict(doc["network"])
        preprocess = PreprocessConfig.from_dict(doc["preprocess"])
        for key, kind in (("training", dict), ("metrics", dict), ("joint_names", list),
                          ("created", str), ("onnx", dict)):
            if key in doc and not isinstance(doc[key], kind):
                raise ValueError(f"{key} must be a {kind.__name__}")
        if not all(isinstance(n, str) for n in doc.get("joint_names", ())):
            raise ValueError("joint_names must be strings")
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{where}: bad checkpoint description: "
                              f"{type(exc).__name__}: {exc}") from None
    check_sizes(network, preprocess, where)
    return doc, network, preprocess


def check_sizes(network: NetworkConfig, preprocess: PreprocessConfig,
                where: str = "checkpoint") -> None:
    """The live sample buffer a model needs (window x decimation x channels) is bounded."""
    values = network.window * preprocess.decimation * network.in_channels
    if values > MAX_SAMPLE_BUFFER:
        raise CheckpointError(f"{where}: a window of {network.window} x {preprocess.decimation} "
                              f"samples of {network.in_channels} channels ({values} values) "
                              f"exceeds {MAX_SAMPLE_BUFFER}")


def _check_layout(layout: dict[str, tuple[tuple[int, ...], str]], network: NetworkConfig,
                  where: str) -> None:
    """Tensor names, shapes and dtypes (from the header) against the hyperparameters."""
    expected = parameter_shapes(network)
    weights = {k: v for k, v in layout.items() if not k.startswith(GRAPH_PREFIX)}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(k for k in set(expected) & set(weights) if weights[k] != expected[k])
    if missing or unexpected or shapes:
        raise CheckpointError(f"{where}: weights do not match the hyperparameters: missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]}, shape or dtype "
                              f"mismatch {shapes[:5]}")
    for key, (shape, dtype) in layout.items():
        if key.startswith(GRAPH_PREFIX) and (
                key[len(GRAPH_PREFIX):] not in GRAPH_NAMES or dtype != "uint8"
                or len(shape) != 1 or shape[0] > MAX_GRAPH_BYTES):
            raise CheckpointError(f"{where}: unexpected embedded graph tensor {key} "
                                  f"{shape} {dtype}")


def load_checkpoint(path: str | Path, *, channels: int | None = None,
                    sample_rate_hz: float | None = None,
                    channel_names: tuple[str, ...] | list[str] | None = None) -> Checkpoint:
    """Load and validate a checkpoint; optional expectations of the EMG stream.

    Raises CheckpointError (a ValueError) naming the problem; never executes code, never
    imports torch, reads no tensor before the header is checked against the description.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(where, framework="np") as f:
            metadata = f.metadata() or {}
            doc, network, preprocess = _description(metadata, where)
            layout = {}
            for key in f.keys():
                piece = f.get_slice(key)
                layout[key] = (tuple(int(d) for d in piece.get_shape()),
                               _DTYPES.get(piece.get_dtype(), piece.get_dtype()))
            _check_layout(layout, network, where)
            tensors = {k: f.get_tensor(k) for k in layout}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated "
                              f"safetensors file): {exc}") from exc
    if doc.get("tensor_sha256") != tensor_digest(tensors):
        raise CheckpointError(f"{path}: weights are corrupt (SHA-256 of the tensors does not "
                              f"match the one recorded at save time)")
    graph_tensors = {k[len(GRAPH_PREFIX):]: tensors.pop(k) for k in list(tensors)
                     if k.startswith(GRAPH_PREFIX)}
    ckpt = Checkpoint(network=network, preprocess=preprocess, state_dict=tensors,
                      training=doc.get("training", {}), metrics=doc.get("metrics", {}),
                      joint_names=tuple(doc.get("joint_names", ())),
                      created=doc.get("created", ""), format_version=FORMAT_VERSION)
    if graph_tensors:
        info = doc.get("onnx", {})
        if set(graph_tensors) != set(GRAPH_NAMES) or info.get("weights_sha256") != \
                ckpt.weights_sha256() or not isinstance(info.get("opset"), int):
            raise CheckpointError(f"{path}: the embedded ONNX graphs are incomplete or were "
                                  "exported from other weights")
        ckpt.graphs = StreamingGraphs(graph_tensors["frames"].tobytes(),
                                      graph_tensors["head"].tobytes(),
                                      info["weights_sha256"], info["opset"])
    validate(ckpt, where)
    check_compatible(ckpt, channels=channels, sample_rate_hz=sample_rate_hz,
                     channel_names=channel_names, where=where)
    return ckpt


def validate(ckpt: Checkpoint, where: str = "checkpoint") -> None:
    """Internal consistency: joint names, normalisation, sizes, weights vs. hyperparameters,
    finite weights."""
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
    check_sizes(net, pre, where)
    _check_layout({k: (tuple(v.shape), np.asarray(v).dtype.name)
                   for k, v in ckpt.state_dict.items()}, net, where)
    bad = [k for k, v in ckpt.state_dict.items()
           if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v))]
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
    if sample_rate_hz is not None and not abs(sample_rate_hz - ckpt.sample_rate_hz) <= (
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
