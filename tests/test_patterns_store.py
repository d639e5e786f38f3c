"""A one-sentence task end to end (a tiny SST-2): no map is ever a block, for the rules or the classifiers."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from rich.console import Console

from bertsecrets.cli import main
from bertsecrets.ingest.analyses import classifier, driver
from bertsecrets.store import StoreError
from bertsecrets.store.labels import Labels
from conftest import TINY_INGEST, write_task


@pytest.fixture(scope="module")
def sst2(tmp_path_factory, tiny_bert):
    from bertsecrets.core.settings import IngestSettings
    from bertsecrets.ingest.pipeline import ingest
    from bertsecrets.store import Store

    glue = write_task(tmp_path_factory.mktemp("glue-sst2"), "sst-2", n_train=32, n_dev=12)
    root = tmp_path_factory.mktemp("store-sst2") / "store"
    settings = IngestSettings(task="sst-2", model=str(tiny_bert), data_dir=str(glue), store=str(root),
                              **{**TINY_INGEST, "setups": ("finetuned",)})
    plan = ingest(settings, Console(file=open(os.devnull, "w")))
    return Store.open(root), plan.run_ids["finetuned"]


def test_rules_never_call_a_one_sentence_map_a_block_and_leave_its_block_masses_empty(sst2):
    store, run_id = sst2
    rows = store.rows("SELECT label, vertical_mass, diagonal_mass, block_share, block_spread FROM map_classes "
                      "WHERE run_id = ? AND source = 'rules'", [run_id])
    assert rows and all(r["label"] != "block" for r in rows)
    assert all(r["block_share"] is None and r["block_spread"] is None for r in rows)
    assert all(r["vertical_mass"] is not None and r["diagonal_mass"] is not None for r in rows)


def test_people_s_block_labels_of_one_sentence_maps_are_not_learnt_and_the_cnn_never_says_block(sst2, monkeypatch,
                                                                                                capsys):
    store, run_id = sst2
    when = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    # Six maps labelled block (impossible on one sentence), six vertical, six heterogeneous. The store refuses such
    # labels now, so they are written as a store from before that check holds them.
    rows = [{"run_id": run_id, "role": "finetuned", "example": e, "layer": layer, "head": head,
             "label": ("block", "vertical", "heterogeneous")[(e + head) % 3], "labeller": "ann", "labelled_at": when,
             "note": None} for e in range(3) for layer in range(2) for head in range(3)]
    with pytest.raises(StoreError, match="has one sentence, and a block needs two"):
        Labels(store).set_many(rows)
    store.catalog.write("labels", "by-ann", rows)
    monkeypatch.setattr(classifier, "MIN_PERSON_LABELS", 12)
    assert driver.pending(store, run_id) == ["classes"]
    driver.analyse(store, run_id, Console(file=open(os.devnull, "w")))
    trained = store.rows("SELECT * FROM classifiers WHERE run_id = ?", [run_id])
    assert {r["kind"] for r in trained} == {"cnn", "sklearn"}
    for r in trained:
        assert r["trained_on"] == "person" and r["n_maps"] == 12
        assert json.loads(r["settings_json"])["dropped_classes"] == {"block on one sentence": 6}
    labels = store.rows("SELECT label, count(*) AS n FROM map_classes WHERE run_id = ? AND source = 'classifier' "
                        "GROUP BY label", [run_id])
    assert labels and "block" not in {r["label"] for r in labels}
    assert main(["analyze", run_id, "--store", str(store.root)]) == 0
    assert "block: n/a, every SST-2 input is one sentence" in " ".join(capsys.readouterr().out.split())
