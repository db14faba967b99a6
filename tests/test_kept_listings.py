"""Listings a long-lived Store keeps between reads (Store.keep_listings, as the run loop
does): while only it writes, a listing is the last one plus its own moves and no ref file
is looked at; another Frequency process's write, `git pack-refs`, a failed write or the end
of the trust period make the next listing a scan. On real repositories, with plain git and
second Store handles as the other writers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freq import refs
from freq.clock import FakeClock
from freq.errors import RefConflict
from freq.runtime import Event, EventKind, Subject
from freq.store import Store
from freq.store.records import RefUpdate

from .conftest import FreqRepo, new_repo
from .test_loop import FACTORY

pytestmark = [pytest.mark.git]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TRUST = 1.0


class Mono:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _subject(name: str, state: str = "a") -> Subject:
    return Subject(factory="f", name=name, state=state, created_at=T0, updated_at=T0, entered_at=T0)


def _created(s: Subject) -> Event:
    return Event(
        kind=EventKind.CREATED, factory="f", subject=s.name, at=T0, worker="w:1:1", to_state=s.state
    )


def _advance(store: Store, name: str, to: str, tip: str) -> str:
    s = replace(_subject(name), state=to)
    event = Event(
        kind=EventKind.TRANSITIONED,
        factory="f",
        subject=name,
        at=T0,
        worker="w:1:1",
        step="go",
        from_state="a",
        to_state=to,
        attempt=1,
        epoch=1,
    )
    return store.advance(refs.subject_ref("f", name), s, event, expected=tip)


def _fresh(repo: FreqRepo) -> dict[str, str]:
    """What a new handle lists: the files decide."""
    other = Store.discover(repo.path, clock=FakeClock(T0))
    try:
        return other.list_refs(refs.SUBJECTS)
    finally:
        other.close()


def _git_moves(repo: FreqRepo, name: str) -> tuple[str, str]:
    """Point subject `name`'s ref at HEAD with plain git, which rings no beacon: (the ref,
    HEAD's id)."""
    ref = refs.subject_ref("f", name)
    head = repo.git("rev-parse", "HEAD").strip()
    repo.git("update-ref", ref, head)
    return ref, head


@pytest.fixture
def kept(repo: FreqRepo) -> Iterator[tuple[Store, Mono, list[str]]]:
    """A store keeping its listings, with subjects x0..x2 created and listed once; the list
    collects the folders scanned from then on."""
    store = Store.discover(repo.path, clock=FakeClock(T0))
    mono = Mono()
    store.keep_listings(TRUST, monotonic=mono)
    store.create_many([(s, _created(s)) for s in map(_subject, ("x0", "x1", "x2"))])
    store.list_refs(refs.SUBJECTS)
    scans: list[str] = []
    real = os.scandir

    def counting(path):  # type: ignore[no-untyped-def]
        scans.append(os.fspath(path))
        return real(path)

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "scandir", counting)
    try:
        yield store, mono, scans
    finally:
        mp.undo()
        store.close()


def test_own_moves_are_listed_without_a_scan(
    kept: tuple[Store, Mono, list[str]], repo: FreqRepo
) -> None:
    store, _, scans = kept
    tips = store.list_refs(refs.SUBJECTS)
    scans.clear()
    new = _advance(store, "x1", "b", tips[refs.subject_ref("f", "x1")])
    copy = refs.subject_ref("f", "y")
    store.update([RefUpdate(copy, new, None)])  # a loose ref made and removed by this handle
    assert store.list_refs(refs.SUBJECTS)[copy] == new
    assert store.delete(copy, expected=new)
    got = store.list_refs(refs.SUBJECTS)
    assert scans == []
    assert got[refs.subject_ref("f", "x1")] == new
    assert copy not in got
    assert got == _fresh(repo)


def test_another_handles_write_makes_the_next_listing_a_scan(
    kept: tuple[Store, Mono, list[str]], repo: FreqRepo
) -> None:
    store, _, scans = kept
    other = Store.discover(repo.path, clock=FakeClock(T0))
    try:
        tip = other.list_refs(refs.SUBJECTS)[refs.subject_ref("f", "x0")]
        new = _advance(other, "x0", "b", tip)
    finally:
        other.close()
    scans.clear()
    assert store.list_refs(refs.SUBJECTS)[refs.subject_ref("f", "x0")] == new
    assert scans  # the beacon said another process wrote


def test_a_plain_git_write_is_listed_once_the_trust_ran_out(
    kept: tuple[Store, Mono, list[str]], repo: FreqRepo
) -> None:
    store, mono, _ = kept
    ref, head = _git_moves(repo, "x0")
    assert store.list_refs(refs.SUBJECTS)[ref] != head  # within the trust: the kept listing
    mono.t += TRUST + 0.01
    assert store.list_refs(refs.SUBJECTS)[ref] == head
    assert store.list_refs(refs.SUBJECTS) == _fresh(repo)


def test_git_pack_refs_makes_the_next_listing_a_scan(
    kept: tuple[Store, Mono, list[str]], repo: FreqRepo
) -> None:
    store, _, _ = kept
    ref, head = _git_moves(repo, "x0")
    repo.git("pack-refs", "--all")  # packed-refs replaced: the beacon's token covers it
    assert store.list_refs(refs.SUBJECTS)[ref] == head
    assert store.list_refs(refs.SUBJECTS) == _fresh(repo)


def test_a_failed_write_lets_the_kept_listings_go(
    kept: tuple[Store, Mono, list[str]], repo: FreqRepo
) -> None:
    store, _, _ = kept
    tip = store.list_refs(refs.SUBJECTS)[refs.subject_ref("f", "x0")]
    ref, head = _git_moves(repo, "x0")
    with pytest.raises(RefConflict):
        _advance(store, "x0", "b", tip)  # the kept tip is stale: the CAS refuses
    assert store.list_refs(refs.SUBJECTS)[ref] == head


OPS = st.lists(
    st.tuples(
        st.sampled_from(["own", "other", "delete", "create", "git", "pack"]),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_a_kept_listing_is_what_a_fresh_handle_lists(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]]
) -> None:
    """Whoever moved refs (this handle, another one, plain git, git pack-refs), the kept
    listing equals a new handle's scan: at once, or for plain git once the trust ran out."""
    repo = new_repo(tmp_path_factory.mktemp("kept"))
    mono = Mono()
    live = Store.discover(repo.path, clock=FakeClock(T0))
    other = Store.discover(repo.path, clock=FakeClock(T0))
    live.keep_listings(TRUST, monotonic=mono)
    names = [f"s{i}" for i in range(4)]
    try:
        live.create_many([(_subject(n), _created(_subject(n))) for n in names[:2]])
        live.list_refs(refs.SUBJECTS)
        for op, i in ops:
            ref = refs.subject_ref("f", names[i])
            tip = repo.git("rev-parse", "-q", "--verify", ref, check=False).strip()
            if op in ("own", "other") and tip:
                with_ = live if op == "own" else other
                _advance(with_, names[i], f"b{len(tip) % 7}{i}", tip)
            elif op == "delete" and tip:
                assert live.delete(ref, expected=tip)
            elif op == "create" and not tip:
                live.create_many([(_subject(names[i]), _created(_subject(names[i])))])
            elif op == "git" and tip:
                repo.git("update-ref", ref, repo.git("rev-parse", "HEAD").strip())
                mono.t += TRUST + 0.01
            elif op == "pack":
                repo.git("pack-refs", "--all")
            assert live.list_refs(refs.SUBJECTS) == _fresh(repo)
    finally:
        live.close()
        other.close()


def test_the_run_loop_lists_subjects_from_its_kept_listing(
    freq_repo, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A worker alone on its repository lists the subject refs from what it wrote: it scans
    them for its first listings only, not at every cycle. One step at a time, so that no
    two of its own writes race (a CAS its listing did not foresee scans again), and the
    trust period made long, so that time plays no part."""
    from freq import loop
    from freq.config import load_config

    monkeypatch.setattr(loop, "LISTING_TRUST", 1e9)
    r = freq_repo({".frequency/f.yaml": FACTORY, ".frequency/frequency.yaml": "max_parallel: 1\n"})
    r.run("add", "f", *(f"s{i}" for i in range(30))).assert_success()
    clock = FakeClock()
    worker = loop.Worker(
        Store.discover(r.path, clock=clock), load_config(r.path), clock=clock, worker="h:1:1"
    )
    top = os.path.join(".git", "refs", "frequency", "subjects")
    scans: list[str] = []
    real = os.scandir

    def counting(path):  # type: ignore[no-untyped-def]
        if os.fspath(path).rstrip("/").endswith(top):
            scans.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    try:
        summary = worker.run(until_idle=True)
    finally:
        worker.store.close()
    assert summary.succeeded == 60
    assert summary.cycles >= 30  # a cycle per finished subject, or more
    assert len(scans) <= 2  # the subjects' own listing, and the whole state's first one


def test_a_scan_begun_before_a_failed_write_is_not_kept() -> None:
    """A write that failed part-way moved refs no record holds: a scan that began before it
    may have missed them, so it is not kept; the next one is."""
    from freq.store.listing import OwnWrites

    own = OwnWrites(lambda: (1,), lambda token: False, trust=10.0, monotonic=lambda: 0.0)
    prefix = refs.SUBJECTS
    mark = own.before_scan()
    own.forget()  # the failed write, while the scan ran
    own.scanned(prefix, mark, {f"{prefix}f/a": "1" * 40})
    assert own.listing(prefix) is None
    own.scanned(prefix, own.before_scan(), {f"{prefix}f/a": "1" * 40})
    own.wrote([(f"{prefix}f/b", "2" * 40)])
    assert own.listing(prefix) == {f"{prefix}f/a": "1" * 40, f"{prefix}f/b": "2" * 40}
