"""The norm-weighted analyses on a hand-made map and hand-made norms whose answers are worked out below."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_analyses_stats import annotations

from bertsecrets.ingest.analyses import norms
from bertsecrets.store.labels import PATTERN_CLASSES
from bertsecrets.store.maps import MapReader, MapWriter

L = 16
#: Every query gives [CLS] 0.45, the final [SEP] 0.35 and the piece at position 8 0.2: vertical by weight
#: (V = 0.8), with little near the diagonal (D = (2 * 0.45 + 2 * 0.35 + 4 * 0.2) / 16 = 0.15).
ROW = np.zeros(L, dtype=np.float32)
ROW[0], ROW[L - 1], ROW[8] = 0.45, 0.35, 0.2
#: ||f(x_j)||: small for [CLS] and [SEP] (0.1), 1 elsewhere. Weighted row: 0.045, 0.035, 0.2, summing to 0.28.
NORMS = np.ones(L, dtype=np.float32)
NORMS[0] = NORMS[L - 1] = 0.1


def _map_set(path, norm_row):
    with MapWriter(path / "m.zarr", path / "p.json", np.array([L]), 1, 1, precision="float16", norms=True) as writer:
        (batch,) = writer.batches(4)
        maps, values = writer.buffer(batch), writer.norm_buffer(batch)
        maps[0, 0, 0] = np.tile(ROW, (L, 1)).astype(np.float16)
        values[0, 0, 0] = norm_row.astype(np.float16)
        writer.write(batch, maps, values)
    return MapReader(path / "m.zarr")


@pytest.fixture()
def result(tmp_path):
    (tmp_path / "pre").mkdir()
    (tmp_path / "fine").mkdir()
    # The "pretrained" set has the small [CLS]/[SEP] norms; the "fine-tuned" one equal norms (weights = norm shares).
    readers = [_map_set(tmp_path / "pre", NORMS), _map_set(tmp_path / "fine", np.full(L, 3.0, dtype=np.float32))]
    return norms.bulk_pass(readers, annotations([L]))


def test_norm_weighted_shares_of_cls_and_sep(result):
    s = result.stats
    assert s["attn_cls"][0, 0, 0, 0] == pytest.approx(0.045 / 0.28, rel=1e-3)  # 0.1607, against 0.45 by weight
    assert s["attn_sep"][0, 0, 0, 0] == pytest.approx(0.035 / 0.28, rel=1e-3)  # 0.125, against 0.35
    # Equal norms change nothing: the shares are the weights.
    assert s["attn_cls"][1, 0, 0, 0] == pytest.approx(0.45, rel=1e-3)
    assert s["attn_sep"][1, 0, 0, 0] == pytest.approx(0.35, rel=1e-3)
    assert s["fnorm_mean"][0, 0, 0, 0] == pytest.approx((2 * 0.1 + 14) / 16, rel=1e-3)
    assert s["fnorm_cls"][0, 0, 0, 0] == pytest.approx(0.1, rel=1e-3)
    assert s["fnorm_sep"][0, 0, 0, 0] == pytest.approx(0.1, rel=1e-3)
    assert s["fnorm_mean"][1, 0, 0, 0] == pytest.approx(3.0, rel=1e-3)


def test_norm_weighted_feature_attention_and_change(result):
    from bertsecrets.ingest.analyses.tokens import FEATURES

    # Fig. 6 for [CLS]: its column sum / L = the share every row gives it.
    assert result.features[0, 0, 0, 0, FEATURES.index("cls")] == pytest.approx(0.045 / 0.28, rel=1e-3)
    assert result.features[1, 0, 0, 0, FEATURES.index("sep")] == pytest.approx(0.35, rel=1e-3)
    # Fig. 5: every row is the same, so the map's cosine is the rows' cosine.
    want = (0.045 * 0.45 + 0.2 * 0.2 + 0.035 * 0.35) / (math.sqrt(0.045**2 + 0.2**2 + 0.035**2) * math.sqrt(0.365))
    assert result.cosine[0, 0, 0] == pytest.approx(want, rel=1e-3)  # 0.577


def test_a_vertical_map_by_weight_is_heterogeneous_by_norm(result):
    from bertsecrets.ingest.analyses import patterns

    labels, _ = patterns.rules(result.geometry)
    # By norm: V = 0.286 < 0.3 and D = (2 * 0.161 + 2 * 0.125 + 4 * 0.714) / 16 = 0.214 < 0.4; one sentence, no block.
    assert PATTERN_CLASSES[labels[0, 0, 0, 0]] == "heterogeneous"
    assert PATTERN_CLASSES[labels[1, 0, 0, 0]] == "vertical"  # equal norms: the weights' class (V = 0.8)


def test_the_stored_norm_tables_agree_with_a_loop_over_the_weighted_maps(tiny_store):
    """norm_head_stats and norm_head_change of the tiny ingest, against each map read back on its own."""
    from bertsecrets.store import queries

    store, plan = tiny_store
    run_id = plan.run_ids["finetuned"]
    rows = {(r["layer"], r["head"]): r for r in queries.weight_and_norm_shares(store, run_id)}
    change = {(r["layer"], r["head"]): r["cosine_mean"]
              for r in store.rows("SELECT * FROM norm_head_change WHERE run_id = ?", [run_id])}
    before, after = store.maps(run_id, "pretrained"), store.maps(run_id, "finetuned")
    assert rows and len(rows) == after.n_layers * after.n_heads
    for (layer, head), row in rows.items():
        cls, sep, cos, fcls = [], [], [], []
        for e in range(len(after)):
            w = after.weighted_head(e, layer, head)
            np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
            cls.append(w[:, 0].mean())
            sep.append(w[:, -1].mean() + w[:, np.flatnonzero(_seps(store, run_id, e))[:-1]].sum(axis=1).mean())
            fcls.append(after.head_norms(e, layer, head)[0])
            v = before.weighted_head(e, layer, head)
            cos.append((w * v).sum() / np.sqrt((w * w).sum() * (v * v).sum()))
        assert row["norm_cls"] == pytest.approx(np.mean(cls), abs=1e-5)
        assert row["norm_sep"] == pytest.approx(np.mean(sep), abs=1e-5)
        assert row["fnorm_cls"] == pytest.approx(np.mean(fcls), rel=1e-5)
        assert change[(layer, head)] == pytest.approx(np.mean(cos), abs=1e-5)


def _seps(store, run_id, example):
    tokens = [r["token"] for r in store.rows("SELECT token FROM tokens WHERE run_id = ? AND example = ? "
                                              "ORDER BY position", [run_id, example])]
    return np.array([t == "[SEP]" for t in tokens])
