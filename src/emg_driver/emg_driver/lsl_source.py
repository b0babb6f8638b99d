"""A Lab Streaming Layer stream as an EMG source (PyPI ``pylsl``; its Linux wheel bundles
liblsl).

Configure resolves the stream by name / type / source_id (all given ones must match) with a
timeout, then takes the channel count, nominal rate, channel labels and units from its info
(``desc/channels/channel/{label,unit}``). Samples are pulled in chunks on a thread; each
sample's LSL timestamp, plus the outlet-to-inlet ``time_correction()`` (refreshed every few
seconds), is mapped to the node's clock through the offset between that clock and LSL's
``local_clock()``, and the acquisition clock is fitted through those times. Units: a channel
in microvolts, millivolts or volts is converted to volts; a channel without a unit is
scaled by ``scale_v_per_unit``. A gap in the timestamps larger than half a sample period is
counted as dropped samples; a lost outlet is reported and resolved again (the time without
samples becomes a gap). ``pylsl`` is imported when the source is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .pipeline import ChunkSink, EventSink
from .sources import LibrarySource

UNIT_SCALE_V = {
    "v": 1.0, "volt": 1.0, "volts": 1.0,
    "mv": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
    "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6,
    "nv": 1e-9, "nanovolt": 1e-9, "nanovolts": 1e-9,
}
CORRECTION_PERIOD_S = 5.0


def predicate(name: str = "", stream_type: str = "", source_id: str = "") -> str:
    """An XPath predicate for ``resolve_bypred`` matching every given property."""
    parts = [f"{key}='{value}'" for key, value in (
        ("name", name), ("type", stream_type), ("source_id", source_id)) if value]
    if not parts:
        raise ValueError("give at least one of lsl_name, lsl_type, lsl_source_id")
    if any("'" in value for value in (name, stream_type, source_id)):
        raise ValueError("LSL stream properties must not contain quotes")
    return " and ".join(parts)


def channel_scales(units: list[str], default_scale: float) -> tuple[np.ndarray, str]:
    """Volts per stream unit for each channel, and a note of where they came from."""
    scales, notes = [], set()
    for unit in units:
        key = unit.strip().lower()
        if key in UNIT_SCALE_V:
            scales.append(UNIT_SCALE_V[key])
            notes.add(unit.strip())
        else:
            scales.append(default_scale)
            notes.add(f"{unit.strip() or 'no unit'} x {default_scale:g} V (scale_v_per_unit)")
    return np.asarray(scales, dtype=np.float64), ", ".join(sorted(notes))


def counters_from_gaps(times: np.ndarray, rate_hz: float, last: tuple[float, int] | None
                       ) -> tuple[np.ndarray, tuple[float, int]]:
    """Sample counters from timestamps: each sample is one period after the one before it,
    or more where the timestamps leave a gap of more than half a period."""
    t = np.asarray(times, dtype=np.float64)
    prev_t = np.concatenate([[last[0] if last else t[0] - 1.0 / rate_hz], t[:-1]])
    steps = np.maximum(1, np.rint((t - prev_t) * rate_hz)).astype(np.int64)
    start = last[1] if last else -1
    counters = start + np.cumsum(steps)
    return counters, (float(t[-1]), int(counters[-1]))


class LslSource(LibrarySource):
    """An LSL stream (resolved at construction: ValueError when none appears in time)."""

    kind = "lsl"

    def __init__(self, name: str, stream_type: str, source_id: str, resolve_timeout_s: float,
                 default_scale_v: float, chunk_ms: float, clock: Callable[[], float],
                 on_chunks: ChunkSink, on_event: EventSink, **kw: Any) -> None:
        import pylsl

        from .stream import chunk_len_for

        self._pylsl = pylsl
        self.predicate = predicate(name, stream_type, source_id)
        self.resolve_timeout_s = float(resolve_timeout_s)
        found = pylsl.resolve_bypred(self.predicate, 1, self.resolve_timeout_s)
        if not found:
            raise ValueError(f"no LSL stream matching {self.predicate} found in "
                             f"{self.resolve_timeout_s:g} s (is the outlet running on this "
                             "network? configure again once it is)")
        info = found[0]
        rate = float(info.nominal_srate())
        if rate <= 0:
            raise ValueError(f"LSL stream {info.name()!r} has an irregular rate; EMG needs a "
                             "nominal sample rate")
        if info.channel_format() == pylsl.cf_string:
            raise ValueError(f"LSL stream {info.name()!r} carries strings, not samples")
        self.stream_name = info.name()
        self.stream_uid = info.uid()
        super().__init__(rate, info.channel_count(), chunk_len_for(chunk_ms, rate), clock,
                         on_chunks, on_event, **kw)
        self._default_scale = float(default_scale_v)
        self._info = info
        self._inlet = None
        self._correction = 0.0
        self._corrected_at = -1e9
        self._last: tuple[float, int] | None = None
        self.units_note = ""
        self.scales = np.full(self.num_channels, self._default_scale)
        self._connect()  # labels and units need the full info: fail at configure if absent
        self.connected = True
        self._ever_connected = True

    @property
    def hardware_id(self) -> str:
        return f"lsl {self.stream_name} ({self.predicate})"

    def describe(self) -> str:
        return (f"{super().describe()}, LSL stream {self.stream_name!r} "
                f"({self.predicate}; {self.units_note})")

    def _connect(self) -> None:
        pylsl = self._pylsl
        if self._info is None:
            found = pylsl.resolve_bypred(self.predicate, 1, min(self.resolve_timeout_s, 1.0))
            if not found:
                raise RuntimeError(f"no LSL stream matching {self.predicate}")
            info = found[0]
            if info.channel_count() != self.num_channels or \
                    info.nominal_srate() != self.sample_rate_hz:
                raise RuntimeError(f"LSL stream {info.name()!r} now has "
                                   f"{info.channel_count()} ch at {info.nominal_srate()} Hz, "
                                   f"not {self.num_channels} at {self.sample_rate_hz:g}")
            self._info = info
        inlet = pylsl.StreamInlet(self._info, max_buflen=10, recover=False)
        inlet.open_stream(timeout=self.resolve_timeout_s)
        full = inlet.info(timeout=self.resolve_timeout_s)
        labels, units = [], []
        ch = full.desc().child("channels").child("channel")
        for k in range(self.num_channels):
            labels.append(ch.child_value("label") or f"ch_{k + 1}")
            units.append(ch.child_value("unit"))
            ch = ch.next_sibling()
        if len(set(labels)) == len(labels):
            self.channel_names = labels
        self.scales, self.units_note = channel_scales(units, self._default_scale)
        self._correction = inlet.time_correction(timeout=self.resolve_timeout_s)
        self._corrected_at = self._clock()
        self._inlet = inlet
        self._last = None

    def _disconnect(self) -> None:
        inlet, self._inlet = self._inlet, None
        self._info = None  # resolve again: the outlet may come back as a new stream
        if inlet is not None:
            inlet.close_stream()

    def _read(self, now_s: float) -> int:
        inlet = self._inlet
        if inlet is None:
            return 0
        if now_s - self._corrected_at > CORRECTION_PERIOD_S:
            self._correction = inlet.time_correction(timeout=1.0)
            self._corrected_at = now_s
        samples, stamps = inlet.pull_chunk(timeout=0.0, max_samples=4096)
        if not stamps:
            return 0
        values = (np.asarray(samples, dtype=np.float64) * self.scales).astype(np.float32)
        times = np.asarray(stamps, dtype=np.float64) + self._correction
        counters, self._last = counters_from_gaps(times, self.sample_rate_hz, self._last)
        # LSL clock -> the node's clock (read back to back: microseconds apart)
        offset = self._clock() - self._pylsl.local_clock()
        self.pipeline.push(values, times + offset, counters, 0)
        return len(stamps)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "lsl_stream": self.stream_name,
                "lsl_time_correction_s": round(self._correction, 6), "lsl_units": self.units_note}


__all__ = ["LslSource", "channel_scales", "counters_from_gaps", "predicate"]
