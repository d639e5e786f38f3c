"""The store: one folder holding runs, weights, attention maps and the catalog.

    <root>/bertsecrets-store.json        marker: format and version
    <root>/catalog.duckdb                views for any DuckDB client (rebuilt when stale)
    <root>/tables/<table>/<part>.parquet the catalog's rows (see store.catalog)
    <root>/runs/<run_id>/model/          fine-tuned weights (safetensors), config, tokenizer, and
                                         bertsecrets-manifest.json (each file's size and sha256)
    <root>/runs/<run_id>/checkpoint.pt   training state while a run trains
    <root>/maps/<map_id>.zarr/           attention maps (see store.maps)
    <root>/locks/                        one lock file per run being written
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import duckdb

from bertsecrets.store.catalog import Catalog, dir_mode, file_mode, glob_literal, glob_path, pylist
from bertsecrets.store.errors import NotAStore, StoreCorrupt, StoreError, StoreReadOnly, writing
from bertsecrets.store.maps import MapReader, MapWriter, NormWriter, forget_examples, forget_norms, norms_complete
from bertsecrets.store.schema import SCHEMA_VERSION, TABLES

MARKER = "bertsecrets-store.json"
FORMAT = "bertsecrets-store"
#: Written into a staged folder (the fine-tuned weights): each file's size and sha256, so that
#: `bertsecrets check --deep` tells damaged weights from good ones.
MANIFEST = "bertsecrets-manifest.json"
#: A run whose artifacts `bertsecrets check --repair` removed: its ingest recomputes them.
DAMAGED = "damaged"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _older_than(path: Path, cutoff: float) -> bool:
    """Whether ``path`` was last written before ``cutoff``; False once another writer has renamed it away."""
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


class Store:
    """A bertsecrets store at ``root``; open it with :meth:`open` or :meth:`create`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.catalog = Catalog(root)

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike) -> "Store":
        """Open an existing store; a missing or foreign folder is an error."""
        root = Path(root).expanduser().absolute()
        _check_path(root)
        if not root.exists():
            raise NotAStore(f"no store at {root}: run `bertsecrets ingest <task>` first, or pass --store PATH")
        cls._read_marker(root)
        return cls(root)

    @classmethod
    def check_creatable(cls, root: str | os.PathLike) -> Path:
        """Refuse, in one line, a path that holds no store and where none can be made; the absolute path.

        Makes nothing and leaves nothing behind, so it can run before any work. A
        store that exists but is read-only passes: what it holds still answers
        "nothing to do", and the first write fails it.
        """
        root = Path(root).expanduser().absolute()
        if cls._holds_store(root):
            return root
        # A new store: the folder itself (empty) or its nearest existing parent must take a new folder. The file
        # system is asked (a folder made and removed at once): permission bits tell root yes even on /proc.
        nearest = next(p for p in (root, *root.parents) if p.exists())
        if not nearest.is_dir():
            raise StoreError(f"cannot create the store at {root}: {nearest} is a file, not a folder; pass --store PATH "
                             "to a new or empty folder")
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".bertsecrets-probe-", dir=nearest))
        except OSError as exc:
            reason = (exc.strerror or type(exc).__name__).lower()
            raise StoreError(f"cannot create the store at {root} ({nearest}: {reason}): pass --store PATH to a folder "
                             "you may write") from None
        return root

    @classmethod
    def exists(cls, root: str | os.PathLike) -> bool:
        """Whether ``root`` holds a store (False for a missing or empty folder; a foreign one is refused)."""
        return cls._holds_store(Path(root).expanduser().absolute())

    @classmethod
    def _holds_store(cls, root: Path) -> bool:
        """Whether the absolute path ``root`` holds a store (else it is missing or an empty folder).

        A path no store can live at, a file, or a folder of other things is refused in one line.
        """
        _check_path(root)
        if root.exists() and not root.is_dir():
            raise NotAStore(f"{root} is a file, not a store folder: pass --store PATH to a folder")
        if root.is_dir() and any(root.iterdir()):
            cls._read_marker(root)
            return True
        return False

    @classmethod
    def create(cls, root: str | os.PathLike) -> "Store":
        """Open a store for writing, creating it when the folder is missing or empty."""
        root = Path(root).expanduser().absolute()
        # Not check_creatable's probe: it would put a folder in an empty store folder that another
        # process creating the same store may be looking into; mkdir below says why it fails.
        if not cls._holds_store(root):
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store at {root}: {exc.strerror}") from exc
            marker = {"format": FORMAT, "schema_version": SCHEMA_VERSION, "created": utcnow().isoformat()}
            with writing(root):
                _write_text_atomic(root / MARKER, json.dumps(marker, indent=2))
        store = cls(root)
        try:
            store.catalog.ensure_tables()
            store.refresh_duckdb_file()
        except StoreReadOnly:
            # Upkeep only: readers need neither. A read-only store still answers
            # "nothing to do"; real work fails at its first write, naming the folder.
            pass
        return store

    @staticmethod
    def _read_marker(root: Path) -> dict[str, Any]:
        path = root / MARKER
        if not path.exists():
            raise NotAStore(
                f"{root} is not a bertsecrets store (no {MARKER}): pass --store PATH to a store, or to a new or empty folder"
            )
        try:
            marker = json.loads(path.read_text())
            assert marker.get("format") == FORMAT
        except Exception as exc:
            raise StoreCorrupt(f"{path} is damaged: it does not describe a bertsecrets store") from exc
        if marker.get("schema_version", 0) > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {root} was written by a newer bertsecrets (schema {marker['schema_version']}); upgrade bertsecrets"
            )
        return marker

    # -- the external DuckDB file -------------------------------------------

    @property
    def duckdb_path(self) -> Path:
        return self.root / "catalog.duckdb"

    def refresh_duckdb_file(self, force: bool = False) -> None:
        """(Re)write catalog.duckdb: the catalog's views, for any DuckDB client.

        It holds views only (the rows stay in Parquet), so replacing it never
        loses data; it is rebuilt when missing, moved, or from an older schema.
        """
        stamp = {"root": str(self.root), "tables": self.catalog.view_sql()}
        stamp_path = self.root / "catalog.duckdb.json"
        try:
            if not force and self.duckdb_path.exists() and json.loads(stamp_path.read_text()) == stamp:
                return
        except (OSError, ValueError):
            pass
        with writing(self.root):
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-catalog-", suffix=".duckdb")
            os.close(fd)
            os.unlink(tmp)  # DuckDB wants to create the file itself
            # DuckDB takes what follows a "?" in a database's path for parameters and puts the
            # write-ahead log before it, in a folder that does not exist: in a store whose path
            # holds one, the file is made in a private temporary folder and copied in.
            elsewhere = tempfile.mkdtemp(prefix="bertsecrets-catalog-") if "?" in tmp else None
            build = os.path.join(elsewhere, "catalog.duckdb") if elsewhere else tmp
            try:
                con = duckdb.connect(build)
                # A table with a bad part gets a view that fails naming it; the stamp then
                # differs from view_sql(), so the file is written again once the part is mended.
                stamp["tables"] = self.catalog.create_views(con)
                con.close()
                if elsewhere:
                    shutil.copyfile(build, tmp)
                os.replace(tmp, self.duckdb_path)
                Path(tmp + ".wal").unlink(missing_ok=True)
                _write_text_atomic(stamp_path, json.dumps(stamp))
            finally:
                Path(tmp).unlink(missing_ok=True)
                if elsewhere:
                    shutil.rmtree(elsewhere, ignore_errors=True)

    def duckdb_file_problem(self) -> str | None:
        """Why catalog.duckdb does not serve this store (missing, unreadable, views elsewhere), or None.

        Reads the file's view definitions only (read-only, nothing is bound), so a
        copied or moved store is found even when its stamp file came along.
        """
        path = self.duckdb_path
        if not path.exists():
            return f"{path} is missing"
        try:
            con = duckdb.connect(str(path), read_only=True)
            try:
                views = dict(con.execute(
                    "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal AND schema_name = 'main'").fetchall())
            finally:
                con.close()
        except duckdb.Error as exc:
            return f"{path} is unreadable ({' '.join(str(exc).split())})"
        missing = [name for name in TABLES if name not in views]
        if missing:
            return f"{path} lacks the view(s) {', '.join(missing)} (written by an older bertsecrets)"
        for name in TABLES:
            found = re.search(r"read_parquet\('((?:[^']|'')*)'", views[name])
            pattern = found.group(1).replace("''", "'") if found else None
            # The pattern as written, against the folder as DuckDB must be told it: a file from before
            # glob characters were escaped names this folder, yet in a path holding them reads another.
            if pattern is not None and os.path.dirname(pattern) != glob_literal(self.catalog.tables_dir / name):
                if os.path.dirname(pattern) == str(self.catalog.tables_dir / name):
                    return (f"{path} reads this store's path as a pattern, which may match other folders "
                            "(written before bertsecrets escaped glob characters)")
                where = glob_path(pattern)
                other = where.split("/tables/")[0] if "/tables/" in where else os.path.dirname(where)
                return f"{path} points at the store in {other}, not this one (the folder was copied or moved)"
        return None

    # -- queries -----------------------------------------------------------

    def query(self, sql: str, params: list[Any] | None = None):
        """The app's own SQL over the catalog (a person's SQL runs in ``catalog.SQLConsole``); an Arrow table."""
        return self.catalog.query(sql, params)

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        return self.catalog.rows(sql, params)

    # -- runs --------------------------------------------------------------

    def run(self, run_id: str) -> dict[str, Any] | None:
        table = self.catalog.read_part("runs", run_id)
        if table is None or table.num_rows == 0:
            return None
        return pylist(table)[0]

    def save_run(self, record: dict[str, Any]) -> None:
        self.catalog.write("runs", record["run_id"], [record])

    def mark_damaged(self, run_id: str, why: str) -> bool:
        """Record that a run's artifacts were removed for recomputing, so its ingest is not "done".

        False when the run has no readable record (nothing to mark).
        """
        try:
            record = self.run(run_id)
        except StoreError:
            return False
        if record is None:
            return False
        if record["status"] != DAMAGED:
            self.save_run({**record, "status": DAMAGED, "error": why[:2000]})
        return True

    def runs(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM runs ORDER BY started_at")

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def model_dir(self, run_id: str) -> Path:
        """Where a run's fine-tuned weights live (a Hugging Face model folder)."""
        return self.run_dir(run_id) / "model"

    def has_model(self, run_id: str) -> bool:
        folder = self.model_dir(run_id)
        return (folder / "config.json").exists() and any(folder.glob("*.safetensors"))

    def checkpoint_path(self, run_id: str) -> Path:
        path = self.run_dir(run_id) / "checkpoint.pt"
        with writing(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def remove_model(self, run_id: str) -> None:
        """Remove a run's weights folder (damaged), so its ingest fine-tunes it again."""
        folder = self.model_dir(run_id)
        with writing(folder.parent):
            if folder.exists():
                old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
                os.replace(folder, old)  # gone in one step, then cleaned up
                shutil.rmtree(old, ignore_errors=True)

    @contextlib.contextmanager
    def staging(self, final: Path) -> Iterator[Path]:
        """A temporary folder beside ``final`` that replaces it when the block succeeds.

        The folder gets a manifest of its files (sizes, sha256) and the modes the
        process's umask gives, like every other file of the store.
        """
        with writing(final.parent):
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
        try:
            yield tmp
            write_manifest(tmp)
            _set_modes(tmp)
            if final.exists():
                old = final.with_name(f".old-{final.name}-{os.getpid()}")
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def clean_leftovers(self, run_id: str) -> int:
        """Remove what interrupted atomic writes left behind (``.tmp-*``, ``.old-*``); how many.

        Call it holding the run's lock: it touches the run's own folder, and
        catalog temporaries old enough that no live writer can still own them.
        """
        count = 0
        folder = self.run_dir(run_id)
        candidates = list(folder.glob(".tmp-*")) + list(folder.glob(".old-*")) if folder.is_dir() else []
        cutoff = time.time() - 600  # a part is written in well under a second
        candidates += [p for p in self.catalog.tables_dir.glob("*/.tmp-*") if _older_than(p, cutoff)]
        for path in candidates:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            count += 1
        return count

    # -- maps --------------------------------------------------------------

    def maps_path(self, map_id: str) -> Path:
        return self.root / "maps" / f"{map_id}.zarr"

    def progress_path(self, map_id: str) -> Path:
        return self.maps_path(map_id).with_suffix(".progress.json")

    def map_writer(self, map_id: str, **kwargs: Any) -> MapWriter:
        path = self.maps_path(map_id)
        with writing(path.parent):
            path.parent.mkdir(parents=True, exist_ok=True)
            return MapWriter(path, self.progress_path(map_id), **kwargs)

    def norm_writer(self, map_id: str) -> NormWriter:
        """A writer that adds the norms to an existing map set (its own progress file: resumable)."""
        path = self.maps_path(map_id)
        with writing(path.parent):
            return NormWriter(path, self.norms_progress_path(map_id))

    def forget_maps(self, map_id: str, examples: Iterable[int] | None = None) -> None:
        """Make a map set's writer redo ``examples`` (all of them when None) when its ingest resumes.

        Their chunks go and the progress record stops listing them; the whole map
        set goes when ``examples`` is None. Mark its catalog rows not done too
        (:meth:`reopen_maps`), or the ingest will not look at it.
        """
        path = self.maps_path(map_id)
        with writing(path.parent):
            if examples is None:
                self.progress_path(map_id).unlink(missing_ok=True)
                self.norms_progress_path(map_id).unlink(missing_ok=True)
                if path.exists():
                    old = path.with_name(f".old-{path.name}-{os.getpid()}")
                    os.replace(path, old)
                    shutil.rmtree(old, ignore_errors=True)
            else:
                forget_examples(path, self.progress_path(map_id), list(examples))

    def norms_progress_path(self, map_id: str) -> Path:
        return self.maps_path(map_id).with_suffix(".norms-progress.json")

    def forget_norms(self, map_id: str, examples: Iterable[int] | None = None) -> None:
        """Make the ingest's norms step redo the norms of ``examples`` (all of them when None); the maps stay."""
        path = self.maps_path(map_id)
        with writing(path.parent):
            forget_norms(path, self.norms_progress_path(map_id), None if examples is None else list(examples))

    def reopen_maps(self, map_id: str) -> list[str]:
        """Mark every catalog row of a map set as not done; returns the runs they belong to."""
        runs = []
        for part in self.catalog.parts("maps"):
            try:
                table = self.catalog.read_part("maps", part)
            except StoreError:
                continue  # an unreadable row part is a problem of its own
            if table is None:
                continue
            rows = table.to_pylist()
            if any(r["map_id"] == map_id for r in rows):
                self.catalog.write("maps", part, [{**r, "status": "running"} if r["map_id"] == map_id else r for r in rows])
                runs += [r["run_id"] for r in rows if r["map_id"] == map_id]
        return runs

    def maps(self, run_id: str, role: str) -> MapReader:
        """The finished maps of a run's pretrained or fine-tuned model."""
        return MapReader(self._finished_maps_path(run_id, role))

    def maps_have_norms(self, run_id: str, role: str) -> bool:
        """Whether the run's finished maps of ``role`` have every example's norms (metadata only, no zarr)."""
        return norms_complete(self._finished_maps_path(run_id, role))

    def _finished_maps_path(self, run_id: str, role: str) -> Path:
        rows = self.rows(
            "SELECT map_id FROM maps WHERE run_id = ? AND role = ? AND status = 'done'", [run_id, role]
        )
        if not rows:
            raise StoreError(f"run {run_id} has no finished {role} maps: run `bertsecrets ingest` for its task")
        return self.maps_path(rows[0]["map_id"])

    def map_set(self, map_id: str) -> MapReader:
        return MapReader(self.maps_path(map_id))

    # -- locks -------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, what: str, wait: float = 0.0) -> Iterator[None]:
        """Hold an exclusive lock for ``name``; a second writer gets a clear error.

        The lock is the kernel's (flock): a killed process releases it. ``wait``:
        seconds to keep trying first, for a writer that takes over from one just
        killed (a process of a stopped cluster that has not exited yet).
        """
        folder = self.root / "locks"
        path = folder / f"{name}.lock"
        with writing(folder):
            folder.mkdir(exist_ok=True)
            fh = open(path, "a+")
        with fh:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() < deadline:
                        time.sleep(0.2)
                        continue
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise StoreError(f"{what} is being written by {holder}; wait for it to finish or stop it") from exc
            fh.seek(0)
            fh.truncate()
            # The host too: the writer may be a worker of a cluster on another machine.
            fh.write(f"bertsecrets pid {os.getpid()} on {socket.gethostname()}")
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fcntl.flock(fh, fcntl.LOCK_UN)


def _check_path(root: Path) -> None:
    """Refuse a store path DuckDB cannot read the catalog under (any other name works, glob characters too)."""
    if "\\" in str(root):
        raise StoreError(f"the catalog of a store at {root} cannot be read: DuckDB takes a backslash in a path for "
                         "a folder separator; rename the folder, or pass --store PATH to one without a backslash")


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Record the size and sha256 of every file in ``folder`` (top level) in its manifest."""
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1, sort_keys=True))


def read_manifest(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The manifest's files (name -> bytes, sha256), or None for a folder written before manifests."""
    try:
        return json.loads((folder / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return None


def manifest_mismatch(folder: Path, files: dict[str, dict[str, Any]], hashes: bool) -> list[tuple[Path, str]]:
    """The files of a folder that differ from its manifest, with why: missing, another size,
    or (``hashes``) other bytes."""
    out = []
    for name, want in sorted(files.items()):
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            out.append((path, f"{path} is missing"))
            continue
        if size != want["bytes"]:
            out.append((path, f"{path} has {size:,} bytes, not {want['bytes']:,}"))
        elif hashes and _sha256(path) != want["sha256"]:
            out.append((path, f"{path} does not hold the bytes that were written (sha256 differs)"))
    return out


def _set_modes(folder: Path) -> None:
    """Give a staged folder and its files the modes the umask gives (mkdtemp and some writers make them private)."""
    files, dirs = file_mode(), dir_mode()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        os.chmod(path, dirs if path.is_dir() else files)
