"""OpenBCI Cyton end to end: our byte-level emulator of a Cyton (and Cyton + Daisy) on a
pseudo-terminal streams a real OpenBCI recording (eeg_emg_hands, BrainFlow microvolts from
a Cyton) re-encoded as 24-bit counts; the installed driver (source:=cyton) publishes it over
DDS. BrainFlow's own Cyton drivers read the same emulator: two independent implementations
of the protocol must see the same samples."""

from __future__ import annotations

import time

import numpy as np
import pytest

from emg_driver.emulators.cyton import CytonEmulator
from emg_driver.emulators.pty import PtyPort
from emg_driver.openbci import CytonConfig, CytonDevice, volts_per_count
from emg_hand_core.recordings import load_recording

pytestmark = pytest.mark.timeout(120)

CYTON_RUN = ("eeg_emg_hands", "s_04_29_25", "r_1", "exg.csv")  # 8 ch, 250 Hz
DAISY_RUN = ("eeg_emg_hands", "s_0", "emg_mp_1734156561.csv")  # 16 ch, 125 Hz
GAINS = [24, 24, 24, 24, 24, 24, 12, 8]


def recording(shared_data, parts, n: int = 5000) -> np.ndarray:
    return load_recording(shared_data.joinpath(*parts)).emg[:n].astype(np.float64)


def expected_volts(signal_v: np.ndarray, index: np.ndarray, gains) -> np.ndarray:
    """What the emulator sends for stream indices ``index``, in volts."""
    scale = np.array([volts_per_count(g) for g in gains])
    return np.rint(signal_v[index % len(signal_v)] / scale) * scale


@pytest.fixture
def cyton(tmp_path, shared_data):
    emulator = CytonEmulator(PtyPort(tmp_path), recording(shared_data, CYTON_RUN)).start()
    yield emulator
    emulator.close()


def stamps_of(msgs) -> np.ndarray:
    return np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])


def test_cyton_streams_volts_counts_drops_resyncs_and_survives_replug(
        cyton, start_driver, emg_stream, diagnostics, ros_node):
    from sensor_msgs.msg import Imu

    cyton.drop = {400, 401, 402, 700}
    # garbage with a start byte and a footer where a packet would end, then a half packet
    cyton.garbage = {550: bytes([0xA0, 0x26]) + bytes(31) + bytes([0xC3, 0x11, 0xA0, 0x27])
                     + bytes(20)}
    imu = ros_node.collect(Imu, "imu/raw", 100)
    driver = start_driver(source="cyton", port=cyton.port, cyton_gains=GAINS, chunk_ms=20.0)
    emg_stream.wait_publisher()
    cyton.wait_streaming(20.0)
    # the gains were set on the board after its soft reset, before streaming
    assert cyton.commands[:2] == [b"s", b"v"] and cyton.gains == GAINS
    assert cyton.commands[2:4] == [b"x7050110X", b"x8040110X"] and cyton.commands[4] == b"b"
    emg_stream.collector.wait_until(
        lambda m: bool(m) and m[-1].first_sample_index + m[-1].num_samples > 900, 30.0,
        "900 samples")
    idx, data, msgs = emg_stream.samples()
    first = int(idx[0])
    wanted = np.array([k for k in range(first, int(idx[-1]) + 1)
                       if k not in cyton.drop])
    assert idx.tolist() == wanted.tolist()  # every sample once, in order; drops are gaps
    np.testing.assert_allclose(data, expected_volts(cyton.signal_v, idx, GAINS),
                               atol=volts_per_count(24) * 1.01, rtol=0)  # within one count
    assert all(m.sample_rate_hz == 250.0 and len(m.channel_names) == 8 for m in msgs)
    stamps = stamps_of(msgs)
    assert np.all(np.diff(stamps) > 0)
    status = diagnostics.wait_for(lambda s: int(s.get("dropped_samples", -1)) == len(cyton.drop)
                                  and int(s.get("samples_published", 0)) > 700,
                                  what="the dropped packets counted")
    assert int(status["header_errors"]) >= 1 and int(status["discarded_bytes"]) >= 50
    assert status["source"] == "cyton" and status["cyton_phase"] == "ready"
    # the accelerometer (every 10th packet, 0.01, -0.02, 0.99 g) on imu/raw in m/s^2
    msg = imu.wait_for(3, 10.0)[-1]
    a = msg.linear_acceleration
    assert (a.x, a.y, a.z) == pytest.approx((0.0981, -0.1961, 9.7086), abs=2e-3)
    assert msg.orientation_covariance[0] == -1.0 and msg.angular_velocity_covariance[0] == -1.0

    # unplugged: ERROR; plugged in again: reset, gains, stream again, with a visible gap
    cyton.unplug()
    diagnostics.wait_for(lambda s: s["level"] == 2 and s.get("connected") == "False",
                         what="ERROR while unplugged")
    time.sleep(0.5)  # stay unplugged a while (reconnect attempts run meanwhile)
    before = int(emg_stream.samples()[0][-1])  # nothing more arrives while unplugged
    cyton.replug()
    since = len(emg_stream.messages)
    emg_stream.collector.wait_until(lambda m: sum(x.num_samples for x in m[since:]) > 100,
                                    20.0, "samples after the replug")
    assert cyton.commands.count(b"v") == 2 and cyton.commands.count(b"b") == 2
    idx2 = emg_stream.samples(since)[0]
    assert idx2[0] > before + 0.5 * 250  # the time unplugged is a gap, not hidden
    assert np.all(np.diff(idx2) == 1)
    assert driver.process.poll() is None


def test_cyton_daisy_preset_16_channels_at_125_hz(tmp_path, shared_data, node_process,
                                                  emg_stream, diagnostics):
    """The installed cyton_daisy preset, read by rcl as `ros2 launch ... device:=` does."""
    from ament_index_python.packages import get_package_share_directory

    preset = f"{get_package_share_directory('emg_driver')}/config/devices/cyton_daisy.yaml"
    signal = recording(shared_data, DAISY_RUN, 2000)
    emulator = CytonEmulator(PtyPort(tmp_path), signal, daisy=True).start()
    try:
        emulator.drop = {201}  # the board half of pair 100: one 16-channel sample lost
        node_process("emg_driver", "emg_driver", ["--ros-args", "--params-file", preset,
                                                  "-p", f"port:={emulator.port}"])
        emg_stream.collector.wait_until(
            lambda m: bool(m) and m[-1].first_sample_index + m[-1].num_samples > 150, 30.0,
            "150 samples")
        idx, data, msgs = emg_stream.samples()
        assert 100 not in idx.tolist() and np.all(np.diff(idx) == 1 + (idx[:-1] == 99))
        np.testing.assert_allclose(data, expected_volts(signal, idx, [24] * 16),
                                   atol=volts_per_count(24) * 1.01, rtol=0)
        assert msgs[-1].sample_rate_hz == 125.0 and len(msgs[-1].channel_names) == 16
        status = diagnostics.wait_for(lambda s: s.get("dropped_samples") == "1",
                                      what="one dropped sample")
        assert status["cyton_daisy_found"] == "True"
    finally:
        emulator.close()


@pytest.mark.parametrize("daisy", [False, True], ids=["cyton", "cyton_daisy"])
def test_brainflow_and_our_native_source_read_the_same_samples(tmp_path, shared_data, daisy):
    """BrainFlow's Cyton driver (C++) and ours, on the same emulated stream."""
    from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams

    from emg_driver.sources import SerialConfig, SerialSource

    signal = recording(shared_data, DAISY_RUN if daisy else CYTON_RUN, 1000)
    emulator = CytonEmulator(PtyPort(tmp_path), signal, daisy=daisy).start()
    rate = 125 if daisy else 250
    try:
        BoardShim.disable_board_logger()
        params = BrainFlowInputParams()
        params.serial_port = emulator.port
        board_id = BoardIds.CYTON_DAISY_BOARD if daisy else BoardIds.CYTON_BOARD
        board = BoardShim(board_id, params)
        board.prepare_session()
        board.start_stream()
        deadline = time.monotonic() + 20.0
        while board.get_board_data_count() < rate and time.monotonic() < deadline:
            time.sleep(0.05)  # BrainFlow fills its buffer on its own thread
        theirs = board.get_board_data()
        board.stop_stream()
        board.release_session()
        theirs_v = theirs[BoardShim.get_emg_channels(board_id)].T * 1e-6
        assert len(theirs_v) >= rate

        chunks: list = []
        source = SerialSource(SerialConfig(port=emulator.port, chunk_len=5), clock=time.time,
                              on_chunks=chunks.extend,
                              device=CytonDevice(CytonConfig(daisy=daisy)))
        assert source.open() == ""
        source.start(0)
        deadline = time.monotonic() + 20.0
        while sum(c.num_samples for c in chunks) < len(theirs_v) and time.monotonic() < deadline:
            time.sleep(0.05)
        source.close()
        ours_v = np.concatenate([c.data for c in chunks])[:len(theirs_v)]
        # both restart at sample number 0 with 'b': sample k of each is the same sample
        np.testing.assert_allclose(ours_v, theirs_v, atol=volts_per_count(24) * 1.01, rtol=0)
        np.testing.assert_allclose(ours_v, expected_volts(signal, np.arange(len(ours_v)),
                                                          [24] * signal.shape[1]),
                                   atol=volts_per_count(24) * 1.01, rtol=0)
    finally:
        emulator.close()
