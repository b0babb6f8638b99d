"""The OpenBCI Cyton protocol on bytes: packets, volts per count, Daisy pairing, resync,
the handshake of CytonDevice (pure; no port, no ROS)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emg_driver.openbci import (
    CytonConfig,
    CytonDecoder,
    CytonDevice,
    channel_setting_command,
    encode_packet,
    parse_channel_setting,
    volts_per_count,
)

RNG = np.random.default_rng(5)
COUNTS = RNG.integers(-(1 << 23), 1 << 23, (600, 8))


def packets(first: int, n: int, counts=COUNTS, skip=()) -> bytes:
    return b"".join(encode_packet((first + k) % 256, counts[k % len(counts)])
                    for k in range(n) if k not in skip)


def test_scale_and_packet_layout():
    assert volts_per_count(24) == pytest.approx(0.02235e-6, rel=1e-3)  # 0.02235 uV
    assert volts_per_count(1) == pytest.approx(4.5 / (2 ** 23 - 1))
    p = encode_packet(7, [1, -1, 0x7FFFFF, -(1 << 23), 0, 2, 3, 4], accel_counts=[1, -2, 3])
    assert len(p) == 33 and p[0] == 0xA0 and p[1] == 7 and p[32] == 0xC0
    assert p[2:5] == b"\x00\x00\x01" and p[5:8] == b"\xff\xff\xff"  # 24-bit big-endian
    assert p[11:14] == b"\x80\x00\x00" and p[26:32] == b"\x00\x01\xff\xfe\x00\x03"
    with pytest.raises(ValueError, match="gain"):
        volts_per_count(3)


def test_decoded_volts_counters_and_accelerometer():
    gains = (24, 12, 8, 6, 4, 2, 1, 24)
    dec = CytonDecoder(CytonConfig(gains=gains))
    data = packets(250, 10) + encode_packet(4, COUNTS[10], accel_counts=[16, 0, 8000]) \
        + encode_packet(5, COUNTS[11])
    batch = dec.feed(data)
    scale = np.array([volts_per_count(g) for g in gains])
    np.testing.assert_allclose(batch.values, (COUNTS[:12] * scale).astype(np.float32))
    assert batch.counters.tolist() == [250, 251, 252, 253, 254, 255, 0, 1, 2, 3, 4, 5]
    assert batch.counter_modulus == 256
    (accel,) = batch.imu  # packets without a reading (zeros) carry none
    assert accel.sample == 10
    assert accel.linear_acceleration == pytest.approx(
        (16 * 0.002 / 16 * 9.80665, 0.0, 8000 * 0.002 / 16 * 9.80665))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 200), min_size=1, max_size=8),
       st.binary(min_size=0, max_size=80))
def test_any_split_and_garbage_never_loses_or_corrupts_a_packet(cuts, garbage):
    """Packets after garbage (even garbage with 0xA0 and footer bytes) are all found."""
    good = packets(0, 20)
    fake = bytes([0xA0, 9]) + bytes(31) + bytes([0xC0])  # a footer, but no packet follows
    stream = garbage + fake + garbage + good + bytes([0xA0])
    dec = CytonDecoder(CytonConfig())
    out, counters, pos = [], [], 0
    for cut in [*cuts, len(stream)]:
        batch = dec.feed(stream[pos:pos + cut])
        pos += cut
        out.append(batch.values)
        if batch.counters is not None:
            counters.extend(batch.counters.tolist())
    batch = dec.feed(stream[pos:])
    out.append(batch.values)
    if batch.counters is not None:
        counters.extend(batch.counters.tolist())
    values = np.concatenate(out)
    # every real packet, in order and exact; a garbage "packet" may only come before them
    tail = values[-20:]
    np.testing.assert_array_equal(tail, (COUNTS[:20] * volts_per_count(24)).astype(np.float32))
    assert counters[-20:] == list(range(20))


def test_daisy_pairs_even_then_odd_and_drops_halves():
    cfg = CytonConfig(daisy=True)
    assert cfg.num_channels == 16 and cfg.sample_rate_hz == 125.0
    dec = CytonDecoder(cfg)
    board, daisy = COUNTS[:6], COUNTS[100:106]
    stream = b""
    for k in range(6):
        if k == 3:  # the Daisy half of pair 3 is lost
            stream += encode_packet(2 * k + 1, board[k])
            continue
        stream += encode_packet(2 * k, daisy[k]) + encode_packet(2 * k + 1, board[k])
    batch = dec.feed(stream + encode_packet(12, daisy[0]))
    expected = np.concatenate([board, daisy], axis=1)[[0, 1, 2, 4, 5]]
    np.testing.assert_allclose(batch.values, (expected * volts_per_count(24)).astype(np.float32))
    assert batch.counters.tolist() == [0, 1, 2, 4, 5] and batch.counter_modulus == 128
    assert dec.daisy_unpaired == 1


def test_channel_setting_commands():
    assert channel_setting_command(1, 24) == b"x1060110X"
    assert channel_setting_command(9, 8) == b"xQ040110X"
    assert parse_channel_setting(b"xQ040110X") == (9, 8)
    assert parse_channel_setting(b"x9060110X") is None
    with pytest.raises(ValueError, match="cyton_gains lists 3"):
        CytonConfig(gains=(24, 24, 24)).validate()


class Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def __call__(self, data: bytes) -> bool:
        self.sent.append(data)
        return True


def test_handshake_resets_sets_gains_and_starts():
    dev = CytonDevice(CytonConfig(gains=(24, 24, 12, 24, 24, 24, 24, 8)), reply_timeout_s=1.0)
    wire = Wire()
    dev.connected(wire, 0.0)
    assert wire.sent == [b"s", b"v"]
    dev.set_streaming(True, wire)  # wanted, but not yet ready: nothing sent
    assert dev.health()[0] == "error"
    assert len(dev.feed(b"OpenBCI V3 8-16 channel\nFirmware: v3.1.2\n$$", 0.1)) == 0
    dev.feed(b"$", 0.2)
    assert wire.sent[-1] == b"x3050110X"
    dev.feed(b"Success: Channel set for 3$$$", 0.3)
    assert wire.sent[-1] == b"x8040110X"
    dev.feed(b"Success: Channel set for 8$$$", 0.4)
    assert wire.sent[-1] == b"b" and dev.health() == ("ok", "Cyton ready, streaming")
    stream = packets(0, 3)
    assert len(dev.feed(stream[:33], 0.5)) == 0  # the first waits for its successor's 0xA0
    assert len(dev.feed(stream[33:], 0.6)) == 3  # the others continue its sample numbers
    dev.closing(wire)
    assert wire.sent[-1] == b"s"


def test_silent_or_unpowered_board_is_reported_and_retried():
    dev = CytonDevice(CytonConfig(), reply_timeout_s=1.0)
    wire = Wire()
    dev.connected(wire, 0.0)
    dev.tick(1.5, wire)
    assert wire.sent == [b"s", b"v", b"s", b"v"] and dev.reply_timeouts == 1
    assert "no answer" in dev.health()[1]
    dev.feed(b"Failure: Communications timeout - Device failed to poll Host$$$", 2.0)
    level, message = dev.health()
    assert level == "error" and "switch the board on" in message
    dev.feed(b"OpenBCI V3 8-16 channel\nOn Daisy ADS1299 Device ID: 0x3E\n$$$", 3.6)
    level, message = dev.health()
    assert level == "warn" and "Daisy" in message  # the board has one, the preset does not
