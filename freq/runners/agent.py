"""Agent steps (`agent:`): an agent CLI through its adapter, judged from its own output.

Must not import click or dulwich; processes start only in freq.proc. The adapter
(freq/agents/) builds the headless command line and judges what the CLI printed; this
runner starts it with stdin closed unless the prompt goes there, in its own process group
(killed whole at the timeout), ends it when it prints no structured event for
`stall_timeout`, runs the step's `verify:` after a success, and turns it all into a
StepResult with a class hint and the attempt's usage (tokens, cost, session).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from freq import proc
from freq.agents import ADAPTERS, AgentRequest, AgentResult, Reader, Usage
from freq.classify import Hint
from freq.clock import Clock
from freq.costs import estimate_usd
from freq.model import DEFAULT_STALL, AgentDef, FailureKind, RespondAs, format_duration
from freq.runners.base import Attempt, StepRequest, StepResult
from freq.runtime import AgentUsage, CostSource
from freq.secrets import Redactor

# how much of the raw event stream an attempt keeps in git beside the agent's own words
_STREAM_LINES = 20


class AgentRunner:
    """Runs a step's `agent:` through its adapter."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def run(self, request: StepRequest, attempt: Attempt) -> StepResult:
        """Start the CLI, judge how it ended, then verify a success."""
        agent = request.agent
        if agent is None:
            raise ValueError(f"step {request.step.id!r} has no agent:")
        adapter = ADAPTERS[agent.use]
        scratch = request.scratch or request.log_path.with_suffix(".d")
        with contextlib.suppress(OSError):  # a full disk: the step runs without its log
            request.log_path.parent.mkdir(parents=True, exist_ok=True)
            scratch.mkdir(parents=True, exist_ok=True)
        call = AgentRequest(
            agent=agent,
            prompt=request.prompt,
            cwd=request.cwd,
            scratch=scratch,
            resume=request.resume,
            budget_usd=request.budget_usd,
        )
        inv = adapter.invocation(call)
        for path, content in inv.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        # the invocation's env is the adapter's with the agent's own `env:` on top
        env = proc.build_env({**request.env, **inv.env})
        secrets = Redactor.of_env(env)
        reader = adapter.reader()
        stall = (agent.stall_timeout or DEFAULT_STALL).total_seconds()
        last_event = self.clock.monotonic()
        stalled = False

        def on_line(line: bytes) -> None:
            nonlocal last_event
            if reader.feed(line):
                last_event = self.clock.monotonic()
            if request.on_line is not None:
                request.on_line(line)

        def go_on() -> bool:
            nonlocal stalled
            if self.clock.monotonic() - last_event > stall:
                stalled = True
                return False
            return attempt.go_on()

        if agent.tty:
            return self._tty(request, attempt, inv.argv, env, secrets, reader, stall)
        res = proc.run(
            list(inv.argv),
            cwd=request.cwd,
            env=env,
            clock=self.clock,
            log_path=request.log_path,
            timeout=request.timeout,
            on_poll=go_on,
            on_line=on_line,
            stdin=inv.stdin,
            split_stderr=True,
            redact=secrets.data if secrets else None,
        )
        stderr = res.err_tail.decode("utf-8", "replace")
        if res.error is not None:  # it could not start: the binary is missing
            return _not_started(res, (res.error + "\n").encode())
        judged = reader.finish(
            stderr=stderr,
            exit_code=res.exit_code,
            signal=res.signal,
            timed_out=res.timed_out,
            now=self.clock.now(),
        )
        if stalled and not res.timed_out:
            quiet = f"no event for {format_duration(timedelta(seconds=stall))}"
            return replace(
                self._judged(request, res, judged, _tail(judged, res.tail, stderr, secrets)),
                exit_code=None,
                cancelled=False,
                how=f"stalled: {quiet}",
                failed=True,
                hint=Hint(kind=FailureKind.RETRYABLE, reason=f"stalled: {quiet}"),
            )
        return self._conclude(
            request, env, secrets, res, judged, _tail(judged, res.tail, stderr, secrets)
        )

    def _judged(
        self,
        request: StepRequest,
        res: proc.ProcResult | proc.TtyResult,
        judged: AgentResult,
        tail: bytes,
    ) -> StepResult:
        """How the process ended, with what the adapter read of it: usage, session and the
        agent's final message (read for `freq:subject` and `freq:ask` lines)."""
        assert request.agent is not None
        usage, totals = _usage(request.agent, judged, request.previous_totals)
        return StepResult(
            exit_code=res.exit_code,
            signal=res.signal,
            timed_out=res.timed_out,
            cancelled=res.cancelled,
            duration_ms=res.duration_ms,
            tail=tail,
            how=res.describe(),
            usage=usage,
            session_totals=totals,
            said=tuple(line.encode() + b"\n" for line in judged.text.splitlines()),
        )

    def _conclude(
        self,
        request: StepRequest,
        env: dict[str, str],
        secrets: Redactor,
        res: proc.ProcResult | proc.TtyResult,
        judged: AgentResult,
        tail: bytes,
    ) -> StepResult:
        """The attempt's result, through a pipe or a terminal alike: a command's exit code
        listed in `outcomes:` chooses the state; a failure is the adapter's verdict; a
        success is then checked by `verify:`."""
        assert request.agent is not None
        base = self._judged(request, res, judged, tail)
        mapped = (
            request.agent.use == "command"
            and judged.kind is None
            and res.exit_code in request.step.outcomes
        )
        if mapped:  # a command's own exit code chooses the outcome (`outcomes:`)
            return base
        if res.cancelled or res.timed_out or res.signal is not None or not judged.ok:
            return replace(base, how=_how(judged, res), failed=not judged.ok, hint=_hint(judged))
        if request.step.verify is not None:
            checked = self._verify(request, env, secrets, res.duration_ms)
            if checked is not None:
                return replace(
                    base,
                    exit_code=checked.exit_code,
                    signal=checked.signal,
                    timed_out=checked.timed_out,
                    cancelled=checked.cancelled,
                    duration_ms=res.duration_ms + checked.duration_ms,
                    tail=checked.tail,
                    how=f"verify failed: {checked.describe()}",
                    failed=True,
                )
        return base

    def _tty(
        self,
        request: StepRequest,
        attempt: Attempt,
        argv: tuple[str, ...],
        env: dict[str, str],
        secrets: Redactor,
        reader: Reader,
        stall: float,
    ) -> StepResult:
        """The CLI under a pseudo-terminal (`tty: true`): `respond:` rules answer its
        prompts; a prompt no rule answers, or no output for `stall_timeout`, parks the
        attempt as needs_human with the screen's last lines as the question."""
        agent = request.agent
        assert agent is not None
        lines = _Lines(request.log_path, secrets, reader, request.on_line)
        try:
            res = proc.run_tty(
                list(argv),
                cwd=request.cwd,
                env=env,
                clock=self.clock,
                log_path=None,  # written by `lines`, secrets masked
                timeout=request.timeout,
                stall=stall,
                respond=agent.respond,
                on_poll=attempt.go_on,
                on_output=lines.take,
            )
        finally:
            lines.close()
        tail = secrets.data(res.tail)
        if res.error is not None:
            return _not_started(res, tail)
        question = secrets.text(res.question) if res.question else None
        if res.ended_as is not None or res.stalled:
            kind = (
                FailureKind.TERMINAL
                if res.ended_as is RespondAs.TERMINAL
                else FailureKind.NEEDS_HUMAN
            )
            why = "stalled at a prompt no rule answers" if res.stalled else "a respond rule matched"
            return StepResult(
                exit_code=res.exit_code,
                duration_ms=res.duration_ms,
                tail=tail,
                how=secrets.text(res.describe()),
                failed=True,
                hint=Hint(kind=kind, reason=why, question=question),
            )
        judged = reader.finish(
            stderr="",
            exit_code=res.exit_code,
            signal=res.signal,
            timed_out=res.timed_out,
            now=self.clock.now(),
        )
        return self._conclude(request, env, secrets, res, judged, tail)

    def _verify(
        self, request: StepRequest, env: dict[str, str], secrets: Redactor, spent_ms: int
    ) -> proc.ProcResult | None:
        """Run `verify:` where the agent ran; its result when it failed, else None."""
        assert request.step.verify is not None
        left = None if request.timeout is None else max(1.0, request.timeout - spent_ms / 1000)
        checked = proc.run(
            request.step.verify,
            cwd=request.cwd,
            env=env,
            clock=self.clock,
            log_path=request.log_path.with_suffix(".verify.log"),
            timeout=left,
            redact=secrets.data if secrets else None,
        )
        return None if checked.ok else checked


class _Lines:
    """A terminal's output bytes as lines: to the log (secrets masked), the adapter's
    reader and the step's line callback."""

    def __init__(
        self,
        log_path: Path,
        secrets: Redactor,
        reader: Reader,
        on_line: Callable[[bytes], None] | None,
    ) -> None:
        self._secrets = secrets
        self._reader = reader
        self._on_line = on_line
        self._partial = b""
        try:
            self._log: BinaryIO | None = open(log_path, "wb")  # noqa: SIM115 - closed by close()
        except OSError:
            self._log = None  # a full disk: the step runs without its log

    def take(self, data: bytes) -> None:
        *whole, self._partial = (self._partial + data).split(b"\n")
        for raw in whole:
            self._line(raw + b"\n")

    def _line(self, raw: bytes) -> None:
        line = self._secrets.data(raw.replace(b"\r\n", b"\n").replace(b"\r", b""))
        if self._log is not None:
            try:
                self._log.write(line)
            except OSError:
                self._log = None
        self._reader.feed(line)
        if self._on_line is not None:
            self._on_line(line)

    def close(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()


def _not_started(res: proc.ProcResult | proc.TtyResult, tail: bytes) -> StepResult:
    """The CLI could not start: terminal, saying why."""
    assert res.error is not None
    return StepResult(
        exit_code=res.exit_code,
        duration_ms=res.duration_ms,
        tail=tail,
        how=res.error,
        failed=True,
        hint=Hint(kind=FailureKind.TERMINAL, reason=_start_failure(res.error)),
    )


def _start_failure(error: str) -> str:
    """Why the CLI could not start, and what to do: a missing program is named."""
    if "No such file" in error or "not found" in error:
        return f"{error}: install it, or name it with bin: in frequency.yaml"
    return error


def _hint(judged: AgentResult) -> Hint | None:
    if judged.ok or judged.kind is None:
        return None
    return Hint(
        kind=judged.kind,
        reason=judged.reason or judged.kind.value,
        hold_until=judged.reset_at,
        question=judged.question,
    )


def _how(judged: AgentResult, res: proc.ProcResult | proc.TtyResult) -> str:
    how = res.describe()
    if judged.reason and not judged.ok:
        return f"{judged.reason} ({how})"
    return how


def _tail(judged: AgentResult, stdout: bytes, stderr: str, secrets: Redactor) -> bytes:
    """What the attempt keeps in git (and `{last_error}` reads): the verdict, the agent's
    own words and stderr. The raw event stream stays in the log file, unless the CLI said
    nothing else."""
    parts = []
    if judged.reason:
        parts.append(judged.reason)
    if judged.denied:
        parts.append("denied: " + ", ".join(judged.denied))
    if judged.text:
        parts.append(judged.text)
    if stderr.strip():
        parts.append(stderr.rstrip("\n"))
    text = "\n".join(parts) + ("\n" if parts else "")
    out = text.encode()
    if not parts:  # the CLI said nothing the adapter could read: its last lines, raw
        out = b"".join(line + b"\n" for line in stdout.splitlines()[-_STREAM_LINES:])
    return secrets.data(out)[-proc.TAIL_BYTES :]


def _usage(
    agent: AgentDef, judged: AgentResult, previous: tuple[int, int, int] | None
) -> tuple[AgentUsage, tuple[int, int, int] | None]:
    """The attempt's own usage (a running total less what the session had before), and
    the session's totals to record when the CLI reports running totals."""
    u = judged.usage
    totals = None
    if u.cumulative and u.tokens_in is not None and u.tokens_out is not None:
        totals = (u.tokens_in, u.tokens_out, u.tokens_cached or 0)
        if previous is not None and all(a >= b for a, b in zip(totals, previous, strict=True)):
            u = Usage(
                tokens_in=totals[0] - previous[0],
                tokens_out=totals[1] - previous[1],
                tokens_cached=totals[2] - previous[2],
                cost_usd=u.cost_usd,
            )
    model = judged.model or agent.model
    cost, source = u.cost_usd, CostSource.REPORTED if u.cost_usd is not None else None
    if cost is None:
        cost = estimate_usd(u.tokens_in, u.tokens_out, u.tokens_cached, model, agent.prices)
        source = CostSource.ESTIMATED if cost is not None else None
    return (
        AgentUsage(
            agent=agent.name,
            model=model,
            tokens_in=u.tokens_in,
            tokens_out=u.tokens_out,
            tokens_cached=u.tokens_cached,
            cost_usd=cost,
            cost_source=source,
            session=judged.session,
        ),
        totals,
    )
