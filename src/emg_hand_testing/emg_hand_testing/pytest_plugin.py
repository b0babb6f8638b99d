"""pytest plugin (entry point ``pytest11``): ROS isolation and fixtures for every test run.

At configure time, before any test imports rclpy, the test process takes a ROS domain of its
own (see :mod:`emg_hand_testing.domain`); subprocesses inherit it.

Fixtures:
* ``ros_domain_id``: the domain this test process holds.
* ``ros_node``: a :class:`~emg_hand_testing.ros.RosTestNode`, spun in the background.
* ``node_process``: factory starting installed executables; all stopped at teardown.
* ``shared_data``: path of ``../shared/data`` beside the repository, or a skip.

Hypothesis profile ``fuzz`` (``HYPOTHESIS_PROFILE=fuzz``, ``make fuzz``): the large budget
of the property-based fuzz tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .domain import isolate_ros_domain


def pytest_configure(config: pytest.Config) -> None:
    domain = isolate_ros_domain()
    config.stash[_DOMAIN_KEY] = domain
    _hypothesis_profiles()


FUZZ_EXAMPLES = 5000  # examples per property under HYPOTHESIS_PROFILE=fuzz (make fuzz)


def _hypothesis_profiles() -> None:
    """The fuzz budget: property tests that leave the example count to the profile (the
    ``fuzz``-marked ones) run hypothesis' default 100 examples in ``make test`` and
    FUZZ_EXAMPLES (or $FUZZ_EXAMPLES) under HYPOTHESIS_PROFILE=fuzz (``make fuzz``)."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # hypothesis is a test dependency; without it there is nothing to set
        return
    settings.register_profile(
        "fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", FUZZ_EXAMPLES)),
        deadline=None, suppress_health_check=[HealthCheck.too_slow])
    profile = os.environ.get("HYPOTHESIS_PROFILE")
    if profile:
        settings.load_profile(profile)


def pytest_report_header(config: pytest.Config) -> str:
    return (f"ROS_DOMAIN_ID={config.stash.get(_DOMAIN_KEY, '?')} "
            f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE')}")


_DOMAIN_KEY = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def ros_domain_id(pytestconfig: pytest.Config) -> int:
    return pytestconfig.stash[_DOMAIN_KEY]


@pytest.fixture
def ros_node(request: pytest.FixtureRequest):
    from .ros import RosTestNode

    name = "test_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    with RosTestNode(name) as node:
        yield node


@pytest.fixture
def node_process():
    from .processes import NodeProcess

    started: list[NodeProcess] = []

    def start(package: str, executable: str, args=(), env=None, cwd=None) -> NodeProcess:
        proc = NodeProcess(package, executable, args, env=env, cwd=cwd)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.close()


def find_shared_data(start: Path | None = None) -> Path | None:
    """The real recordings: ``shared/data`` beside the repository (or $EMG_HAND_SHARED_DATA).

    Walks up from ``start`` (default: the working directory) and returns the first
    ``<ancestor>/../shared/data`` that exists.
    """
    if os.environ.get("EMG_HAND_SHARED_DATA"):
        path = Path(os.environ["EMG_HAND_SHARED_DATA"])
        return path if path.is_dir() else None
    here = (start or Path.cwd()).resolve()
    for parent in (here, *here.parents):
        candidate = parent.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared_data(pytestconfig: pytest.Config) -> Path:
    path = find_shared_data(pytestconfig.rootpath)
    if path is None:
        pytest.skip("real sEMG recordings not found: expected ../shared/data beside the "
                    "repository (or set EMG_HAND_SHARED_DATA)")
    return path
