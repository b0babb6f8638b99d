"""Gesture data: per-sample class labels from recordings, sessions, and labelled windows.

Labels (:func:`gesture_labels`), by what a recording holds:

* ``Recording.gesture`` (class index per sample, -1 unlabelled) with ``gesture_names``:
  myo_readings files, bags of guided calibrations (``recordings.rosbag2`` labels EMG with
  the prompted pose), and any labelled CSV whose reader fills ``gesture``;
* prompted 0/1 targets (``eeg_emg_hands_prompted``: ``s_04_29_25/r_*`` with ``prompt.csv``,
  or any recording whose named values are all 0 or 1): each distinct pattern is a class,
  named by its fingers at 1 joined with ``+`` (``thumb+index``; ``none`` for all zeros).

A **session** is what one ``--train``/``--test`` argument names: a recording, or a folder of
recordings (every file in it that a reader recognises, sorted; myo_readings'
``<participant>-<session>/`` folders). Windows (:func:`make_windows`) are cut per recording
(never across two files) every ``hop`` samples; a window's label is the label of its last
sample (so windows at label changes are counted as they come), windows over dropped EMG or
ending on an unlabelled sample are left out. Windows hold filtered EMG in volts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emg_hand_core.recordings import DataError, Recording, detect_format, load_recording

from ..preprocessing import PreprocessConfig, Preprocessor

NO_LABEL = -1


def gesture_labels(rec: Recording) -> tuple[np.ndarray, tuple[str, ...]]:
    """(labels (N,) int64, -1 = unlabelled; class names) of a recording (module docstring)."""
    valid = rec.valid_labels()
    if rec.gesture is not None:
        labels = np.asarray(rec.gesture, dtype=np.int64)
        top = int(labels.max(initial=-1))
        names = tuple(rec.gesture_names) or tuple(f"class_{k}" for k in range(top + 1))
        if top >= len(names):
            raise DataError(f"{rec.source}: gesture label {top} but only {len(names)} class "
                            f"names {list(names)}")
        return np.where(valid & (labels >= 0), labels, NO_LABEL), names
    if rec.values is not None and rec.value_names:
        v = rec.values[valid]
        if len(v) and np.all(np.isin(v, (0.0, 1.0))):
            patterns = np.asarray(rec.values > 0.5, dtype=np.int64)
            codes = patterns @ (1 << np.arange(patterns.shape[1]))[::-1]
            present = sorted(set(codes[valid].tolist()))
            names = tuple(_pattern_name(code, rec.value_names) for code in present)
            labels = np.searchsorted(present, codes)
            return np.where(valid, labels, NO_LABEL).astype(np.int64), names
    raise DataError(f"{rec.source}: no gesture labels (it holds {rec.describe_labels()}); "
                    "gesture models need per-sample classes or prompted 0/1 targets")


def _pattern_name(code: int, value_names: Sequence[str]) -> str:
    k = len(value_names)
    on = [value_names[i] for i in range(k) if code >> (k - 1 - i) & 1]
    return "+".join(on) if on else "none"


@dataclass
class Session:
    """The recordings one command-line argument names."""

    name: str
    recordings: list[Recording]

    @property
    def duration_s(self) -> float:
        return sum(r.duration_s for r in self.recordings)

    def notes(self) -> list[str]:
        """What the readers skipped (unparsed lines), per file."""
        return [f"{Path(r.source).name}: {r.meta['bad_lines']}" for r in self.recordings
                if r.meta.get("bad_lines")]


def load_session(path: str | Path, format: str = "auto", **options) -> Session:
    """A recording, or every recording in a folder (see module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        try:
            detect_format(path)
            files = [path]
        except DataError:  # a plain folder of recordings
            files = []
            for child in sorted(path.iterdir()):
                if child.name.startswith("."):
                    continue
                try:
                    detect_format(child)
                except DataError:
                    continue
                files.append(child)
        if not files:
            raise DataError(f"{path}: no recordings in this folder")
    else:
        files = [path]
    return Session(path.name or str(path), [load_recording(f, format=format, **options)
                                           for f in files])


def class_names_of(sessions: Sequence[Session]) -> tuple[str, ...]:
    """The classes that occur in the sessions' labels, in the readers' order (first-seen
    across recordings; "rest" first if any)."""
    names: list[str] = []
    for session in sessions:
        for rec in session.recordings:
            labels, rec_names = gesture_labels(rec)
            present = set(np.unique(labels[labels >= 0]).tolist())
            for k, name in enumerate(rec_names):
                if k in present and name not in names:
                    names.append(name)
    if "rest" in names:
        names.remove("rest")
        names.insert(0, "rest")
    return tuple(names)


@dataclass
class Windows:
    """Labelled windows of filtered EMG, in time order within each recording."""

    x: np.ndarray  # (N, C, W) float32 [V]
    y: np.ndarray  # (N,) int64 class index
    recording: np.ndarray  # (N,) int: which recording (index into ``sources``)
    end: np.ndarray  # (N,) int: the window's last sample within its recording
    class_names: tuple[str, ...]
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> Windows:
        return Windows(self.x[mask], self.y[mask], self.recording[mask], self.end[mask],
                       self.class_names, self.sources)

    @staticmethod
    def concat(parts: Sequence[Windows]) -> Windows:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise DataError("no labelled windows")
        offsets = np.cumsum([0] + [len(p.sources) for p in parts[:-1]])
        return Windows(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                       np.concatenate([p.recording + o for p, o in zip(parts, offsets)]),
                       np.concatenate([p.end for p in parts]), parts[0].class_names,
                       [s for p in parts for s in p.sources])


def filtered_emg(rec: Recording, preprocess: PreprocessConfig) -> np.ndarray:
    """A recording through the preprocessing filters (fresh stream state), volts."""
    if abs(rec.sample_rate_hz - preprocess.sample_rate_hz) > 0.01 * preprocess.sample_rate_hz:
        raise DataError(f"{rec.source}: sample rate {rec.sample_rate_hz:g} Hz, the model "
                        f"expects {preprocess.sample_rate_hz:g} Hz")
    pre = Preprocessor(preprocess)
    return pre.filter(rec.emg, pre.initial_state(rec.num_channels))[0]


def window_ends(num: int, window: int, hop: int) -> np.ndarray:
    """Last-sample indices of every window of a recording of ``num`` samples."""
    return np.arange(window - 1, num, hop)


def make_windows(recordings: Sequence[Recording], window: int, hop: int,
                 class_names: Sequence[str], preprocess: PreprocessConfig) -> Windows:
    """Labelled windows of every recording (see module docstring); labels mapped onto
    ``class_names`` (a recording whose labels hold a class not in the list is refused)."""
    parts = []
    for rec in recordings:
        labels, names = gesture_labels(rec)
        present = set(np.unique(labels[labels >= 0]).tolist())
        unknown = [n for k, n in enumerate(names) if k in present and n not in class_names]
        if unknown:
            raise DataError(f"{rec.source}: classes {unknown} occur here but are not classes "
                            f"of the model {list(class_names)}")
        lookup = np.array([list(class_names).index(n) if n in class_names else NO_LABEL
                           for n in names] + [NO_LABEL])
        labels = lookup[labels]  # -1 stays -1 (last entry)
        emg = filtered_emg(rec, preprocess)
        ends = window_ends(len(emg), window, hop)
        if not len(ends):
            continue
        rows = ends[:, None] - np.arange(window - 1, -1, -1)[None]
        ok = labels[ends] >= 0
        if rec.emg_valid is not None:
            bad = np.concatenate([[0], np.cumsum(~rec.emg_valid)])
            ok &= (bad[ends + 1] - bad[ends + 1 - window]) == 0
        x = emg[rows[ok]].transpose(0, 2, 1).astype(np.float32)
        parts.append(Windows(x, labels[ends[ok]], np.zeros(int(ok.sum()), int), ends[ok],
                             tuple(class_names), [rec.source]))
    if not parts:
        raise DataError("no labelled windows: recordings shorter than one window, or no labels")
    return Windows.concat(parts)


def tail_split(w: Windows, fraction: float) -> tuple[Windows, Windows]:
    """(head, tail): the last ``fraction`` of every recording's windows held out, for
    validation; head windows that share samples with the tail are left out."""
    if not 0.0 < fraction < 1.0:
        return w, w.subset(np.zeros(len(w), bool))
    tail = np.zeros(len(w), bool)
    head = np.zeros(len(w), bool)
    width = w.x.shape[2]
    for r in np.unique(w.recording):
        idx = np.flatnonzero(w.recording == r)
        cut = int(round(len(idx) * (1.0 - fraction)))
        tail[idx[cut:]] = True
        first_tail_start = w.end[idx[cut]] - width + 1 if cut < len(idx) else np.inf
        head[idx[:cut]] = w.end[idx[:cut]] < first_tail_start  # no shared samples
    return w.subset(head), w.subset(tail)


__all__ = ["NO_LABEL", "Session", "Windows", "class_names_of", "filtered_emg",
           "gesture_labels", "load_session", "make_windows", "tail_split", "window_ends"]
