"""`browse --web`: who may come in (secrets, cookie, refusals), the page's addresses, and whose labels a tab gives."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from bertsecrets.cli import main
from bertsecrets.core.errors import UserError
from bertsecrets.store.labels import Labels
from bertsecrets.tui import web
from bertsecrets.tui.app import BrowseApp
from conftest import settle, text_of
from test_tui_stores import browse_store, handmade_store  # noqa: F401 (fixture)

ALICE, BOB = "alice-secret-0123456789", "bob-secret-9876543210xyz"
PROC = Path("/proc")


# -- pure parts -----------------------------------------------------------------------


def test_bind_addresses_and_host_headers_are_classified():
    for host in ("localhost", "127.0.0.1", "127.4.5.6", "::1", "[::1]", "::ffff:127.0.0.1", "dev.localhost"):
        assert web.is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "192.0.2.2", "10.1.2.3", "fd00::2", "no-such-host.invalid"):
        assert not web.is_loopback(host), host
    for header in ("localhost:9000", "LOCALHOST", "127.0.0.1:8000", "[::1]:8000", "[::1]"):
        assert web.is_local_name(header), header
    for header in ("evil.example:8000", "192.0.2.2:8000", "localhost.evil.example", "[fd00::2]:80", ""):
        assert not web.is_local_name(header), header


def _write_secrets(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_secrets_file_is_read_and_checked(tmp_path):
    good = _write_secrets(tmp_path / "ok", f"# who may label\n\nalice:{ALICE}\n bob : {BOB} \n")
    assert web.read_secrets_file(good) == {"alice": ALICE, "bob": BOB}
    bad = {
        "others": (f"alice:{ALICE}\n", 0o644, "chmod 600"),
        "colon": (f"alice {ALICE}\n", 0o600, "line 1: expected name:secret"),
        "twice": (f"alice:{ALICE}\nalice:{BOB}\n", 0o600, "line 2: the name 'alice' comes twice"),
        "shared": (f"alice:{ALICE}\nbob:{ALICE}\n", 0o600, "line 2: this secret is also another name's"),
        "short": ("alice:hunter2\n", 0o600, "line 1: a secret needs 16 characters"),
        "name": (f"al ice:{ALICE}\n", 0o600, "line 1: the name 'al ice' is not usable"),
        "empty": ("# nobody yet\n", 0o600, "holds no name:secret line"),
    }
    for file, (text, mode, message) in bad.items():
        with pytest.raises(UserError, match=re.escape(message)):
            web.read_secrets_file(_write_secrets(tmp_path / file, text, mode))
    with pytest.raises(UserError, match="cannot read the secrets file"):
        web.read_secrets_file(tmp_path / "missing")


def test_cookies_name_their_person_and_nothing_else():
    gate = web.Gate({"alice": ALICE, "bob": BOB}, default_name="x")
    assert gate.name_for(BOB) == "bob" and gate.name_for(ALICE) == "alice"
    assert gate.name_for(BOB + "x") is None and gate.name_for("") is None
    cookie = gate.cookie_for("bob")
    assert gate.name_from_cookie(cookie) == "bob" and BOB not in cookie
    signature = cookie.split(".", 1)[1]
    assert gate.name_from_cookie("alice." + signature) is None  # bob's signature does not make one alice
    assert gate.name_from_cookie(cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) is None
    assert gate.name_from_cookie("carol." + signature) is None and gate.name_from_cookie("bob") is None
    restarted = web.Gate({"alice": ALICE, "bob": BOB}, default_name="x")  # a new server start, a new key
    assert restarted.name_from_cookie(cookie) is None


def test_a_secret_is_asked_for_beyond_loopback(tmp_path):
    def plan(host="localhost", environ=None, **options):
        options = {"public_url": None, "secrets_file": None, "require_secret": False, "labeller": "ada", **options}
        return web.plan(host, 8000, environ=environ or {}, **options)

    gate, lines = plan()
    assert gate.open and gate.default_name == "ada" and "no secret" in lines[1]
    for gate, lines in (plan("0.0.0.0"), plan("192.0.2.2"), plan(require_secret=True),
                        plan(public_url="https://lab.example.org/bertsecrets")):
        assert list(gate.secrets) == ["ada"]
        secret = gate.secrets["ada"]
        assert len(secret) >= 32 and any(line.endswith(f"/?key={secret}") for line in lines)
    assert plan(public_url="http://localhost:9000")[0].open  # an SSH tunnel's address is this machine's
    gate, lines = plan(environ={"BERTSECRETS_WEB_SECRET": ALICE})  # given: asked for, even on loopback
    assert gate.secrets == {"ada": ALICE} and not any(ALICE in line for line in lines)
    file = _write_secrets(tmp_path / "secrets", f"alice:{ALICE}\nbob:{BOB}\n")
    gate, lines = plan("0.0.0.0", secrets_file=file, labeller=None)
    assert gate.secrets == {"alice": ALICE, "bob": BOB} and not any(ALICE in line or BOB in line for line in lines)
    assert any("not encrypted" in line for line in lines)
    with pytest.raises(UserError, match="not both"):
        plan(secrets_file=file, labeller=None, environ={"BERTSECRETS_WEB_SECRET": ALICE})
    with pytest.raises(UserError, match="drop --labeller"):
        plan(secrets_file=file)
    with pytest.raises(UserError, match="16 characters"):
        plan(environ={"BERTSECRETS_WEB_SECRET": "short"})
    with pytest.raises(UserError, match="not usable as a labeller"):
        plan(labeller="a b")


def test_bad_web_options_are_one_line_errors(tmp_path, capsys):
    store = handmade_store(tmp_path / "store")
    loose = _write_secrets(tmp_path / "secrets", f"alice:{ALICE}\n", 0o644)
    for args, message in (
        (["--web", "--secrets-file", str(loose)], "chmod 600"),
        (["--web", "--public-url", "ftp://x"], "--public-url 'ftp://x'"),
        (["--web", "--port", "0"], "--port 0"),
        (["--require-secret"], "--require-secret goes with --web"),
    ):
        assert main(["browse", str(store.root), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- the labeller in the app ---------------------------------------------------------------


async def test_the_labelling_screen_shows_and_saves_as_the_given_labeller(browse_store, monkeypatch):
    store, _ = browse_store
    monkeypatch.setenv("BERTSECRETS_USER", "server-user")  # what the server's own environment says
    app = BrowseApp(store, truecolor=False, labeller="alice")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, "l")
        assert "labeller alice" in text_of(app, "#label-context")
        first = app.screen.shown
        await settle(pilot, "4")
        assert app.screen.saving == 0
    rows = Labels(store).all().to_pylist()
    assert [(r["labeller"], r["label"], r["example"], r["layer"], r["head"]) for r in rows] == [
        ("alice", "block", first.example, first.layer, first.head)]


# -- the real server ----------------------------------------------------------------------


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Served:
    """`bertsecrets browse --web` in a subprocess, its output collected as it comes."""

    def __init__(self, store_root: Path, host: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.host, self.port = host, _free_port(host)
        self.base = f"http://{host}:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bertsecrets", "browse", str(store_root), "--web", "--host", host,
             "--port", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output
            try:
                socket.create_connection((host, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the server did not start:\n{self.output}")

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def children(self) -> list[int]:
        """Processes started by the server (the tabs' apps, and a shell around each), from /proc."""
        parents: dict[int, int] = {}
        for stat in PROC.glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
        found, todo = [], [self.process.pid]
        while todo:
            parent = todo.pop()
            kids = [pid for pid, ppid in parents.items() if ppid == parent]
            found += kids
            todo += kids
        return found

    def stop(self) -> None:
        left = self.children()
        self.process.terminate()
        self.process.wait(timeout=20)
        for pid in left:  # a tab's app the server did not end in time: it was started here, end it by its id
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def _cmdline(pid: int) -> list[str]:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _environ(pid: int) -> str:
    try:
        return (PROC / str(pid) / "environ").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _tab_app(served: Served, timeout: float = 30) -> list[int]:
    """Wait for the app a websocket starts; the server's descendants then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = served.children()
        if any("browse" in " ".join(_cmdline(pid)) for pid in kids):
            return kids
        time.sleep(0.1)
    raise AssertionError(f"no app started for the tab:\n{served.output}")


def _page_urls(page: str) -> tuple[str, str]:
    websocket = re.search(r'data-session-websocket-url="([^"]*)"', page).group(1)
    script = re.search(r'<script src="([^"]*)textual\.js"', page).group(1)
    return script, websocket


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"anyone:{secret}".encode()).decode()


async def _status(session: aiohttp.ClientSession, url: str, **kwargs) -> int:
    async with session.get(url, allow_redirects=False, **kwargs) as response:
        return response.status


async def _websocket_status(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    try:
        async with session.ws_connect(url, headers=headers):
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


def _non_loopback_address() -> str | None:
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return next((a for a in out.split() if "." in a and not web.is_loopback(a)), None)


@pytest.fixture
def served():
    started: list[Served] = []

    def start(*args, **kwargs) -> Served:
        started.append(Served(*args, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop()


needs_proc = pytest.mark.skipif(not (PROC / "self" / "stat").exists(), reason="reads processes from /proc (Linux)")


@needs_proc
async def test_beyond_loopback_nothing_opens_without_a_secret(tmp_path, served):
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address (hostname -I) to listen on")
    store = handmade_store(tmp_path / "store")
    secrets_file = _write_secrets(tmp_path / "secrets", f"alice:{ALICE}\nbob:{BOB}\n")
    server = served(store.root, address, "--secrets-file", str(secrets_file))
    base = server.base
    async with aiohttp.ClientSession() as session:
        for path in ("/", "/?fontsize=12", "/static/js/textual.js", "/static/", "/download/abc", "/ws", "/nothing"):
            assert await _status(session, base + path) == 401, path
        assert await _status(session, base + "/?key=" + ALICE[:-1]) == 401
        assert await _status(session, base + "/", headers={"Authorization": _basic(BOB + "x")}) == 401
        assert await _status(session, base + "/", headers={"Cookie": f"bertsecrets_{server.port}=bob.forged"}) == 401
        for headers in ({}, {"Origin": base}, {"Authorization": _basic(ALICE[:-1])}):
            assert await _websocket_status(session, base + "/ws", headers) == 401
        assert server.children() == []  # no app was started for any of them

        # The secret once in the address: a cookie for bob, and a reload without the secret.
        async with session.get(base + f"/?key={BOB}&fontsize=12", allow_redirects=False) as response:
            assert response.status == 200 and BOB not in await response.text()
            assert 'url=/?fontsize=12"' in await response.text()
            cookie_header = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie_header and "SameSite=Strict" in cookie_header and "Secure" not in cookie_header
        cookie = cookie_header.split(";")[0]
        assert cookie.startswith(f"bertsecrets_{server.port}=bob.")

        # The page's assets and websocket follow the address the browser used (an SSH tunnel, a proxy).
        for headers, script, websocket in (
            ({}, f"{base}/static/js/", f"ws://{address}:{server.port}/ws"),
            ({"Host": "localhost:9999"}, "http://localhost:9999/static/js/", "ws://localhost:9999/ws"),
            ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "lab.example.org"},
             "https://lab.example.org/static/js/", "wss://lab.example.org/ws"),
        ):
            async with session.get(base + "/", headers={"Cookie": cookie, **headers}) as response:
                assert response.status == 200
                assert _page_urls(await response.text()) == (script, websocket)
        for bad in ('x"><script>alert(1)</script>', "a b"):
            assert await _status(session, base + "/", headers={"Cookie": cookie, "Host": bad}) == 400

        # HTTP basic auth (the browser's own login box) names alice.
        async with session.get(base + "/", headers={"Authorization": _basic(ALICE)}) as response:
            assert response.status == 200 and f"bertsecrets_{server.port}=alice." in response.headers["Set-Cookie"]

        # Another site's page may not open the websocket, cookie or not.
        assert await _websocket_status(session, base + "/ws", {"Cookie": cookie, "Origin": "http://evil.example"}) == 403
        assert server.children() == []

        # Bob's tab runs the app as bob.
        async with session.ws_connect(base + "/ws", headers={"Cookie": cookie, "Origin": base}) as ws:
            kids = _tab_app(server)
            commands = [" ".join(_cmdline(pid)) for pid in kids]
            assert any("--labeller bob" in c and "browse" in c for c in commands), commands
            assert not any("alice" in c for c in commands)
            message = await ws.receive(timeout=60)  # the app draws: the whole chain works
            assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT), message
    assert ALICE not in server.output and BOB not in server.output  # the access log hides ?key=


@needs_proc
async def test_loopback_with_required_secret_behind_a_proxy(tmp_path, served):
    store = handmade_store(tmp_path / "store")
    public = "https://lab.example.org/bertsecrets"
    server = served(store.root, "127.0.0.1", "--require-secret", "--public-url", public + "/",
                    "--labeller", "carol", env={"BERTSECRETS_WEB_SECRET": ALICE})
    base = server.base
    async with aiohttp.ClientSession() as session:
        assert await _status(session, base + "/") == 401
        async with session.get(base + f"/?key={ALICE}", allow_redirects=False) as response:
            assert response.status == 200
            cookie_header = response.headers["Set-Cookie"]
        assert "Secure" in cookie_header and "HttpOnly" in cookie_header  # people come over https
        cookie = cookie_header.split(";")[0]
        assert cookie.startswith(f"bertsecrets_{server.port}=carol.")
        # --public-url wins over the request's Host.
        async with session.get(base + "/", headers={"Cookie": cookie, "Host": "localhost:9999"}) as response:
            assert _page_urls(await response.text()) == (f"{public}/static/js/", "wss://lab.example.org/bertsecrets/ws")
        assert await _websocket_status(session, base + "/ws", {"Cookie": cookie, "Origin": base}) == 403
        async with session.ws_connect(base + "/ws", headers={"Cookie": cookie, "Origin": "https://lab.example.org"}):
            kids = _tab_app(server)
            assert any("--labeller carol" in " ".join(_cmdline(pid)) for pid in kids)
            # The tab's app gets the server's environment, but not the secret.
            environments = [_environ(pid) for pid in kids]
            assert any("TEXTUAL_DRIVER" in e for e in environments)
            assert not any("BERTSECRETS_WEB_SECRET" in e or ALICE in e for e in environments)
    assert ALICE not in server.output


async def test_loopback_without_secret_answers_only_this_machine(tmp_path, served):
    store = handmade_store(tmp_path / "store")
    server = served(store.root, "127.0.0.1", "--labeller", "dora")
    base = server.base
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/", headers={"Host": "localhost:9999"}) as response:
            assert response.status == 200 and "Set-Cookie" not in response.headers
            assert _page_urls(await response.text()) == ("http://localhost:9999/static/js/", "ws://localhost:9999/ws")
        # DNS rebinding (another site's name now pointing here), a proxy in front, another site's websocket.
        assert await _status(session, base + "/", headers={"Host": "evil.example:" + str(server.port)}) == 403
        assert await _status(session, base + "/", headers={"X-Forwarded-For": "203.0.113.9"}) == 403
        assert await _websocket_status(session, base + "/ws", {"Origin": "http://evil.example"}) == 403
        if PROC.exists():
            assert server.children() == []
    assert "no secret" in server.output and "labels are saved as dora" in server.output
