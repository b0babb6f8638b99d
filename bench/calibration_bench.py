#!/usr/bin/env python3
"""Benchmark: how much calibration to a new wearer helps, and how long it takes (offline).

    scripts/with-env python bench/calibration_bench.py            # 3 sessions, 60 and 120 s
    scripts/with-env python bench/calibration_bench.py --quick --json bench/out/calibration.json

The shipped default model was trained on the simulator's wearer A. Wearer B (armband rotated
0.6 electrode spacings, uneven electrode gains, weaker signals: ``emg_driver.sim.wearer_b``)
is generated here for a few sessions (seeds): the first ``calibration_s`` seconds are the
calibration recording with its reference pose (what reference-mode calibration records), the
last 150 s are the test. :func:`emg_pose_node.training.finetune` runs with the node's
default settings (input adapter, then head) and, for comparison, head only. Figures: the
mean joint-angle error on the test part before and after, the relative drop (target >= 40 %,
the headline test's threshold) and the fine-tune wall time (1 torch thread, as the node's
``training_threads`` default).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emg_driver.sim import ArmbandSimulator, SimConfig, wearer_b
from emg_hand_core.recordings import Recording
from emg_pose_node.checkpoint import load_checkpoint
from emg_pose_node.evaluation import evaluate
from emg_pose_node.training import FinetuneSettings, finetune

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "src" / "emg_pose_node" / "models" / "default.safetensors"
TEST_S = 150.0
METHODS = {"adapter + head (default)": FinetuneSettings(),
           "head only": FinetuneSettings(adapter_epochs=0)}


def wearer_b_session(seed: int, seconds: float, rate: float = 500.0) -> tuple[np.ndarray, ...]:
    sim = ArmbandSimulator(SimConfig(sample_rate_hz=rate, wearer=wearer_b(8)), seed=seed)
    emg, q = sim.generate(int(round(seconds * rate)))
    return emg, q


def error_deg(ckpt, emg: np.ndarray, q: np.ndarray) -> float:
    rec = Recording(emg=emg, sample_rate_hz=ckpt.sample_rate_hz,
                    channel_names=ckpt.channel_names, joint_angles=q, source="wearer b test")
    result = evaluate(ckpt, [rec], split="all", baselines=False)
    return float(result["models"]["model"]["joint_angle_error_deg"])


def run(seeds: list[int], calibration_s: list[float]) -> dict:
    torch.set_num_threads(1)
    ckpt = load_checkpoint(MODEL)
    rate = ckpt.sample_rate_hz
    out: dict = {"sessions": {}}
    for seed in seeds:
        emg, q = wearer_b_session(seed, max(calibration_s) + TEST_S, rate)
        test = slice(len(emg) - int(TEST_S * rate), None)
        session = {"before_deg": error_deg(ckpt, emg[test], q[test])}
        for cal in calibration_s:
            n = int(cal * rate)
            for name, settings in METHODS.items():
                t0 = time.perf_counter()
                res = finetune(ckpt, emg[:n], q[:n], settings)
                wall = time.perf_counter() - t0
                after = error_deg(res.checkpoint, emg[test], q[test])
                session[f"{name}, {cal:.0f} s"] = {
                    "after_deg": after, "drop": 1.0 - after / session["before_deg"],
                    "accepted": res.accepted, "finetune_s": wall}
                print(f"seed {seed} {name:<26} {cal:4.0f} s: {session['before_deg']:5.2f} -> "
                      f"{after:5.2f} deg ({100 * (1 - after / session['before_deg']):4.1f} % "
                      f"drop), fine-tune {wall:5.1f} s", flush=True)
        out["sessions"][seed] = session
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 session, 60 s calibration")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if not MODEL.is_file():
        print(f"calibration_bench: no default model at {MODEL}; run 'make default-model'",
              file=sys.stderr)
        return 2
    seeds = [3] if args.quick else [3, 4, 5]
    calibration_s = [60.0] if args.quick else [60.0, 120.0]
    r = run(seeds, calibration_s)
    sessions = list(r["sessions"].values())
    figures = [{"what": f"calibration, wearer A model on wearer B ({len(seeds)} session(s)): "
                        "error before", "value": float(np.mean([s["before_deg"] for s in
                                                                sessions])), "unit": "deg"}]
    for cal in calibration_s:
        for name in METHODS:
            key = f"{name}, {cal:.0f} s"
            figures += [
                {"what": f"calibration {key}: error after",
                 "value": float(np.mean([s[key]["after_deg"] for s in sessions])),
                 "unit": "deg"},
                {"what": f"calibration {key}: error drop (worst session)",
                 "value": 100.0 * min(s[key]["drop"] for s in sessions), "unit": "%",
                 "target": ">= 40" if name == next(iter(METHODS)) else ""},
                {"what": f"calibration {key}: fine-tune wall time (1 thread)",
                 "value": float(np.median([s[key]["finetune_s"] for s in sessions])),
                 "unit": "s", "target": "< 15"}]
    for f in figures:
        print(f"{f['what']:<78} {f['value']:>10.2f} {f['unit']}"
              + (f"  (target {f['target']})" if f.get("target") else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"name": "calibration", "machine": platform.platform(),
                                         "figures": figures, "details": r}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
