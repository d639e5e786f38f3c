"""`bertsecrets report [TASK...]`: the paper's claims checked across tasks and seeds, as Markdown with its figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from bertsecrets.commands import console, store_arg, text
from bertsecrets.core import config

#: How a verdict is shown in the terminal.
STYLES = {"holds": "green", "does not hold": "red", "mixed": "yellow", "cannot be tested here": "dim"}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report", help="check each of the paper's claims across tasks and seeds; write findings.md and figures",
        description="For each claim of the paper: the paper's number, this store's number per task (mean and spread "
                    "over seeds, 95%% intervals where there are some) and a verdict. Writes <out>/findings.md with "
                    "the cross-task figures beside it, and prints the verdicts.")
    p.add_argument("tasks", nargs="*", metavar="TASK", help="the tasks to compare (default: every task with runs)")
    store_arg(p)
    p.add_argument("--out", metavar="DIR", default="report", help="output folder (default ./report)")
    p.add_argument("--no-figures", action="store_true", help="write the Markdown only")


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from bertsecrets.commands.figures import across_tasks
    from bertsecrets.core.errors import UserError
    from bertsecrets.core.tasks import get_task
    from bertsecrets.store import Store
    from bertsecrets.store.findings import findings, markdown

    out = console()
    store = Store.open(config.store_path(args.store))
    tasks = [get_task(t).name for t in args.tasks] or None
    found = findings(store, tasks)
    if not found.groups:
        raise UserError(f"no finished fine-tuned run{' of ' + ', '.join(tasks) if tasks else ''} in the store at "
                        f"{store.root}: run `bertsecrets ingest TASK` first")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [] if args.no_figures else across_tasks(out, store, [g.task.name for g in found.groups], folder)
    report = folder / "findings.md"
    tmp = report.with_suffix(".md.tmp")
    tmp.write_text(markdown(found, figures=[(caption, path.name) for caption, path in figures]), encoding="utf-8")
    tmp.replace(report)

    # The claim's words take the room they need to be read (a third of the width); the tasks' one-word verdicts share
    # the rest.
    table = Table(title="The paper's claims in this store", show_lines=True, expand=True)
    table.add_column("claim", ratio=3, min_width=24)
    for g in found.groups:
        table.add_column(g.title, ratio=1)
    table.add_column("verdict", ratio=2)
    for claim in found.claims:
        cells = []
        for g in found.groups:
            cell = claim.cells.get(g.task.name)
            cells.append(text("-") if cell is None or cell.verdict is None else
                         text((cell.verdict, STYLES.get(cell.verdict, ""))))
        table.add_row(text(f"{claim.where}: {claim.statement}"), *cells,
                      text((claim.verdict_text, "bold " + STYLES.get(claim.verdict, ""))))
    out.print(table)
    for note in found.notes:
        out.print(note, markup=False, highlight=False)
    out.print(text("report: ", str(report)), highlight=False)
    return 0
