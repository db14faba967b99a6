"""The step-runner Protocol and the records it takes and returns.

Imports only the standard library and freq.model. A runner runs one attempt to its end:
it must stop promptly once `Attempt.go_on()` says False (the claim was lost, or a second
Ctrl-C), respect the timeout, write the attempt's whole output to `log_path`, and return
how it ended with the tail of its output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from freq.model import Step


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRequest:
    """What to run, and where: one attempt of one step."""

    step: Step
    cwd: Path
    env: Mapping[str, str]
    timeout: float | None  # seconds; None: no limit
    log_path: Path
    on_line: Callable[[bytes], None] | None = None  # each output line, as it comes


class Attempt(Protocol):
    """The running attempt as a runner sees it."""

    def go_on(self) -> bool:
        """False once the attempt must stop: its claim was lost, or it was cancelled."""
        ...

    def cancelled(self) -> bool:
        """True when the person running Frequency asked to stop running steps."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """How an attempt ended and what it printed last."""

    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    duration_ms: int = 0
    tail: bytes = b""
    how: str = ""  # one line: `exit 3`, `timed out`, `killed by signal SIGKILL`

    @property
    def ok(self) -> bool:
        """It succeeded by itself."""
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


class StepRunner(Protocol):
    """Carries out one attempt of a step."""

    def run(self, request: StepRequest, attempt: Attempt) -> StepResult:
        """Run the attempt to its end (or until `attempt.go_on()` is False)."""
        ...
