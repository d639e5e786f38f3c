"""Questions every room asks of the catalog, answered once: which run, which of its results.

The CLI, the figures, the analyses and the ablation all pick "the task's
fine-tuned run" the same way here: a finished fine-tuned run that holds the
results asked for, the lowest seed first, then the latest started.
"""

from __future__ import annotations

from typing import Any

from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import get_task
from bertsecrets.store.store import Store

#: What a fine-tuned run can be asked to hold, and the SQL condition on ``r`` (the runs row) that says so.
HAVING = {
    None: "TRUE",
    "maps": "r.run_id IN (SELECT run_id FROM maps WHERE status = 'done')",
    "analyses": "r.run_id IN (SELECT run_id FROM analyses WHERE step = 'maps' AND status = 'done')",
    "ablation": "r.run_id IN (SELECT run_id FROM ablation)",
}

#: For the message when there is none: what the run lacks, and the command that makes it.
_MISSING = {
    None: ("", "bertsecrets ingest {task}"),  # "no finished fine-tuned RTE run"
    "maps": (" with stored maps", "bertsecrets ingest {task}"),
    "analyses": (" with analyses", "bertsecrets analyze {task}"),
    "ablation": (" with ablation results", "bertsecrets ablate {task}"),
}


def task_runs(store: Store, task: str, having: str | None = None) -> list[dict[str, Any]]:
    """The finished fine-tuned runs of ``task`` that hold ``having``: lowest seed first, then the latest started."""
    name = get_task(task).name
    return store.rows(
        f"SELECT r.* FROM runs r WHERE r.task = ? AND r.setup = 'finetuned' AND r.status = 'done' "
        f"AND {HAVING[having]} ORDER BY r.seed, r.started_at DESC", [name],
    )


def task_run(store: Store, task: str, having: str | None = None) -> dict[str, Any]:
    """The task's fine-tuned run (see ``task_runs``); a one-line error saying what to run when there is none."""
    runs = task_runs(store, task, having)
    if not runs:
        t = get_task(task)
        lacks, command = _MISSING[having]
        which = "finished fine-tuned" if having is None else "fine-tuned"
        raise UserError(f"no {which} {t.title} run{lacks} in the store at {store.root}: "
                        f"run `{command.format(task=t.name)}` first")
    return runs[0]


def finetuned_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run's record, checked to be a finished fine-tuned run with its weights in the store."""
    record = store.run(run_id)
    if record is None:
        raise UserError(f"no run {run_id} in {store.root}: `bertsecrets runs` lists the runs")
    if record["setup"] != "finetuned":
        raise UserError(f"run {run_id} is a {record['setup']} run; weights and maps are kept for fine-tuned runs only")
    if record["status"] != "done" or not store.has_model(run_id):
        raise UserError(f"run {run_id} is not finished ({record['status']}): "
                        f"run `bertsecrets ingest {record['task']}` to finish it")
    return record


def resolve_run(store: Store, target: str, having: str | None = None) -> dict[str, Any]:
    """A run id (checked) or a task name (its fine-tuned run holding ``having``), as the run's record."""
    target = target.strip()
    if target.startswith("run-"):
        return finetuned_run(store, target)
    return task_run(store, target, having)


def runs_with_maps(store: Store, target: str) -> list[str]:
    """The fine-tuned runs with stored maps that ``target`` names: a run id (its experiment's), or a task (all)."""
    target = target.strip()
    if target.startswith("run-"):
        record = store.run(target)
        if record is None:
            raise UserError(f"no run {target} in the store at {store.root}: see `bertsecrets runs`")
        # The maps of an experiment live with its fine-tuned run; the other set-ups point there.
        rows = store.rows("SELECT DISTINCT m.run_id FROM maps m JOIN runs r USING (run_id) "
                          "WHERE r.experiment_id = ? AND m.status = 'done' ORDER BY m.run_id", [record["experiment_id"]])
        if not rows:
            raise UserError(f"run {target} has no stored maps yet: finish its ingest first")
        return [r["run_id"] for r in rows]
    return [r["run_id"] for r in task_runs(store, target, "maps")] or [task_run(store, target, "maps")["run_id"]]


def experiment_runs(store: Store, experiment_id: str) -> list[dict[str, Any]]:
    """The finished runs of one ingest (the set-ups of Table 1)."""
    return store.rows("SELECT * FROM runs WHERE experiment_id = ? AND status = 'done'", [experiment_id])
