"""On a GPU: the ingest of MRPC with a bert-base-sized BERT (random weights, the bundled uncased tokenizer).

Prints fine-tuning and extraction throughput in examples per second. Without
a GPU it says so and does nothing (the CPU figures come from the other benchmarks).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench gpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-dir", help="GLUE folder (default $GLUE_DIR, else ../shared/data/glue)")
    parser.add_argument("--tokenizer", help="folder with an uncased WordPiece tokenizer (default: the bundled model's)")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: skipped (run `just bench gpu` on a GPU machine)")
        return 0
    from rich.console import Console

    from bench.bench_extract import _glue_dir
    from bertsecrets.ingest.models import write_random_bert
    from bertsecrets.core.settings import IngestSettings
    from bertsecrets.ingest.pipeline import ingest
    from bertsecrets.store import Store

    glue = Path(args.data_dir) if args.data_dir else _glue_dir()
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        model_dir = write_random_bert(work / "bert-base-random", "base",
                                      tokenizer=Path(args.tokenizer) if args.tokenizer else None)
        settings = IngestSettings(task="mrpc", model=str(model_dir), data_dir=str(glue), store=str(work / "store"),
                                  epochs=args.epochs, setups=("finetuned",), device="cuda")
        started = time.perf_counter()
        plan = ingest(settings, Console(file=io.StringIO()))
        total = time.perf_counter() - started
        store = Store.open(work / "store")
        run = store.run(plan.run_ids["finetuned"])
        maps = {r["role"]: r for r in store.rows("SELECT role, n_examples, extract_seconds FROM maps")}
        console = Console()
        console.print(f"GPU: {torch.cuda.get_device_name()} | torch {torch.__version__} | model: bert-base size, random "
                      f"weights, 12 layers x 12 heads | MRPC {run['train_examples']} train, {run['dev_examples']} dev")
        train_eps = run["train_examples"] * args.epochs / run["train_seconds"]
        console.print(f"fine-tuning: {args.epochs} epochs in {run['train_seconds']:.1f} s = {train_eps:,.0f} examples/s "
                      f"(batch 32, {'bf16' if torch.cuda.is_bf16_supported() else 'fp16'} autocast)")
        for role, m in sorted(maps.items()):
            console.print(f"extraction ({role}): {m['n_examples']} examples x 144 maps in {m['extract_seconds']:.2f} s = "
                          f"{m['n_examples'] / m['extract_seconds']:,.0f} examples/s")
        console.print(f"dev accuracy {run['accuracy']:.3f} (random init: chance expected); whole ingest {total:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
