"""Subcommands of `bertsecrets`: one module each, with ``add_parser(sub)`` and ``run(args)``.

A module imports its room (ingest, store, TUI) inside ``run``, so that
`bertsecrets sql` never loads torch and `--help` is instant.
"""

from __future__ import annotations

import argparse

from bertsecrets.core import config

#: The modules in the order `bertsecrets --help` lists them.
MODULES = ["ingest", "analyze", "ablate", "labels", "browse", "sql", "runs", "check", "figures"]


def store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", metavar="PATH",
        help=f"the store folder (default: ${config.STORE_ENV}, else ./{config.DEFAULT_STORE})",
    )


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)
