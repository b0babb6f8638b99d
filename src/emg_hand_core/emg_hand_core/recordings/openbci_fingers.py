"""The EEG-EMG-Hands recordings (OpenBCI Cyton(+Daisy) sEMG with MediaPipe finger values).

Three layouts, each a format of its own (see ``../shared/data/README.md``):

* ``eeg_emg_hands``: ``emg_mp_*.csv`` - ``timestamp`` [ms], ``thumb..pinky`` (finger
  straightness 0..1, 1 = extended), ``ch_1..ch_16`` [uV];
* ``eeg_emg_hands_merged``: ``merged/data_*.csv`` - ``timestamp`` [ms], ``thumb..pinky``
  (finger angle / pi), per channel ``ch_k_raw`` [uV] and envelopes ``ch_k_ema_*`` (ignored);
* ``eeg_emg_hands_prompted``: a ``r_*`` folder (or its ``exg.csv``) - raw BrainFlow
  ``exg.csv`` (``timestamp`` [ms], ``exg_1..exg_N`` [uV with DC offset]) and ``prompt.csv``
  (the per-finger 0/1 target shown, same clock); the rate is ``exg_fs`` of
  ``../frequency_info.json`` when present. Each sample is labelled with the latest prompt;
  samples before the first prompt are unlabelled.

Rows are consecutive device samples; the logged times jitter, so the nominal rate is the
mean rate over the file and rows are not resampled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..units import MICROVOLT
from .recording import DataError, Recording, finite_rows
from .tables import Table, fill_times, rate_from_ms, read_table

FINGER_VALUE_NAMES = ("thumb", "index", "middle", "ring", "pinky")
UV_NOTE = "file unit uV"


def _numbered(header: list[str], prefix: str, suffix: str = "") -> list[str]:
    out, k = [], 1
    while f"{prefix}{k}{suffix}" in header:
        out.append(f"{prefix}{k}{suffix}")
        k += 1
    return out


def _from_table(table: Table, emg_columns: list[str], names: list[str], fmt: str,
                kind: str) -> Recording:
    t_ms = fill_times(table.column("timestamp"))
    emg, emg_valid, bad = finite_rows(table.columns(emg_columns) * MICROVOLT)
    values = table.columns(FINGER_VALUE_NAMES)
    label_ok = np.all(np.isfinite(values), axis=1)
    if emg_valid is not None:
        label_ok &= emg_valid
    return Recording(
        emg=emg, sample_rate_hz=rate_from_ms(t_ms, table.path), channel_names=tuple(names),
        timestamps_s=(t_ms - t_ms[0]) * 1e-3, values=np.where(np.isfinite(values), values, 0.0),
        value_names=FINGER_VALUE_NAMES, label_mask=None if label_ok.all() else label_ok,
        emg_valid=emg_valid, source=str(table.path), format=fmt, scale_v_per_unit=MICROVOLT,
        units_note=UV_NOTE,
        meta={"kind": kind, "nonfinite_rows": bad, "bad_lines": table.describe_bad_lines()})


def _table(path: Path) -> Table:
    table = read_table(path, min_rows=2)
    missing = [n for n in ("timestamp",) + FINGER_VALUE_NAMES if n not in table.header]
    if missing:
        raise DataError(f"{path}: not an EEG-EMG-Hands CSV, missing columns {missing}")
    return table


def read_emg_mp(path: str | Path) -> Recording:
    """``emg_mp_*.csv`` (EMG converted uV -> V; finger straightness as named values)."""
    table = _table(Path(path))
    chans = _numbered(table.header, "ch_")
    if not chans:
        raise DataError(f"{path}: no ch_1.. columns")
    return _from_table(table, chans, chans, "eeg_emg_hands",
                       "finger straightness (1 = extended)")


def read_merged(path: str | Path) -> Recording:
    """``merged/data_*.csv``: the ``ch_k_raw`` columns (uV -> V); envelopes ignored."""
    table = _table(Path(path))
    raw = _numbered(table.header, "ch_", "_raw")
    if not raw:
        raise DataError(f"{path}: no ch_k_raw columns")
    return _from_table(table, raw, [n[: -len("_raw")] for n in raw], "eeg_emg_hands_merged",
                       "finger angle / pi")


def read_prompted(path: str | Path, sample_rate_hz: float | None = None) -> Recording:
    """A raw BrainFlow run folder (``exg.csv`` + ``prompt.csv``), or its ``exg.csv``."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    table = read_table(folder / "exg.csv", min_rows=2)
    chans = _numbered(table.header, "exg_")
    if not chans:
        raise DataError(f"{folder / 'exg.csv'}: no exg_1.. columns")
    t_ms = fill_times(table.column("timestamp"))
    if sample_rate_hz is None:
        info = folder.parent / "frequency_info.json"
        rate = rate_from_ms(t_ms, folder)
        if info.is_file():
            try:
                rate = float(json.loads(info.read_text())["exg_fs"])
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{info}: no usable exg_fs: {exc}") from exc
        sample_rate_hz = rate
    emg, emg_valid, bad = finite_rows(table.columns(chans) * MICROVOLT)
    values = mask = None
    prompt_path = folder / "prompt.csv"
    if prompt_path.is_file():
        prompts = read_table(prompt_path, min_rows=1)
        p_t = prompts.column("timestamp")
        p_v = prompts.columns(FINGER_VALUE_NAMES)
        ok = np.isfinite(p_t) & np.all(np.isfinite(p_v), axis=1)
        p_t, p_v = p_t[ok], p_v[ok]
        k = np.searchsorted(p_t, t_ms, side="right") - 1  # prompt shown at or before t
        mask = k >= 0
        values = p_v[np.clip(k, 0, None)] if len(p_t) else np.zeros((len(t_ms), 5))
        if emg_valid is not None:
            mask &= emg_valid
    return Recording(
        emg=emg, sample_rate_hz=sample_rate_hz,
        channel_names=tuple(c.replace("exg_", "ch_") for c in chans),
        timestamps_s=(t_ms - t_ms[0]) * 1e-3, values=values, value_names=FINGER_VALUE_NAMES,
        label_mask=mask, emg_valid=emg_valid, source=str(folder),
        format="eeg_emg_hands_prompted", scale_v_per_unit=MICROVOLT, units_note=UV_NOTE,
        meta={"kind": "prompted 0/1 targets", "nonfinite_rows": bad,
              "bad_lines": table.describe_bad_lines()})


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, "rb") as f:
            head = f.read(8192).split(b"\n", 1)[0].decode("utf-8", errors="replace")
    except OSError:
        return []
    return [h.strip() for h in head.split(",")]


def looks_like_emg_mp(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    header = _csv_header(path)
    return "ch_1" in header and "timestamp" in header


def looks_like_merged(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    header = _csv_header(path)
    return "ch_1_raw" in header and "timestamp" in header


def looks_like_prompted(path: Path) -> bool:
    if path.is_dir():
        return (path / "exg.csv").is_file()
    return path.name == "exg.csv" or ("exg_1" in _csv_header(path) and path.suffix == ".csv")
