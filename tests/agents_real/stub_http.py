"""A loopback HTTP server the vendor-API stubs answer through; every request is kept.

Standard library only (http.server, threading). A stub is a handler: Request -> Reply. A
Reply is either a whole body (JSON errors) or a list of server-sent events written one by
one, the connection closed after the last (an HTTP/1.1 body delimited by the close, which
every CLI's HTTP client reads as the end of the stream).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class Request:
    """One request the CLI sent."""

    method: str
    path: str  # with the query string
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the stub answers: a status, headers and a body or a stream of SSE frames."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    events: tuple[bytes, ...] | None = None  # SSE frames; None: `body` is the whole answer


def json_reply(status: int, doc: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A JSON body with `status`."""
    return Reply(
        status=status,
        headers=(("content-type", "application/json"), *headers),
        body=json.dumps(doc).encode(),
    )


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event frame: an optional `event:` line and one `data:` line."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def sse_reply(frames: list[bytes], headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A 200 event stream of `frames`."""
    return Reply(
        status=200,
        headers=(("content-type", "text/event-stream"), ("cache-control", "no-cache"), *headers),
        events=tuple(frames),
    )


Handler = Callable[[Request], Reply]


@dataclass
class StubServer:
    """A running stub on 127.0.0.1 (a free port): `url`, and the `requests` it received."""

    handler: Handler
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self, path_part: str) -> list[Request]:
        """The requests whose path contains `path_part`."""
        with self._lock:
            return [r for r in self.requests if path_part in r.path]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


def _handler_class(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            stub._record(request)
            reply = stub.handler(request)
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("connection", "close")
            if reply.events is None:
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            else:
                self.end_headers()
                for frame in reply.events:
                    self.wfile.write(frame)
                    self.wfile.flush()
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the requests are kept in `stub.requests` instead."""

    return _Handler


@contextmanager
def serve(handler: Handler) -> Iterator[StubServer]:
    """Run `handler` on a free loopback port for the duration of the block."""
    stub = StubServer(handler)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(stub))
    server.daemon_threads = True
    stub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Scenario(Enum):
    """What a stub makes of the run: the cases every CLI is proved against."""

    SUCCESS = "success"  # one tool call that writes hello.txt, then a final answer
    AUTH = "auth"  # the key is refused
    QUOTA = "quota"  # a usage limit with a reset time
    OVERLOADED = "overloaded"  # the vendor is at capacity
    CONTEXT = "context"  # the prompt is longer than the model's context window
