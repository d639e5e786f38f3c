"""Per-head summary statistics as in Clark et al. (2019), "What does BERT look at?" -> ``head_stats``.

Per map (one head on one input of L tokens), each a mean over the L queries:
the entropy of the query's attention (nats), the attention it gives [CLS],
the [SEP]s, punctuation pieces and itself, and the mean distance |q - k|
weighted by attention. Previous and next token: the mean over the L - 1
queries that have one. A head's value is the mean over inputs (every input
weighs the same, whatever its length).

Maps are stored quantised (uint8: error <= 1/510), so values below 1/510
read as zero; the entropy is that of the stored map.
"""

from __future__ import annotations

import numpy as np

from bertsecrets.ingest.analyses.buckets import Bucket

STATS = ("entropy", "attn_cls", "attn_sep", "attn_punct", "attn_self", "attn_prev", "attn_next", "attn_distance")


def per_map(b: Bucket) -> dict[str, np.ndarray]:
    """Each statistic of every map in the bucket: name -> [n, layer, head]."""
    w = b.query_weights.astype(np.float32)
    position = np.arange(b.width)
    distance = np.abs(position[:, None] - position[None, :]).astype(np.float32)
    received = b.received
    return {
        "entropy": np.einsum("nlhq,nq->nlh", b.row_entropy, w),
        "attn_cls": received[..., 0],
        "attn_sep": np.einsum("nlhk,nk->nlh", received, b.ann.sep.astype(np.float32)),
        "attn_punct": np.einsum("nlhk,nk->nlh", received, b.ann.punct.astype(np.float32)),
        "attn_self": b.diagonal_mean(0),
        "attn_prev": b.diagonal_mean(-1),
        "attn_next": b.diagonal_mean(1),
        # The query weights folded into the distances: one contraction over (query, key) per map.
        "attn_distance": np.einsum("nlhqk,nqk->nlh", b.attn, distance[None] * w[:, :, None], optimize=True),
    }
