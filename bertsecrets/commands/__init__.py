"""Subcommands of `bertsecrets`: one module each, with ``add_parser(sub)`` and ``run(args)``.

A module imports its room (ingest, store, TUI) inside ``run``, so that
`bertsecrets sql` never loads torch and `--help` is instant.
"""

from __future__ import annotations

import argparse

from bertsecrets.core import config

#: The modules in the order `bertsecrets --help` lists them.
MODULES = ["ingest", "analyze", "ablate", "labels", "browse", "sql", "runs", "check", "figures", "report"]


def store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", metavar="PATH",
        help=f"the store folder (default: ${config.STORE_ENV}, else ./{config.DEFAULT_STORE})",
    )


def console(stderr: bool = False):
    """A Rich console for a command's output. Markup stays on for the commands' own styling,
    so data (paths, values, SQL) goes in as ``rich.text.Text`` (see :func:`text`); emoji codes
    are off, so ":smile:" or "root:x:0" in a string never turn into pictures."""
    from rich.console import Console

    return Console(stderr=stderr, emoji=False)


def text(*parts):
    """A line of ``Text`` from plain strings (printed as written) and ``(string, style)`` pairs."""
    from rich.text import Text

    return Text.assemble(*parts)
