"""Delimited numeric text files (CSV, the Myo logger's lines), read without losing the grid.

:func:`read_table` returns one row per data line of the file. A line that does not parse
(wrong number of fields, a field that is not a number) becomes a row of NaN in place,
so later rows keep their position (their sample index), and is counted with its line
number; the readers then treat those rows as dropped samples (see
:mod:`.recording`). Fast path: numpy's parser on a clean file; only a file with bad lines
is parsed line by line.

Files with text columns (a timestamp as a date string, a hand label) and files where only
some columns matter are read with ``usecols``: only those columns are parsed, a field
there that is not a number becomes NaN without losing the rest of the row (the reader
decides what a missing field means), other columns may hold anything, ``text`` columns
are kept as strings, and only a line with the wrong number of fields is a bad line.
Quoted fields (``"a, b"``) are understood.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .recording import DataError

MAX_REPORTED_LINES = 5


@dataclass
class Table:
    """A numeric table: ``data`` (rows, columns) float64, NaN where a line did not parse."""

    path: Path
    header: list[str]
    data: np.ndarray
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers in the file
    text: dict[int, list[str]] = field(default_factory=dict)  # column -> its fields (text=)
    first_line: int = 2  # 1-based line number of data row 0

    def line_of(self, row: int) -> int:
        """1-based line number in the file of data row ``row``."""
        return self.first_line + int(row)

    def column(self, name: str) -> np.ndarray:
        return self.data[:, self.index(name)]

    def index(self, name: str) -> int:
        try:
            return self.header.index(name)
        except ValueError:
            shown = ", ".join(self.header[:12]) + ("..." if len(self.header) > 12 else "")
            raise DataError(f"{self.path}: no column {name!r} (columns: {shown})") from None

    def columns(self, names) -> np.ndarray:
        return self.data[:, [self.index(n) for n in names]]

    def texts(self, name: str) -> list[str]:
        """The fields of a column read with ``text=`` (stripped strings)."""
        i = self.index(name)
        if i not in self.text:
            raise KeyError(f"column {name!r} was not read as text")
        return self.text[i]

    def describe_bad_lines(self) -> str:
        """'2 lines did not parse (lines 17, 90)' or ''."""
        if not self.bad_lines:
            return ""
        shown = ", ".join(str(n) for n in self.bad_lines[:MAX_REPORTED_LINES])
        more = ", ..." if len(self.bad_lines) > MAX_REPORTED_LINES else ""
        return (f"{len(self.bad_lines)} line{'s' * (len(self.bad_lines) != 1)} did not parse "
                f"(line {shown}{more}); kept as dropped samples")


def read_header(path: str | Path, delimiter: str = ",") -> list[str]:
    """The column names of a file's first line (stripped), or DataError."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            first = f.readline()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if not first.strip():
        raise DataError(f"{path}: empty file or empty first line (no column names)")
    return [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]


def read_table(path: str | Path, header: bool = True, delimiter: str = ",",
               min_rows: int = 1, usecols: Sequence[int] | None = None,
               text: Sequence[int] = ()) -> Table:
    """Read ``path``; ``header``: the first line names the columns (else they are numbered
    ``0..K-1`` from the first data line's field count). Raises DataError for a file that
    cannot be read or holds fewer than ``min_rows`` data lines.

    ``usecols`` (column indices): parse only these, leniently (see the module docstring);
    ``data`` keeps one column per header name, NaN in the columns not parsed. ``text``:
    columns kept as strings in :attr:`Table.text`.
    """
    path = Path(path)
    try:
        text_all = path.read_text(encoding="utf-8-sig", errors="replace")  # BOM dropped
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    lines = text_all.splitlines()
    names: list[str] = []
    first = 0
    if header:
        if not lines:
            raise DataError(f"{path}: empty file")
        names = [h.strip() for h in next(csv.reader([lines[0]], delimiter=delimiter))]
        first = 1
    body = lines[first:]
    # trailing blank lines are not rows
    while body and not body[-1].strip():
        body.pop()
    if not header:
        if not body:
            raise DataError(f"{path}: no data lines")
        names = [str(k) for k in range(len(body[0].split(delimiter)))]
    width = len(names)
    strings: dict[int, list[str]] = {}
    if usecols is None and not text:
        data = _fast_parse(body, delimiter, width)
        bad: list[int] = []
        if data is None:
            data, bad_rows = _slow_parse(body, delimiter, width)
            bad = [first + 1 + r for r in bad_rows]
    else:
        cols = sorted(set(range(width) if usecols is None else usecols))
        outside = [c for c in (*cols, *text) if not 0 <= c < width]
        if outside:
            raise DataError(f"{path}: column index {outside[0]} outside 0..{width - 1}")
        data, bad_rows, strings = _column_parse(body, delimiter, width, cols, list(text))
        bad = [first + 1 + r for r in bad_rows]
    if len(data) < min_rows:
        raise DataError(f"{path}: {len(data)} data lines, need at least {min_rows}")
    if len(bad) == len(data):
        raise DataError(f"{path}: no line parses as {width} numbers separated by "
                        f"{delimiter!r} (first bad line {bad[0]})")
    return Table(path, names, data, bad, strings, first + 1)


def _column_parse(body: list[str], delimiter: str, width: int, cols: list[int],
                  text: list[int]) -> tuple[np.ndarray, list[int], dict[int, list[str]]]:
    """Lenient parse of some columns (module docstring): (data, bad rows, text fields)."""
    data = np.full((len(body), width), np.nan)
    quoted = any('"' in line for line in body)
    fields = (list(csv.reader(body, delimiter=delimiter)) if quoted
              else [line.split(delimiter) for line in body])
    bad = [i for i, f in enumerate(fields) if len(f) != width]
    numbers_done = False
    if not bad and not quoted and cols:
        try:  # numpy's parser for the numbers when every field of the columns is one
            data[:, cols] = np.loadtxt(io.StringIO("\n".join(body)), delimiter=delimiter,
                                       usecols=cols, ndmin=2, dtype=np.float64)
            numbers_done = True
        except ValueError:
            pass
    bad_set = set(bad)
    strings = {c: [""] * len(body) for c in text}
    for i, f in enumerate(fields):
        if i in bad_set:
            continue
        if not numbers_done:
            for c in cols:
                try:
                    data[i, c] = float(f[c])
                except ValueError:
                    pass  # stays NaN: a missing or non-numeric field
        for c in text:
            strings[c][i] = f[c].strip()
    return data, bad, strings


def _fast_parse(body: list[str], delimiter: str, width: int) -> np.ndarray | None:
    if not body:
        return np.zeros((0, width))
    try:
        data = np.loadtxt(io.StringIO("\n".join(body)), delimiter=delimiter, ndmin=2,
                          dtype=np.float64)
    except ValueError:
        return None
    if data.shape != (len(body), width):
        return None
    return data


def _slow_parse(body: list[str], delimiter: str, width: int) -> tuple[np.ndarray, list[int]]:
    data = np.full((len(body), width), np.nan)
    bad: list[int] = []
    for i, line in enumerate(body):
        fields = line.split(delimiter)
        if len(fields) != width:
            bad.append(i)
            continue
        try:
            data[i] = [float(f) for f in fields]
        except ValueError:
            data[i] = np.nan
            bad.append(i)
    return data, bad


def rate_from_ms(t_ms: np.ndarray, where: object) -> float:
    """Nominal rate from a millisecond time column: (samples - 1) / span, robust to jitter
    (rows are consecutive device samples even when their logged times jitter)."""
    t = np.asarray(t_ms, dtype=np.float64)
    t = t[np.isfinite(t)]
    if len(t) < 2 or not t[-1] > t[0]:
        raise DataError(f"{where}: cannot infer the sample rate: fewer than 2 timestamps or "
                        "timestamps that do not increase")
    return (len(t) - 1) / ((t[-1] - t[0]) * 1e-3)


def fill_times(t: np.ndarray) -> np.ndarray:
    """A time column with NaN holes (unparsed lines) filled by linear interpolation."""
    t = np.asarray(t, dtype=np.float64)
    ok = np.isfinite(t)
    if ok.all() or not ok.any():
        return t
    idx = np.arange(len(t))
    return np.interp(idx, idx[ok], t[ok])


__all__ = ["Table", "fill_times", "rate_from_ms", "read_header", "read_table"]
