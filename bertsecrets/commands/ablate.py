"""`bertsecrets ablate TASK|RUN`: disable each head and layer of a fine-tuned model and measure the dev metric."""

from __future__ import annotations

import argparse

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ablate", help="disable each head and layer of a fine-tuned model and measure the dev metric (paper 4.6)",
        description="Disable every single head and every whole layer of a fine-tuned run (its maps become uniform "
                    "over the real tokens) and store the dev metrics with 95%% paired bootstrap intervals, head "
                    "importance (Michel et al. 2019) and a pruning curve. `bertsecrets ingest` runs this too; "
                    "finished results are printed, not recomputed.",
    )
    p.add_argument("target", metavar="TASK_OR_RUN", help="a task (its fine-tuned run: lowest seed, then latest) or a run id")
    store_arg(p)
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="fine-tune N seeds (the run's seed and the next ones, reusing runs in the store), sweep each, "
                        "and report mean and std across them")
    p.add_argument("--disable", metavar="HEADS",
                   help="evaluate one configuration instead (not stored): LAYER:HEAD or whole LAYER items, 1-indexed, "
                        "e.g. 4:1,2:12 or 3")
    p.add_argument("--redo", action="store_true", help="recompute results already in the store")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    p.add_argument("--batch-size", type=int, default=32, help="dev inputs per forward pass (default 32)")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.commands import tables
    from bertsecrets.core.errors import UserError
    from bertsecrets.ingest import ablation
    from bertsecrets.ingest.progress import make_progress
    from bertsecrets.store import Store
    from bertsecrets.store.queries import resolve_run

    if args.seeds < 1:
        raise UserError(f"--seeds must be a positive whole number, got {args.seeds}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be a positive whole number, got {args.batch_size}")
    if args.device not in ("auto", "cpu", "cuda") and not args.device.startswith("cuda:"):
        raise UserError(f"--device must be auto, cpu or cuda, got {args.device!r}")
    if args.disable is not None and args.seeds > 1:
        raise UserError("--disable evaluates one configuration of one run; leave out --seeds")
    out = console()
    store = Store.open(config.store_path(args.store))
    record = resolve_run(store, args.target)
    run_id = record["run_id"]
    options = dict(device=args.device, batch_size=args.batch_size)
    if args.disable is not None:
        mask = ablation.parse_disable(args.disable, record["n_layers"], record["n_heads"])
        with make_progress(out) as progress:
            rows = ablation.evaluate_disabled(store, run_id, mask, progress, **options)
        tables.print_disabled(out, store, run_id, mask, rows)
    elif args.seeds > 1:
        from bertsecrets.ingest.seeds import ablate_seeds

        tables.print_seeds(out, store, ablate_seeds(store, run_id, args.seeds, out, redo=args.redo, **options))
    else:
        with make_progress(out) as progress:
            ablation.ablate(store, run_id, out, progress, redo=args.redo, **options)
        tables.print_summary(out, store, run_id)
    return 0
