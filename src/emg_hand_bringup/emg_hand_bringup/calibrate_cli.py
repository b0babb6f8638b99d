"""emg_hand_calibrate: send a Calibrate goal to emg_pose and follow it to the end.

    emg_hand_calibrate                                     # guided, the node's pose library
    emg_hand_calibrate --poses rest open fist pinch --hold-s 3 --repetitions 1
    emg_hand_calibrate --mode reference --duration-s 60 --save-as alice
    emg_hand_calibrate --ros-args -r __ns:=/left           # the left hand's emg_pose

Prints the guided prompts (calibration/prompt) and the action feedback, then the result.
Ctrl-C (or SIGTERM, e.g. from ros2 launch) cancels the goal; the old model keeps running.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Sequence

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from emg_interfaces.action import Calibrate
from emg_interfaces.msg import CalibrationPrompt

from .calibrate_core import (
    EXIT_INTERRUPTED,
    EXIT_NO_GOAL,
    ProgressPrinter,
    build_parser,
    describe_goal,
    format_result,
    goal_fields,
    split_args,
)


def _say(text: str) -> None:
    print(f"emg_hand_calibrate: {text}", flush=True)


class _Stop(Exception):
    pass


def _spin_until(executor: SingleThreadedExecutor, future, timeout_s: float | None,
                stop: threading.Event | None = None) -> bool:
    """Spin until ``future`` is done (True) or ``timeout_s`` passes (False); raise _Stop
    between spins once ``stop`` is set. A signal handler only sets ``stop``: an exception
    raised from the handler itself could land inside rclpy's C++ calls and come out as an
    unrelated error (e.g. a TypeError from taking action feedback)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not future.done():
        if stop is not None and stop.is_set():
            raise _Stop
        if deadline is not None and time.monotonic() > deadline:
            return False
        executor.spin_once(timeout_sec=0.1)
    return True


def run(argv: Sequence[str]) -> int:
    ours, ros_args = split_args(argv)
    parser = build_parser()
    args = parser.parse_args(ours)
    try:
        fields = goal_fields(args)
    except ValueError as err:
        parser.error(str(err))
    # our own signal handling: Ctrl-C / SIGTERM must cancel the goal, which needs ROS alive
    rclpy.init(args=["emg_hand_calibrate", *ros_args],
               signal_handler_options=SignalHandlerOptions.NO)
    node = Node("emg_hand_calibrate")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    printer = ProgressPrinter()
    goal_handle = None
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda _signum, _frame: stop.set())
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        def on_prompt(msg: CalibrationPrompt) -> None:
            line = printer.prompt(msg.phase, msg.pose_name, msg.index, msg.count,
                                  msg.seconds_remaining)
            if line:
                _say(line)

        last_feedback = [time.monotonic()]

        def on_feedback(message) -> None:
            last_feedback[0] = time.monotonic()
            f = message.feedback
            line = printer.feedback(f.phase, f.prompt, f.seconds_recorded, f.seconds_total,
                                    f.epoch, f.epochs_total, f.loss)
            if line:
                _say(line)

        node.create_subscription(CalibrationPrompt, "calibration/prompt", on_prompt,
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        client = ActionClient(node, Calibrate, args.action)
        action = node.resolve_topic_name(args.action)
        _say(f"waiting for {action} (up to {args.server_timeout_s:g} s)")
        deadline = time.monotonic() + args.server_timeout_s
        while not client.server_is_ready():
            if stop.is_set():
                raise _Stop
            if time.monotonic() > deadline:
                _say(f"no action server {action} after {args.server_timeout_s:g} s: is "
                     "emg_pose running (in this namespace)?")
                return EXIT_NO_GOAL
            executor.spin_once(timeout_sec=0.1)
        goal = Calibrate.Goal(**fields)
        _say(f"sending the goal: {describe_goal(fields)}")
        sent = client.send_goal_async(goal, feedback_callback=on_feedback)
        _spin_until(executor, sent, None, stop)
        goal_handle = sent.result()
        if not goal_handle.accepted:
            _say("goal rejected by emg_pose (its log says why: a calibration already running, "
                 "unknown poses, no model loaded, ...)")
            return EXIT_NO_GOAL
        _say("goal accepted")
        result_future = goal_handle.get_result_async()
        _spin_until(executor, result_future, None, stop)
        # Feedback and result travel separately: print the feedback sent before the result
        # (the last epochs) that is still queued, until it pauses for 0.2 s (at most 2 s).
        drain_end = time.monotonic() + 2.0
        while time.monotonic() < min(drain_end, last_feedback[0] + 0.2):
            executor.spin_once(timeout_sec=0.05)
        result = result_future.result().result
        text, code = format_result(result.success, result.message, result.error_before_rad,
                                   result.error_after_rad, result.model_swapped,
                                   result.seconds_used, result.model_path)
        _say(text)
        return code
    except _Stop:
        for s in previous:  # a second signal ends at once
            signal.signal(s, signal.SIG_DFL)
        if goal_handle is not None and goal_handle.accepted:
            _say("interrupted: cancelling the calibration (the old model keeps running)")
            _spin_until(executor, goal_handle.cancel_goal_async(), 5.0)
            result_future = goal_handle.get_result_async()
            if _spin_until(executor, result_future, 10.0):
                _say(f"cancelled: {result_future.result().result.message}")
        else:
            _say("interrupted")
        return EXIT_INTERRUPTED
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:  # argparse
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_NO_GOAL


if __name__ == "__main__":
    sys.exit(main())
