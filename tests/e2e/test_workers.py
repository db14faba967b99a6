"""Many real `git freq run` processes on one repository: caps, leases, locks, pause, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import FreqRepo

pytestmark = [pytest.mark.e2e, pytest.mark.git]

LOGGER = 'echo "{what} $(date +%s.%N) $FREQ_SUBJECT $FREQ_STEP $FREQ_ATTEMPT $$" >> "$LOG"'


def _step(body: str) -> str:
    return f"{LOGGER.format(what='start')}; {body}; {LOGGER.format(what='end')}"


def _spawn(repo: FreqRepo, *args: str, log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "LOG": str(log)}
    return subprocess.Popen(
        [sys.executable, "-m", "freq", *args],
        cwd=repo.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _one_step(freq_repo, body: str) -> FreqRepo:  # type: ignore[no-untyped-def]
    """A factory `f` of one step, `work` (new -> done), that logs its start and end around
    the shell `body`."""
    return freq_repo(  # type: ignore[no-any-return]
        {
            ".frequency/f.yaml": f"""
        factory_id: f
        state: {{initial: new, terminal: [done]}}
        steps:
          - id: work
            from_states: [new]
            to_state: done
            run: '{_step(body)}'
        """
        }
    )


def _events(log: Path) -> list[tuple[str, float, str, str, int]]:
    rows = []
    for line in log.read_text().splitlines():
        what, t, subject, step, attempt, _pid = line.split()
        rows.append((what, float(t), subject, step, int(attempt)))
    return rows


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1])
    )
    live = peak = 0
    for _, d in points:
        live += d
        peak = max(peak, live)
    return peak


def _wait_for(pred, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_four_workers_200_subjects_never_exceed_a_cap(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """4 processes, 200 subjects, 3 steps: no attempt twice, all done, every cap held."""
    log = tmp_path / "steps.log"
    r = freq_repo(
        {
            ".frequency/frequency.yaml": "max_parallel: 4\nlease: {ttl: 20s}\n",
            ".frequency/f.yaml": f"""
            factory_id: f
            state: {{initial: new, terminal: [done]}}
            limits:
              max_parallel: 3
              wip: {{half: 5}}
            steps:
              - id: one
                from_states: [new]
                to_state: half
                run: '{_step("true")}'
              - id: two
                from_states: [half]
                to_state: most
                max_parallel: 2
                run: '{_step("true")}'
              - id: three
                from_states: [most]
                to_state: done
                run: '{_step("true")}'
            """,
        }
    )
    r.write("subjects.txt", "\n".join(f"s{i:03d}" for i in range(200)) + "\n")
    r.run("add", "f", "--from", "subjects.txt").assert_success()
    workers = [_spawn(r, "run", "--until-idle", log=log) for _ in range(4)]
    for w in workers:
        _out, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
        assert "Traceback" not in err
    events = _events(log)
    starts = [(s, st, a) for what, _, s, st, a in events if what == "start"]
    assert len(starts) == 600 and len(set(starts)) == 600, "an attempt ran twice"
    assert all(a == 1 for _, _, a in starts)
    span: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _what, t, s, st, _a in events:
        span[(s, st)].append(t)
    runs = {k: (min(v), max(v)) for k, v in span.items()}
    assert _max_overlap(list(runs.values())) <= 3  # factory cap (tighter than global 4)
    assert _max_overlap([v for (_, st), v in runs.items() if st == "two"]) <= 2
    # a subject occupies `half` from step one's start to step two's end, at least
    half = [(runs[(s, "one")][0], runs[(s, "two")][1]) for s in {k[0] for k in runs}]
    assert _max_overlap(half) <= 5
    status = json.loads(r.run("status", "--json").out)
    assert dict(status["factories"][0]["states"])["done"] == 200
    transitions = r.git("log", "--format=%s", "--glob=refs/frequency/subjects").splitlines()
    assert sum(" -> " in t and "created" not in t for t in transitions) == 600
    r.git("fsck", "--strict")


LEASED = """
factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - id: work
    from_states: [new]
    to_state: done
    retry: {max_attempts: 3, backoff: {initial: 0s, factor: 1, max: 0s, jitter: 0}}
    locks: [{name: "deploy", ttl: 3s}]
    run: >-
      echo "$$" > "$LOG.$FREQ_SUBJECT.$FREQ_ATTEMPT";
      if [ "$FREQ_ATTEMPT" = 1 ]; then sleep 60; fi
"""


def test_killed_worker_lease_expires_and_another_finishes(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL mid-step: after the lease expires a second worker records `worker lost`,
    steals the lock at once (its claim ended; its own TTL need not pass), saying why in the
    steal's commit, and finishes the subject."""
    log = tmp_path / "steps"
    r = freq_repo({".frequency/frequency.yaml": "lease: {ttl: 1s}\n", ".frequency/f.yaml": LEASED})
    r.run("add", "f", "x").assert_success()
    first = _spawn(r, "run", "--until-idle", log=log)
    marker = Path(f"{log}.x.1")
    _wait_for(marker.exists)
    _wait_for(lambda: marker.read_text().strip() != "")
    first.send_signal(signal.SIGKILL)
    first.communicate()
    os.kill(int(marker.read_text()), signal.SIGKILL)  # the orphaned step itself
    held = json.loads(r.run("locks", "--json").assert_success().out)
    assert [row["name"] for row in held] == ["deploy"]
    second = _spawn(r, "run", "--until-idle", log=log)
    _out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    subj = json.loads(r.run("show", "f", "x", "--json").out)["subject"]
    assert subj["state"] == "done"
    history = r.git("log", "--format=%B%x00", "refs/frequency/subjects/f/x").split("\0")
    lost = [m for m in history if "Freq-Failure: retryable (worker lost)" in m]
    assert len(lost) == 1 and "Freq-Attempt: 1" in lost[0]
    lock_log = r.git("log", "--reverse", "--format=%s", "refs/frequency/locks/deploy")
    kinds = [row.split(": ")[1].split()[0] for row in lock_log.splitlines()]
    assert kinds == ["acquire", "steal", "release"]
    steal_msg = r.git("log", "--format=%B%x00", "refs/frequency/locks/deploy").split("\0")
    steal = next(m for m in steal_msg if ": steal by " in m)
    first_lock = json.loads(
        r.git("show", f"refs/frequency/locks/deploy~{len(kinds) - 1}:lock.json")
    )
    assert first_lock["holder"] in steal
    assert "\n\nits claim ended: worker lost\n" in steal
    assert "Freq-Reason: its claim ended: worker lost" in steal


def test_pause_stops_new_claims_in_a_running_worker(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A running worker stops claiming within one cycle of `pause`; SIGTERM drains it."""
    log = tmp_path / "steps.log"
    r = freq_repo(
        {
            ".frequency/frequency.yaml": "max_parallel: 1\n",
            ".frequency/f.yaml": f"""
            factory_id: f
            state: {{initial: new, terminal: [done]}}
            poll_interval: 60s
            steps:
              - id: work
                from_states: [new]
                to_state: done
                run: '{_step("sleep 0.2")}'
            """,
        }
    )
    r.run("add", "f", *[f"s{i}" for i in range(20)]).assert_success()
    worker = _spawn(r, "run", log=log)
    _wait_for(lambda: log.exists() and log.read_text().count("start") >= 2)
    r.run("pause", "f", "--reason", "test").assert_success()
    paused_at = time.time()
    time.sleep(1.0)  # several step lengths: a worker ignoring the pause would start more
    late = [t for what, t, *_ in _events(log) if what == "start" and t > paused_at]
    assert len(late) <= 1  # at most the one claimed in the cycle the pause raced with
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 143, err  # 128 + SIGTERM
    assert "interrupted" in out.splitlines()[-1]
    claimed = json.loads(r.run("status", "--json").out)["factories"][0]["running"]
    assert claimed == 0


def test_second_sigint_kills_steps_and_releases_claims(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two interrupts: the step's group is killed, its claim released, attempt not spent."""
    log = tmp_path / "steps.log"
    r = _one_step(freq_repo, "sleep 60")
    r.run("add", "f", "x").assert_success()
    worker = _spawn(r, "run", "--until-idle", log=log)
    _wait_for(lambda: log.exists() and "start" in log.read_text())
    worker.send_signal(signal.SIGINT)
    time.sleep(0.8)  # a second keypress: one within 0.5 s is git's echo of the first
    worker.send_signal(signal.SIGINT)
    _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 130, err
    subj = json.loads(r.run("show", "f", "x", "--json").out)["subject"]
    assert (subj["state"], subj["claim"], subj["attempt"]) == ("new", None, 0)
    last = r.git("log", "-1", "--format=%s", "refs/frequency/subjects/f/x").strip()
    assert last == "f/x: work released (attempt 1)"


def test_one_ctrl_c_through_git_drains_and_says_so(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`git freq run` in a terminal: Ctrl-C sends SIGINT to the whole foreground group, so
    git-freq gets it from the terminal and again from git's wrapper. That is one interrupt:
    the running step finishes and is recorded, and the drain is announced at once."""
    log = tmp_path / "steps.log"
    r = _one_step(freq_repo, "sleep 1.5")
    r.run("add", "f", "x", "y").assert_success()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "LOG": str(log), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("GIT_EXEC_PATH", None)
    worker = subprocess.Popen(
        ["git", "freq", "run", "--until-idle", "--max-parallel", "1"],
        cwd=r.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    _wait_for(lambda: log.exists() and "start" in log.read_text())
    os.killpg(worker.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    _out, err = worker.communicate(timeout=30)
    # git waits for git-freq to drain, then ends by the same signal itself (as a shell sees it)
    assert worker.returncode == -signal.SIGINT, err
    assert "draining 1 running step; Ctrl-C again to stop them" in err
    states = {
        name: json.loads(r.run("show", "f", name, "--json").out)["subject"]["state"]
        for name in ("x", "y")
    }
    assert sorted(states.values()) == ["done", "new"]  # one finished, the other never started
    assert [what for what, *_ in _events(log)] == ["start", "end"]


def test_a_second_sigint_within_half_a_second_is_the_same_keypress(
    freq_repo, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """git's wrapper forwards the terminal's SIGINT to git-freq, which may get it twice a few
    milliseconds apart; the echo must not count as the second Ctrl-C that kills steps."""
    log = tmp_path / "steps.log"
    r = _one_step(freq_repo, "sleep 1")
    r.run("add", "f", "x").assert_success()
    worker = _spawn(r, "run", "--until-idle", log=log)
    _wait_for(lambda: log.exists() and "start" in log.read_text())
    worker.send_signal(signal.SIGINT)
    time.sleep(0.1)  # after the first was handled, well inside the echo window
    worker.send_signal(signal.SIGINT)
    _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 130, err
    assert "draining 1 running step" in err
    subj = json.loads(r.run("show", "f", "x", "--json").out)["subject"]
    assert subj["state"] == "done"  # drained, not killed


def test_ctrl_c_during_run_once_says_it_drains(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`run --once` waits for its steps too; an interrupt says at once what it drains."""
    log = tmp_path / "steps.log"
    r = _one_step(freq_repo, "sleep 1")
    r.run("add", "f", "x").assert_success()
    worker = _spawn(r, "run", "--once", log=log)
    _wait_for(lambda: log.exists() and "start" in log.read_text())
    worker.send_signal(signal.SIGINT)
    _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 130, err
    assert "draining 1 running step; Ctrl-C again to stop them" in err
    assert json.loads(r.run("show", "f", "x", "--json").out)["subject"]["state"] == "done"
