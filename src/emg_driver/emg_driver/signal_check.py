"""Is this armband working? A check of a few seconds of a live stream (pure numpy + scipy).

``emg_monitor --check`` collects ``emg/raw`` for a few seconds and calls :func:`check_stream`:
the stream as a whole (measured vs nominal rate, channel count, dropped samples from gaps
in ``first_sample_index``, clock drift of the stamps against the stream index) and each
channel (flat, stuck, saturated, dominated by mains interference), with a plain verdict
for each. The thresholds are for surface EMG in volts:

* flat: standard deviation below 0.1 uV (no electrode contact, a dead channel);
* stuck: the same value for at least 0.5 s (a frozen ADC or a lost channel);
* saturated: the channel's extreme values repeat in at least 0.5 % of the samples
  (clipping at the ADC's range: gain too high, an electrode off);
* mains: more than half of the power above 5 Hz within 1 Hz of 50 or 60 Hz or their
  harmonics (a missing reference / ground electrode, cables near a power supply).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FLAT_V = 1e-7
STUCK_S = 0.5
SATURATED_FRACTION = 0.005
MAINS_SHARE = 0.5
RATE_TOLERANCE = 0.05
DRIFT_PPM = 1000.0


@dataclass
class ChannelCheck:
    name: str
    rms_uv: float
    problems: list[str] = field(default_factory=list)
    mains_share: float = 0.0

    @property
    def verdict(self) -> str:
        return "ok" if not self.problems else "; ".join(self.problems)


@dataclass
class StreamCheck:
    nominal_rate_hz: float
    measured_rate_hz: float
    num_channels: int
    expected_channels: int | None
    samples: int
    dropped_samples: int
    clock_drift_ppm: float
    seconds: float
    channels: list[ChannelCheck]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(not c.problems for c in self.channels)

    def lines(self) -> list[str]:
        """A plain report, a line per finding."""
        out = [f"stream: {self.samples} samples in {self.seconds:.1f} s, "
               f"{self.num_channels} channels, rate {self.measured_rate_hz:.1f} Hz (nominal "
               f"{self.nominal_rate_hz:g}), {self.dropped_samples} dropped, clock drift "
               f"{self.clock_drift_ppm:+.0f} ppm: "
               + ("ok" if not self.problems else "; ".join(self.problems))]
        for c in self.channels:
            out.append(f"  {c.name:>12}: RMS {c.rms_uv:9.1f} uV, mains {100 * c.mains_share:4.0f} %"
                       f"  {c.verdict}")
        out.append("verdict: " + ("OK" if self.ok else "PROBLEMS"))
        return out

    def as_dict(self) -> dict:
        return {"ok": self.ok, "nominal_rate_hz": self.nominal_rate_hz,
                "measured_rate_hz": round(self.measured_rate_hz, 2),
                "num_channels": self.num_channels, "samples": self.samples,
                "dropped_samples": self.dropped_samples,
                "clock_drift_ppm": round(self.clock_drift_ppm, 1), "problems": self.problems,
                "channels": [{"name": c.name, "rms_uv": round(c.rms_uv, 2),
                              "mains_share": round(c.mains_share, 3), "verdict": c.verdict}
                             for c in self.channels]}


def mains_share(x: np.ndarray, rate_hz: float) -> float:
    """Largest share of the power above 5 Hz within 1 Hz of 50 or 60 Hz and harmonics."""
    from scipy.signal import welch

    n = len(x)
    if n < 64 or rate_hz < 110:
        return 0.0
    f, p = welch(x - x.mean(), fs=rate_hz, nperseg=min(n, int(rate_hz)))
    band = f >= 5.0
    total = float(p[band].sum())
    if total <= 0:
        return 0.0
    shares = []
    for base in (50.0, 60.0):
        near = np.zeros_like(band)
        for harmonic in np.arange(base, rate_hz / 2, base):
            near |= np.abs(f - harmonic) <= 1.0
        shares.append(float(p[near & band].sum()) / total)
    return max(shares)


def longest_run(x: np.ndarray) -> int:
    """Length of the longest run of identical consecutive values."""
    if len(x) == 0:
        return 0
    change = np.flatnonzero(np.diff(x) != 0)
    edges = np.concatenate([[-1], change, [len(x) - 1]])
    return int(np.diff(edges).max())


def check_channel(name: str, x: np.ndarray, rate_hz: float) -> ChannelCheck:
    x = np.asarray(x, dtype=np.float64)
    check = ChannelCheck(name, float(np.sqrt(np.mean(x ** 2))) * 1e6 if len(x) else 0.0)
    if len(x) == 0:
        check.problems.append("no samples")
        return check
    if x.std() < FLAT_V:
        check.problems.append("flat (no signal: electrode contact? channel dead?)")
        return check
    if longest_run(x) >= STUCK_S * rate_hz:
        check.problems.append(f"stuck (one value for {longest_run(x) / rate_hz:.1f} s)")
    hi, lo = x.max(), x.min()
    at_extremes = int(np.count_nonzero(x == hi) + np.count_nonzero(x == lo))
    if at_extremes > max(5, SATURATED_FRACTION * len(x)):
        check.problems.append(f"saturated ({100 * at_extremes / len(x):.1f} % of samples at "
                              f"{lo * 1e3:.3g} / {hi * 1e3:.3g} mV: lower the gain)")
    check.mains_share = mains_share(x, rate_hz)
    if check.mains_share > MAINS_SHARE:
        check.problems.append(f"mains interference ({100 * check.mains_share:.0f} % of the "
                              "power at 50/60 Hz: check the reference electrode)")
    return check


def check_stream(first_indices: np.ndarray, stamps_s: np.ndarray, chunks: list[np.ndarray],
                 rate_hz: float, names: list[str], receive_s: np.ndarray | None = None,
                 expected_channels: int | None = None) -> StreamCheck:
    """Check chunks (first sample index, stamp [s], (n, C) volts each) of one stream."""
    first = np.asarray(first_indices, dtype=np.int64)
    stamps = np.asarray(stamps_s, dtype=np.float64)
    sizes = np.array([len(c) for c in chunks], dtype=np.int64)
    data = np.concatenate(chunks) if chunks else np.zeros((0, len(names)))
    n, channels = data.shape if data.ndim == 2 else (0, 0)
    problems: list[str] = []
    dropped = int(np.clip(first[1:] - (first[:-1] + sizes[:-1]), 0, None).sum()) if len(first) \
        else 0
    span_samples = int(first[-1] + sizes[-1] - first[0]) if len(first) else 0
    times = np.asarray(receive_s, dtype=np.float64) if receive_s is not None else stamps
    seconds = float(times[-1] - times[0]) if len(times) > 1 else 0.0
    # samples that arrived per second of the receiver's clock (the first chunk opens the span)
    measured = (span_samples - sizes[0]) / seconds if seconds > 0 else 0.0
    drift = 0.0
    if len(first) > 2 and np.ptp(first) > 0:
        slope = np.polyfit(first.astype(np.float64), stamps, 1)[0]
        drift = (slope * rate_hz - 1.0) * 1e6
    if n == 0:
        problems.append("no samples")
    if measured and abs(measured - rate_hz) > RATE_TOLERANCE * rate_hz:
        problems.append(f"rate {measured:.1f} Hz is not the nominal {rate_hz:g} Hz")
    if expected_channels is not None and channels != expected_channels:
        problems.append(f"{channels} channels, expected {expected_channels}")
    if dropped:
        problems.append(f"{dropped} dropped samples")
    if abs(drift) > DRIFT_PPM:
        problems.append(f"clock drift {drift:+.0f} ppm")
    checks = [check_channel(names[c] if c < len(names) else f"ch_{c + 1}", data[:, c], rate_hz)
              for c in range(channels)]
    return StreamCheck(rate_hz, measured, channels, expected_channels, n, dropped, drift,
                       seconds, checks, problems)


__all__ = ["ChannelCheck", "StreamCheck", "check_channel", "check_stream", "mains_share"]
