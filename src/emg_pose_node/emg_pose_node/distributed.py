"""Training at dataset scale: windows streamed from disk, in one or several processes.

::

    emg_pose_train DATA... --out M.safetensors --stream                 # one process
    torchrun --nproc-per-node 4 -m emg_pose_node.cli train DATA... --out M.safetensors \\
        --device cuda --precision bf16                                  # 4 GPUs

:func:`train_streamed` is :func:`training.train` over a :class:`dataset.WindowDataset`
instead of arrays in memory: the same network, preprocessing, loss and optimisation loop
(:func:`training.fit`), the same checkpoint. Under ``torchrun`` (``WORLD_SIZE`` > 1) every
process joins one process group (gloo on the CPU, NCCL with ``--device cuda``), wraps the
model in DistributedDataParallel and trains on its part of every global batch
(:class:`dataset.GlobalBatchSampler`); losses are summed over processes so that every
process takes the same scheduler and early-stopping decisions. Rank 0 alone prints,
writes the training state after every epoch and, at the end, the checkpoint and report.

**What the result is identical to.** Every step of W processes with ``--batch-size B``
trains on the windows of the same step of one process with ``--batch-size`` B x W, with
the gradient of their mean (DDP averages equal parts), and BatchNorm normalises with the
statistics of the whole global batch (:class:`SyncBatchNorm`, all-reduced sums, on gloo
and NCCL alike). So the weights equal those of that one process up to float rounding,
except for what is drawn per process (dropout, gain augmentation) and an epoch's last
global batch when it holds fewer windows than there are processes (left out).

**Resume.** After every epoch rank 0 writes the loop's state (:class:`training.FitState`,
the normalisation statistics and what the run was) to ``state_path`` atomically;
``resume=True`` continues from it after a crash, in step with an uninterrupted run (the
order, dropout and augmentation are seeded per epoch), and refuses a state of other
settings or data. With ``torchrun --max-restarts N ... --resume`` a crashed process group
restarts from its last epoch by itself.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from emg_hand_core.recordings import DataError

from .dataset import (
    EpochLoader,
    GlobalBatchSampler,
    SourceSpec,
    WindowDataset,
    cache_recording,
    default_cache_dir,
    probe,
    split_segments,
    split_window_ends,
    training_moments,
)
from .evaluation import metrics_for
from .network import EMGToPose, output_names_for
from .preprocessing import normalisation_from_moments
from .training import (
    FitRuntime,
    FitState,
    TrainResult,
    TrainSettings,
    _seed_everything,
    build_network_config,
    build_preprocess,
    fit_pose_model,
    init_output_scaling,
    trained_result,
)

STATE_VERSION = 1
PRECISIONS = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ScaleSettings:
    """How :func:`train_streamed` reads data and where it runs (CLI flags map onto these)."""

    cache_dir: str | None = None  # None: dataset.default_cache_dir()
    split_by: str = "time"  # "time": chronological per recording; "file": whole files
    workers: int = 0  # DataLoader worker processes per training process
    open_files: int = 128  # HDF5 files kept open per process (about 0.4 MB each)
    chunk_cache_mb: float = 0.0  # HDF5 chunk cache per open file [MiB] (random windows: 0)
    epoch_windows: int = 0  # training windows per epoch, drawn anew each epoch (0: all)
    eval_windows: int = 20_000  # per split for validation and metrics, evenly spaced (0: all)
    device: str = "cpu"  # "cpu" | "cuda"
    precision: str = "32"  # "32" | "bf16" | "fp16" (CUDA)
    state_path: str | None = None  # training state after every epoch (None: none written)
    resume: bool = False
    timeout_s: float = 1800.0  # collective operations' timeout (cache building waits on it)

    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()


@dataclass
class StreamedResult:
    """What :func:`train_streamed` returns on every process; ``train`` (checkpoint,
    history, metrics) and ``evaluation`` only on rank 0."""

    model: EMGToPose
    rank: int
    world_size: int
    train: TrainResult | None = None
    evaluation: dict | None = None
    resumed_from_epoch: int = 0
    windows: dict = field(default_factory=dict)  # split -> number of windows


# --- the process group ------------------------------------------------------------------


@dataclass
class Context:
    """This process's place in the run (one process: rank 0 of 1, no process group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def reduce(self, total: float, count: int) -> tuple[float, int]:
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t[0]), int(round(float(t[1])))

    def from_rank0(self, make):
        """``make()`` run on rank 0 (only there), its result on every process."""
        value = [make() if self.is_main else None]
        if self.distributed:
            dist.broadcast_object_list(value, src=0)
        return value[0]

    def same_everywhere(self, text: str, what: str) -> None:
        """Raise DataError unless every process computed the same ``text``."""
        if not self.distributed:
            return
        texts: list = [None] * self.world_size
        dist.all_gather_object(texts, text)
        if len(set(texts)) > 1:
            raise DataError(f"the processes disagree on {what} (does every machine have the "
                            f"same recordings and caches?)")

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def init_context(device: str = "cpu", timeout_s: float = 1800.0) -> Context:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``), or run alone without one."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device cuda: CUDA is not available here (torch "
                         f"{torch.__version__})")
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    rank, local_rank = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    dev = torch.device("cpu")
    if device == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    owns = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo",
                                timeout=_dt.timedelta(seconds=timeout_s))
        owns = True
    return Context(rank, world, local_rank, local_world, dev, owns)


# --- BatchNorm over the global batch ----------------------------------------------------


class _SyncBatchNormFunction(torch.autograd.Function):
    """Batch normalisation with statistics summed over all processes (and, backward, the
    sums of the gradient terms that depend on them), so that W processes normalise and
    differentiate exactly as one process holding all W batches."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum):
        dtype, x = x.dtype, x.float()
        dims = [0] + list(range(2, x.dim()))
        channels = x.shape[1]
        x64 = x.double()
        count = torch.tensor([x.numel() // channels], dtype=torch.float64, device=x.device)
        stats = torch.cat([x64.sum(dims), (x64 * x64).sum(dims), count])
        dist.all_reduce(stats)
        n = float(stats[-1])
        mean = stats[:channels] / n
        var = (stats[channels:2 * channels] / n - mean * mean).clamp_min(0.0)
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
            running_var.mul_(1 - momentum).add_(
                momentum * (var * n / max(n - 1, 1)).to(running_var.dtype))
        shape = [1, channels] + [1] * (x.dim() - 2)
        invstd = (var + eps).rsqrt().float().view(shape)
        xhat = (x - mean.float().view(shape)) * invstd
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.n, ctx.dims, ctx.dtype = n, dims, dtype
        return xhat * weight.view(shape) + bias.view(shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, invstd, weight = ctx.saved_tensors
        grad = grad.float()
        shape, channels = invstd.shape, xhat.shape[1]
        sum_g, sum_gx = grad.sum(ctx.dims), (grad * xhat).sum(ctx.dims)
        sums = torch.cat([sum_g, sum_gx]).double()
        dist.all_reduce(sums)
        mean_g = (sums[:channels] / ctx.n).float().view(shape)
        mean_gx = (sums[channels:] / ctx.n).float().view(shape)
        grad_x = (grad - mean_g - xhat * mean_gx) * invstd * weight.view(shape)
        # weight and bias: this process's share; DDP averages them over processes
        return grad_x.to(ctx.dtype), sum_gx, sum_g, None, None, None, None


class SyncBatchNorm(nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` whose training-mode statistics are those of the batches
    of all processes together (same parameters, buffers and state dict; evaluation and a
    single process: plain BatchNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        if self.momentum is None or not (self.affine and self.track_running_stats):
            raise ValueError("SyncBatchNorm supports affine BatchNorm with a momentum")
        self.num_batches_tracked.add_(1)
        return _SyncBatchNormFunction.apply(x, self.weight, self.bias, self.running_mean,
                                            self.running_var, self.eps, self.momentum)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """Turn every BatchNorm1d of ``module`` into a :class:`SyncBatchNorm` in place (the
    same parameter and buffer tensors)."""
    for child in module.children():
        if type(child) is nn.BatchNorm1d:
            child.__class__ = SyncBatchNorm
        else:
            sync_batchnorm(child)
    return module


# --- training ---------------------------------------------------------------------------


def _log(ctx: Context, text: str) -> None:
    if ctx.is_main:
        print(text, file=sys.stderr, flush=True)


def _run_description(settings: TrainSettings, scale: ScaleSettings, entries) -> dict:
    """What a resumed run must share with the run that wrote the state."""
    s = settings.to_dict()
    s.pop("show_progress", None)
    s.pop("threads", None)
    return {"settings": s, "data": [e.key for e in entries], "split_by": scale.split_by,
            "epoch_windows": scale.epoch_windows, "eval_windows": scale.eval_windows}


def save_state(path: str | Path, doc: dict) -> None:
    """Write a training state atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
    os.close(fd)
    try:
        torch.save(doc, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_state(path: str | Path) -> dict:
    """A training state, loaded weights-only (no code runs)."""
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the same refusal
        raise DataError(f"{path}: not a readable training state: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
        raise DataError(f"{path}: not a training state of version {STATE_VERSION}")
    return doc


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}")
    return out


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def train_streamed(sources: Sequence[SourceSpec], settings: TrainSettings,
                   scale: ScaleSettings | None = None, progress_cb=None,
                   context: Context | None = None) -> StreamedResult:
    """Train on recordings read from disk; in every process of a ``torchrun`` group
    (module docstring). Raises DataError / ValueError naming the problem."""
    t_start = time.perf_counter()
    scale = scale or ScaleSettings()
    if scale.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {scale.precision!r}")
    if scale.precision == "fp16" and scale.device != "cuda":
        raise ValueError("--precision fp16 needs --device cuda (use bf16 on the CPU)")
    if not sources:
        raise DataError("no recordings given")
    ctx = context or init_context(scale.device, scale.timeout_s)
    try:
        return _train(ctx, list(sources), settings, scale, progress_cb, t_start)
    finally:
        if context is None:
            ctx.close()


def prepare_caches(ctx: Context, sources: list[SourceSpec], settings: TrainSettings,
                   cache_dir: Path):
    """Every recording's cache entry (built by the processes of each machine in turns),
    the preprocessing (not fitted yet) and the output names."""
    first = probe(sources[0])
    out_names = output_names_for(settings.output, tuple(settings.value_names)
                                 or (first.value_names if settings.output == "values" else None))
    value_names = out_names if settings.output == "values" else ()
    preprocess = build_preprocess(settings, first)

    def entry(spec: SourceSpec):
        return cache_recording(spec, preprocess, settings.output, value_names, cache_dir)

    # The processes of one machine share its disk: each builds every local_world-th cache.
    for k in range(ctx.local_rank, len(sources), ctx.local_world_size):
        entry(sources[k])
    ctx.barrier()
    entries = [entry(spec) for spec in sources]
    for e in entries:
        if e.num_channels != entries[0].num_channels:
            raise DataError(f"{e.spec.path}: {e.num_channels} channels, {entries[0].spec.path} "
                            f"has {entries[0].num_channels}")
    return entries, preprocess, out_names


def _train(ctx: Context, sources: list[SourceSpec], settings: TrainSettings,
           scale: ScaleSettings, progress_cb, t_start: float) -> StreamedResult:
    if settings.threads:
        torch.set_num_threads(settings.threads)
    _seed_everything(settings.seed)
    entries, preprocess, out_names = prepare_caches(ctx, sources, settings, scale.cache_path())
    network = build_network_config(settings, entries[0].num_channels, preprocess.model_rate_hz,
                                   out_names)
    rate = preprocess.model_rate_hz
    hop = max(1, int(round(settings.hop_s * rate)))
    eval_hop = max(1, int(round(settings.eval_hop_s * rate)))
    segments = split_segments(entries, scale.split_by, settings.val_fraction,
                              settings.test_fraction)
    ends = split_window_ends(entries, segments, network.window, hop, eval_hop)
    windows = {s: int(sum(len(e) for e in ends[s])) for s in ends}
    if windows["train"] == 0:
        raise DataError("no training windows: recordings too short for the window, or no "
                        "valid labels")
    description = _run_description(settings, scale, entries)
    state = None
    if scale.resume and scale.state_path:  # rank 0 wrote it on its machine: it reads it
        state = ctx.from_rank0(lambda: load_state(scale.state_path)
                               if Path(scale.state_path).exists() else None)
    if state is not None:
        diff = _differences(state["run"], description)
        if diff:
            raise DataError(f"{scale.state_path}: written by a run with other "
                            f"{', '.join(diff)}; start without --resume (or delete it)")
    if state is not None:
        preprocess = type(preprocess).from_dict(state["preprocess"])
        y_mean, y_std = state["target_mean"], state["target_std"]
    else:
        x_moments, y_moments = training_moments(entries, segments["train"])
        preprocess = normalisation_from_moments(preprocess, x_moments)
        y_mean = torch.tensor(y_moments.mean, dtype=torch.float32)
        y_std = (torch.tensor(y_moments.std(ddof=1), dtype=torch.float32)
                 if y_moments.count > 1 else None)
    ctx.same_everywhere(_digest(preprocess.to_dict(), windows), "the data")
    _log(ctx, f"streamed training: {len(entries)} recording(s), windows "
              f"{windows['train']} train / {windows['val']} val / {windows['test']} test, "
              f"{ctx.world_size} process(es) on {ctx.device.type}")

    model = EMGToPose(network)
    init_output_scaling(model, y_mean, y_std)
    model.to(ctx.device)
    ddp = model
    if ctx.distributed:  # buffers stay equal on every process: nothing to broadcast
        ddp = nn.parallel.DistributedDataParallel(
            sync_batchnorm(model), forward_sync_buffers=False,
            device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    def forward(x: torch.Tensor) -> torch.Tensor:
        # Training steps through DDP (gradients averaged); validation per process.
        return ddp(x) if torch.is_grad_enabled() else model(x)

    def dataset(split: str) -> WindowDataset:
        return WindowDataset(entries, ends[split], network.window, preprocess, scale.open_files,
                             int(scale.chunk_cache_mb * (1 << 20)))

    train_set = dataset("train")
    sampler = GlobalBatchSampler(len(train_set), settings.batch_size, ctx.world_size, ctx.rank,
                                 settings.seed, scale.epoch_windows)
    loader = EpochLoader(train_set, sampler, scale.workers,
                         pin_memory=ctx.device.type == "cuda")
    val_all = dataset("val").evenly_spaced(scale.eval_windows)
    val_set = None
    if len(val_all):
        val_set = val_all.subset(np.arange(ctx.rank, len(val_all), ctx.world_size))

    def save(fit_state: FitState) -> None:
        if not ctx.is_main:
            return
        if scale.state_path:
            save_state(scale.state_path, {
                "version": STATE_VERSION, "run": description, "fit": fit_state.to_dict(),
                "preprocess": preprocess.to_dict(), "target_mean": y_mean,
                "target_std": y_std, "world_size": ctx.world_size})
        if not settings.show_progress:  # a log line per epoch instead of the progress bar
            h = fit_state.history[-1]
            val = "-" if h["val_loss"] is None else f"{h['val_loss']:.5g}"
            _log(ctx, f"epoch {h['epoch']}/{settings.epochs}: train loss "
                      f"{h['train_loss']:.5g}, val loss {val}, {h['seconds']:.1f} s"
                      + (f"; state in {scale.state_path}" if scale.state_path else ""))

    resume = FitState.from_dict(state["fit"]) if state is not None else None
    if resume is not None:
        _log(ctx, f"resuming from {scale.state_path} after epoch {resume.epoch}")
    runtime = FitRuntime(device=ctx.device, autocast_dtype=PRECISIONS[scale.precision],
                         reduce=ctx.reduce if ctx.distributed else None,
                         epoch_seed=settings.seed * 1009 + ctx.rank, resume=resume,
                         epoch_end_cb=save)
    result = fit_pose_model(model, forward, loader, val_set, settings,
                            progress_cb=progress_cb if ctx.is_main else None,
                            show_progress=settings.show_progress and ctx.is_main,
                            runtime=runtime)
    out = StreamedResult(model, ctx.rank, ctx.world_size, windows=windows,
                         resumed_from_epoch=resume.epoch if resume else 0)
    if ctx.is_main:
        splits = {}
        for split in ("train", "val", "test"):
            ws = dataset(split).evenly_spaced(scale.eval_windows)
            splits[split] = (ws, np.concatenate(ws.ends).astype(np.int64), ws.sources())
        info = {"val_fraction": settings.val_fraction, "test_fraction": settings.test_fraction,
                "order": "chronological" if scale.split_by == "time" else "per file",
                "windows": windows, "metrics_windows": scale.eval_windows,
                "processes": ctx.world_size, "streamed": True}
        out.train = trained_result(model, preprocess, result, splits,
                                   [e.summary for e in entries], settings, t_start, info,
                                   device=ctx.device)
        out.evaluation = _evaluation(out.train, windows["test"], y_mean)
        model.to(ctx.device)
        loader.dataset.close()
    ctx.barrier()
    return out


def _evaluation(result: TrainResult, test_windows: int, y_mean: torch.Tensor) -> dict | None:
    """Model and training-mean metrics on the (evenly spaced) test windows, in the form of
    :func:`evaluation.evaluate` (its ridge baseline needs the data in memory:
    ``emg_pose_eval``)."""
    arrays = result.split_arrays.get("test")
    if arrays is None:
        return None
    ckpt = result.checkpoint
    true, pred = arrays["true"], arrays["pred"]
    mean = np.broadcast_to(y_mean.numpy(), true.shape)
    return {"split": "test", "windows": int(len(true)), "windows_in_split": test_windows,
            "output": ckpt.output, "output_names": list(ckpt.output_names),
            "window_s": ckpt.window_s, "model_rate_hz": ckpt.model_rate_hz,
            "fractions": {"val": ckpt.training["settings"]["val_fraction"],
                          "test": ckpt.training["settings"]["test_fraction"]},
            "recordings": [d["source"] for d in ckpt.training["data"]],
            "models": {"model": metrics_for(ckpt.output, ckpt.output_names, true, pred),
                       "train_mean": metrics_for(ckpt.output, ckpt.output_names, true, mean)}}


__all__ = ["Context", "ScaleSettings", "StreamedResult", "SyncBatchNorm", "init_context",
           "load_state", "prepare_caches", "save_state", "sync_batchnorm", "train_streamed"]
