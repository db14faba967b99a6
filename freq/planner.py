"""Pure planning: (Config, Snapshot, now) → what should start, and why everything else waits.

Imports only the standard library and freq.model / freq.predicates. Never performs
anything, never reads the clock: `now` comes in. The same Plan feeds `run`, `plan` and `why`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from freq.model import Autonomy, Config, Factory, Snapshot, Step, Subject
from freq.predicates import Facts, evaluate_all


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """Claim `subject` for `step` (its next attempt) and run it."""

    factory: str
    subject: str
    step: str
    attempt: int
    tip: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Expired:
    """A claim whose lease ran out: its worker is presumed lost."""

    factory: str
    subject: str
    step: str
    attempt: int
    holder: str
    tip: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Park:
    """A final failure not yet in the dead-letter queue (its worker stopped in between)."""

    factory: str
    subject: str
    tip: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiting:
    """A subject that is not moving now, with every reason in plain words."""

    factory: str
    subject: str
    state: str
    step: str | None
    reasons: tuple[str, ...]
    kind: str  # running | terminal | backoff | exhausted | gate | dead-end | predicate | cap ...
    until: datetime | None = None  # when time alone ends this wait (a lock's expiry)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The outcome of one planning cycle."""

    starts: tuple[Start, ...] = ()
    expired: tuple[Expired, ...] = ()
    parks: tuple[Park, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    running: int = 0
    next_wake: datetime | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def idle(self) -> bool:
        """Nothing to start, nothing running, no lease to recover, and nothing that time
        alone will make runnable (a backoff or a lock expiry): only people or other
        factories' progress can move anything now."""
        return (
            not self.starts
            and not self.expired
            and not self.parks
            and self.running == 0
            and self.next_wake is None
        )


@dataclass(slots=True)
class _Counts:
    """Live counts the caps are checked against; they grow as the plan adds starts."""

    running: int = 0
    by_factory: Counter[str] = field(default_factory=Counter)
    by_step: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_state: Counter[tuple[str, str]] = field(default_factory=Counter)


def _order(subjects: Iterable[Subject]) -> list[Subject]:
    """First come, first served: by time in the current state, then by name."""
    return sorted(subjects, key=lambda s: (s.entered_at, s.name))


def plan(
    config: Config,
    snap: Snapshot,
    *,
    now: datetime,
    max_parallel: int | None = None,
    factories: tuple[str, ...] | None = None,
    facts: Facts | None = None,
) -> Plan:
    """Decide what should start now under every cap, and why every other subject waits."""
    cap = max_parallel if max_parallel is not None else config.settings.max_parallel
    counts = _Counts()
    for (f, _), s in snap.subjects.items():
        counts.by_state[(f, s.state)] += 1
        if s.claim is not None and s.claim.expires_at > now:
            counts.running += 1
            counts.by_factory[f] += 1
            counts.by_step[(f, s.claim.step)] += 1
            fac = config.factory(f)
            step = fac.step(s.claim.step) if fac else None
            if step is not None:
                counts.by_state[(f, step.to_state)] += 1
    running_total = counts.running
    starts: list[Start] = []
    expired: list[Expired] = []
    parks: list[Park] = []
    waiting: list[Waiting] = []
    wakes: list[datetime] = []
    chosen = [f for f in config.factories if factories is None or f.factory_id in factories]
    for fac in chosen:
        for subj in _order(snap.in_factory(fac.factory_id)):
            tip = snap.tips[(fac.factory_id, subj.name)]
            decision = _decide(fac, subj, tip, snap, now, cap, counts, facts)
            if isinstance(decision, Start):
                starts.append(decision)
                counts.running += 1
                counts.by_factory[fac.factory_id] += 1
                counts.by_step[(fac.factory_id, decision.step)] += 1
                step = fac.step(decision.step)
                assert step is not None
                counts.by_state[(fac.factory_id, step.to_state)] += 1
            elif isinstance(decision, Expired):
                expired.append(decision)
            elif isinstance(decision, Park):
                parks.append(decision)
            else:
                waiting.append(decision)
                if decision.kind == "backoff" and subj.not_before is not None:
                    wakes.append(subj.not_before)
                if decision.kind == "running" and subj.claim is not None:
                    wakes.append(subj.claim.expires_at)
                if decision.until is not None:
                    wakes.append(decision.until)
    return Plan(
        starts=tuple(starts),
        expired=tuple(expired),
        parks=tuple(parks),
        waiting=tuple(waiting),
        running=running_total,
        next_wake=min(wakes) if wakes else None,
        problems=snap.problems,
    )


def _decide(
    fac: Factory,
    subj: Subject,
    tip: str,
    snap: Snapshot,
    now: datetime,
    cap: int,
    counts: _Counts,
    facts: Facts | None,
) -> Start | Expired | Park | Waiting:
    fid = fac.factory_id

    def wait(kind: str, *reasons: str, step: str | None = None) -> Waiting:
        return Waiting(
            factory=fid, subject=subj.name, state=subj.state, step=step, reasons=reasons, kind=kind
        )

    if subj.claim is not None:
        c = subj.claim
        if c.expires_at > now:
            return wait(
                "running",
                f"running {c.step} attempt {c.attempt} on {c.holder} since "
                f"{_t(c.claimed_at)}, lease until {_t(c.expires_at)}",
                step=c.step,
            )
        return Expired(
            factory=fid, subject=subj.name, step=c.step, attempt=c.attempt, holder=c.holder, tip=tip
        )
    err = subj.last_error
    if subj.parked is not None and err is not None:
        return wait(
            "dlq",
            f"parked in the dead-letter queue as {subj.parked}: {err.step} attempt "
            f"{err.attempt} failed, {err.kind} ({err.rule or err.reason}); requeue with "
            f"`git freq dlq requeue {subj.parked}`",
            step=err.step,
        )
    if err is not None and err.final and err.dlq is None:
        return Park(factory=fid, subject=subj.name, tip=tip)
    if subj.state in fac.terminal:
        return wait("terminal", f"{subj.state} is a terminal state")
    steps = fac.steps_from(subj.state)
    if not steps:
        return wait("dead-end", f"no step leaves state {subj.state}")
    control = snap.control(fid)
    if control.paused:
        note = f": {control.why}" if control.why else ""
        return wait("paused", f"factory {fid} is paused by {control.by or 'someone'}{note}")
    if subj.not_before is not None and subj.not_before > now:
        return wait(
            "backoff",
            f"backoff until {_t(subj.not_before)} after attempt {subj.attempt} failed",
            step=subj.last_error.step if subj.last_error else None,
        )
    reasons: list[str] = []
    for step in steps:
        why = _blocked_by(fac, step, subj, snap, now, cap, counts, facts)
        if why is None:
            return Start(
                factory=fid, subject=subj.name, step=step.id, attempt=subj.attempt + 1, tip=tip
            )
        if len(steps) == 1:
            return replace(wait(why.kind, why.text, step=step.id), until=why.until)
        reasons.append(f"{step.id}: {why.text}")
    return wait("blocked", *reasons)


class _Block(NamedTuple):
    """Why one step cannot start now; `until` when time alone ends the wait."""

    kind: str
    text: str
    until: datetime | None = None


def _blocked_by(
    fac: Factory,
    step: Step,
    subj: Subject,
    snap: Snapshot,
    now: datetime,
    cap: int,
    counts: _Counts,
    facts: Facts | None,
) -> _Block | None:
    """The first reason `step` cannot start for `subj` now, or None."""
    fid = fac.factory_id
    approve = f"`git freq approve {fid} {subj.name} {step.id}`"
    if subj.attempt >= step.retry.max_attempts and subj.last_error is not None:
        return _Block(
            "exhausted",
            f"retries exhausted: {subj.attempt} of "
            f"{step.retry.max_attempts} attempts failed "
            f"(last: {subj.last_error.reason})",
        )
    if step.is_gate:
        return _Block("gate", f"gate {step.id} waits for approval ({approve})")
    control = snap.control(fid)
    autonomy = control.autonomy or fac.autonomy
    if autonomy is not Autonomy.AUTO and not control.approved(subj, step.id):
        if autonomy is Autonomy.MANUAL:
            return _Block(
                "approval", f"autonomy is manual: {step.id} waits for approval ({approve})"
            )
        if step.approval or step.agent is not None:
            return _Block(
                "approval", f"autonomy is supervised: {step.id} waits for approval ({approve})"
            )
    if step.requires:
        verdict = evaluate_all(step.requires, snap, subj, facts)
        if not verdict.holds:
            return _Block("predicate", "; ".join(verdict.reasons))
    if counts.running >= cap:
        return _Block("cap", f"global max_parallel reached ({counts.running}/{cap} running)")
    fmax = fac.limits.max_parallel
    if fmax is not None and counts.by_factory[fid] >= fmax:
        n = counts.by_factory[fid]
        return _Block("cap", f"factory max_parallel reached ({n}/{fmax} running)")
    if step.max_parallel is not None and counts.by_step[(fid, step.id)] >= step.max_parallel:
        n = counts.by_step[(fid, step.id)]
        return _Block("cap", f"step max_parallel reached ({n}/{step.max_parallel} running)")
    wip = fac.limits.wip.get(step.to_state)
    if wip is not None and counts.by_state[(fid, step.to_state)] >= wip:
        n = counts.by_state[(fid, step.to_state)]
        return _Block("wip", f"WIP limit of {step.to_state} full ({n}/{wip})")
    quota = snap.locks.get(quota_key(fid, step))
    if quota is not None and quota.held_at(now):
        return _Block(
            "quota",
            f"usage limit of {quota_key(fid, step)[6:]} reached; held until {_t(quota.expires_at)}",
            until=quota.expires_at,
        )
    for spec in step.locks:
        lock = snap.locks.get(spec.name)
        if lock is not None and lock.held_at(now):
            return _Block(
                "lock",
                f"lock {spec.name} held by {lock.holder} ({lock.subject}) "
                f"until {_t(lock.expires_at)}",
                until=lock.expires_at,
            )
    return None


def _t(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def quota_key(factory: str, step: Step) -> str:
    """The lock name a usage limit holds: the step's agent (shared by every step using it),
    or the step itself for a command step."""
    return f"quota:{step.agent.use}" if step.agent is not None else f"quota:{factory}.{step.id}"
