"""`bertsecrets sql QUERY`: read-only SQL on the catalog, as a table, CSV, JSON or Parquet."""

from __future__ import annotations

import argparse

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sql", help="run read-only SQL on the catalog",
        description="Run SQL on the catalog (tables: runs, examples, tokens, maps, train_log and the analyses' "
                    "tables; see docs/catalog.md). Read-only: only queries are accepted.",
    )
    p.add_argument("query", help='for example "SELECT task, setup, accuracy, f1 FROM runs"')
    store_arg(p)
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--max-rows", type=int, default=200, help="rows shown in table format (default 200)")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.store import Store
    from bertsecrets.store.export import write_result

    store = Store.open(config.store_path(args.store))
    write_result(store.query(args.query), args.format, args.output, args.max_rows, console())
    return 0
