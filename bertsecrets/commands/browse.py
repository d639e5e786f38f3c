"""`bertsecrets browse [STORE]`: the terminal browser (or, with --web, the same app in a web browser)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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
    p.add_argument("--labeller", metavar="NAME",
                   help=f"who gives the labels (default ${config.LABELLER_ENV}, else your user name)")
    web = p.add_argument_group("web mode")
    web.add_argument("--web", action="store_true", help="serve the browser to web browsers (needs textual-serve)")
    web.add_argument("--host", default="localhost",
                     help="the address to listen on (default localhost); any other than loopback needs a secret")
    web.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    web.add_argument("--public-url", metavar="URL",
                     help="the address people open, e.g. https://lab.example.org/bertsecrets behind a proxy "
                          "(default: the one each request came to, from Host or X-Forwarded-Host/-Proto)")
    web.add_argument("--secrets-file", metavar="PATH", type=Path,
                     help="name:secret lines, one per person (chmod 600); each person's labels go under their "
                          f"name (default: ${config.WEB_SECRET_ENV} for --labeller, else a secret made and printed "
                          "when one is needed)")
    web.add_argument("--require-secret", action="store_true",
                     help="ask for a secret on loopback too (a shared machine, an SSH port forward)")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.store import Store

    if args.store_pos and args.store and args.store_pos != args.store:
        raise UserError("give the store once: as STORE or as --store, not both")
    store = Store.open(config.store_path(args.store_pos or args.store))
    if args.web:
        return serve(store.root, args)
    web_only = [o for o, v in (("--public-url", args.public_url), ("--secrets-file", args.secrets_file),
                               ("--require-secret", args.require_secret)) if v]
    if web_only:
        raise UserError(f"{web_only[0]} goes with --web")
    if args.colors != "auto":
        # Textual reads it when it starts: the console then sends exactly these colours.
        os.environ["TEXTUAL_COLOR_SYSTEM"] = args.colors
    from bertsecrets.tui.app import BrowseApp

    BrowseApp(store, truecolor={"auto": None, "256": False, "truecolor": True}[args.colors],
              labeller=args.labeller).run()
    return 0


def serve(root: Path, args: argparse.Namespace) -> int:
    try:
        from bertsecrets.tui import web
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("textual_serve", "aiohttp", "aiohttp_jinja2", "yarl"):
            raise
        raise UserError("--web needs textual-serve: pip install 'bertsecrets[web]'") from None

    def command_for(labeller: str) -> list[str]:
        # Each browser tab runs its own browser process, named after the person the secret belongs to;
        # browsers draw truecolor.
        return [sys.executable, "-m", "bertsecrets", "browse", str(root), "--colors", "truecolor",
                "--labeller", labeller]

    return web.serve(command_for, host=args.host, port=args.port, public_url=args.public_url,
                     secrets_file=args.secrets_file, require_secret=args.require_secret, labeller=args.labeller)
