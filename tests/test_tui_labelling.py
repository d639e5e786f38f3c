"""The labelling screen's classes: block is neither offered nor stored on a map of an input of one sentence."""

from __future__ import annotations

import pytest

from bertsecrets.store.labels import Labels
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.screens.labelling import NO_BLOCK
from bertsecrets.tui.widgets.keybar import KeyBar
from conftest import settle, text_of
from test_tui_stores import handmade_store


def offered(app) -> tuple[list[str], list[str]]:
    """The classes the side list shows (the word after each key number) and the key bar's entries."""
    side = [line.split()[1] for line in text_of(app, "#label-side").splitlines()[1:] if line.split()[0].isdigit()]
    return side, [f"{i.shown} {i.description}" for i in app.screen.query_one(KeyBar).items()]


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
        await settle(pilot, "4")
        assert stored(store) == [(first.role, first.example, first.layer, first.head, "block")]
        assert screen.shown != first and NO_BLOCK not in [n.message for n in app._notifications]
