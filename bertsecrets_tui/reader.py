"""What the browser reads from a store, with the caches that make stepping through maps fast.

Every method may run in a worker thread: the catalog gives each thread its own
DuckDB connection, and the caches here are guarded by one lock. No Textual here,
so the reads are tested (and benchmarked) without an app.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bertsecrets.core.errors import UserError
from bertsecrets.core.tasks import ROLES, TASKS
from bertsecrets.store import Store, StoreError, queries
from bertsecrets.store.labels import PATTERN_CLASSES
from bertsecrets.store.maps import MapReader
from bertsecrets.tui.families import FamilyData, RoleFamilies

if TYPE_CHECKING:  # imported where it is used: the first screen does not need it, so the start stays quick
    from bertsecrets.store.findings import Findings, HeadDeltas

#: Tables whose rows describe heads of a run (read together, see RunStats).
HEAD_TABLES = ("head_stats", "feature_attention", "cls_attention", "head_change", "class_shares",
               "relation_heads", "classifiers", "ablation", "head_importance", "pruning", "norm_feature_attention")
#: Sources of machine-given pattern classes, the preferred first.
CLASS_SOURCES = ("classifier", "rules")


@dataclass
class RunStats:
    """The analysis and ablation rows of one run (empty lists where nothing is computed yet)."""

    run_id: str
    task: str
    n_layers: int
    n_heads: int
    tables: dict[str, list[dict[str, Any]]]
    seeds: list[dict[str, Any]]  # ablation_seeds of the run's experiment
    setups: list[dict[str, Any]]  # the runs of the same experiment (Table 1)
    seed: int | None = None
    title: str = ""  # the task as tables print it, "STS-B*" when its training set was cut

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.tables.get(table, [])


@dataclass
class MapClasses:
    """Machine-given and people's pattern classes of every map of a run.

    ``machine[source, role, example, layer, head]`` is a class index into
    PATTERN_CLASSES or -1; ``people`` maps a map key to {labeller: label}.
    """

    machine: np.ndarray
    confidence: np.ndarray
    people: dict[tuple[str, int, int, int], dict[str, str]]

    def describe(self, role: str, example: int, layer: int, head: int) -> list[tuple[str, str]]:
        """(who, class) pairs for one map: rules, classifier (with confidence), then each person."""
        r = ROLES.index(role)
        out = []
        for s, source in enumerate(CLASS_SOURCES):
            if example < self.machine.shape[2]:
                c = int(self.machine[s, r, example, layer, head])
                if c >= 0:
                    conf = self.confidence[s, r, example, layer, head]
                    out.append((source, PATTERN_CLASSES[c] + ("" if np.isnan(conf) else f" ({conf:.2f})")))
        for who, label in sorted(self.people.get((role, example, layer, head), {}).items()):
            out.append((who, label))
        return out


@dataclass
class RunContext:
    """What the map screens need about a run besides the maps: sizes, tokens, texts, classes."""

    run_id: str
    task: str
    n_layers: int
    n_heads: int
    n_examples: int
    tokens: list[list[str]]
    examples: list[dict[str, Any]]
    classes: MapClasses
    seed: int | None = None
    title: str = ""  # the task as tables print it, "STS-B*" when its training set was cut


def task_title(run: dict[str, Any]) -> str:
    """The run's task as every table prints it, with a `*` when it was fine-tuned on a cut training set."""
    task = TASKS.get(run["task"])
    title = task.title if task is not None else str(run["task"]).upper()
    cut = run.get("max_train_examples") is not None and run.get("setup") != "no_finetuning"
    return title + ("*" if cut else "")


@dataclass
class TaskFindings:
    """The Tasks screen's content: the findings report's claims and tables, and each task's head effects."""

    findings: Findings
    effects: dict[str, HeadDeltas]  # by task name; a task without a head-disabling sweep is absent


@dataclass
class SeedStats:
    """The analysis rows of every seed of one configuration (the runs that differ only in their seed), by seed."""

    run_id: str  # the run they were read for
    stats: list[RunStats]

    @property
    def seeds(self) -> list[int]:
        return [int(s.seed) for s in self.stats if s.seed is not None]


class Reader:
    """Cached reads of one store for the browser."""

    def __init__(self, store: Store, cached_examples: int = 24) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._map_readers: dict[tuple[str, str], MapReader] = {}
        self._examples: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()
        self._cached_examples = cached_examples
        self._tokens: dict[str, tuple[list[list[str]], np.ndarray]] = {}  # word pieces, two sentences; by run

    # -- change detection ---------------------------------------------------

    def fingerprint(self) -> dict[str, tuple]:
        return self.store.catalog.fingerprint()

    def forget(self, tables: set[str]) -> None:
        """Drop what was cached from ``tables`` (their parts changed on disk)."""
        with self._lock:
            if "maps" in tables:
                self._map_readers.clear()
                self._examples.clear()
            if "tokens" in tables:
                self._tokens.clear()

    # -- runs ---------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        return queries.run_list(self.store)

    @staticmethod
    def default_run(runs: list[dict[str, Any]]) -> str | None:
        """The latest fine-tuned run whose maps are finished, else the latest run."""
        with_maps = [r for r in runs if r["map_sets"]]
        chosen = with_maps or runs
        if not chosen:
            return None
        return max(chosen, key=lambda r: (r["finished_at"] or r["started_at"]).timestamp())["run_id"]

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = queries.run_list(self.store, run_id)
        return rows[0] if rows else None

    def known_run(self, run_id: str) -> dict[str, Any]:
        run = self.run(run_id)
        if run is None:
            raise StoreError(f"run {run_id} is not in the store: pick another on the Runs screen")
        return run

    # -- maps ---------------------------------------------------------------

    def maps(self, run_id: str, role: str) -> MapReader:
        key = (run_id, role)
        with self._lock:
            reader = self._map_readers.get(key)
        if reader is None:
            reader = self.store.maps(run_id, role)
            with self._lock:
                self._map_readers[key] = reader
        return reader

    def example(self, run_id: str, role: str, example: int) -> np.ndarray:
        """attn[layer, head, query, key] of one input, kept in a small LRU."""
        key = (run_id, role, example)
        with self._lock:
            if key in self._examples:
                self._examples.move_to_end(key)
                return self._examples[key]
        data = self.maps(run_id, role).example(example)
        with self._lock:
            self._examples[key] = data
            while len(self._examples) > self._cached_examples:
                self._examples.popitem(last=False)
        return data

    def cached(self, run_id: str, role: str, example: int) -> np.ndarray | None:
        """The maps of one input if they are in memory already (never touches the disk)."""
        with self._lock:
            return self._examples.get((run_id, role, example))

    def both(self, run_id: str, example: int) -> dict[str, np.ndarray | str]:
        """Both models' maps of one input; a role whose maps cannot be read gets its error text instead."""
        out: dict[str, np.ndarray | str] = {}
        for role in ROLES:
            try:
                out[role] = self.example(run_id, role, example)
            except UserError as exc:
                out[role] = str(exc)
        return out

    def both_norms(self, run_id: str, example: int) -> dict[str, np.ndarray | str]:
        """Both models' ||f(x_j)||[layer, head, key] of one input; a role without norms gets the line saying why."""
        out: dict[str, np.ndarray | str] = {}
        for role in ROLES:
            try:
                out[role] = self.maps(run_id, role).norms(example)
            except UserError as exc:
                out[role] = str(exc)
        return out

    def context(self, run_id: str) -> RunContext:
        run = self.known_run(run_id)
        maps = self.maps(run_id, "finetuned")
        n = len(maps)
        return RunContext(run_id, run["task"], maps.n_layers, maps.n_heads, n, self.tokens(run_id),
                          self.examples(run_id), self.map_classes(run_id, n, maps.n_layers, maps.n_heads),
                          run["seed"], task_title(run))

    def tokens(self, run_id: str) -> list[list[str]]:
        """The word pieces of every stored input of a run, by example and position."""
        return self._read_tokens(run_id)[0]

    def two_sentences(self, run_id: str) -> np.ndarray:
        """[example] bool: the stored input holds two sentences (a word piece of the second segment, as the
        ingest's pattern rules count them; an input of one sentence has no block maps)."""
        return self._read_tokens(run_id)[1]

    def _read_tokens(self, run_id: str) -> tuple[list[list[str]], np.ndarray]:
        with self._lock:
            cached = self._tokens.get(run_id)
        if cached is not None:
            return cached
        table = queries.tokens(self.store, run_id)
        examples = table["example"].to_numpy()
        words = table["token"].to_pylist()
        n = int(examples.max()) + 1 if len(examples) else 0
        out: list[list[str]] = [[] for _ in range(n)]
        for e, w in zip(examples.tolist(), words):
            out[e].append(w)
        two = np.zeros(n, dtype=bool)
        two[examples[table["segment"].to_numpy(zero_copy_only=False) == 1]] = True
        with self._lock:
            self._tokens[run_id] = out, two
        return out, two

    def examples(self, run_id: str) -> list[dict[str, Any]]:
        return queries.examples(self.store, run_id)

    def map_classes(self, run_id: str, n_examples: int, n_layers: int, n_heads: int) -> MapClasses:
        shape = (len(CLASS_SOURCES), len(ROLES), n_examples, n_layers, n_heads)
        machine = np.full(shape, -1, dtype=np.int8)
        confidence = np.full(shape, np.nan, dtype=np.float32)
        table = queries.map_classes(self.store, run_id, below=n_examples)
        if table.num_rows:
            cols = table.to_pydict()
            src = np.array([CLASS_SOURCES.index(s) if s in CLASS_SOURCES else -1 for s in cols["source"]])
            role = np.array([ROLES.index(r) if r in ROLES else -1 for r in cols["role"]])
            label = np.array([PATTERN_CLASSES.index(c) if c in PATTERN_CLASSES else -1 for c in cols["label"]])
            ok = (src >= 0) & (role >= 0)
            index = (src[ok], role[ok], np.asarray(cols["example"])[ok], np.asarray(cols["layer"])[ok],
                     np.asarray(cols["head"])[ok])
            machine[index] = label[ok]
            confidence[index] = np.array([np.nan if c is None else c for c in cols["confidence"]], dtype=np.float32)[ok]
        people: dict[tuple[str, int, int, int], dict[str, str]] = {}
        for row in queries.given_labels(self.store, run_id):
            people.setdefault((row["role"], row["example"], row["layer"], row["head"]), {})[row["labeller"]] = row["label"]
        return MapClasses(machine, confidence, people)

    # -- analyses -------------------------------------------------------------

    def run_stats(self, run_id: str) -> RunStats:
        run = self.known_run(run_id)
        tables = {name: queries.run_table(self.store, name, run_id).to_pylist() for name in HEAD_TABLES}
        seeds = queries.ablation_seeds(self.store, run["experiment_id"])
        setups = queries.experiment_runs(self.store, run["experiment_id"], finished=False)
        return RunStats(run_id, run["task"], int(run["n_layers"]), int(run["n_heads"]), tables, seeds, setups,
                        run["seed"], task_title(run))

    # -- across tasks and seeds ------------------------------------------------

    def task_findings(self) -> TaskFindings:
        """The findings report's content (claims, verdicts, cross-task tables) and every task's head effects.

        Takes a second or more on a real store (permutation tests): call it from a worker.
        """
        from bertsecrets.store import findings

        found = findings.findings(self.store)
        effects = {}
        for group in found.groups:
            deltas = findings.head_deltas(self.store, group)
            if deltas is not None:
                effects[group.task.name] = deltas
        return TaskFindings(found, effects)

    def seed_stats(self, run_id: str) -> SeedStats:
        """The analysis rows of every seed of ``run_id``'s configuration (``run_id``'s own among them)."""
        from bertsecrets.store import findings

        runs = findings.seed_runs(self.store, run_id)
        if not runs:
            run = self.known_run(run_id)
            raise UserError(f"run {run_id} ({run['setup']}, {run['status']}) has no finished fine-tuned run to "
                            "compare seeds of: pick a finished run on the Runs screen")
        return SeedStats(run_id, [self.run_stats(r["run_id"]) for r in runs])

    def next_run(self, run_id: str | None, axis: str) -> tuple[str | None, str]:
        """The run to show after ``run_id`` on ``axis`` ("task": the next task's run of the same seed where it has
        one; "seed": the same configuration's next seed), with words saying which, or None and why not."""
        from bertsecrets.store import findings

        if axis == "seed":
            if run_id is None:
                return None, "no run chosen: pick one on the Runs screen (r)"
            runs = findings.seed_runs(self.store, run_id)
            if not runs:
                return None, "this run has no finished fine-tuned run whose seeds could be compared"
            current = self.known_run(run_id)
            seeds = [int(r["seed"]) for r in runs]
            title = task_title(runs[0])
            if len(runs) == 1:
                return None, (f"{title} has one seed of this configuration (seed {seeds[0]}): "
                              f"`bertsecrets ingest {runs[0]['task']} --seeds 0,1,2` adds more")
            here = seeds.index(int(current["seed"])) if int(current["seed"]) in seeds else -1
            following = (here + 1) % len(runs)
            return runs[following]["run_id"], f"{title} · seed {seeds[following]} ({following + 1} of {len(seeds)})"
        groups = findings.groups(self.store)
        if not groups:
            return None, "no finished fine-tuned run in the store: run `bertsecrets ingest mrpc`"
        current = self.run(run_id) if run_id is not None else None
        names = [g.task.name for g in groups]
        here = names.index(current["task"]) if current is not None and current["task"] in names else -1
        group = groups[(here + 1) % len(groups)]
        if here >= 0 and len(groups) == 1:
            return None, f"{group.title} is the only task with finished fine-tuned runs"
        seed = int(current["seed"]) if current is not None else None
        target = next((r for r in group.finetuned if int(r["seed"]) == seed), group.finetuned[0])
        return target["run_id"], f"{group.title} · seed {target['seed']}"

    # -- the sentence view and the labelling references ------------------------

    def pieces(self, run_id: str, example: int) -> list[dict[str, Any]]:
        """The word pieces of one input, by position: token, segment, word and character offsets."""
        return queries.input_pieces(self.store, run_id, example)

    def families(self, run_id: str) -> FamilyData:
        """The run's head families with each head's class shares, disabling effect and stability across seeds."""
        from bertsecrets.core.tasks import get_task

        run = self.known_run(run_id)
        roles = {role: RoleFamilies.from_rows(queries.head_families(self.store, run_id, role)) for role in ROLES}
        if not all(len(r) for r in roles.values()):
            raise UserError(f"no head families stored for run {run_id}: run `bertsecrets analyze {run['task']}`")
        data = FamilyData(run_id, run["task"], int(run["n_layers"]), int(run["n_heads"]), roles)
        shares = queries.run_table(self.store, "class_shares", run_id).to_pylist()
        for source in CLASS_SOURCES:
            picked = [r for r in shares if r["source"] == source]
            if picked:
                data.share_source = source
                for r in picked:
                    data.shares.setdefault((r["role"], int(r["layer"]), int(r["head"])), {})[r["label"]] = r["share"]
                break
        data.metric = get_task(run["task"]).main_metric
        data.ablation = {(int(r["layer"]), int(r["head"])): r
                         for r in queries.ablation_rows(self.store, run_id, kind="head", metric=data.metric)}
        data.stability = {(int(r["layer"]), int(r["head"])): (float(r["distance"]), int(r["n_runs"]))
                          for r in queries.head_stability_of(self.store, run_id)}
        return data

    def class_references(self, run_id: str) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
        """Per pattern class, the map the rules give it with the highest confidence in the run, and that map.

        Ties (and rules without a confidence) go to the first map in (role, input, layer, head) order.
        """
        rows = queries.surest_maps(self.store, run_id, "rules")
        return {r["label"]: (r, self.maps(run_id, r["role"]).head(r["example"], r["layer"], r["head"]))
                for r in rows if r["label"] in PATTERN_CLASSES}

    def catalog_columns(self) -> list[dict[str, Any]]:
        """Every catalog table's columns and their SQL types, for the SQL screen's schema tree and completion."""
        return queries.catalog_columns(self.store)

    def tables_with_rows(self, tables: tuple[str, ...]) -> dict[str, list[str]]:
        """Per run, which of ``tables`` hold its rows so far (the steps after its maps that have landed)."""
        return queries.tables_with_rows(self.store, tables)
