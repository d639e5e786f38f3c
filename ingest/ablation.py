"""Disabling heads and layers (paper section 4.6): the sweep, its confidence intervals, head importance, pruning.

For a fine-tuned run, on its dev set as the store holds it:

- ``ablation``: the baseline, every single head and every whole layer
  disabled (their maps made uniform over the real tokens), each with the
  task's metrics, the difference to the baseline, a 95% paired bootstrap
  interval of that difference, the predictions that changed, and the mean dev
  loss. A ``random_head`` row holds the mean over single heads: the expected
  effect of disabling a head picked at random, with its own interval.
- ``head_importance``: Michel et al.'s gradient importance (``importance.py``).
- ``pruning``: the metrics with the least important 0%, 10%, ..., 90% of the
  heads disabled together.

Choices the paper leaves open:

- The dev inputs are the first ``max_examples`` of the dev split (default
  1000, the paper's "at most 1000 examples per task"; all of MRPC's 408), the
  ones whose maps are stored. On bigger dev sets (QQP, MNLI) the baseline is
  then that subset's metric, not Table 1's.
- Intervals: 1000 resamples of the dev examples with replacement, drawn once
  from a fixed seed and shared by every configuration (so the difference is
  paired, example by example); the 2.5th and 97.5th percentiles of the
  resampled difference. The mean over heads uses the same resamples.
- "Best" and "worst" rank by the difference of the task's main metric (MRPC:
  F1), ties broken by the change in dev loss, a continuous measure.
- Regression tasks (STS-B) have no "changed predictions": NULL.

Runs as a step of `bertsecrets ingest` (``POST_STEPS``) and alone as
`bertsecrets ablate`. The intervals come from ``bootstrap.py``, several seeds
from ``seeds.py``; the CLI prints the results. This module imports torch only
inside the functions that compute, so the ingest's check for finished work
stays instant.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import Task, get_task
from bertsecrets.ingest import metrics
from bertsecrets.ingest.bootstrap import N_BOOT, resample_counts, resample_indices, resampled_metric
from bertsecrets.ingest.progress import fmt_seconds
from bertsecrets.store import Store
from bertsecrets.store import queries
from bertsecrets.store.queries import finetuned_run

if TYPE_CHECKING:
    from bertsecrets.ingest.plan import Plan

NAME = "ablation"
#: The tables this step writes, one part per fine-tuned run.
TABLES = ("ablation", "head_importance", "pruning")
PRUNE_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))  # 0.0 (the baseline) .. 0.9

# -- configurations ------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One configuration of the sweep; layer and head 0-indexed."""

    kind: str  # baseline | head | layer | custom
    layer: int | None = None
    head: int | None = None


def sweep_configs(n_layers: int, n_heads: int) -> tuple[list[Config], np.ndarray]:
    """The baseline, every head, every layer; and their masks ``[config, layer, head]``."""
    configs = [Config("baseline")]
    configs += [Config("head", layer, head) for layer in range(n_layers) for head in range(n_heads)]
    configs += [Config("layer", layer) for layer in range(n_layers)]
    masks = np.zeros((len(configs), n_layers, n_heads), dtype=bool)
    for i, config in enumerate(configs):
        if config.kind == "head":
            masks[i, config.layer, config.head] = True
        elif config.kind == "layer":
            masks[i, config.layer] = True
    return configs, masks


def parse_disable(spec: str, n_layers: int, n_heads: int) -> np.ndarray:
    """``"4:1,2:12"`` (LAYER:HEAD) and ``"3"`` (all heads of layer 3), 1-indexed, as a mask ``[layer, head]``."""
    mask = np.zeros((n_layers, n_heads), dtype=bool)
    shape = f"the model has {n_layers} layers of {n_heads} heads, numbered from 1"
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items:
        raise UserError("--disable needs heads as LAYER:HEAD or whole layers as LAYER, e.g. 4:1,2:12 or 3")
    for item in items:
        layer_text, colon, head_text = item.partition(":")
        try:
            layer = int(layer_text)
            head = int(head_text) if colon else None
        except ValueError:
            raise UserError(f"--disable {item!r}: expected LAYER:HEAD or LAYER, whole numbers from 1, e.g. 4:1 or 3") from None
        if not 1 <= layer <= n_layers:
            raise UserError(f"--disable {item}: layer {layer} does not exist; {shape}")
        if head is not None and not 1 <= head <= n_heads:
            raise UserError(f"--disable {item}: head {head} does not exist; {shape}")
        mask[layer - 1, slice(None) if head is None else head - 1] = True
    return mask


def pruning_masks(importance: np.ndarray, fractions=PRUNE_FRACTIONS) -> tuple[list[int], np.ndarray]:
    """How many heads, and the masks that disable that many least important heads (ties: lower layer, head first)."""
    order = np.argsort(importance.ravel(), kind="stable")
    counts = [int(round(f * importance.size)) for f in fractions]
    masks = np.zeros((len(counts), importance.size), dtype=bool)
    for i, k in enumerate(counts):
        masks[i, order[:k]] = True
    return counts, masks.reshape(len(counts), *importance.shape)


def _number(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def ablation_rows(run_id: str, task: Task, configs: list[Config], logits: np.ndarray, losses: np.ndarray,
                  labels: np.ndarray, n_boot: int = N_BOOT) -> list[dict[str, Any]]:
    """The ``ablation`` rows of a sweep: configuration 0 is the baseline; ``losses[config]`` the mean dev loss."""
    preds = np.stack([metrics.predictions(task, lg) for lg in logits])
    n = labels.size
    counts = resample_counts(resample_indices(n, n_boot), n)
    changed = None if task.label_kind == "regression" else (preds != preds[0]).sum(1)
    heads = [i for i, c in enumerate(configs) if c.kind == "head"]
    scores = [metrics.compute(task, p, labels) for p in preds]
    rows = []
    for metric in task.metrics:
        value = np.array([np.nan if s[metric] is None else s[metric] for s in scores])
        resampled = resampled_metric(metric, preds, labels, counts)
        delta = resampled - resampled[:, :1]
        with np.errstate(invalid="ignore"):
            low, high = np.nanpercentile(delta, [2.5, 97.5], axis=0)
        common = {"run_id": run_id, "metric": metric, "n_examples": n}
        for i, config in enumerate(configs):
            rows.append({
                **common, "kind": config.kind, "layer": config.layer, "head": config.head,
                "value": _number(value[i]), "delta": _number(value[i] - value[0]),
                "ci_low": _number(low[i]), "ci_high": _number(high[i]),
                "changed": None if changed is None else int(changed[i]),
                "loss": float(losses[i]), "loss_delta": float(losses[i] - losses[0]),
            })
        if heads:
            mean_low, mean_high = np.nanpercentile(delta[:, heads].mean(1), [2.5, 97.5])
            rows.append({
                **common, "kind": "random_head", "layer": None, "head": None,
                "value": _number(value[heads].mean()), "delta": _number(value[heads].mean() - value[0]),
                "ci_low": _number(mean_low), "ci_high": _number(mean_high), "changed": None,
                "loss": float(losses[heads].mean()), "loss_delta": float(losses[heads].mean() - losses[0]),
            })
    return rows


# -- the run -------------------------------------------------------------------------


def _prepare(store: Store, record: dict[str, Any], device: str, batch_size: int):
    """The torch side of one run: its sweep, the dev labels, and the mean dev loss of each configuration's logits."""
    from bertsecrets.ingest.sweep import Sweep, load_run
    from bertsecrets.ingest.train import pick_device

    torch_device = pick_device(device)
    model, data, labels = load_run(store, record, torch_device)
    return Sweep(model, data, torch_device, batch_size), labels, _mean_losses(record, labels)


def _mean_losses(record: dict[str, Any], labels: np.ndarray):
    """The function from logits ``[config, example, label]`` to each configuration's mean dev loss."""
    import torch

    from bertsecrets.ingest.importance import example_losses

    targets = torch.as_tensor(labels)
    regression = get_task(record["task"]).label_kind == "regression"

    def mean_losses(logits: np.ndarray) -> np.ndarray:
        return np.array([float(example_losses(torch.from_numpy(lg), targets, regression).mean()) for lg in logits])

    return mean_losses


def _bar(progress: Progress, description: str, total: int):
    task_id = progress.add_task(description, total=total, info="")
    return lambda n: progress.update(task_id, advance=n)


def ablate(store: Store, run_id: str, console: Console, progress: Progress, device: str = "auto",
           batch_size: int = 32, n_boot: int = N_BOOT, redo: bool = False) -> None:
    """Compute and store the tables this step owns for one fine-tuned run (those missing, or all with ``redo``)."""
    record = finetuned_run(store, run_id)
    missing = [t for t in TABLES if redo or not store.catalog.has_part(t, run_id)]
    if not missing:
        return
    with store.lock(f"ablation-{run_id}", f"the ablation of run {run_id}"):
        prepared = _prepare(store, record, device, batch_size)
        if "ablation" in missing:
            started = time.perf_counter()
            configs, masks = sweep_configs(*prepared[0].shape)
            logits = prepared[0].fast(masks, _bar(progress, f"disabling heads and layers ({len(configs)} configurations)",
                                                  len(prepared[0].data)))
            write_sweep(store, record, logits, prepared[1], console, time.perf_counter() - started, n_boot)
        if "head_importance" in missing:
            write_importance(store, record, prepared, console, progress, batch_size)
        if "pruning" in missing:
            write_pruning(store, record, prepared, console, progress)


# -- its pieces, each a unit of work of its own on a cluster (``ingest/units.py``) ------------------


def sweep_part(store: Store, run_id: str, part: int, pieces: int, progress: Progress, device: str = "auto",
               batch_size: int = 32) -> np.ndarray:
    """The logits ``[config, example, label]`` of piece ``part`` of the sweep cut in ``pieces`` (``sweep_parts``)."""
    sweep = _prepare(store, finetuned_run(store, run_id), device, batch_size)[0]
    configs, masks = sweep_configs(*sweep.shape)
    chosen = sweep_parts(*sweep.shape, pieces)[part]
    return sweep.fast(masks[chosen], _bar(progress, f"disabling heads and layers (piece {part + 1} of {pieces}, "
                                                    f"{len(chosen)} configurations)", len(sweep.data)))


def sweep_parts(n_layers: int, n_heads: int, pieces: int | None = None) -> list[np.ndarray]:
    """The configurations of each piece of the sweep of a model of that shape (``sweep.slices``)."""
    from bertsecrets.ingest.sweep import slices

    return slices(sweep_configs(n_layers, n_heads)[1], pieces)


def write_sweep(store: Store, record: dict[str, Any], logits: np.ndarray, labels: np.ndarray, console: Console,
                seconds: float, n_boot: int = N_BOOT) -> None:
    """The ``ablation`` rows of a run from the logits of every configuration of its sweep (no model needed)."""
    run_id, task = record["run_id"], get_task(record["task"])
    configs, masks = sweep_configs(int(record["n_layers"]), int(record["n_heads"]))
    rows = ablation_rows(run_id, task, configs, logits, _mean_losses(record, labels)(logits), labels, n_boot)
    store.catalog.write("ablation", run_id, rows)
    console.print(f"  [green]✓[/] {len(configs)} configurations (baseline, {masks.shape[1] * masks.shape[2]} heads, "
                  f"{masks.shape[1]} layers) on {len(labels)} dev examples in {fmt_seconds(seconds)}")


def dev_labels(store: Store, run_id: str) -> np.ndarray:
    """The gold labels of the dev inputs the sweep of a finished fine-tuned run uses."""
    from bertsecrets.ingest.sweep import dev_split

    return dev_split(store, finetuned_run(store, run_id)).labels


def write_importance(store: Store, record: dict[str, Any], prepared, console: Console, progress: Progress,
                     batch_size: int = 32) -> None:
    """The ``head_importance`` rows of a run: one backward pass over its dev inputs."""
    from bertsecrets.ingest.importance import head_importance

    sweep, labels, _ = prepared
    run_id, data = record["run_id"], sweep.data
    started = time.perf_counter()
    importance = head_importance(sweep.model, data, labels, sweep.device, batch_size,
                                 _bar(progress, "head importance (one backward pass)", len(data)))
    order = np.argsort(-importance.ravel(), kind="stable")
    rank = np.empty(importance.size, dtype=int)
    rank[order] = np.arange(1, importance.size + 1)
    store.catalog.write("head_importance", run_id, [
        {"run_id": run_id, "layer": layer, "head": head, "importance": float(importance[layer, head]),
         "rank": int(rank[layer * importance.shape[1] + head])}
        for layer in range(importance.shape[0]) for head in range(importance.shape[1])
    ])
    console.print(f"  [green]✓[/] head importance in {fmt_seconds(time.perf_counter() - started)}")


def write_pruning(store: Store, record: dict[str, Any], prepared, console: Console, progress: Progress) -> None:
    """The ``pruning`` rows of a run, from its stored head importance."""
    sweep, labels, _ = prepared
    run_id, task, data = record["run_id"], get_task(record["task"]), sweep.data
    stored = queries.head_importance(store, run_id)
    importance = np.array([r["importance"] for r in stored]).reshape(sweep.shape)
    counts, masks = pruning_masks(importance)
    started = time.perf_counter()
    logits = sweep.fast(masks, _bar(progress, f"pruning curve ({len(counts)} points)", len(data)))
    rows = []
    for fraction, k, lg in zip(PRUNE_FRACTIONS, counts, logits):
        scores = metrics.compute(task, metrics.predictions(task, lg), labels)
        rows += [{"run_id": run_id, "fraction": fraction, "n_disabled": k, "metric": m, "value": scores[m]}
                 for m in task.metrics]
    store.catalog.write("pruning", run_id, rows)
    console.print(f"  [green]✓[/] pruning curve in {fmt_seconds(time.perf_counter() - started)}")


def prepare(store: Store, run_id: str, device: str = "auto", batch_size: int = 32):
    """What the pieces above need of a finished fine-tuned run: its sweep, dev labels and loss function."""
    return _prepare(store, finetuned_run(store, run_id), device, batch_size)


# -- the ingest step ----------------------------------------------------------------


def evaluate_disabled(store: Store, run_id: str, mask: np.ndarray, progress: Progress, device: str = "auto",
                      batch_size: int = 32, n_boot: int = N_BOOT) -> list[dict[str, Any]]:
    """One configuration (``mask[layer, head]``) against the baseline: its ``ablation`` rows, not stored."""
    record = finetuned_run(store, run_id)
    task = get_task(record["task"])
    sweep, labels, mean_losses = _prepare(store, record, device, batch_size)
    logits = sweep.fast(np.stack([np.zeros_like(mask), mask]), _bar(progress, "evaluating", len(labels)))
    return ablation_rows(run_id, task, [Config("baseline"), Config("custom")], logits, mean_losses(logits), labels, n_boot)


def done(store: Store, plan: "Plan") -> bool:
    if "finetuned" not in plan.settings.setups:
        return True
    run_id = plan.run_ids["finetuned"]
    return all(store.catalog.has_part(table, run_id) for table in TABLES)


def run(store: Store, plan: "Plan", console: Console, progress: Progress) -> None:
    s = plan.settings
    console.print("[bold]disabling heads and layers[/] (paper section 4.6)")
    ablate(store, plan.run_ids["finetuned"], console, progress, s.device, min(s.eval_batch_size, 32))
