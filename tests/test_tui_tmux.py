"""The real browser in tmux at 80 x 24, as over SSH: 256 colours only, every screen's title and footer keys visible."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from textual.binding import Binding

from bertsecrets.tui.app import BrowseApp, screen_class
from bertsecrets.tui.keys import PLACES
from bertsecrets.tui.widgets.keybar import LAST

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt install tmux)")

TRUECOLOR = re.compile(r"\x1b\[[0-9;]*[34]8;2;")  # 24-bit foreground or background
# The current screen's tab, reversed: " r Runs " where the bar has room, "r Runs" where it is packed.
ACTIVE_TAB = re.compile(r"\x1b\[(?:[0-9;]*;)?7m(?:\x1b\[[0-9;]*m)* ?\w (\w+)")


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


#: Screens whose focus is a text input: a letter key types there, so its binding does not work and is not shown.
TYPING = {"sql"}
#: What a screen shows once its reads are done (the tiny store: one task, one seed).
CONTENT = {"tasks": "1 task (MRPC) · seeds 0 · 14 claims", "runs": "T/S task/seed"}


def _shown_bindings(cls, typing: bool = False) -> list[str]:
    """The descriptions a screen's footer shows at 80 columns: its own bindings and the app's with show=True (the
    task and seed keys show where there is room: CONTENT checks them on the Runs screen)."""
    out = []
    for klass in [*reversed(cls.__mro__), BrowseApp]:
        for b in klass.__dict__.get("BINDINGS", []):
            if isinstance(b, Binding) and b.show and b.description and b.action.split("(")[0] not in LAST:
                if typing and all(len(k) == 1 and k.isprintable() for k in b.key.split(",")):
                    continue
                out.append(b.description)
    return list(dict.fromkeys(out))


class Pane:
    def __init__(self, name: str) -> None:
        self.name = name

    def text(self, escapes: bool = False) -> str:
        return _tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", self.name)

    def wait_for(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} never appeared; the pane shows:\n{text}")

    def keys(self, *keys: str) -> None:
        _tmux("send-keys", "-t", self.name, *keys)


@pytest.fixture
def pane(tiny_store):
    store, _ = tiny_store
    name = f"bertsecrets-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in ("COLORTERM", "TEXTUAL_COLOR_SYSTEM", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    command = f"{sys.executable} -m bertsecrets browse {store.root}"
    subprocess.run(["tmux", "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", command],
                   check=True, env=env)
    try:
        yield Pane(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_every_screen_at_80x24_in_256_colours(pane):
    pane.wait_for("fine-tuned")
    assert _tmux("display", "-p", "-t", pane.name, "#{window_width}x#{window_height}").strip() == "80x24"
    pane.keys("Enter")  # open the first run: every screen then has something to show
    # The SQL screen last: its input takes the letters that open the other screens.
    for place in sorted(PLACES, key=lambda p: p.mode == "sql"):
        pane.keys(place.key)
        wanted = _shown_bindings(screen_class(place.mode), typing=place.mode in TYPING)
        deadline, text, coloured = time.monotonic() + 30, "", ""
        while time.monotonic() < deadline:
            text, coloured = pane.text(), pane.text(escapes=True)
            active = ACTIVE_TAB.search(coloured)
            if active and active.group(1) == place.title and all(d in text for d in wanted) \
                    and CONTENT.get(place.mode, "") in text:
                break
            time.sleep(0.3)
        active = ACTIVE_TAB.search(coloured)
        assert active and active.group(1) == place.title, f"{place.title} is not the active tab:\n{text}"
        missing = [d for d in wanted + [CONTENT.get(place.mode, "")] if d not in text]
        assert not missing, f"{place.title}: footer keys {missing} are not visible:\n{text}"
        assert not TRUECOLOR.search(coloured), f"{place.title}: a 24-bit colour was sent"
        assert re.search(r"\x1b\[[0-9;]*[34]8;5;\d+", coloured), f"{place.title}: no 256-colour code at all"
    pane.keys("Escape")
    pane.keys("q")
