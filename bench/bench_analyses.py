"""The analyses of a task's stored maps: the vectorised pass against a per-map loop, on real maps.

Both compute every per-input statistic of the analyses (Clark et al.'s head
statistics, attention to token types, [CLS]'s attention, relation maxima,
cosine before/after fine-tuning and the pattern geometry) for both models'
maps; neither makes the CNN's resized maps. The vectorised pass
(``ingest/analyses/driver.py: bulk_pass``) works on whole length buckets at
once; the loop (``ingest/analyses/reference.py``)
reads an input and goes over its maps one by one. The loop runs on a sample
of inputs spread over the dev set and is extrapolated to all of them; the
bench checks that both give the same numbers on the sample.

Judged by loop / vectorised time (target at least 3), by the time of the
whole maps analysis, spaCy included (target at most 120 s on a 2-core CPU),
and by what the analyses beyond the paper add to it (steps ``norms`` and
``flow``: the norm-weighted statistics, head distances, families, stability
against the run's other seeds, rollout; target at most 60 s on MRPC, spaCy's
annotations shared with the maps step as in an ingest).
The loop is numpy within each map, so the ratio is modest: reading and
decoding the maps from Zarr (about 2 s of the vectorised pass on MRPC) costs
both the same.
Nothing is written to the store.

    python -m bench analyses [--store=PATH] [--task=mrpc|rte|sts-b|sst-2] [--loop-examples=N] [--rounds=N]
"""

from __future__ import annotations

import argparse
import os
import time

RATIO_TARGET = 3.0
SECONDS_TARGET = 120.0
EXTRA_TARGET = 60.0


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench analyses")
    parser.add_argument("--store", help="a store holding an ingest of the task (default: the configured store)")
    parser.add_argument("--task", default="mrpc")
    parser.add_argument("--loop-examples", type=int, default=40, help="inputs the per-map loop runs on (default 40)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of vectorised then loop (default 2)")
    args = parser.parse_args(argv)

    import numpy as np

    from bertsecrets.core import config
    from bertsecrets.store.queries import runs_with_maps
    from bertsecrets.core.errors import UserError
    from bertsecrets.ingest.analyses import driver, families, norms, reference
    from bertsecrets.ingest.analyses.stats import STATS
    from bertsecrets.store import Store

    try:
        store = Store.open(config.store_path(args.store))
        run_id = runs_with_maps(store, args.task)[-1]
    except UserError as exc:
        print(f"{exc} (the bench needs a store with an ingest of {args.task}: `just ingest {args.task} --model minilm`)")
        return 2
    reader = store.maps(run_id, "finetuned")
    n, heads = len(reader), reader.n_layers * reader.n_heads
    print(f"{args.task} dev: {n} inputs (mean {reader.lengths.mean():.0f} tokens), {reader.n_layers} layers x "
          f"{reader.n_heads} heads, 2 models: {2 * n * heads:,} maps; run {run_id}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    ann, spacy_wall, spacy_cpu = _timed(lambda: driver.annotations(store, run_id, n))
    sample = np.unique(np.linspace(0, n - 1, min(args.loop_examples, n)).astype(int)).tolist()
    # Rounds of vectorised then loop, so a machine busy with other work slows both alike; totals are compared.
    fast_wall = fast_cpu = slow_wall = slow_cpu = 0.0
    for round_ in range(1, args.rounds + 1):
        fast, wall, cpu = _timed(lambda: driver.bulk_pass(store, run_id, ann, statistics=True, resized=False))
        fast_wall, fast_cpu = fast_wall + wall / args.rounds, fast_cpu + cpu / args.rounds
        slow, wall_, cpu_ = _timed(lambda: reference.loop_pass(store, run_id, ann, sample))
        slow_wall, slow_cpu = slow_wall + wall_ / args.rounds, slow_cpu + cpu_ / args.rounds
        print(f"  round {round_}: vectorised {wall:.1f} s, loop {wall_:.1f} s on {len(sample)} inputs", flush=True)
    scale = n / len(sample)

    def same(a, b, atol):
        return np.allclose(a[:, sample] if a.ndim > 3 else a[sample], b[:, sample] if b.ndim > 3 else b[sample],
                           atol=atol, equal_nan=True)

    equal = (all(same(fast.stats[k], slow.stats[k], 1e-4) for k in STATS) and same(fast.features, slow.features, 1e-5)
             and same(fast.cls, slow.cls, 1e-5) and all(same(fast.relations[k], slow.relations[k], 1e-6) for k in fast.relations)
             and same(fast.geometry, slow.geometry, 1e-4) and same(fast.cosine, slow.cosine, 1e-5))

    print(f"  spaCy annotations      {spacy_wall:7.1f} s wall {spacy_cpu:7.1f} s CPU")
    print(f"  vectorised pass        {fast_wall:7.1f} s wall {fast_cpu:7.1f} s CPU   (all {n} inputs, mean of rounds)")
    print(f"  per-map loop           {slow_wall * scale:7.1f} s wall {slow_cpu * scale:7.1f} s CPU   "
          f"(measured on {len(sample)} inputs: {slow_wall:.1f} s, times {scale:.1f})")
    ratio = slow_wall * scale / fast_wall
    total = spacy_wall + fast_wall
    print(f"  same numbers on the sample: {'yes' if equal else 'NO'}")
    ok_ratio, ok_total = ratio >= RATIO_TARGET, total <= SECONDS_TARGET
    print(f"loop / vectorised: {ratio:.1f}x (CPU time {slow_cpu * scale / fast_cpu:.1f}x), target >= {RATIO_TARGET:g}: "
          f"{'PASS' if ok_ratio else 'FAIL'}")
    print(f"maps analysis (spaCy + pass): {total:.1f} s, target <= {SECONDS_TARGET:g} s: {'PASS' if ok_total else 'FAIL'}")
    # The steps beyond the paper, as the ingest runs them after the maps step (nothing written).
    readers, why = norms.readers_with_norms(store, run_id)
    if why:
        print(f"norms + flow: not measured ({why})")
        return 0 if ok_ratio and ok_total and equal else 1
    _, norms_wall, norms_cpu = _timed(lambda: norms.bulk_pass(readers, ann))
    others = [r["run_id"] for r in families.seed_siblings(store, run_id)]
    _, flow_wall, flow_cpu = _timed(lambda: families.flow_pass(store, run_id, ann, others))
    print(f"  norm-weighted analyses {norms_wall:7.1f} s wall {norms_cpu:7.1f} s CPU")
    print(f"  families and rollout   {flow_wall:7.1f} s wall {flow_cpu:7.1f} s CPU   "
          f"(stability against {len(others)} other seed(s))")
    extra = norms_wall + flow_wall
    ok_extra = extra <= EXTRA_TARGET
    print(f"analyses beyond the paper (norms + flow): {extra:.1f} s, target <= {EXTRA_TARGET:g} s: "
          f"{'PASS' if ok_extra else 'FAIL'}")
    return 0 if ok_ratio and ok_total and equal and ok_extra else 1
