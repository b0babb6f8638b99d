"""rclpy helpers for tests: a background-spun node, waits with timeouts, collectors.

Every wait here ends on the condition it waits for, or raises ``TimeoutError`` with a
message naming what did not happen; nothing sleeps a fixed time to "let things settle".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import rclpy
from rclpy.action import ActionClient
from rclpy.client import Client
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

MsgT = TypeVar("MsgT")

_POLL_S = 0.01  # graph queries have no blocking form in rclpy; poll them this often


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` until it returns true; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(_POLL_S)


class RosTestNode:
    """A node in its own context, spun by an executor on a background thread.

    Use as a context manager; ``node`` is the rclpy Node. Callbacks run on the executor's
    thread, so tests can block on collectors and futures from the main thread. The executor
    is single-threaded: every callback here is short, and rclpy's MultiThreadedExecutor costs
    enough CPU in Python to starve the test's own publishers on a 2-core machine.
    """

    def __init__(self, name: str = "test_node", namespace: str = "") -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}_spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    def __enter__(self) -> RosTestNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- graph waits ------------------------------------------------------------------

    def resolve(self, topic: str) -> str:
        return self.node.resolve_topic_name(topic)

    def wait_for_publishers(self, topic: str, timeout_s: float = 10.0, count: int = 1) -> None:
        """Wait until ``topic`` has at least ``count`` publishers in the graph."""
        name = self.resolve(topic)
        wait_until(lambda: self.node.count_publishers(name) >= count, timeout_s,
                   f"{count} publisher(s) on {name}")

    def wait_for_subscribers(self, topic: str, timeout_s: float = 10.0, count: int = 1) -> None:
        """Wait until ``topic`` has at least ``count`` subscribers in the graph."""
        name = self.resolve(topic)
        wait_until(lambda: self.node.count_subscribers(name) >= count, timeout_s,
                   f"{count} subscriber(s) on {name}")

    def wait_for_node(self, name: str, namespace: str = "/", timeout_s: float = 10.0) -> None:
        """Wait until a node called ``name`` in ``namespace`` is in the graph."""
        wait_until(
            lambda: (name, namespace) in self.node.get_node_names_and_namespaces(),
            timeout_s, f"node {namespace.rstrip('/')}/{name}",
        )

    def service_client(self, srv_type: Any, name: str, timeout_s: float = 10.0) -> Client:
        """A client for service ``name``, returned once the server is available."""
        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for service {name}")
        return client

    def action_client(self, action_type: Any, name: str, timeout_s: float = 10.0) -> ActionClient:
        """An action client for ``name``, returned once the server is available."""
        client = ActionClient(self.node, action_type, name)
        if not client.wait_for_server(timeout_sec=timeout_s):
            raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for action {name}")
        return client

    def call(self, client: Client, request: Any, timeout_s: float = 10.0) -> Any:
        """Call a service and wait for its response."""
        return wait_future(client.call_async(request), timeout_s, f"response of {client.srv_name}")

    def set_parameters(self, node_name: str, values: dict[str, Any],
                       timeout_s: float = 20.0) -> list[Any]:
        """Set parameters of another node through its ``set_parameters`` service (what
        ``ros2 param set`` does); one rcl_interfaces/SetParametersResult per value."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.service_client(SetParameters, f"{node_name}/set_parameters", timeout_s)
        request = SetParameters.Request(parameters=[
            Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        return list(self.call(client, request, timeout_s).results)

    def describe_parameters(self, node_name: str, names: list[str],
                            timeout_s: float = 20.0) -> list[Any]:
        """rcl_interfaces/ParameterDescriptor of each name (``ros2 param describe``)."""
        from rcl_interfaces.srv import DescribeParameters

        client = self.service_client(DescribeParameters, f"{node_name}/describe_parameters",
                                     timeout_s)
        return list(self.call(client, DescribeParameters.Request(names=names),
                              timeout_s).descriptors)

    def collect(self, msg_type: type[MsgT], topic: str,
                qos: QoSProfile | int = 100) -> MessageCollector[MsgT]:
        """Subscribe to ``topic`` and keep every message received."""
        return MessageCollector(self.node, msg_type, topic, qos)


def wait_future(future: Any, timeout_s: float, what: str) -> Any:
    """Wait for an rclpy future completed by another thread's executor; return its result."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout_s):
        raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for {what}")
    return future.result()


class MessageCollector(Generic[MsgT]):
    """Keeps every message of a subscription; tests wait on counts or predicates."""

    def __init__(self, node: Node, msg_type: type[MsgT], topic: str,
                 qos: QoSProfile | int = 100) -> None:
        self.topic = node.resolve_topic_name(topic)
        self._cond = threading.Condition()
        self._messages: list[MsgT] = []
        self._receive_times: list[float] = []
        self.subscription = node.create_subscription(msg_type, topic, self._on_message, qos)

    def _on_message(self, msg: MsgT) -> None:
        now = time.monotonic()
        with self._cond:
            self._messages.append(msg)
            self._receive_times.append(now)
            self._cond.notify_all()

    @property
    def messages(self) -> list[MsgT]:
        with self._cond:
            return list(self._messages)

    @property
    def receive_times(self) -> list[float]:
        """time.monotonic() at each message's arrival [s]."""
        with self._cond:
            return list(self._receive_times)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()
            self._receive_times.clear()

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[MsgT]:
        """Wait until at least ``count`` messages have arrived; return them all."""
        return self.wait_until(lambda msgs: len(msgs) >= count, timeout_s,
                               f"{count} message(s)")

    def wait_until(self, predicate: Callable[[list[MsgT]], bool], timeout_s: float = 10.0,
                   what: str = "a condition") -> list[MsgT]:
        """Wait until ``predicate(messages)`` holds; return the messages."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self._messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"timed out after {timeout_s:.1f} s waiting for {what} on {self.topic} "
                        f"({len(self._messages)} received)"
                    )
                self._cond.wait(remaining)
            return list(self._messages)


def joint_state(q, names=None) -> Any:
    """A sensor_msgs/JointState of angles ``q`` named ``names`` (default the hand's 20)."""
    from sensor_msgs.msg import JointState

    from emg_hand_core.hand_model import JOINT_NAMES

    return JointState(name=list(JOINT_NAMES if names is None else names),
                      position=[float(x) for x in q])


class PoseStreamer:
    """Publishes the current pose (``pose``, None: nothing) on ``hand/joint_states`` at a
    fixed rate from a thread, as emg_pose would; reliable QoS."""

    def __init__(self, ros_node: RosTestNode, rate_hz: float = 100.0,
                 topic: str = "hand/joint_states") -> None:
        from rclpy.qos import ReliabilityPolicy
        from sensor_msgs.msg import JointState

        self.pub = ros_node.node.create_publisher(
            JointState, topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.period = 1.0 / rate_hz
        self.pose = None
        self.sent = 0
        self.last_sent: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def wait_matched(self, timeout_s: float = 20.0) -> PoseStreamer:
        wait_until(lambda: self.pub.get_subscription_count() >= 1, timeout_s,
                   f"a subscriber of {self.pub.topic_name}")
        return self

    def start(self, pose) -> PoseStreamer:
        self.pose = pose
        self._thread.start()
        return self

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            pose = self.pose
            if pose is not None:
                self.pub.publish(joint_state(pose))
                self.sent += 1
                self.last_sent = time.monotonic()
            next_t += self.period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
