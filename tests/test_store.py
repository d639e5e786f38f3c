"""The store: map round-trips and the quantisation bound, the catalog's views, and readers that need no bertsecrets."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import duckdb
import numpy as np
import pytest
import zarr

from bertsecrets.store import NotAStore, Store, StoreCorrupt, StoreError, content_key
from bertsecrets.store.catalog import SQLConsole
from bertsecrets.store.errors import SQLError
from bertsecrets.store.labels import Labels
from bertsecrets.store.maps import MAX_ABS_ERROR


def random_maps(rng, lengths, n_layers=2, n_heads=3):
    """Row-stochastic maps, one [layer, head, L, L] array per example, peaky like real attention."""
    out = []
    for length in lengths:
        logits = rng.normal(scale=3.0, size=(n_layers, n_heads, length, length))
        p = np.exp(logits - logits.max(-1, keepdims=True))
        out.append((p / p.sum(-1, keepdims=True)).astype(np.float32))
    return out


def encode(maps, precision):
    return np.round(maps * 255).astype(np.uint8) if precision == "uint8" else maps.astype(np.float16)


def write_all(store, map_id, truth, lengths, precision="uint8", batch=4, only=None):
    writer = store.map_writer(map_id, lengths=np.asarray(lengths), n_layers=2, n_heads=3, precision=precision)
    for i, b in enumerate(writer.batches(batch)):
        if only is not None and i not in only:
            continue
        buf = writer.buffer(b)
        for row, e in enumerate(b.examples):
            length = lengths[e]
            buf[row, :, :, :length, :length] = encode(truth[e], precision)
        writer.write(b, buf)
    return writer


@pytest.fixture
def store(tmp_path):
    return Store.create(tmp_path / "store")


@pytest.mark.parametrize("precision", ["uint8", "float16"])
def test_round_trip_within_the_stated_error(store, precision):
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 40, size=23).tolist()
    truth = random_maps(rng, lengths)
    writer = write_all(store, "m", truth, lengths, precision)
    assert writer.complete
    reader = store.map_set("m")
    assert reader.lengths.tolist() == lengths and (reader.n_layers, reader.n_heads) == (2, 3)
    worst = 0.0
    for e, length in enumerate(lengths):
        got = reader.example(e)
        assert got.shape == (2, 3, length, length)
        worst = max(worst, float(np.abs(got - truth[e]).max()))
        np.testing.assert_array_equal(reader.head(e, 1, 2), got[1, 2])
        np.testing.assert_array_equal(reader.layer(e, 0), got[0])
    bound = MAX_ABS_ERROR[precision]
    assert worst <= bound + 1e-7
    if precision == "uint8":
        assert worst > bound * 0.9  # the bound is tight: 1/510 is what rounding to k/255 costs
    # The bulk path gives the same maps, zero padded.
    seen = set()
    for examples, data in reader.iter_buckets():
        for i, e in enumerate(examples):
            length = lengths[e]
            np.testing.assert_array_equal(data[i, :, :, :length, :length], reader.example(e))
            assert not data[i, :, :, length:, :].any() and not data[i, :, :, :, length:].any()
            seen.add(int(e))
    assert seen == set(range(len(lengths)))


def test_fast_writer_makes_the_bytes_zarr_makes(store, tmp_path):
    """The writer encodes chunks itself; zarr's own writer, given floats, must produce identical files."""
    rng = np.random.default_rng(1)
    lengths = [5, 9, 16, 17]
    truth = random_maps(rng, lengths)
    writer = write_all(store, "m", truth, lengths)
    group = zarr.open_group(store.maps_path("m"), mode="r")
    for b in writer.members:
        name = f"attn_{b:03d}"
        ours = group[name]
        theirs = zarr.open_group(tmp_path / "plain.zarr", mode="a").create_array(
            name, shape=ours.shape, chunks=ours.chunks, dtype=ours.dtype, filters=ours.filters,
            compressors=ours.compressors, fill_value=0, chunk_key_encoding={"name": "default", "separator": "."},
        )
        padded = np.zeros(ours.shape, dtype=np.float32)
        for row, e in enumerate(writer.members[b]):
            padded[row, :, :, : lengths[e], : lengths[e]] = truth[e]
        theirs[:] = padded
        for row in range(ours.shape[0]):
            key = f"c.{row}.0.0.0.0"
            assert (store.maps_path("m") / name / key).read_bytes() == (tmp_path / "plain.zarr" / name / key).read_bytes()


def test_plain_zarr_and_xarray_read_it_without_bertsecrets(store):
    rng = np.random.default_rng(2)
    lengths = [4, 20, 7]
    truth = random_maps(rng, lengths)
    write_all(store, "m", truth, lengths)
    script = f"""
import json, sys, numpy as np, zarr, xarray as xr
g = zarr.open_group({str(store.maps_path('m'))!r}, mode="r")
out = {{}}
for e in range(3):
    b, row, L = int(g["bucket"][e]), int(g["row"][e]), int(g["length"][e])
    out[e] = g[f"attn_{{b:03d}}"][row, 1, 2, :L, :L].tolist()
ds = xr.open_zarr({str(store.maps_path('m'))!r}, consolidated=False)
dims = list(ds["attn_016"].dims)
assert not any(m.startswith(("bertsecrets", "store", "ingest")) for m in sys.modules), "imported the project"
print(json.dumps({{"maps": out, "dims": dims, "read": g.attrs["read"]}}))
"""
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    assert data["dims"] == ["example_016", "layer", "head", "query_016", "key_016"]
    for e in range(3):
        np.testing.assert_allclose(np.array(data["maps"][str(e)]), truth[e][1, 2], atol=1 / 510 + 1e-7)


def test_interrupted_map_set_resumes_with_what_is_left(store):
    rng = np.random.default_rng(3)
    lengths = rng.integers(3, 30, size=20).tolist()
    truth = random_maps(rng, lengths)
    first = write_all(store, "m", truth, lengths, only={0, 2})
    done_before = set(np.flatnonzero(first.done).tolist())
    # A batch killed mid-write leaves a torn chunk and no record of it.
    pending = first.batches(4)
    torn = first.arrays[pending[0].bucket]
    (store.maps_path("m") / torn.basename / f"c.{pending[0].start}.0.0.0.0").write_bytes(b"\x28\xb5torn")
    again = store.map_writer("m", lengths=np.asarray(lengths), n_layers=2, n_heads=3, precision="uint8")
    todo = {int(e) for b in again.batches(4) for e in b.examples}
    assert todo == set(range(20)) - done_before and done_before
    write_all(store, "m", truth, lengths)
    reader = store.map_set("m")
    for e, length in enumerate(lengths):
        np.testing.assert_allclose(reader.example(e), truth[e], atol=1 / 510 + 1e-7)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, and no handler catches it."""


@pytest.mark.parametrize("cut", range(16))
def test_a_start_killed_while_making_the_arrays_is_made_again(store, monkeypatch, cut):
    """Kill the first start of a map set after each array it makes and each array it fills; the next start
    must not take the half-made group for a finished one (it once failed with KeyError 'attn_032')."""
    rng = np.random.default_rng(5)
    lengths = [4, 20, 40, 7]  # buckets 16, 32, 48: make and fill length, bucket, row (6), then per bucket make attn, make and fill its index (9)
    truth = random_maps(rng, lengths)
    steps = {"n": 0}

    def counted(original):
        def wrapper(*args, **kwargs):
            if steps["n"] == cut:
                raise _Killed
            steps["n"] += 1
            return original(*args, **kwargs)
        return wrapper

    with monkeypatch.context() as patch:
        patch.setattr(zarr.Group, "create_array", counted(zarr.Group.create_array))
        patch.setattr(zarr.Array, "__setitem__", counted(zarr.Array.__setitem__))
        try:
            write_all(store, "m", truth, lengths)
        except _Killed:
            pass
    killed_before_the_end = steps["n"] == cut
    write_all(store, "m", truth, lengths)
    reader = store.map_set("m")
    for e in range(len(lengths)):
        np.testing.assert_allclose(reader.example(e), truth[e], atol=1 / 510 + 1e-7)
    assert killed_before_the_end  # every cut falls inside the first start (the last ones in its first writes)


def test_missing_and_corrupt_chunks_are_errors_not_zeros(store):
    rng = np.random.default_rng(4)
    lengths = [6, 7, 8]
    write_all(store, "m", random_maps(rng, lengths), lengths)
    folder = store.maps_path("m") / "attn_016"
    (folder / "c.0.0.0.0.0").unlink()
    reader = store.map_set("m")
    with pytest.raises(StoreCorrupt, match="missing"):
        reader.head(0, 0, 0)
    (folder / "c.1.0.0.0.0").write_bytes(b"garbage")
    with pytest.raises(StoreCorrupt, match="unreadable"):
        reader.example(1)
    with pytest.raises(IndexError, match="layer 5 does not exist"):
        reader.head(2, 5, 0)


def test_rows_with_zoned_timestamps_are_what_pyarrow_gives():
    """The catalog's own conversion of time-zoned timestamps against pyarrow's to_pylist, zone by zone."""
    import datetime as dt

    import pyarrow as pa

    from bertsecrets.store.catalog import pylist

    when = [dt.datetime(2026, 11, 30, 6, 3, 43, 917804, tzinfo=dt.timezone.utc), None,
            dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)]
    for tz in ("UTC", "Europe/Paris", "+05:30"):
        table = pa.table({
            "run_id": ["a", "b", "c"],
            "started_at": pa.array(when, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us", tz=tz)),
            "naive": pa.array([dt.datetime(2020, 1, 1), None, dt.datetime(2021, 2, 3, 4, 5, 6)], pa.timestamp("ms")),
            "n": [1, 2, None],
        })
        ours, theirs = pylist(table), table.to_pylist()
        assert ours == theirs
        for a, b in zip(ours, theirs):  # the same instants, shown in the same zone
            assert (a["started_at"] is None) == (b["started_at"] is None)
            if a["started_at"] is not None:
                assert a["started_at"].utcoffset() == b["started_at"].utcoffset()
                assert a["started_at"].isoformat() == b["started_at"].isoformat()


def test_reading_runs_does_not_import_pandas(store):
    """pyarrow imports pandas to turn a zoned timestamp into Python; the catalog's reads must not."""
    import datetime as dt

    when = dt.datetime(2026, 11, 30, 6, 3, 43, tzinfo=dt.timezone.utc)
    store.save_run({"run_id": "r1", "task": "mrpc", "status": "done", "started_at": when, "finished_at": when})
    script = f"""
import sys
from bertsecrets.store import Store
s = Store.open({str(store.root)!r})
run = s.run("r1")
rows = s.rows("SELECT run_id, started_at FROM runs")
assert run["started_at"].isoformat() == {when.isoformat()!r}, run["started_at"]
assert rows[0]["started_at"].isoformat() == {when.isoformat()!r}, rows
print("PANDAS", "pandas" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "PANDAS False" in result.stdout


def test_catalog_views_rows_and_read_only_sql(store):
    assert store.rows("SELECT count(*) AS n FROM runs") == [{"n": 0}]  # views exist before any rows
    store.save_run({"run_id": "r1", "task": "mrpc", "status": "done", "accuracy": 0.8})
    store.save_run({"run_id": "r1", "task": "mrpc", "status": "done", "accuracy": 0.9})  # replaces, never duplicates
    store.save_run({"run_id": "r2", "task": "rte", "status": "running"})
    assert store.rows("SELECT run_id, accuracy FROM runs ORDER BY run_id") == [
        {"run_id": "r1", "accuracy": 0.9}, {"run_id": "r2", "accuracy": None}]
    assert store.rows("SELECT task FROM runs WHERE run_id = ?", ["r2"]) == [{"task": "rte"}]
    # A person's SQL runs in the sandboxed console (tests/test_sql_sandbox.py tries every way out).
    console = SQLConsole(store.catalog)
    for statement in ["INSERT INTO runs (run_id) VALUES ('x')", "CREATE TABLE t AS SELECT 1",
                      "COPY (SELECT 1) TO 'x.csv'", "ATTACH 'x.duckdb'", "DROP VIEW runs", "SELECT 1; DELETE FROM runs"]:
        with pytest.raises(SQLError, match="read-only"):
            console.query(statement)
    console.close()
    with pytest.raises(SQLError, match="SQL error: .*no_such_table"):
        store.query("SELECT * FROM no_such_table")
    with pytest.raises(SQLError, match="syntax error"):
        store.query("SELEC 1")


def test_any_duckdb_client_reads_the_catalog_file(store):
    store.save_run({"run_id": "r1", "task": "mrpc", "status": "done"})
    con = duckdb.connect(str(store.duckdb_path), read_only=True)
    assert con.execute("SELECT run_id, task FROM runs").fetchall() == [("r1", "mrpc")]
    con.close()


def test_readers_keep_working_while_a_writer_replaces_parts(store):
    stop = threading.Event()
    errors = []

    def write():
        i = 0
        while not stop.is_set():
            store.save_run({"run_id": f"r{i % 5}", "task": "mrpc", "status": "running", "accuracy": i / 1000})
            i += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        other = Store.open(store.root)
        for _ in range(100):
            try:
                rows = other.rows("SELECT count(*) AS n, count(DISTINCT run_id) AS d FROM runs")
                assert rows[0]["n"] == rows[0]["d"]
            except StoreError as exc:  # pragma: no cover - the assertion below reports it
                errors.append(exc)
    finally:
        stop.set()
        thread.join()
    assert not errors


#: A folder name DuckDB would read as a pattern: [x] matches "x", ? any one character, * anything.
GLOB_FOLDER = "my [x]?* store"


def test_a_store_whose_path_looks_like_a_pattern_reads_its_own_rows(tmp_path, capsys):
    # A sibling that the path, read as a pattern, would match instead of the store itself.
    decoy = Store.create(tmp_path / "my x!-all store" / "store")
    decoy.save_run({"run_id": "decoy", "task": "rte", "status": "done"})
    store = Store.create(tmp_path / GLOB_FOLDER / "store")
    assert store.rows("SELECT count(*) AS n FROM runs") == [{"n": 0}]
    store.save_run({"run_id": "r1", "task": "mrpc", "status": "done"})
    assert store.rows("SELECT run_id FROM runs") == [{"run_id": "r1"}]
    # A part written after the views were made is seen without reconnecting, as for any store.
    store.save_run({"run_id": "r2", "task": "mrpc", "status": "running"})
    assert store.rows("SELECT run_id FROM runs ORDER BY run_id") == [{"run_id": "r1"}, {"run_id": "r2"}]
    assert Store.open(store.root).rows("SELECT count(*) AS n FROM runs") == [{"n": 2}]

    # Any DuckDB client, through catalog.duckdb, and `bertsecrets sql`.
    store.refresh_duckdb_file()
    assert store.duckdb_file_problem() is None
    con = duckdb.connect(str(store.duckdb_path), read_only=True)
    assert con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall() == [("r1",), ("r2",)]
    con.close()
    from bertsecrets.cli import main

    capsys.readouterr()
    assert main(["sql", "SELECT run_id, task FROM runs ORDER BY run_id", "--format", "json",
                 "--store", str(store.root)]) == 0
    assert json.loads(capsys.readouterr().out) == [{"run_id": "r1", "task": "mrpc"}, {"run_id": "r2", "task": "mrpc"}]
    assert decoy.rows("SELECT run_id FROM runs") == [{"run_id": "decoy"}]  # and the decoy its own

    # The one name DuckDB cannot read a catalog under is refused in one line, before anything is written.
    with pytest.raises(StoreError, match="backslash"):
        Store.create(tmp_path / "back\\slash")
    assert not (tmp_path / "back\\slash").exists()


def test_a_catalog_file_from_before_glob_escaping_is_reported_and_rewritten(tmp_path, capsys):
    """A catalog.duckdb whose views name the store's path unescaped reads a sibling the path matches as a pattern."""
    from bertsecrets.cli import main
    from bertsecrets.store.catalog import glob_literal

    decoy = Store.create(tmp_path / "runsx" / "store")  # what "runs[x]" matches
    decoy.save_run({"run_id": "decoy", "task": "rte", "status": "done"})
    store = Store.create(tmp_path / "runs[x]" / "store")
    store.save_run({"run_id": "own", "task": "mrpc", "status": "failed"})
    # The file as a bertsecrets without escaping wrote it: the same views, the path as it is.
    old_views = [sql.replace(glob_literal(store.root), str(store.root)) for sql in store.catalog.view_sql()]
    assert old_views != store.catalog.view_sql()
    store.duckdb_path.unlink()
    con = duckdb.connect(str(store.duckdb_path))
    for sql in old_views:
        con.execute(sql)
    assert con.execute("SELECT run_id FROM runs").fetchall() == [("decoy",)]  # the harm
    con.close()
    (store.root / "catalog.duckdb.json").write_text(json.dumps({"root": str(store.root), "tables": old_views}))

    capsys.readouterr()
    assert main(["check", "--store", str(store.root)]) == 1
    assert "catalog.duckdb reads this store's path as a pattern" in capsys.readouterr().out
    assert main(["check", "--repair", "--store", str(store.root)]) == 0
    assert store.duckdb_file_problem() is None
    con = duckdb.connect(str(store.duckdb_path), read_only=True)
    assert con.execute("SELECT run_id FROM runs").fetchall() == [("own",)]
    con.close()


def test_where_a_store_can_be_made_is_told_before_anything_is_made(tmp_path):
    """check_creatable passes a store, a missing or empty folder; refuses the rest in one line; makes nothing."""
    store = Store.create(tmp_path / "store")
    (tmp_path / "empty").mkdir()
    foreign = tmp_path / "papers"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    (tmp_path / "a-file").write_text("mine")
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    for root in (store.root, tmp_path / "empty", tmp_path / "new" / "store"):
        assert Store.check_creatable(root) == root
    refused = {
        foreign: (NotAStore, f"{foreign} is not a bertsecrets store"),
        tmp_path / "a-file": (NotAStore, f"{tmp_path / 'a-file'} is a file, not a store folder"),
        tmp_path / "a-file" / "store": (StoreError, f"cannot create the store at {tmp_path / 'a-file' / 'store'}: "
                                                    f"{tmp_path / 'a-file'} is a file, not a folder"),
        tmp_path / "back\\slash": (StoreError, f"the catalog of a store at {tmp_path / 'back'}"),
    }
    for root, (kind, says) in refused.items():
        with pytest.raises(kind) as caught:
            Store.check_creatable(root)
        assert str(caught.value).startswith(says) and "\n" not in str(caught.value)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before
    # Store.create refuses a file and a foreign folder with the same words.
    for root in (foreign, tmp_path / "a-file"):
        with pytest.raises(NotAStore, match=refused[root][1].split(" is ")[1]):
            Store.create(root)


def test_store_folders_that_are_not_stores(tmp_path):
    with pytest.raises(NotAStore, match="no store at"):
        Store.open(tmp_path / "nowhere")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(NotAStore, match="not a bertsecrets store"):
        Store.create(tmp_path / "notes")
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]  # nothing written
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotAStore, match="is a file"):
        Store.create(tmp_path / "file")
    store = Store.create(tmp_path / "s")
    (store.root / "bertsecrets-store.json").write_text("{not json")
    with pytest.raises(StoreCorrupt, match="damaged"):
        Store.open(store.root)


def test_a_second_writer_is_refused(store):
    with store.lock("run-x", "run x"):
        with pytest.raises(StoreError, match="run x is being written by bertsecrets pid"):
            with store.lock("run-x", "run x"):
                pass
    with store.lock("run-x", "run x"):  # released again
        pass


def test_content_keys():
    a = content_key("run", {"lr": 2e-5, "seed": 0, "task": "mrpc"})
    assert a == content_key("run", {"task": "mrpc", "seed": 0, "lr": 2e-5})  # order does not matter
    assert a != content_key("run", {"task": "mrpc", "seed": 1, "lr": 2e-5})
    assert a.startswith("run-") and len(a) == len("run-") + 16


def test_labels_are_catalog_rows(store):
    labels = Labels(store)
    labels.set("r", "finetuned", 3, 0, 1, "block", labeller="ada")
    labels.set("r", "finetuned", 3, 0, 1, "vertical", labeller="ada")  # a change, not a second label
    labels.set("r", "finetuned", 3, 0, 1, "diagonal", labeller="bo")
    assert store.rows("SELECT labeller, label FROM labels ORDER BY labeller") == [
        {"labeller": "ada", "label": "vertical"}, {"labeller": "bo", "label": "diagonal"}]
    assert labels.remove("r", "finetuned", 3, 0, 1, labeller="ada") and not labels.remove("r", "finetuned", 3, 0, 1, labeller="ada")
    with pytest.raises(StoreError, match="unknown pattern class 'stripes'"):
        labels.set("r", "finetuned", 3, 0, 1, "stripes", labeller="ada")
