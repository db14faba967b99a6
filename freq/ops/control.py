"""Control actions: pause, resume, autonomy and approve per factory, and the named locks.

Must not import click, dulwich, subprocess or pexpect, and never prints: each function takes an
App and plain values and returns a result dataclass (or raises a FreqError).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from freq import refs
from freq.control import change_control
from freq.errors import FreqError, Hint, UsageError
from freq.locks import Locks
from freq.model import Autonomy, Factory
from freq.ops.app import App, _who
from freq.runtime import Approval, Control

# ---------------------------------------------------------------- control


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlResult:
    """A factory's control state after a change."""

    factory: str
    paused: bool
    autonomy: str
    by: str
    why: str


def _control_result(fac: Factory, c: Control) -> ControlResult:
    return ControlResult(
        factory=fac.factory_id,
        paused=c.paused,
        autonomy=(c.autonomy or fac.autonomy).value,
        by=c.by,
        why=c.why,
    )


def _set_paused(
    app: App, factory_id: str, paused: bool, reason: str, by: str | None
) -> ControlResult:
    fac = app.factory(factory_id)
    c = change_control(
        app.store,
        app.clock,
        factory_id,
        lambda c: replace(c, paused=paused),
        what="pause" if paused else "resume",
        by=_who(app, by),
        why=reason,
    )
    return _control_result(fac, c)


def pause(app: App, factory_id: str, *, reason: str = "", by: str | None = None) -> ControlResult:
    """Stop new claims in a factory (running steps finish); every worker respects it."""
    return _set_paused(app, factory_id, True, reason, by)


def resume(app: App, factory_id: str, *, reason: str = "", by: str | None = None) -> ControlResult:
    """Let a paused factory claim again."""
    return _set_paused(app, factory_id, False, reason, by)


def set_autonomy(
    app: App, factory_id: str, level: str, *, reason: str = "", by: str | None = None
) -> ControlResult:
    """auto: steps start by themselves; supervised: approval steps (and agent steps) wait
    for `approve`; manual: nothing starts without an approval."""
    fac = app.factory(factory_id)
    try:
        autonomy = Autonomy(level)
    except ValueError:
        raise UsageError(f"autonomy is auto, supervised or manual, not {level!r}") from None
    c = change_control(
        app.store,
        app.clock,
        factory_id,
        lambda c: replace(c, autonomy=autonomy),
        what=f"autonomy {level}",
        by=_who(app, by),
        why=reason,
    )
    return _control_result(fac, c)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApproveResult:
    """An approval: recorded for a later start, or (a gate) applied as a transition."""

    factory: str
    subject: str
    step: str
    moved_to: str | None = None


def approve(
    app: App,
    factory_id: str,
    name: str,
    step_id: str,
    *,
    reason: str = "",
    by: str | None = None,
) -> ApproveResult:
    """Approve STEP for SUBJECT's current visit to its state. A gate step (no run, no
    agent) moves the subject to its to_state at once."""
    fac = app.factory(factory_id)
    step = fac.step(step_id)
    if step is None:
        raise FreqError(
            f"factory {factory_id!r} has no step {step_id!r} "
            f"(steps: {', '.join(s.id for s in fac.steps)})"
        )
    subj, tip = app.store.read_subject(factory_id, name)
    if subj.state not in step.from_states:
        raise FreqError(
            f"{factory_id}/{name} is in {subj.state}; step {step_id} starts from "
            f"{', '.join(step.from_states)}"
        )
    who = _who(app, by)
    if step.is_gate:
        from freq.transitions import approved

        change = approved(subj, step, at=app.clock.now(), by=who, reason=reason)
        app.store.advance(
            refs.subject_ref(factory_id, name), change.subject, change.event, expected=tip
        )
        return ApproveResult(factory=factory_id, subject=name, step=step_id, moved_to=step.to_state)
    now = app.clock.now()
    grant = Approval(subject=name, step=step_id, entered_at=subj.entered_at, by=who, at=now)

    def add(c: Control) -> Control:
        # approvals for visits that are over are dropped here, so the list stays short
        keep = tuple(a for a in c.approvals if not (a.subject == name and a.step == step_id))
        return replace(c, approvals=(*keep, grant))

    change_control(
        app.store, app.clock, factory_id, add, what=f"approve {name} {step_id}", by=who, why=reason
    )
    return ApproveResult(factory=factory_id, subject=name, step=step_id)


# ---------------------------------------------------------------- locks


@dataclass(frozen=True, slots=True, kw_only=True)
class LockRow:
    """One lock as `locks` lists it."""

    name: str
    holder: str
    subject: str
    acquired_at: str
    expires_at: str
    held: bool
    age_seconds: float
    problem: str | None = None  # the lock's ref cannot be read: it blocks until broken
    why: str = ""  # why it is not held: released, expired at T, its claim ended: worker lost


def _broken_row(name: str, problem: str) -> LockRow:
    return LockRow(
        name=name,
        holder="?",
        subject="?",
        acquired_at="",
        expires_at="",
        held=True,
        age_seconds=0.0,
        problem=problem,
    )


def list_locks(app: App, *, include_free: bool = False) -> tuple[LockRow, ...]:
    """Locks not released (all of them with include_free), with holder, age, expiry, and
    whether they are held: a lock whose claim ended, or whose TTL passed, is stale (`why`
    says which), and the next claim takes it. A lock whose ref cannot be read is always
    listed, with its problem: steps needing it wait. This command has no history of the
    refs, so a lease's end is its holder's recorded expiry (freq/leases.py)."""
    now = app.clock.now()
    out = []
    reader = Locks(app.store, app.clock)
    locks, broken = reader.all()
    out += [_broken_row(name, problem) for name, problem in sorted(broken.items())]
    for lock in locks:
        hold = reader.hold_of(lock, None)
        held = hold.held
        if not lock.released or include_free:
            out.append(
                LockRow(
                    name=lock.name,
                    holder=lock.holder,
                    subject=lock.subject,
                    acquired_at=refs.iso(lock.acquired_at),
                    expires_at=refs.iso(lock.expires_at),
                    held=held,
                    age_seconds=round((now - lock.acquired_at).total_seconds(), 3),
                    why=hold.why,
                )
            )
    return tuple(out)


def break_lock(app: App, name: str, *, reason: str, by: str | None = None) -> LockRow:
    """Release a lock by hand, whoever holds it (a commit with who and why)."""
    if not reason.strip():
        raise UsageError("a reason is required", hint=Hint(text="say why with", option="reason"))
    old, problem = Locks(app.store, app.clock).break_lock(name, who=_who(app, by), reason=reason)
    if problem is not None:
        return _broken_row(name, problem)
    now = app.clock.now()
    return LockRow(
        name=old.name,
        holder=old.holder,
        subject=old.subject,
        acquired_at=refs.iso(old.acquired_at),
        expires_at=refs.iso(old.expires_at),
        held=False,
        age_seconds=round((now - old.acquired_at).total_seconds(), 3),
    )
