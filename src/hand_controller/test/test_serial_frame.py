"""The serial command frame: known bytes, round trips, resynchronisation, and a real pty."""

import os
import select
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hand_controller.serial_backend import SerialBackend
from hand_controller.serial_frame import (
    FLAG_ENABLED,
    FLAG_STOP,
    FLAG_WATCHDOG,
    crc16_ccitt_false,
    decode_commands,
    encode_command,
)


def test_crc_check_value():
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def test_known_frame_bytes():
    frame = encode_command([0.0, 1.0, -0.5], sequence=7, flags=FLAG_ENABLED)
    body = bytes([1, 1, 7, 3]) + (0).to_bytes(2, "little", signed=True) + \
        (1000).to_bytes(2, "little", signed=True) + (-500).to_bytes(2, "little", signed=True)
    assert frame == b"\xa5\x5a" + body + crc16_ccitt_false(body).to_bytes(2, "little")
    assert len(encode_command(np.zeros(6), 0)) == 20


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.floats(-32.7, 32.7), min_size=1, max_size=20), min_size=1,
                max_size=5),
       st.binary(max_size=30), st.integers(1, 64))
def test_round_trip_through_garbage_and_split_reads(commands, garbage, chunk):
    stream = b"".join(garbage + encode_command(c, i, FLAG_ENABLED | FLAG_WATCHDOG)
                      for i, c in enumerate(commands))
    frames, tail = [], b""
    for k in range(0, len(stream), chunk):
        got, tail, _ = decode_commands(tail + stream[k:k + chunk])
        frames += got
    # garbage can by chance contain a valid frame; ours must all be there, in order
    ours = [f for f in frames if f.flags == FLAG_ENABLED | FLAG_WATCHDOG]
    assert len(ours) >= len(commands)
    ours = ours[-len(commands):]
    for i, (frame, c) in enumerate(zip(ours, commands)):
        assert frame.sequence == i & 0xFF and frame.enabled and frame.watchdog
        np.testing.assert_allclose(frame.positions_rad, c, atol=0.0005 + 1e-12)


def test_corrupt_frame_is_skipped():
    good = encode_command([0.1, 0.2], 1)
    bad = bytearray(encode_command([0.3, 0.4], 2))
    bad[7] ^= 0xFF
    frames, tail, skipped = decode_commands(bytes(bad) + good)
    assert [f.sequence for f in frames] == [1] and tail == b"" and skipped > 0


@pytest.mark.parametrize("values", [[], [np.nan], [40.0], np.zeros(65)])
def test_unsendable_values_raise(values):
    with pytest.raises(ValueError):
        encode_command(values, 0)


def test_backend_writes_frames_to_a_pty():
    master, slave = os.openpty()
    backend = SerialBackend(os.ttyname(slave), 115200)
    try:
        # 0.010 and 0.013 rad encode as bytes 0x0A and 0x0D: the port must be raw (no CR/LF
        # translation), or these frames would arrive corrupt.
        sent = [encode_command([0.1 * k, 0.010, 0.013, -0.2], k) for k in range(5)]
        sent.append(encode_command([0.4, 0.010, 0.013, -0.2], 5, FLAG_STOP))
        for frame in sent:
            backend.submit(frame)
            assert backend.flush(2.0)
        data, deadline = b"", time.monotonic() + 5.0
        frames = []
        while len(frames) < len(sent) and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                data += os.read(master, 4096)
            frames, _, _ = decode_commands(data)
        assert [f.sequence for f in frames] == list(range(6))
        assert b"".join(sent) == data
        assert frames[-1].stop and not frames[0].stop
        assert backend.frames_written == 6 and backend.write_errors == 0
    finally:
        backend.close()
        os.close(master)
        os.close(slave)


def test_the_readme_example_frame():
    """The example bytes in the package README."""
    frame = encode_command([0.0, 1.0, -0.5], 7)
    assert frame.hex(" ") == "a5 5a 01 01 07 03 00 00 e8 03 0c fe 00 69"


def test_backend_drops_the_oldest_frames_only_when_the_port_falls_behind():
    master, slave = os.openpty()
    backend = SerialBackend(os.ttyname(slave), 115200, max_queued=3)
    try:
        # Holding the backend's (re-entrant) lock keeps the writer thread from taking frames,
        # as a port that falls behind would; five frames are submitted meanwhile.
        with backend._cond:
            for k in range(5):
                backend.submit(encode_command([0.0], k))
        assert backend.flush(2.0)
        data, frames = b"", []
        deadline = time.monotonic() + 5.0
        while len(frames) < 3 and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                data += os.read(master, 4096)
                frames, _, _ = decode_commands(data)
        assert [f.sequence for f in frames] == [2, 3, 4] and backend.frames_dropped == 2
        assert backend.frames_written == 3
    finally:
        backend.close()
        os.close(master)
        os.close(slave)
