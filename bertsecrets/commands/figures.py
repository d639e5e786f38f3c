"""`bertsecrets figures TASK...`: the paper's figures and tables per task, and across tasks when there are several."""

from __future__ import annotations

import argparse
from pathlib import Path

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg, text


def add_parser(sub) -> None:
    p = sub.add_parser("figures", help="write the paper's figures (PNG) and tables (CSV) for tasks, and across them",
                       description="The paper's figures and tables for each task; with several tasks, also the "
                                   "cross-task figures (one panel per task, one colour scale) in <out>/tasks/.")
    p.add_argument("tasks", nargs="+", metavar="TASK", help="mrpc, sts-b, sst-2, qqp, rte, qnli or mnli; several "
                                                            "for the cross-task figures too")
    store_arg(p)
    p.add_argument("--out", metavar="DIR", default="figures", help="output folder (default ./figures/<task>)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated figure names (default: all)")


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from bertsecrets.core.errors import UserError
    from bertsecrets.store import Store
    from bertsecrets.core.tasks import get_task

    out = console()
    store = Store.open(config.store_path(args.store))
    tasks = list(dict.fromkeys(get_task(t).name for t in args.tasks))
    written: list[Path] = []
    for task in tasks:
        written += _task_figures(out, store, task, Path(args.out), args.only)
    if len(tasks) > 1:
        written += across_tasks(out, store, tasks, Path(args.out) / "tasks")
    if not written:
        raise UserError(f"no figures for {', '.join(tasks)}: run `bertsecrets ingest {' '.join(tasks)}` first")
    return 0


def across_tasks(out, store, tasks: list[str], folder: Path) -> list[tuple[str, Path]]:
    """The cross-task figures into ``folder``: (caption, path) of each PNG written (the CSVs beside them are
    printed only); a figure without data says why."""
    from bertsecrets.core.errors import UserError
    from bertsecrets.figures import across_figures

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw, caption in across_figures():
        try:
            paths = draw(store, folder, tasks)
        except UserError as exc:
            out.print(text((f"{name}:", "yellow"), " ", str(exc)), highlight=False)
            continue
        for path in paths:
            if path.suffix == ".png":
                written.append((caption, path))
            out.print(text("  ", ("✓", "green"), " ", str(path)), highlight=False)
    return written


def _task_figures(out, store, task: str, base: Path, only: str | None) -> list[Path]:
    from bertsecrets.core.errors import UserError
    from bertsecrets.figures import all_figures

    folder = base / task
    folder.mkdir(parents=True, exist_ok=True)
    figures = all_figures()
    wanted = {n.strip() for n in only.split(",")} if only else None
    if wanted:
        unknown = wanted - {name for name, _ in figures}
        if unknown:
            raise UserError(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from {', '.join(n for n, _ in figures)}")
    written: list[Path] = []
    for name, draw in figures:
        if wanted and name not in wanted:
            continue
        try:
            paths = draw(store, task, folder)
        except UserError as exc:
            out.print(text((f"{name}:", "yellow"), " ", str(exc)), highlight=False)
            continue
        written.extend(paths)
        for path in paths:
            out.print(text("  ", ("✓", "green"), " ", str(path)), highlight=False)
    return written
