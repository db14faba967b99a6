"""A real `git freq serve` process for the dashboard's tests, and a small HTTP client.

The server is started as `python -m freq serve --port 0` in a real repository (a free port
picked by the kernel, read back from the URL it prints) and stopped with SIGINT, then
SIGKILL if it does not go; requests are made with http.client, so nothing is mocked.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TOKEN = "test-token-0123456789"


@dataclass
class Answer:
    """One HTTP response: status, headers (lower-case names) and the JSON body."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Server:
    """A running dashboard."""

    proc: subprocess.Popen[str]
    url: str  # http://127.0.0.1:PORT/
    token: str

    @property
    def origin(self) -> str:
        return self.url.rstrip("/")

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 0

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "default",
        origin: str | None = None,
        host: str | None = None,
    ) -> Answer:
        """`method path` with the token (unless token=None) and an Origin if given."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"content-type": "application/json"}
        if token is not None:
            headers["authorization"] = f"Bearer {self.token if token == 'default' else token}"
        if origin is not None:
            headers["origin"] = origin
        if host is not None:
            headers["host"] = host
        data = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, path, body=data, headers=headers)
            res = conn.getresponse()
            raw = res.read()
            heads = {k.lower(): v for k, v in res.getheaders()}
        finally:
            conn.close()
        ctype = heads.get("content-type", "")
        parsed = json.loads(raw) if ctype.startswith("application/json") else raw.decode()
        return Answer(res.status, heads, parsed)

    def get(self, path: str) -> Any:
        got = self.request("GET", path, token=None)
        assert got.status == 200, (got.status, got.body)
        return got.body

    def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return self.request("POST", path, body if body is not None else {}, **kw)


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError(f"git freq serve printed nothing in {timeout}s")
    finally:
        sel.close()
    return proc.stdout.readline()


@contextmanager
def serving(cwd: Path, *, token: str = TOKEN, args: tuple[str, ...] = ()) -> Iterator[Server]:
    """`git freq serve --port 0` in `cwd` with FREQ_TOKEN=token, until the block ends."""
    env = {**os.environ, "FREQ_TOKEN": token, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "freq", "serve", "--port", "0", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = _first_line(proc, 60)
        assert line.startswith("serving http://"), (line, proc.poll())
        url = line.split()[1].split("#", 1)[0]
        yield Server(proc=proc, url=url, token=token)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGINT (uvicorn's graceful stop), then SIGKILL of the whole group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()


def commits(repo: Path) -> list[str]:
    """Every commit under refs/frequency, newest first: `hash subject` lines."""
    out = subprocess.run(
        ["git", "log", "--glob=refs/frequency", "--format=%H %s"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def cli_error(repo: Path, *args: str) -> str:
    """The one error line `git freq ARGS` prints on stderr when refused, without `git freq: `
    (a progress line before it, as `dlq diagnose` prints, is not the error)."""
    res = subprocess.run(
        [sys.executable, "-m", "freq", *args], cwd=repo, capture_output=True, text=True, check=False
    )
    assert res.returncode != 0, res
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("git freq: ")]
    return line.removeprefix("git freq: ")
