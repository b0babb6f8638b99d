"""The serial pipeline without a port (bytes -> decoder -> index -> clock -> chunks), the
sim source's pacing, and the transport's error messages."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import serial

from emg_driver.protocols import BinaryConfig, TextConfig, encode_frame, encode_text_line
from emg_driver.sim import ArmbandSimulator
from emg_driver.sources import SerialConfig, SerialSource, SimSource
from emg_driver.transport import check_baud_rate, describe_open_error


def text_source(**text) -> tuple[SerialSource, list]:
    chunks: list = []
    cfg = SerialConfig(port="/dev/null_emg", protocol="text", sample_rate_hz=100.0, chunk_len=4,
                       text=TextConfig(num_channels=2, **text))
    src = SerialSource(cfg, clock=lambda: 0.0, on_chunks=chunks.extend)
    src.start(0)
    return src, chunks


def test_timestamp_column_gaps_become_index_gaps():
    src, chunks = text_source(timestamp_column=2, timestamp_scale_s=1e-3)
    t = [0, 10, 20, 30, 60, 70, 80, 90]  # ms at 100 Hz: samples at 40 and 50 ms missing
    data = b"".join(f"{k},{-k},{ms}\n".encode() for k, ms in enumerate(t))
    src._on_data(data, 100.0)
    src._on_idle(101.0)  # silence: the held partial chunk goes out
    idx = [i for c in chunks for i in range(c.first_index, c.end_index)]
    assert idx == [0, 1, 2, 3, 6, 7, 8, 9]
    assert src.pipeline.indexer.stats.dropped_samples == 2
    assert all(a.stamp_ns < b.stamp_ns for a, b in zip(chunks, chunks[1:]))


def test_paused_stream_discards_and_reconnect_marks_the_gap():
    src, chunks = text_source(counter_column=2)
    src._on_data(b"".join(encode_text_line([k, k], counter=k) for k in range(8)), 10.0)
    assert [c.first_index for c in chunks] == [0, 4]
    src.stop()
    src._on_data(b"".join(encode_text_line([k, k], counter=k) for k in range(8, 12)), 10.04)
    assert len(chunks) == 2 and src.pipeline.samples_discarded_inactive == 4
    src.start(0)
    src._on_disconnect()  # unplugged; 2 s later the device is back, its counter restarted
    src._on_data(b"".join(encode_text_line([k, k], counter=k) for k in range(4)), 12.04)
    after = chunks[-1]
    assert after.first_index > 12 + 150  # ~2 s at 100 Hz marked as a gap, not hidden
    assert src.pipeline.samples_lost_disconnected == after.first_index - 12
    np.testing.assert_allclose(after.data[:, 0], np.arange(4) * 1e-6)


def test_a_resent_binary_frame_is_published_once():
    """A frame sent twice byte for byte: counted as duplicates, its samples published once."""
    chunks: list = []
    cfg = SerialConfig(port="/dev/null_emg", protocol="binary", sample_rate_hz=100.0,
                       chunk_len=4, binary=BinaryConfig(num_channels=2, scale_v_per_unit=1.0))
    src = SerialSource(cfg, clock=lambda: 0.0, on_chunks=chunks.extend)
    src.start(0)
    raw = np.arange(24, dtype=np.float64).reshape(12, 2)
    frames = [encode_frame(raw[k:k + 4], k, "int16", 1.0) for k in range(0, 12, 4)]
    src._on_data(frames[0] + frames[1] + frames[1] + frames[2], 1.0)
    idx = [i for c in chunks for i in range(c.first_index, c.end_index)]
    assert idx == list(range(12))
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks]), raw)
    assert src.status()["duplicate_samples"] == 4 and src.status()["counter_resets"] == 0


def test_reads_are_scheduled_for_when_a_chunk_can_complete():
    src, _ = text_source()  # 100 Hz, 4 samples per chunk
    assert src.read_delay() == pytest.approx(3 / 100 - src.READ_MARGIN_S)
    src._on_data(b"1,1\n2,2\n", 1.0)
    assert src.read_delay() == pytest.approx(1 / 100 - src.READ_MARGIN_S)
    src._on_data(b"3,3\n", 1.01)
    assert src.read_delay() == 0.0  # the completing sample: wait for it in select
    src.stop()
    assert src.read_delay() == 0.0  # paused: keep draining the port


def test_sim_source_emits_whole_chunks_on_the_sample_clock():
    src = SimSource(ArmbandSimulator(seed=0), chunk_len=5)
    t0 = 5_000_000_000
    src.start(t0)
    assert src.poll(t0 + 7_999_999) == []  # sample 4 is due at 8 ms
    assert [c.first_index for c in src.poll(t0 + 8_000_000)] == [0]
    chunks = src.poll(t0 + 29_000_000)  # samples up to 14 due
    assert [c.first_index for c in chunks] == [5, 10]
    assert [c.stamp_ns for c in chunks] == [t0 + 10_000_000, t0 + 20_000_000]
    assert chunks[0].joint_angles.shape == (5, 20)
    # a stalled caller does not get a burst of seconds of data: the clock jumps
    late = src.poll(t0 + 10_000_000_000)
    assert len(late) == 1 and src.skipped_catch_up == 1


@pytest.mark.parametrize("exc,expected", [
    (serial.SerialException(errno.ENOENT, "could not open port /dev/x: [Errno 2] No such file"),
     "does not exist"),
    (serial.SerialException(errno.EACCES, "could not open port /dev/x: [Errno 13] Permission "
                                          "denied"), "dialout"),
    (serial.SerialException("Could not exclusively lock port /dev/x: [Errno 11]"), "in use"),
    (ValueError("Invalid baud rate"), "cannot configure"),
])
def test_open_errors_are_explained(exc, expected):
    message = describe_open_error("/dev/x", exc)
    assert expected in message and "/dev/x" in message


def test_baud_rate_check():
    check_baud_rate(115200)
    check_baud_rate(2000000)
    with pytest.raises(ValueError, match="not a standard serial rate"):
        check_baud_rate(12345)
