"""Pure planning: (Config, Snapshot, now) → what should start, and why everything else waits.

Imports only the standard library and freq.model / freq.runtime / freq.predicates /
freq.leases / freq.costs. Never performs anything, never reads the clock: `now` comes in,
and so do the ends of leases as the worker's own observer judges them (`ends`,
freq/leases.py; without them, the holders' recorded expiries, which one-shot commands only
display) and what budgets have spent in their windows (`spend`, read from git by
freq/ledger.py). The same Plan feeds `run`, `plan` and `why`.

About 630 lines, above STYLE's ~500 on purpose: the order of the checks in `_decide` and
`_blocks` is what `why` reports, and `next_start` (a chained claim) must ask exactly the
same questions; the records they return are the module's vocabulary. Splitting them would
put one decision in two places (the arithmetic of budgets is freq.costs's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import NamedTuple

from freq.costs import NO_SPEND, Spend, reached
from freq.heap import without_gc
from freq.lanes import LaneProblem, first_overlap, render
from freq.leases import Ends, lock_hold, split_subject
from freq.model import Autonomy, Config, Factory, FailureKind, Settings, Step
from freq.predicates import Facts, evaluate_all
from freq.runtime import Landing, Snapshot, Subject

# a point of merge-queue priority is worth this long in the queue: an entry that waited
# long enough overtakes newer ones of higher priority (ageing), so none starves
PRIORITY_STEP = timedelta(minutes=10)
PRIORITY_BOUND = 1000  # priorities are clamped to ±this many points


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """Claim `subject` for `step` (its next attempt) and run it. For a batch step, `batch`
    lists every member (the first is `subject` itself): one run for all of them."""

    factory: str
    subject: str
    step: str
    attempt: int
    tip: str
    batch: tuple[Start, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Expired:
    """A claim whose lease ran out: its worker is presumed lost."""

    factory: str
    subject: str
    step: str
    attempt: int
    holder: str
    tip: str

    @classmethod
    def of(cls, subj: Subject, tip: str) -> Expired:
        """The expired claim of `subj` (which has one), read from tip `tip`."""
        c = subj.claim
        if c is None:
            raise ValueError(f"{subj.factory}/{subj.name} has no claim")
        return cls(
            factory=subj.factory,
            subject=subj.name,
            step=c.step,
            attempt=c.attempt,
            holder=c.holder,
            tip=tip,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Park:
    """A final failure not yet in the dead-letter queue (its worker stopped in between)."""

    factory: str
    subject: str
    tip: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Emit:
    """Subjects a success emitted that do not exist (its worker stopped in between)."""

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
    emits: tuple[Emit, ...] = ()
    waiting: tuple[Waiting, ...] = ()
    running: int = 0
    next_wake: datetime | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)
    # a backoff, lock or quota ends by time alone (a batch's max_wait and a budget's reset
    # set next_wake, not this: a window can be a month, and `--until-idle` stops for it)
    retry_soon: bool = False
    # target branches whose merge queue holds entries of the factories planned, in name order
    landings: tuple[str, ...] = ()

    @property
    def idle(self) -> bool:
        """Nothing to start, nothing running, no lease to recover, and no retry that time
        alone will allow (a backoff, a lock's or a quota's expiry): only people, other
        factories' progress, a batch's max_wait or a budget's next window can move
        anything now."""
        return (
            not self.starts
            and not self.expired
            and not self.parks
            and not self.emits
            and self.running == 0
            and not self.retry_soon
        )


_NO_ENDS = Ends()


@dataclass(slots=True)
class Counts:
    """Live counts the caps are checked against; they grow as the plan adds starts. A
    claim is live until `ends` says its lease ends."""

    running: int = 0
    by_factory: Counter[str] = field(default_factory=Counter)
    by_step: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_state: Counter[tuple[str, str]] = field(default_factory=Counter)
    ends: Ends = _NO_ENDS
    # (factory, subject) -> the path lane its live claim (or planned start) holds, and who
    lanes: dict[tuple[str, str], tuple[tuple[str, ...], str]] = field(default_factory=dict)

    def add(self, config: Config, s: Subject, now: datetime, sign: int) -> None:
        """Count (sign 1) or uncount (sign -1) one subject: its state, and its live claim
        (also in the state that claim is heading for, for WIP limits)."""
        f = s.factory
        self.by_state[(f, s.state)] += sign
        end = self.ends.claim(s)
        if s.claim is not None and end is not None and end > now:
            self.running += sign
            self.by_factory[f] += sign
            self.by_step[(f, s.claim.step)] += sign
            step = config.step(f, s.claim.step)
            if step is not None:
                self.by_state[(f, step.to_state)] += sign
            c = s.claim
            if c.touches:
                who = f"{f}/{s.name} {c.step} attempt {c.attempt} on {c.holder}"
                self._lane((f, s.name), sign, c.touches, who)
        elif s.landing is not None and s.landing.touches:
            # queued work holds its lane until it lands: it is not on the target yet
            x = s.landing
            who = f"{f}/{s.name} {x.step} attempt {x.attempt}, queued to land on {x.target}"
            self._lane((f, s.name), sign, x.touches, who)

    def _lane(self, key: tuple[str, str], sign: int, touches: tuple[str, ...], who: str) -> None:
        if sign > 0:
            self.lanes[key] = (touches, who)
        else:
            self.lanes.pop(key, None)

    def without(self, config: Config, s: Subject | None, now: datetime) -> Counts:
        """A copy with `s` uncounted (None: a plain copy)."""
        out = Counts(
            running=self.running,
            by_factory=Counter(self.by_factory),
            by_step=Counter(self.by_step),
            by_state=Counter(self.by_state),
            ends=self.ends,
            lanes=dict(self.lanes),
        )
        if s is not None:
            out.add(config, s, now, -1)
        return out

    def with_subject(self, config: Config, s: Subject, now: datetime) -> Counts:
        """`self` with `s` counted too (changes self, returns it)."""
        self.add(config, s, now, 1)
        return self


def count(config: Config, snap: Snapshot, now: datetime, ends: Ends | None = None) -> Counts:
    """Subjects per state, and live claims per factory and step (each also counted in the
    state it is heading for, for WIP limits)."""
    counts = Counts(ends=ends or _NO_ENDS)
    for s in snap.subjects.values():
        counts.add(config, s, now, 1)
    return counts


def _batch(
    step: Step,
    members: list[tuple[Start, Subject]],
    now: datetime,
    cap: int,
    counts: Counts,
    fac: Factory,
) -> tuple[Start | None, list[Waiting]]:
    """One run for up to `batch.max` waiting subjects, once `batch.min` wait or the oldest
    has waited `max_wait`; the others wait, saying for what."""
    b = step.batch
    assert b is not None
    oldest = min(s.entered_at for _, s in members)
    due_at = oldest + b.max_wait
    n = len(members)

    def wait(s: Subject, text: str, until: datetime | None) -> Waiting:
        return Waiting(
            factory=fac.factory_id,
            subject=s.name,
            state=s.state,
            step=step.id,
            reasons=(text,),
            kind="batch",
            until=until,
        )

    if n < b.min and due_at > now:
        text = f"batch {step.id}: {n} of {b.min} waiting; runs when {b.min} wait or at {_t(due_at)}"
        return None, [wait(s, text, due_at) for _, s in members]
    fmax = fac.limits.max_parallel
    smax = step.max_parallel
    if (
        counts.running >= cap
        or (fmax is not None and counts.by_factory[fac.factory_id] >= fmax)
        or (smax is not None and counts.by_step[(fac.factory_id, step.id)] >= smax)
    ):
        return None, [
            wait(s, f"batch {step.id}: a cap is full ({counts.running}/{cap} running)", None)
            for _, s in members
        ]
    take = [start for start, _ in members[: b.max]]
    batch = replace(take[0], batch=tuple(take))
    later = [
        wait(s, f"batch {step.id}: the next run (this one takes {b.max})", None)
        for _, s in members[b.max :]
    ]
    return batch, later


def _lease_over(subj: Subject, now: datetime, ends: Ends) -> bool:
    """`subj` has a claim whose lease has ended."""
    end = ends.claim(subj)
    return end is not None and end <= now


def _recoverable(
    fac: Factory, subj: Subject, tip: str, now: datetime, ends: Ends
) -> Expired | Park | None:
    claim = subj.claim
    if claim is not None and _lease_over(subj, now, ends):
        return Expired.of(subj, tip)
    err = subj.last_error
    if claim is None and err is not None and err.final and err.dlq is None:
        return Park(factory=fac.factory_id, subject=subj.name, tip=tip)
    return None


def queues(snap: Snapshot, factories: Iterable[str] | None = None) -> dict[str, list[Subject]]:
    """Every target branch's merge queue, in the order it is served: first in, first out,
    each point of priority worth PRIORITY_STEP of waiting (so an old entry overtakes newer
    ones of higher priority). Of `factories` only, when given."""
    wanted = None if factories is None else set(factories)
    out: dict[str, list[Subject]] = {}
    for (fid, _), subj in snap.subjects.items():
        if subj.landing is not None and (wanted is None or fid in wanted):
            out.setdefault(subj.landing.target, []).append(subj)
    for entries in out.values():
        entries.sort(key=_served)
    return dict(sorted(out.items()))


def _served(subj: Subject) -> tuple[datetime, str, str]:
    x = subj.landing
    assert x is not None
    return x.queued_at - PRIORITY_STEP * clamp_priority(x.priority), subj.factory, subj.name


def clamp_priority(points: int) -> int:
    """A merge-queue priority within ±PRIORITY_BOUND (a data value, or a hand-edited
    subject.json, cannot take the queue's arithmetic out of range)."""
    return max(-PRIORITY_BOUND, min(PRIORITY_BOUND, points))


def _queued_text(x: Landing, position: tuple[int, int] | None) -> str:
    where = f" (position {position[0]} of {position[1]})" if position else ""
    return (
        f"queued to land {x.step} attempt {x.attempt} on {x.target}{where} since "
        f"{_t(x.queued_at)}; enters {x.to_state} once it lands"
    )


def lane_of(step: Step, subj: Subject) -> tuple[str, ...]:
    """The path lane an attempt of `step` for `subj` holds (its `touches:`, rendered);
    LaneProblem when a template names a data key the subject lacks."""
    return render(step.touches, subj.name, subj.data) if step.touches else ()


def _order(subjects: Iterable[Subject]) -> list[Subject]:
    """First come, first served: by time in the current state, then by name."""
    return sorted(subjects, key=_BY_ARRIVAL)


_BY_ARRIVAL = attrgetter("entered_at", "name")
_AUTO = Autonomy.AUTO  # an enum member read once, not per subject (a class lookup each)


@without_gc  # a decision per subject, and no cycles (freq.heap)
def plan(
    config: Config,
    snap: Snapshot,
    *,
    now: datetime,
    max_parallel: int | None = None,
    factories: tuple[str, ...] | None = None,
    facts: Facts | None = None,
    explain: tuple[str, str] | None = None,
    complete: bool = True,
    ends: Ends | None = None,
    spend: Spend | None = None,
) -> Plan:
    """Decide what should start now under every cap, and why every other subject waits.

    `complete=False` (the run loop) stops deciding once the global cap is full, finding
    only expired leases and unparked failures after that: the waiting reasons of the
    rest, which `plan` and `why` show, are not needed to run. `ends`: when each lease
    ends as the caller's observer judges it (a worker's); without it, at its holder's
    recorded expiry, which is for display: only a worker with an observer takes over.
    `spend`: what each budget spent in its window (freq.costs.spend_of); without it,
    nothing, so only a budget of 0 stops an agent step."""
    cap = max_parallel if max_parallel is not None else config.settings.max_parallel
    ends = ends or _NO_ENDS
    spent = _Spent(config.settings, spend or NO_SPEND)
    counts = count(config, snap, now, ends)
    running_total = counts.running
    starts: list[Start] = []
    expired: list[Expired] = []
    parks: list[Park] = []
    emits: list[Emit] = []
    waiting: list[Waiting] = []
    wakes: list[datetime] = []
    chosen = [f for f in config.factories if factories is None or f.factory_id in factories]
    queue = queues(snap, [f.factory_id for f in chosen])
    positions = {
        (s.factory, s.name): (i, len(entries))
        for entries in queue.values()
        for i, s in enumerate(entries, 1)
    }
    gathering: dict[str, list[tuple[Start, Subject]]] = {}
    later: set[datetime] = set()  # wakes that do not make the plan busy (see Plan.retry_soon)
    for fac in chosen:
        for subj in _order(snap.of_factory(fac.factory_id)):
            tip = snap.tips[(fac.factory_id, subj.name)]
            if not complete and counts.running >= cap:
                # nothing more can start: only leases to recover and failures to park
                # matter to `run`, and they are cheap to find
                cheap = _recoverable(fac, subj, tip, now, ends)
                end = ends.claim(subj)
                if end is not None and cheap is None:
                    wakes.append(end)  # to recover it if its worker dies
                if cheap is not None:
                    (expired if isinstance(cheap, Expired) else parks).append(cheap)  # type: ignore[arg-type]
                continue
            every = explain == (fac.factory_id, subj.name)
            decision = _decide(
                fac,
                subj,
                tip,
                snap,
                now,
                cap,
                counts,
                facts,
                every=every,
                ends=ends,
                spent=spent,
                position=positions.get((fac.factory_id, subj.name)),
            )
            batched = fac.step(decision.step) if isinstance(decision, Start) else None
            if isinstance(decision, Start) and batched is not None and batched.batch:
                gathering.setdefault(decision.step, []).append((decision, subj))
                continue
            if isinstance(decision, Start):
                starts.append(decision)
                counts.running += 1
                counts.by_factory[fac.factory_id] += 1
                counts.by_step[(fac.factory_id, decision.step)] += 1
                step = fac.step(decision.step)
                assert step is not None
                counts.by_state[(fac.factory_id, step.to_state)] += 1
                if step.touches:
                    who = f"{fac.factory_id}/{subj.name} {step.id} attempt {decision.attempt}"
                    counts.lanes[(fac.factory_id, subj.name)] = (lane_of(step, subj), who)
            elif isinstance(decision, Expired):
                expired.append(decision)
            elif isinstance(decision, Park):
                parks.append(decision)
            elif isinstance(decision, Emit):
                emits.append(decision)
            else:
                waiting.append(decision)
                if decision.kind == "backoff" and subj.not_before is not None:
                    wakes.append(subj.not_before)
                end = ends.claim(subj)
                if decision.kind == "running" and end is not None:
                    wakes.append(end)
                if decision.until is not None:
                    wakes.append(decision.until)
                    if decision.kind == "budget":
                        later.add(decision.until)
        for step_id, members in gathering.items():
            step = fac.step(step_id)
            assert step is not None and step.batch is not None
            batch, rest = _batch(step, members, now, cap, counts, fac)
            if batch is not None:
                starts.append(batch)
                counts.running += 1
                counts.by_factory[fac.factory_id] += 1
                counts.by_step[(fac.factory_id, step_id)] += 1
                counts.by_state[(fac.factory_id, step.to_state)] += len(batch.batch)
            waiting += rest
            due = [w.until for w in rest if w.until is not None]
            wakes += due
            later.update(due)
        gathering.clear()
    if factories is None:
        # subjects of factories no longer configured: nothing runs for them, but a claim a
        # worker holds must still be recovered when its lease ends (SPEC §5)
        configured = {f.factory_id for f in config.factories}
        gone = sorted(kv for kv in snap.subjects.items() if kv[0][0] not in configured)
        for (fid, _name), subj in gone:
            end = ends.claim(subj)
            if end is None:
                continue
            if end > now:
                wakes.append(end)
                continue
            expired.append(Expired.of(subj, snap.tips[(fid, subj.name)]))
    return Plan(
        starts=tuple(starts),
        expired=tuple(expired),
        parks=tuple(parks),
        emits=tuple(emits),
        waiting=tuple(waiting),
        running=running_total,
        next_wake=min(wakes) if wakes else None,
        retry_soon=bool(wakes) and not all(w in later for w in wakes),
        problems=snap.problems,
        landings=tuple(queue),
    )


def _decide(
    fac: Factory,
    subj: Subject,
    tip: str,
    snap: Snapshot,
    now: datetime,
    cap: int,
    counts: Counts,
    facts: Facts | None,
    *,
    every: bool = False,
    ends: Ends = _NO_ENDS,
    spent: _Spent | None = None,
    position: tuple[int, int] | None = None,
) -> Start | Expired | Park | Emit | Waiting:
    """What to do with one subject; with `every`, a waiting subject gets all its reasons
    (for `why`), not only the first that stops each step."""
    fid = fac.factory_id

    def wait(
        kind: str, *reasons: str, step: str | None = None, until: datetime | None = None
    ) -> Waiting:
        return Waiting(
            factory=fid,
            subject=subj.name,
            state=subj.state,
            step=step,
            reasons=reasons,
            kind=kind,
            until=until,
        )

    if subj.claim is not None:
        c = subj.claim
        end = ends.claim(subj)
        if end is not None and end > now:
            return wait(
                "running",
                f"running {c.step} attempt {c.attempt} on {c.holder} since "
                f"{_t(c.claimed_at)}, lease until {_t(end)}",
                step=c.step,
            )
        return Expired.of(subj, tip)
    if subj.landing is not None:
        return wait("queued", _queued_text(subj.landing, position), step=subj.landing.step)
    err = subj.last_error
    if subj.parked is not None and err is not None:
        return wait(
            "dlq",
            (f"asked: {err.question}; " if err.question else "")
            + f"parked in the dead-letter queue as {subj.parked}: {err.step} attempt "
            f"{err.attempt} failed, {err.kind.value} ({err.rule or err.reason}); requeue with "
            f"`git freq dlq requeue {subj.parked}`",
            step=err.step,
        )
    if err is not None and err.final and err.dlq is None:
        return Park(factory=fid, subject=subj.name, tip=tip)
    if subj.emitted and any(snap.find(e.factory, e.name) is None for e in subj.emitted):
        return Emit(factory=fid, subject=subj.name, tip=tip)
    if subj.state in fac.terminal:
        return wait("terminal", f"{subj.state} is a terminal state")
    steps = fac.steps_from(subj.state)
    if not steps:
        return wait("dead-end", f"no step leaves state {subj.state}")
    pre: list[_Block] = []
    control = snap.control(fid)
    broken = snap.broken_controls.get(fid)
    if broken is not None:
        pre.append(
            _Block(
                "paused",
                f"control state of {fid} is unreadable ({broken}); nothing starts until "
                f"`git freq resume {fid}` writes a fresh one",
            )
        )
    if control.paused:
        note = f": {control.why}" if control.why else ""
        pre.append(_Block("paused", f"factory {fid} is paused by {control.by or 'someone'}{note}"))
    if subj.not_before is not None and subj.not_before > now:
        err = subj.last_error
        if err is not None and err.kind is FailureKind.QUOTA:
            # a usage limit gave its attempt back: attempt `err.attempt` runs again
            why = f"held until {_t(subj.not_before)}: attempt {err.attempt} hit a usage limit"
        else:
            why = f"backoff until {_t(subj.not_before)} after attempt {subj.attempt} failed"
        pre.append(_Block("backoff", why, until=subj.not_before))
    if pre and not every:
        step_id = subj.last_error.step if subj.last_error else None
        return wait(pre[0].kind, pre[0].text, step=step_id, until=pre[0].until)
    found: list[tuple[str, _Block]] = [("", b) for b in pre]
    for step in steps:
        blocks = _blocks(fac, step, subj, snap, now, cap, counts, facts, ends, spent)
        got = list(blocks) if every else [b for b in (next(blocks, None),) if b is not None]
        if not got and not pre:
            return Start(
                factory=fid, subject=subj.name, step=step.id, attempt=subj.attempt + 1, tip=tip
            )
        found += [("" if len(steps) == 1 else f"{step.id}: ", b) for b in got]
        if got and not every and len(steps) == 1:
            return wait(got[0].kind, got[0].text, step=step.id, until=got[0].until)
    first = found[0][1] if found else _Block("blocked", "")
    untils = [b.until for _, b in found if b.until is not None]
    return wait(
        first.kind if len(steps) == 1 or every else "blocked",
        *(prefix + b.text for prefix, b in found),
        step=steps[0].id if len(steps) == 1 else None,
        until=min(untils) if untils and len(untils) == len(found) else None,
    )


class _Block(NamedTuple):
    """Why one step cannot start now; `until` when time alone ends the wait."""

    kind: str
    text: str
    until: datetime | None = None


class _Spent(NamedTuple):
    """What budgets are checked against: the settings naming agents' budgets, and the
    spend recorded in git."""

    settings: Settings
    spend: Spend


def _blocks(
    fac: Factory,
    step: Step,
    subj: Subject,
    snap: Snapshot,
    now: datetime,
    cap: int,
    counts: Counts,
    facts: Facts | None,
    ends: Ends,
    spent: _Spent | None = None,
) -> Iterator[_Block]:
    """Every reason `step` cannot start for `subj` now, most fundamental first."""
    fid = fac.factory_id
    if subj.attempt >= step.retry.max_attempts and subj.last_error is not None:
        yield _Block(
            "exhausted",
            f"retries exhausted: {subj.attempt} of "
            f"{step.retry.max_attempts} attempts failed "
            f"(last: {subj.last_error.reason})",
        )
    if step.is_gate:
        yield _Block("gate", f"gate {step.id} waits for approval ({_approve(fid, subj, step)})")
    control = snap.control(fid)
    autonomy = control.autonomy or fac.autonomy
    if autonomy is not _AUTO and not control.approved(subj, step.id):
        if autonomy is Autonomy.MANUAL:
            yield _Block(
                "approval",
                f"autonomy is manual: {step.id} waits for approval ({_approve(fid, subj, step)})",
            )
        elif step.approval or step.agent is not None:
            yield _Block(
                "approval",
                f"autonomy is supervised: {step.id} waits for approval "
                f"({_approve(fid, subj, step)})",
            )
    if step.requires:
        verdict = evaluate_all(step.requires, snap, subj, facts)
        if not verdict.holds:
            yield _Block("predicate", "; ".join(verdict.reasons))
    if counts.running >= cap:
        yield _Block("cap", f"global max_parallel reached ({counts.running}/{cap} running)")
    fmax = fac.limits.max_parallel
    if fmax is not None and counts.by_factory[fid] >= fmax:
        n = counts.by_factory[fid]
        yield _Block("cap", f"factory max_parallel reached ({n}/{fmax} running)")
    if step.max_parallel is not None and counts.by_step[(fid, step.id)] >= step.max_parallel:
        n = counts.by_step[(fid, step.id)]
        yield _Block("cap", f"step max_parallel reached ({n}/{step.max_parallel} running)")
    wip = fac.limits.wip.get(step.to_state)
    if wip is not None and counts.by_state[(fid, step.to_state)] >= wip:
        n = counts.by_state[(fid, step.to_state)]
        yield _Block("wip", f"WIP limit of {step.to_state} full ({n}/{wip})")
    quota = snap.locks.get(quota_key(fid, step))
    if quota is not None and quota.held_at(now):
        yield _Block(
            "quota",
            f"usage limit of {quota_key(fid, step)[6:]} reached; held until {_t(quota.expires_at)}",
            until=quota.expires_at,
        )
    if step.agent is not None and spent is not None:
        # a spent budget starts no new attempt of its agent steps; running ones finish
        for hit in reached(step, fac, spent.settings, spent.spend, now):
            yield _Block("budget", hit.reason, until=hit.resets)
    if step.touches and counts.lanes:
        try:
            mine = lane_of(step, subj)
        except LaneProblem as exc:
            yield _Block("lane", f"touches: {exc.message}")
        else:
            for key, (theirs, who) in counts.lanes.items():
                if key == (fid, subj.name):
                    continue
                pair = first_overlap(mine, theirs)
                if pair is not None:
                    yield _Block("lane", f"lane {pair[0]} overlaps {pair[1]} of {who}")
                    break
    for spec in step.locks:
        broken = snap.broken_locks.get(spec.name)
        if broken is not None:
            yield _Block(
                "lock",
                f"lock {spec.name} is unreadable ({broken}); break it with "
                f"`git freq locks break {spec.name} --reason ...`",
            )
            continue
        lock = snap.locks.get(spec.name)
        if lock is None:
            continue
        named = split_subject(lock.subject)
        hold = lock_hold(lock, snap.subjects.get(named) if named else None, now=now, ends=ends)
        if hold.held:
            until = hold.until or lock.expires_at
            yield _Block(
                "lock",
                f"lock {spec.name} held by {lock.holder} ({lock.subject}) until {_t(until)}",
                until=until,
            )


def _approve(fid: str, subj: Subject, step: Step) -> str:
    return f"`git freq approve {fid} {subj.name} {step.id}`"


def _t(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


QUOTA_PREFIX = "quota:"  # the named locks that hold a usage limit


def quota_key(factory: str, step: Step) -> str:
    """The lock name a usage limit holds: the step's agent (shared by every step using it),
    or the step itself for a command step."""
    held = step.agent.use if step.agent is not None else f"{factory}.{step.id}"
    return QUOTA_PREFIX + held


def next_start(
    config: Config,
    snap: Snapshot,
    subject: Subject,
    tip: str,
    *,
    now: datetime,
    max_parallel: int | None = None,
    counts: Counts | None = None,
    facts: Facts | None = None,
    ends: Ends | None = None,
    spend: Spend | None = None,
) -> Start | None:
    """Whether `subject`, as it is now (at `tip`), would start a step now and which one,
    under the same rules and caps (and budgets: `spend`) as `plan`, without planning
    every other subject.

    `snap` may be older than the subject; pass `count(config, snap, now)` as `counts` to
    reuse one count for many calls (with the same `ends`). The subject's own entry in them
    is replaced by its current self."""
    fac = config.factory(subject.factory)
    if fac is None:
        return None
    cap = max_parallel if max_parallel is not None else config.settings.max_parallel
    ends = ends or (counts.ends if counts is not None else _NO_ENDS)
    base = counts if counts is not None else count(config, snap, now, ends)
    adjusted = base.without(config, snap.subjects.get((subject.factory, subject.name)), now)
    adjusted = adjusted.with_subject(config, subject, now)
    spent = _Spent(config.settings, spend or NO_SPEND)
    decision = _decide(fac, subject, tip, snap, now, cap, adjusted, facts, ends=ends, spent=spent)
    return decision if isinstance(decision, Start) else None
