"""The process funnel: process groups, output tail, timeouts, cancel, environment."""

from __future__ import annotations

import os
import time
from pathlib import Path

from freq import proc
from freq.clock import SystemClock


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
    child = int(pidfile.read_text())
    for _ in range(100):  # reaping by init may lag a moment after SIGKILL
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    else:
        raise AssertionError(f"grandchild {child} survived the timeout")


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


def test_worker_identity_has_host_pid_and_start_time() -> None:
    """host:pid:start-time, so a reused pid is a different worker."""
    host, pid, start = proc.worker_identity("h").split(":")
    assert (host, pid) == ("h", str(os.getpid()))
    assert start.isdigit() and int(start) > 0
