"""`bertsecrets figures TASK...`: the paper's figures and tables per task, and across tasks when there are several."""

from __future__ import annotations

import argparse
from pathlib import Path

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg, text


class _Help(argparse.HelpFormatter):
    """Names the figures in ``--only``'s help as the help is shown: reading them imports the figure
    modules (matplotlib, the store), too slow for every start of the command."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.dest != "only":
            return action.help
        per_task, across = figure_names()
        return f"{action.help}. Per task: {', '.join(per_task)}. Across tasks: {', '.join(across)}"


def add_parser(sub) -> None:
    p = sub.add_parser("figures", help="write the paper's figures (PNG) and tables (CSV) for tasks, and across them",
                       description="The paper's figures and tables for each task; with several tasks, also the "
                                   "cross-task figures (one panel per task, one colour scale) in <out>/tasks/.",
                       formatter_class=_Help)
    p.add_argument("tasks", nargs="+", metavar="TASK", help="mrpc, sts-b, sst-2, qqp, rte, qnli or mnli; several "
                                                            "for the cross-task figures too")
    store_arg(p)
    p.add_argument("--out", metavar="DIR", default="figures", help="output folder (default ./figures/<task>)")
    p.add_argument("--only", metavar="NAMES", help="comma-separated figure names (default: all); a name in both lists "
                                                   "below draws both")


def figure_names() -> tuple[list[str], list[str]]:
    """The names ``--only`` takes: the per-task figures', then the cross-task figures', in drawing order."""
    from bertsecrets.figures import across_figures, all_figures

    return [name for name, _ in all_figures()], [name for name, _, _ in across_figures()]


def chosen(only: str | None, n_tasks: int) -> set[str] | None:
    """The figure names ``--only`` picks (None: every figure), checked before anything is drawn."""
    from bertsecrets.core.errors import UserError

    if not only:
        return None
    wanted = {n.strip() for n in only.split(",") if n.strip()}
    per_task, across = figure_names()
    known = list(dict.fromkeys(per_task + across))
    unknown = wanted - set(known)
    if unknown or not wanted:
        raise UserError(f"unknown figure(s) {', '.join(sorted(unknown)) or repr(only)}; choose from {', '.join(known)}")
    only_across = sorted(wanted - set(per_task))
    if n_tasks == 1 and only_across:  # named but never drawn for one task: refused, not silently left out
        raise UserError(f"{', '.join(only_across)} {'is' if len(only_across) == 1 else 'are'} drawn across tasks "
                        "only: name two or more tasks")
    return wanted


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from bertsecrets.core.errors import UserError
    from bertsecrets.core.tasks import get_task
    from bertsecrets.store import Store

    tasks = list(dict.fromkeys(get_task(t).name for t in args.tasks))
    wanted = chosen(args.only, len(tasks))
    out = console()
    store = Store.open(config.store_path(args.store))
    per_task, across = figure_names()
    written: list = []
    if wanted is None or wanted & set(per_task):
        for task in tasks:
            written += _task_figures(out, store, task, Path(args.out), wanted)
    if len(tasks) > 1 and (wanted is None or wanted & set(across)):
        written += across_tasks(out, store, tasks, Path(args.out) / "tasks", wanted)
    if not written:
        raise UserError(f"no figures for {', '.join(tasks)}: run `bertsecrets ingest {' '.join(tasks)}` first")
    return 0


def across_tasks(out, store, tasks: list[str], folder: Path, wanted: set[str] | None = None) -> list[tuple[str, Path]]:
    """The cross-task figures (``wanted``: those named so, None: all) into ``folder``: (caption, path) of each PNG
    written (the CSVs beside them are printed only); a figure without data says why."""
    from bertsecrets.core.errors import UserError
    from bertsecrets.figures import across_figures

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw, caption in across_figures():
        if wanted is not None and name not in wanted:
            continue
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


def _task_figures(out, store, task: str, base: Path, wanted: set[str] | None) -> list[Path]:
    from bertsecrets.core.errors import UserError
    from bertsecrets.figures import all_figures

    folder = base / task
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, draw in all_figures():
        if wanted is not None and name not in wanted:
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
