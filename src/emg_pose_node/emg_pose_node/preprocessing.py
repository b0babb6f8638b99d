"""EMG preprocessing: the one code path for training, evaluation and live inference.

Pipeline, all causal and stateful so a stream cut into chunks gives exactly what the
whole recording gives (the seed's bug was global statistics at training and per-window
statistics at inference; here both paths call :meth:`Preprocessor.process`)::

    samples (n, C) [V] at sample_rate_hz
      -> band filters: high-pass, notch, low-pass (Butterworth / IIR notch, causal SOS)
      -> optional full-wave rectification, then an optional envelope low-pass
      -> anti-alias low-pass (when decimating and no filter already limits the band)
      -> keep every ``decimation``-th sample (model rate = sample_rate_hz / decimation)
      -> normalise per channel with mean/std fitted on training data only, or, with
         ``adapt_s``, with statistics that follow the stream (below)
    -> (m, C) float32 at the model rate

Adaptive (per-session) normalisation, ``adapt_s`` = A seconds: each channel's mean and
variance are running averages over the stream so far, started from the training
statistics as if they were A seconds of data (``prior`` weight): after t seconds the
statistics are (A x training + t x stream) / (A + t), over at most the last ``adapt_max_s``
seconds (then an exponential average with that time constant). A re-donned armband (other
contact, other gains per electrode) is then normalised by its own statistics within about
A seconds; a new stream (a reset) starts from the training statistics again. Training
normalises every recording this way from its start, so the model sees what it sees live.

Model-rate sample j of a stream comes from input sample (j + 1) * decimation - 1, so a
window's target is the label at that input sample (:func:`model_rate_indices`).
Filter states start at zero at the beginning of a stream (both paths). scipy is imported only
by configurations with filters (seconds of import time the live node saves otherwise).
Configurations are data from checkpoint files: every field is checked (finite, in range).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, replace

import numpy as np

MAX_SAMPLE_RATE_HZ = 1e6
MAX_DECIMATION = 1000
MAX_FILTER_ORDER = 16
MAX_CHANNELS = 256


def _real(value) -> bool:
    """A finite real number (not a bool)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings plus fitted normalisation (stored in every checkpoint)."""

    sample_rate_hz: float  # rate of the incoming EMG
    decimation: int = 1  # model rate = sample_rate_hz / decimation
    highpass_hz: float | None = None
    notch_hz: float | None = None
    notch_q: float = 30.0
    lowpass_hz: float | None = None
    rectify: bool = False
    envelope_hz: float | None = None  # low-pass after rectification
    filter_order: int = 4
    # Normalisation per channel, applied last; None until fitted.
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_names: tuple[str, ...] = field(default=())
    adapt_s: float | None = None  # adaptive normalisation: weight of the training stats [s]
    adapt_max_s: float = 120.0  # adaptive normalisation: longest memory [s]

    def __post_init__(self) -> None:
        if not (_real(self.sample_rate_hz) and 0 < self.sample_rate_hz <= MAX_SAMPLE_RATE_HZ):
            raise ValueError(f"sample_rate_hz must be in (0, {MAX_SAMPLE_RATE_HZ:g}], got "
                             f"{self.sample_rate_hz!r}")
        if (isinstance(self.decimation, bool) or not _real(self.decimation)
                or int(self.decimation) != self.decimation
                or not 1 <= self.decimation <= MAX_DECIMATION):
            raise ValueError(f"decimation must be an integer in [1, {MAX_DECIMATION}], got "
                             f"{self.decimation!r}")
        object.__setattr__(self, "decimation", int(self.decimation))
        if isinstance(self.filter_order, bool) or self.filter_order not in range(
                1, MAX_FILTER_ORDER + 1):
            raise ValueError(f"filter_order must be an integer in [1, {MAX_FILTER_ORDER}], got "
                             f"{self.filter_order!r}")
        if not (_real(self.notch_q) and 0 < self.notch_q <= 1e4):
            raise ValueError(f"notch_q must be in (0, 1e4], got {self.notch_q!r}")
        if not isinstance(self.rectify, bool):
            raise ValueError(f"rectify must be true or false, got {self.rectify!r}")
        nyquist = self.sample_rate_hz / 2.0
        for name in ("highpass_hz", "notch_hz", "lowpass_hz", "envelope_hz"):
            value = getattr(self, name)
            if value is not None and not (_real(value) and 0.0 < value < nyquist):
                raise ValueError(f"{name}={value!r} must be in (0, {nyquist}) (Nyquist)")
        if self.adapt_s is not None and not (_real(self.adapt_s) and self.adapt_s > 0
                                             and _real(self.adapt_max_s) and self.adapt_max_s > 0):
            raise ValueError(f"adapt_s and adapt_max_s must be > 0, got {self.adapt_s}, "
                             f"{self.adapt_max_s}")
        if self.envelope_hz is not None and not self.rectify:
            raise ValueError("envelope_hz needs rectify=True")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                if (isinstance(value, (str, bytes)) or not hasattr(value, "__len__")
                        or len(value) > MAX_CHANNELS or not all(_real(v) for v in value)):
                    raise ValueError(f"{name} must be a list of at most {MAX_CHANNELS} finite "
                                     "numbers")
                object.__setattr__(self, name, tuple(float(v) for v in value))
        names = self.channel_names
        if (isinstance(names, (str, bytes)) or not hasattr(names, "__len__")
                or len(names) > MAX_CHANNELS or not all(isinstance(n, str) for n in names)):
            raise ValueError(f"channel_names must be a list of at most {MAX_CHANNELS} strings")
        object.__setattr__(self, "channel_names", tuple(names))
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std are fitted together")
        if self.std is not None and (len(self.std) != len(self.mean) or min(self.std, default=1)
                                     <= 0):
            raise ValueError("std must be positive and finite, one per channel like mean")

    @property
    def model_rate_hz(self) -> float:
        return self.sample_rate_hz / self.decimation

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    @property
    def num_channels(self) -> int | None:
        if self.mean is not None:
            return len(self.mean)
        return len(self.channel_names) or None

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("mean", "std", "channel_names"):
            if d[name] is not None:
                d[name] = [v if isinstance(v, str) else float(v) for v in d[name]]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        if not isinstance(d, dict):
            raise ValueError(f"preprocessing settings must be a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown preprocessing settings {unknown}")
        return cls(**d)


@dataclass(frozen=True)
class PreprocessState:
    """Filter memories and decimation phase of one stream (immutable; process returns a new one)."""

    zi_band: np.ndarray | None  # (sections, 2, C)
    zi_post: np.ndarray | None
    phase: int  # input samples since the last kept sample
    norm: tuple[float, np.ndarray, np.ndarray] | None = None  # adaptive: (weight, E[y], E[y²])


def _sos(kind: str, cutoff, rate: float, order: int) -> np.ndarray:
    from scipy import signal

    return signal.butter(order, cutoff, btype=kind, fs=rate, output="sos")


class Preprocessor:
    """Stateless engine for a :class:`PreprocessConfig`; states are passed in and out."""

    def __init__(self, config: PreprocessConfig) -> None:
        self.config = c = config
        rate, order = c.sample_rate_hz, c.filter_order
        band = []
        if c.highpass_hz is not None:
            band.append(_sos("highpass", c.highpass_hz, rate, order))
        if c.notch_hz is not None:
            from scipy import signal

            b, a = signal.iirnotch(c.notch_hz, c.notch_q, fs=rate)
            band.append(signal.tf2sos(b, a))
        if c.lowpass_hz is not None:
            band.append(_sos("lowpass", c.lowpass_hz, rate, order))
        post = []
        if c.envelope_hz is not None:
            post.append(_sos("lowpass", c.envelope_hz, rate, order))
        if c.decimation > 1:
            new_nyquist = c.model_rate_hz / 2.0
            limits = [f for f in (c.envelope_hz,) + ((c.lowpass_hz,) if not c.rectify else ())
                      if f is not None]
            if not limits or min(limits) > 0.8 * new_nyquist:
                post.append(_sos("lowpass", 0.8 * new_nyquist, rate, 8))
        self._band = np.concatenate(band) if band else None
        self._post = np.concatenate(post) if post else None
        if c.fitted:
            self._mean = np.asarray(c.mean, dtype=np.float64)
            self._std = np.asarray(c.std, dtype=np.float64)

    def initial_state(self, channels: int) -> PreprocessState:
        def zeros(sos):
            return None if sos is None else np.zeros((sos.shape[0], 2, channels))
        norm = None
        if self.config.adapt_s is not None and self.config.fitted:
            prior = self.config.adapt_s * self.config.model_rate_hz  # [model-rate samples]
            norm = (prior, self._mean.copy(), self._std ** 2 + self._mean ** 2)
        return PreprocessState(zeros(self._band), zeros(self._post), 0, norm)

    def filter(self, x: np.ndarray, state: PreprocessState) -> tuple[np.ndarray, PreprocessState]:
        """Everything but normalisation: (n, C) -> (m, C) float64 at the model rate."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"expected samples of shape (n, channels), got {x.shape}")
        zi_band, zi_post = state.zi_band, state.zi_post
        if zi_band is not None and zi_band.shape[2] != x.shape[1]:
            raise ValueError(f"state is for {zi_band.shape[2]} channels, got {x.shape[1]}")
        y = x
        if self._band is not None or self._post is not None:
            from scipy import signal
        if self._band is not None:
            y, zi_band = signal.sosfilt(self._band, y, axis=0, zi=zi_band)
        if self.config.rectify:
            y = np.abs(y)
        if self._post is not None:
            y, zi_post = signal.sosfilt(self._post, y, axis=0, zi=zi_post)
        d = self.config.decimation
        first = (d - 1 - state.phase) % d  # first kept sample in this chunk
        kept = y[first::d]
        phase = (state.phase + len(x)) % d
        return kept, PreprocessState(zi_band, zi_post, phase, state.norm)

    def normalise(self, y: np.ndarray) -> np.ndarray:
        if not self.config.fitted:
            raise ValueError("normalisation statistics are not fitted (fit_normalisation)")
        if y.shape[-1] != len(self._mean):
            raise ValueError(f"normalisation is for {len(self._mean)} channels, got {y.shape[-1]}")
        return ((y - self._mean) / self._std).astype(np.float32)

    def normalise_stream(self, y: np.ndarray, state: PreprocessState
                         ) -> tuple[np.ndarray, PreprocessState]:
        """Filtered model-rate samples (m, C) -> normalised (m, C) float32 and the new state:
        the fitted statistics, or with ``adapt_s`` the running ones (module docstring)."""
        if state.norm is None or len(y) == 0:
            return self.normalise(y), state
        from scipy import signal  # only for adaptive normalisation (start-up stays light)

        weight, m1, m2 = state.norm
        cap = self.config.adapt_max_s * self.config.model_rate_hz
        y = np.asarray(y, dtype=np.float64)
        # running averages: sample t weighs 1 / (weight + t) while that is below the cap,
        # then 1 / cap (an exponential average)
        grow = int(np.clip(np.floor(cap - weight), 0, len(y)))
        means, squares = [], []
        if grow:
            w = (weight + np.arange(1, grow + 1))[:, None]
            means.append((weight * m1 + np.cumsum(y[:grow], axis=0)) / w)
            squares.append((weight * m2 + np.cumsum(y[:grow] ** 2, axis=0)) / w)
            weight, m1, m2 = weight + grow, means[-1][-1], squares[-1][-1]
        if grow < len(y):
            a = 1.0 / cap
            rest = y[grow:]
            means.append(signal.lfilter([a], [1.0, a - 1.0], rest, axis=0,
                                        zi=((1 - a) * m1)[None])[0])
            squares.append(signal.lfilter([a], [1.0, a - 1.0], rest ** 2, axis=0,
                                          zi=((1 - a) * m2)[None])[0])
            weight, m1, m2 = cap, means[-1][-1], squares[-1][-1]
        mean, sq = np.concatenate(means), np.concatenate(squares)
        var = np.maximum(sq - mean ** 2, (1e-3 * self._std) ** 2)
        out = ((y - mean) / np.sqrt(var)).astype(np.float32)
        return out, replace(state, norm=(float(weight), m1.copy(), m2.copy()))

    def normalise_all(self, y: np.ndarray) -> np.ndarray:
        """A whole recording's filtered samples from the start of a stream (training and
        evaluation: the same statistics the live stream gets)."""
        return self.normalise_stream(y, self.initial_state(y.shape[-1]))[0]

    def process(self, x: np.ndarray, state: PreprocessState) -> tuple[np.ndarray, PreprocessState]:
        """Samples (n, C) [V] -> normalised model-rate samples (m, C) float32, new state."""
        y, state = self.filter(x, state)
        return self.normalise_stream(y, state)

    def run(self, x: np.ndarray) -> np.ndarray:
        """A whole recording (N, C) from a fresh stream state -> (M, C) float32."""
        x = np.asarray(x)
        return self.process(x, self.initial_state(x.shape[1]))[0]


def model_rate_indices(num_input: int, decimation: int) -> np.ndarray:
    """Input-sample index of every model-rate sample of a stream of ``num_input`` samples."""
    return np.arange(decimation - 1, num_input, decimation)


def fit_normalisation(config: PreprocessConfig, filtered: list[np.ndarray]) -> PreprocessConfig:
    """Fit per-channel mean/std on filtered training samples [(M_i, C)] -> fitted config.

    Only training data may be passed here: the statistics become part of the model.
    """
    data = np.concatenate([np.asarray(f, dtype=np.float64) for f in filtered if len(f)])
    if len(data) < 2:
        raise ValueError("need at least 2 training samples to fit normalisation")
    return _with_statistics(config, data.mean(axis=0), data.std(axis=0))


def normalisation_from_moments(config: PreprocessConfig, moments: Moments) -> PreprocessConfig:
    """:func:`fit_normalisation` from streamed :class:`Moments` of the filtered training
    samples (the same statistics, without the samples in memory)."""
    if moments.count < 2:
        raise ValueError("need at least 2 training samples to fit normalisation")
    return _with_statistics(config, moments.mean, moments.std())


def _with_statistics(config: PreprocessConfig, mean: np.ndarray,
                     std: np.ndarray) -> PreprocessConfig:
    floor = max(1e-12, 1e-6 * float(np.median(std)) if np.any(std > 0) else 1e-12)
    std = np.maximum(std, floor)  # a dead channel must not blow up
    return replace(config, mean=tuple(mean.tolist()), std=tuple(std.tolist()))


@dataclass(frozen=True)
class Moments:
    """Count, mean and summed squared deviations (``m2``) per column of rows seen so far.

    Blocks merge exactly (Chan, Golub and LeVeque's pairwise update), so statistics of data
    streamed from disk block by block equal those of all rows at once, to rounding.
    """

    count: int
    mean: np.ndarray  # (K,) float64
    m2: np.ndarray  # (K,) float64

    @classmethod
    def empty(cls, columns: int) -> Moments:
        return cls(0, np.zeros(columns), np.zeros(columns))

    @classmethod
    def of(cls, rows: np.ndarray) -> Moments:
        """Moments of rows (n, K)."""
        rows = np.asarray(rows, dtype=np.float64)
        if len(rows) == 0:
            return cls.empty(rows.shape[1])
        mean = rows.mean(axis=0)
        return cls(len(rows), mean, ((rows - mean) ** 2).sum(axis=0))

    def merge(self, other: Moments) -> Moments:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        return Moments(n, self.mean + delta * (other.count / n),
                       self.m2 + other.m2 + delta ** 2 * (self.count * other.count / n))

    def std(self, ddof: int = 0) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count - ddof, 1))
