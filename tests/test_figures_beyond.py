"""`bertsecrets figures`: the figures of the analyses beyond the paper, each CSV checked against the catalog."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import spearmanr

from bertsecrets.cli import main
from bertsecrets.store import Store
from bertsecrets.store import findings as F

BEYOND = ["norms", "sinks", "families", "stability", "rollout"]


def read(path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.fixture(scope="module")
def drawn(tiny_store, tmp_path_factory):
    store, plan = tiny_store
    out = tmp_path_factory.mktemp("beyond")
    assert main(["figures", "mrpc", "--only", ",".join(BEYOND), "--store", str(store.root), "--out", str(out)]) == 0
    return store, plan, out / "mrpc"


def test_every_figure_of_one_seed_is_written_and_stability_says_why_not(tiny_store, tmp_path, capsys):
    store, _ = tiny_store
    assert main(["figures", "mrpc", "--only", ",".join(BEYOND), "--store", str(store.root), "--out", str(tmp_path)]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    folder = tmp_path / "mrpc"
    for name in ("norms_weight", "sinks", "families", "rollout"):
        assert is_png(folder / f"{name}.png") and (folder / f"{name}.csv").exists(), name
    # One seed: nothing to compare a head with, said in one line, the rest drawn.
    assert not (folder / "stability.png").exists()
    assert "stability: run " in printed and "has no other seed compared with it" in printed


def test_weight_beside_norm_equals_the_catalog(drawn):
    store, plan, folder = drawn
    run_id = plan.run_ids["finetuned"]
    got = {(r["measure"], r["item"]): (float(r["by_weight"]), float(r["by_norm"])) for r in read(folder / "norms_weight.csv")}
    for table, side in (("head_stats", 0), ("norm_head_stats", 1)):
        cls, sep, punct = store.query(f"SELECT avg(attn_cls), avg(attn_sep), avg(attn_punct) FROM {table} "
                                      "WHERE run_id = ? AND role = 'finetuned'", [run_id]).to_pylist()[0].values()
        assert got[("share", "[CLS]")][side] == pytest.approx(cls)
        assert got[("share", "[SEP]")][side] == pytest.approx(sep)
        assert got[("share", "punctuation")][side] == pytest.approx(punct)
    for table, side in (("feature_attention", 0), ("norm_feature_attention", 1)):
        for r in store.rows(f"SELECT feature, avg(value) AS v FROM {table} WHERE run_id = ? AND role = 'finetuned' "
                            "AND NOT isnan(value) GROUP BY feature", [run_id]):
            assert got[("fig6", r["feature"])][side] == pytest.approx(r["v"])
    for table, side in (("class_shares", 0), ("norm_class_shares", 1)):
        shares = {r["label"]: r["v"] for r in store.rows(
            f"SELECT label, avg(share) AS v FROM {table} WHERE run_id = ? AND role = 'finetuned' AND source = 'rules' "
            "GROUP BY label", [run_id])}
        for (measure, label), values in got.items():
            if measure == "class":
                assert values[side] == pytest.approx(shares.get(label, 0.0))
        # Every map has one class: the shares by weight and by norm each add up to 1.
        assert sum(v[side] for (m, _), v in got.items() if m == "class") == pytest.approx(1.0)


def test_sinks_match_the_catalog_scipy_and_the_report(drawn):
    store, plan, folder = drawn
    run_id = plan.run_ids["finetuned"]
    rows = read(folder / "sinks.csv")
    assert len(rows) == plan.model.n_layers * plan.model.n_heads
    shares = {(r["layer"] + 1, r["head"] + 1): r for r in store.rows(
        "SELECT w.layer, w.head, w.attn_cls + w.attn_sep AS w, n.attn_cls + n.attn_sep AS n FROM head_stats w "
        "JOIN norm_head_stats n USING (run_id, role, layer, head) WHERE run_id = ? AND role = 'finetuned'", [run_id])}
    effect = {(r["layer"] + 1, r["head"] + 1): abs(r["loss_delta"]) for r in store.rows(
        "SELECT layer, head, loss_delta FROM ablation WHERE run_id = ? AND kind = 'head' AND metric = 'f1'", [run_id])}
    for r in rows:
        key = (int(r["layer"]), int(r["head"]))
        w, n = shares[key]["w"], shares[key]["n"]
        assert float(r["weight_share"]) == pytest.approx(w) and float(r["norm_share"]) == pytest.approx(n)
        assert float(r["gap"]) == pytest.approx(w - n)
        assert float(r["abs_loss_change"]) == pytest.approx(effect[key])
        assert r["kind"] == ("other" if w < F.SINK_MIN else "sink" if n >= F.SINK_MIN else "no-op")
    rho = spearmanr([float(r["gap"]) for r in rows], [float(r["abs_loss_change"]) for r in rows]).statistic
    assert float(rows[0]["rho"]) == pytest.approx(rho)
    # The title's numbers are the report's: its sinks table prints the same ρ and p for this seed.
    section = next(s for s in F.findings(store).sections if s.title.startswith("Sinks and no-ops"))
    row = next(x for x in section.rows if x[0] == "MRPC" and x[1] == rows[0]["seed"])
    assert row[-2:] == [f"{float(rows[0]['rho']):+.2f}", f"{float(rows[0]['p']):.4f}"]


def test_families_equal_the_catalog(drawn):
    store, plan, folder = drawn
    rows = read(folder / "families.csv")
    want = store.rows("SELECT role, layer + 1 AS layer, head + 1 AS head, family + 1 AS family, x, y FROM head_families "
                      "WHERE run_id = ? ORDER BY role DESC, layer, head", [plan.run_ids["finetuned"]])
    assert [(r["role"], int(r["layer"]), int(r["head"]), int(r["family"])) for r in rows] == \
           [(w["role"], w["layer"], w["head"], w["family"]) for w in want]  # pretrained first, 1-indexed
    assert np.allclose([[float(r["x"]), float(r["y"])] for r in rows], [[w["x"], w["y"]] for w in want])
    for role in ("pretrained", "finetuned"):
        of_role = [r for r in rows if r["role"] == role]
        assert {int(r["family"]) for r in of_role} == set(range(1, int(of_role[0]["n_families"]) + 1))


def test_rollout_of_cls_is_the_mean_of_the_stored_rows_at_position_0(drawn):
    store, plan, folder = drawn
    run_id = plan.run_ids["finetuned"]
    rows = {r["feature"]: (float(r["raw"]), float(r["rollout"])) for r in read(folder / "rollout.csv")}
    last = plan.model.n_layers - 1
    # raw: the last layer's [CLS] row by type, as Fig. 7 (cls_attention) stores it.
    for r in store.rows("SELECT feature, value FROM cls_attention WHERE run_id = ? AND role = 'finetuned' AND layer = ?",
                        [run_id, last]):
        if r["value"] is not None and not np.isnan(r["value"]):
            assert rows[r["feature"]][0] == pytest.approx(r["value"])
    # [CLS] is position 0 of every input: its share is the mean over inputs of the stored rows there.
    at_cls = store.query("SELECT raw, rollout FROM cls_rollout_tokens WHERE run_id = ? AND role = 'finetuned' "
                         "AND position = 0", [run_id])
    assert rows["cls"][0] == pytest.approx(np.mean(at_cls["raw"].to_numpy()))
    assert rows["cls"][1] == pytest.approx(np.mean(at_cls["rollout"].to_numpy()))


def test_a_store_without_the_tables_skips_each_figure_with_its_reason(tiny_store, tmp_path, capsys):
    store, plan = tiny_store
    root = tmp_path / "store"
    shutil.copytree(store.root, root, ignore=shutil.ignore_patterns("locks", "*.lock"))
    copy = Store.open(root)
    for table in ("norm_head_stats", "head_families", "cls_rollout"):
        for part in copy.catalog.parts(table):
            copy.catalog.delete(table, part)
    assert main(["figures", "mrpc", "--only", ",".join(BEYOND), "--store", str(root), "--out", str(tmp_path / "f")]) == 2
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "norms: no norm-weighted analyses (map sets without norms): run `bertsecrets ingest mrpc`" in printed
    assert "sinks: no run with both norm-weighted analyses and a head-disabling sweep" in printed
    assert "families: run " in printed and "has no head families: run `bertsecrets analyze mrpc`" in printed
    assert "rollout: run " in printed and "has no attention rollout" in printed
    assert "Traceback" not in printed
    assert not list((tmp_path / "f" / "mrpc").glob("*.png"))


def test_across_tasks_and_seeds(task_grid_store, tmp_path):
    store = task_grid_store
    assert main(["figures", "mrpc", "sts-b", "--only", ",".join(BEYOND), "--store", str(store.root),
                 "--out", str(tmp_path)]) == 0
    across = tmp_path / "tasks"
    for name in ("tasks_norms_weight", "tasks_sinks", "tasks_rollout"):
        assert is_png(across / f"{name}.png") and (across / f"{name}.csv").exists(), name
    runs = {(r["task"], r["seed"]): r["run_id"] for r in store.rows(
        "SELECT task, seed, run_id FROM runs WHERE setup = 'finetuned' AND status = 'done'")}
    assert sorted(runs) == [("mrpc", 0), ("mrpc", 1), ("sts-b", 0), ("sts-b", 1)]
    # One panel per task and seed, each seed's points those of its run.
    sinks = read(across / "tasks_sinks.csv")
    assert sorted({(r["task"], int(r["seed"]), r["run_id"]) for r in sinks}) == sorted((*k, v) for k, v in runs.items())
    # Weight beside norm and rollout: the mean over the two seeds.
    norms = {(r["task"], r["item"]): r for r in read(across / "tasks_norms_weight.csv") if r["measure"] == "share"}
    rollout = {(r["task"], r["feature"]): r for r in read(across / "tasks_rollout.csv")}
    for task in ("mrpc", "sts-b"):
        ids = [runs[(task, 0)], runs[(task, 1)]]
        w, n = store.query("SELECT avg(w.attn_cls), avg(n.attn_cls) FROM head_stats w JOIN norm_head_stats n "
                           "USING (run_id, role, layer, head) WHERE list_contains(?, run_id) AND role = 'finetuned'",
                           [ids]).to_pylist()[0].values()
        assert float(norms[(task, "[CLS]")]["by_weight"]) == pytest.approx(w)  # both seeds have every head
        assert float(norms[(task, "[CLS]")]["by_norm"]) == pytest.approx(n)
        assert norms[(task, "[CLS]")]["n_seeds"] == "2"
        cls = store.query("SELECT avg(rollout) FROM cls_rollout_tokens WHERE list_contains(?, run_id) "
                          "AND role = 'finetuned' AND position = 0 GROUP BY run_id", [ids]).column(0).to_numpy()
        assert float(rollout[(task, "cls")]["rollout"]) == pytest.approx(cls.mean())
    # The report shows the cross-task figures, its CSVs beside them but not as figures.
    assert main(["report", "--store", str(store.root), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "findings.md").read_text()
    for name in ("tasks_norms_weight", "tasks_sinks", "tasks_rollout"):
        assert f"]({name}.png)" in text and f"{name}.csv" not in text
        assert (tmp_path / "report" / f"{name}.csv").exists()


def test_stability_is_the_js_distance_of_a_head_across_seeds(task_grid_store, tmp_path):
    store = task_grid_store
    assert main(["figures", "mrpc", "--only", "stability", "--store", str(store.root), "--out", str(tmp_path)]) == 0
    rows = read(tmp_path / "mrpc" / "stability.csv")
    first, second = [r["run_id"] for r in store.rows(
        "SELECT run_id FROM runs WHERE task = 'mrpc' AND setup = 'finetuned' AND status = 'done' ORDER BY seed")]
    a, b = store.maps(first, "finetuned"), store.maps(second, "finetuned")
    n_layers = max(int(r["layer"]) for r in rows)
    assert len(rows) == n_layers * max(int(r["head"]) for r in rows) and {r["n_runs"] for r in rows} == {"1"}
    for r in rows[:: max(1, len(rows) // 3)]:  # a few heads, by hand: JS per query row (base 2), mean, mean over inputs
        layer, head = int(r["layer"]) - 1, int(r["head"]) - 1
        per_input = []
        for example in range(len(a)):
            p, q = np.asarray(a.head(example, layer, head), float), np.asarray(b.head(example, layer, head), float)
            per_input.append(np.mean([jensenshannon(x, y, base=2) for x, y in zip(p, q)]))
        assert float(r["distance"]) == pytest.approx(np.mean(per_input), abs=2e-3)
