from setuptools import find_packages, setup

package_name = "hand_sim"

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
    description="The controller's robot hands simulated in MuJoCo: joint states, contacts, "
                "offscreen pictures.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hand_sim = hand_sim.sim_node:main",
            "hand_sim_render = hand_sim.render:main",
        ],
    },
)
