"""The adapters' command lines against the real CLIs (opt-in: FREQ_AGENT_CLIS names a
directory holding claude, codex and gemini, e.g. an `npm install`'s node_modules/.bin).

Each CLI talks to a loopback stub of its vendor's API, so what is checked is what the CLI
made of the arguments: it accepted them, and the prompt, model and settings reached the
API (or took effect), and the reader judges its real output as documented. Like dulwich's
compat tests against real git: skipped where the CLIs are not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from freq.agents import adapter_for
from freq.agents.base import AgentRequest, AgentResult
from freq.model import AgentDef, FailureKind
from tests.conftest import git

CLIS = os.environ.get("FREQ_AGENT_CLIS")
if not CLIS:
    pytest.skip("FREQ_AGENT_CLIS is not set", allow_module_level=True)
PROMPT = "-starts with a dash\nsecond line 'single' \"double\" {subject}"


class Stub(BaseHTTPRequestHandler):
    """Anthropic, OpenAI Responses and Gemini, badly: a 401/400 each, except that an
    Anthropic request offering tools is answered with a Write of hello.txt when
    `write_to` is set (and a final text once the tool result comes back)."""

    requests: list[dict[str, Any]]
    write_to: Path | None = None
    url = ""

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        self.requests.append({"path": self.path, "body": body})
        error: dict[str, Any]
        if self.path.startswith("/v1/messages") and self.write_to is not None:
            self._reply(200, _anthropic_turn(body, self.write_to), "text/event-stream")
        elif self.path.startswith("/v1/messages"):
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            self._reply(401, json.dumps({"type": "error", "error": error}).encode())
        elif self.path.startswith("/v1/responses"):
            error = {
                "message": "Incorrect API key provided: sk-stub***.",
                "code": "invalid_api_key",
            }
            self._reply(401, json.dumps({"error": error}).encode())
        else:
            error = {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"reason": "API_KEY_INVALID"}],
            }
            self._reply(400, json.dumps({"error": error}).encode())

    def _reply(self, status: int, data: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _anthropic_turn(body: dict[str, Any], repo: Path) -> bytes:
    """A streamed assistant message: a Write of hello.txt while tools are offered and no
    tool result came back yet, else a final text."""
    last = body.get("messages", [{}])[-1].get("content")
    answered = isinstance(last, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last
    )
    if body.get("tools") and not answered:
        block = {"type": "tool_use", "id": "toolu_stub", "name": "Write", "input": {}}
        delta = {
            "type": "input_json_delta",
            "partial_json": json.dumps(
                {"file_path": str(repo / "hello.txt"), "content": "hello\n"}
            ),
        }
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": "Created hello.txt."}
        stop = "end_turn"
    usage = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,
    }
    message: dict[str, Any] = {
        "id": "msg_stub",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": [],
        "stop_reason": None,
        "usage": usage,
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "content_block_delta", "index": 0, "delta": delta},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    ]
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


@pytest.fixture
def stub() -> Iterator[type[Stub]]:
    """A loopback vendor API on a free port; `.requests` is what the CLI sent."""
    handler: type[Stub] = type("RunStub", (Stub,), {"requests": [], "write_to": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository to run in (Codex refuses anywhere else)."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    return path


def run(agent: AgentDef, repo: Path, env: dict[str, str], **request_kw: Any) -> AgentResult:
    """The adapter's invocation run as the runner would: stdin closed, a bare environment
    (HOME is the test's own, empty), the reader fed stdout."""
    binary = Path(CLIS or "") / agent.use
    if not binary.exists():
        pytest.skip(f"no {binary}")
    adapter = adapter_for(agent.use)
    req = AgentRequest(agent=agent, prompt=PROMPT, cwd=repo, scratch=repo.parent, **request_kw)
    inv = adapter.invocation(req)
    base = {"PATH": f"{CLIS}:{os.environ['PATH']}", "HOME": os.environ["HOME"]}
    proc = subprocess.run(
        (str(binary), *inv.argv[1:]),
        cwd=repo,
        env={**base, **env, **inv.env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=240,
        check=False,
    )
    reader = adapter.reader()
    for line in proc.stdout.splitlines(keepends=True):
        reader.feed(line)
    return reader.finish(
        stderr=proc.stderr.decode(errors="replace")[-65536:],
        exit_code=proc.returncode,
        signal=None,
        timed_out=False,
        now=datetime.now(UTC),
    )


def sent_prompt(stub: type[Stub]) -> bool:
    """Some string of some request holds the prompt whole (the CLIs wrap it in context)."""

    def strings(value: object) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    return any(PROMPT in text for r in stub.requests for text in strings(r["body"]))


def claude_env(stub: type[Stub]) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": stub.url,
        "ANTHROPIC_API_KEY": "sk-bogus",
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }


def test_claude_accepts_the_command_line(stub: type[Stub], repo: Path) -> None:
    """Claude takes every flag the adapter builds; the prompt after `--` (leading dash and
    all) and the model reach the API; a 401 is judged an invalid key."""
    opts = {"max_turns": 3, "allowed_tools": ("Bash(npm test:*)", "Edit")}
    a = AgentDef(name="c", use="claude", model="claude-sonnet-4-5", options=MappingProxyType(opts))
    result = run(a, repo, claude_env(stub), budget_usd=0.5)
    assert (result.kind, result.reason) == (
        FailureKind.TERMINAL,
        "invalid API key: Invalid API key · Fix external API key",
    )
    assert result.session and sent_prompt(stub)
    assert {r["body"].get("model") for r in stub.requests} == {"claude-sonnet-4-5"}


def test_claude_permissions_allowed_tools_and_resume(stub: type[Stub], repo: Path) -> None:
    """In `default` mode a Write is denied (exit 0: judged terminal) unless
    `--allowedTools=Write` allows it; a resume keeps the session."""
    stub.write_to = repo
    strict = {"permission_mode": "default"}
    a = AgentDef(
        name="c", use="claude", model="claude-sonnet-4-5", options=MappingProxyType(strict)
    )
    denied = run(a, repo, claude_env(stub))
    assert (denied.kind, denied.reason, denied.denied) == (
        FailureKind.TERMINAL,
        "every write denied: Write",
        ("Write",),
    )
    assert not (repo / "hello.txt").exists()
    allowed = MappingProxyType({**strict, "allowed_tools": ("Bash(npm test:*)", "Write")})
    ok = run(AgentDef(name="c", use="claude", options=allowed), repo, claude_env(stub))
    assert ok.ok and (repo / "hello.txt").read_text() == "hello\n"
    again = run(AgentDef(name="c", use="claude"), repo, claude_env(stub), resume=ok.session)
    assert again.ok and again.session == ok.session


def test_claude_turn_and_budget_limits(stub: type[Stub], repo: Path) -> None:
    """`--max-turns 1` ends in error_max_turns (retryable) and `--max-budget-usd` in
    error_max_budget_usd (terminal), with the cost Claude reported."""
    stub.write_to = repo
    turns = AgentDef(name="c", use="claude", options=MappingProxyType({"max_turns": 1}))
    result = run(turns, repo, claude_env(stub))
    assert (result.kind, result.reason) == (
        FailureKind.RETRYABLE,
        "max turns: Reached maximum number of turns (1)",
    )
    budget = run(AgentDef(name="c", use="claude"), repo, claude_env(stub), budget_usd=1e-6)
    assert (budget.kind, budget.reason) == (
        FailureKind.TERMINAL,
        "budget reached: Reached maximum budget ($0.000001)",
    )
    assert budget.usage.cost_usd and budget.usage.tokens_out


def codex_agent(stub: type[Stub], **kw: Any) -> AgentDef:
    provider = (
        f'model_providers.stub={{name="stub", base_url="{stub.url}/v1", '
        'wire_api="responses", env_key="STUB_KEY", supports_websockets=false}'
    )
    args = ("-c", provider, "-c", "model_provider=stub")
    return AgentDef(name="x", use="codex", args=args, **kw)


def test_codex_accepts_the_command_line_and_resumes_writable(stub: type[Stub], repo: Path) -> None:
    """Codex takes the command line: model, reasoning effort, workspace-write and the
    prompt reach the API; `exec resume` continues the thread, still workspace-write."""
    a = codex_agent(stub, model="gpt-5.5", options=MappingProxyType({"reasoning_effort": "high"}))
    first = run(a, repo, {"STUB_KEY": "sk-stub"})
    assert first.kind is FailureKind.TERMINAL
    assert first.reason.startswith("not logged in or invalid key: unexpected status 401")
    body = stub.requests[0]["body"]
    assert (body["model"], body["reasoning"]["effort"]) == ("gpt-5.5", "high")
    assert sent_prompt(stub) and "`sandbox_mode` is `workspace-write`" in json.dumps(body)
    stub.requests.clear()
    again = run(codex_agent(stub), repo, {"STUB_KEY": "sk-stub"}, resume=first.session)
    assert again.session == first.session
    assert "`sandbox_mode` is `workspace-write`" in json.dumps(stub.requests[0]["body"])


def test_codex_unknown_session(repo: Path) -> None:
    """Resuming a thread Codex never saw fails at once: session not found."""
    a = AgentDef(name="x", use="codex")
    result = run(a, repo, {}, resume="01a2333b-ca91-7261-8191-09004ca7c78b")
    assert result.kind is FailureKind.TERMINAL
    assert result.reason.startswith("session not found: Error: thread/resume")


def test_gemini_accepts_the_command_line(stub: type[Stub], repo: Path) -> None:
    """Gemini takes `--prompt=` with a leading dash and newlines whole, the model, auto_edit
    (write tools offered) and --skip-trust; a bad key is judged terminal."""
    home = Path(os.environ["HOME"]) / ".gemini"
    home.mkdir(parents=True, exist_ok=True)
    # the gateway auth a base URL selects is refused ("Invalid auth method selected")
    (home / "settings.json").write_text(
        '{"security": {"auth": {"selectedType": "gemini-api-key"}}}'
    )
    env = {"GOOGLE_GEMINI_BASE_URL": stub.url, "GEMINI_API_KEY": "bogus"}
    result = run(AgentDef(name="g", use="gemini", model="gemini-2.5-flash"), repo, env)
    assert (result.kind, result.model) == (FailureKind.TERMINAL, "gemini-2.5-flash")
    assert result.reason.startswith("not authenticated or invalid key: [API Error:")
    assert sent_prompt(stub) and "gemini-2.5-flash" in stub.requests[-1]["path"]
    tools = {
        f["name"] for t in stub.requests[-1]["body"]["tools"] for f in t["functionDeclarations"]
    }
    assert {"write_file", "replace"} <= tools


def test_gemini_without_auth(repo: Path) -> None:
    """No auth at all: stream-json mode says so on stderr, exit 41: terminal."""
    result = run(AgentDef(name="g", use="gemini"), repo, {})
    assert result.kind is FailureKind.TERMINAL
    assert result.reason.startswith("not authenticated or invalid key: Please set an Auth method")
