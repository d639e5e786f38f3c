"""`bertsecrets labels export|import`: share people's pattern-class labels of maps as CSV.

The CSV has one row per (labeller, map) with the columns of CSV_COLUMNS.
Layers and heads are 1-indexed in the file, as people read them (the store
keeps them 0-indexed). Importing checks every row against the store before
storing any (one bad row: nothing is imported) and replaces a labeller's
earlier label of the same map, so importing a file twice changes nothing.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from bertsecrets.core import config
from bertsecrets.commands import console, store_arg, text
from bertsecrets.core.errors import UserError

CSV_COLUMNS = ("run_id", "role", "example", "layer", "head", "label", "labeller", "labelled_at", "note")
REQUIRED = ("run_id", "role", "example", "layer", "head", "label")


def add_parser(sub) -> None:
    p = sub.add_parser("labels", help="export or import people's pattern-class labels of maps (CSV)",
                       description="Share labelled maps: export writes every label (or a run's, or a labeller's) as "
                                   "CSV, import reads such a file back. Layers and heads are 1-indexed in the CSV.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ex = actions.add_parser("export", help="write labels as CSV")
    store_arg(ex)
    ex.add_argument("--run", metavar="RUN_ID", help="only this run's labels")
    ex.add_argument("--labeller", metavar="NAME", help="only this labeller's labels")
    ex.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    im = actions.add_parser("import", help="read labels from a CSV file made by export (or by hand)")
    store_arg(im)
    im.add_argument("file", help="the CSV file; columns " + ", ".join(CSV_COLUMNS) + " (labeller, labelled_at, note optional)")
    im.add_argument("--labeller", metavar="NAME",
                    help=f"who labelled rows without a labeller (default ${config.LABELLER_ENV}, else your user name)")


def run(args: argparse.Namespace) -> int:
    from bertsecrets.store import Store

    store = Store.open(config.store_path(args.store))
    if args.action == "export":
        return export(store, args.run, args.labeller, args.output)
    count = import_csv(store, Path(args.file), args.labeller or config.labeller())
    console().print(text(f"imported {count} label{'s' if count != 1 else ''} into {store.root}"), soft_wrap=True)
    return 0


def export(store, run_id: str | None, labeller: str | None, output: str | None) -> int:
    from bertsecrets.store.queries import given_labels

    rows = given_labels(store, run_id or None, labeller or None)
    fh = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            row["labelled_at"] = row["labelled_at"].isoformat() if row["labelled_at"] else ""
            writer.writerow({**row, "layer": row["layer"] + 1, "head": row["head"] + 1})  # 1-indexed in the CSV
    finally:
        if output:
            fh.close()
    if output:
        console(stderr=True).print(text(f"wrote {len(rows)} label{'s' if len(rows) != 1 else ''} to {output}"), soft_wrap=True)
    return 0


def _maps_of_runs(store) -> dict[str, dict[str, Any]]:
    """run_id -> the size of its map sets (examples, layers, heads) and its roles."""
    from bertsecrets.store.queries import finished_maps

    out: dict[str, dict[str, Any]] = {}
    for m in finished_maps(store):
        entry = out.setdefault(m["run_id"], {"roles": set(), "n_examples": m["n_examples"], "n_layers": m["n_layers"],
                                             "n_heads": m["n_heads"]})
        entry["roles"].add(m["role"])
    return out


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None


def parse_row(row: dict[str, str], runs: dict[str, dict[str, Any]], labeller: str) -> dict[str, Any]:
    """One CSV row as a labels row (0-indexed layer and head); ValueError says what is wrong."""
    from bertsecrets.store.labels import PATTERN_CLASSES

    run_id = (row.get("run_id") or "").strip()
    if run_id not in runs:
        raise ValueError(f"run {run_id!r} has no stored maps in this store (see `bertsecrets runs`)")
    info = runs[run_id]
    role = (row.get("role") or "").strip()
    if role not in info["roles"]:
        raise ValueError(f"role must be one of {', '.join(sorted(info['roles']))}, got {role!r}")
    example, layer, head = (_int(row.get(k), k) for k in ("example", "layer", "head"))
    if not 0 <= example < info["n_examples"]:
        raise ValueError(f"example {example} is not among the run's {info['n_examples']} analysed inputs (0..{info['n_examples'] - 1})")
    if not 1 <= layer <= info["n_layers"]:
        raise ValueError(f"layer {layer} is out of range 1..{info['n_layers']} (1-indexed in CSV)")
    if not 1 <= head <= info["n_heads"]:
        raise ValueError(f"head {head} is out of range 1..{info['n_heads']} (1-indexed in CSV)")
    label = (row.get("label") or "").strip()
    if label not in PATTERN_CLASSES:
        raise ValueError(f"label must be one of {', '.join(PATTERN_CLASSES)}, got {label!r}")
    when = (row.get("labelled_at") or "").strip()
    try:
        at = dt.datetime.fromisoformat(when) if when else dt.datetime.now(dt.timezone.utc)
    except ValueError:
        raise ValueError(f"labelled_at must be an ISO date and time, got {when!r}") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    return {"run_id": run_id, "role": role, "example": example, "layer": layer - 1, "head": head - 1, "label": label,
            "labeller": (row.get("labeller") or "").strip() or labeller, "labelled_at": at,
            "note": (row.get("note") or "").strip() or None}


def import_csv(store, path: Path, labeller: str) -> int:
    """Check every row of ``path``, then store them all; a bad row stops the import before anything is stored."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(missing)}; the header must name "
                                f"{', '.join(CSV_COLUMNS)} (labeller, labelled_at and note may be left out)")
            runs = _maps_of_runs(store)
            rows, lines = [], []
            for number, row in enumerate(reader, start=2):
                try:
                    rows.append(parse_row(row, runs, labeller))
                    lines.append(number)
                except ValueError as exc:
                    raise UserError(f"{path}:{number}: {exc}; nothing was imported") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path} is not a readable CSV file ({exc}); nothing was imported") from None
    if not rows:
        raise UserError(f"{path} holds no labels")
    from bertsecrets.store.labels import MAP_KEY, Labels, OneSentenceBlock

    # A map labelled twice by the same labeller in one file: the later row counts.
    unique = {(r["labeller"], *(r[k] for k in MAP_KEY)): r for r in rows}
    try:
        return Labels(store).set_many(list(unique.values()))
    except OneSentenceBlock as exc:
        line = lines[next(i for i, r in enumerate(rows) if r is exc.row)]
        raise UserError(f"{path}:{line}: {exc}; nothing was imported") from None
