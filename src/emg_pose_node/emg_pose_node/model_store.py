"""The live node's models: where a name points, a guarded load, and saving. No rclpy, no torch
(unless a checkpoint without embedded graphs needs them exported, or the torch backend).

* :meth:`ModelStore.named_path`: a plain model name (:mod:`model_names`) in ``models_dir``,
  else among the shipped models; ``default`` is always the shipped one.
* :meth:`ModelStore.resolve`: the ``model`` parameter: ``default``, a plain name or a path.
* :meth:`ModelStore.load` / :meth:`ModelStore.build`: checkpoint -> :class:`LoadedModel`
  (checkpoint + :class:`streaming.StreamingPredictor`). Anything that goes wrong, including
  errors no checkpoint check anticipated (a MemoryError, an ONNX Runtime failure), comes out
  as :class:`ModelLoadError` with the reason, so a bad file never takes the node down.
* :meth:`ModelStore.save`: an atomic write into ``models_dir`` (never overwrites unless
  asked).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CHECKPOINT_EXTENSION, Checkpoint, load_checkpoint, save_checkpoint
from .model_names import model_path, validate_model_name
from .streaming import StreamingPredictor

DEFAULT_MODEL = "default"
POSE_OUTPUTS = ("joint_angles", "keypoints")


def shipped_models_dir() -> Path:
    """The models installed with the package (the source tree's when not installed)."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:  # pragma: no cover - ament_index_python is always there with ROS
        return Path(__file__).resolve().parents[1] / "models"
    try:
        return Path(get_package_share_directory("emg_pose_node")) / "models"
    except PackageNotFoundError:  # running from the source tree
        return Path(__file__).resolve().parents[1] / "models"


class ModelLoadError(Exception):
    """A model could not be loaded or built; the message says why (the running model, if
    any, is unaffected)."""


@dataclass
class LoadedModel:
    """A checkpoint, its predictor and where it came from."""

    checkpoint: Checkpoint
    predictor: StreamingPredictor
    name: str
    path: str


class ModelStore:
    """Model names, guarded loads and saves for the live node (see module docstring).

    ``log(text)``: told when a load was slow for a reason the user can fix (an older
    checkpoint whose ONNX graphs had to be exported with torch).
    """

    def __init__(self, models_dir: str | Path, *, backend: str = "onnx",
                 threads: int | None = 1, shipped_dir: str | Path | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.models_dir = Path(models_dir).expanduser()
        self.shipped_dir = Path(shipped_dir) if shipped_dir is not None else shipped_models_dir()
        self.backend = backend
        self.threads = threads
        self._log = log or (lambda _text: None)
        if backend == "torch" and threads:
            import torch  # the torch backend's threads are torch's global setting

            torch.set_num_threads(threads)

    # --- names ------------------------------------------------------------------------
    def named_path(self, name: str) -> Path:
        """A plain model name: models_dir first, then the shipped models ('default' is always
        the shipped one). Raises ValueError for anything but a plain name."""
        user = model_path(self.models_dir, name, CHECKPOINT_EXTENSION)
        if name != DEFAULT_MODEL and user.exists():
            return user
        return model_path(self.shipped_dir, name, CHECKPOINT_EXTENSION)

    def resolve(self, spec: str) -> Path:
        """The ``model`` parameter: 'default', a plain name or a checkpoint path."""
        if spec == DEFAULT_MODEL or ("/" not in spec and not spec.endswith(CHECKPOINT_EXTENSION)
                                    and validate_model_name(spec)):
            return self.named_path(spec)
        return Path(spec).expanduser()

    # --- load -------------------------------------------------------------------------
    def load(self, path: str | Path, name: str, *, channels: int | None = None,
             sample_rate_hz: float | None = None) -> LoadedModel:
        """Load a checkpoint file and build its predictor; :class:`ModelLoadError` only.

        ``channels`` / ``sample_rate_hz``: the running EMG stream, if known (a model for
        another stream is refused)."""
        try:
            checkpoint = load_checkpoint(path, channels=channels, sample_rate_hz=sample_rate_hz)
        except Exception as err:  # a bad file must never take the node down
            raise ModelLoadError(_reason(err)) from err
        return self.build(checkpoint, name, str(path))

    def build(self, checkpoint: Checkpoint, name: str, path: str) -> LoadedModel:
        """A predictor for an in-memory checkpoint; :class:`ModelLoadError` only."""
        try:
            if checkpoint.output not in POSE_OUTPUTS:
                raise ModelLoadError(f"{path}: the model outputs {checkpoint.output} "
                                     f"({', '.join(checkpoint.output_names)}), not a hand pose")
            t0 = time.monotonic()
            predictor = StreamingPredictor(checkpoint, backend=self.backend,
                                           threads=self.threads,
                                           kinematics=checkpoint.output == "keypoints",
                                           align_to_chunks=True)
        except ModelLoadError:
            raise
        except Exception as err:
            raise ModelLoadError(_reason(err)) from err
        if predictor.exported_graphs:
            self._log(f"{path} carries no ONNX graphs (saved by an older version): exported "
                      f"them with torch, which took {time.monotonic() - t0:.1f} s; save the "
                      "model again (~/save_model) to load it fast")
        return LoadedModel(checkpoint, predictor, name, path)

    # --- save -------------------------------------------------------------------------
    def save(self, checkpoint: Checkpoint, name: str, *, overwrite: bool = True) -> Path:
        """Write ``checkpoint`` as plain ``name`` in models_dir (atomic). Raises ValueError
        (bad name, exists and not ``overwrite``) or OSError."""
        path = model_path(self.models_dir, name, CHECKPOINT_EXTENSION)
        if path.exists() and not overwrite:
            raise ValueError(f"{path.name} exists in {path.parent}; set overwrite")
        return save_checkpoint(checkpoint, path)


def _reason(err: BaseException) -> str:
    if isinstance(err, (ValueError, OSError, ModelLoadError)):
        return str(err)
    return f"{type(err).__name__}: {err}"
