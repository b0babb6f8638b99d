"""A calibration session without rclpy, and the fine-tune child process."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from emg_hand_core.emg_codec import EmgChunk
from emg_hand_core.hand_model import JOINT_NAMES
from emg_hand_core.recordings import DataError
from emg_pose_node import calibration_session as cs
from emg_pose_node.calibration import ReferenceTrack
from emg_pose_node.checkpoint import load_checkpoint, save_checkpoint
from emg_pose_node.finetune_worker import FinetuneOutcome, FinetuneProcess
from emg_pose_node.inference import InferenceWorker
from emg_pose_node.model_store import ModelStore
from emg_pose_node.synthetic import synthetic_recording
from emg_pose_node.testing import tiny_checkpoint

RATE = 500.0
CHUNK = 8
NS = 1_000_000_000


def goal(**kw):
    fields = dict(mode=cs.MODE_REFERENCE, duration_s=0.3, reference_topic="", poses=[],
                  hold_s=0.0, rest_s=0.0, transition_s=-1.0, repetitions=0, epochs=0,
                  learning_rate=0.0, unfreeze_last_lstm=False, validation_fraction=0.0,
                  save_as="")
    fields.update(kw)
    return SimpleNamespace(**fields)


def test_constants_are_the_actions():
    from emg_interfaces.action import Calibrate

    assert (cs.MODE_REFERENCE, cs.MODE_GUIDED) == (Calibrate.Goal.MODE_REFERENCE,
                                                   Calibrate.Goal.MODE_GUIDED)
    f = Calibrate.Feedback
    assert (cs.PHASE_WAITING, cs.PHASE_RECORDING, cs.PHASE_TRAINING, cs.PHASE_EVALUATING) == (
        f.PHASE_WAITING, f.PHASE_RECORDING, f.PHASE_TRAINING, f.PHASE_EVALUATING)
    assert set(vars(cs.Progress(0))) == set(f.get_fields_and_field_types())
    result_fields = set(vars(cs.Result())) - {"status"}
    assert result_fields == set(Calibrate.Result.get_fields_and_field_types())


@pytest.mark.parametrize("fields, loaded, problem", [
    (dict(mode=7), True, "unknown mode 7"), (dict(), False, "no model"),
    (dict(mode=cs.MODE_GUIDED, poses=["karate_chop"]), True, "unknown poses"),
    (dict(validation_fraction=1.0), True, "validation_fraction"),
    (dict(duration_s=-1.0), True, "duration_s"), (dict(), True, None)])
def test_goal_problems(fields, loaded, problem):
    found = cs.goal_problem(goal(**fields), loaded)
    assert found == problem or (problem and problem in found)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_checkpoint(tiny_checkpoint(3, RATE, frontend="log_power"), root / "tiny.safetensors")
    save_checkpoint(tiny_checkpoint(3, RATE, seed=2, frontend="log_power"),
                    root / "tuned.safetensors")
    return ModelStore(root / "user", shipped_dir=root)


class FakeFinetuner:
    """Stands in for the child process: records what it was given, returns a better model."""

    made: list[FakeFinetuner] = []

    def __init__(self, threads: int, niceness: int) -> None:
        self.threads, self.niceness, self.closed, self.calls = threads, niceness, False, []
        FakeFinetuner.made.append(self)

    def run(self, ckpt, emg, targets, settings, *, label_mask, progress_cb, should_stop):
        self.calls.append((emg, targets, settings, label_mask))
        for epoch in (1, 2):
            progress_cb(epoch, 2, 0.1 / epoch)
        tuned = load_checkpoint(FakeFinetuner.tuned_path)
        return FinetuneOutcome(True, False, 0.2, 0.1, float(label_mask.sum()) / RATE, 2, "",
                               tuned)

    def close(self) -> None:
        self.closed = True


class Feeder:
    """EMG chunks into the worker (and a reference track) from a thread, in real time."""

    def __init__(self, worker: InferenceWorker, track: ReferenceTrack | None) -> None:
        self.worker, self.track, self.stop = worker, track, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        rng, k = np.random.default_rng(0), 0
        while not self.stop.is_set():
            stamp = 10 * NS + int(k * CHUNK * NS / RATE)
            self.worker.on_chunk(EmgChunk(rng.normal(0, 5e-5, (CHUNK, 3)).astype(np.float32),
                                          k * CHUNK, stamp, RATE, ("ch_1", "ch_2", "ch_3")))
            if self.track is not None:
                self.track.add(stamp / NS, JOINT_NAMES, [0.1] * 20)
            k += 1
            self.stop.wait(CHUNK / RATE)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def session(store, g, track=None, cancelled=lambda: False, **kw):
    worker = InferenceWorker(lambda _pose: None)
    worker.install(store.load(store.named_path("tiny"), "tiny"))
    progress, prompts = [], []
    s = cs.CalibrationSession(
        g, cs.Settings(poses=["open"], data_timeout_s=1.0, **kw), worker, store,
        feedback=lambda p: progress.append(vars(p).copy()),
        prompt=lambda *a: prompts.append(a), cancelled=cancelled, now_s=time.monotonic,
        track=track, finetuner=FakeFinetuner, tick_s=0.01)
    return s, worker, progress, prompts


def test_reference_calibration_records_fine_tunes_saves_and_swaps(store):
    FakeFinetuner.tuned_path = store.named_path("tuned")
    track = ReferenceTrack()
    s, worker, progress, prompts = session(store, goal(save_as="alice", epochs=5), track,
                                           training_threads=2, training_niceness=7)
    feeder = Feeder(worker, track)
    try:
        result = s.run()
    finally:
        feeder.close()
    assert result.status == cs.SUCCEEDED and result.success and result.model_swapped
    assert result.model_path == str(store.named_path("alice")) and "alice" in result.message
    assert worker.model.name == "alice" and result.error_after_rad == 0.1
    fake = FakeFinetuner.made[-1]
    assert fake.closed and (fake.threads, fake.niceness) == (2, 7)
    emg, targets, settings, mask = fake.calls[0]
    assert emg.shape[1] == 3 and targets.shape == (len(emg), 20) and mask.any()
    assert np.allclose(targets[mask], 0.1) and settings["epochs"] == 5
    phases = [p["phase"] for p in progress]
    assert phases[0] == cs.PHASE_RECORDING or phases[0] == cs.PHASE_WAITING
    assert cs.PHASE_TRAINING in phases and phases[-1] == cs.PHASE_EVALUATING
    assert [p["epoch"] for p in progress if p["epoch"]] == [1, 2, 2]
    assert prompts[-1][0] == 3  # PHASE_DONE


def test_cancel_during_guided_recording_keeps_the_model(store):
    stop = threading.Event()
    s, worker, progress, prompts = session(store, goal(mode=cs.MODE_GUIDED, hold_s=5.0),
                                           cancelled=stop.is_set)
    feeder = Feeder(worker, None)
    threading.Timer(0.3, stop.set).start()
    try:
        result = s.run()
    finally:
        feeder.close()
    assert result.status == cs.CANCELED and not result.success and "cancel" in result.message
    assert worker.model.name == "tiny" and FakeFinetuner.made[-1].closed
    assert {p[1] for p in prompts if p[0] == 0} == {"open"}  # get ready: open


def test_no_emg_ends_with_the_reason(store):
    s, worker, _, _ = session(store, goal(), ReferenceTrack())
    result = s.run()
    assert result.status == cs.ABORTED and "no EMG on emg/raw within 1 s" in result.message
    assert worker.model.name == "tiny"


# --- the child process -------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibration():
    rec = synthetic_recording(duration_s=6.0, sample_rate_hz=RATE, channels=3, seed=4)
    return rec.emg, rec.joint_angles


def test_fine_tune_runs_in_a_child_process(store, calibration):
    """Progress comes over the pipe, the result checkpoint (with its ONNX graphs, exported
    in the child) back through a file; a cancel and a data error come back as such. One
    child, three jobs (each child imports torch: seconds)."""
    import os

    emg, q = calibration
    ckpt = store.load(store.named_path("tiny"), "tiny").checkpoint
    progress = []
    with FinetuneProcess(threads=1, niceness=3) as proc:
        assert os.getpriority(os.PRIO_PROCESS, proc.process.pid) >= os.nice(0)  # (set early)
        outcome = proc.run(ckpt, emg, q, {"epochs": 3, "adapter_epochs": 2,
                                          "min_improvement": -10.0},
                           progress_cb=lambda *a: progress.append(a))
        assert os.getpriority(os.PRIO_PROCESS, proc.process.pid) == os.nice(0) + 3
        assert [p[:2] for p in progress] == [(e, 5) for e in range(1, 6)]
        assert outcome.accepted and not outcome.cancelled and outcome.epochs_run == 5
        assert outcome.checkpoint.streaming_graphs() is not None
        assert outcome.checkpoint.weights_sha256() != ckpt.weights_sha256()

        outcome = proc.run(ckpt, emg, q, {"epochs": 10**6, "adapter_epochs": 0},
                           should_stop=lambda: True)
        assert outcome.cancelled and not outcome.accepted and outcome.checkpoint is None
        with pytest.raises(DataError, match="too little"):
            proc.run(ckpt, emg[:100], q[:100], {"epochs": 1})
        child = proc.process
    assert child.poll() is not None  # closed: the child is gone
