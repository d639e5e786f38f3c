"""Relation-specific heads (paper 4.2, Fig. 3): attention along the token pairs of a relation -> ``relation_heads``.

Per head and sentence: the maximum attention weight among the sentence's
pairs of the relation (query piece -> key piece); the mean over sentences
that have a pair. Heads above the 99th percentile of all heads (for one
relation, source and model) are flagged, as the paper singles out its two
heads of 144. The same statistic serves every source: spaCy arcs on the
stored dev inputs, a user's JSONL file and FrameNet (ingest.analyses.sentences).
"""

from __future__ import annotations

import numpy as np

FLAG_PERCENTILE = 99.0


def rows_of(pairs: np.ndarray, examples: np.ndarray, n_total: int) -> np.ndarray:
    """The pairs (example, query, key) of ``examples``, renumbered to their rows in ``examples`` and sorted by row."""
    where = np.full(n_total, -1, dtype=np.int64)
    where[examples] = np.arange(len(examples))
    kept = pairs[where[pairs[:, 0]] >= 0]
    kept = np.column_stack([where[kept[:, 0]], kept[:, 1:]]).reshape(-1, 3)
    return kept[np.argsort(kept[:, 0], kind="stable")]


def per_input(attn: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """[n, layer, head]: the largest attn[row, :, :, query, key] among each row's pairs; NaN for rows without pairs.

    ``pairs`` holds rows (row, query, key), sorted by row.
    """
    n = attn.shape[0]
    out = np.full((n,) + attn.shape[1:3], np.nan, dtype=np.float64)
    if len(pairs) == 0:
        return out
    values = attn[pairs[:, 0], :, :, pairs[:, 1], pairs[:, 2]]  # [pair, layer, head]
    rows, starts = np.unique(pairs[:, 0], return_index=True)
    out[rows] = np.maximum.reduceat(values, starts, axis=0)
    return out


def flag(scores: np.ndarray) -> np.ndarray:
    """Heads whose score lies above the 99th percentile of all heads' scores."""
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return np.zeros(scores.shape, dtype=bool)
    return np.isfinite(scores) & (scores > np.percentile(finite, FLAG_PERCENTILE))
