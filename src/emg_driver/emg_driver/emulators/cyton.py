"""An OpenBCI Cyton (optionally + Daisy) behind its FTDI dongle, on a pseudo-terminal.

Written from the public protocol (see :mod:`emg_driver.openbci`): it answers ``v`` (soft
reset: a banner ending in ``$$$``, naming the Daisy when there is one), ``d`` (defaults),
``x...X`` channel settings (the gain is applied to what it streams), ``b`` / ``s`` (start
/ stop; the sample number restarts at 0 on ``b``). While streaming it sends one 33-byte
packet per 4 ms (250 Hz; with the Daisy an even packet with channels 9-16 and the next odd
one with 1-8), re-encoding a signal in volts as 24-bit counts at each channel's gain, with
the accelerometer in the aux bytes of every 10th packet (25 Hz). On purpose it can drop
packets (``drop``: packet numbers since ``b``), send garbage before a packet (``garbage``)
or have its board switched off (``board_on = False``: the dongle answers ``Failure``).
"""

from __future__ import annotations

import time

import numpy as np

from .. import openbci
from .pty import DeviceEmulator, PtyPort

BANNER = ("OpenBCI V3 8-16 channel\nOn Board ADS1299 Device ID: 0x3E\n{daisy}"
          "LIS3DH Device ID: 0x33\nFirmware: v3.1.2\n$$$")


class CytonEmulator(DeviceEmulator):
    """``signal_v``: (N, 8 or 16) volts, looped; ``accel_g``: (N, 3) or None (a still board:
    0.01, -0.02, 0.99 g)."""

    def __init__(self, port: PtyPort, signal_v: np.ndarray, daisy: bool = False,
                 accel_g: np.ndarray | None = None, board_on: bool = True) -> None:
        super().__init__(port)
        self.daisy = bool(daisy)
        channels = 16 if daisy else 8
        signal_v = np.asarray(signal_v, dtype=np.float64)
        if signal_v.ndim != 2 or signal_v.shape[1] != channels:
            raise ValueError(f"signal must be (N, {channels}) volts, got {signal_v.shape}")
        self.signal_v = signal_v
        self.accel_g = accel_g
        self.board_on = board_on
        self.gains = [openbci.DEFAULT_GAIN] * channels
        self.streaming = False
        self.packets_sent = 0  # since the last 'b'
        self.started_at = 0.0
        self.drop: set[int] = set()
        self.garbage: dict[int, bytes] = {}
        self.commands: list[bytes] = []
        self.sent_counts: list[np.ndarray] = []  # per sample: the counts sent (records)
        self.record = True
        # (packets sent so far, wall-clock time of that write): a benchmark's latency base
        self.sent_at: list[tuple[int, float]] | None = None
        self._pending = b""
        self.period_s = 1.0 / openbci.SAMPLE_RATE_HZ  # packets per second, Daisy or not

    # --- the host's commands --------------------------------------------------------

    def on_host(self, data: bytes, now: float) -> None:
        self._pending += data
        while self._pending:
            c = self._pending[:1]
            if c == b"x":
                if len(self._pending) < 9:
                    return
                cmd, self._pending = self._pending[:9], self._pending[9:]
                self.commands.append(cmd)
                setting = openbci.parse_channel_setting(cmd)
                if setting is None:
                    self.send(b"Failure: invalid channel setting$$$")
                else:
                    self.gains[setting[0] - 1] = setting[1]
                    self.send(f"Success: Channel set for {setting[0]}$$$".encode())
                continue
            self._pending = self._pending[1:]
            self.commands.append(c)
            self._command(c, now)

    def _command(self, c: bytes, now: float) -> None:
        if c == b"v":
            self.streaming = False
            if not self.board_on:
                self.send(b"Failure: Communications timeout - Device failed to poll Host$$$")
                return
            self.gains = [openbci.DEFAULT_GAIN] * len(self.gains)
            daisy = "On Daisy ADS1299 Device ID: 0x3E\n" if self.daisy else ""
            self.send(BANNER.format(daisy=daisy).encode())
        elif c == b"d" and self.board_on:
            self.gains = [openbci.DEFAULT_GAIN] * len(self.gains)
            self.send(b"updating channel settings to default$$$")
        elif c == b"b" and self.board_on:
            self.streaming = True
            self.packets_sent = 0
            self.started_at = now
            self.next_due = now
        elif c == b"s":
            self.streaming = False

    def on_unplug(self) -> None:
        self.streaming = False  # powered down with the dongle

    # --- streaming ----------------------------------------------------------------

    def counts_of(self, k: int) -> np.ndarray:
        """Counts of sample ``k`` (all channels) at the current gains."""
        v = self.signal_v[k % len(self.signal_v)]
        scale = np.array([openbci.volts_per_count(g) for g in self.gains])
        return np.clip(np.rint(v / scale), -(1 << 23), (1 << 23) - 1).astype(np.int64)

    def packet(self, n: int) -> bytes:
        """Packet number ``n`` since 'b' (its sample number is n % 256)."""
        if self.daisy:
            k = n // 2
            counts = self.counts_of(k)
            half = counts[8:] if n % 2 == 0 else counts[:8]
        else:
            k = n
            counts = half = self.counts_of(k)
        accel = None
        if n % 10 == 0:
            g = (0.01, -0.02, 0.99) if self.accel_g is None else self.accel_g[k % len(self.accel_g)]
            accel = np.rint(np.asarray(g) / openbci.ACCEL_G_PER_COUNT)
        if self.record and (not self.daisy or n % 2 == 1) and not self._dropped(n):
            self.sent_counts.append(counts)
        return openbci.encode_packet(n, half, accel_counts=accel)

    def _dropped(self, n: int) -> bool:
        if n in self.drop:
            return True
        return self.daisy and (n ^ 1) in self.drop  # the other half of a Daisy pair

    def due(self, now: float) -> bytes:
        if not self.streaming:
            self.next_due = now + self.poll_s
            return b""
        out = bytearray()
        while self.started_at + self.packets_sent * self.period_s <= now:
            n = self.packets_sent
            out += self.garbage.get(n, b"")
            p = self.packet(n)
            if n not in self.drop:
                out += p
            self.packets_sent += 1
        if out and self.sent_at is not None:
            self.sent_at.append((self.packets_sent, time.time()))
        self.next_due = self.started_at + self.packets_sent * self.period_s
        return bytes(out)

    def samples_sent(self) -> np.ndarray:
        """(n, channels) counts of every sample sent (not dropped) since recording began."""
        with self.lock:
            return np.array(self.sent_counts, dtype=np.int64).reshape(-1, len(self.gains))

    def wait_streaming(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.streaming:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the host never started the Cyton's stream; it sent "
                                   f"{bytes(self.host_bytes)!r}")
            time.sleep(0.01)  # polling the emulator's own state, not a driver


__all__ = ["CytonEmulator"]
