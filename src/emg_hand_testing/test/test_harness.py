"""The harness itself: domain isolation and waits that fail loudly instead of hanging."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from std_msgs.msg import String
from std_srvs.srv import Trigger

from emg_hand_testing.domain import MAX_DOMAIN_ID


def test_process_has_its_own_domain(ros_domain_id):
    assert os.environ["ROS_DOMAIN_ID"] == str(ros_domain_id)
    assert 1 <= ros_domain_id <= MAX_DOMAIN_ID
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


def test_concurrent_processes_get_distinct_domains(ros_domain_id):
    code = (
        "import sys, time; from emg_hand_testing.domain import acquire_domain_id;"
        "print(acquire_domain_id(), flush=True); sys.stdin.read()"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        domains = [int(p.stdout.readline()) for p in procs]  # each holds its lock meanwhile
    finally:
        for p in procs:
            p.communicate("", timeout=10)
    assert len({ros_domain_id, *domains}) == 4


def test_collector_receives_and_times_out(ros_node):
    collector = ros_node.collect(String, "harness_chatter")
    pub = ros_node.node.create_publisher(String, "harness_chatter", 10)
    ros_node.wait_for_subscribers("harness_chatter")
    for i in range(3):
        pub.publish(String(data=f"m{i}"))
    msgs = collector.wait_for(3, timeout_s=10.0)
    assert [m.data for m in msgs[:3]] == ["m0", "m1", "m2"]
    with pytest.raises(TimeoutError, match="harness_chatter"):
        collector.wait_for(10, timeout_s=0.3)


def test_service_wait_and_call(ros_node):
    ros_node.node.create_service(
        Trigger, "harness_trigger",
        lambda req, resp: (setattr(resp, "success", True), setattr(resp, "message", "ok"), resp)[2])
    client = ros_node.service_client(Trigger, "harness_trigger", timeout_s=10.0)
    response = ros_node.call(client, Trigger.Request())
    assert response.success and response.message == "ok"
    with pytest.raises(TimeoutError, match="no_such_service"):
        ros_node.service_client(Trigger, "no_such_service", timeout_s=0.3)
