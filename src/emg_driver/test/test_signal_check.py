"""emg_monitor --check: the verdicts on generated streams (pure), then the installed command
against the simulated armband with mains interference, over DDS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emg_driver.signal_check import check_stream

RATE = 500.0


def chunked(data: np.ndarray, chunk: int = 5, skip: tuple = (), drift_ppm: float = 0.0):
    firsts = np.arange(0, len(data), chunk)
    keep = [k for k in range(len(firsts)) if k not in skip]
    firsts = firsts[keep]
    stamps = 100.0 + firsts / RATE * (1 + drift_ppm * 1e-6)
    return firsts, stamps, [data[f:f + chunk] for f in firsts], stamps - 100.0


def test_each_problem_gets_its_verdict():
    rng = np.random.default_rng(0)
    n = int(4 * RATE)
    t = np.arange(n) / RATE
    good = rng.normal(0, 20e-6, n)
    stuck = good.copy()
    stuck[500:900] = stuck[500]
    clipped = np.clip(rng.normal(0, 1e-3, n), -1e-3, 1e-3)
    mains = 5e-6 * rng.normal(size=n) + 200e-6 * np.sin(2 * np.pi * 50 * t)
    data = np.stack([good, np.zeros(n), stuck, clipped, mains], axis=1)
    names = ["good", "flat", "stuck", "clipped", "mains"]
    result = check_stream(*chunked(data)[:3], RATE, names, chunked(data)[3], 5)
    verdicts = {c.name: c.verdict for c in result.channels}
    assert verdicts["good"] == "ok"
    assert verdicts["flat"].startswith("flat")
    assert verdicts["stuck"].startswith("stuck (one value for 0.8 s)")
    assert verdicts["clipped"].startswith("saturated")
    assert verdicts["mains"].startswith("mains interference")
    assert result.problems == [] and not result.ok  # the stream is fine, channels are not
    assert result.measured_rate_hz == pytest.approx(RATE, rel=0.01)
    assert "verdict: PROBLEMS" in result.lines()[-1]


def test_stream_problems_gaps_rate_drift_and_channel_count():
    rng = np.random.default_rng(1)
    data = rng.normal(0, 20e-6, (2000, 4))
    firsts, stamps, chunks, received = chunked(data, skip=(10, 11, 50), drift_ppm=3000)
    result = check_stream(firsts, stamps, chunks, RATE, [], received * 1.2, 8)
    assert result.dropped_samples == 15
    assert result.clock_drift_ppm == pytest.approx(3000, abs=1)
    text = "; ".join(result.problems)
    assert "15 dropped samples" in text and "4 channels, expected 8" in text
    assert "clock drift +3000 ppm" in text and "not the nominal 500 Hz" in text
    assert [c.verdict for c in result.channels] == ["ok"] * 4


@pytest.mark.timeout(90)
def test_check_command_finds_mains_on_the_simulated_armband(start_driver, node_process):
    start_driver(source="sim", line_noise_hz=50.0, line_noise_v=2e-3)
    monitor = node_process("emg_driver", "emg_monitor", ["--check", "--seconds", "2",
                                                         "--channels", "8", "--json"])
    assert monitor.wait(60.0) == 1  # problems found
    report = json.loads(monitor.output.strip().splitlines()[-1])
    assert report["problems"] == [] and report["num_channels"] == 8
    assert report["measured_rate_hz"] == pytest.approx(500.0, rel=0.05)
    assert all(c["verdict"].startswith("mains interference") for c in report["channels"])
