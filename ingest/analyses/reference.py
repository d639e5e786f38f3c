"""Plain per-map loops: each statistic written out for one cropped L x L map at a time.

They restate the definitions as directly as possible (one input, one head,
loops over tokens and pairs), with none of the bucket arithmetic of the
vectorised modules. Tests compare the two on real maps; ``bench_analyses``
measures how much faster the vectorised pass is.
"""

from __future__ import annotations

import math

import numpy as np

from bertsecrets.ingest.analyses import patterns
from bertsecrets.core.tasks import ROLES
from bertsecrets.ingest.analyses.driver import Pass
from bertsecrets.ingest.analyses.tokens import FEATURES, Annotations


def head_stats_map(m: np.ndarray, sep: np.ndarray, punct: np.ndarray) -> dict[str, float]:
    """Clark et al.'s statistics of one map ``m[L, L]``; ``sep`` and ``punct`` are [L] masks."""
    L = len(m)
    q, k = np.indices((L, L))
    return {
        "entropy": _entropy(m),
        "attn_cls": float(np.mean(m[:, 0])),
        "attn_sep": float(np.mean(m[:, sep].sum(axis=1))),
        "attn_punct": float(np.mean(m[:, punct].sum(axis=1))),
        "attn_self": float(np.mean([m[i, i] for i in range(L)])),
        "attn_prev": float(np.mean([m[i, i - 1] for i in range(1, L)])),
        "attn_next": float(np.mean([m[i, i + 1] for i in range(L - 1)])),
        "attn_distance": float(np.mean((m * np.abs(q - k)).sum(axis=1))),
    }


def _entropy(m: np.ndarray) -> float:
    """Mean over rows of -sum p log p (0 log 0 = 0)."""
    logs = np.log(np.where(m > 0, m, 1.0))
    return float(np.mean(-(m * logs).sum(axis=1)))


def feature_map(m: np.ndarray, words: list[list[int]], types: list[set[str]]) -> np.ndarray:
    """[feature]: the paper's Fig. 6 value of one map, NaN for the types the input lacks."""
    L = len(m)
    out = np.full(len(FEATURES), np.nan)
    for f, name in enumerate(FEATURES):
        values = [sum(m[:, p].sum() for p in pieces) / L for pieces, t in zip(words, types) if name in t]
        if values:
            out[f] = max(values)
    return out


def cls_share_map(m: np.ndarray, words: list[list[int]], types: list[set[str]]) -> np.ndarray:
    """[feature]: the share of [CLS]'s attention on the pieces of each type (NaN when none)."""
    out = np.full(len(FEATURES), np.nan)
    for f, name in enumerate(FEATURES):
        pieces = sorted({p for ps, t in zip(words, types) if name in t for p in ps})
        if pieces:
            out[f] = sum(m[0, p] for p in pieces)
    return out


def relation_map(m: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    return max(m[q, k] for q, k in pairs) if pairs else float("nan")


def cosine_map(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / math.sqrt((a @ a) * (b @ b)))


def geometry_map(m: np.ndarray, segment: np.ndarray, special: np.ndarray, sep: np.ndarray) -> np.ndarray:
    """[feature] in the order of patterns.GEOMETRY for one map."""
    L = len(m)
    q, k = np.indices((L, L))
    cls, sep_mass = m[:, 0].mean(), m[:, sep].sum(axis=1).mean()
    near = (m * ((np.abs(q - k) > 0) & (np.abs(q - k) <= patterns.DIAGONAL_WINDOW))).sum(axis=1).mean()
    two = bool((segment == 1).any())
    inside = (m * ((segment[k] == segment[q]) & ~special[k])).sum(axis=1).mean()
    block = min(max(inside / max(1 - cls - sep_mass, 1e-6), 0.0), 1.0) if two else 0.0
    entropy = _entropy(m) / math.log(L)
    return np.array([
        cls, sep_mass, near, np.mean([m[q, q - 1] for q in range(1, L)]), np.mean([m[q, q + 1] for q in range(L - 1)]),
        np.mean(np.diag(m)), block, spread_map(m, segment, special), entropy, m.mean(axis=0).max(), float(two),
        float(L),
    ])


def spread_map(m: np.ndarray, segment: np.ndarray, special: np.ndarray) -> float:
    """Block spread S of one map: how far each query's in-sentence attention reaches, against an even spread."""
    L = len(m)
    q, k = np.indices((L, L))
    own = (segment[k] == segment[q]) & ~special[k]  # [query, key]: a word piece of the query's sentence
    distance = np.abs(q - k)
    reach = (own * distance).sum(axis=1) / np.maximum(own.sum(axis=1), 1)  # [query]: mean distance to its sentence
    reached = (m * own * distance).sum()
    even = ((m * own).sum(axis=1) * reach).sum()  # each query's in-sentence mass, spread evenly over its sentence
    return float(reached / even) if even > 0 else 0.0


def rule_map(vertical: float, diagonal: float, block: float, spread: float, two: bool) -> tuple[str, float]:
    """The rule labeller's class and confidence for one map's masses, as an if-chain in the order of the rules."""
    t = patterns

    def above(x: float, threshold: float) -> float:
        return min(max((x - threshold) / (1 - threshold), 0.0), 1.0)

    def below(x: float, threshold: float) -> float:
        return min(max((threshold - x) / threshold, 0.0), 1.0)

    to_both = max(below(vertical, t.BOTH_MIN), below(diagonal, t.BOTH_MIN))
    if vertical >= t.BOTH_MIN and diagonal >= t.BOTH_MIN:
        return "vertical+diagonal", min(above(vertical, t.BOTH_MIN), above(diagonal, t.BOTH_MIN))
    if vertical >= t.VERTICAL_MIN:
        return "vertical", min(above(vertical, t.VERTICAL_MIN), to_both)
    if diagonal >= t.DIAGONAL_MIN:
        return "diagonal", min(above(diagonal, t.DIAGONAL_MIN), below(vertical, t.VERTICAL_MIN), to_both)
    stay = min(below(vertical, t.VERTICAL_MIN), below(diagonal, t.DIAGONAL_MIN), to_both)
    if two and block >= t.BLOCK_MIN and spread >= t.SPREAD_MIN:
        return "block", min(above(block, t.BLOCK_MIN), above(spread, t.SPREAD_MIN), stay)
    to_block = max(below(block, t.BLOCK_MIN), below(spread, t.SPREAD_MIN)) if two else 1.0
    return "heterogeneous", min(stay, to_block)


def resize_map(m: np.ndarray, size: int) -> np.ndarray:
    """Area resizing of one map written cell by cell: the mass of each cell's rectangle per source row."""
    L = len(m)
    step = L / size
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            total = 0.0
            for q in range(L):
                wq = max(0.0, min((i + 1) * step, q + 1) - max(i * step, q))
                if wq:
                    for k in range(L):
                        wk = max(0.0, min((j + 1) * step, k + 1) - max(j * step, k))
                        total += wq * wk * m[q, k]
            out[i, j] = total / step
    return np.clip(out, 0.0, 1.0)


def _example_words(ann: Annotations, e: int) -> tuple[list[list[int]], list[set[str]]]:
    words, types = [], []
    for w in range(ann.words.shape[1]):
        pieces = np.flatnonzero(ann.words[e, w]).tolist()
        if pieces:
            words.append(pieces)
            types.append({FEATURES[f] for f in np.flatnonzero(ann.word_features[e, w])})
    return words, types


def loop_pass(store, run_id: str, ann: Annotations, examples: list[int] | None = None) -> Pass:
    """The statistics and geometry of bulk_pass, map by map (only ``examples`` when given; the rest stay 0)."""
    from bertsecrets.ingest.analyses.stats import STATS

    readers = [store.maps(run_id, role) for role in ROLES]
    n, n_layers, n_heads = len(readers[0]), readers[0].n_layers, readers[0].n_heads
    shape = (len(ROLES), n, n_layers, n_heads)
    out = Pass(
        stats={name: np.zeros(shape) for name in STATS}, features=np.zeros(shape + (len(FEATURES),)),
        cls=np.zeros(shape[:3] + (len(FEATURES),)), relations={name: np.zeros(shape) for name in ann.pairs},
        geometry=np.zeros(shape + (len(patterns.GEOMETRY),)), cosine=np.zeros(shape[1:]),
    )
    for e in range(n) if examples is None else examples:
        L = int(ann.lengths[e])
        sep, punct = ann.sep[e, :L], ann.punct[e, :L]
        words, types = _example_words(ann, e)
        pairs = {name: [(q, k) for x, q, k in rows if x == e] for name, rows in ann.pairs.items()}
        maps = [reader.example(e) for reader in readers]
        for r in range(len(ROLES)):
            for layer in range(n_layers):
                shares = []
                for head in range(n_heads):
                    m = maps[r][layer, head]
                    for name, value in head_stats_map(m, sep, punct).items():
                        out.stats[name][r, e, layer, head] = value
                    out.features[r, e, layer, head] = feature_map(m, words, types)
                    shares.append(cls_share_map(m, words, types))
                    for name, p in pairs.items():
                        out.relations[name][r, e, layer, head] = relation_map(m, p)
                    out.geometry[r, e, layer, head] = geometry_map(m, ann.segment[e, :L], ann.special[e, :L], sep)
                    if r == 0:
                        out.cosine[e, layer, head] = cosine_map(m, maps[1][layer, head])
                out.cls[r, e, layer] = np.mean(shares, axis=0)
    return out
