"""The test servers of tests/servers.py carry what a Frequency remote needs, over file://,
git:// and http://: compare-and-swap pushes of refs/frequency/*, atomic multi-ref pushes,
namespace fetches, protocol v2 ref prefixes, and a remote that goes away and comes back;
through the git CLI and through dulwich's client.

Findings (git 2.39, dulwich 1.2.21, lighttpd 1.4.69), asserted below:
- git CLI: everything works over all three, protocol v2 included (lighttpd passes
  `Git-Protocol` on as HTTP_GIT_PROTOCOL, git http-backend honours it). `git fetch` of
  refs/frequency/* sends `ref-prefix refs/frequency/`; `git ls-remote URL PATTERN` sends no
  ref-prefix (patterns match name tails) and gets every ref advertised.
- dulwich push is v0 (so is git's: v2 has no push); atomic push works over
  SubprocessGitClient, TCPGitClient and HttpGitClient, and a lost race rejects every ref.
  get_transport_and_path gives LocalGitClient for file://, whose atomic push checks all
  refs and then moves them one by one without a lock (not atomic against a concurrent
  writer), so file:// goes through SubprocessGitClient here.
- dulwich fetch negotiates v2 over git:// and http:// (the server filters by ref_prefix);
  SubprocessGitClient sets no GIT_PROTOCOL, so file:// speaks v0: every ref is advertised
  and dulwich filters on its side.
- a stopped remote: git exits non-zero; dulwich raises ConnectionRefusedError (an OSError)
  over git://, GitProtocolError wrapping urllib3's connection error over http://, and
  HangupException (a GitProtocolError) over file:// (DOWN below).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest
from dulwich.client import GitClient, SubprocessGitClient, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException
from dulwich.repo import Repo

from .conftest import FreqRepo, git, need_lighttpd, new_repo
from .servers import FileRemote, GitDaemon, HttpBackend, Remote, ServerError

pytestmark = pytest.mark.git

A = "refs/frequency/test/a"
B = "refs/frequency/test/b"


def _push(repo: FreqRepo, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "--porcelain", url, *args],
        cwd=repo.path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _commit(repo: FreqRepo, message: str) -> str:
    """A new commit object (main's tree) that no branch points to."""
    return repo.git("commit-tree", "-p", "main", "-m", message, "main^{tree}").strip()


def _remote_refs(remote: Remote, name: str) -> dict[str, str]:
    """The refs of bare repository `name`, read on disk (not through the server)."""
    out = git(remote.base / name, "for-each-ref", "--format=%(objectname) %(refname)")
    return {ref: oid for oid, ref in (line.split() for line in out.splitlines())}


@pytest.fixture
def seeded(remote: Remote, tmp_path: Path) -> tuple[Remote, FreqRepo]:
    """Bare repository `r.git` on `remote` holding main, and the work repository it came from."""
    remote.init("r.git")
    work = new_repo(tmp_path / "work")
    assert _push(work, remote.url("r.git"), "main").returncode == 0
    return remote, work


def test_clone_and_lease_pushes_in_a_custom_namespace(seeded: tuple[Remote, FreqRepo], tmp_path):
    """A clone works; `--atomic --force-with-lease` creates a ref under refs/frequency/test/
    (lease: absent), moves it (lease: its value) and refuses to move it on a stale lease."""
    remote, work = seeded
    url = remote.url("r.git")
    subprocess.run(["git", "clone", "-q", url, str(tmp_path / "clone")], check=True, timeout=60)
    assert (tmp_path / "clone" / "README").read_text() == "hello\n"
    one, two = _commit(work, "one"), _commit(work, "two")

    assert _push(work, url, "--atomic", f"--force-with-lease={A}:", f"{one}:{A}").returncode == 0
    assert (
        _push(work, url, "--atomic", f"--force-with-lease={A}:{one}", f"{two}:{A}").returncode == 0
    )
    stale = _push(work, url, "--atomic", f"--force-with-lease={A}:{one}", f"{one}:{A}")
    assert stale.returncode != 0
    assert "stale info" in stale.stdout
    assert _remote_refs(remote, "r.git")[A] == two


def test_atomic_push_with_one_stale_lease_moves_neither_ref(seeded: tuple[Remote, FreqRepo]):
    """Two refs pushed atomically, one lease right and one wrong: both stay where they were."""
    remote, work = seeded
    url = remote.url("r.git")
    one, two = _commit(work, "one"), _commit(work, "two")
    assert _push(work, url, "--atomic", f"{one}:{A}", f"{one}:{B}").returncode == 0

    res = _push(
        work,
        url,
        "--atomic",
        f"--force-with-lease={A}:{one}",
        f"--force-with-lease={B}:{two}",  # wrong: B is at one
        f"{two}:{A}",
        f"{two}:{B}",
    )
    assert res.returncode != 0
    refs = _remote_refs(remote, "r.git")
    assert (refs[A], refs[B]) == (one, one)


def test_fetch_of_the_namespace_refspec(seeded: tuple[Remote, FreqRepo], tmp_path):
    """`git fetch origin 'refs/frequency/*:refs/frequency/*'` brings every ref of the namespace
    and its objects."""
    remote, work = seeded
    one, two = _commit(work, "one"), _commit(work, "two")
    assert _push(work, remote.url("r.git"), f"{one}:{A}", f"{two}:{B}").returncode == 0
    other = new_repo(tmp_path / "other")
    other.git("remote", "add", "origin", remote.url("r.git"))
    other.git("fetch", "-q", "origin", "refs/frequency/*:refs/frequency/*")
    assert other.git("rev-parse", A, B).split() == [one, two]
    assert other.git("cat-file", "-t", two).strip() == "commit"


def _packets(args: list[str], cwd: Path, side: str) -> tuple[str, list[str], list[str]]:
    """Run git `args` with GIT_TRACE_PACKET: its stdout, and the packets the `side` process
    (`ls-remote`, `fetch`) sent and received."""
    res = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, "GIT_TRACE_PACKET": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = res.stderr.splitlines()
    sent = [line.split(f"{side}> ", 1)[1] for line in lines if f" {side}> " in line]
    got = [line.split(f"{side}< ", 1)[1] for line in lines if f" {side}< " in line]
    return res.stdout, sent, got


def test_ls_refs_over_v2_with_a_ref_prefix(seeded: tuple[Remote, FreqRepo], tmp_path):
    """Protocol v2 `ls-refs` with `ref-prefix refs/frequency/`: `git fetch` of the namespace
    sends it and the server answers with that namespace only. `git ls-remote URL PATTERN`
    speaks v2 too and prints only the namespace, but filters on its side: its patterns match
    the tail of ref names, so git (since 2.21) sends no ref-prefix for them and the server
    advertises every ref; reading a remote's namespace cheaply needs fetch or dulwich."""
    remote, work = seeded
    url = remote.url("r.git")
    one = _commit(work, "one")
    assert _push(work, url, f"{one}:{A}", f"{one}:refs/other/x").returncode == 0
    others = ("refs/heads/main", "refs/other/x")

    out, sent, got = _packets(["ls-remote", url, "refs/frequency/*"], work.path, "ls-remote")
    assert out == f"{one}\t{A}\n"
    assert "version 2" in got
    assert "command=ls-refs" in sent
    assert not any(line.startswith("ref-prefix") for line in sent), sent
    assert any(line.endswith(others) for line in got), got

    other = new_repo(tmp_path / "other")
    _, sent, got = _packets(
        ["fetch", "-q", url, "refs/frequency/*:refs/frequency/*"], other.path, "fetch"
    )
    assert "version 2" in got
    assert "command=ls-refs" in sent
    assert "ref-prefix refs/frequency/" in sent
    assert f"{one} {A}" in got
    assert not any(line.endswith(others) for line in got), got
    assert other.git("rev-parse", A).strip() == one


def test_push_fails_while_stopped_and_works_after_start(seeded: tuple[Remote, FreqRepo]):
    """A stopped remote fails a push with a non-zero exit; started again, the same URL (same
    port) takes the push."""
    remote, work = seeded
    url = remote.url("r.git")
    one = _commit(work, "one")
    remote.stop()
    down = _push(work, url, f"{one}:{A}")
    assert down.returncode != 0, down
    remote.start()
    assert remote.url("r.git") == url
    assert _push(work, url, f"{one}:{A}").returncode == 0
    assert _remote_refs(remote, "r.git")[A] == one


# dulwich's client


def _client(url: str) -> tuple[GitClient, str]:
    """dulwich's client for `url`; file:// through `git receive-pack`/`upload-pack`
    subprocesses, as LocalGitClient's atomic push is not atomic (module docstring)."""
    client, path = get_transport_and_path(url)
    if urlparse(url).scheme == "file":
        return SubprocessGitClient(), path
    return client, path


def _send(url: str, work: FreqRepo, updates: dict[bytes, bytes], race=None):  # type: ignore[no-untyped-def]
    """Push `updates` (ref -> new oid) atomically with dulwich; `race(refs)` runs after the
    remote's refs were read and before the update is sent, as a concurrent writer would."""
    client, path = _client(url)
    local = Repo(str(work.path))

    def update_refs(refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
        if race is not None:
            race(refs)
        return {**refs, **updates}

    try:
        return client.send_pack(path, update_refs, local.generate_pack_data, atomic=True)
    finally:
        local.close()
        client.close()


def test_dulwich_atomic_push_creates_and_moves_refs(seeded: tuple[Remote, FreqRepo]):
    """dulwich's send_pack(atomic=True) creates two refs in one push, then moves both."""
    remote, work = seeded
    url = remote.url("r.git")
    one, two = _commit(work, "one"), _commit(work, "two")
    res = _send(url, work, {A.encode(): one.encode(), B.encode(): one.encode()})
    assert res.ref_status == {A.encode(): None, B.encode(): None}
    res = _send(url, work, {A.encode(): two.encode(), B.encode(): two.encode()})
    assert res.ref_status == {A.encode(): None, B.encode(): None}
    refs = _remote_refs(remote, "r.git")
    assert (refs[A], refs[B]) == (two, two)


def test_dulwich_atomic_push_that_lost_a_race_moves_nothing(seeded: tuple[Remote, FreqRepo]):
    """Another writer moves B between dulwich reading the refs and sending its update: the
    server rejects the whole atomic push, A included."""
    remote, work = seeded
    url = remote.url("r.git")
    one, two, theirs = _commit(work, "one"), _commit(work, "two"), _commit(work, "theirs")
    assert (
        _push(work, url, f"{one}:{A}", f"{one}:{B}", f"{theirs}:refs/frequency/test/t").returncode
        == 0
    )

    def race(refs: dict[bytes, bytes]) -> None:
        assert refs[B.encode()] == one.encode()
        git(remote.base / "r.git", "update-ref", B, theirs, one)

    res = _send(url, work, {A.encode(): two.encode(), B.encode(): two.encode()}, race=race)
    failed = "atomic transaction failed"  # receive-pack's word for both, the stale one too
    assert res.ref_status == {A.encode(): failed, B.encode(): failed}
    refs = _remote_refs(remote, "r.git")
    assert (refs[A], refs[B]) == (one, theirs)


@contextmanager
def _traced(kind: str, tmp_path: Path, trace: Path, monkeypatch) -> Iterator[Remote]:  # type: ignore[no-untyped-def]
    """`kind`'s remote with GIT_TRACE_PACKET=`trace` set for the git processes serving it."""
    base = tmp_path / "remotes"
    env = {"GIT_TRACE_PACKET": str(trace)}
    if kind == "file":
        monkeypatch.setenv("GIT_TRACE_PACKET", str(trace))  # SubprocessGitClient's children
        yield FileRemote(base)
    elif kind == "git":
        with GitDaemon(base, state=tmp_path / "git-daemon", env=env) as server:
            yield server
    else:
        with HttpBackend(base, state=tmp_path / "http", env=env, lighttpd=need_lighttpd()) as s:
            yield s


@pytest.mark.parametrize("kind", ["file", "git", "http"])
def test_dulwich_fetch_with_a_ref_prefix(kind: str, tmp_path: Path, monkeypatch):
    """dulwich's fetch(ref_prefix=[b"refs/frequency/"]) returns only that namespace and its
    objects; over git:// and http:// it speaks v2 and the server filters (`ref-prefix` in the
    server's packet trace), over file:// (SubprocessGitClient) it speaks v0."""
    trace = tmp_path / "packets.trace"
    with _traced(kind, tmp_path, trace, monkeypatch) as remote:
        remote.init("r.git")
        work = new_repo(tmp_path / "work")
        one = _commit(work, "one")
        assert _push(work, remote.url("r.git"), "main", f"{one}:{A}").returncode == 0
        trace.unlink(missing_ok=True)

        client, path = _client(remote.url("r.git"))
        target = Repo.init_bare(str(tmp_path / "target.git"), mkdir=True)
        try:
            listed = client.get_refs(path.encode(), ref_prefix=[b"refs/frequency/"])
            assert listed.refs == {A.encode(): one.encode()}
            res = client.fetch(path, target, ref_prefix=[b"refs/frequency/"])
            assert res.refs == {A.encode(): one.encode()}
            assert one.encode() in target.object_store
        finally:
            target.close()
            client.close()

    served = trace.read_text()
    if kind == "file":
        assert client.protocol_version == 0
        assert "refs/heads/main" in served  # advertised in full; dulwich dropped it
    else:
        assert client.protocol_version == 2
        assert "upload-pack< command=ls-refs" in served
        assert "upload-pack< ref-prefix refs/frequency/" in served
        assert "refs/heads/main" not in served


# What dulwich raises when the remote is down: no common type but Exception.
DOWN = {
    "file": (HangupException, "does not appear to be a git repository"),
    "git": (ConnectionRefusedError, "Connection refused"),
    "http": (GitProtocolError, "Connection refused"),  # urllib3's error, wrapped
}


def test_dulwich_push_while_stopped_raises_and_works_after_start(seeded: tuple[Remote, FreqRepo]):
    """A stopped remote makes dulwich's send_pack raise (a connection error, not a status);
    started again, the same URL takes the push."""
    remote, work = seeded
    url = remote.url("r.git")
    one = _commit(work, "one")
    remote.stop()
    with pytest.raises(DOWN[remote.kind][0], match=DOWN[remote.kind][1]):
        _send(url, work, {A.encode(): one.encode()})
    remote.start()
    assert _send(url, work, {A.encode(): one.encode()}).ref_status == {A.encode(): None}


def test_a_server_that_does_not_come_up_fails_with_its_output(tmp_path: Path):
    """A server process that exits at start fails `start()` with its exit code, command line
    and stderr in the message, and nothing is left running."""
    broken = tmp_path / "broken-lighttpd"
    broken.write_text("#!/bin/sh\necho 'cannot serve today' >&2\nexit 3\n")
    broken.chmod(0o755)
    server = HttpBackend(tmp_path / "remotes", state=tmp_path / "state", lighttpd=str(broken))
    with pytest.raises(
        ServerError, match=r"(?s)exited with 3 .*broken-lighttpd -D .*cannot serve today"
    ):
        server.start()
    assert not server.running
