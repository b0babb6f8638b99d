"""Pure core of emg_hand_calibrate (no rclpy): arguments -> goal fields, and the lines it
prints for prompts, feedback and the result. Unit-tested directly; calibrate_cli wires it to
the emg_pose node's ``~/calibrate`` action (emg_interfaces/action/Calibrate)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

# emg_interfaces/action/Calibrate goal modes and feedback phases
MODES = {"reference": 0, "guided": 1}
FEEDBACK_PHASES = {0: "waiting for data", 1: "recording", 2: "fine-tuning", 3: "evaluating"}
# emg_interfaces/msg/CalibrationPrompt phases
PROMPT_PHASES = {0: "get ready", 1: "HOLD", 2: "rest", 3: "done"}

EXIT_SUCCESS = 0   # the calibration ran (the model was swapped, or kept as not better)
EXIT_FAILED = 1    # aborted (too little data, data stopped, cancelled)
EXIT_NO_GOAL = 2   # bad arguments, no action server, goal rejected
EXIT_INTERRUPTED = 130


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="emg_hand_calibrate",
        description="Calibrate the running emg_pose model to the wearer: send a Calibrate "
                    "goal, print the prompts and progress, exit with the result (0 done, "
                    "1 failed or cancelled, 2 no goal). Ctrl-C cancels the calibration (the "
                    "old model keeps running).",
        epilog="Zero / empty values mean the node's defaults (its calibration_* parameters). "
               "ROS arguments go after --ros-args (e.g. --ros-args -r __ns:=/left).")
    p.add_argument("--mode", choices=sorted(MODES), default="guided",
                   help="guided: prompt named poses (no reference needed); reference: record "
                        "EMG with a reference pose topic (default guided)")
    p.add_argument("--action", default="emg_pose/calibrate",
                   help="action name (relative names resolve in the namespace; default "
                        "emg_pose/calibrate)")
    p.add_argument("--duration-s", type=_non_negative, default=0.0,
                   help="reference mode: seconds to record")
    p.add_argument("--reference-topic", default="",
                   help="reference mode: sensor_msgs/JointState topic with the true pose")
    p.add_argument("--poses", nargs="+", default=[], metavar="POSE",
                   help="guided mode: poses to prompt, in order (rest open fist pinch ...)")
    p.add_argument("--hold-s", type=_non_negative, default=0.0,
                   help="guided mode: seconds each pose is held")
    p.add_argument("--rest-s", type=_non_negative, default=0.0,
                   help="guided mode: seconds of rest between poses")
    p.add_argument("--transition-s", type=float, default=-1.0,
                   help="guided mode: seconds after each prompt change left out of the "
                        "labels (negative: node default)")
    p.add_argument("--repetitions", type=int, default=0,
                   help="guided mode: repetitions of the pose sequence")
    p.add_argument("--epochs", type=int, default=0, help="fine-tuning epochs")
    p.add_argument("--learning-rate", type=_non_negative, default=0.0,
                   help="fine-tuning learning rate")
    p.add_argument("--unfreeze-last-lstm", action="store_true",
                   help="fine-tuning: also train the last LSTM layer (slower)")
    p.add_argument("--validation-fraction", type=_fraction, default=None,
                   help="held-out end of the recording that decides whether the new model "
                        "is better, in (0, 1)")
    p.add_argument("--save-as", default="",
                   help="also save an accepted model under this plain name")
    p.add_argument("--server-timeout-s", type=_non_negative, default=60.0,
                   help="wait this long for the action server (default 60)")
    return p


def goal_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The Calibrate goal's fields for parsed arguments."""
    if args.repetitions < 0 or args.epochs < 0:
        raise ValueError("--repetitions and --epochs must be >= 0")
    return {
        "mode": MODES[args.mode],
        "duration_s": float(args.duration_s),
        "reference_topic": args.reference_topic,
        "poses": list(args.poses),
        "hold_s": float(args.hold_s),
        "rest_s": float(args.rest_s),
        "transition_s": float(args.transition_s),
        "repetitions": int(args.repetitions),
        "epochs": int(args.epochs),
        "learning_rate": float(args.learning_rate),
        "unfreeze_last_lstm": bool(args.unfreeze_last_lstm),
        "validation_fraction": float(args.validation_fraction or 0.0),
        "save_as": args.save_as,
    }


def describe_goal(fields: Mapping[str, Any]) -> str:
    if fields["mode"] == MODES["guided"]:
        poses = " ".join(fields["poses"]) or "the node's pose library"
        return f"guided calibration: {poses}"
    seconds = f"{fields['duration_s']:g} s" if fields["duration_s"] else "the node's duration"
    return f"reference calibration: {seconds} of EMG with the reference pose"


class ProgressPrinter:
    """Turns prompts and feedback into lines, printing only what changed."""

    def __init__(self, recording_step_s: float = 5.0) -> None:
        self._prompt: tuple | None = None
        self._phase: int | None = None
        self._feedback_prompt = ""
        self._next_recorded_s = 0.0
        self._epoch = 0
        self._step_s = recording_step_s

    def prompt(self, phase: int, pose_name: str, index: int, count: int,
               seconds_remaining: float) -> str | None:
        """A line for a calibration/prompt message, when its phase or pose changed."""
        key = (phase, pose_name, index)
        if key == self._prompt:
            return None
        self._prompt = key
        what = PROMPT_PHASES.get(phase, f"phase {phase}")
        if phase == 3:
            return "prompt: done, relax"
        position = f"[{index + 1}/{count}] " if count else ""
        if phase == 2:
            return f"prompt: {position}{what} ({seconds_remaining:.0f} s)"
        return f"prompt: {position}{what}: {pose_name.upper().replace('_', ' ')} " \
               f"({seconds_remaining:.0f} s)"

    def feedback(self, phase: int, prompt: str, seconds_recorded: float, seconds_total: float,
                 epoch: int, epochs_total: int, loss: float) -> str | None:
        """A line for Calibrate feedback: phase changes, recording progress, each epoch."""
        name = FEEDBACK_PHASES.get(phase, f"phase {phase}")
        if phase != self._phase:
            self._phase = phase
            self._next_recorded_s = self._step_s
            if phase == 1 and seconds_total > 0:
                return f"{name}: {seconds_total:.0f} s of calibration data"
            return f"{name}"
        if phase == 1 and seconds_recorded >= self._next_recorded_s:
            while self._next_recorded_s <= seconds_recorded:
                self._next_recorded_s += self._step_s
            extra = f" (prompt: {prompt})" if prompt else ""
            return f"recording: {seconds_recorded:.0f} / {seconds_total:.0f} s{extra}"
        if phase == 2 and epoch != self._epoch and epoch > 0:
            self._epoch = epoch
            return f"fine-tuning: epoch {epoch}/{epochs_total} loss {loss:.4f} rad^2"
        return None


def format_result(success: bool, message: str, error_before_rad: float,
                  error_after_rad: float, model_swapped: bool, seconds_used: float,
                  model_path: str) -> tuple[str, int]:
    """(text, exit status) for a Calibrate result."""
    if not success:
        return f"calibration failed: {message}", EXIT_FAILED
    lines = [f"calibration done: {message}",
             f"  held-out error: {error_before_rad:.4f} rad before, {error_after_rad:.4f} rad "
             f"after ({seconds_used:.1f} s of labelled EMG used)",
             "  the calibrated model is running now" if model_swapped
             else "  the previous model keeps running (the new one was not better)"]
    if model_path:
        lines.append(f"  saved: {model_path}")
    return "\n".join(lines), EXIT_SUCCESS


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(our arguments, ROS arguments from --ros-args on)."""
    argv = list(argv)
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        return argv[:i], argv[i:]
    return argv, []
