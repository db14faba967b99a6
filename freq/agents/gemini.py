"""Gemini CLI (`gemini -p`): its headless command line, and the judge of its stream-json.

Pure: imports only the standard library, freq.model and freq.agents (no processes, no
clock). The `result` event decides, with the `error` events before it (turn limit, loop);
without one, stderr, then the exit code. The exit codes lie: an API failure exits with
its HTTP status mod 256 (429 → 173), and a run killed by SIGTERM exits 0 with no result.
Gemini prints no cost; the stream's `result` has no session id (`init` has it).
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
    {"approval_mode": {"enum": ["default", "auto_edit", "yolo"]}}
)
DEFAULT_APPROVAL_MODE = "auto_edit"
# tools whose success means something was written: a denial beside one is not "every write"
WRITE_TOOLS = frozenset(("write_file", "replace", "edit", "run_shell_command"))

# `result.error.message`, `error` events, stderr: first match wins (REPORT.md §3, Gemini).
FAILURE_RULES: tuple[Rule, ...] = (
    rule(r"not running in a trusted directory", TERMINAL, "untrusted folder"),
    rule(r"error resuming session", TERMINAL, "session not found"),
    rule(
        r"please set an auth method|invalid auth method|api key not valid|api_key_invalid"
        r"|unauthenticated"
        r"|invalid authentication credentials",
        TERMINAL,
        "not authenticated or invalid key",
    ),
    rule(
        r"daily quota|suggested retry after|resource has been exhausted|resource_exhausted",
        QUOTA,
        "quota exhausted",
    ),
    rule(
        r"input token count.{0,40}exceeds|exceeds the maximum number of tokens",
        TERMINAL,
        "context window exceeded",
    ),
    rule(r"max(imum)? session turns", RETRYABLE, "max session turns"),
    rule(r"loop detected", RETRYABLE, "loop detected"),
    rule(r"overloaded|\b50[0-4]\b|\bunavailable\b", RETRYABLE, "overloaded"),
    rule(r"fetch failed|econnrefused|enotfound|etimedout|econnreset", RETRYABLE, "network down"),
    rule(r"operation cancelled", RETRYABLE, "cancelled"),
)
# Gemini's own fatal exit codes (FatalError subclasses in its bundle), used last.
EXIT_CODES: Mapping[int, tuple[FailureKind, str]] = MappingProxyType(
    {
        41: (TERMINAL, "authentication error"),
        42: (TERMINAL, "bad input"),
        44: (TERMINAL, "sandbox error"),
        52: (TERMINAL, "configuration error"),
        53: (RETRYABLE, "max session turns"),
        54: (TERMINAL, "tool execution error"),
        55: (TERMINAL, "untrusted folder"),
        130: (RETRYABLE, "cancelled"),
    }
)
_RETRY_AFTER = re.compile(r"suggested retry after (\d+(?:\.\d+)?)s", re.IGNORECASE)


class GeminiAdapter:
    """`gemini -p PROMPT --output-format stream-json --approval-mode auto_edit --skip-trust`."""

    name = "gemini"
    program = "gemini"
    options = OPTIONS
    # no relaunch: one process, which the runner's signals reach; no ANSI in stderr texts
    env: Mapping[str, str] = MappingProxyType({"GEMINI_CLI_NO_RELAUNCH": "1", "NO_COLOR": "1"})

    def invocation(self, request: AgentRequest) -> Invocation:
        """The command line: always `--skip-trust` (headless refuses an untrusted folder,
        exit 55), the prompt as `--prompt=` (a prompt may start with `-`)."""
        agent, opts = request.agent, request.agent.options
        argv = [agent.bin or self.program, f"--prompt={request.prompt}"]
        argv += ["--output-format", "stream-json"]
        if agent.model:
            argv += ["-m", agent.model]
        argv += ["--approval-mode", str(opts.get("approval_mode", DEFAULT_APPROVAL_MODE))]
        argv.append("--skip-trust")
        if request.resume:
            argv += ["--resume", request.resume]
        argv += agent.args
        return Invocation(argv=tuple(argv), env=MappingProxyType({**self.env, **agent.env}))

    def reader(self) -> GeminiReader:
        """A fresh judge of one run's stream-json."""
        return GeminiReader()


class GeminiReader:
    """Keeps, of every event, only what the result needs."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.init_model: str | None = None
        self.parts: list[str] = []  # the assistant's current message, in deltas
        self.parts_size = 0
        self.text_open = False  # the last event was an assistant delta
        self.tools: dict[str, str] = {}  # tool_id -> name, until its result
        self.denied: list[str] = []
        self.wrote = False
        self.warning = ""  # the last `error` event that ends a run (turn limit, loop)
        self.result: dict[str, Any] | None = None

    def feed(self, line: bytes) -> bool:
        """Take one stdout line; True for a stream-json event."""
        event = events.parse(line)
        if event is None or not isinstance(event.get("type"), str):
            return False
        kind = event["type"]
        is_delta = kind == "message" and event.get("role") == "assistant"
        if is_delta:
            self._delta(events.string(event.get("content")))
        elif kind == "init":
            # a model fallback starts a new session mid-run: the last init's id resumes
            self.session = events.string(event.get("session_id")) or self.session
            self.init_model = events.string(event.get("model")) or self.init_model
        elif kind == "tool_use" and len(self.tools) < 1000:
            self.tools[events.string(event.get("tool_id"))] = events.string(event.get("tool_name"))
        elif kind == "tool_result":
            self._tool_result(event)
        elif kind == "error":
            message = events.string(event.get("message"))
            if events.first_match(FAILURE_RULES, message):
                self.warning = events.clip(message, 4096)
        elif kind == "result":
            self._result(event)
        self.text_open = is_delta
        return True

    def _delta(self, content: str) -> None:
        if not self.text_open:  # a new message (after a tool call) replaces the last one
            self.parts, self.parts_size = [], 0
        self.parts.append(content)
        self.parts_size += len(content)
        if self.parts_size > 2 * events.TEXT_LIMIT:  # bounded: keep the end
            joined = events.clip("".join(self.parts))
            self.parts, self.parts_size = [joined], len(joined)

    def _tool_result(self, event: dict[str, Any]) -> None:
        name = self.tools.pop(events.string(event.get("tool_id")), "")
        error = events.mapping(event.get("error"))
        if event.get("status") == "success" and name in WRITE_TOOLS:
            self.wrote = True
        elif events.string(error.get("type")).lower() == "policy_violation":
            events.add_unique(self.denied, name or "unknown tool")

    def _result(self, event: dict[str, Any]) -> None:
        error = events.mapping(event.get("error"))
        stats = events.mapping(event.get("stats"))
        self.result = {
            "status": events.string(event.get("status")),
            "error": events.clip(events.string(error.get("message")), 4096),
            "error_type": events.string(error.get("type")),
            "usage": _usage(stats),
            "model": _busiest(events.mapping(stats.get("models"))),
        }

    def finish(
        self,
        *,
        stderr: str,
        exit_code: int | None,
        signal: int | None,
        timed_out: bool,
        now: datetime,
    ) -> AgentResult:
        """Judge from the result event; without one, from stderr, then the exit code."""
        r = self.result
        model = self.init_model if self.init_model != "auto" else None
        fields: dict[str, Any] = {
            "text": events.clip("".join(self.parts)),
            "session": self.session,
            "denied": tuple(self.denied),
        }
        if r is not None:
            fields.update(usage=r["usage"], model=model or r["model"])
            if r["status"] == "success":
                if self.warning:
                    return self._judge(self.warning, now, fields)
                if self.denied and not self.wrote:
                    return events.failed(TERMINAL, events.denial_reason(self.denied), **fields)
                return AgentResult(ok=True, **fields)
            return self._judge(r["error"] or r["error_type"] or r["status"], now, fields)
        fields["model"] = model
        matched = events.first_match(FAILURE_RULES, stderr)
        if matched is not None:
            evidence = events.line_with(matched, stderr)
            at = _reset_at(stderr, now) if matched.kind is QUOTA else None
            return events.failed(matched.kind, matched.label, evidence, reset_at=at, **fields)
        how = events.how_it_ended(exit_code, signal, timed_out)
        if signal is None and not timed_out and exit_code is not None and exit_code in EXIT_CODES:
            kind, label = EXIT_CODES[exit_code]
            return events.failed(kind, label, how, **fields)
        return events.failed(None, "no result event", how, **fields)

    def _judge(self, message: str, now: datetime, fields: dict[str, Any]) -> AgentResult:
        matched = events.first_match(FAILURE_RULES, message)
        if matched is None:
            return events.failed(None, "error result", message, **fields)
        at = _reset_at(message, now) if matched.kind is QUOTA else None
        return events.failed(matched.kind, matched.label, message, reset_at=at, **fields)


def _usage(stats: dict[str, Any]) -> Usage:
    """`input_tokens` includes `cached`; `output_tokens` leaves out thoughts, which
    `total_tokens` counts and which are billed as output: out = total - input."""
    if not stats:
        return Usage()
    tokens_in = events.number(stats.get("input_tokens"))
    out = events.number(stats.get("output_tokens"))
    total = events.number(stats.get("total_tokens"))
    return Usage(
        tokens_in=tokens_in,
        tokens_out=max(out, total - tokens_in),
        tokens_cached=events.number(stats.get("cached")),
    )


def _busiest(models: dict[str, Any]) -> str | None:
    """The model that used the most tokens (`-m auto` routes between several), if any did."""
    best, most = None, 0
    for name, stats in models.items():
        total = events.number(events.mapping(stats).get("total_tokens"))
        if total > most:
            best, most = name, total
    return best


def _reset_at(message: str, now: datetime) -> datetime | None:
    """`Suggested retry after 3600s.`; a daily quota says no time (None: the runner's hold)."""
    m = _RETRY_AFTER.search(message)
    return now + timedelta(seconds=float(m[1])) if m else None


adapter = GeminiAdapter()
