"""Shell steps (`run:`): the command in its own process group through freq.proc.

Must not import click or dulwich; processes start only in freq.proc.
"""

from __future__ import annotations

from freq import proc
from freq.clock import Clock
from freq.runners.base import Attempt, StepRequest, StepResult
from freq.secrets import Redactor


class ShellRunner:
    """Runs a step's `run:` (a shell string or an argv list) at the request's cwd."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def run(self, request: StepRequest, attempt: Attempt) -> StepResult:
        """Run `step.run`; stop the group when the attempt may not go on."""
        command = request.step.run
        if command is None:
            raise ValueError(f"step {request.step.id!r} has no run:")
        env = proc.build_env(dict(request.env))
        secrets = Redactor.of_env(env)
        res = proc.run(
            command,
            cwd=request.cwd,
            env=env,
            redact=secrets.data if secrets else None,
            clock=self.clock,
            log_path=request.log_path,
            timeout=request.timeout,
            on_poll=attempt.go_on,
            on_line=request.on_line,
        )
        return StepResult(
            exit_code=res.exit_code,
            signal=res.signal,
            timed_out=res.timed_out,
            cancelled=res.cancelled,
            duration_ms=res.duration_ms,
            tail=res.tail,
            how=res.describe(),
        )
