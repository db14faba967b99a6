"""Codex CLI 0.171.0, run directly with REPORT.md §1's command line against the Responses
stub (a `model_providers` entry): what it prints for each scenario, against the samples."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.agents_real import clis
from tests.agents_real.conftest import Place
from tests.agents_real.stub_http import Scenario, serve
from tests.agents_real.stub_openai import OpenAI, codex_args

pytestmark = pytest.mark.agents


def _clock(at: int, now: float) -> str:
    """A reset time as Codex prints it in the child's TZ (UTC): `%-I:%M %p` today, else
    `%b %-d<st|nd|rd|th>, %Y %-I:%M %p` (REPORT.md §3, from protocol/src/error.rs)."""
    t, today = datetime.fromtimestamp(at, UTC), datetime.fromtimestamp(now, UTC).date()
    hm = t.strftime("%I:%M %p").lstrip("0")
    if t.date() == today:
        return hm
    th = "th" if 11 <= t.day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(t.day % 10, "th")
    return f"{t:%b} {t.day}{th}, {t.year} {hm}"


def _run(place: Place, stub_url: str, *extra: str) -> clis.Run:
    return clis.run_cli(
        clis.codex_argv(*codex_args(stub_url), *extra),
        cwd=place.cwd,
        env=place.env(OPENAI_API_KEY="sk-stub"),
    )


def _failure(run: clis.Run) -> str:
    """The turn.failed message, checked to equal the last error event's."""
    failed = run.of_type("turn.failed")
    assert len(failed) == 1, run.explain()
    message = str(failed[0]["error"]["message"])
    assert run.of_type("error")[-1]["message"] == message
    return message


def test_success_runs_the_command_and_reports_usage(place: Place) -> None:
    """exec_command writes hello.txt (a command_execution item), the answer is an
    agent_message, and turn.completed sums both calls' usage."""
    with serve(OpenAI(Scenario.SUCCESS)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 0, run.explain()
    assert (place.cwd / "hello.txt").read_text() == "hello from codex\n"
    items = [e["item"] for e in run.of_type("item.completed")]
    assert [i["type"] for i in items] == ["command_execution", "agent_message"]
    assert items[0]["exit_code"] == 0 and "hello from codex" in items[0]["command"]
    assert items[1]["text"] == "Created hello.txt."
    assert run.of_type("turn.completed")[0]["usage"] == {
        "input_tokens": 18240,
        "cached_input_tokens": 16128,
        "cache_write_input_tokens": 0,
        "output_tokens": 57,
        "reasoning_output_tokens": 32,
    }
    assert run.of_type("thread.started")[0]["thread_id"]
    assert clis.shape(run.events) == clis.shape(clis.sample("codex-success.jsonl"))
    assert stub.received("/v1/responses")[0].headers["authorization"] == "Bearer sk-stub"


def test_invalid_key_reconnects_five_times_then_fails(place: Place) -> None:
    """401 gives five `Reconnecting... n/5 (unexpected status 401 …)` errors, then the
    bare message in error and turn.failed, exit 1."""
    with serve(OpenAI(Scenario.AUTH)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 1, run.explain()
    message = _failure(run)
    assert message.startswith("unexpected status 401 Unauthorized: Incorrect API key provided")
    assert message.endswith(f"url: {stub.url}/v1/responses, request id: req_stubauth")
    reconnects = [e["message"] for e in run.of_type("error")][:-1]
    assert [m.split(" (")[0] for m in reconnects] == [f"Reconnecting... {n}/5" for n in range(1, 6)]
    assert clis.shape(run.events) == clis.shape(clis.sample("codex-auth.jsonl"))


def test_usage_limit_names_the_reset_time_and_is_not_retried(place: Place) -> None:
    """429 usage_limit_reached with resets_at: one request, `You've hit your usage limit.
    … try again at <h:mm AM/PM>.` (the apostrophe is U+2019; the time is TZ=UTC local)."""
    reset_at = clis.reset_in(hours=3)
    with serve(OpenAI(Scenario.QUOTA, reset_at=reset_at)) as stub:
        run = _run(place, stub.url)
    said = _clock(reset_at, time.time() - run.seconds)
    assert run.exit_code == 1, run.explain()
    assert _failure(run) == (
        "You\u2019ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), "
        "visit https://chatgpt.com/settings/usage to purchase more credits or try again at "
        f"{said}."
    )
    assert len(stub.received("/v1/responses")) == 1
    assert clis.shape(run.events) == clis.shape(clis.sample("codex-ratelimit.jsonl"))


def test_overloaded_is_retried_silently_then_said(place: Place) -> None:
    """503 server_is_overloaded is retried per request_max_retries (4: five requests, no
    event), then `Selected model is at capacity. Please try a different model.`"""
    with serve(OpenAI(Scenario.OVERLOADED)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 1, run.explain()
    assert _failure(run) == "Selected model is at capacity. Please try a different model."
    assert len(stub.received("/v1/responses")) == 5
    assert clis.shape(run.events) == clis.shape(clis.sample("codex-overloaded.jsonl"))


def test_context_window_exceeded_is_said(place: Place) -> None:
    """A stream ending in response.failed context_length_exceeded: `Codex ran out of room
    in the model's context window. …`, not retried."""
    with serve(OpenAI(Scenario.CONTEXT)) as stub:
        run = _run(place, stub.url)
    assert run.exit_code == 1, run.explain()
    assert _failure(run) == (
        "Codex ran out of room in the model's context window. Start a new thread or clear "
        "earlier history before retrying."
    )
    assert len(stub.received("/v1/responses")) == 1
    assert clis.shape(run.events) == clis.shape(clis.sample("codex-context.jsonl"))


def test_offline_without_credentials_fails_once_retries_are_bounded(place: Place) -> None:
    """No stub, no key, empty HOME, every connection refused: with `--disable
    unbounded_connection_retries` it falls back from WebSockets to HTTPS, reconnects five
    times, and fails `Connection failed: error sending request` (~31 s; unbounded, it
    would wait for the network forever)."""
    run = clis.run_cli(
        clis.codex_argv("--disable", "unbounded_connection_retries"),
        cwd=place.cwd,
        env=place.env(),
        timeout=120,
    )
    assert run.exit_code == 1, run.explain()
    assert _failure(run) == "Connection failed: error sending request"
    fallback = [e["item"] for e in run.of_type("item.completed")]
    assert [i["type"] for i in fallback] == ["error"]
    assert fallback[0]["message"].startswith("Falling back from WebSockets to HTTPS transport.")
    assert clis.shape(run.events) == clis.shape(clis.sample("codex-network-down-bounded.jsonl"))
