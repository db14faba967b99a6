"""Leases under clock skew (Faults issue, item 3): two Workers on one repository whose wall
clocks disagree by ten seconds (one 5 s ahead, one 5 s behind), lease ttl 3 s, on one
FakeClock timeline, so every step of the experiment is exact and nothing sleeps."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from freq.claims import Lease
from freq.clock import FakeClock
from freq.config import load_config
from freq.errors import LockHeld
from freq.loop import Worker
from freq.report import Collecting, ProgressKind
from freq.runners import StepResult
from freq.store import Store

from .clocks import SkewedClock
from .conftest import NO_BACKOFF, FreqRepo, one_step

FACTORY = one_step('"true"', retry=NO_BACKOFF % 3, locks="[{name: deploy, ttl: 60s}]")


def _workers(r: FreqRepo) -> tuple[FakeClock, dict[str, Worker], dict[str, Collecting]]:
    """`slow` (5 s behind) and `fast` (5 s ahead), each with a monotonic origin of its own."""
    base = FakeClock()
    cfg = load_config(r.path)
    clocks = {
        "slow": SkewedClock(base, -5, mono_origin=1000.0),
        "fast": SkewedClock(base, +5, mono_origin=-7.0),
    }
    reporters = {name: Collecting() for name in clocks}
    workers = {
        name: Worker(
            Store.discover(r.path, clock=clock),
            cfg,
            clock=clock,
            worker=f"{name}:1:1",
            reporter=reporters[name],
            rng=random.Random(1),
        )
        for name, clock in clocks.items()
    }
    return base, workers, reporters


def _claim_x(holder: Worker) -> Lease:
    (start,) = holder._plan(1, None).starts
    assert start.subject == "x"
    lease = holder.claims.claim(start)
    assert lease is not None
    return lease


def _held_against(observer: Worker) -> None:
    """The observer can neither take a slot of the global cap nor the lock for y."""
    subj, _tip = observer.store.read_subject("f", "y")
    fac, step = observer.claims.step_of("f", "work")
    assert observer.claims.caps.has_room(observer.claims.caps_for(fac, step), subj) == (
        "global full (1/1)"
    )
    with pytest.raises(LockHeld):
        observer.claims.locks.prepare(
            [("deploy", timedelta(seconds=60))], holder=observer.worker, subject="f/y", epoch=1
        )


@pytest.mark.parametrize(("holder_name", "observer_name"), [("slow", "fast"), ("fast", "slow")])
def test_a_skewed_worker_neither_steals_live_leases_nor_waits_on_dead_ones(
    freq_repo, holder_name: str, observer_name: str
) -> None:  # type: ignore[no-untyped-def]
    """While the holder renews, the other worker (10 s off its clock) never recovers its
    claim nor takes its cap slot or lock; once the holder stops, the other takes over
    after exactly one ttl on its own monotonic clock, steals the lock at once (the claim
    that held it ended), and the holder's late result is refused."""
    r = freq_repo(
        {
            ".frequency/frequency.yaml": "max_parallel: 1\nlease: {ttl: 3s}\n",
            ".frequency/f.yaml": FACTORY,
        }
    )
    r.run("add", "f", "x", "y").assert_success()
    base, workers, reporters = _workers(r)
    holder, observer = workers[holder_name], workers[observer_name]
    lease = _claim_x(holder)
    holder.heartbeat.add(lease)
    for _ in range(10):  # ten seconds of a live holder: one renewal a second (ttl/3)
        summary = observer.run(once=True)
        assert (summary.recovered, summary.succeeded, summary.failed) == (0, 0, 0)
        _held_against(observer)
        base.advance(1)
        holder.heartbeat.beat()
        assert not lease.lost
    waited = 0
    while (summary := observer.run(once=True)).recovered == 0:  # the holder is dead now
        _held_against(observer)
        base.advance(1)
        waited += 1
        assert waited <= 3, "a dead holder's lease outlived one ttl on the observer's clock"
    assert waited == 3
    recovered = [e for e in reporters[observer_name].events if e.event is ProgressKind.RECOVERED]
    assert [e.detail for e in recovered] == [
        f"worker lost: {holder_name}:1:1 "
        "(on another host: its processes cannot be stopped from here)"
    ]
    # the same cycle starts y: the lock x's claim held is free as soon as that claim ended
    assert [(o.subject, o.ok) for o in summary.outcomes] == [("y", True)]
    history = r.git("log", "--reverse", "--format=%B%x00", "refs/frequency/locks/deploy")
    kinds = [m.strip().split("\n")[0] for m in history.split("\0") if m.strip()]
    assert kinds == [
        f"lock deploy: acquire by {holder_name}:1:1",
        f"lock deploy: steal by {observer_name}:1:1",
        f"lock deploy: release by {observer_name}:1:1",
    ]
    steal = history.split("\0")[1]
    assert "Freq-Reason: its claim ended: worker lost" in steal
    assert f"Freq-Previous-Holder: {holder_name}:1:1" in steal
    late = holder.attempts.record(
        lease, StepResult(exit_code=0, duration_ms=1, tail=b"", how="exit 0")
    )
    assert not late.recorded
    for w in workers.values():
        w.store.close()


def test_the_holder_renews_by_its_monotonic_clock_through_wall_clock_jumps(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A holder whose wall clock jumps an hour forward, then two hours back, renews on
    schedule (a third of the ttl after its last write, by its monotonic clock) and never
    calls its own live lease expired; a lease it failed to renew for a ttl is lost."""
    r = freq_repo(
        {
            ".frequency/frequency.yaml": "max_parallel: 1\nlease: {ttl: 3s}\n",
            ".frequency/f.yaml": FACTORY,
        }
    )
    r.run("add", "f", "x", "y").assert_success()
    base, workers, reporters = _workers(r)
    w = workers["slow"]
    clock = w.clock
    assert isinstance(clock, SkewedClock)
    lease = _claim_x(w)
    tips = [lease.tip]
    for jump in (3600, -7200, 0):
        clock.jump(jump)
        base.advance(0.5)
        assert w.claims.renew(lease) and lease.tip == tips[-1]  # too early to write
        base.advance(0.5)
        assert w.claims.renew(lease) and lease.tip != tips[-1]  # a third of the ttl: renewed
        tips.append(lease.tip)
    assert not lease.lost
    base.advance(3)
    assert not w.claims.renew(lease)
    (lost,) = [e for e in reporters["slow"].events if e.event is ProgressKind.LOST]
    assert lost.detail == "lease expired before it was renewed; stopping the step"
    for x in workers.values():
        x.store.close()
