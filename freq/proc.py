"""The process funnel: the only module that starts processes or sends signals.

Must not import dulwich, click or freq modules above it. Every child runs in its own
process group with an argv list (or `sh -c` for a string), an explicit cwd and a built
environment; output goes to a log file and a bounded tail is kept in memory; on timeout
or cancel the whole group gets SIGTERM, then SIGKILL after a grace period (tox habit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess  # noqa: TID251 - the process funnel
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from freq.clock import Clock

TAIL_LINES = 200
TAIL_BYTES = 64 * 1024
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
) -> ProcResult:
    """Run one command to the end in its own process group, keeping an output tail.

    stdout and stderr are merged, written in full to `log_path` and kept as the last
    TAIL_LINES lines (at most TAIL_BYTES). `timeout` (seconds) or `cancel` stop the whole
    group: SIGTERM, then SIGKILL after `grace` seconds. `on_poll` is called every `poll`
    seconds while the child runs (lease renewal); returning False cancels the child.
    """
    argv = argv_for(command)
    start = clock.monotonic()
    log = open(log_path, "wb") if log_path else None  # noqa: SIM115 - closed below
    try:
        try:
            child = subprocess.Popen(
                argv,
                cwd=os.fspath(cwd),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
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
        tail: deque[bytes] = deque(maxlen=TAIL_LINES)
        reader = threading.Thread(target=_pump, args=(child, tail, log, on_line), daemon=True)
        reader.start()
        timed_out = cancelled = False
        deadline = None if timeout is None else start + timeout
        while child.poll() is None:
            if deadline is not None and clock.monotonic() >= deadline:
                timed_out = True
                break
            if (cancel is not None and cancel.is_set()) or (on_poll is not None and not on_poll()):
                cancelled = True
                break
            if reader.is_alive():
                # end of output comes the moment the child exits (unless a background child
                # keeps the pipe open): a join wakes at once, where Popen.wait(timeout) sleeps
                # in growing steps and notices an exit up to 16 ms late
                reader.join(poll)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(poll)
        if timed_out or cancelled:
            _terminate(child, grace)
        else:
            # the leader exited; anything it left behind in its group goes too
            _kill_group(child.pid, signal.SIGKILL)
        reader.join(timeout=grace + 1)
        code = child.returncode
        sig = -code if code is not None and code < 0 else None
        data = b"".join(tail)[-TAIL_BYTES:]
        return ProcResult(
            argv=tuple(argv),
            exit_code=None if sig is not None else code,
            signal=sig,
            timed_out=timed_out,
            cancelled=cancelled,
            duration_ms=int((clock.monotonic() - start) * 1000),
            tail=data,
        )
    finally:
        if log:
            log.close()


def _terminate(child: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the group, then SIGKILL it if the leader has not gone after `grace`."""
    _kill_group(child.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(grace)
    _kill_group(child.pid, signal.SIGKILL)
    child.wait()


def _pump(
    child: subprocess.Popen[bytes],
    tail: deque[bytes],
    log: object,
    on_line: Callable[[bytes], None] | None,
) -> None:
    assert child.stdout is not None
    write = getattr(log, "write", None)
    for line in child.stdout:
        tail.append(line)
        if write:
            write(line)
        if on_line:
            on_line(line)
    child.stdout.close()


def worker_identity(hostname: str) -> str:
    """`host:pid:start-time` for claims, with the process start time from /proc when known."""
    pid = os.getpid()
    start = "0"
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    return f"{hostname}:{pid}:{start}"


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
