from setuptools import find_packages, setup

package_name = "emg_hand_testing"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="emg_hand team",
    maintainer_email="emg-hand@example.com",
    description="Test helpers for emg_hand (ROS domain isolation, waits, collectors, processes).",
    license="Apache-2.0",
    entry_points={
        # Registered as a pytest plugin: every pytest run that can import this package
        # (make test, colcon test) gets its own ROS domain before any test starts.
        "pytest11": ["emg_hand_testing = emg_hand_testing.pytest_plugin"],
    },
)
