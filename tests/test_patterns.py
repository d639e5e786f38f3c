"""The pattern rules on hand-made maps (block, broad bands, one sentence, each threshold from both sides),
the vectorised rules against the per-map reference, and how the classifiers treat one-sentence inputs."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets.core import patterns as P
from bertsecrets.ingest.analyses import classifier as C
from bertsecrets.ingest.analyses import patterns, reference
from bertsecrets.store.labels import PATTERN_CLASSES
from test_analyses_stats import annotations, bucket, column, one

L, SPLIT = 40, 19  # two sentences of 18 word pieces: [CLS] 1..18 [SEP] 20..38 [SEP]


def classify(m: np.ndarray, first_sep: int | None = SPLIT) -> tuple[str, float, dict[str, float]]:
    """The rules' class, confidence and geometry of one map; the geometry checked against the per-map reference."""
    n = len(m)
    b = bucket([one(m)], annotations([n], first_sep=[first_sep]), width=n + 5)  # padded: padding must not count
    geo = patterns.geometry(b)
    ann = b.ann
    slow = reference.geometry_map(m, ann.segment[0, :n], ann.special[0, :n], ann.sep[0, :n])
    assert np.allclose(geo[0, 0, 0], slow, atol=1e-5)
    label, confidence = patterns.rules(geo)
    return PATTERN_CLASSES[label[0, 0, 0]], float(confidence[0, 0, 0]), dict(zip(patterns.GEOMETRY, geo[0, 0, 0]))


def exact_block(n: int, split: int) -> np.ndarray:
    """Every query spreads its attention evenly over the word pieces of its own sentence ([CLS] with the first)."""
    m = np.zeros((n, n))
    for q in range(n):
        keys = list(range(1, split)) if q <= split else list(range(split + 1, n - 1))
        m[q, keys] = 1 / len(keys)
    return m


def band(n: int, half_width: int) -> np.ndarray:
    """Every query spreads its attention evenly over the tokens at most ``half_width`` away, across sentences too."""
    m = np.zeros((n, n))
    for q in range(n):
        lo, hi = max(0, q - half_width), min(n, q + half_width + 1)
        m[q, lo:hi] = 1 / (hi - lo)
    return m


def with_cls(v: float, n: int = L) -> np.ndarray:
    """``v`` of each query's attention on [CLS], the rest spread evenly over the word pieces (no [SEP])."""
    m = np.zeros((n, n))
    m[:, 0] = v
    m[:, 1 : n - 1] = (1 - v) / (n - 2)
    return m


def test_an_exact_block_is_a_block_whose_attention_spreads_over_its_whole_sentence():
    label, confidence, g = classify(exact_block(L, SPLIT))
    assert label == "block"
    assert g["block"] == pytest.approx(1.0) and g["spread"] == pytest.approx(1.0, abs=1e-5)
    assert g["cls"] == g["sep"] == 0.0
    # Nearest threshold: D (the 4 neighbours of 18 evenly attended pieces, about 0.2) below DIAGONAL_MIN.
    assert confidence == pytest.approx((P.DIAGONAL_MIN - g["diagonal"]) / P.DIAGONAL_MIN, abs=1e-5)


@pytest.mark.parametrize("half_width", [1, 2, 3, 4, 5, 6, 7])
def test_a_band_along_the_diagonal_is_never_a_block_however_broad(half_width):
    label, _, g = classify(band(L, half_width))
    assert g["block"] >= P.BLOCK_MIN  # it keeps to its sentences as a block does: the share alone would say block
    assert g["spread"] < P.SPREAD_MIN  # but it stays local
    assert label == ("diagonal" if g["diagonal"] >= P.DIAGONAL_MIN else "heterogeneous")
    assert label == ("diagonal" if half_width <= 4 else "heterogeneous")  # D = 4 / (2w + 1) away from the edges


def test_a_band_as_wide_as_the_sentence_is_a_block():
    # Half-width 10 around any piece of an 18-piece sentence covers most of it.
    label, _, g = classify(band(L, 10))
    assert g["spread"] >= P.SPREAD_MIN and label == "block"


def test_one_sentence_is_never_a_block():
    m = np.zeros((L, L))
    m[:, 1 : L - 1] = 1 / (L - 2)  # the exact block of one sentence: evenly over all its pieces
    label, _, g = classify(m, first_sep=None)
    assert label == "heterogeneous" and g["two_segments"] == 0 and g["block"] == 0.0
    assert g["spread"] == pytest.approx(1.0, abs=1e-5)  # spread is still measured (a classifier feature)
    label, _, _ = classify(exact_block(L, SPLIT), first_sep=None)  # two blocks drawn, but the input has one sentence
    assert label != "block"
    rng = np.random.default_rng(1)
    for _ in range(20):
        m = rng.dirichlet(np.full(L, 0.3), size=L)
        assert classify(m, first_sep=None)[0] != "block"


def test_the_vertical_threshold_from_both_sides_with_low_confidence_at_it():
    for v, want in ((0.4999, "heterogeneous"), (0.5, "vertical"), (0.5001, "vertical")):
        label, confidence, g = classify(with_cls(v), first_sep=None)
        assert g["cls"] + g["sep"] == pytest.approx(v, abs=1e-6)
        assert label == want and confidence < 1e-3, v
    label, confidence, _ = classify(column(L, 0), first_sep=None)
    # All on [CLS], V = 1; queries 1 and 2 have [CLS] as a neighbour (D = 2 / L), which keeps it off vertical+diagonal.
    assert label == "vertical" and confidence == pytest.approx((P.BOTH_MIN - 2 / L) / P.BOTH_MIN)
    label, confidence, _ = classify(with_cls(0.75), first_sep=None)
    assert label == "vertical" and confidence == pytest.approx(0.5, abs=1e-5)  # (0.75 - 0.5) / (1 - 0.5)
    label, confidence, _ = classify(with_cls(0.25), first_sep=None)
    # V's distance below 0.5 is 0.5; D (0.75 * 4/38, about 0.08) keeps it 0.8 away from diagonal.
    assert label == "heterogeneous" and confidence == pytest.approx(0.5, abs=1e-5)


def _geometry(v: float, d: float, b: float, s: float, two: bool = True) -> np.ndarray:
    geo = np.zeros(len(patterns.GEOMETRY), dtype=np.float32)
    col = {name: i for i, name in enumerate(patterns.GEOMETRY)}
    geo[col["cls"]], geo[col["diagonal"]], geo[col["block"]], geo[col["spread"]] = v, d, b, s
    geo[col["two_segments"]] = float(two)
    return geo


@pytest.mark.parametrize("name, inside, outside, inside_class, outside_class", [
    ("vertical", (0.5, 0.1, 0.5, 0.5), (0.4999, 0.1, 0.5, 0.5), "vertical", "heterogeneous"),
    ("diagonal", (0.1, 0.4, 0.5, 0.2), (0.1, 0.3999, 0.5, 0.2), "diagonal", "heterogeneous"),
    ("vertical+diagonal", (0.3, 0.35, 0.9, 0.2), (0.2999, 0.35, 0.9, 0.2), "vertical+diagonal", "heterogeneous"),
    ("block share", (0.1, 0.1, 0.8, 0.9), (0.1, 0.1, 0.7999, 0.9), "block", "heterogeneous"),
    ("block spread", (0.1, 0.1, 0.9, 0.6), (0.1, 0.1, 0.9, 0.5999), "block", "heterogeneous"),
])
def test_each_threshold_from_both_sides(name, inside, outside, inside_class, outside_class):
    geo = np.stack([_geometry(*inside), _geometry(*outside)])
    label, confidence = patterns.rules(geo)
    assert [PATTERN_CLASSES[i] for i in label] == [inside_class, outside_class], name
    assert (confidence < 1e-3).all(), name
    for g, lab, conf in zip(geo, label, confidence):
        m = patterns.masses(g)
        assert reference.rule_map(float(m["vertical"]), float(m["diagonal"]), float(m["block"]), float(m["spread"]),
                                  bool(m["two"])) == (PATTERN_CLASSES[lab], pytest.approx(float(conf), abs=1e-6))


def _random_maps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Maps [n, n] mixing the five patterns with random weights and noise, so every class turns up."""
    split = n // 2 - 1
    templates = [column(n, 0), column(n, n - 1), band(n, 1), band(n, 5), exact_block(n, split)]
    weights = rng.dirichlet(np.full(len(templates) + 1, 0.4))
    noise = rng.dirichlet(np.full(n, rng.uniform(0.05, 2.0)), size=n)
    return sum(w * t for w, t in zip(weights, templates)) + weights[-1] * noise


def test_the_rules_agree_with_the_per_map_reference_on_random_maps_of_one_and_two_sentences():
    rng = np.random.default_rng(0)
    lengths = [12, 33, 9, 40, 21, 17]
    first_sep = [5, None, 3, None, 9, None]  # every other input has one sentence
    maps = [np.stack([np.stack([_random_maps(rng, n) for _ in range(6)]) for _ in range(5)]) for n in lengths]
    b = bucket(maps, annotations(lengths, first_sep=first_sep), width=48)
    geo = patterns.geometry(b)
    labels, confidence = patterns.rules(geo)
    seen = set()
    for e, n in enumerate(lengths):
        seg, special, sep = b.ann.segment[e, :n], b.ann.special[e, :n], b.ann.sep[e, :n]
        for layer in range(5):
            for head in range(6):
                slow = reference.geometry_map(maps[e][layer, head], seg, special, sep)
                assert np.allclose(geo[e, layer, head], slow, atol=1e-5)
                col = dict(zip(patterns.GEOMETRY, slow))
                want = reference.rule_map(col["cls"] + col["sep"], col["diagonal"], col["block"], col["spread"],
                                          bool(col["two_segments"]))
                got = PATTERN_CLASSES[labels[e, layer, head]]
                assert (got, float(confidence[e, layer, head])) == (want[0], pytest.approx(want[1], abs=1e-4))
                assert first_sep[e] is not None or got != "block"
                seen.add(got)
    assert seen == set(PATTERN_CLASSES)  # every branch of the rules was compared


# -- the classifiers on one-sentence inputs -----------------------------------------


def test_block_is_ruled_out_of_the_classifiers_probabilities_on_one_sentence_maps():
    probs = np.array([[0.1, 0.1, 0.1, 0.6, 0.1], [0.1, 0.1, 0.1, 0.6, 0.1], [0.0, 0.0, 0.0, 1.0, 0.0]])
    two = np.array([True, False, False])
    out = C.rule_out_block(probs, two)
    assert np.allclose(out[0], probs[0])  # two sentences: unchanged
    assert out[1, C.BLOCK] == 0 and np.allclose(out[1], [0.25, 0.25, 0.25, 0, 0.25])
    assert out[2, C.BLOCK] == 0 and np.allclose(out[2].sum(), 1)  # nothing but block: the other four evenly
    assert (out.argmax(axis=1) != C.BLOCK).tolist() == [False, True, True]


def test_block_labels_of_one_sentence_maps_are_left_out_of_training():
    ts = C.TrainingSet(np.arange(24).reshape(6, 4), np.array([3, 3, 3, 0, 4, 3]), "person")
    kept = C.without_one_sentence_blocks(ts, np.array([True, False, True, False, False, False]))
    assert kept.labels.tolist() == [3, 3, 0, 4] and kept.where[:, 0].tolist() == [0, 8, 12, 16]
    assert kept.dropped == {"block on one sentence": 2}
    # usable drops the classes left with one map, and keeps the record of the block labels.
    assert C.usable(kept).dropped == {"block on one sentence": 2, "vertical": 1, "heterogeneous": 1}
    assert C.without_one_sentence_blocks(ts, np.ones(6, dtype=bool)) is ts


def test_cross_validation_scores_the_predictions_with_block_ruled_out():
    # A classifier that always prefers block, then vertical: right on one-sentence maps only once block is ruled out.
    x = np.zeros((20, 1))
    y = np.array([0] * 10 + [4] * 10)
    fit = lambda x, y: None  # noqa: E731
    predict = lambda model, x: np.tile([0.3, 0.0, 0.0, 0.5, 0.2], (len(x), 1))  # noqa: E731
    two = np.zeros(20, dtype=bool)
    assert C.cross_validate(fit, predict, x, y, 2) == 0.0
    assert C.cross_validate(fit, predict, x, y, 2, two=two) == pytest.approx(1 / 3)  # vertical right, heterogeneous not
