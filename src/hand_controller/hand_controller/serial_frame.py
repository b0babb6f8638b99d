"""The serial command frame sent to a physical hand (encoder, and a decoder for firmware
authors and tests). Pure standard library + numpy; no rclpy.

One frame per command, little-endian::

    offset  size  field
    0       2     sync: 0xA5 0x5A
    2       1     version: 1
    3       1     flags: bit 0 enabled (the controller is commanding),
                         bit 1 watchdog (input stale: safe posture / hold),
                         bit 2 stop (last frame before output stops; hold this position)
    4       1     sequence number, uint8, +1 per frame (wraps 255 -> 0)
    5       1     n: number of joints (1..64), the profile's joint order
    6       2n    joint positions, int16 each, milliradians (-32.768 .. 32.767 rad)
    6+2n    2     CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0)
                  of bytes 2 .. 5+2n (version through the last position)

Total 8 + 2n bytes: 20 bytes for the 6-actuator prosthetic profile. A firmware should act on
a frame only when its CRC matches, hold its position on a stop frame, and move to its own
safe posture when no frame arrived for a while (its own watchdog).
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

import numpy as np

SYNC = b"\xa5\x5a"
VERSION = 1
FLAG_ENABLED = 0x01
FLAG_WATCHDOG = 0x02
FLAG_STOP = 0x04
MAX_JOINTS = 64
UNITS_PER_RAD = 1000.0  # int16 milliradians
_HEADER = struct.Struct("<BBBB")  # version, flags, sequence, n


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE ("123456789" -> 0x29B1), the same as emg_driver's frames."""
    return binascii.crc_hqx(data, crc)


@dataclass(frozen=True)
class CommandFrame:
    positions_rad: np.ndarray  # (n,) as decoded (quantised to 1 mrad)
    sequence: int
    flags: int

    @property
    def enabled(self) -> bool:
        return bool(self.flags & FLAG_ENABLED)

    @property
    def watchdog(self) -> bool:
        return bool(self.flags & FLAG_WATCHDOG)

    @property
    def stop(self) -> bool:
        return bool(self.flags & FLAG_STOP)


def encode_command(positions_rad, sequence: int, flags: int = FLAG_ENABLED) -> bytes:
    """One frame for joint positions (n,) [rad]. Raises ValueError if a value cannot be sent."""
    values = np.asarray(positions_rad, dtype=np.float64).ravel()
    if not 1 <= values.size <= MAX_JOINTS:
        raise ValueError(f"a frame carries 1..{MAX_JOINTS} joints, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("joint positions must be finite")
    units = np.rint(values * UNITS_PER_RAD)
    if np.any(units < -32768) or np.any(units > 32767):
        raise ValueError("joint positions must lie within -32.768..32.767 rad")
    body = _HEADER.pack(VERSION, flags & 0xFF, sequence & 0xFF, values.size) + \
        units.astype("<i2").tobytes()
    return SYNC + body + struct.pack("<H", crc16_ccitt_false(body))


def decode_commands(buffer: bytes) -> tuple[list[CommandFrame], bytes, int]:
    """Frames found in ``buffer``: (frames, unconsumed tail, bytes skipped as garbage).

    Resynchronises on the sync word after corrupt or partial data; the tail keeps a frame
    that is not complete yet, for the next call.
    """
    frames: list[CommandFrame] = []
    skipped = 0
    i = 0
    while True:
        j = buffer.find(SYNC, i)
        if j < 0:
            keep = 1 if buffer.endswith(SYNC[:1]) else 0
            skipped += len(buffer) - i - keep
            return frames, buffer[len(buffer) - keep:], skipped
        skipped += j - i
        if len(buffer) - j < 6:
            return frames, buffer[j:], skipped
        version, flags, sequence, n = _HEADER.unpack_from(buffer, j + 2)
        if version != VERSION or not 1 <= n <= MAX_JOINTS:
            i = j + 1
            skipped += 1
            continue
        end = j + 8 + 2 * n
        if len(buffer) < end:
            return frames, buffer[j:], skipped
        body = buffer[j + 2:end - 2]
        (crc,) = struct.unpack_from("<H", buffer, end - 2)
        if crc != crc16_ccitt_false(body):
            i = j + 1
            skipped += 1
            continue
        units = np.frombuffer(body[4:], dtype="<i2").astype(np.float64)
        frames.append(CommandFrame(units / UNITS_PER_RAD, sequence, flags))
        i = end
