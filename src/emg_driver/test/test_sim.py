"""The simulated armband: motion, muscles, electrodes, signal, and the HDF5 recorder."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import signal

from emg_driver.sim import (
    EXTENSOR_MUSCLES,
    FLEXOR_MUSCLES,
    MUSCLE_INDEX,
    ArmbandSimulator,
    MotionConfig,
    SimConfig,
    WearerConfig,
    mixing_matrix,
    wearer_b,
)
from emg_driver.sim_record import main as sim_record_main
from emg_hand_core.hand_model import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from emg_hand_core.poses import NAMED_POSES
from emg_hand_core.recordings import load_recording

FS = 500.0


@pytest.fixture(scope="module")
def run_120s():
    sim = ArmbandSimulator(SimConfig(sample_rate_hz=FS, num_channels=8), seed=0)
    return sim, sim.generate_detailed(int(120 * FS))


def test_generate_is_seamless_across_calls_and_repeatable():
    a = ArmbandSimulator(seed=3)
    b = ArmbandSimulator(seed=3)
    parts = [a.generate(n) for n in (1, 499, 1000, 37, 963)]
    emg, q = b.generate(2500)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), emg)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), q)
    assert emg.dtype == np.float32 and q.dtype == np.float32
    assert emg.shape == (2500, 8) and q.shape == (2500, 20)
    other, _ = ArmbandSimulator(seed=4).generate(2500)
    assert not np.allclose(other, emg)


def test_motion_stays_in_limits_smooth_and_visits_every_pose(run_120s):
    sim, out = run_120s
    q = out.joint_angles
    assert np.all(q >= JOINT_LOWER - 1e-6) and np.all(q <= JOINT_UPPER + 1e-6)
    speed = np.abs(np.diff(q, axis=0)) * FS
    assert speed.max() < 15.0  # rad/s: the hand model's velocity limit
    names = sim.config.motion.pose_names
    held = {names[k] for k in np.unique(out.label[out.holding]) if k >= 0}
    assert held == set(NAMED_POSES)
    # the wrist moves (latent) while joint angles do not encode it
    assert np.ptp(out.wrist[:, 0]) > 0.8 and np.ptp(out.wrist[:, 1]) > 0.8
    assert 0.3 < out.holding.mean() < 0.85  # holds and transitions alternate


def _rms_during(out, names, label):
    idx = names.index(label)
    mask = out.holding & (out.label == idx)
    return np.sqrt(np.mean(out.emg[mask].astype(np.float64) ** 2, axis=0)), mask.sum()


def test_fist_drives_flexor_channels_open_hand_drives_extensor_channels(run_120s):
    sim, out = run_120s
    names = list(sim.config.motion.pose_names)
    w = mixing_matrix(8)
    flex_w = w[:, [MUSCLE_INDEX[m] for m in FLEXOR_MUSCLES]].sum(1)
    ext_w = w[:, [MUSCLE_INDEX[m] for m in EXTENSOR_MUSCLES]].sum(1)
    flexor_ch = np.argsort(flex_w - ext_w)[-3:]
    extensor_ch = np.argsort(ext_w - flex_w)[-3:]
    fist, n_fist = _rms_during(out, names, "fist")
    open_, n_open = _rms_during(out, names, "open")
    rest, n_rest = _rms_during(out, names, "rest")
    assert min(n_fist, n_open, n_rest) > FS  # at least 1 s of each hold
    assert np.all(fist[flexor_ch] > 2.0 * open_[flexor_ch])
    assert np.all(fist[flexor_ch] > 2.0 * rest[flexor_ch])
    assert np.all(open_[extensor_ch] > 1.5 * rest[extensor_ch])
    # activations agree: a fist is mostly flexors, an open hand mostly extensors
    act = out.activations
    m_fist = out.holding & (out.label == names.index("fist"))
    assert act[m_fist, MUSCLE_INDEX["fds_middle"]].mean() > 0.4
    m_open = out.holding & (out.label == names.index("open"))
    assert act[m_open, MUSCLE_INDEX["edc_index_middle"]].mean() > 0.25


def test_pose_is_recoverable_from_100ms_rms(run_120s):
    """Windowed amplitude carries the pose: a quadratic regression on log-RMS of 100 ms
    windows explains most of the finger flexion variance on unseen data."""
    _, out = run_120s
    w = int(0.1 * FS)
    n = len(out.emg) // w
    x = np.log(np.sqrt((out.emg[: n * w].astype(np.float64).reshape(n, w, 8) ** 2).mean(1)))
    y = out.joint_angles[: n * w].reshape(n, w, 20)[:, -1]
    feats = np.hstack([x, x**2, np.ones((n, 1))])
    train = int(0.75 * n)
    coef, *_ = np.linalg.lstsq(feats[:train], y[:train], rcond=None)
    pred = feats[train:] @ coef
    fe = [i for i, name in enumerate(JOINT_NAMES) if name.endswith("_fe")]
    yt = y[train:, fe]
    r2 = 1 - ((yt - pred[:, fe]) ** 2).sum(0) / ((yt - yt.mean(0)) ** 2).sum(0)
    assert np.median(r2) > 0.5, r2


def test_electrode_shift_rotates_the_armband():
    base = mixing_matrix(8, WearerConfig(crosstalk=0.0))
    shifted = mixing_matrix(8, WearerConfig(electrode_shift=1.0, crosstalk=0.0))
    np.testing.assert_allclose(shifted, np.roll(base, -1, axis=0), atol=1e-12)
    half = mixing_matrix(8, WearerConfig(electrode_shift=0.5))
    assert not np.allclose(half, base)
    b = wearer_b(8)
    assert b.electrode_shift != 0 and len(b.channel_gains) == 8
    sim_b = ArmbandSimulator(SimConfig(wearer=b), seed=0)
    sim_a = ArmbandSimulator(SimConfig(), seed=0)
    ea, qa = sim_a.generate(2000)
    eb, qb = sim_b.generate(2000)
    np.testing.assert_array_equal(qa, qb)  # same motion, different EMG
    assert not np.allclose(ea, eb)


def test_spectrum_is_band_limited_and_line_noise_optional():
    cfg = SimConfig(sample_rate_hz=2000.0, num_channels=16)
    emg, _ = ArmbandSimulator(cfg, seed=1).generate(20_000)
    f, p = signal.welch(emg[:, 6], fs=2000.0, nperseg=1024)
    total = p.sum()
    assert p[(f >= 20) & (f <= 450)].sum() > 0.8 * total  # the rest: white baseline noise
    assert p[f < 10].sum() < 0.02 * total
    noisy = SimConfig(sample_rate_hz=2000.0, num_channels=16, line_noise_hz=50.0,
                      line_noise_v=100e-6)
    emg_n, _ = ArmbandSimulator(noisy, seed=1).generate(20_000)
    f, pn = signal.welch(emg_n[:, 6], fs=2000.0, nperseg=2000)
    k50 = np.argmin(np.abs(f - 50.0))
    assert pn[k50] > 10 * np.median(pn[(f > 30) & (f < 70)])
    # amplitudes are plausible surface EMG: tens to hundreds of microvolts RMS
    rms = np.sqrt(np.mean(emg.astype(np.float64) ** 2, axis=0))
    assert np.all(rms > 5e-6) and np.all(rms < 2e-3)


def test_invalid_configs_are_refused_clearly():
    with pytest.raises(ValueError, match="channel_gains"):
        SimConfig(wearer=WearerConfig(channel_gains=(1.0, 2.0))).validate()
    with pytest.raises(ValueError, match="line_noise_hz"):
        SimConfig(line_noise_hz=55.0).validate()
    with pytest.raises(ValueError, match="unknown or no pose names"):
        MotionConfig(pose_names=("no_such_pose",)).validate()


def test_sim_record_writes_the_emg2pose_layout(tmp_path):
    path = tmp_path / "sim.h5"
    assert sim_record_main(["--output", str(path), "--seconds", "3", "--sample-rate-hz", "2000",
                            "--num-channels", "16", "--seed", "5", "--wearer", "b"]) == 0
    with h5py.File(path, "r") as f:
        ts = f["emg2pose/timeseries"]
        assert ts.dtype.names == ("time", "emg", "joint_angles")
        assert ts.dtype["time"] == np.float64
        assert ts.dtype["emg"].subdtype == (np.dtype("float32"), (16,))
        assert ts.dtype["joint_angles"].subdtype == (np.dtype("float64"), (20,))  # as emg2pose
        attrs = f["emg2pose"].attrs
        assert attrs["sample_rate"] == 2000.0 and attrs["seed"] == 5
        assert attrs["electrode_shift"] == wearer_b(16).electrode_shift
        assert [n.decode() for n in attrs["channel_names"]] == [f"ch_{k}" for k in range(1, 17)]
        assert [n.decode() for n in attrs["joint_names"]] == list(JOINT_NAMES)
    rec = load_recording(path)
    assert rec.num_samples == 6000 and rec.sample_rate_hz == 2000.0
    np.testing.assert_allclose(rec.timestamps_s[:3], [0.0, 0.0005, 0.001])
    expect_emg, expect_q = ArmbandSimulator(
        SimConfig(sample_rate_hz=2000.0, num_channels=16, wearer=wearer_b(16)), seed=5
    ).generate(6000)
    np.testing.assert_array_equal(rec.emg, expect_emg)
    np.testing.assert_array_equal(rec.joint_angles, expect_q)


def test_the_model_package_reads_what_sim_record_writes(tmp_path):
    """emg_pose_node trains the default model from emg_sim_record's files with its own
    loader: the layout must agree."""
    path = tmp_path / "train.h5"
    assert sim_record_main(["--output", str(path), "--seconds", "2", "--seed", "3"]) == 0
    rec = load_recording(path)
    assert rec.sample_rate_hz == 500.0 and rec.emg.shape == (1000, 8)
    assert list(rec.channel_names) == [f"ch_{k}" for k in range(1, 9)]
    emg, q = ArmbandSimulator(seed=3).generate(1000)
    np.testing.assert_array_equal(rec.emg, emg)
    np.testing.assert_array_equal(rec.joint_angles, q)


def test_commanded_pose_is_reached_held_and_released():
    sim = ArmbandSimulator(SimConfig(), seed=3)
    sim.generate(1000)
    sim.command_pose("fist")
    _, q = sim.generate(1500)  # 0.6 s transition, then hold
    np.testing.assert_allclose(q[400:], np.tile(NAMED_POSES["fist"], (1100, 1)), atol=1e-5)
    sim.command_pose("open")  # a new prompt interrupts the hold
    _, q = sim.generate(1000)
    np.testing.assert_allclose(q[-1], NAMED_POSES["open"], atol=1e-5)
    assert np.max(np.abs(np.diff(q, axis=0))) < 0.05  # smooth, no jump at the switch
    sim.release_pose()
    _, q = sim.generate(5000)
    assert np.ptp(q[-2000:], axis=0).max() > 0.2  # free motion again


def test_commanded_fist_loudens_flexors_over_open():
    sim = ArmbandSimulator(SimConfig(), seed=4)
    sim.command_pose("fist")
    sim.generate(1000)
    fist = sim.generate_detailed(1000).activations
    sim.command_pose("open")
    sim.generate(1000)
    opened = sim.generate_detailed(1000).activations
    assert fist.mean() != opened.mean()
    assert np.any(np.abs(fist.mean(0) - opened.mean(0)) > 0.05)
