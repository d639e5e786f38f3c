"""Each statistic of the analyses on hand-made maps whose answer is known, padding included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bertsecrets.ingest.analyses import change, features, patterns, relations, stats
from bertsecrets.ingest.analyses.buckets import Bucket
from bertsecrets.ingest.analyses.tokens import FEATURES, Annotations

F = {name: i for i, name in enumerate(FEATURES)}


def annotations(lengths, first_sep=None, words=(), pairs=None, punct=()) -> Annotations:
    """Annotations of inputs [CLS] ... [SEP] (... [SEP]); ``words[e]`` lists (pieces, types) of input e."""
    n, width = len(lengths), max(lengths)
    segment = np.full((n, width), -1, dtype=np.int8)
    special = np.zeros((n, width), dtype=bool)
    sep = np.zeros((n, width), dtype=bool)
    punct_mask = np.zeros((n, width), dtype=bool)
    all_words = []
    for e, L in enumerate(lengths):
        split = (first_sep or [None] * n)[e]
        segment[e, :L] = 0
        if split is not None:
            segment[e, split + 1 : L] = 1
            sep[e, split] = True
        sep[e, L - 1] = True
        special[e, 0] = True
        special[e] |= sep[e]
        ws = [([0], {"cls"})] + [([p], {"sep"}) for p in np.flatnonzero(sep[e])] + list(words[e] if words else [])
        all_words.append(ws)
        for p in punct:
            punct_mask[e, p] = True
    k = max(len(w) for w in all_words)
    word_mask = np.zeros((n, k, width), dtype=bool)
    word_features = np.zeros((n, k, len(FEATURES)), dtype=bool)
    for e, ws in enumerate(all_words):
        for w, (pieces, types) in enumerate(ws):
            word_mask[e, w, pieces] = True
            for t in types:
                word_features[e, w, F[t]] = True
    pairs = {name: np.array(rows, dtype=np.int64).reshape(-1, 3) for name, rows in (pairs or {}).items()}
    return Annotations(np.array(lengths), segment, special, sep, punct_mask, word_mask, word_features, pairs)


def bucket(maps: list[np.ndarray], ann: Annotations, width: int | None = None) -> Bucket:
    """Maps [layer, head, L, L] of several inputs, zero-padded into one bucket array."""
    width = width or max(m.shape[-1] for m in maps)
    attn = np.zeros((len(maps), *maps[0].shape[:2], width, width), dtype=np.float32)
    for i, m in enumerate(maps):
        attn[i, :, :, : m.shape[-1], : m.shape[-1]] = m
    return Bucket(np.arange(len(maps)), attn, ann.take(np.arange(len(maps)), width))


def one(m: np.ndarray) -> np.ndarray:
    return m[None, None].astype(np.float32)


def previous_token(L: int) -> np.ndarray:
    m = np.zeros((L, L))
    m[0, 0] = 1
    for q in range(1, L):
        m[q, q - 1] = 1
    return m


def column(L: int, k: int) -> np.ndarray:
    m = np.zeros((L, L))
    m[:, k] = 1
    return m


def test_head_stats_of_a_previous_token_head_and_a_uniform_head_in_one_padded_bucket():
    L1, L2 = 5, 8
    b = bucket([one(previous_token(L1)), one(np.full((L2, L2), 1 / L2))], annotations([L1, L2], punct=[2]), width=16)
    s = {k: v[:, 0, 0] for k, v in stats.per_map(b).items()}
    # previous-token head: every query but [CLS] looks one back; [CLS] looks at itself.
    assert s["entropy"][0] == pytest.approx(0.0, abs=1e-6)
    assert s["attn_prev"][0] == pytest.approx(1.0)
    assert s["attn_next"][0] == pytest.approx(0.0)
    assert s["attn_self"][0] == pytest.approx(1 / L1)
    assert s["attn_cls"][0] == pytest.approx(2 / L1)  # queries 0 and 1
    assert s["attn_sep"][0] == pytest.approx(0.0)  # query L-1 looks at L-2, nobody at [SEP]
    assert s["attn_punct"][0] == pytest.approx(1 / L1)  # query 3 looks at the punctuation at 2
    assert s["attn_distance"][0] == pytest.approx((L1 - 1) / L1)
    # uniform head over 8 real tokens, padded to 16: padding must not count.
    assert s["entropy"][1] == pytest.approx(math.log(L2), rel=1e-5)
    assert s["attn_cls"][1] == pytest.approx(1 / L2)
    assert s["attn_sep"][1] == pytest.approx(1 / L2)
    assert s["attn_self"][1] == s["attn_prev"][1] == s["attn_next"][1] == pytest.approx(1 / L2)
    assert s["attn_distance"][1] == pytest.approx((L2 * L2 - 1) / (3 * L2), rel=1e-5)


def test_feature_attention_is_column_sum_over_L_max_over_tokens_of_the_type():
    L = 6
    m = np.zeros((L, L))
    m[:, 2] = 0.5  # noun A gets half of every query's attention
    m[:, 3] = 0.25  # noun B (two pieces 3 and 4) gets a quarter ...
    m[:, 4] = 0.125  # ... plus an eighth on its second piece
    m[:, 0] = 0.125
    words = [[([2], {"noun", "subject"}), ([3, 4], {"noun"}), ([1], {"verb"})]]
    b = bucket([one(m)], annotations([L], words=words))
    v = features.per_input(b)[0, 0, 0]
    assert v[F["noun"]] == pytest.approx(0.5)  # max(0.5, 0.375)
    assert v[F["subject"]] == pytest.approx(0.5)
    assert v[F["verb"]] == pytest.approx(0.0)  # present, receives nothing
    assert np.isnan(v[F["pronoun"]]) and np.isnan(v[F["negation"]])  # absent types are skipped
    assert v[F["cls"]] == pytest.approx(0.125)
    assert v[F["sep"]] == pytest.approx(0.0)


def test_cls_share_sums_the_attention_of_the_cls_row_over_the_pieces_of_each_type():
    L = 5
    m = np.full((L, L), 1 / L)
    m[0] = [0.1, 0.2, 0.3, 0.0, 0.4]  # [CLS]'s row
    other = m.copy()
    other[0] = [0.5, 0.1, 0.1, 0.1, 0.2]
    words = [[([1, 2], {"noun"}), ([2], {"subject"})]]
    b = bucket([np.stack([m, other])[None]], annotations([L], words=words))  # one layer, two heads
    share = features.cls_per_input(b)[0, 0]  # mean over the two heads
    assert share[F["noun"]] == pytest.approx(((0.2 + 0.3) + (0.1 + 0.1)) / 2)
    assert share[F["subject"]] == pytest.approx((0.3 + 0.1) / 2)
    assert share[F["cls"]] == pytest.approx((0.1 + 0.5) / 2)
    assert share[F["sep"]] == pytest.approx((0.4 + 0.2) / 2)
    assert np.isnan(share[F["verb"]])


def test_cosine_of_identical_disjoint_and_padded_maps():
    L = 6
    before = np.stack([previous_token(L), previous_token(L), np.full((L, L), 1 / L)])[None, None]  # 3 heads
    nxt = np.zeros((L, L))
    for q in range(L - 1):
        nxt[q, q + 1] = 1
    nxt[L - 1, L - 1] = 1
    after = np.stack([previous_token(L), nxt, np.full((L, L), 1 / L)])[None, None]
    c = change.cosine(before.astype(np.float32), after.astype(np.float32))[0, 0]
    assert c[0] == pytest.approx(1.0)
    assert c[1] == pytest.approx(0.0)  # no query looks at the same key in both
    assert c[2] == pytest.approx(1.0)
    padded_before = np.zeros((1, 3, 16, 16), dtype=np.float32)
    padded_after = np.zeros((1, 3, 16, 16), dtype=np.float32)
    padded_before[0, :, :L, :L], padded_after[0, :, :L, :L] = before[0, 0], after[0, 0]
    assert np.allclose(change.cosine(padded_before[None], padded_after[None])[0, 0], c)


def test_relation_score_is_the_max_over_a_sentences_pairs_and_nan_without_pairs():
    attn = np.zeros((3, 1, 2, 4, 4))
    attn[0, 0, 0, 1, 2], attn[0, 0, 0, 2, 3] = 0.3, 0.7
    attn[0, 0, 1, 1, 2] = 0.9
    attn[2, 0, 0, 3, 0] = 0.4
    pairs = np.array([[0, 1, 2], [0, 2, 3], [2, 3, 0]])
    out = relations.per_input(attn, pairs)
    assert out[0, 0].tolist() == pytest.approx([0.7, 0.9])
    assert np.isnan(out[1]).all()
    assert out[2, 0].tolist() == pytest.approx([0.4, 0.0])


def test_flag_marks_heads_above_the_99th_percentile():
    scores = np.arange(200, dtype=float).reshape(10, 20)
    flagged = relations.flag(scores)
    assert flagged.sum() == 2 and flagged[9, 18] and flagged[9, 19]
    assert not relations.flag(np.full((2, 2), np.nan)).any()


def test_rows_of_renumbers_pairs_to_bucket_rows():
    pairs = np.array([[0, 1, 2], [3, 4, 5], [5, 1, 1], [3, 6, 7]])
    out = relations.rows_of(pairs, np.array([5, 3]), 6)
    assert out.tolist() == [[0, 1, 1], [1, 4, 5], [1, 6, 7]]


# -- pattern classes ----------------------------------------------------------------


def _label(m: np.ndarray, L: int, first_sep: int | None = None) -> str:
    b = bucket([one(m)], annotations([L], first_sep=[first_sep]))
    label, confidence = patterns.rules(patterns.geometry(b))
    assert 0.0 <= confidence[0, 0, 0] <= 1.0
    return patterns.PATTERN_CLASSES[label[0, 0, 0]]


def test_rules_label_the_five_classes_of_hand_made_maps():
    L = 12
    assert _label(column(L, 0), L) == "vertical"
    assert _label(0.5 * column(L, 0) + 0.5 * column(L, L - 1), L) == "vertical"
    assert _label(previous_token(L), L) == "diagonal"
    assert _label(0.5 * column(L, 0) + 0.5 * previous_token(L), L) == "vertical+diagonal"
    L, split = 40, 19  # sentences long enough that in-sentence attention is not local
    block = np.zeros((L, L))
    for q in range(L):
        keys = list(range(1, split)) if q <= split else list(range(split + 1, L - 1))
        block[q, keys] = 1 / len(keys)
    assert _label(block, L, first_sep=split) == "block"
    assert _label(block, L) != "block"  # one sentence: no blocks
    assert _label(np.full((L, L), 1 / L), L, first_sep=split) == "heterogeneous"


def test_geometry_masses_of_a_previous_token_map():
    L = 10
    geo = patterns.geometry(bucket([one(previous_token(L))], annotations([L])))[0, 0, 0]
    g = dict(zip(patterns.GEOMETRY, geo))
    assert g["prev"] == pytest.approx(1.0)
    assert g["diagonal"] == pytest.approx((L - 1) / L)  # [CLS] looks at itself
    assert g["cls"] == pytest.approx(2 / L)
    assert g["length"] == L and g["two_segments"] == 0


def test_area_resizing_keeps_shapes_and_scale():
    assert np.allclose(patterns.area_matrix(8, 8, 10)[:, :8], np.eye(8))
    for L, S in ((37, 8), (5, 8), (64, 32)):
        mat = patterns.area_matrix(L, S, L + 3)
        assert np.allclose(mat.sum(axis=1), L / S)
        assert np.allclose(mat[:, L:], 0)
    L, S = 40, 8
    uniform = patterns.resize(bucket([one(np.full((L, L), 1 / L))], annotations([L]), width=48), S)[0, 0, 0]
    assert np.allclose(uniform, 1 / S, atol=1e-6)
    vertical = patterns.resize(bucket([one(column(L, 0))], annotations([L])), S)[0, 0, 0]
    assert np.allclose(vertical[:, 0], 1.0) and np.allclose(vertical[:, 1:], 0.0)
    diagonal = patterns.resize(bucket([one(np.eye(L))], annotations([L])), S)[0, 0, 0]
    assert np.allclose(diagonal, np.eye(S), atol=1e-6)


def test_resize_matches_the_cell_by_cell_definition():
    from bertsecrets.ingest.analyses.reference import resize_map

    rng = np.random.default_rng(0)
    for L, S in ((13, 8), (6, 8)):
        m = rng.random((L, L))
        m /= m.sum(axis=1, keepdims=True)
        fast = patterns.resize(bucket([one(m)], annotations([L]), width=16), S)[0, 0, 0]
        assert np.allclose(fast, resize_map(m, S), atol=1e-5)
