"""The emg_pose node over real DDS, with a small model and a test-side EMG stream.

The node runs as the installed executable in its own process; this process publishes EMG
chunks in real time and watches hand/joint_states, hand/keypoints, /diagnostics, the
services and the calibrate action. (The driver + default-model tests live in test/.)
"""

from __future__ import annotations

import json
import signal
import struct
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from emg_hand_core.hand_model import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, KEYPOINT_NAMES
from emg_hand_testing.processes import NodeProcess, ros_args
from emg_hand_testing.ros import RosTestNode, wait_future, wait_until
from emg_interfaces.action import Calibrate
from emg_interfaces.msg import EMG, CalibrationPrompt, HandKeypoints
from emg_interfaces.srv import LoadModel, SaveModel
from emg_pose_node.checkpoint import save_checkpoint
from emg_pose_node.testing import tiny_checkpoint

RATE = 500.0
CHANNELS = 3
CHUNK = 5  # 10 ms
NS = 1_000_000_000


class EmgStream:
    """Publishes a synthetic EMG stream in real time from a thread; faults on request."""

    def __init__(self, node: RosTestNode, channels: int = CHANNELS,
                 topic: str = "emg/raw") -> None:
        self.pub = node.node.create_publisher(
            EMG, topic, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.clock = node.node.get_clock()
        self.channels = channels
        self.index = 0
        self.t0_ns = self.clock.now().nanoseconds
        self.rng = np.random.default_rng(0)
        # faults for the next chunks: nan, gap, back, wide, negstamp, maxstamp, nanrate
        self.inject: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> EmgStream:
        self.t0_ns = self.clock.now().nanoseconds - int(self.index * NS / RATE)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.publish_one()
            next_t += CHUNK / RATE
            delay = next_t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)  # real-time pacing of the stream, not synchronisation

    def publish_one(self) -> None:
        fault = self.inject.pop(0) if self.inject else ""
        channels = 8 if fault == "wide" else self.channels
        amplitude = 50e-6 * (1.5 + np.sin(2 * np.pi * 0.5 * self.index / RATE))
        data = (self.rng.standard_normal((CHUNK, channels)) * amplitude).astype(np.float32)
        if fault == "nan":
            data[1, 0] = np.nan
        if fault == "gap":
            self.index += 37
        if fault == "back":
            self.t0_ns -= 2 * NS
        msg = EMG()
        stamp = self.t0_ns + int(self.index * NS / RATE)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NS)
        if fault == "negstamp":
            msg.header.stamp.sec = -1
        if fault == "maxstamp":  # ~2e9 s: its last samples lie past what a stamp holds
            msg.header.stamp.sec, msg.header.stamp.nanosec = 2**31 - 1, 999_999_999
        msg.header.frame_id = "emg_armband"
        msg.sample_rate_hz = float("nan") if fault == "nanrate" else RATE
        msg.channel_names = [f"ch_{i + 1}" for i in range(channels)]
        msg.first_sample_index = self.index
        msg.num_samples = CHUNK
        msg.data = data.ravel().tolist()
        self.pub.publish(msg)
        self.index += CHUNK


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    path = save_checkpoint(tiny_checkpoint(CHANNELS, RATE, frontend="log_power"),
                           root / "tiny.safetensors")
    return root, path


@pytest.fixture(scope="module")
def graph(models):
    """One emg_pose process for the module, a test node and a running EMG stream."""
    models_dir, path = models
    proc = NodeProcess("emg_pose_node", "emg_pose", ros_args(params={
        "model": str(path), "models_dir": str(models_dir), "update_rate_hz": 50.0,
        "diagnostics_period_s": 0.5, "calibration_data_timeout_s": 2.0}))
    node = RosTestNode("pose_node_test")
    try:
        proc.wait_for_output(r"model .* backend", timeout_s=60)
        stream = EmgStream(node)
        wait_until(lambda: stream.pub.get_subscription_count() >= 1, 20, "emg_pose on emg/raw")
        stream.start()
        yield node, stream, proc
        stream.stop()
    finally:
        node.close()
        proc.close()


def _diag(node: RosTestNode, predicate, timeout_s: float = 10.0) -> dict[str, str]:
    collector = node.collect(DiagnosticArray, "/diagnostics")
    try:
        msgs = collector.wait_until(
            lambda ms: any(s.hardware_id == "emg_pose" and predicate(
                {kv.key: kv.value for kv in s.values}) for m in ms for s in m.status),
            timeout_s, "a matching emg_pose diagnostic")
        for m in reversed(msgs):
            for s in m.status:
                values = {kv.key: kv.value for kv in s.values}
                if s.hardware_id == "emg_pose" and predicate(values):
                    return values | {"_message": s.message, "_level": s.level}
    finally:
        node.node.destroy_subscription(collector.subscription)
    raise AssertionError("unreachable")


def test_publishes_named_finite_poses_stamped_with_emg_time(graph):
    node, stream, _ = graph
    joints = node.collect(JointState, "hand/joint_states")
    keypoints = node.collect(HandKeypoints, "hand/keypoints")
    msgs = joints.wait_for(25, timeout_s=20)
    kps = keypoints.wait_for(5, timeout_s=10)
    for m in msgs:
        assert list(m.name) == list(JOINT_NAMES)
        q = np.asarray(m.position)
        assert np.all(np.isfinite(q))
        assert np.all(q >= JOINT_LOWER - 1e-9) and np.all(q <= JOINT_UPPER + 1e-9)
    # stamped with an EMG sample's acquisition time: a whole number of sample periods
    for m in msgs:
        ns = m.header.stamp.sec * NS + m.header.stamp.nanosec - stream.t0_ns
        assert abs(ns * RATE / NS - round(ns * RATE / NS)) < 1e-3
    stamps = [m.header.stamp.sec * NS + m.header.stamp.nanosec for m in msgs]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert list(kps[0].names) == list(KEYPOINT_NAMES) and len(kps[0].positions) == 21
    assert kps[0].header.frame_id == "hand_base"
    # about update_rate_hz (50) once the window is full; tiny model: one frame per 8 samples
    t = joints.receive_times[-20:]
    assert 20.0 < (len(t) - 1) / (t[-1] - t[0]) < 80.0
    values = _diag(node, lambda v: float(v["output_rate_hz"]) > 10)
    assert values["model"].endswith("tiny.safetensors") and "p50" in values["inference_ms"]
    assert float(values["input_rate_hz"]) == pytest.approx(RATE, rel=0.3)


@pytest.mark.parametrize("fault, key", [("nan", "fault_non_finite"), ("gap", "fault_gap"),
                                        ("back", "fault_time_backwards"),
                                        ("wide", "fault_channel_mismatch"),
                                        ("negstamp", "fault_bad_stamp"),
                                        ("maxstamp", "fault_bad_stamp"),
                                        ("nanrate", "fault_rate_mismatch")])
def test_stream_faults_are_reported_and_survived(graph, fault, key):
    """(header.stamp.sec = -1 once crashed the node; a NaN rate failed every step.)"""
    node, stream, proc = graph
    before = int(_diag(node, lambda v: True)[key])
    joints = node.collect(JointState, "hand/joint_states")
    stream.inject.append(fault)
    values = _diag(node, lambda v: int(v[key]) > before)
    assert values["last_problem"]
    joints.clear()
    joints.wait_for(10, timeout_s=15)  # publishing resumes
    assert proc.process.poll() is None


def test_no_pose_published_from_a_nan_chunk(graph):
    node, stream, _ = graph
    joints = node.collect(JointState, "hand/joint_states")
    joints.wait_for(3, timeout_s=10)
    nan_index = stream.index  # the next chunk carries the NaN
    stream.inject.append("nan")
    _diag(node, lambda v: int(v["fault_non_finite"]) >= 1)
    joints.clear()
    msgs = joints.wait_for(5, timeout_s=10)
    # the first pose after the NaN chunk uses only samples acquired after it
    after = [m for m in msgs if m.header.stamp.sec * NS + m.header.stamp.nanosec
             > stream.t0_ns + int(nan_index * NS / RATE)]
    nan_end_ns = stream.t0_ns + int((nan_index + CHUNK) * NS / RATE)
    window_ns = int(56 * NS / RATE)  # the tiny model's window
    assert after and all(m.header.stamp.sec * NS + m.header.stamp.nanosec >= nan_end_ns
                         + window_ns - NS // 100 for m in after[:1])


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a b", "..", "x/y"])
def test_bad_model_names_are_refused(graph, name):
    node, _, _ = graph
    save = node.service_client(SaveModel, "/emg_pose/save_model")
    load = node.service_client(LoadModel, "/emg_pose/load_model")
    r = node.call(save, SaveModel.Request(name=name))
    assert not r.success and "model name" in r.message
    r = node.call(load, LoadModel.Request(name=name))
    assert not r.success and "model name" in r.message


def test_save_load_and_missing_model(graph, models):
    node, _, _ = graph
    models_dir, _ = models
    save = node.service_client(SaveModel, "/emg_pose/save_model")
    load = node.service_client(LoadModel, "/emg_pose/load_model")
    r = node.call(save, SaveModel.Request(name="wearer_a"))
    assert r.success and (models_dir / "wearer_a.safetensors").is_file(), r.message
    r = node.call(save, SaveModel.Request(name="wearer_a"))
    assert not r.success and "overwrite" in r.message
    r = node.call(load, LoadModel.Request(name="wearer_a"))
    assert r.success, r.message
    # a name with the extension is still a name in models_dir, never a path relative to
    # the node's working directory
    r = node.call(load, LoadModel.Request(name="wearer_a.safetensors"))
    assert r.success and r.path == str(models_dir / "wearer_a.safetensors"), r.message
    (models_dir / "broken.safetensors").write_bytes(b"\x00" * 100)
    r = node.call(load, LoadModel.Request(name="broken"))
    assert not r.success and "kept" in r.message
    r = node.call(load, LoadModel.Request(name="nobody"))
    assert not r.success and "no model 'nobody'" in r.message
    # well-formed, but a window of 1e9 samples (once: 51 GB allocated, the node killed)
    huge = json.loads(json.dumps(_description(models_dir / "wearer_a.safetensors")))
    huge["network"]["window"] = 10**9
    _rewrite_description(models_dir / "wearer_a.safetensors", models_dir / "huge.safetensors",
                         huge)
    r = node.call(load, LoadModel.Request(name="huge"), timeout_s=30)
    assert not r.success and "kept" in r.message and "window" in r.message, r.message
    joints = node.collect(JointState, "hand/joint_states")
    joints.wait_for(5, timeout_s=10)  # still running


def _description(path) -> dict:
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(json.loads(raw[8:8 + n])["__metadata__"]["checkpoint"])


def _rewrite_description(src, dst, doc) -> None:
    """A copy of a checkpoint with another description (the file stays well-formed)."""
    raw = src.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header["__metadata__"]["checkpoint"] = json.dumps(doc)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    dst.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def _send_goal(node, client, goal, timeout_s=10.0):
    return wait_future(client.send_goal_async(goal), timeout_s, "goal response")


def test_cancel_keeps_old_model_and_second_goal_is_rejected(graph):
    node, _, _ = graph
    client = node.action_client(Calibrate, "/emg_pose/calibrate")
    first = _send_goal(node, client, Calibrate.Goal(mode=Calibrate.Goal.MODE_GUIDED,
                                                    poses=["open", "fist"], hold_s=2.0))
    assert first.accepted
    second = _send_goal(node, client, Calibrate.Goal(mode=Calibrate.Goal.MODE_GUIDED))
    assert not second.accepted
    prompts = node.collect(CalibrationPrompt, "calibration/prompt")
    prompts.wait_for(2, timeout_s=10)
    joints = node.collect(JointState, "hand/joint_states")
    wait_future(first.cancel_goal_async(), 10, "cancel response")
    result = wait_future(first.get_result_async(), 20, "calibration result")
    assert result.status == 5  # GoalStatus.STATUS_CANCELED
    assert not result.result.success and "cancel" in result.result.message
    joints.wait_for(10, timeout_s=10)
    values = _diag(node, lambda v: v["calibrating"] == "false")
    assert values["model"] != ""
    again = _send_goal(node, client, Calibrate.Goal(mode=Calibrate.Goal.MODE_REFERENCE,
                                                    duration_s=0.5))
    assert again.accepted  # a new goal is accepted once the first ended
    result = wait_future(again.get_result_async(), 20, "calibration result")
    # no reference publisher in this graph: ends cleanly, old model kept
    assert not result.result.success and "reference" in result.result.message


def test_guided_calibration_runs_end_to_end(graph):
    node, _, _ = graph
    client = node.action_client(Calibrate, "/emg_pose/calibrate")
    prompts = node.collect(CalibrationPrompt, "calibration/prompt")
    joints = node.collect(JointState, "hand/joint_states")
    feedback = []
    goal = Calibrate.Goal(mode=Calibrate.Goal.MODE_GUIDED, poses=["open", "fist"], hold_s=1.5,
                          rest_s=0.5, transition_s=0.3, repetitions=2, epochs=3)
    handle = wait_future(client.send_goal_async(goal, feedback_callback=feedback.append), 10,
                         "goal response")
    assert handle.accepted
    result = wait_future(handle.get_result_async(), 60, "calibration result").result
    assert result.success, result.message
    assert result.error_before_rad > 0 and result.error_after_rad > 0
    assert result.model_swapped == (result.error_after_rad < result.error_before_rad)
    assert result.seconds_used > 1.0
    names = {p.pose_name for p in prompts.messages if p.phase == CalibrationPrompt.PHASE_HOLD}
    assert names == {"open", "fist"}
    # feedback and result travel separately: the last feedback may arrive after the result
    wait_until(lambda: any(f.feedback.epoch == 13 for f in feedback), 10, "the last epoch")
    phases = [f.feedback.phase for f in feedback]
    assert Calibrate.Feedback.PHASE_RECORDING in phases
    assert Calibrate.Feedback.PHASE_TRAINING in phases
    assert {f.feedback.epoch for f in feedback} >= set(range(1, 14))  # 10 adapter + 3 head
    # poses kept flowing through recording and training
    t = np.asarray(joints.receive_times)
    assert len(t) > 50 and np.max(np.diff(t)) < 1.0


def test_reset_model_without_a_shipped_default_keeps_running(graph, models):
    node, _, _ = graph
    reset = node.service_client(Trigger, "/emg_pose/reset_model")
    r = node.call(reset, Trigger.Request(), timeout_s=30)
    if not r.success:  # no default model installed in this build: refused, still running
        assert "kept" in r.message
    joints = node.collect(JointState, "hand/joint_states")
    joints.wait_for(5, timeout_s=10)


def test_bad_parameters_are_refused(node_process, models):
    _, path = models
    proc = node_process("emg_pose_node", "emg_pose", ros_args(params={
        "model": str(path), "update_rate_hz": 500.0}))
    assert proc.wait(timeout_s=30) == 2
    assert "update_rate_hz=500.0 refused: must be within [1, 200] Hz" in proc.output
    proc = node_process("emg_pose_node", "emg_pose", ros_args(params={
        "model": str(path), "calibration_epochs": 2.5}))
    assert proc.wait(timeout_s=30) == 2
    assert "calibration_epochs=2.5 refused: expected an integer" in proc.output
    assert "Traceback" not in proc.output


def test_an_integer_is_taken_for_a_double(node_process, models, ros_node):
    """-p update_rate_hz:=100 (an int for a double) runs, as it does for the driver."""
    _, path = models
    proc = node_process("emg_pose_node", "emg_pose", ros_args(params={
        "model": str(path), "update_rate_hz": 100}))
    proc.wait_for_output("one pose per", timeout_s=60)
    assert proc.process.poll() is None


def test_runs_and_reports_without_a_model(ros_node, node_process, tmp_path):
    proc = node_process("emg_pose_node", "emg_pose", ros_args(params={
        "model": str(tmp_path / "missing.safetensors"), "diagnostics_period_s": 0.5}))
    proc.wait_for_output("no model loaded", timeout_s=60)
    stream = EmgStream(ros_node)
    wait_until(lambda: stream.pub.get_subscription_count() >= 1, 20, "emg_pose on emg/raw")
    for _ in range(10):
        stream.publish_one()
    values = _diag(ros_node, lambda v: int(v["chunks_without_model"]) > 0)
    assert values["_message"] == "no model loaded"
    assert values["_level"] == DiagnosticStatus.ERROR
    assert proc.process.poll() is None


def test_sigint_shutdown_is_quiet(ros_node, node_process, models):
    """Ctrl-C under ros2 launch while publishing: the terminal signals the node, then launch
    does. Exit 0, and nothing published or fired on a dead context (once: 'Failed to
    publish: publisher's context is invalid' from the inference thread)."""
    _, path = models
    proc = node_process("emg_pose_node", "emg_pose", ros_args(params={
        "model": str(path), "update_rate_hz": 200.0, "diagnostics_period_s": 0.05},
        remaps={"__ns": "/quiet"}))  # apart from the module's graph
    proc.wait_for_output("one pose per", timeout_s=60)
    stream = EmgStream(ros_node, topic="/quiet/emg/raw")
    joints = ros_node.collect(JointState, "/quiet/hand/joint_states")
    wait_until(lambda: stream.pub.get_subscription_count() >= 1, 20, "emg_pose on emg/raw")
    stream.start()
    try:
        joints.wait_for(20, timeout_s=20)
        proc.process.send_signal(signal.SIGINT)  # the terminal's Ctrl-C
        time.sleep(0.05)  # (the gap between the two signals, not a synchronisation)
        proc.process.send_signal(signal.SIGINT)  # launch passing it on
        assert proc.wait(timeout_s=20) == 0
    finally:
        stream.stop()
    for text in ("context is invalid", "Failed to publish", "Traceback", "failed"):
        assert text not in proc.output, proc.output[-3000:]
