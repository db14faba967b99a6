"""Gemini CLI 0.61.0, run directly with REPORT.md §1's command line against the Gemini API
stub: what it prints for each scenario, against the samples."""

from __future__ import annotations

import pytest

from tests.agents_real import clis
from tests.agents_real.conftest import Place
from tests.agents_real.stub_gemini import Gemini
from tests.agents_real.stub_http import Scenario, serve

pytestmark = pytest.mark.agents


def _run(place: Place, stub_url: str, *extra: str) -> clis.Run:
    clis.gemini_settings(place.home)
    return clis.run_cli(
        clis.gemini_argv(*extra),
        cwd=place.cwd,
        env=place.env(GEMINI_API_KEY="stub-key", GOOGLE_GEMINI_BASE_URL=stub_url),
    )


def _error(run: clis.Run) -> str:
    results = run.of_type("result")
    assert len(results) == 1 and results[0]["status"] == "error", run.explain()
    return str(results[0]["error"]["message"])


def test_success_writes_the_file_and_reports_token_stats(place: Place) -> None:
    """write_file runs (tool_use, tool_result success), the answer streams as an
    assistant message, and the result's stats sum both calls."""
    with serve(Gemini(Scenario.SUCCESS)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 0, run.explain()
    assert (place.cwd / "hello.txt").read_text() == "hello from gemini\n"
    tool = run.of_type("tool_use")[0]
    assert tool["tool_name"] == "write_file"
    assert run.of_type("tool_result")[0]["status"] == "success"
    assert run.of_type("message")[-1]["content"] == "Created hello.txt."
    stats = run.of_type("result")[0]["stats"]
    assert {k: stats[k] for k in ("total_tokens", "input_tokens", "output_tokens", "cached")} == {
        "total_tokens": 16334,
        "input_tokens": 16246,
        "output_tokens": 46,
        "cached": 12288,
    }
    assert list(stats["models"]) == ["gemini-2.5-flash"]
    init = run.of_type("init")[0]
    assert init["model"] == "gemini-2.5-flash" and init["session_id"]
    assert clis.shape(run.events) == clis.shape(clis.sample("gemini-success.jsonl"))
    assert stub.received(":streamGenerateContent")[0].headers["x-goog-api-key"] == "stub-key"


def test_a_failed_write_still_ends_in_success(place: Place) -> None:
    """write_file outside the workspace fails (tool_result error invalid_tool_params), yet
    the run ends `result{status: success}` with exit 0: success is no proof of a write."""
    with serve(Gemini(Scenario.SUCCESS, write_to="/nonexistent/hello.txt")) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 0, run.explain()
    tool_result = run.of_type("tool_result")[0]
    assert (tool_result["status"], tool_result["error"]["type"]) == (
        "error",
        "invalid_tool_params",
    )
    assert "Path not in workspace" in tool_result["error"]["message"]
    assert run.of_type("result")[0]["status"] == "success"
    assert not (place.cwd / "hello.txt").exists()


def test_invalid_key_is_a_400_and_exit_144(place: Place) -> None:
    """The API refuses a bad key with 400 API_KEY_INVALID: the result quotes the error
    JSON, exit 144 (400 mod 256), no retry."""
    with serve(Gemini(Scenario.AUTH)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 144, run.explain()
    message = _error(run)
    assert message.startswith('[API Error: {"error":{"code":400,"message":"API key not valid.')
    assert "API_KEY_INVALID" in message
    assert len(stub.received(":streamGenerateContent")) == 1
    assert clis.shape(run.events) == clis.shape(clis.sample("gemini-auth.jsonl"))


def test_quota_with_a_long_retry_info_is_terminal_and_says_the_delay(place: Place) -> None:
    """429 RESOURCE_EXHAUSTED with RetryInfo 3600s (> 300 s): no retry, `Suggested retry
    after 3600s.`, exit 173 (429 mod 256)."""
    with serve(Gemini(Scenario.QUOTA)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 173, run.explain()
    assert _error(run) == (
        "[API Error: Resource has been exhausted (e.g. check quota).\nSuggested retry after "
        "3600s.]\nPlease wait and try again later. To increase your limits, request a quota "
        "increase through AI Studio, or switch to another /auth method"
    )
    assert len(stub.received(":streamGenerateContent")) == 1
    assert clis.shape(run.events) == clis.shape(clis.sample("gemini-ratelimit-retryafter.jsonl"))


def test_overloaded_is_retried_up_to_max_attempts_then_said(place: Place) -> None:
    """503 UNAVAILABLE is retried up to general.maxAttempts (2 here, default 10), then
    `[API Error: The model is overloaded. …]`, exit 247 (503 mod 256)."""
    with serve(Gemini(Scenario.OVERLOADED)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 247, run.explain()
    assert _error(run) == "[API Error: The model is overloaded. Please try again later.]"
    assert len(stub.received(":streamGenerateContent")) == 2
    assert "Max attempts reached" in run.stderr
    assert clis.shape(run.events) == clis.shape(clis.sample("gemini-overloaded.jsonl"))


def test_context_overflow_quotes_the_token_counts(place: Place) -> None:
    """400 `The input token count (1187433) exceeds the maximum…`: quoted in the result,
    exit 144."""
    with serve(Gemini(Scenario.CONTEXT)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 144, run.explain()
    assert "The input token count (1187433) exceeds the maximum number of tokens allowed " in (
        _error(run)
    )
    assert len(stub.received(":streamGenerateContent")) == 1
    assert clis.shape(run.events) == clis.shape(clis.sample("gemini-context.jsonl"))


def test_a_base_url_without_a_chosen_auth_type_is_refused(place: Place) -> None:
    """GOOGLE_GEMINI_BASE_URL alone makes 0.61.0 pick its `gateway` auth type, which
    headless mode refuses before any request: `Invalid auth method selected.`, exit 41.
    (Hence clis.gemini_settings chooses gemini-api-key.)"""
    with serve(Gemini(Scenario.SUCCESS)) as stub:
        run = clis.run_cli(
            clis.gemini_argv(),
            cwd=place.cwd,
            env=place.env(GEMINI_API_KEY="stub-key", GOOGLE_GEMINI_BASE_URL=stub.url),
        )
    assert run.exit_code == 41, run.explain()
    assert "Invalid auth method selected." in run.stderr
    assert not run.stdout.strip()
    assert not stub.requests


def test_offline_without_credentials_asks_for_an_auth_method(place: Place) -> None:
    """No stub, no key, empty HOME: exit 41 before any request, `Please set an Auth
    method …` on stderr and nothing on stdout (stream-json; json mode would print the
    sample's JSON error on stderr)."""
    run = clis.run_cli(clis.gemini_argv(), cwd=place.cwd, env=place.env(), timeout=60)
    assert run.exit_code == 41, run.explain()
    assert not run.stdout.strip()
    assert (
        f"Please set an Auth method in your {place.home}/.gemini/settings.json or specify one "
        "of the following environment variables before running: GEMINI_API_KEY, "
        "GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA"
    ) in run.stderr


def test_offline_json_mode_error_matches_the_sample(place: Place) -> None:
    """The same offline run with `-o json` writes the sample's error object (session_id,
    error{type, message, code: 41}) to stderr."""
    argv = [a if a != "stream-json" else "json" for a in clis.gemini_argv()]
    run = clis.run_cli(argv, cwd=place.cwd, env=place.env(), timeout=60)
    assert run.exit_code == 41, run.explain()
    expected = (clis.SAMPLES / "gemini-auth-notset.json-mode.stderr.txt").read_text()
    got = run.stderr[run.stderr.index("{") :]
    assert _without_session(got).replace(str(place.home), "$HOME") == _without_session(expected)


def _without_session(text: str) -> str:
    return "\n".join(line for line in text.strip().splitlines() if '"session_id"' not in line)
