"""Whether a commit may follow another on a subject's history: what the update hook keeps.

Pure: imports only the standard library and freq's pure modules (refs, transitions, model,
runtime, errors); no git, no processes, no clock. freq/hooks.py reads the commits and asks
here. A commit is judged in three parts, each a one-line reason when it fails:

    read    its trailers give an Event and its subject.json a Subject, of this ref's factory
            and subject, in the format this version writes; its first line is the one
            refs.format_message writes for that event
    order   a history starts with a creation (or a repair's new root) and has one creation;
            Freq-From is the state its parent left; no epoch falls (epochs fence attempts)
    rule    with the factory's configuration, the state change is one a step of the factory
            produces or a person may make (any state of the factory); and the commit is what
            the transition function its event names (freq/transitions.py, the runtime's own)
            gives from its parent, in every field that fences attempts: state, epoch,
            attempt, claim and landing, as freq.sync compares them

The other fields (timestamps, data, last error, backoff, marks) are the writer's: a commit
replayed onto another tip (freq.sync) keeps its own, and they fence nothing. Two events are
checked by structure alone, since their content is not a function of their parent: a
failure (its class and backoff came from the attempt's output) and a repair (its state was
read from commits its history lost, so its Freq-From is the restored state, not its
parent's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from freq import refs, transitions
from freq.errors import CorruptState
from freq.model import Factory, FailureKind, Step
from freq.runtime import Claim, Event, EventKind, Subject


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One subject commit as read: its subject.json and the event its message records."""

    subject: Subject
    event: Event


def parse_subject(raw: bytes) -> Subject | str:
    """A subject.json in the format this version writes, or why it is not one."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"its subject.json is not JSON ({exc!s})"
    if not isinstance(doc, dict):
        return "its subject.json is not a JSON object"
    version = doc.get("version")
    if version != refs.FORMAT_VERSION:
        return (
            f"its subject.json has format version {version!r}; this Frequency reads "
            f"version {refs.FORMAT_VERSION}"
        )
    try:
        return refs.subject_from_doc(doc, where="-")
    except CorruptState as exc:
        return "its " + exc.message.removeprefix("-: ")


def read(ref: str, message: str, raw: bytes | None) -> Record | str:
    """Commit `message` with subject.json `raw` (None: its tree has none) on `ref`, or why
    it is not a well-formed Frequency commit of that ref."""
    names = refs.parse_subject_ref(ref)
    if names is None:
        return "not a subject's ref (refs/frequency/subjects/<factory>/<subject>)"
    trailers = refs.parse_trailers(message)
    if not trailers:
        return "its message has no trailers: not a commit Frequency wrote"
    try:
        event = refs.event_from_trailers(trailers)
    except ValueError as exc:
        return str(exc)
    if (event.factory, event.subject) != names:
        return f"its trailers name {event.factory}/{event.subject}, not {names[0]}/{names[1]}"
    title, want = message.split("\n", 1)[0], refs.subject_line(event)
    if title != want:
        return f"its first line {title!r} is not what its trailers say ({want!r})"
    if raw is None:
        return "its tree has no subject.json"
    subject = parse_subject(raw)
    if isinstance(subject, str):
        return subject
    if (subject.factory, subject.name) != names:
        return (
            f"its subject.json is {subject.factory}/{subject.name}'s, not {names[0]}/{names[1]}'s"
        )
    return Record(subject=subject, event=event)


def check(
    old: Subject | None, new: Subject, event: Event, *, factory: Factory | None = None
) -> str | None:
    """Why `new`, recorded by `event`, cannot follow `old` (None: `new` starts the history),
    or None when it may. With `factory` (its configuration) the state change is checked
    against its steps too; without it only the structure is."""
    if old is None:
        if event.kind not in (EventKind.CREATED, EventKind.REPAIRED):
            return f"a history starts with its creation, not with a {event.kind.value} event"
    elif event.kind is EventKind.CREATED:
        return "records a creation on top of an existing history"
    rule = _rule(old, event)
    return (
        _order(old, new, event)
        or (_states(rule, old, new, event, factory) if factory is not None else None)
        or _follows(rule, old, new, event, factory)
    )


# ---------------------------------------------------------------- which rule wrote it


def _rule(old: Subject | None, event: Event) -> str:
    """The transition function (freq/transitions.py) that records `event` after `old`."""
    k = event.kind
    if k is EventKind.TRANSITIONED:
        if event.landed is not None:
            return "landed"
        c = old.claim if old is not None else None
        if c is not None and (event.step, event.epoch) == (c.step, c.epoch):
            return "chained" if event.next_claim else "succeeded"
        return "approved"
    if k is EventKind.FAILED and old is not None and old.claim is None and old.landing:
        return "land_failed"
    return str(k.value)


# ---------------------------------------------------------------- order


def _order(old: Subject | None, new: Subject, event: Event) -> str | None:
    """Freq-From, Freq-To and the epochs against the parent and the subject.json."""
    if event.kind is EventKind.REPAIRED:
        if event.from_state != new.state:
            return f"a repair's Freq-From is {event.from_state!r}, but it restores {new.state!r}"
    elif old is not None and event.from_state != old.state:
        return f"Freq-From is {event.from_state!r}, but its parent left it in {old.state!r}"
    if event.to_state not in (None, new.state) and event.kind is not EventKind.QUEUED:
        return f"Freq-To is {event.to_state!r}, but its subject.json is in {new.state!r}"
    floor = old.epoch if old is not None else 0
    if event.epoch is not None and event.epoch < floor:
        return (
            f"Freq-Epoch {event.epoch} is below its parent's epoch {floor}: the result of an "
            "attempt that was fenced off"
        )
    if new.epoch < floor:
        return f"its epoch falls from {floor} to {new.epoch} (epochs fence attempts, never fall)"
    c = new.claim
    if c is not None and c.epoch < floor:
        return f"its claim's epoch {c.epoch} is below its parent's epoch {floor}"
    if c is not None and c.epoch != new.epoch:
        return f"its claim has epoch {c.epoch}, but the subject has epoch {new.epoch}"
    return None


# ---------------------------------------------------------------- states (configuration)


def _states(
    rule: str, old: Subject | None, new: Subject, event: Event, factory: Factory
) -> str | None:
    """Whether the factory allows the state change: a person's move may enter any of its
    states, a step's success only a state that step produces, and so on."""
    fid = factory.factory_id
    frm = old.state if old is not None else None
    to = new.state
    if rule in ("created", "moved", "requeued", "repaired"):
        if to not in factory.states:
            return f"{rule} into {to!r}, which is not a state of factory {fid!r}"
        return None
    step_id = _step_id(rule, old, event)
    step = factory.step(step_id) if step_id is not None else None
    if step is None and rule == "parked":  # its step left the configuration: it stays
        return None if to == frm else f"parking it cannot move it from {frm!r} to {to!r}"
    if step is None:
        return f"factory {fid!r} has no step {step_id!r}" if step_id is not None else None
    if rule == "claimed" and frm not in step.from_states:
        return f"claims {step.id} in {frm!r}; it starts from {', '.join(step.from_states)}"
    if rule in ("succeeded", "chained", "queued", "landed"):
        target = event.to_state if rule == "queued" else to
        allowed = transitions.success_states(step)
        if target not in allowed:
            return (
                f"{step.id} cannot move it from {frm!r} to {target!r} (a success of it "
                f"enters {', '.join(allowed)})"
            )
    if rule == "chained":
        nxt = _next_claim(event.next_claim or "")
        if isinstance(nxt, str):
            return nxt
        after = factory.step(nxt[0])
        if after is None:
            return f"factory {fid!r} has no step {nxt[0]!r} (Freq-Claims)"
        if to not in after.from_states:
            return f"claims {after.id} in {to!r}; it starts from {', '.join(after.from_states)}"
    if rule == "approved":
        if not step.is_gate:
            return f"approves {step.id}, which is not a gate: approving it moves nothing"
        if frm not in step.from_states or to != step.to_state:
            return (
                f"approving {step.id} cannot move it from {frm!r} to {to!r} (it moves "
                f"{', '.join(step.from_states)} to {step.to_state})"
            )
    if rule == "parked":
        allowed_park = (frm, *((step.on_terminal,) if step.on_terminal else ()))
        if to not in allowed_park:
            also = f", or goes to on_terminal {step.on_terminal!r}" if step.on_terminal else ""
            return (
                f"parking a failure of {step.id} cannot move it from {frm!r} to {to!r} (it "
                f"stays{also})"
            )
    return None


def _step_id(rule: str, old: Subject | None, event: Event) -> str | None:
    """The step whose rules decide the state the commit enters."""
    if old is not None and rule in ("succeeded", "chained", "queued") and old.claim:
        return old.claim.step
    if old is not None and rule == "landed" and old.landing is not None:
        return old.landing.step
    if rule in ("claimed", "approved", "parked"):
        return event.step
    return None


# ---------------------------------------------------------------- the rule itself


_FENCING = ("state", "epoch", "attempt")
_CLAIM_FENCING = ("holder", "step", "attempt", "epoch", "expires_at")


def _follows(
    rule: str, old: Subject | None, new: Subject, event: Event, factory: Factory | None
) -> str | None:
    """The commit against what its rule gives from its parent, in the fencing fields."""
    try:
        want = _replayed(rule, old, new, event, factory)
    except ValueError as exc:
        return str(exc)
    if want is None:
        return None
    for name in _FENCING:
        mine, theirs = getattr(new, name), getattr(want, name)
        if mine != theirs:
            return f"its {name} is {mine!r}; {_said(rule)} from its parent gives {theirs!r}"
    claim = _claim_problem(new.claim, want.claim)
    if claim is not None:
        return f"{claim}; {_said(rule)} from its parent gives {_claim_text(want.claim)}"
    if new.landing != want.landing:
        said = "no merge-queue entry" if new.landing is None else "a merge-queue entry"
        return f"it has {said} that {_said(rule)} from its parent does not give"
    return None


def _said(rule: str) -> str:
    return f"a {rule.replace('_', ' ')} event"


def _claim_problem(mine: Claim | None, want: Claim | None) -> str | None:
    if mine is None and want is None:
        return None
    if mine is None or want is None:
        return f"its claim is {_claim_text(mine)}"
    for name in _CLAIM_FENCING:
        a, b = getattr(mine, name), getattr(want, name)
        if a != b:
            shown = refs.iso(a) if name == "expires_at" else repr(a)
            return f"its claim's {name} is {shown}"
    return None


def _claim_text(c: Claim | None) -> str:
    if c is None:
        return "none"
    return f"{c.step} attempt {c.attempt} epoch {c.epoch} held by {c.holder}"


T = TypeVar("T")


def _need(value: T | None, why: str) -> T:
    if value is None:
        raise ValueError(why)
    return value


def _next_claim(text: str) -> tuple[str, int, int] | str:
    """`build attempt 1 epoch 3` (Freq-Claims, transitions.chained) as its parts."""
    parts = text.split(" ")
    if len(parts) == 5 and parts[1] == "attempt" and parts[3] == "epoch":
        try:
            return parts[0], int(parts[2]), int(parts[4])
        except ValueError:
            pass
    return f"Freq-Claims {text!r} is not `<step> attempt <n> epoch <n>`"


def _replayed(
    rule: str, old: Subject | None, new: Subject, event: Event, factory: Factory | None
) -> Subject | None:
    """What `rule` gives from `old` with the event's own inputs (None: checked by structure
    alone, here); ValueError with the reason when it cannot follow at all."""
    at, who = event.at, event.worker
    if old is None:
        if rule == "repaired":
            _repair(new, event, None)
            return None
        state = _need(event.to_state, "a creation has no Freq-To")
        made = transitions.created(new.factory, new.name, state, at=at, worker=who)
        return made.subject
    try:
        return _after(rule, old, new, event, factory, at=at, who=who)
    except ValueError as exc:
        raise ValueError(f"{_said(rule)} cannot follow its parent: {exc}") from None


def _after(
    rule: str,
    old: Subject,
    new: Subject,
    event: Event,
    factory: Factory | None,
    *,
    at: datetime,
    who: str,
) -> Subject | None:
    """_replayed for a commit that has a parent."""
    if rule == "claimed":
        c = _need(new.claim, "it holds no claim")
        if old.claim is not None:
            raise ValueError(
                f"attempt {old.claim.attempt} of {old.claim.step} still holds it (a lease is "
                "taken over only after it is recorded lost)"
            )
        if old.landing is not None:
            raise ValueError("its work waits in the merge queue")
        return transitions.claimed(
            old,
            step=_need(event.step, "no Freq-Step"),
            attempt=_need(event.attempt, "no Freq-Attempt"),
            worker=who,
            at=at,
            ttl=c.expires_at - at,
            touches=c.touches,
        ).subject
    if rule == "renewed":
        c = _need(new.claim, "it holds no claim")
        return transitions.renewed(old, at=at, ttl=c.expires_at - at, worker=who).subject
    if rule in ("succeeded", "chained"):
        done = transitions.succeeded(
            old,
            to_state=new.state,
            at=at,
            worker=who,
            duration_ms=event.duration_ms or 0,
            exit_code=event.exit_code,
            mark=new.marks.get(event.step or ""),
            emitted=new.emitted,
        )
        if rule == "succeeded":
            return done.subject
        nxt = _next_claim(event.next_claim or "")
        if isinstance(nxt, str):
            raise ValueError(nxt)
        c = _need(new.claim, "it names a next claim (Freq-Claims) but holds none")
        both = transitions.chained(
            done, step=nxt[0], attempt=nxt[1], worker=who, at=at, ttl=c.expires_at - at
        )
        if nxt[2] != both.subject.epoch:
            raise ValueError(
                f"Freq-Claims names epoch {nxt[2]}, the claim's is {both.subject.epoch}"
            )
        return both.subject
    if rule == "failed":
        c = _need(old.claim, "its parent holds no claim")
        if (event.step, event.attempt, event.epoch) != (c.step, c.attempt, c.epoch):
            raise ValueError(
                f"it records {event.step} attempt {event.attempt} epoch {event.epoch}, but "
                f"the claim is {_claim_text(c)}"
            )
        # transitions.failed: the claim ends and its attempt is spent, or given back for a
        # quota (a usage limit spends none); state and epoch stay
        quota = (event.failure or "").startswith(FailureKind.QUOTA.value)
        return replace(old, claim=None, attempt=c.attempt - quota)
    if rule == "land_failed":
        x = _need(old.landing, "its parent is not in a merge queue")
        if (event.step, event.attempt) != (x.step, x.attempt):
            raise ValueError(
                f"it records {event.step} attempt {event.attempt}, but the queued work is "
                f"{x.step} attempt {x.attempt}"
            )
        return replace(old, landing=None)  # transitions.land_failed: the entry leaves the queue
    if rule == "released":
        return transitions.released(
            old, at=at, worker=who, duration_ms=event.duration_ms or 0
        ).subject
    if rule == "parked":
        on_terminal = new.state if new.state != old.state else None
        entry = _need(event.dlq, "it names no dead-letter entry (Freq-Dlq)")
        return transitions.parked(
            old, entry=entry, on_terminal=on_terminal, at=at, worker=who
        ).subject
    if rule in ("requeued", "moved"):
        state = _need(event.to_state, "no Freq-To")
        if rule == "moved":
            return transitions.moved(old, state=state, at=at, by=who, reason="").subject
        record = _need(event.dlq, "it names no requeue entry (Freq-Dlq)")
        return transitions.requeued(
            old, state=state, record=record, at=at, by=who, reason=""
        ).subject
    if rule == "approved":
        step_id = _need(event.step, "no Freq-Step")
        step = factory.step(step_id) if factory is not None else None
        if step is None:  # the configuration is not known: the gate this commit says
            step = Step(id=step_id, from_states=(old.state,), to_state=new.state)
        return transitions.approved(old, step, at=at, by=who).subject
    if rule == "repaired":
        _repair(new, event, old)
        return None
    if rule == "queued":
        x = _need(new.landing, "it holds no merge-queue entry")
        if event.to_state != x.to_state:
            raise ValueError(f"Freq-To is {event.to_state!r}, its entry's {x.to_state!r}")
        return transitions.queued(
            old,
            landing=x,
            at=at,
            worker=who,
            duration_ms=event.duration_ms or 0,
            exit_code=event.exit_code,
        ).subject
    if rule == "landed":
        commit = _need(event.landed, "no Freq-Landed")
        return transitions.landed(old, commit=commit, at=at, worker=who).subject
    raise ValueError(f"no rule records a {event.kind.value} event")


def _repair(new: Subject, event: Event, old: Subject | None) -> None:
    """transitions.repaired by structure: the claim ended, the state kept, the epoch
    raised above every epoch the history held, and what was missing named."""
    if not event.missing:
        raise ValueError("a repair names what was missing (Freq-Missing)")
    if new.claim is not None:
        raise ValueError("a repair ends any claim, but this one holds one")
    if old is not None and new.epoch <= old.epoch:
        raise ValueError(f"a repair raises the epoch above {old.epoch}, but it is {new.epoch}")
