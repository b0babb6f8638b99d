"""Stream indices from device counters, and drift-corrected acquisition timestamps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emg_driver.clock import SampleClock, StreamIndexer, counters_from_times
from emg_driver.stream import Chunker, chunk_len_for

# --- stream index ---------------------------------------------------------------------


def test_no_counter_indices_are_consecutive():
    ix = StreamIndexer()
    assert ix.assign(3)[1].tolist() == [0, 1, 2]
    assert ix.assign(2)[1].tolist() == [3, 4]


def test_counter_gap_is_a_gap_in_the_index_and_counted():
    ix = StreamIndexer()
    keep, idx = ix.assign(5, np.array([100, 101, 104, 105, 106]))
    assert keep.all() and idx.tolist() == [0, 1, 4, 5, 6]
    assert ix.stats.dropped_samples == 2
    # the gap may also fall between two reads
    assert ix.assign(2, np.array([110, 111]))[1].tolist() == [10, 11]
    assert ix.stats.dropped_samples == 5


@pytest.mark.parametrize("modulus", [256, 2**16, 2**32])
def test_counter_wraps_without_a_gap(modulus):
    ix = StreamIndexer()
    counters = (np.arange(modulus - 3, modulus + 3) % modulus)
    assert ix.assign(6, counters, modulus)[1].tolist() == list(range(6))
    assert ix.stats.dropped_samples == 0 and ix.stats.counter_resets == 0


def test_duplicate_dropped_and_device_reset_continues_index():
    ix = StreamIndexer(max_gap=1000)
    # back to 0 from 5002, more than max_rewind (256) behind: the device restarted
    keep, idx = ix.assign(6, np.array([5000, 5001, 5001, 5002, 0, 1]))
    assert keep.tolist() == [True, True, False, True, True, True]
    assert idx.tolist() == [0, 1, 2, 3, 4]  # a reset does not fake a gap
    assert ix.stats.duplicate_samples == 1 and ix.stats.counter_resets == 1
    ix.assign(1, np.array([10**6]))  # a jump beyond max_gap is a reset too
    assert ix.stats.counter_resets == 2 and ix.next_index == 6


@pytest.mark.parametrize("modulus", [0, 256, 2**32])
def test_a_resent_frame_is_a_duplicate_not_a_restart(modulus):
    """Counters 10..13, then the same frame again (the counter goes back by S - 1 = 3)."""
    ix = StreamIndexer()
    ix.assign(4, np.array([10, 11, 12, 13]), modulus)
    keep, idx = ix.assign(8, np.array([10, 11, 12, 13, 14, 15, 16, 17]), modulus)
    assert keep.tolist() == [False] * 4 + [True] * 4 and idx.tolist() == [4, 5, 6, 7]
    assert ix.stats.duplicate_samples == 4 and ix.stats.counter_resets == 0
    assert ix.stats.dropped_samples == 0


def test_a_counter_far_behind_is_a_device_restart():
    ix = StreamIndexer(max_rewind=256)
    ix.assign(1, np.array([5000]))
    keep, idx = ix.assign(2, np.array([4744, 4745]))  # 256 back: restarted, not a repeat
    assert keep.all() and idx.tolist() == [1, 2] and ix.stats.counter_resets == 1


def test_restart_after_reconnect_can_skip():
    ix = StreamIndexer()
    ix.assign(3, np.array([7, 8, 9]))
    ix.restart(skip=100)
    assert ix.assign(2, np.array([0, 1]))[1].tolist() == [103, 104]
    assert ix.stats.dropped_samples == 0


@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=200),
       st.integers(min_value=0, max_value=2**32 - 1))
def test_indices_strictly_increase_and_gaps_add_up(steps, start):
    counters = (start + np.cumsum(steps)) % 2**32
    ix = StreamIndexer()
    keep, idx = ix.assign(len(counters), counters, 2**32)
    assert keep.all()
    assert np.all(np.diff(idx) >= 1)
    assert ix.stats.dropped_samples == sum(steps[1:]) - (len(steps) - 1)


def test_counters_from_times_rounds_to_the_sample_grid():
    t = np.array([10.000, 10.0021, 10.0039, 10.010])
    assert counters_from_times(t, 500.0, 10.0).tolist() == [0, 1, 2, 5]


# --- acquisition clock ----------------------------------------------------------------


def simulate_device(ppm: float, rate: float = 2000.0, seconds: float = 40.0,
                    read_every: int = 20, jitter_s: float = 2e-3, latency_s: float = 1e-3,
                    seed: int = 0, stall_at_s: float | None = None):
    """A device whose oscillator runs ``ppm`` slow (+) or fast (-): arrival times of the
    newest sample of each read = acquisition + latency + exponential jitter."""
    rng = np.random.default_rng(seed)
    clock = SampleClock(rate)
    t0 = 1.7e9
    period = (1.0 + ppm * 1e-6) / rate
    rows = []
    pause = 0.0
    for last in range(read_every - 1, int(seconds * rate), read_every):
        if stall_at_s is not None and last == int(stall_at_s * rate) // read_every * read_every \
                + read_every - 1:
            pause = 0.5  # device stops sampling for 0.5 s without a counter jump
        acq = t0 + last * period + pause
        arrival = acq + latency_s + rng.exponential(jitter_s)
        clock.observe(last, arrival)
        rows.append((last, acq, arrival, clock.time_of(last)))
    return clock, np.array(rows)


@pytest.mark.parametrize("ppm", [0.0, 150.0, -150.0, 2000.0, -2000.0])
def test_timestamps_follow_drift_and_ignore_jitter(ppm):
    clock, rows = simulate_device(ppm)
    settled = rows[rows[:, 0] > 10 * 2000]
    err = settled[:, 3] - (settled[:, 1] + 1e-3)  # vs acquisition + minimum latency
    # arrival jitter is 2 ms (exponential): reconstructed stamps are within 0.6 ms
    assert np.abs(err).max() < 0.6e-3, np.abs(err).max()
    assert abs(clock.drift_ppm - ppm) < 10.0
    # a stamp is never later than the sample's arrival
    assert np.all(rows[:, 3] <= rows[:, 2] + 1e-9)


def test_chunk_stamps_are_smooth_where_arrivals_are_not():
    _, rows = simulate_device(100.0, jitter_s=5e-3)
    settled = rows[rows[:, 0] > 10 * 2000]
    nominal = 20 / 2000.0
    arrival_steps = np.diff(settled[:, 2]) - nominal
    stamp_steps = np.diff(settled[:, 3]) - nominal
    assert arrival_steps.std() > 3e-3
    assert stamp_steps.std() < 0.05 * arrival_steps.std()
    assert np.all(np.diff(settled[:, 3]) > 0)


def test_device_pause_steps_the_clock_up():
    clock, rows = simulate_device(0.0, stall_at_s=15.0)
    late = rows[rows[:, 0] > 20 * 2000]
    err = late[:, 3] - (late[:, 1] + 1e-3)
    assert np.abs(err).max() < 1e-3
    assert clock.steps_up >= 1


def test_time_of_before_any_observation_is_an_error():
    with pytest.raises(RuntimeError):
        SampleClock(500.0).time_of(0)
    with pytest.raises(ValueError):
        SampleClock(0.0)


# --- chunks ---------------------------------------------------------------------------


def test_chunk_len_from_ms():
    assert chunk_len_for(10.0, 500.0) == 5
    assert chunk_len_for(10.0, 2000.0) == 20
    assert chunk_len_for(1.0, 125.0) == 1


@given(st.lists(st.integers(min_value=0, max_value=13), min_size=1, max_size=40),
       st.sets(st.integers(min_value=1, max_value=150), max_size=5))
def test_chunker_cuts_consecutive_chunks(sizes, gap_after):
    chunker = Chunker(5, 2)
    index, out, fed = 0, [], []
    for s in sizes:
        idx = index + np.arange(s)
        if index in gap_after:
            idx = idx + 3
        vals = np.stack([idx, -idx], axis=1).astype(np.float32)
        out += chunker.push(idx, vals)
        fed += idx.tolist()
        index = int(idx[-1]) + 1 if s else index
    out += chunker.flush()
    got = [i for c in out for i in range(c.first_index, c.end_index)]
    assert got == fed  # every sample once, in order
    for c in out:
        assert 1 <= c.num_samples <= 5
        np.testing.assert_array_equal(c.data[:, 0], np.arange(c.first_index, c.end_index))
    # only a gap or the final flush shortens a chunk
    for a, b in zip(out, out[1:]):
        assert a.num_samples == 5 or b.first_index != a.end_index
