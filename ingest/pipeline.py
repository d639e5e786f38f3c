"""`bertsecrets ingest <task>`: the paper's protocol from data to a store, resumable at every step.

For one task, model and seed, three runs (the set-ups of the paper's Table 1):

- ``finetuned``: the pretrained model fine-tuned on the task. Its weights, dev
  predictions and the attention maps of the first ``max_examples`` dev inputs,
  for the pretrained and for the fine-tuned model, go into the store.
- ``random_init``: the same architecture from random weights, fine-tuned.
- ``no_finetuning``: the pretrained encoder with an untrained classifier head.

Every run and map set has a content key (a hash of all that decides its
bytes), so the same ingest again does nothing, and a changed setting makes a
new run beside the old ones. Each step writes its artifact atomically and is
skipped when the artifact is there, so an ingest killed at any moment resumes.
Torch is imported only once there is work to do (or to find the GPU for
``--device auto``). What an ingest will make is its plan (``plan.py``); the
steps of one run are in ``steps.py``; the tables people read are printed by
the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from bertsecrets.core import config
from bertsecrets.core.settings import IngestSettings
from bertsecrets.core.tasks import ROLES
from bertsecrets.ingest import ablation, analyses, backfill
from bertsecrets.ingest.plan import Plan, code_version, make_plan
from bertsecrets.ingest.progress import make_progress
from bertsecrets.store import Store

#: Steps that run after the runs, in order: modules with ``NAME``,
#: ``done(store, plan) -> bool`` (cheap, no torch) and
#: ``run(store, plan, console, progress)`` (``backfill`` adds the norms to map
#: sets of older ingests, before the analyses read them). Each caches its results in the store
#: like the maps, so a finished ingest skips them too.
POST_STEPS = [backfill, analyses, ablation]


@dataclass
class Outcome:
    """What became of one task and seed of a grid."""

    task: str
    seed: int
    status: str  # done | failed
    seconds: float
    message: str = ""
    plan: Plan | None = None


# -- what is done ---------------------------------------------------------------


def map_done(store: Store, plan: Plan, role: str) -> bool:
    """Whether the fine-tuned run's ``role`` map set is finished and recorded for this run."""
    table = store.catalog.read_part("maps", plan.map_part(role))
    return bool(table is not None and table.num_rows and table["status"][0].as_py() == "done")


def run_done(store: Store, plan: Plan, setup: str) -> bool:
    record = store.run(plan.run_ids[setup])
    if record is None or record["status"] != "done":
        return False
    if setup == "finetuned":
        return all(map_done(store, plan, role) for role in ROLES)
    return True


def is_done(store: Store, plan: Plan) -> bool:
    """Whether every run, map set and post-step of ``plan`` is in the store."""
    return (all(run_done(store, plan, setup) for setup in plan.settings.setups)
            and all(step.done(store, plan) for step in POST_STEPS))


# -- the ingest -------------------------------------------------------------------


def describe(plan: Plan, store: Store, console: Console) -> None:
    """The lines an ingest starts with: its data, model, training and store."""
    task, data, model, settings = plan.task, plan.data, plan.model, plan.settings
    source = data.source.split(":", 1)
    console.print(
        f"{task.title}: {len(data.train):,} train / {len(data.dev):,} dev examples "
        f"({'GLUE folder ' + source[1] if source[0] == 'glue_dir' else source[1]})"
        + (f", {data.skipped_rows} bad rows skipped" if data.skipped_rows else ""), markup=False, highlight=False,
    )
    console.print(
        f"model: {model.used} ({model.source}), {model.n_layers} layers x {model.n_heads} heads; "
        f"lr {plan.learning_rate:g}, batch {settings.batch_size}, {settings.epochs} epochs, seed {settings.seed}; "
        f"{plan.compute.device} {plan.compute.dtype}", markup=False, highlight=False,
    )
    console.print(f"store: {store.root}", markup=False, highlight=False)


def ingest(settings: IngestSettings, console: Console | None = None, plan: Plan | None = None) -> Plan:
    """Run (or resume, or confirm) the ingest ``settings`` describe (``plan``: theirs, made already); returns its plan."""
    console = console or Console()
    plan = plan or make_plan(settings)
    settings = plan.settings
    store = Store.create(config.store_path(settings.store))
    task, model = plan.task, plan.model
    if model.notice:
        console.print(Text.assemble(("note:", "yellow"), " ", model.notice), highlight=False)
    if is_done(store, plan):
        console.print(f"nothing to do: {task.title} with {model.used} (seed {settings.seed}) is already in the store "
                      f"at {store.root}", markup=False, highlight=False)
        return plan

    describe(plan, store, console)

    from bertsecrets.ingest import steps  # torch from here on

    work = steps.Work(store, plan, console, code_version())
    with make_progress(console) as progress:
        work.progress = progress
        for setup in ("finetuned", "no_finetuning", "random_init"):
            if setup in settings.setups and not run_done(store, plan, setup):
                work.run(setup)
        for step in POST_STEPS:
            if not step.done(store, plan):
                step.run(store, plan, console, progress)
    return plan


__all__ = ["Outcome", "POST_STEPS", "describe", "ingest", "is_done", "map_done", "run_done"]
