"""Declaring a :class:`~emg_hand_core.params.ParamTable` on an rclpy node (no rclpy import).

::

    values = declare_parameters(node, TABLE)          # ParamError if a start value is bad
    node.add_on_set_parameters_callback(
        on_set_parameters(TABLE, apply=lambda changed: ...))

Each parameter gets a ``ParameterDescriptor`` with its description, unit and valid range
(``floating_point_range`` / ``integer_range`` for numbers with both bounds, so
``ros2 param describe`` shows them), ``read_only`` where the node cannot change it at run
time, and ``dynamic_typing``, so that rclpy's type check (a traceback for
``-p rate_hz:=100`` on a double) gives way to the table's: an integer is widened to a
double, any other mismatch is refused with a message naming what is valid.
Only message types of ``rcl_interfaces`` are imported here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .params import Param, ParamError, ParamTable


def descriptor(param: Param):
    """The rcl_interfaces/ParameterDescriptor of ``param``."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    d = ParameterDescriptor(description=param.describe(), read_only=param.read_only,
                            dynamic_typing=True)
    if param.choices:
        d.additional_constraints = "one of: " + ", ".join(param.choices)
    if param.min is not None and param.max is not None:
        if param.kind == "double":
            d.floating_point_range = [FloatingPointRange(
                from_value=float(param.min), to_value=float(param.max), step=0.0)]
        elif param.kind == "int":
            d.integer_range = [IntegerRange(from_value=int(param.min), to_value=int(param.max),
                                            step=0)]
    return d


def declare_parameters(node: Any, table: ParamTable, strict: bool = True
                       ) -> tuple[dict[str, Any], dict[str, str]]:
    """Declare every parameter; return (checked values, problems by name).

    A start value (from ``--ros-args -p`` or a parameter file) that rclpy or the table
    refuses is a problem. ``strict``: raise :class:`ParamError` naming every problem (a node
    that refuses to start, with the reason instead of a traceback). Not strict (a lifecycle
    node that reports and waits to be configured): a parameter refused by rclpy's range
    check is declared with its default, and the problems are returned; the node should not
    configure until they are set right.
    """
    problems: dict[str, str] = {}
    for param in table:
        try:
            node.declare_parameter(param.name, param.default, descriptor(param))
        except Exception as err:  # rclpy's own range refusal of an override
            problems[param.name] = _refusal(param, err)
            if strict:
                continue
            node.declare_parameter(param.name, param.default, descriptor(param),
                                   ignore_override=True)
    values: dict[str, Any] = {}
    for param in table:
        if param.name in problems and strict:
            continue
        try:
            values[param.name] = param.coerce(node.get_parameter(param.name).value)
        except ParamError as err:
            problems[param.name] = str(err)
            values[param.name] = param.default
    if problems and strict:
        raise ParamError("; ".join(problems.values()))
    return values, problems


def _refusal(param: Param, err: Exception) -> str:
    """rclpy's refusal of a start value, said as the table says it."""
    match = re.search(r"Invalid parameter value \((.*)\) for parameter", str(err))
    value = f"={match.group(1)}" if match else ""
    return f"parameter {param.name}{value} refused: must be {param.range_text() or param.kind}"


def on_set_parameters(table: ParamTable,
                      apply: Callable[[dict[str, Any]], str | None] | None = None):
    """An ``add_on_set_parameters_callback`` callback: every changed value checked by the
    table, then ``apply(changed)`` (checked values; may return a reason to refuse)."""
    from rcl_interfaces.msg import SetParametersResult

    def callback(params) -> SetParametersResult:
        try:
            changed = table.validate({p.name: p.value for p in params})
        except ParamError as err:
            return SetParametersResult(successful=False, reason=str(err))
        if apply is not None and changed:
            problem = apply(changed)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    return callback


__all__ = ["declare_parameters", "descriptor", "on_set_parameters"]
