"""Any program as an agent (`use: command`, `args: [PROGRAM, ...]`): the prompt goes in as
a last argument, on stdin or in a file, and the program's exit code is its verdict.

Pure: imports only the standard library, freq.model and freq.agents (no processes, no
clock). A program prints no structured events, so every output line counts as progress
(the runner's stall_timeout) and a failure's class is left to the engine (kind None),
which infers it from the output and the exit code as it does for `run:` steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from freq.agents import events
from freq.agents.base import AgentRequest, AgentResult, Invocation

OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"prompt_via": {"enum": ["arg", "stdin", "file"]}}
)
PROMPT_FILE = "prompt.txt"  # in the attempt's scratch directory
PROMPT_FILE_ARG = "{prompt_file}"  # an argument that is exactly this becomes the file's path


class CommandAdapter:
    """`PROGRAM ARGS... PROMPT` (or the prompt on stdin, or in a file)."""

    name = "command"
    program = ""  # none of its own: the first of the agent's args
    options = OPTIONS
    env: Mapping[str, str] = MappingProxyType({})

    def invocation(self, request: AgentRequest) -> Invocation:
        """`prompt_via: arg` (default) appends the prompt; `stdin` writes it to stdin;
        `file` writes scratch/prompt.txt and passes its path, in place of every argument
        that is `{prompt_file}`, else as a last argument."""
        agent = request.agent
        argv = list(agent.args)  # validate made sure there is a program
        via = agent.options.get("prompt_via", "arg")
        env = MappingProxyType(dict(agent.env))
        prompt = request.prompt.encode()
        if via == "stdin":
            return Invocation(argv=tuple(argv), env=env, stdin=prompt)
        if via == "file":
            path = request.scratch / PROMPT_FILE
            if PROMPT_FILE_ARG in argv[1:]:
                argv = [argv[0], *(str(path) if a == PROMPT_FILE_ARG else a for a in argv[1:])]
            else:
                argv.append(str(path))
            return Invocation(argv=tuple(argv), env=env, files=MappingProxyType({path: prompt}))
        return Invocation(argv=(*argv, request.prompt), env=env)

    def reader(self) -> CommandReader:
        """A fresh judge of one run: its exit code, and its output's end as the text."""
        return CommandReader()


class CommandReader:
    """Keeps the end of the program's stdout (its final message, as far as it has one)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0

    def feed(self, line: bytes) -> bool:
        """Take one stdout line; any line is progress (a program has no event format)."""
        self.lines.append(line.decode("utf-8", "replace"))
        self.size += len(line)
        if self.size > 2 * events.TEXT_LIMIT:  # bounded: keep the end
            joined = events.clip("".join(self.lines))
            self.lines, self.size = [joined], len(joined)
        return True

    def finish(
        self,
        *,
        stderr: str,
        exit_code: int | None,
        signal: int | None,
        timed_out: bool,
        now: datetime,
    ) -> AgentResult:
        """Exit 0 by itself is success; anything else fails, its class left to the engine."""
        text = events.clip("".join(self.lines)).strip()
        if exit_code == 0 and signal is None and not timed_out:
            return AgentResult(ok=True, text=text)
        how = events.how_it_ended(exit_code, signal, timed_out)
        return AgentResult(ok=False, kind=None, reason=how, text=text)


adapter = CommandAdapter()
