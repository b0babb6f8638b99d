"""Any CSV, one command: a column mapping says which columns of a file are what.

A :class:`ColumnMapping` names the columns of a delimited text file with a header line:

* ``emg``: the EMG columns, as names, globs (``raw*``), 0-based indices (``3``) or index
  ranges (``2:10``, end excluded), in the order given (a glob: header order). ``emg_unit``
  V | mV | uV | counts; counts become volts as (counts - ``offset_units``) x
  ``scale_v_per_unit``.
* time: a ``time`` column in ``time_unit`` (s, ms, us, ns; ``datetime`` for date strings
  such as ``2025-04-29 14:03:07.125``; ``auto``: date strings, or epoch numbers whose size
  tells s / ms / us / ns), and/or ``sample_rate_hz``. Without a rate the nominal rate is
  samples / time span (rows are consecutive device samples; jittered logging times are
  kept as timestamps, never used to resample).
* ``counter``: a sample-counter column (an Arduino loop's ``iteration``). A jump of k means
  k - 1 samples were lost: they become dropped samples in place, so every later row keeps
  its true sample position. A repeated or slightly backward value drops that row; a large
  backward jump (a counter restart or wrap) continues after one dropped sample.
* targets, any of: ``values`` (named scalars: ``column`` or ``name=column``; globs);
  ``joint_angles``: 20 columns in JOINT_NAMES order, or ``auto`` (columns named like the
  joints, any order), in ``angle_unit`` rad | deg; ``keypoints``: x, y, z columns of every
  point of ``keypoint_order`` (``mediapipe``: our 21 in MediaPipe order; ``palm_wrist_4``:
  a palm point, the wrist, then 4 per finger from the thumb, as Ultraleap-style trackers
  give them; or a list of point names, where ``palm`` and ``-`` are ignored), or ``auto``
  (columns ``<point>_x``, ``<point>_y``, ``<point>_z``), in ``keypoint_unit`` m | cm | mm,
  with ``keypoint_frame`` ``any`` (a camera's or tracker's frame: the palm is fitted onto
  the hand model's and the 20 angles come from our inverse kinematics) or ``hand_base``;
  ``gesture``: a class label column (numbers, or text: classes sorted by name unless
  ``gesture_names`` lists them).
* ``side`` (right | left) and ``delimiter``.

Rows: a line with the wrong number of fields, or whose EMG, counter or time field is
missing or not a number, is a dropped sample in place (``emg_valid`` False, replayed as a
gap), never shifted; a row whose target fields are missing keeps its EMG and is
unlabelled (``label_mask``). All of it is counted and reported (``meta["report"]``).
Columns not mapped may hold anything (text, dates, a hand label) and are ignored.

The mapping comes as the reader's ``mapping`` option (a dict, a :class:`ColumnMapping`, a
name of :data:`PRESETS` or a YAML path) or from a YAML file saved next to the data
(:func:`save_mapping`: ``<name>.columns.yaml`` beside ``<name>.csv``, or ``columns.yaml``
for every file of a folder), where format detection finds it: training, evaluation and the
driver's replay then read the file identically with no options at all.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..hand_model import (
    JOINT_NAMES,
    KEYPOINT_NAMES,
    NUM_JOINTS,
    align_palm,
    inverse_kinematics,
    keypoints_for_side,
    mirror_keypoints,
)
from ..names import JOINT_ORDER, KEYPOINT_ORDER, NameOrderError
from ..units import (
    METRES_PER_UNIT,
    RADIANS_PER_UNIT,
    SECONDS_PER_UNIT,
    VOLTS_PER_UNIT,
    unit_factor,
)
from .recording import DataError, Recording
from .tables import MAX_REPORTED_LINES, Table, fill_times, read_header, read_table

MAPPING_SUFFIX = ".columns.yaml"
FOLDER_MAPPING = "columns.yaml"
AUTO = "auto"
IGNORED_POINTS = ("palm", "-")

KEYPOINT_ORDERS: dict[str, tuple[str, ...]] = {
    "mediapipe": KEYPOINT_NAMES,
    "palm_wrist_4": ("palm",) + KEYPOINT_NAMES,
}
"""Named point orders of trackers -> point names (ours, or ignored ``palm``)."""

PRESETS: dict[str, dict[str, Any]] = {
    # The seed notebooks' layout: MyoWare envelope + raw of 4 sensors on an Arduino (10-bit
    # ADC at 5 V behind the MyoWare's gain of about 200: 24.4 uV per count around 512), the
    # loop counter, and 6 finger values from a camera; ``hand_label`` is text, ignored.
    "arduino_myoware": dict(emg=["raw*"], emg_unit="counts", scale_v_per_unit=2.44e-5,
                            offset_units=512.0, time="timestamp", time_unit=AUTO,
                            counter="iteration",
                            values=["thumb_tip", "thumb_base", "index", "middle", "ring",
                                    "pinky"]),
}
"""Named mappings for known layouts (``--columns NAME``)."""

_DATETIME_SCALE = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}  # epoch magnitude -> unit
_MAX_RESTART_STEP = 1000  # a backward counter step larger than this is a restart / wrap


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns are what (see the module docstring); empty = not mapped."""

    emg: tuple[str, ...] = ()
    emg_unit: str = "V"
    scale_v_per_unit: float | None = None
    offset_units: float = 0.0
    time: str = ""
    time_unit: str = "s"
    sample_rate_hz: float | None = None
    counter: str = ""
    values: tuple[str, ...] = ()
    joint_angles: tuple[str, ...] = ()
    angle_unit: str = "rad"
    keypoints: tuple[str, ...] = ()
    keypoint_order: tuple[str, ...] | str = "mediapipe"
    keypoint_unit: str = "m"
    keypoint_frame: str = "any"
    gesture: str = ""
    gesture_names: tuple[str, ...] = ()
    side: str = "right"
    delimiter: str = ","

    def __post_init__(self) -> None:
        for name in ("emg", "values", "joint_angles", "keypoints", "gesture_names"):
            object.__setattr__(self, name, _specs(getattr(self, name)))
        if not isinstance(self.keypoint_order, str):
            object.__setattr__(self, "keypoint_order", _specs(self.keypoint_order))
        for name in ("time", "counter", "gesture"):
            value = getattr(self, name)
            object.__setattr__(self, name, "" if value is None else str(value).strip())
        if not self.emg:
            raise DataError("column mapping: no EMG columns (emg: names, globs or indices)")
        if self.emg_unit.strip().lower() == "counts":
            if self.scale_v_per_unit is None or not self.scale_v_per_unit > 0:
                raise DataError("column mapping: emg_unit counts needs scale_v_per_unit > 0 "
                                "[V per count]")
        else:
            _factor(VOLTS_PER_UNIT, self.emg_unit, "EMG")
        if self.time_unit not in (*SECONDS_PER_UNIT, "datetime", AUTO):
            raise DataError(f"column mapping: unknown time_unit {self.time_unit!r}; known: "
                            f"{', '.join(SECONDS_PER_UNIT)}, datetime, auto")
        if self.sample_rate_hz is not None and not (
                math.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0):
            raise DataError(f"column mapping: sample_rate_hz must be > 0, got "
                            f"{self.sample_rate_hz}")
        _factor(RADIANS_PER_UNIT, self.angle_unit, "angle")
        _factor(METRES_PER_UNIT, self.keypoint_unit, "keypoint")
        if self.keypoint_frame not in ("any", "hand_base"):
            raise DataError(f"column mapping: keypoint_frame must be any or hand_base, got "
                            f"{self.keypoint_frame!r}")
        if self.side not in ("right", "left"):
            raise DataError(f"column mapping: side must be right or left, got {self.side!r}")
        if isinstance(self.keypoint_order, str) and self.keypoint_order not in KEYPOINT_ORDERS:
            raise DataError(f"column mapping: unknown keypoint_order {self.keypoint_order!r}; "
                            f"known: {', '.join(KEYPOINT_ORDERS)} or a list of point names")
        if len(self.delimiter) != 1:
            raise DataError(f"column mapping: delimiter must be one character, got "
                            f"{self.delimiter!r}")

    @property
    def point_order(self) -> tuple[str, ...]:
        order = self.keypoint_order
        return KEYPOINT_ORDERS[order] if isinstance(order, str) else order

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "column mapping") -> ColumnMapping:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in d.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as plain YAML-able data."""
        default = {f.name: f.default for f in fields(self)}
        out = {}
        for key, value in asdict(self).items():
            if value != default[key] and value not in ((), ""):
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


def _specs(value) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, dict):  # values: {name: column}
        return tuple(f"{k}={v}" for k, v in value.items())
    return tuple(str(v).strip() for v in value)


def _factor(table: dict[str, float], unit: str, what: str) -> float:
    try:
        return unit_factor(table, unit, what)
    except ValueError as exc:
        raise DataError(f"column mapping: {exc}") from None


# --- the mapping: from options, presets, YAML files next to the data -----------------------


def mapping_path(data: str | Path) -> Path:
    """Where the mapping of ``data`` is saved: ``<name>.columns.yaml`` beside it."""
    data = Path(data)
    return data.with_name(data.stem + MAPPING_SUFFIX)


def find_mapping(data: str | Path) -> Path | None:
    """The mapping file that applies to ``data`` (its own, else the folder's), or None."""
    data = Path(data)
    for candidate in (mapping_path(data), data.parent / FOLDER_MAPPING):
        if candidate.is_file() and candidate != data:
            return candidate
    return None


def load_mapping_file(path: str | Path) -> ColumnMapping:
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read the column mapping: {exc}") from exc
    if not isinstance(doc, dict):
        raise DataError(f"{path}: a column mapping is a YAML mapping of keys (emg, time, ...)")
    return ColumnMapping.from_dict(doc, where=str(path))


def save_mapping(mapping: ColumnMapping | dict, data: str | Path) -> Path:
    """Write the mapping next to ``data`` (``<name>.columns.yaml``); returns its path."""
    import yaml

    mapping = as_mapping(mapping)
    path = mapping_path(data)
    text = (f"# Column mapping of {Path(data).name} (emg_hand_core.recordings.columns); "
            "every emg_hand command\n# that reads the file uses it.\n"
            + yaml.safe_dump(mapping.to_dict(), sort_keys=False, allow_unicode=True))
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot write the column mapping: {exc}") from exc
    return path


def as_mapping(mapping, data: str | Path | None = None) -> ColumnMapping:
    """A :class:`ColumnMapping` from a mapping, dict, preset name or YAML path; None: the
    file saved next to ``data``."""
    if isinstance(mapping, ColumnMapping):
        return mapping
    if isinstance(mapping, dict):  # {"preset": NAME, ...}: the preset with fields changed
        rest = {k: v for k, v in mapping.items() if k != "preset"}
        base = as_mapping(mapping["preset"]).to_dict() if mapping.get("preset") else {}
        return ColumnMapping.from_dict({**base, **rest})
    if isinstance(mapping, (str, Path)) and str(mapping):
        if str(mapping) in PRESETS:
            return ColumnMapping.from_dict(PRESETS[str(mapping)])
        if Path(mapping).is_file():
            return load_mapping_file(mapping)
        raise DataError(f"column mapping {str(mapping)!r}: neither a preset "
                        f"({', '.join(PRESETS)}) nor a YAML file")
    found = find_mapping(data) if data is not None else None
    if found is None:
        raise DataError(f"{data}: no column mapping given and none saved next to it "
                        f"({mapping_path(data).name if data else '<name>.columns.yaml'}); "
                        "give the columns (emg_pose_train --emg-columns ..., see --help)")
    return load_mapping_file(found)


# --- columns by name, glob, index ---------------------------------------------------------


def resolve_columns(specs: Sequence[str], header: Sequence[str], what: str,
                    where: object) -> list[int]:
    """Column indices for ``specs`` (names, globs, indices, ``a:b`` ranges), in order."""
    out: list[int] = []
    for spec in specs:
        if _is_int(spec):
            idx = [int(spec)]
        elif ":" in spec and all(_is_int(p) or p == "" for p in spec.split(":", 1)):
            a, b = spec.split(":", 1)
            idx = list(range(len(header)))[slice(int(a) if a else None, int(b) if b else None)]
        elif spec in header:
            idx = [list(header).index(spec)]
        else:
            idx = [i for i, name in enumerate(header) if fnmatch.fnmatchcase(name, spec)]
        bad = [i for i in idx if not -len(header) <= i < len(header)]
        if not idx or bad:
            shown = ", ".join(header[:16]) + (", ..." if len(header) > 16 else "")
            raise DataError(f"{where}: {what} column {spec!r} matches no column (columns: "
                            f"{shown})")
        out += [i % len(header) for i in idx if i % len(header) not in out]
    return out


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


# --- the reader -----------------------------------------------------------------------------


@dataclass
class _Plan:
    """Column indices of a mapping in one file."""

    emg: list[int]
    time: int | None = None
    counter: int | None = None
    values: list[int] = field(default_factory=list)
    value_names: list[str] = field(default_factory=list)
    angles: list[int] = field(default_factory=list)
    points: list[int] = field(default_factory=list)  # 3 per point of ``point_names``
    point_names: tuple[str, ...] = ()
    gesture: int | None = None


def _plan(m: ColumnMapping, header: list[str], where: object) -> _Plan:
    def one(spec: str, what: str) -> int | None:
        if not spec:
            return None
        idx = resolve_columns([spec], header, what, where)
        if len(idx) != 1:
            raise DataError(f"{where}: {what} column {spec!r} matches {len(idx)} columns")
        return idx[0]

    plan = _Plan(resolve_columns(m.emg, header, "EMG", where), one(m.time, "time"),
                 one(m.counter, "counter"), gesture=one(m.gesture, "gesture"))
    for spec in m.values:
        name, _, column = spec.rpartition("=") if "=" in spec else ("", "", spec)
        idx = resolve_columns([column], header, "value", where)
        if name and len(idx) != 1:
            raise DataError(f"{where}: value {name!r} = {column!r} matches {len(idx)} columns")
        plan.values += idx
        plan.value_names += [name] if name else [header[i] for i in idx]
    if m.joint_angles == (AUTO,):
        try:
            plan.angles = JOINT_ORDER.index(header).tolist()
        except NameOrderError as exc:
            raise DataError(f"{where}: joint_angles auto: {exc} among the columns") from None
    elif m.joint_angles:
        plan.angles = resolve_columns(m.joint_angles, header, "joint angle", where)
        if len(plan.angles) != NUM_JOINTS:
            raise DataError(f"{where}: joint_angles maps {len(plan.angles)} columns, need "
                            f"{NUM_JOINTS} (in the order {', '.join(JOINT_NAMES[:3])}, ...)")
    if m.keypoints:
        order = m.point_order
        kept = [p for p in order if p not in IGNORED_POINTS]
        try:  # every one of our 21 points exactly once
            KEYPOINT_ORDER.index(kept)
        except NameOrderError as exc:
            raise DataError(f"{where}: keypoint_order: {exc}") from None
        if len(set(kept)) != len(kept):
            raise DataError(f"{where}: keypoint_order names a point twice")
        if m.keypoints == (AUTO,):
            cols = [f"{p}_{axis}" for p in kept for axis in "xyz"]
            missing = [c for c in cols if c not in header]
            if missing:
                raise DataError(f"{where}: keypoints auto: no columns {missing[:4]}"
                                f"{'...' if len(missing) > 4 else ''}")
            plan.points = [header.index(c) for c in cols]
            plan.point_names = tuple(kept)
        else:
            idx = resolve_columns(m.keypoints, header, "keypoint", where)
            if len(idx) != 3 * len(order):
                named = m.keypoint_order if isinstance(m.keypoint_order, str) else "given"
                raise DataError(f"{where}: keypoints maps {len(idx)} columns, the {named} "
                                f"order has {len(order)} points x 3 = {3 * len(order)}")
            plan.points = [c for k, p in enumerate(order) if p not in IGNORED_POINTS
                           for c in idx[3 * k:3 * k + 3]]
            plan.point_names = tuple(kept)
    return plan


def _parse_times(table: Table, col: int, unit: str, where: object) -> np.ndarray:
    """Seconds (float, NaN where missing) of a time column."""
    numbers = table.data[:, col]
    strings = table.text.get(col)
    given = [s for s in strings if s] if strings is not None else []
    if unit in SECONDS_PER_UNIT:
        return numbers * SECONDS_PER_UNIT[unit]
    numeric = strings is None or np.isfinite(numbers).sum() >= max(1, len(given)) * 0.5
    if unit == AUTO and numeric:
        t = numbers[np.isfinite(numbers)]
        size = float(np.median(np.abs(t))) if len(t) else 0.0
        for name, ns in _DATETIME_SCALE.items():  # epoch times since about 2001
            if 1e9 * 1e9 / ns <= size < 1e10 * 1e9 / ns:
                return numbers * SECONDS_PER_UNIT[name]
        raise DataError(f"{where}: the time column holds plain numbers (median {size:g}) "
                        "that are not epoch times: give time_unit (s, ms, us, ns)")
    out = np.full(len(numbers), np.nan)
    for i, text in enumerate(strings or []):
        if text:
            try:
                out[i] = np.datetime64(text.replace("Z", ""), "ns").astype(np.int64) * 1e-9
            except ValueError:
                pass
    if not np.isfinite(out).any():
        raise DataError(f"{where}: the time column has no date strings that parse "
                        f"(first: {given[0] if given else 'none'!r})")
    return out


def _place_by_counter(counter: np.ndarray, usable: np.ndarray, table: Table,
                      where: object) -> tuple[np.ndarray, dict]:
    """Output position of every row (-1: dropped) from a sample counter; statistics."""
    pos = np.full(len(counter), -1, np.int64)
    rows = np.flatnonzero(usable & np.isfinite(counter))
    stats = {"counter_lost_samples": 0, "counter_repeated_rows": 0, "counter_restarts": 0}
    if len(rows) == 0:
        raise DataError(f"{where}: no row has a usable counter value")
    values = np.round(counter[rows]).astype(np.int64)
    p, prev = 0, int(values[0])
    pos[rows[0]] = 0
    restart_lines = []
    for r, v in zip(rows[1:].tolist(), values[1:].tolist()):
        if v > prev:
            stats["counter_lost_samples"] += v - prev - 1
            p += v - prev
        elif prev - v > _MAX_RESTART_STEP:
            stats["counter_restarts"] += 1
            restart_lines.append(table.line_of(r))
            p += 2  # one dropped sample: no window reaches across the restart
        else:
            stats["counter_repeated_rows"] += 1
            continue
        prev = v
        pos[r] = p
    if p + 1 > 4 * len(counter) + 1000:
        raise DataError(f"{where}: the counter spans {p + 1} samples for {len(counter)} rows "
                        "(is it the sample counter?)")
    stats["restart_lines"] = restart_lines[:MAX_REPORTED_LINES]
    return pos, stats


def read(path: str | Path, mapping=None, scale_v_per_unit: float | None = None,
         sample_rate_hz: float | None = None) -> Recording:
    """A delimited text file through a column mapping (see the module docstring)."""
    path = Path(path)
    m = as_mapping(mapping, path)
    if scale_v_per_unit is not None:
        m = replace(m, emg_unit="counts", scale_v_per_unit=float(scale_v_per_unit))
    header = read_header(path, m.delimiter)
    plan = _plan(m, header, path)
    text_cols = [c for c in (plan.time if m.time_unit in ("datetime", AUTO) else None,
                             plan.gesture) if c is not None]
    numeric = [*plan.emg, *(c for c in (plan.time, plan.counter, plan.gesture)
                            if c is not None), *plan.values, *plan.angles, *plan.points]
    table = read_table(path, delimiter=m.delimiter, min_rows=2, usecols=numeric,
                       text=text_cols)
    n = len(table.data)
    bad_line = np.zeros(n, bool)
    bad_line[[ln - table.first_line for ln in table.bad_lines]] = True

    # EMG [V]
    if m.emg_unit.strip().lower() == "counts":
        scale, note = float(m.scale_v_per_unit), (
            f"counts x {m.scale_v_per_unit:g} V"
            + (f" around {m.offset_units:g}" if m.offset_units else ""))
    else:
        scale, note = _factor(VOLTS_PER_UNIT, m.emg_unit, "EMG"), f"file unit {m.emg_unit}"
    emg = (table.data[:, plan.emg] - m.offset_units) * scale
    emg_ok = np.all(np.isfinite(emg), axis=1)
    t_s = None if plan.time is None else _parse_times(table, plan.time, m.time_unit, path)
    placeable = ~bad_line  # rows that get a sample position (their EMG may be unusable)
    stats: dict = {}
    if plan.counter is not None:
        counter = table.data[:, plan.counter]
        placeable &= np.isfinite(counter)
        pos, stats = _place_by_counter(counter, placeable, table, path)
    else:
        pos = np.arange(n)
    size = int(pos.max()) + 1
    rows = np.flatnonzero(pos >= 0)
    at = pos[rows]

    def placed(a: np.ndarray, fill=0.0) -> np.ndarray:
        out = np.full((size,) + a.shape[1:], fill, dtype=a.dtype)
        out[at] = a[rows]
        return out

    valid = placed(emg_ok & ~bad_line, False)
    emg_out = placed(np.where(np.isfinite(emg), emg, 0.0))

    # time and rate
    times = None
    if t_s is not None:
        t_pos = np.full(size, np.nan)
        ok_t = np.isfinite(t_s) & (pos >= 0)
        t_pos[pos[ok_t]] = t_s[ok_t]
        if not np.isfinite(t_pos).any():
            raise DataError(f"{path}: no usable time value in column {header[plan.time]!r}")
        times = fill_times(t_pos)
    rate = m.sample_rate_hz or sample_rate_hz
    if rate is None:
        if times is None:
            raise DataError(f"{path}: no sample rate: map a time column (with its unit) or "
                            "give sample_rate_hz")
        k = np.flatnonzero(np.isfinite(t_pos))
        span = t_pos[k[-1]] - t_pos[k[0]]
        if len(k) < 2 or not span > 0:
            raise DataError(f"{path}: cannot infer the sample rate: the times do not increase")
        rate = (k[-1] - k[0]) / span
    if times is None:
        times = np.arange(size) / rate
    else:
        times = times - times[0]

    # targets
    label_ok = valid.copy()
    labels: dict[str, Any] = {}
    missing_targets = 0
    if plan.values:
        v = table.data[:, plan.values]
        ok = np.all(np.isfinite(v), axis=1)
        missing_targets += int((~ok & emg_ok & ~bad_line).sum())
        label_ok &= placed(ok, False)
        labels.update(values=placed(np.where(np.isfinite(v), v, 0.0)),
                      value_names=tuple(plan.value_names))
    if plan.angles:
        q = table.data[:, plan.angles] * _factor(RADIANS_PER_UNIT, m.angle_unit, "angle")
        ok = np.all(np.isfinite(q), axis=1)
        missing_targets += int((~ok & emg_ok & ~bad_line).sum())
        label_ok &= placed(ok, False)
        labels["joint_angles"] = placed(np.where(np.isfinite(q), q, 0.0))
    if plan.points:
        raw = table.data[:, plan.points].reshape(n, len(plan.point_names), 3)
        kp = raw[:, KEYPOINT_ORDER.index(plan.point_names)] * _factor(
            METRES_PER_UNIT, m.keypoint_unit, "keypoint")
        ok = np.all(np.isfinite(kp), axis=(1, 2))
        missing_targets += int((~ok & emg_ok & ~bad_line).sum())
        q = np.zeros((n, NUM_JOINTS))
        aligned = np.zeros_like(kp)
        if ok.any():
            q[ok] = inverse_kinematics(kp[ok], side=m.side,
                                       palm_aligned=m.keypoint_frame == "hand_base")
            right = mirror_keypoints(kp[ok]) if m.side == "left" else kp[ok]
            if m.keypoint_frame == "any":
                right = align_palm(right)
            aligned[ok] = keypoints_for_side(right, m.side)
        label_ok &= placed(ok, False)
        if "joint_angles" not in labels:
            labels["joint_angles"] = placed(q)
        labels["keypoints"] = placed(aligned)
    gesture_names: tuple[str, ...] = ()
    if plan.gesture is not None:
        gesture, gesture_names = _gestures(table, plan.gesture, m.gesture_names, path)
        labels["gesture"] = placed(gesture, -1)
    if not labels:
        label_ok = None

    stats.update(rows_read=n, unparsed_lines=len(table.bad_lines),
                 emg_missing_rows=int((~emg_ok & ~bad_line).sum()),
                 target_missing_rows=missing_targets)
    report = _report(stats, table, emg_ok, bad_line, header, plan)
    meta = {"mapping": m.to_dict(), "nonfinite_rows": stats["emg_missing_rows"],
            "bad_lines": report, "report": report, **{k: v for k, v in stats.items()
                                                     if k != "restart_lines"}}
    return Recording(
        emg=emg_out, sample_rate_hz=float(rate),
        channel_names=tuple(header[i] for i in plan.emg), timestamps_s=times,
        label_mask=label_ok, emg_valid=None if valid.all() else valid,
        gesture_names=gesture_names, side=m.side, source=str(path), format="columns",
        scale_v_per_unit=scale, units_note=note, meta=meta, **labels)


def _gestures(table: Table, col: int, names: tuple[str, ...], where: object
              ) -> tuple[np.ndarray, tuple[str, ...]]:
    numbers = table.data[:, col]
    strings = table.text[col]
    given = [s for s in strings if s]
    if given and np.isfinite(numbers).sum() == len(given):  # numeric classes
        return np.where(np.isfinite(numbers), numbers, -1).astype(np.int64), names
    classes = tuple(names) or tuple(sorted(set(given)))
    unknown = sorted(set(given) - set(classes))
    if unknown:
        raise DataError(f"{where}: gesture labels {unknown[:4]} are not in gesture_names")
    index = {name: k for k, name in enumerate(classes)}
    return np.array([index.get(s, -1) for s in strings], np.int64), classes


def _report(stats: dict, table: Table, emg_ok: np.ndarray, bad_line: np.ndarray,
            header: list[str], plan: _Plan) -> str:
    """One line: what was dropped or lost, and where ('' when the file is clean); the rows
    stay in place as dropped samples or unlabelled rows."""
    parts = []
    if table.bad_lines:
        parts.append(table.describe_bad_lines().replace("; kept as dropped samples", ""))
    missing = np.flatnonzero(~emg_ok & ~bad_line)
    if len(missing):
        lines = ", ".join(str(table.line_of(r)) for r in missing[:MAX_REPORTED_LINES])
        parts.append(f"{_count(len(missing), 'row')} with missing or "
                     f"non-numeric EMG (line {lines}{', ...' if len(missing) > 5 else ''})")
    if stats.get("counter_lost_samples"):
        parts.append(f"the counter {header[plan.counter]!r} shows "
                     f"{_count(stats['counter_lost_samples'], 'sample')} missing from the file "
                     "(lost on the way, or on lines that did not parse)")
    if stats.get("counter_repeated_rows"):
        parts.append(f"{_count(stats['counter_repeated_rows'], 'row')} with a repeated or "
                     "backward counter dropped")
    if stats.get("counter_restarts"):
        parts.append(f"the counter restarts {stats['counter_restarts']} times (line "
                     f"{', '.join(map(str, stats['restart_lines']))})")
    if stats.get("target_missing_rows"):
        parts.append(f"{_count(stats['target_missing_rows'], 'row')} without targets "
                     "(unlabelled)")
    if not parts:
        return ""
    return "; ".join(parts)


def _count(k: int, what: str) -> str:
    return f"{int(k)} {what}{'s' * (int(k) != 1)}"


def looks_like(path: Path) -> bool:
    """A file with a column mapping saved next to it."""
    return path.is_file() and path.suffix.lower() not in (".yaml", ".yml") and (
        find_mapping(path) is not None)


# --- command-line flags (emg_pose_train, emg_pose_eval) ------------------------------------

MAPPING_FLAGS: dict[str, tuple[str, Any, str]] = {  # see FlagTable
    "--emg-columns": ("emg", str, "EMG columns: names, globs, 0-based indices, a:b ranges "
                      "(comma-separated)"),
    "--emg-unit": ("emg_unit", str, "V | mV | uV | counts"),
    "--scale-v-per-unit": ("scale_v_per_unit", float, "counts: volts per count"),
    "--offset-units": ("offset_units", float, "counts: the zero level [counts]"),
    "--time-column": ("time", str, "time column"),
    "--time-unit": ("time_unit", str, "s | ms | us | ns | datetime | auto"),
    "--sample-rate-hz": ("sample_rate_hz", float, "nominal sample rate [Hz] (else from the "
                         "time column)"),
    "--counter-column": ("counter", str, "sample counter column (gaps = lost samples)"),
    "--value-columns": ("values", str, "named target values: columns or name=column"),
    "--angle-columns": ("joint_angles", str, "20 joint-angle columns in our order, or auto"),
    "--angle-unit": ("angle_unit", str, "rad | deg"),
    "--keypoint-columns": ("keypoints", str, "x,y,z columns per point of --keypoint-order, "
                           "or auto (<point>_x ...)"),
    "--keypoint-order": ("keypoint_order", str, f"{' | '.join(KEYPOINT_ORDERS)} | a list "
                         "of point names"),
    "--keypoint-unit": ("keypoint_unit", str, "m | cm | mm"),
    "--keypoint-frame": ("keypoint_frame", str, "any (palm fitted) | hand_base"),
    "--gesture-column": ("gesture", str, "gesture class column (numbers or text)"),
    "--side": ("side", str, "right | left"),
    "--delimiter": ("delimiter", str, "field separator (default ,)"),
}


FlagTable = dict[str, tuple[str, Any, str]]  # flag -> (field name, type, help)


def add_flag_table(parser, table: FlagTable) -> None:
    """One optional argument (default None) per flag of ``table``."""
    for flag, (_, kind, text) in table.items():
        parser.add_argument(flag, type=kind, default=None, help=text)


def flags_given(args: argparse.Namespace, table: FlagTable) -> dict[str, Any]:
    """{field name: value} of the flags of ``table`` that were given."""
    values = {name: getattr(args, flag.lstrip("-").replace("-", "_"), None)
              for flag, (name, _, _) in table.items()}
    return {k: v for k, v in values.items() if v is not None}


def add_mapping_arguments(parser: argparse.ArgumentParser) -> None:
    """The column-mapping flags (--columns, --emg-columns, ..., --save-columns)."""
    g = parser.add_argument_group(
        "column-mapped CSV (any CSV; see emg_hand_core.recordings.columns)")
    g.add_argument("--columns", metavar="PRESET|YAML",
                   help=f"a mapping: a preset ({', '.join(PRESETS)}) or a YAML file; the "
                        "flags below override its fields")
    add_flag_table(g, MAPPING_FLAGS)
    g.add_argument("--save-columns", action="store_true",
                   help="save the mapping next to each data file (<name>.columns.yaml), "
                        "where every later command finds it")


def mapping_from_args(args: argparse.Namespace) -> ColumnMapping | None:
    """The mapping the flags describe, or None when no mapping flag was given."""
    given = flags_given(args, MAPPING_FLAGS)
    if not given and not args.columns:
        return None
    if given.get("keypoint_order") and given["keypoint_order"] not in KEYPOINT_ORDERS:
        given["keypoint_order"] = _specs(given["keypoint_order"])
    base = as_mapping(args.columns).to_dict() if args.columns else {}
    return ColumnMapping.from_dict({**base, **given})


__all__ = ["FOLDER_MAPPING", "KEYPOINT_ORDERS", "MAPPING_FLAGS", "PRESETS", "ColumnMapping",
           "add_flag_table", "add_mapping_arguments", "as_mapping", "find_mapping",
           "flags_given", "load_mapping_file", "looks_like", "mapping_from_args",
           "mapping_path", "read", "resolve_columns", "save_mapping"]
