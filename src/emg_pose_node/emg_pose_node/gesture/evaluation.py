"""Evaluating gesture models on held-out sessions: accuracy, balanced accuracy, per-class
recall, confusion matrix, decision latency; tables, JSON and a confusion-matrix PNG.

Every window of a test session counts (every ``hop`` of the model, also those at label
changes), its label the class of its last sample. Each session is run in time order
through :meth:`~.classifier.GestureClassifier.session` (the causal armband-rotation estimate
included), exactly as the live node would see it. Decision latency is the compute time of
one decision (one window through the model, single-threaded as configured), timed over
``latency_repeats`` windows; the signal itself lags by the window (``window_ms``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .checkpoint import GestureCheckpoint
from .classifier import GestureClassifier
from .data import Session, make_windows


def classification_metrics(y: np.ndarray, pred: np.ndarray,
                           class_names: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy (mean recall over classes present), recall per class
    (None for a class without windows) and the confusion matrix (rows: true, columns:
    predicted; counts)."""
    k = len(class_names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y, pred), 1)
    support = confusion.sum(axis=1)
    recall = [float(confusion[i, i] / support[i]) if support[i] else None for i in range(k)]
    present = [r for r in recall if r is not None]
    return {"accuracy": float(np.mean(y == pred)) if len(y) else float("nan"),
            "balanced_accuracy": float(np.mean(present)) if present else float("nan"),
            "recall": dict(zip(class_names, recall)), "support": dict(zip(class_names,
                                                                          support.tolist())),
            "confusion": confusion.tolist(), "class_names": list(class_names),
            "windows": int(len(y))}


def decision_latency_ms(clf: GestureClassifier, windows: np.ndarray,
                        repeats: int = 200) -> dict:
    """p50/p99 compute time [ms] of a single decision (one window at a time)."""
    if not len(windows):
        return {}
    times = []
    idx = np.linspace(0, len(windows) - 1, min(repeats, len(windows))).astype(int)
    clf.probabilities(windows[idx[:1]])  # warm up
    for i in idx:
        t0 = time.perf_counter()
        clf.probabilities(windows[i:i + 1])
        times.append((time.perf_counter() - t0) * 1e3)
    return {"compute_ms_p50": float(np.percentile(times, 50)),
            "compute_ms_p99": float(np.percentile(times, 99)), "repeats": len(times)}


def evaluate_gesture(ckpt: GestureCheckpoint, sessions: Sequence[Session],
                     latency_repeats: int = 200) -> dict:
    """Metrics of ``ckpt`` over the test sessions (module docstring)."""
    clf = GestureClassifier(ckpt)
    ys, preds, shifts, per_session = [], [], {}, {}
    last = None
    for session in sessions:
        w = make_windows(session.recordings, ckpt.window, ckpt.hop, ckpt.class_names,
                         ckpt.preprocess)
        probabilities, shift = clf.session(w.x)
        pred = probabilities.argmax(axis=1)
        ys.append(w.y)
        preds.append(pred)
        values, counts = np.unique(shift, return_counts=True)
        shifts[session.name] = {int(v): int(n) for v, n in zip(values, counts)}
        per_session[session.name] = float(np.mean(pred == w.y))
        last = w
    result = classification_metrics(np.concatenate(ys), np.concatenate(preds), ckpt.class_names)
    result.update(
        kind=ckpt.kind, per_session_accuracy=per_session, ring_shifts=shifts,
        decision_latency=dict(decision_latency_ms(clf, last.x, latency_repeats),
                              window_ms=ckpt.window_s * 1e3, hop_ms=ckpt.hop_s * 1e3),
        sessions=[s.name for s in sessions])
    return result


def format_table(rows: Sequence[tuple[str, dict]]) -> str:
    """One line per model: accuracy, balanced accuracy, decision compute time."""
    lines = [f"{'model':28s} {'accuracy':>9s} {'balanced':>9s} {'p50 ms':>7s} {'p99 ms':>7s} "
             f"{'windows':>8s}"]
    for name, r in rows:
        lat = r.get("decision_latency", {})
        lines.append(f"{name:28s} {r['accuracy']:9.3f} {r['balanced_accuracy']:9.3f} "
                     f"{lat.get('compute_ms_p50', float('nan')):7.3f} "
                     f"{lat.get('compute_ms_p99', float('nan')):7.3f} {r['windows']:8d}")
    names = rows[0][1]["class_names"] if rows else []
    if names:
        lines.append("recall per class:")
        lines.append(f"{'model':28s} " + " ".join(f"{n[:10]:>10s}" for n in names))
        for name, r in rows:
            lines.append(f"{name:28s} " + " ".join(
                f"{r['recall'].get(n):10.3f}" if r["recall"].get(n) is not None else
                f"{'-':>10s}" for n in names))
    return "\n".join(lines)


def write_confusion(result: dict, png: str | Path, title: str = "") -> Path:
    """The confusion matrix as a PNG (rows normalised to recall, counts written in)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result["class_names"]
    counts = np.asarray(result["confusion"], dtype=np.float64)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    size = 1.2 + 0.7 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(rows, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_title(title or f"accuracy {result['accuracy']:.3f}, balanced "
                 f"{result['balanced_accuracy']:.3f}")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def write_report(directory: str | Path, name: str, rows: Sequence[tuple[str, dict]],
                 extra: dict | None = None) -> dict[str, Path]:
    """``<name>.json`` (every row's metrics and ``extra``) and ``<name>_<row>.png`` per row."""
    from ..checkpoint import _jsonable

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / f"{name}.json"}
    for row, result in rows:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in row)
        paths[row] = write_confusion(result, directory / f"{name}_{safe}.png",
                                     f"{row}: accuracy {result['accuracy']:.3f}")
    doc = {"models": {row: result for row, result in rows}, **(extra or {})}
    paths["json"].write_text(json.dumps(_jsonable(doc), indent=1, allow_nan=True))
    return paths


__all__ = ["classification_metrics", "decision_latency_ms", "evaluate_gesture", "format_table",
           "write_confusion", "write_report"]
