"""The driver's replay source over the core readers: pacing, loops, gaps, references."""

from __future__ import annotations

import numpy as np

from emg_driver.params import build_settings
from emg_driver.sources import ReplaySource, make_source
from emg_hand_core.recordings import Recording, emg2pose, load_recording


def test_replay_source_paces_loops_and_keeps_the_index_monotonic(tmp_path):
    emg = np.arange(30 * 2, dtype=np.float32).reshape(30, 2)
    path = emg2pose.write_arrays(tmp_path / "r.h5", emg, np.zeros((30, 20)), 100.0)
    src = ReplaySource(load_recording(path), chunk_len=4, speed=2.0, loop=True)
    t0 = 1_000_000_000_000
    src.start(t0)
    assert src.poll(t0 + 14_000_000) == []  # samples 0..2 due: not a whole chunk yet
    chunks = src.poll(t0 + 95_000_000)  # samples 0..19 due at 200 samples/s
    assert sum(c.num_samples for c in chunks) == 20
    chunks += src.poll(t0 + 445_000_000)  # up to sample 89: three passes through 30 rows
    index = [i for c in chunks for i in range(c.first_index, c.end_index)]
    assert index == list(range(len(index)))
    data = np.concatenate([c.data for c in chunks])
    np.testing.assert_array_equal(data, emg[np.arange(len(index)) % 30])
    assert src.loops_completed >= 2
    # stamps follow the replay clock, not the poll times
    assert chunks[1].stamp_ns == t0 + chunks[1].first_index * 5_000_000


def test_unreadable_rows_are_a_gap_and_unlabelled_chunks_carry_no_reference():
    emg = np.arange(12 * 2, dtype=np.float32).reshape(12, 2)
    valid = np.ones(12, bool)
    valid[5] = False
    labelled = np.ones(12, bool)
    labelled[11] = False
    rec = Recording(emg=emg, sample_rate_hz=100.0, joint_angles=np.full((12, 20), 0.3),
                    emg_valid=valid, label_mask=labelled)
    src = ReplaySource(rec, chunk_len=4)
    src.start(0)
    chunks = src.poll(200_000_000)  # 0.2 s: every row is due
    assert [(c.first_index, c.num_samples) for c in chunks] == [(0, 4), (4, 1), (6, 2), (8, 4)]
    assert np.array_equal(np.concatenate([c.data for c in chunks]), emg[valid])
    assert [c.joint_angles is not None for c in chunks] == [True, True, True, False]
    assert src.rows_skipped == 1 and src.finished and src.status()["replay_finished"]


def test_a_file_with_a_merged_line_is_replayed_around_it_and_named_in_the_log(tmp_path):
    """Two Myo lines run together (as in the published 19999-2/2.txt): the driver names the
    file and the line, and replays every other row, the merged one as a gap."""
    lines = [f"{k},{-k},1,1,1,1,1,1,0" for k in range(10)]
    lines[4] = "4,2,1,0,-1,0,0,0,00,3,2,0,1,1,-1,0,0"
    path = tmp_path / "merged.txt"
    path.write_text("\n".join(lines) + "\n")
    events: list[tuple[str, str]] = []
    src = make_source(build_settings({"source": "replay", "file": str(path), "chunk_ms": 20.0}),
                      arrival_clock=lambda: 0.0, on_chunks=lambda chunks: None,
                      on_event=lambda level, message: events.append((level, message)))
    assert [level for level, _ in events] == ["warn"]
    assert str(path) in events[0][1] and "line 5" in events[0][1]
    src.start(0)
    chunks = src.poll(100_000_000)  # 0.1 s at 200 Hz: every row is due
    idx = [i for c in chunks for i in range(c.first_index, c.end_index)]
    assert idx == [0, 1, 2, 3, 5, 6, 7, 8, 9] and src.status()["replay_rows_skipped"] == 1


def test_a_column_mapped_csv_replays_as_training_reads_it(tmp_path):
    """A CSV with its column mapping saved next to it: the driver's replay gets the same
    recording as load_recording (training), the bad line a gap, the angles the reference."""
    from emg_driver.params import build_settings
    from emg_driver.sources import make_source
    from emg_hand_core.hand_model import JOINT_NAMES
    from emg_hand_core.recordings.columns import save_mapping

    n = 40
    rng = np.random.default_rng(0)
    q_deg = rng.uniform(0, 40, (n, 20))
    path = tmp_path / "mine.csv"
    lines = ["t_ms,label,a,b," + ",".join(JOINT_NAMES)]
    lines += [f"{4 * i},x,{i},{-i}," + ",".join(f"{v:.4f}" for v in q_deg[i]) for i in range(n)]
    lines[8] = "4,broken"
    path.write_text("\n".join(lines) + "\n")
    save_mapping({"emg": "a,b", "emg_unit": "mV", "time": "t_ms", "time_unit": "ms",
                  "joint_angles": "auto", "angle_unit": "deg"}, path)
    events = []
    src = make_source(build_settings({"source": "replay", "file": str(path)}),
                      arrival_clock=lambda: 0.0, on_chunks=lambda chunks: None,
                      on_event=lambda level, text: events.append(text))
    rec = load_recording(path)
    assert src.rec.format == "columns" and src.has_reference
    np.testing.assert_array_equal(src.rec.emg, rec.emg)
    np.testing.assert_array_equal(src.rec.valid_emg(), rec.valid_emg())
    assert src.rec.sample_rate_hz == rec.sample_rate_hz == 250.0
    assert any("1 line did not parse (line 9)" in e for e in events)
    src.start(0)
    chunks = [c for k in range(1, 30) for c in src.poll(k * 10_000_000)]  # 10 ms steps
    index = [i for c in chunks for i in range(c.first_index, c.end_index)]
    assert 7 not in index and len(index) == n - 1  # the broken line is a gap, not a shift
    np.testing.assert_allclose(np.concatenate([c.data for c in chunks])[:, 0],
                               [i * 1e-3 for i in range(n) if i != 7], rtol=1e-6)
