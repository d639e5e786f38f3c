"""`bertsecrets check`: verify that the store and its catalog agree, naming what is wrong."""

from __future__ import annotations

import argparse

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg, text


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="verify that the store and its catalog agree, naming what is wrong")
    store_arg(p)
    p.add_argument("--deep", action="store_true", help="also read every stored map and check its rows sum to 1")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.store import Store
    from bertsecrets.store.check import check_store

    out = console()
    store = Store.open(config.store_path(args.store))
    problems, notes = check_store(store, deep=args.deep)
    # Notes and problems name runs, files and paths: Text, so they print as written.
    for note in notes:
        out.print(text((note, "dim")), soft_wrap=True)
    if problems:
        for problem in problems:
            out.print(text(("✗", "red"), " ", problem), soft_wrap=True)
        out.print(text(f"{len(problems)} problem(s) in {store.root}"), soft_wrap=True)
        return 1
    out.print(text(("✓", "green"), f" store and catalog agree ({store.root})"), soft_wrap=True)
    return 0
