"""The `bertsecrets` command: parses arguments, runs a subcommand, turns errors into one line."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from typing import Sequence

from bertsecrets.core import config
from bertsecrets.core.version import __version__
from bertsecrets.commands import MODULES, console
from bertsecrets.core.errors import UserError

#: "No space left" and "quota exceeded" (not every system has the latter).
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

#: Exit status of a failure of the machine rather than of the input (full disk, no permission).
ENVIRONMENT_EXIT = 2


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


def say(label: str, style: str, message: str) -> None:
    """One line on standard error: ``label`` in ``style``, then ``message`` exactly as written.

    The message holds paths, SQL and data, so it is a ``Text`` and never read as markup:
    "[/x]" or ":smile:" in it print as they are.
    """
    from rich.text import Text

    line = Text.assemble((label, style), " ", " ".join(message.split()))
    console(stderr=True).print(line, soft_wrap=True)


def environment_message(exc: OSError) -> str:
    """What a failure of the disk or the file system means, in one line that names the path."""
    path = exc.filename if exc.filename is not None else None
    code = exc.errno
    if code in _FULL:
        what = f"cannot write {path}" if path else "cannot write"
        return f"the disk is full ({what}): free some space, then run the same command again"
    if code == errno.EROFS:
        return f"{path or 'the target'} is on a read-only file system: choose a writable folder"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied: {path or 'a file'} is read-only or not yours: check its permissions or choose another folder"
    if code == errno.ENOENT:
        return f"no such file or folder: {path}" if path else f"a file or folder does not exist ({exc.strerror or exc})"
    if code == errno.ENOTDIR:
        return f"{path}: part of this path is a file, not a folder"
    if code == errno.EISDIR:
        return f"{path} is a folder, not a file: give a file name"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {path}" if path else reason


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except UserError as exc:
        if config.debug():
            raise
        say("error:", "red", str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        say("interrupted:", "yellow", "run the same command again to resume")
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the machine, not the input: a full disk, a read-only folder, a missing path
        if config.debug():
            raise
        say("error:", "red", environment_message(exc))
        return ENVIRONMENT_EXIT
    except Exception as exc:  # a bug: one line, the traceback on request
        if config.debug():
            raise
        say("internal error:", "red", f"{type(exc).__name__}: {exc} (set {config.DEBUG_ENV}=1 for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
