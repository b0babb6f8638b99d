"""Myo through its BLED112 dongle: BGAPI and the Myo's notifications on bytes, then end to
end: our byte-level emulator of the dongle and a Myo on a pseudo-terminal plays a real Myo
recording (myo_readings int8 counts); the installed driver (source:=myo) publishes it over
DDS, with the IMU on imu/raw, the battery on /diagnostics, vibrations on calibration
prompts, a clean disconnect and a reconnect after a lost link. pyomyo (PyPI, an independent
Myo client) reads the same emulator and must get the same samples."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from emg_driver import bgapi, myo
from emg_driver.emulators.myo_dongle import EmulatedMyo, MyoDongleEmulator
from emg_driver.emulators.pty import PtyPort
from emg_hand_core.recordings import load_recording
from emg_hand_core.units import MYO_VOLTS_PER_COUNT

pytestmark = pytest.mark.timeout(120)

MYO_FILE = ("myo_readings", "right_hand", "45612-1", "7.txt")
ADDRESS = "C8:2F:84:E5:03:01"


# --- on bytes -------------------------------------------------------------------------

def test_bgapi_packets_split_anywhere_and_resync_after_garbage():
    value = bgapi.event(bgapi.ATTCLIENT_ATTRIBUTE_VALUE, bytes([0, 0x2B, 0, 1]) + bgapi.array(
        bytes(range(16))))
    status = bgapi.event(bgapi.CONNECTION_STATUS, bytes(16))
    response = bgapi.command(bgapi.GAP_DISCOVER, b"\x00\x00")
    garbage = bytes([0x80, 0x05, 0x04, 0x05, 0, 0x2B, 0, 1, 9]) + b"\xff\x13\x80"  # bad array
    stream = response + garbage + value + status + value
    parser = bgapi.BgapiParser()
    packets = []
    for k in range(0, len(stream), 7):
        packets += parser.feed(stream[k:k + 7])
    assert [(p.event, p.id) for p in packets] == [
        (False, bgapi.GAP_DISCOVER), (True, bgapi.ATTCLIENT_ATTRIBUTE_VALUE),
        (True, bgapi.CONNECTION_STATUS), (True, bgapi.ATTCLIENT_ATTRIBUTE_VALUE)]
    assert packets[1].payload[5:] == bytes(range(16))
    assert parser.stats.discarded_bytes >= len(garbage)


def test_myo_payloads_in_si_units():
    assert bgapi.format_address(bgapi.parse_address(ADDRESS)) == ADDRESS
    with pytest.raises(ValueError, match="Bluetooth address"):
        bgapi.parse_address("C8:2F:84")
    assert myo.is_myo(EmulatedMyo(b"\x01" * 6, np.zeros((1, 8))).advertising_data())
    assert not myo.is_myo(bytes([2, 0x01, 0x06, 3, 0x03, 0x0F, 0x18]))
    assert myo.decode_emg(bytes(range(256 - 8, 256)) + bytes(range(8))).tolist() == [
        list(range(-8, 0)), list(range(8))]
    half = math.sqrt(0.5)
    reading = myo.decode_imu(myo.encode_imu((half, 0.0, 0.0, half), (0.0, -1.0, 0.5),
                                            (90.0, 0.0, -45.0)))
    assert reading.orientation_xyzw == pytest.approx((0.0, 0.0, half, half), abs=1e-4)
    assert reading.linear_acceleration == pytest.approx((0.0, -9.80665, 4.903), abs=1e-3)
    assert reading.angular_velocity == pytest.approx((math.pi / 2, 0.0, -math.pi / 4), abs=1e-3)
    assert myo.set_mode(myo.EMG_MODE_RAW, myo.IMU_MODE_DATA) == b"\x01\x03\x03\x01\x00"
    assert myo.vibrate(1) == b"\x03\x01\x01" and myo.sleep_mode(True) == b"\x09\x01\x01"


# --- end to end -------------------------------------------------------------------------

@pytest.fixture
def counts(shared_data) -> np.ndarray:
    rec = load_recording(shared_data.joinpath(*MYO_FILE), scale_v_per_unit=1.0)
    return np.rint(rec.emg[:4000]).astype(np.int64)


@pytest.fixture
def dongle(tmp_path, counts):
    other = EmulatedMyo(bgapi.parse_address("C8:2F:84:E5:03:99"), counts[::-1].copy())
    ours = EmulatedMyo(bgapi.parse_address(ADDRESS), counts)
    emulator = MyoDongleEmulator(PtyPort(tmp_path), [other, ours]).start()
    yield emulator
    emulator.close()


def test_myo_streams_imu_battery_vibrates_reconnects_and_disconnects_cleanly(
        dongle, counts, start_driver, emg_stream, diagnostics, ros_node, lifecycle):
    from sensor_msgs.msg import Imu

    from emg_interfaces.msg import CalibrationPrompt

    dongle.drop = {150, 151}  # two notifications (4 samples) lost over the air
    imu = ros_node.collect(Imu, "imu/raw", 200)
    prompts = ros_node.node.create_publisher(CalibrationPrompt, "calibration/prompt", 10)
    driver = start_driver(source="myo", port=dongle.port, myo_address=ADDRESS,
                          vibrate_on_prompt=True, chunk_ms=20.0, autostart=True)
    emg_stream.wait_publisher()
    dongle.wait_for(lambda: dongle.streaming, 20.0, "the driver to start the Myo's raw EMG")
    assert dongle.link.armband.address == bgapi.parse_address(ADDRESS)  # not the first Myo
    assert dongle.sleep_modes == [1] and dongle.modes == [(3, 1, 0)]
    emg_stream.collector.wait_until(
        lambda m: bool(m) and m[-1].first_sample_index + m[-1].num_samples > 400, 30.0,
        "400 samples")
    idx, data, msgs = emg_stream.samples()
    # stream index k = sample k since raw mode began; notifications 150, 151 are a gap
    lost = {300, 301, 302, 303}
    assert idx.tolist() == [k for k in range(int(idx[0]), int(idx[-1]) + 1) if k not in lost]
    np.testing.assert_array_equal(data, (counts[idx] * MYO_VOLTS_PER_COUNT).astype(np.float32))
    assert msgs[-1].sample_rate_hz == 200.0 and len(msgs[-1].channel_names) == 8
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in msgs])
    assert np.all(np.diff(stamps) > 0)
    status = diagnostics.wait_for(lambda s: s.get("dropped_samples") == "4",
                                  what="4 dropped samples")
    assert status["battery_percent"] == "87" and status["myo_address"] == ADDRESS
    assert status["myo_firmware"] == "1.5.1970"

    # the IMU in REP-103 units: orientation a unit quaternion about z, 1 g up, rad/s
    readings = imu.wait_for(20, 10.0)
    q = readings[-1].orientation
    assert q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2 == pytest.approx(1.0, abs=1e-3)
    assert abs(q.x) < 1e-3 and abs(q.y) < 1e-3
    assert readings[-1].linear_acceleration.z == pytest.approx(9.80665, abs=0.01)
    gyro_z = [r.angular_velocity.z for r in readings]
    assert max(abs(g) for g in gyro_z) < 1.6 and max(abs(g) for g in gyro_z) > 0.5  # rad/s
    imu_stamps = [r.header.stamp.sec + r.header.stamp.nanosec * 1e-9 for r in readings]
    assert np.all(np.diff(imu_stamps) > 0)

    # a guided calibration: a short vibration per pose to hold, a medium one at the end
    ros_node.wait_for_subscribers("calibration/prompt", 10.0)
    for phase, pose in ((CalibrationPrompt.PHASE_GET_READY, "fist"),
                        (CalibrationPrompt.PHASE_HOLD, "fist"),
                        (CalibrationPrompt.PHASE_REST, "rest"),
                        (CalibrationPrompt.PHASE_HOLD, "open"),
                        (CalibrationPrompt.PHASE_DONE, "")):
        prompts.publish(CalibrationPrompt(phase=phase, pose_name=pose))
    dongle.wait_for(lambda: len(dongle.vibrations) == 3, 10.0, "three vibrations")
    assert dongle.vibrations == [myo.VIBRATE_SHORT, myo.VIBRATE_SHORT, myo.VIBRATE_MEDIUM]

    # the armband goes out of range: reported, scanned for, reconnected, streaming again
    before = int(emg_stream.samples()[0][-1])
    dongle.lose_link()
    dongle.wait_for(lambda: dongle.connects == 2 and dongle.streaming, 20.0, "the reconnect")
    since = len(emg_stream.messages)
    emg_stream.collector.wait_until(lambda m: sum(x.num_samples for x in m[since:]) > 40, 10.0,
                                    "samples after the reconnect")
    idx2 = emg_stream.samples(since)[0]
    assert idx2[0] > before and np.all(np.diff(idx2) == 1)
    diagnostics.wait_for(lambda s: s.get("myo_links_lost") == "1" and s["level"] == 0,
                         what="OK again after the reconnect")

    # cleanup: the Myo stops streaming, may sleep again, and is disconnected
    lc = lifecycle()
    assert lc.transition("deactivate")
    dongle.wait_for(lambda: dongle.modes[-1] == (0, 0, 0) and dongle.sleep_modes[-1] == 0,
                    10.0, "the stream stopped at deactivate")
    assert lc.transition("cleanup")
    dongle.wait_for(lambda: dongle.link is None and dongle.disconnects_requested == 1, 10.0,
                    "a clean disconnect at cleanup")
    assert driver.process.poll() is None


PYOMYO_CLIENT = textwrap.dedent("""
    import json, sys
    import pyomyo
    m = pyomyo.Myo(tty=sys.argv[1], mode=pyomyo.emg_mode.RAW)
    got = []
    m.add_emg_handler(lambda emg, moving: got.append(list(emg)))
    m.connect()
    while len(got) < int(sys.argv[2]):
        m.run()
    m.disconnect()
    print(json.dumps(got))
""")


def test_pyomyo_and_our_driver_read_the_same_samples(dongle, counts):
    """pyomyo (PyPI 0.0.5, the myo-raw lineage) as an independent reading of the protocol."""
    import time

    from emg_driver.sources import SerialConfig, SerialSource

    pytest.importorskip("pyomyo")
    dongle.armbands = dongle.armbands[1:]  # pyomyo takes the first Myo it sees
    out = subprocess.run([sys.executable, "-c", PYOMYO_CLIENT, dongle.port, "300"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    assert dongle.disconnects_requested == 1
    # pyomyo adds its handler after the last set-up write: it may miss the first few
    start = next(k for k in range(20) if np.array_equal(counts[k:k + 300], theirs))
    assert start <= 10

    dongle.sent.clear()
    chunks: list = []
    source = SerialSource(SerialConfig(port=dongle.port, chunk_len=4), clock=time.time,
                          on_chunks=chunks.extend, device=myo.MyoDevice())
    assert source.open() == ""
    source.start(0)
    dongle.wait_for(lambda: sum(c.num_samples for c in chunks) >= 300, 20.0, "300 samples")
    source.close()
    ours = np.rint(np.concatenate([c.data for c in chunks]) / MYO_VOLTS_PER_COUNT)[:300]
    np.testing.assert_array_equal(ours, counts[:300])
    np.testing.assert_array_equal(ours[start:], theirs[:300 - start])
