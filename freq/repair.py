"""Repair: what any worker does for subjects whose last writer stopped half-way.

Must not import click or subprocess; writes only through store, by compare-and-swap on the
tip the planner saw, so two workers repairing the same subject apply it once. Recover an
expired lease (worker lost), park a final failure in the dead-letter queue (or move it to
`on_terminal`), hold a quota, and create the subjects a recorded success emitted. The rules
themselves are in freq/transitions.py; this module only applies them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from freq import proc, refs, transitions
from freq.clock import Clock, Random
from freq.errors import CorruptState, FreqError, RefConflict
from freq.locks import Locks
from freq.model import Config, FailureKind
from freq.planner import Expired, Park, quota_key
from freq.report import Progress, ProgressKind, Reporter
from freq.runtime import Claim, Emitted, Subject, attempt_marks
from freq.store import Store

if TYPE_CHECKING:
    from freq.dlq import Dlq, Entry


class Repair:
    """Recover, park, hold and create for one worker identity."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Clock,
        worker: str,
        reporter: Reporter,
        rng: Random,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.worker = worker
        self.reporter = reporter
        self.rng = rng
        self.locks = Locks(store, clock)
        # whether this process runs the attempt (factory, subject, epoch) now: the run loop
        # wires it to its Attempts; a lone Repair runs nothing
        self.in_flight: Callable[[str, str, int], bool] = lambda _f, _s, _e: False

    @functools.cached_property
    def dlq(self) -> Dlq:
        """The dead-letter queue, with its module on the first parking (a Dlq keeps no state
        of its own: two step threads parking at once may each make one)."""
        from freq.dlq import Dlq

        return Dlq(self.store, self.clock)

    def _emit(self, kind: ProgressKind, factory: str, subject: str, **kw: object) -> None:
        self.reporter.emit(Progress(event=kind, factory=factory, subject=subject, **kw))  # type: ignore[arg-type]

    def recover(self, exp: Expired) -> bool:
        """Record a lost worker's attempt as failed (`worker lost`, retryable); CAS on the tip.

        First, when that worker ran on this host, stop what is left of the attempt's processes
        and wait (bounded) until they are gone, so that the retry never overlaps them (they
        run in a session of their own and outlive a SIGKILLed worker). An attempt this very
        process is running is not lost: its heartbeat renews the claim, or finds it taken
        and stops the step."""
        try:
            subj, tip = self.store.read_subject(exp.factory, exp.subject)
        except FreqError:  # the subject vanished or is corrupt: nothing to recover
            return False
        step = self.config.step(exp.factory, exp.step)  # None: no longer configured
        claim = subj.claim
        if tip != exp.tip or claim is None:
            return False
        if claim.holder == self.worker and self.in_flight(exp.factory, exp.subject, claim.epoch):
            return False
        notes = [self._stop_orphan(subj, claim)]
        if step is None:
            notes.append("the step is no longer configured, not retried")
        change = transitions.worker_lost(
            subj, step, at=self.clock.now(), worker=self.worker, rng=self.rng
        )
        try:
            self.store.advance(
                refs.subject_ref(exp.factory, exp.subject),
                change.subject,
                change.event,
                expected=tip,
            )
        except RefConflict:
            return False
        self._emit(
            ProgressKind.RECOVERED,
            exp.factory,
            exp.subject,
            step=exp.step,
            attempt=exp.attempt,
            detail=f"worker lost: {exp.holder} ({'; '.join(notes)})",
        )
        return True

    def _stop_orphan(self, subj: Subject, claim: Claim) -> str:
        """Stop the lost attempt's processes if they ran on this host; what came of it."""
        host = proc.host_of(claim.holder)
        if host != proc.this_host():
            return "on another host: its processes cannot be stopped from here"
        marks = attempt_marks(
            worker=claim.holder, factory=subj.factory, subject=subj.name, epoch=claim.epoch
        )
        stopped = proc.stop_attempt(marks)
        if not stopped.supported:
            return "its processes cannot be looked for on this platform"
        if not stopped.found:
            return "none of its processes was left"
        n = stopped.found
        said = f"stopped its {n} process{'es' if n != 1 else ''}"
        return said + (f", {stopped.left} still exiting" if stopped.left else "")

    def park(self, p: Park) -> str | None:
        """Append the final failure to the DLQ (once), then mark the subject parked there or
        move it to `on_terminal`. Safe to repeat after a crash between the two writes."""
        try:
            subj, tip = self.store.read_subject(p.factory, p.subject)
        except FreqError:
            return None
        err = subj.last_error
        if tip != p.tip or err is None or not err.final or err.dlq is not None:
            return None
        step = self.config.step(p.factory, err.step)
        now = self.clock.now()
        try:
            entry = self._append(p, subj, tip, now)
        except CorruptState as exc:  # an unreadable queue: the failure stays recorded, unparked
            self._emit(ProgressKind.PROBLEM, p.factory, p.subject, detail=exc.message)
            return None
        change = transitions.parked(
            subj,
            entry=entry.id,
            on_terminal=step.on_terminal if step is not None else None,
            at=now,
            worker=self.worker,
        )
        try:
            self.store.advance(
                refs.subject_ref(p.factory, p.subject), change.subject, change.event, expected=tip
            )
        except RefConflict:
            return None
        self._emit(
            ProgressKind.PARKED,
            p.factory,
            p.subject,
            step=err.step,
            attempt=err.attempt,
            detail=f"dead-letter entry {entry.id}",
        )
        return entry.id

    def _append(self, p: Park, subj: Subject, tip: str, now: datetime) -> Entry:
        err = subj.last_error
        assert err is not None
        from freq.dlq import Entry

        return self.dlq.append(
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
                failure_class=err.kind.value,
                reason=err.rule or err.reason,
                subject_commit=tip,
                question=err.question,
                conflict=err.conflict,
                salvage=tuple(
                    sorted(self.store.list_refs(f"{refs.SALVAGE}{p.factory}/{p.subject}/"))
                ),
            ),
            self.store.read_output(tip) or b"",
        )

    def after_failure(self, subj: Subject, tip: str) -> None:
        """Park a final failure in the DLQ; hold a quota'd agent or step for everyone."""
        err = subj.last_error
        if err is None:
            return
        if err.final:
            self.park(Park(factory=subj.factory, subject=subj.name, tip=tip))
            return
        step = self.config.step(subj.factory, err.step)
        if err.kind is FailureKind.QUOTA and subj.not_before is not None and step is not None:
            self.locks.hold(
                quota_key(subj.factory, step),
                until=subj.not_before,
                holder=self.worker,
                reason=f"{err.reason}: {err.summary}",
            )

    def create(self, wanted: Sequence[Emitted], by: Subject) -> int:
        """Create the subjects `by` emitted that do not exist yet; how many were created."""
        from freq.discovery import ensure

        created = ensure(
            self.store,
            wanted,
            clock=self.clock,
            worker=self.worker,
            reason=f"emitted by {by.factory}/{by.name}",
        )
        if created:
            self._emit(ProgressKind.EMITTED, by.factory, by.name, detail=", ".join(created))
        return len(created)

    def apply_emitted(self, factory: str, subject: str) -> int:
        """Create what a recorded success emitted but its worker did not get to."""
        try:
            subj, _tip = self.store.read_subject(factory, subject)
        except FreqError:
            return 0
        return self.create(subj.emitted, subj) if subj.emitted else 0
