"""Pattern classes of maps (paper 4.1, Fig. 2): geometric features, a rule-based labeller, and resizing for the CNN.

The paper's five classes (store.labels.PATTERN_CLASSES) are decided here
from three masses of a map, each a mean over its queries:

- vertical mass V: attention to the [CLS] and [SEP] columns;
- diagonal mass D: attention to the keys one or two positions before or
  after the query (the previous and next token; two, because a word split
  into pieces puts the neighbouring word two pieces away, and heads that
  follow the previous word draw a band rather than a line);
- block share B (two-sentence inputs): of the attention not given to [CLS]
  or [SEP], the share that stays inside the query's own sentence (the two
  blocks on the diagonal, split at the first [SEP]). By chance it is about
  (n1^2 + n2^2) / (n1 + n2)^2, 0.5 for two sentences of equal length.

The rules, in order (thresholds named below, chosen by looking at maps of
bert-base-uncased and all-MiniLM-L6-v2 on MRPC; docs/analyses.md shows
what they give):

1. vertical + diagonal: V >= BOTH_MIN and D >= BOTH_MIN;
2. vertical: V >= VERTICAL_MIN;
3. diagonal: D >= DIAGONAL_MIN;
4. block: a two-sentence input and B >= BLOCK_MIN;
5. heterogeneous: anything else.

The rule's confidence is the margin of the deciding mass over its threshold,
scaled to [0, 1] (for heterogeneous: how far the largest mass stays below
its threshold).
"""

from __future__ import annotations

import numpy as np

from bertsecrets.ingest.analyses.buckets import Bucket
from bertsecrets.store.labels import PATTERN_CLASSES

VERTICAL_MIN = 0.5
DIAGONAL_MIN = 0.4
BOTH_MIN = 0.3
BLOCK_MIN = 0.8
#: Keys at most this far from the query count as the diagonal (excluding the query itself).
DIAGONAL_WINDOW = 2

#: Geometric features of a map: the rule masses and more shape, for the scikit-learn classifier.
GEOMETRY = ("cls", "sep", "diagonal", "prev", "next", "self", "block", "entropy", "max_column", "two_segments", "length")


def geometry(b: Bucket) -> np.ndarray:
    """[n, layer, head, feature] in the order of GEOMETRY."""
    received = b.received
    cls = received[..., 0]
    sep = np.einsum("nlhk,nk->nlh", received, b.ann.sep.astype(np.float32))
    seg = b.ann.segment
    same = (seg[:, :, None] == seg[:, None, :]) & ~b.ann.special[:, None, :] & b.valid[:, :, None]
    w = b.query_weights.astype(np.float32)
    inside = np.einsum("nlhqk,nqk->nlh", b.attn, (same * w[:, :, None]).astype(np.float32), optimize=True)
    block = inside / np.maximum(1.0 - cls - sep, 1e-6)
    two = b.ann.two_segments()
    entropy = np.einsum("nlhq,nq->nlh", b.row_entropy, w) / np.log(b.lengths)[:, None, None]
    near = sum(np.diagonal(b.attn, offset=o, axis1=-2, axis2=-1).sum(axis=-1)
               for o in range(-DIAGONAL_WINDOW, DIAGONAL_WINDOW + 1) if o) / b.lengths[:, None, None]
    shape = cls.shape
    return np.stack(
        [
            cls, sep, near, b.diagonal_mean(-1), b.diagonal_mean(1), b.diagonal_mean(0),
            np.where(two[:, None, None], np.clip(block, 0.0, 1.0), 0.0), entropy, received.max(axis=-1),
            np.broadcast_to(two[:, None, None], shape).astype(np.float32),
            np.broadcast_to(b.lengths[:, None, None], shape).astype(np.float32),
        ],
        axis=-1,
    ).astype(np.float32)


def rules(geo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rule labels (indices into PATTERN_CLASSES) and confidences for maps described by ``geometry``."""
    col = {name: geo[..., i] for i, name in enumerate(GEOMETRY)}
    v = col["cls"] + col["sep"]
    d = col["diagonal"]
    two = col["two_segments"] > 0
    block = col["block"]
    both = (v >= BOTH_MIN) & (d >= BOTH_MIN)
    vertical = ~both & (v >= VERTICAL_MIN)
    diagonal = ~both & ~vertical & (d >= DIAGONAL_MIN)
    blocky = ~both & ~vertical & ~diagonal & two & (block >= BLOCK_MIN)
    label = np.select([both, vertical, diagonal, blocky], [2, 0, 1, 3], default=4)

    def margin(value: np.ndarray, threshold: float) -> np.ndarray:
        return np.clip((value - threshold) / (1.0 - threshold), 0.0, 1.0)

    stay_below = np.minimum.reduce([
        (VERTICAL_MIN - v) / VERTICAL_MIN,
        (DIAGONAL_MIN - d) / DIAGONAL_MIN,
        np.where(two, (BLOCK_MIN - block) / BLOCK_MIN, 1.0),
    ])
    confidence = np.select(
        [both, vertical, diagonal, blocky],
        [margin(np.minimum(v, d), BOTH_MIN), margin(v, VERTICAL_MIN), margin(d, DIAGONAL_MIN), margin(block, BLOCK_MIN)],
        default=np.clip(stay_below, 0.0, 1.0),
    )
    return label.astype(np.int8), confidence.astype(np.float32)


assert PATTERN_CLASSES == ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")


def area_matrix(length: int, size: int, width: int) -> np.ndarray:
    """[size, width]: area resizing of ``length`` positions (zero past them) to ``size``.

    Output cell i covers the source interval [i L / S, (i + 1) L / S); a
    source position weighs by how much of it falls in that interval, and the
    weights of a cell add up to L / S. Summing instead of averaging makes a
    resized map length-invariant: a column or diagonal of ones stays about
    1 wide at value 1 whatever L, and a uniform map becomes 1 / S.
    """
    edges = np.arange(size + 1) * (length / size)
    lo, hi = edges[:-1, None], edges[1:, None]
    pos = np.arange(width)[None, :]
    overlap = np.clip(np.minimum(hi, pos + 1) - np.maximum(lo, pos), 0.0, None)
    return np.where(pos < length, overlap, 0.0)


def resize(b: Bucket, size: int) -> np.ndarray:
    """[n, layer, head, size, size] float32 in [0, 1]: each cropped L x L map resized by area (see area_matrix).

    A cell holds the attention mass of its source rectangle divided by the
    number of source rows it covers (L / S), so a cell's value is the mean
    row's mass that falls in it. Inputs of one length share their matrix, so
    each length is two matrix products over all its maps.
    """
    out = np.zeros(b.attn.shape[:3] + (size, size), dtype=np.float32)
    for length in np.unique(b.lengths):
        rows = np.flatnonzero(b.lengths == length)
        L = int(length)
        mat = area_matrix(L, size, L).astype(np.float32)  # [S, L]
        half = np.tensordot(b.attn[rows, :, :, :L, :L], mat, axes=([-1], [1]))  # [g, layer, head, query, S]
        out[rows] = np.moveaxis(np.tensordot(mat, half, axes=([1], [3])), 0, 3) / (L / size)
    return np.clip(out, 0.0, 1.0)
