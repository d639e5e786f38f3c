"""`bertsecrets check`: verify that the store and its catalog agree, naming what is wrong; `--repair` recomputes it."""

from __future__ import annotations

import argparse

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="verify that the store and its catalog agree, naming what is wrong")
    store_arg(p)
    p.add_argument("--deep", action="store_true",
                   help="also decode every stored map, norm and weights file (rows sum to 1, norms finite, bytes as written)")
    p.add_argument("--repair", action="store_true",
                   help="recompute what is damaged (checks --deep first): removes exactly the damaged files "
                        "and runs the ingest of each affected run")


def run(args: argparse.Namespace) -> int:
    from rich.text import Text

    from bertsecrets.store import Store
    from bertsecrets.store.check import check_store

    out = console()
    store = Store.open(config.store_path(args.store))
    problems, notes = check_store(store, deep=args.deep or args.repair)
    left: list[str] = []
    if args.repair and problems:
        _print(out, problems, notes)
        from bertsecrets.ingest.repair import repair

        left = repair(store, problems, out)
        problems, notes = check_store(store, deep=True)
    _print(out, problems, notes)
    for line in left:
        out.print(Text.assemble(("to do: ", "yellow"), line), soft_wrap=True)
    if problems:
        repairable = not args.repair and any(p.repairable for p in problems)
        hint = "; `bertsecrets check --repair` recomputes what can be" if repairable else ""
        out.print(Text(f"{len(problems)} problem(s) in {store.root}{hint}"), soft_wrap=True)
        return 1
    if left:
        out.print(Text(f"the store and its catalog agree, but {len(left)} thing(s) are left to do ({store.root})"),
                  soft_wrap=True)
        return 1
    out.print(Text.assemble(("✓ ", "green"), f"store and catalog agree ({store.root})"), soft_wrap=True)
    return 0


def _print(out, problems, notes) -> None:
    from rich.text import Text

    for note in notes:
        out.print(Text(note, style="dim"), soft_wrap=True)
    for problem in problems:
        out.print(Text.assemble(("✗ ", "red"), str(problem)), soft_wrap=True)
