"""CLIs on a pseudo-terminal (proc.run_tty): respond rules, stalls, timeouts, cancel, groups.

Every child is real. Where a test needs time to pass (a stall, a timeout) it runs on a
FakeClock and moves it once the child has printed what the test waits for, so nothing
depends on how fast a loaded machine starts a process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from freq import proc
from freq.clock import FakeClock, SystemClock
from freq.model import Respond, RespondAs

PROMPT = "Workspace out of credits. Request more from your workspace owner? [y/N]"
EXPECT = r"Request more from your workspace owner\? \[y/N\]"

ASK = f"""
import sys
print("Starting up")
print({PROMPT!r} + " ", end="", flush=True)
answer = input()
print(f"read: {{answer}}")
sys.exit(0 if answer == "n" else 3)
"""


def _script(tmp_path: Path, code: str) -> list[str]:
    path = tmp_path / "child.py"
    path.write_text(code)
    return [sys.executable, str(path)]


def _run(
    tmp_path: Path,
    argv: Sequence[str],
    *,
    respond: Sequence[Respond] = (),
    clock: SystemClock | FakeClock | None = None,
    log_path: Path | None = None,
    timeout: float | None = 60,
    stall: float | None = None,
    **kw: Any,
) -> proc.TtyResult:
    return proc.run_tty(
        argv,
        cwd=tmp_path,
        env=proc.build_env({}),
        clock=clock or SystemClock(),
        log_path=log_path,
        timeout=timeout,
        stall=stall,
        respond=respond,
        **kw,
    )


class _Once:
    """on_output and on_poll for a test that acts once the child has printed `marker`:
    moves the fake clock by `advance` seconds, or (cancel) makes on_poll say False."""

    def __init__(self, marker: bytes, *, clock: FakeClock | None = None, advance: float = 0):
        self.marker = marker
        self.clock = clock
        self.advance = advance
        self.seen = b""
        self.cancel = False
        self.done = False

    def output(self, data: bytes) -> None:
        self.seen += data

    def poll(self) -> bool:
        if self.done or self.marker not in self.seen:
            return True
        self.done = True
        if self.clock is not None:
            self.clock.advance(self.advance)
        return not self.cancel


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for init counts), waiting up to 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.02)  # init reaps the killed grandchild a moment later
    return False


def test_a_send_rule_answers_the_prompt(tmp_path: Path) -> None:
    """`send: n` types n and Enter at the out-of-credits prompt; the CLI reads "n" and exits 0."""
    res = _run(tmp_path, _script(tmp_path, ASK), respond=[Respond(expect=EXPECT, send="n")])
    assert (res.ok, res.exit_code, res.describe()) == (True, 0, "exit 0")
    assert res.answered == (PROMPT,)
    assert (res.ended_as, res.question, res.stalled) == (None, None, False)
    assert b"read: n\r\n" in res.tail


@pytest.mark.parametrize("as_", [RespondAs.NEEDS_HUMAN, RespondAs.TERMINAL])
def test_an_as_rule_ends_the_run_with_the_prompt_as_question(
    tmp_path: Path, as_: RespondAs
) -> None:
    """`as: needs_human|terminal` stops the CLI at its prompt; the matched line is the question."""
    res = _run(tmp_path, _script(tmp_path, ASK), respond=[Respond(expect=r"\[y/N\]", as_=as_)])
    assert (res.ended_as, res.question, res.ok) == (as_, PROMPT, False)
    assert res.signal == signal.SIGTERM and res.exit_code is None
    verb = "needs a human" if as_ is RespondAs.NEEDS_HUMAN else "ended as terminal"
    assert res.describe() == f"{verb}: {PROMPT}"


def test_an_unanswered_prompt_stalls_as_needs_human(tmp_path: Path) -> None:
    """No rule matches and no output comes for `stall` seconds: stalled, needs_human, and the
    screen's last lines are the question."""
    clock = FakeClock()
    once = _Once(b"[y/N]", clock=clock, advance=31)
    res = _run(
        tmp_path,
        _script(tmp_path, ASK),
        respond=[Respond(expect="no such prompt", send="y")],
        clock=clock,
        timeout=None,
        stall=30,
        on_output=once.output,
        on_poll=once.poll,
    )
    assert (res.stalled, res.ended_as) == (True, RespondAs.NEEDS_HUMAN)
    assert res.question == f"Starting up\n{PROMPT}"
    assert res.describe() == f"stalled at a prompt no rule answers: {PROMPT}"
    assert res.signal == signal.SIGTERM and not res.timed_out


def test_a_rule_fires_once_per_appearance_of_its_prompt(tmp_path: Path) -> None:
    """The prompt shown twice is answered twice; the output after each answer (the echo, more
    lines) does not make the answered prompt match again."""
    code = f"""
import sys
answers = []
for round in range(2):
    print({PROMPT!r} + " ", end="", flush=True)
    answers.append(input())
    for i in range(5):
        print(f"working {{round}}.{{i}}", flush=True)
print("answers:", " ".join(answers))
"""
    res = _run(tmp_path, _script(tmp_path, code), respond=[Respond(expect=EXPECT, send="n")])
    assert res.ok
    assert res.answered == (PROMPT, PROMPT)
    assert b"answers: n n\r\n" in res.tail


def test_colour_codes_do_not_hide_a_prompt(tmp_path: Path) -> None:
    """A prompt cut up by SGR colours, a window title and cursor moves still matches, and its
    question is plain text."""
    code = r"""
import sys
sys.stdout.write("\x1b]0;codex\x07\x1b[?25l\x1b[2K\x1b[1;33mWorkspace out of "
                 "\x1b[31mcredits\x1b[0m. Request more from your workspace owner? "
                 "\x1b[2m[y/N]\x1b[0m ")
sys.stdout.flush()
print("read:", input())
"""
    res = _run(
        tmp_path,
        _script(tmp_path, code),
        respond=[
            Respond(expect=r"out of credits\. Request more.*\[y/N\]", as_=RespondAs.NEEDS_HUMAN)
        ],
    )
    assert (res.ended_as, res.question) == (RespondAs.NEEDS_HUMAN, PROMPT)


def test_a_prompt_that_keeps_coming_back_ends_as_needs_human(tmp_path: Path) -> None:
    """After RESPOND_LIMIT answers the next appearance is left to a human: no endless typing."""
    code = 'while True:\n    print("Continue? [y/N] ", end="", flush=True)\n    input()\n'
    res = _run(tmp_path, _script(tmp_path, code), respond=[Respond(expect=r"\[y/N\]", send="n")])
    assert len(res.answered) == proc.RESPOND_LIMIT
    assert (res.ended_as, res.question) == (RespondAs.NEEDS_HUMAN, "Continue? [y/N]")


def test_timeout_kills_the_whole_group_including_a_grandchild(tmp_path: Path) -> None:
    """On timeout the CLI and the background process it started both go."""
    pidfile = tmp_path / "grandchild.pid"
    clock = FakeClock()
    once = _Once(b"started", clock=clock, advance=11)
    res = _run(
        tmp_path,
        ["/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo started; wait"],
        clock=clock,
        timeout=10,
        stall=60,
        on_output=once.output,
        on_poll=once.poll,
        grace=2,
    )
    assert (res.timed_out, res.stalled, res.describe()) == (True, False, "timed out")
    assert _gone(int(pidfile.read_text()))


def test_a_child_ignoring_sigterm_gets_sigkill_after_grace(tmp_path: Path) -> None:
    """SIGTERM first; what is still there `grace` seconds later gets SIGKILL."""
    clock = FakeClock()
    once = _Once(b"ready", clock=clock, advance=2)
    res = _run(
        tmp_path,
        ["/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
        clock=clock,
        timeout=1,
        on_output=once.output,
        on_poll=once.poll,
        grace=0.2,
    )
    assert res.timed_out and res.signal == signal.SIGKILL


def test_a_child_that_closed_its_terminal_still_times_out(tmp_path: Path) -> None:
    """A CLI that closes the terminal and runs on is stopped at its timeout (pexpect's own
    reads would wait in waitpid until it exits)."""
    res = _run(
        tmp_path,
        ["/bin/sh", "-c", "exec >/dev/null 2>&1 </dev/null; sleep 60"],
        timeout=0.5,
        grace=2,
    )
    assert res.timed_out and res.signal == signal.SIGTERM


def test_what_an_exited_cli_left_on_its_terminal_is_killed(tmp_path: Path) -> None:
    """The CLI exits 0 while a background child (deaf to the hangup) holds the terminal: the
    run ends with the CLI, and the leftover is killed."""
    pidfile = tmp_path / "leftover.pid"
    res = _run(tmp_path, ["/bin/sh", "-c", f"trap '' HUP; sleep 300 & echo $! > {pidfile}"])
    assert (res.ok, res.exit_code) == (True, 0)
    assert _gone(int(pidfile.read_text()))


def test_on_poll_false_cancels(tmp_path: Path) -> None:
    """on_poll returning False stops the CLI; the run says cancelled."""
    once = _Once(b"ready")
    once.cancel = True
    res = _run(
        tmp_path,
        ["/bin/sh", "-c", "echo ready; sleep 300"],
        on_output=once.output,
        on_poll=once.poll,
        grace=2,
    )
    assert (res.cancelled, res.timed_out, res.describe()) == (True, False, "cancelled")
    assert res.signal == signal.SIGTERM


def test_the_child_has_a_terminal_of_fixed_size(tmp_path: Path) -> None:
    """stdin and stdout are a terminal (`test -t`), 50 rows by 200 columns."""
    res = _run(tmp_path, ["/bin/sh", "-c", "test -t 0 && test -t 1 && stty size"])
    assert res.ok
    assert res.tail == b"50 200\r\n"


def test_all_output_goes_to_the_log_and_on_output_the_tail_keeps_the_end(tmp_path: Path) -> None:
    """The log file and on_output get every byte; the tail keeps the last TAIL_LINES lines."""
    log = tmp_path / "attempt.log"
    seen: list[bytes] = []
    res = _run(
        tmp_path,
        ["/bin/sh", "-c", "i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo line $i; done"],
        log_path=log,
        on_output=seen.append,
    )
    assert res.ok
    want = b"".join(b"line %d\r\n" % i for i in range(1, 501))
    assert log.read_bytes() == want == b"".join(seen)
    assert res.tail == b"".join(b"line %d\r\n" % i for i in range(301, 501))


def test_a_relative_program_is_found_from_cwd(tmp_path: Path) -> None:
    """`./tool` is looked up in the child's cwd, as proc.run does (pexpect would use ours)."""
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho from tool\n")
    tool.chmod(0o755)
    res = _run(tmp_path, ["./tool"])
    assert res.ok and res.tail == b"from tool\r\n"


def test_a_missing_program_is_exit_127(tmp_path: Path) -> None:
    """A program that does not exist reports 127 with a readable reason."""
    res = _run(tmp_path, ["/nonexistent/tool", "x"])
    assert res.exit_code == 127
    assert res.describe() == "could not start '/nonexistent/tool': not found, or not executable"


def test_a_failing_callback_leaves_no_cli_running(tmp_path: Path) -> None:
    """An exception from on_output propagates, and the CLI's whole group is gone by then."""
    pidfile = tmp_path / "grandchild.pid"

    seen = bytearray()

    def boom(data: bytes) -> None:
        seen.extend(data)
        if b"started" in seen:
            raise RuntimeError("renewal failed")

    with pytest.raises(RuntimeError, match="renewal failed"):
        _run(
            tmp_path,
            ["/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo started; wait"],
            on_output=boom,
        )
    assert _gone(int(pidfile.read_text()))
