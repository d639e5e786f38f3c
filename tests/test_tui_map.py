"""The Map view under Pilot: while the next input's maps are read, the old ones are not drawn with its words."""

from __future__ import annotations

import threading

import numpy as np

from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.widgets.heatmap import Heatmap, clean
from conftest import settle, text_of
from test_tui_stores import handmade_store

RUN = "run-handmade0001"


def shows(app, store, example: int, layer: int, head: int) -> bool:
    """Both models' panes hold the stored maps of ``example``'s head, with its word pieces."""
    tokens = [clean(t) for t in app.reader.tokens(RUN)[example]]
    for role in ("pretrained", "finetuned"):
        pane = app.screen.query_one(f"#{role}", Heatmap)
        want = store.maps(RUN, role).head(example, layer, head)
        if pane.matrix is None or pane.matrix.shape != want.shape or not np.allclose(pane.matrix, want) \
                or pane.tokens != tokens:
            return False
    return True


async def test_while_the_next_inputs_maps_are_read_a_head_or_layer_key_draws_nothing_new(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTSECRETS_EXPORTS", str(tmp_path / "exports"))
    store = handmade_store(tmp_path / "store")  # inputs of 17, 15, 13, 17 word pieces
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "m")
        screen, s = app.screen, app.selection
        e, layer, head = s.example, s.layer, s.head
        assert app.current_mode == "map" and shows(app, store, e, layer, head)
        reader, release = app.reader, threading.Event()
        both, cached = reader.both, reader.cached

        def slow(run_id, n):  # the next input's read waits until the test lets it go
            if n == e + 1:
                release.wait(10)
            return both(run_id, n)

        reader.both = slow
        reader.cached = lambda run_id, role, n: None if n == e + 1 else cached(run_id, role, n)  # read ahead: hidden
        old_text = text_of(app, "#map-text")
        await pilot.press("n", "right_square_bracket", "right_curly_bracket")
        await pilot.pause()
        s = app.selection
        assert (s.example, s.layer, s.head) == (e + 1, (layer + 1) % 2, (head + 1) % 5)
        context = text_of(app, "#map-context")
        assert f"input {e + 2}/4 · layer {s.layer + 1}/2 · head {s.head + 1}/5 · reading…" in context
        assert "L=" not in context
        # The sentence is the new input's; no classes nor values of the old input's head are left standing.
        assert f"The bank bought the report {e}." in old_text  # the handmade store's sentences
        assert f"The bank bought the report {e + 1}." in text_of(app, "#map-text")
        assert text_of(app, "#map-classes") == "" and text_of(app, "#map-status") == ""
        assert screen.shown_key == (RUN, e) and shows(app, store, e, layer, head)  # nothing drawn since
        await pilot.press("e")
        await pilot.pause()
        assert text_of(app, "#map-status") == f"input {e + 2} is still being read: export it once its maps show"
        assert not (tmp_path / "exports").exists()
        release.set()
        await settle(pilot)
        assert screen.shown_key == (RUN, e + 1) and shows(app, store, e + 1, s.layer, s.head)
        context = text_of(app, "#map-context")
        assert "reading" not in context and f"L={store.maps(RUN, 'finetuned').example(e + 1).shape[-1]}" in context


async def test_a_run_context_read_for_a_run_the_cursor_has_left_is_not_kept(tmp_path):
    """After T/S, the context of the run left behind may land after the switch: it must not clamp the input to that
    run's size nor stand as the screen's context (nor its failure be shown)."""
    import dataclasses

    from bertsecrets.tui.messages import Loaded

    store = handmade_store(tmp_path / "store")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, "m", "n", "n")
        screen = app.screen
        context = screen.context
        assert context.run_id == RUN and app.selection.example == 2 and shows(app, store, 2, 0, 0)
        other = "run-handmade0002"
        stale = dataclasses.replace(context, run_id=other, n_examples=1, n_layers=1, n_heads=1, tokens=[["x"]],
                                    examples=context.examples[:1])
        screen.on_loaded(Loaded("context", stale, read_key=other))
        screen.on_loaded(Loaded("context", error="StoreCorrupt: the run left behind", read_key=other))
        await settle(pilot)
        s = app.selection
        assert screen.context is context and (s.run_id, s.example, s.layer, s.head) == (RUN, 2, 0, 0)
        assert "input 3/4" in text_of(app, "#map-context") and shows(app, store, 2, 0, 0)
        # The selected run's own context is still taken.
        screen.on_loaded(Loaded("context", dataclasses.replace(context, n_examples=2), read_key=RUN))
        await settle(pilot)
        assert app.selection.example == 1
