"""Console scripts ``emg_gesture_train`` and ``emg_gesture_eval``
(also ``python -m emg_pose_node.gesture.cli train|eval ...``).

emg_gesture_train --train A [B ...] [--test C ...] --out MODEL.safetensors [options]
    Train on the --train sessions; with --test, evaluate it and the LDA baseline (Hudgins TD
    features, trained on the same --train sessions) on the --test sessions, in one table.
emg_gesture_train --loso S1 S2 S3 ... [--out MODEL.safetensors] [options]
    Leave one session out: for each session, train on the others and test on it (model and
    baseline); then, with --out, the model trained on all of them is written.
emg_gesture_eval --checkpoint MODEL --test C [...] [--train A B ...]
    Evaluate a checkpoint; the LDA baseline is fitted on --train (default: the sessions the
    checkpoint was trained on, where they still exist), never on the tested data.

A session is a recording or a folder of recordings (``myo_readings/right_hand/10000-1``).
Metrics: accuracy, balanced accuracy, per-class recall, confusion matrix, decision compute
time p50/p99; ``--report-dir`` writes them as JSON plus one confusion-matrix PNG per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from emg_hand_core.recordings import DataError

from ..cli import _optional_float

_FLAGS = {  # flag -> (GestureTrainSettings field, type, help)
    "--model": ("model", str, "lda | cnn_lstm | lstm_fin"),
    "--window-s": ("window_s", float, "decision window [s]"),
    "--hop-s": ("hop_s", float, "between decisions [s]"),
    "--train-hop-s": ("train_hop_s", float, "between training windows [s] (default: hop)"),
    "--highpass-hz": ("highpass_hz", _optional_float, "high-pass cut-off [Hz]"),
    "--notch-hz": ("notch_hz", _optional_float, "notch frequency [Hz]"),
    "--lowpass-hz": ("lowpass_hz", _optional_float, "low-pass cut-off [Hz]"),
    "--features": ("features", str, "LDA features: a set (hudgins_td, lstm_fin4, td8, td9) "
                   "or names, comma-separated"),
    "--zc-threshold-v": ("zc_threshold_v", float, "ZC threshold [V]"),
    "--ssc-threshold-v": ("ssc_threshold_v", float, "SSC threshold [V]"),
    "--wamp-threshold-v": ("wamp_threshold_v", float, "WAMP threshold [V]"),
    "--lda-shrinkage": ("lda_shrinkage", float, "LDA covariance shrinkage in [0, 1]"),
    "--ring-max-shift": ("ring_max_shift", int, "armband rotation search [electrodes] "
                         "(0: off; 1 for a Myo)"),
    "--val-fraction": ("val_fraction", float, "end of every recording used for validation"),
    "--epochs": ("epochs", int, "maximum epochs (networks)"),
    "--fin-epochs": ("fin_epochs", int, "LSTM-FIN feature-imitation epochs"),
    "--batch-size": ("batch_size", int, "mini-batch size"),
    "--lr": ("learning_rate", float, "AdamW learning rate"),
    "--weight-decay": ("weight_decay", float, "AdamW weight decay"),
    "--patience": ("early_stop_patience", int, "early stopping patience [epochs] (0: off)"),
    "--average-last": ("average_last", int, "average the weights of the last N epochs"),
    "--seed": ("seed", int, "random seed"),
    "--threads": ("threads", int, "torch threads"),
}
_SWITCHES = {"--log-amplitude": ("log_amplitude", "LDA: logs of the amplitude features"),
             "--fin-finetune": ("fin_finetune", "LSTM-FIN: train the LSTM with the classifier")}
BASELINE = "lda hudgins_td (baseline)"


def _hyperparameter(text: str) -> tuple[str, int | float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=value")
    number = float(value)
    return key.strip(), int(number) if number.is_integer() and "." not in value else number


def _settings(args: argparse.Namespace):
    from .training import PRESETS, GestureTrainSettings

    values = dict(PRESETS[args.preset]) if args.preset else {}
    for flag, (name, _, _) in _FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            values[name] = value
    for flag, (name, _) in _SWITCHES.items():
        if getattr(args, flag.lstrip("-").replace("-", "_")):
            values[name] = True
    if args.hp:
        values["hyperparameters"] = dict(args.hp)
    values["show_progress"] = not args.no_progress
    return GestureTrainSettings(**values)


def baseline_settings(settings):
    """The LDA baseline with the model's windows and filters."""
    from .training import PRESETS, GestureTrainSettings

    return GestureTrainSettings(**dict(PRESETS["lda_td"], window_s=settings.window_s,
                                       hop_s=settings.hop_s, train_hop_s=settings.train_hop_s,
                                       highpass_hz=settings.highpass_hz,
                                       notch_hz=settings.notch_hz,
                                       lowpass_hz=settings.lowpass_hz))


def _sessions(paths: Sequence[str], fmt: str):
    from .data import load_session

    sessions = [load_session(p, format=fmt) for p in paths]
    for s in sessions:
        for note in s.notes():
            print(f"note: {s.name}/{note}", file=sys.stderr)
    return sessions


def compare(train, test, settings, baseline: bool = True) -> tuple:
    """Train the model (and the baseline) on ``train``, evaluate both on ``test``:
    (model checkpoint, [(row name, metrics)])."""
    from .evaluation import evaluate_gesture
    from .training import train_gesture

    result = train_gesture(train, settings)
    name = settings.model + (f" {settings.features}" if settings.model == "lda" else "")
    rows = []
    if test:
        rows.append((name, evaluate_gesture(result.checkpoint, test)))
        if result.fin_r2:
            rows[-1][1]["fin_r2"] = result.fin_r2
        if baseline and name != BASELINE.split(" (")[0]:
            base = train_gesture(train, baseline_settings(settings)).checkpoint
            rows.append((BASELINE, evaluate_gesture(base, test)))
    return result, rows


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emg_gesture_train", description=(
        "Train a gesture model on some sessions and test it (and the LDA baseline) on "
        "others."), formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--train", nargs="+", help="training sessions (recordings or folders)")
    data.add_argument("--loso", nargs="+", help="sessions for leave-one-session-out")
    p.add_argument("--test", nargs="+", default=[], help="test sessions (with --train)")
    p.add_argument("--out", help="checkpoint to write (.safetensors)")
    p.add_argument("--report-dir", help="write <name>.json and confusion PNGs here")
    p.add_argument("--format", default="auto", help="recording format (default: by path)")
    p.add_argument("--preset", choices=["lda_td", "lda_logtd", "cnn_lstm", "lstm_fin"],
                   help="settings preset (gesture.training.PRESETS); flags override it")
    p.add_argument("--hp", type=_hyperparameter, action="append",
                   help="network hyperparameter name=value (gesture.networks.DEFAULTS)")
    p.add_argument("--no-baseline", action="store_true", help="skip the LDA baseline")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    for flag, (_, kind, text) in _FLAGS.items():
        p.add_argument(flag, type=kind, default=None, help=text)
    for flag, (_, text) in _SWITCHES.items():
        p.add_argument(flag, action="store_true", help=text)
    return p


def train_main(argv: list[str] | None = None) -> int:
    from .checkpoint import load_gesture_checkpoint, save_gesture_checkpoint
    from .evaluation import format_table, write_report

    args = train_parser().parse_args(argv)
    if args.loso and args.test:
        print("emg_gesture_train: error: --test goes with --train, not --loso", file=sys.stderr)
        return 2
    if args.loso and len(args.loso) < 2:
        print("emg_gesture_train: error: --loso needs at least 2 sessions", file=sys.stderr)
        return 2
    try:
        settings = _settings(args)
        folds = []
        if args.loso:
            sessions = _sessions(args.loso, args.format)
            for i, held in enumerate(sessions):
                rest = [s for j, s in enumerate(sessions) if j != i]
                print(f"fold {i + 1}/{len(sessions)}: test {held.name}", file=sys.stderr)
                folds.append((held.name, compare(rest, [held], settings,
                                                 not args.no_baseline)[1]))
            train, test = sessions, []
        else:
            train, test = _sessions(args.train, args.format), _sessions(args.test, args.format)
        result = rows = None
        if args.out or not args.loso:
            result, rows = compare(train, test, settings, not args.no_baseline)
        out: dict = {}
        if folds:
            out["folds"] = {name: dict(fold) for name, fold in folds}
            out["mean"] = _fold_means(folds)
        if rows:
            out["models"] = dict(rows)
        if result is not None:
            ckpt = result.checkpoint
            ckpt.training["session_paths"] = [str(Path(p).resolve()) for p in (args.train or
                                                                                 args.loso)]
            if rows:
                ckpt.metrics["test"] = {n: {k: r[k] for k in ("accuracy", "balanced_accuracy")}
                                        for n, r in rows}
            if result.fin_r2:
                out["fin_r2"] = result.fin_r2
            if args.out:
                path = save_gesture_checkpoint(ckpt, args.out)
                load_gesture_checkpoint(path)  # what was written must load
                out["checkpoint"] = str(path)
                print(f"wrote {path}: {ckpt.describe()}", file=sys.stderr)
        if args.report_dir:
            name = Path(args.out).name.split(".")[0] if args.out else "gesture"
            report_rows = list(rows or []) + [(f"{fold} {row}", r) for fold, fr in folds
                                              for row, r in fr]
            paths = write_report(args.report_dir, name, report_rows, {
                k: v for k, v in out.items() if k not in ("models", "folds")})
            print(f"report: {paths['json']}", file=sys.stderr)
    except (DataError, ValueError) as exc:
        print(f"emg_gesture_train: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        from ..checkpoint import _jsonable

        print(json.dumps(_jsonable(out)))
    else:
        for fold, fold_rows in folds:
            print(f"test {fold}:")
            print(format_table(fold_rows))
        if out.get("mean"):
            print("mean over folds: " + ", ".join(f"{n} {v:.3f}" for n, v in
                                                  out["mean"].items()))
        if rows:
            print(format_table(rows))
        if out.get("fin_r2"):
            print("LSTM-FIN feature R2 (validation): " + ", ".join(
                f"{k} {v:.3f}" for k, v in out["fin_r2"].items()))
    return 0


def _fold_means(folds) -> dict[str, float]:
    names = {row for _, rows in folds for row, _ in rows}
    return {n: sum(r["accuracy"] for _, rows in folds for row, r in rows if row == n)
            / sum(1 for _, rows in folds for row, _ in rows if row == n) for n in sorted(names)}


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emg_gesture_eval", description=(
        "Evaluate a gesture checkpoint on test sessions next to the LDA baseline."))
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--test", nargs="+", required=True, help="test sessions")
    p.add_argument("--train", nargs="+", help="sessions to fit the LDA baseline on (default: "
                   "the checkpoint's training sessions, if they exist)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--format", default="auto")
    p.add_argument("--report-dir", help="write gesture_eval.json and confusion PNGs here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def eval_main(argv: list[str] | None = None) -> int:
    from .checkpoint import load_gesture_checkpoint
    from .evaluation import evaluate_gesture, format_table, write_report
    from .training import GestureTrainSettings, train_gesture

    args = eval_parser().parse_args(argv)
    notes = []
    try:
        ckpt = load_gesture_checkpoint(args.checkpoint)
        test = _sessions(args.test, args.format)
        rows = [(f"{ckpt.kind} ({Path(args.checkpoint).name})", evaluate_gesture(ckpt, test))]
        if not args.no_baseline:
            train_paths = args.train or [p for p in ckpt.training.get("session_paths", [])
                                         if Path(p).exists()]
            tested = {str(Path(p).resolve()) for p in args.test}
            if not train_paths:
                notes.append("LDA baseline skipped: the checkpoint's training sessions are not "
                             "here; give --train")
            elif tested & {str(Path(p).resolve()) for p in train_paths}:
                raise ValueError("the baseline would be fitted on a tested session; give "
                                 "--train sessions apart from --test")
            else:
                settings = GestureTrainSettings.from_dict(ckpt.training["settings"]) if \
                    "settings" in ckpt.training else GestureTrainSettings(
                        window_s=ckpt.window_s, hop_s=ckpt.hop_s)
                base = train_gesture(_sessions(train_paths, args.format),
                                     baseline_settings(settings)).checkpoint
                rows.append((BASELINE, evaluate_gesture(base, test)))
        if args.report_dir:
            write_report(args.report_dir, "gesture_eval", rows, {"notes": notes})
    except (DataError, ValueError) as exc:
        print(f"emg_gesture_eval: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        from ..checkpoint import _jsonable

        print(json.dumps(_jsonable({"models": dict(rows), "notes": notes})))
    else:
        print(ckpt.describe())
        print(format_table(rows))
        for note in notes:
            print(f"note: {note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train_main, "eval": eval_main}
    if not argv or argv[0] not in commands:
        print("usage: python -m emg_pose_node.gesture.cli {train,eval} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
