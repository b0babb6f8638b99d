"""Training and calibration of gesture models; the optimisation loop is the pose model's
(:func:`emg_pose_node.training.fit`: AdamW, shuffled batches from a private generator,
ReduceLROnPlateau, early stopping on the validation loss, best epoch restored, progress).

:func:`train_gesture`, from training sessions:

1. windows (``window_s``, every ``train_hop_s``) of filtered EMG [V], labelled with the class
   of their last sample; class names the union of the sessions' classes (``rest`` first);
2. armband rotation (``ring_max_shift`` > 0): every session after the first is rolled onto
   the first one's ring profile; the aligned profile is the reference stored for live use;
3. per-channel mean/std (network inputs) and per-class MAV range (proportional control) from
   the training windows; the last ``val_fraction`` of every recording is validation;
4. the model: ``lda`` (closed form on a feature set), ``cnn_lstm`` (cross-entropy through
   :func:`fit`), or ``lstm_fin``: the LSTM first imitates the four LSTM-FIN features of each
   channel (MSE to the standardised entropy and log RMS / VAR / SSI of the normalised
   window, feature R^2 on validation reported), then the classifier on top is trained with
   the LSTM frozen (``fin_finetune``: trained together).

:func:`calibrate_gesture` adapts a checkpoint to labelled EMG of the wearer (a guided
calibration): LDA refits its means and covariance (:func:`lda.adapt`, milliseconds), the
networks fine-tune their head on frozen embeddings; the result is accepted only if its
accuracy on held-out windows (the last ``validation_fraction`` of every class) is higher.
No rclpy; no global state (a private generator; threads only when asked).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from emg_hand_core.recordings import DataError, Recording

from ..preprocessing import PreprocessConfig, fit_normalisation
from ..training import EpochRecord, ProgressCallback, StopCallback, TensorSet, fit
from . import lda
from .alignment import AlignmentConfig, best_shift, ring_profile, roll_channels
from .checkpoint import MODEL_KINDS, GestureCheckpoint
from .classifier import GestureClassifier, normalise_windows, window_mav
from .data import Session, Windows, class_names_of, make_windows, tail_split
from .features import FEATURE_SETS, FeatureSpec, entropy, extract

FIN_FEATURES = ("ENT", "log_RMS", "log_VAR", "log_SSI")


@dataclass
class GestureTrainSettings:
    """Everything :func:`train_gesture` needs besides data (CLI flags map onto these)."""

    model: str = "lda"  # lda | cnn_lstm | lstm_fin
    window_s: float = 0.2
    hop_s: float = 0.05  # between decisions (live and evaluation)
    train_hop_s: float | None = None  # between training windows (None: hop_s)
    highpass_hz: float | None = None
    notch_hz: float | None = None
    lowpass_hz: float | None = None
    features: str = "hudgins_td"  # LDA: a set of features.FEATURE_SETS or names, comma-separated
    log_amplitude: bool = False
    zc_threshold_v: float = 0.0
    ssc_threshold_v: float = 0.0
    wamp_threshold_v: float = 1e-5
    lda_shrinkage: float = 1e-3
    ring_max_shift: int = 0  # armband rotation search [electrodes]; 0 = off
    val_fraction: float = 0.15
    hyperparameters: dict = field(default_factory=dict)  # networks.DEFAULTS overrides
    epochs: int = 30
    fin_epochs: int = 15  # LSTM-FIN feature-imitation pre-training
    fin_finetune: bool = False
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    early_stop_patience: int = 5
    lr_patience: int = 1
    average_last: int = 0
    seed: int = 0
    threads: int | None = None
    show_progress: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODEL_KINDS:
            raise ValueError(f"model must be one of {MODEL_KINDS}, got {self.model!r}")
        if not (self.window_s > 0 and self.hop_s > 0):
            raise ValueError("window_s and hop_s must be > 0")

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(FEATURE_SETS.get(self.features, self.features),
                           {"ZC": self.zc_threshold_v, "SSC": self.ssc_threshold_v,
                            "WAMP": self.wamp_threshold_v}, self.log_amplitude)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GestureTrainSettings:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown gesture training settings {unknown}")
        return cls(**d)


PRESETS: dict[str, dict] = {
    # The field's baseline: LDA on Hudgins' time-domain features.
    "lda_td": dict(model="lda", features="hudgins_td"),
    # LDA on log amplitudes of all time-domain features, with the armband-rotation search.
    "lda_logtd": dict(model="lda", features="td8", log_amplitude=True, ring_max_shift=1),
    # The seed CNN-LSTM with the armband-rotation search (myo_readings' best, see README).
    "cnn_lstm": dict(model="cnn_lstm", ring_max_shift=1),
    "lstm_fin": dict(model="lstm_fin", ring_max_shift=1, batch_size=128, learning_rate=2e-3,
                     fin_epochs=10, epochs=40),
}


@dataclass
class GestureTrainResult:
    checkpoint: GestureCheckpoint
    history: list[EpochRecord]
    seconds: float
    fin_history: list[EpochRecord] = field(default_factory=list)
    fin_r2: dict[str, float] = field(default_factory=dict)


def samples(seconds: float, rate_hz: float) -> int:
    return max(1, int(round(seconds * rate_hz)))


def _preprocess(first: Recording, s: GestureTrainSettings) -> PreprocessConfig:
    return PreprocessConfig(sample_rate_hz=first.sample_rate_hz, highpass_hz=s.highpass_hz,
                            notch_hz=s.notch_hz, lowpass_hz=s.lowpass_hz,
                            channel_names=first.channel_names)


def _check_layout(sessions: Sequence[Session]) -> Recording:
    recs = [r for s in sessions for r in s.recordings]
    if not recs:
        raise DataError("no training recordings")
    first = recs[0]
    for r in recs[1:]:
        if r.num_channels != first.num_channels or \
                abs(r.sample_rate_hz - first.sample_rate_hz) > 0.01 * first.sample_rate_hz:
            raise DataError(f"{r.source}: {r.num_channels} channels at {r.sample_rate_hz:g} Hz, "
                            f"{first.source} has {first.num_channels} at "
                            f"{first.sample_rate_hz:g} Hz")
    return first


def aligned_session_windows(sessions: Sequence[Session], window: int, hop: int,
                            class_names: Sequence[str], preprocess: PreprocessConfig,
                            max_shift: int) -> tuple[Windows, list[int]]:
    """Windows of every session, each session after the first rolled onto the first one's
    ring profile (``max_shift`` 0: none); returns (windows, shift of each session)."""
    parts, shifts = [], []
    reference = None
    for session in sessions:
        w = make_windows(session.recordings, window, hop, class_names, preprocess)
        shift = 0
        if max_shift > 0:
            if reference is None:
                reference = ring_profile(w.x)
            else:
                shift = best_shift(ring_profile(w.x), reference, max_shift)
                w.x = roll_channels(w.x, shift)
        parts.append(w)
        shifts.append(shift)
    return Windows.concat(parts), shifts


def class_mav_range(w: Windows, num_classes: int) -> dict[str, list[float]]:
    """Per class, the 5th and 95th percentile of the windows' mean MAV [V]."""
    m = window_mav(w.x)
    low, high = [], []
    for k in range(num_classes):
        v = m[w.y == k]
        low.append(float(np.percentile(v, 5)) if len(v) else 0.0)
        high.append(float(np.percentile(v, 95)) if len(v) else 1.0)
    return {"low": low, "high": high}


def fin_targets(x_normalised: np.ndarray) -> np.ndarray:
    """The four LSTM-FIN features of each channel of normalised windows (N, C, W) ->
    (N, C, 4): entropy [nats] and log RMS, log VAR, log SSI."""
    x = np.asarray(x_normalised, dtype=np.float64)
    ssi = np.sum(x * x, axis=-1)
    w = x.shape[-1]
    return np.stack([entropy(x), 0.5 * np.log(ssi / w + 1e-12),
                     np.log(np.var(x, axis=-1, ddof=1) + 1e-12), np.log(ssi + 1e-12)], axis=-1)


def r2_scores(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """R^2 of each last-axis column over all other axes."""
    p = pred.reshape(-1, pred.shape[-1])
    t = true.reshape(-1, true.shape[-1])
    sse = np.sum((p - t) ** 2, axis=0)
    sst = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    return 1.0 - sse / np.maximum(sst, 1e-12)


def _cross_entropy():
    import torch.nn.functional as F

    return F.cross_entropy


def train_gesture(sessions: Sequence[Session], settings: GestureTrainSettings,
                  progress_cb: ProgressCallback | None = None,
                  should_stop: StopCallback | None = None) -> GestureTrainResult:
    """Train a gesture model on sessions (see module docstring)."""
    t0 = time.perf_counter()
    s = settings
    first = _check_layout(sessions)
    class_names = class_names_of(sessions)
    if len(class_names) < 2:
        raise DataError(f"need at least 2 classes to train on, found {list(class_names)}")
    rate = first.sample_rate_hz
    window, hop = samples(s.window_s, rate), samples(s.hop_s, rate)
    train_hop = samples(s.train_hop_s or s.hop_s, rate)
    preprocess = _preprocess(first, s)
    w, shifts = aligned_session_windows(sessions, window, train_hop, class_names, preprocess,
                                        s.ring_max_shift)
    c = first.num_channels
    preprocess = fit_normalisation(preprocess, [w.x.transpose(0, 2, 1).reshape(-1, c)])
    alignment = AlignmentConfig(s.ring_max_shift, tuple(ring_profile(w.x).tolist())
                                if s.ring_max_shift > 0 else ())
    train, val = tail_split(w, s.val_fraction)
    k = len(class_names)
    ckpt = GestureCheckpoint(kind=s.model, class_names=class_names, preprocess=preprocess,
                             window=window, hop=hop, tensors={}, alignment=alignment,
                             proportional=class_mav_range(train, k))
    history: list[EpochRecord] = []
    result = GestureTrainResult(ckpt, history, 0.0)
    if s.model == "lda":
        spec = s.feature_spec()
        f = extract(train.x, spec)
        mean, std = f.mean(axis=0), f.std(axis=0) + 1e-12
        params = lda.fit((f - mean) / std, train.y, k, s.lda_shrinkage)
        ckpt.features = spec
        ckpt.feature_norm = {"mean": mean.tolist(), "std": std.tolist()}
        ckpt.tensors = params.tensors()
    else:
        _train_network(ckpt, train, val, s, result, progress_cb, should_stop)
    metrics: dict = {}
    clf = GestureClassifier(ckpt)
    for name, part in (("train", train), ("val", val)):
        if len(part):
            pred = clf.probabilities(part.x).argmax(axis=1)
            metrics[f"{name}_accuracy"] = float(np.mean(pred == part.y))
            metrics[f"{name}_windows"] = int(len(part))
    if result.fin_r2:
        metrics["fin_r2"] = result.fin_r2
    ckpt.metrics = metrics
    ckpt.training = {
        "data": [dict(r.summary(), session=sess.name) for sess in sessions
                 for r in sess.recordings],
        "sessions": [sess.name for sess in sessions], "session_ring_shifts": shifts,
        "settings": s.to_dict(), "history": [asdict(h) for h in history],
        "fin_history": [asdict(h) for h in result.fin_history],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    result.seconds = time.perf_counter() - t0
    return result


def _train_network(ckpt: GestureCheckpoint, train: Windows, val: Windows,
                   s: GestureTrainSettings, result: GestureTrainResult,
                   progress_cb: ProgressCallback | None,
                   should_stop: StopCallback | None) -> None:
    import torch

    from .networks import build, to_numpy

    if s.threads:
        torch.set_num_threads(s.threads)
    torch.manual_seed(s.seed)  # weight initialisation (the batches use a private generator)
    if len(train) % s.batch_size == 1:  # a last batch of one cannot be batch-normalised
        train = train.subset(np.arange(len(train)) < len(train) - 1)
    x_train = torch.from_numpy(normalise_windows(train.x, ckpt.preprocess))
    x_val = torch.from_numpy(normalise_windows(val.x, ckpt.preprocess)) if len(val) else None
    net = build(s.model, ckpt.in_channels, ckpt.num_classes, ckpt.window, s.hyperparameters)
    ckpt.hyperparameters = {k: v for k, v in s.hyperparameters.items()}
    gen = torch.Generator().manual_seed(s.seed)
    common = dict(batch_size=s.batch_size, weight_decay=s.weight_decay, grad_clip=s.grad_clip,
                  early_stop_patience=s.early_stop_patience, lr_patience=s.lr_patience,
                  generator=gen, should_stop=should_stop, show_progress=s.show_progress)
    classifier_modules: list = [net]
    if s.model == "lstm_fin":
        t_train = fin_targets(x_train.numpy())
        mean = t_train.reshape(-1, 4).mean(axis=0)
        std = t_train.reshape(-1, 4).std(axis=0) + 1e-9
        ckpt.features = FeatureSpec(FEATURE_SETS["lstm_fin4"])
        ckpt.feature_norm = {"mean": mean.tolist(), "std": std.tolist(),
                             "targets": list(FIN_FEATURES)}

        def targets(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(((fin_targets(x.numpy()) - mean) / std).astype(np.float32))

        fin_modules = [net.encoder, net.imitation]
        fin_params = [p for m in fin_modules for p in m.parameters()]
        # one channel's window is one sequence: a batch of B windows is B*C sequences
        r = fit(net.imitate, fin_params, TensorSet(x_train, targets(x_train)),
                TensorSet(x_val, targets(x_val)) if x_val is not None else None,
                torch.nn.functional.mse_loss, epochs=s.fin_epochs,
                learning_rate=s.learning_rate, modules_to_train=fin_modules, state_module=net,
                progress_cb=progress_cb, desc="imitate", **common)
        result.fin_history.extend(r.history)
        eval_x = x_val if x_val is not None else x_train
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net.imitate(eval_x[i:i + 2048])
                              for i in range(0, len(eval_x), 2048)]).numpy()
        r2 = r2_scores(pred, targets(eval_x).numpy())
        result.fin_r2 = {n: round(float(v), 4) for n, v in zip(FIN_FEATURES, r2)}
    forward, inputs_train, inputs_val = net, x_train, x_val
    if s.model == "lstm_fin" and not s.fin_finetune:
        # the LSTM stays as it imitates: the classifier learns on its embeddings, once computed
        classifier_modules, forward = [net.classifier], net.head
        inputs_train, inputs_val = _embeddings(net, x_train), (
            _embeddings(net, x_val) if x_val is not None else None)
    params = [p for m in classifier_modules for p in m.parameters()]
    r = fit(forward, params, TensorSet(inputs_train, torch.from_numpy(train.y)),
            TensorSet(inputs_val, torch.from_numpy(val.y)) if inputs_val is not None else None,
            _cross_entropy(), epochs=s.epochs, learning_rate=s.learning_rate,
            modules_to_train=classifier_modules, state_module=net, progress_cb=progress_cb,
            average_last=s.average_last, desc="classify", **common)
    result.history.extend(r.history)
    net.eval()
    ckpt.tensors = to_numpy(net)


def _embeddings(net, x, batch_size: int = 2048):
    """The network's embeddings (below its head) of inputs x, in eval mode, no gradients."""
    import torch

    net.eval()
    with torch.no_grad():
        return torch.cat([net.embed(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


# --- calibration -------------------------------------------------------------------------


@dataclass
class GestureCalibrationSettings:
    validation_fraction: float = 0.25  # last part of every class's windows held out
    lda_prior_windows: float = 200.0  # weight of the old LDA class means, in windows
    lda_covariance_prior_windows: float = 5000.0  # weight of the old covariance
    epochs: int = 30  # networks: head fine-tuning
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    anchor_weight: float = 1.0  # networks: L2 pull of the head toward its trained weights
    batch_size: int = 64
    hop_s: float | None = None  # between calibration windows (None: the model's hop / 2)
    seed: int = 0


@dataclass
class GestureCalibrationResult:
    checkpoint: GestureCheckpoint  # the calibrated model if accepted, else the original
    accepted: bool
    accuracy_before: float
    accuracy_after: float
    train_windows: int
    heldout_windows: int
    seconds_used: float  # labelled EMG [s]
    shift: int  # armband rotation found in the calibration data
    cancelled: bool
    seconds: float
    history: list[EpochRecord] = field(default_factory=list)
    message: str = ""


def heldout_split(w: Windows, fraction: float) -> tuple[Windows, Windows]:
    """(train, held out): the last ``fraction`` of every class's windows are held out; training
    windows sharing samples with a held-out window are left out."""
    held = np.zeros(len(w), bool)
    for k in np.unique(w.y):
        idx = np.flatnonzero(w.y == k)
        held[idx[int(round(len(idx) * (1.0 - fraction))):]] = True
    width = w.x.shape[2]
    occupied = np.zeros(int(w.end.max()) + 2, np.int64) if len(w) else np.zeros(1, np.int64)
    for e in w.end[held]:
        occupied[e - width + 1:e + 1] = 1
    cum = np.concatenate([[0], np.cumsum(occupied)])
    overlap = (cum[w.end + 1] - cum[w.end - width + 1]) > 0
    return w.subset(~held & ~overlap), w.subset(held)


def calibrate_gesture(ckpt: GestureCheckpoint, emg: np.ndarray, labels: np.ndarray,
                      settings: GestureCalibrationSettings | None = None,
                      progress_cb: ProgressCallback | None = None,
                      should_stop: StopCallback | None = None) -> GestureCalibrationResult:
    """Adapt ``ckpt`` to EMG (N, C) [V] at its sample rate labelled per sample with class
    indices (N,) (-1 unlabelled); see the module docstring. ``ckpt`` is not modified."""
    t0 = time.perf_counter()
    s = settings or GestureCalibrationSettings()
    emg = np.asarray(emg, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if emg.ndim != 2 or emg.shape[1] != ckpt.in_channels or len(labels) != len(emg):
        raise DataError(f"calibration EMG {emg.shape} / labels {labels.shape} do not fit a "
                        f"{ckpt.in_channels}-channel model")
    rec = Recording(emg=emg, sample_rate_hz=ckpt.sample_rate_hz,
                    channel_names=ckpt.channel_names, gesture=labels,
                    gesture_names=ckpt.class_names, source="calibration")
    hop = samples(s.hop_s, ckpt.sample_rate_hz) if s.hop_s else max(1, ckpt.hop // 2)
    w = make_windows([rec], ckpt.window, hop, ckpt.class_names, ckpt.preprocess)
    seconds_used = float(np.sum(labels >= 0)) / ckpt.sample_rate_hz
    train, held = heldout_split(w, s.validation_fraction)
    if len(np.unique(train.y)) < 2 or len(held) < 2:
        raise DataError(f"too little usable calibration data: {len(train)} training and "
                        f"{len(held)} held-out windows of {ckpt.window_s:.2f} s "
                        f"({seconds_used:.1f} s labelled)")
    shift = best_shift(ring_profile(w.x), np.asarray(ckpt.alignment.reference),
                       ckpt.alignment.max_shift) if ckpt.alignment.max_shift > 0 else 0
    train.x, held.x = roll_channels(train.x, shift), roll_channels(held.x, shift)
    before = GestureClassifier(ckpt)
    acc_before = float(np.mean(before.probabilities(held.x).argmax(1) == held.y))
    new = copy.deepcopy(ckpt)
    history: list[EpochRecord] = []
    cancelled = False
    if ckpt.kind == "lda":
        params = lda.adapt(lda.LDAParams.from_tensors(ckpt.tensors), before.features(train.x),
                           train.y, s.lda_prior_windows, s.lda_covariance_prior_windows)
        new.tensors = params.tensors()
    else:
        cancelled = _finetune_head(new, before, train, s, history, progress_cb, should_stop)
    after = GestureClassifier(new)
    acc_after = float(np.mean(after.probabilities(held.x).argmax(1) == held.y))
    accepted = not cancelled and acc_after > acc_before
    if accepted:
        new.training = dict(new.training)
        new.training.setdefault("calibrations", []).append({
            "seconds_used": round(seconds_used, 2), "settings": asdict(s), "shift": shift,
            "accuracy_before": acc_before, "accuracy_after": acc_after})
        new.metrics = dict(new.metrics, calibration_heldout_accuracy=acc_after)
        message = f"accepted: held-out accuracy {acc_before:.3f} -> {acc_after:.3f}"
    else:
        new = ckpt
        message = "cancelled" if cancelled else (
            f"kept the old model: held-out accuracy {acc_before:.3f} -> {acc_after:.3f}")
    return GestureCalibrationResult(new, accepted, acc_before, acc_after, len(train), len(held),
                                    seconds_used, shift, cancelled, time.perf_counter() - t0,
                                    history, message)


def _finetune_head(ckpt: GestureCheckpoint, clf: GestureClassifier, train: Windows,
                   s: GestureCalibrationSettings, history: list, progress_cb,
                   should_stop) -> bool:
    """Fine-tune the network's head of ``ckpt`` (in place) on frozen embeddings."""
    import torch

    from .networks import build, load_numpy, to_numpy

    net = build(ckpt.kind, ckpt.in_channels, ckpt.num_classes, ckpt.window,
                ckpt.hyperparameters)
    load_numpy(net, ckpt.tensors)
    embeddings = _embeddings(net, torch.from_numpy(clf.normalise(train.x)))
    heads = net.head_modules()
    params = [p for m in heads for p in m.parameters()]
    anchors = [p.detach().clone() for p in params]
    cross_entropy = _cross_entropy()

    def loss(logits, labels):
        # a minute of data must not make the head forget the training sessions (L2-SP)
        pull = sum(torch.sum((p - a) ** 2) for p, a in zip(params, anchors))
        return cross_entropy(logits, labels) + s.anchor_weight * pull

    r = fit(net.head, params, TensorSet(embeddings, torch.from_numpy(train.y)), None,
            loss, epochs=s.epochs, batch_size=s.batch_size,
            learning_rate=s.learning_rate, weight_decay=s.weight_decay, grad_clip=1.0,
            modules_to_train=heads, state_module=net,
            generator=torch.Generator().manual_seed(s.seed), progress_cb=progress_cb,
            should_stop=should_stop)
    history.extend(r.history)
    net.eval()
    ckpt.tensors = to_numpy(net)
    return r.cancelled


__all__ = ["FIN_FEATURES", "GestureCalibrationResult", "GestureCalibrationSettings",
           "GestureTrainResult", "GestureTrainSettings", "PRESETS", "aligned_session_windows",
           "calibrate_gesture", "class_mav_range", "fin_targets", "heldout_split", "r2_scores",
           "train_gesture"]
