"""Property-based fuzzing of the serial input path: text-line decoder, binary-frame decoder,
and the whole pipeline bytes -> decoder -> stream index -> chunks (SerialSource).

Properties, for any bytes split across reads in any way, and any valid configuration:

* nothing raises out of a decoder or the source;
* nothing non-finite or out of range is emitted: values are finite float32 volts, counters
  within their range, chunks consecutive with strictly increasing indices and stamps;
* every input sample is published once or counted: good samples come out exactly, once, in
  order; each bad line or frame is counted under its reason; resent samples are counted as
  duplicates; missing ones as dropped samples; the counters add up.

Budget: the hypothesis profile (``make test``: the default 100 examples per property;
``make fuzz``: ``HYPOTHESIS_PROFILE=fuzz``, see the Makefile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emg_driver.protocols import (
    COUNTER_MODULUS,
    MAX_SAMPLES_PER_FRAME,
    SYNC,
    BinaryConfig,
    BinaryFrameDecoder,
    TextConfig,
    TextLineDecoder,
    encode_frame,
    to_volts,
)
from emg_driver.sources import SerialConfig, SerialSource

pytestmark = pytest.mark.fuzz

FLOAT32_MAX = float(np.finfo(np.float32).max)
_cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12)
_scale = st.one_of(st.sampled_from([1e-6, 1e-5, 2.44e-5, 1.0, 1e30, 1e36]),
                   st.floats(1e-12, 1e38))


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at ``cuts`` (any positions): what successive serial reads return."""
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def check_batch(batch, channels: int, modulus: int = 0) -> None:
    """What any decoded batch must be: finite float32 volts (n, C), counters in range."""
    values = batch.values
    assert values.dtype == np.float32 and values.ndim == 2 and values.shape[1] == channels
    assert np.all(np.isfinite(values))
    if batch.counters is not None:
        assert batch.counters.shape == (len(values),) and batch.counters.dtype == np.int64
        assert np.all(batch.counters >= 0)
        if modulus:
            assert np.all(batch.counters < modulus)
    if batch.device_times_s is not None:
        assert np.all(np.isfinite(batch.device_times_s))


# --- text lines -------------------------------------------------------------------------

@st.composite
def text_configs(draw) -> TextConfig:
    channels = draw(st.integers(1, 8))
    counter = draw(st.sampled_from([-1, channels]))
    stamp = draw(st.sampled_from([-1, channels + 1]))
    return TextConfig(num_channels=channels, counter_column=counter, timestamp_column=stamp,
                      num_columns=draw(st.sampled_from([0, channels + 2])),
                      counter_modulus=draw(st.sampled_from([0, 256, 1 << 16])),
                      scale_v_per_unit=draw(_scale),
                      offset_units=draw(st.sampled_from([0.0, 512.0, -1e30])),
                      timestamp_scale_s=draw(st.sampled_from([1e-3, 1.0, 1e300])))


_FIELD = st.one_of(st.integers(-40000, 40000).map(str), st.sampled_from(
    ["1e50", "-1e45", "nan", "inf", "-inf", "1e999", "x", "", "1.5", "9" * 30, "-3", "0x10",
     "1e3", "٣"]))
_LINE = st.one_of(
    st.lists(_FIELD, max_size=12).map(lambda f: ",".join(f).encode()),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"#banner", b"", b"\r", b"1" * 5000, b",".join([b"1"] * 2100)]))


@settings(deadline=None)
@given(cfg=text_configs(), lines=st.lists(_LINE, max_size=30), tail=st.binary(max_size=20),
       cuts=_cuts)
def test_text_decoder_never_raises_or_emits_a_bad_value(cfg, lines, tail, cuts):
    dec = TextLineDecoder(cfg)
    data = b"\n".join(lines) + b"\n" + tail
    emitted = 0
    for piece in pieces(data, cuts):
        batch = dec.feed(piece)
        check_batch(batch, cfg.num_channels)
        emitted += len(batch)
    s = dec.stats
    assert s.samples == emitted and s.bytes_in == len(data)
    # one line, one outcome: every complete line is a sample, skipped or counted once
    counted = s.parse_errors + s.column_errors + s.nonfinite_values + s.overlong_lines
    assert emitted + counted <= len(lines) + 1  # + 1: a tail longer than the limit
    assert len(dec._buf) <= cfg.max_line_bytes  # bounded memory


# one sample per line: (kind, line); kind says which counter a bad line must land in
_GOOD = st.lists(st.integers(-32768, 32767), min_size=4, max_size=4)
_BAD_LINES = {
    "column_errors": st.sampled_from([b"1,2,3", b"1,2,3,4,5,6", b"1,2,3,4,5,6,7"]),
    "parse_errors": st.sampled_from([b"1,2,x,4,7", b"1,2,3,4,-1", b"1,2,3,4,1.5",
                                     b"a,b,c,d,1"]),
    "nonfinite_values": st.sampled_from([b"1e50,2,3,4,7", b"1,nan,3,4,7", b"1,2,inf,4,7",
                                         b"-1e45,0,0,0,7", b"1e999,0,0,0,7"]),
    "overlong_lines": st.sampled_from([b"1" * 4097, b",".join([b"1"] * 3000)]),
    "skipped": st.sampled_from([b"# firmware 1.2", b"", b"  ", b"\r"]),
}
_TEXT_ITEM = st.one_of(
    st.tuples(st.just("good"), _GOOD),
    *[st.tuples(st.just(kind), line) for kind, line in _BAD_LINES.items()])


@settings(deadline=None)
@given(items=st.lists(_TEXT_ITEM, max_size=40), cuts=_cuts,
       scale=st.sampled_from([1e-5, 1e-6, 1.0]), crlf=st.booleans())
def test_text_every_line_is_a_sample_or_counted_under_its_reason(items, cuts, scale, crlf):
    """4 channels + a counter column, exactly 5 fields: good lines come out exactly, in
    order; each bad line lands in its own counter, once."""
    cfg = TextConfig(num_channels=4, num_columns=5, counter_column=4, scale_v_per_unit=scale)
    end = b"\r\n" if crlf else b"\n"
    data = b"".join((b",".join(str(v).encode() for v in payload) + b",7" if kind == "good"
                     else payload) + end for kind, payload in items)
    dec = TextLineDecoder(cfg)
    values = [b.values for b in map(dec.feed, pieces(data, cuts))]
    good = np.array([p for kind, p in items if kind == "good"], dtype=np.float64).reshape(-1, 4)
    np.testing.assert_array_equal(np.concatenate(values), to_volts(good, 0.0, scale))
    s = dec.stats.as_dict()
    for kind in _BAD_LINES:
        if kind != "skipped":
            assert s[kind] == sum(k == kind for k, _ in items), kind
    assert s["header_errors"] == s["crc_errors"] == 0


# --- binary frames --------------------------------------------------------------------------

_FORMATS = ("int16", "int24", "float32")
_FAKE = st.sampled_from([SYNC, SYNC + b"\x01", SYNC + b"\x01\x09\x01\x01", b"\xa5", SYNC * 3,
                         SYNC + b"\x02\x04\x01\x01\x00\x00\x00\x00", b"\x5a\xa5"])


@settings(deadline=None)
@given(channels=st.integers(1, 16), scale=_scale, data=st.lists(
    st.binary(max_size=200) | _FAKE, max_size=20), cuts=_cuts)
def test_binary_decoder_never_raises_or_emits_a_bad_value(channels, scale, data, cuts):
    dec = BinaryFrameDecoder(BinaryConfig(channels, scale_v_per_unit=scale))
    raw = b"".join(data)
    emitted = 0
    for piece in pieces(raw, cuts):
        batch = dec.feed(piece)
        check_batch(batch, channels, COUNTER_MODULUS)
        emitted += len(batch)
    assert dec.stats.samples == emitted and dec.stats.bytes_in == len(raw)
    # never more buffered than one maximal frame
    assert len(dec._buf) < 10 + MAX_SAMPLES_PER_FRAME * 255 * 4 + 2


_SAMPLE = st.one_of(st.floats(-0.125, 0.125, width=32), st.sampled_from(
    [np.nan, np.inf, -np.inf, 3e38, -3e38, 0.0]))


@dataclass
class Frame:
    """One frame as sent, and what it must decode to."""

    data: bytes
    counter: int
    volts: np.ndarray  # (S, C) float32 the decoder must emit, if finite
    finite: bool  # every value is a finite float32 after scaling
    garbage: bytes = b""  # sent before the frame (never a valid frame)
    corrupt: bool = False  # one bit flipped in its payload or CRC: dropped


@st.composite
def frame_streams(draw, channels: int, scale: float) -> list[Frame]:
    """Frames of any format and size with consecutive counters (from any start, so the
    uint32 counter wraps), some with gaps before them, some resent byte for byte, some
    corrupted, NaN/inf or overflowing, garbage between them."""
    counter = draw(st.integers(0, COUNTER_MODULUS - 1))
    frames: list[Frame] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["frame"] * 6 + ["gap", "resend", "corrupt"]))
        garbage = draw(st.one_of(st.just(b""), st.binary(max_size=30), _FAKE))
        if garbage.startswith(SYNC[1:]) and frames:
            garbage = b"\x00" + garbage  # "..a5" + "5a": a fake sync across the boundary
        if kind == "resend" and frames:
            frames.append(Frame(**{**frames[-1].__dict__, "garbage": garbage}))
            continue
        if kind == "gap":
            # at most 12 x (60 + 6) missing in a row: below max_gap (1000), never a restart
            counter = (counter + draw(st.integers(1, 60))) % COUNTER_MODULUS
        fmt = draw(st.sampled_from(_FORMATS))
        s = draw(st.integers(1, 6))
        if fmt == "float32":
            x = np.array(draw(st.lists(_SAMPLE, min_size=s * channels,
                                       max_size=s * channels)), dtype=np.float32)
            x = x.reshape(s, channels)
            data, volts = encode_frame(x, counter, fmt), x
        else:
            lim = 32767 if fmt == "int16" else (1 << 23) - 1
            raw = np.array(draw(st.lists(st.integers(-lim - 1, lim), min_size=s * channels,
                                         max_size=s * channels)), dtype=np.float64)
            raw = raw.reshape(s, channels)
            data, volts = encode_frame(raw, counter, fmt, 1.0), to_volts(raw, 0.0, scale)
        corrupt = kind == "corrupt"
        if corrupt:  # a single bit: CRC-16 detects every single-bit error
            bit = draw(st.integers(80, len(data) * 8 - 1))  # payload or CRC, not the header
            data = bytearray(data)
            data[bit // 8] ^= 1 << (bit % 8)
            data = bytes(data)
        frames.append(Frame(data, counter, volts, bool(np.isfinite(volts).all()), garbage,
                            corrupt))
        counter = (counter + s) % COUNTER_MODULUS
    return frames


@settings(deadline=None)
@given(data=st.data(), channels=st.integers(1, 8), scale=_scale, cuts=_cuts)
def test_binary_every_frame_is_emitted_once_or_counted(data, channels, scale, cuts):
    """Good frames come out exactly, in order (a resent one again: the decoder does not
    know counters; the stream index drops it, below); non-finite ones are counted; every
    byte that is not a frame is discarded and counted."""
    frames = data.draw(frame_streams(channels, scale))
    stream = b"".join(f.garbage + f.data for f in frames)
    dec = BinaryFrameDecoder(BinaryConfig(channels, scale_v_per_unit=scale))
    batches = [dec.feed(piece) for piece in pieces(stream, cuts)]
    for batch in batches:
        check_batch(batch, channels, COUNTER_MODULUS)
    good = [f for f in frames if f.finite and not f.corrupt]
    values = np.concatenate([b.values for b in batches])
    expected = np.concatenate([f.volts for f in good]).reshape(-1, channels) if good \
        else np.zeros((0, channels), np.float32)
    np.testing.assert_array_equal(values, expected)
    counters = np.concatenate([b.counters for b in batches if b.counters is not None] or [[]])
    assert counters.tolist() == [(f.counter + k) % COUNTER_MODULUS
                                 for f in good for k in range(len(f.volts))]
    s = dec.stats
    assert s.nonfinite_values == sum(not f.finite and not f.corrupt for f in frames)
    assert s.crc_errors >= sum(f.corrupt for f in frames)
    not_frames = sum(len(f.garbage) + (len(f.data) if f.corrupt else 0) for f in frames)
    assert s.discarded_bytes + len(dec._buf) == not_frames


# --- the whole serial pipeline ----------------------------------------------------------------

RATE_HZ = 100.0


def run_source(cfg: SerialConfig, reads: list[bytes]) -> tuple[SerialSource, list]:
    """Feed ``reads`` to a SerialSource (no port: the reader thread never starts), 10 ms
    apart, then a silence that flushes the held partial chunk."""
    chunks: list = []
    src = SerialSource(cfg, clock=lambda: 0.0, on_chunks=chunks.extend)
    src.start(0)
    t = 100.0
    for piece in reads:
        t += 0.01
        src._on_data(piece, t)
    src._on_idle(t + 10.0)
    return src, chunks


def check_chunks(chunks, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the published chunks, checked: consecutive inside a chunk,
    strictly increasing indices and stamps across chunks, finite float32."""
    assert all(a.end_index <= b.first_index for a, b in zip(chunks, chunks[1:]))
    assert all(a.stamp_ns < b.stamp_ns for a, b in zip(chunks, chunks[1:]))
    for c in chunks:
        assert c.data.dtype == np.float32 and c.data.shape[1] == channels
        assert c.num_samples >= 1 and np.all(np.isfinite(c.data))
    if not chunks:
        return np.zeros(0, np.int64), np.zeros((0, channels), np.float32)
    idx = np.concatenate([np.arange(c.first_index, c.end_index) for c in chunks])
    return idx, np.concatenate([c.data for c in chunks])


_TEXT_BYTES = st.lists(_LINE, max_size=30).map(lambda lines: b"\n".join(lines) + b"\n")


@settings(deadline=None)
@given(data=st.data(), protocol=st.sampled_from(["text", "binary"]), chunk_len=st.integers(1, 7),
       cuts=_cuts)
def test_serial_source_survives_any_bytes(data, protocol, chunk_len, cuts):
    """Any bytes, any text configuration (counter and timestamp columns, wrapping counters,
    huge scales): chunks are consecutive, increasing, finite."""
    text = data.draw(text_configs())
    channels = text.num_channels
    raw = data.draw(st.one_of(st.binary(max_size=600), _TEXT_BYTES)
                    if protocol == "text" else st.binary(max_size=600))
    cfg = SerialConfig(port="/dev/null_emg", protocol=protocol, sample_rate_hz=RATE_HZ,
                       chunk_len=chunk_len, text=text,
                       binary=BinaryConfig(num_channels=channels))
    src, chunks = run_source(cfg, pieces(raw, cuts))
    idx, _ = check_chunks(chunks, channels)
    assert src.status()["samples"] >= len(idx)


@settings(deadline=None)
@given(data=st.data(), channels=st.integers(1, 4), chunk_len=st.integers(1, 7), cuts=_cuts)
def test_serial_source_publishes_every_good_sample_once_and_counts_the_rest(
        data, channels, chunk_len, cuts):
    """Binary frames with gaps, resends, corruption, NaN and garbage: each good sample is
    published exactly once, at stream index = its counter's distance from the first; every
    other counter in that span is counted as dropped; resent samples as duplicates."""
    frames = data.draw(frame_streams(channels, 1e-6))
    cfg = SerialConfig(port="/dev/null_emg", protocol="binary", sample_rate_hz=RATE_HZ,
                       chunk_len=chunk_len, binary=BinaryConfig(channels, 1e-6))
    src, chunks = run_source(cfg, pieces(b"".join(f.garbage + f.data for f in frames), cuts))
    idx, values = check_chunks(chunks, channels)
    expected: dict[int, np.ndarray] = {}  # unwrapped counter -> volts, first sending only
    duplicates = 0
    base = None
    for f in frames:
        if f.corrupt or not f.finite:
            continue
        for k in range(len(f.volts)):
            c = f.counter + k
            if base is None:
                base = c
            c = base + (c - base) % COUNTER_MODULUS  # unwrap against the first counter
            if c in expected:
                duplicates += 1
            else:
                expected[c] = f.volts[k]
    order = sorted(expected)
    assert idx.tolist() == [c - order[0] for c in order] if order else len(idx) == 0
    if order:
        np.testing.assert_array_equal(values, np.stack([expected[c] for c in order]))
    status = src.status()
    assert status["duplicate_samples"] == duplicates and status["counter_resets"] == 0
    span = order[-1] - order[0] + 1 if order else 0
    assert status["dropped_samples"] == span - len(order)  # published + dropped = span
    assert len(idx) + status["dropped_samples"] == span
