"""The paper's Fig. 8 (each head disabled) and Fig. 9 (each layer disabled) with their intervals, and the pruning curve.

Each reads the ``ablation``, ``head_importance`` and ``pruning`` tables of one
fine-tuned run of the task (the lowest seed, then the latest) and writes a PNG
and the CSV behind it, layers and heads 1-indexed as drawn.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize

from bertsecrets.core.errors import UserError
from bertsecrets.store.findings import cut_note
from bertsecrets.core.stats import rho_text, spearman
from bertsecrets.core.tasks import Task, get_task
from bertsecrets.store.queries import ablation_rows, head_importance_with_effect, pruning_curve, task_run

BASELINE_COLOUR = "tab:orange"


def _run(store, task: Task) -> dict[str, Any]:
    return task_run(store, task.name, "ablation")


def _rows(store, run: dict[str, Any], kind: str, metric: str) -> list[dict[str, Any]]:
    return ablation_rows(store, run["run_id"], kind, metric)


def _title(task: Task, run: dict[str, Any], what: str) -> str:
    return f"{task.title}: {what}\n{run['model_used']}, seed {run['seed']}, run {run['run_id']}{cut_note(run)}"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def _csv_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("kind", "layer", "head", "metric", "value", "delta", "ci_low", "ci_high", "changed", "loss_delta")
    return [{k: (r[k] + 1 if k in ("layer", "head") and r[k] is not None else r[k]) for k in keep} for r in rows]


def heads(store, task_name: str, out_dir: Path) -> list[Path]:
    """Fig. 8: the main metric with each head disabled, as a layer x head grid, and each head's interval."""
    task = get_task(task_name)
    run = _run(store, task)
    main = task.main_metric
    rows = _rows(store, run, "head", main)
    base = 100 * _rows(store, run, "baseline", main)[0]["value"]
    n_layers, n_heads = run["n_layers"], run["n_heads"]

    def grid(key: str) -> np.ndarray:
        return np.array([np.nan if r[key] is None else 100 * r[key] for r in rows]).reshape(n_layers, n_heads)

    value, delta, low, high = grid("value"), grid("delta"), grid("ci_low"), grid("ci_high")
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(7.0, 0.6 * n_heads + 2.5), 0.5 * n_layers + 5.5),
        gridspec_kw={"height_ratios": [max(n_layers, 3), 4]},
    )
    span = max(float(np.nanmax(np.abs(value - base))), 0.1)
    image = top.imshow(value, cmap="RdBu", norm=Normalize(base - span, base + span), aspect="auto")
    for layer in range(n_layers):
        for head in range(n_heads):
            sure = low[layer, head] > 0 or high[layer, head] < 0
            dark = abs(value[layer, head] - base) > 0.6 * span
            top.text(head, layer, f"{delta[layer, head]:+.1f}" + ("*" if sure else ""), ha="center", va="center",
                     fontsize=7, fontweight="bold" if sure else "normal", color="white" if dark else "black")
    top.set_xticks(range(n_heads), [str(h + 1) for h in range(n_heads)])
    top.set_yticks(range(n_layers), [str(layer + 1) for layer in range(n_layers)])
    top.set_xlabel("head")
    top.set_ylabel("layer")
    bar = fig.colorbar(image, ax=top)
    bar.ax.axhline(base, color=BASELINE_COLOUR, linewidth=3)
    bar.set_label(f"{main} (%) with the head disabled; orange: baseline")
    top.set_title(_title(task, run, f"{main} with one head disabled (cells: Δ in points, * = 95% interval excludes 0); "
                                    f"baseline {base:.1f}"), fontsize=9)

    x = np.arange(n_layers * n_heads)
    d, lo, hi = delta.ravel(), low.ravel(), high.ravel()
    colours = np.where(lo > 0, "tab:blue", np.where(hi < 0, "tab:red", "grey"))
    bottom.errorbar(x, d, yerr=[d - lo, hi - d], fmt="none", ecolor=colours, elinewidth=1)
    bottom.scatter(x, d, c=colours, s=10, zorder=3)
    bottom.axhline(0, color=BASELINE_COLOUR, linewidth=1.5, label="baseline")
    for layer in range(1, n_layers):
        bottom.axvline(layer * n_heads - 0.5, color="lightgrey", linewidth=0.8)
    bottom.set_xticks([layer * n_heads + (n_heads - 1) / 2 for layer in range(n_layers)],
                      [f"layer {layer + 1}" for layer in range(n_layers)])
    bottom.set_xlim(-0.5, n_layers * n_heads - 0.5)
    bottom.set_ylabel(f"Δ {main} (points), 95% CI")
    bottom.legend(loc="lower right", fontsize=8)
    name = f"fig8_heads_{main}"
    return [_save(fig, out_dir / f"{name}.png"), _write_csv(out_dir / f"{name}.csv", _csv_rows(rows))]


def layers(store, task_name: str, out_dir: Path) -> list[Path]:
    """Fig. 9: the task's metrics with each whole layer disabled, with intervals, beside the baseline."""
    task = get_task(task_name)
    run = _run(store, task)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * run["n_layers"] + 2), 4))
    written: list[dict[str, Any]] = []
    for metric, colour in zip(task.metrics, ("tab:blue", "tab:green")):
        rows = _rows(store, run, "layer", metric)
        base = 100 * _rows(store, run, "baseline", metric)[0]["value"]
        x = np.array([r["layer"] + 1 for r in rows])
        y = np.array([100 * r["value"] for r in rows])
        low = np.array([base + 100 * r["ci_low"] for r in rows])
        high = np.array([base + 100 * r["ci_high"] for r in rows])
        ax.errorbar(x, y, yerr=[y - low, high - y], fmt="o-", color=colour, capsize=3, label=f"{metric}, layer disabled")
        ax.axhline(base, color=colour, linestyle="--", linewidth=1, label=f"{metric} baseline {base:.1f}")
        written += rows
    ax.set_xticks(range(1, run["n_layers"] + 1))
    ax.set_xlabel("layer disabled (all its heads)")
    ax.set_ylabel("dev metric (%), 95% CI")
    ax.legend(fontsize=8)
    ax.set_title(_title(task, run, "each layer disabled"), fontsize=9)
    return [_save(fig, out_dir / "fig9_layers.png"), _write_csv(out_dir / "fig9_layers.csv", _csv_rows(written))]


def pruning(store, task_name: str, out_dir: Path) -> list[Path]:
    """The pruning curve (least important heads first) and importance against the effect of disabling each head."""
    task = get_task(task_name)
    run = _run(store, task)
    curve = pruning_curve(store, run["run_id"])
    joined = head_importance_with_effect(store, run["run_id"], task.main_metric)
    if not curve or not joined:
        raise UserError(f"no head importance or pruning results for {task.name}: run `bertsecrets ablate {task.name}`")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for metric, colour in zip(task.metrics, ("tab:blue", "tab:green")):
        points = [r for r in curve if r["metric"] == metric]
        left.plot([100 * r["fraction"] for r in points], [100 * r["value"] for r in points], "o-", color=colour, label=metric)
    left.set_xlabel("heads disabled, least important first (%)")
    left.set_ylabel("dev metric (%)")
    left.legend(fontsize=8)
    left.set_title(_title(task, run, "pruning curve"), fontsize=9)
    importance = np.array([r["importance"] for r in joined])
    effect = np.array([r["loss_delta"] for r in joined])
    right.scatter(importance, effect, s=14)
    right.axhline(0, color=BASELINE_COLOUR, linewidth=1)
    for r in joined[:5]:
        right.annotate(f"L{r['layer'] + 1} H{r['head'] + 1}", (r["importance"], r["loss_delta"]), fontsize=7)
    right.set_xlabel("head importance, mean |d loss / d gate| (Michel et al. 2019)")
    right.set_ylabel("Δ dev loss with the head disabled")
    rho = spearman(importance, effect)
    right.set_title(f"Spearman ρ {rho_text(rho)}", fontsize=9)
    table = [{"layer": r["layer"] + 1, "head": r["head"] + 1, "importance": r["importance"], "rank": r["rank"],
              "loss_delta": r["loss_delta"]} for r in joined]
    return [_save(fig, out_dir / "pruning.png"), _write_csv(out_dir / "pruning_curve.csv", [
        {k: r[k] for k in ("fraction", "n_disabled", "metric", "value")} for r in curve
    ]), _write_csv(out_dir / "head_importance.csv", table)]


FIGURES = [("fig8", heads), ("fig9", layers), ("pruning", pruning)]
