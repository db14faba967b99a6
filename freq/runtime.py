"""Frozen records of runtime state: subjects, claims, events, locks, control, snapshots.

Imports only the standard library and freq.model (the configuration vocabulary it refers
to). Everything here is an immutable value read from, or about to be written to, git;
changes are made with dataclasses.replace (freq/transitions.py holds the rules).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from operator import attrgetter
from types import MappingProxyType
from typing import Protocol

from freq.model import Autonomy, FailureKind

_BY_NAME = attrgetter("name")


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A worker's lease on a subject for one attempt of one step."""

    holder: str
    step: str
    attempt: int
    epoch: int
    claimed_at: datetime
    expires_at: datetime
    touches: tuple[str, ...] = ()  # the step's `touches:` as rendered for this subject (lanes)
    # a chained claim's global and factory cap slots still point at the commit of the
    # claim with this epoch, where its chain began (None: at this claim's own commit)
    slots_at: int | None = None


def attempt_marks(*, worker: str, factory: str, subject: str, epoch: int) -> dict[str, str]:
    """The variables naming one attempt in its step's environment, which every process the
    step starts inherits: how a lost worker's leftover processes are found on its host
    (freq.proc.stop_attempt). Unique per attempt: the worker identity holds its host, pid
    and start time, and a subject's epoch rises with every claim."""
    return {
        "FREQ_WORKER": worker,
        "FREQ_FACTORY": factory,
        "FREQ_SUBJECT": subject,
        "FREQ_EPOCH": str(epoch),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class LastError:
    """What the last failed attempt left behind."""

    step: str
    attempt: int
    exit_code: int | None
    kind: FailureKind
    reason: str
    at: datetime
    summary: str = ""
    fingerprint: str = ""
    repeats: int = 1  # consecutive failures of this step with this fingerprint
    final: bool = False  # ends the retries: terminal, needs_human, or the budget is spent
    dlq: str | None = None  # the dead-letter entry it was parked as (`factory#N`)
    rule: str = ""  # what decided the class: `pattern: rate limit`, `classify rule 2: ...`
    question: str | None = None  # needs_human: what the agent asked
    duration_ms: int | None = None
    session: str | None = None  # the agent session the attempt ran in (resume continues it)
    # a CLI that reports its session's running token totals (Codex): those totals as the
    # attempt left them, so that a resumed attempt records only its own share
    session_totals: tuple[int, int, int] | None = None
    # a landing that conflicted: the paths both sides changed (`on_conflict: agent` hands
    # them to the step's agent in its next attempt)
    conflict: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Landing:
    """A success waiting in its target branch's merge queue: the step's work on `branch`
    (at `commit`, made from the target at `base`) lands on `target`, and only then does
    the subject enter `to_state`."""

    step: str
    attempt: int
    to_state: str
    target: str
    branch: str
    commit: str
    base: str
    queued_at: datetime
    priority: int = 0
    exit_code: int | None = None
    duration_ms: int | None = None
    # the path lane its attempt held (`touches:`): still held until the branch lands, since
    # the work it names is not on the target yet
    touches: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Emitted:
    """A subject a step asked for (`freq:subject NAME [KEY=VALUE ...]` on its stdout)."""

    factory: str
    state: str
    name: str
    data: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """A unit of work and where it stands: the content of subject.json."""

    factory: str
    name: str
    state: str
    data: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    epoch: int = 0
    attempt: int = 0
    claim: Claim | None = None
    not_before: datetime | None = None
    last_error: LastError | None = None
    parked: str | None = None  # DLQ entry id while the subject waits there for a requeue
    # subjects the last successful step emitted: created right after that commit, and again
    # by any planner that finds one missing (a worker killed in between)
    emitted: tuple[Emitted, ...] = ()
    # step -> the branch commit seen when that step last succeeded (`changed` predicates)
    marks: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # a root cause from `dlq diagnose`, handed to the next attempt as {diagnosis} (`dlq fix`)
    diagnosis: str | None = None
    landing: Landing | None = None  # a success waiting in its target's merge queue
    created_at: datetime
    updated_at: datetime
    entered_at: datetime

    def entering(self, state: str, at: datetime, *, new_epoch: bool) -> Subject:
        """The subject as it enters `state` afresh: no claim, no attempts spent, no backoff,
        error or dead-letter parking. `new_epoch` for moves made outside a claim (by hand,
        approval, requeue), which fence off any attempt still running."""
        return replace(
            self,
            state=state,
            attempt=0,
            claim=None,
            not_before=None,
            last_error=None,
            parked=None,
            emitted=(),
            diagnosis=None,
            landing=None,
            epoch=self.epoch + new_epoch,
            updated_at=at,
            entered_at=at,
        )


class EventKind(Enum):
    """What a commit on a subject ref records."""

    CREATED = "created"
    CLAIMED = "claimed"
    RENEWED = "renewed"
    TRANSITIONED = "transitioned"
    FAILED = "failed"
    RELEASED = "released"
    MOVED = "moved"
    PARKED = "parked"
    REQUEUED = "requeued"
    REPAIRED = "repaired"  # back at its last intact state after its history broke
    QUEUED = "queued"  # a worktree step's success waits in its target's merge queue


class CostSource(Enum):
    """Where an attempt's cost in USD came from."""

    REPORTED = "reported"  # the CLI said it (Claude)
    ESTIMATED = "estimated"  # tokens times the price table of frequency.yaml


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentUsage:
    """What an agent attempt spent and ran as: the Freq-Agent… trailers of its commit."""

    agent: str
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_cached: int | None = None
    cost_usd: float | None = None
    cost_source: CostSource | None = None
    session: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One commit's worth of meaning: rendered into the message and trailers."""

    kind: EventKind
    factory: str
    subject: str
    at: datetime
    worker: str
    step: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    attempt: int | None = None
    epoch: int | None = None
    duration_ms: int | None = None
    exit_code: int | None = None
    failure: str | None = None
    dlq: str | None = None
    next_claim: str | None = None  # a success that also claims the next step
    reason: str | None = None
    # a repair (cleanup --repair): the objects found missing, the commits dropped from the
    # history, where the kept state was read, and a paragraph listing what was dropped
    missing: str | None = None
    lost: str | None = None
    restored_from: str | None = None
    details: str | None = None
    usage: AgentUsage | None = None  # an agent attempt's end: what it spent
    # the merge queue: the target branch, the step's branch and the commit it names (at a
    # queueing), the commit that landed, and the paths a conflicting landing collided on
    target: str | None = None
    branch: str | None = None
    commit: str | None = None
    landed: str | None = None
    conflict: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Lock:
    """A named resource lock as its ref's tip says (SPEC §3)."""

    name: str
    holder: str
    subject: str
    epoch: int
    acquired_at: datetime
    ttl: timedelta
    expires_at: datetime
    released: bool = False

    def held_at(self, now: datetime) -> bool:
        """Held by its holder at `now`: not released and not past its expiry."""
        return not self.released and self.expires_at > now


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """A person's go-ahead for one step of one subject, for its current visit to a state."""

    subject: str
    step: str
    entered_at: datetime
    by: str
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Control:
    """A factory's control state: paused, autonomy, approvals (refs/frequency/control/F)."""

    factory: str
    paused: bool = False
    autonomy: Autonomy | None = None
    approvals: tuple[Approval, ...] = ()
    by: str = ""
    why: str = ""
    at: datetime | None = None

    def approved(self, subject: Subject, step: str) -> bool:
        """Whether `step` is approved for `subject` in its current visit to its state."""
        return any(
            a.subject == subject.name and a.step == step and a.entered_at == subject.entered_at
            for a in self.approvals
        )


@functools.lru_cache(maxsize=256)
def _default_control(factory: str) -> Control:
    """The control state of a factory nobody ever paused or approved in (a shared value)."""
    return Control(factory=factory)


class Archived(Protocol):
    """The archive of every factory as one snapshot saw it (refs/frequency/archive/*):
    subjects folded in after they finished, read on demand (freq.store.archive)."""

    def get(self, factory: str, name: str) -> tuple[Subject, str] | None:
        """The archived subject and its last commit; None when it is not archived."""
        ...

    def counts(self) -> Mapping[tuple[str, str], int]:
        """Archived subjects per (factory, state)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything Frequency knows at one instant, read from refs/frequency/*.

    `subjects` maps (factory, subject) to the Subject; `tips` maps the same key to the
    commit id it was read from (the expected value of the next compare-and-swap).
    """

    subjects: Mapping[tuple[str, str], Subject]
    tips: Mapping[tuple[str, str], str]
    problems: tuple[str, ...] = ()
    locks: Mapping[str, Lock] = field(default_factory=lambda: MappingProxyType({}))
    controls: Mapping[str, Control] = field(default_factory=lambda: MappingProxyType({}))
    # lock name / factory → why its ref could not be read: a step needing that lock, or a
    # factory with that control ref, waits (saying so) rather than guessing its content
    broken_locks: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    broken_controls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # subjects per (factory, state), filled by the store so that `capacity` predicates
    # cost one lookup instead of a scan of every subject; None: count on demand
    state_counts: Mapping[tuple[str, str], int] | None = None
    # finished subjects folded into the archive: they exist, in their final state, for
    # predicates, `show`, `status` and a re-`add`, but no step ever runs on them
    archive: Archived | None = None

    def find(self, factory: str, name: str) -> Subject | None:
        """The subject, live or archived (a live one wins: re-added, or not yet deleted by
        the archive pass that folded it)."""
        live = self.subjects.get((factory, name))
        if live is not None or self.archive is None:
            return live
        found = self.archive.get(factory, name)
        return found[0] if found is not None else None

    def count(self, factory: str, states: tuple[str, ...]) -> int:
        """How many subjects of `factory` sit in any of `states`."""
        archived = self.archive.counts() if self.archive is not None else {}
        gone = sum(archived.get((factory, s), 0) for s in states)
        if self.state_counts is not None:
            return gone + sum(self.state_counts.get((factory, s), 0) for s in states)
        wanted = set(states)
        live = sum(1 for (f, _), s in self.subjects.items() if f == factory and s.state in wanted)
        return gone + live

    def control(self, factory: str) -> Control:
        """The factory's control state (defaults when none was ever recorded)."""
        found = self.controls.get(factory)
        return found if found is not None else _default_control(factory)

    def in_factory(self, factory: str) -> tuple[Subject, ...]:
        """The subjects of one factory, by name."""
        return tuple(sorted(self.of_factory(factory), key=_BY_NAME))

    def of_factory(self, factory: str) -> Iterator[Subject]:
        """The subjects of one factory, in no order (for a caller that sorts them itself)."""
        return (s for (f, _), s in self.subjects.items() if f == factory)
