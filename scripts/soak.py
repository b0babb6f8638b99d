#!/usr/bin/env python3
"""Soak: emg_driver -> emg_pose -> hand_controller over DDS for minutes, faults injected at
random; at the end every node must be alive, every fault counted where it belongs, no
sample lost that was not counted, and memory flat. Not part of `make test`.

    make soak                                   # SOAK_SECONDS=600 (10 minutes)
    make soak SOAK_SECONDS=120
    scripts/with-env python scripts/soak.py --smoke          # ~40 s: every fault a few times
    scripts/with-env python scripts/soak.py --seconds 600 --json soak.json

The graph (installed executables; real DDS in a ROS domain of its own):

    armband (this script, on a pty) --binary frames--> emg_driver --driver/emg/raw--> relay
    (this script) --emg/raw--> emg_pose --hand/joint_states--> hand_controller --> commands

The armband streams the simulated wearer (8 channels, 500 Hz, int16 frames of 5 samples).
The relay checks every sample the driver publishes against what the armband wrote, then
passes the chunk on to the pose node. Faults, one every --fault-period-s on average (at
least 1 s apart), every kind once per shuffled round:

  armband     garbage bytes between frames; a frame resent byte for byte; unplugged for
              0.5-3 s (the pty closed while the device keeps sampling, then a new pty at
              the same path)
  relay       a NaN chunk (its samples replaced); a stamp jump (one chunk 2 s ahead)
  emg_pose    a model reload through ~/load_model; a calibration goal cancelled 0.5-3 s in
  controller  a JointState with NaN, or with 19 joints, on hand/joint_states

Checks (exit status 1 when one fails): every node alive; the driver's duplicate_samples,
discarded_bytes, reconnects, dropped_samples (0), stale_reopens (0) equal to what was
injected; every sample written while plugged in published exactly once and in order, and
each unplug's loss shown as a stream-index gap within a few samples of the true loss; the
pose node's fault_non_finite / fault_time_backwards / fault_gap equal to the NaN chunks,
stamp jumps and gaps relayed; every reload and every cancel answered as asked; the
controller's rejected_nonfinite / rejected_length equal to the bad joint states sent, every
command finite; the resident memory (psutil RSS) of each node flat after the warm-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RATE_HZ = 500.0
CHANNELS = 8
FRAME_SAMPLES = 5  # samples per binary frame: 100 frames/s
FRAME_BYTES = 10 + FRAME_SAMPLES * CHANNELS * 2 + 2  # header, int16 payload, CRC
SCALE_V_PER_UNIT = 1e-7  # int16 units -> volts (3.3 mV full scale)
DRIVER_TOPIC = "driver/emg/raw"
JUMP_NS = 2_000_000_000  # a stamp jump: one chunk 2 s ahead
MAX_LOSS_ERROR = 25  # samples (50 ms): the driver's estimate of an unplug's loss vs the truth
MEMORY_GROWTH_MB = 20.0  # allowed RSS growth of a node after the warm-up
FAULTS = ("garbage", "resend", "unplug", "nan_chunk", "stamp_jump", "model_reload",
          "calibration_cancel", "bad_joint_state")


# --- the armband on a pty ------------------------------------------------------------------

class Armband:
    """The armband: a process of its own (like real hardware, its timing does not depend on
    this script's threads) that writes the simulated wearer as binary frames at the real
    rate on a pty and injects the armband faults it is asked for, between two frames.

    Every sample generated is logged in memory shared with this process (device counter ->
    int16 row), with whether it was written (not while unplugged)."""

    def __init__(self, directory: Path, seconds: float, seed: int) -> None:
        import mmap
        import multiprocessing as mp

        ctx = mp.get_context("fork")  # before any ROS thread exists: the child shares the log
        capacity = int((seconds + 900) * RATE_HZ)
        self._rows_map = mmap.mmap(-1, capacity * CHANNELS * 2)
        self._written_map = mmap.mmap(-1, capacity)
        self.rows = np.frombuffer(self._rows_map, dtype=np.int16).reshape(capacity, CHANNELS)
        self.written = np.frombuffer(self._written_map, dtype=np.bool_)
        self._counter = ctx.Value("q", 0, lock=False)  # samples generated (the next counter)
        self._requests = ctx.Queue()
        self._replies = ctx.Queue()
        self._stop = ctx.Event()
        self.port = str(directory / "ttyEMG0")
        self.garbage_bytes = 0
        self.resent_samples = 0
        self.unplugs: list[tuple[int, int]] = []  # (first counter lost, first counter after)
        self.process = ctx.Process(target=self._main, args=(directory, seed), name="armband",
                                   daemon=True)
        self.process.start()
        self._reply("ready", 30.0)

    @property
    def counter(self) -> int:
        return int(self._counter.value)

    # --- in the child process -------------------------------------------------------------
    def _main(self, directory: Path, seed: int) -> None:
        try:
            self._child(directory, seed)
        except Exception as exc:  # reported to the parent, which fails the run
            self._replies.put(("error", f"armband process failed: {exc!r}"))

    def _child(self, directory: Path, seed: int) -> None:
        from emg_driver.emulators.pty import PtyPort
        from emg_driver.protocols import encode_frame
        from emg_driver.sim import ArmbandSimulator, SimConfig

        sim = ArmbandSimulator(SimConfig(sample_rate_hz=RATE_HZ, num_channels=CHANNELS),
                               seed=seed)
        rng = np.random.default_rng(seed)
        device = PtyPort(directory)
        self._replies.put(("ready",))

        def generate(n: int) -> np.ndarray:
            emg, _ = sim.generate(n)
            raw = np.clip(np.rint(emg / SCALE_V_PER_UNIT), -32768, 32767).astype(np.int16)
            c = self.counter
            self.rows[c:c + n] = raw
            self._counter.value = c + n
            return raw

        period = FRAME_SAMPLES / RATE_HZ
        t0 = time.monotonic()
        frames = 0
        last_frame = b""
        while not self._stop.is_set():
            due = int((time.monotonic() - t0) / period) + 1
            while frames < due:  # behind (a busy machine): catch up in a burst
                counter = self.counter
                raw = generate(FRAME_SAMPLES)
                last_frame = encode_frame(raw.astype(np.float64), counter, "int16", 1.0)
                device.write(last_frame)
                self.written[counter:counter + FRAME_SAMPLES] = True
                frames += 1
            try:
                kind, arg = self._requests.get_nowait()
            except queue.Empty:
                time.sleep(max(0.0, t0 + due * period - time.monotonic()))  # pacing
                continue
            reply: tuple = (kind,)
            if kind == "garbage":
                device.write(rng.integers(0, 256, int(arg), dtype=np.uint8).tobytes())
            elif kind == "resend":
                device.write(last_frame)
            elif kind == "unplug":
                first_lost = self.counter
                device.unplug()
                time.sleep(arg)  # the device keeps sampling; nothing reaches the host
                lost_until = int((time.monotonic() - t0) / period) * FRAME_SAMPLES
                if lost_until > self.counter:
                    generate(lost_until - self.counter)
                frames = self.counter // FRAME_SAMPLES
                device.replug()
                reply = (kind, first_lost, self.counter)
            self._replies.put(reply)
        device.close()

    # --- in this process ------------------------------------------------------------------
    def _reply(self, kind: str, timeout_s: float) -> tuple:
        try:
            reply = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"the armband did not answer {kind!r}") from None
        if reply[0] == "error":
            raise RuntimeError(reply[1])
        if reply[0] != kind:
            raise RuntimeError(f"the armband answered {reply[0]!r} to {kind!r}")
        return reply

    def ask(self, kind: str, arg: float = 0.0) -> None:
        """Inject an armband fault; returns once it is done."""
        self._requests.put((kind, arg))
        reply = self._reply(kind, 10.0 + arg)
        if kind == "garbage":
            self.garbage_bytes += int(arg)
        elif kind == "resend":
            self.resent_samples += FRAME_SAMPLES
        elif kind == "unplug":
            self.unplugs.append(reply[1:])

    @property
    def error(self) -> str:
        if self.process.is_alive() or self._stop.is_set():
            return ""
        return f"the armband process ended (exit code {self.process.exitcode})"

    def stop(self) -> None:
        self._stop.set()
        self.process.join(5.0)
        if self.process.is_alive():
            self.process.kill()


# --- the relay: check the driver's samples, inject stream faults, feed the pose node ----------

@dataclass
class RelayStats:
    chunks: int = 0
    samples: int = 0
    mismatches: int = 0  # samples that are not what was written there
    backwards: int = 0  # stream index going back (a sample published twice)
    nan_chunks: int = 0
    stamp_jumps: int = 0
    gaps: list[dict] = field(default_factory=list)  # each stream-index gap: counted vs true
    expected_pose_faults: dict = field(default_factory=lambda: {
        "fault_non_finite": 0, "fault_time_backwards": 0, "fault_gap": 0,
        "fault_index_backwards": 0})
    first_counter: int = -1  # device counter of the first sample published
    first_error: str = ""


class Relay:
    """driver/emg/raw -> checks -> emg/raw. ``inject`` arms one fault for the next chunk."""

    def __init__(self, node, armband: Armband) -> None:
        from emg_driver.driver_node import emg_qos
        from emg_hand_core.emg_codec import rclpy_types
        from emg_interfaces.msg import EMG

        self.armband = armband
        self.stats = RelayStats()
        self.types = rclpy_types()
        self.lock = threading.Lock()
        self._armed: tuple[str, threading.Event] | None = None
        self._since_fault = 0
        self._last_index: int | None = None  # stream index of the last sample relayed
        self._last_counter: int | None = None  # device counter of that sample
        self.resumed = threading.Event()
        # the pose node's stream guard, as documented (stream_guard.py), to predict its counts
        self._next: int | None = None
        self._last_stamp: int | None = None
        self.pub = node.create_publisher(EMG, "emg/raw", emg_qos(100))
        self.sub = node.create_subscription(EMG, DRIVER_TOPIC, self._on_chunk, emg_qos(1000))

    def inject(self, kind: str, timeout_s: float = 10.0) -> None:
        done = threading.Event()
        with self.lock:
            self._armed = (kind, done)
        if not done.wait(timeout_s):
            raise TimeoutError(f"no chunk came through the relay to carry {kind}")

    def _error(self, text: str) -> None:
        if not self.stats.first_error:
            self.stats.first_error = text

    def _locate(self, rows: np.ndarray, lo: int) -> int | None:
        """Device counter of ``rows[0]`` (rows written from counter ``lo`` on), or None."""
        log = self.armband.rows
        hi = self.armband.counter
        n = len(rows)
        for c in np.flatnonzero(np.all(log[lo:hi] == rows[0], axis=1)) + lo:
            if c + n <= hi and np.array_equal(log[c:c + n], rows):
                return int(c)
        return None

    def _on_chunk(self, msg) -> None:
        from emg_hand_core.emg_codec import decode_emg, encode_emg

        chunk = decode_emg(msg)
        first, n = chunk.first_sample_index, len(chunk.samples)
        rows = np.rint(chunk.samples / SCALE_V_PER_UNIT).astype(np.int16)
        st = self.stats
        st.chunks += 1
        st.samples += n
        # which device samples are these?
        if self._last_index is not None and first <= self._last_index:
            st.backwards += 1
            self._error(f"stream index {first} after {self._last_index}")
        if self._last_index is not None and first == self._last_index + 1:
            c0 = self._last_counter + 1
            if not np.array_equal(self.armband.rows[c0:c0 + n], rows):
                st.mismatches += n
                self._error(f"chunk at index {first}: samples are not device samples "
                            f"{c0}..{c0 + n - 1}")
        else:  # the first chunk, or a gap: find where the device was
            lo = 0 if self._last_counter is None else self._last_counter + 1
            c0 = self._locate(rows, lo)
            if c0 is None:
                st.mismatches += n
                self._error(f"chunk at index {first}: not found in what the armband wrote")
                c0 = lo
            elif self._last_index is None:
                st.first_counter = c0
            else:
                st.gaps.append({"index": first, "counted": first - self._last_index - 1,
                                "true": c0 - self._last_counter - 1,
                                "written_lost": int(self.armband.written[
                                    self._last_counter + 1:c0].sum())})
            self.resumed.set()
        self._last_index, self._last_counter = first + n - 1, c0 + n - 1
        # a fault for the pose node?
        samples, stamp_ns = chunk.samples, chunk.stamp_ns
        armed = None
        self._since_fault += 1
        with self.lock:
            if self._armed is not None and self._since_fault > 3:
                armed, self._armed = self._armed, None
        if armed is not None:
            self._since_fault = 0
            if armed[0] == "nan_chunk":
                samples = np.full_like(samples, np.nan)
                st.nan_chunks += 1
            else:
                stamp_ns += JUMP_NS
                st.stamp_jumps += 1
        self._expect(first, n, stamp_ns, not np.all(np.isfinite(samples)))
        self.pub.publish(encode_emg(self.types, samples, first, stamp_ns, chunk.sample_rate_hz,
                                    chunk.channel_names, chunk.frame_id))
        if armed is not None:
            armed[1].set()

    def _expect(self, first: int, n: int, stamp_ns: int, nonfinite: bool) -> None:
        """What the pose node's EmgStreamGuard counts for this chunk (its documented order:
        non-finite first, then time going backwards, then an index gap)."""
        e = self.stats.expected_pose_faults
        if nonfinite:
            e["fault_non_finite"] += 1
            self._next = self._last_stamp = None
            return
        if self._last_stamp is not None and stamp_ns < self._last_stamp:
            e["fault_time_backwards"] += 1
        elif self._next is not None and first != self._next:
            e["fault_gap" if first > self._next else "fault_index_backwards"] += 1
        self._next, self._last_stamp = first + n, stamp_ns


# --- the run -----------------------------------------------------------------------------------

@dataclass
class Injected:
    garbage: int = 0
    garbage_bytes: int = 0
    resend: int = 0
    unplug: int = 0
    nan_chunk: int = 0
    stamp_jump: int = 0
    model_reload: int = 0
    model_reload_ok: int = 0
    calibration_cancel: int = 0
    calibration_cancelled: int = 0
    bad_joint_state_nan: int = 0
    bad_joint_state_short: int = 0


def _diag_values(status) -> dict:
    values = {kv.key: kv.value for kv in status.values}
    level = status.level
    values["level"] = int.from_bytes(level, "little") if isinstance(level, bytes) else int(level)
    values["message"] = status.message
    return values


class Soak:
    def __init__(self, args) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.injected = Injected()
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.memory: dict[str, list[tuple[float, float]]] = {}
        self.diag: dict[str, dict] = {}
        self.commands = 0
        self.bad_commands = 0
        self.poses = 0

    # --- set-up ---------------------------------------------------------------------------
    def start(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        from emg_hand_testing.processes import NodeProcess, ros_args
        from emg_hand_testing.ros import RosTestNode

        self.tmp = Path(tempfile.mkdtemp(prefix="emg_soak_"))
        # first (a fork), and streaming at once: a silent port would be reopened as stale
        self.armband = Armband(self.tmp, self.args.seconds, self.args.seed)
        logs = self.tmp
        self.procs = {
            "emg_driver": NodeProcess("emg_driver", "emg_driver", ros_args(
                {"source": "serial", "port": self.armband.port, "protocol": "binary",
                 "sample_rate_hz": RATE_HZ, "num_channels": CHANNELS, "chunk_ms": 10.0,
                 "scale_v_per_unit": SCALE_V_PER_UNIT, "baud_rate": 1000000},
                remaps={"emg/raw": DRIVER_TOPIC}), log_path=logs / "emg_driver.log"),
            "emg_pose": NodeProcess("emg_pose_node", "emg_pose", ros_args(
                {"model": "default", "models_dir": str(self.tmp / "models"),
                 "update_rate_hz": 50.0}), log_path=logs / "emg_pose.log"),
            "hand_controller": NodeProcess("hand_controller", "hand_controller", ros_args(
                {"profile": "prosthetic_6", "output": "forward_position",
                 "start_enabled": True}), log_path=logs / "hand_controller.log"),
        }
        self.ros = RosTestNode("soak")
        node = self.ros.node
        self.relay = Relay(node, self.armband)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 100)
        node.create_subscription(Float64MultiArray, "forward_position_controller/commands",
                                 self._on_command, 100)
        node.create_subscription(JointState, "hand/joint_states", self._on_pose, 100)
        self.bad_pub = node.create_publisher(JointState, "hand/joint_states", 10)

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            self.diag[status.name.split(":")[0]] = _diag_values(status)

    def _on_command(self, msg) -> None:
        self.commands += 1
        if not all(math.isfinite(v) for v in msg.data):
            self.bad_commands += 1

    def _on_pose(self, msg) -> None:
        if len(msg.position) == 20 and all(math.isfinite(v) for v in msg.position):
            self.poses += 1

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        """Until poses flow through the whole graph and the controller commands."""
        from emg_hand_testing.ros import wait_until

        def ready() -> bool:
            self.check_alive()
            return (self.poses > 20 and self.commands > 20 and self.relay.stats.chunks > 50
                    and {"emg_driver", "emg_pose", "hand_controller"} <= set(self.diag))

        wait_until(ready, timeout_s, "poses and commands flowing through the graph")
        # bytes the first open cut out of a frame: discarded before any fault
        self.discarded_at_start = int(self.diag["emg_driver"]["discarded_bytes"])
        from emg_interfaces.action import Calibrate
        from emg_interfaces.srv import LoadModel

        self.load = self.ros.service_client(LoadModel, "/emg_pose/load_model", 30.0)
        self.calibrate = self.ros.action_client(Calibrate, "/emg_pose/calibrate", 30.0)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if not proc.running():
                raise RuntimeError(f"{name} exited with {proc.process.returncode}:\n"
                                   f"{proc.tail(30)}")
        if self.armband.error:
            raise RuntimeError(self.armband.error)

    def sample_memory(self, t: float) -> None:
        import psutil

        for name, proc in self.procs.items():
            try:
                rss = psutil.Process(proc.process.pid).memory_info().rss / 2**20
            except psutil.Error:
                continue
            self.memory.setdefault(name, []).append((t, rss))

    # --- faults ---------------------------------------------------------------------------
    def inject(self, kind: str) -> None:
        inj = self.injected
        if kind == "garbage":
            n = self.rng.randint(10, 300)
            self.armband.ask("garbage", n)
            inj.garbage += 1
            inj.garbage_bytes += n
        elif kind == "resend":
            self.armband.ask("resend")
            inj.resend += 1
        elif kind == "unplug":
            self.relay.resumed.clear()
            self.armband.ask("unplug", self.rng.uniform(0.5, 3.0))
            inj.unplug += 1
            if not self.relay.resumed.wait(15.0):
                raise RuntimeError("no data came back within 15 s of a replug")
        elif kind in ("nan_chunk", "stamp_jump"):
            self.relay.inject(kind)
            setattr(inj, kind, getattr(inj, kind) + 1)
        elif kind == "model_reload":
            from emg_interfaces.srv import LoadModel

            inj.model_reload += 1
            response = self.ros.call(self.load, LoadModel.Request(name="default"), 60.0)
            inj.model_reload_ok += bool(response.success)
            if not response.success:
                self.notes.append(f"reload refused: {response.message}")
        elif kind == "calibration_cancel":
            self._cancel_a_calibration()
        elif kind == "bad_joint_state":
            self._bad_joint_state()

    def _cancel_a_calibration(self) -> None:
        from action_msgs.msg import GoalStatus

        from emg_hand_testing.ros import wait_future
        from emg_interfaces.action import Calibrate

        self.injected.calibration_cancel += 1
        goal = Calibrate.Goal(mode=Calibrate.Goal.MODE_GUIDED)
        handle = wait_future(self.calibrate.send_goal_async(goal), 30.0, "goal response")
        if not handle.accepted:
            self.notes.append("calibration goal rejected")
            return
        time.sleep(self.rng.uniform(0.5, 3.0))  # the fault's timing, not a wait for a state
        wait_future(handle.cancel_goal_async(), 30.0, "cancel response")
        result = wait_future(handle.get_result_async(), 60.0, "calibration result")
        self.injected.calibration_cancelled += result.status == GoalStatus.STATUS_CANCELED

    def _bad_joint_state(self) -> None:
        from sensor_msgs.msg import JointState

        from emg_hand_core.hand_model import JOINT_NAMES

        msg = JointState()
        if self.rng.random() < 0.5:
            msg.name = list(JOINT_NAMES)
            msg.position = [0.1] * 19 + [math.nan]
            self.injected.bad_joint_state_nan += 1
        else:
            msg.name = list(JOINT_NAMES[:19])
            msg.position = [0.1] * 19
            self.injected.bad_joint_state_short += 1
        self.bad_pub.publish(msg)

    def run(self) -> None:
        """Inject faults for --seconds, sampling memory; then let the stream drain."""
        t0 = time.monotonic()
        end = t0 + self.args.seconds
        bag: list[str] = []
        next_fault = t0 + 2.0
        next_memory = t0
        last_report = t0
        while time.monotonic() < end:
            now = time.monotonic()
            self.check_alive()
            if now >= next_memory:
                self.sample_memory(now - t0)
                next_memory = now + 5.0
            if now >= next_fault:
                if not bag:
                    bag = list(FAULTS)
                    self.rng.shuffle(bag)
                self.inject(bag.pop())
                gap = self.rng.expovariate(1.0 / self.args.fault_period_s)
                next_fault = time.monotonic() + max(1.0, gap)
            if now - last_report >= 60.0:
                last_report = now
                print(f"soak: {now - t0:5.0f} s, {self.relay.stats.samples} samples, "
                      f"{self.poses} poses, {self.commands} commands, faults "
                      f"{self.fault_count()}", flush=True)
            time.sleep(0.05)
        self.sample_memory(time.monotonic() - t0)

    def fault_count(self) -> int:
        i = self.injected
        return (i.garbage + i.resend + i.unplug + i.nan_chunk + i.stamp_jump + i.model_reload
                + i.calibration_cancel + i.bad_joint_state_nan + i.bad_joint_state_short)

    def finish(self) -> dict:
        """Stop the armband, let the last chunks and statuses arrive, collect the figures."""
        from emg_hand_testing.ros import wait_until

        self.check_alive()
        self.armband.stop()
        written = int(self.armband.written.sum())
        # the last frames written reach the relay, and a status after them reaches us
        wait_until(lambda: self.relay._last_counter is not None and self.relay._last_counter
                   >= int(np.flatnonzero(self.armband.written)[-1]) - FRAME_SAMPLES * 4,
                   20.0, "the last samples through the driver")
        self.diag.clear()
        wait_until(lambda: {"emg_driver", "emg_pose", "hand_controller"} <= set(self.diag),
                   10.0, "a last /diagnostics status of every node")
        self.check_alive()
        return {"written_samples": written}

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.close()
        self.ros.close()
        self.armband.stop()

    # --- checks -----------------------------------------------------------------------------
    def expect(self, what: str, got, want) -> None:
        ok = got == want
        print(f"  {'ok  ' if ok else 'FAIL'} {what}: {got}" + ("" if ok else f" (want {want})"))
        if not ok:
            self.failures.append(f"{what}: {got}, want {want}")

    def check(self, figures: dict) -> dict:
        inj, rs, arm = self.injected, self.relay.stats, self.armband
        d, p, c = self.diag["emg_driver"], self.diag["emg_pose"], self.diag["hand_controller"]
        print("emg_driver")
        self.expect("duplicate_samples = samples resent", int(d["duplicate_samples"]),
                    arm.resent_samples)
        # every garbage byte, plus at most the part of one frame each reopen cut off (the
        # port's open drops what was waiting, possibly the start of a frame)
        cut = int(d["discarded_bytes"]) - self.discarded_at_start - arm.garbage_bytes
        self.expect(f"discarded_bytes = garbage bytes + frame parts cut by the reopens ({cut} "
                    f"bytes, at most {FRAME_BYTES - 1} per reopen)",
                    0 <= cut <= inj.unplug * (FRAME_BYTES - 1), True)
        print(f"  info crc_errors {d['crc_errors']}, header_errors {d['header_errors']} "
              "(random garbage holds a sync pattern about once per 64 kB)")
        self.expect("reconnects = unplugs", int(d["reconnects"]), inj.unplug)
        self.expect("dropped_samples", int(d["dropped_samples"]), 0)
        self.expect("counter_resets", int(d["counter_resets"]), 0)
        self.expect("stale_reopens", int(d["stale_reopens"]), 0)
        self.expect("internal stream-index errors", rs.backwards, 0)
        print("samples")
        self.expect("samples that differ from what was written", rs.mismatches, 0)
        gaps = rs.gaps
        counted = sum(g["counted"] for g in gaps)
        true = sum(g["true"] for g in gaps)
        errors = [g["counted"] - g["true"] for g in gaps]
        self.expect("stream gaps = unplugs", len(gaps), inj.unplug)
        self.expect("driver's samples_lost_disconnected = index gaps",
                    int(d["samples_lost_disconnected"]), counted)
        worst = max((abs(e) for e in errors), default=0)
        self.expect(f"each unplug's counted loss within {MAX_LOSS_ERROR} samples of the true "
                    f"loss (worst {worst})", worst <= MAX_LOSS_ERROR, True)
        published = rs.samples
        # from the first sample published to the last: written = published + lost in gaps
        span = arm.written[rs.first_counter:self.relay._last_counter + 1]
        unaccounted = int(span.sum()) - published - sum(g["written_lost"] for g in gaps)
        self.expect("samples written while plugged in and never published (outside the "
                    "unplugs' gaps)", unaccounted, 0)
        print("emg_pose")
        for key, want in rs.expected_pose_faults.items():
            self.expect(f"{key} (relayed: {want})", int(p[key]), want)
        self.expect("NaN chunks relayed = injected", rs.nan_chunks, inj.nan_chunk)
        self.expect("stamp jumps relayed = injected", rs.stamp_jumps, inj.stamp_jump)
        self.expect("fault_channel_mismatch + fault_rate_mismatch + malformed_chunks",
                    int(p["fault_channel_mismatch"]) + int(p["fault_rate_mismatch"])
                    + int(p["malformed_chunks"]), 0)
        self.expect("model reloads answered success", inj.model_reload_ok, inj.model_reload)
        self.expect("calibration goals ended cancelled", inj.calibration_cancelled,
                    inj.calibration_cancel)
        self.expect("calibrating at the end", p["calibrating"], "false")
        print("hand_controller")
        self.expect("rejected_nonfinite = NaN joint states sent", int(c["rejected_nonfinite"]),
                    inj.bad_joint_state_nan)
        self.expect("rejected_length = short joint states sent", int(c["rejected_length"]),
                    inj.bad_joint_state_short)
        self.expect("non-finite commands", self.bad_commands, 0)
        self.expect("enabled", c["enabled"], "True")
        print("memory (RSS after the warm-up -> end)")
        memory = {}
        warm = min(60.0, 0.2 * self.args.seconds)
        for name, series in self.memory.items():
            t = np.array([s[0] for s in series])
            rss = np.array([s[1] for s in series])
            after = rss[t >= warm]
            if len(after) < 2:
                continue
            k = max(1, len(after) // 10)
            start, end = float(np.median(after[:k])), float(np.median(after[-k:]))
            slope = float(np.polyfit(t[t >= warm] / 60.0, after, 1)[0]) if len(after) > 2 else 0
            memory[name] = {"start_mb": round(start, 1), "end_mb": round(end, 1),
                            "peak_mb": round(float(rss.max()), 1),
                            "slope_mb_per_min": round(slope, 3)}
            self.expect(f"{name} {start:.1f} -> {end:.1f} MB (slope {slope:+.2f} MB/min), "
                        f"growth below {MEMORY_GROWTH_MB:g} MB", end - start < MEMORY_GROWTH_MB,
                        True)
        for name, proc in self.procs.items():
            self.expect(f"{name} alive", proc.running(), True)
            self.expect(f"{name} tracebacks in its log", proc.output.count("Traceback"), 0)
        return {
            "seconds": self.args.seconds, "seed": self.args.seed,
            "injected": asdict(inj), "resent_samples": arm.resent_samples,
            "unplug_gaps": gaps, "loss_counted": counted, "loss_true": true,
            "loss_error_worst_samples": worst,
            "published_samples": published, **figures,
            "poses": self.poses, "commands": self.commands,
            "driver": d, "pose": p, "controller": c,
            "expected_pose_faults": rs.expected_pose_faults, "memory": memory,
            "memory_series_mb": {k: [(round(t, 1), round(m, 2)) for t, m in v]
                                 for k, v in self.memory.items()},
            "discarded_at_start": self.discarded_at_start, "discarded_cut_by_reopens": cut,
            "notes": self.notes, "failures": self.failures, "first_error": rs.first_error,
            "logs": str(self.tmp),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("SOAK_SECONDS", 600)),
                        help="seconds of faults (after start-up); $SOAK_SECONDS, default 600")
    parser.add_argument("--fault-period-s", type=float, default=6.0,
                        help="mean time between two faults [s] (at least 1 s apart)")
    parser.add_argument("--smoke", action="store_true",
                        help="a short run: 40 s, a fault every ~1.5 s (each kind a few times)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.fault_period_s = 40.0, 1.5

    from emg_hand_testing.domain import isolate_ros_domain

    domain = isolate_ros_domain()
    soak = Soak(args)
    t_start = time.monotonic()
    print(f"soak: {args.seconds:g} s of faults (one every ~{args.fault_period_s:g} s), "
          f"seed {args.seed}, ROS_DOMAIN_ID={domain}; starting the graph", flush=True)
    try:
        soak.start()
        soak.wait_ready()
        print(f"soak: graph up after {time.monotonic() - t_start:.0f} s; logs in {soak.tmp}",
              flush=True)
        soak.run()
        figures = soak.finish()
        print(f"soak: done; {soak.fault_count()} faults injected: {asdict(soak.injected)}")
        result = soak.check(figures)
    except (RuntimeError, TimeoutError) as exc:
        print(f"soak: FAILED: {exc}", file=sys.stderr)
        for name, proc in getattr(soak, "procs", {}).items():
            print(f"--- {name} ({proc.log_path}):\n{proc.tail(20)}", file=sys.stderr)
        return 1
    finally:
        if hasattr(soak, "ros"):
            soak.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    status = "PASSED" if not soak.failures else f"FAILED ({len(soak.failures)} checks)"
    print(f"soak: {status}")
    return 0 if not soak.failures else 1


if __name__ == "__main__":
    sys.exit(main())
