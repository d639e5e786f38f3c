"""The Head grid screen: layers x heads of a run coloured by one statistic, the head's numbers beside."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from bertsecrets.tui import export
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.reader import HEAD_TABLES, RunStats
from bertsecrets.tui.scales import RANGE_BINDINGS, FixedRange, fixed, range_words
from bertsecrets.tui.screens.base import StoreScreen
from bertsecrets.tui.stats import STATS, Grid, HeadStat, head_details, options_of, stat_grid
from bertsecrets.tui.widgets.grid import HeadGrid


def legend(grid: Grid) -> str:
    """What the colours mean (the grid draws the scale's range itself)."""
    return escape(grid.note)


class HeadGridScreen(FixedRange, StoreScreen):
    """Every head of the run as a cell coloured by the chosen statistic; Enter opens its map."""

    PLACE = "heads"
    DEPENDS = HEAD_TABLES
    BINDINGS = [
        Binding("c", "stat(1)", "statistic", key_display="c/C", tooltip="next statistic"),
        Binding("C", "stat(-1)", "previous statistic", show=False),
        Binding("x", "option(1)", "choice", key_display="x/X", tooltip="next choice within the statistic"),
        Binding("X", "option(-1)", "previous choice", show=False),
        Binding("t", "role", "pre/fine-tuned"),
        Binding("e", "export", "export"),
        *RANGE_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.stats: RunStats | None = None
        self.stat: HeadStat = STATS[0]
        self.option: str | None = None
        self._chosen_once = False
        self.fitted: Grid | None = None  # the grid before a fixed range is applied

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("", id="heads-context", classes="context")
        with Horizontal():
            with Vertical(id="heads-main"):
                yield HeadGrid(id="heads-grid")
                yield Static("", id="heads-legend", classes="note")
            yield Static("", id="heads-details", classes="side")
        yield from self.compose_footer()

    def reload(self) -> None:
        grid = self.query_one(HeadGrid)
        if self.selection.run_id is None:
            grid.show_message(self.no_run())
            return
        self.load("stats", self.reader.run_stats, self.selection.run_id)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        grid = self.query_one(HeadGrid)
        grid.move_cursor(self.selection.layer, self.selection.head, announce=False)
        grid.focus()

    def on_loaded(self, message: Loaded) -> None:
        grid = self.query_one(HeadGrid)
        if message.error:
            grid.show_message(message.error)
            return
        self.stats = message.value
        if not self._chosen_once:  # open on the first statistic that has data
            self._chosen_once = True
            self.stat = next((s for s in STATS if stat_grid(s, self.stats, None, self.selection.role)[0]), self.stat)
        self._draw()

    def _draw(self) -> None:
        grid_widget = self.query_one(HeadGrid)
        stats, role = self.stats, self.selection.role
        if stats is None:
            return
        self.fitted, self.option = stat_grid(self.stat, stats, self.option, role)
        grid = None if self.fitted is None else fixed(self.fitted, self.span)
        grid_widget.border_subtitle = "" if grid is None else range_words(grid, self.span)
        what = self.stat.title + (f": {self.option}" if self.option else "") + (f" ({role})" if self.stat.by_role else "")
        self.query_one("#heads-context", Static).update(
            f"colour: [b]{escape(what)}[/] · {escape(stats.task.upper())} · {stats.n_layers} layers x {stats.n_heads} heads · "
            f"{escape(stats.run_id)}"
        )
        if grid is None:
            grid_widget.show_message(self.stat.missing(stats.task))
            self.query_one("#heads-legend", Static).update("c: another statistic")
        else:
            grid_widget.show(grid)
            grid_widget.move_cursor(self.selection.layer, self.selection.head, announce=False)
            self.query_one("#heads-legend", Static).update(legend(grid))
        self._describe(grid)

    def _describe(self, grid: Grid | None) -> None:
        stats = self.stats
        if stats is None:
            return
        layer, head, role = self.selection.layer, self.selection.head, self.selection.role
        lines = [f"[b]layer {layer + 1} · head {head + 1}[/] ({role})"]
        if grid is not None and layer < grid.values.shape[0] and head < grid.values.shape[1]:
            value = grid.values[layer, head]
            shown = (grid.text[layer][head] if grid.text else grid.fmt(float(value))) if value == value else "-"
            lines.append(f"[b]{escape(self.stat.title)}: {escape(shown)}[/]")
        lines += [f"{escape(name)}: {escape(text)}" for name, text in head_details(stats, layer, head, role)]
        self.query_one("#heads-details", Static).update("\n".join(lines))

    def on_head_cursor_moved(self, message: HeadGrid.Moved) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self._describe(self.query_one(HeadGrid).grid)

    def on_head_cursor_chosen(self, message: HeadGrid.Chosen) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self.app.action_goto("map")

    def action_stat(self, step: int) -> None:
        self.stat = STATS[(STATS.index(self.stat) + step) % len(STATS)]
        self.option = None
        self._draw()

    def action_option(self, step: int) -> None:
        if self.stats is None:
            return
        options = options_of(self.stat, self.stats, self.selection.role)
        if options:
            current = options.index(self.option) if self.option in options else 0
            self.option = options[(current + step) % len(options)]
            self._draw()

    def action_role(self) -> None:
        self.app.select(role="pretrained" if self.selection.role == "finetuned" else "finetuned")
        self._draw()

    def fitted_span(self) -> float | None:
        return self.fitted.high if self.fitted is not None and self.fitted.kind == "div" else None

    def draw_range(self) -> None:
        self._draw()

    def action_export(self) -> None:
        """The grid on screen as PNG and SVG; the paths go under its legend."""
        export.from_grid_screen(self)
