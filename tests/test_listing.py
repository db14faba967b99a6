"""Ref listings that cost what changed (freq.store.listing), and objects made durable with
their ref in one round of fsyncs (freq.store.refdb.write_loose_objects), on real
repositories written by real git processes."""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freq.store import refdb
from freq.store.listing import RACY_NS, LooseRefs, PackedRefs

from .conftest import git

pytestmark = [pytest.mark.git]

LATER = 10 * 10**9  # ns: a listing "10 s from now", to which every file looks old


def _repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "one")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "two")
    return tmp_path


def _commits(repo: Path) -> list[str]:
    return git(repo, "rev-list", "HEAD").split()


def _list(loose: LooseRefs, repo: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    prefix = "refs/frequency/"
    loose.scan(str(repo / ".git" / prefix), prefix, out)
    return out


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ref files opened from now on (builtins.open, as LooseRefs reads them)."""
    seen: list[str] = []
    real = open

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting)
    return seen


def test_an_unchanged_ref_is_not_read_again_and_a_replaced_one_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path)
    new, old = _commits(repo)
    for name in ("a", "b", "c"):
        git(repo, "update-ref", f"refs/frequency/subjects/f/{name}", old)
    loose = LooseRefs(now_ns=lambda: time.time_ns() + LATER)
    assert set(_list(loose, repo).values()) == {old}
    git(repo, "update-ref", "refs/frequency/subjects/f/b", new, old)  # a rename: a new inode
    reads = _reads(monkeypatch)
    got = _list(loose, repo)
    assert got["refs/frequency/subjects/f/b"] == new
    assert got["refs/frequency/subjects/f/a"] == got["refs/frequency/subjects/f/c"] == old
    assert [Path(p).name for p in reads] == ["b"]  # a and c came from their stat alone


def test_a_ref_rewritten_in_place_is_read_again(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    new, old = _commits(repo)
    git(repo, "update-ref", "refs/frequency/subjects/f/a", old)
    loose = LooseRefs(now_ns=lambda: time.time_ns() + LATER)
    assert _list(loose, repo) == {"refs/frequency/subjects/f/a": old}
    path = repo / ".git" / "refs" / "frequency" / "subjects" / "f" / "a"
    st0 = path.stat()
    with open(path, "r+b") as f:  # the same inode and size: only the times tell
        f.write(new.encode() + b"\n")
    os.utime(path, ns=(st0.st_atime_ns, st0.st_mtime_ns + 1))
    assert _list(loose, repo) == {"refs/frequency/subjects/f/a": new}


def test_a_file_changed_in_the_last_tick_is_never_taken_from_its_stat(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _, old = _commits(repo)
    git(repo, "update-ref", "refs/frequency/subjects/f/a", old)
    folder = str(repo / ".git" / "refs" / "frequency" / "subjects" / "f")
    ctime = os.stat(os.path.join(folder, "a")).st_ctime_ns
    young = LooseRefs(now_ns=lambda: ctime + RACY_NS // 2)
    _list(young, repo)
    assert young._memo[folder] == {}  # read, listed, not remembered
    old_enough = LooseRefs(now_ns=lambda: ctime + RACY_NS + 1)
    _list(old_enough, repo)
    assert set(old_enough._memo[folder]) == {"a"}


def test_a_removed_ref_leaves_the_listing_and_the_memo(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _, old = _commits(repo)
    git(repo, "update-ref", "refs/frequency/subjects/f/a", old)
    git(repo, "update-ref", "refs/frequency/subjects/f/b", old)
    loose = LooseRefs(now_ns=lambda: time.time_ns() + LATER)
    _list(loose, repo)
    git(repo, "update-ref", "-d", "refs/frequency/subjects/f/a")
    assert list(_list(loose, repo)) == ["refs/frequency/subjects/f/b"]
    folder = str(repo / ".git" / "refs" / "frequency" / "subjects" / "f")
    assert set(loose._memo[folder]) == {"b"}


@settings(max_examples=25, deadline=None)
@given(
    names=st.sets(
        st.text(alphabet="abz-/0", min_size=1, max_size=6).filter(
            lambda n: not n.startswith("/") and not n.endswith("/") and "//" not in n
        ),
        max_size=12,
    ),
    prefix=st.sampled_from(["refs/", "refs/frequency/", "refs/frequency/a", "refs/frequency/z/"]),
)
def test_packed_refs_under_a_prefix_are_those_a_scan_finds(
    tmp_path_factory: pytest.TempPathFactory, names: set[str], prefix: str
) -> None:
    repo = tmp_path_factory.mktemp("packed")
    oid = "1" * 40
    (repo / "packed-refs").write_text(
        "# pack-refs with: peeled fully-peeled sorted \n"
        + "".join(f"{oid} refs/frequency/{n}\n" for n in sorted(names))
    )
    table = PackedRefs(str(repo)).under(prefix)
    assert table == {
        f"refs/frequency/{n}": oid for n in names if f"refs/frequency/{n}".startswith(prefix)
    }


def test_packed_refs_are_parsed_again_once_git_replaced_the_file(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    new, old = _commits(repo)
    git(repo, "update-ref", "refs/frequency/subjects/f/a", old)
    git(repo, "pack-refs", "--all")
    packed = PackedRefs(str(repo / ".git"), now_ns=lambda: time.time_ns() + LATER)
    assert packed.get("refs/frequency/subjects/f/a") == old
    git(repo, "update-ref", "refs/frequency/subjects/f/a", new, old)
    git(repo, "pack-refs", "--all")
    assert packed.get("refs/frequency/subjects/f/a") == new
    assert packed.under("refs/frequency/subjects/") == {"refs/frequency/subjects/f/a": new}


def test_objects_and_their_ref_lock_are_made_durable_together(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    blob = git(repo, "hash-object", "--stdin", input_text="hello\n").strip()
    data = zlib.compress(b"blob 6\0hello\n")
    objects = str(repo / ".git" / "objects")
    lock = repo / ".git" / "some.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x\n")
        assert refdb.write_loose_objects(objects, [(blob, data)], [fd]) == 1
        assert refdb.write_loose_objects(objects, [(blob, data)], [fd]) == 0  # freshened
    finally:
        os.close(fd)
    assert git(repo, "cat-file", "-p", blob).strip() == "hello"
    assert not [p for p in (repo / ".git" / "objects" / blob[:2]).iterdir() if "tmp" in p.name]


def test_a_failed_fsync_is_raised_after_every_other_ended(tmp_path: Path) -> None:
    good = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    closed = 1_000_000  # no such descriptor: EBADF
    try:
        for fds in ([good, closed, good], [closed, good]):
            with pytest.raises(OSError):
                refdb.sync_all(fds)
        refdb.sync_all([good, good, good])
    finally:
        os.close(good)
