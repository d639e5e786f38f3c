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
Torch is imported only once there is work to do.
"""

from __future__ import annotations

import importlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bertsecrets.core.version import __version__
from bertsecrets.core import config
from bertsecrets.core.errors import UserError
from bertsecrets.ingest.data import TaskData, load_task_data
from bertsecrets.ingest.models import ResolvedModel, resolve_model
from bertsecrets.ingest.progress import fmt_seconds, make_progress
from bertsecrets.core.tasks import SETUPS, Task, get_task
from bertsecrets.store import Store, content_key
from bertsecrets.store.maps import PRECISIONS
from bertsecrets.store.store import utcnow

ROLES = ("pretrained", "finetuned")
#: Bumped when a change to training or extraction changes their results.
TRAIN_VERSION = 1
MAPS_VERSION = 1

#: Steps that run after the runs, in order: modules with ``NAME``,
#: ``done(store, plan) -> bool`` (cheap, no torch) and
#: ``run(store, plan, console, progress)``. Each caches its results in the store
#: like the maps, so a finished ingest skips them too.
POST_STEPS: list[str] = ["bertsecrets.ingest.analyses", "bertsecrets.ingest.ablation"]


@dataclass
class IngestSettings:
    """Everything `bertsecrets ingest` can be told; checked before any work."""

    task: str
    model: str | None = None  # None: bert-base-uncased, falling back to the bundled model
    store: str | None = None
    data_dir: str | None = None
    seed: int = 0
    learning_rate: float | None = None  # None: the model preset's
    batch_size: int = 32
    epochs: int = 3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    max_examples: int = 1000
    max_train_examples: int | None = None
    precision: str = "uint8"
    setups: tuple[str, ...] = tuple(SETUPS)
    skip_bad_rows: bool = False
    device: str = "auto"
    eval_batch_size: int = 128
    extract_batch_size: int = 32
    checkpoint_seconds: float = 60.0  # how often fine-tuning saves its state (for resuming)

    def __post_init__(self) -> None:
        def positive(name: str, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, int) or value <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be a positive whole number, got {value!r}")

        for name in ("batch_size", "epochs", "max_examples", "eval_batch_size", "extract_batch_size"):
            positive(name)
        positive("max_train_examples", allow_none=True)
        if not 8 <= self.max_length <= 512:
            raise UserError(f"--max-length must be between 8 and 512 (BERT's positions), got {self.max_length}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise UserError(f"--lr must be between 0 and 1, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"--warmup must be a fraction of the steps in [0, 1), got {self.warmup_ratio}")
        if self.checkpoint_seconds < 0:
            raise UserError(f"--checkpoint-every must not be negative, got {self.checkpoint_seconds}")
        if self.weight_decay < 0:
            raise UserError(f"--weight-decay must not be negative, got {self.weight_decay}")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        unknown = [s for s in self.setups if s not in SETUPS]
        if unknown or not self.setups:
            raise UserError(f"--setups takes a comma-separated subset of {', '.join(SETUPS)}, got {','.join(self.setups)!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UserError(f"--device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class Plan:
    """What an ingest will produce, with every artifact's key; made without torch."""

    settings: IngestSettings
    task: Task
    data: TaskData
    model: ResolvedModel
    learning_rate: float
    experiment_id: str
    run_ids: dict[str, str] = field(default_factory=dict)
    map_ids: dict[str, str] = field(default_factory=dict)

    @property
    def n_maps(self) -> int:
        return min(self.settings.max_examples, len(self.data.dev))

    def map_part(self, role: str) -> str:
        return f"{self.run_ids['finetuned']}-{role}"


def make_plan(settings: IngestSettings) -> Plan:
    task = get_task(settings.task)
    model = resolve_model(settings.model)
    data = load_task_data(task, settings.data_dir, settings.skip_bad_rows)
    if settings.max_train_examples is not None:
        data.train = data.train.head(settings.max_train_examples)
    lr = settings.learning_rate if settings.learning_rate is not None else model.learning_rate
    common = {
        "task": task.name,
        "data": data.fingerprint,
        "model": model.used,
        "revision": model.revision,
        "seed": settings.seed,
        "max_length": settings.max_length,
        "train_version": TRAIN_VERSION,
    }
    training = {
        "learning_rate": lr,
        "batch_size": settings.batch_size,
        "epochs": settings.epochs,
        "warmup_ratio": settings.warmup_ratio,
        "weight_decay": settings.weight_decay,
    }
    plan = Plan(settings, task, data, model, lr, content_key("exp", {**common, **training}))
    for setup in SETUPS:
        fields = {**common, "setup": setup, **({} if setup == "no_finetuning" else training)}
        plan.run_ids[setup] = content_key("run", fields)
    maps = {"data": data.fingerprint, "n": plan.n_maps, "max_length": settings.max_length,
            "precision": settings.precision, "maps_version": MAPS_VERSION}
    plan.map_ids["pretrained"] = content_key("maps", {**maps, "role": "pretrained", "model": model.used, "revision": model.revision})
    plan.map_ids["finetuned"] = content_key("maps", {**maps, "role": "finetuned", "run": plan.run_ids["finetuned"]})
    return plan


def code_version() -> str:
    version = __version__
    try:
        sha = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"{version}+g{sha}" if sha else version
    except (OSError, subprocess.SubprocessError):
        return version


# -- what is done ---------------------------------------------------------------


def _map_done(store: Store, plan: Plan, role: str) -> bool:
    table = store.catalog.read_part("maps", plan.map_part(role))
    return bool(table is not None and table.num_rows and table["status"][0].as_py() == "done")


def run_done(store: Store, plan: Plan, setup: str) -> bool:
    record = store.run(plan.run_ids[setup])
    if record is None or record["status"] != "done":
        return False
    if setup == "finetuned":
        return all(_map_done(store, plan, role) for role in ROLES)
    return True


# -- the ingest -------------------------------------------------------------------


def ingest(settings: IngestSettings, console: Console | None = None) -> Plan:
    """Run (or resume, or confirm) the ingest ``settings`` describe; returns its plan."""
    console = console or Console()
    plan = make_plan(settings)
    store = Store.create(config.store_path(settings.store))
    task, data, model = plan.task, plan.data, plan.model
    if model.notice:
        console.print(f"[yellow]note:[/] {model.notice}")
    post = [importlib.import_module(name) for name in POST_STEPS]
    if all(run_done(store, plan, setup) for setup in settings.setups) and all(m.done(store, plan) for m in post):
        console.print(
            f"nothing to do: {task.title} with {model.used} (seed {settings.seed}) is already in the store at {store.root}"
        )
        print_table1(console, store, plan)
        return plan

    source = data.source.split(":", 1)
    console.print(
        f"[bold]{task.title}[/]: {len(data.train):,} train / {len(data.dev):,} dev examples "
        f"({'GLUE folder ' + source[1] if source[0] == 'glue_dir' else source[1]})"
        + (f", {data.skipped_rows} bad rows skipped" if data.skipped_rows else "")
    )
    console.print(
        f"[bold]model[/]: {model.used} ({model.source}), {model.n_layers} layers x {model.n_heads} heads; "
        f"lr {plan.learning_rate:g}, batch {settings.batch_size}, {settings.epochs} epochs, seed {settings.seed}"
    )
    console.print(f"[bold]store[/]: {store.root}")

    from bertsecrets.ingest import steps  # torch from here on

    work = steps.Work(store, plan, console, code_version())
    with make_progress(console) as progress:
        work.progress = progress
        for setup in ("finetuned", "no_finetuning", "random_init"):
            if setup in settings.setups and not run_done(store, plan, setup):
                work.run(setup)
        for module in post:
            if not module.done(store, plan):
                module.run(store, plan, console, progress)
    print_table1(console, store, plan)
    return plan


def _metric_cells(task: Task, record: dict[str, Any] | None) -> list[str]:
    if record is None or record.get("status") != "done":
        return ["-" for _ in task.metrics]
    return ["-" if record.get(m) is None else f"{100 * record[m]:.1f}" for m in task.metrics]


def print_table1(console: Console, store: Store, plan: Plan) -> None:
    """The paper's Table 1 for this ingest: dev metrics of the three set-ups, beside the paper's."""
    task = plan.task
    table = Table(title=f"Table 1: {task.title} dev, {plan.model.used}, seed {plan.settings.seed} (%)",
                  caption="paper: bert-base-uncased, Kovaleva et al. 2019")
    table.add_column("set-up", no_wrap=True)
    for metric in task.metrics:
        table.add_column(metric, justify="right")
    table.add_column("paper (" + "/".join(task.metrics) + ")", justify="right")
    table.add_column("train time", justify="right", no_wrap=True)
    for setup in ("no_finetuning", "random_init", "finetuned"):
        if setup not in plan.settings.setups:
            continue
        record = store.run(plan.run_ids[setup])
        train = record.get("train_seconds") if record else None
        table.add_row(SETUPS[setup], *_metric_cells(task, record), task.paper(setup),
                      fmt_seconds(train) if setup != "no_finetuning" else "-")
    console.print(table)


def settings_json(plan: Plan, setup: str) -> str:
    values: dict[str, Any] = asdict(plan.settings)
    values.update(setup=setup, learning_rate=plan.learning_rate, model_path=str(plan.model.path))
    if plan.data.skipped:
        values["skipped_rows_detail"] = plan.data.skipped[:100]
    return json.dumps(values, sort_keys=True, default=str)


def new_record(plan: Plan, setup: str, version: str, device: str) -> dict[str, Any]:
    s, trained = plan.settings, setup != "no_finetuning"
    return {
        "run_id": plan.run_ids[setup],
        "experiment_id": plan.experiment_id,
        "task": plan.task.name,
        "setup": setup,
        "model": plan.model.requested,
        "model_used": plan.model.used,
        "model_source": plan.model.source,
        "model_revision": plan.model.revision,
        "n_layers": plan.model.n_layers,
        "n_heads": plan.model.n_heads,
        "seed": s.seed,
        "learning_rate": plan.learning_rate if trained else None,
        "batch_size": s.batch_size if trained else None,
        "epochs": s.epochs if trained else 0,
        "warmup_ratio": s.warmup_ratio if trained else None,
        "weight_decay": s.weight_decay if trained else None,
        "max_length": s.max_length,
        "max_train_examples": s.max_train_examples,
        "train_examples": len(plan.data.train),
        "dev_examples": len(plan.data.dev),
        "skipped_rows": plan.data.skipped_rows,
        "data_source": plan.data.source,
        "data_fingerprint": plan.data.fingerprint,
        "settings_json": settings_json(plan, setup),
        "status": "running",
        "stage": "start",
        "device": device,
        "started_at": utcnow(),
        "code_version": version,
    }


__all__ = ["IngestSettings", "Plan", "make_plan", "ingest"]
