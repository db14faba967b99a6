"""The merge queue and the worktree pool as a person sees them (`queue`, `status`, `why`).

Must not import click, dulwich, subprocess or pexpect, and never prints: each function takes
an App and plain values and returns a result dataclass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from freq import refs
from freq.errors import FreqError
from freq.landing import QUEUE_FILE, checkout_of, queue_ref
from freq.ops.app import App
from freq.planner import queues
from freq.runtime import Snapshot

if TYPE_CHECKING:
    from freq.worktrees import Pool


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEntry:
    """One branch waiting to land."""

    position: int
    factory: str
    subject: str
    step: str
    attempt: int
    branch: str
    commit: str
    queued_at: str
    priority: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueEvent:
    """One line of a target's queue history (refs/frequency/queue/<target>)."""

    commit: str
    at: str
    event: str  # landed | rejected
    summary: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatus:
    """One target branch's merge queue."""

    target: str
    entries: tuple[QueueEntry, ...]
    waiting: str | None = None  # why its landings wait now (the user's checkout is not clean)
    history: tuple[QueueEvent, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotStatus:
    """One worktree of the pool."""

    slot: str
    path: str
    holder: str | None  # `factory/subject step attempt N`, or None: ready for reuse
    branch: str | None
    bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolStatus:
    """The worktree pool of this machine."""

    dir: str
    max: int
    slots: tuple[SlotStatus, ...]
    bytes: int

    @property
    def in_use(self) -> int:
        return sum(1 for s in self.slots if s.holder is not None)


def _pool(app: App) -> Pool:
    from freq.worktrees import Pool  # only commands that show the pool load it

    store = app.store
    return Pool(store.root, Path(store.common_dir), app.config.settings.worktrees, clock=app.clock)


def pool_status(app: App) -> PoolStatus | None:
    """The pool's worktrees and their disk use; None when no worktree was ever made here."""
    pool = _pool(app)
    if not pool.dir.exists():
        return None
    rows = []
    for s in pool.slots(sizes=True):
        h = s.holder
        who = f"{h.factory}/{h.subject} {h.step} attempt {h.attempt}" if h is not None else None
        rows.append(
            SlotStatus(slot=s.slot, path=str(s.path), holder=who, branch=s.branch, bytes=s.bytes)
        )
    return PoolStatus(
        dir=str(pool.dir),
        max=app.config.settings.worktrees.max,
        slots=tuple(rows),
        bytes=sum(r.bytes for r in rows),
    )


def queue_status(
    app: App, snap: Snapshot, *, target: str | None = None, history: int = 0
) -> tuple[QueueStatus, ...]:
    """Every target's queue (or one's), in the order it is served, with why it waits and,
    with `history`, its last events."""
    found = queues(snap)
    if target is not None:
        found = {target: found.get(target, [])}
    pool_dir = _pool(app).dir
    out = []
    for name, subjects in found.items():
        entries = []
        for i, s in enumerate(subjects, 1):
            x = s.landing
            assert x is not None
            entries.append(
                QueueEntry(
                    position=i,
                    factory=s.factory,
                    subject=s.name,
                    step=x.step,
                    attempt=x.attempt,
                    branch=x.branch,
                    commit=x.commit,
                    queued_at=refs.iso(x.queued_at),
                    priority=x.priority,
                )
            )
        waiting = None
        if entries:
            try:
                where = checkout_of(app.root, pool_dir, name)
            except (FreqError, OSError):
                where = None
            waiting = where if isinstance(where, str) else None
        out.append(
            QueueStatus(
                target=name,
                entries=tuple(entries),
                waiting=waiting,
                history=_history(app, name, history) if history else (),
            )
        )
    return tuple(out)


def _history(app: App, target: str, n: int) -> tuple[QueueEvent, ...]:
    store = app.store
    oid = store.read_ref(queue_ref(target))
    out: list[QueueEvent] = []
    while oid is not None and len(out) < n:
        commit = store.commit_at(oid, queue_ref(target))
        try:
            doc = json.loads(store.doc_at(oid, QUEUE_FILE, queue_ref(target)))
        except (ValueError, FreqError):
            doc = {}
        message = commit.message.decode("utf-8", "replace")
        out.append(
            QueueEvent(
                commit=oid,
                at=str(doc.get("at", "")),
                event=str(doc.get("event", "")),
                summary=message.splitlines()[0] if message else "",
            )
        )
        parents = commit.parents
        oid = parents[0].decode() if parents else None
    return tuple(out)
