"""emg_hand_calibrate's pure core: arguments -> Calibrate goal, printed progress, result."""

from __future__ import annotations

import pytest

from emg_hand_bringup.calibrate_core import (
    EXIT_FAILED,
    EXIT_SUCCESS,
    FEEDBACK_PHASES,
    MODES,
    PROMPT_PHASES,
    ProgressPrinter,
    build_parser,
    describe_goal,
    format_result,
    goal_fields,
    split_args,
)
from emg_interfaces.action import Calibrate
from emg_interfaces.msg import CalibrationPrompt


def test_constants_are_the_interface_constants():
    assert MODES == {"reference": Calibrate.Goal.MODE_REFERENCE,
                     "guided": Calibrate.Goal.MODE_GUIDED}
    fb = Calibrate.Feedback
    assert set(FEEDBACK_PHASES) == {fb.PHASE_WAITING, fb.PHASE_RECORDING, fb.PHASE_TRAINING,
                                    fb.PHASE_EVALUATING}
    p = CalibrationPrompt
    assert PROMPT_PHASES[p.PHASE_HOLD] == "HOLD" and PROMPT_PHASES[p.PHASE_REST] == "rest"
    assert set(PROMPT_PHASES) == {p.PHASE_GET_READY, p.PHASE_HOLD, p.PHASE_REST, p.PHASE_DONE}


def test_defaults_ask_for_the_node_defaults():
    fields = goal_fields(build_parser().parse_args([]))
    goal = Calibrate.Goal(**fields)  # every key is a goal field of the right type
    assert goal.mode == Calibrate.Goal.MODE_GUIDED
    assert list(goal.poses) == [] and goal.hold_s == 0 and goal.repetitions == 0
    assert goal.transition_s < 0  # negative = node default (0 would mean "no transition")
    assert goal.epochs == 0 and goal.validation_fraction == 0 and goal.save_as == ""
    assert describe_goal(fields) == "guided calibration: the node's pose library"


def test_arguments_fill_the_goal():
    args = build_parser().parse_args([
        "--mode", "reference", "--duration-s", "60", "--reference-topic", "glove/joints",
        "--epochs", "20", "--learning-rate", "0.001", "--unfreeze-last-lstm",
        "--validation-fraction", "0.3", "--save-as", "alice"])
    goal = Calibrate.Goal(**goal_fields(args))
    assert goal.mode == Calibrate.Goal.MODE_REFERENCE and goal.duration_s == 60.0
    assert goal.reference_topic == "glove/joints" and goal.epochs == 20
    assert goal.unfreeze_last_lstm and goal.validation_fraction == pytest.approx(0.3)
    assert goal.save_as == "alice"
    guided = goal_fields(build_parser().parse_args(
        ["--poses", "rest", "fist", "--hold-s", "3", "--rest-s", "1", "--repetitions", "1"]))
    assert guided["poses"] == ["rest", "fist"] and guided["hold_s"] == 3.0
    assert describe_goal(guided) == "guided calibration: rest fist"


@pytest.mark.parametrize("argv", [["--mode", "both"], ["--duration-s", "-1"],
                                  ["--validation-fraction", "1.5"], ["--hold-s", "x"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(ValueError, match="repetitions"):
        goal_fields(build_parser().parse_args(["--repetitions", "-2"]))


def test_split_ros_arguments():
    assert split_args(["--mode", "guided", "--ros-args", "-r", "__ns:=/left"]) == (
        ["--mode", "guided"], ["--ros-args", "-r", "__ns:=/left"])
    assert split_args(["--mode", "guided"]) == (["--mode", "guided"], [])


def test_prompts_print_once_per_change():
    printer = ProgressPrinter()
    hold = CalibrationPrompt.PHASE_HOLD
    assert printer.prompt(CalibrationPrompt.PHASE_GET_READY, "fist", 2, 10, 1.0) == \
        "prompt: [3/10] get ready: FIST (1 s)"
    assert printer.prompt(hold, "fist", 2, 10, 4.0) == "prompt: [3/10] HOLD: FIST (4 s)"
    assert printer.prompt(hold, "fist", 2, 10, 3.0) is None  # same prompt, time running
    assert printer.prompt(CalibrationPrompt.PHASE_REST, "", 2, 10, 2.0) == \
        "prompt: [3/10] rest (2 s)"
    assert printer.prompt(hold, "index_flex", 3, 10, 4.0) == \
        "prompt: [4/10] HOLD: INDEX FLEX (4 s)"
    assert printer.prompt(CalibrationPrompt.PHASE_DONE, "", 0, 0, 0.0) == "prompt: done, relax"


def test_feedback_prints_phases_progress_and_epochs():
    fb = Calibrate.Feedback
    printer = ProgressPrinter(recording_step_s=5.0)
    lines = [printer.feedback(fb.PHASE_WAITING, "", 0, 12, 0, 0, 0)]
    lines += [printer.feedback(fb.PHASE_RECORDING, "", t * 0.5, 12, 0, 0, 0)
              for t in range(0, 25)]
    lines += [printer.feedback(fb.PHASE_TRAINING, "", 12, 12, e, 3, 0.1 / (e + 1))
              for e in (0, 1, 1, 2, 3)]
    lines += [printer.feedback(fb.PHASE_EVALUATING, "", 12, 12, 3, 3, 0.02)]
    assert [line for line in lines if line] == [
        "waiting for data",
        "recording: 12 s of calibration data",
        "recording: 5 / 12 s",
        "recording: 10 / 12 s",
        "fine-tuning",
        "fine-tuning: epoch 1/3 loss 0.0500 rad^2",
        "fine-tuning: epoch 2/3 loss 0.0333 rad^2",
        "fine-tuning: epoch 3/3 loss 0.0250 rad^2",
        "evaluating",
    ]


def test_results_and_exit_status():
    text, code = format_result(True, "calibrated: held-out error 0.2 -> 0.1 rad", 0.2, 0.1,
                               True, 42.0, "/home/u/.ros/emg_hand/models/alice.safetensors")
    assert code == EXIT_SUCCESS
    assert "0.2000 rad before, 0.1000 rad after (42.0 s" in text
    assert "calibrated model is running now" in text and "alice.safetensors" in text
    text, code = format_result(True, "kept", 0.1, 0.2, False, 42.0, "")
    assert code == EXIT_SUCCESS and "previous model keeps running" in text
    text, code = format_result(False, "too little usable data", 0, 0, False, 0, "")
    assert code == EXIT_FAILED and text == "calibration failed: too little usable data"
