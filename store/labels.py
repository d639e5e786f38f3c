"""Pattern-class labels given by people: one row per (labeller, map), kept in the catalog.

A map is one head of one model on one dev input: (run_id, role, example,
layer, head), layers and heads 0-indexed as stored (shown 1-indexed). Each
labeller's labels are one Parquet part, rewritten atomically under a lock on
every change, so the TUI, `bertsecrets labels` and SQL all see the same rows.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import re
from contextlib import contextmanager
from typing import Any, Iterator

import pyarrow as pa

from bertsecrets.core import config
from bertsecrets.store import queries
from bertsecrets.store.errors import StoreError, writing

#: The paper's five classes (section 4.1), in the order of the labelling keys 1-5.
PATTERN_CLASSES = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")

MAP_KEY = ("run_id", "role", "example", "layer", "head")


def _part_name(labeller: str) -> str:
    return "by-" + re.sub(r"[^A-Za-z0-9_.-]", "_", labeller)[:80]


class Labels:
    """Read and change the people's labels of one store."""

    def __init__(self, store) -> None:
        self.store = store

    @contextmanager
    def _locked(self, labeller: str) -> Iterator[None]:
        folder = self.store.root / "locks"
        with writing(self.store.root):
            folder.mkdir(exist_ok=True)
            fh = open(folder / f"labels-{_part_name(labeller)}.lock", "a+")
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # blocking: another writer holds it for milliseconds
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _rows(self, labeller: str) -> list[dict[str, Any]]:
        table = self.store.catalog.read_part("labels", _part_name(labeller))
        return [] if table is None else table.to_pylist()

    def _write(self, labeller: str, rows: list[dict[str, Any]]) -> None:
        self.store.catalog.write("labels", _part_name(labeller), rows)

    def set(self, run_id: str, role: str, example: int, layer: int, head: int, label: str,
            labeller: str | None = None, note: str | None = None) -> dict[str, Any]:
        """Give (or change) ``labeller``'s label of one map; returns the stored row."""
        if label not in PATTERN_CLASSES:
            raise StoreError(f"unknown pattern class {label!r}: use one of {', '.join(PATTERN_CLASSES)}")
        self._refuse_block_on_one_sentence([{"run_id": run_id, "example": example, "label": label}])
        labeller = labeller or config.labeller()
        row = {"run_id": run_id, "role": role, "example": int(example), "layer": int(layer), "head": int(head),
               "label": label, "labeller": labeller, "labelled_at": dt.datetime.now(dt.timezone.utc), "note": note}
        with self._locked(labeller):
            rows = [r for r in self._rows(labeller) if tuple(r[k] for k in MAP_KEY) != tuple(row[k] for k in MAP_KEY)]
            rows.append(row)
            self._write(labeller, rows)
        return row

    def set_many(self, rows: list[dict[str, Any]]) -> int:
        """Store many labels at once (each row has the map key, label, labeller, labelled_at)."""
        by_labeller: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row["label"] not in PATTERN_CLASSES:
                raise StoreError(f"unknown pattern class {row['label']!r}: use one of {', '.join(PATTERN_CLASSES)}")
            by_labeller.setdefault(row["labeller"], []).append(row)
        self._refuse_block_on_one_sentence(rows)
        for labeller, new in by_labeller.items():
            with self._locked(labeller):
                keys = {tuple(r[k] for k in MAP_KEY) for r in new}
                kept = [r for r in self._rows(labeller) if tuple(r[k] for k in MAP_KEY) not in keys]
                self._write(labeller, kept + new)
        return len(rows)

    def _refuse_block_on_one_sentence(self, rows: list[dict[str, Any]]) -> None:
        """OneSentenceBlock for the first row that labels an input of one sentence "block" (a block needs two
        segments); inputs whose word pieces are not stored are not judged here."""
        wanted = {(r["run_id"], int(r["example"])) for r in rows if r["label"] == "block"}
        if not wanted:
            return
        one = {(r["run_id"], r["example"])
               for r in queries.one_sentence_inputs(self.store, sorted({run for run, _ in wanted}))}
        for row in rows:
            if row["label"] == "block" and (row["run_id"], int(row["example"])) in one:
                raise OneSentenceBlock(row)

    def remove(self, run_id: str, role: str, example: int, layer: int, head: int, labeller: str | None = None) -> bool:
        """Take back ``labeller``'s label of one map; False if there was none."""
        labeller = labeller or config.labeller()
        key = (run_id, role, int(example), int(layer), int(head))
        with self._locked(labeller):
            rows = self._rows(labeller)
            kept = [r for r in rows if tuple(r[k] for k in MAP_KEY) != key]
            if len(kept) == len(rows):
                return False
            self._write(labeller, kept)
        return True

    def all(self, run_id: str | None = None) -> pa.Table:
        if run_id is None:
            return self.store.query("SELECT * FROM labels ORDER BY labelled_at")
        return self.store.query("SELECT * FROM labels WHERE run_id = ? ORDER BY labelled_at", [run_id])


class OneSentenceBlock(StoreError):
    """A "block" label of an input of one sentence; ``row`` is the refused row."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(f"input {int(row['example'])} of run {row['run_id']} has one sentence, and a block needs "
                         "two: give it another class")
        self.row = row
