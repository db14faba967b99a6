"""The run loop in-process: lost races are re-planned, never overwritten; fencing; the heartbeat."""

from __future__ import annotations

import json
import random

from freq import refs
from freq.clock import FakeClock
from freq.config import load_config
from freq.loop import Worker
from freq.planner import plan
from freq.store import Store

from .conftest import FreqRepo

FACTORY = """
factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - id: one
    from_states: [new]
    to_state: mid
    run: "true"
  - id: two
    from_states: [mid]
    to_state: done
    run: "true"
"""


def _executors(repo: FreqRepo, clock: FakeClock) -> tuple[Worker, Worker]:
    cfg = load_config(repo.path)
    return tuple(  # type: ignore[return-value]
        Worker(
            Store.discover(repo.path, clock=clock),
            cfg,
            clock=clock,
            worker=f"h:{i}:1",
            rng=random.Random(i),
        )
        for i in (1, 2)
    )


def test_lost_claim_race_is_replanned_not_overwritten(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Two workers plan the same start: one claim wins, the other loses cleanly, and its
    next cycle plans again from git and runs the following step."""
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    clock = FakeClock()
    ex1, ex2 = _executors(r, clock)
    p1 = plan(ex1.config, ex1.store.snapshot(), now=clock.now())
    p2 = plan(ex2.config, ex2.store.snapshot(), now=clock.now())
    assert p1.starts == p2.starts
    lease = ex1.claims.claim(p1.starts[0])
    assert lease is not None
    assert ex2.claims.claim(p2.starts[0]) is None
    claims = r.git("log", "--format=%s", "refs/frequency/subjects/f/x").splitlines()
    assert claims == ["f/x: one claimed (attempt 1)", "f/x: created -> new"]
    ex1.attempts.execute(lease)
    summary = ex2.run(once=True)
    assert (summary.succeeded, summary.lost_races) == (1, 0)
    subj = json.loads(r.run("show", "f", "x", "--json").out)["subject"]
    assert subj["state"] == "done"
    workers = r.git(
        "log", "--format=%(trailers:key=Freq-Worker,valueonly)", "refs/frequency/subjects/f/x"
    ).split()
    assert workers[:4] == ["h:2:1", "h:2:1", "h:1:1", "h:1:1"]
    for ex in (ex1, ex2):
        ex.store.close()


def test_result_after_manual_move_is_refused(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A person moves a running subject: the attempt's result is refused by the fence."""
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    clock = FakeClock()
    ex1, _ex2 = _executors(r, clock)
    start = plan(ex1.config, ex1.store.snapshot(), now=clock.now()).starts[0]
    lease = ex1.claims.claim(start)
    assert lease is not None
    r.run("transition", "f", "x", "done", "--reason", "shipped by hand").assert_success()
    tip = r.git("rev-parse", refs.subject_ref("f", "x")).strip()
    out = ex1.attempts.execute(lease)
    assert not out.recorded
    assert out.detail == "result refused: the claim was taken over (stale epoch)"
    assert r.git("rev-parse", refs.subject_ref("f", "x")).strip() == tip
    ex1.store.close()
    _ex2.store.close()


def test_the_heartbeat_renews_a_lease_while_no_other_thread_does(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Renewal lives on a thread of its own: with the loop's and the step's threads busy
    elsewhere, a third of the TTL after the claim the lease is extended all the same."""
    import threading

    from freq.claims import Heartbeat

    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    clock = FakeClock()
    w, other = _executors(r, clock)
    lease = w.claims.claim(plan(w.config, w.store.snapshot(), now=clock.now()).starts[0])
    assert lease is not None and lease.subject.claim is not None
    first_expiry = lease.subject.claim.expires_at
    renewed = threading.Event()
    with Heartbeat(w.claims, interval=0.01) as beat:
        beat.add(lease)
        clock.advance(25)  # past a third of the 60 s lease; nobody calls renew
        for _ in range(500):
            subj, tip = other.store.read_subject("f", "x")
            if subj.claim is not None and subj.claim.expires_at > first_expiry:
                renewed.set()
                break
            threading.Event().wait(0.01)
        beat.drop(lease)
    assert renewed.is_set()
    assert tip == lease.tip and not lease.lost
    assert subj.claim is not None and subj.claim.expires_at == clock.now() + w.claims.ttl
    for x in (w, other):
        x.store.close()


def test_a_renewal_after_the_result_is_recorded_changes_nothing(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A heartbeat that took its list of leases just before a chained success was recorded
    must not renew that finished lease on top of the new commit (it would undo the move)."""
    from freq.claims import View
    from freq.runners import StepResult

    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    clock = FakeClock()
    w, other = _executors(r, clock)
    snap = w.store.snapshot()
    lease = w.claims.claim(plan(w.config, snap, now=clock.now()).starts[0])
    assert lease is not None
    w.claims.view = View(snap=w.store.snapshot(), facts=None)
    clock.advance(25)  # a third of the lease has passed: a renewal would write
    ok = StepResult(exit_code=0, duration_ms=1, tail=b"ok\n", how="exit 0")
    _out, nxt = w.attempts._record(lease, ok, chain=True)
    assert nxt is not None  # the success claimed step two in the same commit
    tip = other.store.read_ref(refs.subject_ref("f", "x"))
    assert w.claims.renew(lease) is False  # what a late heartbeat would do
    assert other.store.read_ref(refs.subject_ref("f", "x")) == tip
    subj, _ = other.store.read_subject("f", "x")
    assert subj.state == "mid" and subj.claim is not None and subj.claim.step == "two"
    for x in (w, other):
        x.store.close()


def test_the_heartbeat_outlives_a_renewal_that_fails(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A git lock held by someone else makes one renewal fail; the heartbeat thread goes on
    and renews once the lock is gone."""
    import threading

    from freq.claims import Heartbeat

    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x").assert_success()
    clock = FakeClock()
    w, other = _executors(r, clock)
    lease = w.claims.claim(plan(w.config, w.store.snapshot(), now=clock.now()).starts[0])
    assert lease is not None and lease.subject.claim is not None
    first_expiry = lease.subject.claim.expires_at
    held = r.path / ".git" / "refs" / "frequency" / "subjects" / "f" / "x.lock"
    with Heartbeat(w.claims, interval=0.01) as beat:
        held.write_text("")  # fresh (not stale): another writer's lock
        beat.add(lease)
        clock.advance(25)
        beat.beat()  # fails inside: the lock stays held through every retry
        assert beat._thread is not None and beat._thread.is_alive()
        held.unlink()
        for _ in range(500):
            subj, _tip = other.store.read_subject("f", "x")
            if subj.claim is not None and subj.claim.expires_at > first_expiry:
                break
            threading.Event().wait(0.01)
        beat.drop(lease)
        assert beat._thread.is_alive()
    assert subj.claim is not None and subj.claim.expires_at > first_expiry
    for x in (w, other):
        x.store.close()


THREE_STEPS = """
factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - {id: one, from_states: [new], to_state: b, run: "true"}
  - {id: two, from_states: [b], to_state: c, run: "true", max_parallel: 1}
  - {id: three, from_states: [c], to_state: done, run: "true"}
"""


def test_a_chain_keeps_its_first_slot_through_every_link_and_enters_step_caps_anew(
    freq_repo,  # type: ignore[no-untyped-def]
) -> None:
    """Over three chained steps the global slot stays at the first claim commit and each
    claim names its epoch; a step's own cap is taken at that step's claim and is free once
    the chain moved past it."""
    from freq.claims import View
    from freq.runners import StepResult

    r = freq_repo({".frequency/f.yaml": THREE_STEPS})
    r.run("add", "f", "x").assert_success()
    clock = FakeClock()
    w, other = _executors(r, clock)
    ok = StepResult(exit_code=0, duration_ms=1, tail=b"ok\n", how="exit 0")
    lease = w.claims.claim(plan(w.config, w.store.snapshot(), now=clock.now()).starts[0])
    assert lease is not None and lease.subject.claim is not None
    first, first_tip = lease.subject.claim.epoch, lease.tip
    fac = other.config.factories[0]
    step_cap = other.claims.caps_for(fac, fac.steps[1])[-1]
    assert step_cap.scope == ("step", "f", "two")
    tips = []
    for _ in range(2):
        w.claims.view = View(snap=w.store.snapshot(), facts=None)
        _out, nxt = w.attempts._record(lease, ok, chain=True)
        assert nxt is not None and nxt.subject.claim is not None
        assert nxt.subject.claim.slots_at == first
        tips.append(nxt.tip)
        lease = nxt
    global_slots = r.git("for-each-ref", "--format=%(objectname)", refs.caps_ref("global"))
    assert global_slots.split() == [first_tip]
    step_slot = r.git("rev-parse", refs.caps_ref("step", "f", "two") + "/0").strip()
    assert step_slot == tips[0]  # taken by step two's own claim
    subj, _ = other.store.read_subject("f", "x")
    assert subj.claim is not None and subj.claim.step == "three"
    # step three runs: step two's cap is free again, the global slot still held
    surveyed = other.claims.caps.survey([step_cap, *other.claims.caps_for(fac, fac.steps[2])], subj)
    assert surveyed.of[step_cap.scope].taken == set()
    assert surveyed.of[("global",)].taken == {("f", "x")}
    for x in (w, other):
        x.store.close()


def test_a_chained_claim_keeps_its_cap_slot_and_yields_if_it_was_taken(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A success that claims the next step in the same commit leaves the global slot its
    chain's first claim took where it is: the new claim names that claim (`slots_at`), and
    every survey still counts the slot as held. When the slot was taken meanwhile, the
    success is recorded plainly, so the cap is never held twice."""
    from freq.claims import View
    from freq.runners import StepResult

    r = freq_repo({".frequency/f.yaml": FACTORY, ".frequency/frequency.yaml": "max_parallel: 1\n"})
    for name in ("x", "y"):
        r.run("add", "f", name).assert_success()
    clock = FakeClock()
    w, other = _executors(r, clock)
    ok = StepResult(exit_code=0, duration_ms=1, tail=b"ok\n", how="exit 0")
    slot = refs.caps_ref("global") + "/0"

    lease = w.claims.claim(plan(w.config, w.store.snapshot(), now=clock.now()).starts[0])
    assert lease is not None and r.git("rev-parse", slot).strip() == lease.tip
    first, first_tip = lease.subject.claim, lease.tip
    assert first is not None and first.slots_at is None
    w.claims.view = View(snap=w.store.snapshot(), facts=None)
    _out, nxt = w.attempts._record(lease, ok, chain=True)
    assert nxt is not None and nxt.subject.claim is not None
    assert r.git("rev-parse", slot).strip() == first_tip  # not moved: no ref update for it
    assert nxt.subject.claim.slots_at == first.epoch
    stored, _ = w.store.read_subject("f", nxt.subject.name)
    assert stored.claim == nxt.subject.claim  # slots_at is in subject.json
    assert r.git("for-each-ref", "--format=%(refname)", refs.caps_ref("global")).split() == [slot]
    # another worker's survey counts the kept slot as the chained claim's: the cap is full
    y, _ = other.store.read_subject("f", "y" if nxt.subject.name == "x" else "x")
    cap = other.claims.caps_for(other.config.factories[0], other.config.factories[0].steps[0])
    assert other.claims.caps.has_room(cap, y) == "global full (1/1)"

    # another claim took the slot meanwhile (a worker that judged this one's lease over)
    other_tip = r.git("rev-parse", refs.subject_ref("f", y.name)).strip()
    r.git("update-ref", slot, other_tip, first_tip)
    w.claims.view = View(snap=w.store.snapshot(), facts=None)
    _out, last = w.attempts._record(nxt, ok, chain=True)
    assert last is None  # recorded plainly: the second step's success, nothing claimed
    assert r.git("rev-parse", slot).strip() == other_tip
    subj, _ = w.store.read_subject("f", nxt.subject.name)
    assert subj.state == "done" and subj.claim is None
    for x in (w, other):
        x.store.close()
