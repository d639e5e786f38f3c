"""The command line: SQL output formats, help for every command, documentation of every catalog column."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bertsecrets.cli import build_parser, main
from bertsecrets.store.schema import TABLES

ROOT = Path(__file__).resolve().parent.parent
QUERY = "SELECT setup, accuracy, f1 FROM runs ORDER BY setup"


def test_sql_formats_carry_the_same_rows(tiny_store, tmp_path, capsys):
    store, _ = tiny_store
    expected = store.rows(QUERY)
    s = ["--store", str(store.root)]
    assert main(["sql", QUERY, *s, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected
    assert main(["sql", QUERY, *s, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["setup"] for r in rows] == [r["setup"] for r in expected]
    assert [float(r["accuracy"]) for r in rows] == pytest.approx([r["accuracy"] for r in expected])
    assert main(["sql", QUERY, *s, "--format", "parquet", "-o", str(tmp_path / "out.parquet")]) == 0
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == expected
    assert main(["sql", QUERY, *s]) == 0
    table = capsys.readouterr().out
    assert all(r["setup"] in table for r in expected) and "3 rows" in table


def test_every_command_has_help(capsys):
    parser, modules = build_parser()
    for name in modules:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([name, "--help"])
        assert done.value.code == 0
        assert "usage: bertsecrets " + name in capsys.readouterr().out


def test_every_catalog_column_is_documented():
    doc = (ROOT / "docs" / "catalog.md").read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", doc, flags=re.M | re.S))
    for table, schema in TABLES.items():
        assert table in sections, f"docs/catalog.md has no section for table {table}"
        for column in schema.names:
            assert re.search(rf"\b{column}\b", sections[table]), f"docs/catalog.md does not describe {table}.{column}"
