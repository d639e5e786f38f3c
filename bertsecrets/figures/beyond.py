"""Figures of the analyses beyond the paper: weight beside norm, sinks and no-ops, head families, stability, rollout.

Per task (``FIGURES``, as every module listed in ``bertsecrets.figures.MODULES``)
and across tasks (``ACROSS_FIGURES``, the ``bertsecrets.figures.tasks``
pattern: one panel per task, the same scale across panels). Each figure
writes its PNG and the CSV of the numbers drawn beside it; layers, heads and
families are 1-indexed, as in the browser. A figure whose tables are not in
the store raises a one-line ``UserError`` saying what to run, which the
command prints in place of the figure. Definitions: docs/analyses.md.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from bertsecrets.core.errors import UserError
from bertsecrets.figures.paper import CLASS_COLOURS, _heatmap, _plt, _save, _title
from bertsecrets.figures.tasks import _groups, _note
from bertsecrets.store import Store
from bertsecrets.store.findings import LINGUISTIC, NO_NORMS, SINK_MIN, Group, sink_classes, sink_test
from bertsecrets.store.labels import PATTERN_CLASSES
from bertsecrets.store.queries import (ablation_rows, class_shares, cls_rollout, feature_attention, head_families,
                                      head_stability_of, task_run, weight_and_norm_shares)

#: Where attention goes, as the report's weight-beside-norm table names it: (label, weight column, norm column).
SHARES = (("[CLS]", "cls", "norm_cls"), ("[SEP]", "sep", "norm_sep"), ("punctuation", "punct", "norm_punct"))
#: The Fig. 6 token types compared by weight and by norm, in the report's order.
FEATURES = (*LINGUISTIC, "cls", "sep")
#: How each kind of head is drawn in the sinks figure: (marker, colour).
KINDS = {"sink": ("s", "#cc3311"), "no-op": ("^", "#0077bb"), "other": ("o", "#bbbbbb")}
WEIGHT_COLOUR, NORM_COLOUR = "#4477aa", "#ee7733"
RAW_COLOUR, ROLLOUT_COLOUR = "#88ccee", "#882255"
ROLE_NAMES = {"pretrained": "pretrained", "finetuned": "fine-tuned"}


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _mean(values: list[float | None]) -> float:
    kept = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(kept)) if kept else float("nan")


# -- 1. weight beside norm -----------------------------------------------------------------------


def weight_and_norm(store: Store, run_id: str) -> list[tuple[str, str, float, float]]:
    """The fine-tuned model's (measure, item, by weight, by norm), as the report computes them, or [] without norms.

    ``share``: a query's attention to [CLS], [SEP] and punctuation, mean over heads; ``fig6``: Fig. 6's value
    of each token type, mean over heads; ``class``: each pattern class's share of the maps (rule labels).
    """
    heads = weight_and_norm_shares(store, run_id)
    if not heads:
        return []
    out = [("share", label, _mean([r[w] for r in heads]), _mean([r[n] for r in heads])) for label, w, n in SHARES]
    by_weight, by_norm = (feature_attention(store, run_id, "finetuned", norm=normed) for normed in (False, True))
    for feature in FEATURES:
        out.append(("fig6", feature, _mean([r["value"] for r in by_weight if r["feature"] == feature]),
                    _mean([r["value"] for r in by_norm if r["feature"] == feature])))
    weight, norm = ({r["label"]: r["share"] for r in class_shares(store, run_id, norm=normed)
                     if (r["source"], r["role"]) == ("rules", "finetuned")} for normed in (False, True))
    out += [("class", label, weight.get(label, 0.0), norm.get(label, 0.0)) for label in PATTERN_CLASSES]
    return out


def _paired_bars(ax, items: list[str], weight: list[float], norm: list[float], scale: float, ylabel: str,
                 top: float | None = None) -> None:
    x = np.arange(len(items))
    ax.bar(x - 0.2, scale * np.asarray(weight), 0.4, color=WEIGHT_COLOUR, label="by weight")
    ax.bar(x + 0.2, scale * np.asarray(norm), 0.4, color=NORM_COLOUR, label="by norm")
    ax.set_xticks(x, items, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    if top is not None:
        ax.set_ylim(0, top)


def _class_bars(ax, weight: dict[str, float], norm: dict[str, float], legend: bool) -> None:
    bottom = np.zeros(2)
    for label in PATTERN_CLASSES:
        heights = 100 * np.array([weight.get(label, 0.0), norm.get(label, 0.0)])
        ax.bar([0, 1], heights, bottom=bottom, width=0.6, color=CLASS_COLOURS[label], label=label if legend else None)
        bottom += heights
    ax.set_xticks([0, 1], ["by weight", "by norm"], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of maps (rule labels)", fontsize=8)


def _part(rows: list[tuple[str, str, float, float]], measure: str) -> tuple[list[str], list[float], list[float]]:
    chosen = [r for r in rows if r[0] == measure]
    return [r[1] for r in chosen], [r[2] for r in chosen], [r[3] for r in chosen]


def norms(store: Store, task: str, out: Path) -> list[Path]:
    """Attention to [CLS], [SEP], punctuation and the Fig. 6 types, and the class shares, by weight and by norm."""
    plt = _plt()
    run = task_run(store, task, "analyses")
    rows = weight_and_norm(store, run["run_id"])
    if not rows:
        raise UserError(NO_NORMS.format(task=task))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 2.2, 0.9]})
    items, weight, norm = _part(rows, "share")
    _paired_bars(axes[0], items, weight, norm, 100, "% of a query's attention (mean over heads)")
    axes[0].set_title("where a query's attention goes", fontsize=9)
    axes[0].legend(fontsize=8)
    items, weight, norm = _part(rows, "fig6")
    _paired_bars(axes[1], items, weight, norm, 1, "Fig. 6 value (mean over heads)")
    axes[1].set_title("Fig. 6: attention a token type receives (column sum / L, max over its tokens)", fontsize=9)
    items, weight, norm = _part(rows, "class")
    _class_bars(axes[2], dict(zip(items, weight)), dict(zip(items, norm)), legend=True)
    axes[2].set_title("pattern classes", fontsize=9)
    axes[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"Attention by weight a_ij and by norm a_ij ||f(x_j)|| (rows renormalised), fine-tuned model. "
                 f"{_title(run)}", fontsize=10)
    fig.tight_layout()
    return [_save(fig, out / "norms_weight.png"),
            _write_csv(out / "norms_weight.csv", ["measure", "item", "by_weight", "by_norm"], [list(r) for r in rows])]


def norms_across(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Weight beside norm per task, mean over seeds: one column of panels per task, one scale per row."""
    found, data = [], []
    for g in _groups(store, tasks):
        per_seed = [rows for rows in (weight_and_norm(store, r["run_id"]) for r in g.finetuned) if rows]
        if per_seed:
            found.append(g)
            data.append([(m, item, _mean([s[i][2] for s in per_seed]), _mean([s[i][3] for s in per_seed]), len(per_seed))
                         for i, (m, item, _, _) in enumerate(per_seed[0])])
    if not found:
        raise UserError("no norm-weighted analyses for these tasks (map sets without norms): run "
                        "`bertsecrets ingest TASK`")
    plt = _plt()
    fig, axes = plt.subplots(3, len(found), figsize=(3.8 * len(found) + 1.2, 10), squeeze=False)
    tops = {m: 1.08 * max(max(r[2], r[3]) for rows in data for r in rows if r[0] == m) for m in ("share", "fig6")}
    for col, (g, rows) in enumerate(zip(found, data)):
        plain = [r[:4] for r in rows]
        items, weight, norm = _part(plain, "share")
        _paired_bars(axes[0][col], items, weight, norm, 100, "% of a query's attention", 100 * tops["share"])
        axes[0][col].set_title(f"{g.title} ({rows[0][4]} seed{'s' if rows[0][4] > 1 else ''})", fontsize=9)
        items, weight, norm = _part(plain, "fig6")
        _paired_bars(axes[1][col], items, weight, norm, 1, "Fig. 6 value", tops["fig6"])
        items, weight, norm = _part(plain, "class")
        _class_bars(axes[2][col], dict(zip(items, weight)), dict(zip(items, norm)), legend=col == len(found) - 1)
    axes[0][0].legend(fontsize=7)
    axes[2][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("By weight and by norm, fine-tuned model, mean over heads and seeds: attention to [CLS], [SEP] and "
                 "punctuation; Fig. 6 values; pattern classes", fontsize=10)
    fig.tight_layout()
    _note(fig, found)
    body = [[g.task.name, *r] for g, rows in zip(found, data) for r in rows]
    return [_save(fig, out / "tasks_norms_weight.png"),
            _write_csv(out / "tasks_norms_weight.csv", ["task", "measure", "item", "by_weight", "by_norm", "n_seeds"],
                       body)]


# -- 2. sinks and no-ops -------------------------------------------------------------------------


def sink_points(store: Store, record: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """One fine-tuned run's heads as the report's sinks table sees them, or None without norms or a head sweep.

    Keys: rows (per head: layer, head, weight and norm share of [CLS]/[SEP], their gap, |dev loss change| when
    the head is disabled, kind), rho and p (``store.findings.sink_test`` on the same numbers).
    """
    heads = weight_and_norm_shares(store, record["run_id"])
    effect = {(int(x["layer"]), int(x["head"])): abs(x["loss_delta"])
              for x in ablation_rows(store, record["run_id"], "head", metric) if x["loss_delta"] is not None}
    if not heads or not effect:
        return None
    w = np.array([float(r["cls"]) + float(r["sep"]) for r in heads])
    n = np.array([float(r["norm_cls"]) + float(r["norm_sep"]) for r in heads])
    e = np.array([effect.get((int(r["layer"]), int(r["head"])), np.nan) for r in heads])
    kinds = sink_classes(w, n)
    rho, p = sink_test(w, n, e)
    rows = [(int(r["layer"]), int(r["head"]), float(wi), float(ni), float(wi - ni), float(ei), str(k))
            for r, wi, ni, ei, k in zip(heads, w, n, e, kinds)]
    return {"rows": rows, "rho": float(rho), "p": float(p), "seed": int(record["seed"]), "run_id": record["run_id"]}


def _sinks_panel(ax, points: dict[str, Any], title: str) -> None:
    rows = points["rows"]
    for kind, (marker, colour) in KINDS.items():
        chosen = [r for r in rows if r[6] == kind]
        ax.scatter([r[4] for r in chosen], [r[5] for r in chosen], marker=marker, color=colour, s=22,
                   edgecolor="black" if kind != "other" else "none", linewidth=0.4, label=f"{kind} ({len(chosen)})",
                   zorder=3 if kind != "other" else 2)
    ax.axvline(0, color="grey", linewidth=0.6)
    ax.set_xlabel("share of [CLS]/[SEP] by weight − by norm", fontsize=8)
    ax.set_ylabel("|dev loss change| when disabled", fontsize=8)
    ax.set_title(f"{title}: ρ {points['rho']:+.2f} (p {points['p']:.4f})", fontsize=9)
    ax.legend(fontsize=7)


def _sinks_csv(path: Path, found: list[tuple[str, dict[str, Any]]]) -> Path:
    header = ["task", "seed", "run_id", "layer", "head", "weight_share", "norm_share", "gap", "abs_loss_change", "kind",
              "rho", "p"]
    body = [[task, pts["seed"], pts["run_id"], r[0] + 1, r[1] + 1, *r[2:], pts["rho"], pts["p"]]
            for task, pts in found for r in pts["rows"]]
    return _write_csv(path, header, body)


def _sink_runs(store: Store, found: list[Group]) -> list[tuple[Group, dict[str, Any]]]:
    out = []
    for g in found:
        for record in g.finetuned:
            points = sink_points(store, record, g.task.main_metric)
            if points is not None:
                out.append((g, points))
    if not out:
        names = " ".join(g.task.name for g in found)
        raise UserError(f"no run with both norm-weighted analyses and a head-disabling sweep: run `bertsecrets ingest "
                        f"{names}` (norms) and `bertsecrets ablate {names}`")
    return out


def _sinks_caption(width_inches: float, extra: str = "") -> str:
    """The sinks figures' caption, wrapped to the figure's width (about 15 characters an inch at 9 points)."""
    caption = (f"Sinks and no-ops: heads with >= {SINK_MIN:.0%} of attention on [CLS]/[SEP] by weight are 'sink' when "
               "their norm-weighted share is too, 'no-op' when not; ρ: Spearman's between the x and y shown, p: "
               "one-sided permutation p of ρ < 0 (the report's sinks table)." + extra)
    return textwrap.fill(caption, width=int(15 * width_inches))


def sinks(store: Store, task: str, out: Path) -> list[Path]:
    """Each head of each seed: (share of [CLS]/[SEP] by weight − by norm) against |dev loss change| when disabled."""
    found = _sink_runs(store, _groups(store, [task]))
    plt = _plt()
    width = max(8.0, 5.2 * len(found))
    fig, axes = plt.subplots(1, len(found), figsize=(width, 4.6), squeeze=False)
    for ax, (g, points) in zip(axes.flat, found):
        _sinks_panel(ax, points, f"{g.title} seed {points['seed']}")
    g = found[0][0]
    fig.suptitle(f"{_sinks_caption(width)}\n{g.task.title} dev, {g.model}, fine-tuned model", fontsize=9)
    fig.tight_layout()
    _note(fig, [g])
    return [_save(fig, out / "sinks.png"), _sinks_csv(out / "sinks.csv", [(g.task.name, p) for g, p in found])]


def sinks_across(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """The sinks figure with one panel per task and seed; the x axis shared, y per panel (effects differ by task)."""
    found = _sink_runs(store, _groups(store, tasks))
    plt = _plt()
    cols = min(3, len(found))
    n_rows = -(-len(found) // cols)
    width = max(8.0, 4.6 * cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(width, 3.9 * n_rows + 0.6), squeeze=False, sharex=True)
    for ax, (g, points) in zip(axes.flat, found):
        _sinks_panel(ax, points, f"{g.title} seed {points['seed']}")
    for ax in list(axes.flat)[len(found):]:
        ax.axis("off")
    fig.suptitle(_sinks_caption(width, " Fine-tuned models; y scale per panel."), fontsize=9)
    fig.tight_layout()
    _note(fig, list({g.task.name: g for g, _ in found}.values()))
    return [_save(fig, out / "tasks_sinks.png"), _sinks_csv(out / "tasks_sinks.csv", [(g.task.name, p) for g, p in found])]


# -- 3. head families ----------------------------------------------------------------------------


def families(store: Store, task: str, out: Path) -> list[Path]:
    """The 2-D MDS map of the heads, coloured by family, each labelled L<layer> H<head>; pretrained and fine-tuned."""
    plt = _plt()
    run = task_run(store, task, "analyses")
    panels = [(role, rows) for role in ("pretrained", "finetuned") if (rows := head_families(store, run["run_id"], role))]
    if not panels:
        raise UserError(f"run {run['run_id']} has no head families: run `bertsecrets analyze {task}`")
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2 * len(panels), 6.6), squeeze=False)
    body = []
    for ax, (role, rows) in zip(axes.flat, panels):
        counts = np.bincount([int(r["family"]) for r in rows])
        for family in range(len(counts)):
            chosen = [r for r in rows if int(r["family"]) == family]
            ax.scatter([r["x"] for r in chosen], [r["y"] for r in chosen], color=cmap(family % 10), s=30,
                       label=f"family {family + 1} ({counts[family]} head{'s' if counts[family] > 1 else ''})", zorder=2)
        for r in rows:
            ax.annotate(f"L{r['layer'] + 1} H{r['head'] + 1}", (r["x"], r["y"]), xytext=(2, 2),
                        textcoords="offset points", fontsize=5, color="#333333")
            body.append([role, r["layer"] + 1, r["head"] + 1, int(r["family"]) + 1, r["x"], r["y"], r["n_families"],
                         r["silhouette"], r["change"]])
        silhouette = rows[0]["silhouette"]
        ax.set_title(f"{ROLE_NAMES[role]}: {rows[0]['n_families']} families"
                     + ("" if silhouette is None else f", silhouette {silhouette:.2f}"), fontsize=9)
        ax.set_xlabel("MDS 1", fontsize=8)
        ax.set_ylabel("MDS 2", fontsize=8)
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"Head families: heads close together attend alike (Jensen-Shannon distance of their maps, MDS; "
                 f"average-linkage families). {_title(run)}", fontsize=10)
    fig.tight_layout()
    return [_save(fig, out / "families.png"),
            _write_csv(out / "families.csv", ["role", "layer", "head", "family", "x", "y", "n_families", "silhouette",
                                              "change"], body)]


# -- 4. head stability across seeds --------------------------------------------------------------


def stability(store: Store, task: str, out: Path) -> list[Path]:
    """Each head's JS distance to itself in the task's other seeds, as a layer x head grid on a 0-1 scale."""
    plt = _plt()
    run = task_run(store, task, "analyses")
    rows = head_stability_of(store, run["run_id"])
    if not rows:
        raise UserError(f"run {run['run_id']} has no other seed compared with it: fine-tune a second seed "
                        f"(`bertsecrets ingest {task} --seeds 0,1`)")
    grid = np.full((run["n_layers"], run["n_heads"]), np.nan)
    for r in rows:
        grid[r["layer"], r["head"]] = r["distance"]
    n_runs = max(int(r["n_runs"]) for r in rows)
    fig, ax = plt.subplots(figsize=(1.6 + 0.62 * run["n_heads"], 1.4 + 0.5 * run["n_layers"]))
    image = _heatmap(ax, grid, f"Head stability: JS distance between a head's fine-tuned maps in seed {run['seed']} and "
                               f"in {n_runs} other seed{'s' if n_runs > 1 else ''} (same inputs; 0 = identical), "
                               f"mean {np.nanmean(grid):.3f}\n{_title(run)}", cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="Jensen-Shannon distance")
    return [_save(fig, out / "stability.png"),
            _write_csv(out / "stability.csv", ["layer", "head", "distance", "n_runs"],
                       [[r["layer"] + 1, r["head"] + 1, r["distance"], r["n_runs"]] for r in rows])]


# -- 5. attention rollout ------------------------------------------------------------------------


def last_layer_rollout(store: Store, run_id: str, n_layers: int) -> list[tuple[str, float, float]]:
    """The fine-tuned model's last-layer [CLS]: (token type, raw share, share after rollout), in the analysis's order."""
    return [(r["feature"], float(r["raw"]), float(r["rollout"])) for r in cls_rollout(store, run_id, "finetuned")
            if r["layer"] == n_layers - 1 and r["raw"] is not None and r["rollout"] is not None]


def _rollout_bars(ax, rows: list[tuple[str, float, float]], top: float) -> None:
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [100 * r[1] for r in rows], 0.4, color=RAW_COLOUR, label="raw attention (mean over heads)")
    ax.bar(x + 0.2, [100 * r[2] for r in rows], 0.4, color=ROLLOUT_COLOUR, label="after rollout")
    ax.set_xticks(x, [r[0] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("% of [CLS]'s row", fontsize=8)
    ax.set_ylim(0, 100 * top)


def rollout(store: Store, task: str, out: Path) -> list[Path]:
    """Where the last layer's [CLS] takes its representation from per token type: raw attention vs rollout."""
    plt = _plt()
    run = task_run(store, task, "analyses")
    rows = last_layer_rollout(store, run["run_id"], run["n_layers"])
    if not rows:
        raise UserError(f"run {run['run_id']} has no attention rollout: run `bertsecrets analyze {task}`")
    fig, ax = plt.subplots(figsize=(7.5, 4))
    _rollout_bars(ax, rows, min(1.0, 1.1 * max(max(r[1], r[2]) for r in rows)))
    ax.legend(fontsize=8)
    ax.set_title(f"Attention rollout (Abnar and Zuidema 2020): the last layer's [CLS], fine-tuned model, mean over "
                 f"inputs\n{_title(run)}", fontsize=9)
    return [_save(fig, out / "rollout.png"),
            _write_csv(out / "rollout.csv", ["feature", "raw", "rollout"], [list(r) for r in rows])]


def rollout_across(store: Store, out: Path, tasks: list[str] | None = None) -> list[Path]:
    """Rollout per task, mean over seeds: one panel per task, one scale."""
    found, data = [], []
    for g in _groups(store, tasks):
        per_seed = [rows for rows in (last_layer_rollout(store, r["run_id"], g.n_layers) for r in g.finetuned) if rows]
        if per_seed:
            features = [f for f, _, _ in per_seed[0]]
            found.append(g)
            data.append([(f, _mean([dict((x[0], x[1]) for x in s).get(f) for s in per_seed]),
                          _mean([dict((x[0], x[2]) for x in s).get(f) for s in per_seed]), len(per_seed))
                         for f in features])
    if not found:
        raise UserError("no attention rollout for these tasks: run `bertsecrets analyze TASK`")
    plt = _plt()
    fig, axes = plt.subplots(1, len(found), figsize=(4.2 * len(found), 3.8), squeeze=False)
    top = min(1.0, 1.1 * max(max(r[1], r[2]) for rows in data for r in rows))
    for ax, g, rows in zip(axes.flat, found, data):
        _rollout_bars(ax, [r[:3] for r in rows], top)
        ax.set_title(f"{g.title} ({rows[0][3]} seed{'s' if rows[0][3] > 1 else ''})", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Attention rollout across tasks: the last layer's [CLS], raw attention vs after rollout, fine-tuned "
                 "model, mean over inputs and seeds", fontsize=10)
    fig.tight_layout()
    _note(fig, found)
    body = [[g.task.name, *r] for g, rows in zip(found, data) for r in rows]
    return [_save(fig, out / "tasks_rollout.png"),
            _write_csv(out / "tasks_rollout.csv", ["task", "feature", "raw", "rollout", "n_seeds"], body)]


FIGURES = [
    ("norms", norms),
    ("sinks", sinks),
    ("families", families),
    ("stability", stability),
    ("rollout", rollout),
]

#: (name, function(store, out_dir, tasks) -> paths, caption), drawn after ``bertsecrets.figures.tasks.FIGURES``.
ACROSS_FIGURES = [
    ("norms", norms_across, "Weight beside norm across tasks: [CLS], [SEP], punctuation, Fig. 6 types, classes"),
    ("sinks", sinks_across, "Sinks and no-ops across tasks: weight-norm gap vs |loss change| per head and seed"),
    ("rollout", rollout_across, "Attention rollout across tasks: the last layer's [CLS], raw vs rollout"),
]
