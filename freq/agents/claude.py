"""Claude Code (`claude -p`): its headless command line, and the judge of its stream-json.

Pure: imports only the standard library, freq.model and freq.agents (no processes, no
clock). Facts relied on are in docs/agents-adapters.md and the captured samples under
tests/agent_samples/ (REPORT.md §1-§4 of the CLI survey): the last `result` event decides,
because the exit code lies (0 after SIGINT and after permission denials).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from freq.agents import events
from freq.agents.base import AgentRequest, AgentResult, Invocation, Usage
from freq.agents.events import Rule, rule
from freq.model import FailureKind

RETRYABLE, TERMINAL, QUOTA = FailureKind.RETRYABLE, FailureKind.TERMINAL, FailureKind.QUOTA

OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "permission_mode": {
            "enum": ["acceptEdits", "bypassPermissions", "default", "dontAsk", "plan"]
        },
        "max_turns": {"type": "integer", "minimum": 1},
        "allowed_tools": {"type": "array", "items": {"type": "string", "minLength": 1}},
    }
)
DEFAULT_PERMISSION_MODE = "acceptEdits"
# tools whose success means something was written: a denial beside one is not "every write"
WRITE_TOOLS = frozenset(("Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"))

# The API error texts of a `result{is_error:true}` (its `result`, else the synthetic
# assistant message), first match wins (REPORT.md §3, Claude table).
NOT_LOGGED_IN = rule(r"not logged in|please run /login", TERMINAL, "not logged in")
INVALID_KEY = rule(r"invalid api key|invalid x-api-key", TERMINAL, "invalid API key")
RESULT_RULES: tuple[Rule, ...] = (
    NOT_LOGGED_IN,
    INVALID_KEY,
    rule(r"credit balance is too low", TERMINAL, "credit balance too low"),
    rule(r"hit your .{0,40}limit|out of (usage credits|extra usage)", QUOTA, "usage limit"),
    # with an API key the CLI retries a 429 itself unless its retry-after is long
    rule(r"request rejected \(429\)|rate limit", QUOTA, "rate limited"),
    rule(r"prompt is too long|context (window|length)", TERMINAL, "prompt too long"),
    rule(r"overloaded|at capacity", RETRYABLE, "overloaded"),
    rule(
        r"unable to connect|connection (refused|reset|error)|fetch failed",
        RETRYABLE,
        "network down",
    ),
    rule(r"\b5\d\d\b|server-side issue|internal server error", RETRYABLE, "server error"),
)
# The assistant message's `error` field, when its text matched nothing.
ERROR_FIELD: Mapping[str, tuple[FailureKind, str]] = MappingProxyType(
    {
        "authentication_failed": (TERMINAL, "authentication failed"),
        "billing_error": (TERMINAL, "billing error"),
        "invalid_request": (TERMINAL, "invalid request"),
        "model_not_found": (TERMINAL, "model not found"),
        "rate_limit": (QUOTA, "rate limited"),
        "server_error": (RETRYABLE, "server error"),
        "overloaded": (RETRYABLE, "overloaded"),
    }
)
# What the CLI says on stderr when it ends before any result event.
STDERR_RULES: tuple[Rule, ...] = (
    rule(r"no conversation found with session id", TERMINAL, "session not found"),
    rule(r"cannot be used with root/sudo", TERMINAL, "refused as root"),
    rule(
        r"requires --verbose|error: (unknown option|option|too many arguments|missing)",
        TERMINAL,
        "bad arguments",
    ),
    NOT_LOGGED_IN,
    INVALID_KEY,
)
# The last `system/api_retry` before the process ended without a result (a timeout or a
# kill while the CLI was still retrying): what it was retrying.
RETRYING: Mapping[str, tuple[FailureKind, str]] = MappingProxyType(
    {
        "overloaded": (RETRYABLE, "overloaded (still retrying)"),
        "server_error": (RETRYABLE, "server error (still retrying)"),
        "unknown": (RETRYABLE, "network down (still retrying)"),
        "rate_limit": (QUOTA, "rate limited (still retrying)"),
        "authentication_failed": (TERMINAL, "invalid API key (still retrying)"),
    }
)
_RESETS = re.compile(
    r"resets (?:(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2}), )?"
    r"(?P<h>\d{1,2})(?::(?P<m>\d{2}))?(?P<ap>am|pm) \(UTC\)",
    re.IGNORECASE,
)


class ClaudeAdapter:
    """`claude -p --output-format stream-json --verbose … -- PROMPT` (REPORT.md §1)."""

    name = "claude"
    program = "claude"
    options = OPTIONS
    env: Mapping[str, str] = MappingProxyType({"TZ": "UTC"})  # limit texts print local times

    def invocation(self, request: AgentRequest) -> Invocation:
        """The command line: stream-json events, the permission mode, model, limits, resume;
        the agent's own args, then `--` and the prompt (a prompt may start with `-`)."""
        agent, opts = request.agent, request.agent.options
        argv = [agent.bin or self.program, "-p", "--output-format", "stream-json", "--verbose"]
        argv += ["--permission-mode", str(opts.get("permission_mode", DEFAULT_PERMISSION_MODE))]
        if agent.model:
            argv += ["--model", agent.model]
        if "max_turns" in opts:
            argv += ["--max-turns", str(opts["max_turns"])]
        if request.budget_usd is not None:
            argv += ["--max-budget-usd", format(request.budget_usd, ".6g")]
        # `=`: the option takes a list, and would swallow the arguments after it
        argv += [f"--allowedTools={tool}" for tool in events.strings(opts.get("allowed_tools"))]
        if request.resume:
            argv += ["--resume", request.resume]
        argv += [*agent.args, "--", request.prompt]
        return Invocation(argv=tuple(argv), env=MappingProxyType({**self.env, **agent.env}))

    def reader(self) -> ClaudeReader:
        """A fresh judge of one run's stream-json."""
        return ClaudeReader()


class ClaudeReader:
    """Keeps, of every event, only what the result needs."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.init_model: str | None = None
        self.text = ""  # the last top-level assistant text
        self.error_field = ""  # the last synthetic assistant message's `error`
        self.limit: dict[str, Any] = {}  # the last rate_limit_event's rate_limit_info
        self.retrying = ""  # the last api_retry's error
        self.writes: dict[str, str] = {}  # tool_use id -> name of writing tools not done yet
        self.wrote = False
        self.result: dict[str, Any] | None = None  # the result event, pared down

    def feed(self, line: bytes) -> bool:
        """Take one stdout line; True for a stream-json event."""
        event = events.parse(line)
        if event is None or not isinstance(event.get("type"), str):
            return False
        kind = event["type"]
        if kind == "system":
            self._system(event)
        elif kind == "rate_limit_event":
            self.limit = events.mapping(event.get("rate_limit_info"))
        elif kind == "assistant":
            self._assistant(event)
        elif kind == "user":
            self._user(event)
        elif kind == "result":
            self._result(event)
        return True

    def _system(self, event: dict[str, Any]) -> None:
        if event.get("subtype") == "init":
            self.session = events.string(event.get("session_id")) or self.session
            self.init_model = events.string(event.get("model")) or self.init_model
        elif event.get("subtype") == "api_retry":
            self.retrying = events.string(event.get("error"))

    def _assistant(self, event: dict[str, Any]) -> None:
        message = events.mapping(event.get("message"))
        texts = []
        for block in map(events.mapping, message.get("content") or ()):
            if block.get("type") == "text":
                texts.append(events.string(block.get("text")))
            # ids whose results never came stay bounded
            elif block.get("name") in WRITE_TOOLS and len(self.writes) < 1000:
                self.writes[events.string(block.get("id"))] = str(block["name"])
        if event.get("parent_tool_use_id") is None and texts:
            self.text = events.clip("".join(texts))
        self.error_field = events.string(event.get("error"))

    def _user(self, event: dict[str, Any]) -> None:
        for block in map(events.mapping, events.mapping(event.get("message")).get("content") or ()):
            if block.get("type") != "tool_result":
                continue
            name = self.writes.pop(events.string(block.get("tool_use_id")), None)
            if name is not None and not block.get("is_error"):
                self.wrote = True

    def _result(self, event: dict[str, Any]) -> None:
        self.session = events.string(event.get("session_id")) or self.session
        denied: list[str] = []
        for item in event.get("permission_denials") or ():
            events.add_unique(denied, events.string(events.mapping(item).get("tool_name")))
        errors = [events.string(e) for e in event.get("errors") or () if isinstance(e, str)]
        self.result = {
            "subtype": events.string(event.get("subtype")),
            "is_error": event.get("is_error") is True,
            "status": event.get("api_error_status"),
            "text": events.clip(events.string(event.get("result"))),
            "errors": "; ".join(errors[:3]),
            "denied": tuple(denied),
            "usage": _usage(event),
            "model": _model(events.mapping(event.get("modelUsage"))),
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
        """Judge from the result event; without one, from stderr, then the last retry."""
        r = self.result
        if r is None:
            return self._without_result(stderr, exit_code, signal, timed_out)
        fields: dict[str, Any] = {
            "text": r["text"] or self.text,
            "usage": r["usage"],
            "model": r["model"] or self.init_model,
            "session": self.session,
            "denied": r["denied"],
        }
        subtype, errors = r["subtype"], r["errors"]
        if subtype == "success" and not r["is_error"]:
            if r["denied"] and not self.wrote:
                return events.failed(TERMINAL, events.denial_reason(r["denied"]), **fields)
            return AgentResult(ok=True, **fields)
        if subtype == "error_max_turns":
            return events.failed(RETRYABLE, "max turns", errors or subtype, **fields)
        if subtype == "error_max_budget_usd":
            return events.failed(TERMINAL, "budget reached", errors or subtype, **fields)
        if subtype == "error_during_execution":
            # also a bad --resume id: `No conversation found with session ID: …`, exit 1
            matched = events.first_match(STDERR_RULES, errors)
            if matched is not None:
                return events.failed(matched.kind, matched.label, errors, **fields)
            return events.failed(RETRYABLE, "interrupted", errors or subtype, **fields)
        if subtype != "success":
            return events.failed(None, f"error result ({subtype})", errors, **fields)
        return self._api_error(r, now, fields)

    def _api_error(self, r: dict[str, Any], now: datetime, fields: dict[str, Any]) -> AgentResult:
        """`result{subtype:"success", is_error:true}`: the API failed."""
        text = r["text"] or self.text
        if self.limit.get("status") == "rejected":
            kind_of_limit = events.string(self.limit.get("rateLimitType")) or "unknown"
            at = _epoch(self.limit.get("resetsAt")) or _reset_from_text(text, now)
            return events.failed(
                QUOTA, f"usage limit ({kind_of_limit})", text, reset_at=at, **fields
            )
        matched = events.first_match(RESULT_RULES, text)
        if matched is not None:
            at = _reset_from_text(text, now) if matched.kind is QUOTA else None
            return events.failed(matched.kind, matched.label, text, reset_at=at, **fields)
        if self.error_field in ERROR_FIELD:
            kind, label = ERROR_FIELD[self.error_field]
            return events.failed(kind, label, text, **fields)
        status = r["status"]
        if isinstance(status, int) and status >= 500:
            return events.failed(RETRYABLE, f"server error ({status})", text, **fields)
        if status in (401, 403):
            return events.failed(TERMINAL, f"authentication failed ({status})", text, **fields)
        if status == 429:
            return events.failed(QUOTA, "rate limited (429)", text, **fields)
        return events.failed(None, "API error", text, **fields)

    def _without_result(
        self, stderr: str, exit_code: int | None, signal: int | None, timed_out: bool
    ) -> AgentResult:
        fields: dict[str, Any] = {
            "text": self.text,
            "model": self.init_model,
            "session": self.session,
        }
        matched = events.first_match(STDERR_RULES, stderr)
        if matched is not None:
            return events.failed(
                matched.kind, matched.label, events.line_with(matched, stderr), **fields
            )
        if self.retrying in RETRYING:
            kind, label = RETRYING[self.retrying]
            return events.failed(
                kind, label, events.how_it_ended(exit_code, signal, timed_out), **fields
            )
        how = events.how_it_ended(exit_code, signal, timed_out)
        return events.failed(None, "no result event", how, **fields)


def _usage(result: dict[str, Any]) -> Usage:
    """Tokens from `modelUsage` (every model of the run; `usage` is all zeros after a budget
    error), else from `usage`; the cost the CLI computed."""
    cost = result.get("total_cost_usd")
    cost_usd = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
    per_model = [events.mapping(m) for m in events.mapping(result.get("modelUsage")).values()]
    if per_model:
        cached = sum(events.number(m.get("cacheReadInputTokens")) for m in per_model)
        created = sum(events.number(m.get("cacheCreationInputTokens")) for m in per_model)
        fresh = sum(events.number(m.get("inputTokens")) for m in per_model)
        out = sum(events.number(m.get("outputTokens")) for m in per_model)
    else:
        u = events.mapping(result.get("usage"))
        if not u:
            return Usage(cost_usd=cost_usd)
        cached = events.number(u.get("cache_read_input_tokens"))
        created = events.number(u.get("cache_creation_input_tokens"))
        fresh = events.number(u.get("input_tokens"))
        out = events.number(u.get("output_tokens"))
    return Usage(
        tokens_in=fresh + cached + created, tokens_out=out, tokens_cached=cached, cost_usd=cost_usd
    )


def _model(model_usage: dict[str, Any]) -> str | None:
    """The model that cost the most (a run may call a small one for subtasks)."""
    best, best_cost = None, -1.0
    for name, stats in model_usage.items():
        cost = events.mapping(stats).get("costUSD")
        value = float(cost) if isinstance(cost, int | float) else 0.0
        if name != "<synthetic>" and value > best_cost:
            best, best_cost = name, value
    return best


def _epoch(value: object) -> datetime | None:
    """`resetsAt`: unix seconds."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _reset_from_text(text: str, now: datetime) -> datetime | None:
    """`resets 11:08pm (UTC)` or `resets Dec 3, 11:08pm (UTC)`, when no rate_limit_event
    said `resetsAt` (the child runs with TZ=UTC, so the zone is UTC)."""
    m = _RESETS.search(text)
    if m is None:
        return None
    return events.next_time(
        now,
        int(m["h"]),
        int(m["m"] or 0),
        m["ap"],
        month=m["mon"],
        day=int(m["day"]) if m["day"] else None,
    )


adapter = ClaudeAdapter()
