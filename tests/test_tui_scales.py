"""Fixed colour ranges for differences: the steps, the grids they recolour, and the keys on the grid screens."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.scales import SPANS, fixed, nearest, range_words, stepped
from bertsecrets.tui.stats import Grid, points
from bertsecrets.tui.widgets.grid import HeadGrid
from conftest import settle
from test_tui_layout import screen_lines
from test_tui_stores import handmade_store

SIZES = [(80, 24), (60, 20)]


def test_the_first_press_fixes_the_nearest_step_then_each_press_moves_one():
    assert nearest(0.04) == SPANS.index(0.05) and nearest(0.03) == SPANS.index(0.02)  # log scale: 0.03 nearer 0.02
    assert nearest(1e-6) == 0 and nearest(7.0) == len(SPANS) - 1
    assert stepped(None, 0.04, +1) == 0.05 and stepped(None, 0.04, -1) == 0.05
    assert stepped(0.05, 0.04, +1) == 0.1 and stepped(0.05, 0.04, -1) == 0.02
    assert stepped(1.0, 0.04, +1) == 1.0 and stepped(0.001, 0.04, -1) == 0.001


def test_a_fixed_range_recolours_differences_only():
    values = np.array([[0.004, -0.002], [0.001, np.nan]])
    diff = Grid(values, "div", -0.004, 0.004, fmt=points)
    loud = fixed(diff, None)
    assert loud is diff and range_words(diff, None) == "fitted (< >)"
    quiet = fixed(diff, 0.5)
    assert (quiet.low, quiet.high) == (-0.5, 0.5) and quiet.values is values
    assert range_words(quiet, 0.5) == "fixed ±50.0 (0)"
    # On ±0.5 a difference of 0.004 is next to the middle colour; fitted, it is the end of the scale.
    from bertsecrets.tui import palette as palettes
    pal = palettes.diverging(False)
    middle = pal.n // 2
    assert pal.levels(values, quiet.low, quiet.high)[0, 0] - middle <= 1
    assert pal.levels(values, loud.low, loud.high)[0, 0] == pal.n - 1
    seq = Grid(values, "seq", 0.0, 1.0)
    assert fixed(seq, 0.5) is seq and range_words(seq, 0.5) == ""


@pytest.fixture
def store(tmp_path):
    return handmade_store(tmp_path / "s", n_examples=4, n_layers=3, n_heads=6)


def legend_ends(widget: HeadGrid) -> tuple[float, float]:
    return widget.grid.low, widget.grid.high


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "60x20"])
async def test_ablation_and_grid_screens_fix_the_range_of_the_disabling_effect(store, size):
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "a")
        widget = app.screen.query_one(HeadGrid)
        fitted = float(np.nanmax(np.abs(widget.grid.values)))
        assert legend_ends(widget) == (-fitted, fitted) and widget.border_subtitle == "fitted (< >)"
        await settle(pilot, "greater_than_sign")
        assert legend_ends(widget) == (-SPANS[nearest(fitted)], SPANS[nearest(fitted)])
        await settle(pilot, "greater_than_sign", "greater_than_sign")
        span = SPANS[nearest(fitted) + 2]
        assert legend_ends(widget) == (-span, span) and widget.border_subtitle == f"fixed ±{100 * span:.1f} (0)"
        # The legend prints the fixed ends, in points as the cells are.
        assert any(f"-{100 * span:.1f}" in line and f"+{100 * span:.1f}" in line for line in screen_lines(app))
        await settle(pilot, "0")
        assert legend_ends(widget) == (-fitted, fitted)

        await settle(pilot, "g")  # the head grid, on the disabling effect: its own range, fixed the same way
        screen = app.screen
        while screen.stat.key != "ablation":
            await settle(pilot, "c")
        grid = screen.query_one(HeadGrid)
        await settle(pilot, "less_than_sign", "less_than_sign")
        span = SPANS[nearest(fitted) - 1]
        assert legend_ends(grid) == (-span, span)
        assert all(len(line.rstrip()) <= size[0] for line in screen_lines(app))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "60x20"])
async def test_features_fix_the_range_of_the_difference_grid_only(store, size):
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "f")
        grids = {name: app.screen.query_one(f"#feature-{name}", HeadGrid)
                 for name in ("pretrained", "finetuned", "difference")}
        before = {name: legend_ends(g) for name, g in grids.items()}
        await settle(pilot, "greater_than_sign", "greater_than_sign")
        fitted = before["difference"][1]
        span = SPANS[nearest(fitted) + 1]
        assert legend_ends(grids["difference"]) == (-span, span)
        assert legend_ends(grids["pretrained"]) == before["pretrained"]
        assert legend_ends(grids["finetuned"]) == before["finetuned"]
        await settle(pilot, "x")  # another feature keeps the fixed range: colours compare across features
        assert legend_ends(grids["difference"]) == (-span, span)
        await settle(pilot, "0")
        assert grids["difference"].border_subtitle == "fitted (< >)"
