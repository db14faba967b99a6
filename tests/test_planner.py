"""The pure planner: caps, WIP, backoff, gates, leases, order. No git involved."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from freq.model import Capacity, Config, Factory, Limits, RetryPolicy, Settings, Step, SubjectState
from freq.planner import plan
from freq.runtime import Claim, LastError, Snapshot, Subject

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _factory(**limits: object) -> Factory:
    steps = (
        Step(id="implement", from_states=("selected",), to_state="implemented", run="true"),
        Step(
            id="review",
            from_states=("implemented",),
            to_state="reviewed",
            run="true",
            max_parallel=1,
        ),
        Step(id="ship", from_states=("reviewed",), to_state="promoted"),  # a gate
    )
    return Factory(
        factory_id="build",
        path=".frequency/build.yaml",
        initial="selected",
        terminal=("promoted",),
        steps=steps,
        limits=Limits(**limits),
    )  # type: ignore[arg-type]


def _config(fac: Factory, max_parallel: int = 4) -> Config:
    return Config(root="/r", settings=Settings(max_parallel=max_parallel), factories=(fac,))


def _subj(name: str, state: str = "selected", minutes_ago: int = 0, **kw: object) -> Subject:
    t = NOW - timedelta(minutes=minutes_ago)
    return Subject(
        factory="build", name=name, state=state, created_at=t, updated_at=t, entered_at=t, **kw
    )  # type: ignore[arg-type]


def _snap(*subjects: Subject) -> Snapshot:
    return Snapshot(
        subjects={(s.factory, s.name): s for s in subjects},
        tips={(s.factory, s.name): f"{i:040x}" for i, s in enumerate(subjects)},
    )


def test_oldest_first_under_the_global_cap() -> None:
    """With a cap of 2, the two subjects waiting longest start; the rest wait on the cap."""
    snap = _snap(_subj("a", minutes_ago=1), _subj("b", minutes_ago=5), _subj("c", minutes_ago=3))
    p = plan(_config(_factory(), max_parallel=2), snap, now=NOW)
    assert [(s.subject, s.step, s.attempt) for s in p.starts] == [
        ("b", "implement", 1),
        ("c", "implement", 1),
    ]
    (w,) = p.waiting
    assert (w.subject, w.kind, w.reasons) == (
        "a",
        "cap",
        ("global max_parallel reached (2/2 running)",),
    )


def test_running_claims_count_against_caps() -> None:
    """A live claim is running: it fills the step cap; an expired one is recovered."""
    live = Claim(
        holder="h:1:1",
        step="review",
        attempt=1,
        epoch=1,
        claimed_at=NOW,
        expires_at=NOW + timedelta(seconds=30),
    )
    dead = replace(live, holder="h:2:2", expires_at=NOW - timedelta(seconds=1))
    snap = _snap(
        _subj("r1", "implemented", claim=live),
        _subj("r2", "implemented"),
        _subj("r3", "implemented", claim=dead),
    )
    p = plan(_config(_factory()), snap, now=NOW)
    assert p.starts == ()
    assert p.running == 1
    assert [(e.subject, e.holder) for e in p.expired] == [("r3", "h:2:2")]
    reasons = {w.subject: w.reasons for w in p.waiting}
    assert reasons["r2"] == ("step max_parallel reached (1/1 running)",)
    assert reasons["r1"][0].startswith("running review attempt 1 on h:1:1 since")
    assert p.next_wake == NOW + timedelta(seconds=30)


def test_wip_limit_of_the_target_state() -> None:
    """A step whose to_state is full is not planned."""
    fac = _factory(wip=MappingProxyType({"implemented": 2}))
    snap = _snap(_subj("i1", "implemented"), _subj("s1", "selected"), _subj("s2", "selected"))
    p = plan(_config(fac), snap, now=NOW)
    starts = [s.subject for s in p.starts]
    assert starts == ["i1", "s1"]  # one implemented + one on its way fill the limit of 2
    waits = {w.subject: (w.kind, w.reasons) for w in p.waiting}
    assert waits["s2"] == ("wip", ("WIP limit of implemented full (2/2)",))


def test_backoff_gate_terminal_and_exhausted() -> None:
    """Each reason a subject waits is named in plain words."""
    err = LastError(
        step="implement", attempt=3, exit_code=1, kind="retryable", reason="exit 1", at=NOW
    )
    snap = _snap(
        _subj(
            "back",
            attempt=1,
            not_before=NOW + timedelta(seconds=40),
            last_error=replace(err, attempt=1),
        ),
        _subj("spent", attempt=3, last_error=err),
        _subj("gated", "reviewed"),
        _subj("done", "promoted"),
    )
    p = plan(_config(_factory()), snap, now=NOW)
    assert p.starts == ()
    got = {w.subject: (w.kind, w.reasons) for w in p.waiting}
    assert got == {
        "back": ("backoff", ("backoff until 2026-01-01T12:00:40Z after attempt 1 failed",)),
        "spent": ("exhausted", ("retries exhausted: 3 of 3 attempts failed (last: exit 1)",)),
        "gated": ("gate", ("gate ship waits for approval (`git freq approve build gated ship`)",)),
        "done": ("terminal", ("promoted is a terminal state",)),
    }
    assert p.next_wake == NOW + timedelta(seconds=40)


def test_retry_after_backoff_is_the_next_attempt() -> None:
    """Once the backoff has passed the next attempt number is planned."""
    err = LastError(
        step="implement", attempt=1, exit_code=1, kind="retryable", reason="exit 1", at=NOW
    )
    snap = _snap(_subj("x", attempt=1, not_before=NOW - timedelta(seconds=1), last_error=err))
    (start,) = plan(_config(_factory()), snap, now=NOW).starts
    assert (start.step, start.attempt) == ("implement", 2)


def test_predicates_gate_a_step_with_reasons() -> None:
    """requires: a subject_state and a capacity predicate, with the values they saw."""
    deploy = Factory(
        factory_id="deploy",
        path="d.yaml",
        initial="queued",
        terminal=("live",),
        steps=(
            Step(
                id="ship",
                from_states=("queued",),
                to_state="live",
                run="true",
                requires=(
                    SubjectState(factory_id="build", states=("promoted",)),
                    Capacity(factory_id="build", states=("selected",), below=2),
                ),
            ),
        ),
    )
    cfg = Config(root="/r", factories=(_factory(), deploy))
    d = Subject(
        factory="deploy", name="a", state="queued", created_at=NOW, updated_at=NOW, entered_at=NOW
    )
    snap = _snap(_subj("a", "implemented"), _subj("b"), _subj("c"), d)
    p = plan(cfg, snap, now=NOW, factories=("deploy",))
    (w,) = p.waiting
    assert w.reasons == (
        "requires subject_state build/a in [promoted]: it is in [implemented]; "
        "requires capacity build [selected] below 2: 2 there",
    )


def test_retry_policy_default_allows_three_attempts() -> None:
    """The default policy is Temporal-like: three attempts."""
    assert RetryPolicy().max_attempts == 3


def test_explain_lists_every_reason_not_only_the_first() -> None:
    """`why` (plan with explain=) gives all reasons: paused, backoff, approval, lock."""
    from freq.model import Autonomy, LockSpec
    from freq.runtime import Control, Lock

    fac = Factory(
        factory_id="build",
        path="b.yaml",
        initial="selected",
        terminal=("done",),
        steps=(
            Step(
                id="ship",
                from_states=("selected",),
                to_state="done",
                run="true",
                approval=True,
                locks=(LockSpec(name="deploy"),),
            ),
        ),
    )
    err = LastError(step="ship", attempt=1, exit_code=1, kind="retryable", reason="exit 1", at=NOW)
    subj = _subj("x", attempt=1, not_before=NOW + timedelta(minutes=1), last_error=err)
    lock = Lock(
        name="deploy",
        holder="h:9:9",
        subject="build/y",
        epoch=3,
        acquired_at=NOW,
        ttl=timedelta(minutes=5),
        expires_at=NOW + timedelta(minutes=5),
    )
    holder = _subj(
        "y",
        epoch=3,
        claim=Claim(
            holder="h:9:9",
            step="ship",
            attempt=1,
            epoch=3,
            claimed_at=NOW,
            expires_at=NOW + timedelta(minutes=10),
        ),
    )  # the lock is held while the claim that took it is live
    snap = replace(
        _snap(subj, holder),
        locks={"deploy": lock},
        controls={
            "build": Control(
                factory="build",
                paused=True,
                autonomy=Autonomy.SUPERVISED,
                by="ana",
                why="release freeze",
            )
        },
    )
    cfg = _config(fac)
    (first,) = [w for w in plan(cfg, snap, now=NOW).waiting if w.subject == "x"]
    assert first.reasons == ("factory build is paused by ana: release freeze",)
    (every,) = [
        w for w in plan(cfg, snap, now=NOW, explain=("build", "x")).waiting if w.subject == "x"
    ]
    assert every.reasons == (
        "factory build is paused by ana: release freeze",
        "backoff until 2026-01-01T12:01:00Z after attempt 1 failed",
        "autonomy is supervised: ship waits for approval (`git freq approve build x ship`)",
        "lock deploy held by h:9:9 (build/y) until 2026-01-01T12:05:00Z",
    )
