"""Gesture features against values computed by hand, on one 5-sample window in millivolts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emg_pose_node.gesture.features import (
    FEATURE_SETS,
    FeatureSpec,
    compute,
    entropy,
    extract,
    feature_names_of,
)

MV = 1e-3
X = np.array([1.0, -2.0, 3.0, 0.0, -1.0]) * MV  # one window, W = 5

# By hand: |x| = 1,2,3,0,1; x^2 = 1,4,9,0,1 (mV^2); diffs = -3, 5, -3, -1 (mV);
# mean = 0.2 mV, squared deviations 0.64, 4.84, 7.84, 0.04, 1.44 (sum 14.8).
BY_HAND = {
    "MAV": 7 / 5 * MV,
    "RMS": math.sqrt(15 / 5) * MV,
    "VAR": 14.8 / 4 * MV ** 2,
    "SSI": 15 * MV ** 2,
    "WL": 12 * MV,
    "ZC": 2.0,  # (1, -2) and (-2, 3); (3, 0) and (0, -1) touch zero, no crossing
    "SSC": 2.0,  # at -2: (-3)(-5) = 15 > 0; at 3: (5)(3) = 15 > 0; at 0: (-3)(1) < 0
    "WAMP": 4.0,  # every |diff| >= 10 uV (the default threshold)
    # p = (1, 4, 9, 0, 1) / 15: -sum p ln p
    "ENT": -(2 * (1 / 15) * math.log(1 / 15) + 4 / 15 * math.log(4 / 15)
             + 9 / 15 * math.log(9 / 15)),
}


@pytest.mark.parametrize("name", sorted(BY_HAND))
def test_each_feature_matches_the_hand_computed_value(name):
    assert compute(name, X) == pytest.approx(BY_HAND[name], rel=1e-9)


def test_thresholds_are_in_volts():
    # ZC: only the crossing with |diff| = 5 mV passes 4 mV
    assert compute("ZC", X, FeatureSpec(("ZC",), {"ZC": 4 * MV})) == 1.0
    # SSC: both slope products are 15 mV^2: they pass t = 3 mV (9 mV^2), not 4 mV (16)
    assert compute("SSC", X, FeatureSpec(("SSC",), {"SSC": 3 * MV})) == 2.0
    assert compute("SSC", X, FeatureSpec(("SSC",), {"SSC": 4 * MV})) == 0.0
    # WAMP: |diffs| 3, 5, 3, 1 mV: three reach 2.5 mV
    assert compute("WAMP", X, FeatureSpec(("WAMP",), {"WAMP": 2.5 * MV})) == 3.0
    with pytest.raises(ValueError, match="only ZC, SSC and WAMP"):
        FeatureSpec(("MAV",), {"MAV": 1e-3})
    with pytest.raises(ValueError):
        FeatureSpec(("ZC",), {"ZC": -1.0})


def test_entropy_of_a_silent_window_is_uniform():
    assert entropy(np.zeros(8)) == pytest.approx(math.log(8))
    # all energy in one sample: entropy near 0
    assert entropy(np.array([0, 0, 1e-3, 0])) < 1e-6


def test_vectorised_over_windows_and_channels_feature_major():
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(6, 3, 20)) * 1e-4
    windows[4, 1] = X.tolist() * 4  # one known channel
    spec = FeatureSpec(FEATURE_SETS["hudgins_td"])
    f = extract(windows, spec)
    assert f.shape == (6, 4 * 3)
    assert spec.names(["a", "b", "c"])[:4] == ["MAV_a", "MAV_b", "MAV_c", "ZC_a"]
    for j, name in enumerate(spec.features):
        for c in range(3):
            assert f[2, j * 3 + c] == pytest.approx(compute(name, windows[2, c]))
    assert f[4, 1] == pytest.approx(BY_HAND["MAV"])  # MAV of the repeated window
    logged = extract(windows, FeatureSpec(spec.features, log_amplitude=True))
    assert logged[4, 1] == pytest.approx(math.log(BY_HAND["MAV"]), rel=1e-6)
    assert np.array_equal(logged[:, 3:9], f[:, 3:9])  # counts are not logged


def test_named_sets_and_spec_round_trip():
    assert FEATURE_SETS["hudgins_td"] == ("MAV", "ZC", "SSC", "WL")
    assert FEATURE_SETS["lstm_fin4"] == ("ENT", "RMS", "VAR", "SSI")
    assert feature_names_of("td8")[-1] == "WAMP" and feature_names_of("MAV,WL") == ("MAV", "WL")
    with pytest.raises(ValueError, match="unknown features"):
        feature_names_of("MAV,XYZ")
    spec = FeatureSpec(FEATURE_SETS["td8"], {"WAMP": 2e-5}, log_amplitude=True)
    back = FeatureSpec.from_dict(spec.to_dict())
    assert back.to_dict() == spec.to_dict() and back.features == spec.features
    assert back.threshold("WAMP") == 2e-5 and back.threshold("ZC") == 0.0 and back.log_amplitude
