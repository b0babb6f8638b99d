"""EMG features of windows, vectorised over windows and channels. numpy only.

Every feature maps windows ``x (..., W)`` [V] along the last axis (W samples) to ``(...,)``,
so ``(N, C, W)`` windows give ``(N, C)`` values in one call. Definitions (x_i, i = 1..W):

=========  ==========================================================  ======
name       value                                                        unit
=========  ==========================================================  ======
``MAV``    mean absolute value: (1/W) sum |x_i|                         V
``RMS``    root mean square: sqrt((1/W) sum x_i^2)                      V
``VAR``    sample variance: sum (x_i - mean)^2 / (W - 1)                V^2
``SSI``    simple square integral: sum x_i^2                            V^2
``WL``     waveform length: sum |x_{i+1} - x_i|                         V
``ZC``     zero crossings: x_i x_{i+1} < 0 and |x_i - x_{i+1}| >= t     count
``SSC``    slope sign changes: (x_i - x_{i-1})(x_i - x_{i+1}) > 0 and   count
           >= t^2 (t in volts, so the product of the two slopes is V^2)
``WAMP``   Willison amplitude: |x_{i+1} - x_i| >= t                     count
``ENT``    Shannon entropy of the window's energy distribution:         nats
           -sum p_i ln p_i, p_i = (x_i^2 + e) / sum (x_j^2 + e),
           e = 1e-18 V^2 (a silent window is uniform: ln W)
=========  ==========================================================  ======

Thresholds ``t`` are in volts (:attr:`FeatureSpec.thresholds_v`); ``ZC``/``SSC`` default to
0 (every strict sign change), ``WAMP`` to 10 uV (one count of a Myo at the nominal scale).

Named sets (:data:`FEATURE_SETS`): ``hudgins_td`` (MAV, ZC, SSC, WL: the field's LDA
baseline), ``lstm_fin4`` (ENT, RMS, VAR, SSI: what LSTM-FIN imitates), ``td8`` (all eight
time-domain features) and ``td9`` (td8 + ENT). :func:`extract` stacks a set's features into
one vector per window, feature-major (``MAV_ch_1 .. MAV_ch_8, ZC_ch_1, ...``); with
``log_amplitude`` the amplitude features (V, V^2) enter as natural logs (gains become
offsets, which suits a linear classifier).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

ENTROPY_EPS_V2 = 1e-18
LOG_FLOOR = 1e-12  # added before log for amplitude features


def mav(x: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(x), axis=-1)


def rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(x), axis=-1))


def var(x: np.ndarray) -> np.ndarray:
    return np.var(x, axis=-1, ddof=1)


def ssi(x: np.ndarray) -> np.ndarray:
    return np.sum(np.square(x), axis=-1)


def wl(x: np.ndarray) -> np.ndarray:
    return np.sum(np.abs(np.diff(x, axis=-1)), axis=-1)


def zc(x: np.ndarray, threshold_v: float = 0.0) -> np.ndarray:
    d = np.diff(x, axis=-1)
    crossing = (x[..., :-1] * x[..., 1:] < 0) & (np.abs(d) >= threshold_v)
    return np.sum(crossing, axis=-1).astype(np.float64)


def ssc(x: np.ndarray, threshold_v: float = 0.0) -> np.ndarray:
    d = np.diff(x, axis=-1)
    # (x_i - x_{i-1}) (x_i - x_{i+1}) = -d_{i-1} d_i for the inner samples
    product = -d[..., :-1] * d[..., 1:]
    change = (product > 0) & (product >= threshold_v ** 2)
    return np.sum(change, axis=-1).astype(np.float64)


def wamp(x: np.ndarray, threshold_v: float = 1e-5) -> np.ndarray:
    return np.sum(np.abs(np.diff(x, axis=-1)) >= threshold_v, axis=-1).astype(np.float64)


def entropy(x: np.ndarray) -> np.ndarray:
    energy = np.square(x) + ENTROPY_EPS_V2
    p = energy / np.sum(energy, axis=-1, keepdims=True)
    return -np.sum(p * np.log(p), axis=-1)


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    unit: str  # "V", "V^2", "count" or "nats"
    fn: Callable[..., np.ndarray]
    threshold: float | None = None  # default threshold [V]; None: the feature takes none

    @property
    def amplitude(self) -> bool:
        return self.unit in ("V", "V^2")


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("MAV", "mean absolute value", "V", mav),
    Feature("RMS", "root mean square", "V", rms),
    Feature("VAR", "variance", "V^2", var),
    Feature("SSI", "simple square integral", "V^2", ssi),
    Feature("WL", "waveform length", "V", wl),
    Feature("ZC", "zero crossings", "count", zc, 0.0),
    Feature("SSC", "slope sign changes", "count", ssc, 0.0),
    Feature("WAMP", "Willison amplitude", "count", wamp, 1e-5),
    Feature("ENT", "Shannon entropy of the energy distribution", "nats", entropy),
)}

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "hudgins_td": ("MAV", "ZC", "SSC", "WL"),
    "lstm_fin4": ("ENT", "RMS", "VAR", "SSI"),
    "td8": ("MAV", "RMS", "VAR", "SSI", "WL", "ZC", "SSC", "WAMP"),
    "td9": ("MAV", "RMS", "VAR", "SSI", "WL", "ZC", "SSC", "WAMP", "ENT"),
}


def feature_names_of(set_or_names: str | Sequence[str]) -> tuple[str, ...]:
    """A set name or a list of feature names -> the feature names (ValueError if unknown)."""
    if isinstance(set_or_names, str):
        if set_or_names in FEATURE_SETS:
            return FEATURE_SETS[set_or_names]
        names = tuple(n.strip() for n in set_or_names.split(",") if n.strip())
    else:
        names = tuple(set_or_names)
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise ValueError(f"unknown features {unknown or set_or_names!r}; known: "
                         f"{sorted(FEATURES)}, sets: {sorted(FEATURE_SETS)}")
    return names


@dataclass(frozen=True)
class FeatureSpec:
    """Which features, their thresholds [V] and the log transform (stored in checkpoints)."""

    features: tuple[str, ...] = FEATURE_SETS["hudgins_td"]
    thresholds_v: dict[str, float] = field(default_factory=dict)  # name -> threshold [V]
    log_amplitude: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", feature_names_of(self.features))
        bad = {k: v for k, v in self.thresholds_v.items()
               if k not in FEATURES or FEATURES[k].threshold is None
               or not (np.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(f"thresholds {bad}: only ZC, SSC and WAMP take one, >= 0 V")

    def threshold(self, name: str) -> float | None:
        default = FEATURES[name].threshold
        return None if default is None else float(self.thresholds_v.get(name, default))

    def names(self, channel_names: Sequence[str]) -> list[str]:
        return [f"{f}_{c}" for f in self.features for c in channel_names]

    def to_dict(self) -> dict:
        return {"features": list(self.features), "log_amplitude": self.log_amplitude,
                "thresholds_v": {f: self.threshold(f) for f in self.features
                                 if self.threshold(f) is not None}}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSpec:
        return cls(tuple(d["features"]), dict(d.get("thresholds_v", {})),
                   bool(d.get("log_amplitude", False)))


def compute(name: str, x: np.ndarray, spec: FeatureSpec | None = None) -> np.ndarray:
    """One feature of windows ``x (..., W)`` [V] (see the module table)."""
    spec = spec or FeatureSpec((name,))
    feature = FEATURES[name]
    threshold = spec.threshold(name)
    return feature.fn(x) if threshold is None else feature.fn(x, threshold)


def extract(windows: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Windows (N, C, W) [V] -> (N, F * C) float64, feature-major (:meth:`FeatureSpec.names`)."""
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] < 3:
        raise ValueError(f"expected windows (N, C, W) with W >= 3, got {x.shape}")
    out = []
    for name in spec.features:
        value = compute(name, x, spec)
        if spec.log_amplitude and FEATURES[name].amplitude:
            value = np.log(value + LOG_FLOOR)
        out.append(value)
    return np.concatenate(out, axis=1)


__all__ = ["FEATURES", "FEATURE_SETS", "Feature", "FeatureSpec", "compute", "entropy",
           "extract", "feature_names_of", "mav", "rms", "ssc", "ssi", "var", "wamp", "wl", "zc"]
