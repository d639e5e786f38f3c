"""`bertsecrets check`: does every catalog row have its artifact, and every artifact its row?"""

from __future__ import annotations

import fcntl
import numpy as np
import pyarrow.parquet as pq

from bertsecrets.store.errors import StoreError
from bertsecrets.store.maps import MAX_ABS_ERROR, MapReader
from bertsecrets.store.schema import TABLES
from bertsecrets.store.store import Store

TRAINED = ("finetuned", "random_init")


def _lock_free(store: Store, run_id: str) -> bool:
    path = store.root / "locks" / f"{run_id}.lock"
    if not path.exists():
        return True
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(fh, fcntl.LOCK_UN)
    return True


def check_store(store: Store, deep: bool = False) -> tuple[list[str], list[str]]:
    """(problems, notes): problems mean the store and catalog disagree; notes are harmless."""
    problems: list[str] = []
    notes: list[str] = []
    cat = store.catalog

    # 1. Every catalog part is a readable Parquet file with its table's columns.
    readable: dict[tuple[str, str], bool] = {}
    for table, schema in TABLES.items():
        for part in cat.parts(table):
            path = cat.part_path(table, part)
            try:
                names = set(pq.read_schema(path).names)
                missing = [f.name for f in schema if f.name not in names]
                if missing and table in ("runs", "maps", "examples", "tokens"):
                    problems.append(f"{path}: lacks column(s) {', '.join(missing)}")
                readable[(table, part)] = True
            except Exception as exc:
                problems.append(f"{path}: unreadable Parquet ({type(exc).__name__}); delete it and rerun the ingest that made it")
                readable[(table, part)] = False
    if problems:
        return problems, notes

    # 2. Runs: what a finished run must have.
    try:
        runs = store.rows("SELECT * FROM runs")
        maps = store.rows("SELECT * FROM maps")
        example_counts = {r["run_id"]: r for r in store.rows(
            "SELECT run_id, count(*) AS n, count(DISTINCT example) AS distinct_n FROM examples GROUP BY run_id")}
    except StoreError as exc:
        return [str(exc)], notes
    maps_by_run: dict[str, dict[str, dict]] = {}
    for m in maps:
        maps_by_run.setdefault(m["run_id"], {})[m["role"]] = m
    for run in runs:
        rid, status = run["run_id"], run["status"]
        label = f"run {rid} ({run['task']}, {run['setup']})"
        if status != "done":
            if _lock_free(store, rid):
                notes.append(f"{label} stopped while {run['stage'] or 'starting'} ({status}); the same ingest resumes it")
            else:
                notes.append(f"{label} is being written now ({run['stage']})")
            continue
        if run["setup"] in TRAINED:
            folder = store.model_dir(rid)
            weights = sorted(folder.glob("*.safetensors"))
            if not (folder / "config.json").exists() or not weights:
                problems.append(f"{label}: fine-tuned weights missing from {folder}")
            else:
                try:
                    from safetensors import safe_open

                    with safe_open(str(weights[0]), framework="numpy") as fh:
                        fh.keys()
                except Exception:
                    problems.append(f"{label}: {weights[0]} is unreadable")
        counts = example_counts.get(rid)
        if counts is None:
            problems.append(f"{label}: no dev predictions in the catalog (examples)")
        else:
            if counts["n"] != counts["distinct_n"]:
                problems.append(f"{label}: {counts['n'] - counts['distinct_n']} duplicated example rows")
            if run["dev_examples"] is not None and counts["distinct_n"] != run["dev_examples"]:
                problems.append(f"{label}: {counts['distinct_n']} dev predictions, expected {run['dev_examples']}")
        if run["setup"] == "finetuned":
            for role in ("pretrained", "finetuned"):
                m = maps_by_run.get(rid, {}).get(role)
                if m is None or m["status"] != "done":
                    problems.append(f"{label}: {role} maps not finished in the catalog")

    # 3. Map sets: files present, shapes as the catalog and the tokens say.
    token_lengths = {
        (r["run_id"], r["example"]): r["n"]
        for r in store.rows("SELECT run_id, example, count(*) AS n FROM tokens GROUP BY run_id, example")
    }
    referenced = set()
    for m in maps:
        referenced.add(m["map_id"])
        if m["status"] != "done":
            continue
        where = f"{m['role']} maps of run {m['run_id']} ({m['map_id']})"
        path = store.maps_path(m["map_id"])
        if not path.exists():
            problems.append(f"{where}: {path} is missing")
            continue
        try:
            reader = MapReader(path)
        except StoreError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if len(reader) != m["n_examples"]:
            problems.append(f"{where}: {len(reader)} examples stored, catalog says {m['n_examples']}")
        bad_len = [e for e in range(len(reader)) if token_lengths.get((m["run_id"], e)) not in (None, int(reader.lengths[e]))]
        if bad_len:
            problems.append(f"{where}: lengths disagree with the tokens table for {len(bad_len)} examples (first: {bad_len[0]})")
        stored = reader.stored_rows()
        missing = sum(len(set(range(reader.arrays[b].shape[0])) - rows) for b, rows in stored.items())
        if missing:
            problems.append(f"{where}: {missing} example chunk(s) missing on disk")
        elif deep:
            problems.extend(_deep_check(reader, where))
    # 4. Leftovers that do no harm.
    maps_dir = store.root / "maps"
    if maps_dir.is_dir():
        for path in sorted(maps_dir.glob("*.zarr")):
            if path.name[: -len(".zarr")] not in referenced:
                notes.append(f"{path.name}: a map set no run refers to (left by an interrupted or changed ingest)")
    leftovers = [p for p in store.root.rglob(".tmp-*")]
    if leftovers:
        notes.append(f"{len(leftovers)} temporary file(s) from interrupted writes (removed by the next ingest)")
    return problems, notes


def _deep_check(reader: MapReader, where: str) -> list[str]:
    """Read everything: each real row sums to 1 (within quantisation), padding is zero."""
    out: list[str] = []
    tol = MAX_ABS_ERROR[reader.precision]
    for examples, data in reader.iter_buckets():
        for i, e in enumerate(examples):
            length = int(reader.lengths[e])
            maps = data[i]
            sums = maps[:, :, :length, :length].sum(-1)
            if np.abs(sums - 1).max() > length * tol + 1e-3:
                out.append(f"{where}: example {e} has attention rows that do not sum to 1")
            if maps[:, :, length:, :].any() or maps[:, :, :, length:].any():
                out.append(f"{where}: example {e} has non-zero padding")
        if len(out) > 20:
            break
    return out


__all__ = ["check_store"]
