"""Progress events of the run loop, sent to a Reporter; no-op by default.

Imports only the standard library. The CLI renders them as text or JSON lines; tests
capture them as data (resolvelib's BaseReporter habit).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One thing that happened while running: `claimed`, `started`, `finished`, ..."""

    event: str
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
