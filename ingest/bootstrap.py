"""Paired bootstrap of a task's metrics: every configuration scored on the same resamples of the dev set, at once.

Resamples are drawn once from a fixed seed and shared by every configuration,
so the difference to the baseline is paired, example by example. The metrics
are computed from the draw counts for all resamples together (weighted sums),
equal to the metric recomputed on each resampled set (a test checks).
"""

from __future__ import annotations

import numpy as np

N_BOOT = 1000
BOOT_SEED = 0


def resample_indices(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """[resample, draw]: dev examples drawn with replacement, the same for every configuration."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def resample_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """[resample, example]: how often each example was drawn."""
    offsets = draws + n * np.arange(len(draws))[:, None]
    return np.bincount(offsets.ravel(), minlength=len(draws) * n).reshape(len(draws), n).astype(np.float64)


def _weighted_pearson(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[resample]: Pearson's r of x and y over each resample (weights = counts); NaN where one is constant."""
    n = w.sum(1, keepdims=True)
    dx = x - (w * x).sum(1, keepdims=True) / n
    dy = y - (w * y).sum(1, keepdims=True) / n
    vx, vy = (w * dx * dx).sum(1), (w * dy * dy).sum(1)
    # A constant resample leaves rounding dust instead of an exact 0 variance.
    tiny = 1e-12 * np.maximum((w * x * x).sum(1), (w * y * y).sum(1)) + 1e-300
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * dx * dy).sum(1) / np.sqrt(vx * vy)
    return np.where((vx <= tiny) | (vy <= tiny), np.nan, r)


def _resampled_ranks(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """[resample, example]: each example's average rank (from 1) within each resample, as scipy ranks ties."""
    order = np.argsort(x, kind="stable")
    new_value = np.r_[True, x[order][1:] != x[order][:-1]]
    starts = np.flatnonzero(new_value)
    per_value = np.add.reduceat(w[:, order], starts, axis=1)  # [resample, distinct value]
    ranks_of_value = np.cumsum(per_value, axis=1) - per_value + (per_value + 1) / 2
    ranks = np.empty_like(w)
    ranks[:, order] = ranks_of_value[:, np.cumsum(new_value) - 1]
    return ranks


def resampled_metric(metric: str, preds: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[resample, config]: ``metric`` of each configuration's predictions ``[config, example]`` on each resample.

    Equal to ``bertsecrets.ingest.metrics.compute`` on the resampled examples, computed
    from the draw counts for all resamples at once.
    """
    if metric == "accuracy":
        return counts @ (preds == labels).T / labels.size
    if metric == "f1":
        pred_pos, true_pos = preds == 1, labels == 1
        tp = counts @ (pred_pos & true_pos).T
        wrong = counts @ (pred_pos & ~true_pos).T + counts @ (~pred_pos & true_pos).T
        denominator = 2 * tp + wrong
        return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    if metric == "pearson":
        return np.stack([_weighted_pearson(counts, p, labels) for p in preds], axis=1)
    if metric == "spearman":
        label_ranks = _resampled_ranks(counts, labels)
        return np.stack([_weighted_pearson(counts, _resampled_ranks(counts, p), label_ranks) for p in preds], axis=1)
    raise ValueError(f"no bootstrap for metric {metric!r}")
