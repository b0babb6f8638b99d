"""The serial source end to end: the installed driver opens a real pseudo-terminal with
pyserial, the test writes real bytes into the other side, and reads emg/raw and
/diagnostics over DDS."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import pytest

from emg_driver.protocols import encode_frame, encode_text_line
from emg_hand_core.emg_codec import decode_emg

pytestmark = pytest.mark.timeout(90)

MYO_FILE = ("myo_readings", "right_hand", "45612-1", "7.txt")
TEXT_PARAMS = dict(source="serial", protocol="text", sample_rate_hz=200.0, num_channels=8,
                   text_num_columns=9, scale_v_per_unit=1e-5, chunk_ms=25.0)


def prime(pty_armband, emg_stream, warmup, marker, marker_v: float,
          timeout_s: float = 20.0) -> tuple[int, int]:
    """Write warm-up samples ``warmup(k)`` (k = 0, 1, ...: a line or a binary frame with
    counter k) until a chunk comes back (the driver streams and DDS has matched both ways),
    then one ``marker(k)`` sample whose channels all read ``marker_v`` volts, and wait until
    it arrives as the last sample of a chunk: everything written before is out.

    Returns (messages so far, next k): later messages carry only what the test writes next.
    """
    from emg_hand_core.emg_codec import decode_emg

    emg_stream.wait_publisher()
    deadline = time.monotonic() + timeout_s
    k = 0
    while True:
        pty_armband.write(b"".join(warmup(k + i) for i in range(10)))
        k += 10
        try:
            emg_stream.collector.wait_until(lambda m: len(m) > 0, 0.05, "a first chunk")
            break
        except TimeoutError:
            assert time.monotonic() < deadline, "no emg/raw chunk came back from the driver"
    pty_armband.write(marker(k))
    marker_v = np.float32(marker_v)
    msgs = emg_stream.collector.wait_until(
        lambda m: bool(m) and np.all(decode_emg(m[-1]).samples[-1] == marker_v), 10.0, "the marker")
    return len(msgs), k + 1


def line(*values) -> Callable[[int], bytes]:
    text = ",".join(str(v) for v in values).encode() + b"\n"
    return lambda k: text


def frame(channels: int, value: int) -> Callable[[int], bytes]:
    return lambda k: encode_frame(np.full((1, channels), value), k, "int16", 1.0)


def received_samples(emg_stream, since: int) -> int:
    return sum(m.num_samples for m in emg_stream.messages[since:])


def test_myo_recording_streams_every_sample_in_order(shared_data, pty_armband, start_driver,
                                                     emg_stream):
    lines = (shared_data / "/".join(MYO_FILE)).read_bytes().splitlines(keepends=True)[:3000]
    counts = np.array([[int(v) for v in ln.split(b",")[:8]] for ln in lines], dtype=np.float64)
    driver = start_driver(port=pty_armband.port, **TEXT_PARAMS)
    since = prime(pty_armband, emg_stream, line(*[0] * 9), line(*[9] * 8, 0), 9e-5)[0]
    first = int(emg_stream.samples()[0][-1]) + 1
    pty_armband.write_paced([b"".join(lines[k:k + 20]) for k in range(0, 3000, 20)], 100.0)
    emg_stream.collector.wait_until(lambda m: received_samples(emg_stream, since) >= 3000, 20.0,
                                    "3000 samples")
    idx, data, msgs = emg_stream.samples(since)
    assert idx.tolist() == list(range(first, first + 3000))  # every sample, in order
    np.testing.assert_array_equal(data, (counts * 1e-5).astype(np.float32))
    assert all(m.sample_rate_hz == 200.0 and m.header.frame_id == "emg_armband" for m in msgs)
    assert list(msgs[0].channel_names) == [f"ch_{k}" for k in range(1, 9)]
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])
    assert np.all(np.diff(stamps) > 0)
    assert driver.process.poll() is None


def test_binary_16ch_2khz_real_time(pty_armband, start_driver, emg_stream, diagnostics):
    """An armband streaming 16 ch at 2 kHz from the moment the port opens: every sample
    arrives once, in order, exact; chunks are stamped on the sample clock."""
    rate, channels, seconds = 2000.0, 16, 3.0
    start_driver(port=pty_armband.port, source="serial", protocol="binary",
                 sample_rate_hz=rate, num_channels=channels, scale_v_per_unit=5e-7,
                 baud_rate=2000000)
    emg_stream.wait_publisher()
    n = int(rate * seconds)
    rng = np.random.default_rng(3)
    raw = rng.integers(-32768, 32768, (n, channels))
    frames = [encode_frame(raw[k:k + 1], k, "int16", 1.0) for k in range(n)]
    writes = [b"".join(frames[k:k + 4]) for k in range(0, n, 4)]  # 4 frames every 2 ms
    write_start = time.time()
    written = np.array(pty_armband.write_paced(writes, rate / 4))
    writer_lag = written - (write_start + np.arange(len(writes)) * 4 / rate)
    # counters start at 0 with the port, so stream index = counter; the first chunks may
    # have gone out while DDS was still matching this subscriber
    emg_stream.collector.wait_until(
        lambda m: bool(m) and m[-1].first_sample_index + m[-1].num_samples >= n, 15.0,
        f"sample {n - 1}")
    idx, data, msgs = emg_stream.samples()
    assert idx[0] < rate * 0.5 and idx[-1] == n - 1
    assert np.all(np.diff(idx) == 1)  # nothing lost, nothing repeated
    np.testing.assert_array_equal(data, (raw[idx] * 5e-7).astype(np.float32))
    sizes = np.array([m.num_samples for m in msgs])
    assert sizes.max() == 20 and np.mean(sizes == 20) > 0.9  # 10 ms chunks (short: stalls)
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])
    first = np.array([m.first_sample_index for m in msgs])
    assert np.all(np.diff(stamps) > 0)
    # stamps come from the sample clock: 10 ms apart, not the jitter of reads or writes ...
    assert np.median(np.abs(np.diff(stamps) - np.diff(first) / rate)) < 0.2e-3
    # ... on the wall clock of the writes: sample k was written at write_start + k / rate
    # (judged after the clock's first second, where this process kept that schedule)
    on_time = writer_lag[np.minimum(first // 4, len(writes) - 1)] < 0.005
    judged = (first > rate) & on_time
    assert judged.sum() > 0.5 * len(first)
    offset = stamps[judged] - (write_start + first[judged] / rate)
    assert np.all(np.abs(offset) < 0.02), offset
    status = diagnostics.wait_for(lambda s: int(s.get("samples_published", 0)) >= n - idx[0],
                                  what="diagnostics counting the samples")
    assert status["dropped_samples"] == "0" and status["crc_errors"] == "0"
    assert float(status["sample_rate_nominal_hz"]) == rate


def test_garbage_is_counted_and_never_corrupts_samples(pty_armband, start_driver, emg_stream,
                                                       diagnostics):
    start_driver(port=pty_armband.port, source="serial", protocol="binary", sample_rate_hz=500.0,
                 num_channels=4, scale_v_per_unit=1e-6)
    since, k0 = prime(pty_armband, emg_stream, frame(4, 0), frame(4, 9), 9e-6)
    rng = np.random.default_rng(11)
    raw = rng.integers(-1000, 1000, (400, 4))
    frames = [encode_frame(raw[k:k + 1], k0 + k, "int16", 1.0) for k in range(400)]
    corrupted = set(range(50, 400, 50))
    stream = b""
    for k, good_frame in enumerate(frames):
        data = bytearray(good_frame)
        if k in corrupted:
            data[11] ^= 0x10  # a bit error in the payload: the CRC must catch it
        if k % 25 == 7:
            stream += rng.integers(0, 256, 37, dtype=np.uint8).tobytes() + b"\xa5\x5a\x01"
        stream += bytes(data)
    pty_armband.write_paced([stream[k:k + 97] for k in range(0, len(stream), 97)], 200.0)
    good = [k for k in range(400) if k not in corrupted]
    emg_stream.collector.wait_until(
        lambda m: received_samples(emg_stream, since) >= len(good), 15.0, "the good frames")
    idx, data, _ = emg_stream.samples(since)
    # every good frame arrives exactly; each corrupt one leaves a one-sample gap
    assert len(idx) == len(good)
    expected = (raw[good] * 1e-6).astype(np.float32)
    np.testing.assert_array_equal(data, expected)
    assert np.count_nonzero(np.diff(idx) == 2) == len(corrupted)
    status = diagnostics.wait_for(lambda s: int(s.get("crc_errors", 0)) >= len(corrupted),
                                  what="CRC errors reported")
    assert int(status["dropped_samples"]) >= len(corrupted)
    assert int(status["discarded_bytes"]) > 37 * 15
    assert status["level"] == 1  # WARN while errors keep arriving


def test_bad_text_lines_are_counted(pty_armband, start_driver, emg_stream, diagnostics):
    start_driver(port=pty_armband.port, **TEXT_PARAMS)
    since = prime(pty_armband, emg_stream, line(*[1] * 9), line(*[9] * 8, 0), 9e-5)[0]
    first = int(emg_stream.samples()[0][-1]) + 1
    good = [encode_text_line([k, -k, 2, 3, 4, 5, 6, 7], counter=0) for k in range(60)]
    bad = [b"1,2,3\n", b"nan,1,2,3,4,5,6,7,0\n", b"1,2,3,4,5,6,7,8,0,9,9\n", b"\xff\xfe\x00\n",
           b"1,2,3,4,inf,6,7,8,0\n", b"1,2,three,4,5,6,7,8,0\n"]
    stream = b"".join(g + (bad[k // 10] if k % 10 == 5 else b"") for k, g in enumerate(good))
    pty_armband.write(stream)
    emg_stream.collector.wait_until(lambda m: received_samples(emg_stream, since) >= 60, 10.0,
                                    "60 samples")
    idx, data, _ = emg_stream.samples(since)
    assert idx.tolist() == list(range(first, first + 60))
    np.testing.assert_array_equal(data[:, 0], (np.arange(60) * 1e-5).astype(np.float32))
    status = diagnostics.wait_for(
        lambda s: int(s.get("column_errors", 0)) == 3 and int(s.get("nonfinite_values", 0)) == 2
        and int(s.get("parse_errors", 0)) == 1, what="bad lines reported")
    assert int(status["samples_published"]) >= 60


def test_unplug_and_replug_resume_without_restart(pty_armband, start_driver, emg_stream,
                                                  diagnostics):
    params = dict(TEXT_PARAMS, text_num_columns=0, text_counter_column=8, chunk_ms=10.0)
    driver = start_driver(port=pty_armband.port, **params)
    prime(pty_armband, emg_stream, lambda k: encode_text_line([0] * 8, counter=k),
          lambda k: encode_text_line([9] * 8, counter=k), 9e-5)
    before = emg_stream.samples()[0][-1]
    pty_armband.unplug()
    diagnostics.wait_for(lambda s: s["level"] == 2 and s.get("connected") == "False",
                         what="ERROR status while unplugged")
    time.sleep(1.5)  # stay unplugged through several reconnect attempts
    pty_armband.replug()
    replugged = time.monotonic()
    since = len(emg_stream.messages)
    lines = [encode_text_line([k] * 8, counter=k) for k in range(300)]
    pty_armband.write_paced([b"".join(lines[k:k + 2]) for k in range(0, 300, 2)], 100.0)
    msgs = emg_stream.collector.wait_until(
        lambda m: len(m) > since and np.all(decode_emg(m[-1]).samples[-1] == np.float32(299e-5)),
        10.0, "the last sample written after the replug")
    resumed_after = emg_stream.collector.receive_times[since] - replugged
    assert resumed_after < 1.0  # the reconnect backoff tops out at 0.5 s
    idx, data, _ = emg_stream.samples(since)
    # bytes that reached the port before the driver reopened it are dropped at open; from
    # then on every sample arrives, in order, after a visible gap in the stream index
    k0 = int(round(data[0, 0] * 1e5))
    assert k0 < 100  # at most the 0.5 s backoff (200 Hz) of samples before the reopen
    np.testing.assert_array_equal(data[:, 0], (np.arange(k0, 300) * 1e-5).astype(np.float32))
    assert np.all(np.diff(idx) == 1) and idx[0] > before + 1
    assert len(msgs) > since
    status = diagnostics.wait_for(lambda s: s.get("reconnects") == "1" and s["level"] != 2,
                                  what="reconnected status")
    assert status["connected"] == "True"
    assert driver.process.poll() is None
    # reported once, not once per retry
    assert driver.output.count("lost (") == 1, driver.output
    assert driver.output.count("does not exist") <= 1, driver.output


def test_a_stale_device_after_a_reconnect_is_dropped_for_the_new_one(pty_armband, start_driver,
                                                                     emg_stream, diagnostics):
    """Unplugged; the driver reopens the path while it still leads to a dead device node (a
    pty that never sends), then the real device appears at the same path: the driver must
    notice the silence, close and reopen, and stream from the new device."""
    params = dict(TEXT_PARAMS, text_num_columns=0, text_counter_column=8, chunk_ms=10.0,
                  stale_timeout_s=0.5)
    driver = start_driver(port=pty_armband.port, **params)
    prime(pty_armband, emg_stream, lambda k: encode_text_line([0] * 8, counter=k),
          lambda k: encode_text_line([9] * 8, counter=k), 9e-5)
    pty_armband.unplug()
    unplugged = diagnostics.wait_for(lambda s: s.get("connected") == "False", what="unplugged")
    before = int(unplugged["stale_reopens"])  # a silent start-up may have counted already
    reported = driver.output.count("sent no bytes")
    pty_armband.replug()  # the stale node: it opens, and never sends a byte
    stale = (pty_armband.master, pty_armband.slave)
    try:
        status = diagnostics.wait_for(
            lambda s: s.get("reconnects") == "1" and int(s["stale_reopens"]) > before
            and s["level"] == 2, what="the stale device reported")
        assert "sent no bytes" in status["message"] and "sent no bytes" in status["last_error"]
        pty_armband.replug()  # the new device, at the same path
        since = len(emg_stream.messages)
        lines = [encode_text_line([k] * 8, counter=k) for k in range(400)]
        pty_armband.write_paced([b"".join(lines[k:k + 2]) for k in range(0, 400, 2)], 100.0)
        emg_stream.collector.wait_until(
            lambda m: len(m) > since and np.all(decode_emg(m[-1]).samples[-1]
                                                == np.float32(399e-5)),
            10.0, "the samples of the new device")
    finally:
        for fd in stale:
            os.close(fd)
    assert driver.output.count("sent no bytes") == reported + 1, driver.output  # once
    ok = diagnostics.wait_for(lambda s: s["level"] == 0 and s.get("connected") == "True",
                              what="streaming again, OK")
    assert ok["last_error"] == ""
    assert driver.process.poll() is None


def test_missing_port_reports_and_connects_when_plugged_in(pty_armband, start_driver,
                                                          emg_stream, diagnostics):
    pty_armband.unplug()
    driver = start_driver(port=pty_armband.port, **TEXT_PARAMS)
    status = diagnostics.wait_for(lambda s: s["level"] == 2, what="ERROR for a missing port")
    assert "does not exist" in status["message"] and pty_armband.port in status["message"]
    assert driver.process.poll() is None  # still running, retrying
    pty_armband.replug()
    prime(pty_armband, emg_stream, line(*[3] * 9), line(*[9] * 8, 0), 9e-5)
    data = emg_stream.samples()[1]
    assert np.all(data[:-1] == np.float32(3e-5)) and np.all(data[-1] == np.float32(9e-5))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores file permissions, so EACCES cannot be produced")
def test_permission_denied_is_reported_with_a_hint(pty_armband, start_driver, diagnostics):
    os.chmod(os.ttyname(pty_armband.slave), 0)
    driver = start_driver(port=pty_armband.port, **TEXT_PARAMS)
    status = diagnostics.wait_for(lambda s: s["level"] == 2, what="ERROR for a denied port")
    assert "permission denied" in status["message"] and "dialout" in status["message"]
    assert driver.process.poll() is None


def test_bad_parameters_are_refused_and_the_node_recovers(pty_armband, start_driver, ros_node,
                                                          diagnostics, lifecycle, emg_stream):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    # a bad value at start-up: the node stays up, unconfigured, and says why
    driver = start_driver(port=pty_armband.port, **dict(TEXT_PARAMS, baud_rate=12345))
    status = diagnostics.wait_for(lambda s: s["level"] == 2, what="ERROR for a bad baud rate")
    assert "baud_rate=12345 refused" in status["message"]
    assert status["state"] == "unconfigured" and driver.process.poll() is None

    # bad values at run time are refused with the reason
    client = ros_node.service_client(SetParameters, "/emg_driver/set_parameters", 20.0)

    def param(name, **value):
        kind = (ParameterType.PARAMETER_INTEGER if "integer_value" in value
                else ParameterType.PARAMETER_DOUBLE)
        return Parameter(name=name, value=ParameterValue(type=kind, **value))

    results = ros_node.call(client, SetParameters.Request(parameters=[
        param("baud_rate", integer_value=123), param("num_channels", integer_value=0),
        param("scale_v_per_unit", double_value=-1.0)])).results
    assert not any(r.successful for r in results)
    assert "not a standard serial rate" in results[0].reason
    assert "out of range. Min: 1, Max: 256" in results[1].reason  # the declared range
    assert "> 0" in results[2].reason

    # a good value, then configure + activate through the lifecycle: streaming, no restart
    assert ros_node.call(client, SetParameters.Request(parameters=[
        param("baud_rate", integer_value=230400)])).results[0].successful
    lc = lifecycle()
    assert lc.transition("configure") and lc.transition("activate")
    prime(pty_armband, emg_stream, line(*[2] * 9), line(*[9] * 8, 0), 9e-5)
