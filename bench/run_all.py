#!/usr/bin/env python3
"""Run every benchmark and write one table: bench/results.md and bench/results.json.

    make bench                 # full counts (about 15-20 minutes on 2 cores)
    BENCH_QUICK=1 make bench   # the same figures at smaller counts (under 2 minutes)

Each benchmark is its own script (``bench/<name>.py``, runnable alone, ``--json PATH``);
this runner calls them one after the other (never in parallel: they measure time), reads
their JSON and keeps the headline figures, with the machine's description and the date.
A benchmark that fails is reported in the table, and the runner goes on with the next.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def _us(d: dict, key: str) -> float:
    return d[key] / 1000.0


def driver_rows(d: dict) -> list[tuple]:
    rows = []
    for r in d["results"]:
        case = r["case"]
        rows += [
            (f"driver {case}: lost samples", r["lost_samples"], "samples", "0"),
            (f"driver {case}: CPU", r["driver_cpu_percent_of_one_core"], "% of a core",
             "< 15" if "16ch" in case else ""),
            (f"driver {case}: write -> publish latency p50", r["latency_ms_p50"], "ms", ""),
            (f"driver {case}: write -> publish latency p99", r["latency_ms_p99"], "ms", "< 5"),
        ]
    return rows


def model_rows(d: dict) -> list[tuple]:
    rows = []
    for key, label in (("onnx_1t", "ONNX Runtime, 1 thread"), ("onnx_2t", "ONNX Runtime, 2 "
                       "threads"), ("torch_1t", "PyTorch, 1 thread"),
                       ("torch_2t", "PyTorch, 2 threads")):
        if key in d["latency"]:
            lat = d["latency"][key]
            rows += [(f"model: single streaming update, {label}, p50", _us(lat, "p50_us"), "ms",
                      ""),
                     (f"model: single streaming update, {label}, p99", _us(lat, "p99_us"), "ms",
                      "< 1 (faster path)" if key == "onnx_1t" else "")]
    for name, ft in d.get("finetune", {}).items():
        rows.append((f"model: fine-tune ({name}) on {ft['calibration_s']:.0f} s of calibration "
                     "data", ft["seconds"], "s", "< 15"))
    for threads, tr in d.get("training", {}).items():
        rows.append((f"model: training throughput, {threads}", tr["windows_per_s"],
                     "windows/s", ""))
    return rows


def real_data_rows(d: dict) -> list[tuple]:
    seeds = d["model_mean_r2_per_seed"]
    values = list(seeds.values())
    rows = [(f"real data (eeg_emg_hands s_0, last 20%): model mean R² ({len(values)} seed(s), "
             "mean)", sum(values) / len(values), "R²", ">= 0.60"),
            ("real data: ridge baseline mean R²", d["ridge_mean_r2"], "R²", "")]
    return rows


def controller_rows(d: dict) -> list[tuple]:
    n = d["node_receipt_to_publish"]
    e = d["end_to_end"]
    return [("controller: JointState receipt -> command publish p50", _us(n, "p50_us"), "ms",
             ""),
            ("controller: JointState receipt -> command publish p99", _us(n, "p99_us"), "ms",
             "< 2"),
            ("controller: publish -> command received (2 processes) p99", _us(e, "p99_us"),
             "ms", "")]


def bag_rows(d: dict) -> list[tuple]:
    f = d["figures"]
    return [("bag: write EMG chunks, MCAP", f["write_mcap_msgs_per_s"], "msgs/s", ""),
            ("bag: record 1 kHz publisher, fraction recorded", f["record_recorded_fraction"],
             "", "1.0"),
            ("bag: play rate 1, publish lateness p99", f["play_rate1_publish_late_p99_ms"], "ms",
             "")]


def figure_rows(d: dict) -> list[tuple]:
    return [(f["what"], f["value"], f["unit"], f.get("target", "")) for f in d["figures"]]


# script, extra arguments (full, quick), rows from its JSON
BENCHMARKS = [
    ("driver_bench", [], ["--quick"], driver_rows),
    ("model_bench", [], ["--quick"], model_rows),
    ("model_real_data", ["--seeds", "0,1,2"], ["--quick"], real_data_rows),
    ("pose_node_bench", [], ["--quick"], figure_rows),
    ("calibration_bench", [], ["--quick"], figure_rows),
    ("controller_bench", [], ["--quick"], controller_rows),
    ("bag_bench", [], [], bag_rows),
    ("sim_bench", [], ["--quick"], figure_rows),
    ("gesture_bench", [], ["--quick"], figure_rows),
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def main() -> int:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    OUT.mkdir(exist_ok=True)
    results = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
               "quick": quick, "benchmarks": {}}
    rows: list[tuple] = []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if quick:
        env["BENCH_QUICK"] = "1"
    for name, full_args, quick_args, extract in BENCHMARKS:
        script = HERE / f"{name}.py"
        if not script.exists():
            continue
        out = OUT / f"{name}.json"
        out.unlink(missing_ok=True)
        args = [sys.executable, str(script), *(quick_args if quick else full_args),
                "--json", str(out)]
        print(f"== {name} {'(quick)' if quick else ''}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(args, env=env, text=True, capture_output=True)
        seconds = time.monotonic() - t0
        (OUT / f"{name}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            print(f"   failed ({proc.returncode}): {' | '.join(tail)}", flush=True)
            rows.append((f"{name}: FAILED (see bench/out/{name}.log)", "", "", ""))
            results["benchmarks"][name] = {"failed": proc.returncode, "seconds": seconds}
            continue
        data = json.loads(out.read_text())
        results["benchmarks"][name] = {"seconds": seconds, "results": data}
        try:
            new = extract(data)
        except (KeyError, TypeError, ZeroDivisionError) as err:
            new = [(f"{name}: unexpected JSON ({err})", "", "", "")]
        rows += new
        for what, value, unit, _target in new:
            print(f"   {what}: {_fmt(value)} {unit}", flush=True)
    results["rows"] = [dict(zip(("what", "value", "unit", "target"), r)) for r in rows]
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Benchmarks{' (quick)' if quick else ''}", "",
             f"{results['date']} on {results['machine']}.", "",
             "`make bench` (`BENCH_QUICK=1` for small counts); each script in bench/ runs "
             "alone too.", "", "| what | value | unit | target |", "|---|---|---|---|"]
    lines += [f"| {what} | {_fmt(value)} | {unit} | {target} |"
              for what, value, unit, target in rows]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[6:]))
    print(f"wrote {HERE / 'results.md'} and {HERE / 'results.json'}")
    return 1 if any("FAILED" in r[0] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
