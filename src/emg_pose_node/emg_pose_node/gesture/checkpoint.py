"""Gesture checkpoints: one format for every gesture model, loaded without executing code.

One safetensors file (``*.safetensors``, written with ``safetensors.numpy``): the tensors
are the model's parameters (LDA means, covariance,
weights, bias; a network's state dict), the string metadata one JSON document with

* ``format`` ``emg_gesture_checkpoint`` and ``format_version``; ``kind`` (``lda``,
  ``cnn_lstm``, ``lstm_fin``) and the network ``hyperparameters``;
* ``class_names`` (index order of the outputs), ``window`` and ``hop`` [samples];
* ``preprocess``: sample rate [Hz], channel names, filters and the per-channel mean/std of
  the training EMG (:class:`~emg_pose_node.preprocessing.PreprocessConfig`; networks take
  EMG normalised with it);
* ``features`` (:class:`~.features.FeatureSpec`) and ``feature_norm`` (mean/std of the
  feature vectors: LDA inputs, or the LSTM-FIN imitation targets);
* ``alignment`` (:class:`~.alignment.AlignmentConfig`: armband rotation search and the
  training ring profile), ``proportional`` (per class: low/high window mean MAV [V]);
* ``training`` (data, settings, history), ``metrics``, ``created``, and the SHA-256 of the
  tensor bytes.

:func:`load_gesture_checkpoint` refuses with :class:`~emg_pose_node.checkpoint.CheckpointError`
(naming the file and the problem) a file that is truncated or corrupt, of another format or
version (a pose checkpoint is named as such), inconsistent (weights vs. hyperparameters,
class counts, channel counts), or that does not fit the stream (channels, sample rate).
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

from ..checkpoint import FORMAT_NAME as POSE_FORMAT_NAME
from ..checkpoint import CheckpointError, _jsonable
from ..preprocessing import PreprocessConfig
from .alignment import AlignmentConfig
from .features import FeatureSpec

FORMAT_NAME = "emg_gesture_checkpoint"
FORMAT_VERSION = 1
MODEL_KINDS = ("lda", "cnn_lstm", "lstm_fin")
LDA_TENSORS = ("means", "covariance", "counts", "weights", "bias")


@dataclass
class GestureCheckpoint:
    """A gesture model with everything needed to run it (module docstring)."""

    kind: str
    class_names: tuple[str, ...]
    preprocess: PreprocessConfig
    window: int  # samples per decision window
    hop: int  # samples between decisions
    tensors: dict[str, np.ndarray]
    features: FeatureSpec | None = None
    feature_norm: dict | None = None  # {"mean": [...], "std": [...]}
    hyperparameters: dict = field(default_factory=dict)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    proportional: dict = field(default_factory=dict)  # {"low": [K], "high": [K]} [V]
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        if not self.created:
            self.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")

    @property
    def sample_rate_hz(self) -> float:
        return self.preprocess.sample_rate_hz

    @property
    def channel_names(self) -> tuple[str, ...]:
        return self.preprocess.channel_names

    @property
    def in_channels(self) -> int:
        return len(self.preprocess.mean)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def window_s(self) -> float:
        return self.window / self.sample_rate_hz

    @property
    def hop_s(self) -> float:
        return self.hop / self.sample_rate_hz

    @property
    def rest_index(self) -> int:
        """The class a rejected decision falls back to: "rest", else the first class."""
        return self.class_names.index("rest") if "rest" in self.class_names else 0

    def describe(self) -> str:
        extra = f", features {'+'.join(self.features.features)}" if self.kind == "lda" else ""
        return (f"{self.kind} gesture model: {self.num_classes} classes "
                f"({', '.join(self.class_names)}) from {self.in_channels} ch at "
                f"{self.sample_rate_hz:g} Hz, window {self.window_s * 1e3:.0f} ms, hop "
                f"{self.hop_s * 1e3:.0f} ms{extra}")

    def document(self) -> dict:
        return {
            "format": FORMAT_NAME, "format_version": self.format_version, "kind": self.kind,
            "class_names": list(self.class_names), "window": self.window, "hop": self.hop,
            "preprocess": self.preprocess.to_dict(),
            "features": self.features.to_dict() if self.features else None,
            "feature_norm": self.feature_norm, "hyperparameters": self.hyperparameters,
            "alignment": self.alignment.to_dict(), "proportional": self.proportional,
            "training": self.training, "metrics": self.metrics, "created": self.created,
        }


def tensor_digest(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, shape, dtype and bytes (sorted by name)."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        a = np.ascontiguousarray(tensors[key])
        h.update(f"{key}|{a.shape}|{a.dtype.str}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_gesture_checkpoint(ckpt: GestureCheckpoint, path: str | Path) -> Path:
    """Write atomically (temporary file + rename); returns the path."""
    from safetensors.numpy import save_file

    validate(ckpt)
    path = Path(path)
    tensors = {k: np.ascontiguousarray(v) for k, v in ckpt.tensors.items()}
    doc = dict(ckpt.document(), tensor_sha256=tensor_digest(tensors))
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


def load_gesture_checkpoint(path: str | Path, *, channels: int | None = None,
                            sample_rate_hz: float | None = None) -> GestureCheckpoint:
    """Load and validate; optional expectations of the EMG stream. Never executes code."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated "
                              f"safetensors file): {exc}") from exc
    fmt = metadata.get("format")
    if fmt == POSE_FORMAT_NAME:
        raise CheckpointError(f"{path}: a hand-pose model (format {fmt!r}), not a gesture "
                              "model: run it with emg_pose")
    if fmt != FORMAT_NAME:
        raise CheckpointError(f"{path}: not an emg_gesture checkpoint (format {fmt!r}, "
                              f"expected {FORMAT_NAME!r})")
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(f"{path}: gesture checkpoint format version {version} is not "
                              f"supported (this code reads version {FORMAT_VERSION})")
    try:
        doc = json.loads(metadata["checkpoint"])
        ckpt = GestureCheckpoint(
            kind=doc["kind"], class_names=tuple(doc["class_names"]),
            preprocess=PreprocessConfig.from_dict(doc["preprocess"]),
            window=int(doc["window"]), hop=int(doc["hop"]), tensors=tensors,
            features=FeatureSpec.from_dict(doc["features"]) if doc.get("features") else None,
            feature_norm=doc.get("feature_norm"), hyperparameters=doc.get("hyperparameters", {}),
            alignment=AlignmentConfig.from_dict(doc.get("alignment", {})),
            proportional=doc.get("proportional", {}), training=doc.get("training", {}),
            metrics=doc.get("metrics", {}), created=doc.get("created", ""),
            format_version=int(version))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad checkpoint description: {exc}") from exc
    if doc.get("tensor_sha256") != tensor_digest(tensors):
        raise CheckpointError(f"{path}: weights are corrupt (SHA-256 of the tensors does not "
                              "match the one recorded at save time)")
    validate(ckpt, str(path))
    if channels is not None and channels != ckpt.in_channels:
        raise CheckpointError(f"{path}: channel mismatch: the model expects "
                              f"{ckpt.in_channels} EMG channels, the stream has {channels}")
    if sample_rate_hz is not None and abs(sample_rate_hz - ckpt.sample_rate_hz) > (
            1e-6 * ckpt.sample_rate_hz):
        raise CheckpointError(f"{path}: sample rate mismatch: the model expects "
                              f"{ckpt.sample_rate_hz:g} Hz, the stream has "
                              f"{sample_rate_hz:g} Hz")
    return ckpt


def validate(ckpt: GestureCheckpoint, where: str = "gesture checkpoint") -> None:
    """Internal consistency; raises CheckpointError naming the problem."""
    def fail(message: str) -> None:
        raise CheckpointError(f"{where}: {message}")

    if ckpt.kind not in MODEL_KINDS:
        fail(f"unknown model kind {ckpt.kind!r}; known: {MODEL_KINDS}")
    names = ckpt.class_names
    if len(names) < 2 or len(set(names)) != len(names) or not all(names):
        fail(f"class names must be 2 or more distinct non-empty names, got {list(names)}")
    if ckpt.window < 3 or ckpt.hop < 1:
        fail(f"window ({ckpt.window}) must be >= 3 samples and hop ({ckpt.hop}) >= 1")
    pre = ckpt.preprocess
    if not pre.fitted:
        fail("the per-channel normalisation statistics are missing")
    c = ckpt.in_channels
    if pre.channel_names and len(pre.channel_names) != c:
        fail(f"{len(pre.channel_names)} channel names for {c} channels")
    if ckpt.alignment.max_shift > 0 and len(ckpt.alignment.reference) != c:
        fail(f"the ring profile has {len(ckpt.alignment.reference)} channels, the model {c}")
    for key in ("low", "high"):
        if key in ckpt.proportional and len(ckpt.proportional[key]) != len(names):
            fail(f"proportional {key} has {len(ckpt.proportional[key])} entries for "
                 f"{len(names)} classes")
    bad = [k for k, v in ckpt.tensors.items()
           if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.all(np.isfinite(v))]
    if bad:
        fail(f"non-finite weights in {bad[:5]}")
    if ckpt.kind == "lda":
        if ckpt.features is None or ckpt.feature_norm is None:
            fail("an LDA model needs its feature spec and feature normalisation")
        dim = len(ckpt.features.features) * c
        shapes = {"means": (len(names), dim), "covariance": (dim, dim),
                  "counts": (len(names),), "weights": (len(names), dim), "bias": (len(names),)}
        for key, shape in shapes.items():
            if key not in ckpt.tensors or tuple(ckpt.tensors[key].shape) != shape:
                got = tuple(ckpt.tensors[key].shape) if key in ckpt.tensors else "missing"
                fail(f"LDA tensor {key}: {got}, expected {shape} ({len(names)} classes, "
                     f"{dim} features)")
        for key in ("mean", "std"):
            if len(ckpt.feature_norm.get(key, ())) != dim:
                fail(f"feature normalisation {key} must have {dim} entries")
    else:
        from .networks import build, load_numpy

        try:
            load_numpy(build(ckpt.kind, c, len(names), ckpt.window, ckpt.hyperparameters),
                       ckpt.tensors)
        except ValueError as err:
            fail(str(err))


__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "GestureCheckpoint", "MODEL_KINDS",
           "load_gesture_checkpoint", "save_gesture_checkpoint", "tensor_digest", "validate"]
