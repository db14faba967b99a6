"""Claude Code 2.1.197, run directly with REPORT.md §1's command line against the
Anthropic stub: what it prints for each scenario, and that it still matches the samples."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.agents_real import clis
from tests.agents_real.conftest import Place
from tests.agents_real.stub_anthropic import Anthropic
from tests.agents_real.stub_http import Scenario, serve

pytestmark = pytest.mark.agents

SONNET_COST = 0.021039  # two turns of the stub's usage at claude-sonnet-4-5 prices


def _clock(at: int) -> str:
    """`h:mma` as Claude Code prints a reset time (`4:33am`)."""
    return datetime.fromtimestamp(at, UTC).strftime("%I:%M%p").lstrip("0").lower()


def _run(place: Place, stub_url: str, *extra: str, **env: str) -> clis.Run:
    auth = {"ANTHROPIC_API_KEY": "sk-ant-stub"} if "CLAUDE_CODE_OAUTH_TOKEN" not in env else {}
    return clis.run_cli(
        clis.claude_argv(*extra),
        cwd=place.cwd,
        env=place.env(ANTHROPIC_BASE_URL=stub_url, CLAUDE_CODE_MAX_RETRIES="2", **auth, **env),
    )


def _result(run: clis.Run) -> dict[str, object]:
    results = run.of_type("result")
    assert len(results) == 1, run.explain()
    return results[0]


def test_success_writes_the_file_and_reports_cost_and_usage(place: Place) -> None:
    """The stub's Write call runs, the final answer is the result, cost and usage are the
    two turns' sum, and the event shapes are the sample's."""
    with serve(Anthropic(Scenario.SUCCESS)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 0, run.explain()
    assert (place.cwd / "hello.txt").read_text() == "hello from claude\n"
    result = _result(run)
    assert result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == "Created hello.txt with a greeting."
    assert result["num_turns"] == 2
    assert result["total_cost_usd"] == pytest.approx(SONNET_COST)
    assert result["usage"] == {
        **result["usage"],  # type: ignore[dict-item]
        "input_tokens": 6,
        "cache_creation_input_tokens": 3040,
        "cache_read_input_tokens": 28420,
        "output_tokens": 73,
    }
    init = run.of_type("system")[0]
    assert (init["model"], init["apiKeySource"], init["permissionMode"]) == (
        "claude-sonnet-4-5",
        "ANTHROPIC_API_KEY",
        "acceptEdits",
    )
    assert result["session_id"] == init["session_id"]
    assert clis.shape(run.events) == clis.shape(clis.sample("claude-success.jsonl"))
    # the session-title side request is answered too, free of charge (see the stub)
    assert len(stub.received("/v1/messages")) == 3


def test_invalid_key_is_retried_then_said(place: Place) -> None:
    """A 401 is retried CLAUDE_CODE_MAX_RETRIES times (api_retry authentication_failed),
    then `Invalid API key · Fix external API key`, exit 1."""
    with serve(Anthropic(Scenario.AUTH)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 1, run.explain()
    retries = [e for e in run.of_type("system") if e.get("subtype") == "api_retry"]
    assert [(e["error_status"], e["error"]) for e in retries] == [
        (401, "authentication_failed")
    ] * 2
    result = _result(run)
    assert (result["is_error"], result["api_error_status"]) == (True, 401)
    assert result["result"] == "Invalid API key · Fix external API key"
    assert clis.shape(run.events) == clis.shape(clis.sample("claude-auth.jsonl"))


def test_subscriber_usage_limit_gives_a_rate_limit_event_with_the_reset(place: Place) -> None:
    """Under CLAUDE_CODE_OAUTH_TOKEN a 429 with the unified headers is not retried: a
    rejected rate_limit_event carries resetsAt (unix seconds), the result names the reset
    in UTC. The event may come before system/init (see the next test)."""
    reset_at = clis.reset_in(hours=3)
    with serve(Anthropic(Scenario.QUOTA, reset_at=reset_at)) as stub:
        run = _run(place, stub.url, CLAUDE_CODE_OAUTH_TOKEN="sk-ant-oat01-stub")
    assert run.exit_code == 1, run.explain()
    rejected = [
        e["rate_limit_info"]
        for e in run.of_type("rate_limit_event")
        if e["rate_limit_info"]["status"] == "rejected"
    ]
    assert rejected == [
        {
            "status": "rejected",
            "resetsAt": reset_at,
            "rateLimitType": "five_hour",
            "overageStatus": "rejected",
            "overageDisabledReason": "out_of_credits",
            "isUsingOverage": False,
        }
    ]
    result = _result(run)
    assert result["api_error_status"] == 429
    assert result["result"] == f"You've hit your session limit · resets {_clock(reset_at)} (UTC)"
    assert not [e for e in run.of_type("system") if e.get("subtype") == "api_retry"]
    assert run.of_type("system")[0]["apiKeySource"] == "none"
    assert stub.received("/v1/messages")[0].headers["authorization"] == "Bearer sk-ant-oat01-stub"
    without_limits = [e for e in run.events if e["type"] != "rate_limit_event"]
    expected = [e for e in clis.sample("claude-ratelimit.jsonl") if e["type"] != "rate_limit_event"]
    assert clis.shape(without_limits) == clis.shape(expected)


def test_without_side_traffic_the_limit_event_follows_init_as_in_the_sample(
    place: Place,
) -> None:
    """With CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 no session-title request is made,
    so the order is the sample's: init, rate_limit_event, assistant, result."""
    with serve(Anthropic(Scenario.QUOTA, reset_at=clis.reset_in(hours=3))) as stub:
        run = _run(
            place,
            stub.url,
            CLAUDE_CODE_OAUTH_TOKEN="sk-ant-oat01-stub",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        )
    assert run.exit_code == 1, run.explain()
    assert clis.shape(run.events) == clis.shape(clis.sample("claude-ratelimit.jsonl"))
    assert len(stub.received("/v1/messages")) == 1


def test_api_key_usage_limit_is_a_plain_rejected_request(place: Place) -> None:
    """With an API key the same 429 gives no rate_limit_event: `API Error: Request
    rejected (429) · <message>`, not retried because retry-after is hours away."""
    with serve(Anthropic(Scenario.QUOTA, reset_at=clis.reset_in(hours=3))) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 1, run.explain()
    assert not run.of_type("rate_limit_event")
    result = _result(run)
    assert result["result"] == (
        "API Error: Request rejected (429) · This request would exceed your account's rate "
        "limit. Please try again later."
    )
    assert not [e for e in run.of_type("system") if e.get("subtype") == "api_retry"]
    assert clis.shape(run.events) == clis.shape(clis.sample("claude-ratelimit-apikey.jsonl"))


def test_overloaded_is_retried_then_said(place: Place) -> None:
    """529 is retried (api_retry overloaded), then `API Error: 529 Overloaded…`, naming
    the inference gateway because the base URL is not Anthropic's."""
    with serve(Anthropic(Scenario.OVERLOADED)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 1, run.explain()
    retries = [e for e in run.of_type("system") if e.get("subtype") == "api_retry"]
    assert [(e["error_status"], e["error"]) for e in retries] == [(529, "overloaded")] * 2
    result = _result(run)
    assert result["api_error_status"] == 529
    assert result["result"] == (
        "API Error: 529 Overloaded. This is a server-side issue, usually temporary — try "
        f"again in a moment. If it persists, check your inference gateway (127.0.0.1:{stub.port})."
    )
    assert run.of_type("assistant")[-1]["error"] == "server_error"
    assert clis.shape(run.events) == clis.shape(clis.sample("claude-overloaded.jsonl"))


def test_prompt_too_long_is_said_with_its_token_counts(place: Place) -> None:
    """A 400 `prompt is too long` is not retried: `Prompt is too long · the request is
    ~214237 tokens (limit 200000)…`, terminal_reason prompt_too_long."""
    with serve(Anthropic(Scenario.CONTEXT)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 1, run.explain()
    result = _result(run)
    assert (result["api_error_status"], result["terminal_reason"]) == (400, "prompt_too_long")
    assert str(result["result"]).startswith(
        "Prompt is too long · the request is ~214237 tokens (limit 200000)"
    )
    assert run.of_type("assistant")[-1]["error"] == "invalid_request"
    assert clis.shape(run.events) == clis.shape(clis.sample("claude-context.jsonl"))


def test_offline_without_credentials_is_not_logged_in(place: Place) -> None:
    """No stub, no key, empty HOME: `Not logged in · Please run /login` at once, exit 1."""
    run = clis.run_cli(clis.claude_argv(), cwd=place.cwd, env=place.env(), timeout=60)
    assert run.exit_code == 1, run.explain()
    result = _result(run)
    assert result["result"] == "Not logged in · Please run /login"
    assert result["api_error_status"] is None
    assert run.of_type("system")[0]["apiKeySource"] == "none"
    assert run.seconds < 20
    assert clis.shape(run.events) == clis.shape(clis.sample("claude-auth-notloggedin.jsonl"))
