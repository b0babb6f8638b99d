from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "emg_hand_bringup"

# The workspace's top-level launch/ and config/ folders (beside src/) are installed with this
# package so that `ros2 launch emg_hand_bringup <file>` and the launch files' config paths
# (share/emg_hand_bringup/config) work. colcon runs setup.py from this folder; the globs are
# relative to it and simply match nothing while those folders do not exist.
_HERE = Path(__file__).resolve().parent
_WORKSPACE_FILES = {
    "launch": ("../../launch/*.launch.py",),
    "config": ("../../config/*.yaml", "../../config/*.rviz"),
}


def _workspace_data_files():
    entries = []
    for folder, patterns in _WORKSPACE_FILES.items():
        files = sorted(f for pattern in patterns for f in glob(pattern, root_dir=_HERE))
        if files:
            entries.append((f"share/{package_name}/{folder}", files))
    return entries


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml", "README.md"]),
        *_workspace_data_files(),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="emg_hand team",
    maintainer_email="emg-hand@example.com",
    description="Bring-up of the emg_hand graph: launch files, configuration and "
                "emg_hand_bag (record / play / info of rosbag2 bags without ros2 bag).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "emg_hand_bag = emg_hand_bringup.bag_cli:main",
            "emg_hand_calibrate = emg_hand_bringup.calibrate_cli:main",
        ],
    },
)
