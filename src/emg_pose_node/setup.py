import os
from glob import glob

from setuptools import find_packages, setup

package_name = "emg_pose_node"


def files(pattern):
    # A model deleted from models/ leaves a dangling link in a --symlink-install build tree.
    return sorted(p for p in glob(pattern) if os.path.isfile(p))


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/models", files("models/*.safetensors") + files("models/*.md")
         + files("models/*.json") + files("models/*.png")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="emg_hand team",
    maintainer_email="emg-hand@example.com",
    description="Hand model, EMG-to-pose network, training and the emg_pose node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "emg_pose_train = emg_pose_node.cli:train_main",
            "emg_pose_eval = emg_pose_node.cli:eval_main",
            "emg_pose_export = emg_pose_node.cli:export_main",
            "emg_pose = emg_pose_node.pose_node:main",
            "emg_gesture = emg_pose_node.gesture_node:main",
            "emg_gesture_train = emg_pose_node.gesture.cli:train_main",
            "emg_gesture_eval = emg_pose_node.gesture.cli:eval_main",
        ],
    },
)
