"""Recordings: one in-memory form (:class:`Recording`, EMG in volts), one reader per format.

::

    from emg_hand_core.recordings import load_recording
    rec = load_recording("session.h5")          # or a bag folder, a CSV, a Myo log ...
    rec = load_recording("mine.csv", mapping={"emg": "raw*", "time": "t", "time_unit": "ms",
                                              "values": "thumb,index"})  # any CSV
    rec.emg, rec.sample_rate_hz, rec.joint_angles, rec.valid_labels()

The formats and their readers: :data:`FORMATS` (:mod:`.formats`).
"""

from .formats import (
    FORMAT_CHOICES,
    FORMAT_NAMES,
    FORMATS,
    Format,
    canonical_format,
    detect_format,
    load_recording,
)
from .recording import (
    DataError,
    Recording,
    default_channel_names,
    finite_rows,
    resample_recording,
    usable_channels,
)

__all__ = ["FORMATS", "FORMAT_CHOICES", "FORMAT_NAMES", "DataError", "Format", "Recording",
           "canonical_format", "default_channel_names", "detect_format", "finite_rows",
           "load_recording", "resample_recording", "usable_channels"]
