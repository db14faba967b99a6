"""The dashboard's ASGI app: routes, the token and Origin checks, the one-line refusals.

Must not import click, dulwich, subprocess or pexpect; with `server`, the only modules of
freq importing starlette and sse_starlette. Every view reads and every action writes
through the ops functions the CLI calls, with the same one-line refusals (SPEC §8): an
ops FreqError becomes a 4xx `{"error": line}`, anything else one 500 line, never a
traceback. Ops run in worker threads, one at a time (one App, one Store, its caches warm).
"""

from __future__ import annotations

import contextlib
import hmac
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from freq import errors, ops, render
from freq.web import api
from freq.web.events import RefWatcher, config_token

STATIC = Path(__file__).resolve().parent / "static"
R = TypeVar("R")

STREAM_RETRY_MS = 1000  # EventSource reconnects after this long when the server went away
STREAM_IDLE_SECONDS = 15.0  # a comment line this often keeps proxies from closing the stream


def _error_status(exc: errors.FreqError) -> int:
    if isinstance(exc, errors.ConfigError | errors.NoConfig):
        return 503  # nothing can be served until the files are fixed
    if isinstance(exc, errors.UsageError | errors.UnknownState | errors.InvalidName):
        return 400
    if isinstance(exc, errors.UnknownFactory | errors.UnknownSubject | errors.UnknownEntry):
        return 404
    return 409  # a lost race, a state that refuses the action: the CLI's exit 1


class OrJSON(JSONResponse):
    """JSON through orjson (the state of 5,000 subjects is a megabyte). Plain values are
    encoded natively; dataclasses and datetimes go to render.jsonable, so they read as the
    CLI's --json writes them (`2026-01-01T00:00:00.000Z`, not orjson's own form)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=render.jsonable, option=_PASSTHROUGH)


_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def refusal(status: int, message: str, **more: Any) -> Response:
    """A refused request, as the page shows it: one line in `error`."""
    return OrJSON({"error": message, **more}, status_code=status)


@dataclass
class Dashboard:
    """What the routes share: the App (one at a time), the token, who acts, the watcher."""

    app: ops.App
    token: str
    by: str
    watcher: RefWatcher
    origins: frozenset[str] = frozenset()  # Origin values allowed; empty: any Host's own
    lock: threading.Lock = field(default_factory=threading.Lock)
    config_seen: tuple[Any, ...] | None = None  # .frequency/ as the App's config read it

    async def call(self, fn: Callable[[], R]) -> R:
        """Run an ops call in a worker thread, one at a time, on the configuration as the
        files say now (a long-lived App would otherwise keep the first one it read)."""

        def locked() -> R:
            with self.lock:
                seen = config_token(self.app.root)
                if seen != self.config_seen:
                    self.app.reload()  # a ConfigError here is this request's answer
                    self.config_seen = seen
                return fn()

        return await run_in_threadpool(locked)


def _same_origin(dash: Dashboard, request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # a script (curl, urllib): the token alone decides
    if dash.origins:
        return origin in dash.origins
    host = request.headers.get("host", "")
    return origin == f"http://{host}"  # bound to every address: the Host it was reached at


def _authorised(dash: Dashboard, request: Request) -> bool:
    got = request.headers.get("authorization", "")
    scheme, _, value = got.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), dash.token)


async def _guarded(
    dash: Dashboard, request: Request, act: Callable[[Mapping[str, Any]], Any]
) -> Response:
    """A changing request: same Origin, the token, a JSON object body, then the ops call."""
    if not _same_origin(dash, request):
        return refusal(403, "refused: this request comes from another origin")
    if not _authorised(dash, request):
        return Response(
            orjson.dumps({"error": "refused: changing requests need Authorization: Bearer TOKEN"}),
            status_code=401,
            media_type="application/json",
            headers={"www-authenticate": "Bearer"},
        )
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return refusal(400, "the request body is not JSON")
    if not isinstance(body, dict):
        return refusal(400, "the request body must be a JSON object")
    return await _answer(dash, lambda: act(body))


async def _answer(dash: Dashboard, fn: Callable[[], Any]) -> Response:
    started = time.perf_counter()
    try:
        result = await dash.call(fn)
    except errors.ConfigError as exc:  # every problem, as the CLI prints them
        lines = [str(p) for p in exc.problems]
        return refusal(503, "; ".join(lines), code=exc.code, problems=lines)
    except errors.FreqError as exc:
        return refusal(
            _error_status(exc),
            render.error_line(exc),
            code=exc.code,
            hint=render.hint_text(exc.hint) if exc.hint else None,
        )
    except Exception as exc:  # the dashboard's boundary, as the CLI's: one line
        path = _crash_report(exc)
        return refusal(500, f"internal error: {type(exc).__name__}: {exc} (details in {path})")
    # how long the ops reads took, in the standard header browsers' tools show (bench m)
    spent = f"ops;dur={(time.perf_counter() - started) * 1e3:.1f}"
    return OrJSON(result, headers={"server-timing": spent})


def _crash_report(exc: BaseException) -> str:
    """The traceback in a file, secrets masked, as the CLI's boundary writes it."""
    import os
    import platform
    import sys
    import tempfile
    import traceback

    from freq import __version__
    from freq.secrets import Redactor

    secrets = Redactor.of_env(os.environ)
    fd, path = tempfile.mkstemp(prefix="freq-crash-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(f"git-freq {__version__} (serve)\npython {sys.version}\n")
        f.write(f"platform {platform.platform()}\n\n")
        f.write(secrets.text("".join(traceback.format_exception(exc))))
    return path


def _text(body: Mapping[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise errors.UsageError(f"{key} must be a string")
    return value


def build(dash: Dashboard) -> Starlette:
    """The Starlette app: the page, its assets, the JSON API and the event stream."""
    a, by = dash.app, dash.by

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    async def get_state(request: Request) -> Response:
        return await _answer(dash, lambda: api.state(a))

    async def get_subject(request: Request) -> Response:
        f, s = request.path_params["factory"], request.path_params["subject"]
        return await _answer(dash, lambda: api.subject(a, f, s))

    async def get_dlq(request: Request) -> Response:
        f = request.query_params.get("factory") or None
        return await _answer(dash, lambda: api.dlq(a, f))

    async def get_costs(request: Request) -> Response:
        group = request.query_params.get("by", "step")
        return await _answer(dash, lambda: api.costs(a, group))

    async def get_graph(request: Request) -> Response:
        return await _answer(dash, lambda: api.graph(a))

    async def get_locks(request: Request) -> Response:
        return await _answer(dash, lambda: ops.list_locks(a, include_free=True))

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[ServerSentEvent]:
            seen = dash.watcher.version
            yield ServerSentEvent(data=str(seen), event="hello", retry=STREAM_RETRY_MS)
            while not await request.is_disconnected():
                now = await dash.watcher.wait(seen, STREAM_IDLE_SECONDS)
                if now != seen:
                    seen = now
                    yield ServerSentEvent(data=str(now), event="change")
                else:
                    yield ServerSentEvent(comment="idle")

        return EventSourceResponse(stream(), headers={"cache-control": "no-store"})

    def post(act: Callable[[Request, Mapping[str, Any]], Any]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            return await _guarded(dash, request, lambda body: act(request, body))

        return endpoint

    def transition(r: Request, b: Mapping[str, Any]) -> Any:
        p = r.path_params
        return ops.transition(
            a, p["factory"], p["subject"], _text(b, "state"), reason=_text(b, "reason"), by=by
        )

    def requeue(r: Request, b: Mapping[str, Any]) -> Any:
        return ops.dlq_requeue(a, r.path_params["id"], reason=_text(b, "reason"), by=by)

    def diagnose(r: Request, b: Mapping[str, Any]) -> Any:
        return ops.dlq_diagnose(a, r.path_params["id"], by=by)

    def fix(r: Request, b: Mapping[str, Any]) -> Any:
        return ops.dlq_fix(a, r.path_params["id"], reason=_text(b, "reason"), by=by)

    def pause(r: Request, b: Mapping[str, Any]) -> Any:
        return ops.pause(a, r.path_params["factory"], reason=_text(b, "reason"), by=by)

    def resume(r: Request, b: Mapping[str, Any]) -> Any:
        return ops.resume(a, r.path_params["factory"], reason=_text(b, "reason"), by=by)

    def autonomy(r: Request, b: Mapping[str, Any]) -> Any:
        f = r.path_params["factory"]
        return ops.set_autonomy(a, f, _text(b, "level"), reason=_text(b, "reason"), by=by)

    def approve(r: Request, b: Mapping[str, Any]) -> Any:
        p = r.path_params
        return ops.approve(
            a, p["factory"], p["subject"], p["step"], reason=_text(b, "reason"), by=by
        )

    def break_lock(r: Request, b: Mapping[str, Any]) -> Any:
        return ops.break_lock(a, r.path_params["name"], reason=_text(b, "reason"), by=by)

    routes = [
        Route("/", index),
        Route("/api/state", get_state),
        Route("/api/subjects/{factory}/{subject}", get_subject),
        Route("/api/dlq", get_dlq),
        Route("/api/costs", get_costs),
        Route("/api/graph", get_graph),
        Route("/api/locks", get_locks),
        Route("/api/events", events),
        Route("/api/subjects/{factory}/{subject}/transition", post(transition), methods=["POST"]),
        Route("/api/dlq/{id}/requeue", post(requeue), methods=["POST"]),
        Route("/api/dlq/{id}/diagnose", post(diagnose), methods=["POST"]),
        Route("/api/dlq/{id}/fix", post(fix), methods=["POST"]),
        Route("/api/factories/{factory}/pause", post(pause), methods=["POST"]),
        Route("/api/factories/{factory}/resume", post(resume), methods=["POST"]),
        Route("/api/factories/{factory}/autonomy", post(autonomy), methods=["POST"]),
        Route("/api/approvals/{factory}/{subject}/{step}", post(approve), methods=["POST"]),
        Route("/api/locks/{name:path}/break", post(break_lock), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        dash.watcher.start()
        try:
            yield
        finally:
            await dash.watcher.stop()

    return Starlette(routes=routes, lifespan=lifespan)
