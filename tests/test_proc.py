"""The process funnel: process groups, output tail, timeouts, cancel, environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from freq import proc
from freq.clock import SystemClock


def _dies(pid: int) -> bool:
    """Whether process `pid` is dead (_gone) within 2 s: a kill lands a moment later."""
    for _ in range(100):
        if _gone(pid):
            return True
        time.sleep(0.02)
    return False


def test_output_tail_and_full_log(tmp_path: Path) -> None:
    """The last 200 lines are kept in memory; the log file has everything."""
    log = tmp_path / "out.log"
    res = proc.run(
        "for i in $(seq 1 500); do echo line $i; done; echo err >&2",
        cwd=tmp_path,
        env=proc.build_env({}),
        clock=SystemClock(),
        log_path=log,
    )
    assert res.ok and res.exit_code == 0
    lines = res.tail.decode().splitlines()
    assert len(lines) == 200
    assert lines[-2:] == ["line 500", "err"]
    assert log.read_text().count("\n") == 501


def test_the_log_and_its_folder_are_made_by_the_first_output(tmp_path: Path) -> None:
    """A command that prints nothing leaves no log file (nor folder); one that prints makes
    both, and a log that cannot be made leaves the step and its tail as they were."""

    def logged(command: str, log: Path) -> proc.ProcResult:
        env = proc.build_env({})
        return proc.run(command, cwd=tmp_path, env=env, clock=SystemClock(), log_path=log)

    quiet = tmp_path / "quiet" / "s1-1-1.log"
    assert logged("true", quiet).ok
    assert not quiet.parent.exists()

    said = tmp_path / "said" / "deeper" / "s1-1-1.log"
    assert logged("sleep 0.1; echo late", said).ok
    assert said.read_text() == "late\n"

    (tmp_path / "file").write_text("")  # a folder that cannot be made: a file is in the way
    blocked = tmp_path / "file" / "s1-1-1.log"
    res = logged("echo kept", blocked)
    assert res.ok and res.tail == b"kept\n"
    assert not blocked.exists()


def test_exit_code_and_env(tmp_path: Path) -> None:
    """A non-zero exit is reported; FREQ_* variables reach the child; GIT_DIR does not."""
    env = proc.build_env(
        {"FREQ_SUBJECT": "app-1"}, base={"PATH": os.environ["PATH"], "GIT_DIR": "/elsewhere"}
    )
    res = proc.run(
        'echo "$FREQ_SUBJECT ${GIT_DIR:-unset}"; exit 3', cwd=tmp_path, env=env, clock=SystemClock()
    )
    assert (res.ok, res.exit_code, res.describe()) == (False, 3, "exit 3")
    assert res.tail == b"app-1 unset\n"


def test_timeout_kills_the_whole_group_including_background_children(tmp_path: Path) -> None:
    """A step that spawns a background grandchild loses both on timeout."""
    pidfile = tmp_path / "child.pid"
    res = proc.run(
        f"sleep 300 & echo $! > {pidfile}; wait",
        cwd=tmp_path,
        env=proc.build_env({}),
        clock=SystemClock(),
        timeout=0.5,
        grace=1,
    )
    assert res.timed_out and res.describe() == "timed out"
    assert _dies(int(pidfile.read_text())), "the grandchild survived the timeout"


def test_missing_command_is_exit_127(tmp_path: Path) -> None:
    """An argv whose program does not exist reports 127 with a readable reason."""
    res = proc.run(
        ["/nonexistent/tool", "x"], cwd=tmp_path, env=proc.build_env({}), clock=SystemClock()
    )
    assert res.exit_code == 127
    assert res.describe() == "could not start '/nonexistent/tool': No such file or directory"


def test_on_poll_false_cancels(tmp_path: Path) -> None:
    """Lease loss (on_poll returning False) stops the child."""
    calls = []

    def poll() -> bool:
        calls.append(1)
        return len(calls) < 3

    res = proc.run(
        "sleep 30",
        cwd=tmp_path,
        env=proc.build_env({}),
        clock=SystemClock(),
        on_poll=poll,
        poll=0.01,
        grace=1,
    )
    assert res.cancelled and not res.ok


def test_a_child_that_closed_its_output_is_still_stopped_at_its_timeout(tmp_path: Path) -> None:
    """The output is read in the calling thread until the pipes end; a child that closes
    them and goes on running is then waited for, under the same timeout."""
    res = proc.run(
        "echo before; exec >/dev/null 2>&1; sleep 300",
        cwd=tmp_path,
        env=proc.build_env({}),
        clock=SystemClock(),
        timeout=0.5,
        grace=1,
    )
    assert res.timed_out and res.tail == b"before\n"


def test_a_background_child_holding_the_pipe_does_not_keep_the_step_running(
    tmp_path: Path,
) -> None:
    """The leader's exit ends the step even while its background child keeps stdout open;
    the child goes with its group."""
    pidfile = tmp_path / "child.pid"
    res = proc.run(
        f"sleep 300 & echo $! > {pidfile}; echo done",
        cwd=tmp_path,
        env=proc.build_env({}),
        clock=SystemClock(),
        timeout=60,
        poll=0.01,
    )
    assert res.ok and res.tail == b"done\n" and not res.timed_out
    assert _dies(int(pidfile.read_text())), "the background child survived its leader"


def test_lines_split_across_reads_and_a_last_line_without_newline_are_whole(
    tmp_path: Path,
) -> None:
    """Output comes in chunks of any size; lines reach on_line, the tail and the log whole,
    and stderr kept apart has its own tail."""
    seen: list[bytes] = []
    log = tmp_path / "out.log"
    script = (
        "import sys, time\n"
        "sys.stdout.write('par'); sys.stdout.flush(); time.sleep(0.05)\n"
        "sys.stdout.write('tial\\nnext\\n' + 'x' * 100000 + '\\nlast'); sys.stdout.flush()\n"
        "sys.stderr.write('oops\\n')\n"
    )
    res = proc.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=proc.build_env({}),
        clock=SystemClock(),
        log_path=log,
        on_line=seen.append,
        split_stderr=True,
    )
    assert seen == [b"partial\n", b"next\n", b"x" * 100000 + b"\n", b"last"]
    assert res.tail.endswith(b"x\nlast") and len(res.tail) == proc.TAIL_BYTES  # its end
    assert res.err_tail == b"oops\n"
    assert log.read_bytes().count(b"\n") == 4


def test_worker_identity_has_host_pid_and_start_time() -> None:
    """host:pid:start-time, so a reused pid is a different worker."""
    host, pid, start = proc.worker_identity("h").split(":")
    assert (host, pid) == ("h", str(os.getpid()))
    assert start.isdigit() and int(start) > 0


MARKS = {"FREQ_WORKER": "h:1:2", "FREQ_FACTORY": "f", "FREQ_SUBJECT": "x", "FREQ_EPOCH": "7"}
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and pidfds")


def _spawn(script: str, marks: dict[str, str]) -> subprocess.Popen[bytes]:
    """A step-like process: its own session, the attempt's variables in its environment."""
    return subprocess.Popen(
        ["sh", "-c", script], env={**os.environ, **marks}, start_new_session=True
    )


def _gone(pid: int) -> bool:
    """Exited (a zombie counts: an orphan may never be reaped here) or no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_file(path: Path) -> str:
    for _ in range(1000):
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.01)
    raise AssertionError(f"{path} was never written")


@linux
def test_stop_attempt_stops_its_processes_and_its_sessions_and_nothing_else(
    tmp_path: Path,
) -> None:
    """Every process carrying the attempt's variables goes, with the rest of its session (a
    child that cleared its environment); the same worker's other attempt stays."""
    pids = tmp_path / "pids"
    step = _spawn(f'sleep 300 & a=$!; env -i sleep 301 & echo "$a $!" > {pids}; wait', MARKS)
    other = _spawn("sleep 300", {**MARKS, "FREQ_EPOCH": "8"})
    try:
        kids = [int(p) for p in _wait_file(pids).split()]
        stopped = proc.stop_attempt(MARKS)
        assert stopped == proc.Stopped(found=3, left=0)
        assert step.wait(timeout=10) == -signal.SIGTERM
        assert all(_gone(pid) for pid in kids)
        assert other.poll() is None
    finally:
        os.killpg(other.pid, signal.SIGKILL)  # its session: the shell and its sleep
        other.wait()


@linux
def test_stop_attempt_sigkills_what_ignores_sigterm(tmp_path: Path) -> None:
    """SIGTERM first; what is still there after the grace gets SIGKILL, and is waited for."""
    ready = tmp_path / "ready"
    step = _spawn(f"trap '' TERM; echo > {ready}; while :; do sleep 0.05; done", MARKS)
    _wait_file(ready)
    stopped = proc.stop_attempt(MARKS, grace=0.2)
    assert stopped.left == 0 and stopped.found >= 1
    assert step.wait(timeout=10) == -signal.SIGKILL


@linux
def test_stop_attempt_never_stops_the_process_that_calls_it() -> None:
    """A worker started inside a step carries that step's variables; recovering that very
    attempt must not kill the worker doing it. Marks nothing carries stop nothing."""
    code = (
        "import json, sys; from freq import proc; "
        "print(proc.stop_attempt(json.loads(sys.argv[1])), "
        "proc.stop_attempt({'FREQ_WORKER': 'nobody:0:0'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(MARKS)],
        env={**os.environ, **MARKS},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == f"{proc.Stopped()} {proc.Stopped()}\n"


def test_host_of_a_worker_identity() -> None:
    """The host is everything before the pid and start time; other strings have none."""
    assert proc.host_of("build-3.example:4121:998") == "build-3.example"
    assert proc.host_of("gone") is None
    assert proc.host_of(proc.worker_identity(proc.this_host())) == proc.this_host()


def test_watch_parent_is_off_unless_the_parent_is_git(tmp_path: Path) -> None:
    """Started by anything but git (here: python), nothing watches the parent: a worker
    started from a shell or a service must outlive it."""
    code = "from freq import proc; print(proc.watch_parent(lambda: None))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "None\n"


@linux
def test_watch_parent_calls_back_once_the_git_parent_exits(tmp_path: Path) -> None:
    """A child of a process named git sees it exit (kill -9) and calls back once."""
    fake_git = tmp_path / "git"  # a process's name is its executable's: this one is `git`
    code = (
        "import sys, threading; from freq import proc; gone = threading.Event(); "
        "w = proc.watch_parent(gone.set, interval=0.01); print(w is not None, flush=True); "
        "print(gone.wait(30), flush=True)"
    )
    fake_git.write_text(f"#!/bin/sh\n'{sys.executable}' -c '{code}' &\nread line\n")
    fake_git.chmod(0o755)
    with subprocess.Popen(
        [str(fake_git)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        assert parent.stdout.readline() == "True\n"  # watching: its parent is `git`
        parent.kill()
        parent.wait()
        assert parent.stdout.read() == "True\n"  # called back, then exited
