"""BGAPI, the serial protocol of Silicon Labs' BLED112 Bluetooth LE dongle (pure; no I/O).

Every message is ``[type, length, class, command] + payload``: type ``0x00`` for a command
(host -> dongle) and its response, ``0x80`` for an event; the low 3 bits of the type byte
are the high bits of the payload length (BLE messages are short). Multi-byte fields are
little-endian; Bluetooth addresses travel least significant byte first. The messages a
Myo client needs (class, command):

* system reset (0, 0): command; system boot (0, 0): event.
* connection disconnect (3, 0): connection u8 -> response connection u8, result u16.
* connection status (3, 0), event: connection u8, flags u8 (bit 0: connected), address 6,
  address type u8, interval u16, timeout u16, latency u16, bonding u8.
* connection disconnected (3, 4), event: connection u8, reason u16.
* attclient read by handle (4, 4): connection u8, handle u16 -> response connection u8,
  result u16; then an attribute value event (or procedure completed on error).
* attclient attribute write (4, 5): connection u8, handle u16, data (u8 length + bytes) ->
  response connection u8, result u16; then procedure completed.
* attclient procedure completed (4, 1), event: connection u8, result u16, handle u16.
* attclient attribute value (4, 5), event: connection u8, handle u16, type u8 (0 read,
  1 notify, 2 indicate, ...), value (u8 length + bytes).
* gap discover (6, 2): mode u8 (1: generic) -> response result u16; then scan responses.
* gap connect direct (6, 3): address 6, address type u8, interval min u16, max u16, timeout
  u16, latency u16 -> response result u16, connection u8; then connection status.
* gap end procedure (6, 4): - -> response result u16.
* gap scan response (6, 0), event: rssi i8, packet type u8, sender 6, address type u8,
  bond u8, advertising data (u8 length + bytes).

:class:`BgapiParser` splits a byte stream into packets and resynchronises after garbage:
a header must be one of the messages above with a payload of its length (those ending in a
length-prefixed array must agree with their own length); otherwise one byte is dropped and
the search goes on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .protocols import DecoderStats

COMMAND = 0x00
EVENT = 0x80
MAX_PAYLOAD = 64  # the longest BLE message a Myo session meets (scan responses: 42)

# (class, command)
SYSTEM_RESET = (0, 0)
SYSTEM_BOOT = (0, 0)  # event
CONNECTION_DISCONNECT = (3, 0)
CONNECTION_STATUS = (3, 0)  # event
CONNECTION_DISCONNECTED = (3, 4)  # event
ATTCLIENT_READ_BY_HANDLE = (4, 4)
ATTCLIENT_ATTRIBUTE_WRITE = (4, 5)
ATTCLIENT_PROCEDURE_COMPLETED = (4, 1)  # event
ATTCLIENT_ATTRIBUTE_VALUE = (4, 5)  # event
GAP_SCAN_RESPONSE = (6, 0)  # event
GAP_DISCOVER = (6, 2)
GAP_CONNECT_DIRECT = (6, 3)
GAP_END_PROCEDURE = (6, 4)

DISCOVER_GENERIC = 1
ATTRIBUTE_READ = 0
ATTRIBUTE_NOTIFY = 1

# event payload: (fixed length) or (offset of a u8 array length: the payload ends with it)
_EVENT_LAYOUT = {
    SYSTEM_BOOT: 12, CONNECTION_STATUS: 16, CONNECTION_DISCONNECTED: 3,
    ATTCLIENT_PROCEDURE_COMPLETED: 5,
    ATTCLIENT_ATTRIBUTE_VALUE: ("array", 4), GAP_SCAN_RESPONSE: ("array", 10),
}
_RESPONSE_LAYOUT = {
    CONNECTION_DISCONNECT: 3, ATTCLIENT_READ_BY_HANDLE: 3, ATTCLIENT_ATTRIBUTE_WRITE: 3,
    GAP_DISCOVER: 2, GAP_CONNECT_DIRECT: 3, GAP_END_PROCEDURE: 2,
}
_COMMAND_LAYOUT = {
    CONNECTION_DISCONNECT: 1, ATTCLIENT_READ_BY_HANDLE: 3,
    ATTCLIENT_ATTRIBUTE_WRITE: ("array", 3), GAP_DISCOVER: 1, GAP_CONNECT_DIRECT: 15,
    GAP_END_PROCEDURE: 0, SYSTEM_RESET: 1,
}
CLASSES = range(0, 9)


@dataclass(frozen=True)
class Packet:
    """One BGAPI message: ``event`` (else a command or its response), class, command, payload."""

    event: bool
    cls: int
    cmd: int
    payload: bytes = b""

    @property
    def id(self) -> tuple[int, int]:
        return self.cls, self.cmd

    def encode(self) -> bytes:
        n = len(self.payload)
        if n > 0x7FF:
            raise ValueError("BGAPI payload too long")
        return bytes([(EVENT if self.event else COMMAND) | (n >> 8), n & 0xFF, self.cls,
                      self.cmd]) + self.payload


def command(cls_cmd: tuple[int, int], payload: bytes = b"") -> bytes:
    return Packet(False, *cls_cmd, payload).encode()


def event(cls_cmd: tuple[int, int], payload: bytes = b"") -> bytes:
    return Packet(True, *cls_cmd, payload).encode()


def array(data: bytes) -> bytes:
    """A BGAPI uint8array: length byte + bytes."""
    return bytes([len(data)]) + data


def layout_ok(packet: Packet, layouts: dict) -> bool:
    """A message this protocol uses, and its payload agrees with the message's layout.

    Messages outside the table are refused as well: a host that sent only these commands
    gets only these answers, and accepting any header would let garbage swallow the real
    packets after it."""
    layout = layouts.get(packet.id)
    n = len(packet.payload)
    if layout is None:
        return False
    if isinstance(layout, int):
        return n == layout
    offset = layout[1]
    return n > offset and packet.payload[offset] == n - offset - 1


class BgapiParser:
    """Incremental BGAPI packet splitter; ``from_host``: parse commands (the emulator's
    side) instead of responses and events."""

    def __init__(self, from_host: bool = False) -> None:
        self.from_host = from_host
        self._buf = bytearray()
        self.stats = DecoderStats()

    def reset(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self.stats.bytes_in += len(data)
        buf = self._buf
        buf += data
        out: list[Packet] = []
        pos, n = 0, len(buf)
        while n - pos >= 4:
            b0, length, cls, cmd = buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]
            is_event = b0 & 0xF8 == EVENT
            length |= (b0 & 0x07) << 8
            if (b0 & 0x78) or (is_event and self.from_host) or cls not in CLASSES \
                    or length > MAX_PAYLOAD:
                self._bad()
                pos += 1
                continue
            if n - pos < 4 + length:
                break
            packet = Packet(is_event, cls, cmd, bytes(buf[pos + 4:pos + 4 + length]))
            layouts = _COMMAND_LAYOUT if self.from_host else (
                _EVENT_LAYOUT if is_event else _RESPONSE_LAYOUT)
            if not layout_ok(packet, layouts):
                self._bad()
                pos += 1
                continue
            out.append(packet)
            pos += 4 + length
        del buf[:pos]
        return out

    def _bad(self) -> None:
        self.stats.header_errors += 1
        self.stats.discarded_bytes += 1


# --- addresses and payloads -------------------------------------------------------------

def format_address(addr: bytes) -> str:
    """BGAPI address bytes (least significant first) -> 'AA:BB:CC:DD:EE:FF'."""
    return ":".join(f"{b:02X}" for b in reversed(addr))


def parse_address(text: str) -> bytes:
    """'AA:BB:CC:DD:EE:FF' (or '-' separated) -> BGAPI address bytes; ValueError."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a Bluetooth address (AA:BB:CC:DD:EE:FF): {text!r}")
    return bytes(int(p, 16) for p in reversed(parts))


def advertising_structures(data: bytes) -> list[tuple[int, bytes]]:
    """(AD type, value) of advertising data (length, type, value...)."""
    out, pos = [], 0
    while pos < len(data):
        length = data[pos]
        if length == 0 or pos + 1 + length > len(data):
            break
        out.append((data[pos + 1], bytes(data[pos + 2:pos + 1 + length])))
        pos += 1 + length
    return out


def connect_direct_payload(addr: bytes, addr_type: int, interval_min: int = 6,
                           interval_max: int = 6, timeout: int = 64, latency: int = 0) -> bytes:
    """Connection interval in 1.25 ms units (6: 7.5 ms), supervision timeout in 10 ms."""
    return addr + struct.pack("<BHHHH", addr_type, interval_min, interval_max, timeout, latency)


__all__ = ["ATTRIBUTE_NOTIFY", "ATTRIBUTE_READ", "BgapiParser", "Packet",
           "advertising_structures", "array", "command", "connect_direct_payload", "event",
           "format_address", "parse_address"]
