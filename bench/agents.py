"""Figure (j): what Frequency adds to an agent step, against the agent CLI run directly.

A one-step factory whose step is `agent: {use: a1, ...}` with `a1` a claude agent whose
program is the test stand-in (tests/standins/bin/claude, a real process) replaying a
200-event success stream in Claude Code's stream-json format. `git freq run --until-idle`
(one process, one slot) runs N subjects through it: claim, prompt, spawn, parse every
event, record the outcome with its usage trailers. The floor runs the same stand-in with
the same arguments N times in a row from Python, reading its output to the end. The
target is the issue's: at most 50 ms per step on top, so the ratio target is
(floor + 50 ms) / floor per step, computed in the same run.

Returns Row keyword dicts (bench/run.py turns them into Row), as bench/runtime.py does.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import runtime

EVENTS = 200
TARGET_MS = 50.0
STANDIN = Path(__file__).resolve().parent.parent / "tests" / "standins" / "bin" / "claude"

FACTORY = """\
factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - id: work
    from_states: [new]
    to_state: done
    agent: {use: a1, prompt: "Implement {subject}: write the module and its tests."}
"""


def _direct(repo: Path, env: dict[str, str], n: int) -> float:
    """Seconds for `n` runs of the stand-in as the adapter invokes it, one after another."""
    argv = [
        str(STANDIN),
        "-p",
        "Implement s: write the module and its tests.",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
    ]
    t = time.perf_counter()
    for _ in range(n):
        out = subprocess.run(
            argv, cwd=repo, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=True
        )
        lines = out.stdout.count(b"\n")
        if lines < EVENTS:
            raise RuntimeError(f"the stand-in printed {lines} events, not {EVENTS}")
    return time.perf_counter() - t


def figure_j(tmp: Path, env: dict[str, str], n: int) -> list[dict[str, Any]]:
    env = {**env, "STANDIN_EVENTS": str(EVENTS)}
    settings = f"max_parallel: 1\nagents:\n  a1: {{use: claude, bin: {STANDIN}}}\n"
    repo = runtime.make_repo(tmp / f"j-{n}", env, {"f": FACTORY}, settings=settings)
    floor = min(_direct(repo, env, n) for _ in range(2))
    runtime.add_subjects(repo, env, (f"s{i:04d}" for i in range(n)), factory="f")
    stats = runtime.run_workers(repo, env, 1)
    _finished(repo, env, n)
    per, floor_per = stats.wall / n, floor / n
    over_ms = (per - floor_per) * 1000
    return [
        {
            "figure": "j",
            "what": f"agent step, {EVENTS}-event stream (claim, spawn, parse, record)",
            "size": n,
            "measured_s": per,
            "floor_s": floor_per,
            "floor": "the same stand-in CLI run directly, per run",
            "target": (floor_per + TARGET_MS / 1000) / floor_per,
            "note": f"overhead {over_ms:.1f} ms per step (target <= {TARGET_MS:.0f} ms); "
            f"one `git freq run --until-idle` process, start-up included",
        }
    ]


def _finished(repo: Path, env: dict[str, str], n: int) -> None:
    counts = runtime.state_counts(repo, env)["f"]
    if counts.get("done", 0) != n:
        raise RuntimeError(f"{counts.get('done', 0)} of {n} agent steps succeeded: {counts}")
