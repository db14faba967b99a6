"""Apply a Plan: claim by compare-and-swap, run the step, renew the lease, record the outcome.

Must not import click. Every write goes through store.advance with the tip this worker
last wrote or read; every write after the claim names the claim's epoch (fencing), so a
result from an attempt whose claim was taken over is refused, never applied (SPEC §5).

Above STYLE's ~500 lines on purpose: claim, renewal, recording, chaining, parking and
recovery are the one attempt life cycle whose fencing rules must be read together; the
Hypothesis model in tests/test_runtime_model.py checks them as a whole.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from freq import proc, refs
from freq.classify import Ending, classify
from freq.clock import Clock
from freq.discovery import discover, ensure, parse_emitted
from freq.dlq import Dlq, Entry
from freq.errors import FreqError, RefConflict
from freq.facts import gather, mark_for
from freq.locks import Cap, CapFull, Caps, HeldLock, LockHeld, Locks
from freq.model import (
    Claim,
    Config,
    Emitted,
    Event,
    EventKind,
    Factory,
    FailureKind,
    LastError,
    Snapshot,
    Step,
    Subject,
    format_duration,
)
from freq.planner import Counts, Expired, Park, Plan, Start, count, next_start, plan, quota_key
from freq.predicates import Facts
from freq.report import Progress, Reporter
from freq.retry import next_delay
from freq.store import Store

OUTPUT_TAIL_LINES = 200
PENDING = timedelta(seconds=10)  # how long a cap slot waits for the claim it points at
WAKE_SLICE = 0.01  # seconds between checks for a changed ref while waiting (idle CPU ~1%)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    """What one attempt came to, as recorded (or refused) in git."""

    factory: str
    subject: str
    step: str
    attempt: int
    ok: bool
    recorded: bool
    to_state: str | None
    detail: str
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """What a `run` did."""

    succeeded: int = 0
    failed: int = 0
    lost_races: int = 0
    recovered: int = 0
    refused: int = 0
    cycles: int = 0
    interrupted: bool = False
    outcomes: tuple[StepOutcome, ...] = ()


class Lease:
    """The running attempt's view of its claim: the tip it last wrote, and its locks."""

    def __init__(self, subject: Subject, tip: str, locks: list[HeldLock]) -> None:
        self.subject = subject
        self.tip = tip
        self.locks = locks
        self.lost = False


class Executor:
    """Runs steps for one worker identity against one store."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Clock,
        worker: str,
        reporter: Reporter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.worker = worker
        self.reporter = reporter or Reporter()
        self.rng = rng or random.Random()
        self.cancel = proc.Cancel()
        self.ttl = config.settings.lease_ttl
        self.locks = Locks(store, clock)
        self.dlq = Dlq(store, clock)
        self.caps = Caps(store, clock, pending=PENDING, offset=zlib.crc32(worker.encode()))
        self.max_parallel = config.settings.max_parallel
        self.stopping = False
        self.chaining = True
        self._snap: Snapshot | None = None
        self._counts: tuple[Snapshot, Counts] | None = None  # counts of _snap, for chaining
        self._discovered: dict[str, float] = {}  # factory -> when to discover again
        self._facts: Facts | None = None  # the last cycle's command answers, for chaining
        self._offset = zlib.crc32(worker.encode())

    # ------------------------------------------------------------ helpers

    def _factory_step(self, factory: str, step_id: str) -> tuple[Factory, Step]:
        fac = self.config.factory(factory)
        assert fac is not None, factory
        step = fac.step(step_id)
        assert step is not None, step_id
        return fac, step

    def _event(
        self, kind: EventKind, who: Subject | Start | Expired | Park, at: datetime, **fields: Any
    ) -> Event:
        """An event of this worker about one subject (the fields every commit carries)."""
        name = who.name if isinstance(who, Subject) else who.subject
        return Event(
            kind=kind, factory=who.factory, subject=name, at=at, worker=self.worker, **fields
        )

    def _emit(self, event: str, **kw: object) -> None:
        self.reporter.emit(Progress(event=event, **kw))  # type: ignore[arg-type]

    # ------------------------------------------------------------ claim

    def _caps_for(self, fac: Factory, step: Step) -> list[Cap]:
        """Every cap this start must fit under, as semaphores."""
        fid = fac.factory_id
        caps = [Cap(scope=("global",), limit=self.max_parallel)]
        if fac.limits.max_parallel is not None:
            caps.append(Cap(scope=("factory", fid), limit=fac.limits.max_parallel))
        if step.max_parallel is not None:
            caps.append(Cap(scope=("step", fid, step.id), limit=step.max_parallel))
        wip = fac.limits.wip.get(step.to_state)
        if wip is not None:
            snap = self._snap
            there = frozenset(
                k
                for k, s in (snap.subjects.items() if snap else ())
                if k[0] == fid and s.state == step.to_state
            )
            caps.append(
                Cap(
                    scope=("wip", fid, step.to_state),
                    limit=wip,
                    state=step.to_state,
                    occupants=there,
                )
            )
        return caps

    def _describe_cap(self, cap: Cap, live: int) -> str:
        kind = {
            "global": "global max_parallel",
            "factory": "factory max_parallel",
            "step": "step max_parallel",
            "wip": f"WIP limit of {cap.state}",
        }[cap.scope[0]]
        return f"{kind} reached ({live}/{cap.limit})"

    def claim(self, start: Start, *, bare: bool = False) -> Lease | None:
        """Write the claim commit, point a slot of each cap at it, take the step's locks,
        then move the subject ref to it by CAS on the planned tip. None (with everything
        given back) when any of them is taken: the planner saw an older state, and the next
        cycle re-plans. `bare`: a batch member after the first, whose run the first one's
        slots and locks already cover."""
        subj, tip = self.store.read_subject(start.factory, start.subject)
        if tip != start.tip:
            return None
        fac, step = self._factory_step(start.factory, start.step)
        caps = [] if bare else self._caps_for(fac, step)
        full = self.caps.has_room(caps, subj)
        if full is not None:  # seen before writing anything: the plan's view was stale
            self._emit(
                "waiting",
                factory=start.factory,
                subject=start.subject,
                step=start.step,
                detail=full,
            )
            return None
        epoch = subj.epoch + 1
        now = self.clock.now()
        claimed = replace(
            subj,
            epoch=epoch,
            attempt=start.attempt,
            claim=Claim(
                holder=self.worker,
                step=start.step,
                attempt=start.attempt,
                epoch=epoch,
                claimed_at=now,
                expires_at=now + self.ttl,
            ),
            not_before=None,
            emitted=(),
            updated_at=now,
        )
        event = self._event(
            EventKind.CLAIMED,
            start,
            now,
            step=start.step,
            from_state=subj.state,
            attempt=start.attempt,
            epoch=epoch,
        )
        claim_oid = self.store.prepare(claimed, event, parent=tip)
        try:
            slots = self.caps.acquire_all(
                caps,
                claim=claim_oid,
                subject=claimed,
                describe=self._describe_cap,
            )
        except (CapFull, RefConflict) as exc:
            self._emit(
                "waiting",
                factory=start.factory,
                subject=start.subject,
                step=start.step,
                detail=exc.message,
            )
            return None
        try:
            held = self.locks.acquire_all(
                [
                    (spec.name, spec.ttl or self.config.settings.lock_ttl)
                    for spec in ([] if bare else step.locks)
                ],
                holder=self.worker,
                subject=f"{start.factory}/{start.subject}",
                epoch=epoch,
            )
        except (LockHeld, RefConflict) as exc:
            self.caps.leave_all(slots)
            self._emit(
                "waiting",
                factory=start.factory,
                subject=start.subject,
                step=start.step,
                detail=exc.message,
            )
            return None
        try:
            self.store.swap(refs.subject_ref(start.factory, start.subject), claim_oid, expected=tip)
        except RefConflict:
            self.locks.release_all(held)
            self.caps.leave_all(slots)
            return None
        self._emit(
            "claimed",
            factory=start.factory,
            subject=start.subject,
            step=start.step,
            attempt=start.attempt,
        )
        return Lease(claimed, claim_oid, held)

    def _give_back(self, lease: Lease) -> None:
        """Release the attempt's locks after its last write. Its cap entries need no commit:
        they are dead by derivation once the subject's claim has ended."""
        self.locks.release_all(lease.locks)

    def renew(self, lease: Lease) -> bool:
        """Extend the lease if a third of its TTL has passed; False once the claim is lost."""
        if lease.lost:
            return False
        claim = lease.subject.claim
        assert claim is not None
        now = self.clock.now()
        if claim.expires_at <= now:
            # Too late: once expired, its cap slots and locks may be someone else's. Renewing
            # now would resurrect the claim over a full cap (found by test_runtime_model).
            lease.lost = True
            self._emit(
                "lost",
                factory=lease.subject.factory,
                subject=lease.subject.name,
                step=claim.step,
                attempt=claim.attempt,
                detail="lease expired before it was renewed; stopping the step",
            )
            return False
        for held in lease.locks:
            if held.lock.expires_at - now <= held.lock.ttl * 2 / 3 and not self.locks.renew(held):
                lease.lost = True
                self._emit(
                    "lost",
                    factory=lease.subject.factory,
                    subject=lease.subject.name,
                    step=claim.step,
                    attempt=claim.attempt,
                    detail=f"lock {held.lock.name} was taken over; stopping the step",
                )
                return False
        if claim.expires_at - now > self.ttl * 2 / 3:
            return True
        renewed = replace(
            lease.subject, claim=replace(claim, expires_at=now + self.ttl), updated_at=now
        )
        event = self._event(
            EventKind.RENEWED,
            renewed,
            now,
            step=claim.step,
            from_state=renewed.state,
            attempt=claim.attempt,
            epoch=claim.epoch,
        )
        try:
            lease.tip = self.store.advance(
                refs.subject_ref(renewed.factory, renewed.name), renewed, event, expected=lease.tip
            )
        except RefConflict:
            lease.lost = True
            self._emit(
                "lost",
                factory=renewed.factory,
                subject=renewed.name,
                step=claim.step,
                attempt=claim.attempt,
                detail="claim taken over; stopping the step",
            )
            return False
        lease.subject = renewed
        return True

    # ------------------------------------------------------------ execute

    def execute(self, lease: Lease) -> StepOutcome:
        """Run the claimed step to its end and record the outcome (fenced by the claim)."""
        return self._run(lease, chain=False)[0]

    def execute_chain(self, lease: Lease) -> list[StepOutcome]:
        """Run the claimed step, and the subject's next steps as long as each success can
        claim the next one in the same commit (the greedy loop without a round trip)."""
        outcomes = []
        nxt: Lease | None = lease
        while nxt is not None:
            out, nxt = self._run(nxt, chain=self.chaining)
            outcomes.append(out)
        return outcomes

    def _run(self, lease: Lease, *, chain: bool) -> tuple[StepOutcome, Lease | None]:
        subj = lease.subject
        claim = subj.claim
        assert claim is not None
        _fac, step = self._factory_step(subj.factory, claim.step)
        log_path = self.store.log_path(subj.factory, subj.name, step.id, claim.attempt)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = proc.build_env(self._step_env(subj, step, claim))
        self._emit(
            "started", factory=subj.factory, subject=subj.name, step=step.id, attempt=claim.attempt
        )
        assert step.run is not None, "gates are never planned to start"
        said: list[bytes] = []
        result = proc.run(
            step.run,
            cwd=self.store.root,
            env=env,
            clock=self.clock,
            log_path=log_path,
            timeout=step.timeout.total_seconds() if step.timeout else None,
            cancel=self.cancel,
            on_poll=lambda: self.renew(lease),
            on_line=_collector(said) if step.emits is not None else None,
        )
        lines = [b.decode("utf-8", "replace").rstrip("\n") for b in said]
        return self._record(lease, result, chain=chain, said=lines)

    def claim_batch(self, start: Start) -> list[Lease]:
        """Claim every member of a batch start: the first with the step's caps and locks,
        the rest bare. Members another worker took meanwhile are left out."""
        first = self.claim(start.batch[0])
        if first is None:
            return []
        rest = [self.claim(m, bare=True) for m in start.batch[1:]]
        return [first, *(lease for lease in rest if lease is not None)]

    def execute_batch(self, leases: list[Lease]) -> list[StepOutcome]:
        """Run a batch step once for all its members (FREQ_SUBJECTS, FREQ_SUBJECTS_FILE) and
        record the outcome on each; a failure applies the failure policy to each member."""
        first = leases[0].subject
        claim = first.claim
        assert claim is not None
        _fac, step = self._factory_step(first.factory, claim.step)
        names = [lease.subject.name for lease in leases]
        listing = (
            self.store.state_dir
            / "batches"
            / (f"{first.factory}-{step.id}-{first.name}-{claim.epoch}.txt")
        )
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{n}\n" for n in names))
        log_path = self.store.log_path(first.factory, first.name, step.id, claim.attempt)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = proc.build_env(
            {
                **self._step_env(first, step, claim),
                "FREQ_SUBJECTS": "\n".join(names),
                "FREQ_SUBJECTS_FILE": str(listing),
            }
        )
        self._emit(
            "started",
            factory=first.factory,
            subject=first.name,
            step=step.id,
            attempt=claim.attempt,
            detail=f"batch of {len(names)}",
        )
        assert step.run is not None, "gates are never planned to start"

        def renew_all() -> bool:
            alive = [self.renew(lease) for lease in leases]
            return alive[0]  # the run goes on while its first member (the slot holder) does

        result = proc.run(
            step.run,
            cwd=self.store.root,
            env=env,
            clock=self.clock,
            log_path=log_path,
            timeout=step.timeout.total_seconds() if step.timeout else None,
            cancel=self.cancel,
            on_poll=renew_all,
        )
        return [self._record(lease, result, chain=False)[0] for lease in leases]

    def _step_env(self, subj: Subject, step: Step, claim: Claim) -> dict[str, str]:
        env = {
            "FREQ_FACTORY": subj.factory,
            "FREQ_SUBJECT": subj.name,
            "FREQ_STEP": step.id,
            "FREQ_ATTEMPT": str(claim.attempt),
            "FREQ_EPOCH": str(claim.epoch),
            "FREQ_STATE": subj.state,
            "FREQ_WORKDIR": str(self.store.root),
            "FREQ_REPO": str(self.store.root),
            "FREQ_WORKER": self.worker,
        }
        for k, v in subj.data.items():
            env["FREQ_DATA_" + "".join(c if c.isalnum() else "_" for c in k).upper()] = v
        return env

    def record(self, lease: Lease, result: proc.ProcResult) -> StepOutcome:
        """Record how an attempt ended, by CAS on the tip the attempt wrote last: refused
        (recorded=False) when anyone else moved the subject since, e.g. a takeover."""
        return self._record(lease, result, chain=False)[0]

    def _record(
        self, lease: Lease, result: proc.ProcResult, *, chain: bool, said: Sequence[str] = ()
    ) -> tuple[StepOutcome, Lease | None]:
        subj = lease.subject
        claim = subj.claim
        assert claim is not None
        _fac, step = self._factory_step(subj.factory, claim.step)
        now = self.clock.now()
        tail = result.tail
        mapped = step.outcomes.get(result.exit_code) if result.exit_code is not None else None
        if result.cancelled and self.cancel.is_set():
            # interrupted twice: give the attempt back, as if it had never been claimed
            new = replace(subj, attempt=claim.attempt - 1, claim=None, updated_at=now)
            event = self._event(
                EventKind.RELEASED,
                subj,
                now,
                step=step.id,
                from_state=subj.state,
                attempt=claim.attempt,
                epoch=claim.epoch,
                duration_ms=result.duration_ms,
                reason="interrupted; claim released",
            )
            to_state = None
            ok = False
            detail = "interrupted; claim released"
        elif result.ok or mapped is not None:
            to_state = mapped or step.to_state
            new = subj.entering(to_state, now, new_epoch=False)
            mark = mark_for(step, self.store)
            if mark is not None:
                new = replace(new, marks=MappingProxyType({**new.marks, step.id: mark}))
            if step.emits is not None:
                wanted, problems = parse_emitted(said, step.emits.factory_id, step.emits.state)
                new = replace(new, emitted=tuple(wanted))
                for problem in problems:
                    self._emit(
                        "emit",
                        factory=subj.factory,
                        subject=subj.name,
                        step=step.id,
                        detail=problem,
                    )
            event = self._event(
                EventKind.TRANSITIONED,
                subj,
                now,
                step=step.id,
                from_state=subj.state,
                to_state=to_state,
                attempt=claim.attempt,
                epoch=claim.epoch,
                duration_ms=result.duration_ms,
                exit_code=result.exit_code,
            )
            ok = True
            detail = f"{subj.state} -> {to_state}"
        else:
            new, event, detail = self._failure(subj, claim, step, result, now)
            to_state = None
            ok = False
        recorded = True
        nxt = None
        try:
            if ok and chain and not self.stopping:
                nxt = self._chain(lease, new, event, tail)
            if nxt is None:
                lease.tip = self.store.advance(
                    refs.subject_ref(subj.factory, subj.name),
                    new,
                    event,
                    expected=lease.tip,
                    output=tail,
                )
        except RefConflict:
            recorded = False
            detail = "result refused: the claim was taken over (stale epoch)"
        self._give_back(lease)
        if recorded and ok and new.emitted:
            self._create(new.emitted, subj)
        if recorded and new.last_error is not None and new.claim is None and not ok:
            self._after_failure(new, lease.tip, step)
        self._emit(
            "finished" if ok else "failed",
            factory=subj.factory,
            subject=subj.name,
            step=step.id,
            attempt=claim.attempt,
            detail=detail,
        )
        if nxt is not None and nxt.subject.claim is not None:
            self._emit(
                "claimed",
                factory=subj.factory,
                subject=subj.name,
                step=nxt.subject.claim.step,
                attempt=nxt.subject.claim.attempt,
            )
        out = StepOutcome(
            factory=subj.factory,
            subject=subj.name,
            step=step.id,
            attempt=claim.attempt,
            ok=ok and recorded,
            recorded=recorded,
            to_state=to_state,
            detail=detail,
            duration_ms=result.duration_ms,
        )
        return out, nxt

    def _chain(self, lease: Lease, new: Subject, event: Event, tail: bytes) -> Lease | None:
        """Record a success and claim the subject's next step in one commit, when the planner
        (over the last snapshot, with this subject as it is now) would start that step here.

        Saves the claim commit and a planning round trip on the path every subject takes.
        The caps are still entered (the slot this attempt holds is handed on), so the guard
        is the same as for any claim. None when the next step cannot start at once, or needs
        locks (those are taken by an ordinary claim); the caller then records plainly.
        """
        snap = self._snap
        if snap is None:
            return None
        counts = self._counts
        if counts is None or counts[0] is not snap:
            counts = self._counts = (snap, count(self.config, snap, event.at))
        start = next_start(
            self.config,
            snap,
            new,
            lease.tip,
            now=event.at,
            max_parallel=self.max_parallel,
            counts=counts[1],
            facts=self._facts,
        )
        if start is None:
            return None
        fac, step = self._factory_step(start.factory, start.step)
        if step.locks or step.batch is not None:
            return None  # taken by an ordinary claim (locks) or with the batch
        now = event.at
        claimed = replace(
            new,
            epoch=new.epoch + 1,
            attempt=start.attempt,
            claim=Claim(
                holder=self.worker,
                step=step.id,
                attempt=start.attempt,
                epoch=new.epoch + 1,
                claimed_at=now,
                expires_at=now + self.ttl,
            ),
        )
        both = replace(event, next_claim=f"{step.id} attempt {start.attempt} epoch {new.epoch + 1}")
        ref = refs.subject_ref(new.factory, new.name)
        if self.store.read_ref(ref) != lease.tip:
            raise RefConflict(ref)  # taken over meanwhile: the result will be refused
        oid = self.store.prepare(claimed, both, parent=lease.tip, output=tail)
        try:
            slots = self.caps.acquire_all(
                self._caps_for(fac, step),
                claim=oid,
                subject=claimed,
                describe=self._describe_cap,
                hand_on=lease.subject.claim,
            )
        except (CapFull, RefConflict):
            return None
        try:
            self.store.swap(refs.subject_ref(new.factory, new.name), oid, expected=lease.tip)
        except RefConflict:
            self.caps.leave_all(slots)
            raise
        lease.tip = oid
        return Lease(claimed, oid, [])

    def _failure(
        self, subj: Subject, claim: Claim, step: Step, result: proc.ProcResult, now: datetime
    ) -> tuple[Subject, Event, str]:
        """The subject after a failed attempt: classified, with its backoff or final."""
        ending = Ending(
            exit_code=result.exit_code,
            signal=result.signal,
            timed_out=result.timed_out,
            tail=result.tail.decode("utf-8", "replace"),
        )
        last = subj.last_error
        previous = (
            (last.fingerprint,) * last.repeats
            if last is not None and last.step == step.id and last.fingerprint
            else ()
        )
        c = classify(step, ending, previous, now=now)
        repeats = len(previous) + 1 if previous and previous[-1] == c.fingerprint else 1
        attempt = claim.attempt
        not_before = None
        final = c.kind in (FailureKind.TERMINAL, FailureKind.NEEDS_HUMAN)
        if c.kind is FailureKind.QUOTA:
            attempt -= 1  # a usage limit spends no attempt
            not_before = c.hold_until
        elif not final:
            delay = next_delay(step.retry, claim.attempt, self.rng)
            if delay is None:
                final = True
            else:
                not_before = now + delay
        reason = result.describe()
        if result.timed_out and step.timeout is not None:
            reason = f"timed out after {format_duration(step.timeout)}"
        why = c.reason
        if final and c.kind is FailureKind.RETRYABLE:
            why += f"; retries exhausted ({claim.attempt} of {step.retry.max_attempts})"
        err = LastError(
            step=step.id,
            attempt=claim.attempt,
            exit_code=result.exit_code,
            kind=c.kind.value,
            reason=reason,
            at=now,
            summary=_last_line(result.tail),
            fingerprint=c.fingerprint,
            repeats=repeats,
            final=final,
            rule=why,
            question=c.question,
            duration_ms=result.duration_ms,
        )
        new = replace(
            subj, attempt=attempt, claim=None, last_error=err, updated_at=now, not_before=not_before
        )
        event = self._event(
            EventKind.FAILED,
            subj,
            now,
            step=step.id,
            from_state=subj.state,
            attempt=claim.attempt,
            epoch=claim.epoch,
            duration_ms=result.duration_ms,
            exit_code=result.exit_code,
            failure=f"{c.kind.value} ({why})",
            reason=c.question,
        )
        return new, event, f"{reason}: {c.kind.value} ({why})"

    def _after_failure(self, subj: Subject, tip: str, step: Step) -> None:
        """Park a final failure in the DLQ; hold a quota'd agent or step for everyone."""
        err = subj.last_error
        assert err is not None
        if err.final:
            self.park(Park(factory=subj.factory, subject=subj.name, tip=tip))
        elif err.kind == FailureKind.QUOTA.value and subj.not_before is not None:
            self.locks.hold(
                quota_key(subj.factory, step),
                until=subj.not_before,
                holder=self.worker,
                reason=f"{err.reason}: {err.summary}",
            )

    def _create(self, wanted: Sequence[Emitted], by: Subject) -> int:
        created = ensure(
            self.store,
            wanted,
            clock=self.clock,
            worker=self.worker,
            reason=f"emitted by {by.factory}/{by.name}",
        )
        if created:
            self._emit("emitted", factory=by.factory, subject=by.name, detail=", ".join(created))
        return len(created)

    def apply_emitted(self, factory: str, subject: str) -> int:
        """Create what a recorded success emitted but its worker did not get to (repair)."""
        subj, _tip = self.store.read_subject(factory, subject)
        return self._create(subj.emitted, subj) if subj.emitted else 0

    def park(self, p: Park) -> str | None:
        """Append the final failure to the DLQ (once), then mark the subject parked there or
        move it to `on_terminal`. Safe to repeat after a crash between the two writes."""
        subj, tip = self.store.read_subject(p.factory, p.subject)
        err = subj.last_error
        if tip != p.tip or err is None or not err.final or err.dlq is not None:
            return None
        _fac, step = self._factory_step(p.factory, err.step)
        now = self.clock.now()
        entry = self.dlq.append(
            Entry(
                id="",
                seq=0,
                kind="entry",
                factory=p.factory,
                subject=p.subject,
                at=now,
                step=err.step,
                attempt=err.attempt,
                state=subj.state,
                exit_code=err.exit_code,
                duration_ms=err.duration_ms,
                failure_class=err.kind,
                reason=err.rule or err.reason,
                subject_commit=tip,
                question=err.question,
            ),
            self.store.read_output(tip) or b"",
        )
        moved = step.on_terminal
        new = replace(
            subj,
            last_error=replace(err, dlq=entry.id),
            updated_at=now,
            parked=None if moved else entry.id,
        )
        if moved:
            new = replace(new, state=moved, attempt=0, not_before=None, entered_at=now)
        event = self._event(
            EventKind.PARKED,
            p,
            now,
            step=err.step,
            from_state=subj.state,
            to_state=new.state,
            attempt=err.attempt,
            dlq=entry.id,
        )
        try:
            self.store.advance(refs.subject_ref(p.factory, p.subject), new, event, expected=tip)
        except RefConflict:
            return None
        self._emit(
            "parked",
            factory=p.factory,
            subject=p.subject,
            step=err.step,
            attempt=err.attempt,
            detail=f"dead-letter entry {entry.id}",
        )
        return entry.id

    # ------------------------------------------------------------ recovery

    def recover(self, exp: Expired) -> bool:
        """Record a lost worker's attempt as failed (`worker lost`, retryable); CAS on the tip."""
        try:
            subj, tip = self.store.read_subject(exp.factory, exp.subject)
        except FreqError:  # the subject vanished or is corrupt: nothing to recover
            return False
        if tip != exp.tip or subj.claim is None:
            return False
        _fac, step = self._factory_step(exp.factory, exp.step)
        now = self.clock.now()
        delay = next_delay(step.retry, exp.attempt, self.rng)
        err = LastError(
            step=exp.step,
            attempt=exp.attempt,
            exit_code=None,
            kind="retryable",
            reason="worker lost",
            at=now,
            summary=f"lease of {exp.holder} expired",
            rule="worker lost"
            if delay is not None
            else f"worker lost; retries exhausted ({exp.attempt} of {step.retry.max_attempts})",
            final=delay is None,
        )
        new = replace(
            subj,
            claim=None,
            last_error=err,
            updated_at=now,
            not_before=now + delay if delay is not None else None,
        )
        event = self._event(
            EventKind.FAILED,
            exp,
            now,
            step=exp.step,
            from_state=subj.state,
            attempt=exp.attempt,
            epoch=subj.claim.epoch,
            failure=f"retryable ({err.rule})",
            reason=f"lease of {exp.holder} expired at {refs.iso(subj.claim.expires_at)}",
        )
        try:
            self.store.advance(refs.subject_ref(exp.factory, exp.subject), new, event, expected=tip)
        except RefConflict:
            return False
        self._emit(
            "recovered",
            factory=exp.factory,
            subject=exp.subject,
            step=exp.step,
            attempt=exp.attempt,
            detail=f"worker lost: {exp.holder}",
        )
        return True

    # ------------------------------------------------------------ the loop

    def stop(self) -> None:
        """Stop claiming; running steps finish and are recorded (first Ctrl-C)."""
        self.stopping = True

    def kill(self) -> None:
        """Stop running steps too: their process groups are killed and claims released."""
        self.stopping = True
        self.cancel.set()

    def run(
        self,
        *,
        once: bool = False,
        until_idle: bool = False,
        factories: tuple[str, ...] | None = None,
        max_parallel: int | None = None,
        max_cycles: int = 10_000_000,
    ) -> RunSummary:
        """The greedy loop (SPEC §5): plan, claim, start; plan again at once when a step ends
        or any local writer changes refs/frequency, else after the shortest poll_interval."""
        cap = max_parallel if max_parallel is not None else self.config.settings.max_parallel
        self.max_parallel = cap
        self.chaining = not once  # --once runs one planning cycle's steps, no further
        chosen = [
            f for f in self.config.factories if factories is None or f.factory_id in factories
        ]
        poll = min((f.poll_interval for f in chosen), default=timedelta(seconds=30))
        counts = {"ok": 0, "failed": 0, "lost": 0, "recovered": 0, "refused": 0}
        outcomes: list[StepOutcome] = []
        inflight: dict[Future[list[StepOutcome]], tuple[str, str]] = {}
        cycles = 0
        with ThreadPoolExecutor(max_workers=max(cap, 1), thread_name_prefix="freq-step") as pool:
            try:
                while cycles < max_cycles:
                    cycles += 1
                    token = self.store.change_token()
                    p = Plan()
                    moved = 0
                    if not self.stopping:
                        p = self._plan(cap, factories)
                        for exp in p.expired:
                            ok = self.recover(exp)
                            counts["recovered"] += ok
                            moved += ok
                        for park in p.parks:
                            moved += self.park(park) is not None
                        for emit in p.emits:
                            moved += self.apply_emitted(emit.factory, emit.subject)
                        self._launch(p, pool, inflight, counts)
                    if once:
                        self._collect(inflight, outcomes, counts, timeout=None)
                        break
                    if not inflight and (self.stopping or (until_idle and p.idle)):
                        if not self.stopping and self._discover(factories, force=True):
                            continue  # idle only until discovery finds more
                        break
                    if moved:
                        continue  # a recovery or a parking may have made work: plan again now
                    self._wait(inflight, outcomes, counts, token, poll, p.next_wake)
            except KeyboardInterrupt:
                self.kill()
                self._collect(inflight, outcomes, counts, timeout=None)
        return RunSummary(
            succeeded=counts["ok"],
            failed=counts["failed"],
            lost_races=counts["lost"],
            recovered=counts["recovered"],
            refused=counts["refused"],
            cycles=cycles,
            interrupted=self.stopping,
            outcomes=tuple(outcomes),
        )

    def _discover(self, factories: tuple[str, ...] | None, *, force: bool = False) -> int:
        """Run `subjects.discover` of the factories this loop runs: at the first cycle, then
        at most once per factory's poll_interval (a discovery command may be slow), or now
        with `force`. How many subjects it added."""
        now = self.clock.monotonic()
        added = 0
        for fac in self.config.factories:
            if not fac.discover or (factories is not None and fac.factory_id not in factories):
                continue
            due = self._discovered.get(fac.factory_id)
            if due is not None and now < due and not force:
                continue
            self._discovered[fac.factory_id] = now + fac.poll_interval.total_seconds()
            found = discover(self.store, fac, clock=self.clock, worker=self.worker)
            for item in (*found.refused, *found.errors):
                self._emit("discovery", factory=fac.factory_id, detail=item)
            if found.added:
                added += len(found.added)
                self._emit(
                    "discovered",
                    factory=fac.factory_id,
                    detail=f"{len(found.added)} new subject(s)",
                )
        return added

    def _plan(self, cap: int, factories: tuple[str, ...] | None) -> Plan:
        self._discover(factories)
        self._snap = snap = self.store.snapshot()
        facts = gather(self.config, snap, store=self.store, clock=self.clock, factories=factories)
        self._facts = facts
        return plan(
            self.config,
            snap,
            now=self.clock.now(),
            max_parallel=cap,
            factories=factories,
            facts=facts,
            complete=False,
        )

    def _launch(
        self,
        p: Plan,
        pool: ThreadPoolExecutor,
        inflight: dict[Future[list[StepOutcome]], tuple[str, str]],
        counts: dict[str, int],
    ) -> None:
        """Claim and start the plan's starts. Workers planning from the same state would all
        try the same subjects first; each begins at its own offset instead, so that
        several processes spread over the subjects rather than racing for each one."""
        busy = set(inflight.values())
        starts = list(p.starts)
        if starts:
            k = self._offset % len(starts)
            starts = starts[k:] + starts[:k]
        lost = 0
        for start in starts:
            if (start.factory, start.subject) in busy or self.stopping:
                continue
            if start.batch:
                members = self.claim_batch(start)
                if members:
                    inflight[pool.submit(self.execute_batch, members)] = (
                        start.factory,
                        start.subject,
                    )
                    continue
                counts["lost"] += 1
                lost += 1
                if lost >= 2:
                    break
                continue
            lease = self.claim(start)
            if lease is None:
                counts["lost"] += 1
                lost += 1
                if lost >= 2:
                    break  # others work from the same plan: leave them the rest; re-plan
                continue
            lost = 0
            inflight[pool.submit(self.execute_chain, lease)] = (start.factory, start.subject)

    def _wait(
        self,
        inflight: dict[Future[list[StepOutcome]], tuple[str, str]],
        outcomes: list[StepOutcome],
        counts: dict[str, int],
        token: tuple[int, ...],
        poll: timedelta,
        next_wake: datetime | None,
    ) -> None:
        """Sleep until a step ends, refs/frequency changes, a backoff or lease ends, or the
        poll interval passes; whichever comes first (checked every WAKE_SLICE seconds)."""
        start = self.clock.now()
        deadline = start + poll
        if next_wake is not None:
            deadline = min(deadline, max(next_wake, start))
        while True:
            if inflight:
                if self._collect(inflight, outcomes, counts, timeout=WAKE_SLICE):
                    return
            else:
                self.clock.sleep(WAKE_SLICE)
            if self.stopping and not inflight:
                return
            if not self.stopping and (
                self.store.others_wrote(token) or self.clock.now() >= deadline
            ):
                return

    def _collect(
        self,
        inflight: dict[Future[list[StepOutcome]], tuple[str, str]],
        outcomes: list[StepOutcome],
        counts: dict[str, int],
        *,
        timeout: float | None,
    ) -> int:
        """Wait up to `timeout` (None: for all) and record finished steps; how many ended."""
        if not inflight:
            return 0
        done, _ = wait(
            list(inflight),
            timeout=timeout,
            return_when="ALL_COMPLETED" if timeout is None else FIRST_COMPLETED,
        )
        for fut in done:
            del inflight[fut]
            for out in fut.result():
                outcomes.append(out)
                if not out.recorded:
                    counts["refused"] += 1
                elif out.ok:
                    counts["ok"] += 1
                else:
                    counts["failed"] += 1
        return len(done)


def _collector(into: list[bytes]) -> Callable[[bytes], None]:
    """Keep the `freq:subject ...` lines of a step's output (at most 100,000)."""

    def take(line: bytes) -> None:
        if line.startswith(b"freq:subject ") and len(into) < 100_000:
            into.append(line)

    return take


def _last_line(tail: bytes) -> str:
    for line in reversed(tail.decode("utf-8", "replace").splitlines()):
        if line.strip():
            return line.strip()[:300]
    return ""
