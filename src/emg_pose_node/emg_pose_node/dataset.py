"""Windows read from recordings on disk: training whose memory does not grow with the data.

::

    entries = [cache_recording(SourceSpec(p), preprocess, "joint_angles", (), cache_dir)
               for p in paths]                               # once per file, then cached
    segments = split_segments(entries, "time", 0.15, 0.15)  # split -> rows per recording
    ends = split_window_ends(entries, segments, window, hop, eval_hop)  # split -> ends
    x_moments, y_moments = training_moments(entries, segments["train"])
    preprocess = normalisation_from_moments(preprocess, x_moments)
    train = WindowDataset(entries, ends["train"], window, preprocess)
    x, y = train.batch(torch.arange(64))      # (64, C, W) normalised, (64, out)

**The cache** (``cache_dir``): one HDF5 file per recording and preprocessing, written
once (atomically: a temporary file renamed) and found again by a key of the recording's
path, size and modification time, the format, the channels, the preprocessing filters and
the output convention. It holds, at the model rate:

* ``label_ok`` / ``emg_ok`` (what window ends need, :func:`windows.window_ends`) and, per
  block of :data:`BLOCK` rows, the :class:`~.preprocessing.Moments` of the filtered EMG
  (all rows, as :func:`~.preprocessing.fit_normalisation` takes them) and of the labelled
  targets, so normalisation statistics come from a streamed pass made once, and a later
  run starts without reading the data again;
* ``rows``: the filtered EMG and the targets side by side (M, C + out), float32, so a
  window is one read; unless the recording is an emg2pose
  HDF5 file whose preprocessing filters nothing (the ``default`` preset): its windows are
  then read as slices of the recording itself, which is never copied.

An emg2pose file is read block by block (:class:`emg_hand_core.recordings.emg2pose.File`);
the other formats (bags, CSVs, Myo logs) are read whole, one file at a time, to write
their cache. Filter states run on from block to block: the cached rows are exactly what
:func:`windows.prepare` makes of the whole recording (in float32).

**Memory** of a :class:`WindowDataset`: 4 bytes per window for the index, the batch, and
at most ``open_files`` open HDF5 files (about 0.4 MB each) with a chunk cache of
``chunk_cache_bytes`` each (none by default: a random window gains nothing from it), per
process (every DataLoader worker has its own). Fewer open files than recordings read
windows slower (a file is reopened for a window: 2.5x slower with 8 of 100 open).
Statistics and window ends are computed one recording at a time (2 bytes per model-rate
sample of the longest recording).

**Splits**: chronological per recording (``time``: train, validation, test are the
start, the part before the end and the end of every recording, as in memory), or per file
(``file``: whole recordings, in the order given; the last ones are the test files).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emg_hand_core.recordings import DataError, Recording, detect_format, load_recording
from emg_hand_core.recordings import emg2pose as emg2pose_format
from emg_hand_core.recordings.formats import canonical_format

from .preprocessing import Moments, PreprocessConfig
from .windows import prepare, segment, window_ends

CACHE_VERSION = 1
BLOCK = 8192  # model-rate rows per statistics block (and per read while caching)
SPLITS = ("train", "val", "test")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/emg_hand/windows`` (``~/.cache/emg_hand/windows``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "emg_hand" / "windows"


@dataclass(frozen=True)
class SourceSpec:
    """A recording to read: path, format (a name of ``recordings.FORMATS`` or "auto") and
    the EMG channels to use (None: all, in the file's order)."""

    path: str
    format: str = "auto"
    channels: tuple[str, ...] | None = None

    def format_name(self) -> str:
        return (detect_format(self.path) if self.format in ("", "auto")
                else canonical_format(self.format))


def probe(spec: SourceSpec) -> Recording:
    """A recording's first rows (emg2pose: two rows; other formats: all of it): its rate,
    channels and labels, without reading an emg2pose file whole."""
    if spec.format_name() == "emg2pose":
        with emg2pose_format.File(spec.path) as f:
            rec = f.rows(0, min(2, f.num_rows))
    else:
        rec = load_recording(spec.path, format=spec.format)
    return rec.select_channels(list(spec.channels)) if spec.channels else rec


@dataclass(frozen=True)
class CachedRecording:
    """One recording ready for windows: where its model-rate rows are and what it holds."""

    spec: SourceSpec
    cache: str  # the cache file
    direct: bool  # windows are slices of the recording itself (see module docstring)
    num_rows: int  # model-rate samples
    num_channels: int
    summary: dict  # Recording.summary() of the whole recording
    output: str  # the output convention of the targets
    value_names: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return Path(self.cache).stem


def _fingerprint(path: Path) -> list:
    if path.is_dir():
        return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                for p in sorted(path.rglob("*")) if p.is_file()]
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _filters(config: PreprocessConfig) -> dict:
    d = config.to_dict()
    for name in ("mean", "std"):
        d.pop(name)
    return d


def filters_nothing(config: PreprocessConfig) -> bool:
    """True if preprocessing (before normalisation) passes samples through unchanged."""
    return (config.decimation == 1 and not config.rectify and config.highpass_hz is None
            and config.notch_hz is None and config.lowpass_hz is None)


def cache_recording(spec: SourceSpec, preprocess: PreprocessConfig, output: str,
                    value_names: tuple[str, ...], cache_dir: str | Path) -> CachedRecording:
    """The recording's cache entry, written first if there is none (module docstring)."""
    path = Path(spec.path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = spec.format_name()
    key_doc = {"version": CACHE_VERSION, "path": str(path.resolve()),
               "fingerprint": _fingerprint(path), "format": fmt,
               "channels": list(spec.channels) if spec.channels else None,
               "filters": _filters(preprocess), "output": output,
               "value_names": list(value_names)}
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()[:20]
    cache_dir = Path(cache_dir)
    cache = cache_dir / f"{path.stem[:60]}-{key}.h5"
    if not cache.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".h5", dir=cache_dir)
        os.close(fd)
        try:
            _write_cache(Path(tmp), spec, fmt, preprocess, output, value_names, key_doc)
            os.replace(tmp, cache)  # another process may have written the same: same bytes
        finally:
            Path(tmp).unlink(missing_ok=True)
    return _open_entry(spec, cache)


def _open_entry(spec: SourceSpec, cache: Path) -> CachedRecording:
    import h5py

    try:
        with h5py.File(cache, "r") as f:
            a = f.attrs
            key = json.loads(a["key"])
            return CachedRecording(spec, str(cache), bool(a["direct"]), int(a["num_rows"]),
                                   int(a["num_channels"]), json.loads(a["summary"]),
                                   key["output"], tuple(key["value_names"]))
    except (OSError, KeyError) as exc:
        raise DataError(f"{cache}: unreadable window cache (delete it): {exc}") from exc


def _blocks(spec: SourceSpec, fmt: str, decimation: int) -> Iterator[Recording]:
    """The recording in blocks of BLOCK model-rate rows (emg2pose) or whole (others)."""
    if fmt == "emg2pose":
        with emg2pose_format.File(spec.path) as f:
            step = BLOCK * decimation
            for i0 in range(0, f.num_rows, step):
                rec = f.rows(i0, min(i0 + step, f.num_rows))
                yield rec.select_channels(list(spec.channels)) if spec.channels else rec
    else:
        rec = load_recording(spec.path, format=fmt)
        yield rec.select_channels(list(spec.channels)) if spec.channels else rec


def _write_cache(tmp: Path, spec: SourceSpec, fmt: str, preprocess: PreprocessConfig,
                 output: str, value_names: tuple[str, ...], key_doc: dict) -> None:
    import h5py

    direct = fmt == "emg2pose" and filters_nothing(preprocess)
    with h5py.File(tmp, "w") as f:
        state, rows, inputs, valid, first = None, 0, 0, 0, None
        x_moments, y_moments = [], []
        sets: dict = {}
        for rec in _blocks(spec, fmt, preprocess.decimation):
            prep = prepare(rec, preprocess, output, value_names, state=state)
            state = prep.state
            first = first or rec.summary()
            inputs += rec.num_samples
            valid += int(rec.valid_labels().sum())
            arrays = {"label_ok": prep.label_ok, "emg_ok": prep.emg_ok}
            if not direct:
                arrays["rows"] = np.concatenate([prep.filtered, prep.targets],
                                                axis=1).astype(np.float32)
            for name, a in arrays.items():
                if name not in sets:
                    sets[name] = f.create_dataset(name, shape=(0,) + a.shape[1:],
                                                  maxshape=(None,) + a.shape[1:], dtype=a.dtype,
                                                  chunks=(min(BLOCK, 4096),) + a.shape[1:])
                sets[name].resize((rows + len(a),) + a.shape[1:])
                sets[name][rows:] = a
            # Blocks of the emg2pose reader are BLOCK rows; whole recordings are cut here.
            for j in range(0, len(prep), BLOCK):
                x_moments.append(Moments.of(prep.filtered[j:j + BLOCK]))
                ok = prep.label_ok[j:j + BLOCK]
                y_moments.append(Moments.of(prep.targets[j:j + BLOCK][ok]))
            rows += len(prep)
        if rows == 0:
            raise DataError(f"{spec.path}: shorter than one model-rate sample")
        for name, moments in (("x", x_moments), ("y", y_moments)):
            f.create_dataset(f"{name}_count", data=np.array([m.count for m in moments]))
            f.create_dataset(f"{name}_mean", data=np.stack([m.mean for m in moments]))
            f.create_dataset(f"{name}_m2", data=np.stack([m.m2 for m in moments]))
        first.update(num_samples=inputs, duration_s=round(inputs / first["sample_rate_hz"], 3),
                     labelled_fraction=round(valid / inputs, 4))
        f.attrs.update(direct=direct, num_rows=rows, num_channels=len(first["channel_names"]),
                       summary=json.dumps(first), key=json.dumps(key_doc))


# --- splits and window ends -------------------------------------------------------------


def file_splits(num_files: int, val_fraction: float, test_fraction: float) -> list[str]:
    """Per-file split of recordings in the given order: train, then val, then test files
    (at least one file for a non-zero fraction)."""
    def count(fraction: float) -> int:
        return 0 if fraction <= 0 else max(1, int(round(num_files * fraction)))

    n_val, n_test = count(val_fraction), count(test_fraction)
    if num_files - n_val - n_test < 1:
        raise DataError(f"a per-file split of {num_files} recording(s) into validation "
                        f"({val_fraction:g}) and test ({test_fraction:g}) files leaves none to "
                        f"train on; give more recordings or smaller fractions")
    return (["train"] * (num_files - n_val - n_test) + ["val"] * n_val + ["test"] * n_test)


@dataclass
class _Masks:
    label_ok: np.ndarray
    emg_ok: np.ndarray


def _read(entry: CachedRecording, *names: str, start: int = 0, stop: int | None = None):
    import h5py

    with h5py.File(entry.cache, "r") as f:
        return [f[n][start:stop] for n in names]


def split_segments(entries: Sequence[CachedRecording], split_by: str, val_fraction: float,
                   test_fraction: float) -> dict[str, list[tuple[int, int] | None]]:
    """split -> per recording, the [start, stop) rows of that split (None: none)."""
    if split_by == "time":
        return {s: [segment(e.num_rows, s, val_fraction, test_fraction) for e in entries]
                for s in SPLITS}
    if split_by != "file":
        raise ValueError(f"split_by must be 'time' or 'file', got {split_by!r}")
    names = file_splits(len(entries), val_fraction, test_fraction)
    return {s: [(0, e.num_rows) if n == s else None for e, n in zip(entries, names)]
            for s in SPLITS}


def split_window_ends(entries: Sequence[CachedRecording], segments: dict, window: int,
                      hop: int, eval_hop: int) -> dict[str, list[np.ndarray]]:
    """split -> per recording, the window ends (int32) in that split (windows.window_ends:
    no window crosses a split boundary, dropped EMG or an invalid label)."""
    ends: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for k, entry in enumerate(entries):
        masks = _Masks(*_read(entry, "label_ok", "emg_ok"))
        for split in SPLITS:
            seg = segments[split][k]
            e = (np.zeros(0, np.int64) if seg is None else
                 window_ends(masks, window, hop if split == "train" else eval_hop, *seg))
            ends[split].append(e.astype(np.int32))
    return ends


def training_moments(entries: Sequence[CachedRecording],
                     segments: list[tuple[int, int] | None]) -> tuple[Moments, Moments]:
    """Moments of the filtered EMG (every row) and of the labelled targets over the
    training segments, from the cached block moments plus the rows of the blocks a
    segment boundary cuts (read from disk)."""
    x_total = y_total = None
    for entry, seg in zip(entries, segments):
        if seg is None or seg[1] <= seg[0]:
            continue
        start, stop = seg
        xc, xm, xs, yc, ym, ys = _read(entry, "x_count", "x_mean", "x_m2", "y_count",
                                       "y_mean", "y_m2")
        x_total = x_total or Moments.empty(xm.shape[1])
        y_total = y_total or Moments.empty(ym.shape[1])
        first_full, last_full = -(-start // BLOCK), stop // BLOCK  # blocks inside [start, stop)
        for b in range(first_full, last_full):
            x_total = x_total.merge(Moments(int(xc[b]), xm[b], xs[b]))
            y_total = y_total.merge(Moments(int(yc[b]), ym[b], ys[b]))
        cuts = ([(start, stop)] if first_full > last_full else
                [(start, first_full * BLOCK), (last_full * BLOCK, stop)])
        for a, b in cuts:
            if b > a:
                x, y, ok = _rows(entry, a, b)
                x_total = x_total.merge(Moments.of(x))
                y_total = y_total.merge(Moments.of(y[ok]))
    if x_total is None:
        raise DataError("no training data: the training split is empty")
    return x_total, y_total


def _rows(entry: CachedRecording, start: int, stop: int) -> tuple[np.ndarray, ...]:
    """Filtered EMG (float64), targets and label_ok of model-rate rows [start, stop)."""
    (ok,) = _read(entry, "label_ok", start=start, stop=stop)
    if entry.direct:
        with emg2pose_format.File(entry.spec.path) as f:
            rec = f.rows(start, stop)
        if entry.spec.channels:
            rec = rec.select_channels(list(entry.spec.channels))
        return (rec.emg.astype(np.float64), rec.targets(entry.output, entry.value_names), ok)
    (rows,) = _read(entry, "rows", start=start, stop=stop)
    c = entry.num_channels
    return rows[:, :c].astype(np.float64), rows[:, c:], ok


# --- the dataset ------------------------------------------------------------------------


class WindowDataset(torch.utils.data.Dataset):
    """Windows (C, W) of normalised EMG and their targets, read from disk on demand.

    ``ends``: per recording, the last model-rate row of each window (a split of
    :func:`split_window_ends`). ``batch(indices)`` -> ((B, C, W), (B, out)) float32, like
    ``training.WindowSet``; it is also the DataLoader's batched fetch (``__getitems__``).
    """

    def __init__(self, entries: Sequence[CachedRecording], ends: Sequence[np.ndarray],
                 window: int, preprocess: PreprocessConfig, open_files: int = 128,
                 chunk_cache_bytes: int = 0) -> None:
        if not preprocess.fitted:
            raise ValueError("WindowDataset needs fitted normalisation statistics")
        self.entries, self.window = list(entries), int(window)
        self.ends = [np.asarray(e, dtype=np.int32) for e in ends]
        self.open_files, self.chunk_cache_bytes = max(1, int(open_files)), int(chunk_cache_bytes)
        self.preprocess = preprocess
        self._mean = np.asarray(preprocess.mean, dtype=np.float64)
        self._std = np.asarray(preprocess.std, dtype=np.float64)
        self._first = np.concatenate([[0], np.cumsum([len(e) for e in self.ends])])
        self._files: OrderedDict = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._first[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(recording number, window end) of window ``i``."""
        k = int(np.searchsorted(self._first, i, side="right")) - 1
        return k, int(self.ends[k][i - self._first[k]])

    def sources(self) -> np.ndarray:
        """The recording number of every window."""
        return np.repeat(np.arange(len(self.ends)), [len(e) for e in self.ends])

    def subset(self, positions: np.ndarray) -> WindowDataset:
        """The windows at ``positions`` (sorted), as a dataset of their own."""
        positions = np.asarray(positions, dtype=np.int64)
        k = np.searchsorted(self._first, positions, side="right") - 1
        ends = [self.ends[j][positions[k == j] - self._first[j]] for j in range(len(self.ends))]
        return WindowDataset(self.entries, ends, self.window, self.preprocess, self.open_files,
                             self.chunk_cache_bytes)

    def evenly_spaced(self, limit: int) -> WindowDataset:
        """At most ``limit`` windows, evenly spaced over the whole set (0: all)."""
        if limit <= 0 or len(self) <= limit:
            return self
        return self.subset(np.unique(np.linspace(0, len(self) - 1, limit).round().astype(int)))

    # --- reading ----------------------------------------------------------------------
    def _handle(self, k: int):
        if self._pid != os.getpid():  # a forked DataLoader worker: never share handles
            _INHERITED.append(self._files)
            self._files, self._pid = OrderedDict(), os.getpid()
        f = self._files.get(k)
        if f is None:
            entry = self.entries[k]
            if entry.direct:
                f = emg2pose_format.File(entry.spec.path, self.chunk_cache_bytes)
                f = (f, f.arrays, self._channel_index(entry, f.channel_names))
            else:
                import h5py

                h = h5py.File(entry.cache, "r", rdcc_nbytes=self.chunk_cache_bytes)
                f = (h, h["rows"].__getitem__, None)
            self._files[k] = f
            while len(self._files) > self.open_files:
                self._files.popitem(last=False)[1][0].close()
        else:
            self._files.move_to_end(k)
        return f

    @staticmethod
    def _channel_index(entry: CachedRecording, names: tuple[str, ...]) -> list[int] | None:
        if not entry.spec.channels:
            return None
        return [names.index(n) for n in entry.spec.channels]

    def _window(self, k: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Filtered EMG (W, C) and the target of the window ending at ``end``."""
        _, read, channels = self._handle(k)
        entry, start = self.entries[k], end - self.window + 1
        if not entry.direct:
            rows = read(np.s_[start:end + 1])
            return rows[:, :entry.num_channels], rows[-1, entry.num_channels:]
        emg, angles = read(start, end + 1)
        if channels is not None:
            emg = emg[:, channels]
        if entry.output == "joint_angles":
            return emg, angles[-1]
        last = Recording(emg=emg[-1:], sample_rate_hz=1.0, joint_angles=angles[-1:])
        return emg, last.targets(entry.output, entry.value_names)[0]

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        xs, ys = zip(*(self._window(*self.locate(int(i))) for i in indices)) if len(
            indices) else ((), ())
        if not xs:
            return (torch.zeros(0, self.entries[0].num_channels, self.window),
                    torch.zeros(0, 0))
        x = ((np.stack(xs).astype(np.float64) - self._mean) / self._std).astype(np.float32)
        y = np.stack(ys).astype(np.float32)
        return torch.from_numpy(x).transpose(1, 2), torch.from_numpy(y)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch(indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.batch([i])
        return x[0], y[0]

    def ordered_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, len(self), batch_size):
            yield self.batch(np.arange(i, min(i + batch_size, len(self))))

    def close(self) -> None:
        """Close the open files (before a fork, and when done)."""
        if self._pid == os.getpid():
            for f in self._files.values():
                f[0].close()
        self._files = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self) -> dict:  # pickled to a spawned worker: without open files
        d = dict(self.__dict__)
        d["_files"] = OrderedDict()
        return d


_INHERITED: list = []  # handles a forked worker inherited: kept, never used or closed


# --- batches of one process -------------------------------------------------------------


class GlobalBatchSampler(torch.utils.data.Sampler):
    """One process's batches of an order shared by all processes.

    Per epoch, a permutation of all windows drawn from (seed, epoch) alone (optionally only
    its first ``epoch_windows``); global batches of ``batch_size * world_size`` consecutive
    windows of it; process ``rank`` takes the rank-th of ``world_size`` parts (equal, but
    in the last global batch, sizes differing by at most one: :meth:`loss_weights` makes
    their gradients add up to that of the global batch's mean). So every step of W
    processes with batch B trains on exactly the windows of the same step of one process
    with batch B x W, and a run resumed at an epoch is in step. (A last global batch of
    fewer windows than processes is left out.)
    """

    def __init__(self, num_windows: int, batch_size: int, world_size: int = 1, rank: int = 0,
                 seed: int = 0, epoch_windows: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.num_windows, self.batch_size = int(num_windows), int(batch_size)
        self.world_size, self.rank, self.seed = int(world_size), int(rank), int(seed)
        self.epoch_windows = int(epoch_windows)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _count(self) -> int:
        n = self.num_windows
        return min(n, self.epoch_windows) if self.epoch_windows > 0 else n

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_windows, generator=gen)[:self._count()]
        for g, size in zip(range(0, len(order), self.batch_size * self.world_size),
                           self.global_sizes()):
            part, extra = divmod(size, self.world_size)
            start = g + self.rank * part + min(self.rank, extra)
            yield order[start:start + part + (self.rank < extra)].tolist()

    def global_sizes(self) -> list[int]:
        """The global batch size of every step of an epoch."""
        full, rest = divmod(self._count(), self.batch_size * self.world_size)
        return ([self.batch_size * self.world_size] * full
                + ([rest] if rest >= self.world_size else []))

    def loss_weights(self) -> list[float]:
        """Per step, this process's loss weight: W x its windows / the global batch's, so
        that DDP's average of the processes' gradients is the gradient of the global mean."""
        return [self.world_size * (size // self.world_size
                                   + (self.rank < size % self.world_size)) / size
                for size in self.global_sizes()]

    def __len__(self) -> int:
        size = self.batch_size * self.world_size
        full, rest = divmod(self._count(), size)
        return full + (rest >= self.world_size)


def _as_is(batch):
    return batch


class EpochLoader:
    """:func:`training.fit`'s training batches from a DataLoader (``epoch_batches``)."""

    def __init__(self, dataset: WindowDataset, sampler: GlobalBatchSampler, workers: int = 0,
                 pin_memory: bool = False) -> None:
        self.dataset, self.sampler = dataset, sampler
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=max(0, int(workers)),
            collate_fn=_as_is, pin_memory=pin_memory, persistent_workers=workers > 0,
            generator=torch.Generator())  # workers' seeds: not from the global RNG

    def __len__(self) -> int:
        return len(self.dataset)

    def epoch_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """(inputs, targets, loss weight) of every step of ``epoch``."""
        self.sampler.set_epoch(epoch)
        self.dataset.close()  # no open HDF5 handle crosses the workers' fork
        for (x, y), weight in zip(self.loader, self.sampler.loss_weights(), strict=True):
            yield x, y, weight
