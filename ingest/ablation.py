"""Disabling heads and layers (paper section 4.6): the sweep, its confidence intervals, head importance, pruning.

For a fine-tuned run, on its dev set as the store holds it:

- ``ablation``: the baseline, every single head and every whole layer
  disabled (their maps made uniform over the real tokens), each with the
  task's metrics, the difference to the baseline, a 95% paired bootstrap
  interval of that difference, the predictions that changed, and the mean dev
  loss. A ``random_head`` row holds the mean over single heads: the expected
  effect of disabling a head picked at random, with its own interval.
- ``head_importance``: Michel et al.'s gradient importance (``ingest/importance.py``).
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
`bertsecrets ablate`. This module imports torch only inside the functions that
compute, so the ingest's check for finished work stays instant.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bertsecrets.core.errors import UserError
from bertsecrets.ingest import metrics
from bertsecrets.ingest.progress import fmt_seconds
from bertsecrets.core.stats import rho_text, spearman
from bertsecrets.core.tasks import Task, get_task
from bertsecrets.store import Store, StoreError
from bertsecrets.store.queries import finetuned_run

if TYPE_CHECKING:
    from bertsecrets.ingest.pipeline import Plan

NAME = "ablation"
#: The tables this step writes, one part per fine-tuned run.
TABLES = ("ablation", "head_importance", "pruning")
N_BOOT = 1000
BOOT_SEED = 0
PRUNE_FRACTIONS = tuple(round(0.1 * i, 1) for i in range(10))  # 0.0 (the baseline) .. 0.9

#: What the paper reports (bert-base-uncased, % points), by task and summary row.
PAPER = {
    "mrpc": {"best head": "+1.2", "random head": "> 0"},
    "sts-b": {"best head": "+0.1"},
    "rte": {"random head": "> 0", "best layer": "+3.2 (layer 1)"},
}


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


# -- paired bootstrap ------------------------------------------------------------


def resample_indices(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """[resample, draw]: dev examples drawn with replacement, the same for every configuration."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def resample_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """[resample, example]: how often each example was drawn."""
    offsets = draws + n * np.arange(len(draws))[:, None]
    return np.bincount(offsets.ravel(), minlength=len(draws) * n).reshape(len(draws), n).astype(np.float64)


def _weighted_pearson(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[resample]: Pearson's r of x and y over each resample (weights = counts); NaN where one is constant."""
    n = w.sum(1, keepdims=True)
    dx = x - (w * x).sum(1, keepdims=True) / n
    dy = y - (w * y).sum(1, keepdims=True) / n
    vx, vy = (w * dx * dx).sum(1), (w * dy * dy).sum(1)
    # A constant resample leaves rounding dust instead of an exact 0 variance.
    tiny = 1e-12 * np.maximum((w * x * x).sum(1), (w * y * y).sum(1)) + 1e-300
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * dx * dy).sum(1) / np.sqrt(vx * vy)
    return np.where((vx <= tiny) | (vy <= tiny), np.nan, r)


def _resampled_ranks(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """[resample, example]: each example's average rank (from 1) within each resample, as scipy ranks ties."""
    order = np.argsort(x, kind="stable")
    new_value = np.r_[True, x[order][1:] != x[order][:-1]]
    starts = np.flatnonzero(new_value)
    per_value = np.add.reduceat(w[:, order], starts, axis=1)  # [resample, distinct value]
    ranks_of_value = np.cumsum(per_value, axis=1) - per_value + (per_value + 1) / 2
    ranks = np.empty_like(w)
    ranks[:, order] = ranks_of_value[:, np.cumsum(new_value) - 1]
    return ranks


def resampled_metric(metric: str, preds: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[resample, config]: ``metric`` of each configuration's predictions ``[config, example]`` on each resample.

    Equal to ``ingest.metrics.compute`` on the resampled examples, computed
    from the draw counts for all resamples at once.
    """
    if metric == "accuracy":
        return counts @ (preds == labels).T / labels.size
    if metric == "f1":
        pred_pos, true_pos = preds == 1, labels == 1
        tp = counts @ (pred_pos & true_pos).T
        wrong = counts @ (pred_pos & ~true_pos).T + counts @ (~pred_pos & true_pos).T
        denominator = 2 * tp + wrong
        return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    if metric == "pearson":
        return np.stack([_weighted_pearson(counts, p, labels) for p in preds], axis=1)
    if metric == "spearman":
        label_ranks = _resampled_ranks(counts, labels)
        return np.stack([_weighted_pearson(counts, _resampled_ranks(counts, p), label_ranks) for p in preds], axis=1)
    raise ValueError(f"no bootstrap for metric {metric!r}")


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
    import torch

    from bertsecrets.ingest.importance import example_losses
    from bertsecrets.ingest.sweep import Sweep, load_run
    from bertsecrets.ingest.train import pick_device

    torch_device = pick_device(device)
    model, data, labels = load_run(store, record, torch_device)
    targets = torch.as_tensor(labels)
    regression = get_task(record["task"]).label_kind == "regression"

    def mean_losses(logits: np.ndarray) -> np.ndarray:
        return np.array([float(example_losses(torch.from_numpy(lg), targets, regression).mean()) for lg in logits])

    return Sweep(model, data, torch_device, batch_size), labels, mean_losses


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
        from bertsecrets.ingest.importance import head_importance

        task = get_task(record["task"])
        sweep, labels, mean_losses = _prepare(store, record, device, batch_size)
        data = sweep.data
        if "ablation" in missing:
            configs, masks = sweep_configs(*sweep.shape)
            started = time.perf_counter()
            logits = sweep.fast(masks, _bar(progress, f"disabling heads and layers ({len(configs)} configurations)", len(data)))
            seconds = time.perf_counter() - started
            store.catalog.write("ablation", run_id, ablation_rows(run_id, task, configs, logits, mean_losses(logits), labels, n_boot))
            console.print(f"  [green]✓[/] {len(configs)} configurations (baseline, {masks.shape[1] * masks.shape[2]} heads, "
                          f"{masks.shape[1]} layers) on {len(data)} dev examples in {fmt_seconds(seconds)}")
        if "head_importance" in missing:
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
        if "pruning" in missing:
            stored = store.rows("SELECT importance FROM head_importance WHERE run_id = ? ORDER BY layer, head", [run_id])
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


def evaluate_disabled(store: Store, run_id: str, mask: np.ndarray, console: Console, device: str = "auto",
                      batch_size: int = 32, n_boot: int = N_BOOT) -> list[dict[str, Any]]:
    """One configuration against the baseline, printed and returned (not stored)."""
    from bertsecrets.ingest.progress import make_progress

    record = finetuned_run(store, run_id)
    task = get_task(record["task"])
    sweep, labels, mean_losses = _prepare(store, record, device, batch_size)
    with make_progress(console) as progress:
        logits = sweep.fast(np.stack([np.zeros_like(mask), mask]), _bar(progress, "evaluating", len(labels)))
    rows = ablation_rows(run_id, task, [Config("baseline"), Config("custom")], logits, mean_losses(logits), labels, n_boot)
    heads = ", ".join(f"L{layer + 1} H{head + 1}" for layer, head in zip(*np.nonzero(mask)))
    table = Table(title=f"{task.title} dev, run {run_id}: disabled {heads} (% points, 95% paired bootstrap interval)")
    for column in ("metric", "baseline", "disabled", "Δ", "95% CI", "changed"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for base, row in zip(rows[0::2], rows[1::2]):
        table.add_row(row["metric"], _pct(base["value"]), _pct(row["value"]), _pct(row["delta"], sign=True),
                      _interval(row), "-" if row["changed"] is None else str(row["changed"]))
    console.print(table)
    console.print(f"dev loss {rows[0]['loss']:.4f} -> {rows[1]['loss']:.4f} ({rows[1]['loss_delta']:+.4f})")
    return rows


# -- the ingest step ----------------------------------------------------------------


def done(store: Store, plan: "Plan") -> bool:
    if "finetuned" not in plan.settings.setups:
        return True
    run_id = plan.run_ids["finetuned"]
    return all(store.catalog.has_part(table, run_id) for table in TABLES)


def run(store: Store, plan: "Plan", console: Console, progress: Progress) -> None:
    s = plan.settings
    console.print("[bold]disabling heads and layers[/] (paper section 4.6)")
    ablate(store, plan.run_ids["finetuned"], console, progress, s.device, min(s.eval_batch_size, 32))
    print_summary(console, store, plan.run_ids["finetuned"])


# -- summaries -------------------------------------------------------------------------


def _pct(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}"


def _interval(row: dict[str, Any]) -> str:
    if row["ci_low"] is None:
        return "-"
    return f"[{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]"


def _describe(label: str, row: dict[str, Any]) -> str:
    """``best head L4 H1``, ``best layer 1``: a summary row's label with what it disabled, 1-indexed."""
    if row["kind"] == "head":
        return f"{label} L{row['layer'] + 1} H{row['head'] + 1}"
    if row["kind"] == "layer":
        return f"{label} {row['layer'] + 1}"
    return label


def _rank_key(row: dict[str, Any]) -> tuple[float, float]:
    """Larger is better: the main metric's difference, then a smaller loss increase."""
    return (-math.inf if row["delta"] is None else row["delta"], -(row.get("loss_delta") or 0.0))


def summary_rows(rows: list[dict[str, Any]], main: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, main-metric row): baseline, best and worst head, random head, best and worst layer."""
    main_rows = [r for r in rows if r["metric"] == main]
    of = {kind: [r for r in main_rows if r["kind"] == kind] for kind in ("baseline", "head", "layer", "random_head")}
    out = [("baseline", of["baseline"][0])]
    if of["head"]:
        out += [("best head", max(of["head"], key=_rank_key)), ("worst head", min(of["head"], key=_rank_key))]
    out += [("random head", r) for r in of["random_head"]]
    if of["layer"]:
        out += [("best layer", max(of["layer"], key=_rank_key)), ("worst layer", min(of["layer"], key=_rank_key))]
    return out


def print_summary(console: Console, store: Store, run_id: str) -> None:
    """The paper's summary numbers for one run, beside the paper's, from the store (no torch)."""
    record = store.run(run_id)
    rows = store.rows("SELECT * FROM ablation WHERE run_id = ?", [run_id])
    if record is None or not rows:
        return
    task = get_task(record["task"])
    main = task.main_metric
    by_key = {(r["kind"], r["layer"], r["head"], r["metric"]): r for r in rows}
    n = rows[0]["n_examples"]
    table = Table(title=f"{task.title} dev ({n} examples) with heads disabled: {record['model_used']}, seed "
                        f"{record['seed']}, run {run_id}; % points, 95% paired bootstrap interval; paper: bert-base-uncased")
    others = [m for m in task.metrics if m != main]
    table.add_column("disabled")
    table.add_column(main, justify="right")
    table.add_column(f"Δ {main} [95% CI]", justify="right")
    for metric in others:
        table.add_column(f"{metric} (Δ)", justify="right")
    for column in ("changed", "Δ loss", "paper Δ"):
        table.add_column(column, justify="right")
    for label, row in summary_rows(rows, main):
        baseline = row["kind"] == "baseline"
        cells = [_pct(row["value"]), "" if baseline else f"{_pct(row['delta'], True)} {_interval(row)}"]
        for metric in others:
            other = by_key[(row["kind"], row["layer"], row["head"], metric)]
            cells.append(_pct(other["value"]) + ("" if baseline else f" ({_pct(other['delta'], True)})"))
        table.add_row(_describe(label, row), *cells, "-" if row["changed"] is None else str(row["changed"]),
                      "" if baseline else f"{row['loss_delta']:+.3f}", PAPER.get(task.name, {}).get(label, ""))
    console.print(table)
    heads = [r for r in rows if r["kind"] == "head" and r["metric"] == main and r["ci_low"] is not None]
    helps = sum(r["ci_low"] > 0 for r in heads)
    hurts = sum(r["ci_high"] < 0 for r in heads)
    console.print(f"heads whose 95% interval of Δ {main} excludes 0: {helps} help, {hurts} hurt, of {len(heads)}")
    _print_importance(console, store, run_id, main)


def _print_importance(console: Console, store: Store, run_id: str, main: str) -> None:
    joined = store.rows(
        "SELECT i.layer, i.head, i.importance, a.delta, a.loss_delta FROM head_importance i "
        "JOIN ablation a ON a.run_id = i.run_id AND a.layer = i.layer AND a.head = i.head "
        "WHERE i.run_id = ? AND a.kind = 'head' AND a.metric = ? ORDER BY i.rank", [run_id, main],
    )
    if len(joined) > 2:
        importance = [r["importance"] for r in joined]
        loss_rho = spearman(importance, [r["loss_delta"] for r in joined])
        drop_rho = spearman(importance, [-(r["delta"] or 0.0) for r in joined])
        top = ", ".join(f"L{r['layer'] + 1} H{r['head'] + 1}" for r in joined[:3])
        console.print(f"head importance (Michel et al. 2019), most important {top}; Spearman ρ with the effect of "
                      f"disabling the head: {rho_text(loss_rho)} (loss increase), {rho_text(drop_rho)} ({main} drop)")
    curve = store.rows("SELECT fraction, value FROM pruning WHERE run_id = ? AND metric = ? ORDER BY fraction", [run_id, main])
    if curve:
        points = " · ".join(f"{100 * r['fraction']:.0f}% {_pct(r['value'])}" for r in curve)
        console.print(f"pruning, least important heads first ({main}): {points}")


# -- seeds -------------------------------------------------------------------------------


def settings_of(record: dict[str, Any], store: Store):
    """The ingest settings that made a run, pointed at ``store``."""
    from bertsecrets.ingest.pipeline import IngestSettings

    saved = json.loads(record["settings_json"])
    names = {f.name for f in fields(IngestSettings)}
    values = {k: v for k, v in saved.items() if k in names}
    values["setups"] = tuple(values.get("setups", ("finetuned",)))
    return IngestSettings(**{**values, "store": str(store.root)})


def ablate_seeds(store: Store, run_id: str, n_seeds: int, console: Console, device: str = "auto",
                 batch_size: int = 32, n_boot: int = N_BOOT, redo: bool = False) -> str:
    """Fine-tune ``n_seeds`` seeds (from the run's on) like ``run_id``, sweep each, and store mean and std across them."""
    from bertsecrets.ingest.pipeline import ingest, make_plan
    from bertsecrets.ingest.progress import make_progress

    record = finetuned_run(store, run_id)
    settings = settings_of(record, store)
    if make_plan(settings).run_ids["finetuned"] != run_id:
        raise UserError(f"the settings of run {run_id} no longer give the same run (its data or model changed); "
                        f"seeds can only be added to a run made with today's data and model")
    run_ids = []
    for seed in range(record["seed"], record["seed"] + n_seeds):
        console.rule(f"seed {seed}")
        plan = ingest(replace(settings, seed=seed, setups=("finetuned",), device=device), console)
        seed_run = plan.run_ids["finetuned"]
        if redo or not all(store.catalog.has_part(t, seed_run) for t in TABLES):
            with make_progress(console) as progress:
                ablate(store, seed_run, console, progress, device, batch_size, n_boot, redo)
        run_ids.append(seed_run)
    key = write_seed_table(store, record, run_ids)
    print_seeds(console, store, key)
    return key


def write_seed_table(store: Store, record: dict[str, Any], run_ids: list[str]) -> str:
    """Mean and standard deviation across the runs of each configuration's metrics -> ``ablation_seeds``.

    The rows are keyed by the experiment of ``record``, the run the seeds start
    from, so its latest aggregation replaces an earlier one (e.g. 3 seeds, then 5).
    """
    key = record["experiment_id"]
    seeds = store.rows("SELECT run_id, seed FROM runs WHERE list_contains(?, run_id)", [run_ids])
    seed_of = {r["run_id"]: r["seed"] for r in seeds}
    rows = store.rows(
        "SELECT kind, layer, head, metric, avg(value) AS mean, stddev_samp(value) AS std, "
        "avg(delta) AS delta_mean, stddev_samp(delta) AS delta_std, count(*) AS n_seeds "
        "FROM ablation WHERE list_contains(?, run_id) GROUP BY ALL ORDER BY ALL", [run_ids],
    )
    common = {"experiment_id": key, "task": record["task"], "model": record["model_used"],
              "seeds": ",".join(str(seed_of[r]) for r in run_ids), "run_ids": ",".join(run_ids)}
    store.catalog.write("ablation_seeds", key, [{**common, **r} for r in rows])
    return key


def print_seeds(console: Console, store: Store, key: str) -> None:
    """Baseline and the summary configurations across seeds: is a head's effect more than seed noise?"""
    rows = store.rows("SELECT * FROM ablation_seeds WHERE experiment_id = ?", [key])
    if not rows:
        raise StoreError(f"no ablation_seeds rows for {key}")
    task = get_task(rows[0]["task"])
    main = task.main_metric
    mean_rows = [{**r, "delta": r["delta_mean"]} for r in rows]
    table = Table(title=f"{task.title} dev across seeds {rows[0]['seeds']} ({rows[0]['model']}): mean ± std "
                        f"(% points; ranked by mean Δ {main})")
    table.add_column("disabled")
    table.add_column(main, justify="right")
    table.add_column(f"Δ {main}", justify="right")
    first = rows[0]["run_ids"].split(",")[0]
    chosen = [(label, r) for label, r in summary_rows(store.rows("SELECT * FROM ablation WHERE run_id = ?", [first]), main)
              if label in ("best head", "best layer")]
    by_key = {(r["kind"], r["layer"], r["head"], r["metric"]): r for r in mean_rows}
    first_seed = rows[0]["seeds"].split(",")[0]
    shown = summary_rows(mean_rows, main) + [
        (f"seed {first_seed}'s {label}", by_key[(r["kind"], r["layer"], r["head"], main)]) for label, r in chosen
    ]
    for label, row in shown:
        spread = "" if row["std"] is None else f" ± {100 * row['std']:.1f}"
        delta_spread = "" if row["delta_std"] is None else f" ± {100 * row['delta_std']:.1f}"
        table.add_row(_describe(label, row), f"{_pct(row['mean'])}{spread}",
                      "" if row["kind"] == "baseline" else f"{_pct(row['delta_mean'], True)}{delta_spread}")
    console.print(table)
