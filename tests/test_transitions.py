"""Every rule for how a subject changes, table-tested without git (freq/transitions.py)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from freq import transitions as t
from freq.classify import Ending
from freq.model import Backoff, ClassifyRule, FailureKind, RetryPolicy, Step
from freq.runtime import Emitted, EventKind, Subject

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=60)
STEP = Step(
    id="build",
    from_states=("new",),
    to_state="built",
    run="make",
    retry=RetryPolicy(max_attempts=3, backoff=Backoff(initial=timedelta(seconds=10), jitter=0)),
    timeout=timedelta(minutes=40),
)


def _new() -> Subject:
    return t.created("f", "x", "new", at=T0, worker="w", data={"k": "v"}).subject


def _claimed(attempt: int = 1, subj: Subject | None = None) -> Subject:
    base = subj or _new()
    return t.claimed(base, step="build", attempt=attempt, worker="w", at=T0, ttl=TTL).subject


def _fail(subj: Subject, tail: str = "boom", code: int | None = 1, **kw: object) -> t.Change:
    change, _cls = t.failed(
        subj,
        kw.pop("step", STEP),  # type: ignore[arg-type]
        Ending(exit_code=code, tail=tail, **kw),  # type: ignore[arg-type]
        how=f"exit {code}",
        duration_ms=7,
        at=T0,
        worker="w",
        rng=random.Random(1),
    )
    return change


def test_created_starts_fresh_in_its_state() -> None:
    """A new subject: in its state, epoch 0, no attempts, its data, a created event."""
    c = t.created("f", "x", "new", at=T0, worker="w", data={"k": "v"}, reason="discovered")
    assert (c.subject.state, c.subject.epoch, c.subject.attempt) == ("new", 0, 0)
    assert dict(c.subject.data) == {"k": "v"}
    assert c.subject.created_at == c.subject.entered_at == T0
    assert (c.event.kind, c.event.to_state, c.event.reason) == (
        EventKind.CREATED,
        "new",
        "discovered",
    )


def test_claimed_raises_the_epoch_and_leases_the_attempt() -> None:
    """A claim is the fencing token: epoch + 1, held until now + ttl, backoff cleared."""
    base = replace(_new(), epoch=4, not_before=T0 + TTL)
    c = t.claimed(base, step="build", attempt=2, worker="w9", at=T0, ttl=TTL)
    claim = c.subject.claim
    assert claim is not None
    assert (claim.holder, claim.step, claim.attempt, claim.epoch) == ("w9", "build", 2, 5)
    assert claim.expires_at == T0 + TTL
    assert (c.subject.epoch, c.subject.attempt, c.subject.not_before) == (5, 2, None)
    assert (c.event.kind, c.event.epoch, c.event.from_state) == (EventKind.CLAIMED, 5, "new")


def test_renewed_extends_the_lease_only() -> None:
    """Renewal moves the expiry; epoch and attempt stay."""
    subj = _claimed()
    later = T0 + timedelta(seconds=30)
    c = t.renewed(subj, at=later, ttl=TTL, worker="w")
    assert c.subject.claim is not None and c.subject.claim.expires_at == later + TTL
    assert (c.subject.epoch, c.subject.attempt) == (subj.epoch, subj.attempt)
    assert c.event.kind is EventKind.RENEWED


def test_succeeded_enters_the_state_with_mark_and_emitted() -> None:
    """A success: the target state afresh, the step's mark kept, emitted subjects named."""
    subj = replace(_claimed(), marks={"other": "abc"})
    want = (Emitted(factory="g", state="s", name="y"),)
    c = t.succeeded(
        subj,
        to_state="built",
        at=T0,
        worker="w",
        duration_ms=9,
        exit_code=0,
        mark="def",
        emitted=want,
    )
    s = c.subject
    assert (s.state, s.attempt, s.claim, s.epoch) == ("built", 0, None, subj.epoch)
    assert dict(s.marks) == {"other": "abc", "build": "def"}
    assert s.emitted == want
    e = c.event
    assert (e.kind, e.step, e.from_state, e.to_state, e.duration_ms) == (
        EventKind.TRANSITIONED,
        "build",
        "new",
        "built",
        9,
    )


def test_chained_records_the_success_and_the_next_claim_together() -> None:
    """One commit: the success's event with a Freq-Claims line, the subject claimed again."""
    done = t.succeeded(_claimed(), to_state="built", at=T0, worker="w", duration_ms=1, exit_code=0)
    c = t.chained(done, step="ship", attempt=1, worker="w", at=T0, ttl=TTL)
    assert c.subject.state == "built"
    assert c.subject.claim is not None and c.subject.claim.step == "ship"
    assert c.subject.epoch == done.subject.epoch + 1
    assert c.event.kind is EventKind.TRANSITIONED
    assert c.event.next_claim == f"ship attempt 1 epoch {done.subject.epoch + 1}"


@pytest.mark.parametrize(
    ("attempt", "tail", "code", "kind", "final", "spent"),
    [
        (1, "boom", 1, FailureKind.RETRYABLE, False, 1),  # backoff, attempt spent
        (3, "boom", 1, FailureKind.RETRYABLE, True, 3),  # the last attempt: final
        (1, "permission denied", 1, FailureKind.TERMINAL, True, 1),  # inferred terminal
        (2, "usage limit", 9, FailureKind.QUOTA, False, 1),  # a quota spends no attempt
        (1, "which branch?", 4, FailureKind.NEEDS_HUMAN, True, 1),  # parked with the question
    ],
)
def test_failed_classifies_and_schedules(
    attempt: int, tail: str, code: int, kind: FailureKind, final: bool, spent: int
) -> None:
    """Each class: its kind, whether it ends the retries, and the attempts it spends."""
    step = replace(
        STEP,
        classify=(
            ClassifyRule(match="usage limit", kind=FailureKind.QUOTA),
            ClassifyRule(exit=4, kind=FailureKind.NEEDS_HUMAN),
        ),
    )
    c = _fail(_claimed(attempt), tail=tail, code=code, step=step)
    err = c.subject.last_error
    assert err is not None
    assert (err.kind, err.final, c.subject.attempt, c.subject.claim) == (kind, final, spent, None)
    if kind is FailureKind.RETRYABLE and not final:
        assert c.subject.not_before == T0 + timedelta(seconds=10)
    if kind is FailureKind.QUOTA:
        assert c.subject.not_before == T0 + timedelta(minutes=15)  # no reset time said
    if kind is FailureKind.NEEDS_HUMAN:
        assert err.question == "which branch?"
    if final and kind is FailureKind.RETRYABLE:
        assert err.rule.endswith("retries exhausted (3 of 3)")
    assert c.event.kind is EventKind.FAILED and c.event.failure is not None
    assert c.event.failure.startswith(kind.value)


def test_the_same_error_three_times_is_terminal() -> None:
    """Repetition: the same fingerprint on consecutive attempts ends the retries."""
    step = replace(STEP, retry=replace(STEP.retry, max_attempts=10))
    subj = _claimed(1)
    for attempt in (1, 2, 3):
        subj = _fail(_claimed(attempt, subj), tail="same mistake", step=step).subject
    err = subj.last_error
    assert err is not None and err.kind is FailureKind.TERMINAL and err.repeats == 3
    assert err.rule.startswith("repeated: same error 3 times")


def test_a_timeout_says_how_long() -> None:
    """A timed-out attempt's reason names the step's timeout."""
    c = _fail(_claimed(), code=None, timed_out=True)
    assert c.subject.last_error is not None
    assert c.subject.last_error.reason == "timed out after 40m"


@pytest.mark.parametrize(("attempt", "final"), [(1, False), (3, True)])
def test_worker_lost_is_retryable_until_the_budget_is_spent(attempt: int, final: bool) -> None:
    """An expired lease: a retryable failure of that attempt, final when it was the last."""
    c = t.worker_lost(_claimed(attempt), STEP, at=T0, worker="other", rng=random.Random(1))
    err = c.subject.last_error
    assert err is not None and err.reason == "worker lost" and err.final is final
    assert c.subject.claim is None
    assert (c.subject.not_before is None) is final
    assert c.event.reason is not None and c.event.reason.startswith("lease of w expired at")


def test_worker_lost_of_a_step_no_longer_configured_is_not_retried() -> None:
    """No step to retry: the claim ends, no backoff, not final (nothing parks it)."""
    c = t.worker_lost(_claimed(1), None, at=T0, worker="other", rng=random.Random(1))
    err = c.subject.last_error
    assert err is not None and err.final is False and c.subject.not_before is None
    assert err.rule == "worker lost; the step is no longer configured, not retried"
    assert c.subject.claim is None and c.subject.state == _claimed(1).state


def test_released_gives_the_attempt_back() -> None:
    """Interrupted twice: no attempt spent, no claim, still in its state."""
    c = t.released(_claimed(2), at=T0, worker="w", duration_ms=3)
    assert (c.subject.attempt, c.subject.claim, c.subject.state) == (1, None, "new")
    assert c.event.kind is EventKind.RELEASED


@pytest.mark.parametrize(
    ("on_terminal", "state", "parked"), [(None, "new", "f#1"), ("failed", "failed", None)]
)
def test_parked_files_the_failure(on_terminal: str | None, state: str, parked: str | None) -> None:
    """Parked: the entry id is remembered; with on_terminal the subject moves there."""
    failed = _fail(_claimed(), tail="permission denied").subject
    c = t.parked(failed, entry="f#1", on_terminal=on_terminal, at=T0, worker="w")
    assert (c.subject.state, c.subject.parked) == (state, parked)
    assert c.subject.last_error is not None and c.subject.last_error.dlq == "f#1"
    assert (c.event.kind, c.event.dlq, c.event.to_state) == (EventKind.PARKED, "f#1", state)


def test_parking_needs_a_final_failure() -> None:
    """Only a final failure can be parked."""
    with pytest.raises(ValueError, match="no final failure"):
        t.parked(_claimed(), entry="f#1", on_terminal=None, at=T0, worker="w")


@pytest.mark.parametrize("rule", ["requeued", "moved", "approved"])
def test_moves_outside_a_claim_fence_off_running_attempts(rule: str) -> None:
    """Requeue, manual move and gate approval: a fresh budget and a new epoch."""
    subj = replace(_fail(_claimed(), tail="permission denied").subject, parked="f#1")
    if rule == "requeued":
        c = t.requeued(subj, state="new", record="f#2", at=T0, by="ana", reason="fixed")
        assert (c.event.kind, c.event.dlq) == (EventKind.REQUEUED, "f#2")
    elif rule == "moved":
        c = t.moved(subj, state="built", at=T0, by="ana", reason="done by hand")
        assert c.event.kind is EventKind.MOVED
    else:
        gate = Step(id="ok", from_states=("new",), to_state="built")
        c = t.approved(subj, gate, at=T0, by="ana", reason="looks right")
        assert c.event.reason == "approved by ana: looks right"
    s = c.subject
    assert s.epoch == subj.epoch + 1
    assert (s.attempt, s.claim, s.last_error, s.parked, s.not_before) == (0, None, None, None, None)
    assert c.event.worker == "ana"


@pytest.mark.parametrize("rule", ["renewed", "succeeded", "released", "worker_lost"])
def test_rules_of_a_claim_refuse_a_subject_without_one(rule: str) -> None:
    """Renewing, recording or recovering needs a claim."""
    calls = {
        "renewed": lambda s: t.renewed(s, at=T0, ttl=TTL, worker="w"),
        "succeeded": lambda s: t.succeeded(
            s, to_state="built", at=T0, worker="w", duration_ms=0, exit_code=0
        ),
        "released": lambda s: t.released(s, at=T0, worker="w", duration_ms=0),
        "worker_lost": lambda s: t.worker_lost(s, STEP, at=T0, worker="w", rng=random.Random()),
    }
    with pytest.raises(ValueError, match="has no claim"):
        calls[rule](_new())


def _repaired(subj: Subject, seen_epoch: int = 0) -> t.Change:
    return t.repaired(
        subj,
        at=T0 + TTL,
        by="ana",
        missing=("a" * 40, "b" * 40),
        lost=3,
        seen_epoch=seen_epoch,
        restored_from="c" * 40,
        reason="history broken at aaaaaaaaaaaa",
        details="No longer in this history (3 commits, newest first):\n  ...",
    )


@pytest.mark.parametrize(
    ("claimed", "seen_epoch", "epoch", "attempt"),
    [
        (False, 0, 1, 0),  # no claim: the epoch still rises (a move outside any claim)
        (True, 0, 2, 0),  # a claim ends, its attempt is given back
        (True, 7, 8, 0),  # lost commits held a higher epoch: the new one is above it
    ],
)
def test_repaired_ends_any_claim_and_rises_above_every_epoch_seen(
    claimed: bool, seen_epoch: int, epoch: int, attempt: int
) -> None:
    """A repair keeps the state as read (state, data, error, backoff), ends a claim without
    spending its attempt, and fences off an attempt still running under the broken chain."""
    subj = _claimed() if claimed else replace(_new(), not_before=T0 + TTL)
    c = _repaired(subj, seen_epoch)
    s = c.subject
    assert (s.epoch, s.attempt, s.claim, s.updated_at) == (epoch, attempt, None, T0 + TTL)
    assert (s.state, s.data, s.not_before, s.created_at) == (
        subj.state,
        subj.data,
        subj.not_before,
        subj.created_at,
    )
    e = c.event
    assert (e.kind, e.from_state, e.to_state, e.epoch, e.worker) == (
        EventKind.REPAIRED,
        "new",
        "new",
        epoch,
        "ana",
    )
    assert (e.step, e.attempt) == (("build", 1) if claimed else (None, None))
    assert (e.missing, e.lost, e.restored_from) == (
        "a" * 40 + " " + "b" * 40,
        "3 commits",
        "c" * 40,
    )


def test_repaired_commit_message_names_what_was_lost() -> None:
    """Subject line, the reason, the list of dropped commits, then the trailers git reads."""
    from freq.refs import format_message, parse_trailers

    msg = format_message(_repaired(_claimed()).event)
    head, reason, details, _trailers = msg.split("\n\n")
    assert head == "f/x: repaired in new (history broken, 3 commits lost)"
    assert reason == "history broken at aaaaaaaaaaaa"
    assert details.startswith("No longer in this history (3 commits, newest first):\n")
    tr = parse_trailers(msg)
    assert (tr["Freq-Event"], tr["Freq-Lost"], tr["Freq-Restored-From"]) == (
        "repaired",
        "3 commits",
        "c" * 40,
    )
    assert tr["Freq-Missing"].split() == ["a" * 40, "b" * 40]


def test_a_repair_names_what_was_missing() -> None:
    """A repair without a missing object is a mistake of its caller."""
    with pytest.raises(ValueError, match="names what was missing"):
        t.repaired(
            _new(), at=T0, by="a", missing=(), lost=0, seen_epoch=0, restored_from="", reason=""
        )
