"""Windows streamed from disk are the windows training in memory uses; the cache, the
splits, the shared batch order and DataLoader workers."""

import os

import numpy as np
import pytest
import torch

from emg_hand_core.recordings import DataError, emg2pose, load_recording, rosbag2
from emg_pose_node import dataset as ds
from emg_pose_node.preprocessing import Moments, normalisation_from_moments
from emg_pose_node.synthetic import synthetic_recording
from emg_pose_node.testing import tiny_train_settings
from emg_pose_node.training import WindowSet, build_preprocess, prepare_data


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two emg2pose files (failed labels, unreadable EMG rows) and a bag with a gap."""
    root = tmp_path_factory.mktemp("rec")
    paths = []
    for i, seconds in enumerate((24.0, 30.0)):
        rec = synthetic_recording(duration_s=seconds, sample_rate_hz=250.0, channels=4, seed=i)
        rec.joint_angles[300:340] = 0.0  # emg2pose's failed labels
        rec.emg[1000:1010] = np.nan  # unreadable rows: emg_valid False
        paths.append(emg2pose.write(root / f"s{i}.h5", rec))
    bag = synthetic_recording(duration_s=12.0, sample_rate_hz=250.0, channels=4, seed=7)
    paths.append(rosbag2.write(root / "bag", bag, chunk_samples=25, drop_chunks=(40,)))
    return [str(p) for p in paths]


def streamed(files, settings, cache_dir, split_by="time"):
    recordings = [load_recording(p) for p in files]
    pre = build_preprocess(settings, recordings[0])
    entries = [ds.cache_recording(ds.SourceSpec(p), pre, "joint_angles", (), cache_dir)
               for p in files]
    data = prepare_data(recordings, settings)
    rate = pre.model_rate_hz
    segments = ds.split_segments(entries, split_by, settings.val_fraction,
                                 settings.test_fraction)
    ends = ds.split_window_ends(entries, segments, data.network.window,
                                max(1, round(settings.hop_s * rate)),
                                max(1, round(settings.eval_hop_s * rate)))
    x_moments, y_moments = ds.training_moments(entries, segments["train"])
    return entries, data, ends, normalisation_from_moments(pre, x_moments), y_moments


@pytest.mark.parametrize("filters", [{}, {"highpass_hz": 20.0, "model_rate_hz": 125.0}])
def test_streamed_windows_are_the_in_memory_windows(files, tmp_path, monkeypatch, filters):
    """The same window ends, inputs, targets and normalisation as prepare_data, for emg2pose
    files (read in blocks; without filters, windows are slices of the file itself) and a
    bag (read whole once). Small blocks: statistics and filter states cross block edges."""
    monkeypatch.setattr(ds, "BLOCK", 500)
    settings = tiny_train_settings(**filters)
    entries, data, ends, fitted, y_moments = streamed(files, settings, tmp_path)
    assert [e.direct for e in entries] == [not filters, not filters, False]
    assert entries[0].summary == load_recording(files[0]).summary()
    np.testing.assert_allclose(fitted.mean, data.preprocess.mean, rtol=1e-6,
                               atol=1e-9 * max(data.preprocess.std))
    np.testing.assert_allclose(fitted.std, data.preprocess.std, rtol=1e-6)
    offsets = np.cumsum([0] + [len(p) for p in data.recordings])
    for split in ("train", "val", "test"):
        mine = np.concatenate([e + offsets[k] for k, e in enumerate(ends[split])])
        np.testing.assert_array_equal(mine, data.ends[split])
        windows = ds.WindowDataset(entries, ends[split], data.network.window, fitted)
        x, y = windows.batch(torch.arange(len(windows)))
        x_ref, y_ref = WindowSet(data.x, data.y, data.ends[split],
                                 data.network.window).batch(torch.arange(len(windows)))
        torch.testing.assert_close(x, x_ref, rtol=0, atol=0 if not filters else 2e-6)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    # Output scaling: mean of the labelled training targets.
    train_rows = np.concatenate([p.targets[:s][p.label_ok[:s]] for p, s in zip(
        data.recordings, [ds.segment(len(p), "train", 0.15, 0.15)[1] for p in data.recordings])])
    np.testing.assert_allclose(y_moments.mean, train_rows.astype(np.float64).mean(0), rtol=1e-9)


def test_the_cache_is_written_once_and_follows_the_file(files, tmp_path):
    settings = tiny_train_settings(highpass_hz=20.0)
    pre = build_preprocess(settings, load_recording(files[0]))
    spec = ds.SourceSpec(files[0])
    first = ds.cache_recording(spec, pre, "joint_angles", (), tmp_path)
    stamp = os.stat(first.cache).st_mtime_ns
    again = ds.cache_recording(spec, pre, "joint_angles", (), tmp_path)
    assert again.cache == first.cache and os.stat(again.cache).st_mtime_ns == stamp
    other = build_preprocess(tiny_train_settings(highpass_hz=30.0), load_recording(files[0]))
    assert ds.cache_recording(spec, other, "joint_angles", (), tmp_path).cache != first.cache
    os.utime(files[0], ns=(stamp, stamp + 10**9))  # the recording changed
    assert ds.cache_recording(spec, pre, "joint_angles", (), tmp_path).cache != first.cache
    assert not list(tmp_path.glob(".tmp-*"))


def test_split_per_file(files, tmp_path):
    assert ds.file_splits(5, 0.2, 0.2) == ["train"] * 3 + ["val", "test"]
    with pytest.raises(DataError, match="leaves none to train on"):
        ds.file_splits(2, 0.2, 0.2)
    entries, _, ends, _, _ = streamed(files, tiny_train_settings(val_fraction=0.0,
                                                                 test_fraction=0.3),
                                      tmp_path, split_by="file")
    assert [len(e) > 0 for e in ends["train"]] == [True, True, False]
    assert [len(e) > 0 for e in ends["test"]] == [False, False, True]
    assert not any(len(e) for e in ends["val"])
    assert ends["test"][2].max() >= 0.9 * entries[2].num_rows  # the whole file


def test_moments_merge_like_all_rows_at_once():
    rows = np.random.default_rng(0).normal(3.0, 2.0, (1000, 3))
    merged = Moments.empty(3)
    for part in np.split(rows, [1, 10, 500, 501]):
        merged = merged.merge(Moments.of(part))
    np.testing.assert_allclose(merged.mean, rows.mean(0), rtol=1e-12)
    np.testing.assert_allclose(merged.std(), rows.std(0), rtol=1e-12)
    np.testing.assert_allclose(merged.std(ddof=1), rows.std(0, ddof=1), rtol=1e-12)


def test_processes_share_one_batch_order():
    """W processes x batch B see the windows of one process x batch B*W, step by step,
    with loss weights that make the last (uneven) global batch a plain mean."""
    one = ds.GlobalBatchSampler(101, 8, seed=3)
    two = [ds.GlobalBatchSampler(101, 4, 2, r, seed=3) for r in (0, 1)]
    for s in (one, *two):
        s.set_epoch(5)
    a, b = list(two[0]), list(two[1])
    assert len(a) == len(b) == len(one) == 13
    assert [x + y for x, y in zip(a, b)] == list(one)
    assert [len(x) for x in a[-1:] + b[-1:]] == [3, 2]  # 101 = 12 x 8 + 5
    assert two[0].loss_weights()[-1] == pytest.approx(6 / 5)
    assert two[1].loss_weights()[-1] == pytest.approx(4 / 5)
    assert set(one.loss_weights()) == {1.0}
    one.set_epoch(6)
    assert list(one) != list(two[0]) and sorted(sum(list(one), [])) == list(range(101))
    capped = ds.GlobalBatchSampler(101, 8, seed=3, epoch_windows=20)
    assert len(capped) == 3 and len(sum(list(capped), [])) == 20


def test_dataloader_workers_give_the_same_batches(files, tmp_path):
    settings = tiny_train_settings(highpass_hz=20.0)
    entries, data, ends, fitted, _ = streamed(files, settings, tmp_path)
    windows = ds.WindowDataset(entries, ends["train"], data.network.window, fitted)

    def epoch(workers):
        loader = ds.EpochLoader(windows, ds.GlobalBatchSampler(len(windows), 16, seed=1),
                                workers)
        return list(loader.epoch_batches(2))

    for (x0, y0, w0), (x1, y1, w1) in zip(epoch(0), epoch(2), strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and w0 == w1 == 1.0
