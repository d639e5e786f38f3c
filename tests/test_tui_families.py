"""The Families view and the sentence view's rollout: placement and cursor logic, a Pilot run, a snapshot at 80 x 24."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bertsecrets.core import flow
from bertsecrets.ingest.analyses import families as families_step
from bertsecrets.store import Store
from bertsecrets.tui import families as fam
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.screens.families import FamiliesScreen
from bertsecrets.tui.widgets.head_plot import HeadPlot
from conftest import text_of
from test_tui_snapshots import keys
from test_tui_stores import handmade_store

RUN = "run-handmade0001"


def with_families(store: Store, run_id: str = RUN) -> Store:
    """head_families rows computed from the store's own maps (the analysis step's functions, without spaCy)."""
    rows = []
    for role in ("pretrained", "finetuned"):
        reader = store.maps(run_id, role)
        heads = reader.n_layers * reader.n_heads
        d = np.mean([flow.head_distances(reader.example(e).reshape(heads, *reader.example(e).shape[-2:]), True)
                     for e in range(len(reader))], axis=0)
        found = families_step.families(d)
        for i in range(heads):
            rows.append({"run_id": run_id, "role": role, "layer": i // reader.n_heads, "head": i % reader.n_heads,
                         "family": int(found.labels[i]), "n_families": found.n_families, "silhouette": found.silhouette,
                         "x": float(found.xy[i, 0]), "y": float(found.xy[i, 1]), "change": 0.1 * i, "n_examples": 4})
    store.catalog.write("head_families", run_id, rows)
    store.catalog.write("head_stability", run_id, [{"run_id": run_id, "other_run_id": "run-other", "layer": 0,
                                                    "head": 1, "distance": 0.125, "n_examples": 4}])
    return store


def test_cells_keep_the_layout_inside_the_canvas():
    x, y = np.array([0.0, 1.0, 0.5]), np.array([0.0, 0.0, 1.0])
    col, row = fam.cells(x, y, 21, 12)
    assert col.min() >= 1 and col.max() <= 19 and row.min() >= 1 and row.max() <= 10
    assert col[0] < col[2] < col[1] and row[0] == row[1] < row[2]
    # A cell is twice as tall as wide: one unit across spans about twice the cells of one unit down.
    assert abs((col[1] - col[0]) - 2 * (row[2] - row[0])) <= 1


def test_nearest_goes_the_way_of_the_arrow():
    # (column, row); a row counts as two columns, and the cost is the distance along the arrow plus twice the
    # distance across it: from 0, head 1 costs 8, head 2 costs 2 + 2 * 2 = 6, so right goes to 2.
    col, row = np.array([0, 8, 2, 0]), np.array([0, 0, 1, 2])
    assert fam.nearest(col, row, 0, "right") == 2
    assert fam.nearest(col, row, 2, "right") == 1  # along 6, across 2: 10
    assert fam.nearest(col, row, 0, "down") == 3  # head 3: along 4 -> 4; head 2: along 2, across 2 -> 6
    assert fam.nearest(col, row, 1, "left") == 0  # head 0: 8; head 2: 6 + 2 * 2 = 10
    assert fam.nearest(col, row, 0, "up") == 0 and fam.nearest(col, row, 0, "left") == 0  # nothing that way: stay
    # Two heads on one cell: right and left step between them instead of getting stuck.
    col2, row2 = np.array([3, 3]), np.array([1, 1])
    assert fam.nearest(col2, row2, 0, "right") == 1 and fam.nearest(col2, row2, 1, "left") == 0


@pytest.fixture
def store(tmp_path):
    return with_families(handmade_store(tmp_path / "store", n_examples=4, n_layers=3, n_heads=6))


@pytest.mark.asyncio
async def test_the_cursor_moves_between_heads_and_the_panel_follows(store):
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys("i")(pilot)
        screen = app.screen
        assert isinstance(screen, FamiliesScreen)
        plot = screen.query_one(HeadPlot)
        assert plot.points is not None and len(plot.points) == 18
        panel = text_of(app, "#families-panel")
        assert "layer 1 · head 1 (finetuned)" in panel and "family " in panel and "disabled:" in panel
        await pilot.press("tab")
        assert (app.selection.layer, app.selection.head) == (0, 1)
        panel = text_of(app, "#families-panel")
        assert "layer 1 · head 2" in panel and "across seeds (JS): 0.125 (1 other)" in panel
        await pilot.press("shift+tab", "shift+tab")
        assert (app.selection.layer, app.selection.head) == (2, 5)  # wraps round to the last head
        col, row = plot._cells()
        start = plot.index
        for key in ("right", "left", "up", "down"):
            await pilot.press(key)
            moved = plot.index
            expected = fam.nearest(col, row, start, key)
            assert moved == expected, key
            assert (app.selection.layer, app.selection.head) == (int(plot.points.layer[moved]), int(plot.points.head[moved]))
            start = moved
        # The families arriving after the maps leave the maps alone (both come as Loaded messages).
        assert isinstance(screen.maps, np.ndarray)
        screen.post_message(Loaded("families", screen.data))
        await pilot.pause()
        assert isinstance(screen.maps, np.ndarray) and screen.data is not None
        await pilot.press("c")
        assert screen.colouring == "change" and plot.values is not None
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "map"


@pytest.mark.asyncio
async def test_the_sentence_view_shows_the_rollout_of_cls(store):
    from bertsecrets.tui.screens.sentence import SentenceScreen

    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys("w", "right", "R")(pilot)
        screen = app.screen
        assert isinstance(screen, SentenceScreen) and screen.rollout and screen.position == 0
        maps = store.maps(RUN, "finetuned").example(app.selection.example)
        expected = flow.rollout(maps)[-1, 0]
        panes = screen.text.panes
        assert np.allclose(panes[-1].values, expected)
        assert "rollout" in text_of(app, "#sentence-status")
        await pilot.press("R")
        assert not screen.rollout


def test_families_snapshot(snap_compare, store, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    app = BrowseApp(store, truecolor=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("i", "tab", "tab"))


@pytest.mark.asyncio
async def test_a_map_read_for_an_input_role_or_run_the_cursor_has_left_is_not_shown(store):
    """A read that lands late (the cursor moved to another input, model or run meanwhile) must not replace the map
    of the head under the cursor."""
    from textual.widgets import Static

    from bertsecrets.tui.screens.families import mini_map

    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await keys("i", "tab")(pilot)
        screen, s = app.screen, app.selection
        e, layer, head = s.example, s.layer, s.head
        mini = screen.query_one("#families-map", Static)

        def shows(role: str, example: int) -> bool:
            want = store.maps(RUN, role).example(example)
            return (np.array_equal(screen.maps, want) and mini.content == mini_map(want[layer, head], False)
                    and f"input {example + 1}/4, L={want.shape[-1]}:" in text_of(app, "#families-panel"))

        assert shows("finetuned", e)
        stale = np.full((3, 6, 99, 99), 7.0, dtype=np.float32)  # of no input of the store: 99 pieces long
        for key in ((RUN, "finetuned", e + 1), (RUN, "pretrained", e), ("run-handmade0002", "finetuned", e)):
            screen.maps_loaded(Loaded("maps", (key, stale)))
        await pilot.pause()
        assert shows("finetuned", e) and "L=99" not in text_of(app, "#families-panel")
        await keys("n")(pilot)  # the next input: its own map
        assert app.selection.example == e + 1 and shows("finetuned", e + 1)
        await keys("t")(pilot)  # the other model: its own map
        assert app.selection.role == "pretrained" and shows("pretrained", e + 1)
