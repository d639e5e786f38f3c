"""The grid on Dask workers against the same grid in one process, whole commands from fresh processes.

CPU (any machine): a grid of 4 small runs of the bundled model on MRPC
slices (seeds 0-3, the fine-tuned set-up: fine-tune, evaluate, both map sets,
the analyses and the head-disabling sweep), `bertsecrets ingest` in one
process against ``--workers 2``. The sides alternate (serial, workers,
serial, workers, each into a fresh store), so a machine busy with other work
slows both alike; judged by the ratio of their total wall times: the workers
must not be slower (target <= 1.0). Both sides must make the same run ids.

GPU (only where CUDA is present, otherwise said and skipped):

- 4 MiniLM fine-tunes of full MRPC (3 epochs) with 4 workers sharing the GPU,
  against one after another: runs per hour, target >= 2.5x. The set-up is
  ``random_init``: a fine-tune with the same compute whose run ends there (no
  maps, analyses or sweep after it), so the wall time is the fine-tunes'.
- Extraction of every map of MRPC dev with a bert-base-sized BERT (random
  weights) against the bare forward passes (SDPA, no maps): target <= 3x.

    python -m bench grid [--rounds=N] [--train-examples=N] [--examples=N] [--workers=N] [--gpu-only|--cpu-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_TARGET = 1.0
GPU_RUNS_TARGET = 2.5
GPU_EXTRACT_TARGET = 3.0


def _ingest(args: list[str], store: Path, glue: Path) -> float:
    """Wall seconds of one `bertsecrets ingest` from a fresh process (which must succeed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "bertsecrets", "ingest", *args, "--data-dir", str(glue), "--store", str(store)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed (exit code {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def _run_ids(store: Path) -> list[tuple]:
    from bertsecrets.store import Store

    return sorted((r["run_id"], r["accuracy"], r["f1"]) for r in Store.open(store).rows(
        "SELECT run_id, accuracy, f1 FROM runs"))


def _sides(name: str, grid: list[str], workers: int, rounds: int, glue: Path, work: Path) -> dict[str, float]:
    """Total wall seconds of each side over the rounds (serial first in each), checking they make the same runs."""
    totals = {"serial": 0.0, f"--workers {workers}": 0.0}
    made = {}
    for round_ in range(1, rounds + 1):
        for side in totals:
            store = work / f"{name}-{side.strip('-').replace(' ', '')}-{round_}"
            extra = [] if side == "serial" else ["--workers", str(workers)]
            seconds = _ingest([*grid, *extra], store, glue)
            totals[side] += seconds
            made[side] = _run_ids(store)
            shutil.rmtree(store, ignore_errors=True)
            print(f"round {round_} {side:>12}: {seconds:6.1f} s", flush=True)
    a, b = made.values()
    if [r[0] for r in a] != [r[0] for r in b]:
        raise SystemExit("bench: the two sides made different runs")
    if a != b:
        print("note: same runs, but their dev metrics differ (compute threads change the last bits of the weights)")
    return totals


def _cpu(args, glue: Path, work: Path) -> bool:
    grid = ["mrpc", "--seeds", "0-3", "--model", "minilm", "--setups", "finetuned", "--epochs", "1",
            "--max-train-examples", str(args.train_examples), "--max-examples", str(args.examples), "--device", "cpu"]
    print(f"CPU ({os.cpu_count()} cores): 4 runs of all-MiniLM-L6-v2 on MRPC ({args.train_examples} training pairs, "
          f"1 epoch; maps, analyses and sweep on {args.examples} dev pairs), serial vs --workers {args.workers}",
          flush=True)
    totals = _sides("cpu", grid, args.workers, args.rounds, glue, work)
    serial, workers = totals.values()
    ratio = workers / serial
    passed = ratio <= CPU_TARGET
    print(f"--workers {args.workers} / serial: {ratio:.3f} ({workers:.1f} s vs {serial:.1f} s over {args.rounds} "
          f"rounds); target <= {CPU_TARGET}: {'PASS' if passed else 'FAIL'}")
    return passed


def _gpu_fine_tunes(args, glue: Path, work: Path) -> bool:
    grid = ["mrpc", "--seeds", "0-3", "--model", "minilm", "--setups", "random_init", "--device", "cuda"]
    print("GPU: 4 MiniLM fine-tunes of MRPC (3 epochs), one after another vs 4 workers sharing the GPU", flush=True)
    totals = _sides("gpu", grid, 4, args.rounds, glue, work)
    serial, workers = totals.values()
    ratio = serial / workers  # runs per hour, workers over serial
    passed = ratio >= GPU_RUNS_TARGET
    print(f"runs per hour, 4 workers / serial: {ratio:.2f}x ({3600 * 4 * args.rounds / workers:,.0f} vs "
          f"{3600 * 4 * args.rounds / serial:,.0f}); target >= {GPU_RUNS_TARGET}: {'PASS' if passed else 'FAIL'}")
    return passed


def _gpu_extraction(glue: Path, work: Path, repeats: int = 3) -> bool:
    import torch

    from bertsecrets.core.tasks import get_task
    from bertsecrets.ingest.data import load_glue_dir
    from bertsecrets.ingest.encode import collate, encode, length_sorted_batches
    from bertsecrets.ingest.extract import extract_maps
    from bertsecrets.ingest.models import load_classifier, load_tokenizer, write_random_bert
    from bertsecrets.ingest.train import autocast
    from bertsecrets.store import Store

    device = torch.device("cuda")
    folder = write_random_bert(work / "bert-base-random", "base")
    enc = encode(load_tokenizer(folder), load_glue_dir(get_task("mrpc"), glue).dev, 128)
    model = load_classifier(folder, 2, False).to(device).eval()
    model.set_attn_implementation("sdpa")
    batches = [collate(enc, idx, device) for idx in length_sorted_batches(enc.lengths, 32)]

    def forward() -> None:
        with torch.inference_mode(), autocast(device):
            for batch in batches:
                model.base_model(**batch)
        torch.cuda.synchronize()

    store = Store.create(work / "extract-store")

    def extract(i: int) -> None:
        with store.map_writer(f"m{i}", lengths=enc.lengths, n_layers=12, n_heads=12, precision="uint8") as writer:
            extract_maps(model, enc, writer, device, batch_size=32)
        torch.cuda.synchronize()

    forward()
    times = {"forward": [], "extract": []}
    for i in range(repeats):  # alternating, best of each
        for name in times:
            started = time.perf_counter()
            forward() if name == "forward" else extract(i)
            times[name].append(time.perf_counter() - started)
    fwd, ext = min(times["forward"]), min(times["extract"])
    ratio = ext / fwd
    passed = ratio <= GPU_EXTRACT_TARGET
    print(f"GPU extraction of all maps of {len(enc)} MRPC dev pairs, bert-base size: {ext:.2f} s vs {fwd:.3f} s bare "
          f"forward passes = {ratio:.1f}x ({len(enc) / ext:,.0f} examples/s); target <= {GPU_EXTRACT_TARGET}: "
          f"{'PASS' if passed else 'FAIL'}")
    return passed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench grid")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of serial then workers (default 2)")
    parser.add_argument("--train-examples", type=int, default=64, help="MRPC training pairs per CPU run (default 64)")
    parser.add_argument("--examples", type=int, default=16, help="dev pairs with maps and sweep per CPU run (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="CPU side's worker processes (default 2)")
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--gpu-only", action="store_true")
    args = parser.parse_args(argv)

    from bench.bench_extract import _glue_dir
    from bertsecrets.ingest.plan import resolve_compute

    glue = _glue_dir()
    work = Path(tempfile.mkdtemp(prefix="bench-grid-"))
    results = []
    try:
        if not args.gpu_only:
            results.append(_cpu(args, glue, work))
        if not args.cpu_only:
            if resolve_compute("auto").device == "cuda":
                results.append(_gpu_fine_tunes(args, glue, work))
                results.append(_gpu_extraction(glue, work))
            else:
                print("no CUDA GPU here: the GPU rows (4 concurrent fine-tunes on one GPU, extraction vs forward "
                      "passes) are skipped; run `just bench grid` on a GPU machine")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
