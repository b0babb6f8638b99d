"""What a model is, without torch: hyperparameters, frame geometry, parameter shapes,
output names and the streaming frame cache (the live node imports only this side).

:class:`NetworkConfig` rebuilds an :class:`network.EMGToPose` (stored in every checkpoint)
and refuses absurd sizes (:data:`LIMITS`) before anything is allocated: a checkpoint is
data from a file. :func:`parameter_shapes` lists the tensors (name -> shape, dtype) that
the torch model's ``state_dict`` has for a config (tested equal), so a checkpoint's weights
are checked against its hyperparameters from the safetensors header alone.
:class:`FrameCache` is the streaming path over any frontend/head backend (ONNX Runtime
live, PyTorch offline).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field

import numpy as np

from emg_hand_core.hand_model import JOINT_NAMES, KEYPOINT_NAMES

OUTPUT_CONVENTIONS = ("joint_angles", "keypoints", "values")
FRONTENDS = ("conv", "log_power")

# Bounds on what a checkpoint may describe (far above any model here: the default has 8
# channels, window 148, widths <= 128, 0.26 M parameters). Checked before allocation.
LIMITS = {
    "in_channels": 256,
    "window": 20_000,  # model-rate samples
    "conv_stages": 8,
    "width": 4096,  # conv filters, LSTM hidden size, head width
    "kernel_size": 1024,
    "pool": 1024,
    "lstm_layers": 16,
    "outputs": 1024,
    "parameters": 50_000_000,
}

FLOAT32, INT64 = "float32", "int64"


def output_names_for(output: str, names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The names of the output vector's entries for an output convention."""
    if output == "joint_angles":
        return tuple(JOINT_NAMES)
    if output == "keypoints":
        return tuple(f"{k}_{a}" for k in KEYPOINT_NAMES for a in "xyz")
    if output == "values":
        if not names:
            raise ValueError("output 'values' needs output_names")
        return tuple(names)
    raise ValueError(f"output must be one of {OUTPUT_CONVENTIONS}, got {output!r}")


def _size(name: str, value, limit: int) -> int:
    """An integer in [1, limit] (bools, floats and strings refused), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 1 <= value <= limit:
        raise ValueError(f"{name}={value} is outside [1, {limit}]")
    return int(value)


@dataclass(frozen=True)
class NetworkConfig:
    """Hyperparameters that rebuild an :class:`network.EMGToPose` (stored in every
    checkpoint). Sizes outside :data:`LIMITS` raise ValueError."""

    in_channels: int = 8
    window: int = 200  # samples at the model rate; must be frame aligned (see frame_aligned)
    frontend: str = "conv"
    conv_channels: tuple[int, ...] = (64, 128)  # "log_power": (filters,)
    kernel_size: int = 5
    pool: int = 2
    lstm_hidden: int = 256
    lstm_layers: int = 2
    dropout: float = 0.3
    fc_hidden: int = 128
    output: str = "joint_angles"
    output_names: tuple[str, ...] = field(default=tuple(JOINT_NAMES))

    def __post_init__(self) -> None:
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {self.frontend!r}")
        if isinstance(self.conv_channels, (str, bytes)) or not hasattr(self.conv_channels,
                                                                       "__len__"):
            raise ValueError(f"conv_channels must be a list of sizes, got {self.conv_channels!r}")
        if not 1 <= len(self.conv_channels) <= LIMITS["conv_stages"]:
            raise ValueError(f"conv_channels needs 1 to {LIMITS['conv_stages']} entries, got "
                             f"{len(self.conv_channels)}")
        object.__setattr__(self, "conv_channels", tuple(
            _size("conv_channels", c, LIMITS["width"]) for c in self.conv_channels))
        if self.frontend == "log_power" and len(self.conv_channels) != 1:
            raise ValueError("frontend 'log_power' takes one conv_channels entry (filters)")
        for name, limit in (("in_channels", LIMITS["in_channels"]),
                            ("window", LIMITS["window"]), ("kernel_size", LIMITS["kernel_size"]),
                            ("pool", LIMITS["pool"]), ("lstm_hidden", LIMITS["width"]),
                            ("lstm_layers", LIMITS["lstm_layers"]),
                            ("fc_hidden", LIMITS["width"])):
            object.__setattr__(self, name, _size(name, getattr(self, name), limit))
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real)
                or not 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.output, str):
            raise ValueError(f"output must be one of {OUTPUT_CONVENTIONS}, got {self.output!r}")
        names = self.output_names
        if isinstance(names, (str, bytes)) or not hasattr(names, "__len__") or not all(
                isinstance(n, str) for n in names):
            raise ValueError("output_names must be a list of strings")
        if len(names) > LIMITS["outputs"]:
            raise ValueError(f"{len(names)} output names, at most {LIMITS['outputs']}")
        object.__setattr__(self, "output_names", output_names_for(self.output, tuple(names)))
        rf, stride = self.frame_receptive_field, self.frame_stride
        if self.window < rf or (self.window - rf) % stride:
            raise ValueError(
                f"window {self.window} is not frame aligned: need window >= {rf} and "
                f"(window - {rf}) % {stride} == 0; nearest: {self.frame_aligned(self.window)}")
        count = parameter_count(self)
        if count > LIMITS["parameters"]:
            raise ValueError(f"{count} parameters, at most {LIMITS['parameters']}")

    # --- frame geometry -----------------------------------------------------------
    @property
    def frame_receptive_field(self) -> int:
        """Input samples one frame depends on."""
        return frame_geometry(self.frontend, self.conv_channels, self.kernel_size, self.pool)[0]

    @property
    def frame_stride(self) -> int:
        """Input samples between consecutive frames."""
        return frame_geometry(self.frontend, self.conv_channels, self.kernel_size, self.pool)[1]

    @property
    def num_frames(self) -> int:
        return (self.window - self.frame_receptive_field) // self.frame_stride + 1

    @property
    def frame_width(self) -> int:
        """Features per frame (the frontend's last width)."""
        return self.conv_channels[-1]

    @property
    def receptive_field(self) -> int:
        """Samples (at the model rate) one prediction depends on: the window."""
        return self.window

    @property
    def left_context(self) -> int:
        """Past samples a prediction needs besides the newest one."""
        return self.window - 1

    @property
    def out_dim(self) -> int:
        return len(self.output_names)

    def frame_aligned(self, window: int) -> int:
        """The frame-aligned window nearest to ``window`` (not below one frame)."""
        return aligned_window(window, self.frontend, self.conv_channels, self.kernel_size,
                              self.pool)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_channels"] = list(self.conv_channels)
        d["output_names"] = list(self.output_names)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        if not isinstance(d, dict):
            raise ValueError(f"network hyperparameters must be a mapping, got {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(k) for k in set(d) - known)
        if unknown:
            raise ValueError(f"unknown network hyperparameters {unknown}")
        return cls(**d)


def frame_geometry(frontend: str, conv_channels: tuple[int, ...], kernel_size: int,
                   pool: int) -> tuple[int, int]:
    """(frame receptive field, frame stride) in input samples for a frontend."""
    stages = 1 if frontend == "log_power" else len(conv_channels)
    rf, jump = 1, 1
    for _ in range(stages):
        rf += (kernel_size - 1) * jump + (pool - 1) * jump
        jump *= pool
    return rf, jump


def aligned_window(window: int, frontend: str = "conv", conv_channels: tuple[int, ...] = (64, 128),
                   kernel_size: int = 5, pool: int = 2) -> int:
    """The frame-aligned window length nearest to ``window`` samples (at least one frame)."""
    rf, stride = frame_geometry(frontend, tuple(conv_channels), kernel_size, pool)
    return rf + max(0, round((window - rf) / stride)) * stride


def parameter_shapes(config: NetworkConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) of every tensor in ``EMGToPose(config).state_dict()``."""
    c = config
    shapes: dict[str, tuple[tuple[int, ...], str]] = {}

    def conv_bn(conv: str, norm: str, width_in: int, width_out: int) -> None:
        shapes[f"{conv}.weight"] = ((width_out, width_in, c.kernel_size), FLOAT32)
        shapes[f"{conv}.bias"] = ((width_out,), FLOAT32)
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{norm}.{k}"] = ((width_out,), FLOAT32)
        shapes[f"{norm}.num_batches_tracked"] = ((), INT64)

    if c.frontend == "log_power":
        conv_bn("frontend.0.conv", "frontend.0.norm", c.in_channels, c.conv_channels[0])
    else:
        width = c.in_channels
        for i, out in enumerate(c.conv_channels):  # Conv1d, BatchNorm1d, ReLU, MaxPool1d
            conv_bn(f"frontend.{4 * i}", f"frontend.{4 * i + 1}", width, out)
            width = out
    width, gates = c.frame_width, 4 * c.lstm_hidden
    for i in range(c.lstm_layers):
        shapes[f"lstm.{i}.weight_ih_l0"] = ((gates, width), FLOAT32)
        shapes[f"lstm.{i}.weight_hh_l0"] = ((gates, c.lstm_hidden), FLOAT32)
        shapes[f"lstm.{i}.bias_ih_l0"] = ((gates,), FLOAT32)
        shapes[f"lstm.{i}.bias_hh_l0"] = ((gates,), FLOAT32)
        width = c.lstm_hidden
    shapes["head.0.weight"] = ((c.fc_hidden, c.lstm_hidden), FLOAT32)
    shapes["head.0.bias"] = ((c.fc_hidden,), FLOAT32)
    shapes["head.3.weight"] = ((c.out_dim, c.fc_hidden), FLOAT32)
    shapes["head.3.bias"] = ((c.out_dim,), FLOAT32)
    shapes["out_mean"] = ((c.out_dim,), FLOAT32)
    shapes["out_scale"] = ((c.out_dim,), FLOAT32)
    return shapes


def parameter_count(config: NetworkConfig) -> int:
    """Numbers in the state dict (parameters and buffers)."""
    return sum(math.prod(shape) for shape, _ in parameter_shapes(config).values())


class FrameCache:
    """Streaming over frames: computes only the frames new samples complete.

    ``frames_fn(chunk (C, L)) -> (T, F)`` is the frontend on a chunk (T = (L - rf) //
    stride + 1); ``head_fn(frames (num_frames, F)) -> (out,)`` is the LSTM + head on one
    window of frames. Both may be any backend (PyTorch, ONNX Runtime). Frames are on the
    stream's grid (frame k ends at sample rf - 1 + k * stride), which is also the grid of
    any frame-aligned window ending on it, so a streamed output equals the full-window
    output for that window.
    """

    def __init__(self, config: NetworkConfig, frames_fn, head_fn) -> None:
        self.config = config
        self.frames_fn, self.head_fn = frames_fn, head_fn
        self.reset()

    def reset(self) -> None:
        c = self.config
        self._pending = np.zeros((c.in_channels, 0), np.float32)  # samples not yet in a frame
        self._frames: np.ndarray | None = None  # last num_frames frames (T, F)
        self._seen = 0  # model-rate samples since reset

    def push(self, x: np.ndarray) -> tuple[np.ndarray | None, int]:
        """New samples (C, n) -> (output of the newest complete window or None, its last
        sample's index since reset or -1)."""
        c = self.config
        if x.ndim != 2 or x.shape[0] != c.in_channels:
            raise ValueError(f"expected samples of shape ({c.in_channels}, n), got {x.shape}")
        rf, stride = c.frame_receptive_field, c.frame_stride
        buf = np.concatenate([self._pending, x], axis=1) if self._pending.shape[1] else x
        self._seen += x.shape[1]
        new = 0 if buf.shape[1] < rf else (buf.shape[1] - rf) // stride + 1
        if new == 0:
            self._pending = buf
            return None, -1
        used = rf + (new - 1) * stride
        skip = max(0, new - c.num_frames)  # frames that would fall out of the window at once
        frames = self.frames_fn(np.ascontiguousarray(buf[:, skip * stride:used]))
        self._pending = buf[:, new * stride:]
        if self._frames is None or skip:
            cached = frames
        else:
            cached = np.concatenate([self._frames, frames])
        self._frames = cached[-c.num_frames:]
        if self._frames.shape[0] < c.num_frames:
            return None, -1
        last_index = self._seen - 1 - self._pending.shape[1] + (rf - stride)
        return self.head_fn(np.ascontiguousarray(self._frames)), last_index
