"""Several seeds of one fine-tuned run: fine-tune the missing seeds like it, sweep each, and store mean and spread.

Is a head's effect more than the noise between fine-tuning seeds? The
``ablation_seeds`` table answers with the mean and standard deviation across
seeds of every configuration of the sweep. Used by `bertsecrets ablate --seeds N`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.console import Console

from bertsecrets.core.errors import UserError
from bertsecrets.ingest.ablation import TABLES, ablate
from bertsecrets.ingest.bootstrap import N_BOOT
from bertsecrets.ingest.pipeline import ingest
from bertsecrets.ingest.plan import make_plan, settings_of
from bertsecrets.ingest.progress import make_progress
from bertsecrets.store import Store
from bertsecrets.store import queries
from bertsecrets.store.queries import finetuned_run


def ablate_seeds(store: Store, run_id: str, n_seeds: int, console: Console, device: str = "auto",
                 batch_size: int = 32, n_boot: int = N_BOOT, redo: bool = False) -> str:
    """Fine-tune ``n_seeds`` seeds (from the run's on) like ``run_id``, sweep each, and store mean and std across them."""
    record = finetuned_run(store, run_id)
    settings = settings_of(record, store.root)
    if make_plan(settings).run_ids["finetuned"] != run_id:
        raise UserError(f"the settings of run {run_id} no longer give the same run (its data or model changed); "
                        f"seeds can only be added to a run made with today's data and model")
    run_ids = []
    for seed in range(record["seed"], record["seed"] + n_seeds):
        console.rule(f"seed {seed}")
        plan = ingest(replace(settings, seed=seed, setups=("finetuned",), device=device), console)
        seed_run = plan.run_ids["finetuned"]
        if redo or not all(store.catalog.has_part(t, seed_run) for t in TABLES):
            with make_progress(console) as progress:
                ablate(store, seed_run, console, progress, device, batch_size, n_boot, redo)
        run_ids.append(seed_run)
    return write_seed_table(store, record, run_ids)


def write_seed_table(store: Store, record: dict[str, Any], run_ids: list[str]) -> str:
    """Mean and standard deviation across the runs of each configuration's metrics -> ``ablation_seeds``.

    The rows are keyed by the experiment of ``record``, the run the seeds start
    from, so its latest aggregation replaces an earlier one (e.g. 3 seeds, then 5).
    """
    key = record["experiment_id"]
    seed_of = {r["run_id"]: r["seed"] for r in queries.run_seeds(store, run_ids)}
    rows = queries.ablation_across_runs(store, run_ids)
    common = {"experiment_id": key, "task": record["task"], "model": record["model_used"],
              "seeds": ",".join(str(seed_of[r]) for r in run_ids), "run_ids": ",".join(run_ids)}
    store.catalog.write("ablation_seeds", key, [{**common, **r} for r in rows])
    return key
