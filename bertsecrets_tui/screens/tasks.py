"""The Tasks screen: the paper's claims with a verdict per task, the cross-task tables, and each task's head effects."""

from __future__ import annotations

import warnings
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.reader import TaskFindings
from bertsecrets.tui.scales import RANGE_BINDINGS, FixedRange, fixed, range_words
from bertsecrets.tui.screens.base import TAB_BINDINGS, StoreScreen, Tabs
from bertsecrets.tui.stats import Grid, points, top
from bertsecrets.tui.widgets.grid import HeadGrid
from bertsecrets.tui.widgets.head_cursor import follow
from bertsecrets.tui.widgets.tables import fill

if TYPE_CHECKING:  # store.findings is imported when the findings are read, not when the browser starts
    from bertsecrets.store.findings import Claim, HeadDeltas


@cache
def verdicts() -> tuple[dict, dict]:
    """A verdict as one coloured sign (None: not claimed for the task), and as one short word."""
    from bertsecrets.store.findings import FAILS, HOLDS, MIXED, UNTESTED

    signs = {HOLDS: ("✓", "bold green"), FAILS: ("✗", "bold red"), MIXED: ("~", "bold yellow"),
             UNTESTED: ("?", "dim"), None: ("·", "dim")}
    words = {HOLDS: "holds", FAILS: "fails", MIXED: "mixed", UNTESTED: "untested"}
    return signs, words


LEGEND = "✓ holds (every seed)  ✗ does not hold (no seed)  ~ mixed  ? cannot be tested here  · not claimed for the task"
#: The tables whose change on disk changes a claim, a table or a head effect.
TABLES = ("runs", "ablation", "class_shares", "head_change", "feature_attention", "cls_attention", "head_stats",
          # the claims and sections beyond the paper: norms, sinks, stability across seeds and tasks, rollout
          "norm_head_stats", "norm_feature_attention", "norm_class_shares", "norm_head_change",
          "head_stability", "head_profiles", "cls_rollout")


def sign(verdict: str | None) -> tuple[str, str]:
    """The verdict's sign and its style."""
    return verdicts()[0].get(verdict, ("?", "dim"))


def short(verdict: str) -> str:
    return verdicts()[1].get(verdict, verdict)


def claim_text(claim: Claim, width: int) -> str:
    """``Fig. 8: Disabling a single head…``: where the paper makes the claim and the claim, cut to ``width``."""
    text = f"{claim.where}: {claim.statement}"
    return text if len(text) <= width else text[: max(width - 1, 1)].rstrip() + "…"


def claim_details(claim: Claim, titles: dict[str, str]) -> Text:
    """Everything about one claim: the paper's number, each task's number and verdict, how the verdict is reached."""
    mark, style = sign(claim.verdict)
    out = Text()
    out.append(f"{claim.where}: {claim.statement}\n", style="bold")
    out.append("verdict: ")
    out.append(f"{mark} {claim.verdict_text}", style=style)
    out.append(f" · paper (bert-base): {claim.paper}\n")
    for task, title in titles.items():
        cell = claim.cells.get(task)
        if cell is None:
            continue
        mark, style = sign(cell.verdict)
        out.append(f"{mark} ", style=style)
        out.append(f"{title}: ", style="bold")
        out.append(cell.text + (f" ({cell.verdict})" if cell.verdict else " (not claimed for this task)") + "\n")
    out.append(f"how: {claim.why}" if claim.why else "", style="dim")
    return out


def effect_grids(effects: dict[str, HeadDeltas]) -> dict[str, Grid]:
    """Per task, the mean over seeds of each head's Δ of the main metric, all on one symmetric colour scale.

    A head is marked when every seed's 95% interval lies on the same side of 0.
    """
    means, marks = {}, {}
    for task, deltas in effects.items():
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # a head no seed has stays NaN
            means[task] = np.nanmean(deltas.delta, axis=0)
            marks[task] = (deltas.ci_low > 0).all(axis=0) | (deltas.ci_high < 0).all(axis=0)
    span = top(*(np.abs(m) for m in means.values()), default=0.01)
    return {task: Grid(means[task], "div", -span, span, marks=marks[task], fmt=points) for task in effects}


class TasksScreen(FixedRange, Tabs, StoreScreen):
    """The paper's claims across tasks and seeds, with verdicts; the cross-task tables; head effects per task."""

    PLACE = "tasks"
    DEPENDS = TABLES
    BINDINGS = [
        *TAB_BINDINGS,
        Binding("x", "section(1)", "table", key_display="x/X", tooltip="the next cross-task table (Tables tab)"),
        Binding("X", "section(-1)", "previous table", show=False),
        *RANGE_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.found: TaskFindings | None = None
        self.section = 0
        self.grids: dict[str, Grid] = {}

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("reading the findings...", id="tasks-context", classes="context")
        with TabbedContent(id="tasks-tabs"):
            with TabPane("Claims", id="tab-claims"):
                yield DataTable(id="tasks-claims", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="tasks-claim-box"):
                    yield Static("", id="tasks-claim")
            with TabPane("Tables", id="tab-tables"):
                yield Static("", id="tasks-section-title", classes="context")
                yield Static("", id="tasks-caption", classes="note")
                yield DataTable(id="tasks-section", zebra_stripes=True)
            with TabPane("Heads", id="tab-heads"):
                yield Horizontal(id="tasks-grids")
                yield Static("", id="tasks-heads-status", classes="status")
                yield Static("", id="tasks-heads-legend", classes="note")
        yield Static("", id="tasks-notes", classes="note")
        yield from self.compose_footer()

    # -- reading ----------------------------------------------------------------

    def stamp(self) -> tuple:
        return tuple(self.app.versions.get(t, 0) for t in self.DEPENDS)

    def reload(self) -> None:
        if self.found is not None:
            self.query_one("#tasks-context", Static).update("updating the findings (the store changed)...")
        self.load("findings", self.reader.task_findings)

    async def on_loaded(self, message: Loaded) -> None:
        context = self.query_one("#tasks-context", Static)
        if message.error:
            context.update(Text(message.error, style="red"))
            return
        self.found = message.value
        await self.make_grids()
        self.draw()

    # -- drawing ----------------------------------------------------------------

    def titles(self) -> dict[str, str]:
        return {g.task.name: g.title for g in self.found.findings.groups} if self.found else {}

    def draw(self) -> None:
        found = self.found
        if found is None:
            return
        groups = found.findings.groups
        context = self.query_one("#tasks-context", Static)
        notes = self.query_one("#tasks-notes", Static)
        notes.update(Text("\n".join(found.findings.notes)))
        notes.display = bool(found.findings.notes)
        if not groups:
            context.update("no finished fine-tuned run in the store: run `bertsecrets ingest mrpc` "
                           "(or several tasks and seeds: `bertsecrets ingest mrpc rte --seeds 0,1,2`)")
            self.query_one("#tasks-claim", Static).update("")
            fill(self.query_one("#tasks-claims", DataTable), (), [])
            fill(self.query_one("#tasks-section", DataTable), (), [])
            return
        counts = {v: sum(c.verdict == v for c in found.findings.claims) for v in verdicts()[1]}
        seeds = sorted({s for g in groups for s in g.seeds})
        context.update(
            f"[b]{len(groups)} task{'s' if len(groups) != 1 else ''}[/] ({escape(', '.join(g.title for g in groups))}) · "
            f"seeds {escape(', '.join(map(str, seeds)))} · {len(found.findings.claims)} claims: "
            + ", ".join(f"{n} {short(v)}" for v, n in counts.items() if n)
        )
        self.fill_claims()
        self.fill_section()
        self.draw_grids()

    def fill_claims(self) -> None:
        found = self.found
        assert found is not None
        table = self.query_one("#tasks-claims", DataTable)
        row = table.cursor_row if table.row_count else 0
        titles = self.titles()
        # The task and verdict columns take what they need (DataTable pads each by one cell a side); the claim the
        # rest, less a vertical scrollbar.
        others = sum(max(len(t), 1) + 2 for t in titles.values()) + max(len(w) for w in verdicts()[1].values()) + 4
        width = max((table.size.width or self.app.size.width) - others - 2 - 2, 12)
        rows = []
        for claim in found.findings.claims:
            cells = [Text(*sign(claim.cells[t].verdict)) if t in claim.cells else Text("") for t in titles]
            mark, style = sign(claim.verdict)
            rows.append([Text(claim_text(claim, width)), *cells, Text(f"{mark} {short(claim.verdict)}", style=style)])
        fill(table, ("claim", *titles.values(), "verdict"), rows)
        if rows:
            table.move_cursor(row=min(row, len(rows) - 1))
        self.describe_claim()

    def describe_claim(self) -> None:
        found = self.found
        table = self.query_one("#tasks-claims", DataTable)
        if found is None or not found.findings.claims or not table.row_count:
            return
        claim = found.findings.claims[min(table.cursor_row, len(found.findings.claims) - 1)]
        details = claim_details(claim, self.titles())
        details.append("\n" + LEGEND, style="dim")
        self.query_one("#tasks-claim", Static).update(details)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "tasks-claims":
            self.describe_claim()

    def fill_section(self) -> None:
        found = self.found
        assert found is not None
        sections = found.findings.sections
        table = self.query_one("#tasks-section", DataTable)
        title = self.query_one("#tasks-section-title", Static)
        if not sections:
            title.update("no cross-task table")
            fill(table, (), [])
            return
        self.section %= len(sections)
        section = sections[self.section]
        title.update(f"[b]{escape(section.title)}[/] ({self.section + 1}/{len(sections)}, x: next table)")
        self.query_one("#tasks-caption", Static).update(Text(section.caption))
        fill(table, section.header, [[Text(c) for c in row] for row in section.rows])

    async def make_grids(self) -> None:
        """One head grid per task with finished fine-tuned runs (made again only when the tasks change)."""
        box = self.query_one("#tasks-grids", Horizontal)
        wanted = [g.task.name for g in self.found.findings.groups] if self.found else []
        if [grid.id for grid in box.query(HeadGrid)] == [f"tasks-grid-{t}" for t in wanted]:
            return
        await box.remove_children()
        grids = []
        for group in self.found.findings.groups:
            grid = HeadGrid(id=f"tasks-grid-{group.task.name}")
            grid.border_title = group.title
            grids.append(grid)
        await box.mount(*grids)

    def draw_grids(self) -> None:
        found = self.found
        if found is None:
            return
        self.grids = effect_grids(found.effects)
        shown = None
        for group in found.findings.groups:
            widget = self.query_one(f"#tasks-grid-{group.task.name}", HeadGrid)
            grid = self.grids.get(group.task.name)
            if grid is None:
                widget.show_message(f"no head-disabling sweep: run `bertsecrets ablate {group.task.name}`")
                continue
            shown = fixed(grid, self.span)
            widget.show(shown)
            widget.move_cursor(self.selection.layer, self.selection.head, announce=False)
        metrics = sorted({d.metric for d in found.effects.values()})
        self.query_one("#tasks-heads-legend", Static).update(Text(
            f"Δ {'/'.join(metrics) or 'metric'} in points with the head disabled, mean over seeds; one colour scale "
            f"for every task, {range_words(shown, self.span) if shown is not None else 'fitted'}; * = every seed's "
            "95% interval on the same side of 0; enter: the run's Ablation screen"))
        self.describe_heads()

    def describe_heads(self) -> None:
        """The values under the cursor, every task's mean and each seed's, in points."""
        found = self.found
        if found is None:
            return
        layer, head = self.selection.layer, self.selection.head
        parts = []
        for group in found.findings.groups:
            deltas = found.effects.get(group.task.name)
            if deltas is None or layer >= deltas.delta.shape[1] or head >= deltas.delta.shape[2]:
                continue
            per_seed = deltas.delta[:, layer, head]
            mean = self.grids[group.task.name].values[layer, head]
            seeds = " ".join("-" if v != v else points(float(v)) for v in per_seed)
            parts.append(f"[b]{escape(group.title)}[/] {'-' if mean != mean else points(float(mean))} ({seeds})")
        self.query_one("#tasks-heads-status", Static).update(
            f"layer [b]{layer + 1}[/] head [b]{head + 1}[/] · mean (each seed): " + (" · ".join(parts) or "-"))

    def fitted_span(self) -> float | None:
        return next(iter(self.grids.values())).high if self.grids else None

    def draw_range(self) -> None:
        self.draw_grids()

    # -- interaction ------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        if self.found is not None:
            self.fill_claims()

    def on_head_cursor_moved(self, message: HeadGrid.Moved) -> None:
        self.app.select(layer=message.layer, head=message.head)
        follow(self.query(HeadGrid), message.layer, message.head, message.widget)
        self.describe_heads()

    def on_head_cursor_chosen(self, message: HeadGrid.Chosen) -> None:
        """Open the task's run (the selected seed where the task has it) on the Ablation screen, at this head."""
        if self.found is None:
            return
        task = (message.widget.id or "").removeprefix("tasks-grid-")
        group = next((g for g in self.found.findings.groups if g.task.name == task), None)
        if group is None:
            return
        current = self.selected_seed()
        run = next((r for r in group.finetuned if int(r["seed"]) == current), group.finetuned[0])
        self.app.select(run_id=run["run_id"], layer=message.layer, head=message.head)
        self.app.action_goto("ablation")

    def selected_seed(self) -> int | None:
        """The seed of the selected run, as the groups know it."""
        if self.found is None:
            return None
        for group in self.found.findings.groups:
            for run in group.finetuned:
                if run["run_id"] == self.selection.run_id:
                    return int(run["seed"])
        return None

    def action_tab(self, step: int) -> None:
        super().action_tab(step)
        self.focus_tab()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.focus_tab()

    def focus_tab(self) -> None:
        active = self.query_one(TabbedContent).active
        if active == "tab-claims":
            self.query_one("#tasks-claims", DataTable).focus()
        elif active == "tab-tables":
            self.query_one("#tasks-section", DataTable).focus()
        else:
            first = next(iter(self.query(HeadGrid)), None)
            if first is not None:
                first.focus()

    def action_section(self, step: int) -> None:
        if self.found is None:
            return
        self.query_one(TabbedContent).active = "tab-tables"
        self.section += step
        self.fill_section()
        self.focus_tab()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        follow(self.query(HeadGrid), self.selection.layer, self.selection.head)
        self.describe_heads()
        self.focus_tab()
