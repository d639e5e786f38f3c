"""What every screen shares: the nav bar, the key bar, store reads in worker threads, reloading when the store
changes, and one line instead of a broken screen when the terminal is too small."""

from __future__ import annotations

from typing import Any, Callable

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import get_current_worker

from bertsecrets.core.errors import UserError
from bertsecrets.tui.markup import escape
from bertsecrets.tui.messages import Loaded, RunFound, StoreChanged
from bertsecrets.tui.reader import Reader, RunContext
from bertsecrets.tui.state import Selection
from bertsecrets.tui.widgets.keybar import KeyBar
from bertsecrets.tui.widgets.navbar import NavBar

#: The smallest terminal the screens are laid out for; below it they say so in one line.
MIN_WIDTH, MIN_HEIGHT = 60, 20


def too_small(width: int, height: int) -> str | None:
    """What to say in a ``width`` x ``height`` terminal, or None when the screens fit."""
    if width >= MIN_WIDTH and height >= MIN_HEIGHT:
        return None
    return f"terminal too small ({width} x {height}): bertsecrets needs {MIN_WIDTH} x {MIN_HEIGHT}"


class StoreScreen(Screen):
    """A screen that reads the store off the event loop and follows the shared selection."""

    #: The mode this screen is (see keys.PLACES).
    PLACE = ""
    #: Catalog tables whose change on disk makes the screen reload.
    DEPENDS: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self._stamp: tuple | None = None

    def compose_nav(self) -> ComposeResult:
        yield NavBar(self.PLACE)

    def compose_footer(self) -> ComposeResult:
        yield KeyBar()
        yield Static("", id="too-small")

    def fit_terminal(self) -> None:
        """Hide everything behind one line when the terminal is smaller than the screens are laid out for."""
        width, height = self.app.size
        message = too_small(width, height)
        self.set_class(message is not None, "-too-small")
        if message is not None:
            self.query_one("#too-small", Static).update(message)

    def on_resize(self, event: events.Resize) -> None:
        self.fit_terminal()

    @property
    def reader(self) -> Reader:
        return self.app.reader

    @property
    def selection(self) -> Selection:
        return self.app.selection

    # -- reads --------------------------------------------------------------

    def load(self, key: str, fn: Callable[..., Any], *args: Any, read_key: Any = None) -> None:
        """Run ``fn(*args)`` in a worker thread; its result or error comes back as a ``Loaded(key)`` message
        (carrying ``read_key``).

        A newer read with the same key cancels the older one, whose result is dropped.
        """
        self.run_worker(lambda: self._read(key, fn, args, read_key), name=key, group=f"{self.PLACE}:{key}",
                        exclusive=True, thread=True, exit_on_error=False)

    def _read(self, key: str, fn: Callable[..., Any], args: tuple, read_key: Any) -> None:
        worker = get_current_worker()
        try:
            message = Loaded(key, fn(*args), read_key=read_key)
        except UserError as exc:
            message = Loaded(key, error=str(exc), read_key=read_key)
        except Exception as exc:  # a damaged piece of the store, or a bug: shown in place, the app goes on
            message = Loaded(key, error=" ".join(f"{type(exc).__name__}: {exc}".split()), read_key=read_key)
        if not worker.is_cancelled:
            self.post_message(message)

    # -- the read key: results read for what the cursor has left are dropped -----

    def read_key(self) -> Any:
        """What the screen's current reads depend on (the selection, the item shown); None: no read is keyed."""
        return None

    def load_for(self, key: str, read: Callable[..., Any], *args: Any) -> None:
        """``load(key, read, *args)``, its value paired with ``read_key()`` as it is now: (read key, value)."""
        self.load_keyed(key, self.read_key(), read, *args)

    def load_keyed(self, key: str, read_key: Any, read: Callable[..., Any], *args: Any) -> None:
        """``load(key, read, *args)``, its value paired with ``read_key``: (read key, value)."""
        self.load(key, self._read_for, read_key, read, args, read_key=read_key)

    @staticmethod
    def _read_for(read_key: Any, read: Callable[..., Any], args: tuple) -> tuple[Any, Any]:
        return read_key, read(*args)

    def left(self, read_key: Any) -> bool:
        """Whether the cursor has left what ``read_key`` was read for. A result may land after the cursor has moved
        on (the cancelled read had posted it already): it is dropped, the read of the current selection is under
        way."""
        return read_key != self.read_key()

    def failed_here(self, message: Loaded) -> bool:
        """Whether ``message`` is an error to show: not one of a keyed read made for what the cursor has left (that
        read's failure says nothing about what is shown now)."""
        return message.error is not None and (message.read_key is None or not self.left(message.read_key))

    # -- staying current ----------------------------------------------------

    def stamp(self) -> tuple:
        """What the screen shows depends on: the selection it uses and the versions of its tables."""
        return (self.selection.run_id, *(self.app.versions.get(t, 0) for t in self.DEPENDS))

    def sync(self, force: bool = False) -> None:
        stamp = self.stamp()
        if force or stamp != self._stamp:
            self._stamp = stamp
            self.reload()

    def reload(self) -> None:
        """Read again what the screen shows (called when its stamp changed)."""

    def on_screen_resume(self) -> None:
        self.fit_terminal()
        self.sync()

    def on_store_changed(self, message: StoreChanged) -> None:
        self.sync()

    def no_run(self) -> str:
        return "no run chosen: pick one on the Runs screen (r), or run `bertsecrets ingest mrpc`"


def task_seed(title: str, seed: int | None) -> str:
    """The run's task and seed as the screens' top lines print them (markup): "[b]STS-B*[/] · seed 1"."""
    return f"[b]{escape(title)}[/]" + ("" if seed is None else f" · seed {seed}")


#: The keys of a screen of tabs.
TAB_BINDINGS = [
    Binding("right_square_bracket", "tab(1)", "tab", key_display="]/[", tooltip="next tab"),
    Binding("left_square_bracket", "tab(-1)", "previous tab", show=False),
]


class Tabs:
    """`]` and `[`: the next and the previous tab of the screen's TabbedContent (it lists TAB_BINDINGS in its
    BINDINGS)."""

    def action_tab(self, step: int) -> None:
        from textual.widgets import TabbedContent, TabPane  # the screens of tabs load them; the Runs screen need not

        tabs = self.query_one(TabbedContent)
        ids = [pane.id for pane in self.query(TabPane)]
        tabs.active = ids[(ids.index(tabs.active) + step) % len(ids)]


#: Keys that go to another run of the comparison across tasks and seeds; the footer shows them (as one entry, after
#: the screen's own keys) only where they fit.
SWITCH_BINDINGS = [
    Binding("T", "next_run('task')", "task/seed", key_display="T/S", tooltip="the next task's run (the same seed "
            "where it has one), keeping layer, head and input"),
    Binding("S", "next_run('seed')", "seed", show=False, tooltip="the next seed's run of the same configuration (the "
            "runs the Tasks screen compares), keeping layer, head and input"),
]


class SwitchRuns:
    """The task and seed keys of a screen that shows one run: the next task's run, the next seed's run.

    The runs come from ``store.findings`` (one configuration per task, its
    fine-tuned runs by seed), read in a worker; layer, head and input are kept
    (each screen clamps them to the new run's sizes).
    """

    def current_run(self) -> str | None:
        """The run the keys start from."""
        return self.selection.run_id

    def action_next_run(self, axis: str) -> None:
        run_id = self.current_run()

        def find() -> None:
            try:
                found = RunFound(*self.reader.next_run(run_id, axis))
            except UserError as exc:
                found = RunFound(None, str(exc))
            except Exception as exc:  # a damaged piece of the store, or a bug: said, the app goes on
                found = RunFound(None, " ".join(f"{type(exc).__name__}: {exc}".split()))
            if not get_current_worker().is_cancelled:
                self.post_message(found)

        self.run_worker(find, name="next-run", group=f"{self.PLACE}:next-run", exclusive=True, thread=True,
                        exit_on_error=False)

    def on_run_found(self, message: RunFound) -> None:
        if message.run_id is None:
            self.notify(message.words, markup=False)
            return
        s = self.selection
        self.app.select(run_id=message.run_id, example=s.example, layer=s.layer, head=s.head)
        self.run_switched()

    def run_switched(self) -> None:
        """After the selection moved to another run (the screen has been told to read it)."""


class RunMapsScreen(StoreScreen):
    """A screen of the selected run's maps: reads the run's context once, then maps as the selection moves."""

    DEPENDS = ("maps", "tokens", "examples", "map_classes", "labels")
    BINDINGS = [
        Binding("n", "example(1)", "input", key_display="n/p", tooltip="next input"),
        Binding("p", "example(-1)", "previous input", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.context: RunContext | None = None
        self._context_key: tuple | None = None

    def stamp(self) -> tuple:
        s = self.selection
        return (s.run_id, s.example, s.role, *(self.app.versions.get(t, 0) for t in self.DEPENDS))

    def reload(self) -> None:
        if self.selection.run_id is None:
            self.show_error(self.no_run())
            return
        key = (self.selection.run_id, *(self.app.versions.get(t, 0) for t in self.DEPENDS))
        if self.context is None or key != self._context_key:
            self._context_key = key
            self.load("context", self.reader.context, self.selection.run_id, read_key=self.selection.run_id)
            self.redraw()  # after T/S: the lines say the new run is being read, not the old run's task and input
        else:
            self.load_maps()

    def on_loaded(self, message: Loaded) -> None:
        if message.key == "context" and message.read_key != self.selection.run_id:
            # Read for a run the cursor has left (T/S): its sizes would clamp the input to that run's and its tokens
            # label the new run's maps; the selected run's context is being read.
            return
        if message.error:
            if message.key == "context" or self.failed_here(message):
                self.show_error(message.error)
        elif message.key == "context":
            self.context = context = message.value
            s = self.selection
            self.app.select(example=min(s.example, context.n_examples - 1), layer=min(s.layer, context.n_layers - 1),
                            head=min(s.head, context.n_heads - 1))
            self.load_maps()
        else:
            self.maps_loaded(message)

    def action_example(self, step: int) -> None:
        if self.context is not None:
            self.app.select(example=min(max(self.selection.example + step, 0), self.context.n_examples - 1))
            self.sync()

    def reading_line(self, *more: str, layer_head: bool = False) -> str:
        """The top line while the selection's maps are read: the run's task and seed and its sizes once its context
        is held; just after T/S, while the new run's context is read, its id (the context held is the old run's)."""
        context, s = self.context, self.selection
        held = context is not None and context.run_id == s.run_id
        parts = [task_seed(context.title, context.seed) if held else f"run [b]{escape(str(s.run_id))}[/]",
                 f"input [b]{s.example + 1}[/]" + (f"/{context.n_examples}" if held else "")]
        if layer_head:
            parts += [f"layer [b]{s.layer + 1}[/]" + (f"/{context.n_layers}" if held else ""),
                      f"head [b]{s.head + 1}[/]" + (f"/{context.n_heads}" if held else "")]
        return " · ".join([*parts, *more, "reading…"])

    def read_key(self) -> tuple:
        """What the maps read for the selection depend on: the run and the input (and the model, on a screen that
        shows one)."""
        s = self.selection
        return (s.run_id, s.example)

    def redraw(self) -> None:
        """Draw what is held again; its lines say "reading…" while the selection's read is under way."""

    def load_maps(self) -> None:
        """Read the maps of the selection (a ``load`` whose result comes to ``maps_loaded``)."""

    def maps_loaded(self, message: Loaded) -> None:
        """Show maps read by ``load_maps``."""

    def show_error(self, text: str) -> None:
        """Show ``text`` where the maps would be."""
