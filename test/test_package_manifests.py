"""Package checks: every package is a real ROS 2 package and declares what its code imports,
with the rosdep key that `rosdep install --from-paths src` resolves on a real install."""

from __future__ import annotations

import ast
import configparser
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent for p in (ROOT / "src").glob("*/package.xml"))

# Python module -> rosdep key (ros/rosdistro rosdep/python.yaml). ROS packages map to
# their own name. A module missing here fails the test: add it with its rosdep key.
IMPORT_TO_ROSDEP = {
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
    "serial": "python3-serial",
    "yaml": "python3-yaml",
    "torch": "python3-torch",
    "h5py": "python3-h5py",
    "matplotlib": "python3-matplotlib",
    "tqdm": "python3-tqdm",
    "psutil": "python3-psutil",
    "pytest": "python3-pytest",
    "hypothesis": "python3-hypothesis",
    "onnxruntime": "python3-onnxruntime-pip",
    "rosbags": "python3-rosbags-pip",
    "PIL": "python3-pil",
}
# Modules with no rosdep key: installed from requirements/python.txt on every install.
PIP_ONLY = {"onnx", "safetensors", "mcap", "onnxscript", "mujoco", "brainflow", "pylsl"}
ROS_MODULE = re.compile(
    r"^(rclpy|ament_index_python|launch|launch_ros|launch_testing|tf2_ros|rosidl_runtime_py|"
    r"builtin_interfaces|[a-z0-9_]+_(msgs|srvs|interfaces)|emg_[a-z_]+|hand_[a-z_]+)$")


def _deps(pkg: Path, tags: tuple[str, ...]) -> set[str]:
    root = ET.parse(pkg / "package.xml").getroot()
    return {e.text.strip() for tag in tags for e in root.findall(tag)}


def _imports(files: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return {m: p for m, p in found.items() if m not in sys.stdlib_module_names}


def _rosdep_key(module: str) -> str | None:
    if module in IMPORT_TO_ROSDEP:
        return IMPORT_TO_ROSDEP[module]
    if ROS_MODULE.match(module):
        return module
    return None


def _requirements() -> set[str]:
    text = "\n".join((ROOT / "requirements" / name).read_text()
                     for name in ("python.txt", "python-nodeps.txt"))
    return {line.split("==")[0].strip().lower() for line in text.splitlines()
            if line.strip() and not line.startswith("#")}


def test_workspace_has_every_package():
    names = {p.name for p in PACKAGES}
    assert {"emg_interfaces", "emg_driver", "emg_hand_testing"} <= names


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.name)
def test_manifest_is_format_3_and_named_after_its_folder(pkg):
    root = ET.parse(pkg / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == pkg.name
    assert root.findtext("license") and root.find("maintainer") is not None
    build_type = root.findtext("export/build_type")
    assert build_type in ("ament_python", "ament_cmake")
    if build_type == "ament_python":
        assert (pkg / "setup.py").is_file()
        assert (pkg / "resource" / pkg.name).is_file()
        cfg = configparser.ConfigParser()
        cfg.read(pkg / "setup.cfg")
        assert cfg["install"]["install_scripts"] == f"$base/lib/{pkg.name}"
        assert f'package_name = "{pkg.name}"' in (pkg / "setup.py").read_text()


@pytest.mark.parametrize("pkg", [p for p in PACKAGES if (p / "setup.py").exists()],
                         ids=lambda p: p.name)
def test_every_import_is_declared(pkg):
    code = [p for p in (pkg / pkg.name).rglob("*.py")]
    tests = list((pkg / "test").rglob("*.py")) if (pkg / "test").is_dir() else []
    runtime = _deps(pkg, ("depend", "exec_depend", "build_export_depend"))
    problems = []
    for files, declared, kind in ((code, runtime, "exec_depend"),
                                  (tests, runtime | _deps(pkg, ("test_depend",)), "test_depend")):
        for module, path in sorted(_imports(files).items()):
            if module == pkg.name:
                continue
            if module in PIP_ONLY:
                if module.lower() not in _requirements():
                    problems.append(f"{module} (pip only) missing from requirements/python.txt")
                continue
            key = _rosdep_key(module)
            if key is None:
                problems.append(f"{path.relative_to(ROOT)} imports {module!r}: add its rosdep "
                                f"key to IMPORT_TO_ROSDEP in {Path(__file__).name}")
            elif key not in declared:
                problems.append(f"{path.relative_to(ROOT)} imports {module!r}: "
                                f"package.xml lacks <{kind}>{key}</{kind}>")
    assert not problems, "\n".join(problems)


# exec_depends that the code does not import, and why they are still needed at run time.
RUNTIME_ONLY = {
    "emg_hand_bringup": {"launch", "launch_ros", "ros2launch", "emg_driver", "emg_pose_node",
                         "hand_visualizer", "hand_controller", "hand_sim",
                         "robot_state_publisher", "rviz2",
                         "ros2bag", "rosbag2_storage_mcap", "emg_hand_core"},
    # the Python module tf2_ros is package tf2_ros_py (tf2_ros: its C++ side);
    # robot_state_publisher: the URDF in the launch files
    "hand_visualizer": {"tf2_ros_py", "tf2_ros", "robot_state_publisher"},
    # emg_interfaces, std_msgs, builtin_interfaces: imported by emg_codec only where rclpy
    # messages are built (lazily); ament_index_python: bag_types' lookup (lazily)
    "emg_hand_core": set(),
    "emg_hand_testing": {"python3-pytest"},
}


def _all_imports(files: list[Path]) -> set[str]:
    """Top-level modules imported anywhere in ``files`` (function-level imports included)."""
    return set(_imports(files))


@pytest.mark.parametrize("pkg", [p for p in PACKAGES if (p / "setup.py").exists()],
                         ids=lambda p: p.name)
def test_every_declared_dependency_is_used(pkg):
    """The other direction: no exec_depend the code does not need (a stale dependency pulls
    a package onto every machine the node is installed on)."""
    imported = {_rosdep_key(m) for m in _all_imports(list((pkg / pkg.name).rglob("*.py")))}
    stale = sorted(_deps(pkg, ("exec_depend",)) - imported - RUNTIME_ONLY.get(pkg.name, set()))
    assert not stale, f"{pkg.name}/package.xml declares {stale} but its code imports none"


MUJOCO_FREE = ("emg_hand_core", "emg_driver", "hand_controller", "hand_visualizer")
TORCH_FREE = (*MUJOCO_FREE, "hand_sim")


def _modules(packages) -> list[str]:
    modules = sorted(
        ".".join(p.relative_to(ROOT / "src" / pkg).with_suffix("").parts)
        for pkg in packages for p in (ROOT / "src" / pkg / pkg).rglob("*.py"))
    return [m.removesuffix(".__init__") for m in modules]


def test_driver_controller_and_visualizer_never_import_torch_or_onnxruntime():
    """A fresh interpreter imports every module of the torch-free packages: neither torch nor
    onnxruntime may be loaded (the armband driver on a small board, the safety controller
    next to a robot hand), and their package.xml must not depend on emg_pose_node. Only
    hand_sim loads MuJoCo: the controller, driver and visualizer are imported first and
    must not."""
    import subprocess

    first, then = _modules(MUJOCO_FREE), _modules(["hand_sim"])
    script = ("import importlib, sys\n"
              f"for m in {first!r}:\n    importlib.import_module(m)\n"
              "print('mujoco' in sys.modules)\n"
              f"for m in {then!r}:\n    importlib.import_module(m)\n"
              "print('mujoco' in sys.modules)\n"
              "print(' '.join(sorted(k for k in ('torch', 'onnxruntime') if k in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines() + [""]
    assert lines[:2] == ["False", "True"], f"mujoco loaded by {MUJOCO_FREE}: {lines[:2]}"
    assert lines[2].strip() == "", f"imported: {lines[2].strip()}"
    assert len(first) > 30 and len(then) >= 5  # every module was imported, not a few
    for pkg in TORCH_FREE:
        deps = _deps(ROOT / "src" / pkg, ("depend", "exec_depend"))
        assert not deps & {"emg_pose_node", "python3-torch", "python3-onnxruntime-pip"}, pkg
