"""Metrics of a model on a split of recordings, next to two baselines on the same windows.

Baselines (fitted on the training split of the same recordings, same windows and targets):

* ``train_mean``: always predicts the mean training target.
* ``ridge``: ridge regression on per-channel window features, log RMS and log MAV of the
  (preprocessing-filtered) EMG of each window, standardised; the regularisation is chosen
  on the validation split from a small grid.

Metrics by output convention:

* joint angles: mean absolute joint-angle error [deg] (per joint and mean), MPJPE [mm]
  and per-keypoint error [mm] through forward kinematics, per-joint R²;
* keypoints: MPJPE [mm], per-keypoint error [mm], joint-angle error [deg] through IK;
* values (e.g. finger values): per-output R², MAE and RMSE; mean R².
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from emg_hand_core.hand_model import KEYPOINT_NAMES, forward_kinematics, inverse_kinematics
from emg_hand_core.recordings import Recording

from .checkpoint import Checkpoint
from .training import TrainSettings, WindowSet, predict_set, prepare_data

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
    from emg_hand_core.hand_model import JOINT_NAMES

    out["joint_angle_error_deg"] = float(angle_err.mean())
    out["joint_angle_error_deg_per_joint"] = {n: float(v) for n, v in
                                              zip(JOINT_NAMES, angle_err.mean(0))}
    dist = 1000.0 * np.linalg.norm(kp_pred - kp_true, axis=-1)  # (N, 21) [mm]
    out["mpjpe_mm"] = float(dist[:, 1:].mean())  # the wrist is the origin in both
    out["keypoint_error_mm"] = {n: float(v) for n, v in zip(KEYPOINT_NAMES, dist.mean(0))}
    if output == "joint_angles":
        r2 = r2_scores(q_true, q_pred)
        out["r2"] = {n: _f(v) for n, v in zip(JOINT_NAMES, r2)}
        out["mean_r2"] = _f(np.nanmean(r2)) if np.any(np.isfinite(r2)) else None
    return out


def _f(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def evaluate(ckpt: Checkpoint, recordings: Sequence[Recording], split: str = "test",
             val_fraction: float | None = None, test_fraction: float | None = None,
             eval_hop_s: float | None = None, baselines: bool = True) -> dict:
    """Model and baseline metrics on ``split`` ("train", "val", "test" or "all").

    Split fractions default to the checkpoint's training split, so "test" is the data the
    model never saw when it was trained on these recordings.
    """
    stored = dict(ckpt.training.get("settings", {}))
    stored.pop("show_progress", None)
    known = set(TrainSettings.__dataclass_fields__)
    settings = TrainSettings.from_dict({k: v for k, v in stored.items() if k in known})
    settings = replace(settings, output=ckpt.output,
                       value_names=ckpt.output_names if ckpt.output == "values" else ())
    if val_fraction is not None:
        settings = replace(settings, val_fraction=val_fraction)
    if test_fraction is not None:
        settings = replace(settings, test_fraction=test_fraction)
    if eval_hop_s is not None:
        settings = replace(settings, eval_hop_s=eval_hop_s)
    data = prepare_data(recordings, settings, preprocess=ckpt.preprocess, network=ckpt.network)
    model = ckpt.build_model()
    window = ckpt.window
    ends = data.ends[split]
    ws = WindowSet(data.x, data.y, ends, window)
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
    }
    if baselines and len(ends):
        y_np = data.y.numpy()
        train_ends, val_ends = data.ends["train"], data.ends["val"]
        mean = y_np[train_ends].mean(0)
        result["models"]["train_mean"] = metrics_for(ckpt.output, names, true,
                                                     np.broadcast_to(mean, true.shape))
        filtered = np.concatenate([p.filtered for p in data.recordings])
        f_train = window_features(filtered, train_ends, window)
        f_eval = window_features(filtered, ends, window)
        lam = 1.0
        if len(val_ends):
            f_val = window_features(filtered, val_ends, window)
            errs = [np.mean((RidgeBaseline(lam_).fit(f_train, y_np[train_ends]).predict(f_val)
                             - y_np[val_ends]) ** 2) for lam_ in RIDGE_LAMBDAS]
            lam = RIDGE_LAMBDAS[int(np.argmin(errs))]
        ridge = RidgeBaseline(lam).fit(f_train, y_np[train_ends])
        metrics = metrics_for(ckpt.output, names, true, ridge.predict(f_eval))
        metrics["lambda"] = lam
        result["models"]["ridge"] = metrics
    result["_arrays"] = {"pred": pred, "true": true}
    return result


def format_table(result: dict) -> str:
    """A plain-text table: one row per figure, one column per model."""
    models = [m for m in ("model", "ridge", "train_mean") if m in result["models"]]
    cols = {"model": "model", "ridge": "ridge", "train_mean": "train mean"}
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
        add("MPJPE [mm]", lambda m: m.get("mpjpe_mm"))
        add("joint angle error [deg]", lambda m: m.get("joint_angle_error_deg"))
        for name in KEYPOINT_NAMES[1:]:  # keypoints fixed by the hand model are left out
            errors = [result["models"][m].get("keypoint_error_mm", {}).get(name) for m in models]
            if any(e for e in errors):
                add(f"  {name} [mm]", lambda m, n=name: m.get("keypoint_error_mm", {}).get(n))
    width = max(len(r[0]) for r in rows) if rows else 10
    head = f"{result['split']} split, {result['windows']} windows".ljust(width)
    lines = [head + "".join(f"{cols[m]:>12}" for m in models)]
    for label, values in rows:
        lines.append(label.ljust(width) + "".join(
            f"{'-':>12}" if v is None else f"{v:12.3f}" for v in values))
    return "\n".join(lines)
