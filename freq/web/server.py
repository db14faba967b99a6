"""The dashboard's server: binding, security headers on every response, the Host check, and
uvicorn; `git freq serve` calls `serve`.

Must not import click, dulwich, subprocess or pexpect; with `app`, the only modules of freq
importing starlette and uvicorn (uvicorn only inside `serve`, so importing this module to
check an address stays cheap).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from freq import errors, ops
from freq.web import api
from freq.web.app import Dashboard, build, refusal
from freq.web.events import RefWatcher

# No inline script or style, nothing from another origin (the page ships every asset).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: an address only this machine reaches."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Secured:
    """ASGI middleware: security headers on every response, and (bound to one address) a
    Host check, so a page of another name rebound to this address (DNS rebinding) reads
    nothing."""

    def __init__(self, inner: ASGIApp, hosts: frozenset[str]) -> None:
        self.inner = inner
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        if self.hosts:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host not in self.hosts:
                response = refusal(421, f"refused: this server is not {host!r}")
                await response(scope, receive, self._headers(send))
                return
        await self.inner(scope, receive, self._headers(send))

    @staticmethod
    def _headers(send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


def dashboard_user(app: ops.App) -> str:
    """Who the dashboard's actions are attributed to: `dashboard:<git user.name>`."""
    name = None
    with contextlib.suppress(Exception):  # no user.name configured: the login name
        raw = app.store.repo.get_config_stack().get((b"user",), b"name")
        name = raw.decode("utf-8", "replace") if raw else None
    name = name or os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    return f"dashboard:{name}"


def _names(host: str, port: int) -> frozenset[str]:
    """The Host values this server answers to, bound to `host` (empty: any, bound to all)."""
    if host in ("0.0.0.0", "::", ""):
        return frozenset()
    names = {host}
    if is_loopback(host):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return frozenset(f"[{n}]:{port}" if ":" in n and not n.startswith("[") else f"{n}:{port}"
                     for n in names)  # fmt: skip


def _warm(app: ops.App) -> None:
    """Read the state once before serving (the socket listens already: a first request
    waits in its backlog), then move everything alive into the collector's permanent
    generation: the App's caches and the web stack live as long as the server, and a
    full collection during a request no longer walks them (a fifth of /api/state)."""
    with contextlib.suppress(errors.FreqError):  # the page shows the problem instead
        api.state(app)
    gc.collect()
    gc.freeze()


def serve(
    app: ops.App,
    *,
    host: str,
    port: int,
    token: str,
    started: Callable[[str], None],
) -> None:
    """Bind, call `started(url)` with the actual address, and serve until interrupted."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise errors.FreqError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    hosts = _names(host, port)
    store = app.store
    dash = Dashboard(
        app=app,
        token=token,
        by=dashboard_user(app),
        watcher=RefWatcher(Path(store.common_dir), store.state_dir / "beacon", root=app.root),
        origins=frozenset(f"http://{h}" for h in hosts),
    )
    config = uvicorn.Config(
        Secured(build(dash), hosts),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    started(f"http://{shown}:{port}/")
    _warm(app)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        sock.close()
