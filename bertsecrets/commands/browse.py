"""`bertsecrets browse [STORE]`: the terminal browser (or, with --web, the same app in a web browser)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from bertsecrets.core import config
from bertsecrets.core.errors import UserError

COLORS = ("auto", "256", "truecolor")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "browse", help="browse runs, heads, maps, classes, features and ablations in the terminal",
        description="Open the terminal browser on a store: runs, the head grid, attention maps, the model's "
                    "thumbnails, labelling, features, ablations and SQL. Press ? inside for the keys.",
    )
    p.add_argument("store_pos", nargs="?", metavar="STORE", help="the store folder (same as --store)")
    p.add_argument("--store", metavar="PATH",
                   help=f"the store folder (default: ${config.STORE_ENV}, else ./{config.DEFAULT_STORE})")
    p.add_argument("--colors", choices=COLORS, default="auto",
                   help="auto: truecolor when $COLORTERM says so, else 256 colours (the usual case over SSH)")
    p.add_argument("--web", action="store_true", help="serve the browser to a web browser (needs textual-serve)")
    p.add_argument("--host", default="localhost", help="with --web: the address to listen on (default localhost)")
    p.add_argument("--port", type=int, default=8000, help="with --web: the port (default 8000)")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.store import Store

    if args.store_pos and args.store and args.store_pos != args.store:
        raise UserError("give the store once: as STORE or as --store, not both")
    store = Store.open(config.store_path(args.store_pos or args.store))
    if args.web:
        return serve(store.root, args)
    if args.colors != "auto":
        # Textual reads it when it starts: the console then sends exactly these colours.
        os.environ["TEXTUAL_COLOR_SYSTEM"] = args.colors
    from bertsecrets.tui.app import BrowseApp

    BrowseApp(store, truecolor={"auto": None, "256": False, "truecolor": True}[args.colors]).run()
    return 0


def serve(root, args: argparse.Namespace) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        raise UserError("--web needs textual-serve: pip install 'bertsecrets[web]'") from None
    # Each browser tab runs its own browser process; browsers draw truecolor.
    command = shlex.join([sys.executable, "-m", "bertsecrets", "browse", str(root), "--colors", "truecolor"])
    Server(command, host=args.host, port=args.port, title="bertsecrets").serve()
    return 0
