"""The browser at 80 x 24 and 60 x 20 (and 155 x 42 for fit): what must stay visible, fit, and be said in place.

Each test drives the app with Pilot on a hand-made store whose inputs are long
(62 tokens, 6 layers x 12 heads, as real MRPC pairs are), and checks the
screen as a terminal would show it: the text of every line, and where the
cursor is against the part of a scrolled widget that is in view.
"""

from __future__ import annotations

import io
import math
import re
import shutil

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console
from textual.geometry import Region
from textual.widgets import DataTable, Static

import test_tui_stores
from bertsecrets.store import Store
from bertsecrets.tui.app import BrowseApp
from bertsecrets.tui.keys import PLACES
from bertsecrets.tui.screens.base import MIN_HEIGHT, MIN_WIDTH
from bertsecrets.tui.widgets.heatmap import FIT_MAX_ZOOM, GUTTER, Heatmap
from bertsecrets.tui.widgets.keybar import KeyBar
from bertsecrets.tui.widgets.legend import legend_width
from bertsecrets.tui.widgets.thumbnails import Thumbnails
from conftest import settle, text_of

SIZES = [(80, 24), (60, 20)]
WORDS = "the bank said it bought the report and sold its shares of the company yesterday in the city".split()
LONG_TOKENS = ["[CLS]", *(WORDS * 4)[:60], "[SEP]"]


@pytest.fixture(scope="module")
def long_store(tmp_path_factory):
    """A run of 6 layers x 12 heads whose inputs have 62, 60 and 58 tokens."""
    patch = pytest.MonkeyPatch()
    patch.setattr(test_tui_stores, "TOKENS", LONG_TOKENS)
    try:
        return test_tui_stores.handmade_store(tmp_path_factory.mktemp("long") / "store", n_examples=3, n_layers=6,
                                              n_heads=12)
    finally:
        patch.undo()


@pytest.fixture
def short_store(tmp_path):
    return test_tui_stores.handmade_store(tmp_path / "store", n_examples=4, n_layers=3, n_heads=6)


def screen_lines(app) -> list[str]:
    """The terminal's lines as plain text, as the user sees them."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="256",
                      record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens, simplify=True))
    return console.export_text(styles=False).splitlines()


def in_view(widget, region: Region, top: int, left: int, bottom: int = 0) -> bool:
    """Whether ``region`` (the widget's virtual space) is inside what it shows, clear of its fixed labels."""
    view = widget.scrollable_content_region
    sx, sy = widget.scroll_offset
    window = Region(sx + left, sy + top, view.width - left, view.height - top - bottom)
    return window.contains_region(region)


# -- following the cursor ---------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_the_model_sheet_follows_the_selected_head(long_store, size):
    app = BrowseApp(long_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "o")
        sheet = app.screen.query_one(Thumbnails)
        if size == (80, 24):
            await settle(pilot, "plus", "plus")  # 12 heads of 8-cell thumbnails: wider than the terminal
        await settle(pilot, *["down"] * 5, *["right"] * 11)
        await pilot.pause(0.1)
        assert sheet.cursor == (5, 11) and (app.selection.layer, app.selection.head) == (5, 11)
        assert sheet.virtual_size.width > sheet.size.width and sheet.show_horizontal_scrollbar
        assert sheet.show_vertical_scrollbar or sheet.virtual_size.height <= sheet.size.height
        assert in_view(sheet, sheet.cursor_region(), top=1, left=4, bottom=1)
        # The frame of the selected head is on screen: "▐" on its left, in the layer's rows.
        assert any("▐" in line for line in screen_lines(app))
        await settle(pilot, *["up"] * 5, *["left"] * 11)
        await pilot.pause(0.1)
        assert sheet.cursor == (0, 0) and in_view(sheet, sheet.cursor_region(), top=1, left=4, bottom=1)


@pytest.mark.parametrize("size", SIZES)
async def test_the_map_keeps_its_cursor_in_view_when_zoomed(long_store, size):
    app = BrowseApp(long_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "m", "0", *["down"] * 14, "plus", "plus")
        await pilot.pause(0.1)
        pane = app.screen.query_one("#finetuned", Heatmap)
        assert pane.cursor == (14, 0) and pane.placement.size >= pane.n  # zoomed to a cell per token or more
        assert "query 14 company" in text_of(app, "#map-status")
        layout = pane.placement
        assert in_view(pane, pane.cursor_region(), top=layout.header, left=layout.gutter, bottom=layout.legend_row)
        await settle(pilot, *["down"] * 40, *["right"] * 50)
        await pilot.pause(0.1)
        assert pane.cursor == (54, 50)
        assert in_view(pane, pane.cursor_region(), top=layout.header, left=layout.gutter, bottom=layout.legend_row)


# -- nothing drawn over a border ---------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_heatmap_lines_never_run_past_their_pane(long_store, size):
    app = BrowseApp(long_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "m", "v")  # all three panes
        for zoom in ("0", "minus", "plus", "plus"):
            await settle(pilot, zoom)
            for pane in app.screen.query(Heatmap):
                if not pane.display:
                    continue
                width = pane.scrollable_content_region.width
                for y in range(pane.scrollable_content_region.height):
                    strip = pane.render_line(y)
                    assert sum(cell_len(seg.text) for seg in strip) == width, (pane.id, zoom, y)
        # The panes' right borders are intact on every row between their top and bottom corners.
        lines = screen_lines(app)
        top = next(i for i, line in enumerate(lines) if line.count("╭") == 3)
        bottom = next(i for i, line in enumerate(lines) if line.count("╰") == 3)
        assert all(line.rstrip().endswith("│") for line in lines[top + 1: bottom])
        await settle(pilot, "l")  # the labelling screen's map, of a 58- to 62-token input
        pane = app.screen.query_one(Heatmap)
        assert pane.matrix is not None and pane.n >= 58
        width = pane.scrollable_content_region.width
        for y in range(pane.scrollable_content_region.height):
            assert sum(cell_len(seg.text) for seg in pane.render_line(y)) == width, ("label", y)


# -- the help --------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_help_keys_line_up_and_descriptions_wrap_under_themselves(long_store, size):
    app = BrowseApp(long_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "m", "question_mark")
        help_box = app.screen.query_one("#help")
        rows, wrapped = {}, []
        for y in range(0, help_box.max_scroll_y + 1, 3):  # the whole help, a few lines at a time
            help_box.scroll_to(y=y, animate=False, immediate=True)
            await pilot.pause()
            lines = screen_lines(app)
            for i, line in enumerate(lines):
                if m := re.search(r"│\s+([\[\]{}<>0c])\s+(\S)", line):
                    rows[m.group(1)] = m.start(2)
                    box = line.rfind("│", 0, m.start(1))
                    if m.group(1) == "c" and i + 1 < len(lines) and lines[i + 1][box] == "│":
                        wrapped.append((box, lines[i + 1]))
        assert {"[", "]", "{", "}", "<", ">", "0", "c"} <= set(rows), rows
        assert len(set(rows.values())) == 1  # every description starts in one column, `[` included
        column = rows["c"]
        box, after = wrapped[0]  # the description of `c` wraps: its next line starts under it, not at the edge
        assert after[box] == "│" and after[box + 1:column].strip() == "" and after[column] != " ", after


# -- footers and the nav bar --------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_footers_show_whole_keys_and_at_80_columns_every_key_of_the_screen(long_store, size):
    app = BrowseApp(long_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        for place in PLACES:
            await settle(pilot, place.key if place.mode != "sql" else "s")
            bar = app.screen.query_one(KeyBar)
            text = screen_lines(app)[-1].rstrip()
            items = bar.items()
            shown = [i for i in items if f"{i.shown} {i.description}" in text]
            # What is printed is exactly the chosen keys, whole, one space apart, never cut at the edge.
            assert text.strip() == " ".join(f"{i.shown} {i.description}" for i in shown), (place.mode, text)
            assert any(i.action == "help" for i in shown), place.mode
            if size[0] >= 80 and place.mode not in ("label", "sql"):
                assert {i.action for i in items if not i.from_app and not i.last} <= {i.action for i in shown}, \
                    (place.mode, text)
            # The task and seed keys come last: each one left out would not have fitted in the room left.
            room = size[0] - len(text.strip())
            assert all(i.width + 1 > room for i in items if i.last and i not in shown), (place.mode, text)
            if place.mode == "sql":
                await settle(pilot, "escape")


@pytest.mark.parametrize("size", SIZES)
async def test_the_nav_bar_names_every_screen(long_store, size):
    app = BrowseApp(long_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        first = screen_lines(app)[0]
        assert len(first.rstrip()) <= size[0]
        words = first.split()
        assert all(p.key in words for p in PLACES), first
        assert "Runs" in words  # the current screen keeps its title however narrow


@pytest.mark.parametrize("size", [(MIN_WIDTH - 1, MIN_HEIGHT), (MIN_WIDTH, MIN_HEIGHT - 1), (40, 12)])
async def test_a_too_small_terminal_gets_one_line_saying_so(long_store, size):
    app = BrowseApp(long_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "m")
        text = [line.strip() for line in screen_lines(app) if line.strip()]
        assert text == [f"terminal too small ({size[0]} x {size[1]}): bertsecrets needs {MIN_WIDTH} x {MIN_HEIGHT}"] \
            or (size[0] < 50 and "too small" in text[0])
        await pilot.resize_terminal(MIN_WIDTH, MIN_HEIGHT)
        await settle(pilot)
        assert not any("too small" in line for line in screen_lines(app))
        assert app.screen.query_one("#finetuned", Heatmap).display


# -- runs ---------------------------------------------------------------------------


def copy_without(store: Store, tmp_path, *tables: str) -> Store:
    copy = Store.open(shutil.copytree(store.root, tmp_path / "copy"))
    for table in tables:
        for part in copy.catalog.parts(table):
            copy.catalog.delete(table, part)
    return copy


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("missing,status", [((), "done"), (("pruning",), "▷ pruning"),
                                            (("ablation", "head_importance", "pruning"), "▷ ablation"),
                                            (("head_stats", "classifiers", "ablation"), "▷ analyses")])
async def test_runs_show_the_steps_after_the_maps_and_a_whole_start_time(short_store, tmp_path, size, missing, status):
    store = copy_without(short_store, tmp_path, *missing)
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        rows = {table.get_row_at(i)[labels.index("set-up")].plain: [str(c) for c in table.get_row_at(i)]
                for i in range(table.row_count)}
        assert rows["fine-tuned"][labels.index("status")] == status
        assert rows["not tuned"][labels.index("status")] == "done"  # no maps, no steps after them
        assert rows["fine-tuned"][labels.index("started")] == "05-01 12:00"
        # The columns fit the screen: the start time is printed whole, not cut at the edge.
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= table.size.width
        assert any("05-01 12:00" in line for line in screen_lines(app))
        detail = text_of(app, "#run-detail")
        if missing:
            assert f"{missing[-1] if missing[0] == 'pruning' else ''}" in detail and "–" in detail
            assert ("bertsecrets analyze mrpc" if "head_stats" in missing else "bertsecrets ablate mrpc") in detail


# -- ablation ----------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_empty_seeds_say_what_to_run_and_the_sorted_column_is_marked(short_store, tmp_path, size):
    store = copy_without(short_store, tmp_path, "ablation_seeds")
    app = BrowseApp(store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "a", *["right_square_bracket"] * 4)
        assert app.screen.query_one("#ablation-tabs").active == "tab-seeds"
        note = app.screen.query_one("#ablation-seeds-empty", Static)
        assert note.display and not app.screen.query_one("#ablation-seeds", DataTable).display
        assert "bertsecrets ablate mrpc --seeds 3" in str(note.render())
        assert "bertsecrets ablate mrpc --seeds 3" in " ".join(line.strip() for line in screen_lines(app))

        await settle(pilot, "o", "o")  # the table of every row, sorted by its second column
        table = app.screen.query_one("#ablation-all", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[1] == "layer ▲" and sum("▲" in label or "▼" in label for label in labels) == 1
        layers = [table.get_row_at(i)[1] for i in range(table.row_count)]
        assert layers == sorted(layers, key=lambda v: (v == "-", int(v) if v != "-" else 0))
        app.screen.on_data_table_header_selected(DataTable.HeaderSelected(table, table.ordered_columns[1].key, 1,
                                                                          table.ordered_columns[1].label))
        await settle(pilot)
        assert [str(c.label) for c in table.columns.values()][1] == "layer ▼"


# -- the map's fit, labels and colour scales -------------------------------------------


def largest_fitting(n: int, width: int, height: int, legend: int) -> int:
    """The biggest square map (cells) that fits with a 9-column gutter, one header row and the legend, by trial."""
    best = 0
    for size in range(1, FIT_MAX_ZOOM * n + 1):
        lines = math.ceil(size / 2)
        beside = GUTTER + size + legend + 1 <= width and 1 + lines <= height
        below = GUTTER + size <= width and 1 + lines + 1 <= height
        if beside or below:
            best = size
    return best


@pytest.mark.parametrize("size", [(155, 42), (80, 24), (60, 20)])
@pytest.mark.parametrize("which", ["long", "short"])
async def test_fit_is_the_largest_map_that_fits_its_pane(long_store, short_store, size, which):
    app = BrowseApp(long_store if which == "long" else short_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "m")
        pane = app.screen.query_one("#finetuned", Heatmap)
        width, height = pane.size
        layout = pane.placement
        legend = legend_width(pane.palette, pane.low, pane.high)
        assert layout.size == largest_fitting(pane.n, width, height, legend) > 0
        # All of it is in view: nothing to scroll.
        assert layout.gutter + layout.size <= width and layout.header + layout.lines + layout.legend_row <= height
        assert pane.max_scroll_x == 0 and pane.max_scroll_y == 0
        if size == (155, 42) and which == "long":  # the long input's map fills the pane's height (its tighter side)
            assert layout.header + layout.lines + layout.legend_row >= height - 1


def header_columns(pane: Heatmap) -> list[str]:
    """What the key header spells down each token's first column."""
    layout = pane.placement
    rows = ["".join(seg.text for seg in pane.render_line(y))[layout.gutter:] for y in range(layout.header)]
    from bertsecrets.tui.widgets.heatmap import cells_of
    return ["".join(row[cells_of(k, pane.n, layout.size)[0]] for row in rows).rstrip() for k in range(pane.n)]


@pytest.mark.parametrize("size", SIZES)
async def test_tokens_are_spelled_whole_where_the_zoom_leaves_room(short_store, size):
    app = BrowseApp(short_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "m", "0", "minus")  # one cell per token: rows to spare below the map
        pane = app.screen.query_one("#finetuned", Heatmap)
        tokens = pane.tokens
        layout = pane.placement
        assert layout.size == pane.n
        # The header takes the rows the map leaves, as many as the longest key needs.
        rows_left = pane.size.height - layout.lines - layout.legend_row
        assert layout.header == max(1, min(max(len(t) for t in tokens), rows_left))
        if size == (80, 24):
            assert layout.header >= 5
        spelled = header_columns(pane)
        assert all(spelled[k] == t[:layout.header] for k, t in enumerate(tokens))
        if layout.header >= 6:  # every key of six letters or fewer whole
            assert all(s == t for s, t in zip(spelled, tokens) if len(t) <= 6)
        # Two tokens per line in the gutter, each whole when the gutter has room for them.
        gutters = ["".join(seg.text for seg in pane.render_line(y))[:layout.gutter].strip()
                   for y in range(layout.header, layout.header + layout.lines)]
        expected = ["·".join(tokens[2 * i: 2 * i + 2]) for i in range(layout.lines)]
        if layout.gutter > max(len(e) for e in expected):
            assert gutters == expected

        await settle(pilot, "plus")  # two cells per token: one token per line, each whole
        layout = pane.placement
        gutters = ["".join(seg.text for seg in pane.render_line(y))[:layout.gutter].strip()
                   for y in range(layout.header, pane.scrollable_content_region.height - layout.legend_row)]
        top = pane.scroll_offset.y
        assert gutters[: len(gutters)] == tokens[top: top + len(gutters)]
        await settle(pilot, "down", "down", "down", "right")
        status = text_of(app, "#map-status")
        assert f"query 3 {tokens[3]} → key 1 {tokens[1]}" in status


@pytest.mark.parametrize("size", SIZES)
async def test_colour_scales_are_printed_and_the_difference_can_be_fixed(long_store, size):
    app = BrowseApp(long_store, truecolor=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, "m", "v", "right_curly_bracket")  # all panes; layer 2 differs between the models
        diff = app.screen.query_one("#difference", Heatmap)
        biggest = float(np.abs(diff.matrix).max())
        assert biggest > 0 and diff.high == pytest.approx(biggest)

        def printed() -> str:
            return "\n".join(screen_lines(app))

        assert f"+{biggest:.3f}" in printed() and f"−{biggest:.3f}" in printed()
        await settle(pilot, "c")
        assert diff.high == 1.0 and "+1.000" in printed()
        await settle(pilot, "c")
        assert diff.high == pytest.approx(0.1) and "Δ ±0.100" in printed() and "+0.100" in printed()
        await settle(pilot, "less_than_sign")
        assert diff.high == pytest.approx(0.05) and "Δ ±0.050" in printed()
        await settle(pilot, "greater_than_sign", "greater_than_sign")
        assert diff.high == pytest.approx(0.2) and "+0.200" in printed()
        # The models' own panes stay on 0..1 meanwhile, their legends say so.
        assert app.screen.query_one("#finetuned", Heatmap).high == 1.0
        await settle(pilot, "c")  # back to each map's own range
        assert diff.high == pytest.approx(biggest)
