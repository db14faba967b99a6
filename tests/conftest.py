"""Shared fixtures: a hermetic git environment and a `freq_repo` project builder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .servers import FileRemote, GitDaemon, HttpBackend, Remote, find_lighttpd

REAL_HOME = os.environ.get("HOME", "")


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate every test from the developer's git config, home, locale and clock."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_EDITOR", "false")
    monkeypatch.setenv("LC_ALL", "C")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "FREQ_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def git(cwd: Path, *args: str, check: bool = True, input_text: str | None = None) -> str:
    """Run the real git CLI (with `input_text` on stdin) and return its stdout."""
    out = subprocess.run(
        ["git", *args], cwd=cwd, check=check, capture_output=True, text=True, input=input_text
    )
    return out.stdout


@dataclass
class Outcome:
    """What one `git freq` call did."""

    code: int
    out: str
    err: str

    def assert_success(self) -> Outcome:
        assert self.code == 0, f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"
        return self

    def assert_failure(self, code: int = 1) -> Outcome:
        assert self.code == code, f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"
        assert "Traceback" not in self.err, self.err
        return self


@dataclass
class FreqRepo:
    """A real git repository in a temporary folder with a .frequency/ project."""

    path: Path

    def write(self, rel: str, text: str) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))
        return p

    def git(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        return git(self.path, *args, check=check, input_text=input_text)

    def run(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> Outcome:
        """Run `git freq ARGS` in-process through the CLI boundary (`stdin`: its input)."""
        from click.testing import CliRunner

        from freq.cli import cli

        runner = CliRunner()
        old = Path.cwd()
        os.chdir(self.path)
        try:
            res = runner.invoke(cli, list(args), catch_exceptions=False, env=env, input=stdin)
        finally:
            os.chdir(old)
        return Outcome(res.exit_code, res.stdout, res.stderr)

    def run_process(self, *args: str, timeout: float = 120) -> Outcome:
        """Run `git freq ARGS` as a real subprocess."""
        res = subprocess.run(
            [sys.executable, "-m", "freq", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Outcome(res.returncode, res.stdout, res.stderr)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[FreqRepo]:
    """An empty git repository with one commit on main."""
    yield new_repo(tmp_path / "repo")


@pytest.fixture
def freq_repo(repo: FreqRepo):  # type: ignore[no-untyped-def]
    """Build a project from a dict of {relative path: text}."""

    def make(files: dict[str, str]) -> FreqRepo:
        for rel, text in files.items():
            repo.write(rel, text)
        return repo

    return make


def one_step(run: str, *, retry: str = "", locks: str = "") -> str:
    """A factory `f` of one step, `work` (new -> done), running `run` (YAML text), with
    optional `retry:` and `locks:` values (YAML text)."""
    extra = "".join(
        f"    {key}: {value}\n" for key, value in (("retry", retry), ("locks", locks)) if value
    )
    return (
        "factory_id: f\n"
        "state: {initial: new, terminal: [done]}\n"
        "steps:\n"
        "  - id: work\n"
        "    from_states: [new]\n"
        "    to_state: done\n"
        f"{extra}"
        f"    run: {run}\n"
    )


NO_BACKOFF = "{max_attempts: %d, backoff: {initial: 0s, factor: 1, max: 0s, jitter: 0}}"

# A real process that takes a lock file the way Frequency's writers do (O_EXCL + flock),
# says so, and keeps it until it is killed.
_LOCK_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def live_lock(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Hold the git lock file `path` from another live process (killed on exit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            yield holder
        finally:
            holder.kill()


def new_repo(path: Path) -> FreqRepo:
    """A git repository at `path` (created) with one commit on main."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README").write_text("hello\n")
    git(path, "add", "README")
    git(path, "commit", "-q", "-m", "initial")
    return FreqRepo(path)


CHAINS = """
factory_id: build
state:
  initial: selected
  terminal: [done]
steps:
  - {id: one, from_states: [selected], to_state: two, run: "echo one"}
  - {id: two, from_states: [two], to_state: three, run: "echo two"}
  - {id: three, from_states: [three], to_state: done, run: "echo three"}
"""


@pytest.fixture
def chains_repo(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    """Subject chains to break: app-1 and app-2 done (five commits each), `fresh` and
    `other` just added, in factory `build` (three steps)."""
    r: FreqRepo = freq_repo({".frequency/build.yaml": CHAINS})
    r.run("add", "build", "app-1", "app-2").assert_success()
    r.run("run", "--until-idle").assert_success()
    r.run("add", "build", "fresh", "other").assert_success()
    return r


def need_lighttpd() -> str:
    """The lighttpd binary, or skip the test (fail it under CI, which must install it)."""
    found = find_lighttpd()
    if found is None:
        reason = "lighttpd is not installed (Debian package lighttpd); http:// tests need it"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI installs it in .ci/run", pytrace=False)
        pytest.skip(reason)
    return found


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    """`git daemon` serving the bare repositories under tmp_path/remotes (push enabled)."""
    with GitDaemon(tmp_path / "remotes", state=tmp_path / "git-daemon") as server:
        yield server


@pytest.fixture
def http_backend(tmp_path: Path) -> Iterator[HttpBackend]:
    """Smart HTTP (git http-backend behind lighttpd) serving tmp_path/remotes, push enabled."""
    lighttpd = need_lighttpd()
    with HttpBackend(
        tmp_path / "remotes", state=tmp_path / "http-backend", lighttpd=lighttpd
    ) as server:
        yield server


@pytest.fixture(params=["file", "git", "http"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    """The bare repositories under tmp_path/remotes over each transport in turn: file://,
    git:// (git daemon) and http:// (git http-backend behind lighttpd)."""
    if request.param in ("git", "http"):
        server: Remote = request.getfixturevalue(
            "git_daemon" if request.param == "git" else "http_backend"
        )
        return server
    return FileRemote(tmp_path / "remotes")
