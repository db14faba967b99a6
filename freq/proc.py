"""The process funnel: the only module that starts processes or sends signals.

Must not import dulwich, click or freq modules above it. Every child runs in its own
process group with an argv list (or `sh -c` for a string), an explicit cwd and a built
environment; output goes to a log file and a bounded tail is kept in memory; on timeout
or cancel the whole group gets SIGTERM, then SIGKILL after a grace period (tox habit).
It also stops the processes a lost worker's attempt left behind (`stop_attempt`), and
watches for the death of the git process that started this one (`watch_parent`). CLIs that
need a terminal run under a pseudo-terminal (`run_tty`, the only user of pexpect), which
answers their prompts by `respond:` rules and ends them when they stall at one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import select
import signal
import subprocess  # noqa: TID251 - the process funnel
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from freq.clock import Clock
from freq.model import Respond, RespondAs

if TYPE_CHECKING:  # terminals load freq.screen (and RE2) when they run, not at start-up
    from freq.screen import Prompt

TAIL_LINES = 200
TAIL_BYTES = 64 * 1024
TAIL_LINE = TAIL_BYTES  # the most of one line the tail keeps: its end, where errors are
_GIT_ENV_PREFIXES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcResult:
    """How a child process ended and what it printed last."""

    argv: tuple[str, ...]
    exit_code: int | None
    signal: int | None
    timed_out: bool
    cancelled: bool
    duration_ms: int
    tail: bytes
    error: str | None = None
    err_tail: bytes = b""  # stderr's own tail, when it was kept apart (split_stderr)

    @property
    def ok(self) -> bool:
        """Exited 0 by itself."""
        return self.exit_code == 0 and not self.timed_out and not self.cancelled

    def describe(self) -> str:
        """One line: how it ended."""
        if self.error:
            return self.error
        if self.timed_out:
            return "timed out"
        if self.cancelled:
            return "cancelled"
        if self.signal is not None:
            return f"killed by signal {signal.Signals(self.signal).name}"
        return f"exit {self.exit_code}"


def build_env(extra: Mapping[str, str], *, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours without GIT_* location overrides, plus `extra`."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(_GIT_ENV_PREFIXES)
    }
    env.update(extra)
    return env


@dataclass(frozen=True, slots=True)
class GitResult:
    """What one git command printed, and its exit code."""

    code: int
    out: bytes
    err: bytes

    @property
    def ok(self) -> bool:
        return self.code == 0

    def text(self) -> str:
        """stdout as text, without the trailing newline."""
        return self.out.decode("utf-8", "replace").rstrip("\n")

    def why(self) -> str:
        """The last line git wrote to stderr (or stdout), for a one-line error."""
        for blob in (self.err, self.out):
            lines = [ln.strip() for ln in blob.decode("utf-8", "replace").splitlines()]
            lines = [ln for ln in lines if ln]
            if lines:
                return lines[-1][:300]
        return f"exit {self.code}"


def git(
    args: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = 300.0,
) -> GitResult:
    """Run one git plumbing or porcelain command to its end and capture what it printed.

    For short git commands Frequency runs itself (worktrees, merges, landing), not for
    steps: no process group, no log. The environment is ours without GIT_* location
    overrides, with `env` on top, and git never prompts. A git that cannot start (not
    installed) is exit 127 with the reason on stderr."""
    full = build_env({"GIT_TERMINAL_PROMPT": "0", **(env or {})})
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=full,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        where = "" if os.path.isdir(cwd) else f" in {os.fspath(cwd)}"
        return GitResult(127, b"", f"git cannot start{where}: {exc.strerror}".encode())
    except OSError as exc:  # the folder is not one, or not ours to enter
        return GitResult(126, b"", f"git cannot run in {os.fspath(cwd)}: {exc.strerror}".encode())
    except subprocess.TimeoutExpired:
        return GitResult(124, b"", f"git {args[0]} timed out after {timeout:g}s".encode())
    return GitResult(done.returncode, done.stdout, done.stderr)


def cat_files(cwd: str | os.PathLike[str], specs: Sequence[str]) -> dict[str, bytes]:
    """Blobs named by `specs` (`<commit>:<path>`) read by one `git cat-file --batch`: spec →
    content, for each that names a blob; the others (missing, not a blob) are left out, and
    an unusable git answers nothing (the caller reads those objects itself)."""
    if not specs:
        return {}
    res = git(["cat-file", "--batch"], cwd=cwd, stdin="".join(f"{s}\n" for s in specs).encode())
    if not res.ok:
        return {}
    out: dict[str, bytes] = {}
    data = res.out
    pos = 0
    for spec in specs:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        head = data[pos:end].split()
        pos = end + 1
        if len(head) != 3:  # `<spec> missing` (or ambiguous): nothing follows
            continue
        size = int(head[2])
        if head[1] == b"blob":
            out[spec] = data[pos : pos + size]
        pos += size + 1
    return out


def argv_for(command: str | Sequence[str]) -> list[str]:
    """A shell string runs under `sh -c`; a list is the argv itself."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return list(command)


class Cancel:
    """A cancel token shared between the run loop and running children."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Ask every child watching this token to stop."""
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run(
    command: str | Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    clock: Clock,
    log_path: Path | None = None,
    timeout: float | None = None,
    grace: float = 5.0,
    cancel: Cancel | None = None,
    on_line: Callable[[bytes], None] | None = None,
    on_poll: Callable[[], bool] | None = None,
    poll: float = 0.05,
    stdin: bytes | None = None,
    split_stderr: bool = False,
    redact: Callable[[bytes], bytes] | None = None,
) -> ProcResult:
    """Run one command to the end in its own process group, keeping an output tail.

    stdout and stderr are merged, written in full to `log_path` (made, with its folder, by
    the first line: a command that prints nothing leaves no log) and kept as the last
    TAIL_LINES lines (at most TAIL_BYTES). `timeout` (seconds) or `cancel` stop the whole
    group: SIGTERM, then SIGKILL after `grace` seconds. `on_poll` is called every `poll`
    seconds while the child runs (lease renewal); returning False cancels the child.

    stdin is closed unless `stdin` gives the bytes to write to it (then it is closed: a
    CLI that reads stdin to its end must not wait for more). With `split_stderr`, stderr
    is kept in a tail of its own (`err_tail`) and `on_line` sees stdout alone (an agent
    CLI's structured events); the log has both. `redact` rewrites each line before it is
    logged or kept (secrets never reach a log or git).
    """
    argv = argv_for(command)
    start = clock.monotonic()
    log = _Log(log_path)
    try:
        try:
            child = subprocess.Popen(
                argv,
                cwd=os.fspath(cwd),
                env=dict(env),
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if split_stderr else subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            msg = f"could not start {argv[0]!r}: {exc.strerror or exc}"
            return ProcResult(
                argv=tuple(argv),
                exit_code=127,
                signal=None,
                timed_out=False,
                cancelled=False,
                duration_ms=0,
                tail=msg.encode() + b"\n",
                error=msg,
            )
        if stdin is not None:
            threading.Thread(target=_feed, args=(child, stdin), daemon=True).start()
        out = _Output(log, on_line, redact)
        assert child.stdout is not None
        streams: dict[int, Callable[[bytes], None]] = {child.stdout.fileno(): out.stdout}
        if split_stderr:
            assert child.stderr is not None
            streams[child.stderr.fileno()] = out.stderr
        deadline = None if timeout is None else start + timeout
        try:
            with _Pipes(streams) as pipes:
                timed_out, cancelled = _wait(child, pipes, clock, deadline, cancel, on_poll, poll)
                if timed_out or cancelled:
                    _terminate(child, grace)
                else:
                    # the leader exited; anything it left behind in its group goes too
                    _kill_group(child.pid, signal.SIGKILL)
                    child.wait()
                pipes.drain(grace + 1)  # the group is gone: its pipes end at once
        except BaseException:  # Ctrl-C in a foreground run: never leave the group running
            _terminate(child, grace)
            raise
        finally:
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
        out.end()
        code = child.returncode
        sig = -code if code is not None and code < 0 else None
        return ProcResult(
            argv=tuple(argv),
            exit_code=None if sig is not None else code,
            signal=sig,
            timed_out=timed_out,
            cancelled=cancelled,
            duration_ms=int((clock.monotonic() - start) * 1000),
            tail=out.tail,
            err_tail=out.err_tail,
        )
    finally:
        log.close()


def _wait(
    child: subprocess.Popen[bytes],
    pipes: _Pipes,
    clock: Clock,
    deadline: float | None,
    cancel: Cancel | None,
    on_poll: Callable[[], bool] | None,
    poll: float,
) -> tuple[bool, bool]:
    """Read the child's output until it exits (its pipes end, or the leader is gone while a
    background child keeps them open): (timed out, cancelled) when it was stopped first.
    The deadline, the cancel flag and `on_poll` are looked at every `poll` seconds."""
    polled = time.monotonic()  # on_poll's pace is real time: a frozen test clock too
    while True:
        if pipes.open:
            pipes.read(poll)
        else:  # the output ended: the child exits now (or lives on with its pipes closed)
            _wait_exit(child, poll)
        if not pipes.open and child.poll() is not None:
            return False, False
        if deadline is not None and clock.monotonic() >= deadline:
            return True, False
        if cancel is not None and cancel.is_set():
            return False, True
        if time.monotonic() - polled >= poll:
            polled = time.monotonic()
            if on_poll is not None and not on_poll():
                return False, True
            if child.poll() is not None:
                return False, False  # the leader is gone; a background child holds its pipes


def _wait_exit(child: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait up to `timeout` seconds for the child to exit: on a pidfd, which wakes the
    moment it does (Popen.wait with a timeout sleeps in growing steps, up to 16 ms late),
    where the system has them."""
    if child.poll() is not None:
        return
    try:
        fd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or already reaped
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout)
        return
    try:
        waiter = select.poll()  # not select(): a busy worker's descriptors pass 1024
        waiter.register(fd, select.POLLIN)
        waiter.poll(max(0, int(timeout * 1000)))
    finally:
        os.close(fd)
    child.poll()


class _Pipes:
    """The child's output pipes, read in this thread as data comes (no thread per pipe):
    each chunk goes to its stream's `feed`, and an empty read (end of output) to it too."""

    def __init__(self, streams: dict[int, Callable[[bytes], None]]) -> None:
        self._feeds = streams
        self._poll = select.poll()
        for fd in streams:
            self._poll.register(fd, select.POLLIN)
        self.open = set(streams)

    def __enter__(self) -> _Pipes:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.open:
            self._poll.unregister(fd)
        self.open.clear()

    def read(self, timeout: float) -> bool:
        """Read what is there, waiting at most `timeout` seconds for it; False once every
        pipe has ended."""
        if not self.open:
            return False
        for fd, _ in self._poll.poll(max(0, int(timeout * 1000))):
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            self._feeds[fd](data)
            if not data:
                self._poll.unregister(fd)
                self.open.discard(fd)
        return bool(self.open)

    def drain(self, timeout: float) -> None:
        """Read to the end of every pipe, for at most `timeout` seconds."""
        end = time.monotonic() + timeout
        while self.open and (left := end - time.monotonic()) > 0:
            self.read(left)


class _Output:
    """Lines of the child's output, as a pump of each pipe makes them: redacted, logged in
    full, kept as a bounded tail, and given to `on_line` (stdout's only)."""

    def __init__(
        self,
        log: _Log,
        on_line: Callable[[bytes], None] | None,
        redact: Callable[[bytes], bytes] | None,
    ) -> None:
        self._log = log
        self._on_line = on_line
        self._redact = redact
        self._tails: dict[str, deque[bytes]] = {
            "out": deque(maxlen=TAIL_LINES),
            "err": deque(maxlen=TAIL_LINES),
        }
        self._partial = {"out": b"", "err": b""}

    def stdout(self, data: bytes) -> None:
        self._feed("out", data)

    def stderr(self, data: bytes) -> None:
        self._feed("err", data)

    def end(self) -> None:
        """The pipes are closed: a last line without its newline is a line too."""
        for which in ("out", "err"):
            self._feed(which, b"")

    @property
    def tail(self) -> bytes:
        return b"".join(self._tails["out"])[-TAIL_BYTES:]

    @property
    def err_tail(self) -> bytes:
        return b"".join(self._tails["err"])[-TAIL_BYTES:]

    def _feed(self, which: str, data: bytes) -> None:
        buf = self._partial[which] + data
        if data:
            cut = buf.rfind(b"\n") + 1
            if not cut:
                self._partial[which] = buf
                return
            whole, self._partial[which] = buf[:cut], buf[cut:]
        else:
            whole, self._partial[which] = buf, b""
        if whole:
            for raw in whole.splitlines(keepends=True):
                self._line(which, raw)

    def _line(self, which: str, raw: bytes) -> None:
        line = self._redact(raw) if self._redact else raw
        # a huge line (an agent's tool result) is kept whole in the log and for on_line,
        # but only its end in the tail: 200 lines never hold more than 200 x TAIL_LINE
        self._tails[which].append(line if len(line) <= TAIL_LINE else b"[...] " + line[-TAIL_LINE:])
        self._log.write(line)  # a full disk: the log gives up, the pipe is still drained
        if self._on_line and which == "out":
            self._on_line(line)


def _terminate(child: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the group, then SIGKILL it if the leader has not gone after `grace`."""
    _kill_group(child.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(grace)
    _kill_group(child.pid, signal.SIGKILL)
    child.wait()


def _feed(child: subprocess.Popen[bytes], data: bytes) -> None:
    """Write the child's whole stdin, then close it (a child that exits early: fine)."""
    assert child.stdin is not None
    with contextlib.suppress(OSError):
        child.stdin.write(data)
    with contextlib.suppress(OSError):
        child.stdin.close()


class _Log:
    """An attempt's log file, made with the first bytes the child prints, its folder too: a
    command that prints nothing leaves no file (a file created is a step's dearest system
    call after an fsync). Unbuffered: each line is in the file as soon as it was read, so a
    reader (the dashboard's live tail of a running attempt) sees the output as it comes,
    not 8 KiB at a time. A file that cannot be made or written (a full disk, no inodes) is
    given up quietly: the step runs all the same, with its output tail kept in memory."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._file: io.FileIO | None = None

    def write(self, data: bytes) -> None:
        if self._file is None:
            if self._path is None:
                return
            self._file = self._open(self._path)
            self._path = None  # opened, or given up
            if self._file is None:
                return
        try:
            self._file.write(data)
        except OSError:
            self.close()

    def close(self) -> None:
        f, self._file, self._path = self._file, None, None
        if f is not None:
            with contextlib.suppress(OSError):  # a full disk: the log is as far as it got
                f.close()

    @staticmethod
    def _open(path: Path) -> io.FileIO | None:
        try:
            return io.FileIO(path, "wb")
        except FileNotFoundError:
            pass  # its folder is not there yet
        except OSError:
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return io.FileIO(path, "wb")
        except OSError:
            return None


def worker_identity(hostname: str) -> str:
    """`host:pid:start-time` for claims, with the process start time from /proc when known."""
    pid = os.getpid()
    start = "0"
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    return f"{hostname}:{pid}:{start}"


def host_of(identity: str) -> str | None:
    """The host of a `host:pid:start-time` worker identity (None: not of that form)."""
    parts = identity.rsplit(":", 2)
    return parts[0] if len(parts) == 3 and parts[0] else None


def this_host() -> str:
    """The host name worker identities and commits carry for this machine."""
    return os.uname().nodename


# ---------------------------------------------------------------- a lost attempt's leftovers
#
# A step runs in a session of its own (start_new_session), so a SIGKILLed worker's steps go
# on without it. They are found again by the FREQ_* variables naming their attempt (worker
# identity, factory, subject, epoch: unique per attempt), which every descendant inherits
# and /proc/<pid>/environ shows, plus whatever else is in those processes' sessions (a child
# that cleared its environment). Nothing is recorded per attempt, so throughput pays nothing;
# and nothing is signalled by a remembered pid: each process is held by a pidfd opened before
# its /proc files are read, and signalled through it, so a pid reused meanwhile is never hit.

ORPHAN_GRACE = 2.0  # seconds from SIGTERM to SIGKILL for a lost attempt's processes
ORPHAN_WAIT = 2.0  # seconds to wait for them to be gone after each SIGKILL
_KILL_ROUNDS = 3  # a process that forks as it is killed leaves a child for the next round
_PROC = "/proc"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stopped:
    """What stopping a lost attempt's processes came to."""

    supported: bool = True  # False: this platform cannot look for them (no /proc or pidfds)
    found: int = 0  # processes of the attempt that were running
    left: int = 0  # of them, still there when the wait ended (sent SIGKILL, not yet gone)


@dataclass(frozen=True, slots=True)
class _Stat:
    state: str
    session: int
    start: int  # clock ticks after boot (field 22)

    @property
    def gone(self) -> bool:
        return self.state in ("Z", "X")  # exited; a zombie waits for a parent that may never reap


def _stat(pid: int) -> _Stat | None:
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # the name in () may hold anything
        return _Stat(state=fields[0].decode(), session=int(fields[3]), start=int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


def _carries(pid: int, wanted: frozenset[bytes]) -> bool:
    """Whether `pid`'s environment (as it was exec'd with) holds every `wanted` entry."""
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as f:
            return wanted.issubset(f.read().split(b"\0"))
    except OSError:  # gone, a zombie, or another user's
        return False


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _unreaped(fd: int) -> bool:
    """Whether the process `fd` holds is not yet reaped: its pid is still its own."""
    try:
        signal.pidfd_send_signal(fd, 0)
    except OSError:
        return False
    return True


def _held(pid: int, check: Callable[[int, _Stat], bool]) -> tuple[int, _Stat] | None:
    """A pidfd on `pid` and its stat, if `check` holds of what /proc says after the pidfd was
    opened and the process is still unreaped after that read (so the read was of it)."""
    fd = _pidfd(pid)
    if fd is None:
        return None
    st = _stat(pid)
    if st is not None and not st.gone and check(pid, st) and _unreaped(fd):
        return fd, st
    os.close(fd)
    return None


def _same(pid: int, fd: int, was: _Stat) -> bool:
    """`pid` (held by `fd`) is still running, in the same session, and unreaped after that."""
    now = _stat(pid)
    return (
        now is not None
        and not now.gone
        and (now.session, now.start) == (was.session, was.start)
        and _unreaped(fd)
    )


def _attempt_processes(wanted: frozenset[bytes]) -> dict[int, int]:
    """pid -> pidfd of each live process carrying `wanted`, and of the rest of their sessions.

    A process that only shares a session counts if a carrier of that session is still
    unreaped after the process was read: the session id was then still the carrier's."""
    me = os.getpid()
    pids = [int(n) for n in os.listdir(_PROC) if n.isdigit() and int(n) != me]
    found: dict[int, int] = {}
    carriers: dict[int, _Stat] = {}
    members: dict[int, tuple[int, int]] = {}
    try:
        for pid in pids:
            if _carries(pid, wanted):  # cheap filter first, then the check through a pidfd
                held = _held(pid, lambda p, _st: _carries(p, wanted))
                if held is not None:
                    found[pid], carriers[pid] = held
        sessions = {st.session for st in carriers.values()}
        if not sessions:
            return found  # the usual case: nothing of the attempt is left
        for pid in pids:
            st = _stat(pid) if pid not in found else None
            if st is None or st.gone or st.session not in sessions:
                continue
            held = _held(pid, lambda _p, st: st.session in sessions)
            if held is not None:
                members[pid] = (held[0], held[1].session)
        live = {st.session for pid, st in carriers.items() if _same(pid, found[pid], st)}
        for pid in list(members):
            fd, session = members.pop(pid)
            if session in live:
                found[pid] = fd
            else:
                os.close(fd)
        return found
    except BaseException:
        _close(found)
        _close({pid: fd for pid, (fd, _s) in members.items()})
        raise


def _close(fds: Mapping[int, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)


def _signal_all(fds: Mapping[int, int], sig: int) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours: counted as left
            signal.pidfd_send_signal(fd, sig)


def _wait_gone(fds: Mapping[int, int], seconds: float) -> None:
    """Until every process exits (a pidfd polls readable then) or `seconds` pass."""
    poller = select.poll()
    for fd in fds.values():
        poller.register(fd, select.POLLIN)
    pending = len(fds)
    deadline = time.monotonic() + seconds
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for fd, _event in poller.poll(max(1, int(left * 1000))):
            poller.unregister(fd)
            pending -= 1


@functools.cache
def _can_find() -> bool:
    """Linux with /proc and pidfds (kernel 5.3+)."""
    if not hasattr(os, "pidfd_open") or not os.path.isdir(f"{_PROC}/self"):
        return False
    fd = _pidfd(os.getpid())
    if fd is None:
        return False
    os.close(fd)
    return True


def stop_attempt(
    marks: Mapping[str, str], *, grace: float = ORPHAN_GRACE, wait: float = ORPHAN_WAIT
) -> Stopped:
    """Stop what is left on this host of one attempt: every process of this user whose
    environment holds all of `marks` (the FREQ_* variables naming the attempt), and the rest of
    their sessions. SIGTERM, SIGKILL after `grace` seconds to what is still there (and what it
    forked meanwhile), then up to `wait` seconds for them to be gone. Waits in real time,
    whatever the injected clock: these are real processes. Never signals this process.

    Not Linux, or no pidfds: nothing is looked for, and Stopped(supported=False) says so."""
    if not _can_find():
        return Stopped(supported=False)
    wanted = frozenset(f"{k}={v}".encode() for k, v in marks.items())
    procs = _attempt_processes(wanted)
    seen = set(procs)
    try:
        for sig, seconds in ((signal.SIGTERM, grace), *[(signal.SIGKILL, wait)] * _KILL_ROUNDS):
            if not procs:
                break
            _signal_all(procs, sig)
            _wait_gone(procs, seconds)
            _close(procs)
            procs = {}  # closed: `finally` must not close these numbers again (reused by now)
            procs = _attempt_processes(wanted)
            seen.update(procs)
        return Stopped(found=len(seen), left=len(procs))
    finally:
        _close(procs)


# ---------------------------------------------------------------- the parent's death

PARENT_POLL = 0.05  # seconds between looks at the parent (a getppid call: nothing to measure)


class ParentWatch:
    """A thread that calls `on_gone` once, when the parent process has exited."""

    def __init__(self, ppid: int, on_gone: Callable[[], None], *, interval: float) -> None:
        self.ppid = ppid
        self.gone = False
        self._on_gone = on_gone
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="freq-parent", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # an orphan is adopted by init (or a subreaper): its parent pid changes, portably
        while not self._stop.wait(self._interval):
            if os.getppid() != self.ppid:
                self.gone = True
                self._on_gone()
                return

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join()


def _name_of(pid: int) -> str | None:
    """The executable name of `pid` (Linux /proc; None elsewhere or when it is gone)."""
    with contextlib.suppress(OSError), open(f"{_PROC}/{pid}/comm") as f:
        return f.read().strip()
    return None


def watch_parent(
    on_gone: Callable[[], None], *, names: tuple[str, ...] = ("git",), interval: float = PARENT_POLL
) -> ParentWatch | None:
    """Call `on_gone` once the parent process exits, if the parent is git's wrapper (`git freq
    run`: git runs git-freq as its child and waits for it; a `kill -9` of git would leave this
    process and its steps running unseen). None when the parent is anything else: a worker
    started from a shell, by nohup or as a daemon must outlive whoever started it.

    The parent's name comes from /proc (Linux); elsewhere nothing is watched. A parent that
    dies before this call is not noticed (the process is adopted: its parent is not git)."""
    ppid = os.getppid()
    if _name_of(ppid) not in names:
        return None
    return ParentWatch(ppid, on_gone, interval=interval)


DOUBLE_SIGNAL = 0.5  # seconds: a second SIGINT this soon is the same keypress, twice


class Interrupts:
    """Which interrupt stopped a run (None: none), and how to put the old handlers back."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._restore: Callable[[], None] = lambda: None

    @property
    def name(self) -> str | None:
        """`SIGINT` or `SIGTERM`, once one arrived."""
        return signal.Signals(self.signal).name if self.signal is not None else None

    def restore(self) -> None:
        """Put back the handlers that were there before."""
        self._restore()


def handle_interrupts(
    first: Callable[[], None],
    second: Callable[[], None],
    *,
    clock: Clock,
) -> Interrupts:
    """Route SIGINT/SIGTERM: the first signal calls `first`, a later one `second`.

    One Ctrl-C is one interrupt: run as `git freq`, the process gets the terminal's SIGINT
    and the same SIGINT again from git's wrapper, which forwards it to its child; a SIGINT
    within DOUBLE_SIGNAL seconds of the first is taken for that echo. Outside the main
    thread (where Python cannot install handlers) nothing is installed.
    """
    out = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        return out
    seen: list[tuple[int, float]] = []

    def handler(signum: int, frame: object) -> None:
        now = clock.monotonic()
        if (
            len(seen) == 1
            and signum == seen[0][0] == signal.SIGINT
            and now - seen[0][1] < DOUBLE_SIGNAL
        ):
            return  # git's echo of the keypress we already have
        seen.append((signum, now))
        if len(seen) == 1:
            out.signal = signum
            first()
        else:
            second()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    out._restore = restore
    return out


# ---------------------------------------------------------------- a child on a terminal
#
# Agent CLIs that prompt only on a terminal (Codex's `Workspace out of credits. Request more
# from your workspace owner? [y/N]`, agent-clis REPORT §5) run under a pseudo-terminal made by
# pexpect. pexpect forks and execs (the child is a session leader with the pty as its
# controlling terminal, so its pid is its process group) and reaps; the reading is done here,
# on the pty's descriptor, because pexpect's reads can block whatever their timeout: once a
# read meets the end of the terminal (EIO, every descriptor on it closed), pexpect's
# isalive() waits for the child with a blocking waitpid, so a child that closed its terminal
# and ran on would hold the loop past its timeout. pexpect is imported on first use: it costs
# ~40 ms, and most runs need no terminal.

TTY_SIZE = (50, 200)  # rows, columns: wide, so CLIs do not wrap their prompts
RESPOND_LIMIT = 50  # answers typed in one run: a prompt that keeps coming back needs a human
DRAIN = 1.0  # seconds to read what is left after the group is killed
_READ = 64 * 1024
_PAUSE = threading.Event()  # never set: waiting on it pauses in real time (a real child)


@dataclass(frozen=True, slots=True, kw_only=True)
class TtyResult:
    """How a child on a terminal ended, what it asked if it was waiting, what it printed last."""

    argv: tuple[str, ...]
    exit_code: int | None
    signal: int | None
    timed_out: bool
    cancelled: bool
    stalled: bool  # no output for `stall` seconds: waiting at a prompt no rule answers
    # needs_human or terminal from a respond rule's `as:`; needs_human after a stall or
    # RESPOND_LIMIT answers; None when it ended by itself, timed out or was cancelled
    ended_as: RespondAs | None
    question: str | None  # with ended_as: the matched screen lines, or the last lines
    answered: tuple[str, ...]  # the screen lines of each prompt a `send` rule answered
    duration_ms: int
    tail: bytes
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Exited 0 by itself, with no prompt left unanswered."""
        return (
            self.exit_code == 0
            and not self.timed_out
            and not self.cancelled
            and self.ended_as is None
        )

    def describe(self) -> str:
        """One line: how it ended."""
        if self.error:
            return self.error
        if self.timed_out:
            return "timed out"
        if self.cancelled:
            return "cancelled"
        asked = (self.question or "").rpartition("\n")[2][:200]  # the prompt's own line
        at = f": {asked}" if asked else ""
        if self.stalled:
            return f"stalled at a prompt no rule answers{at}"
        if self.ended_as is RespondAs.NEEDS_HUMAN:
            return f"needs a human{at}"
        if self.ended_as is RespondAs.TERMINAL:
            return f"ended as terminal{at}"
        if self.signal is not None:
            return f"killed by signal {signal.Signals(self.signal).name}"
        return f"exit {self.exit_code}"


class _Terminal:
    """A child on a pty: its output goes to the log, to on_output, to the tail and to the
    screen the respond rules read."""

    def __init__(self, child: Any, log: _Log, on_output: Callable[[bytes], None] | None) -> None:
        self.child = child
        self.fd: int = child.child_fd
        self.pid: int = child.pid
        from freq.screen import Screen  # terminals only: RE2 loads with it

        self.screen = Screen()
        self.eof = False  # every descriptor on the terminal is closed
        self._tail = bytearray()
        self._log = log
        self._on_output = on_output

    def read(self, seconds: float) -> bool:
        """Wait up to `seconds` for output and take it in: whether any came."""
        if self.eof:
            _PAUSE.wait(seconds)
            return False
        ready, _, _ = select.select([self.fd], [], [], max(seconds, 0))
        if not ready:
            return False
        try:
            data = os.read(self.fd, _READ)
        except OSError:  # EIO: the terminal's last descriptor closed (Linux's end of file)
            data = b""
        if not data:
            self.eof = True
            return False
        self._take(data)
        return True

    def _take(self, data: bytes) -> None:
        self._tail += data
        if len(self._tail) > 2 * TAIL_BYTES:
            del self._tail[:-TAIL_BYTES]
        self._log.write(data)  # a full disk: the log gives up, the tail is kept
        if self._on_output is not None:
            self._on_output(data)
        self.screen.feed(data)

    def type(self, text: str) -> None:
        """Type `text` and Enter (CR, as a keyboard does: the terminal makes it a newline for
        a line-reading program, and a raw-mode TUI takes it as Enter)."""
        data = (text + "\r").encode()
        with contextlib.suppress(OSError):  # gone meanwhile: its end is read next
            while data:
                data = data[os.write(self.fd, data) :]

    def alive(self) -> bool:
        """Whether the child has not exited (reaps it when it has)."""
        return bool(self.child.isalive())

    def tail(self) -> bytes:
        """The last TAIL_LINES lines of output, at most TAIL_BYTES."""
        data = bytes(self._tail[-TAIL_BYTES:])
        keep = TAIL_LINES + data.endswith(b"\n")  # a last line still open counts as one
        return b"\n".join(data.split(b"\n")[-keep:])

    def finish(self, *, kill: bool, grace: float, poll: float) -> None:
        """End the group: SIGTERM, then SIGKILL after `grace` seconds if the child is still
        there (`kill`), or SIGKILL at once for what an exited child left behind; then read
        what is left (at most DRAIN seconds) and reap."""
        if kill:
            _kill_group(self.pid, signal.SIGTERM)
            until = time.monotonic() + grace
            while self.alive() and (left := until - time.monotonic()) > 0:
                self.read(min(poll, left))  # its last words are kept while it goes
        _kill_group(self.pid, signal.SIGKILL)
        until = time.monotonic() + DRAIN
        while not self.eof and (left := until - time.monotonic()) > 0:
            self.read(min(poll, left))
        self.child.wait()  # after SIGKILL: at once
        self.child.ptyproc.delayafterclose = 0  # ptyprocess sleeps 0.1 s before it looks
        self.child.close()

    def abandon(self, *, poll: float) -> None:
        """End the group at once, its output no longer passed on (after a failed callback)."""
        self._on_output = None
        self.finish(kill=True, grace=0, poll=poll)


def _answer(term: _Terminal, rules: Sequence[Respond], answered: list[str]) -> Prompt | None:
    """Type the answers of `send` rules at the prompts on screen; the prompt that ends the
    run (an `as:` rule, or one more after RESPOND_LIMIT answers), if there is one."""
    while (prompt := term.screen.take(rules)) is not None:
        if prompt.rule.send is None or len(answered) >= RESPOND_LIMIT:
            return prompt
        term.type(prompt.rule.send)
        answered.append(prompt.lines)
    return None


def _drive(
    term: _Terminal,
    *,
    clock: Clock,
    deadline: float | None,
    stall: float | None,
    respond: Sequence[Respond],
    on_poll: Callable[[], bool] | None,
    poll: float,
    answered: list[str],
) -> Literal["exited", "timed_out", "cancelled", "stalled"] | Prompt:
    """Read, answer and watch until something ends the run: the child's own exit, the
    deadline, a cancel, a stall, or the prompt of a rule that ends it."""
    last = clock.monotonic()  # of output or of an answer typed: the stall counts from there
    next_poll = time.monotonic()  # on_poll's pace is real time, as run()'s joins are
    while True:
        if term.read(poll):
            last = clock.monotonic()
            ended = _answer(term, respond, answered)
            if ended is not None:
                return ended
        if not term.alive():
            return "exited"
        now = clock.monotonic()
        if deadline is not None and now >= deadline:
            return "timed_out"
        if on_poll is not None and time.monotonic() >= next_poll:
            next_poll = time.monotonic() + poll
            if not on_poll():
                return "cancelled"
        if stall is not None and not term.eof and now - last >= stall:
            return "stalled"


def _spawn_tty(argv: list[str], cwd: str, env: Mapping[str, str]) -> Any:
    import pexpect

    program = argv[0]
    if os.sep in program and not os.path.isabs(program):
        # pexpect looks a relative path up from our cwd, not the child's (Popen's rule)
        program = os.path.join(cwd, program)
    try:
        return pexpect.spawn(
            program, argv[1:], cwd=cwd, env=dict(env), dimensions=TTY_SIZE, encoding=None
        )
    except pexpect.ExceptionPexpect as exc:  # not found on PATH, or not executable
        raise FileNotFoundError(errno.ENOENT, "not found, or not executable") from exc


def run_tty(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    clock: Clock,
    log_path: Path | None,
    timeout: float | None,
    stall: float | None,
    respond: Sequence[Respond],
    on_poll: Callable[[], bool] | None = None,
    on_output: Callable[[bytes], None] | None = None,
    grace: float = 5.0,
    poll: float = 0.05,
) -> TtyResult:
    """Run `argv` to the end on a pseudo-terminal of TTY_SIZE, answering its prompts.

    Every byte of output goes to `log_path` (made by the first) and `on_output`; the last
    TAIL_LINES lines are kept. After each chunk the `respond` rules are tried in order
    against the recent screen (escape sequences stripped): a `send` rule types its text and
    Enter, and the output up to the end of its match is answered (it matches again only on
    later output); an `as:` rule ends the run with that outcome and the matched lines as the
    question. No output for `stall` seconds ends it as stalled, needs_human, with the last
    lines as the question. `timeout` and `stall` count on `clock`; `on_poll` is called every
    `poll` seconds (lease renewal), and False cancels. Whatever ends a live child ends its
    whole process group: SIGTERM, then SIGKILL after `grace` seconds.
    """
    args = list(argv)
    start = clock.monotonic()
    log = _Log(log_path)
    try:
        try:
            term = _Terminal(_spawn_tty(args, os.fspath(cwd), env), log, on_output)
        except OSError as exc:
            msg = f"could not start {args[0]!r}: {exc.strerror or exc}"
            return TtyResult(
                argv=tuple(args),
                exit_code=127,
                signal=None,
                timed_out=False,
                cancelled=False,
                stalled=False,
                ended_as=None,
                question=None,
                answered=(),
                duration_ms=0,
                tail=msg.encode() + b"\n",
                error=msg,
            )
        answered: list[str] = []
        try:
            end = _drive(
                term,
                clock=clock,
                deadline=None if timeout is None else start + timeout,
                stall=stall,
                respond=respond,
                on_poll=on_poll,
                poll=poll,
                answered=answered,
            )
        except BaseException:
            term.abandon(poll=poll)  # a callback failed: no CLI is left on a terminal unread
            raise
        term.finish(kill=term.alive(), grace=grace, poll=poll)
        ended_as: RespondAs | None = None
        question: str | None = None
        if end == "stalled":
            ended_as, question = RespondAs.NEEDS_HUMAN, term.screen.last_lines()
        elif not isinstance(end, str):  # a Prompt
            ended_as, question = end.rule.as_ or RespondAs.NEEDS_HUMAN, end.lines
        return TtyResult(
            argv=tuple(args),
            exit_code=term.child.exitstatus,
            signal=term.child.signalstatus,
            timed_out=end == "timed_out",
            cancelled=end == "cancelled",
            stalled=end == "stalled",
            ended_as=ended_as,
            question=question,
            answered=tuple(answered),
            duration_ms=int((clock.monotonic() - start) * 1000),
            tail=term.tail(),
        )
    finally:
        log.close()
