"""`bertsecrets check`: every problem of a store named in one pass, and the invalidation `--repair` starts from.

:func:`check_store` reads every catalog part of every table, every finished
run's weights and rows, and every finished map set chunk by chunk (its norms
too, where it has them), and returns one :class:`Problem` per damaged thing
(it never stops at the first).

:func:`invalidate` then removes exactly what is damaged and marks what
depended on it as not done, in the terms the ingest already uses to decide
what to do, so that the ingest of each affected run recomputes it and
nothing else:

- a run's record: status ``damaged`` (the ingest redoes runs not ``done``);
- its weights: the folder removed (the run fine-tunes again);
- a catalog part: removed (its step writes it again);
- a map chunk: the example dropped from the map set's progress record and
  the map set's catalog rows set back to ``running`` (extraction resumes
  with that example only);
- a norm chunk: the example dropped from the map set's norms progress record
  and the group's ``norms`` attribute cleared (the ingest's norms step adds
  that example's norms again; the maps are not touched); norm arrays that do
  not open: removed, and the norms step adds them all;
- an analysis: its row dropped from the run's ``analyses`` part (the step
  is no longer up to date); the whole ``analyses`` part: an empty one (every
  step to redo, where no part at all would mean "not analysed yet").

Weights trained off the CPU do not come back bit for bit, so what was
computed from them goes with them. People's labels are never removed: they
cannot be recomputed.
"""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bertsecrets.core.tasks import ROLES
from bertsecrets.store.catalog import arrow_reason, schema_problem
from bertsecrets.store.errors import StoreError
from bertsecrets.store.maps import MAX_ABS_ERROR, MapReader
from bertsecrets.store.schema import TABLES
from bertsecrets.store.store import DAMAGED, Store, manifest_mismatch, read_manifest

TRAINED = ("finetuned", "random_init")

#: The catalog parts each step of the analyses writes for a run ("{run}": its id), as
#: ingest/analyses/driver.py writes them; a step recorded as done in ``analyses`` must have them all.
ANALYSIS_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "maps": (("head_stats", "{run}"), ("feature_attention", "{run}"), ("cls_attention", "{run}"),
             ("head_change", "{run}"), ("relation_heads", "{run}-spacy"), ("map_classes", "{run}-rules"),
             ("class_shares", "{run}-rules")),
    "classes": (("classifiers", "{run}"), ("map_classes", "{run}-classifier"), ("class_shares", "{run}-classifier")),
    "framenet": (("relation_heads", "{run}-framenet"),),
    "norms": (("norm_head_stats", "{run}"), ("norm_feature_attention", "{run}"), ("norm_head_change", "{run}"),
              ("norm_class_shares", "{run}-rules")),
    # head_stability too, in parts "<run>-<other run>" of pairs of seeds (optional: a run may have no other seed)
    "flow": (("head_distances", "{run}"), ("head_families", "{run}"), ("head_profiles", "{run}"),
             ("cls_rollout", "{run}"), ("cls_rollout_tokens", "{run}")),
}
#: Steps an older store may lack without being damaged (its parts are still checked once the step is recorded).
LATER_STEPS = ("norms", "flow")
#: The tables the head-disabling step writes, one part per fine-tuned run each.
ABLATION_TABLES = ("ablation", "head_importance", "pruning")

# -- kinds of problem ----------------------------------------------------------------
PART_UNREADABLE = "part_unreadable"  # a catalog part that is not Parquet or does not decode
PART_SCHEMA = "part_schema"  # a catalog part whose columns do not fit its table
PART_MISSING = "part_missing"  # a catalog part a finished step must have written
PART_ROWS = "part_rows"  # a catalog part with the wrong rows (duplicates, too few)
NOT_READABLE = "not_readable"  # a file this account may not read: nothing to recompute
RUN_DAMAGED = "run_damaged"  # a run marked for recomputing whose ingest has not run yet
MAPS_UNFINISHED = "maps_unfinished"  # a finished run whose map set is not done
WEIGHTS = "weights"  # fine-tuned weights missing, or not what was written
MAP_SET = "map_set"  # a map set missing, unreadable, or of the wrong shape
CHUNK_MISSING = "chunk_missing"
CHUNK_EMPTY = "chunk_empty"
CHUNK_UNDECODABLE = "chunk_undecodable"
CHUNK_VALUES = "chunk_values"  # decodes, but rows do not sum to 1 or padding is not zero
NORMS = "norms"  # a map set that says every input has its norms, whose norm arrays are missing or unreadable
NORM_MISSING = "norm_missing"
NORM_EMPTY = "norm_empty"
NORM_UNDECODABLE = "norm_undecodable"
NORM_VALUES = "norm_values"  # decodes, but holds NaN, infinite or negative norms, none at all, or non-zero padding
ANALYSIS_STALE = "analysis_stale"  # an analysis step without its record
RECORD_MISSING = "record_missing"  # a run's rows or maps in the catalog, but no record of the run
CATALOG_FILE = "catalog_file"  # catalog.duckdb missing, unreadable or pointing at another store

CHUNK_KINDS = (CHUNK_MISSING, CHUNK_EMPTY, CHUNK_UNDECODABLE, CHUNK_VALUES)
NORM_CHUNK_KINDS = (NORM_MISSING, NORM_EMPTY, NORM_UNDECODABLE, NORM_VALUES)
_RUN_ID = re.compile(r"^(run-[0-9a-f]{16})")


@dataclass(frozen=True)
class Problem:
    """One damaged thing: what kind, where, and a line that says it."""

    kind: str
    message: str
    path: Path | None = None
    table: str | None = None
    part: str | None = None
    run_id: str | None = None
    map_id: str | None = None
    example: int | None = None

    def __str__(self) -> str:
        return self.message

    @property
    def repairable(self) -> bool:
        """Whether recomputing can mend it: people's labels and unreadable files cannot be."""
        return self.kind != NOT_READABLE and self.table != "labels"


def run_of_part(part: str) -> str | None:
    found = _RUN_ID.match(part)
    return found.group(1) if found else None


# -- checking -------------------------------------------------------------------------


def _lock_free(store: Store, name: str) -> bool:
    path = store.root / "locks" / f"{name}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)  # flock needs no write access: works on a read-only store
    except FileNotFoundError:
        return True
    except PermissionError:
        return True  # cannot tell from here: check as if no one were writing
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@dataclass
class _Catalog:
    """What the check read from the catalog parts: which exist, and the rows it needs."""

    present: dict[str, set[str]] = field(default_factory=dict)  # table -> parts on disk, readable or not
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    maps: list[dict[str, Any]] = field(default_factory=list)
    analyses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    examples: dict[str, tuple[int, int]] = field(default_factory=dict)  # run -> (rows, distinct examples)
    lengths: dict[str, dict[int, int]] = field(default_factory=dict)  # run -> example -> tokens


class _Checker:
    def __init__(self, store: Store, deep: bool) -> None:
        self.store, self.deep = store, deep
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    def add(self, kind: str, message: str, **where: Any) -> None:
        self.problems.append(Problem(kind, message, **where))

    # 1. Every part of every table: readable Parquet, with its table's columns.
    def parts(self) -> _Catalog:
        cat = _Catalog()
        for table in TABLES:
            cat.present[table] = set()
            for path in sorted((self.store.catalog.tables_dir / table).glob("*.parquet")):
                part = path.stem
                cat.present[table].add(part)
                where = dict(path=path, table=table, part=part, run_id=run_of_part(part))
                try:
                    data = pq.read_table(path)  # every page, so a damaged page is found too
                except FileNotFoundError:
                    continue  # replaced while we looked: a writer is at work
                except PermissionError:
                    self.add(NOT_READABLE, f"{path}: not readable by this account (run as the store's owner, "
                                           "or let it read the store: chmod -R a+rX)", **where)
                    continue
                except (pa.ArrowException, OSError, ValueError) as exc:
                    self.add(PART_UNREADABLE, f"{path}: unreadable Parquet ({arrow_reason(exc, path)})", **where)
                    continue
                wrong = schema_problem(table, data.schema)
                if wrong is not None:
                    self.add(PART_SCHEMA, f"{path}: wrong schema for table {table} ({wrong[1]})", **where)
                    continue
                self._keep(cat, table, part, data)
        return cat

    @staticmethod
    def _keep(cat: _Catalog, table: str, part: str, data: pa.Table) -> None:
        if table == "runs":
            for row in data.to_pylist():
                cat.runs[row["run_id"]] = row
        elif table == "maps":
            cat.maps += data.to_pylist()
        elif table == "analyses" and part != "_schema":
            cat.analyses[part] = data.to_pylist()
        elif table in ("examples", "tokens") and part != "_schema" and "example" in data.column_names:
            examples, counts = np.unique(data.column("example").to_numpy(zero_copy_only=False), return_counts=True)
            if table == "examples":
                cat.examples[part] = (int(counts.sum()), len(examples))
            else:
                cat.lengths[part] = dict(zip(examples.tolist(), counts.tolist()))

    # 2. Runs: what a finished run must have.
    def runs(self, cat: _Catalog) -> set[str]:
        """Check every run; returns the finished ones (whose map sets and analyses are checked next)."""
        finished = set()
        part_path = self.store.catalog.part_path
        maps_by_run: dict[str, dict[str, dict]] = {}
        for m in cat.maps:
            maps_by_run.setdefault(m["run_id"], {})[m["role"]] = m
        # A run writes its record before anything else: rows without one mean the record was lost.
        for table in ("examples", "tokens", "train_log", "maps"):
            for part in sorted(cat.present[table]):
                rid = run_of_part(part)
                if rid and rid not in cat.runs and rid not in cat.present["runs"]:
                    self.add(RECORD_MISSING, f"{part_path(table, part)}: belongs to run {rid}, which has no record "
                                             f"in the catalog ({part_path('runs', rid)})",
                             path=part_path(table, part), table=table, part=part, run_id=rid)
        for rid, run in sorted(cat.runs.items()):
            label = f"run {rid} ({run['task']}, {run['setup']})"
            status = run["status"]
            if status != "done" and not _lock_free(self.store, rid):
                self.notes.append(f"{label} is being written now ({run['stage']})")
                continue
            if status == DAMAGED:
                self.add(RUN_DAMAGED, f"{label} was marked for recomputing ({run['error']}); "
                                      "`bertsecrets check --repair` or its ingest recomputes it", run_id=rid)
                continue
            if status != "done":
                self.notes.append(f"{label} stopped while {run['stage'] or 'starting'} ({status}); "
                                  "the same ingest resumes it")
                continue
            finished.add(rid)
            # Weights without their training log: the log is only written by training (missing
            # weights are named alone: training them again writes the log too).
            if run["setup"] in TRAINED and self.weights(rid, label):
                if rid not in cat.present["train_log"]:
                    self.add(PART_MISSING, f"{label}: its training log is missing from the catalog "
                                           f"({part_path('train_log', rid)})",
                             path=part_path("train_log", rid), table="train_log", part=rid, run_id=rid)
            if rid not in cat.present["examples"]:
                self.add(PART_MISSING, f"{label}: no dev predictions in the catalog (examples): "
                                       f"{part_path('examples', rid)} is missing",
                         path=part_path("examples", rid), table="examples", part=rid, run_id=rid)
            elif rid in cat.examples:
                n, distinct = cat.examples[rid]
                where = dict(path=part_path("examples", rid), table="examples", part=rid, run_id=rid)
                if n != distinct:
                    self.add(PART_ROWS, f"{label}: {n - distinct} duplicated example rows in {where['path']}", **where)
                elif run["dev_examples"] is not None and distinct != run["dev_examples"]:
                    self.add(PART_ROWS, f"{label}: {distinct} dev predictions in {where['path']}, "
                                        f"expected {run['dev_examples']}", **where)
            if run["setup"] == "finetuned":
                if rid not in cat.present["tokens"]:
                    self.add(PART_MISSING, f"{label}: its word pieces are missing from the catalog (tokens): "
                                           f"{part_path('tokens', rid)}",
                             path=part_path("tokens", rid), table="tokens", part=rid, run_id=rid)
                for role in ROLES:
                    part = f"{rid}-{role}"
                    m = maps_by_run.get(rid, {}).get(role)
                    if m is None and part not in cat.present["maps"]:
                        self.add(PART_MISSING, f"{label}: its {role} maps are missing from the catalog: "
                                               f"{part_path('maps', part)}",
                                 path=part_path("maps", part), table="maps", part=part, run_id=rid)
                    elif m is not None and m["status"] != "done":
                        self.add(MAPS_UNFINISHED, f"{label}: {role} maps not finished in the catalog "
                                                  f"({part_path('maps', part)})",
                                 path=part_path("maps", part), table="maps", part=part, run_id=rid, map_id=m["map_id"])
        return finished

    def weights(self, rid: str, label: str) -> bool:
        """Check a run's weights folder; whether it holds weights at all."""
        folder = self.store.model_dir(rid)
        weights = sorted(folder.glob("*.safetensors"))
        if not (folder / "config.json").exists() or not weights:
            self.add(WEIGHTS, f"{label}: fine-tuned weights missing from {folder}", path=folder, run_id=rid)
            return False
        try:
            manifest = read_manifest(folder)
        except (OSError, ValueError, KeyError):
            manifest = None
            self.add(WEIGHTS, f"{label}: {folder / 'bertsecrets-manifest.json'} is damaged", path=folder, run_id=rid)
        if manifest is not None:
            for path, why in manifest_mismatch(folder, manifest, hashes=self.deep):
                self.add(WEIGHTS, f"{label}: {why}", path=path, run_id=rid)
        for path in weights:
            why = safetensors_problem(path, self.deep)
            if why is not None:
                self.add(WEIGHTS, f"{label}: {path} is damaged ({why})", path=path, run_id=rid)
        return True

    # 3. Map sets: present, readable, the shapes the catalog and tokens say, every chunk.
    def map_sets(self, cat: _Catalog, finished: set[str]) -> set[str]:
        referenced = {m["map_id"] for m in cat.maps}
        seen = set()
        for m in sorted(cat.maps, key=lambda r: (r["map_id"], r["run_id"])):
            if m["status"] != "done" or m["map_id"] in seen or m["run_id"] not in finished:
                continue
            seen.add(m["map_id"])
            if not _lock_free(self.store, m["map_id"]):
                self.notes.append(f"map set {m['map_id']} is being written now")
                continue
            self.map_set(m, cat.lengths.get(m["run_id"], {}), cat.runs[m["run_id"]]["task"])
        return referenced

    def map_set(self, m: dict[str, Any], lengths: dict[int, int], task: str) -> None:
        map_id, rid = m["map_id"], m["run_id"]
        where = f"{m['role']} maps of run {rid} ({map_id})"
        ids = dict(run_id=rid, map_id=map_id)
        path = self.store.maps_path(map_id)
        if not path.exists():
            self.add(MAP_SET, f"{where}: {path} is missing", path=path, **ids)
            return
        try:
            reader = MapReader(path)
        except StoreError as exc:
            self.add(MAP_SET, f"{where}: {exc}", path=path, **ids)
            return
        if len(reader) != m["n_examples"]:
            self.add(MAP_SET, f"{where}: {len(reader)} examples stored in {path}, the catalog says {m['n_examples']}",
                     path=path, **ids)
            return
        bad = [e for e in range(len(reader)) if lengths.get(e) not in (None, int(reader.lengths[e]))]
        if bad:
            self.add(MAP_SET, f"{where}: lengths in {path} disagree with the tokens table for {len(bad)} "
                              f"example(s) (first: {bad[0]})", path=path, **ids)
            return
        whole = self.chunk_files(reader.chunk_path, len(reader), where, ids, (CHUNK_MISSING, CHUNK_EMPTY))
        if self.deep:
            self.chunks(reader, whole, where, ids)
        self.norms(reader, where, ids, task)

    def chunk_files(self, path_of: Callable[[int], Path], n: int, where: str, ids: dict[str, str],
                    kinds: tuple[str, str], norms: bool = False) -> list[int]:
        """Every example's chunk file (of its norms, with ``norms``) present, not empty, readable;
        the examples whose file is, to decode with --deep."""
        whole = []
        for e in range(n):
            chunk = path_of(e)
            what, are = (f"the norms of example {e}", "are") if norms else (f"example {e}", "is")
            try:
                size = chunk.stat().st_size
            except FileNotFoundError:
                self.add(kinds[0], f"{where}: {what} {are} missing: no chunk {chunk}", path=chunk, example=e, **ids)
                continue
            if size == 0:
                self.add(kinds[1], f"{where}: {what}: chunk {chunk} is empty (0 bytes)", path=chunk, example=e, **ids)
                continue
            if not os.access(chunk, os.R_OK):
                self.add(NOT_READABLE, f"{chunk}: not readable by this account (run as the store's owner, "
                                       "or let it read the store: chmod -R a+rX)", path=chunk, example=e, **ids)
                continue
            whole.append(e)
        return whole

    def norms(self, reader: MapReader, where: str, ids: dict[str, str], task: str) -> None:
        """The norms ||f(x_j)|| of a map set that says every input has them, chunk by chunk as the maps.

        A map set without them (made before they were kept) or with some of them
        (its backfill interrupted) is sound: a note says how they are added.
        """
        if not reader.has_norms:
            how = (f"`bertsecrets ingest {task}` with the options that made run {ids['run_id']} adds them "
                   "(the maps stay as they are)")
            try:
                partly = reader.has_norm_arrays
            except Exception:  # norm arrays half made by an interrupted backfill: it makes them again
                partly = True
            if partly:
                self.notes.append(f"{where}: norms added to some inputs only (an interrupted ingest); {how}")
            else:
                self.notes.append(f"{where}: no norms (stored before bertsecrets kept them); {how}")
            return
        try:
            reader.norm_arrays()
        except StoreError as exc:
            why = str(exc).removesuffix("; run `bertsecrets check`")  # this is that check
            self.add(NORMS, f"{where}: its attributes say every input has its norms, but {why}", path=reader.path, **ids)
            return
        whole = self.chunk_files(reader.norm_chunk_path, len(reader), where, ids, (NORM_MISSING, NORM_EMPTY), norms=True)
        if self.deep:
            self.norm_chunks(reader, whole, where, ids)

    def norm_chunks(self, reader: MapReader, examples: list[int], where: str, ids: dict[str, str]) -> None:
        """Decode every norm chunk of ``examples``: finite, not negative, not all zero (a lost chunk reads as zeros),
        zero past the input's length."""
        for e in examples:
            chunk = reader.norm_chunk_path(e)
            try:
                norms = reader.norm_chunk(e)
            except Exception as exc:  # whatever the codec raises for bytes that are not its own
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
                self.add(NORM_UNDECODABLE, f"{where}: the norms of example {e}: chunk {chunk} does not decode "
                                           f"({reason})", path=chunk, example=e, **ids)
                continue
            length = int(reader.lengths[e])
            real = norms[:, :, :length]
            why = ("holds NaN or infinite norms" if not np.isfinite(norms).all()
                   else "holds negative norms" if (norms < 0).any()
                   else "holds no norms (all zero)" if not real.any()
                   else "has non-zero padding" if norms[:, :, length:].any()
                   else None)
            if why is not None:
                self.add(NORM_VALUES, f"{where}: the norms of example {e}: chunk {chunk} {why}",
                         path=chunk, example=e, **ids)

    def chunks(self, reader: MapReader, examples: list[int], where: str, ids: dict[str, str]) -> None:
        """Decode every chunk of ``examples``: each real row sums to 1 (within quantisation), padding is zero."""
        tol = MAX_ABS_ERROR[reader.precision]
        for e in examples:
            chunk = reader.chunk_path(e)
            try:
                maps = reader.chunk(e)
            except Exception as exc:  # whatever the codecs raise for bytes that are not theirs
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
                self.add(CHUNK_UNDECODABLE, f"{where}: example {e}: chunk {chunk} does not decode ({reason})",
                         path=chunk, example=e, **ids)
                continue
            length = int(reader.lengths[e])
            sums = maps[:, :, :length, :length].sum(-1)
            if np.abs(sums - 1).max() > length * tol + 1e-3:
                self.add(CHUNK_VALUES, f"{where}: example {e}: chunk {chunk} holds attention rows that do not sum to 1",
                         path=chunk, example=e, **ids)
            elif maps[:, :, length:, :].any() or maps[:, :, :, length:].any():
                self.add(CHUNK_VALUES, f"{where}: example {e}: chunk {chunk} has non-zero padding",
                         path=chunk, example=e, **ids)

    # 4. The analyses and the head-disabling step of every finished fine-tuned run.
    def post_steps(self, cat: _Catalog, finished: set[str]) -> None:
        part_path = self.store.catalog.part_path
        for rid in sorted(finished):
            run = cat.runs[rid]
            if run["setup"] != "finetuned":
                continue
            label = f"run {rid} ({run['task']}, {run['setup']})"
            if not _lock_free(self.store, f"analyses-{rid}"):
                self.notes.append(f"{label}: being analysed now")
            elif rid in cat.analyses:
                steps = {r["step"]: r for r in cat.analyses[rid]}
                for step in ANALYSIS_PARTS:
                    # Stores from before norms were kept lack the norms step and are sound: the next ingest adds it.
                    if step not in steps and step not in LATER_STEPS:
                        self.add(ANALYSIS_STALE, f"{label}: the {step} analysis has no record in "
                                                 f"{part_path('analyses', rid)}: it must be recomputed",
                                 path=part_path("analyses", rid), table="analyses", part=rid, run_id=rid)
                for step, row in sorted(steps.items()):
                    if row["status"] != "done":
                        continue
                    for table, part in analysis_parts(step, rid):
                        if part not in cat.present[table]:
                            self.add(PART_MISSING, f"{label}: {table} rows of the {step} analysis are missing "
                                                   f"({part_path(table, part)})",
                                     path=part_path(table, part), table=table, part=part, run_id=rid)
            elif rid not in cat.present["analyses"]:
                self.notes.append(f"{label}: not analysed yet; its ingest (or `bertsecrets analyze`) analyses it")
            have = [t for t in ABLATION_TABLES if rid in cat.present[t]]
            if not _lock_free(self.store, f"ablation-{rid}"):
                self.notes.append(f"{label}: its heads are being disabled now")
            elif not have:
                self.notes.append(f"{label}: heads not disabled yet; its ingest (or `bertsecrets ablate`) does it")
            else:
                for table in (t for t in ABLATION_TABLES if t not in have):
                    self.add(PART_MISSING, f"{label}: {table} rows of the head-disabling step are missing "
                                           f"({part_path(table, rid)})",
                             path=part_path(table, rid), table=table, part=rid, run_id=rid)

    # 5. The DuckDB file for other clients, and harmless leftovers.
    def catalog_file(self) -> None:
        why = self.store.duckdb_file_problem()
        if why is not None:
            self.add(CATALOG_FILE, why, path=self.store.duckdb_path)

    def leftovers(self, referenced: set[str]) -> None:
        maps_dir = self.store.root / "maps"
        if maps_dir.is_dir():
            for path in sorted(maps_dir.glob("*.zarr")):
                if path.name[: -len(".zarr")] not in referenced:
                    self.notes.append(f"{path.name}: a map set no run refers to (left by an interrupted or changed ingest)")
        leftovers = list(self.store.root.rglob(".tmp-*"))
        if leftovers:
            self.notes.append(f"{len(leftovers)} temporary file(s) from interrupted writes (removed by the next ingest)")


def analysis_parts(step: str, run_id: str) -> list[tuple[str, str]]:
    """The (table, part) an analysis step writes for a run; a user's relations file (``jsonl-...``) writes one part."""
    if step in ANALYSIS_PARTS:
        return [(table, part.format(run=run_id)) for table, part in ANALYSIS_PARTS[step]]
    if step.startswith("jsonl"):
        return [("relation_heads", f"{run_id}-{step}")]
    return []


def safetensors_problem(path: Path, deep: bool) -> str | None:
    """Why a safetensors file would not load, or None: its header and size (the safetensors
    library checks that the header covers the file exactly); ``deep`` reads every tensor too,
    and finds non-finite values in float ones."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            names = list(fh.keys())
            if not deep:
                return None
            for name in names:
                tensor = fh.get_tensor(name)
                if tensor.dtype.kind == "f" and not np.isfinite(tensor).all():
                    return f"tensor {name} holds NaN or infinite values"
    except PermissionError:
        return "not readable by this account"
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def check_store(store: Store, deep: bool = False) -> tuple[list[Problem], list[str]]:
    """(problems, notes) of a store, all of them in one pass; notes are harmless.

    Without ``deep``, chunks are checked by existence and size and weights by their
    header and size; ``deep`` decodes every chunk and weights file and compares the
    weights with the sha256 recorded when they were written.
    """
    checker = _Checker(store, deep)
    cat = checker.parts()
    finished = checker.runs(cat)
    referenced = checker.map_sets(cat, finished)
    checker.post_steps(cat, finished)
    checker.catalog_file()
    checker.leftovers(referenced)
    return checker.problems, checker.notes


# -- invalidating ------------------------------------------------------------------------


@dataclass
class Invalidation:
    """What :func:`invalidate` did: the runs whose ingest must run, and what no ingest can redo."""

    runs: set[str] = field(default_factory=set)  # runs whose ingest recomputes what was removed
    lost: set[str] = field(default_factory=set)  # runs whose record was unreadable and is removed
    manual: list[str] = field(default_factory=list)  # one line each: what to do by hand


def part_owner(table: str, part: str) -> tuple[str, str | None]:
    """Which step writes a catalog part: ("run"|"analyses"|"ablation"|"seeds"|"labels"|"schema"|"unknown", analysis step)."""
    if part == "_schema":
        return "schema", None
    if table in ("runs", "examples", "tokens", "train_log", "maps"):
        return "run", None
    if table == "analyses":
        return "analyses", None
    if table in ABLATION_TABLES:
        return "ablation", None
    if table == "ablation_seeds":
        return "seeds", None
    if table == "labels":
        return "labels", None
    run_id = run_of_part(part)
    for step in ANALYSIS_PARTS:
        if run_id and (table, part) in analysis_parts(step, run_id):
            return "analyses", step
    if run_id and table == "head_stability" and run_of_part(part[len(run_id) + 1:]):
        return "analyses", "flow"
    if run_id and table == "relation_heads" and part.startswith(f"{run_id}-jsonl"):
        return "analyses", part[len(run_id) + 1:]
    return "unknown", None


class _Invalidator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.out = Invalidation()
        self.damaged: dict[str, str] = {}  # run -> why, marked at the end
        self.remove_weights: set[str] = set()
        self.chunks: dict[str, set[int]] = {}  # map set -> examples to redo
        self.map_sets: set[str] = set()  # map sets to redo whole
        self.norm_chunks: dict[str, set[int]] = {}  # map set -> examples whose norms to redo
        self.norm_sets: set[str] = set()  # map sets whose norms to redo whole
        self.stale_steps: dict[str, set[str]] = {}  # run -> analysis steps whose record goes
        self.empty_analyses: set[str] = set()  # runs whose analyses record is replaced by an empty one
        self.refresh_file = False
        self.ensure_tables = False

    def part(self, p: Problem, remove: bool) -> None:
        owner, step = part_owner(p.table, p.part)
        rid = p.run_id
        if owner == "labels":
            self.out.manual.append(f"{p.path}: people's labels cannot be recomputed; restore the file from a backup, "
                                   "or move it away and `bertsecrets labels import` an export of them")
            return
        if owner == "unknown":
            self.out.manual.append(f"{p.path}: no bertsecrets step writes this part; remove it by hand")
            return
        if remove:
            self.store.catalog.delete(p.table, p.part)
        if owner == "schema":
            self.ensure_tables = True
        elif owner == "seeds":
            self.out.manual.append(f"{p.path} was removed: `bertsecrets ablate <task> --seeds N` aggregates the seeds again")
        elif p.table == "runs":
            self.out.lost.add(rid)
        elif owner == "run":
            self.damaged[rid] = p.message
            if p.table == "train_log":  # only fine-tuning writes the log: train again, to the same weights
                self.remove_weights.add(rid)
        elif owner == "analyses":
            if step is None:  # the whole record: an empty one says "all to do", unlike no record ("not yet")
                self.empty_analyses.add(rid)
                for part in self.store.catalog.parts("relation_heads"):
                    if part.startswith(f"{rid}-jsonl"):  # its record named the person's file, now unknown
                        self.out.manual.append(
                            f"{self.store.catalog.part_path('relation_heads', part)}: relation heads from a file of "
                            f"yours, no longer recorded; `bertsecrets analyze {rid} --relations FILE` records them again")
            else:
                self.stale_steps.setdefault(rid, set()).add(step)
                if step.startswith("jsonl"):
                    self.out.manual.append(f"{p.path}: relation heads from a file of yours; "
                                           f"`bertsecrets analyze {rid} --relations FILE` computes them again")
            self.out.runs.add(rid)
        else:  # ablation: its step redoes whatever table of the three is missing
            self.out.runs.add(rid)

    def problem(self, p: Problem) -> None:
        if p.kind == NOT_READABLE:
            self.out.manual.append(p.message)
        elif p.kind in (PART_UNREADABLE, PART_SCHEMA, PART_ROWS):
            self.part(p, remove=True)
        elif p.kind == PART_MISSING:
            self.part(p, remove=False)
        elif p.kind in (RUN_DAMAGED, MAPS_UNFINISHED):
            self.out.runs.add(p.run_id)
        elif p.kind == WEIGHTS:
            self.remove_weights.add(p.run_id)
            self.damaged[p.run_id] = p.message
        elif p.kind == MAP_SET:
            self.map_sets.add(p.map_id)
        elif p.kind in CHUNK_KINDS:
            self.chunks.setdefault(p.map_id, set()).add(p.example)
        elif p.kind == NORMS:
            self.norm_sets.add(p.map_id)
            self.out.runs.add(p.run_id)
        elif p.kind in NORM_CHUNK_KINDS:
            self.norm_chunks.setdefault(p.map_id, set()).add(p.example)
            self.out.runs.add(p.run_id)
        elif p.kind == ANALYSIS_STALE:
            self.out.runs.add(p.run_id)
        elif p.kind == RECORD_MISSING:
            self.out.lost.add(p.run_id)
        elif p.kind == CATALOG_FILE:
            self.refresh_file = True

    def weights_not_repeatable(self, rid: str) -> None:
        """Training is bit for bit repeatable on a CPU only: weights trained elsewhere come back different,
        so what was computed from them (predictions, maps, analyses, disabled heads) is redone too."""
        try:
            record = self.store.run(rid)
        except StoreError:
            return
        if record is None or record.get("device") == "cpu":
            return
        cat = self.store.catalog
        cat.delete("examples", rid)
        with self.store.lock(f"ablation-{rid}", f"the ablation of run {rid}"):
            for table in ABLATION_TABLES:
                cat.delete(table, rid)
        if record["setup"] == "finetuned":
            try:
                table = cat.read_part("maps", f"{rid}-finetuned")
            except StoreError:
                table = None  # an unreadable row is a problem of its own, redone with the run
            if table is not None:
                self.map_sets.update(r["map_id"] for r in table.to_pylist())
            if cat.has_part("analyses", rid):
                self.empty_analyses.add(rid)

    def finish(self) -> Invalidation:
        store = self.store
        for rid in sorted(self.remove_weights):
            with store.lock(rid, f"run {rid}"):
                self.weights_not_repeatable(rid)
                store.remove_model(rid)
        # Extraction writes the norms of the inputs it redoes and marks the norms complete once every input's
        # maps are written: in a map set whose maps are redone, the inputs with damaged norms are redone whole.
        for map_id in list(self.norm_chunks):
            if map_id in self.map_sets or map_id in self.norm_sets:
                del self.norm_chunks[map_id]
            elif map_id in self.chunks:
                self.chunks[map_id] |= self.norm_chunks.pop(map_id)
        self.norm_sets -= self.map_sets
        for map_id in sorted(self.map_sets | set(self.chunks)):
            with store.lock(map_id, f"map set {map_id}"):
                store.forget_maps(map_id, None if map_id in self.map_sets else sorted(self.chunks[map_id]))
                self.out.runs.update(store.reopen_maps(map_id))
        # The norms step (the ingest's backfill) adds what is forgotten here; the maps stay.
        for map_id in sorted(self.norm_sets | set(self.norm_chunks)):
            with store.lock(map_id, f"map set {map_id}"):
                store.forget_norms(map_id, None if map_id in self.norm_sets else sorted(self.norm_chunks[map_id]))
        for rid in sorted(self.empty_analyses):
            with store.lock(f"analyses-{rid}", f"the analyses of run {rid}"):
                store.catalog.write("analyses", rid, [])
        for rid, steps in sorted(self.stale_steps.items()):
            with store.lock(f"analyses-{rid}", f"the analyses of run {rid}"):
                table = store.catalog.read_part("analyses", rid)
                if table is not None:
                    store.catalog.write("analyses", rid, [r for r in table.to_pylist() if r["step"] not in steps])
        for rid, why in sorted(self.damaged.items()):
            with store.lock(rid, f"run {rid}"):
                store.mark_damaged(rid, why)
            self.out.runs.add(rid)
        if self.ensure_tables:
            store.catalog.ensure_tables()
        if self.refresh_file:
            store.refresh_duckdb_file(force=True)
        self.out.runs -= self.out.lost
        self.out.runs.discard(None)
        return self.out


def invalidate(store: Store, problems: list[Problem]) -> Invalidation:
    """Remove exactly what ``problems`` name as damaged and mark what depended on it as not done.

    Afterwards the ingest of each run in ``runs`` (and of the runs whose records
    were lost, found through another run of the same ingest) recomputes what
    was removed and nothing else. Files that cannot be recomputed (people's
    labels) or not read here are left alone and listed in ``manual``.
    """
    for problem in problems:  # nothing is touched while a writer is at work on what it names
        rid = problem.run_id
        for name in filter(None, (rid, problem.map_id, rid and f"analyses-{rid}", rid and f"ablation-{rid}")):
            if not _lock_free(store, name):
                raise StoreError(f"{name} is being written now; let that finish, then run `bertsecrets check --repair`")
    inv = _Invalidator(store)
    for problem in problems:
        inv.problem(problem)
    return inv.finish()


__all__ = ["Problem", "Invalidation", "check_store", "invalidate", "analysis_parts", "part_owner",
           "safetensors_problem", "ANALYSIS_PARTS", "ABLATION_TABLES"]
