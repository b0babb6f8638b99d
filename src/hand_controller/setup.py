from glob import glob

from setuptools import find_packages, setup

package_name = "hand_controller"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml", "README.md"]),
        (f"share/{package_name}/config/profiles", glob("config/profiles/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="emg_hand team",
    maintainer_email="emg-hand@example.com",
    description="Retargets the estimated human hand to a robot or prosthetic hand, safely.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hand_controller = hand_controller.controller_node:main",
            "hand_profile = hand_controller.profile:main",
        ],
    },
)
