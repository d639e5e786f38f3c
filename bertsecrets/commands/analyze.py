"""`bertsecrets analyze TASK|RUN`: the paper's analyses of stored maps, cached in the catalog, with a summary."""

from __future__ import annotations

import argparse

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "analyze", help="compute the paper's analyses of the stored maps (pattern classes, features, change, relations)",
        description="Analyse the stored maps of a task's fine-tuned runs (or of one run): per-head statistics, "
                    "attention to linguistic features, change under fine-tuning, relation heads and pattern classes. "
                    "Results go to the catalog; what is already there and up to date is not redone. "
                    "`bertsecrets ingest` runs the same step.",
    )
    p.add_argument("target", help="a task (mrpc, ...: all its fine-tuned runs with maps) or a run id")
    store_arg(p)
    p.add_argument("--relations", metavar="FILE.jsonl",
                   help="also score heads on the token-pair relations of this file (see docs/analyses.md)")
    p.add_argument("--force", action="store_true", help="recompute everything, even what is up to date")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.ingest.analyses.driver import analyse
    from bertsecrets.ingest.analyses.summary import summary
    from bertsecrets.ingest.progress import make_progress
    from bertsecrets.store import Store
    from bertsecrets.store.queries import runs_with_maps

    out = console()
    store = Store.open(config.store_path(args.store))
    for run_id in runs_with_maps(store, args.target):
        out.print(f"[bold]analyses of run {run_id}[/]")
        with make_progress(out) as progress:
            steps = analyse(store, run_id, out, progress, force=args.force, relations_file=args.relations)
        out.print(f"  {'computed: ' + ', '.join(steps) if steps else 'up to date'}", highlight=False)
        for table in summary(store, run_id):
            out.print(table)
    return 0
