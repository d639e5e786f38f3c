"""Recomputing a damaged store: invalidate what `bertsecrets check` found, then rerun each affected run's own ingest.

The store side (``store.check.invalidate``) removes exactly the damaged
artifacts and marks what depended on them as not done. This module rebuilds
each affected run's ingest settings from its record (``settings_json``) and
runs that ingest, whose resume path redoes what is missing and skips the
rest. On a CPU, training is deterministic and a map chunk is written again
byte for byte, so the repaired store equals an undamaged one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from bertsecrets.core.errors import UserError
from bertsecrets.core.settings import IngestSettings
from bertsecrets.core.tasks import SETUPS
from bertsecrets.ingest.pipeline import ingest
from bertsecrets.ingest.plan import Plan, make_plan, settings_of
from bertsecrets.store import Store
from bertsecrets.store.check import Problem, invalidate


def repair(store: Store, problems: list[Problem], console: Console) -> list[str]:
    """Invalidate what ``problems`` name and run the ingest of every run it affects.

    Returns what is left to do by hand, one line each (files no ingest can
    recompute, runs whose settings no longer reproduce them, ingests that failed).
    """
    done = invalidate(store, problems)
    left = list(done.manual)
    plans = _Plans()
    records = _records(store)
    jobs: dict[str, tuple[IngestSettings, list[str]]] = {}  # one ingest per distinct settings

    def add(settings: IngestSettings, run_id: str) -> None:
        jobs.setdefault(_key(settings), (settings, []))[1].append(run_id)

    for run_id in sorted(done.runs):
        record = records.get(run_id)
        if record is None:
            left.append(f"run {run_id} has no record in the catalog: run the ingest that made it")
            continue
        try:
            add(_settings(store, record, plans), run_id)
        except UserError as exc:
            left.append(str(exc))
    if done.lost:
        found = _find_lost(store, records, done.lost, plans)
        for run_id in sorted(done.lost):
            if run_id in found:
                add(found[run_id], run_id)
            else:
                left.append(f"the record of run {run_id} was unreadable and is removed; no other run of the store was "
                            "made by the same ingest: run `bertsecrets ingest` again with the options that made it")
    for settings, run_ids in jobs.values():
        console.print(Text.assemble(("repairing ", "bold"), ", ".join(sorted(run_ids)),
                                    f" ({settings.task}): the ingest recomputes what was removed"))
        try:
            ingest(settings, console)
        except UserError as exc:
            left.append(f"the ingest of {', '.join(sorted(run_ids))} failed: {exc}")
    return left


def _records(store: Store) -> dict[str, dict[str, Any]]:
    """Every run record that can be read (those that cannot were just invalidated, or are named as left)."""
    out = {}
    for run_id in store.catalog.parts("runs"):
        try:
            record = store.run(run_id)
        except UserError:
            continue
        if record is not None:
            out[record["run_id"]] = record
    return out


def _settings(store: Store, record: dict[str, Any], plans: "_Plans") -> IngestSettings:
    """The settings that made ``record``, checked to make the same run again (same data, same model).

    As recorded first; then on the device the run was computed on (``--device auto`` finds a GPU
    here that the run did not have), and from the GLUE folder its data was read from.
    """
    recorded = settings_of(record, store.root)
    devices = [recorded] + ([replace(recorded, device=record["device"])]
                            if record.get("device") in ("cpu", "cuda") and recorded.device != record["device"] else [])
    glue = _recorded_glue_dir(record)
    candidates = devices + [replace(s, data_dir=glue) for s in devices if glue and glue != s.data_dir]
    for candidate in candidates:
        if plans.run_id(candidate, record["setup"]) == record["run_id"]:
            return candidate
    raise UserError(
        f"the settings of run {record['run_id']} no longer make the same run (its data or model changed, or a "
        f"relative --data-dir/--model no longer points there): run `bertsecrets ingest {record['task']}` with the "
        "options that made it, from the folder it was run in"
    )


def _recorded_glue_dir(record: dict[str, Any]) -> str | None:
    """The GLUE folder the data came from (``glue_dir:<dir>/<TASK>``), when it still exists."""
    source = record.get("data_source") or ""
    if not source.startswith("glue_dir:"):
        return None
    folder = Path(source.split(":", 1)[1]).parent
    return str(folder) if folder.is_dir() else None


def _key(settings: IngestSettings) -> str:
    return json.dumps(asdict(settings), sort_keys=True, default=str)


class _Plans:
    """make_plan once per settings (it reads the data); None for settings that cannot be planned now."""

    def __init__(self) -> None:
        self._plans: dict[str, Plan | None] = {}

    def get(self, settings: IngestSettings) -> Plan | None:
        key = _key(settings)
        if key not in self._plans:
            try:
                self._plans[key] = make_plan(settings)
            except UserError:  # data or model gone from where the record says
                self._plans[key] = None
        return self._plans[key]

    def run_id(self, settings: IngestSettings, setup: str) -> str | None:
        plan = self.get(settings)
        return None if plan is None else plan.run_ids.get(setup)


def _find_lost(store: Store, records: dict[str, dict[str, Any]], lost: set[str], plans: _Plans) -> dict[str, IngestSettings]:
    """For runs whose record is gone: the settings of another run of the same ingest that also make them."""
    found: dict[str, IngestSettings] = {}
    for record in records.values():
        if not lost - set(found):
            break
        try:
            settings = _settings(store, record, plans)
        except UserError:
            continue
        for setup, run_id in plans.get(settings).run_ids.items():
            if run_id in lost and run_id not in found:
                setups = tuple(s for s in SETUPS if s in settings.setups or s == setup)
                found[run_id] = replace(settings, setups=setups)
    return found


__all__ = ["repair"]
