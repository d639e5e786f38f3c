"""Sinks and no-ops: heads classified by weight and by norm, and the rank test against the effect of disabling them."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bertsecrets.store import findings as F


def test_heads_are_classified_by_their_share_of_cls_and_sep_by_weight_and_by_norm():
    weight = [0.9, 0.9, 0.5, 0.49, 0.2]
    norm = [0.7, 0.1, 0.5, 0.9, 0.0]
    assert F.sink_classes(weight, norm).tolist() == ["sink", "no-op", "sink", "other", "other"]


def test_a_larger_gap_with_a_smaller_effect_gives_rho_minus_one_and_a_small_p():
    weight = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3, 0.2])
    norm = np.array([0.05, 0.2, 0.3, 0.4, 0.45, 0.45, 0.25, 0.2])  # gaps 0.9, 0.7, 0.5, 0.3, 0.15, 0.05, 0.05+, 0
    norm[6] = 0.26  # gap 0.04: every gap distinct
    gap = weight - norm
    assert np.all(np.diff(gap) < 0)
    # |effect| rises as the gap falls; signs mixed, so the test must take the absolute value.
    effect = np.array([0.001, -0.002, 0.004, -0.008, 0.016, -0.032, 0.064, -0.128])
    rho, p = F.sink_test(weight, norm, effect)
    assert rho == pytest.approx(-1.0)
    assert p < 0.001  # one ordering in 8! = 40,320: the permutation p is about its 1 / (N + 1) floor
    rho, p = F.sink_test(weight, norm, effect[::-1])  # the opposite ordering: no evidence for ρ < 0
    assert rho == pytest.approx(1.0)
    assert p > 0.99


def test_the_report_tests_the_tiny_ingest_and_agrees_with_the_catalog(tiny_store):
    from bertsecrets.store import queries

    store, plan = tiny_store
    run_id = plan.run_ids["finetuned"]
    found = F.findings(store)
    claim = next(c for c in found.claims if c.statement.startswith("Heads vertical by weight but not by norm"))
    cell = claim.cells["mrpc"]
    rows = queries.weight_and_norm_shares(store, run_id)
    effect = {(r["layer"], r["head"]): r["loss_delta"] for r in queries.ablation_rows(store, run_id, kind="head",
                                                                                     metric="f1")}
    w = np.array([r["cls"] + r["sep"] for r in rows])
    n = np.array([r["norm_cls"] + r["norm_sep"] for r in rows])
    # Spearman's ρ and its one-sided permutation p, computed here without the report's code: scipy's ρ, and
    # a plain loop over shuffles of the effects (another generator, so p agrees within its sampling error).
    from scipy.stats import spearmanr

    gap = w - n
    size = np.abs(np.array([effect[(r["layer"], r["head"])] for r in rows]))
    rho = spearmanr(gap, size).statistic
    rng = np.random.default_rng(12345)
    shuffles = 4000
    below = sum(spearmanr(gap, rng.permutation(size)).statistic <= rho + 1e-12 for _ in range(shuffles))
    p = (below + 1) / (shuffles + 1)
    shown = re.search(r"ρ ([+-]\d\.\d\d) \(p (\d\.\d{3})\)", cell.text)
    assert shown, cell.text
    assert float(shown.group(1)) == pytest.approx(rho, abs=0.006)
    assert float(shown.group(2)) == pytest.approx(p, abs=0.03)
    assert cell.verdict == (F.HOLDS if rho < 0 and float(shown.group(2)) < 0.05 else F.FAILS)
    vanish = next(c for c in found.claims if c.statement.startswith("Weighted by ||f(x_j)||"))
    assert vanish.cells["mrpc"].text.startswith(f"by weight {100 * w.mean():.0f}%, by norm {100 * n.mean():.0f}%")
    report = F.markdown(found)
    assert "## Norm-based attention (Kobayashi et al. 2020): weight beside norm" in report
    assert "## Sinks and no-ops" in report
