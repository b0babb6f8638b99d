"""Wire protocols of serial armbands: incremental decoders, pure Python + numpy (no rclpy).

A decoder is fed the bytes of each serial read, in whatever pieces the transport delivers
them, and returns the complete samples found so far as a :class:`DecodedBatch`. Bytes that
cannot be decoded are dropped and counted in :class:`DecoderStats`; a good sample is never
altered or merged with a bad one.

Two protocols (the package README documents both for firmware writers):

* :class:`TextLineDecoder`: one sample per line, numbers separated by commas, spaces, tabs or
  semicolons, as Arduino/MyoWare sketches and Myo loggers print them (``c1,...,c8,label``).
* :class:`BinaryFrameDecoder`: compact frames for high-rate armbands::

      offset  size  field
      0       2     sync 0xA5 0x5A
      2       1     version = 1
      3       1     channel count C (1..255)
      4       1     payload format: 1 = int16, 2 = int24, 3 = float32 (volts)
      5       1     samples in this frame S (1..64)
      6       4     sample counter of the frame's first sample, uint32, +1 per sample, wraps
      10      S*C*w payload, sample-major (s0c0 s0c1 .. s1c0 ..), little-endian, w = 2/3/4
      10+S*C*w 2    CRC-16/CCITT-FALSE of bytes 2 .. 10+S*C*w-1 (all but sync), little-endian

  CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final xor
  (check value 0x29B1 for b"123456789"); :func:`crc16` computes it.
"""

from __future__ import annotations

import binascii
import math
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from .stream import ImuReading

# --- common ---------------------------------------------------------------------------


@dataclass
class DecoderStats:
    """What a decoder has seen since it was created (or last reset)."""

    bytes_in: int = 0
    samples: int = 0
    parse_errors: int = 0  # text: lines with a field that is not a number
    column_errors: int = 0  # text: lines with the wrong number of fields
    # lines (text) or frames (binary) dropped because a value was NaN/inf or its volts are
    # not a finite float32 (e.g. 1e50 in a text line, a huge scale times an int payload)
    nonfinite_values: int = 0
    overlong_lines: int = 0  # text: lines longer than the limit (bounded memory)
    crc_errors: int = 0  # binary: frames whose CRC did not match
    header_errors: int = 0  # binary: sync found but version/channels/format/size not valid
    discarded_bytes: int = 0  # bytes thrown away while resynchronising / in bad lines

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def errors(self) -> int:
        """All counted errors (bad lines or frames), not counting discarded bytes."""
        return (self.parse_errors + self.column_errors + self.nonfinite_values
                + self.overlong_lines + self.crc_errors + self.header_errors)


@dataclass
class DecodedBatch:
    """Samples decoded from some bytes.

    values: (n, channels) float32 [V]. counters: (n,) int64 raw device counter of each sample
    (not unwrapped), or None when the protocol carries none. device_times_s: (n,) float64
    device timestamps [s], or None. imu: IMU readings that came with these bytes.
    """

    values: np.ndarray
    counters: np.ndarray | None = None
    device_times_s: np.ndarray | None = None
    counter_modulus: int = 0  # counters wrap at this value (0 = they do not wrap)
    imu: list[ImuReading] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.values.shape[0])


def empty_batch(num_channels: int) -> DecodedBatch:
    return DecodedBatch(np.zeros((0, num_channels), dtype=np.float32))


class Decoder(Protocol):
    stats: DecoderStats
    num_channels: int

    def feed(self, data: bytes) -> DecodedBatch: ...

    def reset(self) -> None: ...


Write = Callable[[bytes], bool]  # send bytes to the device; False when the port is closed


class SerialDevice:
    """A device behind a serial port, as the serial source sees it: a decoder of its bytes
    and, for devices that must be talked to (OpenBCI Cyton, the Myo's BLED112 dongle), the
    commands to send. Pure: every hook gets ``write`` and the time; nothing here does I/O.

    ``feed(data, now_s)`` decodes what arrived. The source calls ``connected`` after every
    (re)open of the port, ``set_streaming`` at activate / deactivate, ``tick`` after every
    read and when the port is idle (timeouts, retries), ``closing`` before the port closes
    (a clean disconnect) and ``follow_prompt`` for guided-calibration prompts (with
    ``follows_prompts``). A device whose link drops while the port stays open (the Myo's
    radio) sets ``link_lost``; the source then treats the time until samples return as a
    gap, as after an unplug.
    """

    kind = "serial"
    has_imu = False
    follows_prompts = False
    num_channels: int
    sample_rate_hz: float
    stats: DecoderStats
    link_lost = False

    def feed(self, data: bytes, now_s: float) -> DecodedBatch:
        raise NotImplementedError

    def reset(self) -> None:
        """The port was lost: forget partial input."""

    def connected(self, write: Write, now_s: float) -> None:
        """The port is (again) open."""

    def set_streaming(self, on: bool, write: Write) -> None:
        """Start / stop the device's stream (activate / deactivate)."""

    def tick(self, now_s: float, write: Write) -> None:
        """Time passes: timeouts and retries."""

    def closing(self, write: Write) -> None:
        """The port is about to close (cleanup, shutdown): leave the device clean."""

    def follow_prompt(self, pose: str, write: Write) -> None:
        """A guided-calibration prompt (``pose``; "" = done)."""

    def status(self) -> dict[str, Any]:
        """Device-specific key/values for /diagnostics."""
        return {}

    def health(self) -> tuple[str, str] | None:
        """("error" | "warn" | "ok", message) about the device, or None."""
        return None

    def describe(self) -> str:
        return ""


class DecoderDevice(SerialDevice):
    """A device that only streams (text lines, binary frames): its decoder is all there is."""

    def __init__(self, decoder: Decoder, sample_rate_hz: float) -> None:
        self.decoder = decoder
        self.num_channels = decoder.num_channels
        self.sample_rate_hz = float(sample_rate_hz)
        self.stats = decoder.stats

    def feed(self, data: bytes, now_s: float) -> DecodedBatch:
        return self.decoder.feed(data)

    def reset(self) -> None:
        self.decoder.reset()


# --- text lines -----------------------------------------------------------------------


@dataclass(frozen=True)
class TextConfig:
    """How to read one sample per text line.

    Column indices are 0-based fields of the line. ``channel_columns`` empty = the first
    ``num_channels`` fields that are not the counter or timestamp column. ``num_columns``
    > 0 demands exactly that many fields (a robust check against merged or truncated lines);
    0 accepts any line with enough fields. Volts = (raw - offset_units) * scale_v_per_unit.
    """

    num_channels: int = 8
    channel_columns: tuple[int, ...] = ()
    num_columns: int = 0
    counter_column: int = -1
    counter_modulus: int = 0
    timestamp_column: int = -1
    timestamp_scale_s: float = 1.0e-3
    scale_v_per_unit: float = 1.0e-6
    offset_units: float = 0.0
    max_line_bytes: int = 4096

    def resolved_channel_columns(self) -> tuple[int, ...]:
        if self.channel_columns:
            return tuple(int(c) for c in self.channel_columns)
        skip = {self.counter_column, self.timestamp_column}
        cols: list[int] = []
        col = 0
        while len(cols) < self.num_channels:
            if col not in skip:
                cols.append(col)
            col += 1
        return tuple(cols)

    def validate(self) -> None:
        """Raise ValueError with a clear message when the configuration cannot work."""
        if not 1 <= self.num_channels <= 256:
            raise ValueError(f"num_channels must be 1..256, got {self.num_channels}")
        cols = self.resolved_channel_columns()
        if len(cols) != self.num_channels:
            raise ValueError(f"text_channel_columns lists {len(cols)} columns but num_channels "
                             f"is {self.num_channels}")
        if any(c < 0 for c in cols) or len(set(cols)) != len(cols):
            raise ValueError(f"text_channel_columns must be distinct indices >= 0, got {cols}")
        special = [c for c in (self.counter_column, self.timestamp_column) if c >= 0]
        if set(special) & set(cols):
            raise ValueError("the counter/timestamp column is also listed as a channel column")
        if self.counter_column >= 0 and self.counter_column == self.timestamp_column:
            raise ValueError("counter and timestamp columns must differ")
        needed = max([*cols, *special]) + 1
        if self.num_columns and self.num_columns < needed:
            raise ValueError(f"text_num_columns={self.num_columns} but column {needed - 1} is used")
        if not (math.isfinite(self.scale_v_per_unit) and self.scale_v_per_unit > 0):
            raise ValueError(
                f"scale_v_per_unit must be finite and > 0, got {self.scale_v_per_unit}")
        if not math.isfinite(self.offset_units):
            raise ValueError("offset_units must be finite")
        if self.counter_modulus < 0:
            raise ValueError("counter modulus must be >= 0")
        if not (math.isfinite(self.timestamp_scale_s) and self.timestamp_scale_s > 0):
            raise ValueError("timestamp scale must be finite and > 0")


_SEPARATORS = re.compile(rb"[,;\s]+")
_MAX_COUNTER = (1 << 62) - 1  # larger text counters are not counters (int64 headroom)


def to_volts(raw: np.ndarray, offset_units: float, scale_v_per_unit: float) -> np.ndarray:
    """(raw - offset) x scale as float32 [V]; values beyond float32's range become inf
    (no warning): :func:`finite_rows` then finds them."""
    with np.errstate(over="ignore", invalid="ignore"):
        return ((np.asarray(raw, dtype=np.float64) - offset_units)
                * scale_v_per_unit).astype(np.float32)


def finite_rows(values: np.ndarray) -> np.ndarray:
    """(n,) bool: rows of ``values`` (n, ...) whose every value is finite."""
    return np.isfinite(values.reshape(len(values), -1)).all(axis=1)


class TextLineDecoder:
    """Incremental decoder of one-sample-per-line text (``\\n`` or ``\\r\\n`` endings).

    Lines may arrive split across reads; an incomplete last line waits for the next feed.
    Empty lines and lines starting with ``#`` are skipped silently (firmware banners often
    use them); any other line that is not a valid sample is counted and dropped whole.
    """

    def __init__(self, config: TextConfig) -> None:
        config.validate()
        self.config = config
        self.num_channels = config.num_channels
        self._cols = config.resolved_channel_columns()
        self._needed = max([*self._cols, config.counter_column, config.timestamp_column]) + 1
        self._buf = b""
        self._skipping = False  # inside an over-long line: drop until the next newline
        self.stats = DecoderStats()

    def reset(self) -> None:
        self._buf = b""
        self._skipping = False

    def feed(self, data: bytes) -> DecodedBatch:
        cfg = self.config
        self.stats.bytes_in += len(data)
        buf = self._buf + bytes(data)
        lines = buf.split(b"\n")
        self._buf = lines.pop()  # incomplete tail (b"" when data ended with a newline)
        if self._skipping and lines:
            self.stats.discarded_bytes += len(lines[0]) + 1
            lines = lines[1:]
            self._skipping = False
        if len(self._buf) > cfg.max_line_bytes:
            self.stats.overlong_lines += 1
            self.stats.discarded_bytes += len(self._buf)
            self._buf = b""
            self._skipping = True
        elif self._skipping:
            self.stats.discarded_bytes += len(self._buf)
            self._buf = b""
        rows: list[list[float]] = []
        counters: list[int] = []
        times: list[float] = []
        sizes: list[int] = []  # bytes of each kept line (discarded if its volts overflow)
        cols = self._cols
        n_cols = cfg.num_columns
        c_col, t_col = cfg.counter_column, cfg.timestamp_column
        for line in lines:
            if len(line) > cfg.max_line_bytes:  # a whole over-long line in one read
                self.stats.overlong_lines += 1
                self.stats.discarded_bytes += len(line)
                continue
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            parts = _SEPARATORS.split(line)
            if (n_cols and len(parts) != n_cols) or len(parts) < self._needed:
                self.stats.column_errors += 1
                self.stats.discarded_bytes += len(line)
                continue
            try:
                row = [float(parts[c]) for c in cols]
                counter = int(parts[c_col]) if c_col >= 0 else 0
                stamp = float(parts[t_col]) * cfg.timestamp_scale_s if t_col >= 0 else 0.0
                if not 0 <= counter <= _MAX_COUNTER:
                    raise ValueError("counter out of range")
            except ValueError:
                self.stats.parse_errors += 1
                self.stats.discarded_bytes += len(line)
                continue
            if not all(map(math.isfinite, row)) or not math.isfinite(stamp):
                self.stats.nonfinite_values += 1
                self.stats.discarded_bytes += len(line)
                continue
            rows.append(row)
            sizes.append(len(line))
            if c_col >= 0:
                counters.append(counter)
            if t_col >= 0:
                times.append(stamp)
        if not rows:
            return empty_batch(self.num_channels)
        values = to_volts(np.asarray(rows, dtype=np.float64), cfg.offset_units,
                          cfg.scale_v_per_unit)
        ok = finite_rows(values)
        counter_arr = np.asarray(counters, dtype=np.int64) if c_col >= 0 else None
        time_arr = np.asarray(times, dtype=np.float64) if t_col >= 0 else None
        if not ok.all():
            self.stats.nonfinite_values += int((~ok).sum())
            self.stats.discarded_bytes += int(np.asarray(sizes)[~ok].sum())
            values = values[ok]
            counter_arr = None if counter_arr is None else counter_arr[ok]
            time_arr = None if time_arr is None else time_arr[ok]
            if len(values) == 0:
                return empty_batch(self.num_channels)
        self.stats.samples += len(values)
        return DecodedBatch(values, counter_arr, time_arr, counter_modulus=cfg.counter_modulus)


def encode_text_line(values: Sequence[float], counter: int | None = None,
                     fmt: str = "{:g}") -> bytes:
    """One text-protocol line: ``v1,v2,...[,counter]\\n`` (for tests, tools and firmware)."""
    parts = [fmt.format(v) for v in values]
    if counter is not None:
        parts.append(str(int(counter)))
    return (",".join(parts) + "\n").encode("ascii")


# --- binary frames --------------------------------------------------------------------

SYNC = b"\xa5\x5a"
VERSION = 1
HEADER_SIZE = 10
CRC_SIZE = 2
MAX_SAMPLES_PER_FRAME = 64
COUNTER_MODULUS = 1 << 32

FORMAT_INT16 = 1
FORMAT_INT24 = 2
FORMAT_FLOAT32 = 3
FORMAT_CODES = {"int16": FORMAT_INT16, "int24": FORMAT_INT24, "float32": FORMAT_FLOAT32}
FORMAT_WIDTH = {FORMAT_INT16: 2, FORMAT_INT24: 3, FORMAT_FLOAT32: 4}

_HEADER = struct.Struct("<2sBBBBI")
_CRC = struct.Struct("<H")


def crc16(data: bytes, value: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): the frame checksum."""
    return binascii.crc_hqx(data, value)


@dataclass(frozen=True)
class BinaryConfig:
    """Binary frame decoding. Integer payloads: volts = (raw - offset_units) * scale;
    float32 payloads are volts already."""

    num_channels: int = 16
    scale_v_per_unit: float = 1.0e-6
    offset_units: float = 0.0

    def validate(self) -> None:
        if not 1 <= self.num_channels <= 255:
            raise ValueError(f"binary frames carry 1..255 channels, got {self.num_channels}")
        if not (math.isfinite(self.scale_v_per_unit) and self.scale_v_per_unit > 0):
            raise ValueError(
                f"scale_v_per_unit must be finite and > 0, got {self.scale_v_per_unit}")
        if not math.isfinite(self.offset_units):
            raise ValueError("offset_units must be finite")


def encode_frame(samples: np.ndarray, counter: int, fmt: str | int = "int16",
                 scale_v_per_unit: float = 1.0, offset_units: float = 0.0) -> bytes:
    """One binary frame of ``samples`` (S, C).

    For int formats ``samples`` are volts and are quantised as round(v / scale + offset),
    clipped to the format's range; with ``scale_v_per_unit=1`` and raw integer input they are
    written unchanged. float32 frames carry the values as given (volts).
    """
    code = FORMAT_CODES[fmt] if isinstance(fmt, str) else int(fmt)
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    s, c = samples.shape
    if not 1 <= s <= MAX_SAMPLES_PER_FRAME or not 1 <= c <= 255:
        raise ValueError(f"a frame holds 1..{MAX_SAMPLES_PER_FRAME} samples of 1..255 channels")
    if code == FORMAT_FLOAT32:
        payload = samples.astype("<f4").tobytes()
    else:
        raw = np.rint(samples / scale_v_per_unit + offset_units)
        if code == FORMAT_INT16:
            payload = np.clip(raw, -32768, 32767).astype("<i2").tobytes()
        elif code == FORMAT_INT24:
            raw = np.clip(raw, -(1 << 23), (1 << 23) - 1).astype("<i4")
            payload = raw.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        else:
            raise ValueError(f"unknown payload format {fmt!r}")
    body = struct.pack("<BBBBI", VERSION, c, code, s, counter % COUNTER_MODULUS) + payload
    return SYNC + body + struct.pack("<H", crc16(body))


def _decode_payload(payload: bytes, code: int, s: int, c: int) -> np.ndarray:
    if code == FORMAT_INT16:
        return np.frombuffer(payload, dtype="<i2").reshape(s, c).astype(np.float64)
    if code == FORMAT_INT24:
        b = np.frombuffer(payload, dtype=np.uint8).reshape(s * c, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v & 0x800000, v - (1 << 24), v)
        return v.reshape(s, c).astype(np.float64)
    return np.frombuffer(payload, dtype="<f4").reshape(s, c).astype(np.float64)


class BinaryFrameDecoder:
    """Incremental decoder of the binary frames above; resynchronises after corruption.

    The decoder searches for the sync bytes, checks the header (version 1, the configured
    channel count, a known format, 1..64 samples) and the CRC. On any failure it drops one
    byte and searches again, so a real frame that follows garbage is never skipped. Frames
    whose float32 payload holds NaN/inf are dropped and counted.
    """

    def __init__(self, config: BinaryConfig) -> None:
        config.validate()
        self.config = config
        self.num_channels = config.num_channels
        self._buf = bytearray()
        self.stats = DecoderStats()

    def reset(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> DecodedBatch:
        self.stats.bytes_in += len(data)
        buf = self._buf
        buf += data
        c_expected = self.config.num_channels
        # valid frames found, decoded together afterwards: (format, samples, counter, payload)
        found: list[tuple[int, int, int, bytes]] = []
        pos = 0
        n = len(buf)
        view = memoryview(buf)
        try:
            while True:
                start = buf.find(SYNC, pos)
                if start < 0:
                    # keep a trailing 0xA5: it may be the first half of a split sync
                    keep = n - 1 if n > pos and buf[-1] == SYNC[0] else n
                    self.stats.discarded_bytes += keep - pos
                    pos = keep
                    break
                self.stats.discarded_bytes += start - pos
                pos = start
                if n - pos < HEADER_SIZE:
                    break
                _, version, c, code, s, counter = _HEADER.unpack_from(buf, pos)
                if (version != VERSION or c != c_expected or code not in FORMAT_WIDTH
                        or not 1 <= s <= MAX_SAMPLES_PER_FRAME):
                    self.stats.header_errors += 1
                    self.stats.discarded_bytes += 1
                    pos += 1
                    continue
                end = pos + HEADER_SIZE + s * c * FORMAT_WIDTH[code] + CRC_SIZE
                if n < end:
                    break
                (crc,) = _CRC.unpack_from(buf, end - CRC_SIZE)
                if crc16(view[pos + 2:end - CRC_SIZE]) != crc:
                    self.stats.crc_errors += 1
                    self.stats.discarded_bytes += 1
                    pos += 1
                    continue
                found.append((code, s, counter, bytes(view[pos + HEADER_SIZE:end - CRC_SIZE])))
                pos = end
        finally:
            view.release()
        del buf[:pos]
        if not found:
            return empty_batch(self.num_channels)
        values, counters = self._decode(found, c_expected)
        if len(values) == 0:
            return empty_batch(self.num_channels)
        self.stats.samples += len(values)
        return DecodedBatch(values, counters, None, counter_modulus=COUNTER_MODULUS)

    def _decode(self, found: list[tuple[int, int, int, bytes]],
                c: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode runs of frames with the same format and size in one numpy call each."""
        out_v: list[np.ndarray] = []
        out_c: list[np.ndarray] = []
        k = 0
        while k < len(found):
            code, s = found[k][0], found[k][1]
            j = k
            while j < len(found) and found[j][0] == code and found[j][1] == s:
                j += 1
            run = found[k:j]
            values = _decode_payload(b"".join(f[3] for f in run), code, s * len(run), c)
            if code == FORMAT_FLOAT32:  # volts already
                values = values.astype(np.float32)
            else:
                values = to_volts(values, self.config.offset_units, self.config.scale_v_per_unit)
            values = values.reshape(len(run), s, c)
            counters = np.fromiter((f[2] for f in run), dtype=np.int64, count=len(run))
            counters = counters[:, None] + np.arange(s, dtype=np.int64)
            ok = finite_rows(values)  # a frame with one NaN/inf/overflowing value is dropped
            if not ok.all():
                self.stats.nonfinite_values += int((~ok).sum())
                values, counters = values[ok], counters[ok]
            out_v.append(values.reshape(-1, c))
            out_c.append(counters.reshape(-1))
            k = j
        values = out_v[0] if len(out_v) == 1 else np.concatenate(out_v)
        counters = (out_c[0] if len(out_c) == 1 else np.concatenate(out_c)) % COUNTER_MODULUS
        return values, counters


def make_decoder(protocol: str, text: TextConfig | None = None,
                 binary: BinaryConfig | None = None) -> Decoder:
    """A decoder for ``protocol`` ("text" or "binary")."""
    if protocol == "text":
        return TextLineDecoder(text or TextConfig())
    if protocol == "binary":
        return BinaryFrameDecoder(binary or BinaryConfig())
    raise ValueError(f"unknown protocol {protocol!r}; expected 'text' or 'binary'")


__all__ = [
    "BinaryConfig", "BinaryFrameDecoder", "DecodedBatch", "Decoder", "DecoderDevice",
    "DecoderStats", "SerialDevice", "TextConfig", "TextLineDecoder", "Write", "crc16",
    "encode_frame", "encode_text_line", "make_decoder",
]
