"""A stub of the Gemini API (`models/*:streamGenerateContent?alt=sse`) for Gemini CLI.

Standard library only. Point the CLI at it with GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY.
What each scenario answers (docs/agents-testing.md has the table):

- success: the first turn calls `write_file` for `<cwd>/hello.txt`; once the request
  carries its functionResponse, a text answer. Same usage on every call.
- auth: 400 INVALID_ARGUMENT `API key not valid` (API_KEY_INVALID), as the real API
  answers a bad key (it never says 401).
- quota: 429 RESOURCE_EXHAUSTED with a RetryInfo of `retry_delay` (3600 s: longer than the
  CLI's 300 s, so it gives up at once).
- overloaded: 503 UNAVAILABLE `The model is overloaded.`
- context: 400 INVALID_ARGUMENT `The input token count (1187433) exceeds the maximum…`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from tests.agents_real.stub_http import Reply, Request, Scenario, json_reply, sse, sse_reply

MODEL = "gemini-2.5-flash"
FINAL_TEXT = "Created hello.txt."
FILE_TEXT = "hello from gemini\n"
# per call; the run's stats sum its two calls: 16246 in, 12288 cached, 46 out, 16334 total
PROMPT_TOKENS, CACHED_TOKENS, CANDIDATE_TOKENS, THOUGHT_TOKENS = 8123, 6144, 23, 21
_CWD = re.compile(r"Workspace Directories:\**\s*-\s*(/\S+)")


def _error(status: int, state: str, message: str, details: list[dict[str, Any]]) -> Reply:
    doc = {"error": {"code": status, "message": message, "status": state, "details": details}}
    if not details:
        del doc["error"]["details"]
    return json_reply(status, doc)


def _texts(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_texts(v) for v in value.values())
    if isinstance(value, list):
        return "\n".join(_texts(v) for v in value)
    return ""


def _has_function_response(body: dict[str, Any]) -> bool:
    return any(
        "functionResponse" in part
        for content in body.get("contents", [])
        for part in content.get("parts", [])
        if isinstance(part, dict)
    )


@dataclass
class Gemini:
    """The handler: `Gemini(Scenario.SUCCESS)` is passed to stub_http.serve."""

    scenario: Scenario
    retry_delay: str = "3600s"  # quota: the RetryInfo delay
    write_to: str | None = None  # success: write_file here instead of <cwd>/hello.txt
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(self, request: Request) -> Reply:
        if ":countTokens" in request.path:
            return json_reply(200, {"totalTokens": PROMPT_TOKENS})
        if ":streamGenerateContent" not in request.path and ":generateContent" not in request.path:
            return _error(404, "NOT_FOUND", f"no route {request.path}", [])
        if self.scenario is Scenario.AUTH:
            return _error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )
        if self.scenario is Scenario.QUOTA:
            return _error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": self.retry_delay,
                    }
                ],
            )
        if self.scenario is Scenario.OVERLOADED:
            return _error(
                503, "UNAVAILABLE", "The model is overloaded. Please try again later.", []
            )
        if self.scenario is Scenario.CONTEXT:
            return _error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1187433) exceeds the maximum number of tokens "
                "allowed (1048576).",
                [],
            )
        body = request.json() or {}
        if _has_function_response(body) or not body.get("tools"):
            return self._answer(request, [{"text": FINAL_TEXT}])
        call = {
            "name": "write_file",
            "args": {
                "file_path": self.write_to or f"{_cwd_of(body)}/hello.txt",
                "content": FILE_TEXT,
            },
        }
        return self._answer(request, [{"functionCall": call}])

    def _answer(self, request: Request, parts: list[dict[str, Any]]) -> Reply:
        chunk = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": PROMPT_TOKENS,
                "candidatesTokenCount": CANDIDATE_TOKENS,
                "cachedContentTokenCount": CACHED_TOKENS,
                "thoughtsTokenCount": THOUGHT_TOKENS,
                "totalTokenCount": PROMPT_TOKENS + CANDIDATE_TOKENS + THOUGHT_TOKENS,
            },
            "modelVersion": MODEL,
            "responseId": f"stub-response-{next(self._ids)}",
        }
        if ":streamGenerateContent" in request.path:
            return sse_reply([sse(chunk)])
        return json_reply(200, chunk)


def _cwd_of(body: dict[str, Any]) -> str:
    """The working directory Gemini CLI states in its first user turn or system prompt."""
    m = _CWD.search(_texts(body.get("contents")) + "\n" + _texts(body.get("systemInstruction")))
    return m.group(1) if m else "/nonexistent"
