"""From recordings to model-rate arrays, chronological splits and windows.

* :func:`prepare` runs a recording through the preprocessing filters (no normalisation)
  and picks the labels of the input samples that the model-rate samples come from.
* :func:`split_bounds`: chronological train / validation / test boundaries.
* :func:`window_ends`: the last sample of every window inside one split segment; a
  window never reaches across a split boundary (no leakage), its target is the label at
  its last sample, and windows over dropped EMG or without a valid label are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emg_hand_core.recordings import DataError, Recording

from .preprocessing import PreprocessConfig, Preprocessor, PreprocessState, model_rate_indices


@dataclass
class Prepared:
    """One recording at the model rate: filtered EMG, targets and validity."""

    filtered: np.ndarray  # (M, C) float64, filters applied, not normalised
    targets: np.ndarray  # (M, out) float32
    label_ok: np.ndarray  # (M,) bool: target valid
    emg_ok: np.ndarray  # (M,) bool: no dropped input sample in this model-rate sample's block
    input_index: np.ndarray  # (M,) input sample index each model-rate sample comes from
    source: str = ""
    normalised: np.ndarray | None = None  # (M, C) float32, set by normalise()
    state: PreprocessState | None = None  # the filters' state after the last input sample

    def __len__(self) -> int:
        return len(self.filtered)


def check_recording(rec: Recording, config: PreprocessConfig,
                    channel_names: tuple[str, ...] | None = None) -> None:
    """Raise DataError if the recording does not fit the preprocessing's rate / channels."""
    if abs(rec.sample_rate_hz - config.sample_rate_hz) > 0.01 * config.sample_rate_hz:
        raise DataError(f"{rec.source}: sample rate {rec.sample_rate_hz:.3f} Hz, the model "
                        f"expects {config.sample_rate_hz:.3f} Hz (resample_recording)")
    expected = config.num_channels
    if expected is not None and rec.num_channels != expected:
        raise DataError(f"{rec.source}: {rec.num_channels} EMG channels, the model expects "
                        f"{expected}")
    if channel_names and tuple(rec.channel_names) != tuple(channel_names):
        raise DataError(f"{rec.source}: channels {list(rec.channel_names)}, the model expects "
                        f"{list(channel_names)}")


def prepare(rec: Recording, config: PreprocessConfig, output: str,
            value_names: tuple[str, ...] = (), with_targets: bool = True,
            state: PreprocessState | None = None) -> Prepared:
    """Filter a recording to the model rate and align its labels (see module docstring).

    ``state``: the filters' state at the recording's first sample (None: a stream start).
    A file prepared block by block, each block from the state the previous one ended in
    (``Prepared.state``) and every block a multiple of the decimation long, gives exactly
    the blocks of the whole file prepared at once.
    """
    check_recording(rec, config)
    pre = Preprocessor(config)
    filtered, end_state = pre.filter(rec.emg, state or pre.initial_state(rec.num_channels))
    idx = model_rate_indices(rec.num_samples, config.decimation)
    filtered = filtered[:len(idx)]
    if with_targets:
        targets = rec.targets(output, value_names)[idx]
        label_ok = rec.valid_labels()[idx] & np.all(np.isfinite(targets), axis=1)
    else:
        targets = np.zeros((len(idx), 0), np.float32)
        label_ok = np.ones(len(idx), bool)
    if rec.emg_valid is None:
        emg_ok = np.ones(len(idx), bool)
    else:  # every input sample of the block (j*D, (j+1)*D] must be real
        d = config.decimation
        emg_ok = rec.emg_valid[:len(idx) * d].reshape(len(idx), d).all(axis=1)
    return Prepared(filtered, targets, label_ok, emg_ok, idx, rec.source, state=end_state)


def split_bounds(num: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Chronological split of ``num`` samples: train [0, a), val [a, b), test [b, num)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
            and val_fraction + test_fraction < 1):
        raise ValueError(f"bad split fractions val={val_fraction} test={test_fraction}")
    b = int(round(num * (1.0 - test_fraction)))
    a = int(round(num * (1.0 - test_fraction - val_fraction)))
    return a, b


def segment(num: int, split: str, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """[start, stop) of one split."""
    a, b = split_bounds(num, val_fraction, test_fraction)
    return {"train": (0, a), "val": (a, b), "test": (b, num), "all": (0, num)}[split]


def window_ends(prep: Prepared, window: int, hop: int, start: int, stop: int,
                grid: tuple[int, int] | None = None) -> np.ndarray:
    """Last-sample indices of windows inside [start, stop), ``hop`` apart.

    ``grid=(offset, step)`` keeps only ends with ``(end - offset) % step == 0`` (frame-aligned
    windows for cached frames). Windows over dropped EMG or with an invalid target are
    dropped.
    """
    first = start + window - 1
    if grid is not None:
        offset, step = grid
        first += (offset - first) % step
        hop = max(step, (hop + step - 1) // step * step)
    ends = np.arange(first, stop, max(1, hop))
    if len(ends) == 0:
        return ends
    ok = prep.label_ok[ends]
    if not prep.emg_ok.all():
        bad = np.concatenate([[0], np.cumsum(~prep.emg_ok)])
        ok &= (bad[ends + 1] - bad[ends + 1 - window]) == 0
    return ends[ok]
