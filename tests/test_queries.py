"""store/queries.py answers each catalog question as the Parquet parts say, and no other code holds the app's SQL.

Every answer is checked against the rows read straight from the parts with
pyarrow and grouped, sorted or joined in Python, on a copy of the tiny store
with a few hand-made parts added where the tiny run is too uniform to tell
(ties, missing scores, classifiers, labels, an unfinished run).
"""

from __future__ import annotations

import ast
import datetime as dt
import re
import shutil
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from bertsecrets.store import Store, queries
from bertsecrets.store.labels import PATTERN_CLASSES, Labels

ROOT = Path(__file__).resolve().parent.parent
HAND = "run-hand"  # a run id that only the hand-made parts below use
UTC = dt.timezone.utc


def raw(store: Store, table: str, **equal) -> list[dict]:
    """Every row of ``table`` from its Parquet parts (read with pyarrow, not DuckDB), those matching ``equal``."""
    parts = [store.catalog.read_part(table, name) for name in store.catalog.parts(table)]
    rows = pa.concat_tables(parts).to_pylist() if parts else []
    return [r for r in rows if all(r[k] == v for k, v in equal.items())]


def pick(rows: list[dict], *columns: str) -> list[dict]:
    return [{c: r[c] for c in columns} for r in rows]


def nulls_last(*values) -> tuple:
    """A sort key that puts None after every value, as SQL's ORDER BY does here."""
    return tuple(x for v in values for x in (v is None, v if v is not None else 0))


@pytest.fixture(scope="module")
def hand(tiny_store, tmp_path_factory):
    """A copy of the tiny store, with hand-made parts; (store, fine-tuned run id, experiment id)."""
    store, plan = tiny_store
    root = tmp_path_factory.mktemp("queries") / "store"
    shutil.copytree(store.root, root)
    copy = Store.open(root)
    run_id = plan.run_ids["finetuned"]
    experiment = copy.run(run_id)["experiment_id"]
    cat = copy.catalog
    # An unfinished run in the same experiment, started after the others.
    record = {**copy.run(run_id), "run_id": HAND, "setup": "zz_unfinished", "status": "running",
              "started_at": dt.datetime(2100, 1, 1, tzinfo=UTC), "finished_at": None, "accuracy": None}
    cat.write("runs", HAND, [record])
    # Class shares of four heads (2 layers x 2 heads), every class listed as the analysis writes them.
    per_head = {(0, 0): {"vertical": 1.0}, (0, 1): {"vertical": 0.5, "block": 0.5},
                (1, 0): {"block": 1.0}, (1, 1): {"diagonal": 1.0}}
    cat.write("class_shares", f"{HAND}-rules", [
        {"run_id": HAND, "role": "finetuned", "layer": l, "head": h, "source": "rules", "label": c,
         "share": shares.get(c, 0.0), "n_maps": 2} for (l, h), shares in per_head.items() for c in PATTERN_CLASSES])
    # Machine classes with a tie in confidence (vertical) and a missing confidence (heterogeneous).
    classes = {(0, 1, 1): ("vertical", 0.9), (1, 0, 0): ("vertical", 0.9), (1, 1, 0): ("block", 0.7),
               (0, 0, 1): ("block", 0.4), (0, 0, 0): ("heterogeneous", None), (1, 1, 1): ("heterogeneous", 0.2)}
    cat.write("map_classes", f"{HAND}-rules", [
        {"run_id": HAND, "role": "finetuned", "example": e, "layer": l, "head": h, "source": "rules", "label": c,
         "confidence": p} for (e, l, h), (c, p) in classes.items()])
    # Relation scores: a tie for the best head, a head without a score, and a relation no head has a score for.
    scores = {("spacy", "verb-subject"): [0.2, 0.5, 0.5, None], ("spacy", "noun-pronoun"): [None] * 4,
              ("jsonl", "verb-object"): [0.1, 0.3, 0.2, 0.0]}
    cat.write("relation_heads", f"{HAND}-hand", [
        {"run_id": HAND, "role": "finetuned", "source": s, "relation": rel, "layer": i // 2, "head": i % 2,
         "score": v, "n_sentences": 0 if v is None else 3 + i, "flagged": False}
        for (s, rel), values in scores.items() for i, v in enumerate(values)])
    cat.write("classifiers", HAND, [
        {"run_id": HAND, "kind": kind, "trained_on": "person", "n_maps": 40, "cv_macro_f1": f1, "cv_folds": 5,
         "settings_json": "{}", "created_at": dt.datetime(2024, 1, 1, tzinfo=UTC)}
        for kind, f1 in (("sklearn", 0.6), ("cnn", 0.7))])
    cat.write("ablation_seeds", "seeds-hand", [
        {"experiment_id": "seeds-hand", "task": "mrpc", "kind": k, "layer": l, "head": h, "metric": "accuracy",
         "mean": 0.5, "n_seeds": 3}
        for k, l, h in (("layer", 1, None), ("head", 1, 0), ("baseline", None, None), ("head", 0, 1))])
    # Labels of two people (only theirs); bob relabels one of ann's maps later.
    for part in cat.parts("labels"):
        cat.delete("labels", part)
    given = [(run_id, "finetuned", 0, 0, 0, "vertical", "ann"), (run_id, "finetuned", 0, 0, 1, "vertical", "ann"),
             (run_id, "pretrained", 1, 2, 3, "vertical", "ann"), (run_id, "finetuned", 0, 1, 0, "block", "ann"),
             (run_id, "finetuned", 0, 0, 0, "block", "bob"), (HAND, "finetuned", 0, 0, 0, "diagonal", "bob")]
    Labels(copy).set_many([{"run_id": r, "role": role, "example": e, "layer": l, "head": h, "label": label,
                            "labeller": who, "labelled_at": dt.datetime(2024, 1, day, tzinfo=UTC)}
                           for day, (r, role, e, l, h, label, who) in enumerate(given, start=1)])
    return copy, run_id, experiment


# -- runs ------------------------------------------------------------------------------------


def test_experiment_runs_by_setup_finished_or_all(hand):
    store, _, experiment = hand
    done = queries.experiment_runs(store, experiment)
    assert [r["setup"] for r in done] == ["finetuned", "no_finetuning", "random_init"]
    assert done == sorted(raw(store, "runs", experiment_id=experiment, status="done"), key=lambda r: r["setup"])
    every = queries.experiment_runs(store, experiment, finished=False)
    assert [r["setup"] for r in every] == ["finetuned", "no_finetuning", "random_init", "zz_unfinished"]


def test_run_list_counts_finished_maps_and_orders_by_task_then_start(hand):
    store, run_id, _ = hand
    runs = raw(store, "runs")
    maps = raw(store, "maps", status="done")
    expected = []
    for r in sorted(runs, key=lambda r: (r["task"], r["started_at"], r["setup"])):
        sizes = [m["n_examples"] for m in maps if m["run_id"] == r["run_id"]]
        expected.append((r["run_id"], r["model_used"], r["status"], len(sizes), max(sizes) if sizes else None))
    listed = queries.run_list(store)
    assert [(r["run_id"], r["model"], r["status"], r["map_sets"], r["map_examples"]) for r in listed] == expected
    assert listed[-1]["run_id"] == HAND and listed[-1]["map_sets"] == 0
    assert next(r for r in listed if r["run_id"] == run_id)["map_sets"] == 2
    assert list(listed[0]) == [
        "run_id", "experiment_id", "task", "setup", "model", "seed", "status", "stage", "accuracy", "f1", "pearson",
        "spearman", "n_layers", "n_heads", "dev_examples", "started_at", "finished_at", "error", "train_seconds",
        "learning_rate", "epochs", "max_length", "max_train_examples", "map_examples", "map_sets"]
    assert queries.run_list(store, run_id) == [r for r in listed if r["run_id"] == run_id]
    assert queries.run_list(store, "run-none") == []


def test_runs_table_rounds_to_percent_in_the_run_list_order(hand):
    store, _, _ = hand
    table = queries.runs_table(store)
    assert table.column_names == [
        "run_id", "task", "setup", "model", "seed", "status", "acc|r", "f1", "train_s", "started"]
    by_id = {r["run_id"]: r for r in raw(store, "runs")}
    rows = table.to_pylist()
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in queries.run_list(store)]
    for row in rows:
        r = by_id[row["run_id"]]
        acc = r["accuracy"] if r["accuracy"] is not None else r["pearson"]
        assert row["acc|r"] == (None if acc is None else pytest.approx(100 * acc, abs=0.05 + 1e-9))
        assert row["f1"] == (None if r["f1"] is None else pytest.approx(100 * r["f1"], abs=0.05 + 1e-9))
        assert row["started"] == r["started_at"].astimezone().strftime("%Y-%m-%d %H:%M")


# -- inputs and maps --------------------------------------------------------------------------


def test_examples_by_example_all_or_the_first(hand):
    store, run_id, _ = hand
    columns = ("example", "text_a", "text_b", "label", "prediction", "correct", "n_tokens")
    stored = pick(sorted(raw(store, "examples", run_id=run_id), key=lambda r: r["example"]), *columns)
    assert queries.examples(store, run_id) == stored
    assert [r["example"] for r in stored] == list(range(24))  # the tiny dev split
    assert queries.examples(store, run_id, below=5) == stored[:5]


def test_tokens_by_example_and_position(hand):
    store, run_id, _ = hand
    columns = ("example", "position", "token", "segment", "char_start", "char_end")
    stored = pick(sorted(raw(store, "tokens", run_id=run_id), key=lambda r: (r["example"], r["position"])), *columns)
    table = queries.tokens(store, run_id)
    assert table.column_names == list(columns) and table.to_pylist() == stored
    first = queries.tokens(store, run_id, below=2).to_pylist()
    assert first == [r for r in stored if r["example"] < 2] and {r["example"] for r in first} == {0, 1}
    assert first[0]["token"] == "[CLS]" and first[0]["char_start"] is None


def test_one_sentence_inputs_have_no_word_piece_of_a_second_segment(hand):
    store, run_id, _ = hand
    # Hand-made: input 0 one sentence, 1 and 2 a pair (whatever the order of the pieces), 3 one sentence.
    segments = {0: [0, 0, 0], 1: [0, 0, 1, 1], 2: [0, 1, 0], 3: [0]}
    store.catalog.write("tokens", HAND, [
        {"run_id": HAND, "example": e, "position": i, "token": "x", "token_id": 1, "segment": seg, "word": None,
         "char_start": None, "char_end": None} for e, segs in segments.items() for i, seg in enumerate(segs)])
    try:
        assert queries.one_sentence_inputs(store, [HAND]) == [{"run_id": HAND, "example": 0},
                                                              {"run_id": HAND, "example": 3}]
        # The tiny run's, counted from its parts: examples none of whose pieces is of segment 1.
        pieces = raw(store, "tokens", run_id=run_id)
        pairs = {r["example"] for r in pieces if r["segment"] == 1}
        naive = [{"run_id": run_id, "example": e} for e in sorted({r["example"] for r in pieces} - pairs)]
        both = queries.one_sentence_inputs(store, [HAND, run_id])
        assert both == sorted(naive + [{"run_id": HAND, "example": 0}, {"run_id": HAND, "example": 3}],
                              key=lambda r: (r["run_id"], r["example"]))
        assert queries.one_sentence_inputs(store, ["no-such-run"]) == []
    finally:
        store.catalog.delete("tokens", HAND)


def test_finished_maps_of_a_run_or_all(hand):
    store, run_id, _ = hand
    columns = ("run_id", "role", "map_id", "n_examples", "n_layers", "n_heads")
    stored = raw(store, "maps", status="done")
    expected = pick(sorted(stored, key=lambda m: (m["run_id"], m["role"], m["created_at"])), *columns)
    assert queries.finished_maps(store) == expected
    mine = queries.finished_maps(store, run_id)
    assert [(m["role"], m["n_examples"], m["n_layers"], m["n_heads"]) for m in mine] == [
        ("finetuned", 12, 3, 4), ("pretrained", 12, 3, 4)]  # TINY_INGEST max_examples, a 3 x 4 BERT
    assert queries.finished_maps(store, HAND) == []


# -- people's labels ---------------------------------------------------------------------------


def test_given_labels_filter_by_run_and_labeller(hand):
    store, run_id, _ = hand
    key = lambda r: (r["labeller"], r["run_id"], r["role"], r["example"], r["layer"], r["head"])
    every = queries.given_labels(store)
    assert every == sorted(raw(store, "labels"), key=key) and len(every) == 6
    assert [(r["labeller"], r["label"]) for r in queries.given_labels(store, run_id)] == [
        ("ann", "vertical"), ("ann", "vertical"), ("ann", "block"), ("ann", "vertical"), ("bob", "block")]
    assert [r["run_id"] for r in queries.given_labels(store, labeller="bob")] == sorted([HAND, run_id])
    assert [r["label"] for r in queries.given_labels(store, HAND, "bob")] == ["diagonal"]
    assert queries.given_labels(store, HAND, "ann") == []


def test_label_counts_everyone_and_mine(hand):
    store, _, _ = hand
    assert queries.label_counts(store, "ann") == [{"label": "block", "n": 2, "mine": 1},
                                                  {"label": "diagonal", "n": 1, "mine": 0},
                                                  {"label": "vertical", "n": 3, "mine": 3}]
    assert [r["mine"] for r in queries.label_counts(store, "nobody")] == [0, 0, 0]


def test_labels_state_and_latest_labels(hand):
    store, run_id, _ = hand
    assert queries.labels_state(store, run_id) == {"n": 5, "last": dt.datetime(2024, 1, 5, tzinfo=UTC)}
    assert queries.labels_state(store, "run-none") == {"n": 0, "last": None}
    latest = queries.latest_labels(store, run_id)
    assert [(r["role"], r["example"], r["layer"], r["head"], r["label"]) for r in latest] == [
        ("finetuned", 0, 0, 0, "block"),  # ann said vertical, bob said block later
        ("finetuned", 0, 0, 1, "vertical"), ("finetuned", 0, 1, 0, "block"), ("pretrained", 1, 2, 3, "vertical")]


# -- the analyses -------------------------------------------------------------------------------


def test_run_table_is_the_runs_part_as_written(hand):
    store, run_id, _ = hand
    for table in ("head_change", "head_stats", "cls_attention", "ablation", "pruning"):
        assert queries.run_table(store, table, run_id).to_pylist() == store.catalog.read_part(table, run_id).to_pylist()
    relations = queries.run_table(store, "relation_heads", run_id).to_pylist()
    key = lambda r: (r["source"], r["relation"], r["role"], r["layer"], r["head"])
    assert sorted(relations, key=key) == sorted(raw(store, "relation_heads", run_id=run_id), key=key)
    assert queries.run_table(store, "map_classes", "run-none").num_rows == 0
    for bad in ("ablation_seeds", "nope", "runs; DROP VIEW runs"):
        with pytest.raises(ValueError):
            queries.run_table(store, bad, run_id)


def test_class_shares_are_means_over_heads(hand):
    store, run_id, _ = hand
    assert [(r["label"], r["share"]) for r in queries.class_shares(store, HAND)] == [
        ("block", 0.375), ("diagonal", 0.25), ("heterogeneous", 0.0), ("vertical", 0.375), ("vertical+diagonal", 0.0)]
    groups = defaultdict(list)
    for r in raw(store, "class_shares", run_id=run_id):
        groups[r["source"], r["role"], r["label"]].append(r["share"])
    shares = queries.class_shares(store, run_id)
    assert [(r["source"], r["role"], r["label"]) for r in shares] == sorted(groups)
    for r in shares:
        assert r["share"] == pytest.approx(np.mean(groups[r["source"], r["role"], r["label"]]))



@pytest.mark.parametrize("norm", [False, True], ids=["weight", "norm"])
def test_shares_features_and_layer_change_by_weight_or_by_norm(hand, norm):
    """``norm=True`` asks the norm-weighted twin (``norm_<table>``), grouped and sorted as the weight table is."""
    store, run_id, _ = hand
    prefix = "norm_" if norm else ""
    groups = defaultdict(list)
    for r in raw(store, prefix + "class_shares", run_id=run_id):
        groups[r["source"], r["role"], r["label"]].append(r["share"])
    assert groups  # the tiny ingest writes both weightings
    shares = queries.class_shares(store, run_id, norm=norm)
    assert [(r["source"], r["role"], r["label"]) for r in shares] == sorted(groups)
    for r in shares:
        assert r["share"] == pytest.approx(np.mean(groups[r["source"], r["role"], r["label"]]))

    features = raw(store, prefix + "feature_attention", run_id=run_id, role="finetuned")
    assert features
    assert queries.feature_attention(store, run_id, "finetuned", norm=norm) == sorted(
        pick(features, "layer", "head", "feature", "value"), key=lambda r: (r["layer"], r["head"], r["feature"]))

    layers = defaultdict(list)
    for r in raw(store, prefix + "head_change", run_id=run_id):
        layers[r["layer"]].append(r["cosine_mean"])
    change = queries.layer_change(store, run_id, norm=norm)
    assert [r["layer"] for r in change] == sorted(layers) and layers
    for r in change:
        assert r["cosine"] == pytest.approx(np.mean(layers[r["layer"]]))


def test_class_shares_by_layer(hand):
    store, run_id, _ = hand
    rows = queries.class_shares_by_layer(store, HAND, "finetuned", "rules")
    by_layer = {(r["layer"], r["label"]): r["share"] for r in rows}
    assert by_layer[0, "vertical"] == 0.75 and by_layer[0, "block"] == 0.25
    assert by_layer[1, "block"] == 0.5 and by_layer[1, "diagonal"] == 0.5 and by_layer[1, "vertical"] == 0.0
    rows = queries.class_shares_by_layer(store, run_id, "finetuned", "rules")
    groups = defaultdict(list)
    for r in raw(store, "class_shares", run_id=run_id, role="finetuned", source="rules"):
        groups[r["layer"], r["label"]].append(r["share"])
    assert [(r["layer"], r["label"]) for r in rows] == sorted(groups)
    assert [r["share"] for r in rows] == pytest.approx([np.mean(groups[k]) for k in sorted(groups)])
    assert queries.class_shares_by_layer(store, HAND, "pretrained", "rules") == []


def test_clearest_maps_one_map_per_class_first_on_ties(hand):
    store, run_id, _ = hand
    assert queries.clearest_maps(store, HAND, "finetuned", "rules") == [
        {"label": "block", "example": 1, "layer": 1, "head": 0},
        {"label": "heterogeneous", "example": 1, "layer": 1, "head": 1},  # a missing confidence never wins
        {"label": "vertical", "example": 0, "layer": 1, "head": 1},  # 0.9 twice: the first map
    ]
    best = {}
    for r in raw(store, "map_classes", run_id=run_id, role="finetuned", source="rules"):
        key = (*nulls_last(None if r["confidence"] is None else -r["confidence"]), r["example"], r["layer"], r["head"])
        if r["label"] not in best or key < best[r["label"]][0]:
            best[r["label"]] = (key, {k: r[k] for k in ("label", "example", "layer", "head")})
    assert queries.clearest_maps(store, run_id, "finetuned", "rules") == [best[c][1] for c in sorted(best)]


def test_map_classes_of_the_first_inputs(hand):
    store, run_id, _ = hand
    columns = ("source", "role", "example", "layer", "head", "label", "confidence")
    key = lambda r: tuple(r[c] for c in columns[:5])
    for below, n in ((None, 2 * 12 * 12), (3, 2 * 3 * 12)):  # both models, 12 inputs, 12 heads, rule labels only
        table = queries.map_classes(store, run_id, below)
        assert table.column_names == list(columns) and table.num_rows == n
        stored = [r for r in pick(raw(store, "map_classes", run_id=run_id), *columns)
                  if below is None or r["example"] < below]
        assert sorted(table.to_pylist(), key=key) == sorted(stored, key=key)


def test_classifiers_by_kind(hand):
    store, run_id, _ = hand
    assert [(r["kind"], r["cv_macro_f1"]) for r in queries.classifiers(store, HAND)] == [("cnn", 0.7), ("sklearn", 0.6)]
    stored = raw(store, "classifiers", run_id=run_id)
    assert queries.classifiers(store, run_id) == sorted(stored, key=lambda r: r["kind"])


def test_layer_summary_means_over_heads(hand):
    store, run_id, _ = hand
    rows = queries.layer_summary(store, run_id)
    assert [r["layer"] for r in rows] == [0, 1, 2]
    stats = raw(store, "head_stats", run_id=run_id)
    change = raw(store, "head_change", run_id=run_id)
    for r in rows:
        fine = [s for s in stats if s["role"] == "finetuned" and s["layer"] == r["layer"]]
        pre = [s for s in stats if s["role"] == "pretrained" and s["layer"] == r["layer"]]
        assert len(fine) == len(pre) == 4
        assert r["cosine"] == pytest.approx(np.mean([c["cosine_mean"] for c in change if c["layer"] == r["layer"]]))
        assert r["cls"] == pytest.approx(np.mean([s["attn_cls"] for s in fine]))
        assert r["sep"] == pytest.approx(np.mean([s["attn_sep"] for s in fine]))
        assert r["entropy"] == pytest.approx(np.mean([s["entropy"] for s in fine]))
        assert r["pretrained_cls"] == pytest.approx(np.mean([s["attn_cls"] for s in pre]))
        assert r["pretrained_sep"] == pytest.approx(np.mean([s["attn_sep"] for s in pre]))
    assert queries.layer_summary(store, HAND) == []


def test_cls_attention_keeps_the_written_order(hand):
    store, run_id, _ = hand
    written = store.catalog.read_part("cls_attention", run_id).to_pylist()
    assert queries.cls_attention(store, run_id) == written
    fine = queries.cls_attention(store, run_id, "finetuned")
    assert fine == [r for r in written if r["role"] == "finetuned"] and len(fine) == 3 * 8
    # The token types come in the analysis's order, which the figure's and the table's columns follow.
    assert list(dict.fromkeys(r["feature"] for r in fine)) == list(dict.fromkeys(r["feature"] for r in written))


def test_relation_heads_of_one_model(hand):
    store, run_id, _ = hand
    key = lambda r: (r["source"], r["relation"], r["layer"], r["head"])
    assert queries.relation_heads(store, run_id, "finetuned") == sorted(
        raw(store, "relation_heads", run_id=run_id, role="finetuned"), key=key)
    assert [(r["source"], r["relation"]) for r in queries.relation_heads(store, HAND, "finetuned")][::4] == [
        ("jsonl", "verb-object"), ("spacy", "noun-pronoun"), ("spacy", "verb-subject")]
    assert queries.relation_heads(store, HAND, "pretrained") == []


def test_strongest_relation_heads(hand):
    store, run_id, _ = hand
    assert queries.strongest_relation_heads(store, HAND, "finetuned") == [
        {"source": "jsonl", "relation": "verb-object", "layer": 0, "head": 1, "score": 0.3,
         "mean": pytest.approx(0.15), "n": 6},
        # 0.5 twice: the first head; the head without a score does not count towards the mean;
        # noun-pronoun has no scored head, so no row.
        {"source": "spacy", "relation": "verb-subject", "layer": 0, "head": 1, "score": 0.5,
         "mean": pytest.approx(0.4), "n": 5},
    ]
    groups = defaultdict(list)
    for r in raw(store, "relation_heads", run_id=run_id, role="finetuned"):
        if r["score"] is not None:
            groups[r["source"], r["relation"]].append(r)
    expected = []
    for (source, relation), rows in sorted(groups.items()):
        best = min(rows, key=lambda r: (-r["score"], r["layer"], r["head"]))
        expected.append({"source": source, "relation": relation, "layer": best["layer"], "head": best["head"],
                         "score": best["score"], "mean": pytest.approx(np.mean([r["score"] for r in rows])),
                         "n": max(r["n_sentences"] for r in rows)})
    # The six spaCy relations (and any a relations file added earlier in the session).
    assert sum(e["source"] == "spacy" for e in expected) == 6
    assert queries.strongest_relation_heads(store, run_id, "finetuned") == expected


# -- the ablation --------------------------------------------------------------------------------


def test_ablation_rows_filtered_and_ordered(hand):
    store, run_id, _ = hand
    stored = raw(store, "ablation", run_id=run_id)
    key = lambda r: (r["kind"], r["metric"], *nulls_last(r["layer"], r["head"]))
    assert queries.ablation_rows(store, run_id) == sorted(stored, key=key)
    heads = queries.ablation_rows(store, run_id, "head", "accuracy")
    assert [(r["layer"], r["head"]) for r in heads] == [(l, h) for l in range(3) for h in range(4)]
    assert heads == sorted([r for r in stored if r["kind"] == "head" and r["metric"] == "accuracy"], key=key)
    assert [r["metric"] for r in queries.ablation_rows(store, run_id, kind="baseline")] == ["accuracy", "f1"]
    kinds = {r["kind"] for r in queries.ablation_rows(store, run_id, metric="f1")}
    assert kinds == {"baseline", "head", "layer", "random_head"}


def test_head_importance_with_effect_joins_the_head_rows(hand):
    store, run_id, _ = hand
    effect = {(r["layer"], r["head"]): r for r in raw(store, "ablation", run_id=run_id, kind="head", metric="accuracy")}
    expected = []
    for i in sorted(raw(store, "head_importance", run_id=run_id), key=lambda r: r["rank"]):
        a = effect[i["layer"], i["head"]]
        expected.append({"layer": i["layer"], "head": i["head"], "importance": i["importance"], "rank": i["rank"],
                         "delta": a["delta"], "loss_delta": a["loss_delta"]})
    joined = queries.head_importance_with_effect(store, run_id, "accuracy")
    assert joined == expected and [r["rank"] for r in joined] == list(range(1, 13))


def test_pruning_curve_by_metric_and_fraction(hand):
    store, run_id, _ = hand
    stored = raw(store, "pruning", run_id=run_id)
    assert queries.pruning_curve(store, run_id) == sorted(stored, key=lambda r: (r["metric"], r["fraction"]))
    accuracy = queries.pruning_curve(store, run_id, "accuracy")
    assert [r["fraction"] for r in accuracy] == pytest.approx([i / 10 for i in range(10)])
    assert {r["metric"] for r in accuracy} == {"accuracy"}


def test_ablation_seeds_by_kind_layer_head(hand):
    store, _, _ = hand
    rows = queries.ablation_seeds(store, "seeds-hand")
    assert [(r["kind"], r["layer"], r["head"]) for r in rows] == [
        ("baseline", None, None), ("head", 0, 1), ("head", 1, 0), ("layer", 1, None)]
    assert queries.ablation_seeds(store, "seeds-none") == []


# -- threads ---------------------------------------------------------------------------------------


def test_questions_answer_the_same_from_worker_threads(hand):
    """The browser asks from worker threads at once; each thread reads through its own connection."""
    store, run_id, _ = hand
    asks = [lambda: queries.run_list(store), lambda: queries.examples(store, run_id),
            lambda: queries.tokens(store, run_id).to_pylist(), lambda: queries.class_shares(store, run_id)] * 4
    alone = [ask() for ask in asks]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda ask: ask(), asks))
    assert together == alone


# -- where the SQL lives ----------------------------------------------------------------------------

#: Folders outside store/ whose code must ask the catalog through store/queries.py.
APP_FOLDERS = ("bertsecrets", "bertsecrets_tui", "ingest")
#: Files there that may still hold SQL, and why. Shrink it as their questions move to store/queries.py.
SQL_ALLOWED = {
    "bertsecrets/commands/sql.py": "runs the SQL a person types (data, not a question of the app)",
    "bertsecrets_tui/screens/sql.py": "runs the SQL a person types, and offers examples of it",
}
#: A statement's first words, in capitals as this code writes SQL (prose rarely shouts SELECT).
SQL_WORDS = (r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(OR\s+REPLACE\s+)?(TABLE|VIEW|MACRO)|"
             r"DROP\s+(TABLE|VIEW)|ALTER\s+TABLE|COPY\s|ATTACH\s|PRAGMA\s)")


def sql_strings(source: str) -> list[str]:
    """The string literals of ``source`` that hold SQL (f-strings as one, docstrings left out)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    skip = set(docstrings)
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node) if n is not node)  # its parts are read here, as one text
            texts.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            texts.append(node.value)
    return [t for t in texts if re.search(SQL_WORDS, t)]


def sql_outside_store() -> dict[str, list[str]]:
    found = {}
    for folder in APP_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            strings = sql_strings(path.read_text(encoding="utf-8"))
            if strings:
                found[path.relative_to(ROOT).as_posix()] = strings
    return found


def test_the_sql_finder_sees_statements_not_prose():
    source = '''
"""A module that mentions SELECT in its docstring."""
def f(store, name):
    """SELECT here is prose."""
    store.rows("SELECT a "
               "FROM t WHERE b = ?", [1])
    store.query(f"SELECT * FROM {name} WHERE run_id = ?")
    con.execute("""
        INSERT INTO t VALUES (1)""")
    print("select a run, then press enter")
    return "COPY t TO 'x.csv'"
'''
    assert sorted(sql_strings(source)) == ["\n        INSERT INTO t VALUES (1)", "COPY t TO 'x.csv'",
                                           "SELECT * FROM {} WHERE run_id = ?", "SELECT a FROM t WHERE b = ?"]


def test_the_apps_sql_lives_in_store():
    found = sql_outside_store()
    stray = {path: strings for path, strings in found.items() if path not in SQL_ALLOWED}
    assert not stray, ("catalog SQL outside store/; make it a function of store/queries.py: "
                       + "; ".join(f"{path}: {strings[0][:60]!r}" for path, strings in stray.items()))
    # The finder does see SQL: the person's-SQL screen holds its examples.
    assert len(found["bertsecrets_tui/screens/sql.py"]) >= 5
