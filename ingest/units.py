"""The units of work of an ingest on a cluster: each makes its own artifacts in the store, in any process that sees it.

A unit is a plain function of the store's path and what it works on (a plan,
a run id); it opens the store itself, writes only the files of its own
artifact (a run's folder and record, a map set, its catalog parts) and
returns something small; its last two arguments are where it tells what it
does (a console for lines, a progress for bars). ``ingest/cluster.py``
submits them to Dask with their dependencies as futures; nothing here knows
of Dask, so a unit runs the same in a test's own process.

- ``train``: fine-tune (resuming from the run's checkpoint) and evaluate one
  run; the fine-tuned run also stores its inputs' word pieces.
- ``maps``: one map set of the fine-tuned run (the pretrained set is shared
  by the seeds of a task: the first seed's unit makes it, the others' only
  record it).
- ``finish``: mark the fine-tuned run done once both map sets are.
- ``post_step``: a step of ``POST_STEPS`` for one run (the analyses).
- ``sweep_part``, ``write_sweep``, ``importance``, ``pruning``: the
  head-disabling step, its sweep cut into pieces (``sweep.slices``) whose
  logits the last unit joins, so the rows equal those of the step in one
  process.
"""

from __future__ import annotations

import copy
import time
import numpy as np
from rich.console import Console
from rich.progress import Progress

from bertsecrets.ingest.data import Split
from bertsecrets.ingest.plan import Plan, code_version
from bertsecrets.store import Store

#: Seconds a unit waits for a lock still held by a process of a stopped cluster (it exits within moments).
LOCK_WAIT = 60.0


def without_training_data(plan: Plan) -> Plan:
    """The plan with no training texts, for units that never train: less to send to every worker."""
    light = copy.copy(plan)
    data = copy.copy(plan.data)  # keeps the computed fingerprint (the run ids are made from it)
    train = plan.data.train
    data.train = Split([], None if train.texts_b is None else [], train.labels[:0])
    light.data = data
    return light


def _work(root: str, plan: Plan, console: Console, progress: Progress):
    from bertsecrets.ingest import steps  # torch

    work = steps.Work(Store.open(root), plan, console, code_version())
    work.progress = progress
    return work


def train(root: str, plan: Plan, setup: str, console: Console, progress: Progress) -> str:
    """Fine-tune (unless ``no_finetuning``) and evaluate one run of the plan."""
    _work(root, plan, console, progress).train(setup, wait=LOCK_WAIT)
    return plan.run_ids[setup]


def maps(root: str, plan: Plan, role: str, console: Console, progress: Progress) -> str:
    """One map set of the plan's fine-tuned run."""
    _work(root, plan, console, progress).maps(role, wait=LOCK_WAIT)
    return plan.map_ids[role]


def finish(root: str, plan: Plan, setup: str, console: Console, progress: Progress) -> str:
    """Mark a run done, once the units it waits for have made their parts."""
    _work(root, plan, console, progress).finish(setup, wait=LOCK_WAIT)
    return plan.run_ids[setup]


def post_step(root: str, plan: Plan, name: str, console: Console, progress: Progress) -> str:
    """One of ``POST_STEPS`` (by its ``NAME``) for the plan's fine-tuned run."""
    from bertsecrets.ingest.pipeline import POST_STEPS

    step = next(s for s in POST_STEPS if s.NAME == name)
    step.run(Store.open(root), plan, console, progress)
    return name


def sweep_part(root: str, run_id: str, part: int, pieces: int, device: str, batch_size: int, console: Console,
               progress: Progress) -> tuple[np.ndarray, float]:
    """The logits of piece ``part`` of ``pieces`` of a run's head-disabling sweep, and the seconds they took."""
    from bertsecrets.ingest import ablation

    started = time.perf_counter()
    logits = ablation.sweep_part(Store.open(root), run_id, part, pieces, progress, device, batch_size)
    return logits, time.perf_counter() - started


def write_sweep(root: str, run_id: str, pieces: int, parts: list[tuple[np.ndarray, float]], console: Console,
                progress: Progress) -> str:
    """The ``ablation`` rows of a run from its sweep's pieces, in the order of ``ablation.sweep_parts``."""
    from bertsecrets.ingest import ablation

    store = Store.open(root)
    record = store.run(run_id)
    chosen = ablation.sweep_parts(int(record["n_layers"]), int(record["n_heads"]), pieces)
    if len(chosen) != len(parts):
        raise ValueError(f"the sweep of run {run_id} has {len(chosen)} pieces, got {len(parts)}")
    logits = np.zeros((sum(len(c) for c in chosen), *parts[0][0].shape[1:]), dtype=np.float32)
    for configs, (part, _) in zip(chosen, parts):
        logits[configs] = part
    labels = ablation.dev_labels(store, run_id)
    with store.lock(f"ablation-{run_id}-ablation", f"the ablation rows of run {run_id}", wait=LOCK_WAIT):
        ablation.write_sweep(store, record, logits, labels, console, sum(s for _, s in parts))
    return run_id


def importance(root: str, run_id: str, device: str, batch_size: int, console: Console, progress: Progress) -> str:
    """A run's head importance (Michel et al.)."""
    from bertsecrets.ingest import ablation

    store = Store.open(root)
    prepared = ablation.prepare(store, run_id, device, batch_size)
    with store.lock(f"ablation-{run_id}-importance", f"the head importance of run {run_id}", wait=LOCK_WAIT):
        ablation.write_importance(store, store.run(run_id), prepared, console, progress, batch_size)
    return run_id


def pruning(root: str, run_id: str, device: str, batch_size: int, console: Console, progress: Progress) -> str:
    """A run's pruning curve (after its head importance)."""
    from bertsecrets.ingest import ablation

    store = Store.open(root)
    prepared = ablation.prepare(store, run_id, device, batch_size)
    with store.lock(f"ablation-{run_id}-pruning", f"the pruning curve of run {run_id}", wait=LOCK_WAIT):
        ablation.write_pruning(store, store.run(run_id), prepared, console, progress)
    return run_id


__all__ = ["LOCK_WAIT", "finish", "importance", "maps", "post_step", "pruning", "sweep_part", "train",
           "without_training_data", "write_sweep"]
