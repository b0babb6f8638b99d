"""The format table: every recording format, its reader, how it is recognised, its units.

:func:`load_recording` is what training, evaluation, the driver's replay and the
renderers call; they all get the same :class:`~.recording.Recording` (in volts) for the
same file. A format is added by writing its reader module and one :class:`Format` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import columns, emg2pose, myo_text, openbci_fingers, rosbag2
from .recording import DataError, Recording


@dataclass(frozen=True)
class Format:
    """One recording format: ``read(path, **options)``, ``looks_like(path)``.

    ``options``: the keyword options its reader takes (``load_recording`` passes only
    these on). ``counts``: EMG is in raw device counts, so ``scale_v_per_unit`` applies
    (other formats carry physical units and refuse a scale). ``aliases``: older names.
    """

    name: str
    description: str
    read: Callable[..., Recording]
    looks_like: Callable[[Path], bool]
    options: tuple[str, ...] = ()
    counts: bool = False
    aliases: tuple[str, ...] = ()
    write: Callable[..., Path] | None = None


FORMATS: dict[str, Format] = {f.name: f for f in (
    # First: a file with a column mapping saved next to it is read through that mapping.
    Format("columns", "any delimited text file through a column mapping (options or "
           "<name>.columns.yaml next to it)", columns.read, columns.looks_like,
           ("mapping", "scale_v_per_unit", "sample_rate_hz"), counts=True,
           aliases=("csv",)),
    Format("emg2pose", "emg2pose HDF5 (the dataset's layout; emg_sim_record writes it)",
           emg2pose.read, emg2pose.looks_like, ("start_s", "duration_s"), write=emg2pose.write),
    Format("rosbag2", "a rosbag2 folder (or its .mcap/.db3) of emg/raw and "
           "hand/reference/joint_states (calibration/prompt: gesture labels)", rosbag2.read,
           rosbag2.looks_like, ("emg_topic", "joint_state_topic", "max_label_gap_s",
                                "prompt_topic", "transition_s"), write=rosbag2.write),
    Format("eeg_emg_hands_merged", "EEG-EMG-Hands merged/data_*.csv (ch_k_raw [uV], finger "
           "angle / pi)", openbci_fingers.read_merged, openbci_fingers.looks_like_merged,
           aliases=("merged_csv",)),
    Format("eeg_emg_hands", "EEG-EMG-Hands emg_mp_*.csv (ch_k [uV], finger straightness)",
           openbci_fingers.read_emg_mp, openbci_fingers.looks_like_emg_mp,
           aliases=("eeg_emg_csv",)),
    Format("eeg_emg_hands_prompted", "EEG-EMG-Hands raw BrainFlow run folder (exg.csv [uV] + "
           "prompt.csv targets)", openbci_fingers.read_prompted,
           openbci_fingers.looks_like_prompted, ("sample_rate_hz",), aliases=("brainflow",)),
    Format("myo_readings", "Myo logger lines c1..c8,label (int8 counts, ~200 Hz, gestures)",
           myo_text.read, myo_text.looks_like, ("scale_v_per_unit", "sample_rate_hz"),
           counts=True, aliases=("myo_txt", "myo")),
)}
"""Name -> :class:`Format`, in detection order."""

_ALIASES = {alias: f.name for f in FORMATS.values() for alias in f.aliases}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
FORMAT_CHOICES: tuple[str, ...] = ("auto", *FORMATS, *_ALIASES)
"""Every name ``load_recording`` takes (aliases included)."""


def canonical_format(name: str) -> str:
    """The table name for ``name`` or one of its aliases; DataError for an unknown one."""
    if name in FORMATS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    raise DataError(f"unknown recording format {name!r}; known: auto, {', '.join(FORMATS)}")


def detect_format(path: str | Path) -> str:
    """The first format of the table whose ``looks_like`` accepts ``path``."""
    path = Path(path)
    for fmt in FORMATS.values():
        if fmt.looks_like(path):
            return fmt.name
    kind = "folder" if path.is_dir() else f"file (suffix {path.suffix!r})"
    raise DataError(f"{path}: unknown recording format for this {kind}; known formats: "
                    + "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values()))


def load_recording(path: str | Path, format: str = "auto", channels=None,
                   scale_v_per_unit: float | None = None, sample_rate_hz: float | None = None,
                   **options) -> Recording:
    """Read any recording format (see :data:`FORMATS`) into volts.

    ``format``: a table name, an alias, or "auto" (detected from the path). ``channels``
    selects and orders EMG columns by name. ``scale_v_per_unit``: volts per raw count, for
    formats in device counts (None: the format's default; refused for formats in physical
    units). ``sample_rate_hz``: overrides the file's nominal rate (None or 0: the file's).
    Other ``options`` go to the format's reader (``Format.options``); ``mapping`` (a column
    mapping, see :mod:`.columns`) implies the ``columns`` format.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if format in ("", "auto"):  # a mapping given means the column-mapped reader
        format = "columns" if options.get("mapping") is not None else detect_format(path)
    fmt = FORMATS[canonical_format(format)]
    unknown = sorted(set(options) - set(fmt.options))
    if unknown:
        raise DataError(f"{path}: the {fmt.name} reader takes no option(s) {unknown} "
                        f"(it takes {list(fmt.options) or 'none'})")
    if scale_v_per_unit is not None:
        if not fmt.counts:
            raise DataError(f"{path}: {fmt.name} recordings are in physical units "
                            f"({fmt.description}); a volts-per-count scale does not apply")
        if not (scale_v_per_unit > 0):
            raise DataError(f"scale_v_per_unit must be > 0, got {scale_v_per_unit}")
        options["scale_v_per_unit"] = scale_v_per_unit
    rate_given = bool(sample_rate_hz) and sample_rate_hz > 0
    if rate_given and "sample_rate_hz" in fmt.options:
        options["sample_rate_hz"] = float(sample_rate_hz)
    rec = fmt.read(path, **options)
    if rate_given and rec.sample_rate_hz != float(sample_rate_hz):
        rec.sample_rate_hz = float(sample_rate_hz)
        rec.meta["sample_rate_overridden"] = True
    return rec.select_channels(list(channels)) if channels else rec


__all__ = ["FORMATS", "FORMAT_CHOICES", "FORMAT_NAMES", "Format", "canonical_format",
           "detect_format", "load_recording"]
