"""Console scripts: emg_pose_train, emg_pose_eval, emg_pose_export
(also ``python -m emg_pose_node.cli train|eval|export ...``).

emg_pose_train DATA... --out MODEL.safetensors [--test DATA...] [--report-dir DIR] [options]
    Train (or, with --finetune-from, fine-tune) from recordings of any supported format
    (any CSV through a column mapping: --columns / --emg-columns ...); writes the
    checkpoint and a JSON + PNG report; --test scores whole held-out files. With --stream
    (or any option of "training at scale", or under torchrun) windows are read from disk
    instead of memory, in one or several processes (emg_pose_node.distributed).
emg_pose_eval --checkpoint MODEL DATA... [--split test] [--train DATA...] [--json]
    Metrics of the model and two baselines fitted on the model's training data.
emg_pose_eval --cv file DATA... [--preset ... | --checkpoint RECIPE] [training flags]
    Leave one file out: a model per fold, mean and spread over folds.
emg_pose_export --checkpoint MODEL --out MODEL.onnx
    ONNX export for ONNX Runtime, checked against PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from emg_hand_core.recordings import DataError, load_recording
from emg_hand_core.recordings.columns import (
    add_flag_table,
    add_mapping_arguments,
    flags_given,
    mapping_from_args,
    save_mapping,
)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in _csv(text))


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("", "none", "off") else float(text)


def _load_all(paths: list[str], args, channels: tuple[str, ...] | None = None) -> list:
    """Recordings of ``paths`` as the flags say (format, column mapping); with
    --save-columns the mapping is saved next to each file. One line per file to stderr."""
    mapping = mapping_from_args(args)
    options = {} if mapping is None else {"mapping": mapping}
    fmt = args.format if mapping is None or args.format != "auto" else "columns"
    out = []
    for path in paths:
        rec = load_recording(path, format=fmt, channels=list(channels) if channels else None,
                             **options)
        if mapping is not None and args.save_columns:
            print(f"saved the column mapping: {save_mapping(mapping, path)}", file=sys.stderr)
        report = rec.meta.get("report") or rec.meta.get("bad_lines") or ""
        print(f"{rec.source}: {rec.format}, {rec.num_channels} ch at {rec.sample_rate_hz:.2f} "
              f"Hz, {rec.duration_s:.1f} s, {rec.describe_labels()}"
              + (f"; {report}" if report else ""), file=sys.stderr)
        out.append(rec)
    return out


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="auto", help="recording format (default: by path; "
                   "a column mapping means 'columns')")
    add_mapping_arguments(p)


# --- train ------------------------------------------------------------------------

_TRAIN_FLAGS = {  # flag -> (TrainSettings field, type, help)
    "--output": ("output", str, "joint_angles | keypoints | values (default: what the data has)"),
    "--values": ("value_names", _csv, "comma-separated value names for --output values"),
    "--window-s": ("window_s", float, "window length [s] (rounded to the frame grid)"),
    "--hop-s": ("hop_s", float, "hop between training windows [s]"),
    "--eval-hop-s": ("eval_hop_s", float, "hop between validation/test windows [s]"),
    "--val-fraction": ("val_fraction", float, "validation part, before the test part"),
    "--test-fraction": ("test_fraction", float, "test part: the chronological end"),
    "--model-rate-hz": ("model_rate_hz", _optional_float, "decimate to this rate [Hz]"),
    "--highpass-hz": ("highpass_hz", _optional_float, "high-pass cut-off [Hz]"),
    "--notch-hz": ("notch_hz", _optional_float, "notch frequency [Hz]"),
    "--lowpass-hz": ("lowpass_hz", _optional_float, "low-pass cut-off [Hz]"),
    "--envelope-hz": ("envelope_hz", _optional_float, "envelope low-pass after rectification"),
    "--frontend": ("frontend", str, "conv (seed) | log_power"),
    "--conv-channels": ("conv_channels", _ints, "frontend widths, e.g. 64,128"),
    "--kernel-size": ("kernel_size", int, "frontend kernel [samples]"),
    "--pool": ("pool", int, "pooling per frontend stage"),
    "--lstm-hidden": ("lstm_hidden", int, "LSTM width"),
    "--lstm-layers": ("lstm_layers", int, "LSTM layers"),
    "--dropout": ("dropout", float, "dropout"),
    "--fc-hidden": ("fc_hidden", int, "head width"),
    "--epochs": ("epochs", int, "maximum epochs"),
    "--batch-size": ("batch_size", int, "mini-batch size"),
    "--lr": ("learning_rate", float, "AdamW learning rate"),
    "--weight-decay": ("weight_decay", float, "AdamW weight decay"),
    "--grad-clip": ("grad_clip", float, "gradient norm clip (0: off)"),
    "--patience": ("early_stop_patience", int, "early stopping patience [epochs] (0: off)"),
    "--lr-patience": ("lr_patience", int, "ReduceLROnPlateau patience [epochs]"),
    "--adapt-norm-s": ("adapt_norm_s", _optional_float, "adaptive normalisation: weight of "
                       "the training statistics [s] (statistics follow the stream; off: none)"),
    "--adapt-norm-max-s": ("adapt_norm_max_s", float, "adaptive normalisation: memory [s]"),
    "--gain-augment": ("gain_augment", float, "std of random per-channel log gain"),
    "--amplitude-augment": ("amplitude_augment", float, "std of a random log gain of all "
                            "channels per window"),
    "--noise-augment": ("noise_augment", float, "std of added noise [normalised units]"),
    "--rotation-augment": ("rotation_augment", int, "roll the channel ring by up to +-k "
                           "electrodes per window (armbands: 1)"),
    "--fk-loss-weight": ("fk_loss_weight", float, "joint angles: weight of keypoint loss"),
    "--average-last": ("average_last", int, "average the weights of the last N epochs"),
    "--seed": ("seed", int, "random seed"),
    "--threads": ("threads", int, "torch threads"),
}


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="emg_pose_train", description="Train an EMG-to-pose model (or fine-tune one).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("data", nargs="+", help="recordings: emg2pose .h5, rosbag2 dirs, CSV ...")
    p.add_argument("--out", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--test", nargs="+", metavar="DATA",
                   help="held-out recordings scored whole after training (the training "
                        "files then have no test part)")
    p.add_argument("--report-dir", help="write <name>.json and <name>.png here")
    _data_arguments(p)
    p.add_argument("--channels", type=_csv, help="comma-separated EMG channels to use")
    p.add_argument("--usable-channels", action="store_true",
                   help="drop channels with RMS below 15%% of the largest (unused electrodes)")
    _preset_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--finetune-from", help="fine-tune this checkpoint on the data instead")
    p.add_argument("--unfreeze-last-lstm", action="store_true",
                   help="fine-tuning: also train the last LSTM layer")
    p.add_argument("--adapter-epochs", type=int, default=None,
                   help="fine-tuning: epochs of the input-adapter stage (default 10; 0 = "
                        "head only)")
    _settings_arguments(p)
    g = p.add_argument_group(
        "training at scale", "windows read from disk (memory bounded by the batch and the "
        "caches), one process or several under torchrun; any of these options (or torchrun "
        "with more than one process) selects it")
    g.add_argument("--stream", action="store_true", help="stream windows from disk")
    for flag, (_, kind, choices, text) in _SCALE_FLAGS.items():
        g.add_argument(flag, type=kind, choices=choices, default=None, help=text)
    g.add_argument("--resume", action="store_true",
                   help="continue from the training state after a crash (none: start)")
    g.add_argument("--cache-only", action="store_true",
                   help="build the recordings' caches and exit (once per machine)")
    return p


_SCALE_FLAGS = {  # flag -> (distributed.ScaleSettings field, type, choices, help)
    "--cache-dir": ("cache_dir", str, None, "where recordings are cached at the model rate "
                    "(default: $XDG_CACHE_HOME/emg_hand/windows)"),
    "--split-by": ("split_by", str, ("time", "file"), "time: chronological per recording "
                   "(default); file: whole recordings in the given order, the last ones test"),
    "--workers": ("workers", int, None, "DataLoader worker processes per process (default 0)"),
    "--open-files": ("open_files", int, None, "HDF5 files kept open per process (default 128)"),
    "--chunk-cache-mb": ("chunk_cache_mb", float, None,
                         "HDF5 chunk cache per open file [MiB] (default 0)"),
    "--epoch-windows": ("epoch_windows", int, None, "training windows per epoch, drawn anew "
                        "each epoch (default 0: all)"),
    "--eval-windows": ("eval_windows", int, None, "validation and metrics windows per split, "
                       "evenly spaced (default 20000; 0: all)"),
    "--device": ("device", str, ("cpu", "cuda"), "cpu (default) or cuda (GPU of LOCAL_RANK)"),
    "--precision": ("precision", str, ("32", "bf16", "fp16"), "mixed precision (default 32; "
                    "fp16: CUDA only)"),
    "--state-file": ("state_path", str, None, "training state written after every epoch "
                     "(default: next to --out, NAME.train_state.pt)"),
}


def _streamed(args) -> bool:
    given = any(getattr(args, f.lstrip("-").replace("-", "_")) is not None for f in _SCALE_FLAGS)
    return (args.stream or args.resume or args.cache_only or given
            or int(os.environ.get("WORLD_SIZE", "1")) > 1)


def _preset_argument(p: argparse.ArgumentParser) -> None:
    from .training import PRESETS

    p.add_argument("--preset", choices=list(PRESETS),
                   help="settings preset; explicit flags override it (see training.PRESETS)")


def _settings_arguments(p: argparse.ArgumentParser) -> None:
    add_flag_table(p, _TRAIN_FLAGS)


def _settings(args, recordings: list, base: dict | None = None):
    """TrainSettings from ``base`` (a checkpoint's), the preset and the explicit flags."""
    from .training import PRESETS, TrainSettings, pose_output_for

    overrides = dict(base or {})
    overrides.update(PRESETS[args.preset] if args.preset else {})
    overrides.update(flags_given(args, _TRAIN_FLAGS))
    if "output" not in overrides:  # what the data has (or why it cannot train a pose)
        overrides["output"] = pose_output_for(recordings[0])
    return TrainSettings.from_dict({**TrainSettings().to_dict(), **overrides,
                                    "show_progress": not args.no_progress})


def _write_outputs(args, ckpt, history, evaluation, split_arrays) -> None:
    from .checkpoint import load_checkpoint, save_checkpoint
    from .report import write_report

    path = save_checkpoint(ckpt, args.out)
    load_checkpoint(path)  # what was written must load
    print(f"wrote {path}: {ckpt.describe()}")
    if args.report_dir:
        paths = write_report(args.report_dir, Path(args.out).name.split(".")[0], ckpt,
                             history, evaluation, split_arrays)
        print(f"report: {paths['json']} {paths['png']}")


def train_main(argv: list[str] | None = None) -> int:
    from emg_hand_core.recordings import usable_channels

    from .evaluation import evaluate, format_table
    from .training import train

    args = train_parser().parse_args(argv)
    if _streamed(args):
        return _train_streamed_cli(args)
    try:
        recordings = _load_all(args.data, args, args.channels)
        tests = _load_all(args.test, args, args.channels) if args.test else []
        if args.usable_channels:
            keep = usable_channels(recordings[0])
            recordings = [r.select_channels(keep) for r in recordings]
            tests = [r.select_channels(keep) for r in tests]
        if args.finetune_from:
            return _finetune_cli(args, recordings)
        settings = _settings(args, recordings)
        if tests:
            if settings.test_fraction > 0 and args.test_fraction:
                raise DataError("--test and --test-fraction: give one of them")
            settings = replace(settings, test_fraction=0.0)
        print(f"training on {len(recordings)} recording(s), "
              f"{sum(r.duration_s for r in recordings):.1f} s, channels "
              f"{list(recordings[0].channel_names)}", file=sys.stderr)
        result = train(recordings, settings)
        ckpt = result.checkpoint
        evaluation = None
        if tests:
            evaluation = evaluate(ckpt, tests, split="all", train_recordings=recordings)
            ckpt.training["test_data"] = [r.summary() for r in tests]
        elif settings.test_fraction > 0:
            evaluation = evaluate(ckpt, recordings, split="test")
        if evaluation is not None:
            ckpt.metrics["test"] = {k: v for k, v in evaluation["models"].items()}
            ckpt.metrics["test_baselines"] = evaluation["baselines"]
            print(format_table(evaluation))
        _write_outputs(args, ckpt, result.history, evaluation, result.split_arrays)
    except (DataError, ValueError) as exc:
        print(f"emg_pose_train: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _train_streamed_cli(args) -> int:
    """emg_pose_train with windows streamed from disk, in this process or in each process
    of a torchrun group (rank 0 prints and writes)."""
    from .dataset import SourceSpec, probe
    from .distributed import ScaleSettings, init_context, prepare_caches, train_streamed
    from .evaluation import format_table

    world = int(os.environ.get("WORLD_SIZE", "1"))
    where = f" (rank {os.environ.get('RANK', '0')} of {world})" if world > 1 else ""
    try:
        if args.finetune_from or args.usable_channels:
            raise ValueError("--finetune-from and --usable-channels read recordings into "
                             "memory; they do not combine with streamed training (give "
                             "--channels)")
        specs = [SourceSpec(p, args.format, args.channels) for p in args.data]
        settings = _settings(args, [probe(specs[0])])
        given = {name: getattr(args, f.lstrip("-").replace("-", "_"))
                 for f, (name, _, _, _) in _SCALE_FLAGS.items()}
        scale = ScaleSettings(**{k: v for k, v in given.items() if v is not None},
                              resume=args.resume)
        if scale.state_path is None:
            out = Path(args.out)
            scale.state_path = str(out.with_name(out.name.split(".")[0] + ".train_state.pt"))
        ctx = init_context(scale.device, scale.timeout_s)
        try:
            if args.cache_only:
                entries, _, _ = prepare_caches(ctx, specs, settings, scale.cache_path())
                if ctx.is_main:
                    print(f"cached {len(entries)} recording(s) in {scale.cache_path()}")
                return 0
            result = train_streamed(specs, settings, scale, context=ctx)
        finally:
            ctx.close()
        if result.train is not None:  # rank 0
            ckpt, evaluation = result.train.checkpoint, result.evaluation
            if evaluation is not None:
                ckpt.metrics["test"] = dict(evaluation["models"])
                print(format_table(evaluation))
            _write_outputs(args, ckpt, result.train.history, evaluation,
                           result.train.split_arrays)
    except (DataError, ValueError) as exc:
        print(f"emg_pose_train: error{where}: {exc}", file=sys.stderr)
        return 2
    return 0


def _finetune_cli(args, recordings) -> int:
    import numpy as np

    from .checkpoint import load_checkpoint, save_checkpoint
    from .training import FinetuneSettings, finetune

    ckpt = load_checkpoint(args.finetune_from)
    rec = recordings[0]
    settings = FinetuneSettings(unfreeze_last_lstm=args.unfreeze_last_lstm)
    if args.adapter_epochs is not None:
        settings.adapter_epochs = args.adapter_epochs
    if args.epochs:
        settings.epochs = args.epochs
    if args.lr:
        settings.learning_rate = args.lr
    if args.seed is not None:
        settings.seed = args.seed
    targets = rec.targets(ckpt.output, ckpt.output_names if ckpt.output == "values" else ())
    result = finetune(ckpt, rec.emg, targets, settings, label_mask=rec.valid_labels(),
                      progress_cb=lambda e, n, loss: print(f"epoch {e}/{n} loss {loss:.5f}",
                                                           file=sys.stderr))
    print(result.message)
    print(json.dumps({"accepted": result.accepted, "error_before": result.error_before,
                      "error_after": result.error_after, "seconds": round(result.seconds, 2),
                      "train_windows": result.train_windows,
                      "heldout_windows": result.heldout_windows}))
    if result.accepted:
        save_checkpoint(result.checkpoint, args.out)
        print(f"wrote {args.out}")
    return 0 if np.isfinite(result.error_after) else 1


# --- eval -------------------------------------------------------------------------


def eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="emg_pose_eval",
        description="Evaluate a checkpoint next to two baselines fitted on the model's training "
                    "data, or (--cv file) cross-validate a training recipe leaving one file out.")
    p.add_argument("data", nargs="+", help="recordings")
    p.add_argument("--checkpoint", help="the model (with --cv: its training settings are the "
                   "recipe, flags override them)")
    p.add_argument("--train", nargs="+", metavar="DATA",
                   help="the model's training recordings: the ridge baseline is refitted on "
                        "their train split (needed when DATA are other recordings)")
    _data_arguments(p)
    p.add_argument("--channels", type=_csv,
                   help="EMG channels to use (default: the checkpoint's channel names)")
    p.add_argument("--split", choices=["train", "val", "test", "all"],
                   help="default: test on the model's training recordings (its held-out "
                        "end), all on other recordings")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--cv", choices=["file"], help="cross-validation: 'file' = leave one file "
                   "out (a model trained per fold on the other files)")
    g = p.add_argument_group("training settings of --cv (as emg_pose_train)")
    _preset_argument(g)
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    _settings_arguments(g)
    return p


def eval_main(argv: list[str] | None = None) -> int:
    from .checkpoint import _jsonable, load_checkpoint
    from .evaluation import evaluate, format_table, is_training_data

    args = eval_parser().parse_args(argv)
    try:
        if args.cv:
            return _cv_cli(args)
        if not args.checkpoint:
            raise DataError("--checkpoint is needed (or --cv file to cross-validate a recipe)")
        ckpt = load_checkpoint(args.checkpoint)
        recordings = _load_all(args.data, args)
        train_recs = _load_all(args.train, args) if args.train else None
        channels = args.channels
        every = recordings + (train_recs or [])
        if channels is None and ckpt.channel_names and all(
                set(ckpt.channel_names) <= set(r.channel_names) for r in every):
            channels = ckpt.channel_names
        if channels:
            recordings = [r.select_channels(list(channels)) for r in recordings]
            train_recs = [r.select_channels(list(channels)) for r in train_recs or []] or None
        split = args.split or ("test" if is_training_data(ckpt, recordings) else "all")
        result = evaluate(ckpt, recordings, split=split, val_fraction=args.val_fraction,
                          test_fraction=args.test_fraction, eval_hop_s=args.eval_hop_s,
                          train_recordings=train_recs)
    except (DataError, ValueError) as exc:
        print(f"emg_pose_eval: error: {exc}", file=sys.stderr)
        return 2
    result.pop("_arrays", None)
    if args.json:
        print(json.dumps(_jsonable(result)))
    else:
        print(ckpt.describe())
        print(format_table(result))
    return 0


def _cv_cli(args) -> int:
    from .checkpoint import _jsonable, load_checkpoint
    from .evaluation import cross_validate, format_cv_table

    base = None
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        base = {k: v for k, v in ckpt.training.get("settings", {}).items()
                if k != "show_progress"}
    recordings = _load_all(args.data, args, args.channels)
    settings = _settings(args, recordings, base)
    cv = cross_validate(recordings, settings,
                        progress=lambda text: print(text, file=sys.stderr))
    if args.json:
        print(json.dumps(_jsonable(cv)))
    else:
        print(format_cv_table(cv))
    return 0


# --- export -----------------------------------------------------------------------


def export_main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from .checkpoint import load_checkpoint
    from .export import OnnxFullModel, export_onnx

    p = argparse.ArgumentParser(prog="emg_pose_export", description="Export to ONNX.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="file to write (.onnx)")
    args = p.parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
    except ValueError as exc:
        print(f"emg_pose_export: error: {exc}", file=sys.stderr)
        return 2
    path = export_onnx(ckpt, args.out)
    x = torch.randn(4, ckpt.in_channels, ckpt.window, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = ckpt.build_model()(x).numpy()
    diff = float(np.abs(OnnxFullModel(path).run(x.numpy()) - ref).max())
    print(f"wrote {path}; max |onnx - torch| = {diff:.2e}")
    return 0 if diff <= 1e-4 else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m emg_pose_node.cli {train,eval,export} ...`` (same as the console scripts,
    which ROS installs under lib/emg_pose_node, i.e. ``ros2 run emg_pose_node emg_pose_train``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": train_main, "eval": eval_main, "export": export_main}
    if not argv or argv[0] not in commands:
        print("usage: python -m emg_pose_node.cli {train,eval,export} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
