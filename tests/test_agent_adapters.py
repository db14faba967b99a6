"""The agent adapters: the command lines they build, and how they judge what the real CLIs
printed (every captured sample in tests/agent_samples/, read directly and replayed by the
stand-in CLI as a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from freq.agents import ADAPTERS, adapter_for
from freq.agents.base import AgentRequest, AgentResult, Invocation, Reader, Usage
from freq.model import ADAPTER_OPTIONS, AgentDef, FailureKind
from tests.standins.agent_cli import EXIT_CODES

SAMPLES = Path(__file__).parent / "agent_samples"
STANDINS = Path(__file__).parent / "standins" / "bin"
NOW = datetime(2026, 12, 1, 20, 13, 13, tzinfo=UTC)  # just after the samples were captured
R, T, Q = FailureKind.RETRYABLE, FailureKind.TERMINAL, FailureKind.QUOTA


def agent(use: str, **kw: Any) -> AgentDef:
    """An agent definition of adapter `use` (options as a plain dict)."""
    options = kw.pop("options", {})
    return AgentDef(name=use, use=use, options=MappingProxyType(dict(options)), **kw)


def request(a: AgentDef, prompt: str = "fix it", **kw: Any) -> AgentRequest:
    return AgentRequest(agent=a, prompt=prompt, cwd=Path("/repo"), scratch=Path("/s"), **kw)


def judge(
    reader: Reader,
    lines: bytes,
    *,
    stderr: str = "",
    exit_code: int | None = 0,
    signal: int | None = None,
    timed_out: bool = False,
) -> AgentResult:
    """Feed stdout to `reader` line by line and finish it."""
    for line in lines.splitlines(keepends=True):
        reader.feed(line)
    return reader.finish(
        stderr=stderr, exit_code=exit_code, signal=signal, timed_out=timed_out, now=NOW
    )


def events(*items: Mapping[str, object]) -> bytes:
    """JSON lines, as a CLI prints them."""
    return b"".join(json.dumps(e).encode() + b"\n" for e in items)


# ---------------------------------------------------------------- every captured sample


@dataclass(frozen=True)
class Expect:
    """What a reader must make of one sample."""

    kind: FailureKind | None
    reason: str
    session: str | None
    usage: tuple[int | None, int | None, int | None, float | None] = (None, None, None, None)
    model: str | None = None
    reset_at: datetime | None = None
    denied: tuple[str, ...] = ()
    ok: bool = False


ZERO = (0, 0, 0, 0.0)  # a Claude run that failed before spending anything
GZERO = (0, 0, 0, None)  # the same of Gemini, which reports no cost
SONNET, FLASH = "claude-sonnet-4-5", "gemini-2.5-flash"
CUT = "…"  # a reason's evidence is cut to 200 characters

CASES: dict[str, Expect] = {
    "claude-success.jsonl": Expect(
        None, "", "1997969a-a9a9-4658-bac8-4524b4947616",
        (31466, 73, 28420, 0.021039000000000002), SONNET, ok=True,
    ),
    "claude-auth-notloggedin.jsonl": Expect(
        T, "not logged in: Not logged in · Please run /login",
        "38315b9f-112c-456f-a9ca-1460105894f7", ZERO, "claude-opus-4-8[1m]",
    ),
    "claude-auth.jsonl": Expect(
        T, "invalid API key: Invalid API key · Fix external API key",
        "81a6f681-df34-4069-abfd-167d515d9b66", ZERO, SONNET,
    ),
    "claude-budget.jsonl": Expect(
        T, "budget reached: Reached maximum budget ($0.005)",
        "845eb019-ae4e-4929-a37e-d90be94a22b5", (15733, 62, 14210, 0.010902), SONNET,
    ),
    "claude-context.jsonl": Expect(
        T, "prompt too long: Prompt is too long · the request is ~214237 tokens (limit 200000) "
        "but this conversation is only ~1590 tokens — the rest is system prompt, tool "
        "definitions, and attachment content. A single-exchange c" + CUT,
        "b881d5d7-2d92-4dab-9347-da1d543b956e", ZERO, SONNET,
    ),
    "claude-maxturns.jsonl": Expect(
        R, "max turns: Reached maximum number of turns (1)",
        "b763e95f-9d6a-4dc9-abb8-7a0c6d9ebe42", (15733, 62, 14210, 0.010902), SONNET,
    ),
    "claude-network-down.jsonl": Expect(
        R, "network down: API Error: Unable to connect to API (ConnectionRefused)",
        "87ee730f-a99c-456a-82ed-1919f584b3e0", ZERO, "claude-opus-4-8[1m]",
    ),
    "claude-overloaded-repeated529.jsonl": Expect(
        R, "overloaded: API Error: Repeated 529 Overloaded errors. The API is at capacity — "
        "this is usually temporary. Try again in a moment. If it persists, check your "
        "inference gateway (127.0.0.1:18777).",
        "f88d5760-5f2f-4f8f-a1d7-fb927626861a", ZERO, "claude-opus-4-8",
    ),
    "claude-overloaded.jsonl": Expect(
        R, "overloaded: API Error: 529 Overloaded. This is a server-side issue, usually "
        "temporary — try again in a moment. If it persists, check your inference gateway "
        "(127.0.0.1:18777).",
        "064e1cc9-5ab3-4b76-a652-811d2841f96c", ZERO, SONNET,
    ),
    "claude-permission-denied.jsonl": Expect(
        T, "every write denied: Write", "7e6eabf6-f55a-45d1-aecd-e5432bd01bd9",
        (31466, 73, 28420, 0.021039000000000002), SONNET, denied=("Write",),
    ),
    "claude-ratelimit-apikey.jsonl": Expect(
        Q, "rate limited: API Error: Request rejected (429) · This request would exceed your "
        "account's rate limit. Please try again later.",
        "73cf99f6-ed74-4fe2-bc66-456960db7d72", ZERO, SONNET,
    ),
    "claude-ratelimit.jsonl": Expect(
        Q, "usage limit (five_hour): You've hit your session limit · resets 11:08pm (UTC)",
        "2ab747cc-cdd0-4c87-96ba-93f09159e1a2", ZERO, SONNET,
        reset_at=datetime.fromtimestamp(1796166488, UTC),
    ),
    "claude-resume-notfound.jsonl": Expect(
        T, "session not found: No conversation found with session ID: "
        "1997969a-a9a9-4658-bac8-4524b4947616",
        "1997969a-a9a9-4658-bac8-4524b4947616", ZERO,
    ),
    "claude-resume-notfound.stderr.txt": Expect(
        T, "session not found: No conversation found with session ID: "
        "1997969a-a9a9-4658-bac8-4524b4947616", None,
    ),
    "codex-success.jsonl": Expect(
        None, "", "01a2333b-ca91-7261-8191-09004ca7c78b", (18240, 57, 16128, None), ok=True
    ),
    # the model's question was answered "unavailable" in exec mode: nothing in the JSONL
    "codex-ask.jsonl": Expect(
        None, "", "01a2333c-7485-7df0-8107-63086f536526", (18120, 39, 8064, None), ok=True
    ),
    # the write failed in the read-only sandbox without any item: nothing to see (the
    # adapters default to workspace-write, and read-only is a choice)
    "codex-readonly-denied.jsonl": Expect(
        None, "", "01a23343-ab69-7331-bff2-96f132f2dc13", (18240, 57, 16128, None), ok=True
    ),
    "codex-auth.jsonl": Expect(
        T, "not logged in or invalid key: unexpected status 401 Unauthorized: Incorrect API key "
        "provided: sk-stub***. You can find your API key at "
        "https://platform.openai.com/account/api-keys., url: "
        "http://127.0.0.1:18777/v1/responses, reque" + CUT,
        "01a2333b-f76f-7bd1-94a4-fdb70d9a4491",
    ),
    "codex-context.jsonl": Expect(
        T, "context window exceeded: Codex ran out of room in the model's context window. "
        "Start a new thread or clear earlier history before retrying.",
        "01a2333c-7689-7cb1-aead-b4ad8bab34c9",
    ),
    "codex-full-auto.stderr.txt": Expect(
        T, "bad arguments: error: unexpected argument '--full-auto' found", None
    ),
    "codex-human-mode-offline.stderr.txt": Expect(
        R, "network down: warning: Falling back from WebSockets to HTTPS transport. stream "
        "disconnected before completion: failed to lookup address information: Name does not "
        "resolve", None,
    ),
    "codex-network-down-bounded.jsonl": Expect(
        R, "network down: Connection failed: error sending request",
        "01a23333-6f97-7852-acf4-6fd3c4893fbe",
    ),
    # never ends: killed by the timeout while it waits for the network
    "codex-network-down.jsonl": Expect(
        R, "network down: Reconnecting... waiting for network (Connection failed: error sending "
        "request)", "01a23330-41d7-70c3-bcf2-870165b6cdf1",
    ),
    "codex-overloaded.jsonl": Expect(
        R, "overloaded: Selected model is at capacity. Please try a different model.",
        "01a2333c-2270-7f90-9071-632d52052b91",
    ),
    "codex-ratelimit.jsonl": Expect(
        Q, "usage limit: You\u2019ve hit your usage limit. Upgrade to Pro "
        "(https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to "
        "purchase more credits or try again at 11:08 PM.",
        "01a2333b-f549-7683-89ec-aa7cec805d03", reset_at=datetime(2026, 12, 1, 23, 9, tzinfo=UTC),
    ),
    "codex-resume-notfound.stderr.txt": Expect(
        T, "session not found: Error: thread/resume: thread/resume failed: no rollout found for "
        "thread id 01a2333b-ca91-7261-8191-09004ca7c78b (code -32600)", None,
    ),
    "gemini-success.jsonl": Expect(
        None, "", "ee09ff2d-e42b-469c-bf16-6b6d3c3a39d9", (16246, 88, 12288, None), FLASH,
        ok=True,
    ),
    # `-o json` (one pretty-printed object) is not the stream the adapter asks for: no
    # result event, so not a success even with exit 0
    "gemini-success.json": Expect(None, "no result event: exit code 0", None),
    "gemini-auth.jsonl": Expect(
        T, 'not authenticated or invalid key: [API Error: {"error":{"code":400,"message":"API '
        'key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":'
        '[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_K' + CUT,
        "d87b7137-c8b0-4cac-a049-53d486af6beb", GZERO, FLASH,
    ),
    "gemini-auth.json-mode.stderr.txt": Expect(
        T, "not authenticated or invalid key: Error when talking to Gemini API Full report "
        "available at: $TMPDIR/gemini-client-error-Turn.run-sendMessageStream-2026-12-01T20-12-"
        '38-568Z.json _ApiError: {"error":{"code":400,"message":"API key not ' + CUT, None,
    ),
    "gemini-auth-notset.json-mode.stderr.txt": Expect(
        T, 'not authenticated or invalid key: "message": "Please set an Auth method in your '
        "$HOME/.gemini/settings.json or specify one of the following environment variables "
        "before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI" + CUT, None,
    ),
    "gemini-auth-notset.stderr.txt": Expect(
        T, "not authenticated or invalid key: Please set an Auth method in your "
        "$HOME/.gemini/settings.json or specify one of the following environment variables "
        "before running: GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA", None,
    ),
    "gemini-context.jsonl": Expect(
        T, 'context window exceeded: [API Error: {"error":{"code":400,"message":"The input '
        'token count (1187433) exceeds the maximum number of tokens allowed (1048576).",'
        '"status":"INVALID_ARGUMENT"}}]',
        "8833fddb-dc9a-4e32-abf4-36a201ef3b3c", GZERO, FLASH,
    ),
    "gemini-network-down.jsonl": Expect(
        R, "network down: [API Error: exception TypeError: fetch failed sending request]",
        "587c70cb-a3b2-406c-96ef-16422304918a", GZERO,  # `-m auto`, and no model spent tokens
    ),
    "gemini-network-down.json-mode.stderr.txt": Expect(
        R, "network down: Attempt 1 failed. Retrying with backoff... Error: exception "
        "TypeError: fetch failed sending request", None,
    ),
    "gemini-overloaded.jsonl": Expect(
        R, "overloaded: [API Error: The model is overloaded. Please try again later.]",
        "501e6906-5462-4833-88a2-48851c4ce6fc", GZERO, FLASH,
    ),
    "gemini-ratelimit.jsonl": Expect(  # a daily quota says no reset time
        Q, "quota exhausted: [API Error: You have exhausted your daily quota on this model.] "
        "Please wait and try again later. To increase your limits, request a quota increase "
        "through AI Studio, or switch to another /auth method",
        "64dc4890-1562-4fc8-be08-031024cf2765", GZERO, FLASH,
    ),
    "gemini-ratelimit-retryafter.jsonl": Expect(
        Q, "quota exhausted: [API Error: Resource has been exhausted (e.g. check quota). "
        "Suggested retry after 3600s.] Please wait and try again later. To increase your "
        "limits, request a quota increase through AI Studio, or swit" + CUT,
        "b91b020d-4728-40c3-a00d-d9bbe2a9b566", GZERO, FLASH, reset_at=NOW + timedelta(hours=1),
    ),
    "gemini-ratelimit.json-mode.stderr.txt": Expect(
        Q, "quota exhausted: Error when talking to Gemini API Full report available at: "
        "$TMPDIR/gemini-client-error-Turn.run-sendMessageStream-2026-12-01T20-12-34-706Z.json "
        "TerminalQuotaError: You have exhausted your daily quota" + CUT, None,
    ),
    "gemini-resume-notfound.stderr.txt": Expect(
        T, "session not found: Error resuming session: No previous sessions found for this "
        "project.", None,
    ),
    "gemini-untrusted.stderr.txt": Expect(
        T, "untrusted folder: Gemini CLI is not running in a trusted directory. To proceed, "
        "either use `--skip-trust`, set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment "
        "variable, or trust this directory in interactive mode. F" + CUT, None,
    ),
}  # fmt: skip


def cli_of(sample: str) -> str:
    return sample.split("-", 1)[0]


def sample_ending(sample: str) -> dict[str, Any]:
    """The exit code the sample's run had; a run that never ended was timed out."""
    code = EXIT_CODES[sample]
    return {"exit_code": code, "timed_out": code is None}


def read_sample(sample: str) -> AgentResult:
    """The sample fed to a fresh reader of its CLI, as the runner would feed it."""
    path = SAMPLES / sample
    stdout, stderr = b"", ""
    if sample.endswith(".stderr.txt"):
        stderr = path.read_text()
    else:
        stdout = path.read_bytes()
        companion = path.with_name(path.name.rsplit(".", 1)[0] + ".stderr.txt")
        stderr = companion.read_text() if companion.exists() else ""
    reader = adapter_for(cli_of(sample)).reader()
    return judge(reader, stdout, stderr=stderr, **sample_ending(sample))


def check(result: AgentResult, want: Expect) -> None:
    u = result.usage
    assert (result.ok, result.kind, result.reason) == (want.ok, want.kind, want.reason)
    assert (u.tokens_in, u.tokens_out, u.tokens_cached, u.cost_usd) == want.usage
    assert (result.session, result.model, result.reset_at) == (
        want.session,
        want.model,
        want.reset_at,
    )
    assert result.denied == want.denied
    assert "\n" not in result.reason


def test_every_sample_has_a_case() -> None:
    """Each captured sample is judged by a case of the table, and the stand-in knows its
    exit code (a new capture cannot go unchecked)."""
    files = {p.name for p in SAMPLES.iterdir() if p.name != "README.md"}
    assert files == set(CASES) == set(EXIT_CODES)


@pytest.mark.parametrize("sample", sorted(CASES))
def test_sample_read_directly(sample: str) -> None:
    """Each real CLI output is judged as documented: class, reason, reset time, tokens,
    cost, session, model and denied tools."""
    check(read_sample(sample), CASES[sample])


def test_usage_is_cumulative_only_for_codex() -> None:
    """Codex reports its thread's running total; Claude and Gemini report the process's."""
    assert read_sample("codex-success.jsonl").usage.cumulative
    assert not read_sample("claude-success.jsonl").usage.cumulative
    assert not read_sample("gemini-success.jsonl").usage.cumulative


def test_final_texts() -> None:
    """The text is the final message: Claude's result, Codex's last agent_message, Gemini's
    assistant deltas after its last tool call."""
    assert read_sample("claude-success.jsonl").text == "Created hello.txt with a greeting."
    assert read_sample("codex-success.jsonl").text == "Created hello.txt."
    assert read_sample("gemini-success.jsonl").text == "Created hello.txt."
    assert read_sample("claude-maxturns.jsonl").text == ""  # an error subtype has no result


# ---------------------------------------------------------------- the stand-in CLI


def run_invocation(
    inv: Invocation, cwd: Path, env: Mapping[str, str], *, timeout: float = 20
) -> tuple[bytes, str, int | None, int | None, bool]:
    """Start the invocation as the runner would (its env on top, its files written, stdin
    closed unless given); (stdout, stderr, exit code, signal, timed out)."""
    for path, content in inv.files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    child = subprocess.Popen(
        inv.argv,
        cwd=cwd,
        env={**env, **inv.env},
        stdin=subprocess.DEVNULL if inv.stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(inv.stdin, timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        timed_out = True
    code = child.returncode
    signal = -code if code < 0 else None
    return out, err.decode(), None if signal else code, signal, timed_out


@pytest.fixture
def standin_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a stand-in CLI run: its log, this Python, a home of its own."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "STANDIN_PYTHON": sys.executable,
        "STANDIN_LOG": str(tmp_path / "standin.jsonl"),
    }


def standin(use: str, **kw: Any) -> AgentDef:
    """An agent whose program is the stand-in of its CLI."""
    return agent(use, bin=str(STANDINS / use), **kw)


def logged(env: Mapping[str, str]) -> list[dict[str, object]]:
    """What the stand-in logged, one record per invocation."""
    return [json.loads(line) for line in Path(env["STANDIN_LOG"]).read_text().splitlines()]


def run_standin(
    a: AgentDef,
    cwd: Path,
    env: Mapping[str, str],
    *,
    timeout: float = 20,
    **request_kw: Any,
) -> AgentResult:
    adapter = adapter_for(a.use)
    req = AgentRequest(
        agent=a, prompt="Create hello.txt", cwd=cwd, scratch=cwd / ".s", **request_kw
    )
    out, err, code, signal, timed_out = run_invocation(
        adapter.invocation(req), cwd, env, timeout=timeout
    )
    return judge(
        adapter.reader(), out, stderr=err, exit_code=code, signal=signal, timed_out=timed_out
    )


def placeholders(
    result: AgentResult, want: Expect, env: Mapping[str, str], cwd: Path
) -> AgentResult:
    """The result with the real paths the stand-in put in turned back into placeholders; a
    reason cut at 200 characters is compared up to the shorter cut (paths change lengths)."""
    reason = result.reason
    for value, name in ((str(cwd), "$REPO"), (env["HOME"], "$HOME")):
        reason = reason.replace(value, name)
    reason = reason.replace(tempfile.gettempdir(), "$TMPDIR")
    if reason != want.reason and CUT in (reason[-1:], want.reason[-1:]):
        n = min(len(reason), len(want.reason)) - 1
        if reason[:n] == want.reason[:n]:
            reason = want.reason
    return replace(result, reason=reason)


@pytest.mark.parametrize("sample", sorted(CASES))
def test_sample_replayed_by_the_standin(
    sample: str, tmp_path: Path, standin_env: dict[str, str]
) -> None:
    """The adapter's command line, run as a real process of the stand-in replaying the
    sample, is judged as the sample read directly; stdin was closed."""
    hangs = EXIT_CODES[sample] is None
    env = {**standin_env, "STANDIN_SAMPLE": sample}
    cwd = tmp_path / "repo"
    cwd.mkdir()
    result = run_standin(standin(cli_of(sample)), cwd, env, timeout=1 if hangs else 20)
    check(placeholders(result, CASES[sample], env, cwd), CASES[sample])
    [record] = logged(env)
    assert (record["stdin"], record["cwd"]) == ("devnull", str(cwd))


@pytest.mark.parametrize("use", ["claude", "codex", "gemini"])
def test_resume_continues_the_session(
    use: str, tmp_path: Path, standin_env: dict[str, str]
) -> None:
    """A retry given the session of the attempt before resumes it: the CLI is called with
    its resume arguments and the prompt, and reports the same session."""
    first = run_standin(standin(use), tmp_path, standin_env)
    again = run_standin(standin(use), tmp_path, standin_env, resume="s-42")
    assert first.ok and first.session and again.ok and again.session == "s-42"
    fresh, resumed = (r["argv"] for r in logged(standin_env))
    assert isinstance(fresh, list) and isinstance(resumed, list)
    prompt = "--prompt=Create hello.txt" if use == "gemini" else "Create hello.txt"
    assert prompt in resumed and prompt in fresh
    expected = {
        "claude": ["--resume", "s-42"],
        "codex": ["exec", "resume", "--json", "-c", 'sandbox_mode="workspace-write"'],
        "gemini": ["--resume", "s-42"],
    }[use]
    assert any(resumed[i : i + len(expected)] == expected for i in range(len(resumed)))
    assert "s-42" not in fresh


def test_codex_resume_keeps_the_session_id_positional(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    """`codex exec resume … -- ID PROMPT`: the id is the first positional, before the prompt."""
    run_standin(standin("codex", model="gpt-5.5"), tmp_path, standin_env, resume="s-42")
    [record] = logged(standin_env)
    argv = record["argv"]
    assert isinstance(argv, list) and argv[-3:] == ["--", "s-42", "Create hello.txt"]
    assert "--sandbox" not in argv  # resume takes none, and would run read-only


def test_env_reaches_the_cli(tmp_path: Path, standin_env: dict[str, str]) -> None:
    """Claude and Codex run with TZ=UTC (they print local times); Gemini without relaunch
    and without colour."""
    for use in ("claude", "codex", "gemini"):
        run_standin(standin(use), tmp_path, standin_env)
    claude, codex, gemini = (r["env"] for r in logged(standin_env))
    assert claude == codex == {"TZ": "UTC", "NO_COLOR": None, "GEMINI_CLI_NO_RELAUNCH": None}
    assert gemini == {"TZ": None, "NO_COLOR": "1", "GEMINI_CLI_NO_RELAUNCH": "1"}


def test_standin_codex_hangs_on_an_open_stdin(tmp_path: Path, standin_env: dict[str, str]) -> None:
    """Like real Codex, the stand-in reads an open stdin pipe to its end before printing a
    thing: a runner that leaves stdin open hangs it (so runner tests can prove they close it)."""
    inv = adapter_for("codex").invocation(request(standin("codex")))
    with subprocess.Popen(
        inv.argv,
        cwd=tmp_path,
        env={**standin_env, **inv.env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as child:
        time.sleep(1.0)
        assert child.poll() is None
        out, _ = child.communicate(b"", timeout=20)  # EOF: now it goes on
    assert child.returncode == 0 and b"thread.started" in out
    [record] = logged(standin_env)
    assert (record["stdin"], record["stdin_data"]) == ("pipe", "")


def test_standin_hang_prints_the_first_events_then_nothing(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    """STANDIN_HANG=1: two events, then silence until killed (for stall tests)."""
    env = {**standin_env, "STANDIN_HANG": "1"}
    inv = adapter_for("claude").invocation(request(standin("claude")))
    out, _, code, signal, timed_out = run_invocation(inv, tmp_path, env, timeout=1.5)
    assert timed_out and code is None and signal == 9
    assert [json.loads(line)["type"] for line in out.splitlines()] == ["system", "assistant"]


def test_standin_write_edits_a_file_on_success_only(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    """STANDIN_WRITE: a success really writes the file in the cwd; a failure does not."""
    env = {**standin_env, "STANDIN_WRITE": "out/hello.txt"}
    assert run_standin(standin("gemini"), tmp_path, env).ok
    assert (tmp_path / "out/hello.txt").read_text() == "written by the gemini stand-in\n"
    (tmp_path / "out/hello.txt").unlink()
    env["STANDIN_SAMPLE"] = "gemini-overloaded.jsonl"
    assert not run_standin(standin("gemini"), tmp_path, env).ok
    assert not (tmp_path / "out/hello.txt").exists()


@pytest.mark.parametrize("use", ["claude", "codex", "gemini"])
def test_standin_made_up_stream(use: str, tmp_path: Path, standin_env: dict[str, str]) -> None:
    """STANDIN_EVENTS=N: a success stream of exactly N events, judged a success."""
    env = {**standin_env, "STANDIN_EVENTS": "300"}
    adapter = adapter_for(use)
    out, err, code, signal, timed_out = run_invocation(
        adapter.invocation(request(standin(use))), tmp_path, env
    )
    reader = adapter.reader()
    assert sum(reader.feed(line) for line in out.splitlines(keepends=True)) == 300
    result = reader.finish(stderr=err, exit_code=code, signal=signal, timed_out=timed_out, now=NOW)
    assert result.ok and result.text == "done after 300 events"


def test_standin_refuses_what_the_real_clis_refuse(
    tmp_path: Path, standin_env: dict[str, str]
) -> None:
    """`--full-auto` (Codex 0.171) and stream-json without --verbose (Claude) fail as the
    real CLIs do, and are judged bad arguments."""
    codex = adapter_for("codex").invocation(request(standin("codex")))
    bad = replace(codex, argv=(*codex.argv[:2], "--full-auto", *codex.argv[2:]))
    out, err, code, _, _ = run_invocation(bad, tmp_path, standin_env)
    assert (out, code) == (b"", 2)
    result = judge(adapter_for("codex").reader(), out, stderr=err, exit_code=code)
    assert (result.kind, result.reason) == (
        T,
        "bad arguments: error: unexpected argument '--full-auto' found",
    )
    claude = adapter_for("claude").invocation(request(standin("claude")))
    bad = replace(claude, argv=tuple(a for a in claude.argv if a != "--verbose"))
    out, err, code, _, _ = run_invocation(bad, tmp_path, standin_env)
    result = judge(adapter_for("claude").reader(), out, stderr=err, exit_code=code)
    assert (code, result.kind, result.reason) == (
        1,
        T,
        "bad arguments: Error: When using --print, --output-format=stream-json requires --verbose",
    )


# ---------------------------------------------------------------- command lines


def test_registry_matches_the_model_and_the_schema() -> None:
    """ADAPTERS carries out exactly freq.model's adapters, each with its own settings keys,
    whose schemas are the ones frequency.schema.json publishes."""
    schema = json.loads(
        (Path(__file__).parent.parent / "schemas/frequency.schema.json").read_text()
    )
    props = schema["$defs"]["agentDef"]["properties"]
    assert list(ADAPTERS) == list(ADAPTER_OPTIONS)
    for name, adapter in ADAPTERS.items():
        assert adapter.name == name
        assert set(adapter.options) == ADAPTER_OPTIONS[name]
        for key, value in adapter.options.items():
            assert dict(value) == {k: v for k, v in props[key].items() if k != "description"}


def test_claude_command_line() -> None:
    """Headless stream-json with --verbose, acceptEdits by default, the prompt last after
    `--` (it may start with a dash); TZ=UTC; stdin closed."""
    inv = adapter_for("claude").invocation(request(agent("claude"), "-v is a flag?"))
    assert inv.argv == (
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--",
        "-v is a flag?",
    )
    assert (dict(inv.env), inv.stdin, dict(inv.files)) == ({"TZ": "UTC"}, None, {})


def test_claude_options_budget_resume_and_args() -> None:
    """Model, permission mode, max turns, one `--allowedTools=` per tool (the option takes a
    list and would swallow what follows), the budget left, resume, then the agent's args."""
    a = agent(
        "claude",
        model="claude-opus-4-8",
        bin="/opt/claude",
        args=("--fallback-model", "sonnet"),
        env=MappingProxyType({"TZ": "Europe/Paris", "K": "v"}),
        options={
            "permission_mode": "dontAsk",
            "max_turns": 12,
            "allowed_tools": ("Bash(npm test:*)", "Edit"),
        },
    )
    inv = adapter_for("claude").invocation(request(a, resume="s-1", budget_usd=0.125))
    assert inv.argv == (
        "/opt/claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "dontAsk",
        "--model",
        "claude-opus-4-8",
        "--max-turns",
        "12",
        "--max-budget-usd",
        "0.125",
        "--allowedTools=Bash(npm test:*)",
        "--allowedTools=Edit",
        "--resume",
        "s-1",
        "--fallback-model",
        "sonnet",
        "--",
        "fix it",
    )
    assert dict(inv.env) == {"TZ": "Europe/Paris", "K": "v"}  # the agent's env wins


def test_codex_command_line() -> None:
    """`exec --json --sandbox workspace-write`, the prompt after `--`; never --full-auto;
    TZ=UTC; stdin closed (Codex reads an open pipe to its end first)."""
    inv = adapter_for("codex").invocation(request(agent("codex")))
    assert inv.argv == ("codex", "exec", "--json", "--sandbox", "workspace-write", "--", "fix it")
    assert (dict(inv.env), inv.stdin) == ({"TZ": "UTC"}, None)


def test_codex_options_and_resume() -> None:
    """Model, sandbox, `-c model_reasoning_effort=`; a resume is `exec resume` with the
    sandbox as `-c sandbox_mode="…"` and the id before the prompt."""
    a = agent(
        "codex",
        model="gpt-5.5",
        args=("--skip-git-repo-check",),
        options={"sandbox": "danger-full-access", "reasoning_effort": "high"},
    )
    adapter = adapter_for("codex")
    assert adapter.invocation(request(a)).argv == (
        "codex",
        "exec",
        "--json",
        "--sandbox",
        "danger-full-access",
        "-m",
        "gpt-5.5",
        "-c",
        "model_reasoning_effort=high",
        "--skip-git-repo-check",
        "--",
        "fix it",
    )
    assert adapter.invocation(request(a, resume="t-9", budget_usd=3.0)).argv == (
        "codex",
        "exec",
        "resume",
        "--json",
        "-c",
        'sandbox_mode="danger-full-access"',
        "-m",
        "gpt-5.5",
        "-c",
        "model_reasoning_effort=high",
        "--skip-git-repo-check",
        "--",
        "t-9",
        "fix it",
    )


def test_gemini_command_line() -> None:
    """`--prompt=` (yargs takes `-p -x` for a flag), stream-json, auto_edit by default,
    always --skip-trust; no relaunch, no colour; stdin closed."""
    inv = adapter_for("gemini").invocation(request(agent("gemini"), "-x\nline two"))
    assert inv.argv == (
        "gemini",
        "--prompt=-x\nline two",
        "--output-format",
        "stream-json",
        "--approval-mode",
        "auto_edit",
        "--skip-trust",
    )
    assert dict(inv.env) == {"GEMINI_CLI_NO_RELAUNCH": "1", "NO_COLOR": "1"}
    assert inv.stdin is None


def test_gemini_options_and_resume() -> None:
    """Model, approval mode, resume, then the agent's args."""
    a = agent(
        "gemini", model="gemini-2.5-pro", args=("--debug",), options={"approval_mode": "yolo"}
    )
    assert adapter_for("gemini").invocation(request(a, resume="g-1")).argv == (
        "gemini",
        "--prompt=fix it",
        "--output-format",
        "stream-json",
        "-m",
        "gemini-2.5-pro",
        "--approval-mode",
        "yolo",
        "--skip-trust",
        "--resume",
        "g-1",
        "--debug",
    )


def test_command_prompt_as_last_argument() -> None:
    """prompt_via arg (default): args[0] is the program, the prompt its last argument."""
    inv = adapter_for("command").invocation(request(agent("command", args=("aider", "--yes"))))
    assert (inv.argv, inv.stdin, dict(inv.files)) == (("aider", "--yes", "fix it"), None, {})


def test_command_prompt_on_stdin() -> None:
    """prompt_via stdin: the prompt is the program's stdin, not an argument."""
    a = agent("command", args=("llm",), options={"prompt_via": "stdin"})
    inv = adapter_for("command").invocation(request(a, "héllo"))
    assert (inv.argv, inv.stdin) == (("llm",), "héllo".encode())


def test_command_prompt_in_a_file() -> None:
    """prompt_via file: the prompt goes to scratch/prompt.txt, whose path replaces every
    `{prompt_file}` argument, or else comes last."""
    adapter = adapter_for("command")
    a = agent(
        "command", args=("run", "--in", "{prompt_file}", "-v"), options={"prompt_via": "file"}
    )
    inv = adapter.invocation(request(a))
    assert inv.argv == ("run", "--in", "/s/prompt.txt", "-v")
    assert dict(inv.files) == {Path("/s/prompt.txt"): b"fix it"}
    inv = adapter.invocation(
        request(agent("command", args=("run",), options={"prompt_via": "file"}))
    )
    assert (inv.argv, inv.stdin) == (("run", "/s/prompt.txt"), None)


@pytest.mark.parametrize("via", ["arg", "stdin", "file"])
def test_command_prompt_reaches_a_real_program(via: str, tmp_path: Path) -> None:
    """Each way of passing the prompt delivers it whole to a real process."""
    script = (
        "import sys; a = sys.argv[1:]; "
        "print(open(a[0]).read() if a and a[0].endswith('prompt.txt') "
        "else a[0] if a else sys.stdin.read())"
    )
    a = agent("command", args=(sys.executable, "-c", script), options={"prompt_via": via})
    adapter = adapter_for("command")
    req = AgentRequest(agent=a, prompt="two\nlines", cwd=tmp_path, scratch=tmp_path / "s")
    out, err, code, _, _ = run_invocation(
        adapter.invocation(req), tmp_path, {"PATH": os.environ["PATH"]}
    )
    result = judge(adapter.reader(), out, stderr=err, exit_code=code)
    assert (result.ok, result.text) == (True, "two\nlines")


def test_command_failure_is_left_to_the_engine() -> None:
    """A command agent has no events: every line is progress, and a failure's class is the
    engine's to infer (kind None), its reason how the program ended."""
    reader = adapter_for("command").reader()
    assert reader.feed(b"not json\n") and reader.feed(b"\n")
    result = reader.finish(stderr="boom", exit_code=3, signal=None, timed_out=False, now=NOW)
    assert (result.ok, result.kind, result.reason, result.text) == (
        False,
        None,
        "exit code 3",
        "not json",
    )
    reader = adapter_for("command").reader()
    timed = reader.finish(stderr="", exit_code=None, signal=9, timed_out=True, now=NOW)
    assert (timed.ok, timed.reason) == (False, "timed out")


# ---------------------------------------------------------------- readers: rules beyond the samples


@pytest.mark.parametrize("use", ["claude", "codex", "gemini"])
def test_noise_lines_are_not_events(use: str) -> None:
    """Warnings, half lines, non-objects and invalid UTF-8 are not structured events; a JSON
    event is."""
    reader = adapter_for(use).reader()
    for noise in (
        b"Warning: no stdin data received in 3s\n",
        b'{"type": "resu',
        b"[1, 2]\n",
        b'"text"\n',
        b"\xff\xfe{\n",
        b"\n",
        b'{"no_type": 1}\n',
    ):
        assert reader.feed(noise) is False, noise
    assert reader.feed(b'{"type": "anything"}\n') is True


@pytest.mark.parametrize("use", ["claude", "codex", "gemini"])
def test_exit_zero_without_a_result_is_a_failure(use: str) -> None:
    """No result event at all fails even with exit 0 (Gemini after SIGTERM): kind None, the
    engine infers; the session seen so far is kept."""
    first = {
        "claude": {"type": "system", "subtype": "init", "session_id": "s", "model": SONNET},
        "codex": {"type": "thread.started", "thread_id": "s"},
        "gemini": {"type": "init", "session_id": "s", "model": FLASH},
    }[use]
    result = judge(adapter_for(use).reader(), events(first), exit_code=0)
    assert (result.ok, result.kind, result.session) == (False, None, "s")
    assert result.reason in ("no result event: exit code 0", "no turn.completed event: exit code 0")


def test_claude_sigint_exits_zero_but_is_interrupted() -> None:
    """Claude exits 0 after SIGINT with an `error_during_execution` result: retryable."""
    result = judge(
        adapter_for("claude").reader(),
        events(
            {
                "type": "result",
                "subtype": "error_during_execution",
                "is_error": True,
                "session_id": "s",
                "errors": [],
            }
        ),
        exit_code=0,
    )
    assert (result.ok, result.kind, result.reason) == (
        False,
        R,
        "interrupted: error_during_execution",
    )


def test_claude_denial_beside_a_write_that_went_through_is_a_success() -> None:
    """A denied tool is not "every write denied" when another write succeeded; the denied
    tools are still recorded."""
    stream = events(
        {
            "type": "assistant",
            "parent_tool_use_id": None,
            "message": {"content": [{"type": "tool_use", "id": "t1", "name": "Edit", "input": {}}]},
        },
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t1"}]}},
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": "done",
            "session_id": "s",
            "permission_denials": [{"tool_name": "Bash"}],
        },
    )
    result = judge(adapter_for("claude").reader(), stream)
    assert (result.ok, result.denied, result.text) == (True, ("Bash",), "done")


def test_claude_usage_is_not_the_sum_of_message_snapshots() -> None:
    """Assistant message.usage is a message_start snapshot (1 output token each): the
    result's totals count, never the snapshots' sum."""
    result = read_sample("claude-success.jsonl")
    assert result.usage.tokens_out == 73  # the two snapshots say 1 each


def test_claude_limit_without_rate_limit_event_reads_the_text() -> None:
    """A usage limit with no rate_limit_event still holds until the time it names (the child
    runs with TZ=UTC): today, or a date, rolled forward past `now`; no time for no such day."""
    for text, at in (
        (
            "You've hit your weekly limit · resets 9pm (UTC)",
            datetime(2026, 12, 1, 21, 0, tzinfo=UTC),
        ),
        (
            "You've hit your Opus limit · resets Dec 3, 4:30am (UTC)",
            datetime(2026, 12, 3, 4, 30, tzinfo=UTC),
        ),
        (
            "You've hit your usage limit · resets 8:00am (UTC)",
            datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
        ),
        ("You've hit your usage limit · resets Feb 30, 8:00am (UTC)", None),  # no such day
    ):
        stream = events(
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "result": text,
                "session_id": "s",
                "api_error_status": 429,
            },
        )
        result = judge(adapter_for("claude").reader(), stream, exit_code=1)
        assert (result.kind, result.reason, result.reset_at) == (Q, f"usage limit: {text}", at)


def test_claude_killed_while_retrying() -> None:
    """Ended before any result (a timeout while the CLI retried 529s): the last api_retry
    says what it was waiting out."""
    stream = events(
        {"type": "system", "subtype": "api_retry", "error": "overloaded", "error_status": 529}
    )
    result = judge(adapter_for("claude").reader(), stream, exit_code=None, timed_out=True)
    assert (result.kind, result.reason) == (R, "overloaded (still retrying): timed out")


def codex_items(*items: Mapping[str, object]) -> bytes:
    return events(
        {"type": "thread.started", "thread_id": "t"},
        *({"type": "item.completed", "item": item} for item in items),
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 10, "cached_input_tokens": 4, "output_tokens": 2},
        },
    )


def test_codex_sandbox_refusals_are_terminal() -> None:
    """A declined command, a command the sandbox stopped (EROFS) or a failed file change,
    with nothing written after it, is "every write denied", though Codex exits 0."""
    cmd = {
        "type": "command_execution",
        "command": "touch x",
        "exit_code": 1,
        "status": "failed",
        "aggregated_output": "touch: cannot touch 'x': Read-only file system",
    }
    patch = {
        "type": "file_change",
        "changes": [{"path": "a.py", "kind": "update"}],
        "status": "failed",
    }
    declined = {
        "type": "command_execution",
        "command": "rm -rf build",
        "status": "declined",
        "aggregated_output": "",
    }
    result = judge(adapter_for("codex").reader(), codex_items(cmd, patch, declined))
    assert (result.ok, result.kind) == (False, T)
    assert result.denied == ("command touch x", "file change a.py", "command rm -rf build")
    assert (
        result.reason
        == "every write denied: command touch x, file change a.py, command rm -rf build"
    )
    assert result.usage == Usage(tokens_in=10, tokens_out=2, tokens_cached=4, cumulative=True)


def test_codex_refusal_then_a_write_is_a_success() -> None:
    """A refusal followed by a change that went through is not "every write denied"."""
    cmd = {
        "type": "command_execution",
        "command": "touch x",
        "exit_code": 1,
        "status": "failed",
        "aggregated_output": "Operation not permitted",
    }
    patch = {
        "type": "file_change",
        "changes": [{"path": "x", "kind": "add"}],
        "status": "completed",
    }
    result = judge(adapter_for("codex").reader(), codex_items(cmd, patch))
    assert (result.ok, result.denied) == (True, ("command touch x",))
    failed_test = {
        "type": "command_execution",
        "command": "pytest",
        "exit_code": 1,
        "status": "failed",
        "aggregated_output": "1 failed",
    }
    assert judge(adapter_for("codex").reader(), codex_items(failed_test)).ok  # not a refusal


@pytest.mark.parametrize(
    ("message", "at"),
    [
        (
            "You\u2019ve hit your usage limit. Try again at 7:05 AM.",
            datetime(2026, 12, 2, 7, 6, tzinfo=UTC),  # held to the end of the minute
        ),
        (
            "You've hit your usage limit. Visit https://chatgpt.com/codex/settings/usage to "
            "purchase more credits or try again at Dec 3rd, 2026 11:08 PM.",
            datetime(2026, 12, 3, 23, 9, tzinfo=UTC),
        ),
        (
            "You\u2019ve hit your usage limit for GPT-5.5-Codex. Switch to another model now, "
            "or try again at Jan 1st, 2027 12:30 AM.",
            datetime(2027, 1, 1, 0, 31, tzinfo=UTC),
        ),
        ("You've hit your usage limit. Try again later.", None),
        (
            "You hit your spend cap set in your workspace. Increase your spend cap to continue.",
            None,
        ),
    ],
)
def test_codex_usage_limit_reset_times(message: str, at: datetime | None) -> None:
    """Codex's reset time is local (TZ=UTC) without a zone, to the minute: a time is today
    or, once past, tomorrow; the dated form is that day; the hold lasts to the end of that
    minute; without a time the runner's hold applies."""
    stream = events(
        {"type": "thread.started", "thread_id": "t"},
        {"type": "turn.failed", "error": {"message": message}},
    )
    result = judge(adapter_for("codex").reader(), stream, exit_code=1)
    assert (result.kind, result.reason, result.reset_at) == (Q, f"usage limit: {message}", at)


def test_codex_killed_while_reconnecting_after_401() -> None:
    """No turn end: the last error event decides (here a 401 that was being retried)."""
    stream = events(
        {"type": "thread.started", "thread_id": "t"},
        {
            "type": "error",
            "message": "Reconnecting... 2/5 (unexpected status 401 "
            "Unauthorized: Missing bearer or basic authentication in header)",
        },
    )
    result = judge(adapter_for("codex").reader(), stream, exit_code=None, signal=15)
    assert (result.kind, result.session) == (T, "t")
    assert result.reason.startswith("not logged in or invalid key: Reconnecting... 2/5")


def gemini_stream(*middle: Mapping[str, object], status: str = "success") -> bytes:
    return events(
        {"type": "init", "session_id": "g1", "model": FLASH},
        {"type": "message", "role": "user", "content": "do it"},
        *middle,
        {
            "type": "result",
            "status": status,
            "stats": {"total_tokens": 30, "input_tokens": 20, "output_tokens": 6, "cached": 5},
        },
    )


def test_gemini_policy_denials_are_terminal() -> None:
    """Every write refused by policy (exit 0, status success) is "every write denied"."""
    stream = gemini_stream(
        {"type": "tool_use", "tool_name": "write_file", "tool_id": "w1", "parameters": {}},
        {
            "type": "tool_result",
            "tool_id": "w1",
            "status": "error",
            "error": {"type": "policy_violation", "message": "Tool execution denied by policy."},
        },
        {"type": "message", "role": "assistant", "content": "I could not.", "delta": True},
    )
    result = judge(adapter_for("gemini").reader(), stream)
    assert (result.ok, result.kind, result.reason, result.denied) == (
        False,
        T,
        "every write denied: write_file",
        ("write_file",),
    )
    assert result.usage == Usage(tokens_in=20, tokens_out=10, tokens_cached=5)  # 4 thoughts


def test_gemini_turn_limit_inside_a_success() -> None:
    """The core turn limit is an error event before a `success` result, exit 0: retryable."""
    stream = gemini_stream(
        {"type": "error", "severity": "error", "message": "Maximum session turns exceeded"}
    )
    result = judge(adapter_for("gemini").reader(), stream)
    assert (result.ok, result.kind, result.reason) == (
        False,
        R,
        "max session turns: Maximum session turns exceeded",
    )


def test_gemini_text_session_and_model() -> None:
    """The text is the assistant's deltas after the last tool call; a later init (a model
    fallback) rotates the session; `auto` is not a model, the busiest model is."""
    stream = events(
        {"type": "init", "session_id": "g1", "model": "auto"},
        {"type": "message", "role": "assistant", "content": "Let me ", "delta": True},
        {"type": "message", "role": "assistant", "content": "look.", "delta": True},
        {"type": "tool_use", "tool_name": "read_file", "tool_id": "r1", "parameters": {}},
        {"type": "tool_result", "tool_id": "r1", "status": "success"},
        {"type": "init", "session_id": "g2", "model": "auto"},
        {"type": "message", "role": "assistant", "content": "Done ", "delta": True},
        {"type": "message", "role": "assistant", "content": "now.", "delta": True},
        {
            "type": "result",
            "status": "success",
            "stats": {
                "total_tokens": 9,
                "input_tokens": 5,
                "output_tokens": 4,
                "cached": 0,
                "models": {
                    "gemini-3.5-flash-lite": {"total_tokens": 2},
                    "gemini-3.1-pro-preview": {"total_tokens": 7},
                },
            },
        },
    )
    result = judge(adapter_for("gemini").reader(), stream)
    assert (result.ok, result.text, result.session, result.model) == (
        True,
        "Done now.",
        "g2",
        "gemini-3.1-pro-preview",
    )


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        (55, T, "untrusted folder: exit code 55"),
        (41, T, "authentication error: exit code 41"),
        (53, R, "max session turns: exit code 53"),
        (1, None, "no result event: exit code 1"),
    ],
)
def test_gemini_exit_codes_come_last(code: int, kind: FailureKind | None, reason: str) -> None:
    """With no result event and nothing known on stderr, Gemini's own fatal exit codes say
    the class."""
    result = judge(adapter_for("gemini").reader(), b"", stderr="something else", exit_code=code)
    assert (result.ok, result.kind, result.reason) == (False, kind, reason)


@pytest.mark.parametrize("use", ["claude", "codex", "gemini", "command"])
def test_memory_is_bounded(use: str) -> None:
    """20,000 events of 2 KB (40 MB of output) leave the reader holding well under 2 MB."""
    blob = "x" * 2000
    line = {
        "claude": {
            "type": "assistant",
            "parent_tool_use_id": None,
            "message": {"content": [{"type": "text", "text": blob}]},
        },
        "codex": {"type": "item.completed", "item": {"type": "agent_message", "text": blob}},
        "gemini": {"type": "message", "role": "assistant", "content": blob, "delta": True},
        "command": {"text": blob},
    }[use]
    encoded = json.dumps(line).encode() + b"\n"
    reader = adapter_for(use).reader()
    tracemalloc.start()
    try:
        for _ in range(20_000):
            reader.feed(encoded)
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 2 * 1024 * 1024
    result = reader.finish(stderr="", exit_code=0, signal=None, timed_out=False, now=NOW)
    assert len(result.text) <= 256 * 1024
    assert result.text.rstrip('"}').endswith("x" * 100)  # the end is kept
