"""Cross-task figures: one panel per task, the same colour scale across panels, layers and heads 1-indexed.

Each figure reads the configuration the findings report compares per task
(``store.findings.groups``: a task's fine-tuned runs that differ only in their
seed) and shows the mean over its seeds. A task fine-tuned on a cut training
set is marked with ``*`` in its panel title and named in the figure's note.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertsecrets.core.errors import UserError
from bertsecrets.figures.paper import CLASS_COLOURS, _grid, _heatmap, _plt, _save
from bertsecrets.store import Store
from bertsecrets.store.findings import Group, groups
from bertsecrets.store.labels import PATTERN_CLASSES
from bertsecrets.store.queries import ablation_rows, class_shares, cls_attention, run_table


def _groups(store: Store, tasks: list[str] | None) -> list[Group]:
    found = groups(store, tasks)
    if not found:
        raise UserError("no finished fine-tuned run of these tasks in the store: run `bertsecrets ingest TASK` first")
    return found


def _note(fig, found: list[Group]) -> None:
    notes = [g.note for g in found if g.note]
    if notes:
        fig.text(0.01, -0.02, "\n".join(notes), fontsize=7, ha="left", va="top")


def _mean_grid(store: Store, g: Group, table: str, value: str, **where) -> np.ndarray:
    grids = []
    for record in g.finetuned:
        rows = [r for r in run_table(store, table, record["run_id"]).to_pylist()
                if all(r.get(k) == v for k, v in where.items())]
        if rows:
            grids.append(_grid(rows, value, g.n_layers, int(record["n_heads"])))
    return np.nanmean(grids, axis=0) if grids else np.full((g.n_layers, int(g.finetuned[0]["n_heads"])), np.nan)


def _panels(n: int, width: float, height: float):
    plt = _plt()
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes.flat)


def classes(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Fig. 2 across tasks: each class's share of the maps (rule labels), pretrained and fine-tuned, per task."""
    found = _groups(store, tasks)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(found), 3.6))
    x, labels = 0.0, []
    for g in found:
        for role in ("pretrained", "finetuned"):
            bottom = 0.0
            for label in PATTERN_CLASSES:
                values = [s["share"] for r in g.finetuned for s in class_shares(store, r["run_id"])
                          if s["source"] == "rules" and s["role"] == role and s["label"] == label]
                share = float(np.mean(values)) if values else 0.0
                ax.bar(x, share, bottom=bottom, color=CLASS_COLOURS[label], width=0.8,
                       label=label if x == 0.0 else None)
                bottom += share
            labels.append((x, f"{g.title}\n{'pre' if role == 'pretrained' else 'fine'}"))
            x += 1.0
        x += 0.5
    ax.set_xticks([p for p, _ in labels], [t for _, t in labels], fontsize=7)
    ax.set_ylabel("share of maps")
    ax.set_ylim(0, 1)
    ax.set_title("Fig. 2 across tasks: pattern classes (rule labels), mean over seeds", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _note(fig, found)
    return [_save(fig, out / "tasks_fig2_classes.png")]


def change(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Fig. 5 across tasks: each head's cosine between pretrained and fine-tuned maps; one scale, 0 to 1."""
    found = _groups(store, tasks)
    fig, axes = _panels(len(found), 4.2, 3.2)
    image = None
    for ax, g in zip(axes, found):
        grid = _mean_grid(store, g, "head_change", "cosine_mean")
        image = _heatmap(ax, grid, f"{g.title} ({len(g.seeds)} seeds)", cmap="magma", vmin=0, vmax=1, annotate=False)
    fig.colorbar(image, ax=axes, label="cosine similarity (low = changed most)", fraction=0.03)
    fig.suptitle("Fig. 5 across tasks: pretrained vs fine-tuned maps, mean over inputs and seeds", fontsize=10, y=1.04)
    _note(fig, found)
    return [_save(fig, out / "tasks_fig5_change.png")]


def features(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Fig. 6 across tasks: attention to [SEP], [CLS] and the linguistic types per head; one scale per type."""
    found = _groups(store, tasks)
    plt = _plt()
    kinds = ("cls", "sep", "noun", "verb", "pronoun", "negation")
    fig, axes = plt.subplots(len(kinds), len(found), figsize=(3.6 * len(found), 2.4 * len(kinds)), squeeze=False)
    for row, feature in enumerate(kinds):
        grids = [_mean_grid(store, g, "feature_attention", "value", role="finetuned", feature=feature) for g in found]
        finite = [v for grid in grids for v in grid[np.isfinite(grid)]]
        top = max(finite) if finite else 1.0
        image = None
        for col, (g, grid) in enumerate(zip(found, grids)):
            image = _heatmap(axes[row][col], grid, f"{g.title}: {feature}", vmin=0, vmax=top, annotate=False)
        fig.colorbar(image, ax=list(axes[row]), fraction=0.02)
    fig.suptitle("Fig. 6 across tasks: attention a token type receives (column sum / L), fine-tuned model, mean over "
                 "seeds", fontsize=10)
    _note(fig, found)
    return [_save(fig, out / "tasks_fig6_features.png")]


def cls_last(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Fig. 7 across tasks: where the last layer's [CLS] attends, by token type, per task."""
    found = _groups(store, tasks)
    plt = _plt()
    kinds = ("noun", "verb", "pronoun", "subject", "object", "negation", "cls", "sep")
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(found), 3.4))
    width = 0.8 / len(kinds)
    cmap = plt.get_cmap("tab10")
    for i, g in enumerate(found):
        rows = [r for record in g.finetuned for r in cls_attention(store, record["run_id"], "finetuned")
                if r["layer"] == g.n_layers - 1]
        for j, feature in enumerate(kinds):
            values = [r["value"] for r in rows if r["feature"] == feature and r["value"] is not None]
            ax.bar(i + (j - len(kinds) / 2) * width, float(np.nanmean(values)) if values else 0.0, width,
                   color=cmap(j), label=feature if i == 0 else None)
    ax.set_xticks(range(len(found)), [g.title for g in found])
    ax.set_ylabel("share of [CLS]'s attention")
    ax.set_title("Fig. 7 across tasks: the last layer's [CLS], fine-tuned model, mean over heads, inputs and seeds",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _note(fig, found)
    return [_save(fig, out / "tasks_fig7_cls.png")]


def heads(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Fig. 8 across tasks: Δ of the dev metric with each head disabled; one symmetric scale for all panels."""
    found = [g for g in _groups(store, tasks) if ablation_rows(store, g.finetuned[0]["run_id"], "head")]
    if not found:
        raise UserError("no head-disabling sweep in the store for these tasks: run `bertsecrets ablate TASK`")
    grids = [100 * _mean_grid(store, g, "ablation", "delta", kind="head", metric=g.task.main_metric) for g in found]
    finite = [abs(v) for grid in grids for v in grid[np.isfinite(grid)]]
    limit = max(finite) if finite and max(finite) > 0 else 1.0
    fig, axes = _panels(len(found), 4.2, 3.2)
    image = None
    for ax, g, grid in zip(axes, found, grids):
        image = _heatmap(ax, grid, f"{g.title}: Δ {g.task.main_metric} ({len(g.seeds)} seeds)", cmap="RdBu",
                         vmin=-limit, vmax=limit, annotate=False)
    fig.colorbar(image, ax=axes, label="Δ points (blue: disabling helps)", fraction=0.03)
    fig.suptitle("Fig. 8 across tasks: one head disabled (uniform attention), mean over seeds", fontsize=10, y=1.04)
    _note(fig, found)
    return [_save(fig, out / "tasks_fig8_heads.png")]


def layers(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Fig. 9 across tasks: Δ of the dev metric with each layer disabled, each seed's 95% interval drawn."""
    found = [g for g in _groups(store, tasks) if ablation_rows(store, g.finetuned[0]["run_id"], "layer")]
    if not found:
        raise UserError("no layer-disabling results in the store for these tasks: run `bertsecrets ablate TASK`")
    fig, axes = _panels(len(found), 3.6, 3.0)
    for ax, g in zip(axes, found):
        for k, record in enumerate(g.finetuned):
            rows = ablation_rows(store, record["run_id"], "layer", g.task.main_metric)
            x = np.array([r["layer"] + 1 for r in rows]) + (k - (len(g.finetuned) - 1) / 2) * 0.15
            y = np.array([100 * r["delta"] for r in rows])
            err = np.array([[100 * (r["delta"] - r["ci_low"]), 100 * (r["ci_high"] - r["delta"])]
                            if r["ci_low"] is not None else [0.0, 0.0] for r in rows]).T
            ax.errorbar(x, y, yerr=err, fmt="o", markersize=3, capsize=2, label=f"seed {record['seed']}")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(range(1, g.n_layers + 1))
        ax.set_xlabel("layer disabled")
        ax.set_ylabel(f"Δ {g.task.main_metric} (points)")
        ax.set_title(g.title, fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle("Fig. 9 across tasks: one layer disabled, with 95% paired bootstrap intervals", fontsize=10)
    fig.tight_layout()
    _note(fig, found)
    return [_save(fig, out / "tasks_fig9_layers.png")]


#: (name, function(store, out_dir, tasks) -> paths, caption), in the order drawn.
FIGURES = [
    ("classes", classes, "Fig. 2 across tasks: pattern classes (rule labels), pretrained and fine-tuned"),
    ("change", change, "Fig. 5 across tasks: cosine between pretrained and fine-tuned maps per head"),
    ("features", features, "Fig. 6 across tasks: attention to token types per head"),
    ("cls", cls_last, "Fig. 7 across tasks: where the last layer's [CLS] attends"),
    ("heads", heads, "Fig. 8 across tasks: Δ metric with one head disabled"),
    ("layers", layers, "Fig. 9 across tasks: Δ metric with one layer disabled, 95% intervals per seed"),
]
