"""The Features screen: per head, attention to each token type, pretrained, fine-tuned and the difference (Fig. 6).

`N` switches the grids between the weights and the norm-weighted maps
(a_ij ||f(x_j)||, rows renormalised: the norm_feature_attention table).
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded
from bertsecrets.tui.reader import ROLES, RunStats
from bertsecrets.tui.scales import RANGE_BINDINGS, FixedRange
from bertsecrets.tui.screens.base import SWITCH_BINDINGS, StoreScreen, SwitchRuns, task_seed
from bertsecrets.tui.stats import Grid, distinct, fmt, of_role, per_head, points, top
from bertsecrets.tui.widgets.grid import HeadGrid
from bertsecrets.tui.widgets.head_cursor import follow
from bertsecrets.tui.widgets.tables import fill

TITLES = {"pretrained": "pretrained", "finetuned": "fine-tuned", "difference": "fine-tuned − pretrained"}


#: The table the grids read, by what `N` chose.
TABLES = {"weight": "feature_attention", "norm": "norm_feature_attention"}


def feature_grids(stats: RunStats, feature: str, table: str = "feature_attention") -> dict[str, Grid]:
    """The three grids of one feature: both models on one colour scale, and their difference."""
    values = {role: per_head(stats, of_role(stats, table, role, feature=feature), "value") for role in ROLES}
    high = top(*values.values())
    grids = {role: Grid(v, "seq", 0.0, high) for role, v in values.items()}
    diff = values["finetuned"] - values["pretrained"]
    span = top(np.abs(diff))
    grids["difference"] = Grid(diff, "div", -span, span)
    return grids


class FeaturesScreen(FixedRange, SwitchRuns, StoreScreen):
    """Attention to nouns, verbs, pronouns, subjects, objects, negation, [CLS] and [SEP], head by head."""

    PLACE = "features"
    DEPENDS = ("feature_attention", "cls_attention", "norm_feature_attention")
    BINDINGS = [
        Binding("x", "feature(1)", "feature", key_display="x/X", tooltip="next feature"),
        Binding("X", "feature(-1)", "previous feature", show=False),
        Binding("t", "role", "[CLS] table: pre/fine-tuned"),
        Binding("N", "weighting", "norm", show=False,
                tooltip="the grids by weight, or by norm: a_ij·‖f(x_j)‖, rows renormalised (Kobayashi et al. 2020)"),
        *RANGE_BINDINGS,
        *SWITCH_BINDINGS,
    ]

    def __init__(self) -> None:
        super().__init__()
        self.stats: RunStats | None = None
        self.feature: str | None = None
        self.cls_role = "finetuned"
        self.grids: dict[str, Grid] = {}
        self.weighting = "weight"

    def compose(self) -> ComposeResult:
        yield from self.compose_nav()
        yield Static("", id="features-context", classes="context")
        with Horizontal(id="feature-grids"):
            for name, title in TITLES.items():
                grid = HeadGrid(id=f"feature-{name}")
                grid.border_title = title
                yield grid
        yield Static("", id="features-status", classes="status")
        yield Static("", id="cls-title", classes="note")
        yield DataTable(id="cls-table", cursor_type="row", zebra_stripes=True)
        yield from self.compose_footer()

    def reload(self) -> None:
        if self.selection.run_id is None:
            self.show_error(self.no_run())
            return
        self.load("stats", self.reader.run_stats, self.selection.run_id)

    def show_error(self, text: str) -> None:
        for grid in self.query(HeadGrid):
            grid.show_message(text)

    def on_loaded(self, message: Loaded) -> None:
        if message.error:
            self.show_error(message.error)
            return
        self.stats = message.value
        self.draw()
        self.fill_cls()

    @property
    def table(self) -> str:
        return TABLES[self.weighting]

    def features(self) -> list[str]:
        return distinct(self.stats, self.table, "feature") if self.stats else []

    def draw(self) -> None:
        stats = self.stats
        if stats is None:
            return
        features = self.features()
        context = self.query_one("#features-context", Static)
        if not features and self.weighting == "norm":
            self.show_error(f"norm-weighted attention to features: none (map sets without norms?): run "
                            f"`bertsecrets ingest {stats.task}`, then N shows it (N: weights)")
            context.update(f"[b]{escape(stats.task.upper())}[/] · by norm (N)")
            return
        if not features:
            self.show_error(f"attention to features: not computed yet: run `bertsecrets analyze {stats.task}`")
            context.update(f"{task_seed(stats.title, stats.seed)} · {escape(stats.run_id)}")
            return
        if self.feature not in features:
            self.feature = features[0]
        self.grids = feature_grids(stats, self.feature, self.table)
        for name, grid in self.grids.items():  # only the difference is a grid of differences, with a range to fix
            self.show_on_range(self.query_one(f"#feature-{name}", HeadGrid), grid)
        chosen = " ".join(f"[reverse b] {escape(f)} [/]" if f == self.feature else escape(f) for f in features)
        by = " · by norm: a·‖f(x)‖, rows renormalised (N)" if self.weighting == "norm" else ""
        context.update(f"{task_seed(stats.title, stats.seed)} · attention to: {chosen}{by}")
        self.describe()

    def fitted_span(self) -> float | None:
        return self.grids["difference"].high if self.grids else None

    def draw_range(self) -> None:
        self.draw()

    def describe(self) -> None:
        if not self.grids or self.stats is None:
            return
        layer, head = self.selection.layer, self.selection.head
        pre, ft, diff = (self.grids[k].values[layer, head] for k in ("pretrained", "finetuned", "difference"))
        rows = of_role(self.stats, self.table, "finetuned", feature=self.feature, layer=layer, head=head)
        n = rows[0]["n_examples"] if rows else None
        self.query_one("#features-status", Static).update(
            f"layer [b]{layer + 1}[/] head [b]{head + 1}[/] · {escape(self.feature)}: pretrained [b]{fmt(pre)}[/] · "
            f"fine-tuned [b]{fmt(ft)}[/] · difference [b]{'-' if diff != diff else points(diff)}[/] points · "
            f"{n if n is not None else '-'} inputs have the type"
        )

    def fill_cls(self) -> None:
        """Fig. 7: where [CLS] attends, per layer, over the token types."""
        table = self.query_one("#cls-table", DataTable)
        stats = self.stats
        rows = of_role(stats, "cls_attention", self.cls_role) if stats else []
        title = self.query_one("#cls-title", Static)
        if not rows:
            fill(table, (), [])
            task = stats.task if stats else "<task>"
            title.update(escape(f"[CLS] attention per layer: not computed yet: run `bertsecrets analyze {task}`"))
            return
        title.update(escape(f"where [CLS] attends, per layer ({self.cls_role}; t switches)"))
        features = sorted({r["feature"] for r in rows})
        lines = []
        for layer in sorted({r["layer"] for r in rows}):
            by = {r["feature"]: r["value"] for r in rows if r["layer"] == layer}
            best = max(by, key=lambda f: by[f] or 0)  # bold: where [CLS] attends most in this layer
            lines.append([str(layer + 1), *(Text(fmt(by.get(f)), style="bold" if f == best else "") for f in features)])
        fill(table, ("layer", *features), lines)

    def on_head_cursor_moved(self, message: HeadGrid.Moved) -> None:
        self.app.select(layer=message.layer, head=message.head)
        follow(self.query(HeadGrid), message.layer, message.head, message.widget)
        self.describe()

    def on_head_cursor_chosen(self, message: HeadGrid.Chosen) -> None:
        self.app.select(layer=message.layer, head=message.head)
        self.app.action_goto("map")

    def action_feature(self, step: int) -> None:
        features = self.features()
        if features:
            index = features.index(self.feature) if self.feature in features else 0
            self.feature = features[(index + step) % len(features)]
            self.draw()

    def action_weighting(self) -> None:
        self.weighting = "norm" if self.weighting == "weight" else "weight"
        self.draw()

    def action_role(self) -> None:
        self.cls_role = "pretrained" if self.cls_role == "finetuned" else "finetuned"
        self.fill_cls()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        follow(self.query(HeadGrid), self.selection.layer, self.selection.head)
        self.describe()
        self.query_one("#feature-finetuned", HeadGrid).focus()
