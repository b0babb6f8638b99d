"""emg_lsl_outlet: republish emg/raw as a Lab Streaming Layer stream (for LabRecorder).

    ros2 run emg_driver emg_lsl_outlet --ros-args -p lsl_name:=emg_hand_left

Parameters: ``lsl_name`` (emg_hand), ``lsl_type`` (EMG), ``lsl_source_id`` (empty:
emg_hand/<name>), ``unit`` (microvolts or volts). The work is in
:class:`emg_driver.lsl_outlet.LslRepublisher`.
"""

from __future__ import annotations

import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from emg_hand_core.emg_codec import EmgDecodeError, decode_emg
from emg_hand_core.params import Param, ParamTable
from emg_hand_core.ros_params import declare_parameters
from emg_hand_core.topics import EMG_TOPIC
from emg_interfaces.msg import EMG

from .driver_node import emg_qos
from .lsl_outlet import UNITS, LslRepublisher

PARAMETERS = ParamTable((
    Param("lsl_name", "emg_hand", "Name of the LSL stream.",
          check=lambda v: None if v else "must not be empty"),
    Param("lsl_type", "EMG", "Type of the LSL stream (what LabRecorder and resolvers match)."),
    Param("lsl_source_id", "", "LSL source_id (empty: emg_hand/<lsl_name>): lets a consumer "
          "reconnect to this stream after a restart."),
    Param("unit", "microvolts", "Unit of the LSL samples (emg/raw is in volts).",
          choices=tuple(UNITS)),
))


class EmgLslOutlet(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("emg_lsl_outlet", **kwargs)
        p, _ = declare_parameters(self, PARAMETERS)  # ParamError: refused, with why
        self.republisher = LslRepublisher(p["lsl_name"], p["lsl_type"], p["lsl_source_id"],
                                          p["unit"], clock=self._now_s)
        self.create_subscription(EMG, EMG_TOPIC, self._on_emg, emg_qos(100))
        self.get_logger().info(f"republishing {self.resolve_topic_name(EMG_TOPIC)} as LSL "
                               f"stream {p['lsl_name']!r} ({p['lsl_type']}, {p['unit']})")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_emg(self, msg: EMG) -> None:
        try:
            chunk = decode_emg(msg)
        except EmgDecodeError as err:
            self.get_logger().warning(f"malformed EMG chunk not republished: {err}")
            return
        self.republisher.push(chunk.samples, chunk.stamp_ns, chunk.sample_rate_hz,
                              chunk.channel_names)


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = EmgLslOutlet()
    except ValueError as exc:
        print(f"emg_lsl_outlet: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
