"""Grids of tasks x seeds: one command, content keys skip what is stored, failures kept apart; the findings report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bertsecrets.cli import main
from bertsecrets.commands.ingest import parse_caps, parse_seeds
from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import get_task
from bertsecrets.ingest.data import load_glue_dir
from bertsecrets.ingest.grid import found_tasks, task_names
from bertsecrets.store import Store, queries
from bertsecrets.store import findings as F
from conftest import write_task

TINY = ["--epochs", "1", "--batch-size", "16", "--max-examples", "8", "--eval-batch-size", "16",
        "--extract-batch-size", "8", "--setups", "finetuned,no_finetuning"]


def test_seeds_and_caps_parse_as_written():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3-5,1,3") == [3, 4, 5, 1]
    assert parse_seeds(" 7 ") == [7]
    for bad in ("", "a", "1.5", "-1", "2-x", str(2**32)):
        with pytest.raises(UserError):
            parse_seeds(bad)
    assert parse_caps(None, ["mrpc"]) == {}
    assert parse_caps("100", ["mrpc", "rte"]) == {"mrpc": 100, "rte": 100}
    assert parse_caps("sst2=5000", ["mrpc", "sst-2"]) == {"sst-2": 5000}
    for bad in ("0", "sst-2=x", "cola=5"):
        with pytest.raises(UserError):
            parse_caps(bad, ["sst-2"])


def test_all_is_every_task_whose_files_are_found(tmp_path, monkeypatch):
    for task in ("mrpc", "sst-2"):
        write_task(tmp_path, task, 4, 4)
    (tmp_path / "RTE").mkdir()  # a folder without its files is not found
    found, missing = found_tasks(str(tmp_path))
    assert found == ["mrpc", "sst-2"] and "rte" in missing
    assert task_names(["all", "mrpc", "SST2"], str(tmp_path)) == ["mrpc", "sst-2"]
    monkeypatch.delenv("GLUE_DIR", raising=False)
    assert found_tasks(None)[0] == ["mrpc", "sts-b", "sst-2", "qqp", "rte", "qnli", "mnli"]  # the hub has all
    with pytest.raises(UserError, match="no task's data was found"):
        task_names(["all"], str(tmp_path / "empty"))
    with pytest.raises(UserError, match="unknown task 'cola'"):
        task_names(["mrpc", "cola"], str(tmp_path))


@pytest.fixture(scope="module")
def grid_glue(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grid-glue")
    for task in ("mrpc", "sts-b", "sst-2"):
        write_task(folder, task, n_train=32, n_dev=12, seed=3)
    return folder


def _grid(capsys, tiny_bert, glue, root, *tasks_and_options):
    code = main(["ingest", *tasks_and_options, "--model", str(tiny_bert), "--data-dir", str(glue), "--store", str(root),
                 *TINY])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _runs(root):
    return {r["run_id"]: r for r in Store.open(root).rows("SELECT * FROM runs")}


@pytest.mark.slow
def test_a_grid_skips_what_is_stored_and_adds_only_what_is_new(tiny_bert, grid_glue, tmp_path, capsys):
    root = tmp_path / "store"
    code, out, err = _grid(capsys, tiny_bert, grid_glue, root, "mrpc", "sts-b", "--seeds", "0,1",
                           "--max-train-examples", "sts-b=24")
    assert code == 0, err
    runs = _runs(root)
    cells = {(r["task"], r["seed"], r["setup"]) for r in runs.values()}
    assert cells == {(t, s, x) for t in ("mrpc", "sts-b") for s in (0, 1) for x in ("finetuned", "no_finetuning")}
    assert all(r["status"] == "done" for r in runs.values())
    assert {r["train_examples"] for r in runs.values() if r["task"] == "sts-b"} == {24}
    assert {r["train_examples"] for r in runs.values() if r["task"] == "mrpc"} == {32}
    # The closing table: both tasks, the cut task marked and explained.
    assert "Table 1 across tasks" in out and "STS-B*" in out and "first 24 training examples" in " ".join(out.split())
    # STS-B is a regression: Pearson and Spearman, and its sweep is judged by Pearson.
    stsb = [r for r in runs.values() if r["task"] == "sts-b" and r["setup"] == "finetuned"]
    assert all(r["pearson"] is not None and r["accuracy"] is None for r in stsb)
    assert {r["metric"] for r in queries.ablation_rows(Store.open(root), stsb[0]["run_id"])} == {"pearson", "spearman"}
    # The pretrained maps do not depend on the seed: one set per task.
    maps = Store.open(root).rows("SELECT m.role, r.task FROM maps m JOIN runs r USING (run_id) WHERE m.status = 'done'")
    assert sorted((m["task"], m["role"]) for m in maps).count(("mrpc", "finetuned")) == 2

    code, out, err = _grid(capsys, tiny_bert, grid_glue, root, "mrpc", "sts-b", "--seeds", "0,1",
                           "--max-train-examples", "sts-b=24")
    assert code == 0 and out.count("nothing to do") == 4
    assert _runs(root) == runs  # not one row rewritten

    code, out, err = _grid(capsys, tiny_bert, grid_glue, root, "mrpc", "sts-b", "--seeds", "0-2",
                           "--max-train-examples", "sts-b=24")
    assert code == 0 and out.count("nothing to do") == 4
    after = _runs(root)
    assert {k: v for k, v in after.items() if k in runs} == runs
    assert {(r["task"], r["seed"]) for k, r in after.items() if k not in runs} == {("mrpc", 2), ("sts-b", 2)}

    # The findings of this store: numbers recomputed here from the catalog, verdicts by their rule.
    found = F.findings(Store.open(root))
    assert [g.task.name for g in found.groups] == ["mrpc", "sts-b"] and found.groups[1].cap == 24
    assert [g.seeds for g in found.groups] == [[0, 1, 2], [0, 1, 2]]
    table1 = next(s for s in found.sections if s.title.startswith("Table 1"))
    row = next(r for r in table1.rows if r[0] == "STS-B*" and r[1] == "pretrained + fine-tuning")
    pearsons = [r["pearson"] for r in after.values() if r["task"] == "sts-b" and r["setup"] == "finetuned"]
    assert row[2].startswith(f"{100 * np.mean(pearsons):.1f} ± {100 * np.std(pearsons, ddof=1):.1f} pearson")
    claim = next(c for c in found.claims if c.statement.startswith("Fine-tuning matters"))
    for g in found.groups:
        wins = [g.setups[s]["finetuned"][g.task.main_metric] > g.setups[s]["no_finetuning"][g.task.main_metric]
                for s in g.seeds]
        expected = F.HOLDS if all(wins) else F.FAILS if not any(wins) else F.MIXED
        assert claim.cells[g.task.name].verdict == expected
    assert next(c for c in found.claims if "QNLI and MNLI" in c.statement).verdict == F.UNTESTED
    report = tmp_path / "report"
    assert main(["report", "--store", str(root), "--out", str(report)]) == 0
    text = (report / "findings.md").read_text()
    assert "STS-B*: fine-tuned on the first 24 training examples only" in text
    assert "tasks_fig8_heads.png" in text and (report / "tasks_fig8_heads.png").stat().st_size > 1000


@pytest.mark.slow
def test_a_failing_task_is_reported_and_the_others_go_on(tiny_bert, grid_glue, tmp_path, capsys):
    glue = tmp_path / "glue"
    write_task(glue, "sst-2", n_train=24, n_dev=8)
    write_task(glue, "rte", n_train=8, n_dev=8)
    with open(glue / "RTE" / "dev.tsv", "a") as f:
        f.write("99\tonly two columns\n")
    root = tmp_path / "store"
    code, out, err = _grid(capsys, tiny_bert, glue, root, "rte", "sst-2")
    assert code != 0
    assert "RTE" in out and "dev.tsv" in out  # the bad file and line, said once
    assert err.strip().splitlines() == ["error: 1 of 2 ingests failed (above); the others are in the store"]
    runs = _runs(root)
    assert {(r["task"], r["status"]) for r in runs.values()} == {("sst-2", "done")}
    # SST-2 is single-sentence: no second text, one segment per token.
    store = Store.open(root)
    ft = next(r for r in runs.values() if r["setup"] == "finetuned")["run_id"]
    assert all(e["text_b"] is None for e in queries.examples(store, ft))
    assert set(queries.tokens(store, ft).column("segment").to_pylist()) == {0}


def test_a_store_that_cannot_be_used_stops_the_grid_in_one_line_before_any_task(tiny_bert, grid_glue, tmp_path,
                                                                               capsys):
    foreign = tmp_path / "papers"  # a folder of other files, as /etc would be
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    (tmp_path / "a-file").write_text("mine")
    slash = tmp_path / "back\\slash"  # DuckDB reads a backslash as a folder separator
    for root, says in ((foreign, f"error: {foreign} is not a bertsecrets store"),
                       (tmp_path / "a-file" / "store", f"error: cannot create the store at {tmp_path / 'a-file' / 'store'}"),
                       (slash, f"error: the catalog of a store at {slash} cannot be read")):
        code, out, err = _grid(capsys, tiny_bert, grid_glue, root, "all")
        assert code != 0
        assert out == ""  # no task started: no task's rule, no per-task error, no table
        assert len(err.strip().splitlines()) == 1 and err.startswith(says), err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and (foreign / "notes.txt").read_text() == "mine"
    assert (tmp_path / "a-file").read_text() == "mine"
    assert not slash.exists()


def test_a_store_found_read_only_stops_the_grid_at_its_first_write(tiny_bert, grid_glue, tmp_path, capsys,
                                                                    monkeypatch):
    from bertsecrets.ingest import grid
    from bertsecrets.store.errors import StoreReadOnly

    tried = []

    def read_only(settings, console, plan):  # a store this process may read, not write
        tried.append(settings.task)
        raise StoreReadOnly(f"cannot write to {tmp_path / 'store' / 'locks'}: read-only file system; this store is "
                            "read-only here (run as its owner, or on a writable copy)")

    monkeypatch.setattr(grid, "ingest", read_only)
    code, out, err = _grid(capsys, tiny_bert, grid_glue, tmp_path / "store", "all")
    assert code != 0 and tried == ["mrpc"]  # the other tasks would fail alike: not tried
    assert err.strip().splitlines() == [f"error: cannot write to {tmp_path / 'store' / 'locks'}: read-only file "
                                        "system; this store is read-only here (run as its owner, or on a writable copy)"]
    assert "failed" not in out


def test_rank_test_known_answers():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    rho, p = F.rank_test(x, x, n_resamples=999)
    assert rho == pytest.approx(1.0) and p == pytest.approx(1 / 1000)
    rho, p = F.rank_test(x, -x, n_resamples=999)
    assert rho == pytest.approx(-1.0) and p == pytest.approx(1.0)
    y = x + rng.normal(scale=2.0, size=40)
    y[3] = np.nan  # a head without an effect is left out of both
    rho, _ = F.rank_test(x, y, n_resamples=99)
    keep = ~np.isnan(y)
    assert rho == pytest.approx(spearmanr(x[keep], y[keep])[0])


def test_verdicts_and_spreads():
    assert F._seed_verdict([True, True]) == F.HOLDS and F._seed_verdict([False]) == F.FAILS
    assert F._seed_verdict([True, False]) == F.MIXED and F._seed_verdict([]) == F.UNTESTED
    assert F._overall([F.HOLDS, F.UNTESTED]) == F.HOLDS and F._overall([F.HOLDS, F.FAILS]) == F.MIXED
    assert F._overall([F.UNTESTED]) == F.UNTESTED
    # the verdict says what it rests on when tasks it is made for cannot be tested
    cells = {"mrpc": F.Cell("1", F.HOLDS), "rte": F.Cell("-", F.UNTESTED), "sts-b": F.Cell("2", None)}
    claim = F.Claim("Table 1", "s", "p", cells, F._overall([c.verdict for c in cells.values() if c.verdict]))
    assert claim.verdict_text == "holds (tested on MRPC only)"
    cells.update({"sst-2": F.Cell("3", F.FAILS), "qqp": F.Cell("-", F.UNTESTED)})
    claim = F.Claim("Table 1", "s", "p", cells, F._overall([c.verdict for c in cells.values() if c.verdict]))
    assert claim.verdict_text == "mixed (tested on 2 of 4 tasks)"
    cells.update({"rte": F.Cell("4", F.HOLDS), "qqp": F.Cell("5", F.FAILS)})  # every task it is made for: no scope
    assert F.Claim("Fig. 8", "s", "p", cells, F.MIXED).verdict_text == "mixed"
    assert F.Claim("Fig. 8", "s", "p", {"rte": F.Cell("-", F.UNTESTED)}, F.UNTESTED).verdict_text == F.UNTESTED
    spread = F.Spread([0.80, 0.84, 0.82])
    assert spread.text() == "82.0 ± 2.0" and F.Spread([0.5]).text() == "50.0" and F.Spread([]).text() == "-"
    assert F.Spread([0.01, 0.03]).text(sign=True) == f"+2.0 ± {100 * math.sqrt(2e-4):.1f}"


@pytest.mark.parametrize("task,rows,dev", [("rte", 2490, 277), ("sst-2", 67349, 872), ("sts-b", 5749, 1500)])
def test_real_glue_files_load(real_glue, task, rows, dev):
    data = load_glue_dir(get_task(task), real_glue)
    assert (len(data.train), len(data.dev)) == (rows, dev)
    if task == "sst-2":
        assert data.dev.texts_b is None and set(np.unique(data.dev.labels)) == {0.0, 1.0}
        assert data.train.texts_a[0] == "hide new secretions from the parental units "  # the trailing space kept
    elif task == "sts-b":
        assert data.dev.labels.min() == 0.0 and data.dev.labels.max() == 5.0
        assert data.dev.texts_a[0] == "A man with a hard hat is dancing." and data.dev.labels[0] == 5.0
    else:
        assert set(np.unique(data.dev.labels)) == {0.0, 1.0}  # entailment, not_entailment
        assert len(data.dev.texts_b) == dev and max(len(t) for t in data.dev.texts_a) > 500  # long premises


def test_report_of_one_task_and_of_a_task_without_runs(tiny_store, tmp_path, capsys):
    store, plan = tiny_store
    out = tmp_path / "report"
    assert main(["report", "--store", str(store.root), "--out", str(out), "--no-figures"]) == 0
    text = (out / "findings.md").read_text()
    assert "| claim | paper (bert-base) | MRPC | verdict |" in text
    # One seed of one task: the random-init set-up is there, so Table 1's claim is tested; RTE's is not.
    record = {r["setup"]: r for r in queries.experiment_runs(store, store.run(plan.run_ids["finetuned"])["experiment_id"])}
    wins = record["finetuned"]["f1"] > record["random_init"]["f1"]
    assert f"**({F.HOLDS if wins else F.FAILS})** | **{F.HOLDS if wins else F.FAILS}** |" in text
    assert "Disabling layer 1 improves RTE | +3.2 points |" in text and "no RTE run in the store" in text
    capsys.readouterr()
    assert main(["report", "rte", "--store", str(store.root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: no finished fine-tuned run of rte in the store at {store.root}: "
                                        f"run `bertsecrets ingest TASK` first"]
