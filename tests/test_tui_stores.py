"""Stores for the browser's tests: hand-made analysis rows, and a fully hand-made store with known maps.

The analysis and ablation tables are filled by other commands; here they get
rows written by hand (respecting store/schema.py), so every screen has data.
The hand-made store is deterministic (fixed ids, times and maps) for snapshots.
"""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest

from bertsecrets.core.tasks import TASKS
from bertsecrets.store import Store
from bertsecrets.store.check import check_store
from bertsecrets.store.labels import PATTERN_CLASSES

FEATURES = ("noun", "verb", "pronoun", "negation", "cls", "sep")
WHEN = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def head_value(layer: int, head: int, salt: float = 0.0) -> float:
    """A known, distinct value per head in (0, 1): what the tests expect to see."""
    return round(0.05 + 0.9 * ((layer * 7 + head * 3 + salt * 11) % 17) / 17, 4)


def write_analysis_rows(store: Store, run_id: str, experiment_id: str, task: str, n_layers: int, n_heads: int,
                        n_examples: int) -> None:
    """One part per analysis and ablation table for ``run_id``, with values from ``head_value``."""
    heads = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    roles = ("pretrained", "finetuned")
    write = store.catalog.write
    write("head_stats", run_id, [
        {"run_id": run_id, "role": role, "layer": l, "head": h, "n_examples": n_examples,
         "entropy": 2 * head_value(l, h, r), "attn_cls": head_value(l, h, r + 1), "attn_sep": head_value(l, h, r + 2),
         "attn_punct": 0.01, "attn_self": 0.1, "attn_prev": 0.2, "attn_next": 0.15, "attn_distance": 3.5}
        for r, role in enumerate(roles) for l, h in heads
    ])
    write("feature_attention", run_id, [
        {"run_id": run_id, "role": role, "layer": l, "head": h, "feature": f,
         "value": head_value(l, h, r + i), "n_examples": n_examples - i}
        for r, role in enumerate(roles) for i, f in enumerate(FEATURES) for l, h in heads
    ])
    write("cls_attention", run_id, [
        {"run_id": run_id, "role": role, "layer": l, "feature": f, "value": head_value(l, i, r), "n_examples": n_examples}
        for r, role in enumerate(roles) for l in range(n_layers) for i, f in enumerate(FEATURES)
    ])
    write("head_change", run_id, [
        {"run_id": run_id, "layer": l, "head": h, "cosine_mean": 1 - head_value(l, h) / 2, "cosine_std": 0.05,
         "n_examples": n_examples} for l, h in heads
    ])
    write("map_classes", run_id, [
        {"run_id": run_id, "role": role, "example": e, "layer": l, "head": h, "source": "rules",
         "label": PATTERN_CLASSES[(l + h + e) % 5], "confidence": None}
        for role in roles for e in range(n_examples) for l, h in heads
    ])
    write("class_shares", run_id, [
        {"run_id": run_id, "role": role, "layer": l, "head": h, "source": "rules", "label": label,
         "share": (0.6 if c == (l + h) % 5 else 0.1), "n_maps": n_examples}
        for role in roles for l, h in heads for c, label in enumerate(PATTERN_CLASSES)
    ])
    write("relation_heads", run_id, [
        {"run_id": run_id, "role": role, "source": "spacy", "relation": "verb-subject", "layer": l, "head": h,
         "score": head_value(l, h, 5), "n_sentences": n_examples, "flagged": (l, h) == (n_layers - 1, 0)}
        for role in roles for l, h in heads
    ])
    write("classifiers", run_id, [
        {"run_id": run_id, "kind": "sklearn", "trained_on": "rules", "n_maps": 100, "cv_macro_f1": 0.8, "cv_folds": 5,
         "settings_json": "{}", "created_at": WHEN}
    ])
    ablation = [{"run_id": run_id, "kind": "baseline", "layer": None, "head": None, "metric": "accuracy", "value": 0.75,
                 "delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "changed": 0, "n_examples": n_examples}]
    for l, h in heads:
        delta = (head_value(l, h, 3) - 0.5) / 10  # -0.05 .. +0.05
        ablation.append({"run_id": run_id, "kind": "head", "layer": l, "head": h, "metric": "accuracy",
                         "value": 0.75 + delta, "delta": delta, "ci_low": delta - 0.02, "ci_high": delta + 0.02,
                         "changed": int(abs(delta) * 100), "n_examples": n_examples})
    for l in range(n_layers):
        ablation.append({"run_id": run_id, "kind": "layer", "layer": l, "head": None, "metric": "accuracy",
                         "value": 0.7 - l / 100, "delta": -0.05 - l / 100, "ci_low": -0.08, "ci_high": -0.02,
                         "changed": 5 + l, "n_examples": n_examples})
    write("ablation", run_id, ablation)
    write("ablation_seeds", experiment_id, [
        {"experiment_id": experiment_id, "task": task, "kind": "head", "layer": l, "head": h, "metric": "accuracy",
         "mean": 0.75, "std": 0.01, "delta_mean": 0.001 * h, "delta_std": 0.004, "n_seeds": 3} for l, h in heads
    ])
    write("head_importance", run_id, [
        {"run_id": run_id, "layer": l, "head": h, "importance": head_value(l, h, 7), "rank": i + 1}
        for i, (l, h) in enumerate(sorted(heads, key=lambda lh: -head_value(*lh, 7)))
    ])
    write("pruning", run_id, [
        {"run_id": run_id, "fraction": f, "n_disabled": int(f * len(heads)), "metric": "accuracy", "value": 0.75 - f / 4}
        for f in (0.0, 0.25, 0.5, 0.75)
    ])


def pattern_map(kind: int, length: int, split: int) -> np.ndarray:
    """A known attention map: 0 vertical ([CLS]), 1 diagonal (previous token), 2 vertical+diagonal, 3 block, 4 spread."""
    m = np.zeros((length, length))
    rows = np.arange(length)
    if kind in (0, 2):
        m[:, 0] += 1.0
    if kind in (1, 2):
        m[rows, np.maximum(rows - 1, 0)] += 1.0
    if kind == 3:
        for lo, hi in ((0, split), (split, length)):
            m[lo:hi, lo:hi] = 1.0
    if kind == 4:
        m[:] = (np.add.outer(rows, rows) % 7) + 1.0
    return m / m.sum(axis=1, keepdims=True)


TOKENS = ["[CLS]", "the", "bank", "bought", "the", "report", ".", "[SEP]", "it", "did", "not", "sell", "it", "##s",
          "shares", ".", "[SEP]"]


def handmade_store(root, n_examples: int = 4, n_layers: int = 2, n_heads: int = 5, with_analyses: bool = True,
                   task: str = "mrpc") -> Store:
    """A store with one fine-tuned run (of MRPC unless ``task`` says) whose maps are the five known patterns (head h
    has pattern h % 5). With a task of one sentence (sst-2) every word piece is of segment 0 and no input has a
    second text; the maps stay the same."""
    store = Store.create(root)
    run_id, exp = "run-handmade0001", "exp-handmade0001"
    pair = TASKS[task].pair
    lengths = np.array([len(TOKENS) - (e % 3) * 2 for e in range(n_examples)])
    base = {"experiment_id": exp, "task": task, "model": "tiny", "model_used": "tiny-bert", "model_source": "local",
            "n_layers": n_layers, "n_heads": n_heads, "seed": 0, "max_length": 128, "dev_examples": n_examples,
            "status": "done", "stage": "done", "started_at": WHEN, "finished_at": WHEN, "epochs": 3,
            "learning_rate": 5e-5}
    for i, (setup, acc, f1) in enumerate((("finetuned", 0.75, 0.8), ("no_finetuning", 0.5, 0.0),
                                           ("random_init", 0.6, 0.7))):
        rid = run_id if setup == "finetuned" else f"run-handmade000{i + 1}"
        store.save_run({**base, "run_id": rid, "setup": setup, "accuracy": acc, "f1": f1,
                        "started_at": WHEN + dt.timedelta(minutes=i)})
    examples, tokens = [], []
    for e, length in enumerate(lengths):
        words = TOKENS[:length - 1] + ["[SEP]"]
        split = words.index("[SEP]") + 1
        examples.append({"run_id": run_id, "example": e, "text_a": f"The bank bought the report {e}.",
                         "text_b": "It did not sell its shares." if pair else None, "label": float(e % 2), "n_tokens": int(length),
                         "prediction": 1.0, "correct": bool(e % 2)})
        tokens += [{"run_id": run_id, "example": e, "position": p, "token": t, "token_id": 1000 + p,
                    "segment": int(pair and p >= split), "word": None, "char_start": None, "char_end": None}
                   for p, t in enumerate(words)]
    store.catalog.write("examples", run_id, examples)
    store.catalog.write("tokens", run_id, tokens)
    for role in ("pretrained", "finetuned"):
        map_id = f"maps-handmade-{role}"
        writer = store.map_writer(map_id, lengths=lengths, n_layers=n_layers, n_heads=n_heads)
        for batch in writer.batches(8):
            buffer = writer.buffer(batch)
            for i, e in enumerate(batch.examples):
                length = int(lengths[e])
                split = (TOKENS[:length - 1] + ["[SEP]"]).index("[SEP]") + 1
                for layer in range(n_layers):
                    for head in range(n_heads):
                        kind = (head + (layer if role == "finetuned" else 0)) % 5
                        buffer[i, layer, head, :length, :length] = np.round(pattern_map(kind, length, split) * 255)
            writer.write(batch, buffer)
        store.catalog.write("maps", f"{run_id}-{role}", [{
            "map_id": map_id, "run_id": run_id, "role": role, "n_examples": n_examples, "n_layers": n_layers,
            "n_heads": n_heads, "precision": "uint8", "n_values": writer.n_values(), "bytes": 0, "status": "done",
            "extract_seconds": 0.0, "created_at": WHEN}])
    if with_analyses:
        write_analysis_rows(store, run_id, exp, task, n_layers, n_heads, n_examples)
    return store


@pytest.fixture
def browse_store(tiny_store, tmp_path):
    """A copy of the tiny ingest's store (the shared one stays untouched) with hand-made analysis rows."""
    store, plan = tiny_store
    copy = Store.open(shutil.copytree(store.root, tmp_path / "store"))
    run = copy.run(plan.run_ids["finetuned"])
    n = copy.maps(run["run_id"], "finetuned")
    write_analysis_rows(copy, run["run_id"], run["experiment_id"], "mrpc", n.n_layers, n.n_heads, len(n))
    return copy, run["run_id"]


def test_handmade_store_is_consistent(tmp_path):
    store = handmade_store(tmp_path / "s")
    problems, _ = check_store(store, deep=True)
    # It has no weights and keeps predictions for one run only: the browser reads neither.
    assert [p for p in problems if "weights missing" not in p.message and "no dev predictions" not in p.message] == []
    maps = store.maps("run-handmade0001", "finetuned")
    # Head 0 of layer 0 is vertical: every query puts all its attention on [CLS] (within uint8 rounding).
    assert np.allclose(maps.head(0, 0, 0)[:, 0], 1.0, atol=1 / 510)
    # Layer 1 of the fine-tuned model shifts the patterns by one: head 0 is diagonal there.
    m = maps.head(0, 1, 0)
    assert np.allclose(m[np.arange(1, len(m)), np.arange(len(m) - 1)], 1.0, atol=1 / 510)
