"""The one parameter layer of every node: names, defaults, units, ranges, validation.

Pure Python (no rclpy): a node lists its parameters as :class:`Param` entries in a
:class:`ParamTable`; :mod:`emg_hand_core.ros_params` declares them on an rclpy node (with
the range in the descriptor, so ``ros2 param describe`` shows it) and checks every change.
The same rules for every node:

* an integer is accepted for a double (``-p update_rate_hz:=100``); a double is refused
  for an integer (``-p input_timeout_ms:=200.5``), a string for a number, and so on;
* numbers must be finite and inside the declared range;
* every refusal is a :class:`ParamError` naming the parameter, the value and what would be
  valid (the range with its unit, the choices).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("bool", "int", "double", "string", "int_array", "double_array", "string_array")
_KIND_WORDS = {"bool": "true or false", "int": "an integer", "double": "a number",
               "string": "a string", "int_array": "an array of integers",
               "double_array": "an array of numbers", "string_array": "an array of strings"}


class ParamError(ValueError):
    """A parameter value was refused; the message names the parameter and the reason."""


def _infer_kind(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "double"
    if isinstance(default, str):
        return "string"
    if isinstance(default, (list, tuple)) and default:
        return _infer_kind(default[0]) + "_array"
    raise TypeError(f"cannot infer a parameter kind from {default!r}: give kind=")


@dataclass(frozen=True)
class Param:
    """One parameter.

    ``min``/``max``: inclusive bounds of a number (or of every element of a number array);
    ``min_exclusive``: the lower bound itself is refused (``> 0``). ``choices``: the
    allowed values of a string. ``check(value) -> problem or None``: anything else.
    ``read_only``: set at start-up only. ``kind``: needed only for an empty array default.
    """

    name: str
    default: Any
    description: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    kind: str | None = None
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        kind = self.kind or _infer_kind(self.default)
        if kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {kind!r}")
        object.__setattr__(self, "kind", kind)
        self.coerce(self.default)  # a default that breaks its own rules is a bug

    @property
    def is_number(self) -> bool:
        return self.kind in ("int", "double", "int_array", "double_array")

    def range_text(self) -> str:
        """'within [1, 200] Hz', '> 0 s', 'one of a, b', or ''."""
        unit = f" {self.unit}" if self.unit else ""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.min is not None and self.max is not None:
            lo = "(" if self.min_exclusive else "["
            return f"within {lo}{self.min:g}, {self.max:g}]{unit}"
        if self.min is not None:
            return f"{'>' if self.min_exclusive else '>='} {self.min:g}{unit}"
        if self.max is not None:
            return f"<= {self.max:g}{unit}"
        return ""

    def describe(self) -> str:
        """The description with its unit and range, as ``ros2 param describe`` shows it."""
        extra = self.range_text()
        unit = f" [{self.unit}]" if self.unit and not extra else ""
        return self.description + unit + (f" Valid: {extra}." if extra else "")

    def _refuse(self, value: Any, why: str) -> ParamError:
        return ParamError(f"parameter {self.name}={value!r} refused: {why}")

    def coerce(self, value: Any) -> Any:
        """``value`` as this parameter's kind (ints widened to doubles); ParamError if it does
        not fit the kind, the range, the choices or ``check``."""
        v = self._coerce_kind(value)
        numbers = v if isinstance(v, list) else [v]
        if self.is_number:
            for x in numbers:
                if not math.isfinite(x):
                    raise self._refuse(value, "must be finite")
                low = self.min is not None and (x <= self.min if self.min_exclusive
                                                else x < self.min)
                if low or (self.max is not None and x > self.max):
                    raise self._refuse(value, f"must be {self.range_text()}")
        if self.choices is not None and v not in self.choices:
            raise self._refuse(value, f"must be {self.range_text()}")
        if self.check is not None:
            problem = self.check(v)
            if problem:
                raise self._refuse(value, problem)
        return v

    def _coerce_kind(self, value: Any) -> Any:
        kind = self.kind
        bad = self._refuse(value, f"expected {_KIND_WORDS[kind]}")
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise bad
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad
            return int(value)
        if kind == "double":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
            return float(value)
        if kind == "string":
            if not isinstance(value, str):
                raise bad
            return value
        if value is None:  # an empty YAML list in a parameter file: rcl cannot type it
            return []
        if isinstance(value, (str, bytes)) and value:
            raise bad
        try:
            items = list(value)
        except TypeError:
            raise bad from None
        if not items:  # an empty array of any element type (ROS types [] as a byte array)
            return []
        element = kind.removesuffix("_array")
        if element == "int" and all(isinstance(x, int) and not isinstance(x, bool)
                                    for x in items):
            return [int(x) for x in items]
        if element == "double" and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                       for x in items):
            return [float(x) for x in items]
        if element == "string" and all(isinstance(x, str) for x in items):
            return [str(x) for x in items]
        raise bad


class ParamTable:
    """A node's parameters, in declaration order."""

    def __init__(self, params: Iterable[Param]) -> None:
        self.params = tuple(params)
        self.by_name = {p.name: p for p in self.params}
        if len(self.by_name) != len(self.params):
            raise ValueError("duplicate parameter names")

    def __iter__(self):
        return iter(self.params)

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def __getitem__(self, name: str) -> Param:
        return self.by_name[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def coerce(self, name: str, value: Any) -> Any:
        """One value, checked (ParamError, also for an unknown name)."""
        param = self.by_name.get(name)
        if param is None:
            raise ParamError(f"unknown parameter {name!r}")
        return param.coerce(value)

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every given value checked; ParamError naming all problems (names not in the
        table are left out: a node sees rclpy's own parameters such as use_sim_time)."""
        out, problems = {}, []
        for name, value in values.items():
            if name not in self.by_name:
                continue
            try:
                out[name] = self.by_name[name].coerce(value)
            except ParamError as err:
                problems.append(str(err))
        if problems:
            raise ParamError("; ".join(problems))
        return out

    def markdown_rows(self) -> list[str]:
        """README table rows: | `name` | kind | `default` | description (valid range) |"""
        return [f"| `{p.name}` | {p.kind.replace('_', ' ')} | `{p.default!r}` | {p.describe()} |"
                for p in self.params]


def positive(name: str, default: float, description: str, unit: str = "",
             max: float | None = None, **kw: Any) -> Param:
    """A double that must be > 0 (and <= ``max``)."""
    return Param(name, float(default), description, unit, min=0.0, max=max,
                 min_exclusive=True, **kw)


__all__ = ["KINDS", "Param", "ParamError", "ParamTable", "positive"]
