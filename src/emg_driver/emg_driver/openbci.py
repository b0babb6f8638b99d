"""OpenBCI Cyton and Cyton + Daisy over the FTDI dongle: the native serial protocol (pure).

Facts of the public protocol (OpenBCI's Cyton data format and SDK documentation):

* 115200 baud, 8-N-1. Host commands are single ASCII characters: ``v`` soft reset (the board
  answers with a banner ending in ``$$$``; ``Failure: ...$$$`` when the dongle cannot reach
  the board), ``b`` start streaming, ``s`` stop, ``d`` default channel settings, and
  ``x<ch><power><gain><input><bias><srb2><srb1>X`` channel settings (answered with ``$$$``).
* A 33-byte packet per sample: ``0xA0``, the sample number (uint8, wraps), 8 channels of
  24-bit two's complement big-endian, 6 aux bytes, a footer ``0xC0``..``0xC6``. With footer
  ``0xC0`` the aux bytes are the accelerometer (3 x int16 big-endian, 0.002 / 16 g per
  count, non-zero only in the packets that carry a new reading, 25 Hz).
* Volts per count = 4.5 V / gain / (2^23 - 1); gain 24 (the default): 0.02235 uV.
* 250 Hz. With the Daisy module, packets alternate: an even sample number carries the
  Daisy's channels 9-16, the following odd one the board's 1-8; each pair is one sample of
  16 channels, 125 Hz.

:class:`CytonDecoder` turns bytes into samples in volts with the sample number as counter
(a gap is dropped samples), resynchronising after any corruption; :class:`CytonDevice` is
the serial device (handshake, per-channel gain commands, start / stop);
:func:`encode_packet` writes packets (the emulator, tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from emg_hand_core.units import STANDARD_GRAVITY

from .protocols import DecodedBatch, DecoderStats, SerialDevice, Write, empty_batch
from .stream import ImuReading

BAUD_RATE = 115200
START_BYTE = 0xA0
FOOTER_ACCEL = 0xC0
FOOTERS = range(0xC0, 0xC7)
PACKET_SIZE = 33
SAMPLE_RATE_HZ = 250.0
DAISY_SAMPLE_RATE_HZ = 125.0
CHANNELS = 8
GAINS = (1, 2, 4, 6, 8, 12, 24)
DEFAULT_GAIN = 24
ADS1299_VREF_V = 4.5
FULL_SCALE_COUNTS = 2 ** 23 - 1
ACCEL_G_PER_COUNT = 0.002 / 16
SAMPLE_NUMBER_MODULUS = 256
# channel keys of the x...X channel-setting command: 1-8 board, Q..I Daisy (9-16)
CHANNEL_KEYS = "12345678QWERTYUI"
_GAIN_CODES = {1: "0", 2: "1", 4: "2", 6: "3", 8: "4", 12: "5", 24: "6"}


def volts_per_count(gain: int) -> float:
    """ADS1299 scale: 4.5 V / gain / (2^23 - 1)."""
    if gain not in GAINS:
        raise ValueError(f"Cyton gain must be one of {GAINS}, got {gain}")
    return ADS1299_VREF_V / gain / FULL_SCALE_COUNTS


def channel_setting_command(channel: int, gain: int) -> bytes:
    """``x`` command setting ``channel`` (1-based, 1-16) to ``gain`` with the default input
    (normal electrode, powered, in the bias, SRB2 connected, SRB1 off)."""
    if not 1 <= channel <= 16:
        raise ValueError(f"Cyton channels are 1..16, got {channel}")
    code = _GAIN_CODES[gain] if gain in _GAIN_CODES else None
    if code is None:
        raise ValueError(f"Cyton gain must be one of {GAINS}, got {gain}")
    return f"x{CHANNEL_KEYS[channel - 1]}0{code}0110X".encode("ascii")


def parse_channel_setting(command: bytes) -> tuple[int, int] | None:
    """(channel 1-16, gain) of an ``x...X`` command, or None."""
    if len(command) != 9 or command[:1] != b"x" or command[-1:] != b"X":
        return None
    key, code = chr(command[1]), chr(command[3])
    gains = {v: k for k, v in _GAIN_CODES.items()}
    if key not in CHANNEL_KEYS or code not in gains:
        return None
    return CHANNEL_KEYS.index(key) + 1, gains[code]


def encode_packet(sample_number: int, counts, accel_counts=None, footer: int = FOOTER_ACCEL,
                  aux: bytes | None = None) -> bytes:
    """One 33-byte packet of 8 channels of 24-bit ``counts`` (clipped to the ADC range);
    ``accel_counts`` (3 int16) go into the aux bytes (footer 0xC0), else ``aux`` or zeros."""
    c = np.clip(np.rint(np.asarray(counts, dtype=np.float64)), -(1 << 23), (1 << 23) - 1)
    raw = c.astype(">i4").view(np.uint8).reshape(CHANNELS, 4)[:, 1:].tobytes()
    if accel_counts is not None:
        aux = np.clip(np.asarray(accel_counts), -32768, 32767).astype(">i2").tobytes()
    aux = aux if aux is not None else bytes(6)
    return bytes([START_BYTE, sample_number & 0xFF]) + raw + aux + bytes([footer])


@dataclass(frozen=True)
class CytonConfig:
    """``daisy``: a Daisy module (16 channels at 125 Hz). ``gains``: per channel (empty: 24
    everywhere); they must match the board's settings, which the device sets at start-up."""

    daisy: bool = False
    gains: tuple[int, ...] = ()

    @property
    def num_channels(self) -> int:
        return 2 * CHANNELS if self.daisy else CHANNELS

    @property
    def sample_rate_hz(self) -> float:
        return DAISY_SAMPLE_RATE_HZ if self.daisy else SAMPLE_RATE_HZ

    def channel_gains(self) -> tuple[int, ...]:
        return tuple(self.gains) or (DEFAULT_GAIN,) * self.num_channels

    def validate(self) -> None:
        gains = self.channel_gains()
        if len(gains) != self.num_channels:
            raise ValueError(f"cyton_gains lists {len(gains)} gains but the "
                             f"{'Cyton + Daisy' if self.daisy else 'Cyton'} has "
                             f"{self.num_channels} channels")
        bad = [g for g in gains if g not in GAINS]
        if bad:
            raise ValueError(f"cyton_gains: {bad} not among the ADS1299 gains {GAINS}")


def _decode_counts(packets: np.ndarray) -> np.ndarray:
    """(n, 33) uint8 packets -> (n, 8) int32 channel counts."""
    b = packets[:, 2:26].reshape(-1, CHANNELS, 3).astype(np.int32)
    v = (b[..., 0] << 16) | (b[..., 1] << 8) | b[..., 2]
    return np.where(v & 0x800000, v - (1 << 24), v)


def _accel(packet: bytes) -> tuple[float, float, float] | None:
    if packet[32] != FOOTER_ACCEL:
        return None
    a = np.frombuffer(packet, dtype=">i2", count=3, offset=26)
    if a[0] == 0 and a[1] == 0 and a[2] == 0:
        return None  # no new reading in this packet
    g = a.astype(np.float64) * ACCEL_G_PER_COUNT * STANDARD_GRAVITY
    return float(g[0]), float(g[1]), float(g[2])


class CytonDecoder:
    """Incremental decoder of Cyton packets, in volts, resynchronising after corruption.

    A candidate packet is ``0xA0`` with a footer 32 bytes later. It is accepted at once when
    its sample number continues the previous packet's; otherwise (the first packet, after a
    gap or after garbage) only once the next packet's ``0xA0`` follows it, so garbage that
    happens to hold an ``0xA0`` and a footer-like byte never becomes a sample. On any failure
    one byte is dropped and the search continues: a real packet after garbage is never
    skipped. With the Daisy, an even packet and the odd one after it make one 16-channel
    sample (counter = odd number // 2, wrapping at 128); a half without its partner is
    dropped and counted (``daisy_unpaired``).
    """

    def __init__(self, config: CytonConfig) -> None:
        config.validate()
        self.config = config
        self.num_channels = config.num_channels
        gains = config.channel_gains()
        self._scale = np.array([volts_per_count(g) for g in gains], dtype=np.float64)
        self._buf = bytearray()
        self._last: int | None = None  # sample number of the last accepted packet
        self._daisy_half: tuple[int, bytes] | None = None  # (even number, packet)
        self.daisy_unpaired = 0
        self.stats = DecoderStats()

    def reset(self) -> None:
        self._buf = bytearray()
        self._last = None
        self._daisy_half = None

    def feed(self, data: bytes) -> DecodedBatch:
        self.stats.bytes_in += len(data)
        buf = self._buf
        buf += data
        packets: list[bytes] = []
        pos, n = 0, len(buf)
        while True:
            start = buf.find(START_BYTE, pos)
            if start < 0:
                self.stats.discarded_bytes += n - pos
                pos = n
                break
            self.stats.discarded_bytes += start - pos
            pos = start
            if n - pos < PACKET_SIZE:
                break
            if buf[pos + PACKET_SIZE - 1] not in FOOTERS:
                self.stats.header_errors += 1
                self.stats.discarded_bytes += 1
                pos += 1
                continue
            number = buf[pos + 1]
            expected = self._last is not None and number == (self._last + 1) % 256
            if not expected:
                if n - pos < PACKET_SIZE + 1:
                    break  # wait for the next byte: it must start the next packet
                if buf[pos + PACKET_SIZE] != START_BYTE:
                    self.stats.header_errors += 1
                    self.stats.discarded_bytes += 1
                    pos += 1
                    continue
            packets.append(bytes(buf[pos:pos + PACKET_SIZE]))
            self._last = number
            pos += PACKET_SIZE
        del buf[:pos]
        if not packets:
            return empty_batch(self.num_channels)
        return self._daisy(packets) if self.config.daisy else self._board(packets)

    def _board(self, packets: list[bytes]) -> DecodedBatch:
        arr = np.frombuffer(b"".join(packets), dtype=np.uint8).reshape(-1, PACKET_SIZE)
        values = (_decode_counts(arr) * self._scale).astype(np.float32)
        imu = [ImuReading(linear_acceleration=a, sample=k)
               for k, p in enumerate(packets) if (a := _accel(p)) is not None]
        self.stats.samples += len(packets)
        return DecodedBatch(values, arr[:, 1].astype(np.int64),
                            counter_modulus=SAMPLE_NUMBER_MODULUS, imu=imu)

    def _daisy(self, packets: list[bytes]) -> DecodedBatch:
        pairs: list[tuple[bytes, bytes]] = []
        for p in packets:
            number = p[1]
            if number % 2 == 0:
                if self._daisy_half is not None:
                    self.daisy_unpaired += 1
                self._daisy_half = (number, p)
                continue
            half = self._daisy_half
            self._daisy_half = None
            if half is None or half[0] != number - 1:
                self.daisy_unpaired += 1 + (half is not None)
                continue
            pairs.append((p, half[1]))
        if not pairs:
            return empty_batch(self.num_channels)
        board = np.frombuffer(b"".join(b for b, _ in pairs), np.uint8).reshape(-1, PACKET_SIZE)
        daisy = np.frombuffer(b"".join(d for _, d in pairs), np.uint8).reshape(-1, PACKET_SIZE)
        counts = np.concatenate([_decode_counts(board), _decode_counts(daisy)], axis=1)
        values = (counts * self._scale).astype(np.float32)
        imu = []
        for k, (b, d) in enumerate(pairs):
            a = _accel(d) or _accel(b)
            if a is not None:
                imu.append(ImuReading(linear_acceleration=a, sample=k))
        self.stats.samples += len(pairs)
        return DecodedBatch(values, board[:, 1].astype(np.int64) // 2,
                            counter_modulus=SAMPLE_NUMBER_MODULUS // 2, imu=imu)


class CytonDevice(SerialDevice):
    """The Cyton behind its dongle: soft reset, gains, start / stop, then packets.

    After each (re)open of the port: ``s`` (a board left streaming stops), ``v`` (soft reset;
    the banner ends with ``$$$``, says whether a Daisy is attached, or reports that the dongle
    cannot reach the board), then one ``x...X`` command per channel whose gain is not the
    default 24, each answered with ``$$$``; then ``b`` when streaming is wanted. Without an
    answer within ``reply_timeout_s`` the step is repeated (the board may be switched on
    later); the reason is in ``health()``.
    """

    kind = "cyton"
    has_imu = True

    def __init__(self, config: CytonConfig, reply_timeout_s: float = 2.0) -> None:
        self.config = config
        self.decoder = CytonDecoder(config)
        self.num_channels = config.num_channels
        self.sample_rate_hz = config.sample_rate_hz
        self.stats = self.decoder.stats
        self.reply_timeout_s = float(reply_timeout_s)
        gains = config.channel_gains()
        self._setup = [channel_setting_command(ch + 1, g) for ch, g in enumerate(gains)
                       if g != DEFAULT_GAIN]
        self._want_stream = False
        self._phase = "closed"  # closed | reset | config | ready
        self._step = 0  # index into _setup while configuring
        self._reply = bytearray()
        self._deadline = math.inf
        self._waited_since = 0.0
        self.banner = ""
        self.daisy_found: bool | None = None
        self.handshakes = 0
        self.reply_timeouts = 0
        self._problem = ""

    def describe(self) -> str:
        what = "Cyton + Daisy" if self.config.daisy else "Cyton"
        return f"OpenBCI {what} native protocol, gains {sorted(set(self.config.channel_gains()))}"

    # --- hooks --------------------------------------------------------------------

    def connected(self, write: Write, now_s: float) -> None:
        self.decoder.reset()
        self._phase = "reset"
        self._waited_since = now_s
        self._send_reset(write, now_s)

    def reset(self) -> None:
        self.decoder.reset()
        self._phase = "closed"

    def set_streaming(self, on: bool, write: Write) -> None:
        self._want_stream = bool(on)
        if self._phase == "ready":
            write(b"b" if on else b"s")

    def closing(self, write: Write) -> None:
        if self._phase == "ready" and self._want_stream:
            write(b"s")
        self._want_stream = False

    def tick(self, now_s: float, write: Write) -> None:
        if self._phase in ("reset", "config") and now_s > self._deadline:
            self.reply_timeouts += 1
            waited = now_s - self._waited_since
            sent = "v" if self._phase == "reset" else "x"
            self._problem = (f"no answer from the Cyton to '{sent}' for {waited:.0f} s: is "
                             "the dongle's switch on GPIO_6 (not RESET) and the board "
                             "switched on (PC)?")
            self._phase = "reset"
            self._send_reset(write, now_s)

    def feed(self, data: bytes, now_s: float) -> DecodedBatch:
        if self._phase in ("reset", "config"):
            self._reply += data
            end = self._reply.find(b"$$$")
            if end < 0:
                if len(self._reply) > 4096:
                    del self._reply[:-8]
                return empty_batch(self.num_channels)
            reply = bytes(self._reply[:end]).decode("ascii", errors="replace")
            rest = bytes(self._reply[end + 3:])
            self._reply = bytearray()
            self._answered(reply, now_s)
            data = rest
            if self._phase != "ready":
                return empty_batch(self.num_channels)
        if self._phase != "ready":
            return empty_batch(self.num_channels)
        return self.decoder.feed(data)

    # --- handshake ---------------------------------------------------------------

    _write: Write | None = None

    def _send_reset(self, write: Write, now_s: float) -> None:
        self._write = write
        self._reply = bytearray()
        self._step = 0
        write(b"s")
        write(b"v")
        self._deadline = now_s + self.reply_timeout_s

    def _answered(self, reply: str, now_s: float) -> None:
        write = self._write
        assert write is not None
        if self._phase == "reset":
            if reply.lstrip().startswith("Failure"):
                self._problem = (f"the dongle answers but the Cyton does not ({reply.strip()}): "
                                 "switch the board on (PC position)")
                self._deadline = now_s + self.reply_timeout_s  # retried by tick
                return
            self.banner = reply.strip()
            self.daisy_found = "daisy" in reply.lower()
            self.handshakes += 1
            self._phase = "config"
        else:
            self._step += 1
        if self._step < len(self._setup):
            write(self._setup[self._step])
            self._deadline = now_s + self.reply_timeout_s
            return
        self._phase = "ready"
        self._deadline = math.inf
        self._problem = ""
        if self.daisy_found is not None and self.daisy_found != self.config.daisy:
            self._problem = ("the board reports " + ("a" if self.daisy_found else "no") +
                             " Daisy module but cyton_daisy is " + str(self.config.daisy).lower())
        if self._want_stream:
            write(b"b")

    # --- status ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"cyton_phase": self._phase, "cyton_handshakes": self.handshakes,
                "cyton_reply_timeouts": self.reply_timeouts,
                "cyton_daisy_found": self.daisy_found,
                "daisy_unpaired": self.decoder.daisy_unpaired}

    def health(self) -> tuple[str, str] | None:
        if self._problem:
            level = "warn" if self._phase == "ready" else "error"
            return level, self._problem
        if self._phase != "ready":
            return "error", "waiting for the Cyton's answer to 'v' (soft reset)"
        return "ok", "Cyton ready" + (", streaming" if self._want_stream else "")


__all__ = ["BAUD_RATE", "CytonConfig", "CytonDecoder", "CytonDevice", "GAINS",
           "channel_setting_command", "encode_packet", "parse_channel_setting",
           "volts_per_count"]
