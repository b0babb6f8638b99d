"""The emg_hand graph, described once, for the launch files and for `make demo`.

The launch files declare :data:`TELEOP_ARGUMENTS` (all of them in ``teleop.launch.py``;
without the driver's in ``replay.launch.py``, which runs none) and turn
:func:`teleop_graph` into launch_ros ``Node`` actions (:mod:`emg_hand_bringup.launch_actions`);
where launch_ros is not installed (the pip environment) ``scripts/demo.py`` runs the very
same :class:`NodeSpec` list as plain processes (:meth:`NodeSpec.command`). Pure Python: no
rclpy, no launch; ``ament_index_python`` only, to find installed files and packages.

| node | package / executable | parameter file (installed, share/emg_hand_bringup/config) |
|---|---|---|
| ``emg_driver`` | emg_driver / emg_driver | ``emg_driver.yaml`` |
| ``emg_pose`` | emg_pose_node / emg_pose | ``emg_pose.yaml`` |
| ``emg_gesture`` (``control:=gesture``) | emg_pose_node / emg_gesture | ``emg_gesture.yaml`` |
| ``hand_visualizer`` | hand_visualizer / hand_visualizer | ``hand_visualizer.yaml`` |
| ``robot_state_publisher`` | robot_state_publisher (if installed) | - (hand_visualizer's URDF) |
| ``hand_controller`` | hand_controller / hand_controller | ``hand_controller.yaml`` |
| ``robot_hand_state_publisher`` | robot_state_publisher (if installed) | - (the profile's URDF) |
| ``hand_sim`` (``robot:=sim``) | hand_sim / hand_sim | ``hand_sim.yaml`` |

Launch arguments override the parameter files: ``follow_prompts`` and
``controller_enabled`` always, the others (``source``, ``port``, ``model``, ...) when not
empty. ``device`` adds a device preset of emg_driver (``share/emg_driver/config/devices/
<device>.yaml``: source, port, rates, scales of one armband) after emg_driver.yaml and
before ``driver_params_file``.
``control:=gesture`` runs pattern-recognition control: ``emg_gesture`` with
``gesture_model`` in place of ``emg_pose``, and the controller in grip mode (it follows
``hand/gesture``).
Frames follow the namespace: under ``left`` the armband frame is ``left/armband``, the
hand ``left/hand_base`` (visualizer and robot_state_publisher ``frame_prefix`` ``left/``).
The robot hand of the controller's profile has its own robot_state_publisher
(``frame_prefix`` ``<namespace>/robot_hand/``, its URDF on ``robot_hand/robot_description``,
states from ``robot_hand/joint_states``); the visualizer places it beside the human hand.
With ``robot:=sim`` hand_sim publishes the measured ``robot_hand/joint_states`` and the
controller's commanded copy moves to ``robot_hand/commanded_joint_states``.
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

from emg_driver.params import PROTOCOLS, SOURCES
from emg_hand_core.topics import (
    ROBOT_COMMANDED_JOINT_STATES_TOPIC,
    ROBOT_DESCRIPTION_TOPIC,
    ROBOT_JOINT_STATES_TOPIC,
)

PACKAGE = "emg_hand_bringup"
ROBOT_FRAME_PREFIX = "robot_hand/"  # the robot hand's frames, after the namespace's prefix

WEARERS = ("a", "b")  # the simulator's wearer presets
CONTROLLER_OUTPUTS = ("forward_position", "joint_trajectory", "serial", "none")
CONTROLLER_PROFILES = ("prosthetic_6", "four_finger_16", "human")
ROBOTS = ("none", "sim")  # what answers the controller's commands (none: a real hand or nothing)
SIM_OUTPUTS = ("forward_position", "joint_trajectory")  # the command topics hand_sim reads
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
    "hand_sim": "hand_sim.yaml",
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
    source: str = ""
    device: str = ""
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
    robot: str = "none"
    robot_params_file: str = ""

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
                ("source", self.source, ("", *SOURCES)),
                ("protocol", self.protocol, ("", *PROTOCOLS)),
                ("wearer", self.wearer, ("", *WEARERS)),
                ("controller_output", self.controller_output, ("", *CONTROLLER_OUTPUTS)),
                ("log_level", self.log_level, LOG_LEVELS), ("robot", self.robot, ROBOTS),
                ("control", self.control, CONTROLS)):
            if value not in allowed:
                problems.append(f"{name}:={value!r} is not one of {allowed}")
        if self.driver and self.source == "replay" and not self.replay_file:
            problems.append("source:=replay needs replay_file:=<recording> (emg2pose .h5, CSV, "
                            "...) unless driver_params_file sets 'file'")
        if self.controller and self.controller_output == "serial" \
                and not self.controller_serial_port:
            problems.append("controller_output:=serial needs controller_serial_port:=/dev/...")
        if self.robot == "sim" and self.controller_output in ("serial", "none"):
            problems.append(f"robot:=sim reads the controller's command topics: "
                            f"controller_output must be one of {SIM_OUTPUTS}")
        if self.driver and self.device:
            try:
                device_file(self.device)
            except FileNotFoundError as err:
                problems.append(str(err))
        if self.pose_node and self.control == "gesture" and not self.gesture_model:
            problems.append("control:=gesture needs gesture_model:=<checkpoint> (train one with "
                            "emg_gesture_train)")
        if problems:
            raise GraphError("; ".join(problems))


DEVICE_PACKAGE, DEVICE_DIR = "emg_driver", ("config", "devices")


def device_presets() -> list[str]:
    """The device presets emg_driver installs (share/emg_driver/config/devices/*.yaml)."""
    try:
        folder = Path(share_file(DEVICE_PACKAGE, *DEVICE_DIR))
    except FileNotFoundError:
        return []
    return sorted(p.stem for p in folder.glob("*.yaml"))


def device_file(device: str) -> str:
    """The parameter file of ``device``: a preset name or a path to a YAML file."""
    path = Path(device).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return str(path)
    try:
        return share_file(DEVICE_PACKAGE, *DEVICE_DIR, f"{device}.yaml")
    except FileNotFoundError:
        raise FileNotFoundError(f"device:={device!r} is not a preset of emg_driver (one of "
                                f"{', '.join(device_presets()) or 'none installed'}) nor a "
                                "YAML file") from None


@dataclass(frozen=True)
class LaunchArgument:
    """One teleop.launch.py argument, as ``DeclareLaunchArgument`` gets it."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()
    driver_only: bool = False  # configures emg_driver alone (replay.launch.py runs none)


BOOL = ("true", "false")
_A = LaunchArgument
# The arguments of teleop.launch.py (and of the launch files built on its graph), in the order
# --show-args lists them. Every TeleopOptions field is one, plus rviz and rviz_config.
TELEOP_ARGUMENTS: tuple[LaunchArgument, ...] = (
    _A("namespace", "", "Namespace of every node and relative topic (e.g. left, right: two "
       "hands side by side); frames get the prefix <namespace>/."),
    _A("use_sim_time", "false", "Use /clock (a bag played with --clock) as every node's time.",
       BOOL),
    _A("log_level", "info", "Log level of every node.", LOG_LEVELS),
    # --- driver
    _A("driver", "true", "Start emg_driver (false: emg/raw comes from elsewhere, e.g. a bag).",
       BOOL, driver_only=True),
    _A("source", "", "EMG source of emg_driver: sim (simulated armband), serial (text lines "
       "/ binary frames on `port`), replay (`replay_file`), cyton (OpenBCI), myo (BLED112 "
       "dongle), brainflow, lsl; empty: the parameter files' (emg_driver.yaml: sim; a "
       "`device` preset's own).", ("", *SOURCES), driver_only=True),
    _A("device", "", "Device preset of emg_driver (share/emg_driver/config/devices): cyton, "
       "cyton_daisy, myo_bled112, brainflow_synthetic, brainflow_cyton, lsl, "
       "myoware_arduino_text, myo_serial_text, binary_16ch_2khz, or a YAML path; set `port` "
       "with it.", driver_only=True),
    _A("port", "", "Serial device of the armband (source serial), e.g. /dev/serial/by-id/"
       "usb-...; empty: driver_params_file's port.", driver_only=True),
    _A("protocol", "", "Serial wire protocol (source serial): text lines or binary frames; "
       "empty: driver_params_file's protocol.", ("", *PROTOCOLS), driver_only=True),
    _A("replay_file", "", "Recording for source replay (emg2pose .h5, EEG-EMG-Hands CSV, "
       "BrainFlow, Myo .txt); empty: driver_params_file's file.", driver_only=True),
    _A("wearer", "", "Simulated wearer (source sim): a (the default model's training "
       "conditions) or b (armband rotated, uneven gains: calibrate!); empty: "
       "driver_params_file's wearer (a).", ("", *WEARERS), driver_only=True),
    _A("follow_prompts", "false", "Simulated wearer (source sim) follows guided-calibration "
       "prompts (calibration/prompt), so a guided calibration works on the sim.", BOOL,
       driver_only=True),
    _A("driver_params_file", "", "emg_driver parameter file; empty: share/emg_hand_bringup/"
       "config/emg_driver.yaml.", driver_only=True),
    _A("armband_frame", "armband", "Frame of the armband (emg/raw frame_id, parent of "
       "hand_base), prefixed with <namespace>/."),
    # --- pose
    _A("pose_node", "true", "Start emg_pose (false: hand/joint_states comes from elsewhere).",
       BOOL),
    _A("model", "", "emg_pose model: 'default' (shipped), a name saved in models_dir, or a "
       "checkpoint path; empty: pose_params_file's model (default)."),
    _A("pose_params_file", "", "emg_pose parameter file; empty: share/emg_hand_bringup/config/"
       "emg_pose.yaml."),
    _A("control", "pose", "pose: emg_pose estimates the hand pose and the controller follows "
       "it; gesture: emg_gesture classifies grips (pattern recognition, gesture_model) and the "
       "controller runs in grip mode on hand/gesture.", CONTROLS),
    _A("gesture_model", "", "control:=gesture: the gesture checkpoint (a path, or a name in "
       "models_dir) from emg_gesture_train; required there."),
    _A("gesture_params_file", "", "emg_gesture parameter file; empty: share/emg_hand_bringup/"
       "config/emg_gesture.yaml."),
    # --- visualisation
    _A("visualizer", "true", "Start hand_visualizer (markers on hand/markers, TF).", BOOL),
    _A("visualizer_params_file", "", "hand_visualizer parameter file; empty: share/"
       "emg_hand_bringup/config/hand_visualizer.yaml."),
    _A("robot_state_publisher", "true", "Start robot_state_publisher with hand_visualizer's "
       "URDF on hand/joint_states (when installed; the log says if it is not).", BOOL),
    _A("rviz", "true", "Start RViz with config/hand.rviz (when installed).", BOOL),
    _A("rviz_config", "", "RViz config; empty: share/emg_hand_bringup/config/hand.rviz."),
    # --- controller
    _A("controller", "true", "Start hand_controller (it starts disabled: see "
       "controller_enabled).", BOOL),
    _A("controller_profile", "", "Target hand: prosthetic_6, four_finger_16, human, or a "
       "profile YAML path; empty: controller_params_file's profile (prosthetic_6)."),
    _A("controller_output", "", "Command output of hand_controller; empty: "
       "controller_params_file's output (forward_position).", ("", *CONTROLLER_OUTPUTS)),
    _A("controller_enabled", "false", "Command the hand from start-up. false (default): call "
       "<namespace>/hand_controller/enable (std_srvs/SetBool) first.", BOOL),
    _A("controller_serial_port", "", "Serial device of the hand for controller_output serial."),
    _A("controller_params_file", "", "hand_controller parameter file; empty: share/"
       "emg_hand_bringup/config/hand_controller.yaml."),
    # --- the robot hand
    _A("robot", "none", "What answers the controller's commands: none (a real hand, or "
       "nothing) or sim (hand_sim: the controller's profile simulated in MuJoCo, measured "
       "states on robot_hand/joint_states, contacts on robot_hand/contacts; the controller's "
       "commanded states move to robot_hand/commanded_joint_states).", ROBOTS),
    _A("robot_params_file", "", "hand_sim parameter file (robot sim); empty: share/"
       "emg_hand_bringup/config/hand_sim.yaml."),
)
del _A


def teleop_arguments(driver: bool = True, exclude: Iterable[str] = ()) -> list[LaunchArgument]:
    """The teleop arguments a launch file offers: without emg_driver's when it runs no
    driver (``driver=False``: they would not act), and without ``exclude`` (arguments the
    file declares itself, with another default)."""
    skip = set(exclude)
    return [a for a in TELEOP_ARGUMENTS
            if a.name not in skip and (driver or not a.driver_only)]


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


def controller_profile(opts: TeleopOptions) -> str:
    """The profile the controller runs: the launch argument, else its parameter file's."""
    if opts.controller_profile:
        return opts.controller_profile
    values = yaml.safe_load(Path(_params_file(opts.controller_params_file,
                                              "hand_controller")).read_text()) or {}
    for key in ("/**", "hand_controller"):
        profile = (values.get(key) or {}).get("ros__parameters", {}).get("profile")
        if profile:
            return str(profile)
    return "prosthetic_6"  # hand_controller's default


def robot_description(profile: str) -> str:
    """The URDF of the controller's hand (the profile's robot hand; the human hand's)."""
    from hand_controller.profile import ProfileError, installed_profile_dirs
    from hand_visualizer.robot_urdf import RobotUrdfError, robot_urdf_for

    try:
        return robot_urdf_for(profile, installed_profile_dirs())
    except (ProfileError, RobotUrdfError) as err:
        raise GraphError(f"controller_profile {profile!r}: {err}") from None


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
        files = [_params_file(opts.driver_params_file, "emg_driver")]
        if opts.device:  # after the defaults, before the user's own file
            files.insert(len(files) - bool(opts.driver_params_file), device_file(opts.device))
        add("emg_driver", "emg_driver", "emg_driver",
            {"frame_id": armband, "follow_prompts": opts.follow_prompts,
             **_non_empty(source=opts.source, port=opts.port, protocol=opts.protocol,
                          file=opts.replay_file, wearer=opts.wearer)},
            files)
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
    sim = opts.robot == "sim"
    if opts.controller:
        add("hand_controller", "hand_controller", "hand_controller",
            {"start_enabled": opts.controller_enabled,
             "mode": "grip" if opts.control == "gesture" else "pose",
             **_non_empty(profile=opts.controller_profile, output=opts.controller_output,
                          serial_port=opts.controller_serial_port)},
            [_params_file(opts.controller_params_file, "hand_controller")],
            remappings=[(ROBOT_JOINT_STATES_TOPIC, ROBOT_COMMANDED_JOINT_STATES_TOPIC)]
            if sim else [])
    profile = controller_profile(opts) if opts.controller or sim else ""
    if profile and opts.robot_state_publisher and installed("robot_state_publisher"):
        add("robot_state_publisher", "robot_state_publisher", "robot_hand_state_publisher",
            {"robot_description": robot_description(profile),
             "frame_prefix": prefix + ROBOT_FRAME_PREFIX},
            remappings=[("joint_states", ROBOT_JOINT_STATES_TOPIC),
                        ("robot_description", ROBOT_DESCRIPTION_TOPIC)])
    if sim:
        add("hand_sim", "hand_sim", "hand_sim",
            {"profile": profile, "frame_id": prefix + ROBOT_FRAME_PREFIX + "hand_base"},
            [_params_file(opts.robot_params_file, "hand_sim")])
    return Graph(nodes, notes)


def rviz_arguments(namespace: str, config: str = "") -> list[str]:
    """rviz2 arguments: our config and the hand's fixed frame under ``namespace``."""
    return ["-d", config or config_file(RVIZ_FILE), "-f", frame_prefix(namespace) + "hand_base"]


def rviz_remappings(namespace: str) -> list[tuple[str, str]]:
    """config/hand.rviz names absolute default-namespace topics; move them into ``namespace``."""
    ns = normalize_namespace(namespace)
    if not ns:
        return []
    return [(f"/{t}", f"{ns}/{t}") for t in ("hand/markers", "robot_description",
                                             ROBOT_DESCRIPTION_TOPIC)]


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
