"""Linear discriminant analysis on feature vectors: the field's baseline classifier. numpy.

Gaussian classes with one shared covariance (pooled within-class scatter, shrunk toward a
scaled identity by ``shrinkage``, Ledoit-Wolf style), class priors from the training counts.
Class k's score is ``w_k . f + b_k``; softmax over classes gives the posterior
probabilities. Everything is closed form: fitting a few thousand windows takes milliseconds,
so guided calibration refits it (:func:`adapt`) rather than fine-tuning.

The parameters are plain arrays (:class:`LDAParams`), stored as the tensors of a gesture
checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MISSING_CLASS_BIAS = -1e9  # a class without training windows is never chosen


@dataclass
class LDAParams:
    means: np.ndarray  # (K, F)
    covariance: np.ndarray  # (F, F), shrunk
    counts: np.ndarray  # (K,) training windows per class
    weights: np.ndarray  # (K, F)
    bias: np.ndarray  # (K,)

    def tensors(self) -> dict[str, np.ndarray]:
        return {"means": self.means, "covariance": self.covariance, "counts": self.counts,
                "weights": self.weights, "bias": self.bias}

    @classmethod
    def from_tensors(cls, t: dict[str, np.ndarray]) -> LDAParams:
        return cls(*(np.asarray(t[k], dtype=np.float64) for k in
                     ("means", "covariance", "counts", "weights", "bias")))


def _solve(means: np.ndarray, covariance: np.ndarray, counts: np.ndarray) -> LDAParams:
    precision = np.linalg.pinv(covariance, hermitian=True)
    weights = means @ precision
    priors = counts / max(counts.sum(), 1.0)
    with np.errstate(divide="ignore"):
        bias = -0.5 * np.sum(weights * means, axis=1) + np.log(priors)
    bias = np.where(counts > 0, bias, MISSING_CLASS_BIAS)
    return LDAParams(means, covariance, counts.astype(np.float64), weights, bias)


def _stats(features: np.ndarray, labels: np.ndarray, num_classes: int):
    f = np.asarray(features, dtype=np.float64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    sums = np.zeros((num_classes, f.shape[1]))
    np.add.at(sums, labels, f)
    means = sums / np.maximum(counts, 1.0)[:, None]
    centred = f - means[labels]
    scatter = centred.T @ centred
    return means, scatter, counts


def _shrink(covariance: np.ndarray, shrinkage: float) -> np.ndarray:
    d = covariance.shape[0]
    target = np.trace(covariance) / d * np.eye(d)
    return (1.0 - shrinkage) * covariance + shrinkage * target + 1e-12 * np.eye(d)


def fit(features: np.ndarray, labels: np.ndarray, num_classes: int,
        shrinkage: float = 1e-3) -> LDAParams:
    """Fit on features (N, F) with labels (N,) in [0, num_classes)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) <= num_classes:
        raise ValueError(f"LDA needs more windows ({len(labels)}) than classes ({num_classes})")
    means, scatter, counts = _stats(features, labels, num_classes)
    dof = max(len(labels) - int((counts > 0).sum()), 1)
    return _solve(means, _shrink(scatter / dof, shrinkage), counts)


def adapt(params: LDAParams, features: np.ndarray, labels: np.ndarray,
          prior_windows: float = 20.0, covariance_prior_windows: float = 1000.0,
          shrinkage: float = 1e-3) -> LDAParams:
    """Calibrate to new data: class means move to the new data's, weighted against the old
    ones as ``prior_windows`` pseudo-windows of each class (classes absent from the new data
    keep theirs); the covariance pools the new data's scatter with the old covariance
    weighted as ``covariance_prior_windows`` windows (a minute of calibration estimates
    means well, a covariance of many features poorly)."""
    labels = np.asarray(labels, dtype=np.int64)
    k = len(params.counts)
    means_new, scatter, counts_new = _stats(features, labels, k)
    w = counts_new / (counts_new + prior_windows)
    means = w[:, None] * means_new + (1.0 - w[:, None]) * params.means
    n_new = max(len(labels) - int((counts_new > 0).sum()), 0)
    covariance = (scatter + covariance_prior_windows * params.covariance) / (
        n_new + covariance_prior_windows)
    counts = np.where(counts_new > 0, counts_new, params.counts)
    return _solve(means, _shrink(covariance, shrinkage), counts)


def probabilities(params: LDAParams, features: np.ndarray) -> np.ndarray:
    """Posterior class probabilities (N, K) of features (N, F)."""
    scores = np.asarray(features, dtype=np.float64) @ params.weights.T + params.bias
    scores -= scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(axis=1, keepdims=True)


__all__ = ["LDAParams", "adapt", "fit", "probabilities"]
