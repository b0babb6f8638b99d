"""Training reports: one JSON with every figure and one PNG (loss curves, per-output
error, predicted vs true traces on the test split). matplotlib with the Agg backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .checkpoint import _jsonable


def _strip_arrays(result: dict | None) -> dict | None:
    if result is None:
        return None
    return {k: v for k, v in result.items() if not k.startswith("_")}


def write_report(out_dir: str | Path, name: str, checkpoint, history: list,
                 evaluation: dict | None, split_arrays: dict | None = None) -> dict[str, Path]:
    """Write ``<name>.json`` and ``<name>.png`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "checkpoint": checkpoint.describe(),
        "network": checkpoint.network.to_dict(),
        "preprocess": {k: v for k, v in checkpoint.preprocess.to_dict().items()
                       if k not in ("mean", "std")},
        "training": {k: v for k, v in checkpoint.training.items() if k != "history"},
        "history": [h if isinstance(h, dict) else h.__dict__ for h in history],
        "metrics": checkpoint.metrics,
        "evaluation": _strip_arrays(evaluation),
    }
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(_jsonable(doc), indent=2, allow_nan=True))
    png_path = out_dir / f"{name}.png"
    _plot(png_path, checkpoint, doc["history"], evaluation, split_arrays)
    return {"json": json_path, "png": png_path}


def _plot(path: Path, ckpt, history: list[dict], evaluation: dict | None,
          split_arrays: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13, 9), constrained_layout=True)
    grid = fig.add_gridspec(3, 2)
    ax = fig.add_subplot(grid[0, 0])
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("loss")
    ax.legend()

    ax = fig.add_subplot(grid[0, 1])
    if evaluation is not None:
        models = evaluation["models"]
        if ckpt.output == "values":
            names = list(evaluation["output_names"])
            width = 0.8 / len(models)
            for i, (label, m) in enumerate(models.items()):
                r2 = [np.nan if (m.get("r2") or {}).get(n) is None else m["r2"][n] for n in names]
                ax.bar(np.arange(len(names)) + i * width, r2, width, label=label)
            ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
            ax.set_ylabel("R²")
        else:
            per = models["model"].get("joint_angle_error_deg_per_joint", {})
            ax.bar(range(len(per)), list(per.values()))
            ax.set_xticks(range(len(per)), list(per), rotation=90, fontsize=7)
            ax.set_ylabel("mean abs error [deg]")
        ax.set_title(f"{evaluation['split']} split per output")
        ax.legend(fontsize=8) if ckpt.output == "values" else None

    arrays = (split_arrays or {}).get("test") or (split_arrays or {}).get("val")
    ax = fig.add_subplot(grid[1:, :])
    if arrays is not None and len(arrays["true"]):
        first = arrays["source"] == arrays["source"][0]
        true, pred = arrays["true"][first], arrays["pred"][first]
        t = np.arange(len(true)) * ckpt.training.get("settings", {}).get("eval_hop_s", 1.0)
        show = list(range(min(5, true.shape[1])))
        if ckpt.output == "joint_angles":  # the MCP flexions show the most motion
            show = [i for i, n in enumerate(ckpt.output_names) if n.endswith("mcp_fe")][:5]
        offset = 0.0
        for i in show:
            span = max(float(np.ptp(true[:, i])), 1e-6)
            ax.plot(t, true[:, i] / span + offset, color="k", lw=1)
            ax.plot(t, pred[:, i] / span + offset, lw=1, label=ckpt.output_names[i])
            offset += 1.3
        ax.set_xlabel("time in split [s]")
        ax.set_yticks([])
        ax.set_title("predicted (colour) vs true (black), each output scaled to its range")
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(ckpt.describe(), fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
