"""Pure decoder tests: recorded byte strings, corruption, and input split across reads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emg_driver.protocols import (
    SYNC,
    BinaryConfig,
    BinaryFrameDecoder,
    TextConfig,
    TextLineDecoder,
    crc16,
    encode_frame,
    encode_text_line,
)

# Six lines in a Myo logger's format, c1,...,c8,label (values made up here; the real
# recordings are read in place from ../shared/data by the tests that need them).
MYO_BYTES = (b"-25,-6,-2,-11,4,13,14,-2,0\n-18,1,-4,33,5,8,20,11,0\n"
             b"-30,-13,9,22,6,3,2,-4,0\n5,2,-9,-1,0,3,1,4,7\r\n"
             b"127,-128,0,0,0,0,0,1,7\n-1,-1,-1,-1,-1,-1,-1,-1,0\n")
MYO_COUNTS = np.array([
    [-25, -6, -2, -11, 4, 13, 14, -2], [-18, 1, -4, 33, 5, 8, 20, 11],
    [-30, -13, 9, 22, 6, 3, 2, -4], [5, 2, -9, -1, 0, 3, 1, 4],
    [127, -128, 0, 0, 0, 0, 0, 1], [-1, -1, -1, -1, -1, -1, -1, -1]], dtype=np.float64)
MYO = TextConfig(num_channels=8, num_columns=9, scale_v_per_unit=1e-5)


def split_feed(decoder, data: bytes, cuts: list[int]):
    """Feed ``data`` in pieces cut at ``cuts``; concatenate the decoded values/counters."""
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    values, counters = [], []
    for a, b in zip(bounds, bounds[1:]):
        batch = decoder.feed(data[a:b])
        values.append(batch.values)
        if batch.counters is not None:
            counters.append(batch.counters)
    out = np.concatenate(values)
    return out, (np.concatenate(counters) if counters else None)


# --- text lines -----------------------------------------------------------------------


def test_myo_lines_decode_to_volts():
    batch = TextLineDecoder(MYO).feed(MYO_BYTES)
    np.testing.assert_allclose(batch.values, (MYO_COUNTS * 1e-5).astype(np.float32))
    assert batch.values.dtype == np.float32 and batch.counters is None


@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_text_split_across_reads_gives_the_same_samples(cuts):
    values, _ = split_feed(TextLineDecoder(MYO), MYO_BYTES, cuts)
    np.testing.assert_allclose(values, (MYO_COUNTS * 1e-5).astype(np.float32))


def test_text_offset_scale_counter_and_timestamp_columns():
    cfg = TextConfig(num_channels=2, counter_column=0, timestamp_column=3,
                     scale_v_per_unit=5.0 / 1024 / 1000, offset_units=512)
    batch = TextLineDecoder(cfg).feed(b"10 512\t1023,2000\n11;0 512 2004\n")
    np.testing.assert_allclose(batch.values, np.array(
        [[0.0, 511 * 5.0 / 1024 / 1000], [-512 * 5.0 / 1024 / 1000, 0.0]], dtype=np.float32))
    assert batch.counters.tolist() == [10, 11]
    np.testing.assert_allclose(batch.device_times_s, [2.0, 2.004])


def test_text_bad_lines_are_counted_and_never_corrupt_good_ones():
    dec = TextLineDecoder(MYO)
    good = encode_text_line([1, 2, 3, 4, 5, 6, 7, 8], counter=0)
    data = (good + b"1,2,3,4\n"  # truncated line: wrong column count
            + b"1,2,3,4,5,6,7,8,0,1,2,3,4,5,6,7,8,0\n"  # two lines merged
            + b"1,2,x3,4,5,6,7,8,0\n"  # not a number
            + b"nan,2,3,4,5,6,7,8,0\n1,inf,3,4,5,6,7,8,0\n"  # NaN / inf
            + b"\xff\xfe\x00garbage\x01\n"
            + b"# firmware banner v1.2\n\n"  # skipped silently
            + good)
    batch = dec.feed(data)
    np.testing.assert_allclose(batch.values, np.array([[1, 2, 3, 4, 5, 6, 7, 8]] * 2) * 1e-5,
                               rtol=1e-6)
    s = dec.stats
    assert (s.column_errors, s.parse_errors, s.nonfinite_values) == (3, 1, 2)
    assert s.samples == 2 and s.errors == 6


def test_text_bytes_without_newline_are_bounded_and_counted():
    dec = TextLineDecoder(TextConfig(num_channels=2, max_line_bytes=64))
    assert len(dec.feed(b"\x01" * 1000)) == 0
    assert dec.stats.overlong_lines == 1
    # the rest of the over-long line is dropped up to its newline; the next line is decoded
    batch = dec.feed(b"still garbage\n3,4\n")
    assert batch.values.tolist() == [[pytest.approx(3e-6), pytest.approx(4e-6)]]


_NO_DIGITS = st.binary(max_size=40).map(lambda b: bytes(c for c in b if not 48 <= c <= 57))


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(garbage=st.lists(_NO_DIGITS, min_size=7, max_size=7),
       cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=8))
def test_text_garbage_between_lines_never_yields_a_wrong_sample(garbage, cuts):
    """Garbage (no digits, so it cannot pass for a sample) before each line, ended by a
    newline: every real line is decoded exactly, in order, and nothing else."""
    data = b"".join(g + b"\n" + encode_text_line(row.tolist(), counter=0)
                    for g, row in zip(garbage, MYO_COUNTS)) + garbage[-1]
    values, _ = split_feed(TextLineDecoder(MYO), data, cuts)
    np.testing.assert_array_equal(values, (MYO_COUNTS * 1e-5).astype(np.float32))


# --- binary frames --------------------------------------------------------------------


def test_crc16_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1


def test_golden_frame_bytes():
    """The wire format is a contract with firmware: pin one frame byte for byte."""
    frame = encode_frame(np.array([[1, -2]]), counter=7, fmt="int16", scale_v_per_unit=1.0)
    # sync a55a, version 1, 2 channels, int16, 1 sample, counter 7, payload 1 and -2, CRC
    assert frame == bytes.fromhex("a55a 01 02 01 01 07000000 0100 feff cb3c")
    dec = BinaryFrameDecoder(BinaryConfig(2, scale_v_per_unit=1e-6))
    batch = dec.feed(frame)
    assert batch.counters.tolist() == [7]
    np.testing.assert_allclose(batch.values, [[1e-6, -2e-6]])


@pytest.mark.parametrize("fmt,scale,tol", [("int16", 1e-6, 0.5e-6), ("int24", 1e-8, 0.5e-8),
                                           ("float32", 1.0, 1e-9)])
def test_binary_round_trip_each_payload_format(fmt, scale, tol):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 3e-4, (10, 16))
    data = b"".join(encode_frame(x[k:k + 2], 100 + k, fmt, scale) for k in range(0, 10, 2))
    dec = BinaryFrameDecoder(BinaryConfig(16, scale_v_per_unit=scale))
    batch = dec.feed(data)
    np.testing.assert_allclose(batch.values, x, atol=tol, rtol=1e-6)
    assert batch.counters.tolist() == list(range(100, 110))
    assert dec.stats.errors == 0 and dec.stats.discarded_bytes == 0


def test_binary_counter_wraps_at_32_bits():
    data = encode_frame(np.zeros((3, 2)), 2**32 - 2, "int16")
    batch = BinaryFrameDecoder(BinaryConfig(2)).feed(data)
    assert batch.counters.tolist() == [2**32 - 2, 2**32 - 1, 0]
    assert batch.counter_modulus == 2**32


def _frames(n: int, channels: int = 4, fmt: str = "int16") -> tuple[list[bytes], np.ndarray]:
    raw = np.arange(n * channels, dtype=np.float64).reshape(n, channels) - 7.0
    return [encode_frame(raw[k:k + 1], k, fmt, 1.0) for k in range(n)], raw


@given(cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=20))
def test_binary_split_across_reads_gives_the_same_samples(cuts):
    frames, raw = _frames(12)
    values, counters = split_feed(BinaryFrameDecoder(BinaryConfig(4, 1.0)), b"".join(frames), cuts)
    np.testing.assert_array_equal(values, raw.astype(np.float32))
    assert counters.tolist() == list(range(12))


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=80)
@given(garbage=st.lists(st.binary(max_size=60) | st.sampled_from(
           [SYNC, SYNC + b"\x01", SYNC + b"\x01\x04\x01\x01", b"\xa5", SYNC * 3]),
           min_size=13, max_size=13),
       cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=10))
def test_binary_resynchronises_after_garbage_without_losing_a_frame(garbage, cuts):
    """Garbage (including fake sync bytes and fake headers) between frames: every real
    frame is recovered, in order, and nothing else is emitted."""
    frames, raw = _frames(12)
    data = b"".join(g + f for g, f in zip(garbage, frames)) + garbage[-1]
    dec = BinaryFrameDecoder(BinaryConfig(4, 1.0))
    values, counters = split_feed(dec, data, cuts)
    assert counters.tolist() == list(range(12))
    np.testing.assert_array_equal(values, raw.astype(np.float32))


def test_binary_corrupted_frame_is_dropped_and_neighbours_kept():
    frames, raw = _frames(5)
    bad = bytearray(frames[2])
    bad[12] ^= 0x40  # flip a payload bit
    dec = BinaryFrameDecoder(BinaryConfig(4, 1.0))
    batch = dec.feed(b"".join([frames[0], frames[1], bytes(bad), frames[3], frames[4]]))
    assert batch.counters.tolist() == [0, 1, 3, 4]
    np.testing.assert_array_equal(batch.values, raw[[0, 1, 3, 4]].astype(np.float32))
    assert dec.stats.crc_errors == 1


def test_binary_wrong_channel_count_and_version_are_header_errors():
    dec = BinaryFrameDecoder(BinaryConfig(4, 1.0))
    other = encode_frame(np.zeros((1, 3)), 0, "int16")  # 3 channels, decoder expects 4
    bad_version = bytearray(_frames(1)[0][0])
    bad_version[2] = 9
    assert len(dec.feed(other + bytes(bad_version))) == 0
    assert dec.stats.header_errors >= 2 and dec.stats.samples == 0


def test_binary_float_nan_payload_is_dropped():
    dec = BinaryFrameDecoder(BinaryConfig(2))
    data = (encode_frame(np.array([[1e-4, np.nan]]), 0, "float32")
            + encode_frame(np.array([[2e-4, 3e-4]]), 1, "float32"))
    batch = dec.feed(data)
    assert batch.counters.tolist() == [1]
    assert dec.stats.nonfinite_values == 1


def test_binary_random_bytes_do_not_crash_or_emit():
    rng = np.random.default_rng(5)
    dec = BinaryFrameDecoder(BinaryConfig(16))
    total = 0
    for _ in range(50):
        total += len(dec.feed(rng.integers(0, 256, 997, dtype=np.uint8).tobytes()))
    assert total == 0
    assert dec.stats.discarded_bytes > 40_000
    assert len(dec._buf) < 16 * 64 * 4 + 12  # never buffers more than one maximal frame


# --- values the float32 stream cannot carry, over-long lines, resent frames -------------


@pytest.mark.parametrize("bad", [b"1e50", b"-1e45", b"3.5e43"])
def test_text_values_beyond_float32_are_nonfinite_and_dropped(bad):
    """Finite as a Python float, inf once scaled and cast to float32: counted, never emitted."""
    dec = TextLineDecoder(MYO)
    good = b"1,2,3,4,5,6,7,8,0\n"
    batch = dec.feed(good + bad + b",2,3,4,5,6,7,8,0\n" + b"1,2," + bad + b",4,5,6,7,8,0\n" + good)
    assert np.isfinite(batch.values).all() and len(batch) == 2
    assert dec.stats.nonfinite_values == 2 and dec.stats.samples == 2


def test_binary_values_whose_volts_overflow_float32_are_dropped():
    """An integer payload times a huge scale is inf in float32: the frame is dropped."""
    dec = BinaryFrameDecoder(BinaryConfig(2, scale_v_per_unit=1e36))
    data = (encode_frame(np.array([[1, 32767]]), 0, "int16", 1.0)
            + encode_frame(np.array([[1, -2]]), 1, "int16", 1.0))
    batch = dec.feed(data)
    assert batch.counters.tolist() == [1] and np.isfinite(batch.values).all()
    assert dec.stats.nonfinite_values == 1


def test_text_overlong_line_in_one_read_is_dropped():
    """A 6 kB line arriving whole, newline included, is over the 4096-byte limit."""
    dec = TextLineDecoder(MYO)
    long_line = b",".join([b"1"] * 3000) + b"\n"
    assert len(long_line) == 6000
    batch = dec.feed(b"1,2,3,4,5,6,7,8,0\n" + long_line + b"2,2,3,4,5,6,7,8,0\n")
    assert batch.values[:, 0].tolist() == [pytest.approx(1e-5), pytest.approx(2e-5)]
    assert dec.stats.overlong_lines == 1 and dec.stats.column_errors == 0
    assert dec.stats.discarded_bytes == len(long_line) - 1
