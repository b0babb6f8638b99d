"""BrainFlow and Lab Streaming Layer sources with the real libraries: the BrainFlow
synthetic board and BrainFlow's Cyton driver (on our Cyton emulator) through
source:=brainflow, and a real pylsl outlet on this machine through source:=lsl, each read by
the installed driver and checked over DDS."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from emg_driver.brainflow_source import board_id, package_step
from emg_driver.lsl_source import channel_scales, counters_from_gaps, predicate

pytestmark = pytest.mark.timeout(120)


# --- pure ---------------------------------------------------------------------------

def test_board_names_and_package_steps():
    assert board_id("synthetic") == board_id("SYNTHETIC_BOARD") == board_id("-1") == -1
    assert board_id("cyton_daisy") == 2
    with pytest.raises(ValueError, match="unknown BrainFlow board 'cytron'"):
        board_id("cytron")
    assert package_step(np.array([250, 252, 254, 0, 2])) == 2  # Cyton + Daisy: pairs
    assert package_step(np.array([254, 255, 0, 1, 3])) == 1


def test_lsl_predicate_units_and_gaps():
    assert predicate("arm", "EMG") == "name='arm' and type='EMG'"
    with pytest.raises(ValueError, match="at least one"):
        predicate()
    scales, note = channel_scales(["microvolts", "mV", "", "V"], 1e-6)
    assert scales.tolist() == [1e-6, 1e-3, 1e-6, 1.0] and "scale_v_per_unit" in note
    t = 10.0 + np.array([0, 1, 2, 5, 6, 7.4, 8]) / 100  # 100 Hz: samples 3 and 4 missing
    counters, last = counters_from_gaps(t, 100.0, None)
    assert counters.tolist() == [0, 1, 2, 5, 6, 7, 8]  # 7.4: a late sample, not a gap
    more, _ = counters_from_gaps(t + 0.09, 100.0, last)
    assert more[0] == 9  # continues across pulls


# --- BrainFlow ----------------------------------------------------------------------------

def test_brainflow_synthetic_board_over_dds(start_driver, emg_stream, diagnostics):
    start_driver(source="brainflow", brainflow_board="synthetic",
                 brainflow_channels=[1, 2, 3, 4], chunk_ms=20.0)
    emg_stream.wait_samples(300, 30.0)
    idx, data, msgs = emg_stream.samples()
    assert np.all(np.diff(idx) == 1)  # gap-free by its package numbers
    assert msgs[-1].sample_rate_hz == 250.0 and len(msgs[-1].channel_names) == 4
    # the synthetic board's signals are tens to hundreds of microvolts: published in volts
    assert 1e-6 < np.abs(data).max() < 1e-2 and np.all(data.std(axis=0) > 1e-6)
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])
    assert np.all(np.diff(stamps) > 0) and abs(stamps[-1] - time.time()) < 1.0
    status = diagnostics.wait_for(lambda s: s.get("source") == "brainflow"
                                  and s.get("connected") == "True", what="brainflow status")
    assert status["brainflow_board_id"] == "-1"


def test_brainflow_cyton_driver_on_our_emulator_counts_gaps(tmp_path, shared_data,
                                                            start_driver, emg_stream,
                                                            diagnostics):
    """BrainFlow's package-number channel shows the emulator's dropped packets."""
    from emg_driver.emulators.cyton import CytonEmulator
    from emg_driver.emulators.pty import PtyPort
    from emg_driver.openbci import volts_per_count
    from emg_hand_core.recordings import load_recording

    signal = load_recording(shared_data / "eeg_emg_hands/s_04_29_25/r_1/exg.csv").emg[:2000]
    emulator = CytonEmulator(PtyPort(tmp_path), signal).start()
    try:
        start_driver(source="brainflow", brainflow_board="cyton",
                     brainflow_serial_port=emulator.port)
        emg_stream.wait_samples(1, 30.0)  # streaming, and this subscriber matched
        with emulator.lock:  # drop two packets from now on (stream index = packet number)
            n = emulator.packets_sent + 50
            emulator.drop = {n, n + 1}
        since = len(emg_stream.messages)
        emg_stream.collector.wait_until(
            lambda m: bool(m) and m[-1].first_sample_index + m[-1].num_samples > n + 100, 30.0,
            "100 samples after the drops")
        idx, data, _ = emg_stream.samples(since)
        gaps = [(int(idx[k]), int(idx[k + 1])) for k in np.flatnonzero(np.diff(idx) != 1)]
        assert gaps == [(n - 1, n + 2)], (gaps, n, diagnostics.latest())
        scale = volts_per_count(24)
        np.testing.assert_allclose(data, np.rint(signal[idx % len(signal)] / scale) * scale,
                                   atol=scale * 1.01, rtol=0)
        diagnostics.wait_for(lambda s: s.get("dropped_samples") == "2", what="2 dropped")
    finally:
        emulator.close()


# --- LSL -----------------------------------------------------------------------------------

def make_outlet(name: str, channels: int = 4, rate: float = 250.0):
    import pylsl

    info = pylsl.StreamInfo(name, "EMG", channels, rate, "float32", name)
    chans = info.desc().append_child("channels")
    for k in range(channels):
        ch = chans.append_child("channel")
        ch.append_child_value("label", f"flexor_{k}")
        ch.append_child_value("unit", "microvolts")
    return pylsl.StreamOutlet(info, chunk_size=5)


def push_paced(outlet, values: np.ndarray, rate: float, start_index: int = 0) -> np.ndarray:
    """Push 5 samples every 20 ms with explicit LSL timestamps; returns them."""
    import pylsl

    t0 = pylsl.local_clock()
    stamps = t0 + np.arange(len(values)) / rate
    for k in range(0, len(values), 5):
        delay = stamps[k + 4] - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)  # pacing a producer, not synchronising with the driver
        outlet.push_chunk(values[k:k + 5].tolist(), float(stamps[k + 4]))
    return stamps


def test_lsl_outlet_streams_in_volts_with_stamps_within_2_ms(start_driver, emg_stream,
                                                             diagnostics):
    import pylsl

    name = f"emg_test_{uuid.uuid4().hex[:8]}"
    rate = 250.0
    outlet = make_outlet(name)
    driver = start_driver(source="lsl", lsl_name=name, lsl_type="EMG", chunk_ms=20.0,
                          stall_timeout_s=0.5)
    emg_stream.wait_publisher()
    rng = np.random.default_rng(2)
    values = rng.normal(0, 50, (1000, 4)).astype(np.float32)  # microvolts
    stamps = push_paced(outlet, values, rate)
    emg_stream.collector.wait_until(
        lambda m: bool(m) and m[-1].first_sample_index + m[-1].num_samples >= 1000, 20.0,
        "1000 samples")
    idx, data, msgs = emg_stream.samples()
    # the inlet may have joined a few samples in: match by value
    first = int(np.flatnonzero(np.all(values == data[0] * np.float32(1e6), axis=1)
                               | np.all(np.isclose(values, data[0] * 1e6, atol=1e-3), axis=1))[0])
    k = idx - idx[0] + first
    assert np.all(np.diff(idx) == 1)
    np.testing.assert_allclose(data, values[k] * 1e-6, rtol=1e-6, atol=1e-12)
    assert list(msgs[-1].channel_names) == [f"flexor_{c}" for c in range(4)]
    assert msgs[-1].sample_rate_hz == rate
    # stamps: each chunk's first sample at its LSL time, on the system clock, within 2 ms
    lsl_to_system = time.time() - pylsl.local_clock()
    chunk_first = np.array([m.first_sample_index for m in msgs]) - idx[0] + first
    got = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])
    expected = stamps[chunk_first] + lsl_to_system
    late = chunk_first > rate  # after the clock's first second
    assert np.max(np.abs(got[late] - expected[late])) < 0.002

    # the outlet goes away: reported; a new one with the same name: resolved again
    del outlet
    diagnostics.wait_for(lambda s: s["level"] == 2 and s.get("connected") == "False", 15.0,
                         "ERROR while the outlet is gone")
    outlet = make_outlet(name)
    since = len(emg_stream.messages)
    deadline = time.monotonic() + 20.0
    while sum(m.num_samples for m in emg_stream.messages[since:]) < 50:
        assert time.monotonic() < deadline, "no samples from the new outlet"
        push_paced(outlet, values[:50], rate)
    idx2 = emg_stream.samples(since)[0]
    assert idx2[0] > idx[-1] + 1  # the time without an outlet is a gap
    status = diagnostics.wait_for(lambda s: s.get("connected") == "True"
                                  and int(s.get("reconnects", 0)) >= 1, what="reconnected")
    assert status["lsl_units"] == "microvolts"
    assert driver.process.poll() is None


def test_emg_lsl_outlet_republishes_emg_raw_for_lsl_tools(start_driver, node_process,
                                                          emg_stream):
    """sim driver -> emg/raw -> emg_lsl_outlet -> an LSL inlet here: the same samples in
    microvolts, stamped with their acquisition times on LSL's clock."""
    import pylsl

    name = f"emg_out_{uuid.uuid4().hex[:8]}"
    outlet = node_process("emg_driver", "emg_lsl_outlet", ["--ros-args", "-p",
                                                           f"lsl_name:={name}"])
    start_driver(source="sim", chunk_ms=10.0)
    emg_stream.wait_samples(1, 20.0)  # from here on this test sees every emg/raw chunk
    found = pylsl.resolve_bypred(f"name='{name}'", 1, 30.0)
    assert found, outlet.output
    inlet = pylsl.StreamInlet(found[0], recover=False)
    inlet.open_stream(10.0)
    info = inlet.info(10.0)
    assert info.channel_count() == 8 and info.nominal_srate() == 500.0
    assert info.desc().child("channels").child("channel").child_value("unit") == "microvolts"
    samples, stamps = [], []
    deadline = time.monotonic() + 20.0
    while len(samples) < 500 and time.monotonic() < deadline:
        chunk, ts = inlet.pull_chunk(timeout=0.2)
        samples += chunk
        stamps += ts
    assert len(samples) >= 500
    lsl_to_system = time.time() - pylsl.local_clock()
    ours = np.asarray(samples, dtype=np.float32) * np.float32(1e-6)
    idx, data, msgs = emg_stream.samples()
    # find the LSL samples in what emg/raw carried: same values, same acquisition times
    k = int(np.flatnonzero(np.all(np.isclose(data, ours[0], rtol=1e-5, atol=1e-11), axis=1))[0])
    np.testing.assert_allclose(ours[:100], data[k:k + 100], rtol=1e-5, atol=1e-11)
    m = next(m for m in msgs if m.first_sample_index <= idx[k] < m.first_sample_index
             + m.num_samples)
    acquired = (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
                + (idx[k] - m.first_sample_index) / 500.0)
    assert abs(stamps[0] + lsl_to_system - acquired) < 1e-3
