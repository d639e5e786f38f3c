"""Head families, stability and rollout as a step of the analyses on a copy of the tiny store, and in the report."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow as pa
import pytest
from rich.console import Console

from bertsecrets.cli import main
from bertsecrets.core import flow
from bertsecrets.ingest.analyses import driver, families
from bertsecrets.store import Store, queries


def quiet() -> Console:
    return Console(file=open(os.devnull, "w"))


@pytest.fixture(scope="module")
def two_seeds(tiny_store, tmp_path_factory):
    """A copy of the tiny store with a second seed of its fine-tuned run that holds the same maps and inputs, its
    other analyses recorded as done.

    Its maps are the first seed's, so every head's distance to itself across these seeds is 0: a known answer.
    """
    store, plan = tiny_store
    root = tmp_path_factory.mktemp("flow") / "store"
    shutil.copytree(store.root, root, ignore=shutil.ignore_patterns("locks", "*.lock"))
    copy = Store.open(root)
    run_id = plan.run_ids["finetuned"]
    twin = "run-" + "f" * 16
    record = copy.run(run_id)
    copy.catalog.write("runs", twin, [{**record, "run_id": twin, "seed": int(record["seed"]) + 1}])
    for role in ("pretrained", "finetuned"):
        maps = copy.catalog.read_part("maps", f"{run_id}-{role}").to_pylist()
        copy.catalog.write("maps", f"{twin}-{role}", [{**m, "run_id": twin} for m in maps])
    for table in ("examples", "tokens"):
        rows = copy.catalog.read_part(table, run_id).to_pylist()
        copy.catalog.write(table, twin, [{**r, "run_id": twin} for r in rows])
    want = driver.keys(copy, twin)
    for step in (s for s in driver.STEPS if s != "flow"):
        driver._record(copy, twin, step, want[step], 0.0)
    return copy, plan, run_id, twin


def test_the_flow_step_writes_its_tables_and_is_cached(two_seeds):
    store, plan, run_id, twin = two_seeds
    assert driver.pending(store, run_id) == []  # the tiny ingest did it; another seed does not make it due again
    assert [r["run_id"] for r in families.seed_siblings(store, twin)] == [run_id]
    assert driver.pending(store, twin) == ["flow"]
    assert driver.analyse(store, twin, quiet()) == ["flow"]  # the seed analysed later writes the pair
    assert driver.pending(store, twin) == [] and driver.pending(store, run_id) == []
    low, high = sorted((run_id, twin))
    assert store.catalog.parts("head_stability") == [f"{low}-{high}"]
    heads = plan.model.n_layers * plan.model.n_heads
    n = len(store.maps(run_id, "finetuned"))
    # Distances: symmetric, 0 on the diagonal, equal to a plain recomputation from the maps.
    rows = store.rows("SELECT * FROM head_distances WHERE run_id = ? AND role = 'finetuned' "
                      "ORDER BY layer, head, other_layer, other_head", [run_id])
    d = np.array([r["distance"] for r in rows]).reshape(heads, heads)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    reader = store.maps(run_id, "finetuned")
    per_input = [reader.example(e).reshape(heads, *reader.example(e).shape[-2:]) for e in range(n)]
    assert all(flow.quantised(m) for m in per_input)
    assert np.allclose(d, np.mean([flow.head_distances(m, exact_uint8=True) for m in per_input], axis=0), atol=1e-9)
    # Logarithms instead of the table: the same up to float32 sums (these near-uniform maps are ~0.01 apart).
    assert np.allclose(d, np.mean([flow.head_distances(m) for m in per_input], axis=0), rtol=1e-3)
    fam = queries.head_families(store, run_id, "finetuned")
    assert len(fam) == heads and all(0 <= r["family"] < r["n_families"] for r in fam)
    assert np.isfinite([r["x"] for r in fam]).all()
    # The twin holds the same maps: every head is at distance 0 from itself across the two seeds.
    stab = queries.head_stability(store, [run_id, twin])
    assert len(stab) == heads and all(r["distance"] == 0 for r in stab)
    # Profiles are distributions over the disjoint kinds of key.
    totals = store.rows("SELECT role, layer, head, sum(share) AS t FROM head_profiles WHERE run_id = ? GROUP BY ALL",
                        [run_id])
    assert len(totals) == 2 * heads and all(abs(r["t"] - 1) < 0.02 for r in totals)  # uint8 rows: 1 within L/510
    # The raw [CLS] shares are those of cls_attention (computed by another pass); rollout rows sum to 1.
    pairs = store.rows("SELECT c.value, r.raw FROM cls_attention c JOIN cls_rollout r USING (run_id, role, layer, feature) "
                       "WHERE run_id = ?", [run_id])
    assert pairs and all(abs(p["value"] - p["raw"]) < 1e-6 for p in pairs if p["value"] is not None)
    sums = store.rows("SELECT role, example, sum(rollout) AS t, count(*) AS L FROM cls_rollout_tokens WHERE run_id = ? "
                      "GROUP BY ALL", [run_id])
    assert len(sums) == 2 * n and all(abs(s["t"] - 1) < 1e-6 for s in sums)
    lengths = dict(enumerate(store.maps(run_id, "finetuned").lengths.tolist()))
    assert all(s["L"] == lengths[s["example"]] for s in sums)
    # The rollout row of one input from the stored maps, recomputed here.
    e = 0
    full = flow.rollout(store.maps(run_id, "finetuned").example(e))[-1, 0]
    got = store.rows("SELECT rollout FROM cls_rollout_tokens WHERE run_id = ? AND role = 'finetuned' AND example = ? "
                     "ORDER BY position", [run_id, e])
    assert np.allclose([g["rollout"] for g in got], full)


def test_the_report_shows_rollout_and_stability(two_seeds, tmp_path):
    store, plan, run_id, twin = two_seeds
    driver.analyse(store, twin, quiet())
    out = tmp_path / "report"
    assert main(["report", "--store", str(store.root), "--out", str(out), "--no-figures"]) == 0
    text = (out / "findings.md").read_text()
    assert "## Where the last layer's [CLS] attends: raw attention → attention rollout" in text
    last = plan.model.n_layers - 1
    row = next(r for r in queries.cls_rollout(store, run_id, "finetuned") if r["layer"] == last and r["feature"] == "cls")
    # Both seeds hold the same maps: the same numbers, sd 0.
    assert f"| cls | {row['raw']:.3f} ± 0.000 → {row['rollout']:.3f} ± 0.000 |" in text
    assert "## How stable is a head across seeds and tasks?" in text
    # The twin's maps are the same: every head at 0, ties in layer-major order.
    assert "| MRPC | seeds (1 pair) | L1 H1 0.000, L1 H2 0.000, L1 H3 0.000 | L3 H4 0.000, L3 H3 0.000, L3 H2 0.000 " \
           "| 0.000 | - |" in text


def test_the_report_of_the_tiny_store_has_the_rollout_row(tiny_store, tmp_path):
    store, plan = tiny_store
    out = tmp_path / "report"
    assert main(["report", "--store", str(store.root), "--out", str(out), "--no-figures"]) == 0
    text = (out / "findings.md").read_text()
    assert "raw attention → attention rollout" in text
    assert "How stable is a head across seeds and tasks?" not in text  # one seed, one task: nothing to compare
