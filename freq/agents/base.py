"""The agent-adapter Protocol and the records it takes and returns (STYLE.md habit 10).

Pure: imports the standard library and freq's model and classify only (no processes: the
agent runner, freq.runners.agent, starts the CLI through freq.proc). An adapter knows one
CLI: how to invoke it headless (`invocation`) and how to judge what it printed (`reader`:
fed each stdout line as it comes, then asked for the result with stderr and the exit code).
It judges from the last structured event, then stderr, then the exit code, never the exit
code alone (the exit codes lie in documented ways).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from freq.model import AgentDef, FailureKind


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Tokens and money one attempt spent, as far as the CLI said."""

    tokens_in: int | None = None  # every input token, cached ones included
    tokens_out: int | None = None
    tokens_cached: int | None = None  # of tokens_in, read from a cache
    cost_usd: float | None = None  # reported by the CLI; estimated later from prices
    # the CLI reports a running total of its session (Codex): a resumed attempt's own
    # share is this minus what the attempt before it recorded
    cumulative: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentResult:
    """How one agent run ended, judged from its own output."""

    ok: bool
    kind: FailureKind | None = None  # failed: the class it is; None: infer from the output
    reason: str = ""  # failed: one line, e.g. `usage limit (five_hour)`; ok: ""
    text: str = ""  # the agent's final text (its last message)
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    session: str | None = None  # resume with this
    reset_at: datetime | None = None  # quota: when the usage limit resets, if said
    denied: tuple[str, ...] = ()  # tools the CLI refused
    question: str | None = None  # needs_human: what was asked


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """How to start the CLI for one attempt."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    stdin: bytes | None = None  # None: stdin is closed (/dev/null)
    # files to write before starting (the prompt, when it goes in a file): path -> content
    files: Mapping[Path, bytes] = field(default_factory=lambda: MappingProxyType({}))

    def __repr__(self) -> str:
        # env values may be keys and tokens: only their names are shown (STYLE.md habit 10)
        return f"Invocation(argv={self.argv!r}, env names={sorted(self.env)!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRequest:
    """One attempt's call of an agent: who, with what prompt, where."""

    agent: AgentDef  # the resolved agent: built-in or named, with the step's overrides
    prompt: str
    cwd: Path
    scratch: Path  # a directory of this attempt's own (a prompt file goes here)
    resume: str | None = None  # continue this session (agent.resume and a recorded session)
    budget_usd: float | None = None  # what is left of a budget, for CLIs that take a cap


class Reader(Protocol):
    """Judges one run from its output: fed stdout lines as they come, then finished."""

    def feed(self, line: bytes) -> bool:
        """Take one stdout line; True when it was one of the CLI's structured events
        (the agent runner's `stall_timeout` counts time since the last one)."""
        ...

    def finish(
        self,
        *,
        stderr: str,
        exit_code: int | None,
        signal: int | None,
        timed_out: bool,
        now: datetime,
    ) -> AgentResult:
        """The result, once the process has ended (`stderr`: its tail)."""
        ...


class Adapter(Protocol):
    """One agent CLI."""

    name: str  # `claude`, `codex`, `gemini`, `command`
    program: str  # the executable it runs unless the agent's `bin:` names another
    # its own settings keys (beside the common ones) -> JSON Schema of the value
    options: Mapping[str, Mapping[str, Any]]
    # the environment variables it sets on the child (e.g. TZ=UTC where the CLI prints
    # local times); the request's and the agent's own env come on top
    env: Mapping[str, str]

    def invocation(self, request: AgentRequest) -> Invocation:
        """The headless command line for this request (REPORT.md §1)."""
        ...

    def reader(self) -> Reader:
        """A fresh judge for one run."""
        ...
