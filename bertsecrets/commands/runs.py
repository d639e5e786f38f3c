"""`bertsecrets runs`: the runs in the store, one line each."""

from __future__ import annotations

import argparse

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg

QUERY = """
SELECT run_id, task, setup, model_used AS model, seed, status,
       round(100 * coalesce(accuracy, pearson), 1) AS "acc|r", round(100 * f1, 1) AS f1,
       round(train_seconds) AS train_s, strftime(started_at, '%Y-%m-%d %H:%M') AS started
FROM runs ORDER BY task, started_at
"""


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="list the runs in the store")
    store_arg(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.store import Store
    from bertsecrets.store.export import write_result

    store = Store.open(config.store_path(args.store))
    write_result(store.query(QUERY), args.format, None, None, console())
    return 0
