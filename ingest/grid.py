"""A grid of ingests: several tasks x seeds in one command, each task in its own terms, failures kept apart.

`bertsecrets ingest mrpc rte --seeds 0,1,2` is one ingest per task and seed,
in that order (a task's seeds share its pretrained maps and its data), or on a Dask
cluster (``--workers N``, ``--scheduler ADDRESS``: ``cluster.py``). Each
is content-addressed like a single ingest, so what the store holds is skipped
and adding a task or a seed later computes only what is new. A task that
cannot start (its data missing or malformed, its model refused) is reported
in one line and the grid goes on with the next task; a seed that fails
(training diverged, say) does not stop the other seeds. A store that cannot
be used fails every task alike, so it stops the whole grid in one line: it is
checked before any task, and a store found read-only at its first write ends
the grid there.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from rich.console import Console
from rich.text import Text

from bertsecrets.core.config import glue_dir, store_path
from bertsecrets.core.errors import UserError
from bertsecrets.core.settings import IngestSettings
from bertsecrets.core.tasks import TASKS, get_task
from bertsecrets.ingest.pipeline import Outcome, ingest
from bertsecrets.ingest.plan import make_plan
from bertsecrets.store import Store
from bertsecrets.store.errors import StoreReadOnly


def found_tasks(data_dir: str | None) -> tuple[list[str], list[str]]:
    """For ``all``: the tasks whose GLUE files are found (each task's folder with train and dev), and the others.

    Without a GLUE folder (no ``--data-dir``, no $GLUE_DIR) every task is read
    from the hub, so all seven are chosen.
    """
    from pathlib import Path

    folder = Path(data_dir).expanduser() if data_dir is not None else glue_dir()
    if folder is None:
        return list(TASKS), []
    found, missing = [], []
    for name, task in TASKS.items():
        base = folder / task.glue_folder
        ok = (base / "train.tsv").is_file() and (base / task.dev_file).is_file()
        (found if ok else missing).append(name)
    return found, missing


def task_names(given: list[str], data_dir: str | None) -> list[str]:
    """The tasks named on the command line (``all``: every task found), checked and without repeats."""
    names: list[str] = []
    for name in given:
        chosen = found_tasks(data_dir)[0] if name.strip().lower() == "all" else [get_task(name).name]
        names += [n for n in chosen if n not in names]
    if not names:
        raise UserError("no task's data was found for 'all': set GLUE_DIR or --data-dir to a folder in the GLUE "
                        "layout (<dir>/MRPC/train.tsv, dev.tsv), or name the tasks")
    return names


def check_store(path: str | os.PathLike | None) -> None:
    """Before any task: ``path`` (or the default store) holds a store, or a store can be made there."""
    Store.check_creatable(store_path(path))


def run_grid(base: IngestSettings, tasks: list[str], seeds: list[int], caps: dict[str, int | None],
             console: Console, workers: int | None = None, scheduler: str | None = None) -> list[Outcome]:
    """Ingest every task x seed (``caps``: a task's ``max_train_examples``); one outcome each, in order.

    In this process, one ingest after another; with ``workers`` (processes on
    this machine) or ``scheduler`` (a running cluster's address), as units of
    work on Dask (``ingest/cluster.py``, imported only then).
    """
    check_store(base.store)
    if workers is not None or scheduler is not None:
        from bertsecrets.ingest.cluster import run_grid_on_cluster

        return run_grid_on_cluster(base, tasks, seeds, caps, console, workers=workers, scheduler=scheduler)
    outcomes: list[Outcome] = []
    many = len(tasks) * len(seeds) > 1
    model = None  # resolved once: its weights are hashed for the keys
    for task in tasks:
        data = None  # read once per task, shared by its seeds
        for i, seed in enumerate(seeds):
            settings = replace(base, task=task, seed=seed, max_train_examples=caps.get(task, base.max_train_examples))
            if many:
                console.rule(Text(f"{get_task(task).title}, seed {seed}"))
            start = time.perf_counter()
            try:
                plan = make_plan(settings, model=model, data=data)
                # The task's cap is the same for every seed, so its cut data can be cut again to itself.
                model, data = plan.model, plan.data
            except UserError as exc:
                # The task cannot start (data, model): the same for every seed, so said once.
                for s in seeds[i:]:
                    outcomes.append(Outcome(task, s, "failed", 0.0, str(exc)))
                if many:
                    console.print(Text.assemble(("error:", "bold red"), f" {get_task(task).title}: {exc}"))
                break
            try:
                ingest(settings, console, plan=plan)
            except StoreReadOnly:
                raise  # the same for every task and seed left: one line for the command
            except UserError as exc:
                outcomes.append(Outcome(task, seed, "failed", time.perf_counter() - start, str(exc), plan))
                if many:
                    console.print(Text.assemble(("error:", "bold red"), f" {get_task(task).title} seed {seed}: {exc}"))
                continue
            outcomes.append(Outcome(task, seed, "done", time.perf_counter() - start, plan=plan))
    return outcomes


__all__ = ["Outcome", "check_store", "found_tasks", "run_grid", "task_names"]
