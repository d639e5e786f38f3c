"""The analyses as a step of the ingest, on a tiny store: vectorised = plain loops, tables, cache, CLI."""

from __future__ import annotations

import os

import numpy as np
import pytest
from rich.console import Console

from bertsecrets.ingest.analyses import driver, patterns, reference
from bertsecrets.ingest.analyses.stats import STATS
from bertsecrets.store.labels import PATTERN_CLASSES, Labels


@pytest.fixture(scope="module")
def analysed(tiny_store):
    store, plan = tiny_store
    run_id = plan.run_ids["finetuned"]
    n = len(store.maps(run_id, "finetuned"))
    ann = driver.annotations(store, run_id, n)
    return store, plan, run_id, ann


def quiet() -> Console:
    return Console(file=open(os.devnull, "w"))


def test_vectorised_pass_equals_the_per_map_loops_on_real_maps(analysed):
    store, _, run_id, ann = analysed
    fast = driver.bulk_pass(store, run_id, ann, statistics=True, resized=False)
    slow = reference.loop_pass(store, run_id, ann)
    for name in STATS:
        assert np.allclose(fast.stats[name], slow.stats[name], atol=1e-4), name
    assert np.allclose(fast.features, slow.features, atol=1e-5, equal_nan=True)
    assert np.allclose(fast.cls, slow.cls, atol=1e-5, equal_nan=True)
    assert set(fast.relations) == set(slow.relations)
    for name in fast.relations:
        assert np.allclose(fast.relations[name], slow.relations[name], atol=1e-6, equal_nan=True), name
    assert np.isfinite(fast.relations["verb-subject"]).any()
    assert np.allclose(fast.geometry, slow.geometry, atol=1e-4)
    assert np.allclose(fast.cosine, slow.cosine, atol=1e-5)


def test_the_ingest_wrote_every_table_of_the_contract(analysed):
    store, plan, run_id, _ = analysed
    n_layers, n_heads = plan.model.n_layers, plan.model.n_heads
    heads = n_layers * n_heads
    n = len(store.maps(run_id, "finetuned"))
    count = lambda sql: store.rows(sql, [run_id])[0]["n"]
    assert count("SELECT count(*) n FROM head_stats WHERE run_id = ?") == 2 * heads
    assert count("SELECT count(*) n FROM feature_attention WHERE run_id = ?") == 3 * heads * 8
    assert count("SELECT count(*) n FROM cls_attention WHERE run_id = ?") == 2 * n_layers * 8
    assert count("SELECT count(*) n FROM head_change WHERE run_id = ?") == heads
    assert count("SELECT count(*) n FROM map_classes WHERE run_id = ? AND source = 'rules'") == 2 * n * heads
    assert count("SELECT count(*) n FROM class_shares WHERE run_id = ? AND source = 'rules'") == 2 * heads * 5
    assert count("SELECT count(*) n FROM relation_heads WHERE run_id = ? AND source = 'spacy'") == 2 * 6 * heads
    steps = {r["step"]: r["status"] for r in store.rows("SELECT * FROM analyses WHERE run_id = ?", [run_id])}
    assert steps["maps"] == "done" and steps["framenet"] in ("done", "skipped")
    shares = store.rows("SELECT role, layer, head, source, sum(share) AS total FROM class_shares WHERE run_id = ? "
                        "GROUP BY ALL", [run_id])
    assert all(abs(r["total"] - 1) < 1e-9 for r in shares)
    diff = store.rows(
        "SELECT d.value AS d, f.value AS f, p.value AS p FROM feature_attention d "
        "JOIN feature_attention f USING (run_id, layer, head, feature) JOIN feature_attention p USING (run_id, layer, head, feature) "
        "WHERE d.run_id = ? AND d.role = 'difference' AND f.role = 'finetuned' AND p.role = 'pretrained' AND d.value IS NOT NULL",
        [run_id])
    assert diff and all(abs(r["d"] - (r["f"] - r["p"])) < 1e-12 for r in diff)


def test_rule_labels_in_the_catalog_match_the_rules(analysed):
    store, _, run_id, ann = analysed
    p = driver.bulk_pass(store, run_id, ann, statistics=False, resized=False)
    labels, _ = patterns.rules(p.geometry)
    rows = store.rows("SELECT role, example, layer, head, label FROM map_classes WHERE run_id = ? AND source = 'rules'",
                      [run_id])
    for r in rows[:: max(1, len(rows) // 200)]:
        assert PATTERN_CLASSES[labels[driver.ROLES.index(r["role"]), r["example"], r["layer"], r["head"]]] == r["label"]


def test_rule_labels_in_the_catalog_hold_the_masses_the_rules_read(analysed):
    store, _, run_id, ann = analysed
    p = driver.bulk_pass(store, run_id, ann, statistics=False, resized=False)
    m = patterns.masses(p.geometry)
    rows = store.rows("SELECT role, example, layer, head, vertical_mass, diagonal_mass, block_share, block_spread "
                      "FROM map_classes WHERE run_id = ? AND source = 'rules'", [run_id])
    assert len(rows) == m["vertical"].size
    for r in rows[:: max(1, len(rows) // 200)]:
        at = (driver.ROLES.index(r["role"]), r["example"], r["layer"], r["head"])
        assert r["vertical_mass"] == pytest.approx(m["vertical"][at], abs=1e-6)
        assert r["diagonal_mass"] == pytest.approx(m["diagonal"][at], abs=1e-6)
        assert m["two"][at] and r["block_share"] == pytest.approx(m["block"][at], abs=1e-6)  # MRPC: pairs
        assert r["block_spread"] == pytest.approx(m["spread"][at], abs=1e-6)
    counts = store.rows("SELECT count(*) AS n, count(vertical_mass) + count(block_spread) AS masses FROM map_classes "
                        "WHERE run_id = ? AND source = 'classifier'", [run_id])[0]
    assert counts["masses"] == 0  # the classifier reads pictures, not masses (when the tiny run has one)


def test_a_finished_analysis_is_not_redone_and_new_labels_retrain_only_the_classifiers(analysed):
    store, plan, run_id, _ = analysed
    from bertsecrets.ingest.analyses import done

    assert done(store, plan)
    assert driver.analyse(store, run_id, quiet()) == []
    Labels(store).set(run_id, "finetuned", 0, 0, 0, "vertical", labeller="tester")
    try:
        assert driver.pending(store, run_id) == ["classes"]
    finally:
        Labels(store).remove(run_id, "finetuned", 0, 0, 0, labeller="tester")
    assert driver.pending(store, run_id) == []


def test_person_labels_train_the_classifiers_when_there_are_enough(analysed, monkeypatch):
    store, _, run_id, _ = analysed
    from bertsecrets.ingest.analyses import classifier

    shape = (2, len(store.maps(run_id, "finetuned")), 3, 4)
    rows = [{"run_id": run_id, "role": "finetuned", "example": e, "layer": 0, "head": h,
             "label": PATTERN_CLASSES[(e + h) % 2], "labeller": "ann", "labelled_at": None, "note": None}
            for e in range(3) for h in range(4)]
    import datetime as dt

    for r in rows:
        r["labelled_at"] = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    later = {**rows[0], "labeller": "bob", "label": "block", "labelled_at": dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)}
    Labels(store).set_many(rows + [later])
    try:
        monkeypatch.setattr(classifier, "MIN_PERSON_LABELS", 100)
        assert driver.person_training_set(store, run_id, shape) is None
        monkeypatch.setattr(classifier, "MIN_PERSON_LABELS", 12)
        ts = driver.person_training_set(store, run_id, shape)
        assert ts.trained_on == "person" and len(ts) == 12
        first = [i for i, w in enumerate(ts.where.tolist()) if w == [1, 0, 0, 0]]
        assert PATTERN_CLASSES[ts.labels[first[0]]] == "block"  # the latest label of a map wins
    finally:
        for labeller in ("ann", "bob"):
            store.catalog.delete("labels", f"by-{labeller}")


def test_analyze_command_and_summary(analysed, capsys):
    store, plan, run_id, _ = analysed
    from bertsecrets.cli import main

    assert main(["analyze", "mrpc", "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "up to date" in out and "pattern classes" in out and "heterogeneous" in out
    assert main(["analyze", plan.run_ids["random_init"], "--store", str(store.root)]) == 0  # points to the fine-tuned run
    assert main(["analyze", "rte", "--store", str(store.root)]) == 2
    assert "no fine-tuned RTE run" in capsys.readouterr().err
    assert main(["analyze", "run-nope", "--store", str(store.root)]) == 2


def test_relations_file_adds_jsonl_rows(analysed, tmp_path):
    store, _, run_id, _ = analysed
    path = tmp_path / "rel.jsonl"
    path.write_text('{"tokens": ["The", "cat", "chased", "a", "mouse"], "relation": "verb-object", '
                    '"pairs": [[[2, 3], [4, 5]]]}\n'
                    '{"tokens": ["Dogs", "bark"], "relation": "verb-subject", "pairs": [[[1, 2], [0, 1]]]}\n')
    assert driver.analyse(store, run_id, quiet(), relations_file=str(path)) == ["jsonl"]
    rows = store.rows("SELECT * FROM relation_heads WHERE run_id = ? AND source = 'jsonl'", [run_id])
    assert {r["relation"] for r in rows} == {"verb-object", "verb-subject"}
    assert all(r["n_sentences"] == 1 and 0 <= r["score"] <= 1 for r in rows)
