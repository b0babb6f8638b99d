"""emg_sim_record: write simulated armband data to an emg2pose-format HDF5 file, offline.

Runs the same simulator as the driver's ``sim`` source, much faster than real time, and
writes group ``emg2pose``, compound dataset ``timeseries`` (``time`` [s] float64, ``emg``
(C,) float32 [V], ``joint_angles`` (20,) float64 [rad]) plus attributes: sample rate,
channel names, joint names, seed and the wearer's parameters. The model package trains the
default model from such a file.

    emg_sim_record --seconds 600 --output sim_wearer_a.h5
    emg_sim_record --seconds 120 --wearer b --seed 7 --output sim_wearer_b.h5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from emg_hand_core.hand_model import JOINT_NAMES
from emg_hand_core.recordings import emg2pose

from .sim import ArmbandSimulator, SimConfig, WearerConfig, wearer_b

BLOCK_S = 10.0


def record(output: str | Path, seconds: float, config: SimConfig, seed: int,
           wearer_name: str = "custom") -> Path:
    """Simulate ``seconds`` and write them to ``output``; returns the path."""
    sim = ArmbandSimulator(config, seed=seed)
    fs = config.sample_rate_hz
    total = int(round(seconds * fs))
    w = config.wearer
    attrs = {
        "generator": "emg_driver.sim.ArmbandSimulator",
        "seed": int(seed),
        "wearer": wearer_name,
        "electrode_shift": float(w.electrode_shift),
        "channel_gains": list(w.channel_gains) if w.channel_gains else [1.0] * config.num_channels,
        "amplitude_scale": float(w.amplitude_scale),
        "crosstalk": float(w.crosstalk),
        "joint_names": list(JOINT_NAMES),
        "session": f"sim_{wearer_name}_seed{seed}",
        "user": f"sim_{wearer_name}",
        "side": "right",
        "sim_config": json.dumps(config.describe(), default=list),
    }
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with emg2pose.Writer(out, fs, sim.channel_names, attrs) as writer:
        block = max(1, int(BLOCK_S * fs))
        done = 0
        while done < total:
            n = min(block, total - done)
            emg, q = sim.generate(n)
            writer.append(emg, q)
            done += n
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emg_sim_record",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", required=True, help="HDF5 file to write")
    parser.add_argument("--seconds", type=float, default=300.0, help="duration [s] (300)")
    parser.add_argument("--sample-rate-hz", type=float, default=500.0, help="(500)")
    parser.add_argument("--num-channels", type=int, default=8, help="(8)")
    parser.add_argument("--seed", type=int, default=0, help="(0)")
    parser.add_argument("--wearer", choices=("a", "b"), default="a",
                        help="a: default armband placement; b: shifted, uneven gains (a)")
    parser.add_argument("--electrode-shift", type=float, default=None,
                        help="override the wearer's armband rotation [electrode spacings]")
    parser.add_argument("--line-noise-hz", type=float, default=0.0, help="0, 50 or 60 (0)")
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error("--seconds must be > 0")
    wearer = WearerConfig() if args.wearer == "a" else wearer_b(args.num_channels)
    if args.electrode_shift is not None:
        wearer = WearerConfig(electrode_shift=args.electrode_shift,
                              channel_gains=wearer.channel_gains,
                              amplitude_scale=wearer.amplitude_scale, crosstalk=wearer.crosstalk)
    config = SimConfig(sample_rate_hz=args.sample_rate_hz, num_channels=args.num_channels,
                       wearer=wearer, line_noise_hz=args.line_noise_hz)
    try:
        config.validate()
    except ValueError as err:
        parser.error(str(err))
    t0 = time.perf_counter()
    path = record(args.output, args.seconds, config, args.seed, wearer_name=args.wearer)
    dt = time.perf_counter() - t0
    print(f"wrote {path}: {args.seconds:g} s, {args.num_channels} ch at "
          f"{args.sample_rate_hz:g} Hz, wearer {args.wearer}, seed {args.seed} "
          f"({dt:.1f} s, {args.seconds / max(dt, 1e-9):.0f}x real time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
