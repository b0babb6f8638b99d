"""Training and fine-tuning: one optimisation loop (:func:`fit`) behind both.

* :func:`train` builds preprocessing (normalisation fitted on the training split only),
  the network and windows from recordings, runs :func:`fit` with early stopping on the
  validation split, ReduceLROnPlateau and gradient clipping, and returns a
  :class:`TrainResult` whose checkpoint holds everything to rebuild the model.
* :func:`finetune` adapts a checkpoint to new calibration data in two stages, the network
  frozen: first an input adapter (a channel-mixing matrix in front of the first
  convolution, trained through the frozen network, then folded into its weights: it undoes
  an armband rotation or gain change), then the head (optionally the last LSTM layer) on
  backbone features computed once. The fine-tuned model is
  accepted only if it beats the old one on the held-out end of the calibration data.
  It holds no global state (no global seeds or thread settings; a private RNG), never
  modifies the model it starts from, and can run on a background thread while another
  thread runs inference on the old model.

No rclpy here; the live node calls :func:`finetune` and the CLI calls :func:`train`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emg_hand_core.hand_model import NUM_JOINTS, forward_kinematics
from emg_hand_core.recordings import DataError, Recording

from .checkpoint import Checkpoint, check_compatible
from .network import EMGToPose, NetworkConfig, aligned_window, output_names_for
from .preprocessing import PreprocessConfig, fit_normalisation
from .torch_kinematics import forward_kinematics_torch
from .windows import Prepared, prepare, segment, window_ends

ProgressCallback = Callable[[int, int, float], None]  # (epoch, epochs_total, train loss)
StopCallback = Callable[[], bool]


# --- settings ----------------------------------------------------------------------


@dataclass
class TrainSettings:
    """Everything :func:`train` needs besides data (CLI flags map 1:1 onto these)."""

    # targets
    output: str = "joint_angles"  # "joint_angles" | "keypoints" | "values"
    value_names: tuple[str, ...] = ()  # for output "values"
    # data layout
    window_s: float = 0.5
    hop_s: float = 0.02  # between training windows
    eval_hop_s: float = 0.02  # between validation / test windows
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # preprocessing
    model_rate_hz: float | None = None  # None: the recording's rate (no decimation)
    highpass_hz: float | None = None
    notch_hz: float | None = None
    lowpass_hz: float | None = None
    rectify: bool = False
    envelope_hz: float | None = None
    # network: without a preset, a small, strongly regularised model for minutes of data
    # (measured better on held-out files than the log_power preset's widths: README,
    # "Across sessions")
    frontend: str = "log_power"
    conv_channels: tuple[int, ...] = (16,)
    kernel_size: int = 9
    pool: int = 8
    lstm_hidden: int = 32
    lstm_layers: int = 1
    dropout: float = 0.5
    fc_hidden: int = 32
    # optimisation
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    early_stop_patience: int = 6
    lr_patience: int = 2
    lr_factor: float = 0.5
    min_learning_rate: float = 1e-5
    adapt_norm_s: float | None = None  # adaptive normalisation (preprocessing.py) [s]
    adapt_norm_max_s: float = 120.0  # its longest memory [s]
    gain_augment: float = 0.0  # std of a random per-channel log-gain per training window
    amplitude_augment: float = 0.0  # std of a random log-gain of all channels per window
    noise_augment: float = 0.0  # std of added noise, in normalised units
    rotation_augment: int = 0  # roll the channels by a random -k..k per window (a ring)
    fk_loss_weight: float = 0.0  # joint_angles: add keypoint MSE [cm^2] through FK
    average_last: int = 0  # average the weights of the best epoch and up to N-1 before it
    seed: int = 0
    threads: int | None = None  # torch intra-op threads (None: leave as is)
    show_progress: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> TrainSettings:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}")
        d = dict(d)
        for key in ("value_names", "conv_channels"):
            if key in d and d[key] is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    # The seed design: Conv(64,k5)+BN+ReLU+MaxPool2, Conv(128,k5)+..., LSTM 256 x 2.
    "seed": dict(frontend="conv", conv_channels=(64, 128), kernel_size=5, pool=2,
                 lstm_hidden=256, lstm_layers=2, dropout=0.3, fc_hidden=128),
    # Log band power of learnt spatial filters + a small LSTM (architecture only; the
    # defaults before the cross-session measurements).
    "log_power": dict(frontend="log_power", conv_channels=(32,), kernel_size=9, pool=8,
                      lstm_hidden=64, lstm_layers=1, dropout=0.3, fc_hidden=64,
                      weight_decay=1e-2),
    # Five finger values from 10 forearm channels at 125 Hz (eeg_emg_hands, the real-data
    # result in the README): 64 learnt spatial filters, 128 ms frames, 1 s window.
    "fingers_125hz": dict(output="values", frontend="log_power", conv_channels=(64,),
                          kernel_size=9, pool=16, lstm_hidden=64, lstm_layers=1, dropout=0.3,
                          fc_hidden=64, window_s=1.0, hop_s=0.016, eval_hop_s=0.016,
                          val_fraction=0.12, test_fraction=0.2, epochs=15,
                          early_stop_patience=6, batch_size=64, learning_rate=1e-3,
                          weight_decay=1e-2, seed=0),
    # The shipped default model: simulated 8-channel armband at 500 Hz, 20 joint angles.
    # One LSTM step per 5 samples (10 ms) over a 0.3 s window (28 frames); ~0.26 M params.
    "default": dict(output="joint_angles", frontend="log_power", conv_channels=(64,),
                    kernel_size=9, pool=5, lstm_hidden=128, lstm_layers=2, dropout=0.2,
                    fc_hidden=128, window_s=0.3, hop_s=0.02, eval_hop_s=0.04, val_fraction=0.1,
                    test_fraction=0.1, epochs=30, early_stop_patience=6, batch_size=64,
                    learning_rate=1e-3, weight_decay=1e-2, seed=0),
}


@dataclass
class FinetuneSettings:
    """Settings of :func:`finetune` (the Calibrate action's fields map onto these)."""

    epochs: int = 40  # head stage
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    batch_size: int = 128
    unfreeze_last_lstm: bool = False
    # Input-adapter stage (0 epochs = off): a C x C channel-mixing matrix, initialised to
    # identity, trained through the frozen network before the head, then folded into the
    # first convolution. It undoes an armband rotation / gain change (a new wearer or a
    # re-donned armband), which a head alone cannot.
    adapter_epochs: int = 10
    adapter_learning_rate: float = 3e-2
    adapter_weight_decay: float = 1e-4  # pulls the mixing towards identity
    adapter_hop_s: float = 0.1
    adapter_batch_size: int = 64
    validation_fraction: float = 0.25  # chronological end held out for the accept decision
    hop_s: float = 0.04  # between calibration windows (rounded to the frame stride)
    min_improvement: float = 0.0  # relative: accept if after < before * (1 - this)
    grad_clip: float = 1.0
    seed: int = 0


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float | None
    learning_rate: float
    seconds: float


@dataclass
class FitResult:
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool
    cancelled: bool


@dataclass
class FitState:
    """:func:`fit`'s loop after an epoch: what a resumed run continues from (plain data:
    tensors, numbers, strings, lists and dicts, so it loads with weights-only loading)."""

    epoch: int  # epochs done
    model: dict  # state_module.state_dict()
    optimizer: dict
    scheduler: dict
    best_loss: float
    best_epoch: int
    best_state: dict
    recent: list  # the state dicts averaged by average_last
    since_best: int
    history: list  # EpochRecord fields as dicts
    stopped_early: bool = False
    scaler: dict | None = None  # the float16 gradient scaler's state

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> FitState:
        return cls(**d)


@dataclass
class FitRuntime:
    """Where and how :func:`fit` runs; the defaults are one process on the CPU in float32.

    device: batches are moved there (the model must be there already). autocast_dtype:
    mixed precision (torch.bfloat16, or torch.float16 with a gradient scaler; on CUDA).
    reduce(total, count) -> sums over all processes (train and validation losses, so that
    every process takes the same scheduler and early-stopping decisions). epoch_seed: at
    the start of every epoch the global torch RNG (dropout) and ``generator`` (augment) are
    seeded from (epoch_seed, epoch), so a run resumed at an epoch boundary continues
    exactly. resume: the state to continue from; epoch_end_cb(state) after every epoch
    (to save it).
    """

    device: torch.device | str | None = None
    autocast_dtype: torch.dtype | None = None
    reduce: Callable[[float, int], tuple[float, int]] | None = None
    epoch_seed: int | None = None
    resume: FitState | None = None
    epoch_end_cb: Callable[[FitState], None] | None = None


@dataclass
class TrainResult:
    checkpoint: Checkpoint
    history: list[EpochRecord]
    split_arrays: dict  # split -> {"pred", "true", "source", "end"} for reports
    seconds: float


@dataclass
class FinetuneResult:
    """Outcome of :func:`finetune`. ``checkpoint`` is the one to run next: the fine-tuned
    model if ``accepted``, else the unchanged original."""

    checkpoint: Checkpoint
    accepted: bool
    error_before: float  # mean absolute error on held-out calibration windows, output units
    error_after: float
    epochs_run: int
    seconds_used: float  # labelled calibration data used [s]
    train_windows: int
    heldout_windows: int
    cancelled: bool
    seconds: float  # wall time
    history: list[EpochRecord] = field(default_factory=list)
    message: str = ""

    @property
    def error_before_rad(self) -> float:
        return self.error_before

    @property
    def error_after_rad(self) -> float:
        return self.error_after

    @property
    def model(self) -> EMGToPose:
        return self.checkpoint.build_model()


# --- datasets ------------------------------------------------------------------------


class WindowSet:
    """Windows (B, C, W) gathered on the fly from one concatenated EMG tensor."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, ends: np.ndarray, window: int) -> None:
        self.x, self.y, self.window = x, y, window  # x (M, C), y (M, out)
        self.ends = torch.as_tensor(ends, dtype=torch.long)
        self._offsets = torch.arange(window - 1, -1, -1)

    def __len__(self) -> int:
        return len(self.ends)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ends = self.ends[idx]
        rows = ends[:, None] - self._offsets[None]  # (B, W)
        return self.x[rows].transpose(1, 2), self.y[ends]


class TensorSet:
    """Precomputed inputs (e.g. frozen-backbone features) with targets."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[idx], self.targets[idx]


def output_loss(output: str, fk_weight: float = 0.0) -> Callable:
    """Loss of a convention: MSE in output units (rad^2 for joint angles, cm^2 for
    keypoints, value units^2), plus ``fk_weight`` x keypoint MSE [cm^2] for joint angles."""
    scale = 1e4 if output == "keypoints" else 1.0  # m^2 -> cm^2

    def loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        value = scale * torch.mean((pred - true) ** 2)
        if fk_weight > 0.0 and output == "joint_angles":
            kp = forward_kinematics_torch(pred) - forward_kinematics_torch(true)
            value = value + fk_weight * 1e4 * torch.mean(kp ** 2)
        return value

    return loss


def warm_up() -> None:
    """Pay torch's one-time lazy imports now (the first optimizer imports torch._dynamo:
    1-10 s on this machine), e.g. at node start-up, instead of in the first fine-tune."""
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-3)
    param.grad = torch.zeros(1)
    opt.step()


# --- the one optimisation loop -----------------------------------------------------


def fit(forward: Callable[[torch.Tensor], torch.Tensor], params: Sequence[nn.Parameter],
        train_set, val_set, loss_fn: Callable, *, epochs: int, batch_size: int,
        learning_rate: float, weight_decay: float, grad_clip: float,
        modules_to_train: Sequence[nn.Module], state_module: nn.Module,
        early_stop_patience: int = 0, lr_patience: int = 2, lr_factor: float = 0.5,
        min_learning_rate: float = 1e-5, average_last: int = 0,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
        generator: torch.Generator | None = None, progress_cb: ProgressCallback | None = None,
        should_stop: StopCallback | None = None, show_progress: bool = False,
        desc: str = "train", runtime: FitRuntime | None = None) -> FitResult:
    """Minimise ``loss_fn(forward(inputs), targets)`` over ``params`` with AdamW.

    Per epoch: shuffled mini-batches (private ``generator``), gradient clipping, then the
    validation loss (if ``val_set``) drives ReduceLROnPlateau and early stopping; the best
    epoch's state of ``state_module`` is restored at the end (optionally the average of
    the last ``average_last`` epochs' weights up to the best). Without a validation set
    the train loss drives the scheduler and the last epoch is kept. ``modules_to_train``
    are put in train mode (the rest of the model stays as the caller left it).

    ``train_set`` has ``len`` and ``batch(indices)``, or ``epoch_batches(epoch)`` (an
    iterable of (inputs, targets) or (inputs, targets, loss weight): a data loader over
    windows on disk, one process's part of a global batch); ``val_set`` the same, or
    ``ordered_batches(batch_size)``. ``runtime``: device, mixed precision, several
    processes, resuming (:class:`FitRuntime`).
    """
    from tqdm import tqdm

    rt = runtime or FitRuntime()
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(list(params), lr=learning_rate, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=lr_factor,
                                                       patience=lr_patience,
                                                       min_lr=min_learning_rate)
    precision = _Precision(rt.device, rt.autocast_dtype)
    history: list[EpochRecord] = []
    best = (math.inf, -1, copy.deepcopy(state_module.state_dict()))
    recent: list[dict] = []
    since_best, cancelled, stopped = 0, False, False
    start = 0
    if rt.resume is not None:
        r = rt.resume
        state_module.load_state_dict(r.model)
        opt.load_state_dict(r.optimizer)
        sched.load_state_dict(r.scheduler)
        precision.load_state_dict(r.scaler)
        history = [EpochRecord(**h) for h in r.history]
        best, recent = (r.best_loss, r.best_epoch, r.best_state), list(r.recent)
        since_best, stopped, start = r.since_best, r.stopped_early, r.epoch
    # Several processes validate shards of the validation set (an empty one too).
    has_val = val_set is not None and (rt.reduce is not None or len(val_set) > 0)
    bar = tqdm(range(start, start if stopped else epochs), desc=desc, unit="epoch",
               disable=not show_progress, leave=True, initial=start, total=epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        if rt.epoch_seed is not None:
            seed = (rt.epoch_seed * 1_000_003 + epoch) % (2 ** 63)
            torch.manual_seed(seed)
            gen.manual_seed(seed)
        for m in modules_to_train:
            m.train()
        total, count = 0.0, 0
        batches = (train_set.epoch_batches(epoch) if hasattr(train_set, "epoch_batches")
                   else _shuffled_batches(train_set, batch_size, gen))
        for batch in batches:
            if should_stop is not None and should_stop():
                cancelled = True
                break
            inputs, targets = _to_device(rt.device, batch[0], batch[1])
            if augment is not None:
                inputs = augment(inputs, gen)
            with precision.autocast():
                loss = loss_fn(forward(inputs), targets)
            opt.zero_grad(set_to_none=True)
            weight = batch[2] if len(batch) > 2 else 1.0
            precision.step(loss if weight == 1.0 else loss * weight, opt, params, grad_clip)
            total += float(loss.detach()) * len(targets)
            count += len(targets)
        for m in modules_to_train:
            m.eval()
        if cancelled:
            break
        if rt.reduce is not None:
            total, count = rt.reduce(total, count)
        train_loss = total / max(count, 1)
        val_loss = (evaluate_loss(forward, val_set, loss_fn, batch_size * 4, reduce=rt.reduce,
                                  device=rt.device) if has_val else None)
        monitored = val_loss if val_loss is not None else train_loss
        sched.step(monitored)
        lr = opt.param_groups[0]["lr"]
        history.append(EpochRecord(epoch + 1, train_loss, val_loss, lr,
                                   time.perf_counter() - t0))
        if average_last > 1:
            recent = (recent + [copy.deepcopy(state_module.state_dict())])[-average_last:]
        if val_loss is None or monitored < best[0]:
            snapshot = (_average_states(recent) if average_last > 1 and val_loss is not None
                        else copy.deepcopy(state_module.state_dict()))
            best = (monitored, epoch + 1, snapshot)
            since_best = 0
        else:
            since_best += 1
        bar.set_postfix(train=f"{train_loss:.4g}",
                        val="-" if val_loss is None else f"{val_loss:.4g}", lr=f"{lr:.2g}")
        if progress_cb is not None:
            progress_cb(epoch + 1, epochs, train_loss)
        if early_stop_patience and val_loss is not None and since_best >= early_stop_patience:
            stopped = True
        if rt.epoch_end_cb is not None:
            rt.epoch_end_cb(FitState(
                epoch + 1, state_module.state_dict(), opt.state_dict(), sched.state_dict(),
                best[0], best[1], best[2], recent, since_best,
                [asdict(h) for h in history], stopped, precision.state_dict()))
        if stopped:
            break
    bar.close()
    if best[1] > 0:
        state_module.load_state_dict(best[2])
    return FitResult(history, best[1], stopped, cancelled)


def _average_states(states: list[dict]) -> dict:
    out = {}
    for key, value in states[-1].items():
        if value.is_floating_point():
            out[key] = sum(s[key] for s in states) / len(states)
        else:
            out[key] = value.clone()
    return out


def _shuffled_batches(dataset, batch_size: int, gen: torch.Generator):
    order = torch.randperm(len(dataset), generator=gen)
    for i in range(0, len(order), batch_size):
        yield dataset.batch(order[i:i + batch_size])


def _ordered_batches(dataset, batch_size: int):
    if hasattr(dataset, "ordered_batches"):
        yield from dataset.ordered_batches(batch_size)
        return
    for i in range(0, len(dataset), batch_size):
        yield dataset.batch(torch.arange(i, min(i + batch_size, len(dataset))))


def _to_device(device, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if device is None:
        return tensors
    return tuple(t.to(device, non_blocking=True) for t in tensors)


class _Precision:
    """Autocast and, for float16, a gradient scaler around the optimiser step (float32:
    plain backward, clipping, step)."""

    def __init__(self, device, dtype: torch.dtype | None) -> None:
        self.device_type = torch.device(device).type if device is not None else "cpu"
        self.dtype = dtype
        self.scaler = (torch.amp.GradScaler(self.device_type) if dtype == torch.float16
                       else None)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, opt, params, grad_clip: float) -> None:
        if self.scaler is None:
            loss.backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(opt)
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(params, grad_clip)
        self.scaler.step(opt)
        self.scaler.update()

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


@torch.no_grad()
def evaluate_loss(forward, dataset, loss_fn, batch_size: int = 256, *, reduce=None,
                  device=None) -> float:
    """Mean loss over a dataset (``reduce``: summed over processes first)."""
    total, count = 0.0, 0
    for inputs, targets in _ordered_batches(dataset, batch_size):
        inputs, targets = _to_device(device, inputs, targets)
        total += float(loss_fn(forward(inputs), targets)) * len(targets)
        count += len(targets)
    if reduce is not None:
        total, count = reduce(total, count)
    return total / max(count, 1)


@torch.no_grad()
def predict_set(forward, dataset, batch_size: int = 512,
                device=None) -> tuple[np.ndarray, np.ndarray]:
    preds, trues = [], []
    for inputs, targets in _ordered_batches(dataset, batch_size):
        preds.append(forward(_to_device(device, inputs)[0]).float().cpu())
        trues.append(targets)
    if not preds:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return torch.cat(preds).numpy(), torch.cat(trues).numpy()


# --- training from recordings --------------------------------------------------------


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_preprocess(settings: TrainSettings, rec: Recording) -> PreprocessConfig:
    rate = rec.sample_rate_hz
    decimation = 1
    if settings.model_rate_hz:
        decimation = rate / settings.model_rate_hz
        if abs(decimation - round(decimation)) > 1e-3 or round(decimation) < 1:
            raise DataError(f"model rate {settings.model_rate_hz} Hz must divide the recording "
                            f"rate {rate:g} Hz by an integer (or resample the recording)")
        decimation = int(round(decimation))
    return PreprocessConfig(sample_rate_hz=rate, decimation=decimation,
                            highpass_hz=settings.highpass_hz, notch_hz=settings.notch_hz,
                            lowpass_hz=settings.lowpass_hz, rectify=settings.rectify,
                            envelope_hz=settings.envelope_hz, channel_names=rec.channel_names,
                            adapt_s=settings.adapt_norm_s,
                            adapt_max_s=settings.adapt_norm_max_s)


def build_network_config(settings: TrainSettings, in_channels: int, model_rate_hz: float,
                         out_names: tuple[str, ...]) -> NetworkConfig:
    kw = dict(frontend=settings.frontend, conv_channels=tuple(settings.conv_channels),
              kernel_size=settings.kernel_size, pool=settings.pool)
    window = aligned_window(int(round(settings.window_s * model_rate_hz)), **kw)
    return NetworkConfig(in_channels=in_channels, window=window, lstm_hidden=settings.lstm_hidden,
                         lstm_layers=settings.lstm_layers, dropout=settings.dropout,
                         fc_hidden=settings.fc_hidden, output=settings.output,
                         output_names=out_names, **kw)


@dataclass
class PreparedData:
    """Recordings at the model rate, normalised, with window ends per split."""

    preprocess: PreprocessConfig  # fitted
    network: NetworkConfig
    x: torch.Tensor  # (M_total, C) normalised, recordings concatenated
    y: torch.Tensor  # (M_total, out)
    ends: dict  # split -> np.ndarray of end indices into x
    sources: dict  # split -> np.ndarray of recording numbers per window
    recordings: list[Prepared]


GESTURE_TRAIN_COMMAND = "emg_gesture_train"  # trains a gesture classifier on gesture labels
_POSE_LABELS = {"joint_angles": "joint angles", "keypoints": "keypoints or joint angles",
                "values": "named values"}


def pose_output_for(rec: Recording, output: str | None = None) -> str:
    """The output convention to train a pose model on ``rec``: ``output`` when its labels are
    there; None: the first of joint angles, keypoints, named values the recording has.

    Otherwise a DataError saying what the recording holds and which command trains on it
    (gesture labels: ``emg_gesture_train``)."""
    has = {"joint_angles": rec.joint_angles is not None,
           "keypoints": rec.keypoints is not None or rec.joint_angles is not None,
           "values": rec.values is not None}
    if output is None:
        output = next((name for name, present in has.items() if present), None)
    if output is not None and has.get(output, True):  # an unknown output: its own error later
        return output
    wanted = _POSE_LABELS[output] if output else "joint angles, keypoints or named values"
    if rec.gesture is not None:
        hint = (f"; its gesture labels train a gesture classifier: {GESTURE_TRAIN_COMMAND} "
                f"{rec.source}")
    else:
        hint = ("; record EMG with a reference pose (record.launch.py, a data glove or a hand "
                "tracker on hand/reference/joint_states) to train a pose model")
    raise DataError(f"{rec.source} holds {rec.describe_labels()}: no {wanted} to train a pose "
                    f"model on{hint}")


def prepare_data(recordings: Sequence[Recording], settings: TrainSettings,
                 preprocess: PreprocessConfig | None = None,
                 network: NetworkConfig | None = None) -> PreparedData:
    """Filter, split chronologically, fit normalisation on the train split, cut windows.

    With a fitted ``preprocess`` (evaluation of a checkpoint) its statistics are used as is.
    """
    if not recordings:
        raise DataError("no recordings given")
    for rec in recordings:
        pose_output_for(rec, settings.output)
    first = recordings[0]
    out_names = output_names_for(settings.output, tuple(settings.value_names)
                                 or (first.value_names if settings.output == "values" else None))
    if preprocess is None:
        preprocess = build_preprocess(settings, first)
    for rec in recordings:
        if rec.num_channels != first.num_channels:
            raise DataError(f"{rec.source}: {rec.num_channels} channels, {first.source} has "
                            f"{first.num_channels}")
    value_names = out_names if settings.output == "values" else ()
    preps = [prepare(rec, preprocess, settings.output, value_names) for rec in recordings]
    if not preprocess.fitted:
        train_parts = [p.filtered[:segment(len(p), "train", settings.val_fraction,
                                           settings.test_fraction)[1]] for p in preps]
        preprocess = fit_normalisation(preprocess, train_parts)
    if network is None:
        network = build_network_config(settings, first.num_channels, preprocess.model_rate_hz,
                                       out_names)
    from .preprocessing import Preprocessor

    pre = Preprocessor(preprocess)
    rate = preprocess.model_rate_hz
    hop = max(1, int(round(settings.hop_s * rate)))
    eval_hop = max(1, int(round(settings.eval_hop_s * rate)))
    ends = {s: [] for s in ("train", "val", "test", "all")}
    sources = {s: [] for s in ends}
    offset = 0
    for k, p in enumerate(preps):
        p.normalised = pre.normalise_all(p.filtered)
        for split in ends:
            start, stop = segment(len(p), split, settings.val_fraction, settings.test_fraction)
            e = window_ends(p, network.window, hop if split == "train" else eval_hop, start, stop)
            ends[split].append(e + offset)
            sources[split].append(np.full(len(e), k))
        offset += len(p)
    x = torch.from_numpy(np.concatenate([p.normalised for p in preps]))
    y = torch.from_numpy(np.concatenate([p.targets for p in preps]).astype(np.float32))
    return PreparedData(preprocess, network, x, y,
                        {s: np.concatenate(v) for s, v in ends.items()},
                        {s: np.concatenate(v) for s, v in sources.items()}, preps)


def make_augment(settings: TrainSettings):
    """The training-window augmentation the settings ask for, or None. On x (B, C, W):
    a random roll of the channel ring by -k..k (``rotation_augment``: an armband put on
    turned by whole electrodes), a log-normal gain per channel (``gain_augment``: electrode
    contact) and per window (``amplitude_augment``: overall level), added Gaussian noise
    (``noise_augment``, normalised units)."""
    k, g, a, n = (settings.rotation_augment, settings.gain_augment, settings.amplitude_augment,
                  settings.noise_augment)
    if not (k or g or a or n):
        return None

    def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, c = x.shape[:2]
        if k:
            shift = torch.randint(-k, k + 1, (b,), generator=gen)
            idx = (torch.arange(c)[None, :] - shift[:, None]) % c  # (B, C)
            x = torch.gather(x, 1, idx[:, :, None].expand_as(x))
        if g or a:
            log_gain = g * torch.randn(b, c, 1, generator=gen) + a * torch.randn(
                b, 1, 1, generator=gen)
            x = x * torch.exp(log_gain)
        if n:
            x = x + n * torch.randn(x.shape, generator=gen)
        return x
    return augment


def train(recordings: Sequence[Recording], settings: TrainSettings,
          progress_cb: ProgressCallback | None = None,
          should_stop: StopCallback | None = None) -> TrainResult:
    """Train a model on recordings (chronological splits per recording); see module doc."""
    t_start = time.perf_counter()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    _seed_everything(settings.seed)
    data = prepare_data(recordings, settings)
    if len(data.ends["train"]) == 0:
        raise DataError("no training windows: recordings too short for the window, or no "
                        "valid labels")
    model = EMGToPose(data.network)
    y_train = data.y[torch.as_tensor(data.ends["train"])]
    init_output_scaling(model, y_train.mean(0), y_train.std(0) if len(y_train) > 1 else None)
    train_set = WindowSet(data.x, data.y, data.ends["train"], data.network.window)
    val_set = (WindowSet(data.x, data.y, data.ends["val"], data.network.window)
               if len(data.ends["val"]) else None)
    result = fit_pose_model(model, model, train_set, val_set, settings, progress_cb=progress_cb,
                            should_stop=should_stop, show_progress=settings.show_progress)
    splits = {split: (WindowSet(data.x, data.y, data.ends[split], data.network.window),
                      data.ends[split], data.sources[split]) for split in ("train", "val", "test")}
    names = ", ".join(Path(r.source).name or r.source for r in recordings)
    # what the evaluation's training-mean baseline needs (evaluation.py)
    baselines = {"train_mean": y_train.mean(0).tolist(), "windows": int(len(y_train)),
                 "fitted_on": f"train split of {names}"}
    return trained_result(model, data.preprocess, result, splits,
                          [rec.summary() for rec in recordings], settings, t_start,
                          baselines=baselines)


def fit_pose_model(model: EMGToPose, forward, train_set, val_set, settings: TrainSettings,
                   **kw) -> FitResult:
    """:func:`fit` of a whole pose model with the optimisation settings of ``settings``;
    ``forward``: the model or its wrapper (DDP); ``kw``: fit's progress_cb, should_stop,
    show_progress, runtime."""
    return fit(forward, list(model.parameters()), train_set, val_set,
               output_loss(settings.output, settings.fk_loss_weight), epochs=settings.epochs,
               batch_size=settings.batch_size, learning_rate=settings.learning_rate,
               weight_decay=settings.weight_decay, grad_clip=settings.grad_clip,
               modules_to_train=[model], state_module=model,
               early_stop_patience=settings.early_stop_patience,
               lr_patience=settings.lr_patience, lr_factor=settings.lr_factor,
               min_learning_rate=settings.min_learning_rate, average_last=settings.average_last,
               augment=make_augment(settings),
               generator=torch.Generator().manual_seed(settings.seed), **kw)


def init_output_scaling(model: EMGToPose, mean: torch.Tensor,
                        std: torch.Tensor | None) -> None:
    """Output scaling from the training targets: the head starts at their mean."""
    with torch.no_grad():
        model.out_mean.copy_(mean)
        model.out_scale.copy_(std.clamp_min(1e-3) if std is not None
                              else torch.ones_like(model.out_scale))


def trained_result(model: EMGToPose, preprocess: PreprocessConfig, result: FitResult,
                   splits: dict, data_summary: list[dict], settings: TrainSettings,
                   t_start: float, splits_info: dict | None = None,
                   device=None, baselines: dict | None = None) -> TrainResult:
    """Metrics per split and the checkpoint after :func:`fit`. ``splits``: split ->
    (window set, window ends, recording number per window); ``baselines``: what the
    evaluation's baselines need (stored in the checkpoint's training dict)."""
    model.eval()
    split_arrays = {}
    metrics: dict = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
                     "stopped_early": result.stopped_early}
    for split, (ws, ends, sources) in splits.items():
        if len(ws) == 0:
            continue
        pred, true = predict_set(model, ws, device=device)
        split_arrays[split] = {"pred": pred, "true": true, "end": ends, "source": sources}
        metrics[f"{split}_mae"] = float(np.mean(np.abs(pred - true)))
        metrics[f"{split}_windows"] = int(len(ws))
    training = {
        "data": data_summary,
        **({"baselines": baselines} if baselines else {}),
        "settings": settings.to_dict(),
        "splits": splits_info or {"val_fraction": settings.val_fraction,
                                  "test_fraction": settings.test_fraction,
                                  "order": "chronological"},
        "history": [asdict(h) for h in result.history],
        "seconds": round(time.perf_counter() - t_start, 1),
        "torch": torch.__version__,
    }
    model = model.cpu()
    ckpt = Checkpoint.from_model(model, preprocess, training=training, metrics=metrics)
    return TrainResult(ckpt, result.history, split_arrays, time.perf_counter() - t_start)


# --- fine-tuning ---------------------------------------------------------------------


def _calibration_prepared(ckpt: Checkpoint, emg: np.ndarray, targets: np.ndarray,
                          label_mask: np.ndarray | None) -> Prepared:
    emg = np.asarray(emg, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float64)
    if emg.ndim != 2 or len(emg) != len(targets):
        raise DataError(f"calibration EMG {emg.shape} and targets {targets.shape} differ in "
                        f"length")
    check_compatible(ckpt, channels=emg.shape[1], where="calibration data")
    if ckpt.output == "keypoints" and targets.ndim == 2 and targets.shape[1] == NUM_JOINTS:
        targets = forward_kinematics(targets).reshape(len(targets), -1)  # angles given
    if targets.ndim != 2 or targets.shape[1] != len(ckpt.output_names):
        raise DataError(f"calibration targets have shape {targets.shape}, the model outputs "
                        f"{len(ckpt.output_names)} ({ckpt.output})")
    mask = np.ones(len(emg), bool) if label_mask is None else np.asarray(label_mask, bool)
    rec = Recording(emg=emg, sample_rate_hz=ckpt.sample_rate_hz, channel_names=ckpt.channel_names
                    or (), values=np.where(np.isfinite(targets), targets, 0.0),
                    value_names=ckpt.output_names, label_mask=mask & np.all(
                        np.isfinite(targets), axis=1), source="calibration")
    return prepare(rec, ckpt.preprocess, "values", ckpt.output_names)


def finetune(checkpoint: Checkpoint | EMGToPose, emg: np.ndarray, targets: np.ndarray,
             settings: FinetuneSettings | None = None, *, label_mask: np.ndarray | None = None,
             preprocess: PreprocessConfig | None = None,
             progress_cb: ProgressCallback | None = None,
             should_stop: StopCallback | None = None) -> FinetuneResult:
    """Adapt a checkpoint to calibration data: input adapter, then head (see the module
    docstring; ``settings.adapter_epochs=0`` fine-tunes the head, optionally with the last
    LSTM layer, only).

    checkpoint: the running model's :class:`Checkpoint` (or an :class:`EMGToPose` plus
    ``preprocess``); never modified. emg: (N, C) [V] at the checkpoint's sample rate;
    targets: (N, out) in the checkpoint's output convention (joint angles [rad] for the
    default; for a keypoints model joint angles (N, 20) are accepted and converted by
    forward kinematics), NaN or ``label_mask`` False where unlabelled. progress_cb(epoch,
    epochs_total, loss) after each epoch; should_stop() polled between batches to cancel.

    The last ``validation_fraction`` of the data (chronologically) is held out; errors are
    mean absolute errors there in output units (rad for joint angles). The result's
    checkpoint is the fine-tuned model if it is better (``accepted``), else the original.
    """
    t0 = time.perf_counter()
    s = settings or FinetuneSettings()
    if isinstance(checkpoint, EMGToPose):
        if preprocess is None:
            raise ValueError("finetune from a bare model needs its preprocess config")
        checkpoint = Checkpoint.from_model(checkpoint, preprocess)
    if not 0.0 < s.validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {s.validation_fraction}")
    model = checkpoint.build_model()  # private copy: the caller's model keeps running
    net = checkpoint.network
    prep = _calibration_prepared(checkpoint, emg, targets, label_mask)
    rf, stride = net.frame_receptive_field, net.frame_stride
    hop = max(1, int(round(s.hop_s * checkpoint.model_rate_hz)))
    m = len(prep)
    split = int(round(m * (1.0 - s.validation_fraction)))
    grid = (rf - 1, stride)
    train_ends = window_ends(prep, net.window, hop, 0, split, grid=grid)
    held_ends = window_ends(prep, net.window, hop, split, m, grid=grid)
    seconds_used = float(prep.label_ok.sum()) / checkpoint.model_rate_hz
    if len(train_ends) < 2 or len(held_ends) < 1:
        raise DataError(f"too little usable calibration data: {len(train_ends)} training and "
                        f"{len(held_ends)} held-out windows of {checkpoint.window_s:.2f} s "
                        f"({seconds_used:.1f} s labelled)")
    x = torch.from_numpy(prep.normalised if prep.normalised is not None else
                         _normalise(checkpoint, prep.filtered))
    y = torch.from_numpy(prep.targets.astype(np.float32))
    first_layer = net.lstm_layers - 1 if s.unfreeze_last_lstm else net.lstm_layers
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()

    def features(ends: np.ndarray) -> torch.Tensor:
        """Frozen-backbone features of windows ending at ``ends`` (frames computed once)."""
        with torch.no_grad():
            frames = model.frames(x.T[None])[0]  # (T_all, F)
            last = torch.as_tensor((ends - (rf - 1)) // stride)
            rows = last[:, None] - torch.arange(net.num_frames - 1, -1, -1)[None]
            out = []
            for i in range(0, len(rows), 256):
                win = frames[rows[i:i + 256]]  # (B, T, F)
                out.append(model.temporal(win) if first_layer == net.lstm_layers
                           else model.sequence_until(win, first_layer))
            return torch.cat(out)

    def forward(feat: torch.Tensor) -> torch.Tensor:
        if first_layer == net.lstm_layers:
            return model.decode(feat)
        return model.decode(model.temporal(feat, first_layer=first_layer))

    y_train, y_held = y[torch.as_tensor(train_ends)], y[torch.as_tensor(held_ends)]

    def held_error(held: torch.Tensor) -> float:
        with torch.no_grad():
            pred, true = predict_set(forward, TensorSet(held, y_held))
        return float(np.mean(np.abs(pred - true)))

    def stage_progress(offset: int) -> ProgressCallback | None:
        """Epochs of a stage reported as epochs of the whole fine-tune."""
        if progress_cb is None:
            return None
        return lambda e, _n, loss: progress_cb(offset + e, total_epochs, loss)

    f_held = features(held_ends)  # recomputed only when the backbone changes (the adapter)
    error_before = error_after = held_error(f_held)
    gen = torch.Generator().manual_seed(s.seed)
    loss_fn = output_loss(checkpoint.output)
    total_epochs = max(0, s.adapter_epochs) + s.epochs
    history: list[EpochRecord] = []
    cancelled = False
    if s.adapter_epochs > 0:
        adapter_hop = max(1, int(round(s.adapter_hop_s * checkpoint.model_rate_hz)))
        mixing = _InputMixing(net.in_channels)
        result = fit(lambda xb: model(mixing(xb)), list(mixing.parameters()),
                     WindowSet(x, y, window_ends(prep, net.window, adapter_hop, 0, split,
                                                 grid=grid), net.window),
                     None, loss_fn, epochs=s.adapter_epochs, batch_size=s.adapter_batch_size,
                     learning_rate=s.adapter_learning_rate,
                     weight_decay=s.adapter_weight_decay, grad_clip=s.grad_clip,
                     modules_to_train=[], state_module=mixing, generator=gen,
                     progress_cb=stage_progress(0), should_stop=should_stop)
        model.fold_input_mixing(mixing.matrix().detach())
        history += result.history
        cancelled = result.cancelled
        f_held = features(held_ends)
        error_after = held_error(f_held)
    if not cancelled and s.epochs > 0:
        # The head stage is kept only if it lowers the held-out error further (on a short
        # calibration it can overfit what the adapter already fixed).
        error_adapted = error_after if s.adapter_epochs > 0 else math.inf
        adapted_state = copy.deepcopy(model.state_dict())
        trainable: list[nn.Module] = [model.head]
        if first_layer < net.lstm_layers:
            trainable += [model.lstm[first_layer], model.lstm_dropout]
        params = [p for mod in trainable for p in mod.parameters()]
        for p in params:
            p.requires_grad_(True)
        result = fit(forward, params, TensorSet(features(train_ends), y_train), None, loss_fn,
                     epochs=s.epochs, batch_size=s.batch_size, learning_rate=s.learning_rate,
                     weight_decay=s.weight_decay, grad_clip=s.grad_clip,
                     modules_to_train=trainable, state_module=model, generator=gen,
                     progress_cb=stage_progress(len(history)), should_stop=should_stop)
        for p in params:
            p.requires_grad_(False)
        history += result.history
        cancelled = result.cancelled
        model.eval()
        error_after = held_error(f_held)
        if not cancelled and error_after >= error_adapted:
            model.load_state_dict(adapted_state)
            error_after = error_adapted
    model.eval()
    accepted = not cancelled and error_after < error_before * (1.0 - s.min_improvement)
    if accepted:
        training = copy.deepcopy(checkpoint.training)
        training.setdefault("finetunes", []).append({
            "seconds_used": round(seconds_used, 2), "settings": asdict(s),
            "error_before": error_before, "error_after": error_after,
            "epochs_run": len(history)})
        metrics = dict(checkpoint.metrics, finetune_heldout_mae=error_after)
        new_ckpt = Checkpoint.from_model(model, checkpoint.preprocess, training, metrics)
        message = (f"accepted: held-out error {error_before:.4f} -> {error_after:.4f}")
    else:
        new_ckpt = checkpoint
        message = ("cancelled" if cancelled else
                   f"kept the old model: held-out error {error_before:.4f} -> {error_after:.4f}")
    return FinetuneResult(new_ckpt, accepted, error_before, error_after, len(history),
                          seconds_used, len(train_ends), len(held_ends), cancelled,
                          time.perf_counter() - t0, history, message)


class _InputMixing(nn.Module):
    """x (B, C, W) -> (I + delta) x: the channel mixing of the adapter stage of
    :func:`finetune` (weight decay on ``delta`` pulls it towards identity)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(channels, channels))

    def matrix(self) -> torch.Tensor:
        return torch.eye(len(self.delta)) + self.delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("cd,bdw->bcw", self.matrix(), x)


def _normalise(ckpt: Checkpoint, filtered: np.ndarray) -> np.ndarray:
    from .preprocessing import Preprocessor

    return Preprocessor(ckpt.preprocess).normalise_all(filtered)
