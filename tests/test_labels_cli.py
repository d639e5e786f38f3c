"""`bertsecrets labels export|import`: CSV round trip, 1-indexed layers and heads, bad rows refused whole."""

from __future__ import annotations

import csv

import pytest

from bertsecrets.cli import main
from bertsecrets.store.labels import Labels


@pytest.fixture
def store_and_run(tiny_store):
    store, plan = tiny_store
    yield store, plan.run_ids["finetuned"]
    for part in store.catalog.parts("labels"):
        store.catalog.delete("labels", part)


def test_export_then_import_round_trips_with_1_indexed_layers(store_and_run, tmp_path, monkeypatch):
    store, run_id = store_and_run
    labels = Labels(store)
    labels.set(run_id, "finetuned", 3, 0, 2, "diagonal", labeller="ann", note="clear line")
    labels.set(run_id, "pretrained", 0, 2, 3, "block", labeller="bob")
    out = tmp_path / "labels.csv"
    assert main(["labels", "export", "--store", str(store.root), "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["labeller"], r["example"], r["layer"], r["head"], r["label"]) for r in rows] == [
        ("ann", "3", "1", "3", "diagonal"), ("bob", "0", "3", "4", "block")]
    assert rows[0]["note"] == "clear line"
    before = store.rows("SELECT * EXCLUDE (labelled_at) FROM labels ORDER BY labeller")
    for part in store.catalog.parts("labels"):
        store.catalog.delete("labels", part)
    assert main(["labels", "import", str(out), "--store", str(store.root)]) == 0
    assert main(["labels", "import", str(out), "--store", str(store.root)]) == 0  # twice: nothing changes
    assert store.rows("SELECT * EXCLUDE (labelled_at) FROM labels ORDER BY labeller") == before


def test_import_fills_the_labeller_and_keeps_the_last_row_of_a_map(store_and_run, tmp_path):
    store, run_id = store_and_run
    path = tmp_path / "in.csv"
    path.write_text("run_id,role,example,layer,head,label\n"
                    f"{run_id},finetuned,1,1,1,vertical\n"
                    f"{run_id},finetuned,1,1,1,heterogeneous\n")
    assert main(["labels", "import", str(path), "--labeller", "carol", "--store", str(store.root)]) == 0
    rows = store.rows("SELECT * FROM labels")
    assert [(r["labeller"], r["layer"], r["head"], r["label"]) for r in rows] == [("carol", 0, 0, "heterogeneous")]


@pytest.mark.parametrize("row, message", [
    ("{run},finetuned,1,4,1,vertical", "layer 4 is out of range 1..3"),
    ("{run},finetuned,1,0,1,vertical", "layer 0 is out of range"),
    ("{run},finetuned,1,1,5,vertical", "head 5 is out of range 1..4"),
    ("{run},finetuned,99,1,1,vertical", "example 99 is not among"),
    ("{run},finetuned,x,1,1,vertical", "example must be a whole number"),
    ("{run},middle,1,1,1,vertical", "role must be one of"),
    ("{run},finetuned,1,1,1,diagonalish", "label must be one of"),
    ("run-nope,finetuned,1,1,1,vertical", "has no stored maps"),
])
def test_a_bad_row_stops_the_whole_import(store_and_run, tmp_path, capsys, row, message):
    store, run_id = store_and_run
    path = tmp_path / "bad.csv"
    path.write_text("run_id,role,example,layer,head,label\n"
                    f"{run_id},finetuned,0,1,1,vertical\n" + row.format(run=run_id) + "\n")
    assert main(["labels", "import", str(path), "--store", str(store.root)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv:3" in err and message in err and "nothing was imported" in err
    assert store.rows("SELECT count(*) AS n FROM labels")[0]["n"] == 0


def test_missing_columns_and_files(store_and_run, tmp_path, capsys):
    store, _ = store_and_run
    path = tmp_path / "cols.csv"
    path.write_text("run_id,role,example,label\n")
    assert main(["labels", "import", str(path), "--store", str(store.root)]) == 2
    assert "missing column(s) layer, head" in capsys.readouterr().err
    assert main(["labels", "import", str(tmp_path / "nope.csv"), "--store", str(store.root)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_export_filters_by_run_and_labeller(store_and_run, capsys):
    store, run_id = store_and_run
    Labels(store).set(run_id, "finetuned", 0, 0, 0, "vertical", labeller="ann")
    Labels(store).set(run_id, "finetuned", 1, 0, 0, "block", labeller="bob")
    assert main(["labels", "export", "--labeller", "bob", "--store", str(store.root)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and ",block,bob," in lines[1]
    assert main(["labels", "export", "--run", "run-other", "--store", str(store.root)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


def test_block_is_refused_on_an_input_of_one_sentence_and_kept_on_a_pair(tmp_path, capsys):
    from bertsecrets.store import StoreError
    from tests.test_tui_stores import handmade_store

    single = handmade_store(tmp_path / "sst2", task="sst-2")  # every word piece of segment 0
    pair = handmade_store(tmp_path / "mrpc", task="mrpc")
    run_id = "run-handmade0001"
    with pytest.raises(StoreError, match="input 2 of run run-handmade0001 has one sentence, and a block needs two"):
        Labels(single).set(run_id, "finetuned", 2, 0, 3, "block", labeller="ann")
    Labels(single).set(run_id, "finetuned", 2, 0, 3, "diagonal", labeller="ann")
    Labels(pair).set(run_id, "finetuned", 2, 0, 3, "block", labeller="ann")
    assert [r["label"] for r in pair.rows("SELECT label FROM labels")] == ["block"]

    path = tmp_path / "in.csv"  # one bad row among good ones: nothing is imported
    path.write_text("run_id,role,example,layer,head,label\n"
                    f"{run_id},finetuned,1,1,1,vertical\n"
                    f"{run_id},finetuned,3,1,2,block\n")
    assert main(["labels", "import", str(path), "--labeller", "bob", "--store", str(single.root)]) != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {path}:3: input 3 of run {run_id} has one sentence, and a block "
                                        "needs two: give it another class; nothing was imported"]
    assert [(r["labeller"], r["label"]) for r in single.rows("SELECT labeller, label FROM labels")] == [("ann", "diagonal")]
    assert main(["labels", "import", str(path), "--labeller", "bob", "--store", str(pair.root)]) == 0
