"""Codex CLI (`codex exec --json`): its headless command line, and the judge of its JSONL.

Pure: imports only the standard library, freq.model and freq.agents (no processes, no
clock). The turn's end event decides (`turn.completed` or `turn.failed`), else the last
`error` event (a run killed while reconnecting), then stderr: the exit code lies (0 after
a refused write or a question the model could not ask). Codex prints no model name and no
cost; its usage is the thread's running total (REPORT.md §0.6).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from freq.agents import events
from freq.agents.base import AgentRequest, AgentResult, Invocation, Usage
from freq.agents.events import Rule, rule
from freq.model import FailureKind

RETRYABLE, TERMINAL, QUOTA = FailureKind.RETRYABLE, FailureKind.TERMINAL, FailureKind.QUOTA

OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "sandbox": {"enum": ["read-only", "workspace-write", "danger-full-access"]},
        "reasoning_effort": {"enum": ["minimal", "low", "medium", "high", "xhigh"]},
    }
)
DEFAULT_SANDBOX = "workspace-write"

# Messages of `turn.failed` / `error` events, first match wins. The apostrophe of "You've"
# is U+2019 in 0.171 and straight in the source (protocol/src/error.rs): both match.
FAILURE_RULES: tuple[Rule, ...] = (
    rule(r"upgrade to plus: https", TERMINAL, "plan does not include Codex"),
    rule(
        r"you['\u2019]ve hit your usage limit|hit your spend cap|out of credits|quota exceeded",
        QUOTA,
        "usage limit",
    ),
    rule(
        r"401 unauthorized|missing bearer|incorrect api key|invalid_api_key|not logged in"
        r"|refresh token",
        TERMINAL,
        "not logged in or invalid key",
    ),
    rule(r"context window|context_length_exceeded", TERMINAL, "context window exceeded"),
    rule(r"no rollout found|no thread with id|thread not found", TERMINAL, "session not found"),
    rule(r"at capacity|high demand|overloaded", RETRYABLE, "overloaded"),
    rule(r"last status: 429|too many requests", RETRYABLE, "rate limited"),
    rule(r"status 5\d\d|last status: 5\d\d", RETRYABLE, "server error"),
    rule(
        r"connection failed|stream disconnected|error sending request|waiting for network"
        r"|failed to lookup address|timed out",
        RETRYABLE,
        "network down",
    ),
    rule(r"interrupted", RETRYABLE, "interrupted"),
)
STDERR_RULES: tuple[Rule, ...] = (
    rule(r"not inside a trusted directory", TERMINAL, "not a git repository"),
    rule(r"error: (unexpected argument|unrecognized|invalid value)", TERMINAL, "bad arguments"),
    *FAILURE_RULES,
)
# what a command's output says when the sandbox refused it
_SANDBOX_REFUSAL = re.compile(r"read-only file system|operation not permitted|sandbox", re.I)
_TRY_AGAIN = re.compile(
    r"try again at (?:(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2})(?:st|nd|rd|th), (?P<year>\d{4}) )?"
    r"(?P<h>\d{1,2}):(?P<m>\d{2}) (?P<ap>AM|PM)",
    re.IGNORECASE,
)


class CodexAdapter:
    """`codex exec --json --sandbox workspace-write … -- PROMPT` (REPORT.md §1)."""

    name = "codex"
    program = "codex"
    options = OPTIONS
    # `try again at 11:08 PM` is local time without a zone: make local time UTC
    env: Mapping[str, str] = MappingProxyType({"TZ": "UTC"})

    def invocation(self, request: AgentRequest) -> Invocation:
        """The command line; a resume continues the thread with `exec resume ID`, whose
        sandbox is set by `-c sandbox_mode=` (it takes no --sandbox and would be read-only).
        Never `--full-auto` (0.171 refuses it). Stdin stays closed: Codex reads an open pipe
        to its end before it starts."""
        agent, opts = request.agent, request.agent.options
        sandbox = str(opts.get("sandbox", DEFAULT_SANDBOX))
        argv = [agent.bin or self.program, "exec"]
        if request.resume:
            argv += ["resume", "--json", "-c", f'sandbox_mode="{sandbox}"']
        else:
            argv += ["--json", "--sandbox", sandbox]
        if agent.model:
            argv += ["-m", agent.model]
        if "reasoning_effort" in opts:
            argv += ["-c", f"model_reasoning_effort={opts['reasoning_effort']}"]
        argv += [*agent.args, "--"]
        if request.resume:
            argv.append(request.resume)
        argv.append(request.prompt)
        return Invocation(argv=tuple(argv), env=MappingProxyType({**self.env, **agent.env}))

    def reader(self) -> CodexReader:
        """A fresh judge of one run's JSONL."""
        return CodexReader()


class CodexReader:
    """Keeps, of every event, only what the result needs."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.text = ""  # the last agent_message
        self.usage = Usage(cumulative=True)
        self.completed = False
        self.failure: str | None = None  # turn.failed's message
        self.last_error = ""  # the last `error` event (retries report here too)
        self.denied: list[str] = []
        self.wrote = False  # a file change applied
        self.done_since_denial = False  # an item succeeded after the last refusal

    def feed(self, line: bytes) -> bool:
        """Take one stdout line; True for a JSONL event."""
        event = events.parse(line)
        if event is None or not isinstance(event.get("type"), str):
            return False
        kind = event["type"]
        if kind == "thread.started":
            self.session = events.string(event.get("thread_id")) or self.session
        elif kind == "item.completed":
            self._item(events.mapping(event.get("item")))
        elif kind == "turn.completed":
            self.completed, self.failure = True, None
            self._usage(events.mapping(event.get("usage")))
        elif kind == "turn.failed":
            self.failure = events.string(events.mapping(event.get("error")).get("message"))
            self.completed = False
        elif kind == "error":
            # `Reconnecting... waiting for network` comes for ever offline: not progress,
            # so the runner's stall_timeout ends it
            self.last_error = events.clip(events.string(event.get("message")), 4096)
            return False
        return True

    def _item(self, item: dict[str, Any]) -> None:
        kind, status = item.get("type"), item.get("status")
        if kind == "agent_message":
            self.text = events.clip(events.string(item.get("text")))
        elif kind == "file_change":
            paths = ", ".join(
                events.string(events.mapping(c).get("path")) for c in item.get("changes") or ()
            )
            if status == "completed":
                self.wrote = self.done_since_denial = True
            elif status == "failed":
                self._refused(f"file change {events.excerpt(paths, 80)}")
        elif kind == "command_execution":
            command = events.excerpt(events.string(item.get("command")), 80)
            output = events.string(item.get("aggregated_output"))
            if status == "declined" or (status == "failed" and _SANDBOX_REFUSAL.search(output)):
                self._refused(f"command {command}")
            elif status == "completed" and item.get("exit_code") == 0:
                self.done_since_denial = True

    def _refused(self, what: str) -> None:
        events.add_unique(self.denied, what)
        self.done_since_denial = False

    def _usage(self, u: dict[str, Any]) -> None:
        # cached_input_tokens are part of input_tokens; reasoning tokens part of output
        self.usage = Usage(
            tokens_in=events.number(u.get("input_tokens")),
            tokens_out=events.number(u.get("output_tokens")),
            tokens_cached=events.number(u.get("cached_input_tokens")),
            cumulative=True,
        )

    def finish(
        self,
        *,
        stderr: str,
        exit_code: int | None,
        signal: int | None,
        timed_out: bool,
        now: datetime,
    ) -> AgentResult:
        """Judge from the turn's end; without one, from the last error event, then stderr."""
        fields: dict[str, Any] = {
            "text": self.text,
            "usage": self.usage,
            "session": self.session,
            "denied": tuple(self.denied),
        }
        if self.completed:
            if self.denied and not self.wrote and not self.done_since_denial:
                return events.failed(TERMINAL, events.denial_reason(self.denied), **fields)
            return AgentResult(ok=True, **fields)
        message = self.failure if self.failure is not None else self.last_error
        matched = events.first_match(FAILURE_RULES, message)
        if matched is not None:
            at = _reset_at(message, now) if matched.kind is QUOTA else None
            return events.failed(matched.kind, matched.label, message, reset_at=at, **fields)
        matched = events.first_match(STDERR_RULES, stderr)
        if matched is not None:
            evidence = events.line_with(matched, stderr)
            return events.failed(matched.kind, matched.label, evidence, **fields)
        if self.failure is not None:
            return events.failed(None, "turn failed", self.failure, **fields)
        if self.last_error:
            return events.failed(None, "error event", self.last_error, **fields)
        how = events.how_it_ended(exit_code, signal, timed_out)
        return events.failed(None, "no turn.completed event", how, **fields)


def _reset_at(message: str, now: datetime) -> datetime | None:
    """`… try again at 11:08 PM.` (today, or tomorrow once past) or `… try again at Dec 3rd,
    2026 11:08 PM.`: local time of a child run with TZ=UTC. Codex prints the minute the
    limit resets in (its seconds cut off), so the hold lasts to the end of that minute:
    never a retry that comes back a few seconds early into the same limit."""
    m = _TRY_AGAIN.search(message)
    if m is None:
        return None
    at = events.next_time(
        now,
        int(m["h"]),
        int(m["m"]),
        m["ap"],
        month=m["mon"],
        day=int(m["day"]) if m["day"] else None,
        year=int(m["year"]) if m["year"] else None,
    )
    return None if at is None else at + timedelta(minutes=1)


adapter = CodexAdapter()
