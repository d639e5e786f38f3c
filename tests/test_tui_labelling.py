"""The labelling screen's classes: block is neither offered, nor shown among the examples, nor stored on a map of an
input of one sentence."""

from __future__ import annotations

import pytest

from bertsecrets.store.labels import PATTERN_CLASSES, Labels
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.screens.labelling import NO_BLOCK
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
