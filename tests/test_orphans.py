"""Subjects of a factory whose file was removed: visible, readable, and their claims recovered."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from freq import refs, transitions
from freq.clock import SystemClock
from freq.store import Store

from .conftest import FreqRepo

OLD = """
factory_id: old
state: {initial: s, terminal: [d]}
steps:
  - {id: go, from_states: [s], to_state: d, run: "true"}
"""
KEEP = """
factory_id: keep
state: {initial: s, terminal: [d]}
steps:
  - {id: go, from_states: [s], to_state: d, run: "true"}
"""


def _claim(r: FreqRepo, name: str, *, at: datetime, ttl: timedelta) -> None:
    """Write a claim of old/NAME by a worker that is not running (as a killed one leaves)."""
    store = Store.discover(r.path, clock=SystemClock())
    try:
        subj, tip = store.read_subject("old", name)
        c = transitions.claimed(subj, step="go", attempt=1, worker="gone:1:1", at=at, ttl=ttl)
        store.advance(refs.subject_ref("old", name), c.subject, c.event, expected=tip)
    finally:
        store.close()


def _orphaned(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    r: FreqRepo = freq_repo({".frequency/old.yaml": OLD, ".frequency/keep.yaml": KEEP})
    r.run("add", "old", "a", "b", "c").assert_success()
    r.run("add", "keep", "k").assert_success()
    return r


def test_status_show_log_and_dlq_list_see_an_orphaned_factory(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """After its file is removed, status lists the factory as orphaned with counts per
    state; show, log and dlq list of it work instead of saying unknown factory."""
    r = _orphaned(freq_repo)
    r.run("transition", "old", "c", "d", "--reason", "done by hand").assert_success()
    (r.path / ".frequency/old.yaml").unlink()
    out = r.run("status").assert_success().out
    assert out.split("\n\n")[1] == (
        "old: 3 subjects, orphaned (factory no longer configured)\n"
        "state  count\n"
        "d      1\n"
        "s      2\n"
    )
    doc = json.loads(r.run("status", "--json").assert_success().out)
    assert doc["orphans"] == [
        {"factory": "old", "states": [["d", 1], ["s", 2]], "subjects": 3, "running": 0}
    ]
    assert r.run("show", "old", "a").assert_success().out.startswith("old/a\n  state:    s")
    assert "old/c: manual s -> d" in r.run("log", "old", "c").assert_success().out
    assert len(r.run("log", "old").assert_success().out.splitlines()) == 4
    assert r.run("dlq", "list", "old").assert_success().out == "the dead-letter queue is empty\n"
    err = r.run("show", "nope", "a").assert_failure().err
    assert err == "git freq: unknown factory 'nope' (known: keep)\n"


def test_expired_claim_of_an_orphan_is_recorded_as_worker_lost_without_retry(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A claim left on an orphan's subject is recovered by the next run (worker lost, not
    retried: its step is gone), and the other factory runs as usual. However old the claim
    is by its holder's clock, the run first waits out one lease (1 s here) on its own
    monotonic clock (SPEC §5)."""
    r = _orphaned(freq_repo)
    _claim(r, "a", at=datetime.now(UTC) - timedelta(hours=1), ttl=timedelta(seconds=1))
    (r.path / ".frequency/old.yaml").unlink()
    out = r.run("run", "--until-idle").assert_success().out.splitlines()
    assert sorted(out[:2]) == [
        "finished  keep/k go #1: s -> d",
        "recovered old/a go #1: worker lost: gone:1:1 (on another host: its processes cannot "
        "be stopped from here; the step is no longer configured, not retried)",
    ]
    assert out[2:] == ["done: 1 succeeded, 0 failed, 1 recovered, 0 lost races"]
    subj = json.loads(r.run("show", "old", "a", "--json").assert_success().out)["subject"]
    assert subj["claim"] is None
    assert subj["state"] == "s"
    assert subj["not_before"] is None
    assert subj["last_error"]["rule"] == (
        "worker lost; the step is no longer configured, not retried"
    )
    assert subj["last_error"]["final"] is False


def test_live_claim_of_an_orphan_sets_the_wake_up_time(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """The run loop wakes when an orphan's claim expires, not only at the poll interval."""
    r = _orphaned(freq_repo)
    at = datetime.now(UTC).replace(microsecond=0)
    _claim(r, "b", at=at, ttl=timedelta(minutes=5))
    (r.path / ".frequency/old.yaml").unlink()
    p = json.loads(r.run("plan", "--json").assert_success().out)
    assert p["next_wake"] == refs.iso(at + timedelta(minutes=5))
