from setuptools import find_packages, setup

package_name = "emg_hand_core"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml", "README.md"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="emg_hand team",
    maintainer_email="emg-hand@example.com",
    description="Torch-free core of emg_hand: hand model, poses, recordings, EMG codec.",
    license="Apache-2.0",
)
