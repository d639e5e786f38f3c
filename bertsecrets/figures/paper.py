"""The paper's Fig. 2, 3, 5, 6, 7 and Table 1 from a task's analysed run, and the tables behind them as CSV.

The run drawn is the task's latest fine-tuned run whose analyses are in the
catalog (`bertsecrets analyze TASK`). Layers and heads are 1-indexed in
every figure and CSV file, as in the paper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertsecrets.core.errors import UserError
from bertsecrets.store.findings import cut_note
from bertsecrets.store import Store
from bertsecrets.store.queries import (class_shares, class_shares_by_layer, clearest_maps, cls_attention, experiment_runs,
                                      relation_heads, run_table, task_run)
from bertsecrets.store.labels import PATTERN_CLASSES

CLASS_COLOURS = {"vertical": "#4477aa", "diagonal": "#ee6677", "vertical+diagonal": "#aa3377", "block": "#ccbb44",
                 "heterogeneous": "#bbbbbb"}
#: Tables written as CSV, one run's rows each (layers and heads 1-indexed).
CSV_TABLES = ("head_stats", "feature_attention", "cls_attention", "head_change", "class_shares", "map_classes",
              "relation_heads", "classifiers")


def analysed_run(store: Store, task: str) -> dict:
    """The task's fine-tuned run whose analyses are stored."""
    return task_run(store, task, "analyses")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(rows: list[dict], value: str, n_layers: int, n_heads: int) -> np.ndarray:
    out = np.full((n_layers, n_heads), np.nan)
    for r in rows:
        if r[value] is not None:
            out[r["layer"], r["head"]] = r[value]
    return out


def _heatmap(ax, grid: np.ndarray, title: str, cmap: str = "viridis", vmin=None, vmax=None, annotate: bool = True,
             outline: np.ndarray | None = None):
    n_layers, n_heads = grid.shape
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(n_heads), [str(h + 1) for h in range(n_heads)], fontsize=7)
    ax.set_yticks(range(n_layers), [str(l + 1) for l in range(n_layers)], fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    if annotate and grid.size <= 150:
        for (l, h), v in np.ndenumerate(grid):
            if np.isfinite(v):  # dark text on the light end of the colour map
                colour = "black" if image.norm(v) > 0.6 else "white"
                ax.text(h, l, f"{v:.2f}", ha="center", va="center", fontsize=5, color=colour)
    if outline is not None:
        for l, h in zip(*np.nonzero(outline)):
            ax.add_patch(_plt().Rectangle((h - 0.5, l - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    return image


def _title(run: dict) -> str:
    return f"{run['task'].upper()} dev, {run['model_used']} (run {run['run_id']}){cut_note(run)}"


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=130, bbox_inches="tight")
    _plt().close(fig)
    return path


# -- the figures -----------------------------------------------------------------------


def fig2_patterns(store: Store, task: str, out: Path) -> list[Path]:
    """Fig. 2: an example map of each class, and the share of each class (per labeller, model and layer)."""
    plt = _plt()
    run = analysed_run(store, task)
    rid = run["run_id"]
    shares = class_shares(store, rid)
    if not shares:
        raise UserError(f"run {rid} has no pattern classes: run `bertsecrets analyze {task}`")
    best = {r["label"]: r for r in clearest_maps(store, rid, "finetuned", "rules")}
    by_layer = class_shares_by_layer(store, rid, "finetuned", "rules")
    fig = plt.figure(figsize=(15, 7.5))
    grid = fig.add_gridspec(2, 5, height_ratios=[1, 1.1], hspace=0.45, wspace=0.4)
    reader = store.maps(rid, "finetuned")
    for i, name in enumerate(PATTERN_CLASSES):
        ax = fig.add_subplot(grid[0, i])
        if name in best:
            b = best[name]
            ax.imshow(reader.head(b["example"], b["layer"], b["head"]), cmap="viridis")
            ax.set_title(f"{name}\nlayer {b['layer'] + 1}, head {b['head'] + 1}, input {b['example']}", fontsize=9)
            ax.set_xlabel("key token")
            ax.set_ylabel("query token")
        else:
            ax.set_title(f"{name}\n(no map of this class)", fontsize=9)
            ax.axis("off")
    ax = fig.add_subplot(grid[1, :3])
    bars = [(s, r) for s in ("rules", "classifier") for r in ("pretrained", "finetuned")
            if any(x["source"] == s and x["role"] == r for x in shares)]
    values = {(x["source"], x["role"], x["label"]): x["share"] for x in shares}
    bottom = np.zeros(len(bars))
    for name in PATTERN_CLASSES:
        heights = np.array([100 * values.get((s, r, name), 0.0) for s, r in bars])
        ax.bar(range(len(bars)), heights, bottom=bottom, color=CLASS_COLOURS[name], label=name)
        bottom += heights
    ax.set_xticks(range(len(bars)), [f"{s}\n{r}" for s, r in bars], fontsize=8)
    ax.set_ylabel("% of maps")
    ax.set_title("class shares over all maps, by labeller and model (paper, bert-base: heterogeneous 32% on MRPC)",
                 fontsize=9)
    fig.legend(handles=ax.containers, labels=list(PATTERN_CLASSES), fontsize=8, loc="center right",
               bbox_to_anchor=(1.0, 0.3))
    ax = fig.add_subplot(grid[1, 3:])
    layers = sorted({r["layer"] for r in by_layer})
    per = {(r["layer"], r["label"]): r["share"] for r in by_layer}
    bottom = np.zeros(len(layers))
    for name in PATTERN_CLASSES:
        heights = np.array([100 * per.get((l, name), 0.0) for l in layers])
        ax.bar([l + 1 for l in layers], heights, bottom=bottom, color=CLASS_COLOURS[name])
        bottom += heights
    ax.set_xlabel("layer")
    ax.set_ylabel("% of maps")
    ax.set_title("fine-tuned model, rule labels, per layer", fontsize=9)
    fig.suptitle(f"Fig. 2: self-attention pattern classes. {_title(run)}", fontsize=11)
    return [_save(fig, out / "fig2_patterns.png")]


def fig3_relations(store: Store, task: str, out: Path) -> list[Path]:
    """Fig. 3: per relation, every head's mean maximum attention along the relation's pairs (fine-tuned)."""
    plt = _plt()
    run = analysed_run(store, task)
    rows = relation_heads(store, run["run_id"], "finetuned")
    if not rows:
        raise UserError(f"run {run['run_id']} has no relation heads: run `bertsecrets analyze {task}`")
    paths = []
    for source in dict.fromkeys(r["source"] for r in rows):
        of_source = [r for r in rows if r["source"] == source]
        relations = list(dict.fromkeys(r["relation"] for r in of_source))
        cols = min(3, len(relations))
        n_rows = -(-len(relations) // cols)
        fig, axes = plt.subplots(n_rows, cols, figsize=(5.2 * cols, 2.9 * n_rows), squeeze=False)
        for ax, name in zip(axes.flat, relations):
            these = [r for r in of_source if r["relation"] == name]
            grid = _grid(these, "score", run["n_layers"], run["n_heads"])
            flags = _grid([{**r, "flagged": float(r["flagged"])} for r in these], "flagged", run["n_layers"], run["n_heads"])
            n = max(r["n_sentences"] for r in these)
            image = _heatmap(ax, grid, f"{name} ({n} sentences)", outline=flags > 0)
            fig.colorbar(image, ax=ax, fraction=0.04)
        for ax in list(axes.flat)[len(relations):]:
            ax.axis("off")
        fig.suptitle(f"Fig. 3: max attention along each relation's token pairs, mean over sentences ({source}; "
                     f"red: above the 99th percentile). {_title(run)}", fontsize=10)
        fig.tight_layout()
        paths.append(_save(fig, out / f"fig3_relations_{source}.png"))
    return paths


def fig5_change(store: Store, task: str, out: Path) -> list[Path]:
    """Fig. 5: cosine similarity of each head's maps before and after fine-tuning."""
    plt = _plt()
    run = analysed_run(store, task)
    rows = run_table(store, "head_change", run["run_id"]).to_pylist()
    grid = _grid(rows, "cosine_mean", run["n_layers"], run["n_heads"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * run["n_heads"], 1.0 + 0.45 * run["n_layers"]))
    image = _heatmap(ax, grid, f"Fig. 5: cosine similarity, pretrained vs fine-tuned maps (mean over "
                               f"{rows[0]['n_examples']} inputs; low = changed most)\n{_title(run)}", cmap="magma",
                     vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    return [_save(fig, out / "fig5_change.png")]


def fig6_features(store: Store, task: str, out: Path) -> list[Path]:
    """Fig. 6: attention to each token type per head (fine-tuned), and its change under fine-tuning."""
    plt = _plt()
    run = analysed_run(store, task)
    rows = run_table(store, "feature_attention", run["run_id"]).to_pylist()
    features = list(dict.fromkeys(r["feature"] for r in rows))
    paths = []
    for role, cmap, name in (("finetuned", "viridis", "fig6_features.png"),
                             ("difference", "RdBu_r", "fig6_features_difference.png")):
        fig, axes = plt.subplots(2, -(-len(features) // 2), figsize=(4.6 * -(-len(features) // 2), 6.2), squeeze=False)
        for ax, feature in zip(axes.flat, features):
            these = [r for r in rows if r["role"] == role and r["feature"] == feature]
            grid = _grid(these, "value", run["n_layers"], run["n_heads"])
            limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
            vmin, vmax = (-limit, limit) if role == "difference" else (0, None)
            image = _heatmap(ax, grid, f"{feature} ({these[0]['n_examples']} inputs)", cmap=cmap, vmin=vmin,
                             vmax=vmax, annotate=False)
            fig.colorbar(image, ax=ax, fraction=0.04)
        what = ("fine-tuned model" if role == "finetuned" else "fine-tuned minus pretrained")
        fig.suptitle(f"Fig. 6: attention to token types, column sum / L, max over the type's tokens, mean over inputs "
                     f"({what}). {_title(run)}", fontsize=10)
        fig.tight_layout()
        paths.append(_save(fig, out / name))
    return paths


def fig7_cls(store: Store, task: str, out: Path) -> list[Path]:
    """Fig. 7: where the [CLS] token attends, per layer, over the token types."""
    plt = _plt()
    run = analysed_run(store, task)
    rows = cls_attention(store, run["run_id"])
    features = list(dict.fromkeys(r["feature"] for r in rows))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    for ax, role in zip(axes[:2], ("pretrained", "finetuned")):
        grid = np.full((run["n_layers"], len(features)), np.nan)
        for r in rows:
            if r["role"] == role and r["value"] is not None:
                grid[r["layer"], features.index(r["feature"])] = r["value"]
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(features)), features, rotation=45, fontsize=8)
        ax.set_yticks(range(run["n_layers"]), [str(l + 1) for l in range(run["n_layers"])], fontsize=8)
        ax.set_xlabel("token type")
        ax.set_ylabel("layer")
        ax.set_title(f"{role}: share of [CLS]'s attention (mean over heads)", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04)
    ax = axes[2]
    last = run["n_layers"] - 1
    width = 0.38
    for i, role in enumerate(("pretrained", "finetuned")):
        values = [next((100 * r["value"] for r in rows if r["role"] == role and r["layer"] == last
                        and r["feature"] == f and r["value"] is not None), 0.0) for f in features]
        ax.bar(np.arange(len(features)) + (i - 0.5) * width, values, width, label=role)
    ax.set_xticks(range(len(features)), features, rotation=45, fontsize=8)
    ax.set_xlabel("token type")
    ax.set_ylabel("% of [CLS]'s attention")
    ax.set_title(f"last layer ({last + 1}); paper: [SEP] gets the most", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(f"Fig. 7: the [CLS] token's attention over token types. {_title(run)}", fontsize=10)
    fig.tight_layout()
    return [_save(fig, out / "fig7_cls.png")]


def table1(store: Store, task: str, out: Path) -> list[Path]:
    """Table 1: dev metrics of the three set-ups, beside the paper's (PNG and CSV)."""
    import csv

    from bertsecrets.core.tasks import get_task

    plt = _plt()
    run = analysed_run(store, task)
    spec = get_task(task)
    names = {"no_finetuning": "pretrained, no fine-tuning", "random_init": "random init + fine-tuning",
             "finetuned": "pretrained + fine-tuning"}
    rows = experiment_runs(store, run["experiment_id"])
    by_setup = {r["setup"]: r for r in rows}
    header = ["set-up", *(f"{m} (%)" for m in spec.metrics), f"paper ({'/'.join(spec.metrics)})", "run"]
    body = []
    for setup in ("no_finetuning", "random_init", "finetuned"):
        r = by_setup.get(setup)
        cells = ["-" if r is None or r.get(m) is None else f"{100 * r[m]:.1f}" for m in spec.metrics]
        body.append([names[setup], *cells, spec.paper(setup), r["run_id"] if r else "-"])
    with open(out / "table1.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(body)
    fig, ax = plt.subplots(figsize=(11, 1.6))
    ax.axis("off")
    table = ax.table(cellText=body, colLabels=header, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.5)
    ax.set_title(f"Table 1: {spec.title} dev, {run['model_used']}, seed {run['seed']} (paper: bert-base-uncased)",
                 fontsize=10)
    return [_save(fig, out / "table1.png"), out / "table1.csv"]


def tables_csv(store: Store, task: str, out: Path) -> list[Path]:
    """Each analysis table of the run as CSV (layers and heads 1-indexed)."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    run = analysed_run(store, task)
    paths = []
    for name in CSV_TABLES:
        table = run_table(store, name, run["run_id"])
        for column in ("layer", "head"):
            if column in table.column_names:
                i = table.column_names.index(column)
                table = table.set_column(i, column, pc.add(table[column], 1))
        path = out / f"{name}.csv"
        pacsv.write_csv(table, path)
        paths.append(path)
    return paths


FIGURES = [
    ("fig2", fig2_patterns),
    ("fig3", fig3_relations),
    ("fig5", fig5_change),
    ("fig6", fig6_features),
    ("fig7", fig7_cls),
    ("table1", table1),
    ("csv", tables_csv),
]
