"""The head-and-layer sweep on a task's dev set with the bundled model: fast against naive, same attention kernel.

Both evaluate the baseline, every head and every layer disabled (79
configurations for 6 x 12 heads) on the whole dev set, on the CPU. Naive runs
the whole model once per configuration; fast (``ingest/sweep.py``) starts each
configuration at its first disabled layer from cached hidden states, stacks
configurations into one pass, and computes the last layer at [CLS] only.
Judged by fast / naive wall time (target at most 0.65), with equal predictions
(classes; for STS-B's regression, scores within 1e-4).

The dev set is dealt into ``--rounds`` slices of equal size and mixed lengths
(input i goes to slice i mod rounds). Each round runs fast, then naive, on its
slice, so the two sides alternate (A, B, A, B, ...) and a machine busy with
other work slows both alike; each side sees every dev input exactly once, and
the ratio is of their total times over the whole dev set. The predictions are
compared on the whole dev set.

    python -m bench ablation [--task=mrpc|rte|sts-b|sst-2] [--examples=N] [--rounds=N]

Speed does not depend on the weights, so the pretrained encoder with a new
classifier head stands in for a fine-tuned one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

TARGET = 0.65


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ablation")
    parser.add_argument("--examples", type=int, default=None, help="only the first N dev examples (default: all)")
    parser.add_argument("--task", default="mrpc", help="a GLUE task with its data in $GLUE_DIR (default mrpc)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="slices of the dev set, each run fast then naive (default 4)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from bertsecrets.core import config
    from bertsecrets.ingest.ablation import sweep_configs
    from bertsecrets.ingest.data import load_glue_dir
    from bertsecrets.ingest.encode import encode
    from bertsecrets.ingest.models import bundled_path, load_classifier, load_tokenizer
    from bertsecrets.ingest.sweep import Sweep
    from bertsecrets.core.tasks import get_task

    task = get_task(args.task)
    glue = config.glue_dir() or Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
    if not (glue / task.glue_folder / task.dev_file).is_file():
        print(f"no {task.title} data in {glue}: set {config.GLUE_ENV} to a GLUE folder")
        return 2
    regression = task.label_kind == "regression"
    dev = load_glue_dir(task, glue).dev.head(args.examples)
    rounds = max(1, min(args.rounds, len(dev)))
    tokenizer = load_tokenizer(bundled_path())
    model = load_classifier(bundled_path(), task.num_labels, regression, seed=0)
    whole = encode(tokenizer, dev, 128)
    shape = (int(model.config.num_hidden_layers), int(model.config.num_attention_heads))
    configs, masks = sweep_configs(*shape)
    print(f"{task.title} dev: {len(whole)} examples (mean {whole.lengths.mean():.0f} tokens), all-MiniLM-L6-v2 "
          f"{shape[0]} layers x {shape[1]} heads, {len(configs)} configurations, "
          f"CPU with {torch.get_num_threads()} threads, {rounds} rounds of about {len(dev) // rounds} examples",
          flush=True)

    timings = {"fast": [0.0, 0.0], "naive": [0.0, 0.0]}
    n_labels = int(model.config.num_labels)
    logits = {name: np.zeros((len(configs), len(dev), n_labels), dtype=np.float32) for name in timings}
    for round_ in range(rounds):
        part = np.arange(round_, len(dev), rounds)
        sweep = Sweep(model, encode(tokenizer, dev.take(part), 128), torch.device("cpu"), batch_size=32)
        for name in ("fast", "naive"):
            started, cpu = time.perf_counter(), time.process_time()
            logits[name][:, part] = getattr(sweep, name)(masks)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            timings[name][0] += wall
            timings[name][1] += cpu
            print(f"round {round_ + 1}/{rounds} {name:>5} ({len(part)} examples): {wall:7.1f} s wall, "
                  f"{cpu:7.1f} s CPU", flush=True)

    largest = float(np.abs(logits["fast"] - logits["naive"]).max())
    if regression:
        differ = int((np.abs(logits["fast"][..., 0] - logits["naive"][..., 0]) > 1e-4).sum())
    else:
        differ = int((logits["fast"].argmax(-1) != logits["naive"].argmax(-1)).sum())
    ratio = timings["fast"][0] / timings["naive"][0]
    cpu_ratio = timings["fast"][1] / timings["naive"][1]
    passed = ratio <= TARGET and differ == 0
    print(f"predictions that differ: {differ} of {logits['fast'].shape[0] * logits['fast'].shape[1]}; "
          f"largest logit difference {largest:.1e}")
    print(f"fast / naive: {ratio:.3f} wall ({cpu_ratio:.3f} CPU time; {timings['fast'][0]:.1f} s vs "
          f"{timings['naive'][0]:.1f} s); target <= {TARGET}: "
          f"{'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1
