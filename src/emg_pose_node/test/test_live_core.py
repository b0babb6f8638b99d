"""Pure pieces of the live node: stream guard, sample ring, One Euro filter, model names,
calibration schedule and reference alignment."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emg_hand_core.hand_model import JOINT_NAMES
from emg_hand_core.poses import NAMED_POSES
from emg_pose_node.calibration import (
    PHASE_DONE,
    PHASE_GET_READY,
    PHASE_HOLD,
    PHASE_REST,
    CalibrationRecording,
    GuidedSchedule,
    ReferenceTrack,
    labelled_segments,
)
from emg_pose_node.model_names import model_path, validate_model_name
from emg_pose_node.one_euro import OneEuroFilter
from emg_pose_node.stream_guard import EmgStreamGuard, Fault, SampleRing

RATE = 500.0
NS = 1_000_000_000


def chunk(n=5, c=8, value=1e-5):
    return np.full((n, c), value, dtype=np.float32)


def stamp(index):
    return int(index * NS / RATE)


class TestStreamGuard:
    def test_continuous_stream_is_accepted_without_resets(self):
        guard = EmgStreamGuard(8, RATE)
        for i in range(0, 100, 5):
            v = guard.check(i, stamp(i), chunk(), RATE)
            assert v.accept and not v.reset and v.fault is None

    def test_gap_resets_and_counts_dropped_samples(self):
        guard = EmgStreamGuard(8, RATE)
        guard.check(0, stamp(0), chunk(), RATE)
        v = guard.check(12, stamp(12), chunk(), RATE)
        assert v.accept and v.reset and v.fault is Fault.GAP and v.dropped_samples == 7
        assert guard.dropped_samples == 7 and guard.counts[Fault.GAP] == 1
        assert not guard.check(17, stamp(17), chunk(), RATE).reset  # continuous again

    def test_time_backwards_resets(self):
        guard = EmgStreamGuard(8, RATE)
        guard.check(1000, stamp(1000), chunk(), RATE)
        v = guard.check(0, stamp(0), chunk(), RATE)  # a bag looped
        assert v.accept and v.reset and v.fault is Fault.TIME_BACKWARDS

    def test_non_finite_chunk_is_dropped_and_breaks_continuity(self):
        guard = EmgStreamGuard(8, RATE)
        guard.check(0, stamp(0), chunk(), RATE)
        bad = chunk()
        bad[2, 3] = np.nan
        v = guard.check(5, stamp(5), bad, RATE)
        assert not v.accept and v.reset and v.fault is Fault.NON_FINITE
        v = guard.check(10, stamp(10), chunk(), RATE)
        assert v.accept and v.reset and v.fault is None  # a new stream starts after it
        assert not guard.check(15, stamp(15), chunk(), RATE).reset  # continuous again

    @pytest.mark.parametrize("channels, rate, fault", [
        (16, RATE, Fault.CHANNEL_MISMATCH), (8, 2000.0, Fault.RATE_MISMATCH)])
    def test_mismatched_stream_is_ignored(self, channels, rate, fault):
        guard = EmgStreamGuard(8, RATE)
        v = guard.check(0, 0, chunk(c=channels), rate)
        assert not v.accept and not v.reset and v.fault is fault
        assert "model expects" in v.detail and guard.counts[fault] == 1


    @pytest.mark.parametrize("rate", [float("nan"), float("inf"), -RATE, 0.0])
    def test_nan_or_absurd_rate_is_a_rate_mismatch(self, rate):
        """(Once accepted: NaN fails every comparison, and the inference step raised
        'cannot convert float NaN to integer'.)"""
        guard = EmgStreamGuard(8, RATE)
        v = guard.check(0, 0, chunk(), rate)
        assert not v.accept and v.fault is Fault.RATE_MISMATCH
        assert guard.counts[Fault.RATE_MISMATCH] == 1

    @pytest.mark.parametrize("stamp_ns", [-NS, -1, (2**31 - 1) * NS, 2**63, 10**30])
    def test_stamps_no_ros_time_can_hold_are_dropped(self, stamp_ns):
        """header.stamp.sec = -1, or a stamp past 2038 (the last samples of a chunk
        included): reported, counted, and the stream restarts after it."""
        guard = EmgStreamGuard(8, RATE)
        guard.check(0, stamp(0), chunk(), RATE)
        v = guard.check(5, stamp_ns, chunk(), RATE)
        assert not v.accept and v.reset and v.fault is Fault.BAD_STAMP
        assert guard.counts[Fault.BAD_STAMP] == 1
        v = guard.check(10, stamp(10), chunk(), RATE)
        assert v.accept and v.reset and v.fault is None

    def test_time_jumping_far_ahead_restarts_the_stream(self):
        guard = EmgStreamGuard(8, RATE, max_time_jump_s=10.0)
        guard.check(0, stamp(0), chunk(), RATE)
        v = guard.check(5, stamp(5) + 2_000_000_000 * NS, chunk(), RATE)  # ~2e9 s ahead
        assert v.accept and v.reset and v.fault is Fault.TIME_JUMP
        # dropped samples explain a later stamp: a gap, not a jump
        v = guard.check(5005, stamp(5005) + 2_000_000_000 * NS, chunk(), RATE)
        assert v.fault is Fault.GAP and v.dropped_samples == 4995
        # a device restart (index back to 0) while time goes on is not a time jump
        v = guard.check(0, stamp(6000) + 2_000_000_000 * NS, chunk(), RATE)
        assert v.fault is Fault.INDEX_BACKWARDS


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(
    st.integers(-5, 2**64), st.integers(-2**70, 2**70) | st.integers(0, 10 * NS),
    st.integers(0, 12), st.sampled_from([8, 8, 8, 3]),
    st.sampled_from([RATE, RATE, RATE * 1.001, 2000.0, float("nan"), float("inf"), 0.0]),
    st.sampled_from([0.0, 1e-5, np.nan, np.inf, -np.inf, 1e38])), min_size=1, max_size=12))
def test_stream_guard_properties(chunks):
    """Any fields: never raises; a chunk is accepted only if it is finite, at the model's
    rate and channel count, stamped within ROS time; every chunk has at most one fault and
    the counters add up to the faults reported."""
    guard = EmgStreamGuard(8, RATE)
    faults = 0
    for first, stamp_ns, n, channels, rate, bad_value in chunks:
        samples = np.full((n, channels), 1e-5, np.float32)
        if n:
            samples[n // 2, 0] = bad_value
        v = guard.check(first, stamp_ns, samples, rate)
        faults += v.fault is not None
        assert v.accept == (v.fault is None or v.fault in (
            Fault.GAP, Fault.INDEX_BACKWARDS, Fault.TIME_BACKWARDS, Fault.TIME_JUMP))
        if v.accept:
            assert np.all(np.isfinite(samples)) and channels == 8
            assert abs(rate - RATE) <= 0.01 * RATE
            assert 0 <= stamp_ns <= (2**31 - 1) * NS
        if not v.accept and v.fault is None:
            raise AssertionError("a refused chunk without a fault")
    assert sum(guard.counts.values()) == faults


class TestSampleRing:
    def test_latest_returns_newest_samples_in_order(self):
        ring = SampleRing(capacity=20, channels=2)
        data = np.arange(200, dtype=np.float32).reshape(100, 2)
        for i in range(0, 100, 7):
            ring.push(data[i:i + 7], i, stamp(i), RATE)
        np.testing.assert_array_equal(ring.latest(20), data[80:100])
        assert ring.latest(21) is None
        assert ring.newest_index == 99 and ring.newest_stamp_ns == stamp(99)

    def test_clear_empties(self):
        ring = SampleRing(10, 1)
        ring.push(np.ones((10, 1), np.float32), 0, 0, RATE)
        ring.clear()
        assert ring.latest(1) is None and ring.newest_index is None


def test_one_euro_smooths_noise_and_follows_steps():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.5)
    t = np.arange(200) / 100.0
    noisy = 0.5 + rng.normal(0, 0.05, (200, 3))
    out = np.stack([f(x, ti) for x, ti in zip(noisy, t)])
    assert out[50:].std(axis=0).max() < 0.3 * noisy[50:].std(axis=0).min()
    f.reset()
    step = np.where(t[:, None] < 1.0, 0.0, 1.0) * np.ones((1, 3))
    out = np.stack([f(x, ti) for x, ti in zip(step, t)])
    assert np.allclose(out[-1], 1.0, atol=0.02)  # settles on the new value


@pytest.mark.parametrize("name", ["default", "wearer_b", "left-arm.v2", "A1"])
def test_plain_model_names_pass(name, tmp_path):
    assert validate_model_name(name) == name
    assert model_path(tmp_path, name, ".pt").parent == tmp_path.resolve()


@pytest.mark.parametrize("name", ["", "../x", "/etc/passwd", "a/b", "..", ".hidden",
                                  "a..b", "with space", "x" * 65, "nul\x00", "tab\t"])
def test_path_traversal_and_odd_names_are_refused(name, tmp_path):
    with pytest.raises(ValueError, match="model name"):
        model_path(tmp_path, name, ".pt")


class TestGuidedSchedule:
    def test_timeline_and_prompts(self):
        s = GuidedSchedule(["open", "fist"], hold_s=3.0, rest_s=2.0, transition_s=1.0,
                           repetitions=2, get_ready_s=2.0)
        assert s.duration_s == pytest.approx(2 + 4 * 3 + 3 * 2)
        assert s.state_at(0.5).phase == PHASE_GET_READY and s.state_at(0.5).pose_name == "open"
        st = s.state_at(2.5)
        assert st.phase == PHASE_HOLD and st.pose_name == "open" and st.label is None
        st = s.state_at(4.0)
        assert st.label == "open" and st.seconds_remaining == pytest.approx(1.0)
        st = s.state_at(5.5)
        assert st.phase == PHASE_REST and st.pose_name == "fist" and st.label is None
        assert s.state_at(6.5).label == "rest"
        assert s.state_at(9.0).label == "fist" and s.state_at(9.0).index == 1
        assert s.state_at(100).phase == PHASE_DONE

    def test_labels_skip_transitions(self):
        s = GuidedSchedule(["fist"], hold_s=3.0, rest_s=0.0, transition_s=1.0, get_ready_s=1.0)
        t = np.arange(0, s.duration_s, 0.01)
        q, valid = s.label_times(t)
        assert not valid[t < 2.0].any() and valid[(t >= 2.0) & (t < 4.0)].all()
        np.testing.assert_allclose(q[valid], np.tile(NAMED_POSES["fist"], (valid.sum(), 1)))

    def test_bad_settings_are_refused(self):
        with pytest.raises(ValueError, match="unknown poses"):
            GuidedSchedule(["karate_chop"], 3, 1, 0.5)
        with pytest.raises(ValueError, match="nothing"):
            GuidedSchedule(["fist"], 1.0, 1.0, 1.5)


class TestReferenceTrack:
    def test_interpolates_in_our_joint_order(self):
        track = ReferenceTrack(max_gap_s=0.1)
        names = list(reversed(JOINT_NAMES))
        for k in range(11):
            q = np.full(20, 0.1 * k)
            q[-1] = 0.0  # reversed order: this is thumb_cmc_fe
            assert track.add(k * 0.05, names, list(q))
        q, valid = track.interpolate(np.array([0.025, 0.26, 0.6]))
        assert valid.tolist() == [True, True, False]
        assert q[0, 1] == pytest.approx(0.05) and q[0, 0] == 0.0

    def test_gaps_and_bad_messages_invalidate(self):
        track = ReferenceTrack(max_gap_s=0.1)
        track.add(0.0, JOINT_NAMES, [0.0] * 20)
        track.add(0.5, JOINT_NAMES, [1.0] * 20)  # too far apart to interpolate across
        assert not track.interpolate(np.array([0.25]))[1][0]
        assert not track.add(0.6, JOINT_NAMES[:-1], [0.0] * 19)
        assert not track.add(0.7, JOINT_NAMES, [np.nan] * 20)
        assert track.rejected == 2


def test_recording_and_segments():
    rec = CalibrationRecording(2)
    rec.add_chunk(np.ones((5, 2)), 1.0, 500.0)
    rec.add_chunk(np.ones((5, 2)), 1.01, 500.0)
    emg, t = rec.arrays()
    assert emg.shape == (10, 2) and t[5] == pytest.approx(1.01)
    valid = np.array([0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1], bool)
    assert labelled_segments(valid, 3) == [(1, 4), (8, 12)]


def test_a_model_that_is_a_symlink_resolves_inside_the_directory(tmp_path):
    target = tmp_path / "elsewhere.safetensors"
    target.write_bytes(b"x")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "default.safetensors").symlink_to(target)
    path = model_path(tmp_path / "models", "default", ".safetensors")
    assert path == (tmp_path / "models").resolve() / "default.safetensors" and path.exists()
