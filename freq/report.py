"""Progress events of the run loop, sent to a Reporter; no-op by default.

Imports only the standard library. The CLI renders them as text or JSON lines; tests
capture them as data (resolvelib's BaseReporter habit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ProgressKind(StrEnum):
    """What a progress event says happened (a closed vocabulary; equal to its text)."""

    CLAIMED = "claimed"  # an attempt was claimed
    WAITING = "waiting"  # a planned start could not claim: a cap or lock was taken meanwhile
    STARTED = "started"  # its step began
    FINISHED = "finished"  # it succeeded and was recorded
    FAILED = "failed"  # it failed (or its result was refused) and was recorded
    LOST = "lost"  # its claim was lost while it ran: the step is stopped
    RECOVERED = "recovered"  # an expired lease of another worker was recorded as worker lost
    PARKED = "parked"  # a final failure was filed in the dead-letter queue
    EMITTED = "emitted"  # subjects a step emitted were created
    EMIT = "emit"  # an emitted line could not become a subject (a warning)
    DISCOVERED = "discovered"  # discovery created subjects
    ARCHIVED = "archived"  # finished subjects were folded into their factory's archive
    DISCOVERY = "discovery"  # discovery could not use a match, or its command failed
    LANDED = "landed"  # a merge-queue entry landed on its target branch
    REJECTED = "rejected"  # a merge-queue entry was turned away (a conflict, a failed check)
    DRAINING = "draining"  # an interrupt: no more claims; running steps finish
    # a warning: a ref that cannot be read was skipped (once per run), a write waits for a
    # git lock a live process holds or for disk space, stale lock files were removed
    PROBLEM = "problem"


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One thing that happened while running: `claimed`, `started`, `finished`, ..."""

    event: ProgressKind
    factory: str = ""
    subject: str = ""
    step: str = ""
    attempt: int = 0
    detail: str = ""
    fields: dict[str, object] = field(default_factory=dict)


class Reporter:
    """Receives progress; subclass and override `emit`."""

    def emit(self, progress: Progress) -> None:
        """Called for every progress event; the default does nothing."""


class Collecting(Reporter):
    """Keeps every event, for tests."""

    def __init__(self) -> None:
        self.events: list[Progress] = []

    def emit(self, progress: Progress) -> None:
        self.events.append(progress)
