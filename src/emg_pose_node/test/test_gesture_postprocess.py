"""Post-processing rules on scripted probabilities: rejection, majority vote, proportional
level, and the posture that follows the decisions."""

from __future__ import annotations

import numpy as np
import pytest

from emg_hand_core.poses import NAMED_POSES
from emg_pose_node.gesture.postprocess import (
    DecisionFilter,
    PostSettings,
    PostureFollower,
    parse_mapping,
    posture_targets,
)

NAMES = ("rest", "fist", "wrist_extension")
REST, FIST, EXT = 0, 1, 2


def p(k: int, confidence: float = 0.9) -> np.ndarray:
    out = np.full(3, (1.0 - confidence) / 2)
    out[k] = confidence
    return out


def run(f: DecisionFilter, script, mav: float = 1e-4):
    return [f.step(probabilities, mav) for probabilities in script]


def test_rejection_below_the_threshold_falls_back_to_rest():
    f = DecisionFilter(NAMES, PostSettings(rejection_threshold=0.6, proportional=False))
    sure, unsure = run(f, [p(FIST, 0.9), p(FIST, 0.5)])
    assert (sure.class_name, sure.rejected, sure.level) == ("fist", False, 1.0)
    assert (unsure.class_index, unsure.class_name, unsure.rejected) == (REST, "rest", True)
    assert unsure.level == 0.0 and unsure.window_class == FIST
    assert unsure.confidence == pytest.approx(0.5)
    np.testing.assert_allclose(unsure.probabilities, p(FIST, 0.5))
    never = DecisionFilter(NAMES, PostSettings(rejection_threshold=0.0))
    assert not never.step(np.full(3, 1 / 3), 1e-4).rejected


def test_majority_vote_over_the_last_n_decisions():
    f = DecisionFilter(NAMES, PostSettings(vote_window=3, proportional=False))
    decided = [d.class_name for d in run(f, [p(FIST), p(FIST), p(EXT), p(FIST), p(EXT),
                                             p(EXT), p(REST)])]
    # windows: F F E F E E R -> votes over the last 3: F, F, F(FFE), F(FEF), E(EFE),
    # E(FEE), E(EER)
    assert decided == ["fist", "fist", "fist", "fist", "wrist_extension", "wrist_extension",
                       "wrist_extension"]
    f.reset()
    tie = DecisionFilter(NAMES, PostSettings(vote_window=2, proportional=False))
    # F, then F E: a tie, won by the most recent of the tied
    assert [d.class_name for d in run(tie, [p(FIST), p(EXT)])] == ["fist", "wrist_extension"]


def test_rejected_votes_take_part_in_the_vote():
    f = DecisionFilter(NAMES, PostSettings(rejection_threshold=0.6, vote_window=3,
                                           proportional=False))
    out = run(f, [p(FIST), p(FIST, 0.4), p(FIST, 0.4), p(FIST)])
    assert [d.rejected for d in out] == [False, True, True, True]  # F R R, then R R F
    assert out[-1].class_name == "rest"


def test_proportional_level_scales_mav_by_the_class_range():
    low, high = [0.0, 1e-4, 2e-4], [1.0, 3e-4, 6e-4]
    f = DecisionFilter(NAMES, PostSettings(proportional=True), low, high)
    assert f.step(p(FIST), 2e-4).level == pytest.approx(0.5)  # (2 - 1) / (3 - 1)
    assert f.step(p(FIST), 0.5e-4).level == 0.0  # below the class's weakest: clipped
    assert f.step(p(FIST), 9e-4).level == 1.0
    assert f.step(p(EXT), 3e-4).level == pytest.approx(0.25)  # (3 - 2) / (6 - 2)
    assert f.step(p(REST), 9e-4).level == 0.0  # rest never moves the hand
    gain = DecisionFilter(NAMES, PostSettings(proportional_gain=2.0), low, high)
    assert gain.step(p(FIST), 2e-4).level == pytest.approx(1.0)
    flat = DecisionFilter(NAMES, PostSettings(proportional=False), low, high)
    assert flat.step(p(FIST), 0.5e-4).level == 1.0
    with pytest.raises(ValueError):
        DecisionFilter(NAMES, low=[0.0], high=[1.0])


def test_settings_are_checked():
    for bad in (dict(rejection_threshold=1.5), dict(vote_window=0),
                dict(proportional_gain=0.0)):
        with pytest.raises(ValueError):
            PostSettings(**bad)


def test_posture_moves_at_the_proportional_speed_and_rests_when_rejected():
    follower = PostureFollower(NAMES, max_speed_rad_s=2.0, rest_index=REST)
    assert np.allclose(follower.q, NAMED_POSES["rest"])
    f = DecisionFilter(NAMES, PostSettings(proportional=True), [0, 0, 0], [1, 1e-3, 1e-3])
    half = f.step(p(FIST), 0.5e-3)
    q0 = follower.q.copy()
    q1 = follower.step(half, 0.05)
    step = np.abs(q1 - q0)
    assert step.max() == pytest.approx(0.5 * 2.0 * 0.05)  # level 0.5 x 2 rad/s x 50 ms
    toward = np.sign(NAMED_POSES["fist"] - q0)
    assert np.all((q1 - q0) * toward >= -1e-12)  # toward the fist
    for _ in range(200):
        q = follower.step(f.step(p(FIST), 1e-3), 0.05)
    assert np.allclose(q, NAMED_POSES["fist"])  # arrived, and stays
    rejected = DecisionFilter(NAMES, PostSettings(rejection_threshold=0.99)).step(p(FIST), 1e-3)
    q = follower.step(rejected, 0.05)
    assert np.abs(q - NAMED_POSES["fist"]).max() == pytest.approx(2.0 * 0.05)  # full speed
    assert np.allclose(posture_targets(NAMES)[EXT], NAMED_POSES["open"])  # extension opens


def test_class_posture_mapping():
    assert parse_mapping(["fist=pinch", " open = point "]) == {"fist": "pinch", "open": "point"}
    for bad in (["fist"], ["fist=nonsense"], ["=fist"]):
        with pytest.raises(ValueError, match="class=pose"):
            parse_mapping(bad)
    assert np.allclose(posture_targets(NAMES, {"fist": "pinch"})[FIST], NAMED_POSES["pinch"])
    with pytest.raises(ValueError, match="no hand posture for classes \\['wave'\\]"):
        posture_targets(("rest", "wave"))
