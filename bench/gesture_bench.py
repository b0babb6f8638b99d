#!/usr/bin/env python3
"""Gesture recognition across sessions on myo_readings (5 participants x 3 sessions, 8 classes).

    PYTHONPATH=src/emg_pose_node python bench/gesture_bench.py [--quick] [--json PATH]
        [--models lda_td,lda_logtd,cnn_lstm,lstm_fin] [--participants 10000,12345]

Protocol (the dataset's own): within participant, train on sessions 1 and 2, test on
session 3; windows of 200 ms every 50 ms, every window of session 3 counted (also those at
label changes), label = the class of the window's last sample. Each model is trained with
its preset (``emg_pose_node.gesture.training.PRESETS``: ``lda_td`` is the field's baseline,
LDA on Hudgins' time-domain features; the others search the armband rotation, estimated
causally from the unlabelled stream as live) through the same functions as
``emg_gesture_train --train P-1 P-2 --test P-3 --preset NAME``. Also measured: a decision's
compute time (p50/p99 over single windows, 1 thread), and a 60 s guided calibration on
session 3 from the session-1+2 model: the first 60/7 s of every gesture file of session 3
(rest, then the gesture, labelled as the dataset labels them) calibrate the model, the rest
of session 3 is scored before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "emg_pose_node"))
sys.path.insert(0, str(ROOT / "src" / "emg_hand_core"))

from emg_pose_node.gesture.data import Session, gesture_labels, load_session  # noqa: E402
from emg_pose_node.gesture.evaluation import evaluate_gesture  # noqa: E402
from emg_pose_node.gesture.training import (  # noqa: E402
    PRESETS,
    GestureTrainSettings,
    calibrate_gesture,
    train_gesture,
)

PARTICIPANTS = ("10000", "12345", "12548", "19999", "45612")
CALIBRATION_S = 60.0


def data_root() -> Path:
    """myo_readings/right_hand in ../shared/data (or $EMG_HAND_SHARED_DATA): the tests' rule."""
    from emg_hand_testing.pytest_plugin import find_shared_data

    shared = find_shared_data(ROOT) or ROOT.parent / "shared" / "data"
    return shared / "myo_readings" / "right_hand"


def calibration_split(session: Session, seconds: float, window: int):
    """(emg, labels) of the first seconds/k of each of the k gesture files (labels at the
    joins left out for one window), and the rest of the session as a test Session."""
    files = [r for r in session.recordings if np.any(gesture_labels(r)[0] > 0)]
    gesture_files = {id(r) for r in files}
    per_file = int(round(seconds / len(files) * files[0].sample_rate_hz))
    emg, labels, rest = [], [], []
    for rec in session.recordings:
        if id(rec) in gesture_files:
            lab = gesture_labels(rec)[0][:per_file].copy()
            lab[:window - 1] = -1  # no window across the join
            emg.append(rec.emg[:per_file])
            labels.append(lab)
            rest.append(rec.slice(per_file, rec.num_samples))
        else:
            rest.append(rec)
    return np.concatenate(emg), np.concatenate(labels), Session(session.name + "-rest", rest)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="2 participants; LDA models and the CNN-LSTM for 2 epochs")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--models", default="lda_td,lda_logtd,cnn_lstm,lstm_fin")
    ap.add_argument("--participants", default=",".join(PARTICIPANTS))
    ap.add_argument("--calibrate", default="lda_logtd,cnn_lstm,lstm_fin",
                    help="models to run the guided-calibration figure for")
    args = ap.parse_args()
    root = data_root()
    if not root.is_dir():
        print(f"gesture_bench: myo_readings not found at {root}; skipped", file=sys.stderr)
        if args.json:
            Path(args.json).write_text(json.dumps({"skipped": str(root), "figures": []}))
        return 0
    models = args.models.split(",")
    participants = args.participants.split(",")
    if args.quick:
        participants = participants[:2]
        models = [m for m in models if m != "lstm_fin"]
    extra = dict(epochs=2, fin_epochs=2) if args.quick else {}
    results: dict = {"participants": {}, "notes": []}
    for p in participants:
        t0 = time.perf_counter()
        train = [load_session(root / f"{p}-1"), load_session(root / f"{p}-2")]
        test = load_session(root / f"{p}-3")
        for s in (*train, test):
            results["notes"] += [f"{s.name}/{n}" for n in s.notes()]
        row: dict = {}
        for name in models:
            settings = GestureTrainSettings(**dict(PRESETS[name], threads=1, **(
                extra if name not in ("lda_td", "lda_logtd") else {})))
            t = time.perf_counter()
            trained = train_gesture(train, settings)
            train_s = time.perf_counter() - t
            ev = evaluate_gesture(trained.checkpoint, [test], latency_repeats=300)
            row[name] = {"accuracy": ev["accuracy"], "balanced_accuracy": ev["balanced_accuracy"],
                         "recall": ev["recall"], "ring_shifts": ev["ring_shifts"],
                         "latency": ev["decision_latency"], "train_s": round(train_s, 1),
                         "fin_r2": trained.fin_r2}
            if name in args.calibrate.split(","):
                emg, labels, rest = calibration_split(test, CALIBRATION_S,
                                                      trained.checkpoint.window)
                before = evaluate_gesture(trained.checkpoint, [rest], latency_repeats=1)
                t = time.perf_counter()
                cal = calibrate_gesture(trained.checkpoint, emg, labels)
                cal_s = time.perf_counter() - t
                after = evaluate_gesture(cal.checkpoint, [rest], latency_repeats=1)
                row[name]["calibration"] = {
                    "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
                    "accepted": cal.accepted, "heldout_before": cal.accuracy_before,
                    "heldout_after": cal.accuracy_after, "seconds": round(cal_s, 2),
                    "seconds_used": cal.seconds_used}
            print(f"{p} {name}: accuracy {ev['accuracy']:.3f} (train {train_s:.0f} s, p50 "
                  f"{ev['decision_latency']['compute_ms_p50']:.3f} ms)"
                  + (f", calibrated {row[name]['calibration']['accuracy_before']:.3f} -> "
                     f"{row[name]['calibration']['accuracy_after']:.3f}"
                     if "calibration" in row[name] else ""), flush=True)
        results["participants"][p] = row
        print(f"{p}: {time.perf_counter() - t0:.0f} s", flush=True)
    figures = []
    for name in models:
        accs = [results["participants"][p][name]["accuracy"] for p in participants]
        figures.append({"what": f"gesture {name}: mean accuracy, myo_readings train 1+2 test 3 "
                        f"({len(participants)} participants)", "value": float(np.mean(accs)),
                        "unit": "", "target": ">= 0.85 (best model)" if name != "lda_td"
                        else "baseline"})
        figures.append({"what": f"gesture {name}: worst participant", "value": float(min(accs)),
                        "unit": "", "target": ""})
        lat = [results["participants"][p][name]["latency"] for p in participants]
        figures.append({"what": f"gesture {name}: decision compute p50 / p99 (1 thread)",
                        "value": f"{np.median([d['compute_ms_p50'] for d in lat]):.3f} / "
                                 f"{np.median([d['compute_ms_p99'] for d in lat]):.3f}",
                        "unit": "ms", "target": "< 2"})
        cals = [results["participants"][p][name].get("calibration") for p in participants]
        if all(cals):
            figures.append({"what": f"gesture {name}: 60 s guided calibration on session 3, "
                            "accuracy on the rest of session 3 before -> after",
                            "value": f"{np.mean([c['accuracy_before'] for c in cals]):.3f} -> "
                                     f"{np.mean([c['accuracy_after'] for c in cals]):.3f}",
                            "unit": "", "target": ""})
    base = {p: results["participants"][p].get("lda_td", {}).get("accuracy") for p in participants}
    for name in models:
        if name == "lda_td" or None in base.values():
            continue
        above = sum(results["participants"][p][name]["accuracy"] > base[p] for p in participants)
        figures.append({"what": f"gesture {name}: participants above the LDA baseline",
                        "value": f"{above}/{len(participants)}", "unit": "",
                        "target": "all (best model)"})
    results["figures"] = figures
    for f in figures:
        print(f"{f['what']}: {f['value']} {f['unit']}")
    print("per participant:")
    print("participant " + " ".join(f"{m:>10s}" for m in models))
    for p in participants:
        print(f"{p:11s} " + " ".join(f"{results['participants'][p][m]['accuracy']:10.3f}"
                                      for m in models))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
