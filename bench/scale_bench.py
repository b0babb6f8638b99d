#!/usr/bin/env python3
"""Benchmark: training at dataset scale. Memory while the data grows 10x; windows/s of 1
and 2 processes.

    scripts/with-env python bench/scale_bench.py [--quick] [--data-dir DIR] [--json PATH]

1. Simulator sessions in the emg2pose format (the writer of ``emg_sim_record``: 8 channels
   at 500 Hz, 30 MB per 300 s session): a small set and a set 10 times larger (full: 10
   and 100 sessions of 300 s, 0.3 and 3 GB; --quick: 6 and 60 sessions of 60 s). Written
   once to ``--data-dir`` (default /tmp/emg_hand_scale_bench, outside the repository) and
   reused; ``--clean`` removes them at the end.
2. ``emg_pose_train --cache-only``: one streamed pass over every session (window masks and
   block statistics; the default preset filters nothing, so windows are later read as
   slices of the sessions themselves, which are never copied).
3. ``emg_pose_train --stream --preset default``, one epoch of ``--epoch-windows`` windows
   (drawn from all sessions), on the small and on the large set (one process, one torch
   thread), and on the large set with 2 threads, with one DataLoader worker, and as 2
   processes (torchrun, gloo; torchrun gives each process one thread). Each
   run's peak resident memory is sampled over its whole process tree (training processes,
   workers, torchrun's agent): RSS summed (shared library pages counted once per process,
   so an upper bound) and PSS summed.

Throughput = windows of the epoch / the epoch's seconds (printed by the trainer; startup,
caching and final metrics excluded). The machine is shared: figures are indicative.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import psutil

from emg_hand_testing.processes import Process

GIB = 1 << 30


def _record(args: tuple) -> int:
    from emg_driver.sim import SimConfig, WearerConfig
    from emg_driver.sim_record import record

    path, seconds, seed = args
    tmp = Path(str(path) + ".part")
    record(tmp, seconds, SimConfig(wearer=WearerConfig()), seed, wearer_name="a")
    tmp.rename(path)
    return seed


def sessions(data_dir: Path, count: int, seconds: float) -> tuple[list[str], float]:
    """``count`` sessions (seeds 1000..), generated where missing; (paths, seconds spent)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = [data_dir / f"sim_{int(seconds)}s_seed{1000 + k}.h5" for k in range(count)]
    todo = [(p, seconds, 1000 + k) for k, p in enumerate(paths) if not p.exists()]
    t0 = time.perf_counter()
    if todo:
        with multiprocessing.get_context("fork").Pool(os.cpu_count() or 2) as pool:
            for _ in pool.imap_unordered(_record, todo):
                pass
    return [str(p) for p in paths], time.perf_counter() - t0


class TreeMemory:
    """Peak RSS and PSS summed over a process and its descendants, sampled on a thread."""

    def __init__(self, pid: int, period_s: float = 0.25) -> None:
        self.root, self.period_s = psutil.Process(pid), period_s
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            rss = pss = 0
            for p in procs:
                try:
                    info = p.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
                except psutil.Error:
                    pass
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_processes = max(self.peak_processes, len(procs))
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def train(files: list[str], out_dir: Path, name: str, extra: list[str], processes: int = 1,
          timeout_s: float = 3600.0) -> dict:
    """One emg_pose_train run; its figures."""
    cli = ["-m", "emg_pose_node.cli", "train", *files, "--out",
           str(out_dir / f"{name}.safetensors"), "--no-progress", *extra]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(processes), *cli]
    else:
        cmd = [sys.executable, *cli]
    t0 = time.perf_counter()
    with Process(cmd, name=name, log_path=out_dir / f"{name}.log") as proc:
        memory = TreeMemory(proc.process.pid)
        code = proc.wait(timeout_s)
        memory.stop()
        output = proc.output
    if code != 0:
        raise RuntimeError(f"{name} exited with {code}:\n{output[-3000:]}")
    epoch = re.findall(r"^epoch \d+/\d+: .*?, ([\d.]+) s", output, re.MULTILINE)
    return {"seconds": round(time.perf_counter() - t0, 1),
            "epoch_s": float(epoch[-1]) if epoch else None,
            "peak_rss_mib": round(memory.peak_rss / 2**20), "peak_pss_mib":
            round(memory.peak_pss / 2**20), "processes": memory.peak_processes}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--data-dir", default="/tmp/emg_hand_scale_bench")
    p.add_argument("--epoch-windows", type=int, default=None)
    p.add_argument("--clean", action="store_true", help="remove the generated data at the end")
    p.add_argument("--json")
    args = p.parse_args(argv)
    small_n, large_n, seconds = (6, 60, 60.0) if args.quick else (10, 100, 300.0)
    epoch_windows = args.epoch_windows or (3200 if args.quick else 12800)
    data_dir = Path(args.data_dir)
    out_dir = data_dir / "runs"
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = ["--cache-dir", str(data_dir / "cache")]
    common = ["--stream", "--preset", "default", "--epochs", "1", "--epoch-windows",
              str(epoch_windows), "--eval-windows", "2000", *cache]

    files, gen_s = sessions(data_dir / "sessions", large_n, seconds)
    small = files[:small_n]
    size = {k: sum(os.path.getsize(f) for f in fs) for k, fs in (("small", small),
                                                                   ("large", files))}
    print(f"sessions: {len(small)} and {len(files)} x {seconds:g} s, "
          f"{size['small'] / GIB:.2f} and {size['large'] / GIB:.2f} GiB "
          f"(generated now: {gen_s:.0f} s)", flush=True)
    runs: dict[str, dict] = {}
    for name, fs, extra, procs in (
            ("cache_large", files, ["--cache-only", "--preset", "default", *cache], 1),
            ("train_small_1p", small, [*common, "--threads", "1"], 1),
            ("train_large_1p", files, [*common, "--threads", "1"], 1),
            ("train_large_1p_2threads", files, [*common, "--threads", "2"], 1),
            ("train_large_1p_1worker", files, [*common, "--threads", "1", "--workers", "1"], 1),
            ("train_large_2p", files, common, 2)):  # torchrun: 1 thread per process
        runs[name] = train(fs, out_dir, name, extra, procs)
        runs[name]["windows_per_s"] = (round(epoch_windows / runs[name]["epoch_s"])
                                       if runs[name]["epoch_s"] else None)
        print(f"{name}: {runs[name]}", flush=True)
    growth = size["large"] / size["small"]
    rss_small, rss_large = runs["train_small_1p"]["peak_rss_mib"], runs["train_large_1p"][
        "peak_rss_mib"]
    figures = [
        {"what": f"streamed training, {size['small'] / GIB:.2f} GiB of sessions: peak RSS "
                 "(process tree)", "value": rss_small, "unit": "MiB"},
        {"what": f"streamed training, {size['large'] / GIB:.2f} GiB ({growth:.0f}x): peak RSS "
                 "(process tree)", "value": rss_large, "unit": "MiB", "target": "< 1024"},
        {"what": "streamed training, the large set, 1 process (1 thread): throughput",
         "value": runs["train_large_1p"]["windows_per_s"], "unit": "windows/s"},
        {"what": "  1 process, 2 threads", "value":
         runs["train_large_1p_2threads"]["windows_per_s"], "unit": "windows/s"},
        {"what": "  1 process, 1 thread, 1 DataLoader worker", "value":
         runs["train_large_1p_1worker"]["windows_per_s"], "unit": "windows/s"},
        {"what": "  2 processes (torchrun, gloo, 1 thread each)", "value":
         runs["train_large_2p"]["windows_per_s"], "unit": "windows/s"},
        {"what": "  peak RSS of 2 processes (tree)", "value":
         runs["train_large_2p"]["peak_rss_mib"], "unit": "MiB"},
        {"what": f"cache pass over {size['large'] / GIB:.2f} GiB (--cache-only)", "value":
         runs["cache_large"]["seconds"], "unit": "s"},
    ]
    doc = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                       "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
                       "load_avg": os.getloadavg()},
           "sessions": {"small": len(small), "large": len(files), "seconds_each": seconds,
                        "bytes_small": size["small"], "bytes_large": size["large"],
                        "generation_s": round(gen_s, 1)},
           "epoch_windows": epoch_windows, "runs": runs, "figures": figures}
    for f in figures:
        print(f"{f['what']}: {f['value']} {f['unit']}")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    if args.clean:
        shutil.rmtree(data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
