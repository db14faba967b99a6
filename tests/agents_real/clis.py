"""The real agent CLIs: where `make test-agents` installed them, how each is started
headless (REPORT.md §1), and what one run printed.

A run starts the CLI in its own process group with stdin closed, an empty HOME of its own
and a built environment (nothing of the developer's leaks in), and kills the whole group
on timeout (Gemini's launcher ignores signals sent to its own pid).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSIONS = {"claude": "2.1.197", "codex": "0.171.0", "gemini": "0.61.0"}
PACKAGES = {
    "claude": "@anthropic-ai/claude-code",
    "codex": "@openai/codex",
    "gemini": "@google/gemini-cli",
}
BIN_ENV = "FREQ_AGENTS_BIN"  # set by `make test-agents`: the npm prefix's node_modules/.bin
PROMPT = "Create hello.txt containing a greeting"
MODELS = {"claude": "claude-sonnet-4-5", "codex": "gpt-5.5", "gemini": "gemini-2.5-flash"}
# Everything but loopback goes to a closed port: a run can never reach a real vendor API,
# on a machine with network as on one without.
DEAD_PROXY = "http://127.0.0.1:9"
SAMPLES = Path(__file__).parents[1] / "agent_samples"  # the captures REPORT.md is built on


def reset_in(*, hours: int) -> int:
    """A usage limit's reset `hours` from now, in unix seconds, on a whole minute (the CLIs
    print minutes)."""
    return (int(time.time()) // 60 + hours * 60) * 60


def bin_dir() -> Path | None:
    """The installed CLIs' bin directory, or None when `make test-agents` has not run."""
    value = os.environ.get(BIN_ENV)
    if not value:
        return None
    path = Path(value)
    return path if all((path / name).exists() for name in VERSIONS) else None


def base_env(home: Path, *, tmp: Path) -> dict[str, str]:
    """The environment every run starts from: PATH (node), an empty HOME, UTC, no proxy
    but a dead one, a private TMPDIR (Gemini writes error reports there)."""
    bins = bin_dir()
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return {
        "PATH": f"{bins}:{path}" if bins else path,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "TZ": "UTC",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "HTTPS_PROXY": DEAD_PROXY,
        "HTTP_PROXY": DEAD_PROXY,
        "ALL_PROXY": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def claude_argv(*extra: str) -> list[str]:
    """REPORT.md §1's headless Claude Code command line."""
    return [
        "claude",
        "-p",
        PROMPT,
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--model",
        MODELS["claude"],
        *extra,
    ]


def codex_argv(*extra: str) -> list[str]:
    """REPORT.md §1's headless Codex command line (`extra`: options before the prompt)."""
    return [
        "codex",
        "exec",
        "--json",
        "--sandbox",
        "workspace-write",
        "-m",
        MODELS["codex"],
        *extra,
        PROMPT,
    ]


def gemini_argv(*extra: str) -> list[str]:
    """REPORT.md §1's headless Gemini CLI command line."""
    return [
        "gemini",
        "-p",
        PROMPT,
        "--output-format",
        "stream-json",
        "-m",
        MODELS["gemini"],
        "--approval-mode",
        "auto_edit",
        "--skip-trust",
        *extra,
    ]


def gemini_settings(home: Path, *, max_attempts: int = 2) -> None:
    """Write $HOME/.gemini/settings.json: API-key auth chosen explicitly (0.61.0 takes
    GOOGLE_GEMINI_BASE_URL for its `gateway` auth otherwise, and refuses it headless:
    `Invalid auth method selected.`, exit 41) and a short retry budget (default 10, ~217 s)."""
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"maxAttempts": max_attempts},
    }
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))


@dataclass(frozen=True, slots=True)
class Run:
    """What one CLI run did."""

    argv: tuple[str, ...]
    exit_code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON objects it printed on stdout, one a line (other lines skipped)."""
        out = []
        for line in self.stdout.splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """Its events whose `type` is `kind`."""
        return [e for e in self.events if e.get("type") == kind]

    def explain(self) -> str:
        """The run for an assertion message."""
        return (
            f"argv {list(self.argv)}\nexit {self.exit_code} after {self.seconds:.1f}s\n"
            f"stdout:\n{self.stdout[-4000:]}\nstderr:\n{self.stderr[-4000:]}"
        )


def run_cli(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float = 120) -> Run:
    """Run one CLI to its end (stdin closed); the whole group is killed at `timeout`."""
    started = time.monotonic()
    with subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as child:
        try:
            out, err = child.communicate(timeout=timeout)
            code: int | None = child.returncode
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            out, err = child.communicate()
            code = None
    return Run(tuple(argv), code, out, err, time.monotonic() - started)


def shape(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """Each event as (type/subtype, its sorted keys): what must not drift from a sample
    when the values (ids, times, paths) do."""
    return [(f"{e.get('type')}/{e.get('subtype', '')}", tuple(sorted(e))) for e in events]


def sample(name: str) -> list[dict[str, Any]]:
    """A recorded sample's events (tests/agent_samples/, which the adapters' tests read too)."""
    return [json.loads(line) for line in (SAMPLES / name).read_text().splitlines() if line]
