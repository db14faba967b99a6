"""The same scenarios run THROUGH FREQUENCY: a project whose agent step uses a real CLI
(a named agent of frequency.yaml pointing it at the stub), run by `git freq run` as a real
process; asserted from git alone: state, Freq-Failure class, usage trailers, quota locks.

What is expected follows SPEC §2 (agent fields), §3 (trailers) and §5 (failure classes:
an invalid key is terminal, overloaded retryable, a usage limit `quota` with the agent held
for everyone until the reset; a context overflow is terminal, since the same prompt overflows
again).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.agents_real import clis, project
from tests.agents_real.conftest import Place
from tests.agents_real.stub_anthropic import Anthropic
from tests.agents_real.stub_gemini import Gemini
from tests.agents_real.stub_http import Handler, Scenario, serve
from tests.agents_real.stub_openai import OpenAI
from tests.conftest import Outcome

pytestmark = pytest.mark.agents


CLIS = ("claude", "codex", "gemini")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _stub(cli: str, scenario: Scenario, *, reset_at: int = 0, lifts: bool = False) -> Handler:
    if cli == "claude":
        return Anthropic(scenario, reset_at=reset_at, lifts=lifts)
    if cli == "codex":
        return OpenAI(scenario, reset_at=reset_at)
    return Gemini(scenario)


def _agent(cli: str) -> str:
    """The named agent's name: what Freq-Agent and the quota lock say."""
    return f"{cli}-stub"


def _run_one(
    place: Place, cli: str, stub_url: str, *, oauth: bool = False, once: bool = False
) -> Outcome:
    """Write the project (one subject `x`), then `git freq run --until-idle` (or --once)."""
    name = _agent(cli)
    project.write_project(
        place, use=name, agents={name: project.named_agent(cli, stub_url, oauth=oauth)}
    )
    project.freq(place, "add", project.FACTORY, project.SUBJECT).assert_success()
    return project.freq(place, "run", "--once" if once else "--until-idle")


@pytest.mark.parametrize("cli", CLIS)
def test_success_moves_the_subject_and_records_usage(place: Place, cli: str) -> None:
    """The agent writes hello.txt; the subject reaches `done`; the commit says the agent,
    model, tokens, cost (reported by Claude, estimated from prices otherwise) and session."""
    with serve(_stub(cli, Scenario.SUCCESS)) as stub:
        out = _run_one(place, cli, stub.url)
    out.assert_success()
    assert (place.cwd / "hello.txt").read_text() == f"hello from {cli}\n"
    assert project.subject(place)["state"] == "done"
    end = project.agent_end(place)
    expect = project.SUCCESS[cli]
    # the agent ran in a worktree (outside .git: Claude writes nothing under one); its end
    # queued the edit, which landed on main and the clean checkout followed
    assert end["_subject"] == "f/x: work queued to land on main (attempt 1)"
    assert project.history(place)[-1]["_subject"] == "f/x: work new -> done"
    assert {k: end.get(k) for k in ("Freq-Agent", "Freq-Model", "Freq-To")} == {
        "Freq-Agent": _agent(cli),
        "Freq-Model": expect.model,
        "Freq-To": "done",
    }
    assert (
        int(end["Freq-Tokens-In"]),
        int(end["Freq-Tokens-Out"]),
        int(end["Freq-Tokens-Cached"]),
    ) == (expect.tokens_in, expect.tokens_out, expect.tokens_cached)
    assert end["Freq-Cost-Source"] == expect.cost_source
    cost = (
        0.021039
        if cli == "claude"
        else project.estimate(
            expect.model, expect.tokens_in, expect.tokens_out, expect.tokens_cached
        )
    )
    assert end["Freq-Cost-Usd"] == f"{cost:.6f}"
    assert UUID.match(end["Freq-Session"]), end
    if cli == "codex":  # the thread Codex told the API is the one recorded
        assert stub.received("/v1/responses")[0].headers["thread-id"] == end["Freq-Session"]
    assert project.leaks(place) == []


EXPECTED_CLASS = {
    Scenario.AUTH: "terminal",
    Scenario.OVERLOADED: "retryable",
    Scenario.CONTEXT: "terminal",
}


@pytest.mark.parametrize("scenario", list(EXPECTED_CLASS), ids=lambda s: s.value)
@pytest.mark.parametrize("cli", CLIS)
def test_a_failure_is_recorded_with_its_class_and_parked(
    place: Place, cli: str, scenario: Scenario
) -> None:
    """An invalid key and a context overflow are terminal, overloaded is retryable; with
    one attempt each is final: Freq-Failure says the class, the subject stays in `new`,
    parked in the DLQ with the same class, the attempt still names its agent, and no key
    shows in what was stored."""
    with serve(_stub(cli, scenario)) as stub:
        _run_one(place, cli, stub.url).assert_success()
    expected = EXPECTED_CLASS[scenario]
    end = project.agent_end(place)
    assert end["Freq-Failure"].startswith(f"{expected} ("), end
    assert end["Freq-Agent"] == _agent(cli)
    subj = project.subject(place)
    assert subj["state"] == "new" and subj["parked"], subj
    assert subj["last_error"]["kind"] == expected
    entries = project.dlq(place)
    assert len(entries) == 1 and entries[0]["Freq-Failure"].startswith(f"{expected} ("), entries
    assert project.quota_lock(place, _agent(cli)) is None
    assert project.leaks(place) == []  # Codex's 401 quotes the key: it must come out masked


@pytest.mark.parametrize("cli", ["codex", "gemini", "claude"])
def test_a_usage_limit_holds_the_agent_until_its_reset(place: Place, cli: str) -> None:
    """A usage limit is `quota`: no attempt spent, the subject not parked, and
    refs/frequency/locks/quota:<agent> held until the reset the CLI said (Claude's
    resetsAt, Codex's `try again at`, Gemini's `retry after 3600s`); a second run starts
    nothing while it holds."""
    reset_at = clis.reset_in(hours=3)
    with serve(_stub(cli, Scenario.QUOTA, reset_at=reset_at)) as stub:
        before = datetime.now(UTC)
        _run_one(place, cli, stub.url, oauth=True, once=True).assert_success()
        after = datetime.now(UTC)
        asked = len(stub.requests)
        project.freq(place, "run", "--once").assert_success()
        assert len(stub.requests) == asked, "a held agent was started again"
    end = project.agent_end(place)
    assert end["Freq-Failure"].startswith("quota ("), end
    subj = project.subject(place)
    assert (subj["state"], subj["attempt"], subj.get("parked")) == ("new", 0, None), subj
    lock = project.quota_lock(place, _agent(cli))
    assert lock is not None and lock["name"] == f"quota:{_agent(cli)}"
    expires = project.when(lock["expires_at"])
    if cli == "gemini":  # a delay, counted from when the CLI failed
        assert before + timedelta(seconds=3600) <= expires <= after + timedelta(seconds=3601)
    elif cli == "codex":  # said to the minute: held to the end of that minute
        assert expires == datetime.fromtimestamp(reset_at + 60, UTC), lock
    else:
        assert expires == datetime.fromtimestamp(reset_at, UTC), lock
    why = project.freq(place, "why", project.FACTORY, project.SUBJECT).assert_success().out
    assert f"usage limit of {_agent(cli)} reached; held until " in why


@pytest.mark.parametrize("cli", ["claude"])  # the one CLI that says its reset to the second
def test_quota_lock_lifts_at_the_reset_and_the_step_runs_again(place: Place, cli: str) -> None:
    """With a reset 20 s ahead, one `--until-idle` run waits for it: the quota attempt,
    the lock until resetsAt, then at the reset the same attempt (none was spent) is
    claimed again and succeeds."""
    reset_at = int(time.time()) + 20
    with serve(_stub(cli, Scenario.QUOTA, reset_at=reset_at, lifts=True)) as stub:
        _run_one(place, cli, stub.url, oauth=True).assert_success()
    assert time.time() >= reset_at
    assert project.subject(place)["state"] == "done"
    kinds = [row.get("Freq-Failure", "").split(" ")[0] for row in project.history(place)]
    assert "quota" in kinds, project.history(place)
    lock = project.quota_lock(place, _agent(cli))
    assert lock is not None
    assert project.when(lock["expires_at"]) == datetime.fromtimestamp(reset_at, UTC)
    claims = [row for row in project.history(place) if " claimed (attempt " in row["_subject"]]
    assert [row["Freq-Attempt"] for row in claims] == ["1", "1"], project.history(place)
    assert project.when(claims[1]["Freq-At"]) >= datetime.fromtimestamp(reset_at, UTC)
    assert (place.cwd / "hello.txt").exists()


OFFLINE_CLASS = {"claude": "terminal", "codex": "retryable", "gemini": "terminal"}


@pytest.mark.parametrize("cli", CLIS)
def test_offline_without_credentials_fails_as_the_cli_says(place: Place, cli: str) -> None:
    """The built-in agent (`use: claude|codex|gemini`), no stub, no key, empty HOME:
    Claude is not logged in and Gemini has no auth method (terminal); Codex cannot
    connect (retryable), bounded by `--disable unbounded_connection_retries`."""
    args = ("--disable", "unbounded_connection_retries") if cli == "codex" else ()
    project.write_project(place, use=cli, args=args, timeout="2m")
    project.freq(place, "add", project.FACTORY, project.SUBJECT).assert_success()
    project.freq(place, "run", "--until-idle").assert_success()
    end = project.agent_end(place)
    assert end["Freq-Failure"].startswith(f"{OFFLINE_CLASS[cli]} ("), end
    assert end["Freq-Agent"] == cli
    assert project.subject(place)["parked"]
