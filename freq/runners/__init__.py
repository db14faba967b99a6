"""Step runners: how one attempt of a step is carried out, behind one Protocol.

Must not import click or dulwich. The run loop hands a runner a StepRequest (where to run,
the environment, the timeout, the log path) and an Attempt handle (cancel, heartbeat) and
gets a StepResult back; it never knows what kind of step it ran. Shell steps (`run:`) are
one runner, agents (`agent:`) the other; worktrees join RUNNERS beside them without
touching the loop.
"""

from __future__ import annotations

from collections.abc import Callable

from freq.clock import Clock
from freq.model import Step
from freq.runners.base import Attempt, StepRequest, StepResult, StepRunner
from freq.runners.shell import ShellRunner


def _agent_runner(clock: Clock) -> StepRunner:
    # loaded with the first agent step: a factory of shell steps never imports the adapters
    from freq.runners.agent import AgentRunner

    return AgentRunner(clock)


# kind of step -> how to make its runner on the loop's clock
RUNNERS: dict[str, Callable[[Clock], StepRunner]] = {"shell": ShellRunner, "agent": _agent_runner}


def runner_for(step: Step, clock: Clock) -> StepRunner:
    """The runner that carries out `step` (gates are never started: they have none)."""
    if step.run is not None:
        return RUNNERS["shell"](clock)
    if step.agent is not None:
        return RUNNERS["agent"](clock)
    raise LookupError(f"step {step.id!r} has no runner (a gate waits for an approval)")


__all__ = [
    "RUNNERS",
    "Attempt",
    "ShellRunner",
    "StepRequest",
    "StepResult",
    "StepRunner",
    "runner_for",
]
