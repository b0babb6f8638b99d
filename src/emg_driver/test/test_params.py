"""Parameter validation: every bad value is refused with a message naming what is valid."""

from __future__ import annotations

import pytest

from emg_driver.params import PARAMS, build_settings, check_value, defaults


def test_every_parameter_has_a_description_and_a_valid_default():
    for spec in PARAMS:
        assert len(spec.description) > 20, spec.name
        assert check_value(spec.name, spec.default) == spec.default
    s = build_settings({})
    assert s.source == "sim" and s.frame_id == "emg_armband" and s.chunk_ms == 10.0
    assert s.chunk_len() == 5 and s.qos_depth() == 100  # 1 s of 10 ms chunks


@pytest.mark.parametrize("name,value,message", [
    ("baud_rate", 12345, "not a standard serial rate"),
    ("baud_rate", -9600, "not a standard serial rate"),
    ("num_channels", 0, r"within \[1, 256\]"),
    ("num_channels", 8.0, "expected an integer"),
    ("scale_v_per_unit", 0.0, "must be > 0"),
    ("scale_v_per_unit", float("nan"), "must be finite"),
    ("source", "usb", "one of sim, serial, replay"),
    ("protocol", "json", "one of text, binary"),
    ("chunk_ms", 0.1, r"within \[1, 1000\] ms"),
    ("line_noise_hz", 55.0, "0 \\(off\\), 50 or 60"),
    ("text_channel_columns", [0, 0, 1], "distinct"),
    ("channel_gains", [1.0, -1.0], "finite and > 0"),
    ("autostart", 1, "expected true or false"),
    ("cyton_gains", [24, 3], r"among \(1, 2, 4, 6, 8, 12, 24\)"),
    ("myo_address", "C8:2F", "not a Bluetooth address"),
    ("brainflow_board", " ", "must not be empty"),
])
def test_bad_values_are_refused_with_a_clear_message(name, value, message):
    with pytest.raises(ValueError, match=message) as info:
        check_value(name, value)
    assert name in str(info.value)


def test_ints_are_accepted_for_doubles_and_empty_arrays_of_any_type():
    assert check_value("chunk_ms", 20) == 20.0
    assert isinstance(check_value("chunk_ms", 20), float)
    assert check_value("text_channel_columns", b"") == []  # ROS types [] as a byte array


@pytest.mark.parametrize("values,message", [
    ({"source": "serial", "text_channel_columns": [0, 1, 2]}, "lists 3 columns"),
    ({"source": "serial", "text_channel_columns": list(range(8)), "text_counter_column": 2},
     "also listed as a channel column"),
    ({"source": "serial", "text_num_columns": 4}, "column 7 is used"),
    ({"source": "replay"}, "needs the parameter 'file'"),
    ({"channel_names": ["a", "b"]}, "2 names but num_channels is 8"),
    ({"source": "sim", "channel_gains": [1.0, 2.0]}, "one per channel"),
    ({"source": "cyton", "cyton_daisy": True, "cyton_gains": [24] * 8}, "lists 8 gains"),
])
def test_inconsistent_combinations_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        build_settings(values)


def test_serial_settings_build_decoder_configs():
    v = defaults() | {"source": "serial", "protocol": "text", "num_channels": 8,
                      "text_num_columns": 9, "scale_v_per_unit": 1e-5}
    s = build_settings(v)
    cfg = s.text_config()
    assert cfg.resolved_channel_columns() == tuple(range(8)) and cfg.num_columns == 9
    assert s.binary_config().scale_v_per_unit == 1e-5


def test_readme_documents_every_parameter():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [p.name for p in PARAMS if f"| `{p.name}` |" not in readme]
    assert not missing, f"parameters missing from the README's table: {missing}"


def test_device_presets_are_valid_parameter_files():
    from pathlib import Path

    import yaml

    from emg_hand_core.units import MYO_VOLTS_PER_COUNT

    presets = sorted((Path(__file__).resolve().parents[1] / "config" / "devices").glob("*.yaml"))
    names = {p.stem for p in presets}
    assert {"cyton", "cyton_daisy", "myo_bled112", "brainflow_synthetic", "lsl",
            "myoware_arduino_text", "myo_serial_text"} <= names
    for path in presets:
        text = path.read_text()
        assert text.startswith("#"), f"{path.name} must say what it is"
        data = yaml.safe_load(text)
        assert list(data) == ["/**"] and list(data["/**"]) == ["ros__parameters"], path.name
        values = data["/**"]["ros__parameters"]
        settings = build_settings(values)  # every value valid
        # rcl cannot type an empty list in a parameter file (the node would get None)
        assert not [k for k, v in values.items() if v == []], path.name
        assert settings.source in text
    myo_text = yaml.safe_load((presets[0].parent / "myo_serial_text.yaml").read_text())
    assert myo_text["/**"]["ros__parameters"]["scale_v_per_unit"] == MYO_VOLTS_PER_COUNT
