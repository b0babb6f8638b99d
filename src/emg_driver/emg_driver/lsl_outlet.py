"""emg/raw chunks -> a Lab Streaming Layer outlet, so LabRecorder and other LSL tools see the
armband (pure: pylsl, no rclpy; the node is :mod:`emg_driver.lsl_outlet_node`).

The outlet is made from the first chunk (channel count, rate and names; each channel's
unit in its ``desc/channels/channel``) and made again if they change. Each chunk is pushed
with the LSL time of its last sample: its ROS stamp + (n - 1) / rate, moved onto LSL's
``local_clock()`` by the offset between the two clocks (read back to back), so LSL
consumers get acquisition times, and a gap in the stream index shows as a gap in time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

UNITS = {"microvolts": 1e6, "volts": 1.0}


class LslRepublisher:
    """Push EMG chunks (volts) to an LSL outlet named ``name`` of ``stream_type``."""

    def __init__(self, name: str, stream_type: str = "EMG", source_id: str = "",
                 unit: str = "microvolts", clock: Callable[[], float] | None = None) -> None:
        import time

        import pylsl

        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
        self._pylsl = pylsl
        self.name, self.stream_type, self.unit = name, stream_type, unit
        self.source_id = source_id or f"emg_hand/{name}"
        self._clock = clock or time.time
        self._outlet = None
        self._layout: tuple[int, float, tuple[str, ...]] | None = None
        self.chunks = 0
        self.samples = 0
        self.outlets_made = 0

    def push(self, data: np.ndarray, stamp_ns: int, rate_hz: float, names) -> None:
        """One chunk: (n, C) float32 volts, the ROS stamp of its first sample [ns]."""
        layout = (int(data.shape[1]), float(rate_hz), tuple(names))
        if layout != self._layout:
            self._outlet = self._make_outlet(*layout)
            self._layout = layout
        n = len(data)
        last_s = stamp_ns * 1e-9 + (n - 1) / rate_hz
        lsl_time = last_s - (self._clock() - self._pylsl.local_clock())
        self._outlet.push_chunk((np.asarray(data, np.float64) * UNITS[self.unit]).tolist(),
                                lsl_time)
        self.chunks += 1
        self.samples += n

    def _make_outlet(self, channels: int, rate_hz: float, names: tuple[str, ...]):
        pylsl = self._pylsl
        info = pylsl.StreamInfo(self.name, self.stream_type, channels, rate_hz, "float32",
                                self.source_id)
        chans = info.desc().append_child("channels")
        for k in range(channels):
            ch = chans.append_child("channel")
            ch.append_child_value("label", names[k] if k < len(names) else f"ch_{k + 1}")
            ch.append_child_value("unit", self.unit)
            ch.append_child_value("type", "EMG")
        info.desc().append_child("acquisition").append_child_value("manufacturer", "emg_hand")
        self.outlets_made += 1
        return pylsl.StreamOutlet(info)

    @property
    def consumers(self) -> bool:
        return self._outlet is not None and bool(self._outlet.have_consumers())


__all__ = ["UNITS", "LslRepublisher"]
