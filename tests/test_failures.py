"""Failure handling end to end: retries, the dead-letter queue, requeue, quota, why."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from freq.clock import SystemClock
from freq.config import load_config
from freq.dlq import Dlq, Entry
from freq.loop import Worker
from freq.planner import plan
from freq.store import Store

from .conftest import FreqRepo

NO_WAIT = "retry: {max_attempts: MAX, backoff: {initial: 0s, factor: 1, max: 0s, jitter: 0}}"


def _factory(run: str, *, max_attempts: int = 3, fields: str = "") -> str:
    """A one-step factory; `fields` are more YAML lines for the step (indented 4)."""
    retry = NO_WAIT.replace("MAX", str(max_attempts))
    head = textwrap.dedent(f"""
        factory_id: f
        state: {{initial: new, terminal: [done, failed]}}
        steps:
          - id: work
            from_states: [new]
            to_state: done
            {retry}
        """)
    more = "".join(f"    {line}\n" for line in fields.splitlines() if line.strip())
    return head + more + f"    run: '{run}'\n"


def _subject(r: FreqRepo, name: str = "x") -> dict:  # type: ignore[type-arg]
    return json.loads(r.run("show", "f", name, "--json").assert_success().out)["subject"]  # type: ignore[no-any-return]


def _failures(r: FreqRepo, name: str = "x") -> list[str]:
    out = r.git(
        "log",
        "--reverse",
        "--format=%(trailers:key=Freq-Failure,valueonly)",
        f"refs/frequency/subjects/f/{name}",
    )
    return [ln for ln in out.splitlines() if ln.strip()]


def test_exhausted_retries_land_in_the_dlq_exactly_once(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Two attempts fail differently; the budget is spent; one DLQ entry; why says so."""
    r = freq_repo(
        {
            ".frequency/f.yaml": _factory(
                'echo "attempt $FREQ_ATTEMPT: connection refused by "'
                '"host-$FREQ_ATTEMPT$FREQ_ATTEMPT"; '
                'echo "step $FREQ_ATTEMPT" | tr 12 ab; exit 1',
                max_attempts=2,
            )
        }
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    r.run("run", "--until-idle").assert_success()  # nothing more happens on a second run
    rows = json.loads(r.run("dlq", "list", "--json").assert_success().out)
    assert [(row["id"], row["subject"], row["attempt"]) for row in rows] == [("f#1", "x", 2)]
    assert rows[0]["reason"] == "pattern: connection error; retries exhausted (2 of 2)"
    subj = _subject(r)
    assert (subj["state"], subj["parked"]) == ("new", "f#1")
    why = r.run("why", "f", "x").assert_success().out
    assert why == (
        "f/x [new]:\n  - parked in the dead-letter queue as f#1: work attempt 2 "
        "failed, retryable (pattern: connection error; retries exhausted (2 of 2)); "
        "requeue with `git freq dlq requeue f#1`\n"
    )
    assert r.git("log", "--format=%s", "refs/frequency/dlq/f").splitlines() == [
        "dlq f#1: f/x work attempt 2 (retryable: pattern: connection error; "
        "retries exhausted (2 of 2))"
    ]
    assert (
        r.git("show", "refs/frequency/dlq/f:output.log")
        == "attempt 2: connection refused by host-22\nstep b\n"
    )
    status = json.loads(r.run("status", "--json").out)["factories"][0]
    assert status["parked"] == 1


def test_same_error_three_times_is_terminal_by_fingerprint(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """With 5 attempts allowed, the same 503 three times in a row is terminal at attempt 3."""
    r = freq_repo(
        {
            ".frequency/f.yaml": _factory(
                'echo "$(date +%s%N) upstream 503 for request $RANDOM$RANDOM"; exit 1',
                max_attempts=5,
            )
        }
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    kinds = [f.split(" ")[0] for f in _failures(r)]
    assert kinds == ["retryable", "retryable", "terminal"]
    assert _failures(r)[-1].startswith("terminal (repeated: same error 3 times in a row")
    (row,) = json.loads(r.run("dlq", "list", "--json").out)
    assert (row["failure_class"], row["attempt"]) == ("terminal", 3)


def test_different_transient_errors_stay_retryable(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Three different transient errors are retried; the fourth attempt succeeds."""
    script = (
        'case $FREQ_ATTEMPT in 1) echo "rate limit";; 2) echo "HTTP 503";; '
        '3) echo "connection reset";; *) exit 0;; esac; exit 1'
    )
    r = freq_repo({".frequency/f.yaml": _factory(script, max_attempts=4)})
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _failures(r) == [
        "retryable (pattern: rate limit)",
        "retryable (pattern: server error 5xx)",
        "retryable (pattern: connection error)",
    ]
    assert _subject(r)["state"] == "done"
    assert json.loads(r.run("dlq", "list", "--json").out) == []


def test_classify_rule_overrides_inference_and_on_terminal_moves(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A rule makes a rate limit terminal; on_terminal moves the subject to `failed`."""
    r = freq_repo(
        {
            ".frequency/f.yaml": _factory(
                'echo "rate limit"; exit 1',
                fields=("on_terminal: failed\nclassify: [{match: 'rate limit', as: terminal}]"),
            )
        }
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _failures(r) == ["terminal (classify rule 1: match 'rate limit')"]
    subj = _subject(r)
    assert (subj["state"], subj["parked"], subj["last_error"]["dlq"]) == ("failed", None, "f#1")
    last = r.git("log", "-1", "--format=%s", "refs/frequency/subjects/f/x").strip()
    assert last == "f/x: work parked in dead-letter queue -> failed"


def test_requeue_restores_and_a_second_requeue_is_refused(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Requeue appends a record and returns the subject with a fresh budget, once."""
    r = freq_repo(
        {".frequency/f.yaml": _factory('test -f ok || { echo "permission denied"; exit 1; }')}
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    assert _subject(r)["parked"] == "f#1"
    commit = r.git("rev-parse", "refs/frequency/dlq/f").strip()
    shown = r.run("dlq", "show", commit[:8]).assert_success().out
    assert shown.splitlines()[0] == f"f#1 ({commit[:12]})  f/x"
    assert "  class:    terminal (pattern: permission denied)" in shown
    (r.path / "ok").write_text("")
    res = r.run("dlq", "requeue", "f#1", "--reason", "granted access").assert_success()
    assert res.out == "requeued f#1 as f#2: f/x -> new\n"
    subj = _subject(r)
    assert (subj["state"], subj["attempt"], subj["parked"], subj["last_error"]) == (
        "new",
        0,
        None,
        None,
    )
    again = r.run("dlq", "requeue", "f#1").assert_failure()
    assert again.err.startswith("git freq: f#1 was already requeued as f#2 at ")
    r.run("run", "--until-idle").assert_success()
    assert _subject(r)["state"] == "done"
    assert r.git("log", "--format=%s", "refs/frequency/dlq/f").splitlines() == [
        "dlq f#2: requeue f#1 (f/x)",
        "dlq f#1: f/x work attempt 1 (terminal: pattern: permission denied)",
    ]
    assert json.loads(r.run("dlq", "list", "--json").out) == []
    assert len(json.loads(r.run("dlq", "list", "--all", "--json").out)) == 1
    unknown = r.run("dlq", "show", "f#9").assert_failure()
    assert unknown.err == "git freq: no dead-letter entry 'f#9'; see `git freq dlq list f`\n"


def test_crash_between_dlq_entry_and_park_is_repaired_once(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A final failure recorded but not parked: the next planner parks it, reusing an entry
    already appended for the same failing commit instead of writing a second one."""
    r = freq_repo({".frequency/f.yaml": _factory('echo "permission denied"; exit 1')})
    r.run("add", "f", "x").assert_success()
    store = Store.discover(r.path, clock=SystemClock())
    cfg = load_config(r.path)
    ex = Worker(store, cfg, clock=SystemClock(), worker="h:1:1", rng=random.Random(1))
    start = plan(cfg, store.snapshot(), now=SystemClock().now()).starts[0]
    lease = ex.claims.claim(start)
    assert lease is not None
    # the step fails; record it the way _record does, but stop before parking
    ex.repair.after_failure = lambda *a, **k: None  # type: ignore[method-assign]
    ex.attempts.execute(lease)
    subj, tip = store.read_subject("f", "x")
    assert subj.last_error is not None and subj.last_error.final and subj.parked is None
    Dlq(store, SystemClock()).append(
        Entry(
            id="",
            seq=0,
            kind="entry",
            factory="f",
            subject="x",
            at=SystemClock().now(),
            step="work",
            attempt=1,
            state="new",
            failure_class="terminal",
            reason="as recorded",
            subject_commit=tip,
        ),
        b"permission denied\n",
    )
    store.close()
    r.run("run", "--until-idle").assert_success()
    rows = json.loads(r.run("dlq", "list", "--json").out)
    assert [(row["id"], row["reason"]) for row in rows] == [("f#1", "as recorded")]
    assert _subject(r)["parked"] == "f#1"


def test_quota_holds_the_step_without_spending_an_attempt(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A usage limit: no attempt spent, the step held for every subject until the reset."""
    r = freq_repo(
        {
            ".frequency/f.yaml": _factory(
                'echo "usage limit; try again in 30 minutes"; exit 1',
                fields="classify: [{match: 'usage limit', as: quota}]",
            )
        }
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--once").assert_success()
    subj = _subject(r)
    assert (subj["attempt"], subj["last_error"]["kind"]) == (0, "quota")
    r.run("add", "f", "y").assert_success()
    why = json.loads(r.run("why", "f", "y", "--json").out)
    assert why["kind"] == "quota"
    assert why["reasons"][0].startswith("usage limit of f.work reached; held until ")
    locks = json.loads(r.run("locks", "--json").out)
    assert [row["name"] for row in locks] == ["quota:f.work"]


def test_needs_human_parks_with_the_question(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """An agent's question goes into the DLQ entry and `dlq show`."""
    r = freq_repo(
        {
            ".frequency/f.yaml": _factory(
                'echo "Thinking..."; echo "Should I drop the legacy table?"; exit 3',
                fields="classify: [{exit: 3, as: needs_human}]",
            )
        }
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    shown = json.loads(r.run("dlq", "show", "f#1", "--json").assert_success().out)
    assert shown["question"] == "Should I drop the legacy table?"
    assert shown["entry"]["failure_class"] == "needs_human"


def test_timeout_is_recorded_retryable_and_kills_the_grandchild(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A step over its timeout: its whole group dies, the failure says `timed out`."""
    pidfile = tmp_path / "child.pid"
    r = freq_repo(
        {
            ".frequency/f.yaml": _factory(
                f"sleep 300 & echo $! > {pidfile}; wait", max_attempts=1, fields="timeout: 1s"
            )
        }
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    err = _subject(r)["last_error"]
    assert (err["reason"], err["kind"]) == ("timed out after 1s", "retryable")
    assert _failures(r) == ["retryable (timeout; retries exhausted (1 of 1))"]
    child = int(pidfile.read_text())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the background grandchild outlived the timeout")


APPENDER = """
import sys
from datetime import UTC, datetime
from freq.clock import SystemClock
from freq.dlq import Dlq, Entry
from freq.store import Store
store = Store.discover(sys.argv[1], clock=SystemClock())
q = Dlq(store, SystemClock())
print("ready", flush=True)
for i in range(100000):
    q.append(Entry(id="", seq=0, kind="entry", factory="f", subject=f"s{i}",
                   at=datetime.now(UTC), step="w", attempt=1, state="new",
                   failure_class="terminal", reason="x" * 2000, subject_commit=f"{i:040x}"),
             b"line\\n" * 200)
"""


@pytest.mark.e2e
def test_killed_while_appending_leaves_whole_entries(repo: FreqRepo) -> None:
    """SIGKILL mid-append, several times: every entry in the chain is whole, the chain is
    contiguous, and git fsck is clean."""
    for _ in range(3):
        with subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(repo.path)], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            time.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
    repo.git("fsck", "--strict")
    commits = repo.git("rev-list", "--first-parent", "refs/frequency/dlq/f").split()
    assert len(commits) > 3
    seqs = []
    for c in commits:
        entry = json.loads(repo.git("show", f"{c}:entry.json"))
        assert repo.git("show", f"{c}:output.log") == "line\n" * 200
        seqs.append(entry["seq"])
    assert seqs == list(range(len(commits), 0, -1))
