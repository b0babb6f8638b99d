"""Delimited numeric text files (CSV, the Myo logger's lines), read without losing the grid.

:func:`read_table` returns one row per data line of the file. A line that does not parse
(wrong number of fields, a field that is not a number) becomes a row of NaN in place,
so later rows keep their position (their sample index), and is counted with its line
number; the readers then treat those rows as dropped samples (see
:mod:`.recording`). Fast path: numpy's parser on a clean file; only a file with bad lines
is parsed line by line.
"""

from __future__ import annotations

import csv
import io
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

    def describe_bad_lines(self) -> str:
        """'2 lines did not parse (lines 17, 90)' or ''."""
        if not self.bad_lines:
            return ""
        shown = ", ".join(str(n) for n in self.bad_lines[:MAX_REPORTED_LINES])
        more = ", ..." if len(self.bad_lines) > MAX_REPORTED_LINES else ""
        return (f"{len(self.bad_lines)} line{'s' * (len(self.bad_lines) != 1)} did not parse "
                f"(line {shown}{more}); kept as dropped samples")


def read_table(path: str | Path, header: bool = True, delimiter: str = ",",
               min_rows: int = 1) -> Table:
    """Read ``path``; ``header``: the first line names the columns (else they are numbered
    ``0..K-1`` from the first data line's field count). Raises DataError for a file that
    cannot be read or holds fewer than ``min_rows`` data lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    lines = text.splitlines()
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
    data = _fast_parse(body, delimiter, width)
    bad: list[int] = []
    if data is None:
        data, bad_rows = _slow_parse(body, delimiter, width)
        bad = [first + 1 + r for r in bad_rows]
    if len(data) < min_rows:
        raise DataError(f"{path}: {len(data)} data lines, need at least {min_rows}")
    if len(bad) == len(data):
        raise DataError(f"{path}: no line parses as {width} numbers separated by "
                        f"{delimiter!r} (first bad line {bad[0]})")
    return Table(path, names, data, bad)


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


__all__ = ["Table", "fill_times", "rate_from_ms", "read_table"]
