"""The per-head statistics the head grid colours by, built from a run's analysis and ablation rows.

One registry entry per statistic: which table fills it, which command
computes it, whether it has a pretrained and a fine-tuned value, and what can
be chosen within it (a feature, a class, a metric, a relation). Layers and
heads are 0-indexed here, as stored; the screens add 1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from bertsecrets.tui.reader import CLASS_SOURCES, RunStats
from bertsecrets.store.labels import PATTERN_CLASSES

#: Short names of the pattern classes for cells too narrow for words.
CLASS_ABBREV = {"vertical": "V", "diagonal": "D", "vertical+diagonal": "VD", "block": "B", "heterogeneous": "H"}
DOMINANT = "dominant"


def short(value: float) -> str:
    """A value in at most 4 characters: ".423", "1.00", "12.3", "-.05"."""
    if abs(value) >= 10:
        return f"{value:.1f}"[:4]
    text = f"{value:.2f}" if value < 0 or value >= 1 else f"{value:.3f}"
    return text.replace("0.", ".", 1)[:4]


def points(value: float) -> str:
    """A fraction as signed percentage points: "+1.2"."""
    return f"{100 * value:+.1f}"


@dataclass
class Grid:
    """Values of one statistic per head, ready to colour."""

    values: np.ndarray  # [layer, head], NaN where missing
    kind: str  # seq | div | cat (cat: values are class indices)
    low: float = 0.0
    high: float = 1.0
    marks: np.ndarray | None = None  # [layer, head] bool: drawn with a "*"
    text: list[list[str]] | None = None  # short text per cell instead of the number
    note: str = ""  # what the colours and marks mean
    fmt: Callable[[float], str] = field(default=short)  # a value as cell text

    @property
    def empty(self) -> bool:
        return bool(np.isnan(self.values).all())


@dataclass(frozen=True)
class HeadStat:
    """One statistic of the head grid."""

    key: str
    title: str
    table: str  # the catalog table that holds it
    command: str  # the bertsecrets command that computes it: analyze | ablate
    by_role: bool  # a value for the pretrained and for the fine-tuned model
    grid: Callable[[RunStats, str | None, str], Grid]  # (stats, option, role)
    options: Callable[[RunStats, str], list[str]] | None = None  # choices within it (a feature, a metric...)

    def missing(self, task: str) -> str:
        return f"{self.title}: not computed yet: run `bertsecrets {self.command} {task}`"


def top(*arrays: np.ndarray, default: float = 1.0) -> float:
    """The largest finite value in ``arrays``, the top of a colour scale; ``default`` where none is above 0."""
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(0)
    return float(finite.max()) if finite.size and finite.max() > 0 else default


def per_head(stats: RunStats, rows: list[dict[str, Any]], column: str) -> np.ndarray:
    """``column`` of ``rows`` as a [layer, head] array, NaN where no row has it."""
    out = np.full((stats.n_layers, stats.n_heads), np.nan)
    for row in rows:
        layer, head, value = row.get("layer"), row.get("head"), row.get(column)
        if layer is not None and head is not None and value is not None and layer < stats.n_layers and head < stats.n_heads:
            out[layer, head] = value
    return out


def _seq(values: np.ndarray, note: str = "", low: float | None = None) -> Grid:
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if low is None and finite.size else (low or 0.0)
    hi = float(finite.max()) if finite.size else 1.0
    return Grid(values, "seq", lo, hi if hi > lo else lo + 1.0, note=note)


def distinct(stats: RunStats, table: str, column: str, role: str | None = None) -> list[str]:
    values = {r[column] for r in stats.rows(table) if r.get(column) is not None and (role is None or r.get("role") == role)}
    return sorted(values)


def of_role(stats: RunStats, table: str, role: str, **match: Any) -> list[dict[str, Any]]:
    return [r for r in stats.rows(table) if r.get("role") == role and all(r.get(k) == v for k, v in match.items())]


def class_source(stats: RunStats, role: str) -> str | None:
    """The classes to show: the classifier's where it has run, else the rules'."""
    present = {r["source"] for r in stats.rows("class_shares") if r.get("role") == role}
    return next((s for s in CLASS_SOURCES if s in present), None)


def _class_grid(stats: RunStats, option: str | None, role: str) -> Grid:
    source = class_source(stats, role)
    rows = of_role(stats, "class_shares", role, source=source)
    if option and option != DOMINANT:
        return _seq(per_head(stats, [r for r in rows if r["label"] == option], "share"),
                    f"share of {option} maps ({source})", low=0.0)
    shares = np.zeros((len(PATTERN_CLASSES), stats.n_layers, stats.n_heads))
    for r in rows:
        if r["label"] in PATTERN_CLASSES and r["layer"] < stats.n_layers and r["head"] < stats.n_heads:
            shares[PATTERN_CLASSES.index(r["label"]), r["layer"], r["head"]] = r["share"] or 0.0
    has = shares.sum(axis=0) > 0
    best = np.where(has, shares.argmax(axis=0), -1)
    text = [[CLASS_ABBREV[PATTERN_CLASSES[c]] if c >= 0 else "" for c in row] for row in best]
    values = np.where(has, best, np.nan).astype(float)
    legend = " ".join(f"{a}={c}" for c, a in CLASS_ABBREV.items())
    return Grid(values, "cat", 0, len(PATTERN_CLASSES), text=text, note=f"most frequent class ({source}): {legend}")


def _feature_grid(stats: RunStats, option: str | None, role: str) -> Grid:
    rows = of_role(stats, "feature_attention", role, feature=option)
    return _seq(per_head(stats, rows, "value"), f"attention to {option} tokens (column sum / L, max over tokens)", low=0.0)


def _column_grid(table: str, column: str, note: str, role_bound: bool = True) -> Callable[[RunStats, str | None, str], Grid]:
    def grid(stats: RunStats, option: str | None, role: str) -> Grid:
        rows = of_role(stats, table, role) if role_bound else stats.rows(table)
        return _seq(per_head(stats, rows, column), note)

    return grid


def _ablation_grid(stats: RunStats, option: str | None, role: str) -> Grid:
    rows = [r for r in stats.rows("ablation") if r.get("kind") == "head" and r.get("metric") == option]
    delta = per_head(stats, rows, "delta")
    low, high = per_head(stats, rows, "ci_low"), per_head(stats, rows, "ci_high")
    with np.errstate(invalid="ignore"):
        marks = (low > 0) | (high < 0)
    span = top(np.abs(delta))
    return Grid(delta, "div", -span, span, marks=marks, fmt=points,
                note=f"{option} with the head disabled minus baseline, in points; * = 95% interval excludes 0")


def _relation_grid(stats: RunStats, option: str | None, role: str) -> Grid:
    rows = of_role(stats, "relation_heads", role, relation=option)
    grid = _seq(per_head(stats, rows, "score"), f"max attention over {option} pairs, mean over sentences; * = top 1%", low=0.0)
    flagged = per_head(stats, [{**r, "flagged": float(bool(r.get("flagged")))} for r in rows], "flagged")
    grid.marks = flagged == 1
    return grid


STATS: list[HeadStat] = [
    HeadStat("class", "pattern class", "class_shares", "analyze", True, _class_grid,
             lambda s, role: [DOMINANT, *PATTERN_CLASSES] if class_source(s, role) else []),
    HeadStat("feature", "attention to a feature", "feature_attention", "analyze", True, _feature_grid,
             lambda s, role: distinct(s, "feature_attention", "feature", role)),
    HeadStat("cosine", "pretrained vs fine-tuned cosine", "head_change", "analyze", False,
             _column_grid("head_change", "cosine_mean", "cosine of the pretrained and fine-tuned maps, mean over inputs",
                          role_bound=False)),
    HeadStat("ablation", "disabling effect", "ablation", "ablate", False, _ablation_grid,
             lambda s, role: distinct(s, "ablation", "metric")),
    HeadStat("importance", "importance", "head_importance", "ablate", False,
             _column_grid("head_importance", "importance", "|d loss / d gate|, mean over dev inputs (Michel et al.)",
                          role_bound=False)),
    HeadStat("entropy", "entropy", "head_stats", "analyze", True,
             _column_grid("head_stats", "entropy", "attention entropy in nats, mean over queries and inputs")),
    HeadStat("cls", "[CLS] attention", "head_stats", "analyze", True,
             _column_grid("head_stats", "attn_cls", "mean attention a query gives [CLS]")),
    HeadStat("sep", "[SEP] attention", "head_stats", "analyze", True,
             _column_grid("head_stats", "attn_sep", "mean attention a query gives the [SEP] tokens")),
    HeadStat("relation", "relation heads", "relation_heads", "analyze", True, _relation_grid,
             lambda s, role: distinct(s, "relation_heads", "relation", role)),
]


def options_of(stat: HeadStat, stats: RunStats, role: str) -> list[str]:
    return stat.options(stats, role) if stat.options else []


def stat_grid(stat: HeadStat, stats: RunStats, option: str | None, role: str) -> tuple[Grid | None, str | None]:
    """The grid of one statistic and the option it shows; no grid when its table has no rows for the run."""
    options = options_of(stat, stats, role)
    if stat.options:
        if not options:
            return None, None
        if option not in options:
            option = options[0]
    grid = stat.grid(stats, option, role)
    return (None if grid.empty else grid), option


def change_text(row: dict[str, Any]) -> str:
    """An ablation row's change and interval in percentage points: "+1.2 [+0.2, +2.1] *" (* = excludes 0)."""
    if row.get("delta") is None:
        return "-"
    text = f"{100 * row['delta']:+.1f}"
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is not None and high is not None:
        text += f" [{100 * low:+.1f}, {100 * high:+.1f}]" + (" *" if low > 0 or high < 0 else "")
    return text


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def head_details(stats: RunStats, layer: int, head: int, role: str) -> list[tuple[str, str]]:
    """Every statistic of one head as (name, text) lines for the side panel; missing ones as "-"."""
    def one(table: str, role_bound: bool = True, **match: Any) -> dict[str, Any] | None:
        for r in stats.rows(table):
            if r.get("layer") == layer and r.get("head") == head and (not role_bound or r.get("role") == role) \
                    and all(r.get(k) == v for k, v in match.items()):
                return r
        return None

    out: list[tuple[str, str]] = []
    source = class_source(stats, role)
    shares = sorted(
        (r for r in of_role(stats, "class_shares", role, source=source) if r["layer"] == layer and r["head"] == head),
        key=lambda r: -(r["share"] or 0),
    )
    top = ", ".join(f"{r['label']} {100 * (r['share'] or 0):.0f}%" for r in shares[:2])
    out.append(("class", f"{top} ({source})" if shares else "-"))
    hs = one("head_stats") or {}
    out.append(("entropy", fmt(hs.get("entropy"), 2)))
    out.append(("[CLS]/[SEP]", f"{fmt(hs.get('attn_cls'), 2)} / {fmt(hs.get('attn_sep'), 2)}"))
    out.append(("self/prev/next", "/".join(fmt(hs.get(k), 2) for k in ("attn_self", "attn_prev", "attn_next"))))
    out.append(("punct, dist", f"{fmt(hs.get('attn_punct'), 2)}, {fmt(hs.get('attn_distance'), 1)}"))
    hc = one("head_change", role_bound=False) or {}
    out.append(("cosine pre/ft", f"{fmt(hc.get('cosine_mean'))} ± {fmt(hc.get('cosine_std'))}" if hc else "-"))
    hi = one("head_importance", role_bound=False) or {}
    out.append(("importance", f"{fmt(hi.get('importance'), 4)} (rank {hi['rank']})" if hi else "-"))
    for metric in distinct(stats, "ablation", "metric"):
        ab = one("ablation", role_bound=False, kind="head", metric=metric)
        if ab:
            out.append((f"disable: {metric}", change_text(ab)))
    for feature in distinct(stats, "feature_attention", "feature", role):
        fa = one("feature_attention", feature=feature)
        out.append((f"to {feature}", fmt(fa.get("value") if fa else None)))
    for relation in distinct(stats, "relation_heads", "relation", role):
        rh = one("relation_heads", relation=relation)
        out.append((relation, fmt(rh.get("score") if rh else None) + (" *" if rh and rh.get("flagged") else "")))
    return out


# -- over the seeds of a configuration ---------------------------------------------------


#: What a grid over seeds shows: each head's mean, or its sample standard deviation (as the findings report's "± sd").
OVER_SEEDS = ("mean", "sd")
OVER_WORDS = {"mean": "mean", "sd": "standard deviation"}


@dataclass
class SeedGrid:
    """One statistic over the seeds of a configuration: its mean or spread per head, and each seed's values."""

    grid: Grid | None  # None: ``why``
    seeds: list[int]  # the seeds that have the statistic
    values: np.ndarray  # [seed, layer, head]: each seed's grid, NaN where missing
    why: str = ""


def unsigned_points(value: float) -> str:
    """A spread of fractions in percentage points: "1.2"."""
    return f"{100 * value:.1f}"


def seed_grid(stat: HeadStat, runs: list[RunStats], option: str | None, role: str, how: str) -> SeedGrid:
    """The mean (``how`` "mean") or the sample standard deviation ("sd") over ``runs`` of one statistic, per head.

    Each seed's grid is the per-run grid of the statistic with the same option (a
    seed whose table lacks that option or has no rows is left out); the mean and
    the spread ignore a head's missing values (nanmean, nanstd with one degree of
    freedom). A most-frequent-class grid has no mean: its cells are classes.
    """
    grids, seeds = [], []
    for stats in runs:
        if stat.options and option not in options_of(stat, stats, role):
            continue
        grid = stat.grid(stats, option, role)
        if not grid.empty:
            grids.append(grid)
            seeds.append(int(stats.seed) if stats.seed is not None else len(seeds))
    if not grids:
        return SeedGrid(None, [], np.zeros((0, 0, 0)), f"{stat.title}: no seed of this configuration has it")
    if len({g.values.shape for g in grids}) > 1:
        return SeedGrid(None, seeds, np.zeros((0, 0, 0)), "the seeds' runs have different numbers of layers or heads")
    values = np.stack([g.values for g in grids])
    first = grids[0]
    if first.kind == "cat":
        return SeedGrid(None, seeds, values, "the most frequent class has no mean over seeds: x picks one class's share")
    with warnings.catch_warnings():  # a head without a value in any seed (or in one only, for the spread) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        out = np.nanmean(values, axis=0) if how == "mean" else np.nanstd(values, axis=0, ddof=1)
    which = f"{OVER_WORDS[how]} over {len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"
    note, _, marked = first.note.partition("; *")
    if how == "mean":
        marks = None
        if all(g.marks is not None for g in grids):
            marks = np.logical_and.reduce([g.marks for g in grids])
            note += f"; *{marked} in every seed"
        if first.kind == "div":
            span = top(np.abs(out))
            low, high = -span, span
        else:
            low = min(g.low for g in grids)
            finite = out[np.isfinite(out)]
            high = float(finite.max()) if finite.size else low + 1.0
            high = high if high > low else low + 1.0
        grid = Grid(out, first.kind, low, high, marks=marks, note=f"{which} of: {note}", fmt=first.fmt)
    else:
        grid = Grid(out, "seq", 0.0, top(out), note=f"{which} of: {note}",
                    fmt=unsigned_points if first.fmt is points else short)
    return SeedGrid(None if grid.empty else grid, seeds, values,
                    "" if not grid.empty else f"{stat.title}: no head has values in two seeds")
