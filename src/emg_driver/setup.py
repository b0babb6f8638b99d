from glob import glob

from setuptools import find_packages, setup

package_name = "emg_driver"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml", "README.md"]),
        (f"share/{package_name}/config", glob("config/*.yaml")),
        (f"share/{package_name}/config/devices", glob("config/devices/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="emg_hand team",
    maintainer_email="emg-hand@example.com",
    description="sEMG armband driver: OpenBCI Cyton, Myo, BrainFlow, LSL, serial, simulated "
                "and replayed armbands on emg/raw.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "emg_driver = emg_driver.driver_node:main",
            "emg_monitor = emg_driver.emg_monitor:main",
            "emg_sim_record = emg_driver.sim_record:main",
            "emg_lsl_outlet = emg_driver.lsl_outlet_node:main",
        ],
    },
)
