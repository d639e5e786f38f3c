"""Pattern classes of maps (paper 4.1, Fig. 2): geometric features, a rule-based labeller, and resizing for the CNN.

The paper's five classes (store.labels.PATTERN_CLASSES) are decided here
from four masses of a map, each a mean over its queries (the thresholds and
their order live in bertsecrets.core.patterns, which the figures read too):

- vertical mass V: attention to the [CLS] and [SEP] columns;
- diagonal mass D: attention to the keys one or two positions before or
  after the query (the previous and next token; two, because a word split
  into pieces puts the neighbouring word two pieces away, and heads that
  follow the previous word draw a band rather than a line);
- block share B (two-sentence inputs): of the attention not given to [CLS]
  or [SEP], the share that stays inside the query's own sentence (the two
  blocks on the diagonal, split at the first [SEP]). By chance it is about
  (n1^2 + n2^2) / (n1 + n2)^2, 0.5 for two sentences of equal length;
- block spread S: the attention-weighted distance |q - k| of that
  in-sentence attention, divided by what it would be if each query spread
  the same mass evenly over its sentence's pieces. A block reaches across
  its sentence (S near 1); a band along the diagonal, however broad, stays
  local (half-width w in a sentence of n pieces: S about 3w / 2n), though
  its B is as high as a block's.

The rules, in order:

1. vertical + diagonal: V >= BOTH_MIN and D >= BOTH_MIN;
2. vertical: V >= VERTICAL_MIN;
3. diagonal: D >= DIAGONAL_MIN;
4. block: a two-sentence input, B >= BLOCK_MIN and S >= SPREAD_MIN (an input
   of one sentence is never a block: a single-sentence task has four classes);
5. heterogeneous: anything else.

The rule's confidence is how far the map stands from the nearest threshold
whose crossing would change its class, each mass's distance scaled to [0, 1]
((x - t) / (1 - t) above a threshold t, (t - x) / t below it): 0 on a
boundary, 1 for a pure pattern. To leave a region bounded by two masses
(vertical+diagonal from outside, block from inside) both must cross, so the
larger distance counts there.
"""

from __future__ import annotations

import numpy as np

from bertsecrets.core.patterns import (BLOCK_MIN, BOTH_MIN, DIAGONAL_MIN, DIAGONAL_WINDOW, SPREAD_MIN, THRESHOLDS,
                                       VERTICAL_MIN)
from bertsecrets.ingest.analyses.buckets import Bucket
from bertsecrets.store.labels import PATTERN_CLASSES

__all__ = ["BLOCK_MIN", "BOTH_MIN", "DIAGONAL_MIN", "DIAGONAL_WINDOW", "SPREAD_MIN", "THRESHOLDS", "VERTICAL_MIN",
           "GEOMETRY", "geometry", "masses", "rules", "area_matrix", "resize"]

#: Geometric features of a map: the rule masses and more shape, for the scikit-learn classifier.
GEOMETRY = ("cls", "sep", "diagonal", "prev", "next", "self", "block", "spread", "entropy", "max_column",
            "two_segments", "length")


def geometry(b: Bucket) -> np.ndarray:
    """[n, layer, head, feature] in the order of GEOMETRY."""
    received = b.received
    cls = received[..., 0]
    sep = np.einsum("nlhk,nk->nlh", received, b.ann.sep.astype(np.float32))
    seg = b.ann.segment
    same = (seg[:, :, None] == seg[:, None, :]) & ~b.ann.special[:, None, :] & b.valid[:, :, None]  # [n, q, k]
    w = b.query_weights.astype(np.float32)
    distance = np.abs(np.subtract.outer(np.arange(b.width), np.arange(b.width))).astype(np.float32)
    reach = (same * distance).sum(axis=-1) / np.maximum(same.sum(axis=-1), 1)  # [n, q]: mean |q - k| over its sentence
    # Three sums over (query, key): the in-sentence mass, its distance, the distance of the same mass spread evenly.
    # Three separate contractions: numpy turns each into a matrix-vector product, five times faster than one
    # contraction with a channel axis.
    inside, far, even = (np.einsum("nlhqk,nqk->nlh", b.attn, (same * x).astype(np.float32), optimize=True)
                         for x in (w[:, :, None], distance * w[:, :, None], (w * reach)[:, :, None]))
    block = inside / np.maximum(1.0 - cls - sep, 1e-6)
    spread = np.where(even > 0, far / np.maximum(even, 1e-12), 0.0)
    two = b.ann.two_segments()
    entropy = np.einsum("nlhq,nq->nlh", b.row_entropy, w) / np.log(b.lengths)[:, None, None]
    near = sum(np.diagonal(b.attn, offset=o, axis1=-2, axis2=-1).sum(axis=-1)
               for o in range(-DIAGONAL_WINDOW, DIAGONAL_WINDOW + 1) if o) / b.lengths[:, None, None]
    shape = cls.shape
    return np.stack(
        [
            cls, sep, near, b.diagonal_mean(-1), b.diagonal_mean(1), b.diagonal_mean(0),
            np.where(two[:, None, None], np.clip(block, 0.0, 1.0), 0.0), spread, entropy, received.max(axis=-1),
            np.broadcast_to(two[:, None, None], shape).astype(np.float32),
            np.broadcast_to(b.lengths[:, None, None], shape).astype(np.float32),
        ],
        axis=-1,
    ).astype(np.float32)


def masses(geo: np.ndarray) -> dict[str, np.ndarray]:
    """The four masses the rules read (V, D, B, S) and whether the input has two sentences, from ``geometry``."""
    col = {name: geo[..., i] for i, name in enumerate(GEOMETRY)}
    return {"vertical": col["cls"] + col["sep"], "diagonal": col["diagonal"], "block": col["block"],
            "spread": col["spread"], "two": col["two_segments"] > 0}


def _above(x: np.ndarray, t: float) -> np.ndarray:
    return np.clip((x - t) / (1.0 - t), 0.0, 1.0)


def _below(x: np.ndarray, t: float) -> np.ndarray:
    return np.clip((t - x) / t, 0.0, 1.0)


def rules(geo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rule labels (indices into PATTERN_CLASSES) and confidences for maps described by ``geometry``."""
    m = masses(geo)
    v, d, block, spread, two = m["vertical"], m["diagonal"], m["block"], m["spread"], m["two"]
    both = (v >= BOTH_MIN) & (d >= BOTH_MIN)
    vertical = ~both & (v >= VERTICAL_MIN)
    diagonal = ~both & ~vertical & (d >= DIAGONAL_MIN)
    blocky = ~both & ~vertical & ~diagonal & two & (block >= BLOCK_MIN) & (spread >= SPREAD_MIN)
    label = np.select([both, vertical, diagonal, blocky], [2, 0, 1, 3], default=4)

    to_both = np.maximum(_below(v, BOTH_MIN), _below(d, BOTH_MIN))  # both masses must rise to make it vertical+diagonal
    to_block = np.where(two, np.maximum(_below(block, BLOCK_MIN), _below(spread, SPREAD_MIN)), 1.0)
    stay = np.minimum(_below(v, VERTICAL_MIN), _below(d, DIAGONAL_MIN))
    confidence = np.select(
        [both, vertical, diagonal, blocky],
        [np.minimum(_above(v, BOTH_MIN), _above(d, BOTH_MIN)),
         np.minimum(_above(v, VERTICAL_MIN), to_both),
         np.minimum(_above(d, DIAGONAL_MIN), to_both),  # here to_both is V's distance below BOTH_MIN
         np.minimum.reduce([_above(block, BLOCK_MIN), _above(spread, SPREAD_MIN), stay, to_both])],
        default=np.minimum.reduce([stay, to_both, to_block]),
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
