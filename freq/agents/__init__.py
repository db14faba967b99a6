"""Agent adapters, one module per CLI, listed in one registry (STYLE.md habit 10).

Pure: each adapter builds its CLI's headless command line and judges its output; the agent
runner (freq.runners.agent) starts the process through freq.proc. freq.model names the
adapters and their own settings keys (ADAPTER_OPTIONS); ADAPTERS here carries them out.
"""

from __future__ import annotations

from freq.agents import claude, codex, command, gemini
from freq.agents.base import Adapter, AgentRequest, AgentResult, Invocation, Reader, Usage

# explicit, in the order of freq.model.ADAPTER_OPTIONS (no discovery: STYLE.md habit 10)
ADAPTERS: dict[str, Adapter] = {
    "claude": claude.adapter,
    "codex": codex.adapter,
    "gemini": gemini.adapter,
    "command": command.adapter,
}


def adapter_for(use: str) -> Adapter:
    """The adapter of a resolved agent (`AgentDef.use`)."""
    return ADAPTERS[use]


__all__ = [
    "ADAPTERS",
    "Adapter",
    "AgentRequest",
    "AgentResult",
    "Invocation",
    "Reader",
    "Usage",
    "adapter_for",
]
