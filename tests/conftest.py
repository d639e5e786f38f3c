"""Shared fixtures: a tiny random BERT, a tiny MRPC-shaped GLUE folder, and a store built from them; the browser
steps its Pilot tests share."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL_GLUE = REPO.parent / "shared" / "data" / "glue"

NOUNS = ["cat", "dog", "bank", "company", "report", "market", "court", "teacher", "city", "share"]
VERBS = ["saw", "bought", "sold", "liked", "found", "approved", "rejected", "visited"]
PRONOUNS = ["he", "she", "they", "it"]


def _sentence(rng: random.Random) -> str:
    subject = rng.choice(["The " + rng.choice(NOUNS), rng.choice(PRONOUNS).capitalize()])
    negation = rng.choice(["", "", " did not", " never", " didn't"])
    verb = rng.choice(VERBS)
    if negation.strip():
        verb = {"saw": "see", "bought": "buy", "sold": "sell", "liked": "like", "found": "find",
                "approved": "approve", "rejected": "reject", "visited": "visit"}[verb]
    tail = rng.choice(["", " yesterday", " in the city", " because it was cheap"])
    return f"{subject}{negation} {verb} the {rng.choice(NOUNS)}{tail}."


def write_mrpc(folder: Path, n_train: int, n_dev: int, seed: int = 0) -> Path:
    """A GLUE-layout MRPC folder of synthetic pairs (header, BOM in train.tsv, quotes in fields)."""
    rng = random.Random(seed)
    task = folder / "MRPC"
    task.mkdir(parents=True, exist_ok=True)
    for name, n, bom in (("train.tsv", n_train, True), ("dev.tsv", n_dev, False)):
        lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i in range(n):
            a = _sentence(rng)
            same = rng.random() < 0.6
            b = a.replace(".", " , \"they said\".") if same else _sentence(rng)
            lines.append(f"{int(same)}\t{1000 + i}\t{2000 + i}\t{a}\t{b}")
        text = "\n".join(lines) + "\n"
        (task / name).write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return folder


def write_task(folder: Path, task: str, n_train: int, n_dev: int, seed: int = 0) -> Path:
    """A GLUE-layout folder of synthetic data for RTE (pairs, text labels), SST-2 (single sentences, a test.tsv of
    another shape) or STS-B (ten columns, a 0-5 score), in each file's real header and format."""
    if task == "mrpc":
        return write_mrpc(folder, n_train, n_dev, seed)
    rng = random.Random(seed)
    name = {"rte": "RTE", "sst-2": "SST-2", "sts-b": "STS-B"}[task]
    (folder / name).mkdir(parents=True, exist_ok=True)
    for split, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        if task == "rte":
            lines = ["index\tsentence1\tsentence2\tlabel"]
            for i in range(n):
                a = _sentence(rng)
                same = rng.random() < 0.5
                lines.append(f"{i}\t{a}\t{a if same else _sentence(rng)}\t{'entailment' if same else 'not_entailment'}")
        elif task == "sst-2":
            lines = ["sentence\tlabel"]
            for i in range(n):
                a = _sentence(rng).lower()
                lines.append(f"{a.rstrip('.')} \t{int(' not ' not in a and 'never' not in a)}")
        else:
            lines = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
            for i in range(n):
                a, b = _sentence(rng), _sentence(rng)
                score = 5.0 if rng.random() < 0.3 else round(rng.uniform(0, 4), 3)
                lines.append(f"{i}\tmain-news\t2012\t2012test\t{i:04d}\tnone\tnone\t{a}\t{a if score == 5.0 else b}\t{score}")
        (folder / name / split).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_tiny_bert(folder: Path, layers: int = 3, heads: int = 4, seed: int = 0) -> Path:
    """A randomly initialised BERT with the bundled uncased tokenizer (same vocabulary as bert-base)."""
    from bertsecrets.ingest.models import write_random_bert

    return write_random_bert(folder, "tiny", seed=seed, num_hidden_layers=layers, num_attention_heads=heads)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_glue(tmp_path_factory) -> Path:
    return write_mrpc(tmp_path_factory.mktemp("glue"), n_train=48, n_dev=24)


TINY_INGEST = dict(epochs=1, batch_size=16, max_examples=12, eval_batch_size=16, extract_batch_size=8)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, tiny_bert, tiny_glue):
    """A store holding a full tiny ingest of the synthetic MRPC (three set-ups, maps, analyses)."""
    from rich.console import Console

    from bertsecrets.core.settings import IngestSettings
    from bertsecrets.ingest.pipeline import ingest
    from bertsecrets.store import Store

    root = tmp_path_factory.mktemp("store") / "store"
    settings = IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), store=str(root), **TINY_INGEST)
    plan = ingest(settings, Console(file=open(os.devnull, "w")))
    return Store.open(root), plan


#: A grid's tiny settings: the fine-tuned and untrained set-ups only, STS-B on a cut training set (marked `*`).
TINY_GRID = ["--epochs", "1", "--batch-size", "16", "--max-examples", "8", "--eval-batch-size", "16",
             "--extract-batch-size", "8", "--setups", "finetuned,no_finetuning", "--max-train-examples", "sts-b=24"]


@pytest.fixture(scope="session")
def task_grid_store(tmp_path_factory, tiny_bert):
    """A store of two tasks x two seeds (MRPC and STS-B, seeds 0 and 1) from one grid ingest with the tiny BERT."""
    import contextlib
    import io

    from bertsecrets.cli import main
    from bertsecrets.store import Store

    folder = tmp_path_factory.mktemp("task-grid")
    for task in ("mrpc", "sts-b"):
        write_task(folder / "glue", task, n_train=32, n_dev=12, seed=3)
    root = folder / "store"
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["ingest", "mrpc", "sts-b", "--seeds", "0,1", "--model", str(tiny_bert), "--data-dir",
                     str(folder / "glue"), "--store", str(root), *TINY_GRID])
    assert code == 0, out.getvalue()
    return Store.open(root)


@pytest.fixture
def real_glue() -> Path:
    if not (REAL_GLUE / "MRPC" / "dev.tsv").exists():
        pytest.skip(f"the real GLUE data is not at {REAL_GLUE} (../shared/data/glue beside the checkout)")
    return REAL_GLUE


# -- the browser under Pilot ----------------------------------------------------------------------


async def settle(pilot, *keys: str) -> None:
    """Press ``keys``, then wait until every store read has come back and been drawn."""
    for key in keys:
        await pilot.press(key)
    for _ in range(100):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in pilot.app.workers):
            return


def text_of(app, selector: str) -> str:
    """What the Static ``selector`` of the screen shown now says."""
    from textual.widgets import Static

    return str(app.screen.query_one(selector, Static).render())
