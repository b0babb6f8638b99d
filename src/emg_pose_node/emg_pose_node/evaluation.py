"""Metrics of a model on recordings, next to two baselines fitted on the model's training data.

Baselines, always fitted where the model was trained, never on the data being scored (a
baseline fitted on the scored data flatters itself, and the model looks worse than it is):

* ``train_mean``: always predicts the mean training target, stored in the checkpoint at
  training time (``training["baselines"]``; older checkpoints: the network's output
  offset, which training sets to that mean and never changes).
* ``ridge``: ridge regression on per-channel window features, log RMS and log MAV of the
  (preprocessing-filtered) EMG of each window, standardised; refitted on the training
  split of the model's training recordings: ``train_recordings`` (``emg_pose_eval --train
  DATA``) or the evaluated recordings themselves when they are the model's training
  recordings (their train split). Otherwise it is left out and the result says why. Its
  regularisation is chosen on the validation split of that training data (the last 20 %
  of the training windows when there is none).

The result says where each baseline was fitted (``result["baselines"]``, and the table).

Metrics by output convention (the figures emg2pose reports, so results compare):

* joint angles: mean absolute joint-angle error [deg], per joint, per finger and per joint
  group (proximal: CMC and MCP joints; middle: thumb MCP and PIPs; distal: thumb IP and
  DIPs); landmark distance (MPJPE, the 20 keypoints besides the wrist) and fingertip
  distance [mm] after forward kinematics, per keypoint [mm]; per-joint R²;
* keypoints: the same distances directly, the angle errors through IK;
* values (e.g. finger values): per-output R², MAE and RMSE; mean R².

:func:`cross_validate` is leave-one-file-out: one model per fold trained on the other
files, scored on the held-out one, with the mean and spread over folds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from emg_hand_core.hand_model import (
    FINGERS,
    JOINT_NAMES,
    KEYPOINT_NAMES,
    forward_kinematics,
    inverse_kinematics,
)
from emg_hand_core.recordings import DataError, Recording

from .checkpoint import Checkpoint
from .training import PreparedData, TrainSettings, WindowSet, predict_set, prepare_data, train

RIDGE_LAMBDAS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def r2_scores(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-column coefficient of determination (N, K) -> (K,); NaN for constant truth."""
    ss_res = np.sum((true - pred) ** 2, axis=0)
    ss_tot = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def window_features(x: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Per-channel log RMS and log MAV of windows ending at ``ends``: (K, 2C)."""
    sq = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x.astype(np.float64) ** 2, 0)])
    ab = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(np.abs(x.astype(np.float64)), 0)])
    hi, lo = ends + 1, ends + 1 - window
    rms = np.sqrt(np.maximum((sq[hi] - sq[lo]) / window, 0.0))
    mav = (ab[hi] - ab[lo]) / window
    floor = 1e-6 * max(float(np.median(rms)), 1e-30)
    return np.log(np.concatenate([rms, mav], axis=1) + floor)


class RidgeBaseline:
    """Standardised features + intercept, closed-form ridge."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def fit(self, f: np.ndarray, y: np.ndarray) -> RidgeBaseline:
        self.mu, self.sd = f.mean(0), f.std(0) + 1e-12
        a = np.c_[(f - self.mu) / self.sd, np.ones(len(f))]
        reg = self.lam * np.eye(a.shape[1])
        reg[-1, -1] = 0.0
        self.w = np.linalg.solve(a.T @ a + reg, a.T @ y)
        return self

    def predict(self, f: np.ndarray) -> np.ndarray:
        return np.c_[(f - self.mu) / self.sd, np.ones(len(f))] @ self.w


JOINT_FINGER = {n: n.split("_", 1)[0] for n in JOINT_NAMES}
JOINT_GROUP = {n: ("proximal" if ("_cmc_" in n or (n.split("_")[1] == "mcp"
                                                   and not n.startswith("thumb")))
                   else "middle" if n in ("thumb_mcp_fe",) or "_pip_" in n else "distal")
               for n in JOINT_NAMES}
"""Joint -> finger, joint -> group (proximal / middle / distal), for the per-group errors."""
FINGERTIPS = tuple(f"{f}_tip" for f in FINGERS)


def _mean_by(per_joint: np.ndarray, key: dict) -> dict:
    groups: dict[str, list[float]] = {}
    for name, value in zip(JOINT_NAMES, per_joint):
        groups.setdefault(key[name], []).append(float(value))
    return {k: float(np.mean(v)) for k, v in groups.items()}


def metrics_for(output: str, names: Sequence[str], true: np.ndarray, pred: np.ndarray) -> dict:
    """Metrics of predictions (N, out) against truth (N, out) for an output convention."""
    out: dict = {"n": int(len(true))}
    if len(true) == 0:
        return out
    err = pred - true
    out["mae"] = float(np.mean(np.abs(err)))
    if output == "values":
        r2 = r2_scores(true, pred)
        out["r2"] = {n: _f(v) for n, v in zip(names, r2)}
        out["mean_r2"] = _f(np.nanmean(r2))
        out["mae_per_output"] = {n: float(v) for n, v in zip(names, np.mean(np.abs(err), 0))}
        out["rmse_per_output"] = {n: float(v) for n, v in
                                  zip(names, np.sqrt(np.mean(err ** 2, 0)))}
        return out
    if output == "joint_angles":
        q_true, q_pred = true.astype(np.float64), pred.astype(np.float64)
        kp_true, kp_pred = forward_kinematics(q_true), forward_kinematics(q_pred)
    else:  # keypoints
        kp_true = true.reshape(-1, len(KEYPOINT_NAMES), 3).astype(np.float64)
        kp_pred = pred.reshape(-1, len(KEYPOINT_NAMES), 3).astype(np.float64)
        q_true, q_pred = inverse_kinematics(kp_true), inverse_kinematics(kp_pred)
    angle_err = np.degrees(np.abs(q_pred - q_true))
    per_joint = angle_err.mean(0)
    out["joint_angle_error_deg"] = float(angle_err.mean())
    out["joint_angle_error_deg_per_joint"] = {n: float(v) for n, v in
                                              zip(JOINT_NAMES, per_joint)}
    out["joint_angle_error_deg_per_finger"] = _mean_by(per_joint, JOINT_FINGER)
    out["joint_angle_error_deg_per_group"] = _mean_by(per_joint, JOINT_GROUP)
    dist = 1000.0 * np.linalg.norm(kp_pred - kp_true, axis=-1)  # (N, 21) [mm]
    out["mpjpe_mm"] = float(dist[:, 1:].mean())  # the wrist is the origin in both
    out["fingertip_error_mm"] = float(dist[:, [KEYPOINT_NAMES.index(t)
                                               for t in FINGERTIPS]].mean())
    out["keypoint_error_mm"] = {n: float(v) for n, v in zip(KEYPOINT_NAMES, dist.mean(0))}
    if output == "joint_angles":
        r2 = r2_scores(q_true, q_pred)
        out["r2"] = {n: _f(v) for n, v in zip(JOINT_NAMES, r2)}
        out["mean_r2"] = _f(np.nanmean(r2)) if np.any(np.isfinite(r2)) else None
    return out


def _f(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def stored_settings(ckpt: Checkpoint, **overrides) -> TrainSettings:
    """The training settings a checkpoint was made with (its output convention forced),
    with ``overrides`` (None values ignored)."""
    stored = dict(ckpt.training.get("settings", {}))
    stored.pop("show_progress", None)
    known = set(TrainSettings.__dataclass_fields__)
    settings = TrainSettings.from_dict({k: v for k, v in stored.items() if k in known})
    settings = replace(settings, output=ckpt.output, show_progress=False,
                       value_names=ckpt.output_names if ckpt.output == "values" else ())
    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _same_file(a: str, b: str) -> bool:
    return bool(a) and bool(b) and os.path.realpath(a) == os.path.realpath(b)


def is_training_data(ckpt: Checkpoint, recordings: Sequence[Recording]) -> bool:
    """True when ``recordings`` are the ones the checkpoint was trained on (same files, same
    sample counts, same order)."""
    stored = ckpt.training.get("data", [])
    return len(stored) == len(recordings) and all(
        _same_file(d.get("source", ""), r.source) and d.get("num_samples") == r.num_samples
        for d, r in zip(stored, recordings))


def _describe(recordings: Sequence[Recording]) -> str:
    names = [Path(r.source).name or r.source for r in recordings]
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def evaluate(ckpt: Checkpoint, recordings: Sequence[Recording], split: str = "test",
             val_fraction: float | None = None, test_fraction: float | None = None,
             eval_hop_s: float | None = None, baselines: bool = True,
             train_recordings: Sequence[Recording] | None = None) -> dict:
    """Model and baseline metrics on ``split`` ("train", "val", "test" or "all").

    Split fractions default to the checkpoint's training split, so "test" is the data the
    model never saw when it was trained on these recordings. Baselines: see the module
    docstring; ``train_recordings``: the model's training recordings, to refit the ridge on.
    """
    settings = stored_settings(ckpt, val_fraction=val_fraction, test_fraction=test_fraction,
                               eval_hop_s=eval_hop_s)
    data = prepare_data(recordings, settings, preprocess=ckpt.preprocess, network=ckpt.network)
    model = ckpt.build_model()
    ends = data.ends[split]
    ws = WindowSet(data.x, data.y, ends, ckpt.window)
    with torch.no_grad():
        pred, true = predict_set(model, ws)
    names = ckpt.output_names
    result = {
        "split": split, "windows": int(len(ends)), "output": ckpt.output,
        "output_names": list(names), "window_s": ckpt.window_s,
        "model_rate_hz": ckpt.model_rate_hz,
        "fractions": {"val": settings.val_fraction, "test": settings.test_fraction},
        "recordings": [r.source for r in recordings],
        "models": {"model": metrics_for(ckpt.output, names, true, pred)},
        "baselines": {},
    }
    if baselines and len(ends):
        _add_baselines(result, ckpt, recordings, data, ends, true, train_recordings)
    result["_arrays"] = {"pred": pred, "true": true}
    return result


def _add_baselines(result: dict, ckpt: Checkpoint, recordings: Sequence[Recording],
                   data: PreparedData, ends: np.ndarray, true: np.ndarray,
                   train_recordings: Sequence[Recording] | None) -> None:
    names, output = ckpt.output_names, ckpt.output
    notes = result["baselines"]
    fit, where = None, ""
    fit_settings = stored_settings(ckpt)  # the model's own split of its training data
    if train_recordings:
        fit = prepare_data(train_recordings, fit_settings, preprocess=ckpt.preprocess,
                           network=ckpt.network)
        where = f"train split of {_describe(train_recordings)} (the training recordings given)"
    elif is_training_data(ckpt, recordings):
        same = result["fractions"] == {"val": fit_settings.val_fraction,
                                       "test": fit_settings.test_fraction}
        fit = data if same else prepare_data(recordings, fit_settings,
                                             preprocess=ckpt.preprocess, network=ckpt.network)
        where = f"train split of {_describe(recordings)} (the model's training data)"
    stored = ckpt.training.get("baselines", {}).get("train_mean")
    if stored is None and ckpt.training.get("settings") and "out_mean" in ckpt.state_dict:
        # checkpoints from before the stored baselines: train() set the output offset to
        # the mean training target, a buffer that training does not change
        stored = ckpt.state_dict["out_mean"].tolist()
    if stored is not None and len(stored) == len(names):
        mean = np.asarray(stored, dtype=np.float64)
        notes["train_mean"] = {"fitted_on": "the model's training data (stored in the "
                                            "checkpoint: " + ckpt.training.get(
                                                "baselines", {}).get(
                                                "fitted_on", "its output offset") + ")"}
    elif fit is not None and len(fit.ends["train"]):
        mean = fit.y.numpy()[fit.ends["train"]].mean(0)
        notes["train_mean"] = {"fitted_on": where}
    else:
        mean = None
        notes["train_mean"] = {"refused": "the checkpoint stores no training mean and no "
                                          "training data was given (--train DATA)"}
    if mean is not None:
        result["models"]["train_mean"] = metrics_for(output, names, true,
                                                     np.broadcast_to(mean, true.shape))
    if fit is None or not len(fit.ends["train"]):
        notes["ridge"] = {"refused": "not fitted: these are not the model's training "
                                     "recordings; pass them with --train DATA to fit the ridge "
                                     "where the model was trained"}
        return
    window = ckpt.window
    y_fit = fit.y.numpy()
    filtered_fit = np.concatenate([p.filtered for p in fit.recordings])
    train_ends, val_ends = fit.ends["train"], fit.ends["val"]
    chosen_on = "its validation split"
    if not len(val_ends):  # hold out the end of the training windows to choose lambda
        cut = int(round(0.8 * len(train_ends)))
        train_ends, val_ends = train_ends[:cut], train_ends[cut:]
        chosen_on = "the last 20 % of its training windows"
    f_train = window_features(filtered_fit, train_ends, window)
    lam = RIDGE_LAMBDAS[0]
    if len(val_ends):
        f_val = window_features(filtered_fit, val_ends, window)
        errs = [np.mean((RidgeBaseline(lam_).fit(f_train, y_fit[train_ends]).predict(f_val)
                         - y_fit[val_ends]) ** 2) for lam_ in RIDGE_LAMBDAS]
        lam = RIDGE_LAMBDAS[int(np.argmin(errs))]
    all_train = fit.ends["train"]
    ridge = RidgeBaseline(lam).fit(window_features(filtered_fit, all_train, window),
                                   y_fit[all_train])
    filtered = np.concatenate([p.filtered for p in data.recordings])
    metrics = metrics_for(output, names, true, ridge.predict(window_features(filtered, ends,
                                                                             window)))
    metrics["lambda"] = lam
    result["models"]["ridge"] = metrics
    notes["ridge"] = {"fitted_on": where, "lambda": lam, "lambda_chosen_on": chosen_on}


def _table_rows(result: dict, models: list[str]) -> list[tuple[str, list]]:
    rows: list[tuple[str, list]] = []
    first = result["models"]["model"]

    def add(label, getter):
        rows.append((label, [getter(result["models"][m]) for m in models]))

    if "mean_r2" in first and result["output"] == "values":
        for name in result["output_names"]:
            add(f"R² {name}", lambda m, n=name: (m.get("r2") or {}).get(n))
        add("R² mean", lambda m: m.get("mean_r2"))
        add("MAE", lambda m: m.get("mae"))
    if "mpjpe_mm" in first:
        add("joint angle error [deg]", lambda m: m.get("joint_angle_error_deg"))
        for group in ("proximal", "middle", "distal"):
            add(f"  {group} joints [deg]",
                lambda m, g=group: m.get("joint_angle_error_deg_per_group", {}).get(g))
        for finger in FINGERS:
            add(f"  {finger} [deg]",
                lambda m, f=finger: m.get("joint_angle_error_deg_per_finger", {}).get(f))
        add("MPJPE [mm] (landmark distance)", lambda m: m.get("mpjpe_mm"))
        add("fingertip distance [mm]", lambda m: m.get("fingertip_error_mm"))
        for name in KEYPOINT_NAMES[1:]:  # keypoints fixed by the hand model are left out
            errors = [result["models"][m].get("keypoint_error_mm", {}).get(name) for m in models]
            if any(e for e in errors):
                add(f"  {name} [mm]", lambda m, n=name: m.get("keypoint_error_mm", {}).get(n))
    return rows


COLUMN_TITLES = {"model": "model", "ridge": "ridge", "train_mean": "train mean"}


def format_table(result: dict) -> str:
    """A plain-text table: one row per figure, one column per model; below it, where each
    baseline was fitted."""
    models = [m for m in COLUMN_TITLES if m in result["models"]]
    rows = _table_rows(result, models)
    width = max(len(r[0]) for r in rows) if rows else 10
    head = f"{result['split']} split, {result['windows']} windows".ljust(width)
    lines = [head + "".join(f"{COLUMN_TITLES[m]:>12}" for m in models)]
    for label, values in rows:
        lines.append(label.ljust(width) + "".join(
            f"{'-':>12}" if v is None else f"{v:12.3f}" for v in values))
    for name, note in result.get("baselines", {}).items():
        title = COLUMN_TITLES[name]
        if "refused" in note:
            lines.append(f"{title}: {note['refused']}")
        else:
            extra = (f" (lambda {note['lambda']:g} chosen on {note['lambda_chosen_on']})"
                     if "lambda" in note else "")
            lines.append(f"{title}: fitted on {note['fitted_on']}{extra}")
    return "\n".join(lines)


# --- leave one file out --------------------------------------------------------------

HEADLINE = {"joint_angles": ("joint_angle_error_deg", "mpjpe_mm", "fingertip_error_mm"),
            "keypoints": ("mpjpe_mm", "fingertip_error_mm", "joint_angle_error_deg"),
            "values": ("mean_r2", "mae")}
"""The figures :func:`cross_validate` summarises over folds, per output convention."""


def cross_validate(recordings: Sequence[Recording], settings: TrainSettings,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Leave one file out: per fold, train on the other recordings (their chronological
    train / validation split; no test part) and score the held-out one whole, baselines
    fitted on the training files. Returns the folds and, per model and headline figure,
    the mean and standard deviation over folds."""
    if len(recordings) < 2:
        raise DataError("leave-one-file-out needs at least 2 recordings")
    fold_settings = replace(settings, test_fraction=0.0)
    folds = []
    for k, held in enumerate(recordings):
        others = [r for j, r in enumerate(recordings) if j != k]
        if progress is not None:
            progress(f"fold {k + 1}/{len(recordings)}: test {Path(held.source).name}, train "
                     f"{_describe(others)}")
        trained = train(others, fold_settings)
        result = evaluate(trained.checkpoint, [held], split="all", train_recordings=others)
        result.pop("_arrays", None)
        result["test_file"] = held.source
        result["train_files"] = [r.source for r in others]
        folds.append(result)
    keys = HEADLINE[settings.output]
    summary: dict = {}
    for name in COLUMN_TITLES:
        per = [f["models"].get(name, {}) for f in folds]
        summary[name] = {}
        for key in keys:
            vals = [m[key] for m in per if m.get(key) is not None]
            if len(vals) == len(folds):
                summary[name][key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)),
                                      "folds": [float(v) for v in vals]}
        if not summary[name]:
            summary.pop(name)
    error = keys[0]
    if error != "mean_r2" and error in summary.get("train_mean", {}):
        gains = [1.0 - f["models"]["model"][error] / f["models"]["train_mean"][error]
                 for f in folds]
        summary["model"]["gain_over_train_mean"] = {
            "mean": float(np.mean(gains)), "std": float(np.std(gains)),
            "folds": [float(g) for g in gains]}
    return {"protocol": "leave one file out", "output": settings.output,
            "settings": settings.to_dict(), "folds": folds, "summary": summary}


def format_cv_table(cv: dict) -> str:
    """Per fold and mean +- std over folds of the headline figures."""
    keys = HEADLINE[cv["output"]]
    models = [m for m in COLUMN_TITLES if m in cv["summary"]]
    lines = [f"leave one file out, {len(cv['folds'])} folds; {keys[0]} per fold:",
             "test file".ljust(36) + "".join(f"{COLUMN_TITLES[m]:>16}" for m in models)]
    for fold in cv["folds"]:
        row = [fold["models"].get(m, {}).get(keys[0]) for m in models]
        lines.append(Path(fold["test_file"]).name[:35].ljust(36) + "".join(
            f"{'-':>16}" if v is None else f"{v:16.3f}" for v in row))
    for key in keys:
        cells = []
        for m in models:
            stat = cv["summary"][m].get(key)
            cells.append(f"{'-':>16}" if stat is None else
                         f"{stat['mean']:9.3f} ±{stat['std']:5.3f}".rjust(16))
        lines.append(f"mean ± std {key}".ljust(36) + "".join(cells))
    gain = cv["summary"].get("model", {}).get("gain_over_train_mean")
    if gain is not None:
        lines.append(f"model vs train mean: {100 * gain['mean']:.1f} % lower {keys[0]} "
                     f"(± {100 * gain['std']:.1f} %)")
    lines.append("baselines fitted on each fold's training files")
    return "\n".join(lines)
