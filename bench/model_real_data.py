#!/usr/bin/env python3
"""Real-data result: finger values from 10-channel forearm sEMG at 125 Hz.

    PYTHONPATH=src/emg_pose_node python bench/model_real_data.py [--seeds 0,1,2]
        [--quick] [--json PATH] [--data CSV] [--keep DIR]

Data: ``<repo>/../shared/data/eeg_emg_hands/s_0/emg_mp_1734156561.csv`` (or
``$EMG_HAND_SHARED_DATA/...``): 150 s, 5 finger values in [0, 1], channels ch_1..ch_10.
Split (preset ``fingers_125hz``): chronological; the last 20 % is the test set; the
12 % before it is the validation set (early stopping, learning-rate schedule); training
uses the first 68 %.
For every seed this runs exactly the console scripts::

    emg_pose_train CSV <TRAIN_ARGS> --seed S --out MODEL
    emg_pose_eval --checkpoint MODEL CSV --json

and prints per-finger R² of the model and of the ridge baseline (log RMS/MAV window
features, regularisation chosen on the validation split) on the same test windows.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "emg_pose_node"))

from emg_pose_node.cli import eval_main, train_main  # noqa: E402

CHANNELS = ",".join(f"ch_{i}" for i in range(1, 11))
TRAIN_ARGS = ["--preset", "fingers_125hz", "--channels", CHANNELS, "--threads", "1",
              "--no-progress"]  # the preset: emg_pose_node/training.py PRESETS
FINGERS = ("thumb", "index", "middle", "ring", "pinky")


def data_path(arg: str | None) -> Path:
    """--data, else $EMG_HAND_SHARED_DATA, else the first ``<ancestor>/../shared/data`` of
    the repository (the test harness's rule)."""
    if arg:
        return Path(arg)
    rel = Path("eeg_emg_hands") / "s_0" / "emg_mp_1734156561.csv"
    if os.environ.get("EMG_HAND_SHARED_DATA"):
        return Path(os.environ["EMG_HAND_SHARED_DATA"]) / rel
    for parent in (ROOT, *ROOT.parents):
        if (parent.parent / "shared" / "data").is_dir():
            return parent.parent / "shared" / "data" / rel
    return ROOT.parent / "shared" / "data" / rel


def run_seed(csv: Path, seed: int, out_dir: Path, extra: list[str]) -> dict:
    model = out_dir / f"real_seed{seed}.safetensors"
    args = [str(csv), *TRAIN_ARGS, *extra, "--seed", str(seed), "--out", str(model)]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        if train_main(args) != 0:
            raise SystemExit(f"emg_pose_train failed for seed {seed}")
    train_s = time.perf_counter() - t0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if eval_main(["--checkpoint", str(model), str(csv), "--json"]) != 0:
            raise SystemExit(f"emg_pose_eval failed for seed {seed}")
    result = json.loads(buf.getvalue())
    result["train_seconds"] = train_s
    result["command"] = "emg_pose_train " + shlex.join(args)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--quick", action="store_true", help="one seed, 8 epochs (a smoke run)")
    p.add_argument("--data", help="the CSV (default: shared data)")
    p.add_argument("--json", help="write all figures to this JSON file")
    p.add_argument("--keep", help="keep the trained checkpoints in this folder")
    args = p.parse_args(argv)
    csv = data_path(args.data)
    if not csv.exists():
        print(f"skipped: real data not found at {csv}")
        return 0
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    extra = ["--epochs", "8"] if args.quick else []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.keep or tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        runs = [run_seed(csv, s, out_dir, extra) for s in seeds]
    model_r2 = np.array([[r["models"]["model"]["r2"][f] for f in FINGERS] for r in runs])
    ridge_r2 = np.array([runs[0]["models"]["ridge"]["r2"][f] for f in FINGERS])
    mean_r2 = np.array([[r["models"]["train_mean"]["r2"][f] for f in FINGERS] for r in runs])[0]
    print(f"data: {csv} ({runs[0]['windows']} test windows, last "
          f"{runs[0]['fractions']['test']:.0%} of the recording)")
    print(f"command per seed: {runs[0]['command'].replace(str(out_dir), '<dir>')}")
    print(f"{'R² on the test split':24}{'model (mean of ' + str(len(seeds)) + ')':>20}"
          f"{'min':>8}{'ridge':>10}{'train mean':>12}")
    for i, finger in enumerate(FINGERS):
        print(f"{finger:24}{model_r2[:, i].mean():20.3f}{model_r2[:, i].min():8.3f}"
              f"{ridge_r2[i]:10.3f}{mean_r2[i]:12.3f}")
    per_seed = model_r2.mean(axis=1)
    print(f"{'mean over fingers':24}{per_seed.mean():20.3f}{per_seed.min():8.3f}"
          f"{ridge_r2.mean():10.3f}{mean_r2.mean():12.3f}")
    print("per seed mean R²: " + ", ".join(f"seed {s}: {v:.3f}" for s, v in zip(seeds, per_seed)))
    print(f"training time per seed: {np.mean([r['train_seconds'] for r in runs]):.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "data": str(csv), "seeds": seeds, "train_args": TRAIN_ARGS + extra,
            "model_r2_per_seed": {str(s): dict(zip(FINGERS, row.tolist()))
                                  for s, row in zip(seeds, model_r2)},
            "model_mean_r2_per_seed": dict(zip(map(str, seeds), per_seed.tolist())),
            "ridge_r2": dict(zip(FINGERS, ridge_r2.tolist())),
            "ridge_mean_r2": float(ridge_r2.mean()),
            "runs": runs}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
