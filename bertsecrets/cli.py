"""The `bertsecrets` command: one subcommand per job, each importing only what it needs."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from bertsecrets import __version__, config
from bertsecrets.errors import UserError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable:
    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return register


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store", metavar="PATH",
        help=f"the store folder (default: ${config.STORE_ENV}, else ./{config.DEFAULT_STORE})",
    )


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


# -- ingest -----------------------------------------------------------------------


@command("ingest")
def _ingest(args: argparse.Namespace) -> int:
    from ingest.pipeline import IngestSettings, ingest

    settings = IngestSettings(
        task=args.task, model=args.model, store=args.store, data_dir=args.data_dir, seed=args.seed,
        learning_rate=args.lr, batch_size=args.batch_size, epochs=args.epochs, warmup_ratio=args.warmup,
        weight_decay=args.weight_decay, max_length=args.max_length, max_examples=args.max_examples,
        max_train_examples=args.max_train_examples, precision=args.precision,
        setups=tuple(s.strip() for s in args.setups.split(",") if s.strip()),
        skip_bad_rows=args.skip_bad_rows, device=args.device,
        eval_batch_size=args.eval_batch_size, extract_batch_size=args.extract_batch_size,
    )
    ingest(settings, _console())
    return 0


# -- sql ------------------------------------------------------------------------------


@command("sql")
def _sql(args: argparse.Namespace) -> int:
    from store import Store
    from store.export import write_result

    store = Store.open(config.store_path(args.store))
    table = store.query(args.query)
    write_result(table, args.format, args.output, args.max_rows, _console())
    return 0


# -- runs -----------------------------------------------------------------------------


@command("runs")
def _runs(args: argparse.Namespace) -> int:
    from store import Store
    from store.export import write_result

    store = Store.open(config.store_path(args.store))
    table = store.query(
        """SELECT run_id, task, setup, model_used AS model, seed, status,
                  round(100 * coalesce(accuracy, pearson), 1) AS "acc|r", round(100 * f1, 1) AS f1,
                  round(train_seconds) AS train_s, strftime(started_at, '%Y-%m-%d %H:%M') AS started
           FROM runs ORDER BY task, started_at"""
    )
    write_result(table, args.format, None, None, _console())
    return 0


# -- check ----------------------------------------------------------------------------


@command("check")
def _check(args: argparse.Namespace) -> int:
    from store import Store
    from store.check import check_store

    console = _console()
    store = Store.open(config.store_path(args.store))
    problems, notes = check_store(store, deep=args.deep)
    for note in notes:
        console.print(f"[dim]{note}[/]")
    if problems:
        for problem in problems:
            console.print(f"[red]✗[/] {problem}", highlight=False)
        console.print(f"{len(problems)} problem(s) in {store.root}")
        return 1
    console.print(f"[green]✓[/] store and catalog agree ({store.root})")
    return 0


# -- the parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bertsecrets",
        description="Reproduce and explore the experiments of 'Revealing the Dark Secrets of BERT'.",
    )
    parser.add_argument("--version", action="version", version=f"bertsecrets {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ingest", help="fine-tune on a GLUE task and store every attention map of its dev set",
                       description="Fine-tune a BERT on a GLUE task (the three set-ups of the paper's Table 1) and "
                                   "store the dev attention maps of the pretrained and the fine-tuned model. "
                                   "Resumes where it stopped; a finished ingest is not redone.")
    p.add_argument("task", help="mrpc, sts-b, sst-2, qqp, rte, qnli or mnli")
    p.add_argument("--model", help="hub id, local folder, or 'minilm' (bundled all-MiniLM-L6-v2); "
                                   "default bert-base-uncased, falling back to minilm when it cannot be loaded")
    _store_arg(p)
    p.add_argument("--data-dir", metavar="DIR", help=f"a GLUE folder (<DIR>/MRPC/dev.tsv); default ${config.GLUE_ENV}, else the hub")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the model's preset; 2e-5, minilm 5e-5)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up as a fraction of the steps (default 0.1)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--max-examples", type=int, default=1000, help="dev examples whose maps are stored (default 1000)")
    p.add_argument("--max-train-examples", type=int, default=None, help="use only the first N training examples")
    p.add_argument("--precision", default="uint8", help="uint8 (default, error <= 1/510) or float16")
    p.add_argument("--setups", default="finetuned,random_init,no_finetuning",
                   help="comma-separated set-ups to run (default: all three of Table 1)")
    p.add_argument("--skip-bad-rows", action="store_true", help="skip unparseable data rows (counted in the run)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--extract-batch-size", type=int, default=32)

    p = sub.add_parser("sql", help="run read-only SQL on the catalog",
                       description="Run SQL on the catalog (tables: runs, examples, tokens, maps, train_log, ...). "
                                   "Read-only: only queries are accepted.")
    p.add_argument("query", help='for example "SELECT task, setup, accuracy FROM runs"')
    _store_arg(p)
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--max-rows", type=int, default=200, help="rows shown in table format (default 200)")

    p = sub.add_parser("runs", help="list the runs in the store")
    _store_arg(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")

    p = sub.add_parser("check", help="verify that the store and its catalog agree, naming what is wrong")
    _store_arg(p)
    p.add_argument("--deep", action="store_true", help="also read every stored map and check its rows sum to 1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        if config.debug():
            raise
        _console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        _console(stderr=True).print("[yellow]interrupted[/]: run the same command again to resume")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: one line, the traceback on request
        if config.debug():
            raise
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        _console(stderr=True).print(
            f"[red]internal error:[/] {message} (set {config.DEBUG_ENV}=1 for the traceback)", highlight=False, soft_wrap=True
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
