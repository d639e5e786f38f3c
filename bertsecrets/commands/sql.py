"""`bertsecrets sql QUERY`: a person's SQL on the catalog, in DuckDB's sandbox, as a table, CSV, JSON or Parquet."""

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
    from bertsecrets.store.catalog import SQLConsole
    from bertsecrets.store.export import check_output, write_result

    check_output(args.format, args.output)
    store = Store.open(config.store_path(args.store))
    sql = SQLConsole(store.catalog)
    try:
        result = sql.query(args.query)
    finally:
        sql.close()
    write_result(result, args.format, args.output, args.max_rows, console())
    return 0
