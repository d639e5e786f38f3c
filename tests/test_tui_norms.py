"""The browser's norm-weighted maps (Map screen, `N`) and token-type grids (Features screen, `N`)."""

from __future__ import annotations

import numpy as np

from bertsecrets.store.maps import renormalise
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.widgets.grid import HeadGrid
from bertsecrets.tui.widgets.heatmap import Heatmap
from conftest import settle, text_of
from test_tui_stores import handmade_store


def _add_norms(store, role):
    """Norms 1, 2, 3, ... along the keys of every head (known, so the weighted map is known)."""
    with store.norm_writer(f"maps-handmade-{role}") as writer:
        for batch in writer.batches(8):
            values = writer.buffer(batch)
            values[:] = np.arange(1, values.shape[-1] + 1, dtype=np.float16)
            writer.write(batch, values)


async def test_n_switches_the_map_to_norm_weighted_and_says_when_there_are_no_norms(tmp_path):
    store = handmade_store(tmp_path / "store")
    run_id = "run-handmade0001"
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "enter", "m")  # runs -> heads -> the map
        assert app.current_mode == "map"
        await settle(pilot, "N")
        pane = app.screen.query_one("#finetuned", Heatmap)
        assert "no norms in the map set" in pane.message and "bertsecrets ingest" in pane.message
        assert "by norm" in text_of(app, "#map-status")
        await settle(pilot, "N")  # back to the weights
        assert np.allclose(pane.matrix, store.maps(run_id, "finetuned").head(0, 0, 0))
        assert "by norm" not in text_of(app, "#map-status")

    for role in ("pretrained", "finetuned"):
        _add_norms(store, role)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "enter", "m", "n", "N")
        e, layer, head = app.selection.example, app.selection.layer, app.selection.head
        maps = store.maps(run_id, "finetuned")
        a = maps.head(e, layer, head)
        want = renormalise(a * np.arange(1, a.shape[0] + 1, dtype=np.float32)[None, :])
        pane = app.screen.query_one("#finetuned", Heatmap)
        assert np.allclose(pane.matrix, want, atol=1e-6)
        assert np.allclose(pane.matrix.sum(axis=1), 1.0)
        assert "by norm" in pane.border_title and "by norm" in text_of(app, "#map-status")


async def test_maps_and_norms_read_for_an_input_the_cursor_has_left_are_not_shown(tmp_path):
    """A read that lands late (the cursor moved on meanwhile) must not pair one input's norms with another's map."""
    from bertsecrets.tui.messages import Loaded

    store = handmade_store(tmp_path / "store")
    for role in ("pretrained", "finetuned"):
        _add_norms(store, role)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "enter", "m", "N")
        screen, e = app.screen, app.selection.example
        pane = screen.query_one("#finetuned", Heatmap)
        shown = pane.matrix.copy()
        other = e + 1
        stale_norms = {role: np.full((9, 9, 99), 7.0, dtype=np.float32) for role in ("pretrained", "finetuned")}
        run_id = app.selection.run_id
        screen.maps_loaded(Loaded("norms", ((run_id, other), stale_norms)))  # of another input, of another length
        screen.maps_loaded(Loaded("example", ((run_id, other), {"pretrained": "x", "finetuned": "x"})))
        # ... or of the same input of another run (the task and seed keys keep the input)
        screen.maps_loaded(Loaded("example", (("run-handmade0002", e), {"pretrained": "x", "finetuned": "x"})))
        await settle(pilot)
        assert screen.norms_key == screen.shown_key == (run_id, e)
        assert np.array_equal(pane.matrix, shown)
        await settle(pilot, "n")  # the next input: its own maps and norms
        assert app.selection.example == other and screen.norms_key == screen.shown_key == (run_id, other)
        a = store.maps("run-handmade0001", "finetuned").head(other, app.selection.layer, app.selection.head)
        want = renormalise(a * np.arange(1, a.shape[0] + 1, dtype=np.float32)[None, :])
        assert np.allclose(pane.matrix, want, atol=1e-6)


async def test_n_on_the_features_screen_reads_the_norm_weighted_table(tmp_path):
    store = handmade_store(tmp_path / "store")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "enter", "f")
        assert app.current_mode == "features"
        before = app.screen.query_one("#feature-finetuned", HeadGrid).grid
        assert before is not None
        await settle(pilot, "N")  # the hand-made store has no norm_feature_attention rows
        assert "bertsecrets ingest mrpc" in app.screen.query_one("#feature-finetuned", HeadGrid).message
        assert "by norm" in text_of(app, "#features-context")
        await settle(pilot, "N")
        assert app.screen.query_one("#feature-finetuned", HeadGrid).grid is not None


async def test_the_norm_weighted_map_of_another_seeds_run_uses_that_runs_norms(task_grid_store):
    """The seed key keeps the input: the norms read for the same input of the run left behind must not be kept."""
    from test_tui_tasks import browsing

    store = task_grid_store
    async with browsing(store, "mrpc", 0) as (app, pilot, runs):
        await settle(pilot, "m", "n", "N")
        pane = app.screen.query_one("#finetuned", Heatmap)
        for run_id in (runs[("mrpc", 0)], runs[("mrpc", 1)]):
            if run_id != app.selection.run_id:
                await settle(pilot, "S")
            s = app.selection
            assert (s.run_id, s.example) == (run_id, 1)
            maps = store.maps(run_id, "finetuned")
            a = maps.head(1, s.layer, s.head)
            want = renormalise(a * maps.norms(1)[s.layer, s.head][None, :].astype(np.float32))
            assert np.allclose(pane.matrix, want, atol=1e-5), run_id
