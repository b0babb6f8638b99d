"""The one in-memory form of a recording, whatever file it came from.

A :class:`Recording` is EMG (N samples x C channels) **in volts** at a nominal sample rate,
with optional labels on the same sample grid: joint angles (N, 20) [rad] with a label mask,
keypoints (N, 21, 3) [m], named values (N, K) such as finger flexion, gesture classes (N,),
and the file's own sample times [s].

The units rule, the same for training, evaluation and the driver's replay: every reader
returns volts. Formats in physical units convert with their known factor (microvolt CSVs:
1e-6); formats in raw counts (the Myo's int8) use the format's default scale or one the
caller gives; the recording states which (``scale_v_per_unit``, ``units_note``).
Rows whose EMG is not finite are kept in place as zeros with ``emg_valid`` False and
counted in ``meta["nonfinite_rows"]``: the sample grid never shifts, windows over them are
left out of training and the driver replays them as dropped samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..hand_model import NUM_JOINTS, NUM_KEYPOINTS, forward_kinematics


class DataError(ValueError):
    """A recording could not be read or is inconsistent; the message says why (and where)."""


def default_channel_names(num_channels: int) -> tuple[str, ...]:
    """ch_1 .. ch_N."""
    return tuple(f"ch_{k + 1}" for k in range(num_channels))


@dataclass
class Recording:
    """EMG [V] with optional labels on the same sample grid (see module docstring)."""

    emg: np.ndarray  # (N, C) float32 [V]
    sample_rate_hz: float
    channel_names: tuple[str, ...] = ()
    timestamps_s: np.ndarray | None = None  # (N,) [s], the file's own clock
    joint_angles: np.ndarray | None = None  # (N, 20) [rad], JOINT_NAMES order
    keypoints: np.ndarray | None = None  # (N, 21, 3) [m], hand_base
    values: np.ndarray | None = None  # (N, K), named by value_names
    value_names: tuple[str, ...] = ()
    label_mask: np.ndarray | None = None  # (N,) bool: labels valid at this sample
    emg_valid: np.ndarray | None = None  # (N,) bool: False = dropped / unreadable EMG
    gesture: np.ndarray | None = None  # (N,) int class index (-1 = no label)
    gesture_names: tuple[str, ...] = ()  # class index -> name, where the format knows them
    side: str = "right"
    source: str = ""  # the path read
    format: str = ""  # a name of recordings.FORMATS
    scale_v_per_unit: float = 1.0  # what the file's EMG values were multiplied by
    units_note: str = "volts"  # where that scale came from
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.emg = np.asarray(self.emg, dtype=np.float32)
        if self.emg.ndim != 2 or self.emg.shape[0] == 0 or self.emg.shape[1] == 0:
            raise DataError(f"{self.source}: EMG must be (samples, channels) with at least one "
                            f"of each, got {self.emg.shape}")
        n, c = self.emg.shape
        self.channel_names = tuple(self.channel_names) or default_channel_names(c)
        self.value_names = tuple(self.value_names)
        self.gesture_names = tuple(self.gesture_names)
        if len(self.channel_names) != c:
            raise DataError(f"{self.source}: {c} EMG channels but {len(self.channel_names)} names")
        self.sample_rate_hz = float(self.sample_rate_hz)
        if not (np.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0):
            raise DataError(f"{self.source}: bad sample rate {self.sample_rate_hz}")
        if not np.all(np.isfinite(self.emg)):
            raise DataError(f"{self.source}: EMG contains NaN or inf (readers zero such rows "
                            "and mark them in emg_valid)")
        shapes = {"timestamps_s": (n,), "joint_angles": (n, NUM_JOINTS),
                  "keypoints": (n, NUM_KEYPOINTS, 3), "label_mask": (n,), "emg_valid": (n,),
                  "gesture": (n,)}
        if self.values is not None:
            shapes["values"] = (n, len(self.value_names))
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise DataError(f"{self.source}: {name} has shape {np.shape(value)}, "
                                f"expected {shape}")
        for name in ("label_mask", "emg_valid"):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name), dtype=bool))

    # --- properties ----------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return int(self.emg.shape[0])

    @property
    def num_channels(self) -> int:
        return int(self.emg.shape[1])

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate_hz

    @property
    def emg_unit(self) -> str:
        """Always volts (the units rule); kept for readers of older summaries."""
        return "V"

    @property
    def labels(self) -> tuple[str, ...]:
        """The kinds of labels this recording holds."""
        return tuple(name for name in ("joint_angles", "keypoints", "values", "gesture")
                     if getattr(self, name) is not None)

    def valid_labels(self) -> np.ndarray:
        """(N,) bool: rows whose labels (and EMG) are usable."""
        mask = np.ones(self.num_samples, bool) if self.label_mask is None else self.label_mask
        return mask if self.emg_valid is None else mask & self.emg_valid

    def valid_emg(self) -> np.ndarray:
        """(N,) bool: rows whose EMG is real (not a zero-filled gap)."""
        return np.ones(self.num_samples, bool) if self.emg_valid is None else self.emg_valid

    def describe_labels(self) -> str:
        """What the recording holds, in words (for errors that say which command fits)."""
        parts = []
        if self.joint_angles is not None:
            parts.append("joint angles")
        if self.keypoints is not None:
            parts.append("keypoints")
        if self.values is not None:
            parts.append(f"named values {list(self.value_names)}")
        if self.gesture is not None:
            classes = sorted(set(np.unique(self.gesture).tolist()) - {-1})
            parts.append(f"gesture labels (classes {classes})")
        return ", ".join(parts) if parts else "EMG only, no labels"

    def targets(self, output: str, names: tuple[str, ...] = ()) -> np.ndarray:
        """Labels for a pose model's output convention: (N, out) float32.

        "keypoints" uses recorded keypoints or, failing that, forward kinematics of the
        joint angles; "values" picks ``names`` from :attr:`value_names`.
        """
        if output == "joint_angles":
            if self.joint_angles is None:
                raise DataError(f"{self.source}: no joint angles to train joint_angles on "
                                f"(it holds {self.describe_labels()})")
            return self.joint_angles.astype(np.float32)
        if output == "keypoints":
            if self.keypoints is not None:
                kp = self.keypoints
            elif self.joint_angles is not None:
                kp = forward_kinematics(self.joint_angles)
            else:
                raise DataError(f"{self.source}: no keypoints or joint angles (it holds "
                                f"{self.describe_labels()})")
            return kp.reshape(self.num_samples, -1).astype(np.float32)
        if output == "values":
            if self.values is None:
                raise DataError(f"{self.source}: no named values such as finger flexions (it "
                                f"holds {self.describe_labels()})")
            missing = [n for n in names if n not in self.value_names]
            if missing:
                raise DataError(f"{self.source}: values {missing} not in {self.value_names}")
            idx = [self.value_names.index(n) for n in names]
            return self.values[:, idx].astype(np.float32)
        raise DataError(f"unknown output convention {output!r}")

    def select_channels(self, names: list[str] | tuple[str, ...]) -> Recording:
        """A copy with only the named EMG channels, in the given order."""
        missing = [n for n in names if n not in self.channel_names]
        if missing:
            raise DataError(f"{self.source}: channels {missing} not in {list(self.channel_names)}")
        idx = [self.channel_names.index(n) for n in names]
        return replace(self, emg=self.emg[:, idx], channel_names=tuple(names))

    def slice(self, start: int, stop: int) -> Recording:
        """Samples [start, stop) as a new recording."""
        def cut(a):
            return None if a is None else a[start:stop]
        return replace(self, emg=self.emg[start:stop], timestamps_s=cut(self.timestamps_s),
                       joint_angles=cut(self.joint_angles), keypoints=cut(self.keypoints),
                       values=cut(self.values), label_mask=cut(self.label_mask),
                       emg_valid=cut(self.emg_valid), gesture=cut(self.gesture))

    def summary(self) -> dict:
        """Plain-data description (stored in checkpoints as training-data summary)."""
        valid = self.valid_labels()
        return {"source": self.source, "format": self.format,
                "num_samples": int(self.num_samples),
                "duration_s": round(float(self.duration_s), 3),
                "sample_rate_hz": float(self.sample_rate_hz),
                "channel_names": list(self.channel_names), "labels": list(self.labels),
                "value_names": list(self.value_names), "emg_unit": "V",
                "scale_v_per_unit": float(self.scale_v_per_unit), "units_note": self.units_note,
                "labelled_fraction": round(float(valid.mean()), 4)}


def finite_rows(emg: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(emg with non-finite rows zeroed (float32), emg_valid mask or None, count of such rows).

    The helper every reader uses to apply the module's NaN rule.
    """
    emg = np.asarray(emg)
    ok = np.all(np.isfinite(emg), axis=1)
    bad = int((~ok).sum())
    if not bad:
        return emg.astype(np.float32, copy=False), None, 0
    return np.where(ok[:, None], emg, 0.0).astype(np.float32), ok, bad


def usable_channels(rec: Recording, rel_threshold: float = 0.15) -> tuple[str, ...]:
    """Names of channels whose RMS is at least ``rel_threshold`` x the largest channel RMS."""
    rms = np.sqrt(np.mean(np.square(rec.emg - rec.emg.mean(axis=0)), axis=0))
    keep = rms >= rel_threshold * rms.max()
    return tuple(n for n, k in zip(rec.channel_names, keep) if k)


def resample_recording(rec: Recording, rate_hz: float) -> Recording:
    """Resample EMG (polyphase, anti-aliased) and labels (linear / nearest) to ``rate_hz``."""
    from fractions import Fraction

    from scipy import signal

    if abs(rate_hz - rec.sample_rate_hz) < 1e-9:
        return rec
    ratio = Fraction(rate_hz / rec.sample_rate_hz).limit_denominator(1000)
    emg = signal.resample_poly(rec.emg.astype(np.float64), ratio.numerator, ratio.denominator,
                               axis=0)
    n = emg.shape[0]
    t_old = np.arange(rec.num_samples) / rec.sample_rate_hz
    t_new = np.arange(n) / rate_hz

    def lin(a):
        if a is None:
            return None
        flat = a.reshape(len(a), -1)
        out = np.stack([np.interp(t_new, t_old, flat[:, j]) for j in range(flat.shape[1])], 1)
        return out.reshape((n,) + a.shape[1:])

    def nearest(a):
        if a is None:
            return None
        idx = np.clip(np.round(t_new * rec.sample_rate_hz).astype(int), 0, rec.num_samples - 1)
        return a[idx]

    mask = rec.label_mask
    if mask is not None:  # a resampled row is valid only if both neighbours were
        lo = np.clip(np.floor(t_new * rec.sample_rate_hz).astype(int), 0, rec.num_samples - 1)
        hi = np.clip(lo + 1, 0, rec.num_samples - 1)
        mask = mask[lo] & mask[hi]
    ts = None if rec.timestamps_s is None else rec.timestamps_s[0] + t_new
    return replace(rec, emg=emg.astype(np.float32), sample_rate_hz=float(rate_hz),
                   timestamps_s=ts, joint_angles=lin(rec.joint_angles),
                   keypoints=lin(rec.keypoints), values=lin(rec.values), label_mask=mask,
                   emg_valid=nearest(rec.emg_valid), gesture=nearest(rec.gesture))


__all__ = ["DataError", "Recording", "default_channel_names", "finite_rows",
           "resample_recording", "usable_channels"]
