"""The one parameter layer: kinds, ints for doubles, ranges, choices, messages."""

import math

import pytest

from emg_hand_core.params import Param, ParamError, ParamTable, positive

TABLE = ParamTable((
    Param("rate_hz", 50.0, "Output rate.", unit="Hz", min=1.0, max=200.0),
    Param("timeout_ms", 200, "Watchdog timeout.", unit="ms", min=1, max=60_000),
    Param("mode", "a", "Mode.", choices=("a", "b")),
    positive("gain", 1.0, "Gain."),
    Param("names", [], "Names.", kind="string_array"),
    Param("xyz", [0.0, 0.0, 0.0], "Position.", unit="m", min=-1.0, max=1.0,
          check=lambda v: None if len(v) == 3 else "must be 3 numbers"),
    Param("on", True, "A switch."),
))


def test_ints_are_widened_to_doubles_and_nothing_else_is_coerced():
    assert TABLE.coerce("rate_hz", 100) == 100.0 and isinstance(TABLE.coerce("rate_hz", 100),
                                                                   float)
    assert TABLE.coerce("xyz", [1, 0, 0]) == [1.0, 0.0, 0.0]
    assert TABLE.coerce("names", b"") == []  # ROS types an empty array as bytes
    assert TABLE.coerce("names", None) == []  # an empty YAML list in a parameter file
    for name, value, why in (("timeout_ms", 200.5, "expected an integer"),
                             ("rate_hz", "fast", "expected a number"),
                             ("on", 1, "expected true or false"),
                             ("rate_hz", True, "expected a number"),
                             ("names", [1], "expected an array of strings")):
        with pytest.raises(ParamError, match=why):
            TABLE.coerce(name, value)


@pytest.mark.parametrize("name,value,message", [
    ("rate_hz", 1e9, r"rate_hz=1000000000.0 refused: must be within \[1, 200\] Hz"),
    ("rate_hz", math.nan, "must be finite"),
    ("timeout_ms", 10**12, r"within \[1, 60000\] ms"),
    ("gain", 0.0, "must be > 0"),
    ("mode", "c", "must be one of a, b"),
    ("xyz", [0.0, 0.0], "must be 3 numbers"),
    ("xyz", [0.0, 0.0, 2.0], r"within \[-1, 1\] m"),
])
def test_refusals_name_the_parameter_the_value_and_what_is_valid(name, value, message):
    with pytest.raises(ParamError, match=message):
        TABLE.coerce(name, value)


def test_tables_validate_all_at_once_and_describe_their_ranges():
    with pytest.raises(ParamError) as err:
        TABLE.validate({"rate_hz": 0.0, "mode": "z", "use_sim_time": True})
    assert "rate_hz" in str(err.value) and "mode" in str(err.value)
    assert TABLE.validate({"rate_hz": 2, "use_sim_time": True}) == {"rate_hz": 2.0}
    assert TABLE["rate_hz"].describe() == "Output rate. Valid: within [1, 200] Hz."
    assert TABLE["gain"].range_text() == "> 0"
    assert any("`timeout_ms` | int | `200`" in row for row in TABLE.markdown_rows())
    with pytest.raises(ParamError, match="unknown parameter"):
        TABLE.coerce("nope", 1)
    with pytest.raises(ParamError):  # a default that breaks its own range is a bug
        Param("x", 5.0, "X.", min=0.0, max=1.0)
