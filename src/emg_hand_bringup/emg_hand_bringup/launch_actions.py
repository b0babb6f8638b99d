"""launch / launch_ros actions of the emg_hand graph, shared by the launch files.

:mod:`emg_hand_bringup.graph` describes the graph and its arguments (pure Python); this
module turns them into ``DeclareLaunchArgument`` and launch_ros ``Node`` actions. It needs
launch and launch_ros, so only launch files import it.
"""

from __future__ import annotations

from collections.abc import Iterable

from launch.actions import DeclareLaunchArgument, LogInfo
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from . import graph


def declare(arguments: Iterable[graph.LaunchArgument]) -> list[DeclareLaunchArgument]:
    """One ``DeclareLaunchArgument`` per :class:`graph.LaunchArgument`."""
    return [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                  **({"choices": list(a.choices)} if a.choices else {}))
            for a in arguments]


def _typed(parameters):
    """Strings stay strings (launch_ros would read 'left/' or a URDF as YAML otherwise)."""
    return {name: ParameterValue(value, value_type=str) if isinstance(value, str) else value
            for name, value in parameters.items()}


def graph_nodes(context, driver: bool | None = None):
    """OpaqueFunction body: resolve the arguments and return the graph's Node actions (and
    notes, and RViz). ``driver=False``: no emg_driver whatever the arguments say (replay)."""
    values = dict(context.launch_configurations)  # every argument, resolved
    # the full namespace, including any pushed by a launch file that includes this one
    namespace = context.launch_configurations.get("ros_namespace", "") or ""
    values["namespace"] = namespace
    if driver is not None:
        values["driver"] = "true" if driver else "false"
    options = graph.TeleopOptions.from_strings(values)
    try:
        teleop = graph.teleop_graph(options)
    except (graph.GraphError, FileNotFoundError) as err:
        raise RuntimeError(f"emg_hand launch: {err}") from None
    actions = [LogInfo(msg=f"emg_hand: {note}") for note in teleop.notes]
    for spec in teleop.nodes:
        actions.append(Node(
            package=spec.package, executable=spec.executable, name=spec.name,
            parameters=[*spec.params_files, _typed(spec.parameters)],
            remappings=list(spec.remappings), arguments=list(spec.arguments),
            ros_arguments=["--log-level", spec.log_level], output="screen",
            emulate_tty=True))

    rviz = IfCondition(LaunchConfiguration("rviz"))
    if graph.installed("rviz2"):
        actions.append(Node(
            package="rviz2", executable="rviz2", name="rviz2", condition=rviz,
            arguments=graph.rviz_arguments(namespace, values.get("rviz_config", "")),
            remappings=graph.rviz_remappings(namespace), output="screen",
            parameters=[{"use_sim_time": options.use_sim_time}]))
    else:
        actions.append(LogInfo(condition=rviz, msg="emg_hand: rviz2 is not installed here "
                               "(ros-jazzy-rviz2): RViz not started; rviz:=false hides this"))
    return actions


__all__ = ["declare", "graph_nodes"]
