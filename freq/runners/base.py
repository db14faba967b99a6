"""The step-runner Protocol and the records it takes and returns.

Imports only the standard library and freq's pure records (model, classify, runtime). A
runner runs one attempt to its end: it must stop promptly once `Attempt.go_on()` says
False (the claim was lost, or a second Ctrl-C), respect the timeout, write the attempt's
whole output to `log_path`, and return how it ended with the tail of its output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from freq.classify import Hint
from freq.model import AgentDef, Step
from freq.runtime import AgentUsage


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRequest:
    """What to run, and where: one attempt of one step."""

    step: Step
    cwd: Path
    env: Mapping[str, str]
    timeout: float | None  # seconds; None: no limit
    log_path: Path
    on_line: Callable[[bytes], None] | None = None  # each output line, as it comes
    # agent steps: the resolved agent, the rendered prompt, a session to continue, what is
    # left of a budget, a directory of the attempt's own, and the session's token totals
    # as the attempt before left them (a CLI that reports running totals)
    agent: AgentDef | None = None
    prompt: str = ""
    resume: str | None = None
    budget_usd: float | None = None
    scratch: Path | None = None
    previous_totals: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        # the environment holds keys and tokens: never shown
        return f"StepRequest(step={self.step.id!r}, cwd={str(self.cwd)!r}, agent={self.agent!r})"


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
    # the runner judged it failed whatever the exit code said (an agent's own output, a
    # failed verify, a `freq:ask` question), and how to classify it when it knows
    failed: bool = False
    hint: Hint | None = None
    usage: AgentUsage | None = None  # an agent attempt: what it spent, and its session
    session_totals: tuple[int, int, int] | None = None
    # lines the step said besides its raw stdout (an agent's final message), read for
    # `freq:subject` and `freq:ask` like stdout lines
    said: tuple[bytes, ...] = ()

    @property
    def ok(self) -> bool:
        """It succeeded by itself."""
        return self.exit_code == 0 and not self.timed_out and not self.cancelled and not self.failed


class StepRunner(Protocol):
    """Carries out one attempt of a step."""

    def run(self, request: StepRequest, attempt: Attempt) -> StepResult:
        """Run the attempt to its end (or until `attempt.go_on()` is False)."""
        ...
