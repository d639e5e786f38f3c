"""The `bertsecrets` command: parses arguments, runs a subcommand, turns errors into one line."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from bertsecrets.core import config
from bertsecrets.core.version import __version__
from bertsecrets.commands import MODULES, console
from bertsecrets.core.errors import UserError


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="bertsecrets",
        description="Reproduce and explore the experiments of 'Revealing the Dark Secrets of BERT' "
                    "(Kovaleva et al., 2019): fine-tune, store every attention map, analyse, browse.",
    )
    parser.add_argument("--version", action="version", version=f"bertsecrets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = {}
    for name in MODULES:
        module = importlib.import_module(f"bertsecrets.commands.{name}")
        before = set(sub.choices)
        module.add_parser(sub)
        for added in set(sub.choices) - before:
            modules[added] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except UserError as exc:
        if config.debug():
            raise
        console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        console(stderr=True).print("[yellow]interrupted[/]: run the same command again to resume")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, the traceback on request
        if config.debug():
            raise
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        console(stderr=True).print(
            f"[red]internal error:[/] {message} (set {config.DEBUG_ENV}=1 for the traceback)",
            highlight=False, soft_wrap=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
