"""The paper's claims checked across tasks and seeds from what the store holds: the findings report's content.

Read-only and without torch, so the CLI (`bertsecrets report`, the grid's
closing table) and the browser's Tasks screen show the same numbers. For each
task the runs compared are one *configuration*: the finished fine-tuned runs
that differ only in their seed (same model, data, training settings, device),
the one with the most seeds where a task has several; each seed's other
set-ups are the runs of the same ingest. Numbers are means over seeds with
their sample standard deviation ("82.1 ± 1.2"); an ablation interval is the
run's 95% paired bootstrap interval over dev examples.

A claim's verdict over seeds: **holds** when every seed shows it, **does not
hold** when none does, **mixed** otherwise; over tasks the same, from the
tasks the claim is made for; **cannot be tested here** names what is missing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Callable

import numpy as np

from bertsecrets.core.patterns import VERTICAL_MIN
from bertsecrets.core.settings import columns, stored_weights
from bertsecrets.core.stats import spearman
from bertsecrets.core.tasks import SETUPS, TASKS, Task, get_task
from bertsecrets.store import queries
from bertsecrets.store.store import Store

HOLDS, FAILS, MIXED, UNTESTED = "holds", "does not hold", "mixed", "cannot be tested here"
#: Where [CLS] of the last layer attends most, by the paper (Fig. 7): [SEP], except on these tasks.
CLS_NOT_SEP = ("sts-b", "rte", "qnli")
#: The share of heads whose 95% interval lies above 0 by chance alone (one side of a 95% interval).
CHANCE = 0.025
#: Resamples of the permutation tests (their p-values are at least 1 / (N + 1)).
N_PERMUTATIONS = 9999
LINGUISTIC = ("noun", "verb", "pronoun", "subject", "object", "negation")


# -- which runs ---------------------------------------------------------------------------------


@dataclass
class Group:
    """One task's configuration: its fine-tuned runs, one per seed, and each seed's other set-ups."""

    task: Task
    model: str
    finetuned: list[dict[str, Any]]  # by seed
    setups: dict[int, dict[str, dict[str, Any]]]  # seed -> set-up -> finished run record
    cap: int | None  # max_train_examples, when the training set was cut

    @property
    def seeds(self) -> list[int]:
        return [int(r["seed"]) for r in self.finetuned]

    @property
    def n_layers(self) -> int:
        return int(self.finetuned[0]["n_layers"])

    @property
    def title(self) -> str:
        """The task's name as every table shows it: with a mark when its training set was cut."""
        return self.task.title + ("*" if self.cap else "")

    @property
    def note(self) -> str:
        """What a reader must know next to this task's numbers ('' when nothing)."""
        if not self.cap:
            return ""
        return (f"{self.task.title}*: fine-tuned on the first {self.cap:,} training examples only "
                f"(--max-train-examples), not the full training set")


def cut_note(record: dict[str, Any]) -> str:
    """``; fine-tuned on the first N training examples only`` for a run made with --max-train-examples, else ''."""
    if record.get("max_train_examples") is None or record.get("setup") == "no_finetuning":
        return ""
    return f"; fine-tuned on the first {int(record['train_examples']):,} training examples only"


def _configuration(record: dict[str, Any]) -> tuple:
    """What decides a run's results except its seed."""
    settings = tuple(record.get(name) for name, _ in columns() if name != "seed")
    return (record["model_used"], record["data_fingerprint"], record.get("device"), record.get("dtype"),
            stored_weights(record), *settings)


def groups(store: Store, tasks: list[str] | None = None) -> list[Group]:
    """One configuration per task (the paper's order), of ``tasks`` or of every task with a finished run."""
    wanted = None if tasks is None else {get_task(t).name for t in tasks}
    by_config: dict[tuple, dict[int, dict[str, Any]]] = {}
    for record in queries.finished_finetuned_runs(store):
        if wanted is not None and record["task"] not in wanted:
            continue
        seeds = by_config.setdefault((record["task"], *_configuration(record)), {})
        seeds.setdefault(int(record["seed"]), record)  # the latest started, where a seed was run twice
    best: dict[str, dict[int, dict[str, Any]]] = {}
    for key, seeds in by_config.items():
        task = key[0]
        latest = max(str(r["started_at"]) for r in seeds.values())
        if task not in best or (len(seeds), latest) > (len(best[task]), max(str(r["started_at"]) for r in best[task].values())):
            best[task] = seeds
    out = []
    for name in TASKS:
        if name not in best:
            continue
        finetuned = [best[name][s] for s in sorted(best[name])]
        setups = {int(r["seed"]): {x["setup"]: x for x in queries.experiment_runs(store, r["experiment_id"])}
                  for r in finetuned}
        cap = finetuned[0].get("max_train_examples")
        out.append(Group(get_task(name), finetuned[0]["model_used"], finetuned, setups,
                         None if cap is None or (isinstance(cap, float) and math.isnan(cap)) else int(cap)))
    return out


# -- numbers over seeds -------------------------------------------------------------------------


@dataclass
class Spread:
    """One number per seed; shown as the mean and the sample standard deviation."""

    values: list[float]

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def sd(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None

    def text(self, scale: float = 100.0, digits: int = 1, sign: bool = False) -> str:
        if not self.values:
            return "-"
        fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
        out = fmt.format(scale * self.mean)
        return out if self.sd is None else f"{out} ± {scale * self.sd:.{digits}f}"


def _seed_verdict(flags: list[bool]) -> str:
    if not flags:
        return UNTESTED
    return HOLDS if all(flags) else FAILS if not any(flags) else MIXED


def _overall(verdicts: list[str]) -> str:
    tested = [v for v in verdicts if v != UNTESTED]
    if not tested:
        return UNTESTED
    return HOLDS if all(v == HOLDS for v in tested) else FAILS if all(v == FAILS for v in tested) else MIXED


# -- the report's content -----------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    verdict: str | None = None  # None: shown for comparison, the claim is not made for this task


@dataclass
class Claim:
    where: str  # "Table 1", "Fig. 7"
    statement: str
    paper: str
    cells: dict[str, Cell]  # task -> our number
    verdict: str
    why: str = ""  # how the verdict was reached, or what is missing

    @property
    def scope(self) -> str:
        """Where the verdict rests when some tasks the claim is made for cannot be tested ("tested on MRPC only",
        "tested on 2 of 4 tasks"); "" when it rests on all of them, or on none."""
        made = [t for t, c in self.cells.items() if c.verdict is not None]
        tested = [t for t in made if self.cells[t].verdict != UNTESTED]
        if not tested or len(tested) == len(made):
            return ""
        if len(tested) == 1:
            return f"tested on {get_task(tested[0]).title} only"
        return f"tested on {len(tested)} of {len(made)} tasks"

    @property
    def verdict_text(self) -> str:
        """The verdict with its scope: "holds (tested on MRPC only)"."""
        return f"{self.verdict} ({self.scope})" if self.scope else self.verdict


@dataclass
class Section:
    """A table of the report: a title, what it shows, a header and rows of text."""

    title: str
    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Findings:
    groups: list[Group]
    claims: list[Claim] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [g.note for g in self.groups if g.note]


class _Reader:
    """The store's answers for one run, each asked once."""

    def __init__(self, store: Store):
        self.store = store
        self._cache: dict[tuple, Any] = {}

    def _get(self, key: tuple, ask: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = ask()
        return self._cache[key]

    def shares(self, run_id: str, norm: bool = False) -> dict[tuple[str, str, str], float]:
        return self._get(("shares", run_id, norm), lambda: {(r["source"], r["role"], r["label"]): float(r["share"])
                                                            for r in queries.class_shares(self.store, run_id, norm)})

    def change(self, run_id: str, norm: bool = False) -> dict[int, float]:
        return self._get(("change", run_id, norm), lambda: {
            int(r["layer"]): float(r["cosine"]) for r in queries.layer_change(self.store, run_id, norm)})

    def features(self, run_id: str, role: str, norm: bool = False) -> list[dict[str, Any]]:
        return self._get(("features", run_id, role, norm),
                         lambda: queries.feature_attention(self.store, run_id, role, norm))

    def layers(self, run_id: str, role: str) -> list[dict[str, Any]]:
        return self._get(("layers", run_id, role), lambda: queries.layer_means(self.store, run_id, role))

    def cls(self, run_id: str, role: str) -> list[dict[str, Any]]:
        return self._get(("cls", run_id, role), lambda: queries.cls_attention(self.store, run_id, role))

    def ablation(self, run_id: str, metric: str) -> list[dict[str, Any]]:
        return self._get(("ablation", run_id, metric), lambda: queries.ablation_rows(self.store, run_id, metric=metric))

    def rollout(self, run_id: str) -> list[dict[str, Any]]:
        return self._get(("rollout", run_id), lambda: queries.cls_rollout(self.store, run_id))

    def profiles(self, run_id: str, role: str) -> list[dict[str, Any]]:
        return self._get(("profiles", run_id, role), lambda: queries.head_profiles(self.store, run_id, role))

    def by_norm(self, run_id: str) -> list[dict[str, Any]]:
        return self._get(("by_norm", run_id), lambda: queries.weight_and_norm_shares(self.store, run_id))


def _pct(value: float | None, sign: bool = True) -> str:
    return "-" if value is None else (f"{100 * value:+.1f}" if sign else f"{100 * value:.1f}")


def _interval(row: dict[str, Any]) -> str:
    return "" if row.get("ci_low") is None else f" [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}]"


def _metric(record: dict[str, Any] | None, metric: str) -> float | None:
    if record is None or record.get(metric) is None:
        return None
    value = float(record[metric])
    return None if math.isnan(value) else value


def head_effects(reader: _Reader, group: Group) -> np.ndarray | None:
    """[seed, layer * head]: each head's effect, the dev loss increase when it is disabled (None: no sweep).

    The loss is continuous where a metric moves by whole examples, so it ranks
    heads with few ties; a larger value is a more important head.
    """
    metric = group.task.main_metric
    out = []
    for record in group.finetuned:
        rows = [r for r in reader.ablation(record["run_id"], metric) if r["kind"] == "head"]
        if not rows:
            return None
        grid = np.full(group.n_layers * int(record["n_heads"]), np.nan)
        for r in rows:
            grid[int(r["layer"]) * int(record["n_heads"]) + int(r["head"])] = r["loss_delta"]
        out.append(grid)
    return np.array(out)


@dataclass
class HeadDeltas:
    """Each head's change of a task's main metric when it is disabled, per seed with a head-disabling sweep."""

    metric: str
    seeds: list[int]
    delta: np.ndarray  # [seed, layer, head], fractions (NaN: no row)
    ci_low: np.ndarray  # [seed, layer, head]: the 95% paired-bootstrap interval
    ci_high: np.ndarray


def head_deltas(store: Store, group: Group) -> HeadDeltas | None:
    """The task's head-disabling effects on its main metric for every seed of ``group`` that has a sweep
    (None: no seed has one); what the Tasks screen of the browser draws as one grid per task."""
    metric = group.task.main_metric
    seeds, grids = [], []
    for record in group.finetuned:
        rows = queries.ablation_rows(store, record["run_id"], kind="head", metric=metric)
        if not rows:
            continue
        shape = (3, int(record["n_layers"]), int(record["n_heads"]))
        grid = np.full(shape, np.nan)
        for r in rows:
            for i, column in enumerate(("delta", "ci_low", "ci_high")):
                if r.get(column) is not None:
                    grid[i, int(r["layer"]), int(r["head"])] = r[column]
        seeds.append(int(record["seed"]))
        grids.append(grid)
    if not grids or len({g.shape for g in grids}) != 1:
        return None
    stacked = np.stack(grids, axis=1)  # [column, seed, layer, head]
    return HeadDeltas(metric, seeds, stacked[0], stacked[1], stacked[2])


def seed_runs(store: Store, run_id: str) -> list[dict[str, Any]]:
    """The finished fine-tuned runs that differ from ``run_id`` only in their seed, one per seed, by seed.

    ``run_id`` itself stands for its seed; a run of another set-up stands for its
    experiment's fine-tuned run. Empty when there is no such finished fine-tuned run.
    """
    record = store.run(run_id)
    if record is None:
        return []
    if record["setup"] != "finetuned":
        record = next((r for r in queries.experiment_runs(store, record["experiment_id"])
                       if r["setup"] == "finetuned"), None)
        if record is None:
            return []
    key = (record["task"], *_configuration(record))
    seeds: dict[int, dict[str, Any]] = {}
    for other in queries.finished_finetuned_runs(store):
        if (other["task"], *_configuration(other)) == key:
            seeds.setdefault(int(other["seed"]), other)  # the latest started, where a seed was run twice
    if record["status"] == "done":
        seeds[int(record["seed"])] = record  # but the run asked about stands for its own seed
    return [seeds[s] for s in sorted(seeds)]


def rank_test(x: np.ndarray, y: np.ndarray, n_resamples: int = N_PERMUTATIONS, seed: int = 0,
              alternative: str = "greater") -> tuple[float, float]:
    """Spearman's ρ of ``x`` and ``y`` and its one-sided permutation p-value (ρ > 0, or ρ < 0 with
    ``alternative="less"``), by shuffling the pairing."""
    from scipy.stats import permutation_test, rankdata

    keep = ~(np.isnan(x) | np.isnan(y))
    rx, ry = rankdata(x[keep]), rankdata(y[keep])

    def rho(a, axis=-1):
        a = a - a.mean(axis=axis, keepdims=True)
        b = ry - ry.mean()
        return (a * b).sum(axis=axis) / np.sqrt((a * a).sum(axis=axis) * (b * b).sum())

    result = permutation_test((rx,), rho, permutation_type="pairings", n_resamples=n_resamples,
                              alternative=alternative, vectorized=True, random_state=seed)
    return float(result.statistic), float(result.pvalue)


def findings(store: Store, tasks: list[str] | None = None) -> Findings:
    """Every claim the store can test, and the cross-task tables, for ``tasks`` (default: all with runs)."""
    out = Findings(groups(store, tasks))
    reader = _Reader(store)
    if not out.groups:
        return out
    out.sections.append(_table1(out.groups))
    out.claims += _table1_claims(out.groups)
    out.claims.append(_heterogeneous(reader, out.groups))
    out.claims.append(_last_layers(reader, out.groups))
    out.claims += _features(reader, out.groups)
    out.claims.append(_cls_last(reader, out.groups))
    out.claims += _ablation_claims(reader, out.groups)
    shared, section = _shared_heads(reader, out.groups)
    out.claims.append(shared)
    out.claims += _norm_claims(reader, out.groups)
    out.sections += [_class_table(reader, out.groups), _change_table(reader, out.groups),
                     _feature_table(reader, out.groups), _cls_table(reader, out.groups),
                     _ablation_table(reader, out.groups)]
    if section is not None:
        out.sections.append(section)
    out.sections += _norm_sections(reader, out.groups)
    stability = _stability(reader, out.groups)
    if stability is not None:
        out.sections.append(stability)
    out.sections += _flow_sections(reader, out.groups)
    return out


# -- Table 1 -----------------------------------------------------------------------------------


def _table1(groups: list[Group]) -> Section:
    rows = []
    for g in groups:
        for setup in ("no_finetuning", "random_init", "finetuned"):
            cells = []
            for metric in g.task.metrics:
                values = [_metric(g.setups[s].get(setup), metric) for s in g.seeds]
                cells.append(Spread([v for v in values if v is not None]).text() + f" {metric}")
            rows.append([g.title, SETUPS[setup], ", ".join(cells), g.task.paper(setup) or "-",
                         str(sum(setup in g.setups[s] for s in g.seeds))])
    return Section("Table 1: the three set-ups per task",
                   "Dev metrics in %, mean ± standard deviation over seeds; the paper's numbers are bert-base-uncased "
                   "(MRPC and QQP: F1/accuracy).", ["task", "set-up", "this store", "paper", "seeds"], rows)


def _paired(groups: list[Group], better: str, worse: str) -> dict[str, Cell]:
    cells = {}
    for g in groups:
        metric = g.task.main_metric
        pairs = [(_metric(g.setups[s].get(better), metric), _metric(g.setups[s].get(worse), metric)) for s in g.seeds]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            cells[g.task.name] = Cell(f"no finished {worse} run", UNTESTED)
            continue
        a, b = Spread([p[0] for p in pairs]), Spread([p[1] for p in pairs])
        cells[g.task.name] = Cell(f"{a.text()} vs {b.text()} {metric}", _seed_verdict([x > y for x, y in pairs]))
    return cells


def _table1_claims(groups: list[Group]) -> list[Claim]:
    out = []
    for worse, statement, paper in (
        ("random_init", "Pretraining matters: pretrained + fine-tuning beats random init + fine-tuning on every task",
         "MRPC 87.9 vs 81.2 F1, STS-B 82.7 vs 2.9, SST-2 92.0 vs 80.5, RTE 64.6 vs 52.7"),
        ("no_finetuning", "Fine-tuning matters: the pretrained encoder with an untrained classifier head is far below",
         "MRPC 87.9 vs 0 F1, STS-B 82.7 vs 33.1, SST-2 92.0 vs 49.1, RTE 64.6 vs 52.7"),
    ):
        cells = _paired(groups, "finetuned", worse)
        out.append(Claim("Table 1", statement, paper, cells, _overall([c.verdict for c in cells.values()]),
                         "per task: the fine-tuned run is better in every seed (main metric)"))
    return out


# -- patterns, change, features ------------------------------------------------------------------


def _heterogeneous(reader: _Reader, groups: list[Group]) -> Claim:
    cells = {}
    for g in groups:
        fine = [reader.shares(r["run_id"]).get(("rules", "finetuned", "heterogeneous")) for r in g.finetuned]
        pre = [reader.shares(r["run_id"]).get(("rules", "pretrained", "heterogeneous")) for r in g.finetuned]
        fine = [v for v in fine if v is not None]
        if not fine:
            cells[g.task.name] = Cell("no pattern classes", UNTESTED)
            continue
        pre_text = Spread([v for v in pre if v is not None]).text(digits=0)
        cells[g.task.name] = Cell(f"{Spread(fine).text(digits=0)}% (pretrained {pre_text}%)",
                                  _seed_verdict([0.32 <= v <= 0.61 for v in fine]))
    return Claim("Fig. 2", "Heterogeneous maps, the upper bound on heads that may carry linguistic structure, are "
                 "32% to 61% of all maps", "32% (MRPC) to 61% (QQP)", cells,
                 _overall([c.verdict for c in cells.values()]),
                 "per task: the fine-tuned model's share (rule labels) lies in the paper's range in every seed")


def _last_layers(reader: _Reader, groups: list[Group]) -> Claim:
    cells = {}
    for g in groups:
        flags, per_layer = [], {}
        for r in g.finetuned:
            change = reader.change(r["run_id"])
            if len(change) < 3:
                continue
            lowest = sorted(change, key=change.get)[:2]
            flags.append(set(lowest) == {g.n_layers - 2, g.n_layers - 1})
            for layer, value in change.items():
                per_layer.setdefault(layer, []).append(value)
        if not flags:
            cells[g.task.name] = Cell("no change measured", UNTESTED)
            continue
        means = {layer: float(np.mean(v)) for layer, v in per_layer.items()}
        two = sorted(means, key=means.get)[:2]
        cells[g.task.name] = Cell(", ".join(f"L{layer + 1} {means[layer]:.2f}" for layer in two),
                                  _seed_verdict(flags))
    return Claim("Fig. 5", "The last two layers change most under fine-tuning (lowest cosine between the pretrained "
                 "and the fine-tuned maps)", "last two layers, on every task but QQP", cells,
                 _overall([c.verdict for c in cells.values()]),
                 "per task: the two layers with the lowest mean cosine are the last two, in every seed "
                 "(shown: the two lowest, mean over seeds)")


def _features(reader: _Reader, groups: list[Group]) -> list[Claim]:
    special, order = {}, {}
    for g in groups:
        shares, flags_order, peaks = [], [], []
        for r in g.finetuned:
            rows = reader.features(r["run_id"], "finetuned")
            heads: dict[tuple[int, int], dict[str, float]] = {}
            for row in rows:
                if row["value"] is not None and not math.isnan(row["value"]):
                    heads.setdefault((row["layer"], row["head"]), {})[row["feature"]] = row["value"]
            won = [max(v.get("cls", 0.0), v.get("sep", 0.0)) > max((v.get(f, 0.0) for f in LINGUISTIC), default=0.0)
                   for v in heads.values()]
            if won:
                shares.append(float(np.mean(won)))
            layers = reader.layers(r["run_id"], "finetuned")
            if layers:
                cls_peak = max(layers, key=lambda x: x["cls"])["layer"]
                sep_peak = max(layers, key=lambda x: x["sep"])["layer"]
                flags_order.append(cls_peak < sep_peak)
                peaks.append((cls_peak, sep_peak))
        special[g.task.name] = (Cell(f"{Spread(shares).text(digits=0)}% of heads", _seed_verdict([s > 0.5 for s in shares]))
                                if shares else Cell("no feature attention", UNTESTED))
        if peaks:
            text = "; ".join(f"[CLS] L{c + 1}, [SEP] L{s + 1}" for c, s in sorted(set(peaks)))
            order[g.task.name] = Cell(text, _seed_verdict(flags_order))
        else:
            order[g.task.name] = Cell("no head statistics", UNTESTED)
    return [
        Claim("Fig. 6", "Attention goes to [CLS] and [SEP] rather than to linguistic features (nouns, verbs, "
              "pronouns, subjects, objects, negation)", "vertical patterns come mostly from [CLS]/[SEP]", special,
              _overall([c.verdict for c in special.values()]),
              "per task: in most heads (> 50%) of the fine-tuned model, a [CLS] or [SEP] token gets more attention "
              "than any token of a linguistic type, in every seed"),
        Claim("Fig. 6", "Early layers attend to [CLS], later ones to [SEP]", "[CLS] early, [SEP] later", order,
              _overall([c.verdict for c in order.values()]),
              "per task: the layer where queries attend most to [CLS] (mean over heads) comes before the one "
              "where they attend most to [SEP], in every seed (shown: the peak layers)"),
    ]


def _cls_last(reader: _Reader, groups: list[Group]) -> Claim:
    cells = {}
    for g in groups:
        expect_sep = g.task.name not in CLS_NOT_SEP
        flags, tops = [], []
        for r in g.finetuned:
            last = [row for row in reader.cls(r["run_id"], "finetuned")
                    if row["layer"] == g.n_layers - 1 and row["value"] is not None and not math.isnan(row["value"])]
            if last:
                top = max(last, key=lambda x: x["value"])
                tops.append(top["feature"])
                flags.append((top["feature"] == "sep") == expect_sep)
        if not flags:
            cells[g.task.name] = Cell("no [CLS] attention", UNTESTED)
            continue
        counts = {f: tops.count(f) for f in dict.fromkeys(tops)}
        expected = "[SEP]" if expect_sep else "not [SEP]"
        cells[g.task.name] = Cell(", ".join(f"{f} ({n}/{len(tops)} seeds)" for f, n in counts.items())
                                  + f"; paper: {expected}", _seed_verdict(flags))
    return Claim("Fig. 7", "In the last layer, [CLS] attends most to [SEP], except on STS-B, RTE and QNLI",
                 "[SEP] except STS-B, RTE, QNLI", cells, _overall([c.verdict for c in cells.values()]),
                 "per task: the token type that gets most of the last-layer [CLS] attention is [SEP] exactly where "
                 "the paper says, in every seed")


# -- disabling heads and layers ------------------------------------------------------------------


def _ablation_claims(reader: _Reader, groups: list[Group]) -> list[Claim]:
    from scipy.stats import binomtest

    best, random_head, layer1, small_loss = {}, {}, {}, {}
    for g in groups:
        metric = g.task.main_metric
        flags_best, texts, flags_random, deltas_random, flags_layer, layer_rows, worst = [], [], [], [], [], [], []
        for r in g.finetuned:
            rows = reader.ablation(r["run_id"], metric)
            heads = [x for x in rows if x["kind"] == "head" and x["delta"] is not None]
            if not heads:
                continue
            top = max(heads, key=lambda x: (x["delta"], -(x["loss_delta"] or 0.0)))
            helping = sum(x["ci_low"] is not None and x["ci_low"] > 0 for x in heads)
            p = binomtest(helping, len(heads), CHANCE, alternative="greater").pvalue
            flags_best.append(p < 0.05)
            texts.append(f"L{top['layer'] + 1} H{top['head'] + 1} {_pct(top['delta'])}{_interval(top)}, "
                         f"{helping}/{len(heads)} heads above 0")
            worst.append(min(x["delta"] for x in heads))
            for x in rows:
                if x["kind"] == "random_head" and x["delta"] is not None:
                    deltas_random.append(x["delta"])
                    flags_random.append(x["ci_low"] is not None and x["ci_low"] > 0)
                if x["kind"] == "layer" and x["layer"] == 0 and x["delta"] is not None:
                    layer_rows.append(x)
                    flags_layer.append(x["ci_low"] is not None and x["ci_low"] > 0)
        name = g.task.name
        if not texts:
            for cells in (best, random_head, layer1):
                cells[name] = Cell("no head-disabling sweep", UNTESTED)
            continue
        chance = f"chance: {CHANCE * len(heads):.1f}"
        best[name] = Cell("; ".join(texts) + f" ({chance})", _seed_verdict(flags_best))
        random_head[name] = Cell(f"{Spread(deltas_random).text(sign=True)}"
                                 + (f", {sum(flags_random)}/{len(flags_random)} seeds' intervals above 0"
                                    if flags_random else ""),
                                 _seed_verdict(flags_random) if name in ("mrpc", "rte") else None)
        layer1[name] = Cell(f"{Spread([x['delta'] for x in layer_rows]).text(sign=True)}"
                            + (_interval(layer_rows[0]) + " (first seed)" if layer_rows else ""),
                            _seed_verdict(flags_layer) if name == "rte" else None)
        if name in ("qnli", "mnli"):
            small_loss[name] = Cell(f"worst head {Spread(worst).text(sign=True)}",
                                    _seed_verdict([w >= -0.002 for w in worst]))
    claims = [
        Claim("Fig. 8", "Disabling a single head can improve the dev metric", "+0.1 (STS-B) to +1.2 (MRPC) points",
              best, _overall([c.verdict for c in best.values()]),
              f"per task: more heads have a 95% paired-bootstrap interval above 0 than chance gives "
              f"({100 * CHANCE:.1f}% of heads; one-sided binomial test, p < 0.05), in every seed. Shown per seed: "
              "the best head's Δ [95% interval] and the heads whose interval is above 0"),
        Claim("Fig. 8", "Disabling a random head helps MRPC and RTE on average", "> 0 on MRPC and RTE", random_head,
              _overall([c.verdict for c in random_head.values() if c.verdict is not None] or [UNTESTED]),
              "on MRPC and RTE: the mean Δ over single heads has its 95% interval above 0 in every seed"),
        Claim("Fig. 9", "Disabling layer 1 improves RTE", "+3.2 points", layer1,
              layer1["rte"].verdict if "rte" in layer1 and layer1["rte"].verdict else UNTESTED,
              "on RTE: the Δ of layer 1 disabled has its 95% interval above 0 in every seed"
              + ("" if "rte" in layer1 else "; no RTE run in the store")),
    ]
    if small_loss:
        claims.append(Claim("Fig. 8", "On QNLI and MNLI, disabling a head costs at most 0.2 points",
                            "-0.2 at worst", small_loss, _overall([c.verdict for c in small_loss.values()]),
                            "per task: the worst single head loses at most 0.2 points, in every seed"))
    else:
        claims.append(Claim("Fig. 8", "On QNLI and MNLI, disabling a head costs at most 0.2 points", "-0.2 at worst",
                            {}, UNTESTED, "no QNLI or MNLI run in the store (their GLUE data is not on this machine)"))
    return claims


def _shared_heads(reader: _Reader, groups: list[Group]) -> tuple[Claim, Section | None]:
    effects = {g.task.name: head_effects(reader, g) for g in groups}
    effects = {k: np.nanmean(v, axis=0) for k, v in effects.items() if v is not None}
    titles = {g.task.name: g.title for g in groups}
    pairs = {}
    for a, b in combinations([t for t in TASKS if t in effects], 2):
        if effects[a].shape == effects[b].shape:
            pairs[(a, b)] = rank_test(effects[a], effects[b])
    cells: dict[str, Cell] = {}
    for task in effects:
        texts = [f"{titles[b if a == task else a]} {rho:+.2f} (p {p:.3f})" for (a, b), (rho, p) in pairs.items()
                 if task in (a, b)]
        cells[task] = Cell("; ".join(texts) or "no other task", None)
    key = ("sts-b", "rte")
    why = ("Spearman's ρ between two tasks' head effects (the dev loss increase when a head is disabled, mean over "
           "seeds), one-sided permutation test of the pairing; holds when ρ > 0 with p < 0.05 for STS-B and RTE")
    if key in pairs:
        rho, p = pairs[key]
        verdict = HOLDS if rho > 0 and p < 0.05 else FAILS
        cells["sts-b"].verdict = cells["rte"].verdict = verdict
    else:
        verdict = UNTESTED
        why += "; needs head-disabling sweeps of both STS-B and RTE"
    claim = Claim("Fig. 8", "STS-B and RTE rely on the same heads", "the same two heads (L4 H1, L2 H12 of bert-base)",
                  cells, verdict, why)
    if not pairs:
        return claim, None
    rows = [[titles[a], titles[b], f"{rho:+.2f}", f"{p:.4f}"] for (a, b), (rho, p) in pairs.items()]
    return claim, Section("Do tasks rely on the same heads?",
                          "Spearman's ρ between the tasks' head effects (dev loss increase when a head is disabled, "
                          f"mean over seeds) and its one-sided permutation p-value ({N_PERMUTATIONS:,} shuffles).",
                          ["task", "task", "ρ", "p"], rows)


# -- the cross-task tables ------------------------------------------------------------------------


def _class_table(reader: _Reader, groups: list[Group]) -> Section:
    from bertsecrets.store.labels import PATTERN_CLASSES

    rows = []
    for label in PATTERN_CLASSES:
        row = [label]
        for g in groups:
            if label == "block" and not g.task.pair:
                row.append("n/a (one sentence)")
                continue
            fine = [reader.shares(r["run_id"]).get(("rules", "finetuned", label)) for r in g.finetuned]
            pre = [reader.shares(r["run_id"]).get(("rules", "pretrained", label)) for r in g.finetuned]
            row.append(f"{Spread([v for v in fine if v is not None]).text(digits=0)} "
                       f"({Spread([v for v in pre if v is not None]).text(digits=0)})")
        rows.append(row)
    return Section("Fig. 2: pattern classes per task",
                   "Share of maps in % (rule labels), fine-tuned model (pretrained in brackets); mean ± sd over seeds.",
                   ["class", *[g.title for g in groups]], rows)


def _change_table(reader: _Reader, groups: list[Group]) -> Section:
    depth = max(g.n_layers for g in groups)
    rows = []
    for layer in range(depth):
        row = [str(layer + 1)]
        for g in groups:
            values = [reader.change(r["run_id"]).get(layer) for r in g.finetuned]
            row.append(Spread([v for v in values if v is not None]).text(scale=1.0, digits=3))
        rows.append(row)
    return Section("Fig. 5: change under fine-tuning per layer",
                   "Cosine similarity between the pretrained and the fine-tuned maps of the same input, mean over the "
                   "layer's heads and the dev inputs; mean ± sd over seeds. Lower is more change.",
                   ["layer", *[g.title for g in groups]], rows)


def _feature_table(reader: _Reader, groups: list[Group]) -> Section:
    rows = []
    for feature in (*LINGUISTIC, "cls", "sep"):
        row = [feature]
        for g in groups:
            fine, diff = [], []
            for r in g.finetuned:
                f = [x["value"] for x in reader.features(r["run_id"], "finetuned") if x["feature"] == feature
                     and x["value"] is not None and not math.isnan(x["value"])]
                d = [x["value"] for x in reader.features(r["run_id"], "difference") if x["feature"] == feature
                     and x["value"] is not None and not math.isnan(x["value"])]
                if f:
                    fine.append(float(np.mean(f)))
                if d:
                    diff.append(float(np.mean(d)))
            row.append(f"{Spread(fine).text(scale=1.0, digits=3)} ({Spread(diff).text(scale=1.0, digits=3, sign=True)})")
        rows.append(row)
    return Section("Fig. 6: attention to token types per task",
                   "Per head: the column sum a token of the type receives, divided by the input's length (maximum over "
                   "the input's tokens of the type), mean over inputs, then over heads; fine-tuned model, with the "
                   "change from the pretrained model in brackets; mean ± sd over seeds.",
                   ["type", *[g.title for g in groups]], rows)


def _cls_table(reader: _Reader, groups: list[Group]) -> Section:
    rows = []
    for feature in (*LINGUISTIC, "cls", "sep"):
        row = [feature]
        for g in groups:
            values = [row_["value"] for r in g.finetuned for row_ in reader.cls(r["run_id"], "finetuned")
                      if row_["layer"] == g.n_layers - 1 and row_["feature"] == feature and row_["value"] is not None
                      and not math.isnan(row_["value"])]
            row.append(Spread(values).text(scale=1.0, digits=3))
        rows.append(row)
    return Section("Fig. 7: where the last layer's [CLS] attends",
                   "Share of the [CLS] query's attention on tokens of each type in the last layer, mean over heads and "
                   "inputs; fine-tuned model; mean ± sd over seeds.", ["type", *[g.title for g in groups]], rows)


def _ablation_table(reader: _Reader, groups: list[Group]) -> Section:
    rows = []
    for g in groups:
        metric = g.task.main_metric
        per_seed = [reader.ablation(r["run_id"], metric) for r in g.finetuned]
        if not any(per_seed):
            continue

        def spread(pick) -> str:
            chosen = [x for rows_ in per_seed for x in rows_ if pick(x) and x["delta"] is not None]
            text = Spread([x["delta"] for x in chosen]).text(sign=True)
            above = sum(x["ci_low"] is not None and x["ci_low"] > 0 for x in chosen)
            below = sum(x["ci_high"] is not None and x["ci_high"] < 0 for x in chosen)
            return f"{text} (above 0: {above}, below: {below} of {len(chosen)})" if chosen else "-"

        base = Spread([x["value"] for rows_ in per_seed for x in rows_ if x["kind"] == "baseline"]).text(sign=False)
        best = []
        for rows_ in per_seed:
            heads = [x for x in rows_ if x["kind"] == "head" and x["delta"] is not None]
            if heads:
                best.append(max(x["delta"] for x in heads))
        rows.append([g.title, metric, base, "best head", Spread(best).text(sign=True)])
        rows.append([g.title, metric, base, "random head", spread(lambda x: x["kind"] == "random_head")])
        for layer in range(g.n_layers):
            rows.append([g.title, metric, base, f"layer {layer + 1}",
                         spread(lambda x, layer=layer: x["kind"] == "layer" and x["layer"] == layer)])
    return Section("Fig. 8 and 9: disabling heads and layers",
                   "Δ of the dev metric in points when the head or layer is disabled (its attention made uniform), mean "
                   "± sd over seeds; in brackets, how many seeds' 95% paired-bootstrap intervals lie above or below 0. "
                   "The best head is chosen per seed after the fact.",
                   ["task", "metric", "baseline", "disabled", "Δ"], rows)


def _stability(reader: _Reader, groups: list[Group]) -> Section | None:
    rows = []
    for g in groups:
        effects = head_effects(reader, g)
        if effects is None or len(effects) < 2:
            continue
        rhos = []
        for i, j in combinations(range(len(effects)), 2):
            keep = ~(np.isnan(effects[i]) | np.isnan(effects[j]))
            rho = spearman(effects[i][keep], effects[j][keep])
            rhos.append(np.nan if rho is None else rho)
        rows.append([g.title, str(len(effects)), f"{np.nanmean(rhos):+.2f}", f"{np.nanmin(rhos):+.2f} .. {np.nanmax(rhos):+.2f}"])
    if not rows:
        return None
    return Section("How stable is a head's effect across seeds?",
                   "Spearman's ρ between two seeds' head effects (dev loss increase when a head is disabled), over "
                   "every pair of seeds: near 1, a head matters the same whatever the seed; near 0, its effect is "
                   "seed noise.", ["task", "seeds", "mean ρ", "range"], rows)


# -- norm-based attention (Kobayashi et al. 2020) and sinks ----------------------------------------

#: A head is vertical, by weight or by norm, when a query gives [CLS] and [SEP] at least this share on average
#: (the rule labeller's vertical threshold, applied to the head's mean).
SINK_MIN = VERTICAL_MIN
NO_NORMS = "no norm-weighted analyses (map sets without norms): run `bertsecrets ingest {task}`"


def sink_classes(weight: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Per head, from its share of [CLS]/[SEP] by weight and by norm: ``sink`` (vertical by both), ``no-op``
    (vertical by weight, not by norm: its large weights move little) or ``other`` (not vertical by weight)."""
    weight, norm = np.asarray(weight), np.asarray(norm)
    return np.where(weight >= SINK_MIN, np.where(norm >= SINK_MIN, "sink", "no-op"), "other")


def sink_test(weight: np.ndarray, norm: np.ndarray, effect: np.ndarray, n_resamples: int = N_PERMUTATIONS,
              seed: int = 0) -> tuple[float, float]:
    """Spearman's ρ between (weight share - norm share) on [CLS]/[SEP] and |effect of disabling the head|, and the
    one-sided permutation p-value of ρ < 0: heads that look vertical by weight but not by norm change least."""
    gap = np.asarray(weight, dtype=float) - np.asarray(norm, dtype=float)
    return rank_test(gap, np.abs(np.asarray(effect, dtype=float)), n_resamples, seed, alternative="less")


def _special(rows: list[dict[str, Any]], by: str) -> np.ndarray:
    """Per head (layer-major), the share on [CLS] and [SEP] by weight (``by=""``) or by norm (``by="norm_"``)."""
    return np.array([float(r[f"{by}cls"]) + float(r[f"{by}sep"]) for r in rows])


def _norm_claims(reader: _Reader, groups: list[Group]) -> list[Claim]:
    vanish, noop = {}, {}
    for g in groups:
        name = g.task.name
        weights, norms, flags_v, texts, flags_s = [], [], [], [], []
        have_sweep = False
        for record in g.finetuned:
            rows = reader.by_norm(record["run_id"])
            if not rows:
                continue
            w, n = _special(rows, ""), _special(rows, "norm_")
            weights.append(float(w.mean()))
            norms.append(float(n.mean()))
            flags_v.append(n.mean() < w.mean() / 2)
            heads = {(int(x["layer"]), int(x["head"])): x["loss_delta"]
                     for x in reader.ablation(record["run_id"], g.task.main_metric)
                     if x["kind"] == "head" and x["loss_delta"] is not None}
            if not heads:
                continue
            have_sweep = True
            effect = np.array([heads.get((int(r["layer"]), int(r["head"])), np.nan) for r in rows])
            rho, p = sink_test(w, n, effect)
            kinds = sink_classes(w, n)
            flags_s.append(rho < 0 and p < 0.05)
            texts.append(f"seed {record['seed']}: ρ {rho:+.2f} (p {p:.3f}); {int((kinds == 'no-op').sum())} no-op, "
                         f"{int((kinds == 'sink').sum())} sink heads")
        if not weights:
            vanish[name] = noop[name] = Cell(NO_NORMS.format(task=name), UNTESTED)
            continue
        vanish[name] = Cell(f"by weight {Spread(weights).text(digits=0)}%, by norm {Spread(norms).text(digits=0)}%",
                            _seed_verdict(flags_v))
        noop[name] = (Cell("; ".join(texts), _seed_verdict(flags_s)) if have_sweep
                      else Cell("no head-disabling sweep", UNTESTED))
    return [
        Claim("Norms", "Weighted by ||f(x_j)||, attention to [CLS] and [SEP] largely vanishes (Kobayashi et al. 2020)",
              "bert-base: [CLS]/[SEP] get large weights but small ||f(x)||", vanish,
              _overall([c.verdict for c in vanish.values()]),
              "per task: the fine-tuned model's share of [CLS] and [SEP] in the renormalised norm-weighted maps "
              "(mean over heads and queries) is less than half their share by weight, in every seed"),
        Claim("Norms", "Heads vertical by weight but not by norm are no-ops: disabling them changes least",
              "(not in the paper; Kobayashi et al.'s reading of vertical heads)", noop,
              _overall([c.verdict for c in noop.values()]),
              "per task: Spearman's ρ between a head's (share of [CLS]/[SEP] by weight - by norm) and |dev loss "
              f"change| when it is disabled is negative with a one-sided permutation p < 0.05 ({N_PERMUTATIONS:,} "
              f"shuffles), in every seed. Heads with >= {SINK_MIN:.0%} on [CLS]/[SEP] by weight are 'sink' when "
              "the norm-weighted share is too, 'no-op' when it is not"),
    ]


def _norm_sections(reader: _Reader, groups: list[Group]) -> list[Section]:
    from bertsecrets.store.labels import PATTERN_CLASSES

    with_norms = [g for g in groups if any(reader.by_norm(r["run_id"]) for r in g.finetuned)]
    if not with_norms:
        return []
    header = ["", *[g.title for g in with_norms]]

    def per_task(value: Callable[[dict[str, Any]], float | None], scale: float = 100.0, digits: int = 1) -> list[str]:
        out = []
        for g in with_norms:
            values = [value(r) for r in g.finetuned]
            out.append(Spread([v for v in values if v is not None and not math.isnan(v)]).text(scale=scale, digits=digits))
        return out

    def head_mean(column: str) -> Callable[[dict[str, Any]], float | None]:
        def pick(record: dict[str, Any]) -> float | None:
            rows = reader.by_norm(record["run_id"])
            values = [float(r[column]) for r in rows if r[column] is not None]
            return float(np.mean(values)) if values else None
        return pick

    rows = []
    for label, column in (("[CLS]", "cls"), ("[SEP]", "sep"), ("punctuation", "punct")):
        rows.append([f"{label}, by weight (%)", *per_task(head_mean(column))])
        rows.append([f"{label}, by norm (%)", *per_task(head_mean(f"norm_{column}"))])
    for label, column in (("||f(x)|| of [CLS]", "fnorm_cls"), ("||f(x)|| of [SEP]", "fnorm_sep"),
                          ("||f(x)||, all tokens", "fnorm_mean")):
        rows.append([label, *per_task(head_mean(column), scale=1.0, digits=2)])
    weightings = (("weight", False), ("norm", True))
    for label in PATTERN_CLASSES:
        for by, norm in weightings:
            rows.append([f"{label} maps, by {by} (%)", *per_task(lambda r, label=label, norm=norm: reader.shares(
                r["run_id"], norm).get(("rules", "finetuned", label)), digits=0)])
    depth = max(g.n_layers for g in with_norms)
    for layer in range(depth):
        for by, norm in weightings:
            rows.append([f"cosine, layer {layer + 1}, by {by}", *per_task(lambda r, layer=layer, norm=norm: reader.change(
                r["run_id"], norm).get(layer), scale=1.0, digits=3)])
    for feature in (*LINGUISTIC, "cls", "sep"):
        for by, norm in weightings:
            rows.append([f"Fig. 6 {feature}, by {by}", *per_task(lambda r, feature=feature, norm=norm: _mean_feature(
                reader.features(r["run_id"], "finetuned", norm), feature), scale=1.0, digits=3)])
    sinks = []
    for g in with_norms:
        for record in g.finetuned:
            found = reader.by_norm(record["run_id"])
            if not found:
                continue
            w, n = _special(found, ""), _special(found, "norm_")
            kinds = sink_classes(w, n)
            heads = {(int(x["layer"]), int(x["head"])): abs(x["loss_delta"])
                     for x in reader.ablation(record["run_id"], g.task.main_metric)
                     if x["kind"] == "head" and x["loss_delta"] is not None}
            effect = np.array([heads.get((int(r["layer"]), int(r["head"])), np.nan) for r in found])

            def mean_effect(kind: str) -> str:
                chosen = effect[(kinds == kind) & np.isfinite(effect)]
                return f"{chosen.mean():.4f} ({len(chosen)})" if len(chosen) else "- (0)"

            if heads:
                rho, p = sink_test(w, n, effect)
                test = f"{rho:+.2f}", f"{p:.4f}"
            else:
                test = "-", "no sweep"
            sinks.append([g.title, str(record["seed"]), mean_effect("sink"), mean_effect("no-op"),
                          mean_effect("other"), *test])
    return [
        Section("Norm-based attention (Kobayashi et al. 2020): weight beside norm",
                "Fine-tuned model; mean over heads (and queries), mean ± sd over seeds. 'By norm': the maps "
                "a_ij ||f(x_j)|| with each row renormalised to sum to 1 (the share of the head's output, by norm, "
                "from each token); pattern classes by the same rules and thresholds; cosine between the pretrained "
                "and fine-tuned maps (Fig. 5); Fig. 6 values (mean over heads).", header, rows),
        Section("Sinks and no-ops: what disabling does to each kind of head",
                f"Per seed: heads with >= {SINK_MIN:.0%} of attention on [CLS]/[SEP] by weight are 'sink' when their "
                "norm-weighted share is too, 'no-op' when not; 'other' heads are not vertical by weight. Mean |dev "
                "loss change| when a head of the kind is disabled (count in brackets); Spearman's ρ between "
                "(weight share - norm share) and that |change|, one-sided permutation p of ρ < 0.",
                ["task", "seed", "sink", "no-op", "other", "ρ", "p"], sinks),
    ]


def _mean_feature(rows: list[dict[str, Any]], feature: str) -> float | None:
    values = [r["value"] for r in rows if r["feature"] == feature and r["value"] is not None and not math.isnan(r["value"])]
    return float(np.mean(values)) if values else None


# -- head stability and attention rollout (ingest.analyses.families) --------------------------------

#: Heads listed at each end of a stability table.
N_LISTED = 3


def _head_name(index: int, n_heads: int) -> str:
    return f"L{index // n_heads + 1} H{index % n_heads + 1}"


def _ends(values: np.ndarray, n_heads: int) -> tuple[str, str]:
    """The N_LISTED smallest and largest values with their heads, as text."""
    order = [i for i in np.argsort(values, kind="stable") if np.isfinite(values[i])]
    pick = lambda ids: ", ".join(f"{_head_name(int(i), n_heads)} {values[i]:.3f}" for i in ids)
    return pick(order[:N_LISTED]), pick(order[::-1][:N_LISTED])


def _profile_grid(reader: _Reader, run_id: str, role: str, n_heads: int, n_layers: int) -> np.ndarray | None:
    """[head, target] profile of every head (layer-major), or None when the run has none stored."""
    rows = reader.profiles(run_id, role)
    if not rows:
        return None
    targets = sorted({r["target"] for r in rows})
    out = np.full((n_layers * n_heads, len(targets)), np.nan)
    for r in rows:
        out[int(r["layer"]) * n_heads + int(r["head"]), targets.index(r["target"])] = r["share"]
    return out


def _flow_sections(reader: _Reader, groups: list[Group]) -> list[Section]:
    """The rollout beside the raw last-layer [CLS] attention, and how stable heads are across seeds and tasks."""
    from bertsecrets.core.flow import js_distance

    out = []
    rows = []
    for feature in (*LINGUISTIC, "cls", "sep", "punct"):
        row = [feature]
        for g in groups:
            raw, rolled = [], []
            for r in g.finetuned:
                for x in reader.rollout(r["run_id"]):
                    if x["role"] == "finetuned" and x["layer"] == g.n_layers - 1 and x["feature"] == feature \
                            and x["rollout"] is not None:
                        raw.append(x["raw"])
                        rolled.append(x["rollout"])
            row.append(f"{Spread(raw).text(scale=1.0, digits=3)} → {Spread(rolled).text(scale=1.0, digits=3)}"
                       if rolled else "-")
        rows.append(row)
    if any(cell != "-" for row in rows for cell in row[1:]):
        out.append(Section("Where the last layer's [CLS] attends: raw attention → attention rollout",
                           "Share of the [CLS] row on tokens of each type in the last layer: raw (mean over the "
                           "layer's heads, as Fig. 7) → after attention rollout through all layers (Abnar and "
                           "Zuidema 2020: per layer the mean over heads, half mixed with the identity, multiplied "
                           "through the layers); fine-tuned model, mean over inputs; mean ± sd over seeds.",
                           ["type", *[g.title for g in groups]], rows))
    rows = []
    for g in groups:
        n_heads = int(g.finetuned[0]["n_heads"])
        ids = [r["run_id"] for r in g.finetuned]
        pairs: dict[tuple[str, str], np.ndarray] = {}
        for x in queries.head_stability(reader.store, ids):
            grid = pairs.setdefault((x["run_id"], x["other_run_id"]), np.full(g.n_layers * n_heads, np.nan))
            grid[int(x["layer"]) * n_heads + int(x["head"])] = x["distance"]
        if not pairs:
            continue
        mean = np.nanmean(np.array(list(pairs.values())), axis=0)
        most, least = _ends(mean, n_heads)
        rows.append([g.title, f"seeds ({len(pairs)} pair{'s' if len(pairs) > 1 else ''})", most, least, f"{np.nanmean(mean):.3f}", "-"])
    for a, b in combinations(groups, 2):
        n_heads = int(a.finetuned[0]["n_heads"])
        if a.model != b.model or (a.n_layers, n_heads) != (b.n_layers, int(b.finetuned[0]["n_heads"])):
            continue
        dist = {}
        for role in ("finetuned", "pretrained"):
            pa_, pb = (_profile_grid(reader, g.finetuned[0]["run_id"], role, n_heads, g.n_layers) for g in (a, b))
            if pa_ is None or pb is None:
                break
            dist[role] = js_distance(pa_, pb)
        if len(dist) < 2:
            continue
        most, least = _ends(dist["finetuned"], n_heads)
        rows.append([f"{a.title} vs {b.title}", "tasks (profiles)", most, least, f"{dist['finetuned'].mean():.3f}",
                     f"{dist['pretrained'].mean():.3f}"])
    if rows:
        out.append(Section(
            "How stable is a head across seeds and tasks?",
            "Across seeds: the Jensen-Shannon distance (base 2, square root per query row, mean over rows and dev "
            "inputs) between a head's fine-tuned maps in two seeds, on the same inputs; mean over pairs of seeds. "
            "Across tasks the inputs differ, so a head is compared by its profile: the share of a query's attention "
            "on [CLS], [SEP], itself, the previous and next token, its own and the other sentence (mean over queries "
            "and inputs); the JS distance of the two tasks' profiles (first seed). The pretrained model is the same "
            "in both tasks, so its heads' distance (last column) is what the inputs alone change. 0 is identical; "
            "most stable first.",
            ["compared", "across", "most stable heads", "least stable heads", "mean", "pretrained (inputs only)"],
            rows))
    return out


def settings_line(group: Group) -> str:
    """The configuration compared for a task, as one line."""
    record = group.finetuned[0]
    saved = json.loads(record.get("settings_json") or "{}")
    parts = [f"{group.model}", f"lr {record.get('learning_rate')}", f"{record.get('epochs')} epochs",
             f"batch {record.get('batch_size')}", f"{record.get('train_examples'):,} training examples",
             f"seeds {','.join(map(str, group.seeds))}", f"{saved.get('compute_device', record.get('device'))}"]
    return ", ".join(str(p) for p in parts)


def _md(text: str) -> str:
    """A table cell as Markdown shows it literally: pipes escaped, no line breaks."""
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(_md(h) for h in header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_md(c) for c in row) + " |" for row in rows)]


def markdown(found: Findings, title: str = "bertsecrets findings", figures: list[tuple[str, str]] = ()) -> str:
    """The findings report as Markdown: claims with verdicts, then the cross-task tables, then ``figures``
    (caption, relative path)."""
    lines = [f"# {title}", ""]
    if not found.groups:
        return "\n".join(lines + ["No finished fine-tuned run in the store: run `bertsecrets ingest TASK` first.", ""])
    lines += ["Runs compared, one configuration per task:", ""]
    lines += [f"- **{g.title}**: {settings_line(g)}" for g in found.groups]
    lines += [""] + [f"*{note}*" for note in found.notes] + ([""] if found.notes else [])
    lines += ["## The paper's claims", "",
              "Verdicts: **holds** when every seed shows it, **does not hold** when none does, **mixed** otherwise; "
              "over tasks the same, from the tasks the claim is made for. A cell without a mark is shown for "
              "comparison (the paper does not make the claim for that task).", ""]
    tasks = [g for g in found.groups]
    header = ["claim", "paper (bert-base)", *[g.title for g in tasks], "verdict"]
    rows = []
    for c in found.claims:
        cells = []
        for g in tasks:
            cell = c.cells.get(g.task.name)
            cells.append("-" if cell is None else cell.text + (f" **({cell.verdict})**" if cell.verdict else ""))
        rows.append([f"{c.where}: {c.statement}", c.paper, *cells, f"**{c.verdict_text}**"])
    lines += _md_table(header, rows) + [""]
    lines += ["How each verdict is reached:", ""]
    lines += [f"- {c.where}, {c.statement}: {c.why}." for c in found.claims] + [""]
    for section in found.sections:
        lines += [f"## {section.title}", "", section.caption, ""] + _md_table(section.header, section.rows) + [""]
    if figures:
        lines += ["## Figures", ""]
        for caption, path in figures:
            lines += [f"![{_md(caption)}]({path})", "", caption, ""]
    return "\n".join(lines)


__all__ = ["sink_classes", "sink_test", "Cell", "Claim", "cut_note", "Findings", "Group", "HeadDeltas", "Section", "Spread", "findings", "groups",
           "head_deltas", "rank_test", "seed_runs",
           "markdown", "settings_line", "HOLDS", "FAILS", "MIXED", "UNTESTED"]
