"""Dead-letter queue actions: list, show and requeue entries.

Must not import click, dulwich, subprocess or pexpect, and never prints: each function takes an
App and plain values and returns a result dataclass (or raises a FreqError).
"""

from __future__ import annotations

from dataclasses import dataclass

from freq import refs
from freq.dlq import Dlq, Entry
from freq.errors import AlreadyRequeued, FreqError, Hint
from freq.ops.app import App, _known, _who


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


@dataclass(frozen=True, slots=True, kw_only=True)
class DlqListResult:
    """`dlq list`: entries newest first, and the queue commits that could not be read."""

    rows: tuple[DlqRow, ...]
    problems: tuple[str, ...] = ()


def dlq_list(
    app: App, factory_id: str | None = None, *, include_requeued: bool = False
) -> DlqListResult:
    """Dead-letter entries, newest first: those still waiting (all with include_requeued).
    An unreadable entry is skipped and described in `problems`; the rest are listed."""
    queue = Dlq(app.store, app.clock)
    if factory_id is not None:
        _known(app, factory_id)
    factories = [factory_id] if factory_id else queue.factories()
    rows: list[DlqRow] = []
    problems: list[str] = []
    for f in factories:
        entries = list(queue.entries(f, problems=problems))
        requeued = {e.requeues: e.id for e in entries if e.kind == "requeue" and e.requeues}
        for e in entries:
            if e.kind == "entry" and (include_requeued or e.id not in requeued):
                rows.append(_row(e, requeued))
    return DlqListResult(
        rows=tuple(sorted(rows, key=lambda r: r.at, reverse=True)), problems=tuple(problems)
    )


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
    by: str = ""  # a requeue record: who requeued


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
        by=e.by,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RequeueResult:
    """A requeue: the entry it wrote and where the subject went back to."""

    entry: str
    requeue_entry: str
    factory: str
    subject: str
    state: str


def dlq_requeue(
    app: App, entry_id: str, *, reason: str = "", by: str | None = None
) -> RequeueResult:
    """Append a requeue entry and put the subject back in the state it failed in, with a
    fresh attempt budget. A second requeue of the same entry is refused."""
    queue = Dlq(app.store, app.clock)
    e = queue.find(entry_id)
    if e.kind == "repair":
        raise FreqError(f"{e.id} records a repair of the queue, not a failure; nothing to requeue")
    if e.kind != "entry":
        raise FreqError(f"{e.id} is a requeue record, not a failure; requeue {e.requeues} instead")
    subj, tip = app.store.read_subject(e.factory, e.subject)
    err = subj.last_error
    waiting = err is not None and err.dlq == e.id
    done = queue.requeue_of(e)
    if done is not None and not waiting:
        raise AlreadyRequeued(
            f"{e.id} was already requeued as {done.id} at {refs.iso(done.at)}; nothing was changed",
            hint=Hint(text="see", command=("show", e.factory, e.subject)),
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
                by=_who(app, by),
                reason=reason,
            ),
            b"",
        )
    # done exists here; a requeue record whose subject was never moved (a crash between
    # the two writes) is completed rather than refused
    from freq.transitions import requeued

    change = requeued(
        subj,
        state=e.state,
        record=done.id,
        at=app.clock.now(),
        by=_who(app, by),
        reason=reason or f"requeued {e.id}",
    )
    app.store.advance(
        refs.subject_ref(e.factory, e.subject), change.subject, change.event, expected=tip
    )
    return RequeueResult(
        entry=e.id, requeue_entry=done.id, factory=e.factory, subject=e.subject, state=e.state
    )
