"""Subject actions: add, status, show, log, plan, transition, why, and the `run` loop entry.

Must not import click, dulwich, subprocess or pexpect, and never prints: each function takes an
App and plain values and returns a result dataclass (or raises a FreqError).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from freq import refs
from freq.errors import BrokenHistory, Hint, SubjectExists, UnknownState, UsageError
from freq.facts import gather
from freq.leases import Ends, lock_hold, split_subject
from freq.model import data_problem
from freq.ops.app import App, _known, _snapshot
from freq.ops.costs import spend_now
from freq.planner import QUOTA_PREFIX, Plan, plan
from freq.runtime import Snapshot, Subject
from freq.store import HistoryEntry, problem_line

if TYPE_CHECKING:  # the run loop is imported by `run` alone: `plan` and `status` skip it
    from freq.ops.queue import PoolStatus, QueueStatus


# ---------------------------------------------------------------- add


@dataclass(frozen=True, slots=True, kw_only=True)
class AddResult:
    """Subjects created (and those left alone because they existed)."""

    factory: str
    state: str
    added: tuple[str, ...]
    skipped: tuple[str, ...] = ()


def parse_data(pairs: Iterable[str], *, where: str = "data") -> dict[str, str]:
    """`KEY=VALUE` strings → dict; UsageError on anything else, or on keys that are not
    identifiers or that would share a FREQ_DATA_ variable (model.data_problem)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{where} takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    problem = data_problem(out)
    if problem:
        raise UsageError(f"{where}: {problem}")
    return out


def parse_subjects(text: str) -> list[tuple[str, dict[str, str]]]:
    """Subjects listed one per line as `NAME [KEY=VALUE ...]`; blank lines and # comments skip."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            name, *pairs = line.split()
            out.append((name, parse_data(pairs, where=f"line {n}")))
    return out


def add_subjects(
    app: App,
    factory_id: str,
    subjects: Sequence[tuple[str, Mapping[str, str]]],
    *,
    state: str | None = None,
    skip_existing: bool = False,
    reopen: bool = False,
) -> AddResult:
    """Create many subjects in one write (all or none), in `state` or the initial state.
    An archived name is refused (SubjectExists) unless `reopen`: then its ref is made
    again, its history going on from its last archived commit."""
    fac = app.factory(factory_id)
    target = state or fac.initial
    if target not in fac.states:
        raise UnknownState(
            f"factory {factory_id!r} has no state {target!r} (states: {', '.join(fac.states)})"
        )
    for name, data in subjects:
        refs.check_name("subject", name)
        problem = data_problem(data)
        if problem:  # --data and a --from line may clash only once merged
            raise UsageError(f"subject {name!r}: {problem}")
    if not subjects:
        raise UsageError("no subjects named", hint=Hint(text="name some, or pass", option="from"))
    skipped: list[str] = []
    archived = app.store.archived_of(factory_id, (n for n, _ in subjects))
    if skip_existing:
        present = set(app.store.list_refs(f"{refs.SUBJECTS}{factory_id}/"))
        if not reopen:  # archived ones exist: left alone too
            present |= {refs.subject_ref(factory_id, n) for n in archived}
        keep = [(n, d) for n, d in subjects if refs.subject_ref(factory_id, n) not in present]
        skipped = [n for n, _ in subjects if refs.subject_ref(factory_id, n) in present]
        subjects = keep
        kept = {n for n, _ in subjects}
        archived = {n: a for n, a in archived.items() if n in kept}
    from freq.transitions import created  # the rules of change: not needed to read state

    if archived and not reopen:
        names = sorted(archived)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise SubjectExists(
            f"{factory_id}: {shown} {'is' if len(names) == 1 else 'are'} archived "
            f"({archived[names[0]][0].state})",
            hint=Hint(text="start them again with their history:", option="reopen"),
        )
    now = app.clock.now()
    items = []
    for name, data in subjects:
        c = created(factory_id, name, target, at=now, worker=app.worker, data=data)
        if name in archived:
            app.store.reopen(c.subject, c.event, parent=archived[name][1])
            continue
        items.append((c.subject, c.event))
    if items:
        app.store.create_many(items)
    return AddResult(
        factory=factory_id,
        state=target,
        added=tuple(n for n, _ in subjects),
        skipped=tuple(skipped),
    )


# ---------------------------------------------------------------- status / show / log


@dataclass(frozen=True, slots=True, kw_only=True)
class FactoryStatus:
    """Counts per state of one factory."""

    factory: str
    states: tuple[tuple[str, int], ...]
    terminal: tuple[str, ...]
    running: int
    subjects: int
    parked: int
    paused: bool
    autonomy: str
    description: str = ""
    dlq_waiting: int = 0  # entries in the factory's queue not requeued (moved on or not)
    archived: int = 0  # of `subjects`, folded into refs/frequency/archive/<factory>


@dataclass(frozen=True, slots=True, kw_only=True)
class OrphanStatus:
    """Subjects of a factory that is no longer configured: counts per state they are in."""

    factory: str
    states: tuple[tuple[str, int], ...]
    subjects: int
    running: int


def _named(snap: Snapshot, subject: str) -> Subject | None:
    """The subject a lock names (`factory/name`), as `snap` has it."""
    key = split_subject(subject)
    return snap.subjects.get(key) if key is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusResult:
    """`status`: every (or one) factory's counts, and factories no longer configured."""

    factories: tuple[FactoryStatus, ...]
    locks_held: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    orphans: tuple[OrphanStatus, ...] = ()
    # usage limits held (an agent, or a step without one) -> until when, ISO
    quotas: tuple[tuple[str, str], ...] = ()
    queues: tuple[QueueStatus, ...] = ()  # merge queues holding entries
    worktrees: PoolStatus | None = None  # this machine's worktree pool, once it exists


def _orphans(app: App, snap: Snapshot, now: datetime) -> tuple[OrphanStatus, ...]:
    by_factory: dict[str, list[Subject]] = {}
    for (f, _), subj in sorted(snap.subjects.items()):
        if app.config.factory(f) is None:
            by_factory.setdefault(f, []).append(subj)
    out = []
    for f, subs in by_factory.items():
        counts: dict[str, int] = {}
        for subj in subs:
            counts[subj.state] = counts.get(subj.state, 0) + 1
        out.append(
            OrphanStatus(
                factory=f,
                states=tuple(sorted(counts.items())),
                subjects=len(subs),
                running=sum(1 for x in subs if x.claim is not None and x.claim.expires_at > now),
            )
        )
    return tuple(out)


def status(
    app: App, factory_id: str | None = None, *, snap: Snapshot | None = None
) -> StatusResult:
    """Counts per state, running steps; problems with refs are listed, not fatal. `snap`:
    a snapshot the caller read already (the dashboard shows the same read in full)."""
    facs = [app.factory(factory_id)] if factory_id else list(app.config.factories)
    snap = snap if snap is not None else _snapshot(app)
    now = app.clock.now()
    from freq.dlq import Dlq  # `status` alone reads the queue: `plan` need not import it

    queue = Dlq(app.store, app.clock)
    queue_problems: list[str] = []
    out = []
    for fac in facs:
        subs = snap.in_factory(fac.factory_id)
        counts = dict.fromkeys(fac.states, 0)
        for s in subs:
            counts[s.state] = counts.get(s.state, 0) + 1
        archived = {
            state: n
            for (f, state), n in (snap.archive.counts() if snap.archive else {}).items()
            if f == fac.factory_id
        }
        if archived and snap.archive is not None:  # live and archived at once (a pass that
            for s in subs:  # stopped before deleting the ref): counted once, as live
                if s.state in archived and snap.archive.get(s.factory, s.name) is not None:
                    archived[s.state] -= 1
        for state, n in archived.items():  # archived subjects are there, in their states
            counts[state] = counts.get(state, 0) + n
        running = sum(1 for s in subs if s.claim is not None and s.claim.expires_at > now)
        control = snap.control(fac.factory_id)
        out.append(
            FactoryStatus(
                factory=fac.factory_id,
                states=tuple(counts.items()),
                terminal=fac.terminal,
                running=running,
                subjects=len(subs) + sum(archived.values()),
                archived=sum(archived.values()),
                parked=sum(1 for s in subs if s.parked),
                paused=control.paused,
                autonomy=(control.autonomy or fac.autonomy).value,
                description=fac.description,
                dlq_waiting=queue.waiting(fac.factory_id, problems=queue_problems),
            )
        )
    held = tuple(
        sorted(
            n
            for n, lock in snap.locks.items()
            if lock_hold(lock, _named(snap, lock.subject), now=now, ends=Ends()).held
        )
    )
    quotas = tuple(
        (name[len(QUOTA_PREFIX) :], refs.iso(snap.locks[name].expires_at))
        for name in held
        if name.startswith(QUOTA_PREFIX)
    )
    from freq.ops.queue import pool_status, queue_status

    fids = {f.factory_id for f in facs}
    merge_queues = tuple(
        replace(q, entries=tuple(e for e in q.entries if e.factory in fids))
        for q in queue_status(app, snap)
    )
    return StatusResult(
        factories=tuple(out),
        locks_held=tuple(n for n in held if not n.startswith(QUOTA_PREFIX)),
        quotas=quotas,
        queues=tuple(q for q in merge_queues if q.entries),
        worktrees=pool_status(app),
        problems=(*snap.problems, *queue_problems),
        orphans=_orphans(app, snap, now) if factory_id is None else (),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowResult:
    """`show`: one subject in full."""

    subject: Subject
    tip: str
    output_tail: str
    history: tuple[HistoryEntry, ...]
    problems: tuple[str, ...] = ()  # where the history breaks (older commits not shown)
    # refs/frequency/salvage/<factory>/<subject>/<attempt>: uncommitted work of dead attempts
    salvage: tuple[str, ...] = ()
    archived: bool = False  # folded into refs/frequency/archive/<factory> (its final state)


def _breaks(broken: Sequence[BrokenHistory]) -> tuple[str, ...]:
    """Where history walks stopped, as warning lines (each place once)."""
    return tuple(dict.fromkeys(problem_line(b, "older history not shown") for b in broken))


def show(app: App, factory_id: str, name: str, *, history: int = 20) -> ShowResult:
    """State, attempts, data, last error, output tail and recent history of one subject. A
    history that breaks (a commit git gc removed) is shown down to the break, which is
    described in `problems`; a tip that is not whole is BrokenHistory."""
    _known(app, factory_id)
    subj, tip, archived = app.store.find_subject(factory_id, name)
    out = app.store.read_output(tip) or b""
    # `history` events, not commits: renewals (folded when shown) do not use up the count
    kept: list[HistoryEntry] = []
    broken: list[BrokenHistory] = []
    events = 0
    for entry in app.store.history({refs.subject_ref(factory_id, name): tip}, broken=broken):
        events += not entry.renewal
        if events > history:
            break
        kept.append(entry)
    hist = tuple(kept)
    return ShowResult(
        subject=subj,
        tip=tip,
        output_tail=out.decode("utf-8", "replace"),
        history=hist,
        problems=_breaks(broken),
        salvage=tuple(sorted(app.store.list_refs(f"{refs.SALVAGE}{factory_id}/{name}/"))),
        archived=archived,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LogResult:
    """`log`: commits newest first, and the refs that could not be read (skipped)."""

    entries: tuple[HistoryEntry, ...]
    problems: tuple[str, ...] = ()


def log(
    app: App, factory_id: str | None = None, name: str | None = None, *, limit: int | None = 50
) -> LogResult:
    """History from the commit chains: one subject, one factory, or the whole journal. A ref
    that does not name a commit is skipped, and a chain that breaks (a commit git gc removed)
    is shown down to the break; both are described in `problems`."""
    if name is not None:
        assert factory_id is not None
        _known(app, factory_id)
        _subj, tip, _archived = app.store.find_subject(factory_id, name)
        tips = {refs.subject_ref(factory_id, name): tip}
    elif factory_id is not None:
        _known(app, factory_id)
        tips = app.store.list_refs(f"{refs.SUBJECTS}{factory_id}/")
        folded = app.store.read_ref(refs.archive_ref(factory_id))
        if folded is not None:  # the archive's fold commits (archived subjects' histories
            tips[refs.archive_ref(factory_id)] = folded  # are `log FACTORY SUBJECT`)
    else:
        # cap slots point at subjects' claim commits: their history is the subjects'
        tips = {
            r: o for r, o in app.store.list_refs(refs.ROOT).items() if not r.startswith(refs.CAPS)
        }
    good, problems = app.store.readable_tips(tips)
    broken: list[BrokenHistory] = []
    entries = tuple(app.store.history(good, limit=limit, broken=broken))
    return LogResult(entries=entries, problems=(*problems, *_breaks(broken)))


# ---------------------------------------------------------------- plan / transition / run


def plan_now(app: App, factories: Sequence[str] = (), *, snap: Snapshot | None = None) -> Plan:
    """What would run now, and what waits and why (pure planner over the current state,
    or over `snap`, a snapshot the caller read already)."""
    for f in factories:
        app.factory(f)
    snap = snap if snap is not None else _snapshot(app)
    chosen = tuple(factories) or None
    facts = gather(app.config, snap, store=app.store, clock=app.clock, factories=chosen)
    spend = spend_now(app, snap)
    return plan(app.config, snap, now=app.clock.now(), factories=chosen, facts=facts, spend=spend)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionResult:
    """A manual move."""

    factory: str
    subject: str
    from_state: str
    to_state: str
    commit: str
    interrupted_claim: str | None = None


def transition(
    app: App, factory_id: str, name: str, state: str, *, reason: str, by: str | None = None
) -> TransitionResult:
    """Move a subject to `state` by hand (recorded with who and why). A running claim is
    ended: its worker's result will be refused by the epoch fence."""
    fac = app.factory(factory_id)
    if state not in fac.states:
        raise UnknownState(
            f"factory {factory_id!r} has no state {state!r} (states: {', '.join(fac.states)})"
        )
    if not reason.strip():
        raise UsageError("a reason is required", hint=Hint(text="say why with", option="reason"))
    subj, tip = app.store.read_subject(factory_id, name)
    from freq.transitions import moved

    change = moved(subj, state=state, at=app.clock.now(), by=by or app.actor, reason=reason)
    commit = app.store.advance(
        refs.subject_ref(factory_id, name), change.subject, change.event, expected=tip
    )
    return TransitionResult(
        factory=factory_id,
        subject=name,
        from_state=subj.state,
        to_state=state,
        commit=commit,
        interrupted_claim=subj.claim.holder if subj.claim else None,
    )


# ---------------------------------------------------------------- why


@dataclass(frozen=True, slots=True, kw_only=True)
class WhyResult:
    """Every reason one subject is not moving (empty when it would start now)."""

    factory: str
    subject: str
    state: str
    kind: str
    reasons: tuple[str, ...]


def why(app: App, factory_id: str, name: str) -> WhyResult:
    """Why SUBJECT is not moving, from the same plan `run` would make."""
    app.factory(factory_id)
    subj, _tip = app.store.read_subject(factory_id, name)
    snap = _snapshot(app)
    facts = gather(app.config, snap, store=app.store, clock=app.clock, factories=(factory_id,))
    p = plan(
        app.config,
        snap,
        now=app.clock.now(),
        explain=(factory_id, name),
        facts=facts,
        spend=spend_now(app, snap),
    )
    for s in p.starts:
        if (s.factory, s.subject) == (factory_id, name):
            return WhyResult(
                factory=factory_id,
                subject=name,
                state=subj.state,
                kind="ready",
                reasons=(f"ready: {s.step} attempt {s.attempt} would start now",),
            )
    for e in p.expired:
        if (e.factory, e.subject) == (factory_id, name):
            return WhyResult(
                factory=factory_id,
                subject=name,
                state=subj.state,
                kind="expired",
                reasons=(
                    f"lease of {e.holder} on {e.step} attempt {e.attempt} "
                    "expired; the next run records it as worker lost",
                ),
            )
    for w in p.waiting:
        if (w.factory, w.subject) == (factory_id, name):
            reasons = w.reasons
            if w.kind == "queued" and subj.landing is not None:
                from freq.ops.queue import queue_status

                q = queue_status(app, snap, target=subj.landing.target)
                if q and q[0].waiting:
                    reasons = (*reasons, q[0].waiting)
            return WhyResult(
                factory=factory_id, subject=name, state=w.state, kind=w.kind, reasons=reasons
            )
    return WhyResult(
        factory=factory_id,
        subject=name,
        state=subj.state,
        kind="unknown",
        reasons=("not planned (the subject ref could not be read)",),
    )
