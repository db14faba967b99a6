"""A stub of Anthropic's Messages API (`POST /v1/messages`, SSE streaming) for Claude Code.

Standard library only. Point the CLI at it with ANTHROPIC_BASE_URL. What each scenario
answers (docs/agents-testing.md has the table):

- success: the first turn streams a `Write` tool call for `<cwd>/hello.txt`; once the
  request carries its tool_result, a text answer. Same usage on every call.
- auth: 401 `authentication_error` `invalid x-api-key`.
- quota: 429 `rate_limit_error` with the `anthropic-ratelimit-unified-*` headers of a
  rejected five-hour window resetting at `reset_at` (a subscriber's limit) and a
  `retry-after` until then; with `lifts`, the success answers from `reset_at` on.
- overloaded: 529 `overloaded_error`.
- context: 400 `invalid_request_error` `prompt is too long: 214237 tokens > 200000 maximum`.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.agents_real.stub_http import Reply, Request, Scenario, json_reply, sse, sse_reply

MODEL = "claude-sonnet-4-5"
USAGE = {
    "input_tokens": 3,
    "cache_creation_input_tokens": 1520,
    "cache_read_input_tokens": 14210,
    "output_tokens": 1,
}
ZERO_USAGE = dict.fromkeys(USAGE, 0)
TITLE = "Create hello.txt greeting"
TOOL_OUTPUT_TOKENS = 62
TEXT_OUTPUT_TOKENS = 11
FINAL_TEXT = "Created hello.txt with a greeting."
FILE_TEXT = "hello from claude\n"
_CWD = re.compile(r"(?:Primary working directory|Working directory|cwd):\s*(/\S+)")


def _error(status: int, kind: str, message: str, request_id: str) -> Reply:
    return json_reply(
        status,
        {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id},
        (("request-id", request_id),),
    )


def _text_of(value: Any) -> str:
    """Every string inside a JSON value, joined (to find the working directory)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_text_of(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(_text_of(v) for v in value)
    return ""


def _has_tool_result(body: dict[str, Any]) -> bool:
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(c, dict) and c.get("type") == "tool_result" for c in content
        ):
            return True
    return False


def _offers(body: dict[str, Any], tool: str) -> bool:
    return any(t.get("name") == tool for t in body.get("tools", []) if isinstance(t, dict))


@dataclass
class Anthropic:
    """The handler: `Anthropic(Scenario.SUCCESS)` is passed to stub_http.serve."""

    scenario: Scenario
    reset_at: int = 0  # quota: unix seconds of the reset
    lifts: bool = False  # quota: from reset_at on, answer as in success
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: Request) -> Reply:
        if not request.path.startswith("/v1/messages"):
            return json_reply(404, {"type": "error", "error": {"type": "not_found_error"}})
        if "count_tokens" in request.path:
            return json_reply(200, {"input_tokens": 15733})
        if self.scenario is Scenario.AUTH:
            return _error(401, "authentication_error", "invalid x-api-key", "req_011CStubAuth")
        if self.scenario is Scenario.QUOTA and not (self.lifts and time.time() >= self.reset_at):
            return self._quota()
        if self.scenario is Scenario.OVERLOADED:
            return _error(529, "overloaded_error", "Overloaded", "req_011CStubOver")
        if self.scenario is Scenario.CONTEXT:
            return _error(
                400,
                "invalid_request_error",
                "prompt is too long: 214237 tokens > 200000 maximum",
                "req_011CStubCtx",
            )
        body = request.json() or {}
        if not body.get("tools"):
            # a side request of the CLI's own (the session title): free, so the run's
            # cost is that of its two turns
            return self._text(json.dumps({"title": TITLE}), usage=ZERO_USAGE, output_tokens=0)
        if _offers(body, "Write") and not _has_tool_result(body):
            return self._tool_call(_cwd_of(body))
        return self._text(FINAL_TEXT)

    def _quota(self) -> Reply:
        headers = (
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-reset", str(self.reset_at)),
            ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
            ("anthropic-ratelimit-unified-5h-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-reset", str(self.reset_at)),
            ("anthropic-ratelimit-unified-5h-utilization", "1.0"),
            ("anthropic-ratelimit-unified-overage-status", "rejected"),
            ("anthropic-ratelimit-unified-overage-disabled-reason", "out_of_credits"),
            # the API's own hint: a long wait, so an API-key client does not retry
            ("retry-after", str(max(0, self.reset_at - int(time.time())))),
            ("request-id", "req_011CStubRate"),
        )
        return json_reply(
            429,
            {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": "This request would exceed your account's rate limit. "
                    "Please try again later.",
                },
                "request_id": "req_011CStubRate",
            },
            headers,
        )

    def _start(self, usage: dict[str, int] = USAGE) -> bytes:
        message: dict[str, Any] = {
            "id": f"msg_01Stub{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return sse({"type": "message_start", "message": message}, "message_start")

    def _end(self, stop_reason: str, output_tokens: int) -> list[bytes]:
        return [
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
                "message_delta",
            ),
            sse({"type": "message_stop"}, "message_stop"),
        ]

    def _tool_call(self, cwd: str) -> Reply:
        block = {"type": "tool_use", "id": "toolu_01StubWrite", "name": "Write", "input": {}}
        args = json.dumps({"file_path": f"{cwd}/hello.txt", "content": FILE_TEXT})
        frames = [
            self._start(),
            sse(
                {"type": "content_block_start", "index": 0, "content_block": block},
                "content_block_start",
            ),
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": args},
                },
                "content_block_delta",
            ),
            *self._end("tool_use", TOOL_OUTPUT_TOKENS),
        ]
        return sse_reply(frames, (("request-id", "req_011CStubOk"),))

    def _text(
        self, text: str, usage: dict[str, int] = USAGE, output_tokens: int = TEXT_OUTPUT_TOKENS
    ) -> Reply:
        frames = [
            self._start(usage),
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
                "content_block_delta",
            ),
            *self._end("end_turn", output_tokens),
        ]
        return sse_reply(frames, (("request-id", "req_011CStubOk"),))


def _cwd_of(body: dict[str, Any]) -> str:
    """The working directory Claude Code states in its system prompt."""
    m = _CWD.search(_text_of(body.get("system")) + "\n" + _text_of(body.get("messages")))
    return m.group(1) if m else "/nonexistent"
