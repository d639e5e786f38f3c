"""`bertsecrets ingest TASK`: fine-tune, evaluate and store every attention map of a GLUE task."""

from __future__ import annotations

import argparse

from bertsecrets.commands import console, store_arg
from bertsecrets.core import config
from bertsecrets.core.settings import add_arguments, from_arguments


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ingest", help="fine-tune on a GLUE task and store every attention map of its dev set",
        description="Fine-tune a BERT on a GLUE task (the three set-ups of the paper's Table 1) and store the dev "
                    "attention maps of the pretrained and the fine-tuned model, then the analyses. Resumes where "
                    "it stopped; a finished ingest is not redone.",
    )
    p.add_argument("task", help="mrpc, sts-b, sst-2, qqp, rte, qnli or mnli")
    store_arg(p)
    add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from bertsecrets.commands import tables
    from bertsecrets.ingest.pipeline import ingest
    from bertsecrets.store import Store

    settings = from_arguments(args)  # checked here, before any work
    out = console()
    plan = ingest(settings, out)
    store = Store.open(config.store_path(plan.settings.store))
    tables.print_table1(out, store, plan)
    if "finetuned" in plan.settings.setups:
        tables.print_summary(out, store, plan.run_ids["finetuned"])
    return 0

