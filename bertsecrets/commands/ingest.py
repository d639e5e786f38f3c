"""`bertsecrets ingest TASK`: fine-tune, evaluate and store every attention map of a GLUE task."""

from __future__ import annotations

import argparse

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ingest", help="fine-tune on a GLUE task and store every attention map of its dev set",
        description="Fine-tune a BERT on a GLUE task (the three set-ups of the paper's Table 1) and store the dev "
                    "attention maps of the pretrained and the fine-tuned model, then the analyses. Resumes where "
                    "it stopped; a finished ingest is not redone.",
    )
    p.add_argument("task", help="mrpc, sts-b, sst-2, qqp, rte, qnli or mnli")
    p.add_argument("--model", help="hub id, local folder, or 'minilm' (bundled all-MiniLM-L6-v2); default "
                                   "bert-base-uncased, falling back to minilm when it cannot be loaded")
    store_arg(p)
    p.add_argument("--data-dir", metavar="DIR",
                   help=f"a GLUE folder (<DIR>/MRPC/dev.tsv); default ${config.GLUE_ENV}, else the hub")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the model's preset: 2e-5, minilm 5e-5)")
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
    p.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                   help="how often fine-tuning saves its state for resuming (default 60)")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.ingest.pipeline import IngestSettings, ingest

    settings = IngestSettings(
        task=args.task, model=args.model, store=args.store, data_dir=args.data_dir, seed=args.seed,
        learning_rate=args.lr, batch_size=args.batch_size, epochs=args.epochs, warmup_ratio=args.warmup,
        weight_decay=args.weight_decay, max_length=args.max_length, max_examples=args.max_examples,
        max_train_examples=args.max_train_examples, precision=args.precision,
        setups=tuple(s.strip() for s in args.setups.split(",") if s.strip()),
        skip_bad_rows=args.skip_bad_rows, device=args.device,
        eval_batch_size=args.eval_batch_size, extract_batch_size=args.extract_batch_size,
        checkpoint_seconds=args.checkpoint_every,
    )
    ingest(settings, console())
    return 0
