"""Broadcast TF through tf2_ros where it exists, else publish tf2_msgs/TFMessage directly.

tf2_ros is not on PyPI, so in the pip environment the node publishes the same messages
with the same QoS as tf2_ros' broadcasters: ``/tf`` reliable, volatile, depth 100;
``/tf_static`` reliable, transient-local, depth 1, every static transform in one message
(late joiners get them all). ``backend`` says which path is in use.
"""

from __future__ import annotations

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)
TF_STATIC_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL,
                           history=HistoryPolicy.KEEP_LAST)


class TfOutput:
    def __init__(self, node: Node):
        self._node = node
        self._static: dict[str, TransformStamped] = {}
        self._dynamic = self._static_broadcaster = None
        self._tf_pub = self._tf_static_pub = None
        log = node.get_logger()
        try:
            from tf2_ros import StaticTransformBroadcaster, TransformBroadcaster
        except ImportError:
            try:
                from tf2_msgs.msg import TFMessage
            except ImportError:
                self.backend = "none"
                log.error("TF disabled: neither tf2_ros nor tf2_msgs is importable (build "
                          "pip_env/tf2_msgs in the pip environment); markers still work")
                return
            self._msg_type = TFMessage
            self._tf_pub = node.create_publisher(TFMessage, "/tf", TF_QOS)
            self._tf_static_pub = node.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
            self.backend = "tf2_msgs"
            log.info("TF: tf2_ros is not importable; publishing tf2_msgs/msg/TFMessage on /tf "
                     "and /tf_static directly (same QoS as tf2_ros)")
            return
        self._dynamic = TransformBroadcaster(node)
        self._static_broadcaster = StaticTransformBroadcaster(node)
        self.backend = "tf2_ros"
        log.info("TF: broadcasting through tf2_ros")

    def send(self, transforms: list[TransformStamped]) -> None:
        if not transforms or self.backend == "none":
            return
        if self._dynamic is not None:
            self._dynamic.sendTransform(transforms)
        else:
            self._tf_pub.publish(self._msg_type(transforms=transforms))

    def send_static(self, transforms: list[TransformStamped]) -> None:
        """Add or replace static transforms (keyed by child frame) and publish them all."""
        if not transforms or self.backend == "none":
            return
        if self._static_broadcaster is not None:
            self._static_broadcaster.sendTransform(transforms)  # it accumulates by itself
            return
        for t in transforms:
            self._static[t.child_frame_id] = t
        self._tf_static_pub.publish(self._msg_type(transforms=list(self._static.values())))
