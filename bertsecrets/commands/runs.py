"""`bertsecrets runs`: the runs in the store, one line each."""

from __future__ import annotations

import argparse

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg

def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list the runs in the store")
    store_arg(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.store import Store
    from bertsecrets.store.export import write_result
    from bertsecrets.store.queries import runs_table

    store = Store.open(config.store_path(args.store))
    write_result(runs_table(store), args.format, None, None, console())
    return 0
