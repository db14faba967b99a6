"""The merge queue's rules, without git: transitions (queued, landed, land_failed),
land_failed), the planner's view of queued subjects and path lanes, the queue's order, and
the serialisation of what it records (freq/transitions.py, freq/planner.py, freq/refs.py)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from freq import costs, refs
from freq import transitions as t
from freq.model import Backoff, Config, Factory, Isolation, Merge, RetryPolicy, Settings, Step
from freq.planner import plan, queues
from freq.runtime import Claim, EventKind, Landing, Snapshot, Subject

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=60)
STEP = Step(
    id="work",
    from_states=("new",),
    to_state="done",
    run="make",
    isolation=Isolation.WORKTREE,
    merge=Merge(),
    retry=RetryPolicy(max_attempts=2, backoff=Backoff(initial=timedelta(seconds=10), jitter=0)),
)


def _claimed(name: str = "x", **data: str) -> Subject:
    subj = t.created("f", name, "new", at=T0, worker="w", data=data).subject
    return t.claimed(subj, step="work", attempt=1, worker="w", at=T0, ttl=TTL).subject


def _landing(subj: Subject, *, at: datetime = T0, priority: int = 0) -> Landing:
    return Landing(
        step="work",
        attempt=subj.attempt,
        to_state="done",
        target="main",
        branch=f"freq/f/{subj.name}/work",
        commit="c" * 40,
        base="b" * 40,
        queued_at=at,
        priority=priority,
        exit_code=0,
        duration_ms=5,
    )


def _queued(name: str = "x", *, at: datetime = T0, priority: int = 0) -> Subject:
    subj = _claimed(name)
    return t.queued(
        subj,
        landing=_landing(subj, at=at, priority=priority),
        at=at,
        worker="w",
        duration_ms=5,
        exit_code=0,
    ).subject


def test_queued_ends_the_claim_and_keeps_the_subject_in_its_state() -> None:
    """A worktree step's success: the claim ends, the subject stays where it is with its
    landing, and the commit says queued with the target, branch and commit."""
    subj = _claimed()
    change = t.queued(subj, landing=_landing(subj), at=T0, worker="w", duration_ms=5, exit_code=0)
    new, ev = change.subject, change.event
    assert (new.state, new.claim, new.landing) == ("new", None, _landing(subj))
    assert (ev.kind, ev.to_state, ev.target, ev.branch) == (
        EventKind.QUEUED,
        "done",
        "main",
        "freq/f/x/work",
    )
    assert refs.subject_line(ev) == "f/x: work queued to land on main (attempt 1)"
    assert "Freq-Commit: " + "c" * 40 in refs.format_message(ev)


def test_landed_enters_the_state_with_the_landed_commit_as_mark() -> None:
    """landed enters to_state, records the commit, drops the landing, and its message is
    the SPEC's transition line."""
    subj = _queued()
    done = t.landed(subj, commit="d" * 40, at=T0, worker="lander")
    assert (done.subject.state, done.subject.landing, done.subject.marks["work"]) == (
        "done",
        None,
        "d" * 40,
    )
    assert refs.subject_line(done.event) == "f/x: work new -> done"
    assert done.event.landed == "d" * 40


@pytest.mark.parametrize(
    ("attempt", "terminal", "at_once", "final", "backoff"),
    [
        (1, False, False, False, timedelta(seconds=10)),  # retry after the step's backoff
        (2, False, False, True, None),  # attempts spent: final
        (1, True, False, True, None),  # on_conflict: terminal
        (1, False, True, False, timedelta(0)),  # on_conflict: agent, at once
    ],
)
def test_land_failed_is_a_failure_of_the_attempt(
    attempt: int, terminal: bool, at_once: bool, final: bool, backoff: timedelta | None
) -> None:
    """A conflict leaves the queue as a failure of the attempt that made the branch,
    naming the paths; retried by the step's policy unless final."""
    subj = _queued()
    subj = replace(subj, attempt=attempt, landing=replace(subj.landing, attempt=attempt))  # type: ignore[arg-type]
    change = t.land_failed(
        subj,
        STEP,
        why="merge conflict on main in a.txt",
        detail="CONFLICT (content): a.txt",
        conflict=("a.txt",),
        terminal=terminal,
        at_once=at_once,
        at=T0,
        worker="l",
        rng=random.Random(0),
    )
    new = change.subject
    err = new.last_error
    assert err is not None and new.landing is None and new.state == "new"
    assert (err.final, err.conflict, err.attempt) == (final, ("a.txt",), attempt)
    assert new.not_before == (None if backoff is None else T0 + backoff)
    assert change.event.conflict == "a.txt"
    assert change.event.failure is not None and change.event.failure.startswith(
        "terminal" if terminal else "retryable"
    )


def test_subject_json_round_trips_a_landing_and_a_lane() -> None:
    """What the queue and the lanes keep in subject.json reads back equal."""
    subj = _queued(priority=3)
    claim = Claim(
        holder="w",
        step="work",
        attempt=1,
        epoch=1,
        claimed_at=T0,
        expires_at=T0 + TTL,
        touches=("src/**",),
    )
    subj = replace(subj, claim=claim)
    raw = refs.subject_to_json(subj)
    assert refs.subject_from_json(raw, where="x") == subj


def test_queue_events_after_the_queueing_are_not_attempt_ends() -> None:
    """Costs count an attempt at its queueing; the landing and a conflict are not more."""
    subj = _queued()
    queued_ev = t.queued(
        _claimed(), landing=_landing(subj), at=T0, worker="w", duration_ms=5, exit_code=0
    ).event
    landed = t.landed(subj, commit="d" * 40, at=T0, worker="l").event
    failed = t.land_failed(
        subj, STEP, why="w", detail="", at=T0, worker="l", rng=random.Random(0)
    ).event
    ends = [costs.from_event(e) for e in (queued_ev, landed, failed)]
    assert [e.outcome if e else None for e in ends] == ["succeeded", None, None]


def _config(step: Step = STEP) -> Config:
    fac = Factory(factory_id="f", path="f.yaml", initial="new", terminal=("done",), steps=(step,))
    return Config(root="/r", settings=Settings(max_parallel=8), factories=(fac,))


def _snap(*subjects: Subject) -> Snapshot:
    return Snapshot(
        subjects={(s.factory, s.name): s for s in subjects},
        tips={(s.factory, s.name): f"{i:040x}" for i, s in enumerate(subjects)},
    )


def test_a_queued_subject_waits_with_its_position_and_the_plan_names_the_target() -> None:
    """Queued subjects start nothing; why says where they stand; plan lists the target."""
    a = _queued("a", at=T0)
    b = _queued("b", at=T0 + timedelta(seconds=1))
    p = plan(_config(), _snap(a, b), now=T0 + timedelta(minutes=1))
    assert p.starts == () and p.landings == ("main",)
    reasons = {w.subject: (w.kind, w.reasons[0]) for w in p.waiting}
    assert reasons["a"][0] == "queued"
    assert "queued to land work attempt 1 on main (position 1 of 2)" in reasons["a"][1]
    assert "(position 2 of 2)" in reasons["b"][1]


def test_queue_order_is_first_in_first_out_with_priority_and_ageing() -> None:
    """A point of priority is worth ten minutes of waiting: a high-priority entry goes
    first, but one that waited long enough still overtakes it."""
    old = _queued("old", at=T0)
    urgent = _queued("urgent", at=T0 + timedelta(minutes=5), priority=1)
    newest = _queued("newest", at=T0 + timedelta(minutes=6))
    order = [s.name for s in queues(_snap(newest, old, urgent))["main"]]
    assert order == ["urgent", "old", "newest"]
    late = _queued("late", at=T0 + timedelta(minutes=11), priority=1)
    assert [s.name for s in queues(_snap(late, old))["main"]] == ["old", "late"]


def _running(name: str, lane: str, **data: str) -> Subject:
    subj = _claimed(name, **data)
    claim = subj.claim
    assert claim is not None
    return replace(subj, claim=replace(claim, touches=(lane,)))


def test_touches_block_an_overlapping_lane_and_say_who_holds_it() -> None:
    """A step whose lane overlaps a live claim's waits, naming that attempt; a disjoint
    one starts, and two waiting subjects with overlapping lanes do not both start."""
    step = replace(STEP, touches=("apps/{data.app}/**",))
    holder = _running("h", "apps/web/**", app="web")
    same = t.created("f", "same", "new", at=T0, worker="w", data={"app": "web"}).subject
    other = t.created("f", "other", "new", at=T0, worker="w", data={"app": "api"}).subject
    twin = t.created("f", "twin", "new", at=T0, worker="w", data={"app": "api"}).subject
    p = plan(_config(step), _snap(holder, same, other, twin), now=T0 + timedelta(seconds=1))
    started = {s.subject for s in p.starts}
    assert "same" not in started and len(started & {"other", "twin"}) == 1
    why = {w.subject: w for w in p.waiting}
    assert why["same"].kind == "lane"
    assert (
        "lane apps/web/** overlaps apps/web/** of f/h work attempt 1 on w" in why["same"].reasons[0]
    )


def test_a_lane_template_naming_missing_data_waits_with_the_reason() -> None:
    """touches that name a data key the subject lacks: the step cannot start, and says so."""
    step = replace(STEP, touches=("apps/{data.app}/**",))
    holder = _running("h", "x/**", app="x")
    lacking = t.created("f", "l", "new", at=T0, worker="w").subject
    p = plan(_config(step), _snap(holder, lacking), now=T0 + timedelta(seconds=1))
    (w,) = [w for w in p.waiting if w.subject == "l"]
    assert w.kind == "lane" and "app" in w.reasons[0]


LANES = """
factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - id: work
    from_states: [new]
    to_state: done
    run: "true"
    touches: ["{data.dir}/**"]
"""


def test_two_workers_planning_overlapping_lanes_together_get_one_claim(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Two workers plan from the same state, each starting a different subject whose lanes
    overlap: the lanes ref lets one claim through and refuses the other; a disjoint lane
    is claimed beside it, and the lane is free again once its claim ends."""
    from freq.clock import FakeClock
    from freq.config import load_config
    from freq.loop import Worker
    from freq.store import Store

    r = freq_repo({".frequency/f.yaml": LANES})
    for name, d in (("a", "src"), ("b", "src/api"), ("c", "docs")):
        r.run("add", "f", name, "--data", f"dir={d}").assert_success()
    clock = FakeClock()
    cfg = load_config(r.path)
    w1, w2 = (
        Worker(
            Store.discover(r.path, clock=clock),
            cfg,
            clock=clock,
            worker=f"h:{i}:1",
            rng=random.Random(i),
        )
        for i in (1, 2)
    )
    snap = w1.store.snapshot()
    starts = {s.subject: s for s in plan(cfg, snap, now=clock.now()).starts}
    assert set(starts) == {"a", "c"}  # b overlaps a, planned in the same cycle
    # a stale plan that saw neither claim: b as if a were not started
    stale = plan(
        cfg,
        Snapshot(
            subjects={k: v for k, v in snap.subjects.items() if k != ("f", "a")},
            tips={k: v for k, v in snap.tips.items() if k != ("f", "a")},
        ),
        now=clock.now(),
    ).starts
    b_start = next(s for s in stale if s.subject == "b")
    lease_a = w1.claims.claim(starts["a"])
    assert lease_a is not None
    assert w2.claims.claim(b_start) is None  # refused by the lanes ref, not by the plan
    assert w2.claims.claim(starts["c"]) is not None
    lanes = r.git("show", "refs/frequency/lanes:lanes.json")
    assert '"subject": "a"' in lanes and '"subject": "c"' in lanes
    # a's attempt ends: its lane is free by derivation, and b can take it
    w1.attempts.execute(lease_a)
    again = next(
        s for s in plan(cfg, w2.store.snapshot(), now=clock.now()).starts if s.subject == "b"
    )
    assert w2.claims.claim(again) is not None


def test_queued_work_holds_its_lane_until_it_lands() -> None:
    """The lane of an attempt whose work waits in the queue stays held: an overlapping
    step waits for the landing, naming it."""
    step = replace(STEP, touches=("shared.txt",))
    held = _queued("q")
    held = replace(held, landing=replace(held.landing, touches=("shared.txt",)))  # type: ignore[arg-type]
    other = t.created("f", "o", "new", at=T0, worker="w").subject
    p = plan(_config(step), _snap(held, other), now=T0 + timedelta(seconds=1))
    assert p.starts == ()
    (w,) = [w for w in p.waiting if w.subject == "o"]
    assert w.kind == "lane" and "queued to land on main" in w.reasons[0]


def test_a_priority_out_of_range_cannot_break_the_queue() -> None:
    """A hand-made priority far out of range is clamped: the queue still orders."""
    huge = _queued("huge", priority=10**15)
    plain = _queued("plain")
    assert [s.name for s in queues(_snap(plain, huge))["main"]] == ["huge", "plain"]
