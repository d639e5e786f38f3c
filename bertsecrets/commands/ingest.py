"""`bertsecrets ingest TASK... [--seeds 0,1,2]`: fine-tune, evaluate and store every attention map of GLUE tasks."""

from __future__ import annotations

import argparse

from bertsecrets.commands import console, store_arg, text
from bertsecrets.core import config
from bertsecrets.core.errors import UserError
from bertsecrets.core.settings import MAX_SEED, IngestSettings, add_arguments, from_arguments

#: The ingest's own options for the settings a grid varies: the option's name for each setting.
GRID_OPTIONS = {"task": "tasks", "seed": "seeds", "max_train_examples": "max_train_examples"}


def _help(name: str) -> str:
    from dataclasses import fields

    return next(f.metadata["help"] for f in fields(IngestSettings) if f.name == name)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ingest", help="fine-tune on GLUE tasks and store every attention map of their dev sets",
        description="Fine-tune a BERT on GLUE tasks (the three set-ups of the paper's Table 1) and store the dev "
                    "attention maps of the pretrained and the fine-tuned model, then the analyses. Several tasks "
                    "and seeds make a grid, one ingest each, ending with one cross-task table. Resumes where it "
                    "stopped; what the store holds is not redone.",
    )
    p.add_argument("tasks", nargs="+", metavar="TASK",
                   help=_help("task") + "; several make a grid, 'all' is every task whose data is found")
    store_arg(p)
    p.add_argument("--seeds", "--seed", dest="seeds", metavar="SEEDS", default="0",
                   help=_help("seed") + "; several, comma-separated (0,1,2) or a range (0-4), make a grid "
                        "(default 0)")
    p.add_argument("--max-train-examples", dest="max_train_examples", metavar="N|TASK=N,...",
                   help=_help("max_train_examples") + "; TASK=N caps one task of a grid, e.g. sst-2=5000, and "
                        "every table then says so")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="run the grid's units of work (fine-tunes, map sets, analyses, pieces of the sweep) on "
                            "N worker processes of this machine (Dask), the cores shared among them; on a GPU "
                            "machine they share its GPUs")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run them on a running Dask cluster (tcp://HOST:8786); the store must be on a file "
                            "system every worker sees at the same path")
    add_arguments(p, skip=("store", *GRID_OPTIONS))


def parse_seeds(value: str) -> list[int]:
    """``0,1,2`` or ``0-4`` (both ends included) as seeds, in the order given, without repeats."""
    seeds: list[int] = []
    for part in str(value).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                low, high = part.split("-", 1) if not part.startswith("-") else (part, "")
                chosen = list(range(int(low), int(high) + 1))
            else:
                chosen = [int(part)]
        except ValueError:
            raise UserError(f"--seeds takes whole numbers such as 0,1,2 or 0-4, got {value!r}") from None
        for seed in chosen:
            if not 0 <= seed <= MAX_SEED:
                raise UserError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {seed}")
            if seed not in seeds:
                seeds.append(seed)
    if not seeds:
        raise UserError(f"--seeds takes whole numbers such as 0,1,2, got {value!r}")
    return seeds


def parse_caps(value: str | None, tasks: list[str]) -> dict[str, int | None]:
    """``--max-train-examples``: N for every task, or TASK=N for some of them."""
    from bertsecrets.core.tasks import get_task

    if value is None:
        return {}
    caps: dict[str, int | None] = {}
    for part in str(value).split(","):
        name, _, number = part.strip().rpartition("=")
        try:
            n = int(number)
        except ValueError:
            raise UserError(f"--max-train-examples takes N or TASK=N (e.g. sst-2=5000), got {value!r}") from None
        if n < 1:
            raise UserError(f"--max-train-examples must be at least 1, got {n}")
        if name:
            caps[get_task(name).name] = n
        else:
            caps.update({t: n for t in tasks})
    return caps


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bertsecrets.commands import tables
    from bertsecrets.ingest.grid import run_grid, task_names
    from bertsecrets.store import Store

    seeds = parse_seeds(args.seeds)
    tasks = task_names(args.tasks, args.data_dir)
    caps = parse_caps(args.max_train_examples, tasks)
    base = from_arguments(args, task=tasks[0], seed=seeds[0], max_train_examples=None)  # checked before any work
    for task in tasks:
        replace(base, task=task, max_train_examples=caps.get(task))  # each task's settings checked too
    out = console()
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    outcomes = run_grid(base, tasks, seeds, caps, out, workers=args.workers, scheduler=args.scheduler)
    if len(outcomes) == 1 and outcomes[0].status == "failed":
        raise UserError(outcomes[0].message)
    done = [o for o in outcomes if o.status == "done"]
    store = Store.open(config.store_path(base.store)) if done else None
    if len(outcomes) == 1:
        plan = outcomes[0].plan
        tables.print_table1(out, store, plan)
        if "finetuned" in plan.settings.setups:
            tables.print_summary(out, store, plan.run_ids["finetuned"])
        return 0
    if done:
        tables.print_grid(out, store, sorted({o.task for o in done}, key=tasks.index), outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        out.print(text(("failed:", "bold red"), f" {o.task} seed {o.seed}: {o.message}"), highlight=False)
    if failed:
        raise UserError(f"{len(failed)} of {len(outcomes)} ingests failed (above); the others are in the store")
    return 0
