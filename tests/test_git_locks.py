"""Git lock files under faults: a live writer's lock is waited for, a killed writer's is
cleared at once, object writes never wait on a lock, and a lost race writes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from freq import refs
from freq.clock import FakeClock
from freq.errors import GitLockHeld, RefConflict
from freq.runtime import Event, EventKind, Subject
from freq.store import RefUpdate, Store

from .conftest import FreqRepo, live_lock

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REF = refs.subject_ref("build", "x")


def _age(path: Path, seconds: float) -> None:
    """Make `path` look `seconds` old to the fake clock."""
    then = T0.timestamp() - seconds
    os.utime(path, (then, then))


def _subject(name: str = "x") -> Subject:
    return Subject(
        factory="build", name=name, state="selected", created_at=T0, updated_at=T0, entered_at=T0
    )


def _event(kind: EventKind, to: str) -> Event:
    return Event(kind=kind, factory="build", subject="x", at=T0, worker="w:1:1", to_state=to)


@pytest.fixture
def store(repo: FreqRepo) -> Iterator[Store]:
    st = Store.discover(repo.path, clock=FakeClock(T0))
    yield st
    st.close()


def _created(store: Store) -> str:
    s = _subject()
    (tip,) = store.create_many([(s, _event(EventKind.CREATED, "selected"))])
    return tip


def _move(store: Store, tip: str, to: str = "implemented") -> str:
    return store.advance(
        REF,
        replace(_subject(), state=to),
        _event(EventKind.TRANSITIONED, to),
        expected=tip,
    )


def test_a_live_writers_lock_is_waited_for_then_named(store: Store, repo: FreqRepo) -> None:
    """A lock held by a live process is retried for lock_wait seconds (of the injected
    clock), then reported in one line naming it; the ref and the lock are left alone."""
    tip = _created(store)
    lock = repo.path / ".git" / (REF + ".lock")
    with live_lock(lock):
        _age(lock, 3600)  # old, but its writer is alive: never stale
        with pytest.raises(GitLockHeld, match=r"git lock refs/frequency/subjects/build/x\.lock is"):
            _move(store, tip)
        assert lock.exists()
    assert repo.git("rev-parse", REF).strip() == tip


def test_a_killed_writers_lock_is_cleared_at_once(store: Store, repo: FreqRepo) -> None:
    """SIGKILL a process holding a ref lock: the next write recognises the lock as stale
    (nobody holds its flock) after the short grace, not after 30 s, and goes through."""
    tip = _created(store)
    lock = repo.path / ".git" / (REF + ".lock")
    with live_lock(lock) as holder:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock.exists()  # the kernel dropped its flock; git would leave the file forever
    _age(lock, 1.5)
    new = _move(store, tip)
    assert repo.git("rev-parse", REF).strip() == new
    assert not lock.exists()


def test_a_plain_git_lock_is_waited_for_through_its_grace(store: Store, repo: FreqRepo) -> None:
    """A fresh lock without an flock (a plain git process mid-write) is waited for; once
    it outlives the grace with nobody holding it, its writer is gone and it is cleared."""
    tip = _created(store)
    lock = repo.path / ".git" / (REF + ".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    _age(lock, 0)
    clock = store.clock
    assert isinstance(clock, FakeClock)
    before = clock.monotonic()
    new = _move(store, tip)
    assert clock.monotonic() - before >= 1.0  # it waited the grace out, in fake time
    assert repo.git("rev-parse", REF).strip() == new


def test_a_batch_names_the_held_ref_and_moves_nothing(store: Store, repo: FreqRepo) -> None:
    """One held lock in a batch: GitLockHeld names it, no ref of the batch moves, and the
    objects of the batch were never written (a lost race leaves nothing dangling)."""
    tip = _created(store)
    claim = store.prepare(
        replace(_subject(), state="selected", epoch=1),
        _event(EventKind.CLAIMED, "selected"),
        parent=tip,
    )
    slot = "refs/frequency/caps/global/0"
    with (
        live_lock(repo.path / ".git" / (slot + ".lock")),
        pytest.raises(GitLockHeld, match=r"caps/global/0\.lock"),
    ):
        store.update([RefUpdate(slot, claim, None), RefUpdate(REF, claim, tip)])
    assert repo.git("rev-parse", REF).strip() == tip
    assert repo.git("cat-file", "-t", claim, check=False).strip() == ""


def test_a_lost_race_writes_no_objects(store: Store, repo: FreqRepo) -> None:
    """A compare-and-swap that loses writes none of the commit's objects: `git fsck`
    finds nothing dangling after many lost races."""
    tip = _created(store)
    _move(store, tip)
    for i in range(20):
        with pytest.raises(RefConflict):
            _move(store, tip, to=f"s{i}")  # `tip` is stale: every one of these loses
    fsck = repo.git("fsck", "--strict", "--dangling")
    assert "dangling" not in fsck, fsck


def test_object_writes_ignore_a_stale_object_lock(store: Store, repo: FreqRepo) -> None:
    """A `.lock` beside a loose object (a dulwich writer killed mid-write, e.g. on the empty
    blob every step writes) never blocks Frequency, which writes under a unique temporary
    name; `sweep_locks` removes it once it is old and nobody holds it."""
    tip = _created(store)
    empty_blob = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    obj_lock = repo.path / ".git" / "objects" / empty_blob[:2] / (empty_blob[2:] + ".lock")
    obj_lock.parent.mkdir(parents=True, exist_ok=True)
    obj_lock.write_text("")
    _age(obj_lock, 0)
    new = store.advance(
        REF,
        replace(_subject(), state="implemented"),
        _event(EventKind.TRANSITIONED, "implemented"),
        expected=tip,
        output=b"",  # the empty blob
    )
    assert repo.git("cat-file", "-t", empty_blob).strip() == "blob"
    assert repo.git("rev-parse", REF).strip() == new
    assert store.sweep_locks() == []  # too fresh to judge
    _age(obj_lock, 120)
    assert store.sweep_locks() == [f"objects/{empty_blob[:2]}/{empty_blob[2:]}.lock"]
    assert not obj_lock.exists()


def test_sweep_leaves_a_live_writers_lock(store: Store, repo: FreqRepo) -> None:
    """`sweep_locks` removes leftovers of killed writers only."""
    _created(store)
    live = repo.path / ".git" / "refs" / "frequency" / "locks" / "deploy.lock"
    dead = repo.path / ".git" / "refs" / "frequency" / "locks" / "db.lock"
    with live_lock(live):
        dead.parent.mkdir(parents=True, exist_ok=True)
        dead.write_text("")
        _age(dead, 5)
        _age(live, 5)
        assert store.sweep_locks() == ["refs/frequency/locks/db.lock"]
        assert live.exists()


def test_creating_subjects_clears_a_killed_creators_locks(store: Store, repo: FreqRepo) -> None:
    """A creator killed while holding Frequency's creation lock and git's packed-refs.lock
    leaves both; the next creation clears them (nobody holds them) and goes through."""
    git_dir = repo.path / ".git"
    for lock in (git_dir / "frequency" / "create.lock", git_dir / "packed-refs.lock"):
        with live_lock(lock) as holder:
            holder.kill()
        _age(lock, 11)
    tip = _created(store)
    assert repo.git("rev-parse", REF).strip() == tip
    assert not (git_dir / "packed-refs.lock").exists()


def test_cleanup_removes_locks_killed_writers_left(repo: FreqRepo) -> None:
    """`git freq cleanup` removes lock files no write met (a cap slot's, an object's),
    names each, leaves a live writer's, and with --dry-run only says what it would do."""
    repo.write(".frequency/f.yaml", "factory_id: f\nstate: {initial: a, terminal: [b]}\n")
    git_dir = repo.path / ".git"
    dead = git_dir / "refs/frequency/caps/global/0.lock"
    dead.parent.mkdir(parents=True)
    dead.write_text("")
    obj = git_dir / "objects/e6/9de29bb2d1d6434b8b29ae775ad8c2e48c5391.lock"
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_text("")
    for path in (dead, obj):
        then = datetime.now(UTC).timestamp() - 3600
        os.utime(path, (then, then))
    live = git_dir / "refs/frequency/locks/deploy.lock"
    with live_lock(live):
        os.utime(live, (0, 0))
        dry = repo.run("cleanup", "--dry-run").assert_success()
        assert "would remove    refs/frequency/caps/global/0.lock" in dry.out
        assert dead.exists() and obj.exists()
        done = repo.run("cleanup").assert_success()
        assert done.out.splitlines()[-2:] == [
            "removed         refs/frequency/caps/global/0.lock: a lock file its writer left "
            "when it was killed",
            "removed         objects/e6/9de29bb2d1d6434b8b29ae775ad8c2e48c5391.lock: a lock "
            "file its writer left when it was killed",
        ]
        assert not dead.exists() and not obj.exists() and live.exists()


def test_packed_refs_keep_their_traits_and_peeled_tags(store: Store, repo: FreqRepo) -> None:
    """Creating subjects rewrites packed-refs in git's format: an annotated tag's peeled
    line survives, the header's traits are kept, and git reads every ref back."""
    repo.git("tag", "-a", "v1", "-m", "release")
    repo.git("pack-refs", "--all")
    before = repo.git("show-ref", "-d")
    tip = _created(store)
    packed = (repo.path / ".git" / "packed-refs").read_text()
    assert packed.startswith("# pack-refs with: peeled fully-peeled sorted")
    assert f"{tip} {REF}\n" in packed
    after = repo.git("show-ref", "-d").splitlines()
    assert sorted(after) == sorted([*before.splitlines(), f"{tip} {REF}"])
    assert any(line.endswith("refs/tags/v1^{}") for line in after)  # peeled line survived


def test_deletes_racing_git_pack_refs_never_come_back(store: Store, repo: FreqRepo) -> None:
    """Delete refs while `git pack-refs --all` runs in a loop: a deleted ref never comes
    back from packed-refs (the delete holds packed-refs.lock, as git's does). A loop of
    pack-refs can hold that lock past one delete's wait on a loaded machine; the delete then
    refuses with GitLockHeld having changed nothing, and is retried as a worker would."""
    tip = _created(store)

    def delete(ref: str) -> bool:
        for _ in range(30):
            try:
                return store.delete(ref, expected=tip)
            except GitLockHeld:
                assert repo.git("for-each-ref", ref) != "", f"{ref} deleted by a refused delete"
        raise AssertionError(f"git pack-refs held packed-refs.lock for 30 waits on {ref}")

    stop = repo.path / "stop"
    packer = subprocess.Popen(
        ["sh", "-c", f'while [ ! -e "{stop}" ]; do git pack-refs --all 2>/dev/null; done'],
        cwd=repo.path,
    )
    try:
        for i in range(150):
            ref = f"refs/frequency/caps/global/{i % 7}"
            store.update([RefUpdate(ref, tip, None)])
            assert delete(ref)
            assert repo.git("for-each-ref", ref) == "", f"{ref} came back after delete {i}"
    finally:
        stop.touch()
        packer.wait(timeout=60)
    assert repo.git("for-each-ref", "refs/frequency/caps") == ""


def test_a_lock_whose_subject_cannot_be_read_is_held(repo: FreqRepo) -> None:
    """Fail closed: a lock naming a subject whose ref cannot be read right now (here: its
    tip is not a commit) is held until the lock's own expiry, never taken for free."""
    from freq.leases import Observer
    from freq.locks import Locks
    from freq.runtime import Lock

    clock = FakeClock(T0)
    st = Store.discover(repo.path, clock=clock)
    try:
        blob = repo.git("hash-object", "-w", "--stdin", input_text="not a commit").strip()
        repo.git("update-ref", REF, blob)
        lock = Lock(
            name="deploy",
            holder="w:1:1",
            subject="build/x",
            epoch=1,
            acquired_at=T0,
            ttl=timedelta(seconds=60),
            expires_at=T0 + timedelta(seconds=60),
        )
        locks = Locks(st, clock, observer=Observer())
        hold = locks.hold_of(lock, "L1")
        assert hold.held and "cannot be read" in hold.why
        clock.advance(61)
        assert not locks.hold_of(lock, "L1").held
    finally:
        st.close()
