"""A track of values over time (a reference pose stream), resampled onto EMG sample times.

One rule for every label source that runs on its own clock (a JointState reference topic
during calibration, the joint states of a bag, a tracker's CSV): linear interpolation
between the two track samples around each EMG time, valid only inside the track and only
where those two samples are at most ``max_gap_s`` apart (a tracker that lost the hand for
a while labels nothing in between). A query time that hits a track sample exactly is valid
whatever the gap around it. Pure numpy.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MAX_GAP_S = 0.1


def interpolate_track(track_t_s, track_values, query_t_s,
                      max_gap_s: float = DEFAULT_MAX_GAP_S) -> tuple[np.ndarray, np.ndarray]:
    """Values of a track at ``query_t_s`` and which of them are valid.

    track_t_s: (M,) increasing times [s]; track_values: (M, ...) ; query_t_s: (N,) [s].
    Returns (values (N, ...) float64, valid (N,) bool). With fewer than two track samples
    nothing is valid (values zero), except queries that hit the one sample exactly.
    """
    t = np.asarray(track_t_s, dtype=np.float64)
    v = np.asarray(track_values, dtype=np.float64)
    q = np.asarray(query_t_s, dtype=np.float64)
    if v.shape[:1] != t.shape:
        raise ValueError(f"track has {len(t)} times but {len(v)} values")
    out_shape = (q.size,) + v.shape[1:]
    if t.size == 0:
        return np.zeros(out_shape), np.zeros(q.size, dtype=bool)
    if t.size == 1:
        hit = q == t[0]
        return np.where(hit.reshape((-1,) + (1,) * (v.ndim - 1)), v[0], 0.0) * np.ones(
            out_shape), hit
    if np.any(np.diff(t) <= 0):
        raise ValueError("track times must strictly increase")
    hi = np.clip(np.searchsorted(t, q, side="left"), 1, t.size - 1)
    lo = hi - 1
    span = t[hi] - t[lo]
    w = np.clip((q - t[lo]) / span, 0.0, 1.0)
    w = w.reshape((-1,) + (1,) * (v.ndim - 1))
    values = v[lo] * (1.0 - w) + v[hi] * w
    exact = (q == t[lo]) | (q == t[hi])
    valid = (q >= t[0]) & (q <= t[-1]) & ((span <= max_gap_s) | exact)
    return values, valid


__all__ = ["DEFAULT_MAX_GAP_S", "interpolate_track"]
