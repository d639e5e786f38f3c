"""The labelling screen's classes: block is neither offered, nor shown among the examples, nor stored on a map of an
input of one sentence; a label is stored only for the map shown, never for one still being read."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bertsecrets.core.errors import UserError
from bertsecrets.store.labels import PATTERN_CLASSES, Labels
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.sampling import MapKey
from bertsecrets.tui.screens import labelling as screen_module
from bertsecrets.tui.screens.labelling import NO_BLOCK, READING, UNREAD
from bertsecrets.tui.widgets.heatmap import Heatmap, clean
from bertsecrets.tui.widgets.keybar import KeyBar
from bertsecrets.tui.widgets.references import ClassReferences
from conftest import settle, text_of
from test_tui_stores import handmade_store


def offered(app) -> tuple[list[str], list[str]]:
    """The classes the side list shows (the word after each key number) and the key bar's entries."""
    side = [line.split()[1] for line in text_of(app, "#label-side").splitlines()[1:] if line.split()[0].isdigit()]
    return side, [f"{i.shown} {i.description}" for i in app.screen.query_one(KeyBar).items()]


def examples(app) -> tuple[list[str], int, str]:
    """The classes the examples panel titles, how many maps it holds, and its note."""
    widget = app.screen.query_one(ClassReferences)
    return widget.titles, widget.maps.shape[1], text_of(app, "#label-references-note")


def stored(store) -> list[tuple]:
    return [(r["role"], r["example"], r["layer"], r["head"], r["label"]) for r in Labels(store).all().to_pylist()]


@pytest.fixture
def labeller(monkeypatch):
    monkeypatch.setenv("BERTSECRETS_USER", "ada")
    return "ada"


async def test_block_is_neither_offered_nor_stored_on_a_map_of_one_sentence(tmp_path, labeller):
    store = handmade_store(tmp_path / "store", task="sst-2")  # every input of SST-2: one sentence
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        screen = app.screen
        first = screen.shown
        assert first is not None and screen.query_one("#label-map").matrix is not None
        assert not app.reader.two_sentences(first.run_id).any()  # no word piece of the second segment
        side, keys = offered(app)
        assert side == ["vertical", "diagonal", "vertical+diagonal", "heterogeneous"]
        assert "4 block" not in keys and {"1 vert", "2 diag", "3 v+d", "5 hetero"} <= set(keys)
        await settle(pilot, "4")
        assert screen.shown == first and screen.history == [] and screen.counts["block"] == [0, 0]
        assert stored(store) == []
        said = [n.message for n in app._notifications]
        assert said == [NO_BLOCK] and "\n" not in NO_BLOCK
        screen.action_label(3)  # the action itself refuses too, whatever calls it
        await settle(pilot)
        assert screen.shown == first and stored(store) == []
        await settle(pilot, "5")  # the other classes go on as before
        assert stored(store) == [(first.role, first.example, first.layer, first.head, "heterogeneous")]
        assert screen.shown != first and "4 block" not in offered(app)[1]


async def test_block_is_offered_and_stored_on_a_map_of_two_sentences(tmp_path, labeller):
    store = handmade_store(tmp_path / "store")  # MRPC: two sentences
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        screen = app.screen
        first = screen.shown
        assert app.reader.two_sentences(first.run_id).tolist() == [True] * 4
        side, keys = offered(app)
        assert side == ["vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous"]
        assert "4 block" in keys
        assert examples(app)[:2] == (list(PATTERN_CLASSES), 5)
        await settle(pilot, "4")
        assert stored(store) == [(first.role, first.example, first.layer, first.head, "block")]
        assert screen.shown != first and NO_BLOCK not in [n.message for n in app._notifications]


@pytest.mark.parametrize("rules_give_block", [True, False])
async def test_the_examples_panel_leaves_block_out_on_a_map_of_one_sentence(tmp_path, labeller, rules_give_block):
    """The rules never give block on SST-2 (the panel said "none block" and kept its slot empty); rule labels of
    block written before that rule still do not bring it back."""
    store = handmade_store(tmp_path / "store", task="sst-2")
    run_id = "run-handmade0001"
    rows = store.rows("SELECT * FROM map_classes WHERE run_id = ?", [run_id])
    assert any(r["source"] == "rules" and r["label"] == "block" for r in rows)
    if not rules_give_block:
        store.catalog.write("map_classes", run_id, [r for r in rows if r["label"] != "block"])
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        want = ["vertical", "diagonal", "vertical+diagonal", "heterogeneous"]
        assert set(app.screen.references) == set(PATTERN_CLASSES) - ({"block"} if not rules_give_block else set())
        titles, n_maps, note = examples(app)
        assert titles == want and n_maps == 4 and offered(app)[0] == want
        assert note == "examples: the rules' surest\neach coloured 0..its own maximum"
        await settle(pilot, "5", "1")  # the next maps: still no block
        assert examples(app) == (want, 4, note)


async def test_the_examples_panel_follows_the_number_of_sentences_of_each_map_in_the_queue(tmp_path, labeller):
    """Within one run: block's example is shown beside a map of two sentences and left out beside one of one."""
    store = handmade_store(tmp_path / "store")
    run_id = "run-handmade0001"
    tokens = store.rows("SELECT * FROM tokens WHERE run_id = ? ORDER BY example, position", [run_id])
    # Inputs 1 and 3 as one sentence (every word piece of the first segment); 0 and 2 keep their two.
    store.catalog.write("tokens", run_id, [{**r, "segment": r["segment"] if r["example"] % 2 == 0 else 0}
                                           for r in tokens])
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        screen, sentences = app.screen, []
        while screen.shown is not None and len(sentences) < 16:
            two = screen.shown.example % 2 == 0
            want = list(PATTERN_CLASSES) if two else [c for c in PATTERN_CLASSES if c != "block"]
            titles, n_maps, _ = examples(app)
            assert titles == want == offered(app)[0] and n_maps == len(want), screen.shown
            sentences.append(two)
            await settle(pilot, "space")
        # The queue went from maps of two sentences to one and back at least once each.
        changes = list(zip(sentences, sentences[1:]))
        assert (True, False) in changes and (False, True) in changes


def stored_map(store, key: MapKey) -> np.ndarray:
    return store.maps(key.run_id, key.role).head(key.example, key.layer, key.head)


def shows(app, store, key: MapKey) -> bool:
    """The heatmap holds ``key``'s stored map, with its input's word pieces, under ``key``'s header."""
    heatmap, context = app.screen.query_one(Heatmap), text_of(app, "#label-context")
    tokens = [clean(t) for t in app.reader.tokens(key.run_id)[key.example]]
    return (heatmap.matrix is not None and heatmap.matrix.shape == stored_map(store, key).shape
            and np.allclose(heatmap.matrix, stored_map(store, key), atol=1e-2) and heatmap.tokens == tokens
            and f"input {key.example + 1} · layer {key.layer + 1} · head {key.head + 1} · map" in context)


async def wait_saved(pilot) -> None:
    """Until the label writes are done (the map read held back keeps ``settle`` from returning)."""
    for _ in range(200):
        if not pilot.app.screen.saving:
            return
        await pilot.pause(0.02)
    raise AssertionError("the label was not written")


async def test_a_map_or_examples_read_for_an_item_the_queue_has_left_are_not_shown(tmp_path, labeller):
    """A read that lands late (the queue moved on meanwhile) must not be shown under the current item, where a label
    key would then store a label for a map the person did not see."""
    store = handmade_store(tmp_path / "store")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        screen = app.screen
        first, other = screen.queue[0], screen.queue[1]
        assert shows(app, store, first) and not np.allclose(stored_map(store, other)[:5, :5],
                                                            stored_map(store, first)[:5, :5])
        context = app.reader.context(first.run_id)
        stale = np.full((99, 99), 7.0, dtype=np.float32)  # of no map of the store: 99 pieces long
        for key in (other, MapKey("run-handmade0002", first.role, first.example, first.layer, first.head)):
            screen.on_loaded(Loaded("map", (key, (context, stale))))
            screen.on_loaded(Loaded("map", error="StoreCorrupt: a failed read of an item left", read_key=key))
        examples_before = examples(app)
        stale_examples = {c: ({"run_id": "run-handmade0002"}, stale) for c in PATTERN_CLASSES[:2]}
        screen.on_loaded(Loaded("references", ("run-handmade0002", stale_examples)))
        screen.on_loaded(Loaded("references", error="StoreCorrupt: a failed read of a run left",
                                read_key="run-handmade0002"))
        await pilot.pause()
        assert screen.map_key == first and shows(app, store, first) and not screen.map_failed
        assert set(screen.references) == set(PATTERN_CLASSES) and examples(app) == examples_before
        await settle(pilot, "1")  # the label is of the map shown
        assert stored(store) == [(first.role, first.example, first.layer, first.head, "vertical")]
        assert screen.shown == other and shows(app, store, other)


async def test_a_label_key_stores_nothing_while_the_current_map_is_read(tmp_path, labeller, monkeypatch):
    store = handmade_store(tmp_path / "store")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        screen, release = app.screen, threading.Event()
        first, second = screen.queue[0], screen.queue[1]
        read_map = screen_module.read_map

        def slow(reader, key):  # the second item's map waits until the test lets it go
            if key == second:
                release.wait(10)
            return read_map(reader, key)

        monkeypatch.setattr(screen_module, "read_map", slow)
        await pilot.press("1")  # labels the first map, then reads the second
        await wait_saved(pilot)
        assert stored(store) == [(first.role, first.example, first.layer, first.head, "vertical")]
        assert screen.shown == second and screen.map_key == first
        await pilot.press("2", "3")  # the first map still shows: these would be labels of a map not seen
        await wait_saved(pilot)
        assert stored(store) == [(first.role, first.example, first.layer, first.head, "vertical")]
        assert screen.shown == second and len(screen.history) == 1
        assert screen.counts["diagonal"] == [0, 0] and screen.counts["vertical+diagonal"] == [0, 0]
        assert [n.message for n in app._notifications] == [READING, READING] and "\n" not in READING
        assert "reading the map…" in text_of(app, "#label-context") and text_of(app, "#label-status") == ""
        release.set()
        await settle(pilot)
        assert shows(app, store, second) and "reading" not in text_of(app, "#label-context")
        assert text_of(app, "#label-status").startswith("query 0 ")
        await settle(pilot, "2")  # now labelling goes on
        assert stored(store)[-1] == (second.role, second.example, second.layer, second.head, "diagonal")
        assert screen.shown == screen.queue[2]


async def test_a_label_key_stores_nothing_on_a_map_that_could_not_be_read(tmp_path, labeller, monkeypatch):
    store = handmade_store(tmp_path / "store")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        screen = app.screen
        second = screen.queue[1]
        read_map = screen_module.read_map

        def failing(reader, key):
            if key == second:
                raise UserError("map damaged: run `bertsecrets check`")
            return read_map(reader, key)

        monkeypatch.setattr(screen_module, "read_map", failing)
        await settle(pilot, "space")  # skip the first map: the second one's read fails
        assert screen.shown == second and screen.query_one(Heatmap).message == "map damaged: run `bertsecrets check`"
        await settle(pilot, "1")
        assert stored(store) == [] and screen.shown == second and [n.message for n in app._notifications] == [UNREAD]
        await settle(pilot, "space", "1")  # skipped, the next map is labelled
        third = screen.queue[2]
        assert stored(store) == [(third.role, third.example, third.layer, third.head, "vertical")]
