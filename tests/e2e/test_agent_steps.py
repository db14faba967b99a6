"""Agent steps end to end: real stand-in CLI processes replaying what the real CLIs printed
(tests/agent_samples/), run by `git freq run`, judged by the adapters, recorded in git."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from freq import ops
from freq.clock import FakeClock
from freq.config import load_config
from freq.loop import Worker
from freq.store import Store
from tests.conftest import FreqRepo

BIN = Path(__file__).resolve().parent.parent / "standins" / "bin"
SAMPLES = Path(__file__).resolve().parent.parent / "agent_samples"


def _settings(agents: str) -> str:
    return f"max_parallel: 2\nagents:\n{agents}"


def _agent(name: str, use: str, **extra: str) -> str:
    lines = [f"  {name}:", f"    use: {use}", f"    bin: {BIN / use}"]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def _factory(fid: str, agent: str, *, step: str = "", retry: str = "{max_attempts: 2}") -> str:
    return (
        f"factory_id: {fid}\n"
        "state: {initial: new, terminal: [done]}\n"
        "steps:\n"
        "  - id: work\n"
        "    from_states: [new]\n"
        "    to_state: done\n"
        f"    agent: {{use: {agent}, prompt: 'Write hello.txt for {{subject}} ({{attempt}}). "
        "{last_error}'}\n"
        f"    retry: {retry}\n"
        f"{step}"
    )


def _project(repo: FreqRepo, agents: str, **factories: str) -> FreqRepo:
    repo.write(".frequency/frequency.yaml", _settings(agents))
    for fid, text in factories.items():
        repo.write(f".frequency/{fid}.yaml", text)
    repo.run("validate").assert_success()
    return repo


def _calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _trailers(repo: FreqRepo, ref: str, *, skip: int = 0) -> dict[str, str]:
    out = repo.git("log", f"--skip={skip}", "-1", "--format=%(trailers:unfold)", ref)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def _subject(repo: FreqRepo, factory: str, name: str) -> dict[str, object]:
    doc = json.loads(repo.run("show", factory, name, "--json").out)["subject"]
    assert isinstance(doc, dict)
    return doc


def _sample(tmp_path: Path, base: str, result: str) -> Path:
    """A copy of a captured success stream whose final `result` text is `result`."""
    lines = []
    for line in (SAMPLES / base).read_text().splitlines():
        doc = json.loads(line)
        if doc.get("type") == "result":
            doc["result"] = result
        lines.append(json.dumps(doc))
    path = tmp_path / f"custom-{base}"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the stand-in CLIs note each invocation (argv, stdin, env)."""
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("STANDIN_LOG", str(path))
    return path


def test_a_claude_success_moves_the_subject_and_records_its_cost(
    repo: FreqRepo, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in prints Claude's real stream: the subject moves, the attempt's commit
    carries agent, model, tokens, the reported cost and the session; stdin was closed."""
    monkeypatch.setenv("STANDIN_WRITE", "hello.txt")
    _project(repo, _agent("writer", "claude", model="claude-sonnet-4-5"), f=_factory("f", "writer"))
    repo.run("add", "f", "a").assert_success()
    repo.run("run", "--until-idle").assert_success()
    assert _subject(repo, "f", "a")["state"] == "done"
    # it ran in a worktree: its end queued the edit, which then landed on main
    assert _trailers(repo, "refs/frequency/subjects/f/a")["Freq-Landed"]
    t = _trailers(repo, "refs/frequency/subjects/f/a~1")
    assert t["Freq-Event"] == "queued"
    assert t["Freq-Agent"] == "writer"
    assert t["Freq-Model"] == "claude-sonnet-4-5"
    assert (t["Freq-Cost-Usd"], t["Freq-Cost-Source"]) == ("0.021039", "reported")
    assert int(t["Freq-Tokens-In"]) > 0 and int(t["Freq-Tokens-Out"]) > 0
    assert t["Freq-Session"] == "1997969a-a9a9-4658-bac8-4524b4947616"
    (call,) = _calls(log)
    argv = call["argv"]
    assert isinstance(argv, list)
    assert "--output-format" in argv and "stream-json" in argv and "--verbose" in argv
    assert "Write hello.txt for a (1). " in " ".join(argv)
    assert call["stdin"] in ("closed", "devnull", "/dev/null") or "closed" in str(call["stdin"])
    # main is checked out and clean: it follows the landing, as git's updateInstead does
    assert (repo.path / "hello.txt").exists()
    assert repo.git("log", "-1", "--format=%s", "main").strip() == "f/a: work (attempt 1)"


def test_codex_cost_is_estimated_from_the_price_table(repo: FreqRepo, log: Path) -> None:
    """Codex reports tokens only: the cost comes from `prices:` and is marked estimated."""
    agents = _agent(
        "reviewer",
        "codex",
        model="gpt-5.5",
        prices="{gpt-5.5: {input: 1.25, output: 10, cached: 0.125}}",
    )
    _project(repo, agents, f=_factory("f", "reviewer"))
    repo.run("add", "f", "a").assert_success()
    repo.run("run", "--until-idle").assert_success()
    t = _trailers(repo, "refs/frequency/subjects/f/a")
    assert (t["Freq-Agent"], t["Freq-Model"], t["Freq-Cost-Source"]) == (
        "reviewer",
        "gpt-5.5",
        "estimated",
    )
    tokens_in, out, cached = (int(t[f"Freq-Tokens-{k}"]) for k in ("In", "Out", "Cached"))
    expected = ((tokens_in - cached) * 1.25 + cached * 0.125 + out * 10) / 1e6
    assert float(t["Freq-Cost-Usd"]) == pytest.approx(expected, abs=1e-6)
    (call,) = _calls(log)
    assert call["stdin"] != "pipe"  # codex hangs on an open stdin pipe


@pytest.mark.parametrize(
    ("use", "sample", "failure", "words"),
    [
        ("claude", "claude-auth-notloggedin.jsonl", "terminal", "Not logged in"),
        ("claude", "claude-context.jsonl", "terminal", "Prompt is too long"),
        ("claude", "claude-permission-denied.jsonl", "terminal", "Write"),
        ("codex", "codex-context.jsonl", "terminal", "context window"),
        ("gemini", "gemini-auth.jsonl", "terminal", "API key not valid"),
        ("gemini", "gemini-untrusted.stderr.txt", "terminal", "trusted"),
    ],
)
def test_a_terminal_class_parks_the_subject_with_its_reason(
    repo: FreqRepo,
    log: Path,
    monkeypatch: pytest.MonkeyPatch,
    use: str,
    sample: str,
    failure: str,
    words: str,
) -> None:
    """Judged from the CLI's own output, whatever its exit code (permission denials exit 0):
    a terminal failure is parked at once in the DLQ, the reason naming what was seen."""
    monkeypatch.setenv("STANDIN_SAMPLE", sample)
    _project(repo, _agent("a1", use), f=_factory("f", "a1", retry="{max_attempts: 3}"))
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    t = _trailers(repo, "refs/frequency/subjects/f/s", skip=1)  # the failure, under the parking
    assert t["Freq-Failure"].startswith(f"{failure} ("), t
    assert words.lower() in t["Freq-Failure"].lower(), t["Freq-Failure"]
    assert len(_calls(log)) == 1
    rows = json.loads(repo.run("dlq", "list", "--json").out)
    assert [r["subject"] for r in rows] == ["s"]


def test_an_overloaded_api_is_retried_with_backoff(
    repo: FreqRepo, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """529 overloaded is retryable: the subject waits out its backoff, attempt 1 spent."""
    monkeypatch.setenv("STANDIN_SAMPLE", "claude-overloaded.jsonl")
    _project(
        repo,
        _agent("a1", "claude"),
        f=_factory("f", "a1", retry="{max_attempts: 3, backoff: {initial: 1h, max: 2h}}"),
    )
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--once").assert_success()
    subj = _subject(repo, "f", "s")
    assert (subj["state"], subj["attempt"], subj["not_before"] is not None) == ("new", 1, True)
    assert _trailers(repo, "refs/frequency/subjects/f/s")["Freq-Failure"].startswith("retryable")


def test_a_usage_limit_holds_the_agent_for_every_worker_until_its_reset(
    repo: FreqRepo, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claude's rate_limit_event (resetsAt) holds the agent in git for every step using it,
    in two factories and two workers, spending no attempt; after the reset on the fake
    clock both subjects run."""
    monkeypatch.setenv("STANDIN_SAMPLE", "claude-ratelimit.jsonl")
    _project(repo, _agent("writer", "claude"), f=_factory("f", "writer"), g=_factory("g", "writer"))
    repo.run("add", "f", "a").assert_success()
    clock = FakeClock(datetime(2026, 12, 1, 20, 0, tzinfo=UTC))  # the sample resets at 23:08:08
    cfg = load_config(repo.path)
    workers = [
        Worker(
            Store.discover(repo.path, clock=clock),
            cfg,
            clock=clock,
            worker=f"h:{i}:1",
            rng=random.Random(i),
        )
        for i in (1, 2)
    ]
    try:
        workers[0].run(once=True)
        assert len(_calls(log)) == 1
        subj = _subject(repo, "f", "a")
        assert (subj["attempt"], subj["not_before"]) == (0, "2026-12-01T23:08:08.000Z")
        lock = repo.git("log", "-1", "--format=%B", "refs/frequency/locks/quota%3Awriter")
        assert "Freq-Expires: 2026-12-01T23:08:08.000Z" in lock
        repo.run("add", "g", "b").assert_success()
        workers[1].run(once=True)
        assert len(_calls(log)) == 1  # the other worker and factory are held too
        app = ops.App(repo.path, clock=clock)
        why = ops.why(app, "g", "b")
        assert why.kind == "quota"
        assert "usage limit of writer reached; held until 2026-12-01T23:08:08" in why.reasons[0]
        held = ops.why(app, "f", "a").reasons[0]
        assert held == "held until 2026-12-01T23:08:08Z: attempt 1 hit a usage limit", held
        assert ops.status(app).quotas == (("writer", "2026-12-01T23:08:08.000Z"),)
        monkeypatch.setenv("STANDIN_SAMPLE", "claude-success.jsonl")
        clock.advance(timedelta(hours=3, minutes=9).total_seconds())
        workers[1].run(once=True)
    finally:
        for w in workers:
            w.store.close()
    assert len(_calls(log)) == 3
    for fid, name in (("f", "a"), ("g", "b")):
        assert _subject(repo, fid, name)["state"] == "done"
        # the held attempt was given back: the one that succeeded is attempt 1
        done = _trailers(repo, f"refs/frequency/subjects/{fid}/{name}")
        assert (done["Freq-Attempt"], done["Freq-To"]) == ("1", "done")


def test_resume_continues_the_failed_attempts_session_with_the_failure(
    repo: FreqRepo, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """max turns is retryable; with resume: true the retry runs `claude --resume SESSION`
    with the failure as its prompt (the session recorded on the failed attempt)."""
    monkeypatch.setenv("STANDIN_SAMPLE", "claude-maxturns.jsonl")
    factory = _factory("f", "a1", retry="{max_attempts: 2, backoff: {initial: 0s}}").replace(
        "prompt: 'Write", "resume: true, prompt: 'Write"
    )
    _project(repo, _agent("a1", "claude"), f=factory)
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    first, second = _calls(log)
    argv = second["argv"]
    assert isinstance(argv, list)
    resumed = argv[argv.index("--resume") + 1]
    assert "--resume" not in first["argv"]  # type: ignore[operator]
    sessions = repo.git(
        "log", "--format=%(trailers:key=Freq-Session,valueonly)", "refs/frequency/subjects/f/s"
    ).split()
    assert resumed in sessions
    assert "The last attempt failed" in " ".join(argv)


def test_verify_fails_the_attempt_and_its_output_reaches_the_next_prompt(
    repo: FreqRepo, log: Path
) -> None:
    """The agent succeeds but `verify:` does not: the attempt fails, and the next attempt's
    prompt carries verify's output as {last_error}."""
    step = "    verify: \"echo 'tests: 2 failed (test_hello)'; exit 1\"\n"
    _project(
        repo,
        _agent("a1", "claude"),
        f=_factory("f", "a1", step=step, retry="{max_attempts: 2, backoff: {initial: 0s}}"),
    )
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    calls = _calls(log)
    assert len(calls) == 2
    assert "tests: 2 failed (test_hello)" in " ".join(calls[1]["argv"])  # type: ignore[arg-type]
    assert "tests: 2 failed" not in " ".join(calls[0]["argv"])  # type: ignore[arg-type]
    subj = _subject(repo, "f", "s")
    assert subj["parked"] is not None


def test_an_agent_that_asks_parks_the_subject_as_needs_human(
    repo: FreqRepo, log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `freq:ask QUESTION` line in the agent's final message parks the subject as
    needs_human; `dlq show` puts the question first."""
    sample = _sample(
        tmp_path, "claude-success.jsonl", "I need a decision.\nfreq:ask Postgres or SQLite?"
    )
    monkeypatch.setenv("STANDIN_SAMPLE", str(sample))
    _project(repo, _agent("a1", "claude"), f=_factory("f", "a1"))
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    shown = repo.run("dlq", "show", "f#1").out.splitlines()
    assert shown[1] == "  question: Postgres or SQLite?"
    assert "needs_human" in shown[3]


def test_a_missing_binary_is_terminal_and_named(repo: FreqRepo) -> None:
    """An agent whose program does not exist fails terminally, naming the program."""
    repo.write(
        ".frequency/frequency.yaml",
        _settings("  a1:\n    use: claude\n    bin: /nonexistent/claude-cli\n"),
    )
    repo.write(".frequency/f.yaml", _factory("f", "a1"))
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    t = _trailers(repo, "refs/frequency/subjects/f/s", skip=1)
    assert t["Freq-Failure"] == (
        "terminal (could not start '/nonexistent/claude-cli': No such file or directory: "
        "install it, or name it with bin: in frequency.yaml)"
    )


def test_an_agent_that_stops_printing_events_is_ended_as_stalled(
    repo: FreqRepo, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No new structured event for stall_timeout: the CLI's group is killed and the attempt
    is retryable (`stalled`), long before the step timeout."""
    monkeypatch.setenv("STANDIN_HANG", "1")
    factory = _factory("f", "a1", step="    timeout: 10m\n").replace(
        "prompt: 'Write", "stall_timeout: 1s, prompt: 'Write"
    )
    _project(repo, _agent("a1", "codex"), f=factory)
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--once").assert_success()
    t = _trailers(repo, "refs/frequency/subjects/f/s")
    assert t["Freq-Failure"].startswith("retryable (stalled: no event for 1s"), t


def test_secrets_never_reach_the_log_or_git(
    repo: FreqRepo, log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent that prints its API key: the key is masked in the step log, the output
    tail in git and every trailer."""
    secret = "sk-test-0123456789abcdef"
    sample = _sample(tmp_path, "claude-success.jsonl", f"my key is {secret}")
    monkeypatch.setenv("STANDIN_SAMPLE", str(sample))
    agents = _agent("a1", "claude", env=f"{{ANTHROPIC_API_KEY: {secret}}}")
    _project(repo, agents, f=_factory("f", "a1"))
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    logs = list((repo.path / ".git" / "frequency" / "logs").rglob("*.log"))
    assert logs and all(secret not in p.read_text() for p in logs)
    assert any("[redacted]" in p.read_text() for p in logs)
    everything = repo.git("log", "-p", "--format=%B", "--glob=refs/frequency")
    assert secret not in everything
    assert "my key is [redacted]" in repo.run("show", "f", "s").out


def test_a_budget_caps_claude_and_stops_new_attempts(
    repo: FreqRepo, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A factory budget: Claude gets --max-budget-usd from what is left; once the recorded
    spend reaches it, no new attempt starts and `why` says so."""
    factory = _factory("f", "a1").replace(
        "steps:\n", "limits: {budget: {usd: 0.03, per: day}}\nsteps:\n"
    )
    _project(repo, _agent("a1", "claude"), f=factory)
    repo.write(".frequency/frequency.yaml", _settings(_agent("a1", "claude")).replace("2", "1", 1))
    repo.run("add", "f", "a", "b", "c").assert_success()
    repo.run("run", "--until-idle").assert_success()
    left = []
    for call in _calls(log):
        argv = call["argv"]
        assert isinstance(argv, list)
        left.append(float(argv[argv.index("--max-budget-usd") + 1]))
    assert left == pytest.approx([0.03, 0.03 - 0.021039])
    # one at a time: $0.021 spent leaves $0.009, so b starts; after b the budget is spent
    states = {n: _subject(repo, "f", n)["state"] for n in "abc"}
    assert sorted(states.values()) == ["done", "done", "new"]
    waiting = next(n for n, s in states.items() if s == "new")
    assert "budget of factory f reached" in repo.run("why", "f", waiting).out


PROMPTER = (
    "printf 'Workspace out of credits. Request more from your workspace owner? [y/N] '; "
    'read a; echo "answered $a"; [ "$a" = n ]'
)


def _tty_agent(respond: str) -> str:
    return (
        "  asker:\n"
        "    use: command\n"
        f"    args: [sh, -c, {json.dumps(PROMPTER)}]\n"
        "    tty: true\n"
        f"    respond: {respond}\n"
        "    stall_timeout: 1s\n"
    )


def test_a_tty_agent_has_its_prompt_answered_by_a_respond_rule(repo: FreqRepo) -> None:
    """tty: true runs the CLI under a pseudo-terminal; a send rule answers its [y/N]."""
    _project(
        repo,
        _tty_agent("[{expect: 'out of credits.*\\[y/N\\]', send: n}]"),
        f=_factory("f", "asker"),
    )
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    assert _subject(repo, "f", "s")["state"] == "done"
    log = next((repo.path / ".git" / "frequency" / "logs").rglob("work-1-*.log")).read_text()
    assert "answered n" in log


def test_a_tty_prompt_no_rule_answers_parks_the_subject_with_the_screen(repo: FreqRepo) -> None:
    """A prompt no rule matches: after stall_timeout the attempt is needs_human, and the
    question is the screen's last line, never a hang until the step timeout."""
    _project(repo, _tty_agent("[{expect: 'never printed', send: y}]"), f=_factory("f", "asker"))
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    shown = repo.run("dlq", "show", "f#1").out.splitlines()
    assert shown[1].startswith("  question: Workspace out of credits."), shown


def test_diagnose_appends_a_root_cause_and_fix_hands_it_to_the_next_attempt(
    repo: FreqRepo, log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dlq diagnose` runs the diagnose agent on the failure and appends its root cause as
    a new entry linked to it; `dlq fix` requeues with it as {diagnosis}."""
    monkeypatch.setenv("STANDIN_SAMPLE", "claude-auth-notloggedin.jsonl")
    cause = _sample(
        tmp_path, "claude-success.jsonl", "The CLI is not logged in.\nRun claude /login."
    )
    agents = _agent("a1", "claude") + _agent(
        "diagnose", "claude", env=f"{{STANDIN_SAMPLE: {cause}}}"
    )
    factory = _factory("f", "a1").replace("{last_error}'", "{last_error} {diagnosis}'")
    _project(repo, agents, f=factory)
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    assert (
        repo.run("dlq", "fix", "f#1")
        .assert_failure()
        .err.startswith("git freq: f#1 has no diagnosis yet; nothing was requeued")
    )
    out = repo.run("dlq", "diagnose", "f#1").assert_success().out
    assert out.splitlines()[:2] == [
        "f#2: diagnosis of f#1 by diagnose, $0.0210",
        "  root cause: The CLI is not logged in.",
    ]
    diag_prompt = " ".join(_calls(log)[-1]["argv"])  # type: ignore[arg-type]
    assert "Not logged in" in diag_prompt and "Factory: f  Subject: s  Step: work" in diag_prompt
    assert "diagnosis (f#2" in repo.run("dlq", "show", "f#1").out
    entry = repo.git("log", "-1", "--format=%B", "refs/frequency/dlq/f")
    assert "Freq-Event: dlq-diagnosis" in entry and "Freq-Diagnoses: f#1" in entry
    monkeypatch.setenv("STANDIN_SAMPLE", "claude-success.jsonl")
    repo.run("dlq", "fix", "f#1").assert_success()
    repo.run("run", "--until-idle").assert_success()
    assert _subject(repo, "f", "s")["state"] == "done"
    assert "The CLI is not logged in.\nRun claude /login." in " ".join(_calls(log)[-1]["argv"])  # type: ignore[arg-type]


RECONNECTING = """\
import json, sys, time
print(json.dumps({"type": "thread.started", "thread_id": "t-1"}), flush=True)
print(json.dumps({"type": "turn.started"}), flush=True)
for i in range(1, 10_000):
    msg = f"Reconnecting... waiting for network ({i})"
    print(json.dumps({"type": "error", "message": msg}), flush=True)
    time.sleep(0.2)
"""


def test_a_codex_that_reconnects_for_ever_is_ended_by_the_stall_timeout(repo: FreqRepo) -> None:
    """Codex offline prints `Reconnecting...` error events for ever: they are not progress,
    so stall_timeout ends the attempt (retryable), long before the step timeout."""
    script = repo.write("offline-codex.py", RECONNECTING)
    launcher = repo.write("offline-codex", f'#!/bin/sh\nexec python3 {script} "$@"\n')
    launcher.chmod(0o755)
    agents = f"  offline:\n    use: codex\n    bin: {launcher}\n    stall_timeout: 1s\n"
    _project(repo, agents, f=_factory("f", "offline", step="    timeout: 10m\n"))
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--once").assert_success()
    t = _trailers(repo, "refs/frequency/subjects/f/s")
    assert t["Freq-Failure"].startswith("retryable (stalled: no event for 1s"), t


def test_a_command_agent_exit_code_can_choose_the_outcome(repo: FreqRepo) -> None:
    """`outcomes:` maps a command agent's own exit code to a state, as for `run:`."""
    agents = "  rev:\n    use: command\n    args: [sh, -c, 'echo changes needed; exit 3']\n"
    factory = _factory("f", "rev", step="    outcomes: {3: back}\n")
    _project(repo, agents, f=factory.replace("from_states: [new]", "from_states: [new, back]"))
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--once").assert_success()
    assert _subject(repo, "f", "s")["state"] == "back"


def test_why_shows_the_question_a_step_asked(repo: FreqRepo) -> None:
    """`why` puts the question of a needs_human failure first."""
    agents = "  asker:\n    use: command\n    args: [sh, -c, 'echo freq:ask Which port?']\n"
    _project(repo, agents, f=_factory("f", "asker"))
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    assert repo.run("why", "f", "s").out.splitlines()[1].startswith("  - asked: Which port?; ")


def test_validate_reads_each_prompt_file(repo: FreqRepo) -> None:
    """A prompt_file that is missing or holds an unknown field is refused by validate,
    one line each, before any attempt is spent on it; one that renders is accepted."""
    factory = _factory("f", "a1").replace(
        "prompt: 'Write hello.txt for {subject} ({attempt}). {last_error}'",
        "prompt_file: prompts/work.md",
    )
    repo.write(".frequency/frequency.yaml", _settings(_agent("a1", "claude")))
    repo.write(".frequency/f.yaml", factory)
    res = repo.run("validate").assert_failure()
    assert res.err == (
        ".frequency/f.yaml:4: $.steps[0].agent.prompt_file: prompts/work.md: "
        "No such file or directory\n"
    )
    repo.write("prompts/work.md", "Implement {subjct}\n")
    assert "unknown field {subjct}" in repo.run("validate").assert_failure().err
    repo.write("prompts/work.md", "Implement {subject}\n")
    repo.run("validate").assert_success()


def test_verify_checks_a_tty_agents_work_too(repo: FreqRepo) -> None:
    """`verify:` runs after an agent under a pseudo-terminal succeeds, as after a piped one."""
    step = "    verify: \"echo 'no tests found'; exit 1\"\n    retry: {max_attempts: 1}\n"
    factory = _factory("f", "asker", retry="{max_attempts: 1}").replace(
        "    retry: {max_attempts: 1}\n", step
    )
    _project(
        repo,
        _tty_agent("[{expect: 'out of credits.*\\[y/N\\]', send: n}]"),
        f=factory,
    )
    repo.run("add", "f", "s").assert_success()
    repo.run("run", "--until-idle").assert_success()
    t = _trailers(repo, "refs/frequency/subjects/f/s", skip=1)
    assert t["Freq-Event"] == "failed" and t["Freq-Exit"] == "1", t
    assert "no tests found" in repo.run("show", "f", "s").out
