"""A BLED112 dongle with Myo armbands (and another BLE device) in range, on a pseudo-terminal.

Written from the public protocols (see :mod:`emg_driver.bgapi`, :mod:`emg_driver.myo`):
the dongle answers every BGAPI command with its response and the events that follow
(scan responses while discovering, connection status, attribute values for reads,
procedure completed for writes, disconnected). A connected Myo streams raw EMG once its
four EMG descriptors are written ``01 00`` and the command ``01 03 03 ..`` selects raw mode:
one notification of 2 samples every 10 ms, in turn on 0x2B, 0x2E, 0x31, 0x34 (200 Hz), and
IMU notifications at 50 Hz when subscribed and on. It records the vibrations and sleep
modes it was sent. On purpose it can drop notifications (``drop``: EMG notification numbers
since streaming began), send garbage (``garbage``), or lose the radio link (``lose_link``).
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from .. import bgapi, myo
from .pty import DeviceEmulator, PtyPort

FIRMWARE = (1, 5, 1970, 2)


@dataclass
class EmulatedMyo:
    """One armband: its address (BGAPI byte order), the int8 counts it plays (N, 8, looped)."""

    address: bytes
    counts: np.ndarray
    battery_percent: int = 87
    name: bytes = b"Myo emulated"

    def advertising_data(self) -> bytes:
        flags = bytes([2, 0x01, 0x06])
        uuids = bytes([17, 0x06]) + myo.SERVICE_UUID
        return flags + uuids


@dataclass
class _Link:
    armband: EmulatedMyo
    conn: int = 0
    subscribed: set[int] = field(default_factory=set)
    emg_mode: int = 0
    imu_mode: int = 0
    started_at: float = 0.0
    emg_sent: int = 0  # EMG notifications due so far (sent or dropped)
    imu_sent: int = 0


OTHER_DEVICE = bytes.fromhex("112233445566")  # advertises, but is no Myo


class MyoDongleEmulator(DeviceEmulator):
    """``armbands``: the Myos in range (the first is found first)."""

    notify_period_s = 1.0 / (myo.SAMPLE_RATE_HZ / 2)
    imu_period_s = 1.0 / myo.IMU_RATE_HZ
    scan_period_s = 0.02

    def __init__(self, port: PtyPort, armbands: list[EmulatedMyo]) -> None:
        super().__init__(port)
        self.armbands = list(armbands)
        self.parser = bgapi.BgapiParser(from_host=True)
        self.scanning = False
        self.link: _Link | None = None
        self.vibrations: list[int] = []
        self.sleep_modes: list[int] = []
        self.modes: list[tuple[int, int, int]] = []
        self.disconnects_requested = 0
        self.connects = 0
        self.drop: set[int] = set()
        self.garbage: dict[int, bytes] = {}
        self.sent: list[np.ndarray] = []  # int8 counts of every EMG sample sent
        self.imu_sent: list[tuple] = []  # (quaternion wxyz, accel g, gyro deg/s) sent
        self._next_scan = 0.0

    # --- the host's commands --------------------------------------------------------

    def on_host(self, data: bytes, now: float) -> None:
        for p in self.parser.feed(data):
            self._command(p, now)

    def _respond(self, cls_cmd, payload: bytes = b"") -> None:
        self.send(bgapi.command(cls_cmd, payload))

    def _event(self, cls_cmd, payload: bytes = b"") -> None:
        self.send(bgapi.event(cls_cmd, payload))

    def _command(self, p: bgapi.Packet, now: float) -> None:
        if p.id == bgapi.GAP_DISCOVER:
            self._respond(p.id, struct.pack("<H", 0))
            self.scanning = True
            self._next_scan = now
            self.next_due = now
        elif p.id == bgapi.GAP_END_PROCEDURE:
            self._respond(p.id, struct.pack("<H", 0 if self.scanning else 0x0181))
            self.scanning = False
        elif p.id == bgapi.GAP_CONNECT_DIRECT:
            addr = p.payload[:6]
            armband = next((a for a in self.armbands if a.address == addr), None)
            if armband is None or self.link is not None:
                self._respond(p.id, struct.pack("<HB", 0x0181, 0))
                return
            self._respond(p.id, struct.pack("<HB", 0, 0))
            self.link = _Link(armband)
            self.connects += 1
            self._event(bgapi.CONNECTION_STATUS, struct.pack(
                "<BB6sBHHHB", 0, 0x05, addr, 0, 6, 64, 0, 0xFF))
        elif p.id == bgapi.CONNECTION_DISCONNECT:
            conn = p.payload[0]
            if self.link is not None and conn == self.link.conn:
                self._respond(p.id, struct.pack("<BH", conn, 0))
                self.disconnects_requested += 1
                self.link = None
                self._event(bgapi.CONNECTION_DISCONNECTED, struct.pack("<BH", conn, 0x0216))
            else:
                self._respond(p.id, struct.pack("<BH", conn, 0x0186))  # not connected
        elif p.id == bgapi.ATTCLIENT_READ_BY_HANDLE:
            conn, handle = struct.unpack("<BH", p.payload)
            self._respond(p.id, struct.pack("<BH", conn, 0))
            value = self._read(handle)
            if value is None:
                self._event(bgapi.ATTCLIENT_PROCEDURE_COMPLETED,
                            struct.pack("<BHH", conn, 0x0401, handle))
            else:
                self._event(bgapi.ATTCLIENT_ATTRIBUTE_VALUE,
                            struct.pack("<BHB", conn, handle, bgapi.ATTRIBUTE_READ)
                            + bgapi.array(value))
        elif p.id == bgapi.ATTCLIENT_ATTRIBUTE_WRITE:
            conn, handle = struct.unpack_from("<BH", p.payload)
            self._respond(p.id, struct.pack("<BH", conn, 0))
            self._write(handle, p.payload[4:], now)
            self._event(bgapi.ATTCLIENT_PROCEDURE_COMPLETED, struct.pack("<BHH", conn, 0, handle))

    def _read(self, handle: int) -> bytes | None:
        if self.link is None:
            return None
        armband = self.link.armband
        if handle == myo.HANDLE_FIRMWARE:
            return struct.pack("<4H", *FIRMWARE)
        if handle == myo.HANDLE_BATTERY:
            return bytes([armband.battery_percent])
        if handle == myo.HANDLE_NAME:
            return armband.name
        return None

    def _write(self, handle: int, data: bytes, now: float) -> None:
        link = self.link
        if link is None:
            return
        if handle - 1 in (*myo.EMG_HANDLES, myo.HANDLE_IMU, myo.HANDLE_BATTERY, 0x23):
            if data[:1] in (b"\x01", b"\x02"):
                link.subscribed.add(handle - 1)
            else:
                link.subscribed.discard(handle - 1)
        elif handle == myo.HANDLE_COMMAND and data:
            if data[0] == 0x01 and len(data) >= 5:
                was = self._emg_on()
                link.emg_mode, link.imu_mode = data[2], data[3]
                self.modes.append((data[2], data[3], data[4]))
                if self._emg_on() and not was:
                    link.started_at = now
                    link.emg_sent = link.imu_sent = 0
                    self.next_due = now
            elif data[0] == 0x03 and len(data) >= 3:
                self.vibrations.append(data[2])
            elif data[0] == 0x09 and len(data) >= 3:
                self.sleep_modes.append(data[2])

    def _emg_on(self) -> bool:
        link = self.link
        return link is not None and link.emg_mode == myo.EMG_MODE_RAW and all(
            h in link.subscribed for h in myo.EMG_HANDLES)

    # --- what the dongle sends by itself --------------------------------------------

    def lose_link(self) -> None:
        """The armband went out of range: the dongle reports the supervision timeout."""
        with self.lock:
            if self.link is not None:
                conn = self.link.conn
                self.link = None
                self._event(bgapi.CONNECTION_DISCONNECTED, struct.pack("<BH", conn, 0x0208))

    def on_unplug(self) -> None:
        self.link = None
        self.scanning = False
        self.parser.reset()

    def due(self, now: float) -> bytes:
        out = bytearray()
        if self.scanning and now >= self._next_scan:
            for addr, data in [(OTHER_DEVICE, bytes([2, 0x01, 0x06, 3, 0x03, 0x0F, 0x18])),
                               *((a.address, a.advertising_data()) for a in self.armbands)]:
                out += bgapi.event(bgapi.GAP_SCAN_RESPONSE, struct.pack(
                    "<bB6sBB", -60, 0, addr, 0, 0xFF) + bgapi.array(data))
            self._next_scan = now + self.scan_period_s
        link = self.link
        wake = [self._next_scan if self.scanning else math.inf]
        if self._emg_on():
            out += self._stream(link, now)
            wake.append(link.started_at + link.emg_sent * self.notify_period_s)
            if link.imu_mode and myo.HANDLE_IMU in link.subscribed:
                wake.append(link.started_at + link.imu_sent * self.imu_period_s)
        self.next_due = min(min(wake), now + self.poll_s)
        return bytes(out)

    def _stream(self, link: _Link, now: float) -> bytes:
        out = bytearray()
        counts = link.armband.counts
        while link.started_at + link.emg_sent * self.notify_period_s <= now:
            n = link.emg_sent
            handle = myo.EMG_HANDLES[n % 4]
            pair = counts[(2 * n + np.arange(2)) % len(counts)].astype(np.int8)
            out += self.garbage.get(n, b"")
            if n not in self.drop:
                self.sent.extend(pair)
                out += self._notify(link, handle, pair.tobytes())
            link.emg_sent += 1
        if link.imu_mode and myo.HANDLE_IMU in link.subscribed:
            while link.started_at + link.imu_sent * self.imu_period_s <= now:
                t = link.imu_sent * self.imu_period_s
                angle = 0.5 * math.sin(2 * math.pi * 0.5 * t)  # turning about z, +-0.5 rad
                quat = (math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2))
                accel = (0.0, 0.0, 1.0)  # lying still: 1 g up
                gyro = (0.0, 0.0, math.degrees(0.5 * 2 * math.pi * 0.5
                                               * math.cos(2 * math.pi * 0.5 * t)))
                self.imu_sent.append((quat, accel, gyro))
                out += self._notify(link, myo.HANDLE_IMU, myo.encode_imu(quat, accel, gyro))
                link.imu_sent += 1
        return bytes(out)

    @staticmethod
    def _notify(link: _Link, handle: int, value: bytes) -> bytes:
        return bgapi.event(bgapi.ATTCLIENT_ATTRIBUTE_VALUE, struct.pack(
            "<BHB", link.conn, handle, bgapi.ATTRIBUTE_NOTIFY) + bgapi.array(value))

    # --- for tests --------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._emg_on()

    def samples_sent(self) -> np.ndarray:
        with self.lock:
            return np.array(self.sent, dtype=np.int64).reshape(-1, myo.NUM_CHANNELS)

    def wait_for(self, predicate, timeout_s: float = 10.0, what: str = "the host") -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.01)  # polling the emulator's own state, not a driver


__all__ = ["EmulatedMyo", "MyoDongleEmulator"]
