"""The Model view under Pilot: a sheet read for an input, model or run the cursor has left is not shown."""

from __future__ import annotations

import threading

import numpy as np

from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.widgets.thumbnails import Thumbnails
from conftest import settle, text_of
from test_tui_stores import handmade_store

RUN = "run-handmade0001"


def shows(app, store, role: str, example: int) -> bool:
    """The sheet, the screen's maps and its top line are those stored for ``role``'s model on input ``example``."""
    want = store.maps(RUN, role).example(example)
    screen = app.screen
    context = text_of(app, "#model-context")
    return (np.array_equal(screen.maps, want) and np.allclose(screen.query_one(Thumbnails).maps, want)
            and f"input {example + 1}/4 · L={want.shape[-1]} · {role}" in context)


async def test_a_sheet_read_for_an_input_model_or_run_the_cursor_has_left_is_not_shown(tmp_path):
    store = handmade_store(tmp_path / "store")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "o")
        screen, e = app.screen, app.selection.example
        assert app.current_mode == "model" and app.selection.role == "finetuned" and shows(app, store, "finetuned", e)
        stale = np.full((2, 5, 99, 99), 7.0, dtype=np.float32)  # of no input of the store: 99 pieces long
        for key in ((RUN, "finetuned", e + 1), (RUN, "pretrained", e), ("run-handmade0002", "finetuned", e)):
            screen.maps_loaded(Loaded("maps", (key, stale)))
            screen.on_loaded(Loaded("maps", error="StoreCorrupt: a failed read of what the cursor left", read_key=key))
        await pilot.pause()
        assert screen.maps_key == (RUN, "finetuned", e) and shows(app, store, "finetuned", e)
        assert "failed read" not in text_of(app, "#model-context") + text_of(app, "#model-status")
        assert "L=99" not in text_of(app, "#model-context")
        await settle(pilot, "n")  # the next input: its own sheet
        assert app.selection.example == e + 1 and shows(app, store, "finetuned", e + 1)
        await settle(pilot, "t")  # the other model: its own sheet
        assert app.selection.role == "pretrained" and shows(app, store, "pretrained", e + 1)


async def test_while_the_next_inputs_sheet_is_read_the_lines_say_so_instead_of_describing_the_old_one(tmp_path):
    store = handmade_store(tmp_path / "store")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "o")
        e, head = app.selection.example, app.selection.head
        reader, release = app.reader, threading.Event()
        example = reader.example

        def slow(run_id, role, n):  # the next input's read waits until the test lets it go
            if n == e + 1:
                release.wait(10)
            return example(run_id, role, n)

        reader.example = slow
        await pilot.press("n", "right")  # the next input, then the head beside the cursor's
        await pilot.pause()
        s = app.selection
        assert (s.example, s.head) == (e + 1, head + 1)
        context, status = text_of(app, "#model-context"), text_of(app, "#model-status")
        assert f"input {e + 2}/4 · finetuned · reading…" in context and "L=" not in context
        assert status == f"layer {s.layer + 1} head {s.head + 1}"  # no maximum of the old input's map
        assert app.screen.maps_key == (RUN, "finetuned", e)  # the sheet still holds the input left
        release.set()
        await settle(pilot)
        assert shows(app, store, "finetuned", e + 1) and "reading" not in text_of(app, "#model-context")
        assert f"layer {s.layer + 1} head {s.head + 1} · max" in text_of(app, "#model-status")
