"""Fixtures for the emg_driver tests: a pseudo-terminal armband (emg_hand_testing's
PtyArmband) and the driver process.

The ROS isolation, ``ros_node``, ``node_process`` and ``shared_data`` fixtures come from
the workspace harness (emg_hand_testing's pytest plugin).
"""

from __future__ import annotations

import sys
import time

import pytest

from emg_driver.emulators.pty import PtyPort


class PtyArmband(PtyPort):
    """The far end of a serial cable (``emg_driver.emulators.pty.PtyPort``) that the test
    writes an armband's bytes into."""

    def write_paced(self, chunks: list[bytes], rate_per_s: float) -> list[float]:
        """Write ``chunks`` one after another at ``rate_per_s`` chunks per second; return
        the wall-clock time at which each write completed."""
        # this process also runs the test's executor threads: hand the GIL over often, or
        # the writer (the "armband") falls behind its own clock by seconds
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-4)
        try:
            t0 = time.monotonic()
            done = []
            for k, chunk in enumerate(chunks):
                delay = t0 + k / rate_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing a producer, not synchronising with the driver
                self.write(chunk)
                done.append(time.time())
            return done
        finally:
            sys.setswitchinterval(interval)


@pytest.fixture
def pty_armband(tmp_path):
    armband = PtyArmband(tmp_path)
    yield armband
    armband.close()


# --- driver process and stream collectors ---------------------------------------------


@pytest.fixture
def start_driver(node_process):
    """Start the installed ``emg_driver`` with parameters; returns the NodeProcess."""
    from emg_hand_testing.processes import ros_args

    def start(**params):
        return node_process("emg_driver", "emg_driver", ros_args(params))

    return start


class EmgStream:
    """Every emg/raw chunk received, with helpers to look at the samples they carry."""

    def __init__(self, ros_node) -> None:
        from emg_driver.driver_node import emg_qos
        from emg_interfaces.msg import EMG

        self.collector = ros_node.collect(EMG, "emg/raw", emg_qos(5000))

    @property
    def messages(self):
        return self.collector.messages

    def wait_publisher(self, timeout_s: float = 20.0) -> None:
        from emg_hand_testing.ros import wait_until

        sub = self.collector.subscription
        wait_until(lambda: sub.get_publisher_count() >= 1, timeout_s, "the driver's emg/raw")

    def wait_samples(self, count: int, timeout_s: float = 20.0) -> None:
        self.collector.wait_until(lambda msgs: sum(m.num_samples for m in msgs) >= count,
                                  timeout_s, f"{count} samples")

    def samples(self, since: int = 0):
        """(stream indices (n,), data (n, C) float32, chunks) of messages[since:]."""
        import numpy as np

        from emg_hand_core.emg_codec import decode_emg

        msgs = self.messages[since:]
        if not msgs:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), np.float32), msgs
        idx = np.concatenate([m.first_sample_index + np.arange(m.num_samples) for m in msgs])
        data = np.concatenate([decode_emg(m).samples for m in msgs])
        return idx, data, msgs


@pytest.fixture
def emg_stream(ros_node):
    return EmgStream(ros_node)


class Diagnostics:
    """The driver's /diagnostics status, as a dict of its key/values plus level/message."""

    def __init__(self, ros_node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.collector = ros_node.collect(DiagnosticArray, "/diagnostics", 100)

    @staticmethod
    def status_of(msg) -> dict | None:
        for st in msg.status:
            if st.name.startswith("emg_driver"):
                d = {kv.key: kv.value for kv in st.values}
                d["level"] = int.from_bytes(st.level, "little") if isinstance(
                    st.level, bytes) else int(st.level)
                d["message"] = st.message
                return d
        return None

    def latest(self) -> dict | None:
        for msg in reversed(self.collector.messages):
            status = self.status_of(msg)
            if status is not None:
                return status
        return None

    def wait_for(self, predicate, timeout_s: float = 15.0, what: str = "a status") -> dict:
        """Wait until a received status satisfies ``predicate``; return the first that does."""
        found: list[dict] = []

        def check(msgs) -> bool:
            for msg in msgs:
                status = self.status_of(msg)
                if status is not None and predicate(status):
                    found.append(status)
                    return True
            return False

        self.collector.wait_until(check, timeout_s, what)
        return found[0]


@pytest.fixture
def diagnostics(ros_node):
    return Diagnostics(ros_node)


class Lifecycle:
    """Drive the driver's lifecycle through its standard services."""

    def __init__(self, ros_node, node_name: str = "/emg_driver") -> None:
        from lifecycle_msgs.srv import ChangeState, GetState

        self.ros_node = ros_node
        self._get = ros_node.service_client(GetState, f"{node_name}/get_state", 20.0)
        self._change = ros_node.service_client(ChangeState, f"{node_name}/change_state", 20.0)

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.ros_node.call(self._get, GetState.Request()).current_state.label

    def transition(self, name: str) -> bool:
        """configure, activate, deactivate, cleanup or shutdown; True on success."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE,
               "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE,
               "cleanup": Transition.TRANSITION_CLEANUP}
        request = ChangeState.Request(transition=Transition(id=ids[name]))
        return bool(self.ros_node.call(self._change, request).success)


@pytest.fixture
def lifecycle(ros_node):
    return lambda: Lifecycle(ros_node)
