#!/usr/bin/env python3
"""Across sessions: leave-one-file-out of training recipes, the number users live with.

    PYTHONPATH=src/emg_pose_node python bench/cross_session.py [--datasets prompted,sim]
        [--variants base,adapt,...] [--seeds 0,1] [--json PATH] [--quick]

Every run is exactly the console script::

    emg_pose_eval --cv file FILE... <RECIPE> <VARIANT> --seed S --json

(one model per fold trained on the other files, scored whole on the held-out one; the
ridge and training-mean baselines fitted on that fold's training files). Datasets:

* ``prompted``: ``../shared/data/eeg_emg_hands/s_04_29_25/r_1`` and ``r_3`` (8 channels,
  250 Hz, raw BrainFlow uV, the per-finger 0/1 prompts as targets): two runs of one day;
  figure: mean R² of the 5 fingers.
* ``sim``: three sessions of the simulated armband, each put on anew (electrode shift
  0, +0.4, -0.35 spacings, electrode gains log-normal 0.25, seeds 0..2), joint angles;
  figure: joint-angle error [deg] (``--seconds`` each).

Variants are training flags added to the dataset's recipe (``VARIANTS``). The table
prints, per dataset and variant, the figure of the model (mean over folds, then over
seeds; the spread is over folds and seeds), of the ridge and the training mean, and the
model's gain over the training mean.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for pkg in ("emg_pose_node", "emg_hand_core", "emg_driver"):
    sys.path.insert(0, str(ROOT / "src" / pkg))

from emg_pose_node.cli import eval_main  # noqa: E402

RECIPES = {
    "prompted": ["--preset", "fingers_125hz", "--model-rate-hz", "125", "--highpass-hz", "20"],
    "sim": ["--preset", "default", "--epochs", "10", "--hop-s", "0.04"],
}
VARIANTS = {
    "base": [],
    "adapt": ["--adapt-norm-s", "10"],
    "rotation": ["--rotation-augment", "1"],
    "gain_noise": ["--gain-augment", "0.2", "--amplitude-augment", "0.3", "--noise-augment",
                   "0.1"],
    "small": ["--conv-channels", "16", "--lstm-hidden", "32", "--fc-hidden", "32",
              "--dropout", "0.5", "--weight-decay", "0.05"],
}
FIGURE = {"prompted": "mean_r2", "sim": "joint_angle_error_deg"}


def shared_data() -> Path | None:
    if os.environ.get("EMG_HAND_SHARED_DATA"):
        return Path(os.environ["EMG_HAND_SHARED_DATA"])
    for parent in (ROOT, *ROOT.parents):
        if (parent.parent / "shared" / "data").is_dir():
            return parent.parent / "shared" / "data"
    return None


def sim_sessions(folder: Path, seconds: float) -> list[Path]:
    """Three sessions of one simulated wearer, the armband put on anew each time."""
    from emg_driver.sim import ArmbandSimulator, SimConfig, WearerConfig
    from emg_hand_core.recordings import Recording, emg2pose

    paths = []
    for k, shift in enumerate((0.0, 0.4, -0.35)):
        gains = np.exp(np.random.default_rng(100 + k).normal(0.0, 0.25, 8))
        wearer = WearerConfig(electrode_shift=shift, channel_gains=tuple(gains.tolist()))
        sim = ArmbandSimulator(SimConfig(sample_rate_hz=500.0, wearer=wearer), seed=k)
        emg, q = sim.generate(int(seconds * 500))
        path = folder / f"sim_session{k + 1}.h5"
        emg2pose.write(path, Recording(emg=emg, sample_rate_hz=500.0, joint_angles=q,
                                       channel_names=tuple(f"ch_{i + 1}" for i in range(8))))
        paths.append(path)
    return paths


def run(files: list[Path], recipe: list[str], variant: list[str], seed: int) -> dict:
    args = ["--cv", "file", *map(str, files), *recipe, *variant, "--seed", str(seed),
            "--threads", "1", "--no-progress", "--json"]
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = eval_main(args)
    if code != 0:
        raise SystemExit(f"emg_pose_eval {' '.join(args)} failed:\n{err.getvalue()}")
    cv = json.loads(out.getvalue())
    cv["seconds"] = time.perf_counter() - t0
    cv["command"] = "emg_pose_eval " + " ".join(args[:-1])
    return cv


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="prompted,sim")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--extra", action="append", default=[], metavar="NAME=FLAGS",
                   help="another variant, e.g. 'both=--adapt-norm-s 10 --noise-augment 0.1'")
    p.add_argument("--recipe", action="append", default=[], metavar="DATASET=FLAGS",
                   help="replace a dataset's recipe, e.g. 'prompted=--model-rate-hz 125'")
    p.add_argument("--seeds", default="0")
    p.add_argument("--seconds", type=float, default=90.0, help="sim: seconds per session")
    p.add_argument("--json", help="write every run here")
    args = p.parse_args(argv)
    variants = {name: VARIANTS[name] for name in args.variants.split(",") if name}
    for extra in args.extra:
        name, _, flags = extra.partition("=")
        variants[name] = flags.split()
    for recipe in args.recipe:
        name, _, flags = recipe.partition("=")
        RECIPES[name] = flags.split()
    seeds = [int(s) for s in args.seeds.split(",")]
    data = shared_data()
    tmp = tempfile.TemporaryDirectory()
    datasets = {}
    for name in args.datasets.split(","):
        if name == "prompted":
            if data is None:
                print("prompted: skipped, ../shared/data not found")
                continue
            run_dir = data / "eeg_emg_hands" / "s_04_29_25"
            datasets[name] = [run_dir / "r_1", run_dir / "r_3"]
        elif name == "sim":
            datasets[name] = sim_sessions(Path(tmp.name), args.seconds)
    runs = []
    print(f"{'dataset':10} {'variant':12} {'figure':22} {'model':>16} {'ridge':>8} "
          f"{'train mean':>10} {'gain':>7} {'s/run':>6}")
    for ds, files in datasets.items():
        key = FIGURE[ds]
        for vname, flags in variants.items():
            cvs = [run(files, RECIPES[ds], flags, seed) for seed in seeds]
            runs += [{"dataset": ds, "variant": vname, "seed": s, **cv}
                     for s, cv in zip(seeds, cvs)]
            folds = [v for cv in cvs for v in cv["summary"]["model"][key]["folds"]]
            ridge = np.mean([cv["summary"].get("ridge", {}).get(key, {}).get("mean", np.nan)
                             for cv in cvs])
            mean = np.mean([cv["summary"].get("train_mean", {}).get(key, {}).get(
                "mean", np.nan) for cv in cvs])
            gain = cvs[0]["summary"]["model"].get("gain_over_train_mean")
            gains = [cv["summary"]["model"]["gain_over_train_mean"]["mean"] for cv in cvs
                     ] if gain else []
            print(f"{ds:10} {vname:12} {key:22} {np.mean(folds):9.3f} ±{np.std(folds):5.3f} "
                  f"{ridge:8.3f} {mean:10.3f} "
                  + (f"{100 * np.mean(gains):6.1f}%" if gains else f"{'-':>7}")
                  + f" {np.mean([cv['seconds'] for cv in cvs]):6.0f}", flush=True)
    print("command per run:", runs[0]["command"] if runs else "-")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
