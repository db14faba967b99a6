"""The lease observer and the lock rule, pure: tables and Hypothesis, no git, no time passing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from freq import refs
from freq.leases import Ends, Observer, claim_end, lease_of, lock_hold, observe
from freq.model import Config, Factory, LockSpec, Settings, Step
from freq.planner import plan
from freq.runtime import Claim, FailureKind, LastError, Lock, Snapshot, Subject

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
REF = "refs/frequency/subjects/f/x"


def _claimed(name: str = "x", *, at: datetime = T0, ttl: float = 3, epoch: int = 1) -> Subject:
    """A subject claimed by h:1 at `at` (its holder's clock) for `ttl` seconds."""
    return Subject(
        factory="f",
        name=name,
        state="new",
        epoch=epoch,
        attempt=1,
        claim=Claim(
            holder="h:1",
            step="ship",
            attempt=1,
            epoch=epoch,
            claimed_at=at,
            expires_at=at + timedelta(seconds=ttl),
        ),
        created_at=at,
        updated_at=at,
        entered_at=at,
    )


def _lock(*, subject: str = "f/x", epoch: int = 1, ttl: float = 600, **kw: object) -> Lock:
    return Lock(
        name="deploy",
        holder="h:1",
        subject=subject,
        epoch=epoch,
        acquired_at=T0,
        ttl=timedelta(seconds=ttl),
        expires_at=T0 + timedelta(seconds=ttl),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("sightings", "expected"),
    [
        # (tip, monotonic reading) in order → elapsed seconds at the last one
        ([("a", 5.0)], 0.0),
        ([("a", 5.0), ("a", 7.5)], 2.5),
        ([("a", 5.0), ("b", 7.0), ("b", 9.0)], 2.0),  # a change restarts the count
        ([("a", 5.0), ("b", 7.0), ("a", 9.0)], 0.0),  # back to an older tip: a change too
        ([("a", 5.0), ("a", 4.0)], 0.0),  # a reading taken earlier on another thread
    ],
)
def test_elapsed_counts_from_the_first_sight_of_the_current_tip(
    sightings: list[tuple[str, float]], expected: float
) -> None:
    """An observer measures a tip's age from when it first saw it, on its own clock."""
    obs = Observer()
    got = [obs.elapsed(REF, tip, mono) for tip, mono in sightings]
    assert got[-1] == expected


def test_the_lease_end_is_translated_into_the_observers_wall_clock() -> None:
    """Seen 1 s ago, a 3 s lease ends 2 s after the observer's `now`, whatever the
    holder's clock said; the holder's duration is expires_at - updated_at."""
    subj = _claimed(at=T0 - timedelta(hours=5), ttl=3)  # a holder five hours behind
    obs = Observer()
    assert lease_of(subj) == timedelta(seconds=3)
    claim_end(obs, subj, "tip1", now=T0, mono=100.0)
    mine = T0 + timedelta(seconds=1)
    assert claim_end(obs, subj, "tip1", now=mine, mono=101.0) == mine + timedelta(seconds=2)
    assert claim_end(None, subj, "tip1", now=mine, mono=101.0) == subj.claim.expires_at  # type: ignore[union-attr]


def test_a_claim_that_disagrees_with_itself_lasts_nothing() -> None:
    """expires_at before updated_at (a hand-written subject.json) is a zero lease."""
    subj = replace(_claimed(), updated_at=T0 + timedelta(seconds=10))
    assert lease_of(subj) == timedelta(0)
    assert claim_end(Observer(), subj, "t", now=T0, mono=0.0) == T0


def test_observe_forgets_subjects_that_hold_no_claim() -> None:
    """What an observer remembers stays as small as the set of running claims."""
    obs = Observer()
    snap = Snapshot(subjects={("f", "x"): _claimed()}, tips={("f", "x"): "t1"})
    observe(obs, snap, {}, now=T0, mono=0.0)
    assert len(obs) == 1
    free = replace(_claimed(), claim=None)
    observe(
        obs,
        Snapshot(subjects={("f", "x"): free}, tips={("f", "x"): "t2"}),
        {},
        now=T0,
        mono=1.0,
    )
    assert len(obs) == 0


# ---------------------------------------------------------------- Hypothesis

events = st.lists(
    st.tuples(st.sampled_from(["write", "look"]), st.floats(min_value=0.01, max_value=5)),
    min_size=1,
    max_size=40,
)


@given(
    events=events,
    holder_skew=st.floats(min_value=-1e5, max_value=1e5),
    observer_skew=st.floats(min_value=-1e5, max_value=1e5),
    observer_origin=st.floats(min_value=-1e6, max_value=1e6),
    ttl=st.floats(min_value=0.5, max_value=10),
)
def test_an_observer_never_ends_a_lease_before_its_holder_does_whatever_the_skew(
    events: list[tuple[str, float]],
    holder_skew: float,
    observer_skew: float,
    observer_origin: float,
    ttl: float,
) -> None:
    """A holder renews now and then; an observer looks now and then. Whatever both wall
    clocks and the observer's monotonic origin say, the observer judges the lease over
    only once a full ttl has passed since the holder's last write (safety), and always
    once it has seen the same tip for a full ttl (a dead holder is taken over)."""
    obs = Observer()
    t = 0.0  # true time; the holder's monotonic clock reads it as is
    written = 0.0
    tip = 0
    subj = _claimed(at=T0 + timedelta(seconds=holder_skew), ttl=ttl)
    first_look: float | None = None
    for kind, step in events:
        t += step
        if kind == "write":
            written, tip, first_look = t, tip + 1, None
            at = T0 + timedelta(seconds=t + holder_skew)
            subj = _claimed(at=at, ttl=ttl)
            continue
        now = T0 + timedelta(seconds=t + observer_skew)
        end = claim_end(obs, subj, f"tip{tip}", now=now, mono=t + observer_origin)
        assert end is not None
        first_look = t if first_look is None else first_look
        if end <= now:
            assert t - written >= ttl - 1e-6, "taken over while its holder still held it"
        if t - first_look >= ttl + 1e-6:
            assert end <= now, "a lease seen unchanged for a full ttl was still live"


# ---------------------------------------------------------------- named locks


def _lost(subj: Subject, at: datetime) -> Subject:
    err = LastError(
        step="ship",
        attempt=1,
        exit_code=None,
        kind=FailureKind.RETRYABLE,
        reason="worker lost",
        at=at,
    )
    return replace(subj, claim=None, last_error=err)


LIVE = _claimed(ttl=60)


@pytest.mark.parametrize(
    ("lock", "subject", "held", "why"),
    [
        (_lock(), LIVE, True, ""),
        (_lock(released=True), LIVE, False, "released"),
        (_lock(), None, False, "its claim ended: f/x no longer exists"),
        (_lock(), _lost(LIVE, T0 + timedelta(seconds=70)), False, "its claim ended: worker lost"),
        (_lock(), replace(LIVE, claim=None), False, "its claim ended: f/x moved on to new"),
        (
            _lock(),
            replace(LIVE, claim=None, epoch=2, state="done"),
            False,
            "its claim ended: f/x was moved to done outside it (epoch 2)",
        ),
        (
            _lock(),
            _claimed(epoch=2),
            False,
            "its claim ended: f/x is claimed by h:1 (epoch 2)",
        ),
        (_lock(), _claimed(ttl=1), False, "its claim expired at 2026-01-01T12:00:01.000Z"),
        (_lock(ttl=5), LIVE, False, "expired at 2026-01-01T12:00:05.000Z"),
        (
            _lock(),
            replace(LIVE, claim=None, epoch=0),
            False,
            "its claim never landed on f/x",  # its writer died between the lock and the ref
        ),
        (_lock(subject=""), None, True, ""),  # a quota hold: time alone
        (_lock(subject="", ttl=5), None, False, "expired at 2026-01-01T12:00:05.000Z"),
    ],
)
def test_a_lock_is_held_only_while_the_claim_that_took_it_is_live(
    lock: Lock, subject: Subject | None, held: bool, why: str
) -> None:
    """The lock rule of SPEC §5, case by case, ten seconds after the lock was taken."""
    got = lock_hold(lock, subject, now=T0 + timedelta(seconds=10), ends=Ends())
    assert (got.held, got.why) == (held, why)


def test_a_lock_whose_claim_is_about_to_land_is_held() -> None:
    """A claim's batch writes its locks before its subject ref: a reader in between sees
    the lock name an epoch the subject has not reached yet, and must not steal it (found by
    the chaos test: two holders of one lock). It is held for PENDING, then free."""
    landing = replace(LIVE, claim=None, epoch=0)
    got = lock_hold(_lock(), landing, now=T0 + timedelta(seconds=1), ends=Ends())
    assert (got.held, got.until) == (True, T0 + timedelta(seconds=10))


def test_a_held_locks_wait_ends_with_its_claims_lease() -> None:
    """While held, `until` is the earlier of the lock's own expiry and its claim's end."""
    got = lock_hold(_lock(), LIVE, now=T0, ends=Ends())
    assert got.until == T0 + timedelta(seconds=60)


def _config() -> Config:
    fac = Factory(
        factory_id="f",
        path="f.yaml",
        initial="new",
        terminal=("done",),
        steps=(
            Step(
                id="ship",
                from_states=("new",),
                to_state="done",
                run="true",
                locks=(LockSpec(name="deploy"),),
            ),
        ),
    )
    return Config(root="/r", settings=Settings(max_parallel=4), factories=(fac,))


def test_the_planner_starts_behind_a_lock_whose_claim_ended() -> None:
    """x's worker was lost and recorded so: the lock it still names does not make y wait,
    although the lock's own ttl has ten minutes to go."""
    x = _lost(LIVE, T0 + timedelta(seconds=70))
    y = replace(_claimed("y"), claim=None, epoch=0, attempt=0)
    snap = Snapshot(
        subjects={("f", "x"): x, ("f", "y"): y},
        tips={("f", "x"): "t1", ("f", "y"): "t2"},
        locks={"deploy": _lock()},
    )
    p = plan(_config(), snap, now=T0 + timedelta(seconds=80))
    assert [s.subject for s in p.starts] == ["x", "y"]  # the claim decides who gets it
    assert not p.waiting
    held = replace(snap, subjects={**snap.subjects, ("f", "x"): LIVE})
    (waiting,) = plan(_config(), held, now=T0 + timedelta(seconds=10)).waiting[1:]
    assert waiting.reasons == ("lock deploy held by h:1 (f/x) until 2026-01-01T12:01:00Z",)


def test_the_planner_follows_the_observer_not_the_holders_clock() -> None:
    """A claim whose holder's clock says it expired long ago is running for a worker whose
    observer saw it a moment ago; and the other way round."""
    x = _claimed(at=T0 - timedelta(hours=1), ttl=3)
    snap = Snapshot(subjects={("f", "x"): x}, tips={("f", "x"): "t1"})
    cfg = _config()
    assert [e.subject for e in plan(cfg, snap, now=T0).expired] == ["x"]  # one-shot view
    obs = Observer()
    ends = observe(obs, snap, {}, now=T0, mono=50.0)
    p = plan(cfg, snap, now=T0, ends=ends)
    assert not p.expired and p.waiting[0].kind == "running"
    assert p.next_wake == T0 + timedelta(seconds=3)
    later = T0 + timedelta(seconds=3)
    ends = observe(obs, snap, {}, now=later, mono=53.0)
    assert [e.subject for e in plan(cfg, snap, now=later, ends=ends).expired] == ["x"]
    ahead = _claimed(at=T0 + timedelta(hours=1), ttl=3)  # a holder an hour ahead
    snap2 = Snapshot(subjects={("f", "x"): ahead}, tips={("f", "x"): "t2"})
    ends2 = observe(obs, snap2, {}, now=later, mono=53.0)
    assert plan(cfg, snap2, now=later + timedelta(seconds=3), ends=ends2).expired


def test_a_lock_held_by_a_claim_expires_by_the_observers_clock() -> None:
    """The lock's own ttl, too, runs from when this observer first saw its tip."""
    obs = Observer()
    lock = _lock(ttl=5)
    lock = replace(lock, acquired_at=T0 - timedelta(days=1), expires_at=T0 - timedelta(days=1))
    snap = Snapshot(subjects={("f", "x"): LIVE}, tips={("f", "x"): "t1"}, locks={"deploy": lock})
    ends = observe(obs, snap, {"deploy": "L1"}, now=T0, mono=0.0)
    assert lock_hold(lock, LIVE, now=T0, ends=ends).held
    assert ends.lock(lock) == T0 + timedelta(seconds=5)
    assert refs.lock_ref("deploy") in obs._seen
