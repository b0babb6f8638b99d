"""Console script ``hand_render``: a PNG of the predicted hand next to its reference.

    hand_render demo_output/bag -o demo_output/hand.png
    hand_render eval.npz -o hand.png --frames 5 --title "held-out session"

A few hand frames (predicted solid red, reference dashed grey) over joint-angle traces per
finger. Reads rosbag2 folders, .npz and emg2pose HDF5 (see :mod:`hand_visualizer.bag_io`);
draws with :mod:`emg_hand_core.hand_plot`. No ROS needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emg_hand_core.hand_plot import save_comparison_png

from .bag_io import (
    PREDICTED_TOPIC,
    REFERENCE_TOPIC,
    RecordingError,
    clip_time,
    read_recording,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hand_render", description=__doc__.split("\n\n")[0])
    p.add_argument("recording", type=Path,
                   help="rosbag2 folder (or its .mcap/.db3), .npz, or emg2pose .hdf5")
    p.add_argument("-o", "--output", type=Path, default=Path("hand.png"), help="PNG to write")
    p.add_argument("--frames", type=int, default=4, help="hand frames to draw (default 4)")
    p.add_argument("--title", default=None, help="figure title (default: the input's name)")
    p.add_argument("--predicted-topic", default=PREDICTED_TOPIC)
    p.add_argument("--reference-topic", default=REFERENCE_TOPIC)
    p.add_argument("--start-s", type=float, default=None, help="first second to draw")
    p.add_argument("--end-s", type=float, default=None, help="last second to draw")
    p.add_argument("--width-in", type=float, default=12.0, help="figure width [inch]")
    p.add_argument("--dpi", type=float, default=100.0, help="pixels per inch")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.frames < 1:
        print("hand_render: --frames must be >= 1", file=sys.stderr)
        return 2
    try:
        predicted, reference = read_recording(args.recording, args.predicted_topic,
                                              args.reference_topic)
        predicted = clip_time(predicted, args.start_s, args.end_s)
        reference = clip_time(reference, args.start_s, args.end_s)
        if predicted is None and reference is None:
            raise RecordingError("nothing left to draw in the chosen time range")
        out = save_comparison_png(args.output, predicted, reference, n_frames=args.frames,
                                  title=args.title if args.title is not None
                                  else args.recording.name,
                                  width_in=args.width_in, dpi=args.dpi)
    except (RecordingError, OSError) as exc:
        print(f"hand_render: {exc}", file=sys.stderr)
        return 1
    parts = [f"{s.label}: {len(s.t)} poses" for s in (predicted, reference) if s is not None]
    print(f"hand_render: wrote {out} ({', '.join(parts)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
