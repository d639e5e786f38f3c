"""The browser driven by Pilot on a store built from the tiny random BERT, plus hand-made analysis rows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from textual.widgets import DataTable

from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.screens.help import HelpScreen
from bertsecrets.tui.widgets.grid import HeadGrid
from bertsecrets.tui.widgets.heatmap import Heatmap
from bertsecrets.tui.widgets.thumbnails import Thumbnails
from bertsecrets.store import Store
from bertsecrets.store.labels import PATTERN_CLASSES, Labels
from conftest import settle, text_of
from test_tui_stores import browse_store, handmade_store, head_value  # noqa: F401 (fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def labeller(monkeypatch):
    monkeypatch.setenv("BERTSECRETS_USER", "tester")
    return "tester"


async def test_every_screen_shows_the_store(browse_store, labeller):
    store, run_id = browse_store
    maps = store.maps(run_id, "finetuned")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 3 and app.selection.run_id == run_id

        await settle(pilot, "enter")  # the fine-tuned run's heads
        assert app.current_mode == "heads"
        grid = app.screen.query_one(HeadGrid).grid
        assert grid is not None and grid.values.shape == (maps.n_layers, maps.n_heads)
        await settle(pilot, "c", "c", "c", "c", "c")  # to entropy
        assert np.allclose(app.screen.query_one(HeadGrid).grid.values[1, 2], 2 * head_value(1, 2, 1))
        await settle(pilot, "down", "right", "right")
        assert (app.selection.layer, app.selection.head) == (1, 2)
        assert "layer 2 · head 3" in text_of(app, "#heads-details")

        await settle(pilot, "enter")  # the map of that head
        assert app.current_mode == "map"
        pane = app.screen.query_one("#finetuned", Heatmap)
        assert np.allclose(pane.matrix, maps.head(0, 1, 2))
        await settle(pilot, "n", "right_square_bracket", "right_curly_bracket")
        assert (app.selection.example, app.selection.layer, app.selection.head) == (1, 2, 3)
        assert np.allclose(pane.matrix, maps.head(1, 2, 3))
        pre = app.screen.query_one("#pretrained", Heatmap).matrix
        assert np.allclose(pre, store.maps(run_id, "pretrained").head(1, 2, 3))
        assert np.allclose(app.screen.query_one("#difference", Heatmap).matrix, pane.matrix - pre)
        await settle(pilot, "down", "right")
        q, k = pane.cursor
        assert (q, k) == (1, 1) and f"ft {maps.head(1, 2, 3)[1, 1]:.3f}" in text_of(app, "#map-status")
        assert "rules" in text_of(app, "#map-classes")

        await settle(pilot, "o")  # all heads of input 2
        sheet = app.screen.query_one(Thumbnails)
        assert sheet.maps.shape == (maps.n_layers, maps.n_heads, maps.lengths[1], maps.lengths[1])
        assert sheet.cursor == (2, 3)

        await settle(pilot, "l")
        assert app.screen.shown is not None and app.screen.query_one(Heatmap).matrix is not None

        await settle(pilot, "f")
        assert app.screen.query_one("#feature-difference", HeadGrid).grid is not None
        assert app.screen.query_one("#cls-table", DataTable).row_count == maps.n_layers

        await settle(pilot, "a")
        assert app.screen.query_one(HeadGrid).grid.marks is not None
        assert app.screen.query_one("#ablation-layers", DataTable).row_count == maps.n_layers
        table1 = app.screen.query_one("#ablation-table1", DataTable)
        assert table1.row_count == 3
        finetuned = [table1.get_row_at(i) for i in range(3) if table1.get_row_at(i)[0] == "pretrained + fine-tuning"][0]
        assert "87.9/82.3" in finetuned  # the paper's MRPC numbers beside the run's
        await settle(pilot, *"oooooo")  # sort the table of every row by its sixth column, the change
        everything = app.screen.query_one("#ablation-all", DataTable)
        deltas = [float(everything.get_row_at(i)[5]) for i in range(everything.row_count)]
        assert deltas == sorted(deltas) and len(deltas) == 1 + maps.n_layers * (maps.n_heads + 1)

        await settle(pilot, "s")
        assert app.current_mode == "sql"
        await settle(pilot, "escape")
        assert app.current_mode == "ablation"
        await settle(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await settle(pilot, "escape")
        assert app.current_mode == "ablation" and not isinstance(app.screen, HelpScreen)


async def test_a_label_given_in_the_app_is_in_the_catalog(browse_store, labeller):
    store, run_id = browse_store
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        first = app.screen.shown
        await settle(pilot, "4")  # block
        second = app.screen.shown
        await settle(pilot, "space")  # skipped: no label
        await settle(pilot, "2")  # diagonal, the third map
        third = app.screen.queue[2]
        assert app.screen.saving == 0
        rows = {(r["run_id"], r["role"], r["example"], r["layer"], r["head"]): r for r in Labels(store).all().to_pylist()}
        assert rows[(first.run_id, first.role, first.example, first.layer, first.head)]["label"] == "block"
        assert rows[(third.run_id, third.role, third.example, third.layer, third.head)]["label"] == "diagonal"
        assert (second.run_id, second.role, second.example, second.layer, second.head) not in rows
        assert {r["labeller"] for r in rows.values()} == {labeller}
        assert app.screen.counts["block"][0] == 1
        await settle(pilot, "u")  # takes the diagonal back and shows that map again
        assert app.screen.shown == third and app.screen.saving == 0
        assert [r["label"] for r in Labels(store).all().to_pylist()] == ["block"]
    # `bertsecrets labels` and SQL see the same rows.
    assert store.rows("SELECT label FROM labels WHERE labeller = 'tester'") == [{"label": "block"}]
    assert PATTERN_CLASSES[3] == "block"


async def test_sql_console_good_bad_and_refused_queries(browse_store, monkeypatch):
    from bertsecrets.tui.screens import sql

    monkeypatch.setattr(sql, "SLOW_SECONDS", float("inf"))  # no time printed, however loaded the machine
    store, _ = browse_store
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "s")
        await pilot.press(*"SELECT setup, accuracy FROM runs ORDER BY setup")
        await settle(pilot, "enter")
        table = app.screen.query_one("#sql-result", DataTable)
        assert table.row_count == 3 and [str(c.label) for c in table.columns.values()] == ["setup", "accuracy"]
        assert text_of(app, "#sql-status") == "3 rows"

        box = app.screen.query_one("#sql-input")
        box.value = ""
        await pilot.press(*"SELEC nonsense")
        await settle(pilot, "enter")
        assert "SQL error" in text_of(app, "#sql-status")
        assert table.row_count == 0 and not table.columns  # no older rows under this query's error

        box.value = ""
        await pilot.press(*"DELETE FROM runs")
        await settle(pilot, "enter")
        assert "read-only" in text_of(app, "#sql-status")
        await settle(pilot, "up", "up")  # history, newest first: the refused query, then the bad one
        assert box.value == "SELEC nonsense"
        await settle(pilot, "up")
        assert box.value == "SELECT setup, accuracy FROM runs ORDER BY setup"

        box.value = ""
        await pilot.press(*"SELECT * FROM range(2000)")
        await settle(pilot, "enter")
        assert table.row_count == 500 and "2000 rows (showing the first 500)" in text_of(app, "#sql-status")
    assert len(store.runs()) == 3


async def test_new_runs_and_analyses_appear_without_a_restart(browse_store):
    store, run_id = browse_store
    app = BrowseApp(store, truecolor=False, poll_seconds=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.screen.query_one(DataTable).row_count == 3
        record = dict(store.run(run_id), run_id="run-written-later", setup="finetuned", status="running",
                      stage="train", seed=1)
        store.save_run(record)  # as an ingest would, while the browser is open
        for _ in range(100):
            await pilot.pause(0.05)
            if app.screen.query_one(DataTable).row_count == 4:
                break
        assert app.screen.query_one(DataTable).row_count == 4
        await settle(pilot, "g")
        store.catalog.delete("head_stats", run_id)
        for _ in range(100):
            await pilot.pause(0.05)
            if app.screen.stats is not None and not app.screen.stats.rows("head_stats"):
                break
        assert app.screen.stats.rows("head_stats") == []


async def test_empty_analyses_and_missing_maps_show_a_message_in_place(tiny_store, tmp_path):
    store, plan = tiny_store
    copy = Store.open(shutil.copytree(store.root, tmp_path / "store"))
    shutil.rmtree(copy.maps_path(copy.rows("SELECT map_id FROM maps WHERE role = 'pretrained'")[0]["map_id"]))
    for table in ("head_stats", "feature_attention", "cls_attention", "head_change", "map_classes", "class_shares",
                  "relation_heads", "classifiers", "ablation", "head_importance", "pruning"):
        for part in copy.catalog.parts(table):  # as in a store whose analyses have not run yet
            copy.catalog.delete(table, part)
    app = BrowseApp(copy, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "g")
        assert app.screen.query_one(HeadGrid).message.endswith("not computed yet: run `bertsecrets analyze mrpc`")
        await settle(pilot, "a")
        assert "run `bertsecrets ablate mrpc`" in app.screen.query_one(HeadGrid).message
        await settle(pilot, "m")
        assert "unreadable" in app.screen.query_one("#pretrained", Heatmap).message
        assert app.screen.query_one("#finetuned", Heatmap).matrix is not None  # the other model still shows
        await settle(pilot, "n", "o", "r")
        assert app.is_running


def test_a_folder_that_is_not_a_store_is_one_line_of_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bertsecrets", "browse", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "not a bertsecrets store" in result.stderr


def test_the_first_screen_reads_no_maps_so_zarr_waits_until_a_map_is_opened(tmp_path):
    """A cold start pays only for what the Runs screen shows; zarr comes in with the first map read."""
    handmade_store(tmp_path / "s", n_examples=2)
    script = textwrap.dedent(f"""
        import asyncio, sys
        from bertsecrets.tui.app import BrowseApp
        from bertsecrets.store import Store

        async def main():
            app = BrowseApp(Store.open({str(tmp_path / 's')!r}))
            async with app.run_test() as pilot:
                await app.workers.wait_for_complete()
                await pilot.pause()
                print("FIRST", type(app.screen).__name__, "zarr" in sys.modules)
                await pilot.press("m")
                await app.workers.wait_for_complete()
                await pilot.pause()
                print("MAP", type(app.screen).__name__, "zarr" in sys.modules)
        asyncio.run(main())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr
    assert "FIRST RunsScreen False" in result.stdout
    assert "MAP MapScreen True" in result.stdout


def test_the_browser_never_imports_torch(tmp_path):
    """Every screen, and the map's exports (bertviz's scripts are read from its package, never imported)."""
    handmade_store(tmp_path / "s", n_examples=2)
    script = textwrap.dedent(f"""
        import asyncio, sys
        from bertsecrets.cli import build_parser
        build_parser()  # every command's parser, as `bertsecrets browse` builds them
        from bertsecrets.tui.app import BrowseApp
        from bertsecrets.store import Store

        async def main():
            app = BrowseApp(Store.open({str(tmp_path / 's')!r}))
            async with app.run_test() as pilot:
                for key in "rgmowlfa" + "mbe" + "s":  # SQL last: its input takes the letters
                    await pilot.press(key)
                    await app.workers.wait_for_complete()
                    await pilot.pause()
        asyncio.run(main())
        heavy = sorted(m for m in ("torch", "transformers", "spacy", "sklearn", "datasets", "ingest",
                                   "bertsecrets.ingest", "bertviz", "IPython") if m in sys.modules)
        print("HEAVY", heavy)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "PYTHONPATH": REPO, "BERTSECRETS_EXPORTS": str(tmp_path / "exports")})
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
    # The exports were written, so bertviz's scripts were read.
    assert sorted(p.suffix for p in (tmp_path / "exports").iterdir()) == [".html", ".png", ".svg"]
