"""The tables the commands print for people: Table 1, the head-disabling summary, seeds, one configuration.

Read from the store (no torch), so `bertsecrets ablate` prints stored results
at once. The writers in ``bertsecrets.ingest`` compute and store; they print
progress, not results.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bertsecrets.core.stats import rho_text, spearman
from bertsecrets.core.tasks import SETUPS, Task, get_task
from bertsecrets.ingest.progress import fmt_seconds
from bertsecrets.store import Store, StoreError, queries
from bertsecrets.store.findings import cut_note

#: What the paper reports (bert-base-uncased, % points), by task and summary row.
PAPER = {
    "mrpc": {"best head": "+1.2", "random head": "> 0"},
    "sts-b": {"best head": "+0.1"},
    "rte": {"random head": "> 0", "best layer": "+3.2 (layer 1)"},
}



def _metric_cells(task: Task, record: dict[str, Any] | None) -> list[str]:
    if record is None or record.get("status") != "done":
        return ["-" for _ in task.metrics]
    return ["-" if record.get(m) is None else f"{100 * record[m]:.1f}" for m in task.metrics]


def print_table1(console: Console, store: Store, plan) -> None:
    """The paper's Table 1 for this ingest: dev metrics of the three set-ups, beside the paper's."""
    task = plan.task
    cut = (f"; fine-tuned on the first {len(plan.data.train):,} training examples only"
           if plan.settings.max_train_examples else "")
    table = Table(title=f"Table 1: {task.title} dev, {escape(plan.model.used)}, seed {plan.settings.seed} (%){cut}",
                  caption="paper: bert-base-uncased, Kovaleva et al. 2019")
    table.add_column("set-up", no_wrap=True)
    for metric in task.metrics:
        table.add_column(metric, justify="right")
    table.add_column("paper (" + "/".join(task.metrics) + ")", justify="right")
    table.add_column("train time", justify="right", no_wrap=True)
    for setup in ("no_finetuning", "random_init", "finetuned"):
        if setup not in plan.settings.setups:
            continue
        record = store.run(plan.run_ids[setup])
        train = record.get("train_seconds") if record else None
        table.add_row(SETUPS[setup], *_metric_cells(task, record), task.paper(setup),
                      fmt_seconds(train) if setup != "no_finetuning" else "-")
    console.print(table)


def print_disabled(console: Console, store: Store, run_id: str, mask: np.ndarray, rows: list[dict[str, Any]]) -> None:
    """One configuration against the baseline (``evaluate_disabled``'s rows), as a table."""
    task = get_task(store.run(run_id)["task"])
    heads = ", ".join(f"L{layer + 1} H{head + 1}" for layer, head in zip(*np.nonzero(mask)))
    table = Table(title=f"{task.title} dev, run {run_id}: disabled {heads} (% points, 95% paired bootstrap interval)")
    for column in ("metric", "baseline", "disabled", "Δ", "95% CI", "changed"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for base, row in zip(rows[0::2], rows[1::2]):
        table.add_row(row["metric"], _pct(base["value"]), _pct(row["value"]), _pct(row["delta"], sign=True),
                      _interval(row), "-" if row["changed"] is None else str(row["changed"]))
    console.print(table)
    console.print(f"dev loss {rows[0]['loss']:.4f} -> {rows[1]['loss']:.4f} ({rows[1]['loss_delta']:+.4f})")


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
    rows = queries.ablation_rows(store, run_id)
    if record is None or not rows:
        return
    task = get_task(record["task"])
    main = task.main_metric
    by_key = {(r["kind"], r["layer"], r["head"], r["metric"]): r for r in rows}
    n = rows[0]["n_examples"]
    table = Table(title=f"{task.title} dev ({n} examples) with heads disabled: {escape(record['model_used'])}, seed "
                        f"{record['seed']}, run {run_id}{cut_note(record)}; % points, 95% paired bootstrap "
                        f"interval; paper: bert-base-uncased")
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
    joined = queries.head_importance_with_effect(store, run_id, main)
    if len(joined) > 2:
        importance = [r["importance"] for r in joined]
        loss_rho = spearman(importance, [r["loss_delta"] for r in joined])
        drop_rho = spearman(importance, [-(r["delta"] or 0.0) for r in joined])
        top = ", ".join(f"L{r['layer'] + 1} H{r['head'] + 1}" for r in joined[:3])
        console.print(f"head importance (Michel et al. 2019), most important {top}; Spearman ρ with the effect of "
                      f"disabling the head: {rho_text(loss_rho)} (loss increase), {rho_text(drop_rho)} ({main} drop)")
    curve = queries.pruning_curve(store, run_id, main)
    if curve:
        points = " · ".join(f"{100 * r['fraction']:.0f}% {_pct(r['value'])}" for r in curve)
        console.print(f"pruning, least important heads first ({main}): {points}")


def print_seeds(console: Console, store: Store, key: str) -> None:
    """Baseline and the summary configurations across seeds: is a head's effect more than seed noise?"""
    rows = queries.ablation_seeds(store, key)
    if not rows:
        raise StoreError(f"no ablation_seeds rows for {key}")
    task = get_task(rows[0]["task"])
    main = task.main_metric
    mean_rows = [{**r, "delta": r["delta_mean"]} for r in rows]
    table = Table(title=f"{task.title} dev across seeds {rows[0]['seeds']} ({escape(rows[0]['model'])}): mean ± std "
                        f"(% points; ranked by mean Δ {main})")
    table.add_column("disabled")
    table.add_column(main, justify="right")
    table.add_column(f"Δ {main}", justify="right")
    first = rows[0]["run_ids"].split(",")[0]
    chosen = [(label, r) for label, r in summary_rows(queries.ablation_rows(store, first), main)
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


def print_grid(console: Console, store: Store, tasks: list[str], outcomes) -> None:
    """The grid's cross-task table: each task's set-ups over the seeds just run, beside the paper's Table 1."""
    from bertsecrets.store.findings import Spread

    table = Table(title="Table 1 across tasks: dev metrics (%), mean ± std over seeds",
                  caption="paper: bert-base-uncased, Kovaleva et al. 2019; * trained on a cut training set")
    for column in ("task", "set-up", "this store", "paper", "seeds", "time"):
        table.add_column(column, justify="left" if column in ("task", "set-up", "this store") else "right")
    notes = []
    for name in tasks:
        task = get_task(name)
        mine = [o for o in outcomes if o.task == name and o.status == "done"]
        plan = mine[0].plan
        cap = plan.settings.max_train_examples
        title = task.title + ("*" if cap else "")
        if cap:
            notes.append(f"{task.title}*: fine-tuned on the first {len(plan.data.train):,} training examples only "
                         f"(--max-train-examples {cap})")
        for setup in ("no_finetuning", "random_init", "finetuned"):
            records = [store.run(o.plan.run_ids[setup]) for o in mine if setup in o.plan.settings.setups]
            records = [r for r in records if r is not None and r.get("status") == "done"]
            if not records:
                continue
            cells = ", ".join(
                Spread([r[m] for r in records if r.get(m) is not None]).text() + f" {m}" for m in task.metrics)
            table.add_row(escape(title), SETUPS[setup], cells, task.paper(setup) or "-", str(len(records)),
                          fmt_seconds(sum(o.seconds for o in mine)) if setup == "finetuned" else "")
    console.print(table)
    for note in notes:
        console.print(note, markup=False, highlight=False)
