"""The replay source end to end: the installed driver plays recordings over DDS; the test
starts streaming through the lifecycle once its subscriber is matched, so no sample of the
recording can be missed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sensor_msgs.msg import JointState

from emg_hand_core.emg_codec import stamp_to_ns
from emg_hand_core.hand_model import JOINT_NAMES
from emg_hand_core.recordings import emg2pose, load_recording

pytestmark = pytest.mark.timeout(90)


def test_replays_a_shared_csv_completely_in_order(shared_data, start_driver, emg_stream,
                                                  lifecycle, diagnostics):
    path = shared_data / "eeg_emg_hands" / "s_0" / "merged" / "data_1734923885.csv"
    expected = load_recording(path)
    # 40 ms chunks (5 samples at 125 Hz): 250 messages/s at 10x
    start_driver(source="replay", file=str(path), rate=10.0, chunk_ms=40.0, autostart=False)
    lc = lifecycle()
    assert lc.transition("configure")
    emg_stream.wait_publisher()
    assert lc.transition("activate")
    n = expected.num_samples
    emg_stream.wait_samples(n, timeout_s=30.0)  # 39 s of recording at 10x
    idx, data, msgs = emg_stream.samples()
    assert idx.tolist() == list(range(n))
    np.testing.assert_array_equal(data, expected.emg)  # microvolts in the file, volts here
    assert msgs[0].sample_rate_hz == pytest.approx(expected.sample_rate_hz)
    assert tuple(msgs[0].channel_names) == expected.channel_names
    # played at 10x the recording's rate, on the replay's sample clock
    stamps = np.array([stamp_to_ns(m.header.stamp) for m in msgs]) * 1e-9
    span = stamps[-1] - stamps[0]
    assert span == pytest.approx((msgs[-1].first_sample_index / expected.sample_rate_hz) / 10,
                                 rel=1e-6)
    status = diagnostics.wait_for(lambda s: s.get("replay_finished") == "True",
                                  what="replay finished")
    assert status["samples_published"] == str(n) and status["level"] == 0


def test_replays_emg2pose_hdf5_with_reference_pose_and_loops(tmp_path, start_driver, emg_stream,
                                                              lifecycle, ros_node):
    rate, n = 2000.0, 1500
    rng = np.random.default_rng(2)
    emg = (rng.standard_normal((n, 16)) * 1e-4).astype(np.float32)
    q = np.cumsum(rng.normal(0, 0.01, (n, 20)), axis=0).astype(np.float32)
    path = emg2pose.write_arrays(tmp_path / "session.hdf5", emg, q, rate)
    reference = ros_node.collect(JointState, "hand/reference/joint_states", 1000)
    start_driver(source="replay", file=str(path), loop=True, rate=2.0, autostart=False)
    lc = lifecycle()
    assert lc.transition("configure")
    emg_stream.wait_publisher()
    ros_node.wait_for_publishers("hand/reference/joint_states")
    assert lc.transition("activate")
    emg_stream.wait_samples(2 * n + 100, timeout_s=20.0)  # past the end: it loops
    idx, data, msgs = emg_stream.samples()
    assert idx.tolist() == list(range(len(idx)))  # monotonic across loops
    np.testing.assert_array_equal(data, emg[idx % n])
    assert {m.num_samples for m in msgs} == {20}  # 10 ms of the recording per chunk
    refs = reference.wait_for(len(msgs) - 5, timeout_s=10.0)
    by_stamp = {stamp_to_ns(r.header.stamp): r for r in refs}
    matched = 0
    for m in msgs:
        # stamped at the chunk's last sample, on the replay clock (2x: 0.25 ms per sample)
        r = by_stamp.get(stamp_to_ns(m.header.stamp) + int(round(19 * 1e9 / (rate * 2))))
        if r is not None:
            matched += 1
            assert list(r.name) == list(JOINT_NAMES)
            last = (m.first_sample_index + m.num_samples - 1) % n
            np.testing.assert_allclose(r.position, q[last], atol=1e-6)
    assert matched > 0.95 * len(msgs)


def test_missing_recording_fails_configure_with_a_clear_reason(tmp_path, start_driver,
                                                               lifecycle, diagnostics):
    driver = start_driver(source="replay", file=str(tmp_path / "absent.h5"), autostart=False)
    lc = lifecycle()
    assert not lc.transition("configure")
    assert lc.state() == "unconfigured"
    status = diagnostics.wait_for(lambda s: s["level"] == 2, what="ERROR status")
    assert "no such file" in status["message"]
    assert "absent.h5" in driver.output and driver.process.poll() is None


def _generated_recordings(folder):
    """One small file of every recording format (a few hundred samples each)."""
    import json

    from emg_hand_core.recordings import Recording, rosbag2

    rng = np.random.default_rng(5)
    fingers = ["thumb", "index", "middle", "ring", "pinky"]

    def csv(path, header, rows):
        path.write_text(",".join(header) + "\n" + "\n".join(
            ",".join(f"{v:.9g}" for v in r) for r in rows) + "\n")
        return path

    t = np.arange(300) * 8.0
    files = {}
    files["emg2pose"] = emg2pose.write_arrays(
        folder / "s.h5", rng.normal(0, 1e-4, (400, 4)).astype(np.float32),
        rng.uniform(0, 1, (400, 20)), 1000.0)
    rec = Recording(emg=rng.normal(0, 1e-4, (400, 3)).astype(np.float32), sample_rate_hz=500.0,
                    joint_angles=rng.uniform(0, 1, (400, 20)))
    files["rosbag2"] = rosbag2.write(folder / "bag", rec, chunk_samples=10, drop_chunks=(7,))
    files["eeg_emg_hands"] = csv(folder / "emg_mp_1.csv",
                                 ["timestamp", *fingers] + [f"ch_{k}" for k in range(1, 5)],
                                 np.c_[t, rng.uniform(size=(300, 5)), rng.normal(0, 10, (300, 4))])
    header = ["timestamp", *fingers]
    for k in (1, 2):
        header += [f"ch_{k}_raw", f"ch_{k}_ema_1"]
    files["eeg_emg_hands_merged"] = csv(folder / "data_1.csv", header,
                                        np.c_[t, rng.uniform(size=(300, 5)),
                                              rng.normal(0, 10, (300, 4))])
    run = folder / "prompted" / "r_1"
    run.mkdir(parents=True)
    (run.parent / "frequency_info.json").write_text(json.dumps({"exg_fs": 250.0}))
    csv(run / "exg.csv", ["timestamp", "exg_1", "exg_2"], np.c_[t, rng.normal(0, 50, (300, 2))])
    csv(run / "prompt.csv", ["timestamp", *fingers], [[400, 0, 1, 1, 0, 0]])
    files["eeg_emg_hands_prompted"] = run
    lines = [",".join(str(v) for v in rng.integers(-128, 128, 8)) + ",1" for _ in range(300)]
    lines[100] = "4,2,1,0,-1,0,0,0,00,3,2,0,1,1,-1,0,0"  # two samples run together
    (folder / "7.txt").write_text("\n".join(lines) + "\n")
    files["myo_readings"] = folder / "7.txt"
    from emg_hand_core.recordings.columns import save_mapping

    own = csv(folder / "mine.csv", ["t_ms", "a", "b", "thumb"],
              np.c_[np.arange(300) * 4.0, rng.normal(0, 1, (300, 2)), rng.uniform(size=300)])
    save_mapping({"emg": "a,b", "emg_unit": "mV", "time": "t_ms", "time_unit": "ms",
                  "values": "thumb"}, own)
    files["columns"] = own
    return files


def test_replay_publishes_exactly_what_the_trainer_reads_for_every_format(
        tmp_path, start_driver, emg_stream, lifecycle, ros_node):
    """The driver's replay and emg_pose_train read a file identically: for a file of every
    format (and the shared real recordings when present), the published stream is the
    trainer's samples in volts, row for row, with unreadable rows as index gaps."""
    from emg_hand_core.recordings import FORMATS
    from emg_hand_testing.pytest_plugin import find_shared_data

    files = _generated_recordings(tmp_path)
    assert set(files) == set(FORMATS)  # a new format must join this test
    shared = find_shared_data(Path(__file__).parent)  # the real files too, where present
    if shared is not None:
        myo = shared / "myo_readings" / "right_hand"
        files["real myo (malformed line)"] = myo / "19999-2" / "2.txt"
        files["real myo"] = myo / "45612-1" / "7.txt"
        files["real emg2pose"] = shared / "emg2pose" / "test_data.hdf5"
    start_driver(source="replay", file=str(files["emg2pose"]), rate=25.0, autostart=False)
    lc = lifecycle()
    for kind, path in files.items():
        expected = load_recording(path)  # the trainer's loader, as emg_pose_train calls it
        assert ros_node.set_parameters("/emg_driver", {"file": str(path)})[0].successful
        since = len(emg_stream.messages)
        assert lc.transition("configure"), kind
        emg_stream.wait_publisher()
        assert lc.transition("activate"), kind
        valid = np.flatnonzero(expected.valid_emg())
        emg_stream.collector.wait_until(
            lambda msgs, since=since, last=int(valid[-1]): len(msgs) > since and (
                msgs[-1].first_sample_index + msgs[-1].num_samples - 1 >= last),
            timeout_s=60.0, what=f"the whole {kind} recording")
        idx, data, msgs = emg_stream.samples(since)
        assert idx.tolist() == valid.tolist(), kind  # every readable row once, gaps for others
        np.testing.assert_array_equal(data, expected.emg[valid], err_msg=kind)
        assert tuple(msgs[0].channel_names) == expected.channel_names, kind
        assert msgs[0].sample_rate_hz == pytest.approx(expected.sample_rate_hz), kind
        assert lc.transition("deactivate") and lc.transition("cleanup"), kind
