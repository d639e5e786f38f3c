"""`bertsecrets figures TASK`: the paper's figures and tables for the runs in the store."""

from __future__ import annotations

import argparse
from pathlib import Path

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg, text


def add_parser(sub) -> None:
    p = sub.add_parser("figures", help="write the paper's figures (PNG) and tables (CSV) for a task")
    p.add_argument("task", help="mrpc, sts-b, sst-2, qqp, rte, qnli or mnli")
    store_arg(p)
    p.add_argument("--out", metavar="DIR", default="figures", help="output folder (default ./figures/<task>)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated figure names (default: all)")


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from bertsecrets.core.errors import UserError
    from bertsecrets.figures import all_figures
    from bertsecrets.store import Store

    out = console()
    store = Store.open(config.store_path(args.store))
    task = args.task.strip().lower()
    folder = Path(args.out) / task
    folder.mkdir(parents=True, exist_ok=True)
    figures = all_figures()
    wanted = {n.strip() for n in args.only.split(",")} if args.only else None
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
    if not written:
        raise UserError(f"no figures for {task}: run `bertsecrets ingest {task}` first")
    return 0
