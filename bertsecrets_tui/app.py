"""The browser: a Textual app over one store, with a screen per view and a poll that notices new rows."""

from __future__ import annotations

import importlib
from typing import Callable

from textual.app import App
from textual.binding import Binding
from textual.worker import get_current_worker

from bertsecrets.core import config
from bertsecrets.tui.keys import PLACES
from bertsecrets.tui.messages import StoreChanged
from bertsecrets.tui.reader import Reader
from bertsecrets.tui.screens.base import StoreScreen
from bertsecrets.tui.screens.help import HelpScreen
from bertsecrets.tui.state import Selection
from bertsecrets.store import Store

#: Each place's screen: (module in bertsecrets.tui.screens, class), imported when the place is first shown,
#: so a cold start pays for the Runs screen only, not for screens it never shows.
SCREENS = {
    "runs": ("runs", "RunsScreen"), "tasks": ("tasks", "TasksScreen"), "heads": ("heads", "HeadGridScreen"),
    "map": ("map", "MapScreen"), "model": ("model", "ModelScreen"), "sentence": ("sentence", "SentenceScreen"),
    "label": ("labelling", "LabellingScreen"), "features": ("features", "FeaturesScreen"),
    "ablation": ("ablation", "AblationScreen"), "sql": ("sql", "SQLScreen"), "families": ("families", "FamiliesScreen"),
}


def screen_class(mode: str) -> type[StoreScreen]:
    """The screen class of a place, imported on first use."""
    module, name = SCREENS[mode]
    return getattr(importlib.import_module(f"bertsecrets.tui.screens.{module}"), name)


def _make(mode: str) -> Callable[[], StoreScreen]:
    return lambda: screen_class(mode)()


class BrowseApp(App):
    """Browse the runs, tasks, heads, maps, classes, features and ablations of a bertsecrets store."""

    TITLE = "bertsecrets"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    MODES = {mode: _make(mode) for mode in SCREENS}
    DEFAULT_MODE = "runs"
    BINDINGS = [
        *(Binding(p.key, f"goto('{p.mode}')", p.title, show=False) for p in PLACES),
        Binding("question_mark,f1", "help", "help"),
        Binding("escape", "back", "back"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, store: Store, truecolor: bool | None = None, poll_seconds: float = 1.0,
                 labeller: str | None = None) -> None:
        super().__init__()
        self.store = store
        #: Who gives the labels (in web mode, the person whose secret opened this tab).
        self.labeller = config.labeller(labeller)
        self.reader = Reader(store)
        #: None: follow the terminal (Rich's detection, or $TEXTUAL_COLOR_SYSTEM).
        self.truecolor = truecolor
        self.selection = Selection()
        #: Per catalog table, how many times it changed on disk since the app started.
        self.versions: dict[str, int] = {}
        self.sub_title = str(store.root)
        self._poll_seconds = poll_seconds
        self._fingerprint: dict[str, tuple] | None = None
        self._polling = False
        self._history: list[str] = []

    def on_mount(self) -> None:
        self.set_interval(self._poll_seconds, self.poll)
        self.poll()

    # -- navigation ---------------------------------------------------------

    def action_goto(self, mode: str) -> None:
        if mode != self.current_mode:
            self._history.append(self.current_mode)
            self.switch_mode(mode)

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self._history:
            self.switch_mode(self._history.pop())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def select(self, **changes) -> None:
        """Change the shared selection (run, role, example, layer, head)."""
        new_run = "run_id" in changes and changes["run_id"] != self.selection.run_id
        if new_run:
            self.selection = Selection(run_id=changes.pop("run_id"), role=self.selection.role)
        for name, value in changes.items():
            setattr(self.selection, name, value)
        # e.g. the first run, read after a screen was opened; one still being built reads it when it is shown
        if new_run and isinstance(self.screen, StoreScreen) and self.screen.is_mounted:
            self.screen.sync()

    # -- noticing new rows --------------------------------------------------

    def poll(self) -> None:
        """Look for catalog parts written since the last look (cheap: file names and times only)."""
        if not self._polling:
            self._polling = True
            self.run_worker(self._poll, group="poll", thread=True, exit_on_error=False)

    def _poll(self) -> None:
        try:
            current = self.reader.fingerprint()
            previous, self._fingerprint = self._fingerprint, current
            if previous is not None and not get_current_worker().is_cancelled:
                changed = frozenset(t for t in current if current[t] != previous.get(t))
                if changed:
                    self.post_message(StoreChanged(changed))
        finally:
            self._polling = False

    def on_store_changed(self, message: StoreChanged) -> None:
        for table in message.tables:
            self.versions[table] = self.versions.get(table, 0) + 1
        self.reader.forget(set(message.tables))
        if self.screen_stack:  # none while the app shuts down
            self.screen.post_message(StoreChanged(message.tables))
