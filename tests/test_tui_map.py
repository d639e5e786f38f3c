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
        await pilot.press("n", "right_square_bracket", "right_curly_bracket", "e")
        await pilot.pause()
        s = app.selection
        assert (s.example, s.layer, s.head) == (e + 1, (layer + 1) % 2, (head + 1) % 5)
        context = text_of(app, "#map-context")
        assert f"input {e + 2}/4 · layer {s.layer + 1}/2 · head {s.head + 1}/5 · reading…" in context
        assert "L=" not in context
        assert screen.shown_key == (RUN, e) and shows(app, store, e, layer, head)  # nothing drawn since
        assert text_of(app, "#map-status") == f"input {e + 2} is still being read: export it once its maps show"
        assert not (tmp_path / "exports").exists()
        release.set()
        await settle(pilot)
        assert screen.shown_key == (RUN, e + 1) and shows(app, store, e + 1, s.layer, s.head)
        context = text_of(app, "#map-context")
        assert "reading" not in context and f"L={store.maps(RUN, 'finetuned').example(e + 1).shape[-1]}" in context
