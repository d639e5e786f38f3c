"""The three rooms: store/ and the CLI's read-only commands never load torch; import contracts hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "textual", "spacy", "sklearn", "datasets")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint('LOADED:', *(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    line = [x for x in result.stdout.splitlines() if x.startswith("LOADED:")][-1]
    return line.split()[1:]


def test_store_imports_nothing_heavy():
    code = "import store, store.catalog, store.maps, store.check, store.export, store.labels, store.schema"
    assert _loaded_after(code) == []


def test_sql_check_and_help_run_without_torch(tiny_store):
    store, _ = tiny_store
    code = (
        "from bertsecrets.cli import main, build_parser\n"
        "build_parser()\n"
        f"assert main(['sql', 'SELECT count(*) FROM runs', '--store', {str(store.root)!r}]) == 0\n"
        f"assert main(['check', '--store', {str(store.root)!r}]) == 0\n"
        f"assert main(['runs', '--store', {str(store.root)!r}]) == 0\n"
    )
    assert [m for m in _loaded_after(code) if m != "textual"] == []


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed (pip install -e '.[dev]')")
def test_import_contracts():
    result = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
