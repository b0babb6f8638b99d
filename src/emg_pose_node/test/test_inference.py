"""The live node's pure parts without rclpy: model store, inference worker, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from emg_hand_core.hand_model import JOINT_LOWER, JOINT_UPPER
from emg_pose_node.checkpoint import save_checkpoint
from emg_pose_node.inference import InferenceWorker, Pose, Smoothing
from emg_pose_node.model_store import DEFAULT_MODEL, ModelLoadError, ModelStore
from emg_pose_node.stream_guard import Fault
from emg_pose_node.testing import tiny_checkpoint

RATE = 500.0
CHANNELS = 3
CHUNK = 8  # the tiny log_power model's frame stride: one prediction per chunk once warm
NS = 1_000_000_000


def message(index: int, *, sec: int | None = None, rate: float = RATE, channels: int = CHANNELS,
            values: np.ndarray | None = None, n: int = CHUNK):
    """Any object with the EMG message's fields will do (the codec duck-types)."""
    stamp = int(index * NS / RATE) + 5 * NS
    data = values if values is not None else np.random.default_rng(index).normal(
        0, 5e-5, (n, channels))
    return SimpleNamespace(
        header=SimpleNamespace(stamp=SimpleNamespace(
            sec=stamp // NS if sec is None else sec, nanosec=stamp % NS), frame_id="armband"),
        sample_rate_hz=rate, channel_names=[f"ch_{i + 1}" for i in range(channels)],
        first_sample_index=index, num_samples=n, data=np.asarray(data, np.float32).ravel())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_checkpoint(tiny_checkpoint(CHANNELS, RATE, frontend="log_power"),
                    root / "tiny.safetensors")
    save_checkpoint(tiny_checkpoint(CHANNELS, RATE, seed=1, frontend="log_power"),
                    root / "other.safetensors")
    return root


@pytest.fixture
def store(models):
    logs = []
    s = ModelStore(models, backend="onnx", threads=1, shipped_dir=models, log=logs.append)
    s.logs = logs
    return s


def make_worker(store, name="tiny", **kw):
    poses: list[Pose] = []
    reports: list[str] = []
    worker = InferenceWorker(poses.append, report=reports.append, **kw)
    worker.install(store.load(store.named_path(name), name))
    return worker, poses, reports


def feed(worker, start: int, count: int, **kw) -> int:
    for k in range(count):
        worker.on_message(message(start + k * CHUNK, **kw))
    worker.step()
    return start + count * CHUNK


class TestModelStore:
    def test_names_resolve_inside_the_directories(self, store, models, tmp_path):
        assert store.named_path("tiny") == models.resolve() / "tiny.safetensors"
        assert store.resolve("tiny") == store.named_path("tiny")
        assert store.resolve(str(tmp_path / "x.safetensors")) == tmp_path / "x.safetensors"
        with pytest.raises(ValueError, match="model name"):
            store.named_path("../tiny")

    def test_default_is_always_the_shipped_one(self, tmp_path, models):
        user = tmp_path / "user"
        save_checkpoint(tiny_checkpoint(CHANNELS, RATE), user / "default.safetensors",
                        embed_graphs=False)
        s = ModelStore(user, shipped_dir=models)
        assert s.named_path(DEFAULT_MODEL) == models.resolve() / "default.safetensors"

    def test_any_failure_is_a_model_load_error(self, store, models, monkeypatch):
        (models / "junk.safetensors").write_bytes(b"\x00" * 64)
        with pytest.raises(ModelLoadError, match="corrupt or truncated"):
            store.load(models / "junk.safetensors", "junk")
        with pytest.raises(ModelLoadError, match="channel mismatch"):
            store.load(store.named_path("tiny"), "tiny", channels=8)

        def boom(*_a, **_k):
            raise MemoryError("51 GB")
        monkeypatch.setattr("emg_pose_node.model_store.load_checkpoint", boom)
        with pytest.raises(ModelLoadError, match="MemoryError: 51 GB"):
            store.load(store.named_path("tiny"), "tiny")

    def test_an_older_checkpoint_loads_and_says_it_was_slow(self, store, tmp_path):
        path = save_checkpoint(tiny_checkpoint(CHANNELS, RATE), tmp_path / "old.safetensors",
                               embed_graphs=False)
        model = store.load(path, "old")
        assert model.predictor.exported_graphs and model.checkpoint.streaming_graphs()
        assert "exported them with torch" in store.logs[-1]
        saved = store.save(model.checkpoint, "old_resaved")  # now with the graphs
        assert not store.load(saved, "old_resaved").predictor.exported_graphs
        with pytest.raises(ValueError, match="overwrite"):
            store.save(model.checkpoint, "old_resaved", overwrite=False)

    def test_a_model_without_a_pose_output_is_refused(self, store, tmp_path):
        from dataclasses import replace

        ckpt = tiny_checkpoint(CHANNELS, RATE)
        ckpt.network = replace(ckpt.network, output="values",
                               output_names=tuple(f"v{i}" for i in range(20)))
        with pytest.raises(ModelLoadError, match="not a hand pose"):
            store.build(ckpt, "values", "mem")


class TestInferenceWorker:
    def test_publishes_clamped_poses_stamped_with_the_newest_sample(self, store):
        worker, poses, reports = make_worker(store)
        feed(worker, 0, 20)
        assert len(poses) == 1 and not reports  # one step: the newest pose only
        pose = poses[0]
        assert np.all(pose.joint_angles >= JOINT_LOWER) and np.all(pose.joint_angles <= JOINT_UPPER)
        assert pose.keypoints.shape == (21, 3)
        newest = 20 * CHUNK - 1
        assert pose.stamp_ns == 5 * NS + int(round(newest * NS / RATE))
        feed(worker, 20 * CHUNK, 1)
        assert len(poses) == 2 and poses[1].stamp_ns > pose.stamp_ns
        stats = worker.snapshot()
        assert stats.chunks == 21 and stats.published == 2 and "p50" in stats.latency_ms

    @pytest.mark.parametrize("fields, fault", [
        (dict(rate=float("nan")), Fault.RATE_MISMATCH), (dict(sec=-1), Fault.BAD_STAMP),
        (dict(sec=2**31 - 1), Fault.BAD_STAMP), (dict(channels=8), Fault.CHANNEL_MISMATCH)])
    def test_implausible_messages_are_counted_and_survived(self, store, fields, fault):
        """sample_rate_hz NaN once failed the step ('cannot convert float NaN to integer');
        stamp.sec -1 once crashed the node. Now: counted, reported, no pose from them."""
        worker, poses, reports = make_worker(store)
        index = feed(worker, 0, 20)
        worker.on_message(message(index, **fields))
        worker.step()
        assert worker.snapshot().faults[fault] == 1
        assert any(fault.value in r for r in reports)
        assert not any("inference step failed" in r for r in reports)
        before = len(poses)
        feed(worker, index + CHUNK, 20)
        assert len(poses) == before + 1  # publishing resumes

    def test_malformed_and_non_finite_chunks(self, store):
        worker, poses, reports = make_worker(store)
        bad = message(0)
        bad.num_samples = 7  # data length disagrees
        worker.on_message(bad)
        values = np.full((CHUNK, CHANNELS), np.nan)
        worker.on_message(message(0, values=values))
        worker.step()
        stats = worker.snapshot()
        assert stats.malformed == 1 and stats.faults[Fault.NON_FINITE] == 1 and not poses

    def test_queue_overflow_drops_the_oldest_and_restarts(self, store):
        worker, _, _ = make_worker(store, max_queue_s=0.1)  # 50 samples
        for k in range(20):
            worker.on_message(message(k * CHUNK))
        assert worker.snapshot().queue_overflow > 0

    def test_swap_is_primed_and_without_a_gap(self, store):
        worker, poses, _ = make_worker(store)
        index = feed(worker, 0, 20)
        worker.swap(store.load(store.named_path("other"), "other"))  # not running: direct
        assert worker.model.name == "other"
        feed(worker, index, 1)
        assert len(poses) == 2  # the new model published from the very next chunk
        started = []
        worker.start()
        try:
            worker.swap(store.load(store.named_path("tiny"), "tiny"), timeout_s=10)
            started.append(worker.model.name)
        finally:
            worker.stop()
        assert started == ["tiny"]

    def test_a_model_that_cannot_be_installed_keeps_the_old_one(self, store, monkeypatch):
        worker, _, _ = make_worker(store)
        other = store.load(store.named_path("other"), "other")
        worker.start()
        try:
            def broken(*_a, **_k):
                raise MemoryError("guard")
            monkeypatch.setattr("emg_pose_node.inference.EmgStreamGuard", broken)
            with pytest.raises(ModelLoadError, match="MemoryError"):
                worker.swap(other, timeout_s=10)
        finally:
            worker.stop()
        assert worker.model.name == "tiny"

    def test_nothing_is_published_after_stop(self, store):
        published = threading.Event()
        calls = []

        def publish(pose):
            calls.append(pose)
            published.set()
        worker = InferenceWorker(publish, update_rate_hz=200.0)
        worker.install(store.load(store.named_path("tiny"), "tiny"))
        worker.start()
        for k in range(20):
            worker.on_message(message(k * CHUNK))
        assert published.wait(10)
        worker.stop()
        n = len(calls)
        for k in range(20, 40):
            worker.on_message(message(k * CHUNK))
        assert not worker._thread.is_alive() and len(calls) == n

    def test_smoothing_follows_the_parameters(self, store):
        worker, poses, _ = make_worker(store, smoothing=Smoothing(enabled=True,
                                                                  min_cutoff_hz=0.01, beta=0.0))
        index = 0
        for _ in range(6):
            index = feed(worker, index, 20)
        smooth = np.std([p.joint_angles for p in poses[1:]], axis=0).max()
        worker.configure(smoothing=Smoothing(enabled=False))
        raw = []
        for _ in range(6):
            index = feed(worker, index, 20)
            raw.append(poses[-1].joint_angles)
        assert smooth < np.std(raw, axis=0).max()


def test_the_live_path_imports_neither_torch_nor_scipy(models):
    """A fresh interpreter: the node module, the shipped default model and inference."""
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import emg_pose_node.pose_node
        from emg_pose_node.inference import InferenceWorker
        from emg_pose_node.model_store import ModelStore
        store = ModelStore({str(models)!r})
        model = store.load(store.resolve("default"), "default")
        poses = []
        worker = InferenceWorker(poses.append)
        worker.install(model)
        worker.on_chunk(__import__("emg_hand_core.emg_codec", fromlist=["x"]).EmgChunk(
            np.zeros((500, 8), np.float32), 0, 10**9, 500.0, tuple("abcdefgh")))
        worker.step()
        print(json.dumps({{"poses": len(poses), "exported": model.predictor.exported_graphs,
                          "heavy": sorted(m for m in ("torch", "scipy") if m in sys.modules)}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"poses": 1, "exported": False, "heavy": []}
