"""Snapshots of the main screens at 80 x 24 (and 60 x 20) in 256 colours, on a hand-made store with known maps.

Update after a deliberate change of the look with `pytest tests/test_tui_snapshots.py --snapshot-update`
and check the pictures in snapshot_report.html.
"""

from __future__ import annotations

import time

import pytest

from textual.widgets import Input

from bertsecrets.tui.app import BrowseApp
from conftest import settle
from test_tui_stores import handmade_store

SIZE = (80, 24)


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("BERTSECRETS_USER", "snapshot")
    # A query's time is printed once it passes a second, which a loaded machine can reach: never in pictures.
    from bertsecrets.tui.screens import sql
    monkeypatch.setattr(sql, "SLOW_SECONDS", float("inf"))
    yield BrowseApp(handmade_store(tmp_path / "store", n_examples=4, n_layers=3, n_heads=6), truecolor=False)
    monkeypatch.delenv("TZ")
    time.tzset()


def keys(*pressed: str):
    """Press keys, letting every store read finish after each, so the picture never catches a half-loaded screen."""
    async def run(pilot) -> None:
        await settle(pilot)
        for key in pressed:
            await settle(pilot, key)
        for box in pilot.app.screen.query(Input):  # a blinking cursor would make the picture random
            box.cursor_blink = False
        for _ in range(3):  # tables size their columns on the refresh after their rows arrive
            await pilot.pause(0.05)
    return run


@pytest.mark.parametrize("name,pressed", [
    ("runs", ()),
    ("head_grid", ("enter", "down", "right")),
    ("map", ("m", "n", "right_square_bracket", "down", "down", "right")),
    ("map_all_panes", ("m", "v", "right_square_bracket")),
    ("model", ("o", "right", "down")),
    ("labelling", ("l",)),
    ("features", ("f", "x")),
    ("ablation", ("a", "right", "right")),
    ("sql", ("s", "tab", "tab", "down", "enter")),
    ("help", ("m", "question_mark")),
])
def test_screen(snap_compare, app, name, pressed):
    assert snap_compare(app, terminal_size=SIZE, run_before=keys(*pressed))


@pytest.mark.parametrize("name,pressed", [
    ("runs", ()),
    ("map", ("m", "n", "right_square_bracket", "down", "down", "right")),
    ("map_zoomed_out", ("m", "minus")),
    ("model", ("o", "right", "down")),
    ("ablation_seeds_sorted", ("a", "o", "o")),
    ("help", ("m", "question_mark")),
])
def test_screen_at_60_by_20(snap_compare, app, name, pressed):
    """The smallest terminal the screens are laid out for."""
    assert snap_compare(app, terminal_size=(60, 20), run_before=keys(*pressed))


def test_too_small(snap_compare, app):
    assert snap_compare(app, terminal_size=(59, 20), run_before=keys("m"))


@pytest.mark.parametrize("size", [(80, 24), (60, 20)], ids=["80x24", "60x20"])
@pytest.mark.parametrize("name,pressed", [
    # "bank" in layer 2, head 5: spread before fine-tuning, on [CLS] after
    ("sentence", ("w", "right", "right", *["right_square_bracket"] * 4, "right_curly_bracket")),
    # "its" joined from "it ##s", what attends to it in a previous-token head, values printed
    ("sentence_words_gets", ("w", "j", "t", "right_square_bracket", "d", "end", "left", "left", "left", "v")),
    ("labelling_references", ("l",)),
])
def test_new_views(snap_compare, tmp_path, monkeypatch, name, pressed, size):
    from test_tui_labelling_references import with_confidences
    from test_tui_sentence import store_with_words

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("BERTSECRETS_USER", "snapshot")
    store = store_with_words(tmp_path / "store")
    with_confidences(store)
    app = BrowseApp(store, truecolor=False)
    assert snap_compare(app, terminal_size=size, run_before=keys(*pressed))
    monkeypatch.delenv("TZ")
    time.tzset()


def typed(text: str) -> tuple[str, ...]:
    return tuple("space" if ch == " " else ch for ch in text)


@pytest.mark.parametrize("size", [(80, 24), (60, 20)], ids=["80x24", "60x20"])
@pytest.mark.parametrize("name,pressed", [
    # a result beside the tree, a column highlighted with its words (ctrl+b shows the tree at 60 columns)
    ("sql_tree", (*typed("SELECT task, setup, f1 FROM runs"), "enter", "ctrl+b", "enter", "down", "down", "down",
                  "down")),
    # the dropdown of names starting with "se", the query's table first
    ("sql_completion", typed("SELECT * FROM tokens WHERE se")),
    ("sql_export", (*typed("SELECT * FROM runs"), "enter", "ctrl+s")),
    ("sql_error", (*typed("SELECT * FROM runs"), "enter", *typed(" WHERE nope"), "enter")),
])
def test_sql_views(snap_compare, app, monkeypatch, name, pressed, size):
    from pathlib import Path

    from bertsecrets.tui.screens import sql

    monkeypatch.setattr(sql, "default_path", lambda: Path("/home/me/bertsecrets-exports/sql-20240501-120000.csv"))
    if size[0] >= sql.TREE_FROM_WIDTH and name == "sql_tree":
        pressed = tuple(k for key in pressed for k in ((key, key) if key == "ctrl+b" else (key,)))  # hide, show
    assert snap_compare(app, terminal_size=size, run_before=keys("s", *pressed))


@pytest.mark.parametrize("size", [(80, 24), (60, 20)], ids=["80x24", "60x20"])
@pytest.mark.parametrize("name,pressed", [
    # the difference grid on a fixed ±0.5, the two models on their shared fitted range
    ("features_fixed_range", ("f", "greater_than_sign")),
    # the disabling effect on ±10 points instead of its fitted ±4
    ("ablation_fixed_range", ("a", "greater_than_sign", "greater_than_sign")),
])
def test_fixed_ranges(snap_compare, app, name, pressed, size):
    assert snap_compare(app, terminal_size=size, run_before=keys(*pressed))
