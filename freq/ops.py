"""User actions as plain functions: one per command, shared by the CLI and the dashboard.

Must not import click or print: each function takes an App and plain values and returns a
result dataclass (or raises a FreqError). freq/cli/ renders; server.py will serve the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from freq import proc, refs
from freq.clock import Clock, SystemClock
from freq.config import dead_ends, expand_config, load_config
from freq.control import change_control
from freq.dlq import AlreadyRequeued, Dlq, Entry
from freq.errors import (
    FreqError,
    UnknownFactory,
    UnknownState,
    UsageError,
)
from freq.executor import Executor, RunSummary
from freq.locks import Locks
from freq.model import (
    Approval,
    Autonomy,
    Config,
    Control,
    Event,
    EventKind,
    Factory,
    Snapshot,
    Subject,
)
from freq.planner import Plan, plan
from freq.proc import worker_identity
from freq.report import Reporter
from freq.store import HistoryEntry, Store


class App:
    """One invocation's handle: where the repository is, the clock, who this worker is."""

    def __init__(self, cwd: str | os.PathLike[str] = ".", *, clock: Clock | None = None) -> None:
        self.cwd = Path(cwd)
        self.clock: Clock = clock or SystemClock()
        self._store: Store | None = None
        self._config: Config | None = None
        self._worker: str | None = None

    @property
    def store(self) -> Store:
        """The repository's state store (opened on first use)."""
        if self._store is None:
            self._store = Store.discover(self.cwd, clock=self.clock)
        return self._store

    @property
    def root(self) -> Path:
        """The repository's working tree root."""
        return self.store.root

    @property
    def config(self) -> Config:
        """The validated configuration (loaded on first use)."""
        if self._config is None:
            self._config = load_config(self.root)
        return self._config

    @property
    def worker(self) -> str:
        """`host:pid:start-time` of this process."""
        if self._worker is None:
            self._worker = worker_identity(self.store.identity.decode().split("@")[-1][:-1])
        return self._worker

    def factory(self, factory_id: str) -> Factory:
        """The named factory; UnknownFactory naming the known ones otherwise."""
        fac = self.config.factory(factory_id)
        if fac is None:
            known = ", ".join(f.factory_id for f in self.config.factories) or "none"
            raise UnknownFactory(f"unknown factory {factory_id!r} (known: {known})")
        return fac

    def close(self) -> None:
        """Release the repository."""
        if self._store is not None:
            self._store.close()
            self._store = None


# ---------------------------------------------------------------- init / validate

STARTER_SETTINGS = """\
# Frequency settings (all optional). Reference: docs/config.md
# Global cap on steps running at once, across every worker process.
max_parallel: 4
# Claims on running steps are leases renewed every ttl/3; a worker that stops renewing
# is presumed lost after ttl and its attempt is recorded as failed (retryable).
lease:
  ttl: 60s
defaults:
  timeout: 30m
  retry:
    max_attempts: 3
    backoff: {initial: 15s, factor: 2, max: 90s, jitter: 0.2}
"""

STARTER_BUILD = """\
# A factory is a state machine: subjects move from state to state when steps succeed.
# Add a subject:   git freq add build my-app
# Run until idle:  git freq run --until-idle
# Read history:    git log refs/frequency/subjects/build/my-app
factory_id: build
description: Build an app, from selection to promotion.
state:
  initial: selected
  terminal: [promoted, failed]
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
    # Each step is a shell command run at the repository root; exit 0 moves the subject on.
    run: echo "implementing $FREQ_SUBJECT (attempt $FREQ_ATTEMPT)"
    timeout: 40m
  - id: review
    from_states: [implemented]
    to_state: reviewed
    run: echo "reviewing $FREQ_SUBJECT"
    # Exit code 3 sends the subject back to be implemented again.
    outcomes: {3: selected}
  - id: build_validate
    from_states: [reviewed]
    to_state: validated
    run: echo "validating $FREQ_SUBJECT"
  - id: promote
    from_states: [validated]
    to_state: promoted
    run: echo "promoting $FREQ_SUBJECT"
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class InitResult:
    """Files `init` wrote."""

    written: tuple[str, ...]


def init_project(app: App, *, force: bool = False) -> InitResult:
    """Write a commented starter .frequency/ (settings + the seed's build factory)."""
    folder = app.root / ".frequency"
    files = {"frequency.yaml": STARTER_SETTINGS, "build.yaml": STARTER_BUILD}
    existing = [n for n in files if (folder / n).exists()]
    if existing and not force:
        raise FreqError(
            f".frequency/{existing[0]} already exists; nothing was written",
            hint="pass --force to overwrite",
        )
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return InitResult(written=tuple(f".frequency/{n}" for n in files))


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidateResult:
    """A valid configuration: what it holds, notes, and the `--expand` form."""

    factories: tuple[str, ...]
    notes: tuple[str, ...]
    expanded: Mapping[str, object] | None = None


def validate(app: App, *, expand: bool = False) -> ValidateResult:
    """Check every config file (ConfigError lists all problems); optionally expand `flow:`."""
    cfg = app.config
    notes = tuple(
        f"{f.path}: state {s!r} is not terminal and no step leaves it (subjects rest there)"
        for f in cfg.factories
        for s in dead_ends(f)
    )
    return ValidateResult(
        factories=tuple(f.factory_id for f in cfg.factories),
        notes=notes,
        expanded=expand_config(app.root) if expand else None,
    )


# ---------------------------------------------------------------- add


@dataclass(frozen=True, slots=True, kw_only=True)
class AddResult:
    """Subjects created (and those left alone because they existed)."""

    factory: str
    state: str
    added: tuple[str, ...]
    skipped: tuple[str, ...] = ()


def parse_data(pairs: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` strings → dict; UsageError on anything else."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--data takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def parse_subjects(text: str) -> list[tuple[str, dict[str, str]]]:
    """Subjects listed one per line as `NAME [KEY=VALUE ...]`; blank lines and # comments skip."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, *pairs = line.split()
            out.append((name, parse_data(pairs)))
    return out


def add_subjects(
    app: App,
    factory_id: str,
    subjects: Sequence[tuple[str, Mapping[str, str]]],
    *,
    state: str | None = None,
    skip_existing: bool = False,
) -> AddResult:
    """Create many subjects in one write (all or none), in `state` or the initial state."""
    fac = app.factory(factory_id)
    target = state or fac.initial
    if target not in fac.states:
        raise UnknownState(
            f"factory {factory_id!r} has no state {target!r} (states: {', '.join(fac.states)})"
        )
    for name, _ in subjects:
        refs.check_name("subject", name)
    if not subjects:
        raise UsageError("name at least one subject, or pass --from FILE")
    skipped: list[str] = []
    if skip_existing:
        present = set(app.store.list_refs(f"{refs.SUBJECTS}{factory_id}/"))
        keep = [(n, d) for n, d in subjects if refs.subject_ref(factory_id, n) not in present]
        skipped = [n for n, _ in subjects if refs.subject_ref(factory_id, n) in present]
        subjects = keep
    now = app.clock.now()
    items = []
    for name, data in subjects:
        subj = Subject(
            factory=factory_id,
            name=name,
            state=target,
            data=MappingProxyType(dict(data)),
            created_at=now,
            updated_at=now,
            entered_at=now,
        )
        ev = Event(
            kind=EventKind.CREATED,
            factory=factory_id,
            subject=name,
            at=now,
            worker=app.worker,
            to_state=target,
        )
        items.append((subj, ev))
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


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusResult:
    """`status`: every (or one) factory's counts."""

    factories: tuple[FactoryStatus, ...]
    locks_held: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def _snapshot(app: App) -> Snapshot:
    return app.store.snapshot()


def status(app: App, factory_id: str | None = None) -> StatusResult:
    """Counts per state, running steps; problems with refs are listed, not fatal."""
    facs = [app.factory(factory_id)] if factory_id else list(app.config.factories)
    snap = _snapshot(app)
    now = app.clock.now()
    out = []
    for fac in facs:
        subs = snap.in_factory(fac.factory_id)
        counts = dict.fromkeys(fac.states, 0)
        for s in subs:
            counts[s.state] = counts.get(s.state, 0) + 1
        running = sum(1 for s in subs if s.claim is not None and s.claim.expires_at > now)
        control = snap.control(fac.factory_id)
        out.append(
            FactoryStatus(
                factory=fac.factory_id,
                states=tuple(counts.items()),
                terminal=fac.terminal,
                running=running,
                subjects=len(subs),
                parked=sum(1 for s in subs if s.parked),
                paused=control.paused,
                autonomy=(control.autonomy or fac.autonomy).value,
            )
        )
    held = tuple(sorted(n for n, lock in snap.locks.items() if lock.held_at(now)))
    return StatusResult(factories=tuple(out), locks_held=held, problems=snap.problems)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowResult:
    """`show`: one subject in full."""

    subject: Subject
    tip: str
    output_tail: str
    history: tuple[HistoryEntry, ...]


def show(app: App, factory_id: str, name: str, *, history: int = 20) -> ShowResult:
    """State, attempts, data, last error, output tail and recent history of one subject."""
    app.factory(factory_id)
    subj, tip = app.store.read_subject(factory_id, name)
    out = app.store.read_output(tip) or b""
    hist = tuple(app.store.history({refs.subject_ref(factory_id, name): tip}, limit=history))
    return ShowResult(
        subject=subj, tip=tip, output_tail=out.decode("utf-8", "replace"), history=hist
    )


def log(
    app: App, factory_id: str | None = None, name: str | None = None, *, limit: int | None = 50
) -> tuple[HistoryEntry, ...]:
    """History from the commit chains: one subject, one factory, or the whole journal."""
    if name is not None:
        assert factory_id is not None
        app.factory(factory_id)
        _subj, tip = app.store.read_subject(factory_id, name)
        tips = {refs.subject_ref(factory_id, name): tip}
    elif factory_id is not None:
        app.factory(factory_id)
        tips = app.store.list_refs(f"{refs.SUBJECTS}{factory_id}/")
    else:
        # cap slots point at subjects' claim commits: their history is the subjects'
        tips = {
            r: o for r, o in app.store.list_refs(refs.ROOT).items() if not r.startswith(refs.CAPS)
        }
    return tuple(app.store.history(tips, limit=limit))


# ---------------------------------------------------------------- plan / transition / run


def plan_now(app: App, factories: Sequence[str] = ()) -> Plan:
    """What would run now, and what waits and why (pure planner over the current state)."""
    for f in factories:
        app.factory(f)
    return plan(app.config, _snapshot(app), now=app.clock.now(), factories=tuple(factories) or None)


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
    app: App, factory_id: str, name: str, state: str, *, reason: str
) -> TransitionResult:
    """Move a subject to `state` by hand (recorded with who and why). A running claim is
    ended: its worker's result will be refused by the epoch fence."""
    fac = app.factory(factory_id)
    if state not in fac.states:
        raise UnknownState(
            f"factory {factory_id!r} has no state {state!r} (states: {', '.join(fac.states)})"
        )
    if not reason.strip():
        raise UsageError("--reason must say why")
    subj, tip = app.store.read_subject(factory_id, name)
    now = app.clock.now()
    new = subj.entering(state, now, new_epoch=True)
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    event = Event(
        kind=EventKind.MOVED,
        factory=factory_id,
        subject=name,
        at=now,
        worker=f"{user}@{app.worker}",
        from_state=subj.state,
        to_state=state,
        epoch=new.epoch,
        reason=reason,
    )
    commit = app.store.advance(refs.subject_ref(factory_id, name), new, event, expected=tip)
    return TransitionResult(
        factory=factory_id,
        subject=name,
        from_state=subj.state,
        to_state=state,
        commit=commit,
        interrupted_claim=subj.claim.holder if subj.claim else None,
    )


def run(
    app: App,
    *,
    once: bool = False,
    until_idle: bool = False,
    factories: Sequence[str] = (),
    max_parallel: int | None = None,
    reporter: Reporter | None = None,
    handle_signals: bool = False,
) -> RunSummary:
    """Run steps: one cycle, until idle, or until interrupted.

    With `handle_signals` (the CLI), the first SIGINT/SIGTERM stops claiming and lets
    running steps finish; the second kills their process groups and releases their claims.
    """
    for f in factories:
        app.factory(f)
    if max_parallel is not None and max_parallel < 1:
        raise UsageError("--max-parallel must be at least 1")
    ex = Executor(app.store, app.config, clock=app.clock, worker=app.worker, reporter=reporter)
    restore = proc.handle_interrupts(ex.stop, ex.kill) if handle_signals else None
    try:
        return ex.run(
            once=once,
            until_idle=until_idle,
            factories=tuple(factories) or None,
            max_parallel=max_parallel,
        )
    finally:
        if restore is not None:
            restore()


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphInput:
    """What `graph` draws."""

    factories: tuple[Factory, ...] = field(default_factory=tuple)


def graph_input(app: App, factory_id: str | None = None) -> GraphInput:
    """The factories to draw: one, or all of them with their cross-factory edges."""
    if factory_id:
        return GraphInput(factories=(app.factory(factory_id),))
    return GraphInput(factories=app.config.factories)


# ---------------------------------------------------------------- control


def _who(app: App) -> str:
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
    return f"{user}@{app.worker.split(':')[0]}"


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


def pause(app: App, factory_id: str, *, reason: str = "") -> ControlResult:
    """Stop new claims in a factory (running steps finish); every worker respects it."""
    fac = app.factory(factory_id)
    c = change_control(
        app.store,
        app.clock,
        factory_id,
        lambda c: replace(c, paused=True),
        what="pause",
        by=_who(app),
        why=reason,
    )
    return _control_result(fac, c)


def resume(app: App, factory_id: str, *, reason: str = "") -> ControlResult:
    """Let a paused factory claim again."""
    fac = app.factory(factory_id)
    c = change_control(
        app.store,
        app.clock,
        factory_id,
        lambda c: replace(c, paused=False),
        what="resume",
        by=_who(app),
        why=reason,
    )
    return _control_result(fac, c)


def set_autonomy(app: App, factory_id: str, level: str, *, reason: str = "") -> ControlResult:
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
        by=_who(app),
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
    app: App, factory_id: str, name: str, step_id: str, *, reason: str = ""
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
    who = _who(app)
    if step.is_gate:
        now = app.clock.now()
        new = subj.entering(step.to_state, now, new_epoch=True)
        event = Event(
            kind=EventKind.TRANSITIONED,
            factory=factory_id,
            subject=name,
            at=now,
            worker=who,
            step=step_id,
            from_state=subj.state,
            to_state=step.to_state,
            epoch=new.epoch,
            reason=f"approved by {who}" + (f": {reason}" if reason else ""),
        )
        app.store.advance(refs.subject_ref(factory_id, name), new, event, expected=tip)
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


def list_locks(app: App, *, include_free: bool = False) -> tuple[LockRow, ...]:
    """Held locks (all of them with include_free), with holder, age and expiry."""
    now = app.clock.now()
    out = []
    for lock in Locks(app.store, app.clock).all():
        held = lock.held_at(now)
        if held or include_free:
            out.append(
                LockRow(
                    name=lock.name,
                    holder=lock.holder,
                    subject=lock.subject,
                    acquired_at=refs.iso(lock.acquired_at),
                    expires_at=refs.iso(lock.expires_at),
                    held=held,
                    age_seconds=round((now - lock.acquired_at).total_seconds(), 3),
                )
            )
    return tuple(out)


def break_lock(app: App, name: str, *, reason: str) -> LockRow:
    """Release a lock by hand, whoever holds it (a commit with who and why)."""
    if not reason.strip():
        raise UsageError("--reason must say why")
    old = Locks(app.store, app.clock).break_lock(name, who=_who(app), reason=reason)
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
    p = plan(app.config, _snapshot(app), now=app.clock.now(), explain=(factory_id, name))
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
            return WhyResult(
                factory=factory_id, subject=name, state=w.state, kind=w.kind, reasons=w.reasons
            )
    return WhyResult(
        factory=factory_id,
        subject=name,
        state=subj.state,
        kind="unknown",
        reasons=("not planned (the subject ref could not be read)",),
    )


# ---------------------------------------------------------------- dead-letter queue


@dataclass(frozen=True, slots=True, kw_only=True)
class DlqRow:
    """One dead-letter entry as `dlq list` shows it."""

    id: str
    commit: str
    kind: str
    factory: str
    subject: str
    step: str
    attempt: int
    failure_class: str
    reason: str
    at: str
    requeued_as: str | None = None
    requeues: str | None = None


def _row(e: Entry, requeued: dict[str, str]) -> DlqRow:
    return DlqRow(
        id=e.id,
        commit=e.commit,
        kind=e.kind,
        factory=e.factory,
        subject=e.subject,
        step=e.step,
        attempt=e.attempt,
        failure_class=e.failure_class,
        reason=e.reason,
        at=refs.iso(e.at),
        requeued_as=requeued.get(e.id),
        requeues=e.requeues,
    )


def dlq_list(
    app: App, factory_id: str | None = None, *, include_requeued: bool = False
) -> tuple[DlqRow, ...]:
    """Dead-letter entries, newest first: those still waiting (all with include_requeued)."""
    queue = Dlq(app.store, app.clock)
    if factory_id is not None:
        app.factory(factory_id)
    factories = [factory_id] if factory_id else queue.factories()
    rows: list[DlqRow] = []
    for f in factories:
        entries = list(queue.entries(f))
        requeued = {e.requeues: e.id for e in entries if e.kind == "requeue" and e.requeues}
        for e in entries:
            if e.kind == "entry" and (include_requeued or e.id not in requeued):
                rows.append(_row(e, requeued))
    return tuple(sorted(rows, key=lambda r: r.at, reverse=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class DlqShow:
    """One entry in full, with its output tail and what became of it."""

    entry: DlqRow
    state: str
    exit_code: int | None
    duration_ms: int | None
    subject_commit: str
    question: str | None
    output_tail: str


def dlq_show(app: App, entry_id: str) -> DlqShow:
    """One dead-letter entry: the failure, its class and reason, and the output tail."""
    queue = Dlq(app.store, app.clock)
    e = queue.find(entry_id)
    again = queue.requeue_of(e) if e.kind == "entry" else None
    row = _row(e, {e.id: again.id} if again else {})
    return DlqShow(
        entry=row,
        state=e.state,
        exit_code=e.exit_code,
        duration_ms=e.duration_ms,
        subject_commit=e.subject_commit,
        question=e.question,
        output_tail=queue.output(e),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RequeueResult:
    """A requeue: the entry it wrote and where the subject went back to."""

    entry: str
    requeue_entry: str
    factory: str
    subject: str
    state: str


def dlq_requeue(app: App, entry_id: str, *, reason: str = "") -> RequeueResult:
    """Append a requeue entry and put the subject back in the state it failed in, with a
    fresh attempt budget. A second requeue of the same entry is refused."""
    queue = Dlq(app.store, app.clock)
    e = queue.find(entry_id)
    if e.kind != "entry":
        raise FreqError(f"{e.id} is a requeue record, not a failure; requeue {e.requeues} instead")
    subj, tip = app.store.read_subject(e.factory, e.subject)
    err = subj.last_error
    waiting = err is not None and err.dlq == e.id
    done = queue.requeue_of(e)
    if done is not None and not waiting:
        raise AlreadyRequeued(
            f"{e.id} was already requeued as {done.id} at {refs.iso(done.at)}; nothing was changed",
            hint=f"see `git freq show {e.factory} {e.subject}`",
        )
    if not waiting:
        raise FreqError(
            f"{e.factory}/{e.subject} has moved on since {e.id} (now in "
            f"{subj.state}); nothing was requeued"
        )
    if done is None:
        done = queue.append(
            Entry(
                id="",
                seq=0,
                kind="requeue",
                factory=e.factory,
                subject=e.subject,
                at=app.clock.now(),
                requeues=e.id,
                by=_who(app),
                reason=reason,
            ),
            b"",
        )
    # done exists here; a requeue record whose subject was never moved (a crash between
    # the two writes) is completed rather than refused
    now = app.clock.now()
    new = subj.entering(e.state, now, new_epoch=True)
    event = Event(
        kind=EventKind.REQUEUED,
        factory=e.factory,
        subject=e.subject,
        at=now,
        worker=_who(app),
        from_state=subj.state,
        to_state=e.state,
        epoch=new.epoch,
        dlq=done.id,
        reason=reason or f"requeued {e.id}",
    )
    app.store.advance(refs.subject_ref(e.factory, e.subject), new, event, expected=tip)
    return RequeueResult(
        entry=e.id, requeue_entry=done.id, factory=e.factory, subject=e.subject, state=e.state
    )
