"""How attention compares and composes: Jensen-Shannon distances between attention rows, and attention rollout.

Plain numpy, shared by the analyses (which store the results) and the browser
(which rolls out the input on screen), so both compute the same numbers.

Jensen-Shannon divergence of two rows p and q, in bits (base 2, so it lies in
[0, 1]): ``JSD = H(m) - (H(p) + H(q)) / 2`` with ``m = (p + q) / 2`` and
``H(x) = -sum x log2 x`` (0 log 0 = 0). The *distance* is its square root
(scipy's ``jensenshannon(p, q, base=2)``), a metric. Two heads' distance on
one input is the mean of the row distances over the input's real query rows;
over a data set, the mean over inputs (every input weighs the same).

Attention rollout (Abnar and Zuidema 2020): per layer, the mean of its heads'
maps mixed half and half with the identity (the residual connection), rows
renormalised, then multiplied through the layers: ``R_1 = A_1``,
``R_l = A_l @ R_(l-1)``. Row q of ``R_l`` says how much of token q's
representation after layer l comes from each input token.
"""

from __future__ import annotations

import numpy as np

#: Uint8 maps hold k / 255; the mean of two holds s / 510 with s = k1 + k2. ``XLOGX_510[s]`` is
#: (s / 510) log2 (s / 510), so the entropy of a row of means is a table look-up, not a logarithm.
XLOGX_510 = np.zeros(511, dtype=np.float64)
XLOGX_510[1:] = (np.arange(1, 511) / 510) * np.log2(np.arange(1, 511) / 510)
XLOGX_510 = XLOGX_510.astype(np.float32)
#: Head pairs computed at once: 64 keeps the temporaries (pairs x L x L) in the CPU's caches.
PAIR_CHUNK = 64


def entropy_bits(x: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """-sum x log2 x over the last axis, with 0 log 0 = 0 (terms in ``dtype``, the sum in float64)."""
    x = np.asarray(x, dtype=dtype)
    logs = np.log2(np.maximum(x, np.finfo(dtype).tiny))
    return -np.einsum("...k,...k->...", x, logs, dtype=np.float64)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits of each pair of rows (last axis), clipped to [0, 1] against rounding."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return np.clip(entropy_bits((p + q) / 2) - (entropy_bits(p) + entropy_bits(q)) / 2, 0.0, 1.0)


def js_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (the square root of the divergence in bits) of each pair of rows."""
    return np.sqrt(js_divergence(p, q))


def _codes(attn: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(attn, dtype=np.float32) * 255).astype(np.uint16)


def quantised(attn: np.ndarray) -> bool:
    """Whether every value is k / 255 (a uint8 map set), so the look-up table gives exact entropies."""
    a = np.asarray(attn, dtype=np.float32)
    return bool(np.allclose(a * 255, np.rint(a * 255), atol=1e-3))


def head_distances(attn: np.ndarray, exact_uint8: bool = False) -> np.ndarray:
    """[head, head]: the mean over query rows of the JS distance between two heads' rows, on one input.

    ``attn[head, query, key]`` holds one input's maps (any set of heads, e.g. all
    layers' heads flattened), cropped to its real tokens. With ``exact_uint8``
    the maps hold k / 255 exactly and the entropies come from ``XLOGX_510``
    (about twice as fast as logarithms), else from logarithms.
    """
    n, length = attn.shape[0], attn.shape[-1]
    out = np.zeros((n, n), dtype=np.float64)
    chunk = max(1, min(PAIR_CHUNK, n - 1))
    # Row sums in float32: at most a few hundred terms of at most 1 bit each, far inside its precision.
    if exact_uint8:
        codes = _codes(attn)
        own = -XLOGX_510.take(2 * codes).sum(axis=-1, dtype=np.float32).astype(np.float64)  # k / 255 = 2k / 510
        summed = np.empty((chunk, length, length), dtype=np.uint16)
        looked = np.empty((chunk, length, length), dtype=np.float32)
    else:
        # float32 terms: half the memory traffic of float64, and float16 maps hold no more digits anyway
        values = np.asarray(attn, dtype=np.float32)
        own = entropy_bits(values, np.float32)
    # Head i against the slice of heads after it: a broadcast, no gathered copies of the maps.
    for i in range(n - 1):
        for start in range(i + 1, n, chunk):
            stop = min(start + chunk, n)
            m = stop - start
            if exact_uint8:
                np.add(codes[i], codes[start:stop], out=summed[:m])
                XLOGX_510.take(summed[:m], out=looked[:m], mode="clip")  # "raise" would copy first
                mixed = -looked[:m].sum(axis=-1, dtype=np.float32).astype(np.float64)
            else:
                mixed = entropy_bits((values[i] + values[start:stop]) * np.float32(0.5), np.float32)
            jsd = np.clip(mixed - (own[i] + own[start:stop]) / 2, 0.0, 1.0)  # [pair, query]
            out[i, start:stop] = np.sqrt(jsd).sum(axis=-1) / length
    return out + out.T


def same_head_distances(a: np.ndarray, b: np.ndarray, exact_uint8: bool = False) -> np.ndarray:
    """[head]: the mean over query rows of the JS distance between ``a[h]`` and ``b[h]`` (two models, one input)."""
    length = a.shape[-1]
    if exact_uint8:
        ca, cb = _codes(a), _codes(b)
        table = XLOGX_510
        jsd = (-table.take(ca + cb).sum(axis=-1, dtype=np.float64)
               + (table.take(2 * ca).sum(axis=-1, dtype=np.float64) + table.take(2 * cb).sum(axis=-1, dtype=np.float64)) / 2)
        return np.sqrt(np.clip(jsd, 0.0, 1.0)).sum(axis=-1) / length
    return js_distance(a, b).sum(axis=-1) / length


def rollout(attn: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Attention rollout through every layer: ``attn[..., layer, head, query, key]`` -> ``[..., layer, query, key]``.

    Element ``[..., l, q, k]`` is the rollout through layers 0..l. With a leading
    batch axis, ``lengths`` gives each input's real token count: padding rows and
    columns get no identity and stay zero, so real rows never reach padding.
    """
    width = attn.shape[-1]
    mean = np.asarray(attn).mean(axis=-3, dtype=np.float64)  # [..., layer, q, k]
    if lengths is None:
        eye = np.eye(width)
    else:
        valid = np.arange(width)[None, :] < np.asarray(lengths)[:, None]  # [n, width]
        eye = np.eye(width)[None] * valid[:, :, None]  # [n, q, k]
        eye = eye[:, None]  # broadcast over layers
    mixed = 0.5 * mean + 0.5 * eye
    sums = mixed.sum(axis=-1, keepdims=True)
    mixed = np.divide(mixed, sums, out=np.zeros_like(mixed), where=sums > 0)
    out = np.empty_like(mixed)
    out[..., 0, :, :] = mixed[..., 0, :, :]
    for layer in range(1, mixed.shape[-3]):
        out[..., layer, :, :] = np.matmul(mixed[..., layer, :, :], out[..., layer - 1, :, :])
    return out


__all__ = ["entropy_bits", "js_divergence", "js_distance", "head_distances", "same_head_distances", "quantised",
           "rollout", "XLOGX_510"]
