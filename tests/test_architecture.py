"""The rooms: store/ and the CLI's read-only commands never load torch; the layers hold; one import name."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "textual", "spacy", "sklearn", "datasets")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint('LOADED:', *(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    line = [x for x in result.stdout.splitlines() if x.startswith("LOADED:")][-1]
    return line.split()[1:]


def test_store_imports_nothing_heavy():
    code = ("import bertsecrets.store, bertsecrets.store.catalog, bertsecrets.store.maps, bertsecrets.store.check, "
            "bertsecrets.store.export, bertsecrets.store.labels, bertsecrets.store.queries, bertsecrets.store.schema, "
            "bertsecrets.core.tasks")
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


def test_import_contracts(tmp_path):
    """The layers and contracts of pyproject.toml, checked on the package as pip installs it.

    Import-linter reads a package from one folder; the installed tree has
    store/, ingest/ and bertsecrets_tui/ in place as bertsecrets.store,
    bertsecrets.ingest and bertsecrets.tui.
    """
    tree = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-compile",
         "--target", str(tree), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    assert sorted(p.name for p in tree.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin") == ["bertsecrets"]
    lint = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    result = subprocess.run([sys.executable, "-c", lint, str(ROOT / "pyproject.toml"), "--no-cache"],
                            cwd=tree, capture_output=True, text=True, env={"PATH": "", "PYTHONPATH": str(tree)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def _shadowing_folder(tmp_path: Path) -> Path:
    """A working folder with data folders named like the project's rooms, as people name theirs."""
    cwd = tmp_path / "work"
    for name in ("store", "ingest", "bertsecrets_tui", "core"):
        (cwd / name).mkdir(parents=True)
        (cwd / name / "__init__.py").write_text("raise ImportError('a folder of the working directory was imported')\n")
    return cwd


def test_cli_works_from_a_folder_holding_store_and_ingest(tiny_store, tmp_path):
    store, _ = tiny_store
    cwd = _shadowing_folder(tmp_path)
    for args in (["runs"], ["sql", "SELECT count(*) AS n FROM runs"], ["check"]):
        result = subprocess.run([sys.executable, "-m", "bertsecrets", *args, "--store", str(store.root)],
                                cwd=cwd, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    # What `browse --web` starts for each browser tab: the app's modules, imported from that folder.
    probe = "import bertsecrets.tui.app, bertsecrets.commands.browse, bertsecrets.ingest.pipeline"
    result = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_browse_web_starts_from_a_folder_holding_store_and_ingest(tiny_store, tmp_path):
    store, _ = tiny_store
    cwd = _shadowing_folder(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "bertsecrets", "browse", str(store.root), "--web",
                               "--host", "127.0.0.1", "--port", str(port)],
                              cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    page = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert server.poll() is None, server.stdout.read()
        assert page is not None and "bertsecrets" in page
    finally:
        server.terminate()
        server.wait(timeout=10)
