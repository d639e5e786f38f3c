"""A damaged store: `check` names every problem, `check --repair` recomputes exactly that, one broken table
fails alone, files get the umask's modes, and a read-only store reads."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr
import zstandard
from rich.console import Console

from bertsecrets.cli import main
from bertsecrets.core.settings import IngestSettings
from bertsecrets.ingest.pipeline import ingest
from bertsecrets.store import Store, StoreCorrupt
from bertsecrets.store import check as C
from bertsecrets.store.schema import TABLES
from tests.conftest import TINY_INGEST

ROOT = Path(__file__).resolve().parent.parent

#: Files a repair rewrites with other bytes, and why; their rows are compared instead, less these columns.
#: catalog.duckdb(.json): they hold the store's own absolute path. locks/: empty files that exist once a
#: step has been locked. The tables below carry wall-clock times (and a run's record its settings, which
#: name the store's folder).
VOLATILE = {
    "runs": {"started_at", "finished_at", "train_seconds", "eval_seconds", "settings_json", "code_version"},
    "maps": {"created_at", "extract_seconds"},
    "analyses": {"created_at", "seconds"},
    "classifiers": {"created_at"},
}


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def copy_store(source: Path, target: Path, refresh: bool = True) -> Path:
    shutil.copytree(source, target)
    if refresh:  # the copy's catalog.duckdb still names the source folder
        Store.open(target).refresh_duckdb_file()
    return target


def compared_files(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.startswith(("catalog.duckdb", "locks/")):
            continue
        if rel.startswith("tables/") and rel.split("/")[1] in VOLATILE:
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def volatile_rows(root: Path) -> dict[str, list]:
    out = {}
    for table, skip in VOLATILE.items():
        rows = []
        for path in sorted((root / "tables" / table).glob("*.parquet")):
            for row in pq.read_table(path).to_pylist():
                if "settings_json" in row:  # the settings, less the store they were pointed at
                    row["settings"] = {k: v for k, v in json.loads(row["settings_json"]).items() if k != "store"}
                rows.append({k: v for k, v in row.items() if k not in skip})
        out[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))  # order is not content
    return out


def assert_same_store(reference: Path, repaired: Path) -> None:
    """Byte for byte, but for the files that carry times or the store's path (their rows less those)."""
    a, b = compared_files(reference), compared_files(repaired)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert volatile_rows(reference) == volatile_rows(repaired)


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())


# -- the damages ---------------------------------------------------------------------


def _finetuned(store: Store) -> str:
    return store.rows("SELECT run_id FROM runs WHERE setup = 'finetuned'")[0]["run_id"]


def _map_chunk(store: Store, role: str, example: int) -> tuple[str, Path]:
    map_id = store.rows("SELECT map_id FROM maps WHERE role = ?", [role])[0]["map_id"]
    return map_id, store.map_set(map_id).chunk_path(example)


def delete_chunk(store: Store) -> list[tuple]:
    map_id, path = _map_chunk(store, "finetuned", 5)
    path.unlink()
    return [(C.CHUNK_MISSING, path, 5)]


def corrupt_chunk(store: Store) -> list[tuple]:
    map_id, path = _map_chunk(store, "pretrained", 2)
    data = bytearray(path.read_bytes())
    data[12:44] = bytes(range(200, 232))  # the frame header stays, its content does not
    path.write_bytes(bytes(data))
    return [((C.CHUNK_UNDECODABLE, C.CHUNK_VALUES), path, 2)]


def empty_chunk(store: Store) -> list[tuple]:
    map_id, path = _map_chunk(store, "finetuned", 0)
    path.write_bytes(b"")
    return [(C.CHUNK_EMPTY, path, 0)]


def _norm_chunk(store: Store, role: str, example: int) -> Path:
    map_id = store.rows("SELECT map_id FROM maps WHERE role = ?", [role])[0]["map_id"]
    return store.map_set(map_id).norm_chunk_path(example)


def delete_norm_chunk(store: Store) -> list[tuple]:
    path = _norm_chunk(store, "finetuned", 4)
    path.unlink()  # zarr would read it as zeros: norm-weighted maps of nothing
    return [(C.NORM_MISSING, path, 4)]


def garbage_norm_chunk(store: Store) -> list[tuple]:
    path = _norm_chunk(store, "pretrained", 7)
    path.write_bytes(bytes(range(256)) * 4)
    return [(C.NORM_UNDECODABLE, path, 7)]


def negative_norm(store: Store) -> list[tuple]:
    """A chunk that decodes, one norm negated: only its values tell."""
    path = _norm_chunk(store, "finetuned", 9)
    norms = np.frombuffer(zstandard.ZstdDecompressor().decompress(path.read_bytes()), dtype="<f2").copy()
    norms[np.flatnonzero(norms)[3]] *= -1
    path.write_bytes(zstandard.ZstdCompressor().compress(norms.tobytes()))
    return [(C.NORM_VALUES, path, 9)]


def lost_norm_array(store: Store) -> list[tuple]:
    """A norm array's metadata gone from a map set that says all its norms are there."""
    map_id = store.rows("SELECT map_id FROM maps WHERE role = 'pretrained'")[0]["map_id"]
    path = store.maps_path(map_id)
    next(path.glob("norm_*/zarr.json")).unlink()
    return [(C.NORMS, path, None)]


def corrupt_weights(store: Store) -> list[tuple]:
    path = store.model_dir(_finetuned(store)) / "model.safetensors"
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little") + 4096  # past the header, inside the first tensors
    data[start:start + 16] = bytes(16)
    path.write_bytes(bytes(data))
    return [(C.WEIGHTS, path, None)]


def delete_part(store: Store) -> list[tuple]:
    path = store.catalog.part_path("tokens", _finetuned(store))
    path.unlink()
    return [(C.PART_MISSING, path, None)]


def corrupt_part(store: Store) -> list[tuple]:
    # The footer stays intact: only reading the pages finds it (a view is still created for it).
    path = store.catalog.part_path("head_stats", _finetuned(store))
    data = bytearray(path.read_bytes())
    data[8:400] = bytes(392)
    path.write_bytes(bytes(data))
    return [(C.PART_UNREADABLE, path, None)]


def moved_store(store: Store) -> list[tuple]:
    return [(C.CATALOG_FILE, store.duckdb_path, None)]  # the copy is left as copied


DAMAGES = [delete_chunk, corrupt_chunk, empty_chunk, delete_norm_chunk, garbage_norm_chunk, negative_norm,
           corrupt_weights, delete_part, corrupt_part, moved_store]


def assert_named(problems: list[C.Problem], expected: list[tuple], output: str) -> None:
    """Exactly the expected problems, each with its path (and example), and every path in the command's output."""
    assert len(problems) == len(expected), problems
    for kind, path, example in expected:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        matching = [p for p in problems if p.kind in kinds and p.path == path and p.example == example]
        assert len(matching) == 1, (kind, path, problems)
        assert str(path) in output
        if example is not None:
            assert f"example {example}" in matching[0].message


# lost_norm_array hides the chunk damages of its map set, so it is not among those made all at once.
@pytest.mark.parametrize("damage", DAMAGES + [lost_norm_array], ids=lambda f: f.__name__)
def test_check_names_the_damage_and_repair_recomputes_exactly_it(damage, tiny_store, tmp_path, capsys):
    source, _ = tiny_store
    root = copy_store(source.root, tmp_path / "store", refresh=damage is not moved_store)
    store = Store.open(root)
    expected = damage(store)

    code, out = run_cli(["check", "--deep", "--store", str(root)], capsys)
    assert code == 1
    problems, _ = C.check_store(store, deep=True)
    assert_named(problems, expected, out)
    if damage in (delete_chunk, empty_chunk, delete_norm_chunk, lost_norm_array, delete_part, moved_store):
        assert C.check_store(store)[0] == problems  # sizes and presence: the cheap pass finds these too

    code, out = run_cli(["check", "--repair", "--store", str(root)], capsys)
    assert code == 0, out
    if damage is delete_norm_chunk:  # only the lost chunk's inputs are computed again, and the line says so
        added = re.search(r"norms added to the finetuned maps: (\d+) of (\d+) inputs", out)
        assert added and 0 < int(added[1]) < int(added[2]), out
    assert run_cli(["check", "--deep", "--store", str(root)], capsys)[0] == 0
    assert_same_store(source.root, root)


def test_every_problem_in_one_pass_and_one_repair(tiny_store, tmp_path, capsys):
    """All the damages at once (in a moved copy): one check names each, one repair mends all."""
    source, _ = tiny_store
    root = copy_store(source.root, tmp_path / "store", refresh=False)
    store = Store.open(root)
    expected = [e for damage in DAMAGES for e in damage(store)]
    code, out = run_cli(["check", "--deep", "--store", str(root)], capsys)
    assert code == 1
    assert_named(C.check_store(store, deep=True)[0], expected, out)
    assert f"{len(expected)} problem(s)" in out

    assert run_cli(["check", "--repair", "--store", str(root)], capsys)[0] == 0
    assert C.check_store(store, deep=True) == ([], [])
    assert_same_store(source.root, root)


def test_an_interrupted_repair_is_finished_by_the_next_ingest(tiny_store, tiny_bert, tiny_glue, tmp_path):
    """Invalidated but not yet recomputed: check still says so, and the task's own ingest recomputes it."""
    source, _ = tiny_store
    root = copy_store(source.root, tmp_path / "store")
    store = Store.open(root)
    for damage in (delete_chunk, corrupt_weights):
        damage(store)
    settings = IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), store=str(root), **TINY_INGEST)
    before = quiet()
    ingest(settings, before)
    assert "nothing to do" in before.file.getvalue()  # an ingest alone trusts what it finds

    done = C.invalidate(store, C.check_store(store, deep=True)[0])
    assert done.runs == {_finetuned(store)} and not done.lost and not done.manual
    left = C.check_store(store, deep=True)[0]
    assert left and all(p.kind in (C.RUN_DAMAGED, C.MAPS_UNFINISHED) for p in left)

    after = quiet()
    ingest(settings, after)
    assert "nothing to do" not in after.file.getvalue()
    assert C.check_store(store, deep=True) == ([], [])
    assert_same_store(source.root, root)


@pytest.mark.parametrize("change, why", [
    (lambda norms, length: norms.__setitem__((1, 2, 0), np.nan), "holds NaN or infinite norms"),
    (lambda norms, length: norms.__setitem__((0, 0, length - 1), np.inf), "holds NaN or infinite norms"),
    (lambda norms, length: norms.__setitem__(slice(None), 0), "holds no norms (all zero)"),
    (lambda norms, length: norms.__setitem__((2, 1, length), 0.5), "has non-zero padding"),
], ids=["nan", "inf", "zeros", "padding"])
def test_norm_chunks_that_decode_to_wrong_values_are_named(change, why, tiny_store, tmp_path, capsys):
    source, _ = tiny_store
    root = copy_store(source.root, tmp_path / "store")
    store = Store.open(root)
    map_id = store.rows("SELECT map_id FROM maps WHERE role = 'pretrained'")[0]["map_id"]
    reader = store.map_set(map_id)
    e = next(e for e, length in enumerate(reader.lengths) if length % 16)  # padded past its length in its bucket
    path = reader.norm_chunk_path(e)
    norms = reader.norm_chunk(e).astype("<f2")
    change(norms, int(reader.lengths[e]))
    path.write_bytes(zstandard.ZstdCompressor().compress(norms.tobytes()))
    assert C.check_store(store)[0] == []  # a chunk of the right size: only decoding tells
    code, out = run_cli(["check", "--deep", "--store", str(root)], capsys)
    problems = C.check_store(store, deep=True)[0]
    assert code == 1 and [(p.kind, p.path, p.example, p.map_id) for p in problems] == [(C.NORM_VALUES, path, e, map_id)]
    assert f"the norms of example {e}: chunk {path} {why}" in out


def test_map_sets_without_their_norms_are_sound_and_the_ingest_adds_them(tiny_store, tiny_bert, tiny_glue,
                                                                        tmp_path, capsys):
    """One map set as an ingest before norms left it, one as an interrupted backfill: notes, no problem; the
    task's ingest, as the notes say, adds the norms, to the same bytes."""
    source, plan = tiny_store
    root = copy_store(source.root, tmp_path / "store")
    store = Store.open(root)
    run_id = plan.run_ids["finetuned"]
    ids = {role: store.rows("SELECT map_id FROM maps WHERE role = ?", [role])[0]["map_id"]
           for role in ("pretrained", "finetuned")}
    for folder in store.maps_path(ids["pretrained"]).glob("norm_*"):
        shutil.rmtree(folder)
    for map_id in ids.values():
        del zarr.open_group(store.maps_path(map_id), mode="r+").attrs["norms"]
    _norm_chunk(store, "finetuned", 4).unlink()  # not written yet: not a problem while the backfill is unfinished

    code, out = run_cli(["check", "--deep", "--store", str(root)], capsys)
    assert code == 0 and "store and catalog agree" in out
    problems, notes = C.check_store(store, deep=True)
    assert problems == []
    how = f"`bertsecrets ingest mrpc` with the options that made run {run_id} adds them (the maps stay as they are)"
    assert sorted(notes) == [f"finetuned maps of run {run_id} ({ids['finetuned']}): norms added to some inputs only "
                             f"(an interrupted ingest); {how}",
                             f"pretrained maps of run {run_id} ({ids['pretrained']}): no norms (stored before "
                             f"bertsecrets kept them); {how}"]
    assert all(" ".join(note.split()) in out for note in notes)

    ingest(IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), store=str(root), **TINY_INGEST),
           quiet())
    assert C.check_store(store, deep=True) == ([], [])
    assert_same_store(source.root, root)


def test_a_store_in_a_folder_named_like_a_pattern(tiny_store, tmp_path, capsys):
    """Glob characters and spaces in the store's path: check, the repair of catalog.duckdb, maps and SQL all work."""
    source, plan = tiny_store
    root = copy_store(source.root, tmp_path / "runs [x]?* 2024" / "store", refresh=False)
    store = Store.open(root)
    code, out = run_cli(["check", "--store", str(root)], capsys)
    problems = C.check_store(store)[0]
    assert code == 1 and [(p.kind, p.path) for p in problems] == [(C.CATALOG_FILE, store.duckdb_path)], out
    assert str(source.root) in out  # the copy's catalog.duckdb still reads the source's parts
    assert run_cli(["check", "--repair", "--store", str(root)], capsys)[0] == 0
    assert run_cli(["check", "--deep", "--store", str(root)], capsys)[0] == 0
    run_id = plan.run_ids["finetuned"]
    assert np.array_equal(store.maps(run_id, "finetuned").example(3), source.maps(run_id, "finetuned").example(3))
    code, out = run_cli(["sql", "SELECT count(*) AS n FROM tokens", "--format", "csv", "--store", str(root)], capsys)
    tokens = source.rows("SELECT count(*) AS n FROM tokens")[0]["n"]
    assert (code, out) == (0, f'"n" {tokens}')


def without_user_relations(root: Path) -> Path:
    """Remove relation heads computed from a person's file (a test elsewhere adds some to the shared store):
    their record names the file, and no ingest recomputes them."""
    store = Store.open(root)
    for part in store.catalog.parts("relation_heads"):
        if "-jsonl-" in part:
            store.catalog.delete("relation_heads", part)
    for part in store.catalog.parts("analyses"):
        rows = store.catalog.read_part("analyses", part).to_pylist()
        kept = [r for r in rows if not r["step"].startswith("jsonl")]
        if kept != rows:
            store.catalog.write("analyses", part, kept)
    return root


def test_lost_records_and_analyses_come_back_from_the_other_runs(tiny_store, tmp_path, capsys):
    """A run's unreadable record is rebuilt from a sibling run's settings; a lost analyses record redoes them."""
    source, _ = tiny_store
    reference = without_user_relations(copy_store(source.root, tmp_path / "reference"))
    root = without_user_relations(copy_store(source.root, tmp_path / "store"))
    store = Store.open(root)
    lost = store.rows("SELECT run_id FROM runs WHERE setup = 'no_finetuning'")[0]["run_id"]
    finetuned = _finetuned(store)
    runs_part = store.catalog.part_path("runs", lost)
    analyses_part = store.catalog.part_path("analyses", finetuned)
    runs_part.write_bytes(b"not parquet")
    analyses_part.write_bytes(b"not parquet either")
    examples = store.catalog.part_path("examples", finetuned)
    table = pq.read_table(examples)  # a part of another schema: example as text
    pq.write_table(table.set_column(1, "example", table["example"].cast(pa.string())), examples)

    code, out = run_cli(["check", "--store", str(root)], capsys)
    assert code == 1
    problems = C.check_store(store)[0]
    assert {(p.kind, p.path) for p in problems} == {
        (C.PART_UNREADABLE, runs_part), (C.PART_UNREADABLE, analyses_part), (C.PART_SCHEMA, examples)}
    assert "example is string, not int64" in out

    assert run_cli(["check", "--repair", "--store", str(root)], capsys)[0] == 0
    assert C.check_store(store, deep=True) == ([], [])
    assert_same_store(reference, root)  # a rebuilt record lacks the training time: compared without it


def test_relation_heads_from_a_persons_file_are_named_to_redo(tiny_store, tmp_path, capsys):
    """No ingest knows a person's relations file: its damaged rows go, and the line left says how to redo them."""
    source, plan = tiny_store
    root = without_user_relations(copy_store(source.root, tmp_path / "store"))
    store = Store.open(root)
    run_id = plan.run_ids["finetuned"]
    step = "jsonl-0123456789abcdef"
    rows = store.catalog.read_part("analyses", run_id).to_pylist()
    store.catalog.write("analyses", run_id, rows + [{**rows[0], "step": step, "key": step, "message": "rel.jsonl"}])
    part = store.catalog.part_path("relation_heads", f"{run_id}-{step}")
    part.write_bytes(b"damaged")
    code, out = run_cli(["check", "--repair", "--store", str(root)], capsys)
    assert code == 1 and f"to do: {part}: relation heads from a file of yours" in out
    assert f"bertsecrets analyze {run_id} --relations FILE" in out and "1 thing(s) are left to do" in out
    assert not part.exists() and step not in {r["step"] for r in store.catalog.read_part("analyses", run_id).to_pylist()}
    assert C.check_store(store, deep=True) == ([], [])


def test_labels_are_never_removed_and_stay_a_problem(tiny_store, tmp_path, capsys):
    source, _ = tiny_store
    root = copy_store(source.root, tmp_path / "store")
    labels = Store.open(root).catalog.part_path("labels", "by-someone")
    labels.write_bytes(b"a person's work, damaged")
    code, out = run_cli(["check", "--repair", "--store", str(root)], capsys)
    assert code == 1
    assert labels.read_bytes() == b"a person's work, damaged"
    assert f"to do: {labels}: people's labels cannot be recomputed" in out


def test_every_part_of_an_ingest_has_a_known_writer(tiny_store):
    """The parts check expects of each step are the parts the steps write (no part left unaccounted for)."""
    store, plan = tiny_store
    for table in TABLES:
        for part in store.catalog.parts(table):
            assert C.part_owner(table, part)[0] != "unknown", (table, part)
    run_id = plan.run_ids["finetuned"]
    steps = {r["step"]: r["status"] for r in store.rows("SELECT step, status FROM analyses WHERE run_id = ?", [run_id])}
    expected = {(t, p) for step, status in steps.items() if status == "done" for t, p in C.analysis_parts(step, run_id)}
    analysis_tables = {t for parts in C.ANALYSIS_PARTS.values() for t, _ in parts}
    written = {(t, p) for t in analysis_tables for p in store.catalog.parts(t) if p.startswith(run_id)}
    assert written == expected


# -- one broken table -------------------------------------------------------------------


def test_one_broken_table_leaves_the_others_queryable(tiny_store, tmp_path, capsys):
    source, plan = tiny_store
    root = copy_store(source.root, tmp_path / "store")
    store = Store.open(root)
    n_runs = store.rows("SELECT count(*) AS n FROM runs")[0]["n"]
    bad = store.catalog.part_path("examples", plan.run_ids["finetuned"])
    bad.write_bytes(b"PAR1 broken")

    fresh = Store.open(root)  # views made with the bad part there
    assert fresh.rows("SELECT count(*) AS n FROM runs")[0]["n"] == n_runs
    assert fresh.rows("SELECT count(*) AS n FROM tokens")[0]["n"] > 0
    for sql in ("SELECT * FROM examples", "SELECT count(*) FROM examples",
                "SELECT text_a FROM examples WHERE example = 3", "SELECT r.run_id FROM runs r JOIN examples e USING (run_id)"):
        with pytest.raises(StoreCorrupt) as caught:
            fresh.rows(sql)
        message = str(caught.value)
        assert str(bad) in message and "bertsecrets check --repair" in message
    assert fresh.rows("DESCRIBE examples")  # its columns are still known

    code, out = run_cli(["sql", "SELECT count(*) AS n FROM runs", "--store", str(root)], capsys)
    assert code == 0 and str(n_runs) in out
    code, out = run_cli(["sql", "SELECT * FROM examples", "--store", str(root)], capsys)
    assert code == StoreCorrupt.exit_code and out.startswith("error: catalog table examples cannot be read:")
    assert str(bad) in out

    # Mended, the same connection sees the table again (a long-running browser needs no restart).
    bad.unlink()
    assert fresh.rows("SELECT count(*) AS n FROM examples")[0]["n"] == 48


def test_a_part_with_a_damaged_page_is_named_when_read(tiny_store, tmp_path):
    source, plan = tiny_store
    root = copy_store(source.root, tmp_path / "store")
    store = Store.open(root)
    store.rows("SELECT count(*) FROM runs")  # views made before the damage
    bad = store.catalog.part_path("examples", plan.run_ids["finetuned"])
    data = bytearray(bad.read_bytes())
    data[100:300] = bytes(200)
    bad.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match="bertsecrets check --repair") as caught:
        store.rows("SELECT * FROM examples")
    assert str(bad) in str(caught.value)
    assert store.rows("SELECT count(*) AS n FROM tokens")[0]["n"] > 0


# -- modes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_every_file_gets_the_modes_of_the_umask(mask, tiny_bert, tiny_glue, tmp_path):
    root = tmp_path / "store"
    settings = IngestSettings(task="mrpc", model=str(tiny_bert), data_dir=str(tiny_glue), store=str(root),
                              setups=("finetuned",), **TINY_INGEST)
    old = os.umask(mask)
    try:
        ingest(settings, quiet())
    finally:
        os.umask(old)
    files = [p for p in root.rglob("*") if p.is_file()]
    folders = [p for p in root.rglob("*") if p.is_dir()]
    assert any(p.name == "model.safetensors" for p in files) and any(p.suffix == ".parquet" for p in files)
    wrong = [(p, oct(stat.S_IMODE(p.stat().st_mode))) for p in files if stat.S_IMODE(p.stat().st_mode) != 0o666 & ~mask]
    wrong += [(p, oct(stat.S_IMODE(p.stat().st_mode))) for p in folders if stat.S_IMODE(p.stat().st_mode) != 0o777 & ~mask]
    assert wrong == []


# -- a read-only store ------------------------------------------------------------------------

READ_ONLY_PROBE = r"""
import asyncio, contextlib, io, json, sys
from pathlib import Path
root, model, glue = sys.argv[1:4]
out = {}
try:
    open(Path(root) / "probe", "w").close()
    out["writable"] = True
except OSError:
    out["writable"] = False
from bertsecrets.cli import main
ingest = ["ingest", "mrpc", "--model", model, "--data-dir", glue, "--epochs", "1", "--batch-size", "16",
          "--max-examples", "12", "--eval-batch-size", "16", "--extract-batch-size", "8", "--store", root]
cases = {
    "runs": ["runs", "--store", root],
    "sql": ["sql", "SELECT count(*) AS n FROM examples", "--store", root, "--format", "csv"],
    "check": ["check", "--deep", "--store", root],
    "ingest_done": ingest,
    "ingest_new": ingest + ["--seed", "1"],
    "repair": ["check", "--repair", "--store", root],
}
for name, argv in cases.items():
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        code = main(argv)
    out[name] = [code, so.getvalue(), se.getvalue()]

async def browse():
    from textual.widgets import DataTable
    from bertsecrets.store import Store
    from bertsecrets.tui.app import BrowseApp
    app = BrowseApp(Store.open(root), truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(50):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                break
        return app.screen.query_one(DataTable).row_count
out["browse_rows"] = asyncio.run(browse())
print("RESULT " + json.dumps(out))
"""


def _read_only_prefix(how: str, root: Path) -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("these tests take away a root process's right to write; run them as root")
    if how == "no-capabilities":
        # Root without capabilities obeys the permission bits like any account: a-w holds.
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is not installed")
        subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)
        return ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0"', str(root)],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no read-only bind mount here (a private mount namespace needs CAP_SYS_ADMIN): {probe.stderr.strip()}")
    return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(root)]


@pytest.mark.parametrize("how", ["no-capabilities", "read-only-mount"])
def test_a_read_only_store_reads_and_refuses_writes_in_one_line(how, tiny_store, tiny_bert, tiny_glue, tmp_path):
    source, _ = tiny_store
    root = copy_store(source.root, tmp_path / "store", refresh=False)  # its catalog.duckdb names the source
    prefix = _read_only_prefix(how, root)
    try:
        result = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_PROBE, str(root), str(tiny_bert), str(tiny_glue)],
                                capture_output=True, text=True, cwd=ROOT, timeout=600)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)
    lines = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, result.stdout + result.stderr
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["writable"] is False  # the store really was read-only to the commands

    assert out["runs"][0] == 0 and "3 rows" in out["runs"][1]
    assert out["sql"][0] == 0 and out["sql"][1].split() == ['"n"', "72"]
    code, stdout, _ = out["check"]
    assert code == 1 and "points at the store in" in stdout and "1 problem(s)" in stdout
    code, stdout, _ = out["ingest_done"]
    assert code == 0 and "nothing to do" in stdout
    assert out["browse_rows"] == 3
    for name, folder in (("ingest_new", root / "locks"), ("repair", root)):
        code, _, stderr = out[name]
        assert code != 0, name
        assert stderr.count("\n") == 1 and stderr.startswith(f"error: cannot write to {folder}:"), stderr
        assert "read-only" in stderr


def test_weights_trained_off_the_cpu_take_what_was_computed_from_them(tiny_store, tmp_path):
    """Retrained on a GPU the weights come back different: predictions, maps, analyses and ablation go too."""
    source, plan = tiny_store
    root = copy_store(source.root, tmp_path / "store")
    store = Store.open(root)
    run_id = plan.run_ids["finetuned"]
    store.save_run({**store.run(run_id), "device": "cuda"})
    corrupt_weights(store)
    done = C.invalidate(store, C.check_store(store, deep=True)[0])
    assert done.runs == {run_id}
    cat = store.catalog
    assert not store.model_dir(run_id).exists() and store.run(run_id)["status"] == "damaged"
    assert not any(cat.has_part(t, run_id) for t in ("examples", *C.ABLATION_TABLES))
    assert cat.read_part("analyses", run_id).num_rows == 0  # every analysis to redo
    finetuned_maps = store.maps_path(plan.map_ids["finetuned"])
    assert not finetuned_maps.exists() and store.rows(
        "SELECT status FROM maps WHERE map_id = ?", [plan.map_ids["finetuned"]])[0]["status"] == "running"
    assert store.maps_path(plan.map_ids["pretrained"]).exists()  # the pretrained model's maps do not change


def test_a_lost_chunk_is_refused_when_read_not_read_as_zeros(tiny_store, tmp_path):
    """Zarr reads a chunk that is gone as its fill value; the readers refuse that rather than hand zeros on."""
    source, _ = tiny_store
    root = copy_store(source.root, tmp_path / "store")
    store = Store.open(root)
    delete_chunk(store)  # the fine-tuned maps of example 5
    delete_norm_chunk(store)  # the fine-tuned norms of example 4
    fine = store.map_set(store.rows("SELECT map_id FROM maps WHERE role = 'finetuned'")[0]["map_id"])
    with pytest.raises(StoreCorrupt, match="maps of example 5 are missing"):
        fine.head(5, 0, 0)
    with pytest.raises(StoreCorrupt, match="norms of example 4 are missing"):
        fine.norms(4)
    with pytest.raises(StoreCorrupt, match="norms of example 4 are missing"):
        fine.weighted_head(4, 1, 1)
    with pytest.raises(StoreCorrupt, match="maps of example 5 are missing"):
        list(fine.iter_buckets())
    with pytest.raises(StoreCorrupt, match="norms of example 4 are missing"):
        list(fine.iter_norm_buckets())
    assert fine.norms(5).min() > 0 and np.allclose(fine.head(4, 0, 0).sum(-1), 1, atol=0.02)  # the others read
    pre = store.map_set(store.rows("SELECT map_id FROM maps WHERE role = 'pretrained'")[0]["map_id"])
    assert sum(len(e) for e, _ in pre.iter_buckets()) == sum(len(e) for e, _ in pre.iter_norm_buckets()) == len(pre)
