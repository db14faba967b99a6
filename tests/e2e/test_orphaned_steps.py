"""A worker's steps do not outlive it: recovery stops a killed worker's leftover step processes
before the retry starts, and a worker started by git stops its steps when git dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NO_BACKOFF, FreqRepo, one_step
from tests.e2e.test_workers import _spawn, _wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.git]

FACTORY = one_step("[sh, step.sh]", retry=NO_BACKOFF % 2)

# Attempt 1 sleeps in the background and writes `pid start-time` of itself and of the sleep
# to $LOG.pids; any later attempt first looks at each of them and writes whether it was still
# running when that attempt started. Every attempt logs `start`, and `stop` (SIGTERM) or `end`.
STEP = r"""
at() { date +%s.%N; }
echo "start $(at) $FREQ_ATTEMPT" >> "$LOG"
if [ -f "$LOG.pids" ]; then
  while read -r pid start; do
    set -- $(cut -d' ' -f3,22 "/proc/$pid/stat" 2>/dev/null)
    if [ "${2:-}" = "$start" ] && [ "$1" != Z ]; then seen=alive; else seen=dead; fi
    echo "$seen $pid" >> "$LOG.seen"
  done < "$LOG.pids"
fi
if [ "$FREQ_ATTEMPT" = 1 ]; then
  trap 'echo "stop $(at) 1" >> "$LOG"; exit 143' TERM
  sleep 30 &
  echo "$! $(cut -d' ' -f22 /proc/$!/stat)" > "$LOG.tmp"
  echo "$$ $(cut -d' ' -f22 /proc/$$/stat)" >> "$LOG.tmp"
  mv "$LOG.tmp" "$LOG.pids"
  wait
fi
echo "end $(at) $FREQ_ATTEMPT" >> "$LOG"
"""


def _project(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    r: FreqRepo = freq_repo(
        {
            ".frequency/frequency.yaml": "lease: {ttl: 1s}\n",
            ".frequency/f.yaml": FACTORY,
            "step.sh": STEP,
        }
    )
    r.run("add", "f", "x").assert_success()
    return r


def _start_time(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def _gone(pid: int, start: str) -> bool:
    """`pid` exited (a zombie counts: nothing may reap orphans here) or is another process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] == "Z" or fields[19] != start


def _pids(log: Path) -> list[tuple[int, str]]:
    return [
        (int(p), s)
        for p, s in (line.split() for line in Path(f"{log}.pids").read_text().splitlines())
    ]


def _times(log: Path) -> dict[tuple[str, int], float]:
    rows = (line.split() for line in log.read_text().splitlines())
    return {(what, int(attempt)): float(t) for what, t, attempt in rows}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux /proc and pidfds")
def test_recovery_stops_a_killed_workers_step_before_the_retry_starts(
    freq_repo, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL a worker mid-step: its step runs on in a session of its own. The worker that
    recovers the expired claim stops the step's processes (SIGTERM) and waits until they are
    gone before recording `worker lost`, so the retry finds them dead and never overlaps them."""
    log = tmp_path / "steps.log"
    r = _project(freq_repo)
    first = _spawn(r, "run", "--until-idle", log=log)
    _wait_for(Path(f"{log}.pids").exists)
    holder = f"{os.uname().nodename}:{first.pid}:{_start_time(first.pid)}"
    first.send_signal(signal.SIGKILL)
    first.communicate()
    orphans = _pids(log)
    assert not any(_gone(pid, start) for pid, start in orphans)  # they outlived their worker
    second = _spawn(r, "run", "--until-idle", log=log)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    sleeper, leader = orphans
    assert Path(f"{log}.seen").read_text() == f"dead {sleeper[0]}\ndead {leader[0]}\n"
    t = _times(log)
    assert set(t) == {("start", 1), ("stop", 1), ("start", 2), ("end", 2)}
    assert t[("stop", 1)] <= t[("start", 2)]  # the two runs of the step never overlapped
    assert out.splitlines()[0] == (
        f"recovered f/x work #1: worker lost: {holder} (stopped its 2 processes)"
    )
    assert all(_gone(pid, start) for pid, start in orphans)
    assert json.loads(r.run("show", "f", "x", "--json").out)["subject"]["state"] == "done"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux /proc")
def test_killing_git_stops_the_worker_it_started_and_its_steps(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`git freq run` is git running git-freq as its child. A `kill -9` of git leaves the
    worker orphaned: it notices, stops its step's processes, gives the claim back (attempt
    unspent, as a second Ctrl-C does), says so in one line, and exits 129."""
    log = tmp_path / "steps.log"
    r = _project(freq_repo)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "LOG": str(log), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("GIT_EXEC_PATH", None)
    git = subprocess.Popen(
        ["git", "freq", "run", "--until-idle"],
        cwd=r.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _wait_for(Path(f"{log}.pids").exists)
    (worker,) = _children(git.pid)
    worker_start = _start_time(worker)
    git.send_signal(signal.SIGKILL)
    # git-freq holds the other ends of these pipes: they close when it exits
    out, err = git.communicate(timeout=30)
    assert git.returncode == -signal.SIGKILL
    assert err.splitlines()[-1] == (
        "parent process (git) exited; stopped 1 running step and released its claim"
    ), err
    assert out.splitlines() == [
        "failed    f/x work #1: interrupted; claim released",
        "done: 0 succeeded, 1 failed, 0 recovered, 0 lost races, interrupted",
    ]
    _wait_for(lambda: _gone(worker, worker_start))
    assert all(_gone(pid, start) for pid, start in _pids(log))
    assert set(_times(log)) == {("start", 1), ("stop", 1)}
    code = _exit_status(worker, worker_start)
    if code is not None:  # readable while nothing has reaped the orphan
        assert code == 129
    subj = json.loads(r.run("show", "f", "x", "--json").out)["subject"]
    assert (subj["state"], subj["claim"], subj["attempt"]) == ("new", None, 0)


def test_a_worker_started_from_a_shell_outlives_the_shell(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Only git's wrapper is watched: a worker started from a shell that then exits (nohup,
    `&`, a service manager) runs on and finishes its steps."""
    log = tmp_path / "steps.log"
    r = freq_repo(
        {
            ".frequency/f.yaml": """
            factory_id: f
            state: {initial: new, terminal: [done]}
            steps:
              - {id: work, from_states: [new], to_state: done, run: 'sleep 0.5; echo end >> "$LOG"'}
            """
        }
    )
    r.run("add", "f", "x").assert_success()
    out = tmp_path / "worker.out"
    shell = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -m freq run --until-idle > "{out}" 2>&1 & echo $!'],
        cwd=r.path,
        env={**os.environ, "LOG": str(log)},
        capture_output=True,
        text=True,
        check=True,
    )
    worker = int(shell.stdout)
    assert not _gone(worker, _start_time(worker))  # its shell has exited; it has not
    _wait_for(lambda: out.exists() and "done:" in out.read_text())
    assert out.read_text().splitlines()[-1] == (
        "done: 1 succeeded, 0 failed, 0 recovered, 0 lost races"
    )
    assert log.read_text() == "end\n"


def _children(pid: int) -> list[int]:
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            if ppid == pid:
                kids.append(int(name))
    return kids


def _exit_status(pid: int, start: str) -> int | None:
    """The exit code of the zombie `pid`, from /proc/<pid>/stat field 52 (None once reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    if fields[19] != start or fields[0] != "Z":
        return None
    return int(fields[49]) >> 8
