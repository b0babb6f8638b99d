"""Thalmic Labs Myo armband through its BLED112 dongle: the Myo's GATT protocol (pure).

Facts of the public protocol (Thalmic's myohw.h BLE specification, as used by myo-raw and
pyomyo): the Myo advertises its control service UUID ``d5060001-a904-deb9-4748-2c7f4a124842``.
Attribute handles: firmware version 0x17 (major, minor, patch, hardware revision: 4 x u16),
battery level 0x11 (u8 %, notifications by its descriptor 0x12), command 0x19, IMU data 0x1C
(descriptor 0x1D), EMG data 0x2B, 0x2E, 0x31, 0x34 (descriptors one handle higher). A
characteristic notifies once ``01 00`` is written to its descriptor. Commands written to
0x19: ``01 03 <emg mode> <imu mode> <classifier mode>`` (raw EMG 0x03: 200 Hz; IMU data
0x01), ``03 01 <n>`` vibrate (1 short, 2 medium, 3 long), ``09 01 <m>`` sleep mode (0
normal, 1 never sleep). Raw EMG: each notification carries 2 consecutive samples x 8
channels of int8 counts; the four EMG characteristics notify in turn (0x2B, 0x2E, 0x31,
0x34, 0x2B, ...), 100 notifications/s. IMU (50 Hz): orientation quaternion w, x, y, z
(/16384), accelerometer x, y, z (/2048 g), gyroscope x, y, z (/16 deg/s), 10 x int16.

The EMG carries no sample counter. The position of a notification in the round of four
characteristics is one: a notification that never arrived leaves a step in that round,
counted as 2 dropped samples (a whole round of 4 lost in a row cannot be seen).

:class:`MyoDevice` is the serial device: it drives the dongle (scan, connect to the Myo with
the requested address or the first found, subscribe, stream, vibrate, disconnect cleanly,
scan again after a lost link) and decodes the notifications into volts
(:data:`~emg_hand_core.units.MYO_VOLTS_PER_COUNT` per count) and SI IMU readings.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from emg_hand_core.units import MYO_VOLTS_PER_COUNT, STANDARD_GRAVITY

from . import bgapi
from .protocols import DecodedBatch, DecoderStats, SerialDevice, Write, empty_batch
from .stream import ImuReading

SERVICE_UUID = bytes.fromhex("4248124a7f2c4847b9de04a9010006d5")  # as advertised (LE)
HANDLE_NAME = 0x03
HANDLE_BATTERY = 0x11
HANDLE_FIRMWARE = 0x17
HANDLE_COMMAND = 0x19
HANDLE_IMU = 0x1C
EMG_HANDLES = (0x2B, 0x2E, 0x31, 0x34)
NOTIFY_ON = b"\x01\x00"
NUM_CHANNELS = 8
SAMPLE_RATE_HZ = 200.0
IMU_RATE_HZ = 50.0
EMG_MODE_NONE = 0x00
EMG_MODE_RAW = 0x03
IMU_MODE_NONE = 0x00
IMU_MODE_DATA = 0x01
ORIENTATION_SCALE = 16384.0
ACCELEROMETER_SCALE = 2048.0  # counts per g
GYROSCOPE_SCALE = 16.0  # counts per deg/s
VIBRATE_SHORT, VIBRATE_MEDIUM, VIBRATE_LONG = 1, 2, 3
EMG_COUNTER_MODULUS = 2 * len(EMG_HANDLES)


def descriptor(handle: int) -> int:
    """The client characteristic configuration descriptor of a characteristic value."""
    return handle + 1


def set_mode(emg: int, imu: int, classifier: int = 0) -> bytes:
    return bytes([0x01, 0x03, emg, imu, classifier])


def vibrate(length: int) -> bytes:
    return bytes([0x03, 0x01, length])


def sleep_mode(never: bool) -> bytes:
    return bytes([0x09, 0x01, 1 if never else 0])


def is_myo(advertising_data: bytes) -> bool:
    """The advertising data lists the Myo's control service (128-bit UUID lists)."""
    return any(kind in (0x06, 0x07) and SERVICE_UUID in value
               for kind, value in bgapi.advertising_structures(advertising_data))


def decode_emg(value: bytes) -> np.ndarray:
    """(2, 8) int8 counts of one EMG notification."""
    if len(value) != 16:
        raise ValueError(f"a Myo EMG notification carries 16 bytes, got {len(value)}")
    return np.frombuffer(value, dtype=np.int8).reshape(2, NUM_CHANNELS)


def decode_imu(value: bytes) -> ImuReading:
    """One IMU notification in SI units: quaternion (x, y, z, w), rad/s, m/s^2."""
    if len(value) != 20:
        raise ValueError(f"a Myo IMU notification carries 20 bytes, got {len(value)}")
    v = struct.unpack("<10h", value)
    w, x, y, z = (c / ORIENTATION_SCALE for c in v[0:4])
    norm = math.sqrt(w * w + x * x + y * y + z * z) or 1.0
    accel = tuple(c / ACCELEROMETER_SCALE * STANDARD_GRAVITY for c in v[4:7])
    gyro = tuple(math.radians(c / GYROSCOPE_SCALE) for c in v[7:10])
    return ImuReading((x / norm, y / norm, z / norm, w / norm), gyro, accel)  # type: ignore


def encode_imu(quaternion_wxyz, accel_g, gyro_dps) -> bytes:
    """The 20 bytes of an IMU notification (emulator, tests)."""
    counts = [*(q * ORIENTATION_SCALE for q in quaternion_wxyz),
              *(a * ACCELEROMETER_SCALE for a in accel_g), *(g * GYROSCOPE_SCALE for g in gyro_dps)]
    return struct.pack("<10h", *(int(round(max(-32768, min(32767, c)))) for c in counts))


@dataclass
class _Op:
    """One GATT procedure: a read (``data`` None) or a write of ``data`` to ``handle``."""

    handle: int
    data: bytes | None = None
    what: str = ""


class MyoDevice(SerialDevice):
    """Drives a BLED112 dongle to stream a Myo's raw EMG (and IMU, battery)."""

    kind = "myo"
    has_imu = True
    num_channels = NUM_CHANNELS
    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(self, address: str = "", imu: bool = True, vibrate_on_prompt: bool = False,
                 scale_v_per_count: float = MYO_VOLTS_PER_COUNT, op_timeout_s: float = 2.0,
                 connect_timeout_s: float = 5.0) -> None:
        self.address = bgapi.parse_address(address) if address else None
        self.imu = bool(imu)
        self.follows_prompts = bool(vibrate_on_prompt)
        self.scale = float(scale_v_per_count)
        self.op_timeout_s = float(op_timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.parser = bgapi.BgapiParser()
        self.stats: DecoderStats = self.parser.stats
        self._state = "closed"  # closed | scanning | connecting | setup | connected
        self._conn: int | None = None
        self._ops: deque[_Op] = deque()
        self._op: _Op | None = None
        self._deadline = math.inf
        self._want_stream = False
        self._write: Write = lambda data: False
        self._next_emg = 0  # position of the next expected notification in the round of 4
        self.peer = ""  # address of the connected Myo
        self.rssi_dbm: int | None = None
        self.firmware = ""
        self.battery_percent: int | None = None
        self.connections = 0
        self.links_lost = 0
        self.last_disconnect_reason = ""
        self.vibrations = 0
        self.bad_notifications = 0
        self.others_seen: set[str] = set()  # advertisers that are not (our) Myo
        self._scanning_since = 0.0
        self._now = 0.0

    def describe(self) -> str:
        who = bgapi.format_address(self.address) if self.address else "the first Myo found"
        return f"Myo (raw EMG 200 Hz{', IMU 50 Hz' if self.imu else ''}) via BLED112, {who}"

    # --- hooks --------------------------------------------------------------------

    def connected(self, write: Write, now_s: float) -> None:
        self._write = write
        self._now = now_s
        self.parser.reset()
        # stop whatever a previous client left running, then scan
        write(bgapi.command(bgapi.GAP_END_PROCEDURE))
        for handle in range(3):
            write(bgapi.command(bgapi.CONNECTION_DISCONNECT, bytes([handle])))
        self._conn = None
        self._scan(now_s)

    def reset(self) -> None:
        self.parser.reset()
        self._state = "closed"
        self._conn = None
        self._ops.clear()
        self._op = None

    def set_streaming(self, on: bool, write: Write) -> None:
        self._write = write
        self._want_stream = bool(on)
        if self._state == "connected":
            self._queue_stream_mode()

    def closing(self, write: Write) -> None:
        """Stop the stream, let the Myo sleep again, disconnect (and stop a scan)."""
        if self._conn is not None:
            write(bgapi.command(bgapi.ATTCLIENT_ATTRIBUTE_WRITE, struct.pack(
                "<BH", self._conn, HANDLE_COMMAND) + bgapi.array(set_mode(EMG_MODE_NONE,
                                                                          IMU_MODE_NONE))))
            write(bgapi.command(bgapi.CONNECTION_DISCONNECT, bytes([self._conn])))
        elif self._state in ("scanning", "connecting"):
            write(bgapi.command(bgapi.GAP_END_PROCEDURE))
        self._state = "closed"
        self._conn = None

    def follow_prompt(self, pose: str, write: Write) -> None:
        """A short vibration for each new pose to hold, a medium one when it is over."""
        if self._state != "connected" or pose == "rest":
            return
        self.vibrations += 1
        self._queue(_Op(HANDLE_COMMAND, vibrate(VIBRATE_SHORT if pose else VIBRATE_MEDIUM),
                        "vibrate"))

    def tick(self, now_s: float, write: Write) -> None:
        self._write = write
        self._now = now_s
        if now_s <= self._deadline:
            return
        if self._state == "connecting":
            write(bgapi.command(bgapi.GAP_END_PROCEDURE))
            self._scan(now_s)
        elif self._op is not None:
            # the dongle never completed the procedure: the link is probably gone
            self._op = None
            self._ops.clear()
            if self._conn is not None:
                write(bgapi.command(bgapi.CONNECTION_DISCONNECT, bytes([self._conn])))
            self._lost(now_s, "no answer to a GATT procedure")

    # --- data ---------------------------------------------------------------------

    def feed(self, data: bytes, now_s: float) -> DecodedBatch:
        self._now = now_s
        emg: list[np.ndarray] = []
        counters: list[int] = []
        imu: list[ImuReading] = []
        for p in self.parser.feed(data):
            if p.event and p.id == bgapi.ATTCLIENT_ATTRIBUTE_VALUE:
                self._attribute(p.payload, emg, counters, imu)
            elif p.event:
                self._event(p, now_s)
            else:
                self._response(p, now_s)
        if not emg:
            batch = empty_batch(NUM_CHANNELS)
            batch.imu = imu
            return batch
        values = (np.concatenate(emg).astype(np.float64) * self.scale).astype(np.float32)
        return DecodedBatch(values, np.asarray(counters, dtype=np.int64),
                            counter_modulus=EMG_COUNTER_MODULUS, imu=imu)

    def _attribute(self, payload: bytes, emg: list, counters: list, imu: list) -> None:
        conn, handle, kind = struct.unpack_from("<BHB", payload)
        value = payload[5:]
        if conn != self._conn:
            return
        if kind != bgapi.ATTRIBUTE_NOTIFY:
            self._read_value(handle, value)
            return
        try:
            if handle in EMG_HANDLES:
                position = EMG_HANDLES.index(handle)
                emg.append(decode_emg(value))
                counters.extend((2 * position, 2 * position + 1))
            elif handle == HANDLE_IMU and self.imu:
                reading = decode_imu(value)
                reading.sample = 2 * len(emg) - 1
                imu.append(reading)
            elif handle == HANDLE_BATTERY and len(value) == 1:
                self.battery_percent = value[0]
        except ValueError:
            self.bad_notifications += 1

    def _read_value(self, handle: int, value: bytes) -> None:
        if handle == HANDLE_FIRMWARE and len(value) >= 8:
            self.firmware = "{}.{}.{}".format(*struct.unpack_from("<HHH", value))
        elif handle == HANDLE_BATTERY and len(value) == 1:
            self.battery_percent = value[0]
        if self._op is not None and self._op.data is None and self._op.handle == handle:
            self._next_op()

    def _event(self, p: bgapi.Packet, now_s: float) -> None:
        if p.id == bgapi.GAP_SCAN_RESPONSE and self._state == "scanning":
            rssi, _, sender, addr_type = struct.unpack_from("<bB6sB", p.payload)
            data = p.payload[11:]
            if not is_myo(data) or (self.address is not None and sender != self.address):
                self.others_seen.add(bgapi.format_address(sender))
                return
            self.rssi_dbm = rssi
            self.peer = bgapi.format_address(sender)
            self._write(bgapi.command(bgapi.GAP_END_PROCEDURE))
            self._write(bgapi.command(bgapi.GAP_CONNECT_DIRECT,
                                      bgapi.connect_direct_payload(sender, addr_type)))
            self._state = "connecting"
            self._deadline = now_s + self.connect_timeout_s
        elif p.id == bgapi.CONNECTION_STATUS:
            conn, flags = p.payload[0], p.payload[1]
            if flags & 1 and self._state == "connecting":
                self._conn = conn
                self._state = "setup"
                self.connections += 1
                self._next_emg = 0
                self._ops.clear()
                self._op = None
                for op in self._setup_ops():
                    self._queue(op)
        elif p.id == bgapi.CONNECTION_DISCONNECTED:
            conn, reason = struct.unpack_from("<BH", p.payload)
            if conn == self._conn and self._state != "closed":
                self._lost(now_s, f"Myo link lost (reason 0x{reason:04x})")
        elif p.id == bgapi.ATTCLIENT_PROCEDURE_COMPLETED:
            conn, result, handle = struct.unpack_from("<BHH", p.payload)
            # a write's completion (a failed read completes too, with its handle)
            if conn == self._conn and self._op is not None and handle == self._op.handle:
                self._next_op()

    def _response(self, p: bgapi.Packet, now_s: float) -> None:
        if p.id == bgapi.GAP_CONNECT_DIRECT and self._state == "connecting":
            (result,) = struct.unpack_from("<H", p.payload)
            if result != 0:
                self._scan(now_s)  # the dongle refused (busy): scan again

    def _setup_ops(self) -> list[_Op]:
        ops = [_Op(HANDLE_FIRMWARE, None, "firmware"), _Op(HANDLE_BATTERY, None, "battery"),
               *(_Op(descriptor(h), NOTIFY_ON, "emg notify") for h in EMG_HANDLES),
               _Op(descriptor(HANDLE_BATTERY), NOTIFY_ON, "battery notify")]
        if self.imu:
            ops.append(_Op(descriptor(HANDLE_IMU), NOTIFY_ON, "imu notify"))
        return ops

    def _queue_stream_mode(self) -> None:
        on = self._want_stream
        self._queue(_Op(HANDLE_COMMAND, sleep_mode(never=on), "sleep mode"))
        self._queue(_Op(HANDLE_COMMAND, set_mode(
            EMG_MODE_RAW if on else EMG_MODE_NONE,
            IMU_MODE_DATA if on and self.imu else IMU_MODE_NONE), "mode"))

    # --- GATT procedures, one at a time --------------------------------------------

    def _queue(self, op: _Op) -> None:
        self._ops.append(op)
        if self._op is None:
            self._next_op()

    def _next_op(self) -> None:
        self._op = None
        if not self._ops:
            self._deadline = math.inf
            if self._state == "setup":
                self._state = "connected"
                if self._want_stream:
                    self._queue_stream_mode()
            return
        op = self._ops.popleft()
        self._op = op
        conn = self._conn if self._conn is not None else 0
        if op.data is None:
            self._write(bgapi.command(bgapi.ATTCLIENT_READ_BY_HANDLE,
                                      struct.pack("<BH", conn, op.handle)))
        else:
            self._write(bgapi.command(bgapi.ATTCLIENT_ATTRIBUTE_WRITE,
                                      struct.pack("<BH", conn, op.handle) + bgapi.array(op.data)))
        self._deadline = self._now + self.op_timeout_s

    # --- link ---------------------------------------------------------------------

    def _scan(self, now_s: float) -> None:
        self._state = "scanning"
        self._scanning_since = now_s
        self._deadline = math.inf
        self._write(bgapi.command(bgapi.GAP_DISCOVER, bytes([bgapi.DISCOVER_GENERIC])))

    def _lost(self, now_s: float, reason: str) -> None:
        self.links_lost += 1
        self.last_disconnect_reason = reason
        self._conn = None
        self._ops.clear()
        self._op = None
        self.link_lost = True
        self._scan(now_s)

    # --- status ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    def status(self) -> dict[str, Any]:
        return {"myo_state": self._state, "myo_address": self.peer, "myo_firmware": self.firmware,
                "battery_percent": self.battery_percent if self.battery_percent is not None
                else "unknown", "myo_rssi_dbm": self.rssi_dbm, "myo_connections": self.connections,
                "myo_links_lost": self.links_lost,
                "myo_last_disconnect": self.last_disconnect_reason,
                "myo_vibrations": self.vibrations, "myo_bad_notifications": self.bad_notifications}

    def health(self) -> tuple[str, str] | None:
        if self._state in ("scanning", "connecting", "closed"):
            wanted = bgapi.format_address(self.address) if self.address else "a Myo"
            others = f" (seen, not matching: {len(self.others_seen)})" if self.others_seen else ""
            lost = f"; {self.last_disconnect_reason}" if self.last_disconnect_reason else ""
            return "error", (f"{self._state} for {wanted}{others}: is it charged and awake "
                             f"(tap it), and not paired elsewhere?{lost}")
        if self.battery_percent is not None and self.battery_percent < 10:
            return "warn", f"Myo battery low: {self.battery_percent} %"
        battery = f", battery {self.battery_percent} %" if self.battery_percent is not None else ""
        return "ok", f"Myo {self.peer} {self._state}{battery}"


__all__ = ["EMG_HANDLES", "MyoDevice", "SERVICE_UUID", "decode_emg", "decode_imu",
           "descriptor", "encode_imu", "is_myo", "set_mode", "sleep_mode", "vibrate"]
