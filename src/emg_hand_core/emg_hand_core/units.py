"""Unit factors shared by readers and device sources (everything ends up SI: volts)."""

from __future__ import annotations

MICROVOLT = 1.0e-6
"""Volts per microvolt (OpenBCI / BrainFlow rows, the EEG-EMG-Hands CSVs)."""

MYO_VOLTS_PER_COUNT = 1.0e-5
"""Nominal volts per raw Myo EMG count (signed int8). The Myo's counts are not calibrated;
this scale puts its full range (+-128 counts) at about +-1.3 mV, a surface-EMG amplitude,
and is the same for Myo recordings (myo_readings), the serial Myo preset and the Myo source,
so a model trained on one runs on the others."""

STANDARD_GRAVITY = 9.80665
"""Metres per second squared per g (accelerometers reporting in g: Myo, OpenBCI Cyton)."""

VOLTS_PER_UNIT = {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6, "microvolt": 1e-6}
"""EMG unit names a file may state (lower case) -> volts per unit."""

METRES_PER_UNIT = {"m": 1.0, "cm": 1e-2, "mm": 1e-3}
"""Length unit names -> metres per unit (tracked keypoints)."""

RADIANS_PER_UNIT = {"rad": 1.0, "deg": 3.141592653589793 / 180.0}
"""Angle unit names -> radians per unit (joint angles)."""

SECONDS_PER_UNIT = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
"""Time unit names -> seconds per unit (time columns)."""


def unit_factor(table: dict[str, float], unit: str, what: str) -> float:
    """``table[unit]`` (case-insensitive), or ValueError naming the known units."""
    key = str(unit).strip().lower()
    if key not in table:
        raise ValueError(f"unknown {what} unit {unit!r}; known: {', '.join(table)}")
    return table[key]
