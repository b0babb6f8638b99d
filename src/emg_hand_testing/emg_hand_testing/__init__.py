"""Test helpers for emg_hand.

* :mod:`.domain`: one ROS_DOMAIN_ID per test process, held with a file lock.
* :mod:`.ros`: a background-spun test node, waits with timeouts for topics, services and
  action servers, and :class:`MessageCollector`.
* :mod:`.processes`: start an installed executable (as ``ros2 run`` would) and read its output.
* :mod:`.pytest_plugin`: registered through the ``pytest11`` entry point.
"""
