"""The ablation as an ingest step and as `bertsecrets ablate`: its tables, summary, figures, seeds and errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

from bertsecrets.cli import main
from bertsecrets.ingest import ablation, metrics
from bertsecrets.ingest.seeds import ablate_seeds
from bertsecrets.store import Store


def _ablation(store, run_id):
    return store.rows("SELECT * FROM ablation WHERE run_id = ? ORDER BY kind, layer, head, metric", [run_id])


def test_the_ingest_step_stores_every_configuration(tiny_store):
    store, plan = tiny_store
    run_id = plan.run_ids["finetuned"]
    rows = _ablation(store, run_id)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("baseline", "head", "layer", "random_head")}
    assert kinds == {"baseline": 2, "head": 3 * 4 * 2, "layer": 3 * 2, "random_head": 2}  # two metrics each
    n_dev = plan.settings.max_examples  # the inputs whose maps are stored
    assert n_dev < len(plan.data.dev) and {r["n_examples"] for r in rows} == {n_dev}
    # The sweep's baseline is the run's own evaluation of those inputs (sdpa there, the eager kernel here).
    stored = store.rows("SELECT label, prediction FROM examples WHERE run_id = ? ORDER BY example LIMIT ?", [run_id, n_dev])
    own = metrics.compute(plan.task, np.array([r["prediction"] for r in stored]), np.array([r["label"] for r in stored]))
    base = {r["metric"]: r for r in rows if r["kind"] == "baseline"}
    for metric in ("f1", "accuracy"):
        assert base[metric]["value"] == pytest.approx(own[metric], abs=1e-12)
    for r in rows:
        assert r["delta"] == pytest.approx(r["value"] - base[r["metric"]]["value"])
        assert r["ci_low"] <= r["ci_high"]
        assert r["loss_delta"] == pytest.approx(r["loss"] - base[r["metric"]]["loss"])
        if r["kind"] != "random_head":
            assert 0 <= r["changed"] <= n_dev
    heads = [r for r in rows if r["kind"] == "head" and r["metric"] == "accuracy"]
    mean = next(r for r in rows if r["kind"] == "random_head" and r["metric"] == "accuracy")
    assert mean["delta"] == pytest.approx(np.mean([r["delta"] for r in heads]))


def test_importance_and_pruning_tables(tiny_store):
    store, plan = tiny_store
    run_id = plan.run_ids["finetuned"]
    importance = store.rows("SELECT * FROM head_importance WHERE run_id = ? ORDER BY rank", [run_id])
    assert sorted(r["rank"] for r in importance) == list(range(1, 13))
    values = [r["importance"] for r in importance]
    assert values == sorted(values, reverse=True) and values[-1] > 0
    curve = store.rows("SELECT * FROM pruning WHERE run_id = ? AND metric = 'accuracy' ORDER BY fraction", [run_id])
    assert [r["fraction"] for r in curve] == pytest.approx([i / 10 for i in range(10)])
    assert [r["n_disabled"] for r in curve] == [round(i * 1.2) for i in range(10)]
    base = store.rows("SELECT value FROM ablation WHERE run_id = ? AND kind = 'baseline' AND metric = 'accuracy'", [run_id])
    assert curve[0]["value"] == pytest.approx(base[0]["value"])


def test_a_finished_ingest_skips_the_step(tiny_store):
    store, plan = tiny_store
    assert ablation.done(store, plan)


def test_ablate_prints_the_summary_from_the_store_without_torch(tiny_store):
    store, plan = tiny_store
    code = (
        "import sys; from rich.console import Console; from bertsecrets.store import Store; "
        "from bertsecrets.ingest import ablation; from bertsecrets.commands import tables; "
        "from bertsecrets.store.queries import resolve_run; import bertsecrets.figures.ablation; "
        f"s = Store.open({str(store.root)!r}); r = resolve_run(s, 'mrpc')['run_id']; "
        "ablation.ablate(s, r, Console(), None); tables.print_summary(Console(width=250), s, r); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
    assert out.returncode == 0, out.stderr
    for text in ("best head", "worst head", "random head", "best layer", "95% interval", "Spearman", "pruning"):
        assert text in out.stdout


def test_disable_one_configuration_from_the_command_line(tiny_store, capsys):
    store, plan = tiny_store
    run_id = plan.run_ids["finetuned"]
    assert main(["ablate", "mrpc", "--store", str(store.root), "--disable", "2:3", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "L2 H3" in printed
    head = store.rows("SELECT value FROM ablation WHERE run_id = ? AND kind = 'head' AND layer = 1 AND head = 2 "
                      "AND metric = 'accuracy'", [run_id])[0]["value"]
    assert f"{100 * head:.1f}" in printed


@pytest.mark.parametrize("argv, words", [
    (["--disable", "4:1"], "layer 4 does not exist"),
    (["--disable", "1:5"], "head 5 does not exist"),
    (["--seeds", "0"], "--seeds must be"),
])
def test_bad_requests_are_one_line_errors(tiny_store, capsys, argv, words):
    store, _ = tiny_store
    before = {p: p.stat().st_mtime_ns for p in (store.root / "tables" / "ablation").glob("*.parquet")}
    assert main(["ablate", "mrpc", "--store", str(store.root), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert {p: p.stat().st_mtime_ns for p in (store.root / "tables" / "ablation").glob("*.parquet")} == before


def test_unknown_runs_and_tasks(tiny_store, capsys):
    store, plan = tiny_store
    assert main(["ablate", "run-nothere", "--store", str(store.root)]) == 2
    assert "no run run-nothere" in capsys.readouterr().err
    assert main(["ablate", "rte", "--store", str(store.root)]) == 2
    assert "no finished fine-tuned RTE run" in capsys.readouterr().err
    assert main(["ablate", plan.run_ids["random_init"], "--store", str(store.root)]) == 2
    assert "fine-tuned runs only" in capsys.readouterr().err


def test_figures(tiny_store, tmp_path, capsys):
    store, _ = tiny_store
    assert main(["figures", "mrpc", "--store", str(store.root), "--out", str(tmp_path),
                 "--only", "fig8,fig9,pruning"]) == 0
    folder = tmp_path / "mrpc"
    for name in ("fig8_heads_f1.png", "fig9_layers.png", "pruning.png"):
        assert (folder / name).stat().st_size > 10_000
    lines = (folder / "fig8_heads_f1.csv").read_text().splitlines()
    assert len(lines) == 1 + 12 and lines[1].startswith("head,1,1,f1,")  # 1-indexed as drawn


def test_seeds_report_mean_and_std_across_runs(tiny_store, tmp_path):
    store, plan = tiny_store
    root = tmp_path / "store"
    shutil.copytree(store.root, root)  # the shared store stays as the other tests expect it
    copy = Store.open(root)
    console = Console(file=open(os.devnull, "w"))
    key = ablate_seeds(copy, plan.run_ids["finetuned"], 2, console, device="cpu")
    assert key == plan.experiment_id  # where the browser looks for a run's seeds
    runs = copy.rows("SELECT run_id, seed FROM runs WHERE setup = 'finetuned' ORDER BY seed")
    assert [r["seed"] for r in runs] == [0, 1]
    rows = copy.rows("SELECT * FROM ablation_seeds WHERE experiment_id = ?", [key])
    assert len(rows) == len(_ablation(copy, runs[0]["run_id"]))
    assert {r["seeds"] for r in rows} == {"0,1"} and {r["n_seeds"] for r in rows} == {2}
    per_seed = [{(r["kind"], r["layer"], r["head"], r["metric"]): r for r in _ablation(copy, run["run_id"])} for run in runs]
    for row in rows:
        values = [seed[(row["kind"], row["layer"], row["head"], row["metric"])]["value"] for seed in per_seed]
        deltas = [seed[(row["kind"], row["layer"], row["head"], row["metric"])]["delta"] for seed in per_seed]
        assert row["mean"] == pytest.approx(np.mean(values))
        assert row["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert row["delta_mean"] == pytest.approx(np.mean(deltas))
    # Asking again reuses both runs and their sweeps.
    assert ablate_seeds(copy, plan.run_ids["finetuned"], 2, console, device="cpu") == key
