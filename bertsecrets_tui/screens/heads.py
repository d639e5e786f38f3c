"""The Head grid screen: layers x heads of a run coloured by one statistic, the head's numbers beside."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from bertsecrets.tui import export
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.reader import HEAD_TABLES, RunStats, SeedStats
from bertsecrets.tui.scales import RANGE_BINDINGS, FixedRange
from bertsecrets.tui.screens.base import SWITCH_BINDINGS, StoreScreen, SwitchRuns, task_seed
from bertsecrets.tui.stats import (OVER_SEEDS, OVER_WORDS, STATS, Grid, HeadStat, SeedGrid, head_details, options_of,
                                   seed_grid, short, stat_grid)
from bertsecrets.tui.widgets.grid import HeadGrid

#: What `v` goes through: the run's own values, then their mean and their spread over its configuration's seeds.
OVER = ("run", *OVER_SEEDS)


def legend(grid: Grid) -> str:
    """What the colours mean (the grid draws the scale's range itself)."""
    return escape(grid.note)


class HeadGridScreen(FixedRange, SwitchRuns, StoreScreen):
    """Every head of the run as a cell coloured by the chosen statistic (or its mean or spread over the seeds of the
    run's configuration); Enter opens its map."""

    PLACE = "heads"
    DEPENDS = HEAD_TABLES
    BINDINGS = [
        Binding("c", "stat(1)", "stat", key_display="c/C", tooltip="next statistic"),
        Binding("C", "stat(-1)", "previous statistic", show=False),
        Binding("x", "option(1)", "choice", key_display="x/X", tooltip="next choice within the statistic"),
        Binding("X", "option(-1)", "previous choice", show=False),
        Binding("t", "role", "pre/fine-tuned"),
        Binding("v", "over", "seeds", tooltip="this run's values, their mean over the seeds of its configuration, "
                "or their standard deviation"),
        Binding("e", "export", "export"),
        *RANGE_BINDINGS,
        *SWITCH_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.stats: RunStats | None = None
        self.stat: HeadStat = STATS[0]
        self.option: str | None = None
        self._chosen_once = False
        self.fitted: Grid | None = None  # the grid before a fixed range is applied
        self.over = "run"  # or the mean or spread over seeds (OVER)
        self.seed_stats: SeedStats | None = None
        self.seed_grid: SeedGrid | None = None
        self.run_fmt = short  # how one seed's value of the statistic is written
        self._seeds_key: tuple | None = None

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
        self.load_seeds()

    def load_seeds(self) -> None:
        """Read every seed's rows when the grid shows a mean or spread over seeds (once per run and store version)."""
        key = self.stamp()
        if self.over != "run" and key != self._seeds_key:
            self._seeds_key = key
            self.seed_stats = None
            self.load("seeds", self.reader.seed_stats, self.selection.run_id)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        grid = self.query_one(HeadGrid)
        grid.move_cursor(self.selection.layer, self.selection.head, announce=False)
        grid.focus()

    def on_loaded(self, message: Loaded) -> None:
        grid = self.query_one(HeadGrid)
        if message.error:
            if message.key == "seeds":
                self._seeds_key = None  # read again on the next `v` or change
            if message.key == "stats" or self.over != "run":
                grid.show_message(message.error)
            return
        if message.key == "seeds":
            self.seed_stats = message.value
            self._draw()
            return
        self.stats = message.value
        if not self._chosen_once:  # open on the first statistic that has data
            self._chosen_once = True
            self.stat = next((s for s in STATS if stat_grid(s, self.stats, None, self.selection.role)[0]), self.stat)
        self._draw()

    def _draw(self) -> None:
        grid_widget = self.query_one(HeadGrid)
        stats, role = self.stats, self.selection.role
        if stats is None or stats.run_id != self.selection.run_id:
            return
        self.fitted, self.option = stat_grid(self.stat, stats, self.option, role)
        self.run_fmt = self.fitted.fmt if self.fitted is not None else short
        self.seed_grid = None
        missing = self.stat.missing(stats.task)
        seeds = self.seed_stats if self.seed_stats is not None and self.seed_stats.run_id == stats.run_id else None
        if self.over != "run":
            if seeds is None:
                self.fitted, missing = None, "reading the other seeds' runs..."
            else:
                self.seed_grid = seed_grid(self.stat, seeds.stats, self.option, role, self.over)
                self.fitted, missing = self.seed_grid.grid, self.seed_grid.why or missing
        what = self.stat.title + (f": {self.option}" if self.option else "") + (f" ({role})" if self.stat.by_role else "")
        if self.over == "run":
            which = f"{task_seed(stats.title, stats.seed)} · {stats.n_layers} layers x {stats.n_heads} heads · " \
                    f"{escape(stats.run_id)}"
        else:
            n = len(self.seed_grid.seeds) if self.seed_grid is not None else None
            seeds = "its seeds" if n is None else f"{n} seed{'s' if n != 1 else ''}"
            which = f"{task_seed(stats.title, None)} · [b]{OVER_WORDS[self.over]} over {seeds}[/] (v) · " \
                    f"{stats.n_layers} layers x {stats.n_heads} heads"
        self.query_one("#heads-context", Static).update(f"colour: [b]{escape(what)}[/] · {which}")
        if self.fitted is None:
            grid = None
            grid_widget.border_subtitle = ""
            grid_widget.show_message(missing)
            self.query_one("#heads-legend", Static).update("c: another statistic" + (", v: this run" if self.over != "run" else ""))
        else:
            grid = self.show_on_range(grid_widget, self.fitted)
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
            over = "" if self.over == "run" else f" ({self.over})"
            lines.append(f"[b]{escape(self.stat.title)}{over}: {escape(shown)}[/]")
            if self.seed_grid is not None and self.seed_grid.grid is not None:
                per_seed = self.seed_grid.values[:, layer, head]
                fmt = self.run_fmt
                lines.append("seeds: " + ", ".join(f"{s} {fmt(float(v)) if v == v else '-'}"
                                                   for s, v in zip(self.seed_grid.seeds, per_seed)))
                lines.append(f"this run (seed {stats.seed}):")
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

    def action_over(self) -> None:
        self.over = OVER[(OVER.index(self.over) + 1) % len(OVER)]
        self.load_seeds()
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
