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
