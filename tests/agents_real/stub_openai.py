"""A stub of OpenAI's Responses API (`POST /v1/responses`, SSE) for the Codex CLI.

Standard library only. Codex reaches it through a `model_providers` entry with
`wire_api="responses"` and `supports_websockets=false` (`codex_args`). What each scenario
answers (docs/agents-testing.md has the table):

- success: the first turn calls `exec_command` with `printf 'hello from codex\\n' >
  hello.txt`; once the request carries its function_call_output, a text answer.
- auth: 401 `invalid_api_key`.
- quota: 429 `usage_limit_reached` (plan `plus`) with `resets_at` = `reset_at`.
- overloaded: 503 `server_is_overloaded`.
- context: a 200 stream whose `response.failed` says `context_length_exceeded`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from tests.agents_real.stub_http import Reply, Request, Scenario, json_reply, sse, sse_reply

FINAL_TEXT = "Created hello.txt."
COMMAND = "printf 'hello from codex\\n' > hello.txt"
FILE_TEXT = "hello from codex\n"
# per call; the run's turn.completed sums its two calls: 18240 in, 16128 cached, 57 out
INPUT_TOKENS, CACHED_TOKENS, REASONING_TOKENS = 9120, 8064, 16
TOOL_OUTPUT_TOKENS, TEXT_OUTPUT_TOKENS = 30, 27


def codex_args(base_url: str, *, retries: int | None = None) -> list[str]:
    """`-c` options that make Codex talk to the stub at `base_url` with OPENAI_API_KEY
    (`retries`: request and stream retries, None: Codex's own defaults)."""
    fields = [
        'name="stub"',
        f'base_url="{base_url}/v1"',
        'wire_api="responses"',
        'env_key="OPENAI_API_KEY"',
        "supports_websockets=false",
    ]
    if retries is not None:
        fields += [f"request_max_retries={retries}", f"stream_max_retries={retries}"]
    return ["-c", "model_provider=stub", "-c", f"model_providers.stub={{{', '.join(fields)}}}"]


def _has_tool_output(body: dict[str, Any]) -> bool:
    return any(
        isinstance(item, dict) and item.get("type") == "function_call_output"
        for item in body.get("input", [])
    )


@dataclass
class OpenAI:
    """The handler: `OpenAI(Scenario.SUCCESS)` is passed to stub_http.serve."""

    scenario: Scenario
    reset_at: int = 0  # quota: unix seconds of the reset
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: Request) -> Reply:
        if not request.path.startswith("/v1/responses"):
            return json_reply(404, {"error": {"message": f"no route {request.path}"}})
        if self.scenario is Scenario.AUTH:
            return json_reply(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided: sk-stub***. You can find your "
                        "API key at https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                (("x-request-id", "req_stubauth"),),
            )
        if self.scenario is Scenario.QUOTA:
            return json_reply(
                429,
                {
                    "error": {
                        "type": "usage_limit_reached",
                        "message": "The usage limit has been reached",
                        "plan_type": "plus",
                        "resets_at": self.reset_at,
                    }
                },
                (("x-request-id", "req_stubrate"),),
            )
        if self.scenario is Scenario.OVERLOADED:
            return json_reply(
                503,
                {
                    "error": {
                        "message": "The server is overloaded. Please try again later.",
                        "type": "server_error",
                        "code": "server_is_overloaded",
                    }
                },
                (("x-request-id", "req_stubover"),),
            )
        n = next(self._ids)
        if self.scenario is Scenario.CONTEXT:
            return sse_reply([self._created(n), self._failed(n)])
        body = request.json() or {}
        if _has_tool_output(body):
            item = {
                "type": "message",
                "id": f"msg_stub{n}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": FINAL_TEXT, "annotations": []}],
            }
            return self._turn(n, item, TEXT_OUTPUT_TOKENS)
        item = {
            "type": "function_call",
            "id": f"fc_stub{n}",
            "call_id": f"call_stub{n}",
            "name": "exec_command",
            "arguments": json.dumps({"cmd": COMMAND}),
            "status": "completed",
        }
        return self._turn(n, item, TOOL_OUTPUT_TOKENS)

    def _created(self, n: int) -> bytes:
        response = {"id": f"resp_stub{n}", "object": "response", "status": "in_progress"}
        return sse({"type": "response.created", "response": response}, "response.created")

    def _failed(self, n: int) -> bytes:
        response = {
            "id": f"resp_stub{n}",
            "object": "response",
            "status": "failed",
            "error": {
                "code": "context_length_exceeded",
                "message": "Your input exceeds the context window of this model. "
                "Please adjust your input and try again.",
            },
        }
        return sse({"type": "response.failed", "response": response}, "response.failed")

    def _turn(self, n: int, item: dict[str, Any], output_tokens: int) -> Reply:
        usage = {
            "input_tokens": INPUT_TOKENS,
            "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
            "total_tokens": INPUT_TOKENS + output_tokens,
        }
        completed = {
            "id": f"resp_stub{n}",
            "object": "response",
            "status": "completed",
            "output": [item],
            "usage": usage,
        }
        frames = [
            self._created(n),
            sse(
                {"type": "response.output_item.added", "output_index": 0, "item": item},
                "response.output_item.added",
            ),
            sse(
                {"type": "response.output_item.done", "output_index": 0, "item": item},
                "response.output_item.done",
            ),
            sse({"type": "response.completed", "response": completed}, "response.completed"),
        ]
        return sse_reply(frames, (("x-request-id", f"req_stub{n}"),))
