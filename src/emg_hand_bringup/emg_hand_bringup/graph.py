"""The emg_hand graph, described once, for the launch files and for `make demo`.

``teleop.launch.py`` turns :func:`teleop_graph` into launch_ros ``Node`` actions; where
launch_ros is not installed (the pip environment) ``scripts/demo.py`` runs the very same
:class:`NodeSpec` list as plain processes (:meth:`NodeSpec.command`). Pure Python: no rclpy,
no launch; ``ament_index_python`` only, to find installed files and packages.

| node | package / executable | parameter file (installed, share/emg_hand_bringup/config) |
|---|---|---|
| ``emg_driver`` | emg_driver / emg_driver | ``emg_driver.yaml`` |
| ``emg_pose`` | emg_pose_node / emg_pose | ``emg_pose.yaml`` |
| ``emg_gesture`` (``control:=gesture``) | emg_pose_node / emg_gesture | ``emg_gesture.yaml`` |
| ``hand_visualizer`` | hand_visualizer / hand_visualizer | ``hand_visualizer.yaml`` |
| ``robot_state_publisher`` | robot_state_publisher (if installed) | - (hand_visualizer's URDF) |
| ``hand_controller`` | hand_controller / hand_controller | ``hand_controller.yaml`` |

Launch arguments override the parameter files: ``source``, ``follow_prompts`` and
``controller_enabled`` always, the others (``port``, ``model``, ...) when not empty.
``control:=gesture`` runs pattern-recognition control: ``emg_gesture`` with
``gesture_model`` in place of ``emg_pose``, and the controller in grip mode (it follows
``hand/gesture``).
Frames follow the namespace: under ``left`` the armband frame is ``left/armband``, the
hand ``left/hand_base`` (visualizer and robot_state_publisher ``frame_prefix`` ``left/``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from ament_index_python.packages import (
    PackageNotFoundError,
    get_package_prefix,
    get_package_share_directory,
)

PACKAGE = "emg_hand_bringup"

SOURCES = ("sim", "serial", "replay")
PROTOCOLS = ("text", "binary")
WEARERS = ("a", "b")  # the simulator's wearer presets
CONTROLLER_OUTPUTS = ("forward_position", "joint_trajectory", "serial", "none")
CONTROLLER_PROFILES = ("prosthetic_6", "four_finger_16", "human")
CONTROLS = ("pose", "gesture")  # pose regression (emg_pose) or gesture classes (emg_gesture)
LOG_LEVELS = ("debug", "info", "warn", "error")
RECORDERS = ("auto", "ros2_bag", "emg_hand_bag")

# Parameter file of each of our nodes, in share/emg_hand_bringup/config.
CONFIG_FILES = {
    "emg_driver": "emg_driver.yaml",
    "emg_pose": "emg_pose.yaml",
    "emg_gesture": "emg_gesture.yaml",
    "hand_visualizer": "hand_visualizer.yaml",
    "hand_controller": "hand_controller.yaml",
}
RECORD_QOS_FILE = "record_qos.yaml"
RVIZ_FILE = "hand.rviz"
URDF = ("hand_visualizer", "urdf", "hand.urdf")  # package, path in its share

# What record.launch.py records: enough to replay the graph (EMG, reference) and to train
# (emg/raw + hand/reference/joint_states), plus the live prediction and health.
RECORD_TOPICS: tuple[str, ...] = (
    "emg/raw",
    "hand/reference/joint_states",
    "hand/joint_states",
    "hand/keypoints",
    "/tf_static",
    "/diagnostics",
)
# What replay.launch.py plays into a fresh pose node (poses:=model), and additionally the
# recorded prediction when no pose node runs (poses:=bag).
REPLAY_INPUT_TOPICS: tuple[str, ...] = ("emg/raw", "hand/reference/joint_states")
REPLAY_POSE_TOPICS: tuple[str, ...] = ("hand/joint_states", "hand/keypoints")


class GraphError(ValueError):
    """Launch arguments that cannot make a graph; the message says which and why."""


# --- names ---------------------------------------------------------------------------------

def normalize_namespace(namespace: str) -> str:
    """'left', '/left/' -> '/left'; '' or '/' -> '' (the root namespace)."""
    parts = [p for p in namespace.strip().split("/") if p]
    return "/" + "/".join(parts) if parts else ""


def frame_prefix(namespace: str) -> str:
    """Prefix of every frame of a hand in ``namespace``: '/left' -> 'left/', '' -> ''."""
    ns = normalize_namespace(namespace)
    return ns[1:] + "/" if ns else ""


def resolve_topic(namespace: str, topic: str) -> str:
    """Absolute name of ``topic`` as a node in ``namespace`` resolves it."""
    if topic.startswith("/"):
        return topic
    return f"{normalize_namespace(namespace)}/{topic}"


# --- installed things -------------------------------------------------------------------------

def installed(package: str) -> bool:
    """True when ``package`` is in the ament index (as `ros2 pkg list` would show it)."""
    try:
        get_package_prefix(package)
    except (PackageNotFoundError, ValueError):
        return False
    return True


def share_file(package: str, *parts: str) -> str:
    """Path of an installed share file (raises FileNotFoundError naming what is missing)."""
    try:
        share = Path(get_package_share_directory(package))
    except (PackageNotFoundError, ValueError):
        raise FileNotFoundError(f"package {package!r} is not installed (not in the ament "
                                "index; source the workspace's install/setup.bash)") from None
    path = share.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{package}: {'/'.join(parts)} not installed at {path}")
    return str(path)


def config_file(name: str) -> str:
    """An installed file of share/emg_hand_bringup/config."""
    return share_file(PACKAGE, "config", name)


def executable_path(package: str, executable: str) -> str:
    """``<prefix>/lib/<package>/<executable>``, what `ros2 run` runs (FileNotFoundError)."""
    try:
        prefix = Path(get_package_prefix(package))
    except (PackageNotFoundError, ValueError):
        raise FileNotFoundError(f"package {package!r} is not installed") from None
    path = prefix / "lib" / package / executable
    if not path.is_file():
        raise FileNotFoundError(f"{package}: executable {executable!r} not installed at {path}")
    return str(path)


def ros2_bag_available() -> bool:
    """`ros2 bag` can run: the ros2 command and rosbag2's ros2bag verb are installed."""
    return shutil.which("ros2") is not None and installed("ros2bag")


def choose_bag_tool(requested: str) -> tuple[str, str]:
    """(tool, why) for recorder/player ``auto|ros2_bag|emg_hand_bag``."""
    if requested not in RECORDERS:
        raise GraphError(f"bag tool must be one of {RECORDERS}, got {requested!r}")
    if requested == "ros2_bag":
        if not ros2_bag_available():
            raise GraphError("ros2 bag is not installed here (install ros-jazzy-rosbag2 and "
                             "ros-jazzy-rosbag2-storage-mcap), or use emg_hand_bag (our "
                             "rosbags-based tool, same bag format): recorder:=emg_hand_bag")
        return "ros2_bag", "ros2 bag (requested)"
    if requested == "emg_hand_bag":
        return "emg_hand_bag", "emg_hand_bag (requested)"
    if ros2_bag_available():
        return "ros2_bag", "ros2 bag (found)"
    return "emg_hand_bag", "emg_hand_bag: ros2 bag is not installed here"


# --- nodes --------------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph: what launch_ros' ``Node`` gets, and a plain command line."""

    package: str
    executable: str
    name: str
    params_files: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)  # override the files
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()  # before --ros-args
    log_level: str = "info"

    def command(self, namespace: str = "", executable: str | None = None) -> list[str]:
        """The command `ros2 run` + launch_ros would run for this node in ``namespace``."""
        cmd = [executable or executable_path(self.package, self.executable), *self.arguments,
               "--ros-args", "-r", f"__node:={self.name}"]
        ns = normalize_namespace(namespace)
        if ns:
            cmd += ["-r", f"__ns:={ns}"]
        for path in self.params_files:
            cmd += ["--params-file", path]
        for key, value in self.parameters.items():
            cmd += ["-p", f"{key}:={param_literal(value)}"]
        for src, dst in self.remappings:
            cmd += ["-r", f"{src}:={dst}"]
        if self.log_level != "info":
            cmd += ["--log-level", self.log_level]
        return cmd


def param_literal(value: Any) -> str:
    """A ``-p name:=value`` literal that rcl's YAML parser reads back as ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(param_literal(v) for v in value) + "]"
    if isinstance(value, str):
        # rcl parses the value as YAML; a string that YAML would read as something else
        # (number, bool, empty, with ':' or brackets) needs quotes.
        plain = yaml.safe_load(value) if value else None
        return value if isinstance(plain, str) and plain == value else f"'{value}'"
    return repr(value)


@dataclass
class TeleopOptions:
    """teleop.launch.py's arguments (same names, same defaults), parsed."""

    namespace: str = ""
    use_sim_time: bool = False
    log_level: str = "info"
    driver: bool = True
    source: str = "sim"
    port: str = ""
    protocol: str = ""
    replay_file: str = ""
    wearer: str = ""
    follow_prompts: bool = False
    driver_params_file: str = ""
    armband_frame: str = "armband"
    pose_node: bool = True
    model: str = ""
    pose_params_file: str = ""
    control: str = "pose"
    gesture_model: str = ""
    gesture_params_file: str = ""
    visualizer: bool = True
    visualizer_params_file: str = ""
    robot_state_publisher: bool = True
    controller: bool = True
    controller_profile: str = ""
    controller_output: str = ""
    controller_enabled: bool = False
    controller_serial_port: str = ""
    controller_params_file: str = ""

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> TeleopOptions:
        """Options from launch configurations (strings); unknown keys are ignored."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in values:
                continue
            text = str(values[f.name]).strip()
            if f.type == "bool":
                lowered = text.lower()
                if lowered not in ("true", "false"):
                    raise GraphError(f"{f.name} must be true or false, got {text!r}")
                kwargs[f.name] = lowered == "true"
            else:
                kwargs[f.name] = text
        return cls(**kwargs)

    def check(self) -> None:
        """Raise GraphError naming every argument with a value outside its choices."""
        problems = []
        for name, value, allowed in (
                ("source", self.source, SOURCES), ("protocol", self.protocol, ("", *PROTOCOLS)),
                ("wearer", self.wearer, ("", *WEARERS)),
                ("controller_output", self.controller_output, ("", *CONTROLLER_OUTPUTS)),
                ("control", self.control, CONTROLS), ("log_level", self.log_level, LOG_LEVELS)):
            if value not in allowed:
                problems.append(f"{name}:={value!r} is not one of {allowed}")
        if self.driver and self.source == "replay" and not self.replay_file:
            problems.append("source:=replay needs replay_file:=<recording> (emg2pose .h5, CSV, "
                            "...) unless driver_params_file sets 'file'")
        if self.controller and self.controller_output == "serial" \
                and not self.controller_serial_port:
            problems.append("controller_output:=serial needs controller_serial_port:=/dev/...")
        if self.pose_node and self.control == "gesture" and not self.gesture_model:
            problems.append("control:=gesture needs gesture_model:=<checkpoint> (train one with "
                            "emg_gesture_train)")
        if problems:
            raise GraphError("; ".join(problems))


@dataclass
class Graph:
    nodes: list[NodeSpec]
    notes: list[str]  # what was left out and why, for the log

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)


def _params_file(given: str, node: str) -> str:
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise GraphError(f"parameter file for {node} not found: {given}")
        return str(path)
    return config_file(CONFIG_FILES[node])


def _non_empty(**values: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


def teleop_graph(opts: TeleopOptions) -> Graph:
    """The nodes of teleop.launch.py for ``opts`` (raises GraphError, FileNotFoundError)."""
    opts.check()
    prefix = frame_prefix(opts.namespace)
    common: dict[str, Any] = {"use_sim_time": True} if opts.use_sim_time else {}
    nodes: list[NodeSpec] = []
    notes: list[str] = []

    def add(package: str, executable: str, name: str, params: dict[str, Any],
            files: Iterable[str] = (), remappings: Iterable[tuple[str, str]] = ()) -> None:
        nodes.append(NodeSpec(package, executable, name, tuple(files), {**params, **common},
                              tuple(remappings), log_level=opts.log_level))

    armband = prefix + opts.armband_frame
    if opts.driver:
        add("emg_driver", "emg_driver", "emg_driver",
            {"source": opts.source, "frame_id": armband, "follow_prompts": opts.follow_prompts,
             **_non_empty(port=opts.port, protocol=opts.protocol, file=opts.replay_file,
                          wearer=opts.wearer)},
            [_params_file(opts.driver_params_file, "emg_driver")])
    if opts.pose_node and opts.control == "gesture":
        add("emg_pose_node", "emg_gesture", "emg_gesture",
            {"frame_id": prefix + "hand_base", "model": opts.gesture_model},
            [_params_file(opts.gesture_params_file, "emg_gesture")])
    elif opts.pose_node:
        add("emg_pose_node", "emg_pose", "emg_pose",
            {"frame_id": prefix + "hand_base", **_non_empty(model=opts.model)},
            [_params_file(opts.pose_params_file, "emg_pose")])
    if opts.visualizer:
        add("hand_visualizer", "hand_visualizer", "hand_visualizer",
            {"frame_prefix": prefix, "armband_frame": armband},
            [_params_file(opts.visualizer_params_file, "hand_visualizer")])
    if opts.robot_state_publisher:
        if installed("robot_state_publisher"):
            urdf = Path(share_file(*URDF)).read_text()
            add("robot_state_publisher", "robot_state_publisher", "robot_state_publisher",
                {"robot_description": urdf, "frame_prefix": prefix},
                remappings=[("joint_states", "hand/joint_states")])
        else:
            notes.append("robot_state_publisher is not installed here (ros-jazzy-robot-state-"
                         "publisher): not started, so RViz shows no URDF hand and /tf has no "
                         "hand links; hand_visualizer's markers and TF still run")
    if opts.controller:
        add("hand_controller", "hand_controller", "hand_controller",
            {"start_enabled": opts.controller_enabled,
             "mode": "grip" if opts.control == "gesture" else "pose",
             **_non_empty(profile=opts.controller_profile, output=opts.controller_output,
                          serial_port=opts.controller_serial_port)},
            [_params_file(opts.controller_params_file, "hand_controller")])
    return Graph(nodes, notes)


def rviz_arguments(namespace: str, config: str = "") -> list[str]:
    """rviz2 arguments: our config and the hand's fixed frame under ``namespace``."""
    return ["-d", config or config_file(RVIZ_FILE), "-f", frame_prefix(namespace) + "hand_base"]


def rviz_remappings(namespace: str) -> list[tuple[str, str]]:
    """config/hand.rviz names absolute default-namespace topics; move them into ``namespace``."""
    ns = normalize_namespace(namespace)
    if not ns:
        return []
    return [(f"/{t}", f"{ns}/{t}") for t in ("hand/markers", "robot_description")]


# --- bags ---------------------------------------------------------------------------------

def record_qos_overrides(namespace: str, template: Mapping[str, Any]) -> dict[str, Any]:
    """config/record_qos.yaml (keyed by default-namespace names) moved into ``namespace``."""
    relative = {"/" + t for t in RECORD_TOPICS if not t.startswith("/")}
    out = {}
    for topic, profile in template.items():
        out[resolve_topic(namespace, topic[1:]) if topic in relative else topic] = profile
    return out


def record_command(tool: str, namespace: str, output: str, topics: Iterable[str],
                   qos_overrides_file: str = "", storage: str = "mcap") -> list[str]:
    """The recorder's command; ``emg_hand_bag`` as a node gets the namespace by --ros-args."""
    names = [resolve_topic(namespace, t) for t in topics]
    if tool == "ros2_bag":
        cmd = ["ros2", "bag", "record", "-s", storage]
        if output:
            cmd += ["-o", output]
        if qos_overrides_file:
            cmd += ["--qos-profile-overrides-path", qos_overrides_file]
        return cmd + ["--topics", *names]
    cmd = ["record", "-s", storage]  # arguments of the emg_hand_bag executable
    if output:
        cmd += ["-o", output]
    return cmd + names


def play_command(tool: str, bag: str, topics: Iterable[str], rate: float = 1.0,
                 loop: bool = False, clock_hz: float = 100.0,
                 wait_for_subscribers_s: float = 30.0) -> list[str]:
    """The player's command: ``topics`` (absolute) with /clock for use_sim_time nodes."""
    topics = list(topics)
    if tool == "ros2_bag":
        cmd = ["ros2", "bag", "play", bag, "--clock", f"{clock_hz:g}", "--rate", f"{rate:g}",
               "--disable-keyboard-controls"]
    else:
        cmd = ["play", bag, "--clock", f"{clock_hz:g}", "--rate", f"{rate:g}",
               "--wait-for-subscribers", f"{wait_for_subscribers_s:g}"]
    if loop:
        cmd.append("--loop")
    return cmd + ["--topics", *topics]
