"""Package checks of the launch files and their configuration (no launch_ros needed).

Every launch file in launch/ is checked statically (its AST): each argument is declared
with a description, booleans and fixed sets have `choices`, every LaunchConfiguration it
reads is declared (in the file or a file it includes), every package / executable of a
literal Node exists in the install (optional packages, robot_state_publisher and rviz2,
only behind an `installed()` check), every included launch file exists. The graph the
launch files start (emg_hand_bringup.graph) is evaluated for every choice of its
arguments: executables, parameter files, the URDF and the RViz config exist, and every
parameter a YAML file or the launch file sets is one the node declares, with the type and
a value the node accepts. Where `launch` is importable, each file is also imported and its
generate_launch_description() called (test_launch_real.py runs them).
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from emg_hand_bringup import graph

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_DIR = ROOT / "launch"
CONFIG_DIR = ROOT / "config"
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))
EXPECTED = {"teleop.launch.py", "record.launch.py", "replay.launch.py", "calibrate.launch.py"}
OPTIONAL_PACKAGES = {"robot_state_publisher", "rviz2"}  # started only when installed
LAUNCH_ONLY_ARGUMENTS = {"rviz", "rviz_config"}  # teleop arguments not in TeleopOptions
HAVE_LAUNCH = importlib.util.find_spec("launch_ros") is not None


# --- reading a launch file without launch ----------------------------------------------------

def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


class LaunchInfo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(), str(path))
        self.arguments: dict[str, dict] = {}
        self.nodes: list[tuple[str | None, str | None]] = []
        self.includes: list[list] = []
        self.read: set[str] = set()  # launch configurations read
        self.guarded: set[str] = set()  # packages checked with installed()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self._call(node)
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                    and node.value.id == "config":
                key = _literal(node.slice)
                if isinstance(key, str):
                    self.read.add(key)

    def _call(self, call: ast.Call) -> None:
        name = _call_name(call)
        kw = {k.arg: k.value for k in call.keywords}
        if name == "DeclareLaunchArgument":
            self.arguments[_literal(call.args[0])] = {
                "default": _literal(kw["default_value"]) if "default_value" in kw else None,
                "description": _literal(kw.get("description", ast.Constant(""))),
                "choices": _literal(kw["choices"]) if "choices" in kw else None,
                "choices_node": kw.get("choices")}
        elif name == "Node":
            self.nodes.append((_literal(kw.get("package")), _literal(kw.get("executable"))))
        elif name == "LaunchConfiguration" and call.args:
            value = _literal(call.args[0])
            if isinstance(value, str):
                self.read.add(value)
        elif name == "installed" and call.args:
            self.guarded.add(_literal(call.args[0]))
        elif name == "PathJoinSubstitution" and call.args \
                and isinstance(call.args[0], ast.List):
            parts = call.args[0].elts
            if parts and isinstance(parts[0], ast.Call) \
                    and _call_name(parts[0]) == "FindPackageShare":
                self.includes.append([_literal(parts[0].args[0]),
                                      *(_literal(p) for p in parts[1:])])
        elif name == "teleop_arguments":  # graph.teleop_arguments(...): the graph's table
            kwargs = {k.arg: _literal(k.value) for k in call.keywords}
            for arg in graph.teleop_arguments(*(_literal(a) for a in call.args), **kwargs):
                self.arguments[arg.name] = {
                    "default": arg.default, "description": arg.description,
                    "choices": list(arg.choices) or None, "choices_node": None}
        elif name == "get" and isinstance(call.func, ast.Attribute) \
                and isinstance(call.func.value, ast.Name) and call.func.value.id == "config":
            key = _literal(call.args[0]) if call.args else None
            if isinstance(key, str):
                self.read.add(key)

    def declared_with_includes(self) -> dict[str, dict]:
        declared = dict(self.arguments)
        for package, *parts in self.includes:
            if package == graph.PACKAGE and parts[0] == "launch":
                declared.update(LaunchInfo(LAUNCH_DIR / parts[-1]).arguments)
        return declared


INFOS = {p.name: LaunchInfo(p) for p in LAUNCH_FILES}


def test_every_launch_file_is_there_and_installed():
    assert set(INFOS) == EXPECTED
    share = Path(graph.share_file(graph.PACKAGE, "launch"))
    for name in EXPECTED:
        installed = share / name
        assert installed.is_file(), f"{name} not installed in {share}: run make setup"
        assert installed.read_text() == (LAUNCH_DIR / name).read_text(), \
            f"installed {name} is stale: run make setup"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_arguments_explain_themselves(name):
    info = INFOS[name]
    assert info.arguments, f"{name} declares no arguments"
    for arg, spec in info.arguments.items():
        assert arg.isidentifier() and arg == arg.lower(), f"{name}: argument {arg!r}"
        assert spec["description"] and len(spec["description"]) > 20, \
            f"{name}: {arg} needs a description"
        default = spec["default"]
        if default in ("true", "false"):
            choices = spec["choices"] or _module_constant(info, spec["choices_node"])
            assert choices == ["true", "false"], f"{name}: boolean {arg} needs choices"
        if spec["choices"] is not None and default is not None:
            assert default in spec["choices"], f"{name}: {arg} default not in its choices"


def _module_constant(info: LaunchInfo, node):
    if isinstance(node, ast.Name):
        for stmt in info.tree.body:
            if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets):
                return _literal(stmt.value)
    return None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_argument_read_is_declared(name):
    info = INFOS[name]
    declared = set(info.declared_with_includes()) | {"ros_namespace"}
    missing = sorted(info.read - declared)
    assert not missing, f"{name} reads undeclared launch configurations {missing}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_nodes_and_included_files_exist(name):
    info = INFOS[name]
    for package, executable in info.nodes:
        if package is None:  # built from a graph.NodeSpec: checked below for every choice
            continue
        if package in OPTIONAL_PACKAGES:
            assert package in info.guarded, \
                f"{name}: {package} is optional here; start it only if installed({package!r})"
            if not graph.installed(package):
                continue
        assert Path(graph.executable_path(package, executable)).is_file()
    for package, *parts in info.includes:
        assert Path(graph.share_file(package, *parts)).is_file()
        if package == graph.PACKAGE and parts[0] == "launch":
            assert (LAUNCH_DIR / parts[-1]).is_file()


def test_teleop_arguments_are_the_graph_options():
    arguments = INFOS["teleop.launch.py"].arguments
    options = {f.name: f.default for f in fields(graph.TeleopOptions)}
    assert set(arguments) - LAUNCH_ONLY_ARGUMENTS == set(options)
    for name, default in options.items():
        expected = ("true" if default else "false") if isinstance(default, bool) else default
        assert arguments[name]["default"] == expected, f"default of {name}"
    assert arguments["source"]["choices"] == ["", *graph.SOURCES]
    assert arguments["protocol"]["choices"] == ["", *graph.PROTOCOLS]
    assert arguments["wearer"]["choices"] == ["", *graph.WEARERS]
    assert arguments["controller_output"]["choices"] == ["", *graph.CONTROLLER_OUTPUTS]
    assert arguments["log_level"]["choices"] == list(graph.LOG_LEVELS)
    assert arguments["control"]["choices"] == list(graph.CONTROLS)
    for name in ("record.launch.py", "replay.launch.py"):
        tool = "recorder" if name.startswith("record") else "player"
        assert INFOS[name].arguments[tool]["choices"] == list(graph.RECORDERS)


def test_replay_offers_only_arguments_that_act():
    """replay.launch.py runs no driver: none of the driver's arguments is offered (replay
    used to list driver:=true, which it always overrode), every other teleop one is."""
    replay = INFOS["replay.launch.py"].declared_with_includes()
    driver_only = {a.name for a in graph.TELEOP_ARGUMENTS if a.driver_only}
    assert driver_only >= {"driver", "source", "port", "replay_file", "driver_params_file"}
    assert not driver_only & set(replay), sorted(driver_only & set(replay))
    assert {a.name for a in graph.TELEOP_ARGUMENTS} - driver_only <= set(replay)
    assert replay["use_sim_time"]["default"] == "true" and replay["controller"]["default"] \
        == "false"
    # the others run the driver, so its arguments act there
    for name in ("teleop.launch.py", "record.launch.py", "calibrate.launch.py"):
        assert driver_only <= set(INFOS[name].declared_with_includes()), name


# --- the graph for every choice ------------------------------------------------------------------

def _tables():
    """node name -> its ParamTable (emg_hand_core.params)."""
    from emg_driver.params import PARAMS
    from emg_pose_node.gesture_node import PARAMETERS as GESTURE
    from emg_pose_node.pose_node import PARAMETERS as POSE
    from hand_controller.controller_node import PARAMETERS as CONTROLLER
    from hand_sim.sim_node import PARAMETERS as SIM
    from hand_visualizer.visualizer_node import PARAMETERS as VISUALIZER

    return {"emg_driver": PARAMS, "emg_pose": POSE, "emg_gesture": GESTURE,
            "hand_visualizer": VISUALIZER, "hand_controller": CONTROLLER, "hand_sim": SIM}


def _declared_parameters() -> dict[str, dict[str, object]]:
    """node name -> {parameter: default} as the nodes declare them."""
    return {node: table.defaults() for node, table in _tables().items()}


def _problems(node: str, values: dict) -> list[str]:
    """What the node's own checks say about ``values``."""
    from emg_hand_core.params import ParamError

    try:
        checked = _tables()[node].validate(values)
    except ParamError as err:
        return [str(err)]
    if node == "hand_controller":
        from hand_controller.controller_node import _check

        return _check(checked)
    return []


def _same_type(value, default) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, float)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list) and (not default or all(
            _same_type(v, default[0]) for v in value))
    return isinstance(value, type(default))


DECLARED = _declared_parameters()


@pytest.mark.parametrize("node", sorted(graph.CONFIG_FILES))
def test_parameter_files_set_declared_parameters_with_valid_values(node):
    path = CONFIG_DIR / graph.CONFIG_FILES[node]
    assert Path(graph.config_file(graph.CONFIG_FILES[node])).read_text() == path.read_text()
    text = path.read_text()
    assert text.lstrip().startswith("#"), f"{path.name} must say what it is in a comment"
    data = yaml.safe_load(text)
    assert list(data) == ["/**"] and list(data["/**"]) == ["ros__parameters"]
    values = data["/**"]["ros__parameters"]
    declared = DECLARED[node]
    unknown = sorted(set(values) - set(declared))
    assert not unknown, f"{path.name}: {unknown} are not parameters of {node}"
    for name, value in values.items():
        assert _same_type(value, declared[name]), \
            f"{path.name}: {name}: {value!r} is not of the declared type of {declared[name]!r}"
    assert not _problems(node, values), _problems(node, values)


def _options():
    """Every choice of every argument that changes the graph (a few at a time)."""
    yield graph.TeleopOptions()
    for namespace in ("left", "/robot/right/"):
        yield graph.TeleopOptions(namespace=namespace)
    for source in graph.SOURCES:
        for protocol in ("", *graph.PROTOCOLS):
            yield graph.TeleopOptions(source=source, protocol=protocol, port="/dev/ttyUSB0",
                                      replay_file="session.h5")
    for device in graph.device_presets():
        yield graph.TeleopOptions(device=device, port="/dev/ttyUSB0")
    for wearer in ("", *graph.WEARERS):
        yield graph.TeleopOptions(wearer=wearer, follow_prompts=wearer == "b")
    for output in ("", *graph.CONTROLLER_OUTPUTS):
        for profile in ("", *graph.CONTROLLER_PROFILES):
            yield graph.TeleopOptions(controller_output=output, controller_profile=profile,
                                      controller_serial_port="/dev/ttyACM1",
                                      controller_enabled=True)
    for robot in graph.ROBOTS:
        for output in ("", *graph.SIM_OUTPUTS):
            for profile in ("", *graph.CONTROLLER_PROFILES[:2]):
                yield graph.TeleopOptions(robot=robot, controller_output=output,
                                          controller_profile=profile, namespace="left")
        yield graph.TeleopOptions(robot=robot, controller=False)
    for flags in itertools.product((True, False), repeat=5):
        driver, pose, visualizer, rsp, controller = flags
        yield graph.TeleopOptions(driver=driver, pose_node=pose, visualizer=visualizer,
                                  robot_state_publisher=rsp, controller=controller,
                                  use_sim_time=pose, model="wearer_b", log_level="warn")
    for namespace in ("", "left"):
        yield graph.TeleopOptions(control="gesture", gesture_model="grips.safetensors",
                                  namespace=namespace)


@pytest.mark.parametrize("opts", list(_options()), ids=lambda o: repr(o)[14:90])
def test_graph_runs_installed_nodes_with_valid_parameters(opts):
    teleop = graph.teleop_graph(opts)
    prefix = graph.frame_prefix(opts.namespace)
    names = [n.name for n in teleop.nodes]
    assert len(names) == len(set(names))
    gesture = opts.control == "gesture"
    expected = {name for name, on in (
        ("emg_driver", opts.driver), ("emg_pose", opts.pose_node and not gesture),
        ("emg_gesture", opts.pose_node and gesture),
        ("hand_visualizer", opts.visualizer), ("hand_controller", opts.controller),
        ("robot_state_publisher",
         opts.robot_state_publisher and graph.installed("robot_state_publisher")),
        ("robot_hand_state_publisher",
         (opts.controller or opts.robot == "sim") and opts.robot_state_publisher
         and graph.installed("robot_state_publisher")),
        ("hand_sim", opts.robot == "sim")) if on}
    assert set(names) == expected
    if opts.robot_state_publisher and not graph.installed("robot_state_publisher"):
        assert any("robot_state_publisher is not installed" in n for n in teleop.notes)
    for spec in teleop.nodes:
        assert Path(graph.executable_path(spec.package, spec.executable)).is_file()
        for path in spec.params_files:
            assert Path(path).is_file()
        assert spec.log_level == opts.log_level
        if spec.name == "robot_state_publisher":
            assert spec.parameters["frame_prefix"] == prefix
            assert "<robot" in spec.parameters["robot_description"]
            assert ("joint_states", "hand/joint_states") in spec.remappings
            continue
        if spec.name == "robot_hand_state_publisher":
            assert spec.parameters["frame_prefix"] == prefix + "robot_hand/"
            assert spec.parameters["robot_description"] == \
                graph.robot_description(graph.controller_profile(opts))
            assert ("joint_states", "robot_hand/joint_states") in spec.remappings
            assert ("robot_description", "robot_hand/robot_description") in spec.remappings
            continue
        declared = DECLARED[spec.name]
        params = {k: v for k, v in spec.parameters.items() if k != "use_sim_time"}
        assert set(params) <= set(declared), f"{spec.name}: {set(params) - set(declared)}"
        for name, value in params.items():
            assert _same_type(value, declared[name]), f"{spec.name}: {name}={value!r}"
        assert not _problems(spec.name, params), _problems(spec.name, params)
        assert spec.parameters.get("use_sim_time", False) == opts.use_sim_time
        cmd = spec.command(opts.namespace)
        assert cmd[0] == graph.executable_path(spec.package, spec.executable)
        assert ("-r", f"__ns:={graph.normalize_namespace(opts.namespace)}") in zip(
            cmd, cmd[1:]) or not opts.namespace
    if opts.driver:
        driver = teleop.node("emg_driver").parameters
        assert driver.get("source", "") == opts.source
        if opts.device:  # the preset after the defaults, before the user's file
            files = teleop.node("emg_driver").params_files
            assert [Path(f).stem for f in files] == ["emg_driver", opts.device]
        assert driver["frame_id"] == prefix + "armband"
        assert driver.get("protocol", "") == opts.protocol
        assert driver.get("wearer", "") == opts.wearer
        assert driver["follow_prompts"] is opts.follow_prompts
    if opts.visualizer:
        visualizer = teleop.node("hand_visualizer").parameters
        assert visualizer["frame_prefix"] == prefix
        assert visualizer["armband_frame"] == prefix + "armband"
    if opts.pose_node:
        node = teleop.node("emg_gesture" if gesture else "emg_pose")
        assert node.parameters["frame_id"] == prefix + "hand_base"
        if gesture:
            assert node.parameters["model"] == opts.gesture_model
    if opts.controller:
        controller = teleop.node("hand_controller")
        assert controller.parameters["start_enabled"] is opts.controller_enabled
        assert controller.parameters.get("output", "") == opts.controller_output
        assert controller.parameters["mode"] == ("grip" if gesture else "pose")
        moved = ("robot_hand/joint_states", "robot_hand/commanded_joint_states")
        assert (moved in controller.remappings) is (opts.robot == "sim")
    if opts.robot == "sim":  # the controller's hand, its measured state and contacts
        sim = teleop.node("hand_sim").parameters
        assert sim["profile"] == (opts.controller_profile or "prosthetic_6")
        assert sim["frame_id"] == prefix + "robot_hand/hand_base"


def test_bad_arguments_are_refused_with_the_reason():
    for opts, words in (
            (graph.TeleopOptions(source="bluetooth"), "source"),
            (graph.TeleopOptions(source="replay"), "replay_file"),
            (graph.TeleopOptions(device="cytron"), "not a preset of emg_driver"),
            (graph.TeleopOptions(controller_output="serial"), "controller_serial_port"),
            (graph.TeleopOptions(robot="sim", controller_output="none"), "robot:=sim"),
            (graph.TeleopOptions(robot="gazebo"), "robot"),
            (graph.TeleopOptions(control="gesture"), "gesture_model"),
            (graph.TeleopOptions(control="wave"), "control"),
            (graph.TeleopOptions(driver_params_file="/nonexistent.yaml"), "not found")):
        with pytest.raises(graph.GraphError, match=words):
            graph.teleop_graph(opts)
    with pytest.raises(graph.GraphError, match="true or false"):
        graph.TeleopOptions.from_strings({"rviz": "yes", "controller": "maybe"})


def test_namespaces_and_frames():
    assert graph.normalize_namespace("") == graph.normalize_namespace("/") == ""
    assert graph.normalize_namespace("left/") == "/left"
    assert graph.frame_prefix("/robot/left") == "robot/left/"
    assert graph.resolve_topic("/left", "emg/raw") == "/left/emg/raw"
    assert graph.resolve_topic("/left", "/tf_static") == "/tf_static"
    assert graph.rviz_arguments("left")[-2:] == ["-f", "left/hand_base"]
    assert ("/hand/markers", "/left/hand/markers") in graph.rviz_remappings("left")
    assert graph.rviz_remappings("") == []


def test_param_literals_read_back_as_the_value():
    for value in ("left/", "", "armband", "1.5", "true", "a:b", "/dev/pts/3"):
        assert yaml.safe_load(graph.param_literal(value)) == value
    assert graph.param_literal(True) == "true" and graph.param_literal(200.0) == "200.0"
    assert yaml.safe_load(graph.param_literal([0.15, 0.0, 0.0])) == [0.15, 0.0, 0.0]


def test_rviz_config_and_urdf_are_installed():
    assert Path(graph.config_file(graph.RVIZ_FILE)).read_text() == \
        (CONFIG_DIR / graph.RVIZ_FILE).read_text()
    assert "<robot" in Path(graph.share_file(*graph.URDF)).read_text()


def test_robot_hand_description_is_the_profiles_installed_urdf(tmp_path):
    for profile in ("prosthetic_6", "four_finger_16"):
        installed_urdf = Path(graph.share_file("hand_visualizer", "urdf", f"{profile}.urdf"))
        assert graph.robot_description(profile) == installed_urdf.read_text()
    assert graph.robot_description("human") == Path(graph.share_file(*graph.URDF)).read_text()
    controller_file = tmp_path / "controller.yaml"
    controller_file.write_text("/**:\n  ros__parameters:\n    profile: four_finger_16\n")
    assert graph.controller_profile(graph.TeleopOptions(
        controller_params_file=str(controller_file))) == "four_finger_16"
    with pytest.raises(graph.GraphError, match="no profile named"):
        graph.robot_description("no_such_hand")


# --- bags ---------------------------------------------------------------------------------

def test_record_qos_overrides_keep_everything():
    template = yaml.safe_load((CONFIG_DIR / graph.RECORD_QOS_FILE).read_text())
    assert set(template) == {graph.resolve_topic("", t) for t in graph.RECORD_TOPICS}
    for topic, profile in template.items():
        assert profile["reliability"] == "reliable", topic
        assert profile["history"] == "keep_last" and profile["depth"] >= 100, topic
        expected = "transient_local" if topic == "/tf_static" else "volatile"
        assert profile["durability"] == expected, topic
    moved = graph.record_qos_overrides("left", template)
    assert set(moved) == {graph.resolve_topic("/left", t) for t in graph.RECORD_TOPICS}
    assert moved["/left/emg/raw"] == template["/emg/raw"]


def test_bag_commands():
    topics = ["emg/raw", "/tf_static"]
    cmd = graph.record_command("ros2_bag", "/left", "runs/a", topics, "/tmp/q.yaml")
    assert cmd[:3] == ["ros2", "bag", "record"]
    assert cmd[cmd.index("--topics") + 1:] == ["/left/emg/raw", "/tf_static"]
    assert cmd[cmd.index("--qos-profile-overrides-path") + 1] == "/tmp/q.yaml"
    ours = graph.record_command("emg_hand_bag", "/left", "runs/a", topics)
    assert ours[0] == "record" and ours[-2:] == ["/left/emg/raw", "/tf_static"]
    play = graph.play_command("emg_hand_bag", "runs/a", ["/emg/raw"], rate=2.0, loop=True)
    assert play[:2] == ["play", "runs/a"] and "--loop" in play and "--clock" in play
    assert play[play.index("--topics") + 1:] == ["/emg/raw"]
    ros2 = graph.play_command("ros2_bag", "runs/a", ["/emg/raw"])
    assert ros2[:4] == ["ros2", "bag", "play", "runs/a"] and "--clock" in ros2
    assert graph.choose_bag_tool("emg_hand_bag")[0] == "emg_hand_bag"
    if not graph.ros2_bag_available():
        assert graph.choose_bag_tool("auto")[0] == "emg_hand_bag"
        with pytest.raises(graph.GraphError, match="recorder:=emg_hand_bag"):
            graph.choose_bag_tool("ros2_bag")


# --- with launch installed -------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_LAUNCH, reason="launch_ros is not importable here (pip "
                    "environment): the static checks above stand in; test_launch_real.py "
                    "runs the files where it is")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_launch_description_loads_with_the_same_arguments(name):
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    description = get_launch_description_from_python_launch_file(str(LAUNCH_DIR / name))
    names = {a.name for a in description.get_launch_arguments()}
    assert names == set(INFOS[name].declared_with_includes())
