"""Every rule for how a subject changes: pure functions from a subject and inputs to a Change.

Imports only the standard library and freq's pure modules (model, classify, retry): no git,
no processes, no clock (`at` comes in), no global random state (an `rng` comes in). The run
loop, `ops` and (later) the server-side update hook apply what these return; nothing else
builds a changed Subject or its Event, so each rule is written once and table-tested without
git (tests/test_transitions.py).

    created     a new subject in a state
    claimed     a worker's lease on one attempt of a step (epoch + 1: the fencing token)
    renewed     the lease extended
    succeeded   the step's outcome state, its mark and what it emitted
    chained     a success that claims the subject's next step in the same commit
    failed      classified, with its backoff, or final (terminal, needs_human, spent)
    worker_lost a lease that expired: a retryable failure of that attempt
    released    a claim given back without spending the attempt (second Ctrl-C)
    parked      a final failure filed in the dead-letter queue (or moved to on_terminal)
    requeued    back from the dead-letter queue with a fresh budget
    moved       moved by a person
    approved    a gate step approved: the subject moves to the gate's to_state
    repaired    back at its last intact state after its history broke (cleanup --repair)
    queued      a worktree step's success: its branch waits in its target's merge queue
    landed      the branch landed: the subject enters the step's outcome state
    land_failed the landing conflicted or its merge check failed: a failure of the attempt
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from freq.classify import Classification, Ending, classify
from freq.model import FailureKind, Step, format_duration
from freq.refs import iso
from freq.retry import Rng, next_delay
from freq.runtime import Claim, Emitted, Event, EventKind, Landing, LastError, Subject


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A subject as it is after one event, and that event (what its commit records)."""

    subject: Subject
    event: Event


def _event(kind: EventKind, subj: Subject, at: datetime, worker: str, **fields: object) -> Event:
    return Event(
        kind=kind,
        factory=subj.factory,
        subject=subj.name,
        at=at,
        worker=worker,
        **fields,  # type: ignore[arg-type]
    )


def _claim(subj: Subject) -> Claim:
    if subj.claim is None:
        raise ValueError(f"{subj.factory}/{subj.name} has no claim")
    return subj.claim


def _of_claim(
    kind: EventKind, subj: Subject, c: Claim, at: datetime, worker: str, **fields: object
) -> Event:
    """An event about the running attempt `c` of `subj` (its step, attempt and epoch)."""
    return _event(
        kind,
        subj,
        at,
        worker,
        step=c.step,
        from_state=subj.state,
        attempt=c.attempt,
        epoch=c.epoch,
        **fields,
    )


def created(
    factory: str,
    name: str,
    state: str,
    *,
    at: datetime,
    worker: str,
    data: Mapping[str, str] | None = None,
    reason: str | None = None,
) -> Change:
    """A new subject in `state`."""
    subj = Subject(
        factory=factory,
        name=name,
        state=state,
        data=MappingProxyType(dict(data or {})),
        created_at=at,
        updated_at=at,
        entered_at=at,
    )
    return Change(
        subject=subj,
        event=_event(EventKind.CREATED, subj, at, worker, to_state=state, reason=reason),
    )


def claimed(
    subj: Subject,
    *,
    step: str,
    attempt: int,
    worker: str,
    at: datetime,
    ttl: timedelta,
    touches: tuple[str, ...] = (),
    slots_at: int | None = None,
) -> Change:
    """`worker` leases attempt `attempt` of `step` until `at + ttl`, with a new epoch;
    `touches`: the step's path lane as rendered for this subject; `slots_at`: a chained
    claim's (see chained)."""
    epoch = subj.epoch + 1
    new = replace(
        subj,
        epoch=epoch,
        attempt=attempt,
        claim=Claim(
            holder=worker,
            step=step,
            attempt=attempt,
            epoch=epoch,
            claimed_at=at,
            expires_at=at + ttl,
            touches=touches,
            slots_at=slots_at,
        ),
        not_before=None,
        emitted=(),
        updated_at=at,
    )
    event = _event(
        EventKind.CLAIMED,
        subj,
        at,
        worker,
        step=step,
        from_state=subj.state,
        attempt=attempt,
        epoch=epoch,
    )
    return Change(subject=new, event=event)


def renewed(subj: Subject, *, at: datetime, ttl: timedelta, worker: str) -> Change:
    """The running claim extended to `at + ttl`."""
    c = _claim(subj)
    new = replace(subj, claim=replace(c, expires_at=at + ttl), updated_at=at)
    event = _of_claim(EventKind.RENEWED, subj, c, at, worker)
    return Change(subject=new, event=event)


def succeeded(
    subj: Subject,
    *,
    to_state: str,
    at: datetime,
    worker: str,
    duration_ms: int,
    exit_code: int | None,
    mark: str | None = None,
    emitted: tuple[Emitted, ...] = (),
) -> Change:
    """The claimed step ended well: the subject enters `to_state` (its `outcomes:` target or
    the step's to_state); `mark` is the branch commit `changed` predicates compare with."""
    c = _claim(subj)
    new = subj.entering(to_state, at, new_epoch=False)
    if mark is not None:
        new = replace(new, marks=MappingProxyType({**new.marks, c.step: mark}))
    if emitted:
        new = replace(new, emitted=emitted)
    event = _of_claim(
        EventKind.TRANSITIONED,
        subj,
        c,
        at,
        worker,
        to_state=to_state,
        duration_ms=duration_ms,
        exit_code=exit_code,
    )
    return Change(subject=new, event=event)


def chained(
    done: Change,
    *,
    step: str,
    attempt: int,
    worker: str,
    at: datetime,
    ttl: timedelta,
    slots_at: int | None = None,
) -> Change:
    """A success that also claims the subject's next step: one commit for both. `slots_at`:
    the epoch of the claim whose commit the new claim's global and factory cap slots stay
    at (where the chain began; None: they move to the new claim's commit)."""
    nxt = claimed(
        done.subject, step=step, attempt=attempt, worker=worker, at=at, ttl=ttl, slots_at=slots_at
    )
    claim = _claim(nxt.subject)
    event = replace(done.event, next_claim=f"{step} attempt {attempt} epoch {claim.epoch}")
    # the success's own emitted subjects (none, or the chain would not be taken) stay empty
    return Change(subject=replace(nxt.subject, emitted=done.subject.emitted), event=event)


def _previous_fingerprints(subj: Subject, step: str) -> tuple[str, ...]:
    last = subj.last_error
    if last is None or last.step != step or not last.fingerprint:
        return ()
    return (last.fingerprint,) * last.repeats


def failed(
    subj: Subject,
    step: Step,
    ending: Ending,
    *,
    how: str,
    duration_ms: int,
    at: datetime,
    worker: str,
    rng: Rng,
) -> tuple[Change, Classification]:
    """The claimed attempt failed (`how`: one line, `exit 3`): classified, and either given a
    backoff (`not_before`) or made final. A quota spends no attempt and waits for its reset."""
    c = _claim(subj)
    previous = _previous_fingerprints(subj, step.id)
    cls = classify(step, ending, previous, now=at)
    repeats = len(previous) + 1 if previous and previous[-1] == cls.fingerprint else 1
    attempt = c.attempt
    not_before = None
    final = cls.kind in (FailureKind.TERMINAL, FailureKind.NEEDS_HUMAN)
    if cls.kind is FailureKind.QUOTA:
        attempt -= 1
        not_before = cls.hold_until
    elif not final:
        delay = next_delay(step.retry, c.attempt, rng)
        if delay is None:
            final = True
        else:
            not_before = at + delay
    if ending.timed_out and step.timeout is not None:
        how = f"timed out after {format_duration(step.timeout)}"
    rule = cls.reason
    if final and cls.kind is FailureKind.RETRYABLE:
        rule += f"; retries exhausted ({c.attempt} of {step.retry.max_attempts})"
    err = LastError(
        step=step.id,
        attempt=c.attempt,
        exit_code=ending.exit_code,
        kind=cls.kind,
        reason=how,
        at=at,
        summary=last_line(ending.tail),
        fingerprint=cls.fingerprint,
        repeats=repeats,
        final=final,
        rule=rule,
        question=cls.question,
        duration_ms=duration_ms,
    )
    new = replace(
        subj, attempt=attempt, claim=None, last_error=err, updated_at=at, not_before=not_before
    )
    event = _of_claim(
        EventKind.FAILED,
        subj,
        c,
        at,
        worker,
        duration_ms=duration_ms,
        exit_code=ending.exit_code,
        failure=f"{cls.kind.value} ({rule})",
        reason=cls.question,
    )
    return Change(subject=new, event=event), replace(cls, reason=rule)


def worker_lost(subj: Subject, step: Step | None, *, at: datetime, worker: str, rng: Rng) -> Change:
    """The claim's lease expired: its worker is presumed lost. A retryable failure of that
    attempt (final once the step's attempts are spent); recorded by any planner. With
    `step` None (its factory or step is no longer configured) nothing can retry it: the
    claim ends without a backoff and the subject stays in its state."""
    c = _claim(subj)
    delay = next_delay(step.retry, c.attempt, rng) if step is not None else None
    if step is None:
        rule = "worker lost; the step is no longer configured, not retried"
    elif delay is not None:
        rule = "worker lost"
    else:
        rule = f"worker lost; retries exhausted ({c.attempt} of {step.retry.max_attempts})"
    err = LastError(
        step=c.step,
        attempt=c.attempt,
        exit_code=None,
        kind=FailureKind.RETRYABLE,
        reason="worker lost",
        at=at,
        summary=f"lease of {c.holder} expired",
        rule=rule,
        final=delay is None and step is not None,
    )
    new = replace(
        subj,
        claim=None,
        last_error=err,
        updated_at=at,
        not_before=at + delay if delay is not None else None,
    )
    event = _of_claim(
        EventKind.FAILED,
        subj,
        c,
        at,
        worker,
        failure=f"retryable ({rule})",
        reason=f"lease of {c.holder} expired at {iso(c.expires_at)}",
    )
    return Change(subject=new, event=event)


def released(subj: Subject, *, at: datetime, worker: str, duration_ms: int) -> Change:
    """The claim given back unfinished (interrupted twice): the attempt is not spent."""
    c = _claim(subj)
    new = replace(subj, attempt=c.attempt - 1, claim=None, updated_at=at)
    event = _of_claim(
        EventKind.RELEASED,
        subj,
        c,
        at,
        worker,
        duration_ms=duration_ms,
        reason="interrupted; claim released",
    )
    return Change(subject=new, event=event)


def parked(
    subj: Subject, *, entry: str, on_terminal: str | None, at: datetime, worker: str
) -> Change:
    """A final failure filed as dead-letter entry `entry`: the subject waits there for a
    requeue, or (with the step's `on_terminal`) moves to that state."""
    err = subj.last_error
    if err is None or not err.final:
        raise ValueError(f"{subj.factory}/{subj.name} has no final failure to park")
    new = replace(
        subj,
        last_error=replace(err, dlq=entry),
        updated_at=at,
        parked=None if on_terminal else entry,
    )
    if on_terminal:
        new = replace(new, state=on_terminal, attempt=0, not_before=None, entered_at=at)
    event = _event(
        EventKind.PARKED,
        subj,
        at,
        worker,
        step=err.step,
        from_state=subj.state,
        to_state=new.state,
        attempt=err.attempt,
        dlq=entry,
    )
    return Change(subject=new, event=event)


def _outside_claim(
    kind: EventKind, subj: Subject, state: str, *, at: datetime, by: str, **fields: object
) -> Change:
    """`subj` entering `state` afresh by a person's act, not a claim's: a fresh attempt
    budget, and a new epoch that fences off any attempt still running (its result will be
    refused)."""
    new = subj.entering(state, at, new_epoch=True)
    event = _event(
        kind, subj, at, by, from_state=subj.state, to_state=state, epoch=new.epoch, **fields
    )
    return Change(subject=new, event=event)


def requeued(
    subj: Subject,
    *,
    state: str,
    record: str,
    at: datetime,
    by: str,
    reason: str,
    diagnosis: str | None = None,
) -> Change:
    """Back from the dead-letter queue into `state`; `record` is the requeue entry. With a
    `diagnosis` (`dlq fix`) the next attempt gets it as `{diagnosis}`."""
    change = _outside_claim(
        EventKind.REQUEUED, subj, state, at=at, by=by, dlq=record, reason=reason
    )
    if diagnosis is None:
        return change
    return replace(change, subject=replace(change.subject, diagnosis=diagnosis))


def moved(subj: Subject, *, state: str, at: datetime, by: str, reason: str) -> Change:
    """Moved to `state` by a person."""
    return _outside_claim(EventKind.MOVED, subj, state, at=at, by=by, reason=reason)


def approved(subj: Subject, step: Step, *, at: datetime, by: str, reason: str = "") -> Change:
    """A gate step (no run, no agent) approved: the subject moves to its to_state."""
    if subj.state not in step.from_states:
        raise ValueError(f"{subj.factory}/{subj.name} is not in a state {step.id} starts from")
    return _outside_claim(
        EventKind.TRANSITIONED,
        subj,
        step.to_state,
        at=at,
        by=by,
        step=step.id,
        reason=f"approved by {by}" + (f": {reason}" if reason else ""),
    )


def repaired(
    subj: Subject,
    *,
    at: datetime,
    by: str,
    missing: tuple[str, ...],
    lost: int,
    seen_epoch: int,
    restored_from: str,
    reason: str,
    details: str = "",
) -> Change:
    """`subj`, the newest state of a subject whose history broke that could still be read
    (`restored_from` says where), recorded again as a new commit (`missing`: the objects
    found missing, newest first; `lost`: how many commits leave its history). Any claim ends
    and its attempt is given back (its result, if any, was lost with the history); the epoch
    rises above every epoch the lost commits may have held (`seen_epoch`), so an attempt
    still running under the broken chain is fenced off."""
    if not missing:
        raise ValueError(f"{subj.factory}/{subj.name}: a repair names what was missing")
    c = subj.claim
    epoch = max(subj.epoch, seen_epoch) + 1
    new = replace(
        subj,
        claim=None,
        attempt=max(c.attempt - 1, 0) if c is not None else subj.attempt,
        epoch=epoch,
        updated_at=at,
    )
    event = _event(
        EventKind.REPAIRED,
        subj,
        at,
        by,
        step=c.step if c is not None else None,
        attempt=c.attempt if c is not None else None,
        from_state=subj.state,
        to_state=subj.state,
        epoch=epoch,
        reason=reason,
        missing=" ".join(missing),
        lost=f"{lost} commit{'s' if lost != 1 else ''}",
        restored_from=restored_from,
        details=details or None,
    )
    return Change(subject=new, event=event)


# ---------------------------------------------------------------- the merge queue


def queued(
    subj: Subject,
    *,
    landing: Landing,
    at: datetime,
    worker: str,
    duration_ms: int,
    exit_code: int | None,
    emitted: tuple[Emitted, ...] = (),
) -> Change:
    """A worktree step ended well: its claim ends and its branch joins the merge queue of
    its target; the subject stays in its state until the branch lands."""
    c = _claim(subj)
    new = replace(subj, claim=None, landing=landing, not_before=None, updated_at=at)
    if emitted:
        new = replace(new, emitted=emitted)
    event = _of_claim(
        EventKind.QUEUED,
        subj,
        c,
        at,
        worker,
        to_state=landing.to_state,
        duration_ms=duration_ms,
        exit_code=exit_code,
        target=landing.target,
        branch=landing.branch,
        commit=landing.commit,
    )
    return Change(subject=new, event=event)


def _queued(subj: Subject) -> Landing:
    if subj.landing is None:
        raise ValueError(f"{subj.factory}/{subj.name} is not in a merge queue")
    return subj.landing


def _of_landing(
    kind: EventKind, subj: Subject, x: Landing, at: datetime, worker: str, **fields: object
) -> Event:
    return _event(
        kind,
        subj,
        at,
        worker,
        step=x.step,
        from_state=subj.state,
        attempt=x.attempt,
        epoch=subj.epoch,
        target=x.target,
        **fields,
    )


def landed(
    subj: Subject, *, commit: str, at: datetime, worker: str, reason: str | None = None
) -> Change:
    """The target contains `commit` (this subject's work): the subject enters the step's
    outcome state, and `commit` is the mark its `changed` predicates compare with."""
    x = _queued(subj)
    new = subj.entering(x.to_state, at, new_epoch=False)
    new = replace(new, marks=MappingProxyType({**subj.marks, x.step: commit}))
    event = _of_landing(
        EventKind.TRANSITIONED,
        subj,
        x,
        at,
        worker,
        to_state=x.to_state,
        landed=commit,
        branch=x.branch,
        reason=reason,
    )
    return Change(subject=new, event=event)


def land_failed(
    subj: Subject,
    step: Step,
    *,
    why: str,
    detail: str,
    conflict: tuple[str, ...] = (),
    terminal: bool = False,
    at_once: bool = False,
    at: datetime,
    worker: str,
    rng: Rng,
) -> Change:
    """The landing conflicted (`conflict`: the paths) or its merge check failed: a failure
    of the attempt that made the branch, which leaves the queue. Retried with the step's
    backoff while attempts are left (`at_once`: no backoff, for an agent to resolve the
    conflict), else final; `terminal` makes it final at once."""
    x = _queued(subj)
    delay = (
        None if terminal else (timedelta(0) if at_once else next_delay(step.retry, x.attempt, rng))
    )
    spent = x.attempt >= step.retry.max_attempts
    final = terminal or delay is None or spent
    kind = FailureKind.TERMINAL if terminal else FailureKind.RETRYABLE
    rule = (
        why
        if not final or terminal
        else f"{why}; retries exhausted ({x.attempt} of {step.retry.max_attempts})"
    )
    err = LastError(
        step=x.step,
        attempt=x.attempt,
        exit_code=None,
        kind=kind,
        reason=why,
        at=at,
        summary=last_line(detail),
        final=final,
        rule=rule,
        conflict=conflict,
    )
    new = replace(
        subj,
        landing=None,
        last_error=err,
        updated_at=at,
        not_before=None if final or delay is None else at + delay,
    )
    event = _of_landing(
        EventKind.FAILED,
        subj,
        x,
        at,
        worker,
        failure=f"{kind.value} ({rule})",
        conflict=" ".join(conflict) or None,
        branch=x.branch,
        commit=x.commit,
    )
    return Change(subject=new, event=event)


def success_states(step: Step) -> tuple[str, ...]:
    """Every state a success of `step` can move a subject into (succeeded, or queued and
    then landed): its to_state, and each state its `outcomes:` give an exit code."""
    return tuple(dict.fromkeys((step.to_state, *step.outcomes.values())))


def last_line(tail: str) -> str:
    """The last non-blank line of an output tail (at most 300 characters)."""
    for line in reversed(tail.splitlines()):
        if line.strip():
            return line.strip()[:300]
    return ""
