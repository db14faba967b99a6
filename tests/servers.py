"""Real git servers on 127.0.0.1 for tests: a folder of bare repositories served over file://,
git:// (`git daemon`) and smart http:// (`git http-backend` as CGI behind lighttpd).

Imports nothing of freq and not pytest: fixtures in tests/conftest.py wrap these classes.

Every server runs in a process group of its own, so `stop()` kills it with the children it
forked (git daemon's per-connection `git upload-pack`, lighttpd's CGI processes), and a
`weakref.finalize` kills the group if a test forgets to (also at interpreter exit). `stop()`
keeps the port; `start()` serves on the same port again, so a test can take a remote away in
the middle of a step and bring it back under the same URL.

What each transport can and cannot do (atomic push, protocol v2, ref prefixes; git CLI and
dulwich) is listed in tests/test_servers.py's docstring and asserted there.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Self

START_DEADLINE = 10.0  # seconds a server gets to accept connections on its port
HTTP_USER = "freq-test"  # REMOTE_USER lighttpd hands to git http-backend
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class ServerError(RuntimeError):
    """A server did not come up; the message carries its command line and its logs."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_lighttpd() -> str | None:
    """The lighttpd binary (PATH, then Debian's /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("lighttpd")
    if found:
        return found
    debian = "/usr/sbin/lighttpd"
    return debian if os.access(debian, os.X_OK) else None


@cache
def git_exec_path() -> Path:
    """Where git keeps its helpers (`git --exec-path`), git-http-backend among them."""
    out = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def init_bare(path: Path) -> Path:
    """A new empty bare repository at `path` (parents created) whose HEAD is main."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "-q", "--bare", "--initial-branch=main", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def _die_with_parent() -> None:
    """In the server's child process before exec: on Linux, SIGKILL it when the test process
    dies, also when no finalizer can run (the test process SIGKILLed, or SIGTERMed by a CI
    timeout: Python runs no atexit handlers on a signal it does not handle). Linux ties this
    to the thread that started the server: start servers from a thread that outlives them."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group `proc` leads and reap `proc` (its children go to init)."""
    if proc.poll() is None:  # not reaped yet, so its pid is still its group's id
        with contextlib.suppress(ProcessLookupError):  # it exited after the poll
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Remote:
    """A folder `base` of bare repositories, reachable by URL; subclasses serve it.

    `init(name)` makes a bare repository `base/name`; `url(name)` is how clients reach it.
    `start()`/`stop()` bring the remote up and take it away; a context manager starts it
    (when stopped) and `close()`s it on exit.
    """

    kind = ""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)

    def init(self, name: str) -> Path:
        """A new empty bare repository `name` in the served folder."""
        return init_bare(self.base / name)

    def url(self, name: str) -> str:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop for good (and drop any state folder)."""
        self.stop()

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileRemote(Remote):
    """file:// URLs on `base`, the server-less transport. `stop()` takes the folder away (it is
    renamed aside, as an unmounted share would vanish) and `start()` puts it back, so tests of
    an unreachable remote run the same over all three transports."""

    kind = "file"

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self._aside = self.base.with_name(f".{self.base.name}.stopped")

    def url(self, name: str) -> str:
        return (self.base / name).as_uri()

    @property
    def running(self) -> bool:
        return self.base.exists()

    def start(self) -> None:
        if not self.running:
            self._aside.rename(self.base)

    def stop(self) -> None:
        if self.running:
            self.base.rename(self._aside)


class _ServerProcess(Remote):
    """A server process on 127.0.0.1:`port` in a process group of its own; its config, pid
    file and logs live in `state` (a temporary folder, removed on close, unless given).
    `env` is added to the environment of the git processes serving requests (for example
    GIT_TRACE_PACKET=<file>, to see what the server side of a protocol exchange saw)."""

    def __init__(
        self, base: Path, *, state: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(base)
        self.env = dict(env or {})
        self._own_state = state is None
        self.state = Path(tempfile.mkdtemp(prefix=f"freq-{self.kind}-")) if state is None else state
        self.state.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], None] | None = None
        self._started_once = False

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write what the server reads at start (config files)."""

    def _logs(self) -> str:
        parts = []
        for log in sorted(self.state.glob("*.log")):
            text = log.read_text(errors="replace").strip()
            if text:
                parts.append(f"--- {log.name}\n{text}")
        return "\n".join(parts) or "(no output)"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start serving on `port` and return once the port accepts connections.

        The first start may move to another port if the kernel's pick was taken meanwhile;
        later starts keep the port (the URLs handed out stay valid) or fail.
        """
        if self.running:
            raise ServerError(f"{self.kind} server on port {self.port} is already running")
        tries = 1 if self._started_once else 3
        for attempt in range(tries):
            try:
                self._spawn()
            except ServerError:
                if attempt + 1 == tries or "in use" not in self._logs():
                    raise
                self.port = free_port()
            else:
                self._started_once = True
                return

    def _spawn(self) -> None:
        self._prepare()
        argv = self._argv()
        with (self.state / "stderr.log").open("wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=self.state,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **self.env},
                start_new_session=True,  # its own process group: stop() kills its children too
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (tests fork from one thread)
            )
        self._proc = proc
        self._finalizer = weakref.finalize(self, _kill_group, proc)
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if proc.poll() is not None:
                self._kill()
                raise ServerError(
                    f"{self.kind} server exited with {proc.returncode} before accepting on "
                    f"127.0.0.1:{self.port}\n$ {' '.join(argv)}\n{self._logs()}"
                )
            try:
                # git daemon logs this probe as "the remote end hung up unexpectedly"
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                if time.monotonic() > deadline:
                    self._kill()
                    raise ServerError(
                        f"{self.kind} server did not accept on 127.0.0.1:{self.port} within "
                        f"{START_DEADLINE:.0f}s\n$ {' '.join(argv)}\n{self._logs()}"
                    ) from None
                time.sleep(0.005)  # polling the port, the one wait the suite allows
            else:
                return

    def _kill(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # kills the group once; later calls do nothing
            self._finalizer = None
        self._proc = None

    def stop(self) -> None:
        """Kill the server and everything it started; connections to the port are refused
        when this returns."""
        if self._finalizer is None:
            return
        self._kill()
        # the leader is reaped, but other members of its group die on their own time; wait
        # until nothing listens (SIGKILLed processes close their sockets within moments)
        deadline = time.monotonic() + START_DEADLINE
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except ConnectionRefusedError:
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"127.0.0.1:{self.port} still accepts after its server was killed"
                )
            time.sleep(0.005)  # polling the port, as start() does

    def close(self) -> None:
        self.stop()
        if self._own_state:
            shutil.rmtree(self.state, ignore_errors=True)


class GitDaemon(_ServerProcess):
    """`git daemon` serving every repository under `base` at git://127.0.0.1:PORT/NAME, push
    included (receive-pack enabled)."""

    kind = "git"

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def _argv(self) -> list[str]:
        # `git daemon` is git-daemon run as a child of a `git` process: with that wrapper as
        # the process waited for, the listener could outlive stop() by a moment and accept
        # (then reset) a connection meant to find the remote down
        return [
            str(git_exec_path() / "git-daemon"),
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={self.port}",
            f"--base-path={self.base}",
            "--export-all",
            "--enable=receive-pack",
            "--informative-errors",
            str(self.base),
        ]


def _lighttpd_str(value: object) -> str:
    """A lighttpd config string literal."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class HttpBackend(_ServerProcess):
    """Smart HTTP: `git http-backend` as CGI behind lighttpd, serving every repository under
    `base` at http://127.0.0.1:PORT/git/NAME, push included.

    Push is allowed by REMOTE_USER, which lighttpd sets for every request (git http-backend
    enables receive-pack for an authenticated user unless http.receivepack says otherwise),
    rather than by `http.receivepack=true` in each repository: repositories created after
    the server started take pushes too. Raises ServerError when lighttpd is not installed
    (find_lighttpd); the `http_remote` fixture turns that into a skip, or a failure under CI.
    """

    kind = "http"

    def __init__(
        self,
        base: Path,
        *,
        state: Path | None = None,
        env: Mapping[str, str] | None = None,
        lighttpd: str | None = None,
    ) -> None:
        found = lighttpd or find_lighttpd()
        if found is None:
            raise ServerError("lighttpd is not installed (Debian package lighttpd)")
        self.lighttpd = found
        super().__init__(base, state=state, env=env)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/git/{name}"

    def _argv(self) -> list[str]:
        return [self.lighttpd, "-D", "-f", str(self.state / "lighttpd.conf")]

    def _prepare(self) -> None:
        docroot = self.state / "htdocs"
        docroot.mkdir(exist_ok=True)
        home = self.state / "home"
        home.mkdir(exist_ok=True)
        s = _lighttpd_str
        cgi_env = {
            "GIT_PROJECT_ROOT": str(self.base),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": HTTP_USER,
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",
            **self.env,
        }
        setenv = "".join(f"        {s(k)} => {s(v)},\n" for k, v in cgi_env.items())
        # mod_cgi gives the CGI a fresh environment (the server's own is not inherited), so
        # the hermetic bits of tests/conftest.py hermetic_git are set here again. Request
        # headers reach the CGI as HTTP_* variables: `Git-Protocol: version=2` becomes
        # HTTP_GIT_PROTOCOL, which git http-backend turns into GIT_PROTOCOL (protocol v2).
        conf = f"""
server.modules = ("mod_alias", "mod_cgi", "mod_setenv", "mod_accesslog")
server.bind = "127.0.0.1"
server.port = {self.port}
server.document-root = {s(docroot)}
server.pid-file = {s(self.state / "lighttpd.pid")}
server.errorlog = {s(self.state / "error.log")}
accesslog.filename = {s(self.state / "access.log")}
alias.url = ("/git" => {s(git_exec_path() / "git-http-backend")})
$HTTP["url"] =~ "^/git/" {{
    cgi.assign = ("" => "")
    setenv.add-environment = (
{setenv}    )
}}
"""
        (self.state / "lighttpd.conf").write_text(conf)
