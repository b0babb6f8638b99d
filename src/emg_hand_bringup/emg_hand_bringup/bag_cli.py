"""emg_hand_bag: record, play and inspect rosbag2 bags of our topics without `ros2 bag`.

    emg_hand_bag record [-o DIR] [TOPIC ...] [--all-ours] [--storage mcap|sqlite3] [--duration S]
    emg_hand_bag play DIR [--rate F] [--loop] [--start-offset S] [--topics T ...]
                          [--remap FROM:=TO ...] [--clock [HZ]] [--wait-for-subscribers [S]]
    emg_hand_bag info DIR

ROS arguments go after ``--ros-args`` as usual (``--ros-args -r __ns:=/left``).
Exit status: 0 done (also when stopped by Ctrl-C / SIGTERM), 2 bad arguments or bag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .bag_core import (
    DEFAULT_TOPICS,
    STORAGE_IDS,
    BagError,
    default_bag_name,
    directory_size,
    format_info,
    parse_remaps,
    read_metadata,
    split_ros_args,
)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emg_hand_bag",
        description="Record, play and inspect rosbag2 bags (MCAP or sqlite3) of the emg_hand "
                    "topics with the rosbags library; no ros2 bag needed.",
        epilog="ROS arguments follow --ros-args (e.g. --ros-args -r __ns:=/left).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{record,play,info}")

    rec = sub.add_parser(
        "record", help="record topics to a new rosbag2 folder",
        description="Record topics to a new rosbag2 folder (metadata.yaml version 9 + one MCAP "
                    "or sqlite3 file). Each topic is subscribed once it has a publisher, with "
                    "its type from the graph and QoS matching the publishers (reliable / "
                    "transient local where all of them offer it). Stops on Ctrl-C, SIGTERM "
                    "or after --duration, always leaving a readable bag.")
    rec.add_argument("topics", nargs="*", metavar="TOPIC",
                     help="topics to record; relative names resolve in the node's namespace "
                          f"(default: our topics: {' '.join(DEFAULT_TOPICS)})")
    rec.add_argument("--all-ours", action="store_true",
                     help="also record all of our topics (the default set) besides TOPICs")
    rec.add_argument("-o", "--output", type=Path, default=None,
                     help="bag folder to create (must not exist; default rosbag2_<date-time>)")
    rec.add_argument("-s", "--storage", choices=STORAGE_IDS, default="mcap",
                     help="storage format (default mcap, as rosbag2 in Jazzy)")
    rec.add_argument("-d", "--duration", type=_positive_float, default=None, metavar="S",
                     help="stop after S seconds (default: until Ctrl-C / SIGTERM)")

    play = sub.add_parser(
        "play", help="publish a bag's messages with their original timing",
        description="Publish a bag's messages (CDR bytes as recorded) with their original "
                    "relative timing scaled by --rate, each topic with the QoS its recorded "
                    "publishers offered.")
    play.add_argument("bag", type=Path, metavar="DIR", help="rosbag2 folder")
    play.add_argument("-r", "--rate", type=_positive_float, default=1.0,
                      help="play speed factor (default 1.0; 4 = four times faster)")
    play.add_argument("-l", "--loop", action="store_true", help="play again from the start "
                      "(offset) at the end, until stopped")
    play.add_argument("--start-offset", type=_non_negative_float, default=0.0, metavar="S",
                      help="skip the first S seconds of the bag")
    play.add_argument("--topics", nargs="+", default=None, metavar="TOPIC",
                      help="play only these topics (default all)")
    play.add_argument("--remap", "-m", nargs="+", default=[], metavar="FROM:=TO",
                      help="publish recorded topic FROM on TO")
    play.add_argument("--clock", type=_positive_float, nargs="?", const=40.0, default=None,
                      metavar="HZ", help="also publish the bag time on /clock at HZ "
                      "(default 40) for use_sim_time nodes")
    play.add_argument("--wait-for-subscribers", type=_non_negative_float, nargs="?",
                      const=10.0, default=None, metavar="S",
                      help="before playing, wait up to S s (default 10) until every played "
                           "topic has a subscriber, so volatile subscribers miss nothing")

    info = sub.add_parser("info", help="print what `ros2 bag info` prints",
                          description="Print a bag's summary as `ros2 bag info` does.")
    info.add_argument("bag", type=Path, metavar="DIR", help="rosbag2 folder")
    return parser


def record_topics(topics: Sequence[str], all_ours: bool) -> list[str]:
    """The topics `record` subscribes to: the given ones, our defaults, or both."""
    chosen = list(topics)
    if all_ours or not chosen:
        chosen += DEFAULT_TOPICS
    return list(dict.fromkeys(chosen))


def main(argv: Sequence[str] | None = None) -> int:
    ours, ros_args = split_ros_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(ours)
    try:
        if args.command == "info":
            print(format_info(read_metadata(args.bag), directory_size(args.bag)), end="")
            return 0
        # rclpy only for the commands that talk to ROS
        from .bag_ros import run_play, run_record

        if args.command == "record":
            out = args.output or Path(default_bag_name())
            if out.exists():
                raise BagError(f"{out} exists already; give a new folder with -o")
            return run_record(out, record_topics(args.topics, args.all_ours), args.storage,
                              args.duration, ros_args)
        try:
            remaps = parse_remaps(args.remap)
        except ValueError as exc:
            raise BagError(str(exc)) from None
        return run_play(args.bag, rate=args.rate, loop=args.loop,
                        start_offset_s=args.start_offset, topics=args.topics, remaps=remaps,
                        clock_hz=args.clock, wait_for_subscribers_s=args.wait_for_subscribers,
                        ros_args=ros_args)
    except BagError as exc:
        print(f"emg_hand_bag {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
