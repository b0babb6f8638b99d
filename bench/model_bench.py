#!/usr/bin/env python3
"""Benchmark of the pose model: live-update latency, fine-tune time, training throughput.

    PYTHONPATH=src/emg_pose_node python bench/model_bench.py [--quick] [--json PATH]
        [--checkpoint MODEL.safetensors]

* Single-update latency p50/p99: one ``StreamingPredictor.push`` of the samples that
  complete one new frame (one new prediction; preprocessing included, kinematics not),
  PyTorch vs ONNX Runtime, 1 and 2 threads; plus the full-window model call (no frame
  cache) in PyTorch, TorchScript and ONNX Runtime, the basis of the export choice.
* Fine-tune time: :func:`finetune` on 120 s of 500 Hz calibration data: the default
  (input adapter + head), head only, and (full run) with the last LSTM layer unfrozen.
* Training throughput: windows per second of the training step (forward, backward, AdamW).

The model is ``--checkpoint`` or the shipped default (``src/emg_pose_node/models/
default.safetensors``) or, if neither exists, an untrained model of the default
architecture (latency and speed do not depend on the weights). Timings on a shared
machine are indicative; rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "emg_pose_node"))

from emg_pose_node.checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from emg_pose_node.export import OnnxFullModel, export_torchscript  # noqa: E402
from emg_pose_node.network import EMGToPose, count_parameters, output_names_for  # noqa: E402
from emg_pose_node.preprocessing import fit_normalisation  # noqa: E402
from emg_pose_node.streaming import StreamingPredictor  # noqa: E402
from emg_pose_node.synthetic import synthetic_recording  # noqa: E402
from emg_pose_node.training import (  # noqa: E402
    PRESETS,
    FinetuneSettings,
    TrainSettings,
    WindowSet,
    build_network_config,
    build_preprocess,
    finetune,
    output_loss,
    warm_up,
)

DEFAULT_MODEL = ROOT / "src" / "emg_pose_node" / "models" / "default.safetensors"


def untrained_checkpoint(preset: str = "default", rate: float = 500.0,
                         channels: int = 8) -> Checkpoint:
    settings = TrainSettings.from_dict({**TrainSettings().to_dict(), **PRESETS[preset]})
    rec = synthetic_recording(duration_s=5.0, sample_rate_hz=rate, channels=channels)
    pre = fit_normalisation(build_preprocess(settings, rec), [rec.emg])
    net = build_network_config(settings, channels, pre.model_rate_hz,
                               output_names_for(settings.output))
    torch.manual_seed(0)
    return Checkpoint.from_model(EMGToPose(net).eval(), pre,
                                 training={"note": f"untrained {preset} architecture"})


def percentiles(samples_s: list[float]) -> dict:
    a = np.asarray(samples_s) * 1e6
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99)),
            "mean_us": float(a.mean()), "n": int(len(a))}


def time_streaming(ckpt: Checkpoint, backend: str, threads: int, updates: int) -> dict:
    torch.set_num_threads(threads)
    predictor = StreamingPredictor(ckpt, backend=backend, threads=threads, kinematics=False)
    step = ckpt.network.frame_stride * ckpt.preprocess.decimation  # one new frame per push
    n = ckpt.window * ckpt.preprocess.decimation + (updates + 50) * step
    emg = synthetic_recording(duration_s=n / ckpt.sample_rate_hz + 0.1,
                              sample_rate_hz=ckpt.sample_rate_hz, channels=ckpt.in_channels,
                              seed=7).emg
    warm = ckpt.window * ckpt.preprocess.decimation
    assert predictor.push(emg[:warm]) is not None
    times, produced, i = [], 0, warm
    for k in range(updates + 50):
        chunk = emg[i:i + step]
        i += step
        t0 = time.perf_counter()
        out = predictor.push(chunk)
        dt = time.perf_counter() - t0
        if k >= 50:  # warm-up
            times.append(dt)
            produced += out is not None
    assert produced == updates, "every push must produce one prediction"
    return percentiles(times)


def time_full_window(ckpt: Checkpoint, kind: str, threads: int, updates: int) -> dict:
    torch.set_num_threads(threads)
    x = torch.randn(1, ckpt.in_channels, ckpt.window)
    if kind == "torch":
        model = ckpt.build_model()

        def call():
            with torch.no_grad():
                model(x)
    elif kind == "torchscript":
        with tempfile.TemporaryDirectory() as tmp:
            model = torch.jit.load(str(export_torchscript(ckpt, Path(tmp) / "m.pt")))

        def call():
            with torch.no_grad():
                model(x)
    else:
        runner = OnnxFullModel(ckpt, threads=threads)
        xn = x.numpy()

        def call():
            runner.run(xn)
    for _ in range(50):
        call()
    times = []
    for _ in range(updates):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return percentiles(times)


def time_finetune(ckpt: Checkpoint, seconds: float, settings: FinetuneSettings,
                  threads: int) -> dict:
    torch.set_num_threads(threads)
    rec = synthetic_recording(duration_s=seconds, sample_rate_hz=ckpt.sample_rate_hz,
                              channels=ckpt.in_channels, seed=9)
    gains = np.linspace(0.6, 1.6, ckpt.in_channels, dtype=np.float32)
    targets = rec.targets(ckpt.output, ckpt.output_names if ckpt.output == "values" else ())
    t0 = time.perf_counter()
    res = finetune(ckpt, rec.emg * gains, targets, settings)
    return {"seconds": time.perf_counter() - t0, "epochs": res.epochs_run,
            "train_windows": res.train_windows, "heldout_windows": res.heldout_windows,
            "accepted": res.accepted, "error_before": res.error_before,
            "error_after": res.error_after, "calibration_s": seconds}


def time_training(ckpt: Checkpoint, batches: int, batch_size: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    net = ckpt.network
    model = EMGToPose(net)
    model.train()
    m = 20_000
    x = torch.randn(m, net.in_channels)
    y = torch.randn(m, net.out_dim)
    ends = np.arange(net.window - 1, m)
    data = WindowSet(x, y, ends, net.window)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = output_loss(net.output)
    gen = torch.Generator().manual_seed(0)

    def step():
        idx = torch.randint(0, len(data), (batch_size,), generator=gen)
        inputs, targets = data.batch(idx)
        loss = loss_fn(model(inputs), targets)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(batches):
        step()
    dt = time.perf_counter() - t0
    return {"windows_per_s": batches * batch_size / dt, "step_ms": 1e3 * dt / batches,
            "batch_size": batch_size}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="model to benchmark (default: the shipped default)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, skip extras")
    p.add_argument("--json", help="also write all figures to this JSON file")
    args = p.parse_args(argv)
    updates = 300 if args.quick else 3000
    t0 = time.perf_counter()
    warm_up()  # torch's lazy imports, paid once per process (the node does this at start)
    warm_up_s = time.perf_counter() - t0
    if args.checkpoint:
        ckpt, source = load_checkpoint(args.checkpoint), args.checkpoint
    elif DEFAULT_MODEL.exists():
        ckpt, source = load_checkpoint(DEFAULT_MODEL), str(DEFAULT_MODEL.relative_to(ROOT))
    else:
        ckpt, source = untrained_checkpoint(), "untrained default architecture"
    model = ckpt.build_model()
    results: dict = {
        "model": source, "description": ckpt.describe(),
        "parameters": count_parameters(model),
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": __import__("os").cpu_count(),
                    "load_avg": list(__import__("os").getloadavg())},
        "latency": {}, "full_window": {}, "finetune": {}, "training": {},
        "warm_up_s": warm_up_s,
    }
    rows = []
    for threads in (1, 2):
        for backend in ("torch", "onnx"):
            r = time_streaming(ckpt, backend, threads, updates)
            results["latency"][f"{backend}_{threads}t"] = r
            rows.append((f"update latency, streaming {backend}, {threads} thread(s)",
                         f"p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us"))
        for kind in (("torch", "onnx") if args.quick else ("torch", "torchscript", "onnx")):
            r = time_full_window(ckpt, kind, threads, updates)
            results["full_window"][f"{kind}_{threads}t"] = r
            rows.append((f"full window (no cache), {kind}, {threads} thread(s)",
                         f"p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us"))
    variants = {"adapter + head, the default": FinetuneSettings(),
                "head only": FinetuneSettings(adapter_epochs=0)}
    if not args.quick:
        variants["adapter + head + last LSTM layer"] = FinetuneSettings(unfreeze_last_lstm=True)
    for key, settings in variants.items():
        r = time_finetune(ckpt, 120.0, settings, threads=2)
        results["finetune"][key] = r
        rows.append((f"fine-tune 120 s calibration ({key}, {r['epochs']} epochs, 2 threads)",
                     f"{r['seconds']:.2f} s ({r['train_windows']} windows)"))
    for threads in (1, 2):
        r = time_training(ckpt, 10 if args.quick else 50, 64, threads)
        results["training"][f"{threads}t"] = r
        rows.append((f"training throughput, {threads} thread(s)",
                     f"{r['windows_per_s']:.0f} windows/s ({r['step_ms']:.1f} ms/batch of 64)"))
    if not args.quick:  # the seed design at 500 Hz for comparison
        seed = untrained_checkpoint("seed")
        results["seed_design"] = {
            "description": seed.describe(), "parameters": count_parameters(seed.build_model()),
            "latency_torch_2t": time_streaming(seed, "torch", 2, 500),
            "latency_onnx_2t": time_streaming(seed, "onnx", 2, 500),
            "training_2t": time_training(seed, 10, 64, 2)}
        s = results["seed_design"]
        rows.append(("seed design: update latency torch / onnx, 2 threads",
                     f"p99 {s['latency_torch_2t']['p99_us']:.0f} / "
                     f"{s['latency_onnx_2t']['p99_us']:.0f} us"))
        rows.append(("seed design: training throughput, 2 threads",
                     f"{s['training_2t']['windows_per_s']:.0f} windows/s"))
    print(f"model: {source}: {ckpt.describe()}, {results['parameters']} parameters")
    print(f"load average at start: {results['machine']['load_avg']}; one-time torch warm-up "
          f"{warm_up_s:.1f} s (not in the fine-tune time)")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
