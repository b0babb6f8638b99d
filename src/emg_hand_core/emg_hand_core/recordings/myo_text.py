"""myo_readings: a Myo armband logger's text lines, ``c1,...,c8,label`` per sample.

Raw EMG of the Myo is signed 8-bit counts [-128, 127] at about 200 Hz; the Myo's counts
are not calibrated to volts, so the nominal scale
:data:`~emg_hand_core.units.MYO_VOLTS_PER_COUNT` is used (the same for the serial Myo
preset and the Myo source) unless the caller gives one. The label column is the
gesture class of each sample (the dataset's classes, :data:`GESTURE_NAMES`).
A line that does not parse (the published ``19999-2/2.txt`` has one where two samples ran
together) is kept as one dropped sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..units import MYO_VOLTS_PER_COUNT
from .recording import DataError, Recording, default_channel_names, finite_rows
from .tables import read_table

SAMPLE_RATE_HZ = 200.0
DEFAULT_SCALE_V_PER_UNIT = MYO_VOLTS_PER_COUNT
GESTURE_NAMES = ("rest", "wrist_flexion", "wrist_extension", "radial_deviation",
                 "ulnar_deviation", "pronation", "supination", "fist")


def read(path: str | Path, scale_v_per_unit: float | None = None,
         sample_rate_hz: float | None = None) -> Recording:
    """Counts x scale -> volts; the last column -> ``gesture`` (-1 on unparsed lines)."""
    path = Path(path)
    table = read_table(path, header=False)
    if table.data.shape[1] < 2:
        raise DataError(f"{path}: expected lines c1,...,cN,label (got "
                        f"{table.data.shape[1]} field per line)")
    if scale_v_per_unit is None:
        scale, note = DEFAULT_SCALE_V_PER_UNIT, (
            f"Myo int8 counts x {DEFAULT_SCALE_V_PER_UNIT:g} V (nominal, uncalibrated)")
    else:
        scale, note = float(scale_v_per_unit), f"Myo int8 counts x {scale_v_per_unit:g} V (given)"
    counts = table.data[:, :-1]
    emg, emg_valid, bad = finite_rows(counts * scale)
    labels = table.data[:, -1]
    gesture = np.where(np.isfinite(labels), labels, -1).astype(np.int64)
    rate = SAMPLE_RATE_HZ if sample_rate_hz is None else float(sample_rate_hz)
    return Recording(
        emg=emg, sample_rate_hz=rate, channel_names=default_channel_names(counts.shape[1]),
        timestamps_s=np.arange(len(emg)) / rate, gesture=gesture,
        gesture_names=GESTURE_NAMES if counts.shape[1] == 8 else (),
        emg_valid=emg_valid, source=str(path), format="myo_readings", scale_v_per_unit=scale,
        units_note=note, meta={"nonfinite_rows": bad, "bad_lines": table.describe_bad_lines()})


def looks_like(path: Path) -> bool:
    """A headerless line of numbers (c1..cN,label)."""
    if not path.is_file() or path.suffix.lower() not in (".txt", ".csv", ""):
        return False
    try:
        with open(path, "rb") as f:
            first = f.read(4096).split(b"\n", 1)[0].decode("utf-8", errors="replace")
        fields = [float(x) for x in first.split(",")]
    except (OSError, ValueError):
        return False
    return len(fields) >= 2
