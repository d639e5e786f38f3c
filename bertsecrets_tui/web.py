"""The browser served to web browsers: textual-serve behind named secrets, each visitor's name passed to their app."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import html
import ipaddress
import logging
import os
import re
import shlex
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_bytes, token_urlsafe
from typing import Callable, Sequence

from aiohttp import web
from textual_serve.server import Server
from yarl import URL

from bertsecrets.core import config
from bertsecrets.core.errors import UserError

#: A labeller's name in web mode: it becomes the labeller of the labels table and part of a file name
#: there (store/labels.py keeps only these characters), so two names never share one file.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: Shortest secret accepted from a file or the environment (a generated one is 32 characters).
MIN_SECRET = 16
#: What a Host or X-Forwarded-Host header may hold: a name or an IP address, and a port.
HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?")
REALM = 'Basic realm="bertsecrets", charset="UTF-8"'
#: Headers that a reverse proxy adds: a request carrying one came from beyond this machine's loopback.
PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded")

log = logging.getLogger("bertsecrets.web")


def new_secret() -> str:
    return token_urlsafe(24)


def check_name(name: str, where: str) -> str:
    if not NAME.fullmatch(name):
        raise UserError(f"{where}: the name {name!r} is not usable as a labeller: use 1-64 letters, digits, "
                        "'.', '_' or '-', starting with a letter or digit")
    return name


def check_secret(secret: str, where: str) -> str:
    if len(secret) < MIN_SECRET or any(c.isspace() for c in secret):
        raise UserError(f"{where}: a secret needs {MIN_SECRET} characters or more and no spaces; make one with "
                        "python -c 'import secrets; print(secrets.token_urlsafe())'")
    return secret


def read_secrets_file(path: Path) -> dict[str, str]:
    """``name:secret`` lines (blank lines and ``#`` comments ignored) as {name: secret}.

    Refused, like ssh refuses a private key, when people other than its owner may read it.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the secrets file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"the secrets file {path} is not UTF-8 text") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(f"the secrets file {path} can be read by other users: chmod 600 {shlex.quote(str(path))}")
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        name, colon, secret = line.partition(":")
        if not colon:
            raise UserError(f"{where}: expected name:secret")
        name, secret = check_name(name.strip(), where), check_secret(secret.strip(), where)
        if name in found:
            raise UserError(f"{where}: the name {name!r} comes twice; give each person one line")
        if any(hmac.compare_digest(secret.encode(), other.encode()) for other in found.values()):
            raise UserError(f"{where}: this secret is also another name's; give each person their own")
        found[name] = secret
    if not found:
        raise UserError(f"the secrets file {path} holds no name:secret line")
    return found


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` reaches this machine only.

    A name counts as loopback when every address it resolves to is one (aiohttp listens on all of them);
    "", "0.0.0.0" and "::" are every interface.
    """
    host = host.strip().strip("[]")
    if not host:
        return False
    try:
        return _loopback_address(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # cannot tell: the caller then asks for a secret, the safe side
    return bool(infos) and all(_loopback_address(ipaddress.ip_address(i[4][0].split("%")[0])) for i in infos)


def _loopback_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _host_name(host: str) -> str:
    """The name or address of a Host header (``[::1]:8000`` -> ``::1``, ``Localhost:9000`` -> ``localhost``)."""
    if host.startswith("["):
        return host[1:host.find("]")].lower() if "]" in host else ""
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def is_local_name(host: str) -> bool:
    """Whether a Host header (or a URL's host) names this machine's loopback: localhost, 127.x, ::1."""
    name = _host_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return _loopback_address(ipaddress.ip_address(name))
    except ValueError:
        return False


def check_public_url(url: str) -> str:
    """``--public-url``: an http(s) address, perhaps with a path prefix, without its trailing slash."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.query_string or parsed.fragment:
        raise UserError(f"--public-url {url!r}: give the address people open, e.g. https://lab.example.org/bertsecrets")
    return str(parsed).rstrip("/")


@dataclass
class Gate:
    """Who may come in: named secrets, or (no secrets) anyone who reaches the port, under one name.

    A visitor shows a secret once (``?key=`` or HTTP basic auth); the answer sets a cookie that names
    them, signed with a key made when the server starts, so cookies end when the server does and never
    hold the secret itself.
    """

    secrets: dict[str, str]
    #: The labeller when no secret is asked for.
    default_name: str
    key: bytes = field(default_factory=lambda: token_bytes(32))

    @property
    def open(self) -> bool:
        return not self.secrets

    def name_for(self, given: str) -> str | None:
        """The name whose secret is ``given``, or None; every secret is compared, in constant time."""
        found = None
        for name, secret in self.secrets.items():
            if hmac.compare_digest(secret.encode(), given.encode()):
                found = name
        return found

    def _signature(self, name: str) -> str:
        digest = hmac.new(self.key, b"bertsecrets-web-session\0" + name.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def cookie_for(self, name: str) -> str:
        return f"{name}.{self._signature(name)}"

    def name_from_cookie(self, value: str) -> str | None:
        name, dot, signature = value.rpartition(".")
        if not dot or name not in self.secrets:
            return None
        return name if hmac.compare_digest(signature.encode(), self._signature(name).encode()) else None


@dataclass(frozen=True)
class Visitor:
    """The person behind the request being handled, and the address their browser uses for this server."""

    name: str
    public_url: str


#: Set for the request being handled (aiohttp runs a request's middlewares and handler in one task).
_visitor: contextvars.ContextVar[Visitor | None] = contextvars.ContextVar("bertsecrets_web_visitor", default=None)


class WebServer(Server):
    """textual-serve's Server with a gate in front of every route, and each visitor's own app command.

    Server reads ``self.command`` when a websocket opens (to start that tab's app) and
    ``self.public_url`` when it writes the page (the asset and websocket addresses). Both are
    properties here that answer for the request being handled, so that Server's handlers are used
    as they are rather than copied.
    """

    def __init__(self, command_for: Callable[[str], list[str]], gate: Gate, *, host: str, port: int,
                 public_url: str | None = None, title: str = "bertsecrets", banner: Sequence[str] = ()) -> None:
        #: The argv of the app a visitor's tab runs, given the visitor's name.
        self.command_for = command_for
        self.gate = gate
        self.fixed_public_url = public_url
        self.banner = list(banner)
        super().__init__(shlex.join(command_for(gate.default_name)), host=host, port=port, title=title,
                         public_url=public_url)
        self.cookie_name = f"bertsecrets_{port}"  # cookies ignore ports: one name per server on a host

    # -- what Server reads per request -------------------------------------------

    @property
    def command(self) -> str:
        visitor = _visitor.get()
        return shlex.join(self.command_for(self.gate.default_name if visitor is None else visitor.name))

    @command.setter
    def command(self, value: str) -> None:
        pass  # Server.__init__ stores the command it was given; ours is built per visitor

    @property
    def public_url(self) -> str:
        visitor = _visitor.get()
        return visitor.public_url if visitor is not None else self._listen_url

    @public_url.setter
    def public_url(self, value: str) -> None:
        self._listen_url = value  # Server.__init__'s default, for when no request is being handled

    # -- the gate -----------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)  # before the app starts: aiohttp freezes the list then
        app.on_response_prepare.append(self._on_response_prepare)
        return app

    def request_public_url(self, request: web.Request) -> str:
        """The address the visitor's browser uses: --public-url, else X-Forwarded-Proto/-Host, else Host."""
        if self.fixed_public_url:
            return self.fixed_public_url
        scheme = _first(request.headers.get("X-Forwarded-Proto")) or request.scheme
        host = _first(request.headers.get("X-Forwarded-Host")) or request.headers.get("Host", "")
        # The page writes these into its HTML unescaped (textual-serve's template): only plain hosts pass.
        if scheme not in ("http", "https") or not HOST_HEADER.fullmatch(host):
            raise web.HTTPBadRequest(text="bertsecrets: the request's Host header is missing or malformed\n")
        return f"{scheme}://{host}"

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        public_url = self.request_public_url(request)
        cookie = None
        if self.gate.open:
            self._check_local(request)
            name = self.gate.default_name
        else:
            name, cookie = self._authenticate(request)
        if request.path == "/ws":
            self._check_origin(request, public_url)
        if cookie is not None and "key" in request.query and request.path != "/ws":
            response = self._logged_in(request)
        else:
            token = _visitor.set(Visitor(name, public_url))
            try:
                response = await handler(request)
            finally:
                _visitor.reset(token)
        if cookie is not None and not response.prepared:  # a websocket's headers went out in the handler
            response.set_cookie(self.cookie_name, cookie, path="/", httponly=True, samesite="Strict",
                                secure=True if public_url.startswith("https:") else None)
        return response

    def _check_local(self, request: web.Request) -> None:
        """Without a secret, serve only what came over loopback from this machine.

        A Host that is not a loopback name is a DNS rebinding attempt (a web page whose name now points
        at 127.0.0.1); a proxy's headers mean the request came from elsewhere.
        """
        if not is_local_name(request.headers.get("Host", "")):
            raise web.HTTPForbidden(text="bertsecrets: this server has no secret and answers only to "
                                         "localhost; start it with --require-secret to serve other names\n")
        if any(h in request.headers for h in PROXY_HEADERS):
            raise web.HTTPForbidden(text="bertsecrets: this server has no secret and the request came through "
                                         "a proxy; start it with --require-secret\n")

    def _check_origin(self, request: web.Request, public_url: str) -> None:
        """A websocket opened by another site's page is refused (browsers send Origin; CORS does not cover it)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return  # not a browser: nothing to forge on someone's behalf
        try:
            same = URL(origin).origin() == URL(public_url).origin()
        except ValueError:
            same = False
        if not same:
            log.warning("refused a websocket from origin %r (this server is %s)", origin, public_url)
            raise web.HTTPForbidden(text="bertsecrets: websocket from another site refused\n")

    def _authenticate(self, request: web.Request) -> tuple[str, str | None]:
        """The visitor's name, and the cookie to set when they showed their secret in this request.

        ``?key=`` comes first (it may switch person), then the cookie, then HTTP basic auth.
        """
        given = request.query.get("key") if request.path != "/ws" else None
        if given is None:
            cookie = request.cookies.get(self.cookie_name)
            if cookie and (name := self.gate.name_from_cookie(cookie)):
                return name, None
            given = _basic_password(request.headers.get("Authorization", ""))
        if given is not None:
            name = self.gate.name_for(given)
            if name is not None:
                return name, self.gate.cookie_for(name)
            log.warning("refused a wrong secret from %s", request.remote)
        raise web.HTTPUnauthorized(
            headers={"WWW-Authenticate": REALM},
            text="bertsecrets: this server asks for a secret: open the address printed when it started "
                 "(…/?key=SECRET), or log in with any user name and the secret as password\n",
        )

    def _logged_in(self, request: web.Request) -> web.Response:
        """After ``?key=``: a page that sets the cookie and reloads without the key in the address.

        Not an HTTP redirect: after a redirect from a link in another site (a chat, a mail), browsers
        withhold SameSite=Strict cookies; a reload started by this page is same-site.
        """
        target = html.escape(str(request.rel_url.without_query_params("key")), quote=True)
        return web.Response(
            content_type="text/html",
            text=f'<!DOCTYPE html><meta http-equiv="refresh" content="0; url={target}">'
                 f'<title>bertsecrets</title><a href="{target}">bertsecrets</a>\n',
        )

    async def _on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        # The address may have held the secret; pages are per person; the terminal is not to be framed.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path == "/" or response.status in (401, 403):
            response.headers["Cache-Control"] = "no-store"

    # -- start-up -------------------------------------------------------------------

    async def on_startup(self, app: web.Application) -> None:
        """Say where the app is and how to come in (instead of textual-serve's banner, which names the
        listen address even when that is 0.0.0.0)."""
        for line in self.banner:
            print(line, flush=True)


def _first(value: str | None) -> str | None:
    """The first of a proxy header's comma-separated values (the one the outermost proxy wrote)."""
    return value.split(",")[0].strip().lower() or None if value else None


def _basic_password(header: str) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        _, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return password if colon else None


class RedactKeys(logging.Filter):
    """Hide ``key=`` values in aiohttp's access log, which prints each request's address with its query."""

    PATTERN = re.compile(r"([?&]key=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "key=" in message:
            record.msg, record.args = self.PATTERN.sub(r"\1…", message), None
        return True


def plan(host: str, port: int, *, public_url: str | None, secrets_file: Path | None, require_secret: bool,
         labeller: str | None, environ: dict[str, str]) -> tuple[Gate, list[str]]:
    """The gate for these options, and the lines that tell the person starting the server how to come in.

    A secret is asked for when the server listens beyond loopback, when --public-url names another
    host (a proxy brings people from elsewhere), when --require-secret says so, or when one is given.
    """
    env_secret = environ.get(config.WEB_SECRET_ENV) or None
    if secrets_file is not None and env_secret is not None:
        raise UserError(f"give the secrets in --secrets-file or in ${config.WEB_SECRET_ENV}, not both")
    if secrets_file is not None and labeller:
        raise UserError("with --secrets-file each person's name comes from the file: drop --labeller")
    name = config.labeller(labeller)
    if secrets_file is None:
        check_name(name, "--labeller" if labeller else f"the labeller (${config.LABELLER_ENV}, else $USER)")
    reasons = []
    if not is_loopback(host):
        reasons.append(f"it listens on {host or 'every address'}, beyond this machine's loopback")
    if public_url and not is_local_name(URL(public_url).host_port_subcomponent or ""):
        reasons.append(f"people come from {public_url}")
    if require_secret:
        reasons.append("--require-secret")
    shown = public_url or f"http://{_shown_host(host)}:{port}"
    lines = [f"bertsecrets: serving the browser at {shown}/"]
    if secrets_file is not None:
        named = read_secrets_file(secrets_file)
        lines.append(f"  secrets from {secrets_file} for: {', '.join(named)} (each person's labels under their name)")
    elif env_secret is not None:
        named = {name: check_secret(env_secret, f"${config.WEB_SECRET_ENV}")}
        lines.append(f"  secret from ${config.WEB_SECRET_ENV}; labels are saved as {name}")
    elif reasons:
        secret = new_secret()
        named = {name: secret}
        lines += [f"  a secret is needed ({'; '.join(reasons)}); made one for {name}:",
                  f"  open {shown}/?key={secret}",
                  "  (or log in with any user name and the secret as password; "
                  f"${config.WEB_SECRET_ENV} or --secrets-file give your own)"]
    else:
        named = {}
        lines += [f"  no secret: anyone who can connect to {host}:{port} from this machine (other users too) can "
                  "use it; --require-secret asks for one",
                  f"  labels are saved as {name}"]
    if named and not shown.startswith("https:") and not is_loopback(host):
        lines.append("  not encrypted: reach it through an SSH tunnel or a TLS proxy (see docs/security.md)")
    return Gate(named, default_name=name), lines


def _shown_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def serve(command_for: Callable[[str], list[str]], *, host: str, port: int, public_url: str | None = None,
          secrets_file: Path | None = None, require_secret: bool = False, labeller: str | None = None) -> int:
    """Serve the app to web browsers until interrupted; one app process per browser tab."""
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: give a port between 1 and 65535")
    public_url = check_public_url(public_url) if public_url else None
    gate, banner = plan(host, port, public_url=public_url, secrets_file=secrets_file,
                        require_secret=require_secret, labeller=labeller, environ=dict(os.environ))
    # The tabs' apps inherit this environment (textual-serve copies it): they have no use for the secret.
    os.environ.pop(config.WEB_SECRET_ENV, None)
    logging.getLogger("aiohttp.access").addFilter(RedactKeys())
    server = WebServer(command_for, gate, host=host, port=port, public_url=public_url, banner=banner)
    try:
        server.serve()
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return 0
