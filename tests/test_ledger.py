"""freq.ledger: every attempt end read from git, then only what is new; rewrites, deletions,
archives, broken history and the cache file, all on real repositories."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from freq import refs
from freq.clock import FakeClock
from freq.ledger import CACHE_NAME, Ledger
from freq.store import Store

from .conftest import FreqRepo
from .spending import BUDGETS, T0, attempt, claude, reviewer

pytestmark = pytest.mark.git

REF_A = refs.subject_ref("build", "a")


@pytest.fixture
def spent(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    """build/a: a failed and a successful claude attempt ($1, $2); build/b: a reviewer
    attempt estimated at $0.50 and a shell step; 9 commits in all (2 creations)."""
    r: FreqRepo = freq_repo(BUDGETS)
    r.run("add", "build", "a", "b").assert_success()
    attempt(r.path, "build", "a", "implement", at=T0, usage=claude(1.0), ok=False)
    attempt(r.path, "build", "a", "implement", at=T0 + timedelta(minutes=5), usage=claude(2.0))
    at = T0 + timedelta(minutes=1)
    attempt(r.path, "build", "b", "review", at=at, usage=reviewer(0.5), to_state="reviewed")
    attempt(r.path, "build", "b", "check", at=T0 + timedelta(minutes=2), to_state="done")
    return r


def _store(r: FreqRepo) -> Store:
    return Store.discover(r.path, clock=FakeClock(T0))


def test_every_attempt_end_is_read_and_nothing_else(spent: FreqRepo) -> None:
    """Failed and successful attempts, agent and shell; no claims, no creations."""
    store = _store(spent)
    try:
        ledger = Ledger(store)
        assert ledger.refresh()
        got = [(r.subject, r.step, r.outcome, r.agent, r.usd) for r in ledger.records()]
        assert got == [
            ("a", "implement", "failed", "claude", 1.0),
            ("b", "review", "succeeded", "reviewer", 0.5),
            ("b", "check", "succeeded", None, None),
            ("a", "implement", "succeeded", "claude", 2.0),
        ]
        assert ledger.walked == 10  # 2 creations, 4 claims, 4 ends
        assert not ledger.problems
    finally:
        store.close()


def test_a_second_read_walks_only_the_new_commits(spent: FreqRepo) -> None:
    """Unchanged refs are not walked again; a ref that moved is walked down to the tip
    read before, and the records below it are kept."""
    store = _store(spent)
    try:
        ledger = Ledger(store)
        ledger.refresh()
        before = ledger.walked
        assert not ledger.refresh()
        assert ledger.walked == before
        attempt(
            spent.path, "build", "a", "review", at=T0 + timedelta(hours=1), usage=reviewer(0.25)
        )
        assert ledger.refresh()
        assert ledger.walked == before + 2  # the claim and the end
        assert [r.usd for r in ledger.records() if r.subject == "a"] == [1.0, 2.0, 0.25]
    finally:
        store.close()


def test_a_rewritten_ref_is_read_again_whole(spent: FreqRepo) -> None:
    """A ref put back onto an older commit (as a repair does) no longer has the tip read
    before below it: its records are read again, and what left the history is gone."""
    store = _store(spent)
    try:
        ledger = Ledger(store)
        ledger.refresh()
        tip = spent.git("rev-parse", REF_A).strip()
        first_end = spent.git("rev-parse", f"{tip}~2").strip()  # the failed attempt's end
        spent.git("update-ref", REF_A, first_end, tip)
        ledger.refresh()
        assert [r.usd for r in ledger.records() if r.subject == "a"] == [1.0]
        walked = ledger.walked
        attempt(
            spent.path, "build", "a", "implement", at=T0 + timedelta(hours=2), usage=claude(3.0)
        )
        ledger.refresh()
        assert ledger.walked == walked + 2
        assert [r.usd for r in ledger.records() if r.subject == "a"] == [1.0, 3.0]
    finally:
        store.close()


def test_a_deleted_ref_is_dropped(spent: FreqRepo) -> None:
    """A subject ref deleted by hand takes its attempts out of the count."""
    store = _store(spent)
    try:
        ledger = Ledger(store)
        ledger.refresh()
        spent.git("update-ref", "-d", refs.subject_ref("build", "b"))
        assert ledger.refresh()
        assert {r.subject for r in ledger.records()} == {"a"}
    finally:
        store.close()


def test_archived_history_counts_once(spent: FreqRepo) -> None:
    """An archive merge reaching a's and b's last commits: b (its ref deleted, as archiving
    does) still counts, and a (still a ref too) is not counted twice."""
    tips = [spent.git("rev-parse", refs.subject_ref("build", s)).strip() for s in ("a", "b")]
    tree = spent.git("hash-object", "-t", "tree", "-w", "--stdin", input_text="").strip()
    merge = spent.git(
        "commit-tree", tree, "-p", tips[0], "-p", tips[1], "-m", "build: archived a, b"
    ).strip()
    spent.git("update-ref", refs.ARCHIVE + "build", merge)
    spent.git("update-ref", "-d", refs.subject_ref("build", "b"))
    store = _store(spent)
    try:
        ledger = Ledger(store)
        ledger.refresh()
        assert [(r.subject, r.step) for r in ledger.records()] == [
            ("a", "implement"),
            ("b", "review"),
            ("b", "check"),
            ("a", "implement"),
        ]
    finally:
        store.close()


def test_broken_history_is_a_problem_and_the_rest_still_counts(spent: FreqRepo) -> None:
    """A commit removed from the object store (git gc --prune=now under a writer) ends the
    walk of that chain: what lies above it counts, and the break is reported."""
    tip = spent.git("rev-parse", REF_A).strip()
    root = spent.git("rev-list", "--max-parents=0", tip).strip()
    loose = spent.path / ".git" / "objects" / root[:2] / root[2:]
    if not loose.exists():
        pytest.skip("the root commit is packed")
    loose.unlink()
    store = _store(spent)
    try:
        ledger = Ledger(store)
        ledger.refresh()
        assert [r.usd for r in ledger.records() if r.subject == "a"] == [1.0, 2.0]
        (problem,) = ledger.problems
        assert problem.startswith(f"{REF_A}: history broken at {root[:12]}")
        assert "; older attempts not counted; run `git freq cleanup --repair`" in problem
    finally:
        store.close()


def test_the_cache_file_spares_the_next_process_the_walk(spent: FreqRepo) -> None:
    """A saving ledger leaves what it read in .git/frequency/cache/; the next one walks
    nothing it holds, and only what is new after it; a torn file is a miss."""
    store = _store(spent)
    try:
        first = Ledger(store, save=True)
        first.refresh()
        path = store.state_dir / "cache" / CACHE_NAME
        assert json.loads(path.read_text())["format"] == 1
        second = Ledger(store)
        second.refresh()
        assert second.walked == 0
        assert second.records() == first.records()
        attempt(spent.path, "build", "b", "check", at=T0 + timedelta(hours=1))
        third = Ledger(store)
        third.refresh()
        assert third.walked == 2
        path.write_text('{"format": 1, "refs": {"x": ')
        torn = Ledger(store)
        torn.refresh()
        assert torn.walked == 12
        assert torn.records() == third.records()
    finally:
        store.close()
