"""Per unit of the paper's grid with a bert-base-sized BERT, on this machine's device: the numbers docs/scale.md projects.

Measured on real MRPC with random weights (speed and size of the weights do
not depend on their values; the maps' compressed size does, so it is given
per stored value and docs/scale.md sizes the maps with the rate of real maps):

- fine-tuning: training examples per second (batch 32, steady state: the
  first step, with its warm-up, left out);
- evaluation: dev examples per second;
- extraction: examples per second with every map stored (uint8 + zstd);
- the head-disabling sweep: configurations x examples per second (157
  configurations of 12 x 12 heads, the fast sweep);
- bytes: the fine-tuned weights as stored (float32 safetensors), and per
  attention value of the maps.

Informative, no target: `just bench scale` on a GPU machine fills in the GPU column.

    python -m bench scale [--train=N] [--dev=N] [--sweep-examples=N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--train", type=int, default=128, help="training pairs (batch 32; default 128)")
    parser.add_argument("--dev", type=int, default=64, help="dev pairs evaluated and extracted (default 64)")
    parser.add_argument("--sweep-examples", type=int, default=16, help="dev pairs the sweep runs on (default 16)")
    args = parser.parse_args(argv)

    import torch

    from bench.bench_extract import _glue_dir
    from bertsecrets.core.settings import IngestSettings
    from bertsecrets.core.tasks import get_task
    from bertsecrets.ingest.ablation import sweep_configs
    from bertsecrets.ingest.data import load_glue_dir
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.extract import extract_maps
    from bertsecrets.ingest.models import load_classifier, load_tokenizer, write_random_bert
    from bertsecrets.ingest.sweep import Sweep
    from bertsecrets.ingest.train import autocast_dtype, fine_tune, pick_device, predict
    from bertsecrets.store import Store

    device = pick_device("auto")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        folder = write_random_bert(work / "bert-base-random", "base")
        tokenizer = load_tokenizer(folder)
        data = load_glue_dir(get_task("mrpc"), _glue_dir())
        train = encode(tokenizer, data.train.head(args.train), 128)
        dev = encode(tokenizer, data.dev.head(args.dev), 128, keep_encodings=True)
        model = load_classifier(folder, 2, False, seed=0)
        n_layers, n_heads = model.config.num_hidden_layers, model.config.num_attention_heads
        print(f"bert-base size ({n_layers} x {n_heads} heads, random weights), MRPC; device {device} "
              f"{autocast_dtype(device)}, {torch.get_num_threads()} threads", flush=True)

        stamps: list[float] = []
        settings = IngestSettings(task="mrpc", epochs=1, batch_size=32, learning_rate=2e-5, checkpoint_seconds=1e9)
        fine_tune(model, train, data.train.labels[:args.train], settings, device, work / "checkpoint.pt",
                  on_step=lambda done, total, loss: stamps.append(time.perf_counter()))
        steady = (len(stamps) - 1) * 32 / (stamps[-1] - stamps[0])
        print(f"fine-tuning: {steady:,.1f} training examples/s (batch 32, steps 2-{len(stamps)})", flush=True)
        weights = work / "weights"
        model.save_pretrained(str(weights), safe_serialization=True)
        print(f"fine-tuned weights (float32 safetensors): {_size(weights) / 1e6:,.0f} MB", flush=True)

        model.set_attn_implementation("sdpa")
        predict(model, dev, device, 128)  # warm-up
        started = time.perf_counter()
        predict(model, dev, device, 128)
        print(f"evaluation: {len(dev) / (time.perf_counter() - started):,.1f} dev examples/s", flush=True)

        store = Store.create(work / "store")
        with store.map_writer("m", lengths=dev.lengths, n_layers=n_layers, n_heads=n_heads, precision="uint8") as writer:
            started = time.perf_counter()
            extract_maps(model, dev, writer, device, 32)
            seconds = time.perf_counter() - started
            values = writer.n_values()
        stored = _size(store.maps_path("m"))
        print(f"extraction: {len(dev) / seconds:,.1f} examples/s; {values / len(dev) / 1e6:.2f} M values an example "
              f"(MRPC, mean {dev.lengths.mean():.0f} word pieces), {stored / values:.3f} bytes a value with these "
              "random weights", flush=True)

        subset = encode(tokenizer, data.dev.head(args.sweep_examples), 128)
        sweep = Sweep(model, subset, device, batch_size=32)
        _, masks = sweep_configs(n_layers, n_heads)
        started = time.perf_counter()
        sweep.fast(masks)
        seconds = time.perf_counter() - started
        rate = len(masks) * len(subset) / seconds
        print(f"sweep: {len(masks)} configurations x {len(subset)} examples in {seconds:.1f} s = {rate:,.1f} "
              f"configuration-examples/s ({rate / len(subset):.2f} configurations/s on {len(subset)} examples)",
              flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
