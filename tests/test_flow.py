"""Jensen-Shannon distances between heads, attention rollout and head families on hand-made maps with known answers."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon

from bertsecrets.core import flow
from bertsecrets.ingest.analyses import families


def _rows(rng: np.random.Generator, shape: tuple[int, ...], length: int) -> np.ndarray:
    """Rows of k / 255 that sum to exactly 1 (as a uint8 map set stores them when the rounding works out)."""
    out = np.zeros(shape + (length,), dtype=np.int64)
    for idx in np.ndindex(*shape):
        cuts = np.sort(rng.integers(0, 256, length - 1))
        out[idx] = np.diff(np.concatenate([[0], cuts, [255]]))
        out[idx][rng.random(length) < 0.4] = 0  # many zeros, as in real maps
        out[idx][0] += 255 - out[idx].sum()
    return (out / 255).astype(np.float32)


def test_js_distance_of_hand_made_rows():
    p, q = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])
    # m = (.25, .5, .25): H(m) = 1.5 bits, H(p) = H(q) = 1 bit, so the divergence is 0.5 and the distance its root.
    assert np.isclose(flow.js_divergence(p, q), 0.5)
    assert np.isclose(flow.js_distance(p, q), np.sqrt(0.5))
    assert np.isclose(flow.js_distance(p, q), jensenshannon(p, q, base=2))
    assert np.isclose(flow.js_distance(np.array([1.0, 0]), np.array([0, 1.0])), 1.0)  # disjoint: the maximum
    assert flow.js_distance(p, p) == 0


def test_head_distances_equal_scipy_row_by_row():
    rng = np.random.default_rng(1)
    attn = _rows(rng, (5, 7), 7)  # 5 heads of one input, L = 7
    assert flow.quantised(attn)
    naive = np.zeros((5, 5))
    for a in range(5):
        for b in range(5):
            naive[a, b] = np.mean([jensenshannon(attn[a, q], attn[b, q], base=2) for q in range(7)])
    for exact in (True, False):
        got = flow.head_distances(attn, exact)
        assert np.allclose(got, naive, atol=1e-6), exact
        assert np.allclose(got, got.T) and np.all(np.diag(got) == 0)
    same = flow.same_head_distances(attn, attn[::-1], exact_uint8=True)
    assert np.allclose(same, naive[np.arange(5), np.arange(5)[::-1]], atol=1e-6)


def test_identical_heads_are_at_distance_zero():
    rng = np.random.default_rng(2)
    head = _rows(rng, (9,), 9)
    attn = np.stack([head, head, _rows(rng, (9,), 9)])
    for exact in (True, False):
        d = flow.head_distances(attn, exact)
        assert d[0, 1] == 0 and d[0, 2] > 0.1
    assert np.all(flow.same_head_distances(attn, attn, exact_uint8=True) == 0)


def _naive_rollout(attn: np.ndarray) -> np.ndarray:
    """Rollout written out: per layer the head mean, plus the identity, rows renormalised, products in a loop."""
    n_layers, _, length, _ = attn.shape
    out, product = [], np.eye(length)
    for layer in range(n_layers):
        a = 0.5 * attn[layer].mean(axis=0) + 0.5 * np.eye(length)
        a = a / a.sum(axis=1, keepdims=True)
        product = np.linalg.multi_dot([a, product])
        out.append(product)
    return np.array(out)


def test_rollout_equals_the_naive_products_with_padding():
    rng = np.random.default_rng(3)
    lengths = [4, 6, 3]
    width = 6
    batch = np.zeros((3, 3, 2, width, width))  # 3 inputs, 3 layers, 2 heads, padded to 6
    alone = []
    for i, length in enumerate(lengths):
        maps = rng.random((3, 2, length, length))
        maps /= maps.sum(axis=-1, keepdims=True)
        batch[i, ..., :length, :length] = maps
        alone.append(maps)
        expected = _naive_rollout(maps)
        assert np.allclose(flow.rollout(maps), expected)
    rolled = flow.rollout(batch, np.array(lengths))
    for i, length in enumerate(lengths):
        assert np.allclose(rolled[i, :, :length, :length], _naive_rollout(alone[i]))
        assert np.all(rolled[i, :, :, length:] == 0) and np.all(rolled[i, :, length:, :] == 0)
        assert np.allclose(rolled[i, :, :length].sum(axis=-1), 1.0)
    # Two layers by hand: identity maps leave the identity; a layer that looks only at token 0 moves half there.
    eye = np.broadcast_to(np.eye(2), (2, 1, 2, 2))
    assert np.allclose(flow.rollout(eye)[-1], np.eye(2))
    to_first = np.broadcast_to(np.array([[1.0, 0.0], [1.0, 0.0]]), (1, 1, 2, 2))
    assert np.allclose(flow.rollout(to_first)[0], [[1.0, 0.0], [0.5, 0.5]])


def test_two_families_of_heads_are_never_mixed():
    rng = np.random.default_rng(4)
    # Family A heads are near-diagonal maps, family B near-[CLS] maps: small distances within, large across.
    length, n = 8, 6
    diag = np.eye(length) * 0.9 + 0.1 / length
    cls = np.zeros((length, length))
    cls[:, 0] = 0.9
    cls += 0.1 / length
    heads = []
    for base in (diag, cls):
        for _ in range(n):
            noisy = base + rng.random((length, length)) * 0.05
            heads.append(noisy / noisy.sum(axis=1, keepdims=True))
    d = flow.head_distances(np.array(heads))
    fam = families.families(d)
    a, b = set(fam.labels[:n]), set(fam.labels[n:])
    assert not a & b
    assert families.MIN_FAMILIES <= fam.n_families <= families.MAX_FAMILIES and fam.silhouette is not None
    # The embedding keeps them apart: every head is nearer its family's centre than the other's.
    centres = np.array([fam.xy[:n].mean(axis=0), fam.xy[n:].mean(axis=0)])
    near = np.linalg.norm(fam.xy[:, None, :] - centres[None], axis=-1).argmin(axis=1)
    assert list(near) == [0] * n + [1] * n
    # Families are numbered by size, so the largest is family 0.
    assert np.bincount(fam.labels).argmax() == 0
