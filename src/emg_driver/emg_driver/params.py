"""The driver's parameters: names, defaults, descriptions and validation (pure; no rclpy).

The node declares every entry of :data:`PARAMS` with its description, checks each change
with :func:`check_value` in its on-set-parameters callback, and builds its source from
:func:`build_settings`, which also checks the combinations (a text channel list that does
not match ``num_channels``, a replay file that is missing ...). Every refusal is a
ValueError whose message names the parameter, the value and what would be valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from emg_hand_core.params import Param, ParamTable
from emg_hand_core.recordings import FORMAT_CHOICES, FORMATS

from .protocols import BinaryConfig, TextConfig
from .sim import MotionConfig, SimConfig, WearerConfig, wearer_b
from .stream import chunk_len_for
from .transport import STANDARD_BAUD_RATES, baud_rate_problem

SOURCES = ("sim", "serial", "replay", "cyton", "myo", "brainflow", "lsl")
PROTOCOLS = ("text", "binary")


def _column(v: Any) -> str | None:
    return None if -1 <= v <= 1024 else "must be -1 (none) or a 0-based column index"


def _columns(v: Any) -> str | None:
    if any(c < 0 or c > 1024 for c in v) or len(set(v)) != len(v):
        return "must be distinct 0-based column indices"
    return None


def _gains(v: Any) -> str | None:
    if any(not (math.isfinite(g) and g > 0) for g in v):
        return "every gain must be finite and > 0"
    return None


def _cyton_gains(v: Any) -> str | None:
    from .openbci import GAINS

    bad = [g for g in v if g not in GAINS]
    return f"gains must be among {GAINS}, not {bad}" if bad else None


def _bt_address(v: Any) -> str | None:
    if not v:
        return None
    from .bgapi import parse_address

    try:
        parse_address(v)
    except ValueError as err:
        return str(err)
    return None


def _line_hz(v: Any) -> str | None:
    return None if v in (0.0, 50.0, 60.0) else "must be 0 (off), 50 or 60"


def _names(v: Any) -> str | None:
    if any(not n for n in v) or len(set(v)) != len(v):
        return "names must be non-empty and distinct"
    return None


PARAMS = ParamTable(
    (
        # --- all sources
        Param(
            "source",
            "sim",
            "Where EMG comes from: 'sim' (simulated armband, default), 'serial' (an armband "
            "streaming text lines or binary frames on a serial port), 'replay' (a recording "
            "file), 'cyton' (OpenBCI Cyton / Cyton + Daisy, native protocol), 'myo' (Myo "
            "armband through its BLED112 dongle), 'brainflow' (any BrainFlow board), 'lsl' "
            "(a Lab Streaming Layer stream).",
            choices=SOURCES,
        ),
        Param(
            "autostart",
            True,
            "Configure and activate at start-up (plain node use). False: wait for lifecycle "
            "transitions (configure, activate) from a manager.",
        ),
        Param(
            "frame_id",
            "emg_armband",
            "header.frame_id of emg/raw: the armband frame.",
            check=lambda v: None if v else "must not be empty",
        ),
        Param(
            "chunk_ms",
            10.0,
            "Chunk length [ms]: samples per emg/raw message = chunk_ms x rate.",
            unit="ms",
            min=1.0,
            max=1000.0,
        ),
        Param(
            "sample_rate_hz",
            500.0,
            "Nominal sample rate [Hz] of the sim and serial sources (replay: the file's; "
            "cyton, myo, brainflow, lsl: the device's own).",
            unit="Hz",
            min=1.0,
            max=100000.0,
        ),
        Param("num_channels", 8, "Channels of the sim and serial sources (the others: the "
              "device's or file's).", min=1, max=256),
        Param(
            "publish_imu",
            True,
            "Publish imu/raw (sensor_msgs/Imu, REP-103 units) from armbands with an IMU: the "
            "Myo's orientation, gyroscope and accelerometer, the Cyton's accelerometer.",
        ),
        Param(
            "channel_names",
            [],
            "Channel names; empty = ch_1..ch_N (replay: the file's names).",
            kind="string_array",
            check=_names,
        ),
        Param(
            "publish_reference",
            True,
            "Publish the true (sim) or recorded (replay) pose on hand/reference/joint_states.",
        ),
        Param(
            "diagnostics_period_s",
            1.0,
            "Period of /diagnostics reports [s].",
            unit="s",
            min=0.05,
            max=60.0,
        ),
        # --- serial
        Param(
            "port",
            "/dev/ttyACM0",
            "Serial device (serial source). Prefer a stable /dev/serial/by-id/... path.",
            check=lambda v: None if v else "must not be empty",
        ),
        Param(
            "baud_rate",
            115200,
            "Serial baud rate [bit/s] (serial source).",
            check=baud_rate_problem,
        ),
        Param(
            "timeout_s",
            0.02,
            "Serial read wait [s]: after this long without bytes a held partial chunk is "
            "checked for flushing (serial source).",
            unit="s",
            min=0.001,
            max=1.0,
        ),
        Param(
            "reconnect_max_s",
            0.5,
            "Longest wait between attempts to reopen a lost serial port [s]; attempts start "
            "at 0.05 s and double.",
            unit="s",
            min=0.05,
            max=30.0,
        ),
        Param(
            "stale_timeout_s",
            3.0,
            "After each open of the serial port, the first byte must come within this time "
            "[s], else the port is closed and reopened and the stale device reported (a "
            "device node left behind by an unplug; 0 = never). Above an Arduino's boot time "
            "after the open resets it.",
            unit="s",
            min=0.0,
            max=60.0,
        ),
        Param(
            "protocol",
            "text",
            "Serial wire protocol: 'text' (one sample per line) or 'binary' (CRC-checked "
            "frames, see README).",
            choices=PROTOCOLS,
        ),
        Param(
            "scale_v_per_unit",
            1.0e-6,
            "Volts per raw unit: volts = (raw - offset_units) x scale_v_per_unit (text lines, "
            "integer binary payloads, replayed Myo counts). E.g. ADC: vref / 2^bits / gain.",
            min=0.0,
            min_exclusive=True,
        ),
        Param(
            "offset_units",
            0.0,
            "Raw value of 0 V (e.g. 512 for a unipolar 10-bit ADC centred at mid-scale).",
        ),
        Param(
            "text_channel_columns",
            [],
            "0-based columns of the channels in a text line; empty = the first num_channels "
            "columns that are not the counter/timestamp column.",
            kind="int_array",
            check=_columns,
        ),
        Param(
            "text_num_columns",
            0,
            "Exact number of fields per text line (0 = any, as long as the used columns exist). "
            "Set it to reject merged or truncated lines.",
            min=0,
            max=1024,
        ),
        Param(
            "text_counter_column",
            -1,
            "0-based column of a sample counter in text lines (-1 = none). Gaps in it are "
            "counted as dropped samples.",
            check=_column,
        ),
        Param(
            "text_counter_modulus",
            0,
            "The text counter wraps at this value (e.g. 256, 65536; 0 = never wraps).",
            min=0,
            max=2**62,
        ),
        Param(
            "text_timestamp_column",
            -1,
            "0-based column of a device timestamp in text lines (-1 = none); used like a "
            "counter (round(t x rate)) when there is no counter column.",
            check=_column,
        ),
        Param(
            "text_timestamp_scale_s",
            1.0e-3,
            "Seconds per unit of the text timestamp column (1e-3 = milliseconds).",
            min=0.0,
            min_exclusive=True,
        ),
        # --- OpenBCI Cyton (native protocol; port, baud_rate, reconnect_max_s as serial)
        Param(
            "cyton_daisy",
            False,
            "Cyton with the Daisy module: 16 channels at 125 Hz (else 8 channels at 250 Hz).",
        ),
        Param(
            "cyton_gains",
            [],
            "ADS1299 gain per channel (1, 2, 4, 6, 8, 12 or 24; empty = 24 on every channel). "
            "Volts per count = 4.5 / gain / (2^23 - 1); the driver sets these gains on the "
            "board after its soft reset.",
            kind="int_array",
            check=_cyton_gains,
        ),
        # --- Myo through the BLED112 dongle (port: the dongle's serial device)
        Param(
            "myo_address",
            "",
            "Bluetooth address of the Myo to connect to (AA:BB:CC:DD:EE:FF); empty = the "
            "first Myo found.",
            check=_bt_address,
        ),
        Param(
            "vibrate_on_prompt",
            False,
            "Myo: vibrate briefly at each guided-calibration prompt (calibration/prompt) to "
            "hold a pose, a medium vibration when the calibration is over.",
        ),
        # --- BrainFlow
        Param(
            "brainflow_board",
            "synthetic",
            "BrainFlow board: a BoardIds name with or without _BOARD (synthetic, cyton, "
            "cyton_daisy, ganglion, callibri_emg, gforce_pro, ...) or its number.",
            check=lambda v: None if v.strip() else "must not be empty",
        ),
        Param("brainflow_serial_port", "", "BrainFlowInputParams.serial_port (serial boards)."),
        Param("brainflow_mac_address", "", "BrainFlowInputParams.mac_address (BLE boards)."),
        Param("brainflow_ip_address", "", "BrainFlowInputParams.ip_address (network boards)."),
        Param("brainflow_ip_port", 0, "BrainFlowInputParams.ip_port (0 = the board's default).",
              min=0, max=65535),
        Param("brainflow_serial_number", "",
              "BrainFlowInputParams.serial_number (boards found by serial number)."),
        Param("brainflow_other_info", "", "BrainFlowInputParams.other_info (board-specific)."),
        Param("brainflow_timeout_s", 0,
              "BrainFlowInputParams.timeout [s]: discovery timeout of BLE / network boards "
              "(0 = the board's default).", unit="s", min=0, max=600),
        Param(
            "brainflow_channels",
            [],
            "Rows of BrainFlow's data to publish (empty = the board's EMG channels, "
            "get_emg_channels). Values in uV are published in V.",
            kind="int_array",
            check=_columns,
        ),
        # --- Lab Streaming Layer
        Param("lsl_name", "", "LSL stream name to resolve (empty = any)."),
        Param("lsl_type", "EMG", "LSL stream type to resolve (empty = any)."),
        Param("lsl_source_id", "", "LSL source_id to resolve (empty = any)."),
        Param(
            "lsl_resolve_timeout_s",
            5.0,
            "How long configure waits for the LSL stream to appear [s].",
            unit="s",
            min=0.1,
            max=600.0,
        ),
        # --- live library sources (brainflow, lsl)
        Param(
            "stall_timeout_s",
            2.0,
            "A BrainFlow board or LSL stream that delivers no sample for this long is "
            "reported on /diagnostics and reopened (LSL: resolved again) [s].",
            unit="s",
            min=0.1,
            max=600.0,
        ),
        # --- sim
        Param(
            "seed",
            0,
            "Simulator seed: the same seed plays the same motion and noise.",
            min=0,
            max=2**31 - 1,
        ),
        Param(
            "wearer",
            "a",
            "Simulated wearer: 'a' (the default model's training conditions, adjusted by "
            "electrode_shift, channel_gains and amplitude_scale) or 'b' (armband rotated 0.6 "
            "electrode spacings, uneven gains, more crosstalk; those three are ignored).",
            choices=("a", "b"),
        ),
        Param(
            "electrode_shift",
            0.0,
            "Simulated armband rotation around the forearm [electrode spacings] (another "
            "wearer or a re-donned armband).",
            unit="electrode spacings",
            min=-64.0,
            max=64.0,
        ),
        Param(
            "channel_gains",
            [],
            "Simulated per-channel electrode gains (empty = all 1; else one per channel).",
            kind="double_array",
            check=_gains,
        ),
        Param(
            "amplitude_scale",
            1.0,
            "Simulated overall EMG amplitude factor (wearer's tissue).",
            min=0.01,
            max=100.0,
        ),
        Param(
            "follow_prompts",
            False,
            "Simulated wearer follows guided-calibration prompts (calibration/prompt): holds "
            "the prompted pose, rests between prompts, free motion after the last.",
        ),
        Param(
            "noise_v",
            4.0e-6,
            "Simulated baseline noise RMS per channel [V].",
            unit="V",
            min=0.0,
            max=0.1,
        ),
        Param(
            "line_noise_hz",
            0.0,
            "Simulated power-line interference frequency [Hz]: 0 (off), 50 or 60.",
            check=_line_hz,
        ),
        Param(
            "line_noise_v",
            20.0e-6,
            "Simulated power-line amplitude [V].",
            unit="V",
            min=0.0,
            max=0.1,
        ),
        # --- replay
        Param(
            "file",
            "",
            "Recording to replay (replay source), any format of emg_hand_core.recordings: "
            "emg2pose .h5/.hdf5, a rosbag2 folder, EEG-EMG-Hands CSV, BrainFlow exg.csv "
            "or run folder, Myo .txt, any CSV with its column mapping saved next to it "
            "(<name>.columns.yaml). Replay and training read a file identically.",
        ),
        Param(
            "format",
            "auto",
            f"Recording format: auto, {', '.join(FORMATS)} (older names accepted).",
            choices=FORMAT_CHOICES,
        ),
        Param(
            "rate",
            1.0,
            "Replay speed factor: 1 = the recording's own rate, 2 = twice as fast.",
            min=0.01,
            max=100.0,
        ),
        Param("loop", False, "Replay from the start again at the end."),
        Param(
            "replay_sample_rate_hz",
            0.0,
            "Override the recording's sample rate [Hz] (0 = from the file; Myo text: 200).",
            unit="Hz",
            min=0.0,
            max=100000.0,
        ),
        Param(
            "replay_scale_v_per_unit",
            0.0,
            "Volts per raw count of a replayed recording in device counts (Myo text) [V]; "
            "0 = the format's own scale (Myo: 1e-5, as emg_pose_train uses). Recordings "
            "in physical units (uV, V) ignore it.",
            unit="V",
            min=0.0,
            max=1.0,
        ),
    )
)
PARAM_BY_NAME = PARAMS.by_name


def check_value(name: str, value: Any) -> Any:
    """The value coerced to the parameter's kind; ParamError (a ValueError) with a clear
    message if invalid (emg_hand_core.params rules: ints accepted for doubles)."""
    return PARAMS.coerce(name, value)


def defaults() -> dict[str, Any]:
    return PARAMS.defaults()


@dataclass(frozen=True)
class DriverSettings:
    """Everything the node needs to build and run its source."""

    source: str
    frame_id: str
    chunk_ms: float
    sample_rate_hz: float
    num_channels: int
    channel_names: tuple[str, ...]
    publish_reference: bool
    diagnostics_period_s: float
    values: dict[str, Any]  # all parameter values, checked

    def chunk_len(self, rate_hz: float | None = None) -> int:
        return chunk_len_for(self.chunk_ms, rate_hz or self.sample_rate_hz)

    def qos_depth(self, chunk_len: int | None = None, emit_rate_hz: float | None = None) -> int:
        """emg/raw history depth: one second of chunks (DESIGN.md), at least 10.

        Chunks per second = samples per second emitted / samples per chunk (a replay at 10x
        the recording's rate emits 10x more chunks per second)."""
        rate = emit_rate_hz or self.sample_rate_hz
        length = chunk_len or self.chunk_len(rate)
        return max(10, int(math.ceil(rate / length)))

    def text_config(self) -> TextConfig:
        v = self.values
        return TextConfig(
            num_channels=self.num_channels,
            channel_columns=tuple(v["text_channel_columns"]),
            num_columns=v["text_num_columns"],
            counter_column=v["text_counter_column"],
            counter_modulus=v["text_counter_modulus"],
            timestamp_column=v["text_timestamp_column"],
            timestamp_scale_s=v["text_timestamp_scale_s"],
            scale_v_per_unit=v["scale_v_per_unit"],
            offset_units=v["offset_units"],
        )

    def binary_config(self) -> BinaryConfig:
        v = self.values
        return BinaryConfig(
            num_channels=self.num_channels,
            scale_v_per_unit=v["scale_v_per_unit"],
            offset_units=v["offset_units"],
        )

    def cyton_config(self):
        from .openbci import CytonConfig

        return CytonConfig(daisy=self.values["cyton_daisy"],
                           gains=tuple(self.values["cyton_gains"]))

    def sim_config(self) -> SimConfig:
        v = self.values
        if v["wearer"] == "b":
            wearer = wearer_b(self.num_channels)
        else:
            wearer = WearerConfig(
                electrode_shift=v["electrode_shift"],
                channel_gains=tuple(v["channel_gains"]) or None,
                amplitude_scale=v["amplitude_scale"],
            )
        return SimConfig(
            sample_rate_hz=self.sample_rate_hz,
            num_channels=self.num_channels,
            wearer=wearer,
            motion=MotionConfig(),
            noise_v=v["noise_v"],
            line_noise_hz=v["line_noise_hz"],
            line_noise_v=v["line_noise_v"],
        )


def build_settings(values: dict[str, Any]) -> DriverSettings:
    """Check every value and their combinations; ValueError names the first problem."""
    v = defaults()
    v.update(values)
    v = {name: check_value(name, value) for name, value in v.items()}
    source = v["source"]
    n = v["num_channels"]
    names = tuple(v["channel_names"])
    if names and source in ("sim", "serial") and len(names) != n:
        raise ValueError(f"channel_names has {len(names)} names but num_channels is {n}")
    settings = DriverSettings(
        source=source,
        frame_id=v["frame_id"],
        chunk_ms=v["chunk_ms"],
        sample_rate_hz=v["sample_rate_hz"],
        num_channels=n,
        channel_names=names,
        publish_reference=v["publish_reference"],
        diagnostics_period_s=v["diagnostics_period_s"],
        values=v,
    )
    if source == "serial":
        if v["protocol"] == "text":
            settings.text_config().validate()
        else:
            settings.binary_config().validate()
    elif source == "sim":
        settings.sim_config().validate()
    elif source == "replay" and not v["file"]:
        raise ValueError("source 'replay' needs the parameter 'file' (a recording path)")
    elif source == "cyton":
        settings.cyton_config().validate()
    return settings


__all__ = [
    "PARAMS",
    "PARAM_BY_NAME",
    "PROTOCOLS",
    "SOURCES",
    "STANDARD_BAUD_RATES",
    "DriverSettings",
    "build_settings",
    "check_value",
    "defaults",
]
