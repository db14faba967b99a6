"""A Frequency project whose one agent step runs a real CLI against a stub, run by real
`git freq` processes, and what git recorded of it (subject.json, trailers, locks, DLQ).

Every read goes through the git CLI, never through freq's own modules: the point is what
`git log --glob=refs/frequency` shows a person who has no Frequency (SPEC §3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.agents_real import clis
from tests.agents_real.conftest import Place
from tests.agents_real.stub_openai import codex_args
from tests.conftest import Outcome

FACTORY, SUBJECT, STEP = "f", "x", "work"
SUBJECT_REF = f"refs/frequency/subjects/{FACTORY}/{SUBJECT}"
# USD per million tokens, so that Codex's and Gemini's cost is estimated (they print none)
PRICES = {
    "gpt-5.5": {"input": 1.25, "output": 10.0, "cached": 0.125},
    "gemini-2.5-flash": {"input": 0.30, "output": 2.50, "cached": 0.075},
}


def named_agent(cli: str, stub_url: str, *, oauth: bool = False) -> dict[str, Any]:
    """The frequency.yaml definition of an agent that runs `cli` against the stub."""
    bins = clis.bin_dir()
    assert bins is not None
    model = clis.MODELS[cli]
    common: dict[str, Any] = {"use": cli, "model": model, "bin": str(bins / cli)}
    if cli == "claude":
        key = "CLAUDE_CODE_OAUTH_TOKEN" if oauth else "ANTHROPIC_API_KEY"
        env = {
            "ANTHROPIC_BASE_URL": stub_url,
            key: "sk-ant-oat01-stub" if oauth else "sk-ant-stub",
            "CLAUDE_CODE_MAX_RETRIES": "2",
        }
        return {**common, "env": env}
    if cli == "codex":
        return {
            **common,
            "args": codex_args(stub_url),
            "env": {"OPENAI_API_KEY": "sk-stub"},
            "prices": {model: PRICES[model]},
        }
    return {
        **common,
        "env": {"GEMINI_API_KEY": "stub-key", "GOOGLE_GEMINI_BASE_URL": stub_url},
        "prices": {model: PRICES[model]},
    }


def write_project(
    place: Place,
    *,
    use: str,
    agents: Mapping[str, Mapping[str, Any]] | None = None,
    args: tuple[str, ...] = (),
    timeout: str = "3m",
) -> None:
    """.frequency/: factory `f`, one agent step `work` (new -> done) using `use`, one
    attempt (a retryable failure is final at once), and the named `agents`. JSON is YAML."""
    step: dict[str, Any] = {
        "id": STEP,
        "from_states": ["new"],
        "to_state": "done",
        "timeout": timeout,
        "retry": {"max_attempts": 1, "backoff": {"initial": "0s", "factor": 1, "max": "0s"}},
        "agent": {"use": use, "prompt": clis.PROMPT, **({"args": list(args)} if args else {})},
    }
    factory = {
        "factory_id": FACTORY,
        "state": {"initial": "new", "terminal": ["done"]},
        "steps": [step],
    }
    place.repo.write(".frequency/f.yaml", json.dumps(factory, indent=1) + "\n")
    if agents:
        place.repo.write(".frequency/frequency.yaml", json.dumps({"agents": agents}) + "\n")
    clis.gemini_settings(place.home)  # Gemini reads it from HOME, wherever it runs


def freq(place: Place, *args: str, timeout: float = 300) -> Outcome:
    """`git freq ARGS` as a real process (git finds git-freq beside this Python), with the
    CLIs on PATH, the place's HOME and no way out but loopback."""
    env = {**os.environ, **place.env()}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    res = subprocess.run(
        ["git", "freq", *args],
        cwd=place.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(res.returncode, res.stdout, res.stderr)


def git(place: Place, *args: str) -> str:
    """The git CLI's stdout in the repository."""
    return place.repo.git(*args)


def history(place: Place, ref: str = SUBJECT_REF) -> list[dict[str, str]]:
    """Each commit of `ref`, oldest first: its subject line (`_subject`) and trailers."""
    fmt = "%x1e%s%x1f%(trailers:unfold,separator=%x1f)"
    out = git(place, "log", "--reverse", f"--format={fmt}", ref)
    rows = []
    for chunk in out.split("\x1e")[1:]:
        head, *fields = chunk.strip("\n").split("\x1f")
        row = dict(f.split(": ", 1) for f in fields if ": " in f)
        row["_subject"] = head
        rows.append(row)
    return rows


def subject(place: Place) -> dict[str, Any]:
    """subject.json at the tip of the subject's ref."""
    return json.loads(git(place, "show", f"{SUBJECT_REF}:subject.json"))  # type: ignore[no-any-return]


def agent_end(place: Place) -> dict[str, str]:
    """The trailers of the commit that recorded the (last) agent attempt's end."""
    ends = [row for row in history(place) if "Freq-Agent" in row]
    assert ends, history(place)
    return ends[-1]


def quota_lock(place: Place, agent: str) -> dict[str, Any] | None:
    """lock.json of `refs/frequency/locks/quota:<agent>` (stored `quota%3A<agent>`)."""
    ref = f"refs/frequency/locks/quota%3A{agent}"
    if not git(place, "for-each-ref", ref).strip():
        return None
    return json.loads(git(place, "show", f"{ref}:lock.json"))  # type: ignore[no-any-return]


def dlq(place: Place) -> list[dict[str, str]]:
    """The trailers of each entry of the factory's dead-letter queue, oldest first."""
    ref = f"refs/frequency/dlq/{FACTORY}"
    if not git(place, "for-each-ref", ref).strip():
        return []
    return history(place, ref)


SECRETS = ("sk-ant-stub", "sk-ant-oat01-stub", "sk-stub", "stub-key")


def leaks(place: Place) -> list[str]:
    """Where a key or token the agents were given shows in what Frequency stored: the
    commits and trees of refs/frequency (messages, subject.json, output tails) and the
    full logs under .git/frequency/logs. (The config cache beside them holds frequency.yaml's
    own values, keys included, as the file itself does.)"""
    found = []
    journal = git(place, "log", "--glob=refs/frequency", "-p", "--format=%B")
    found += [f"refs/frequency: {s}" for s in SECRETS if s in journal]
    logs = place.cwd / ".git" / "frequency" / "logs"
    for path in sorted(logs.rglob("*")) if logs.exists() else []:
        if path.is_file():
            text = path.read_text(errors="replace")
            found += [f"{path.relative_to(place.cwd)}: {s}" for s in SECRETS if s in text]
    return found


def when(text: str) -> datetime:
    """An ISO time as subject.json and lock.json write it."""
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Expect:
    """What a success of one CLI must have recorded (the stub's synthetic usage)."""

    model: str
    tokens_in: int  # every input token, cached ones included
    tokens_out: int
    tokens_cached: int
    cost_source: str


SUCCESS = {
    # 2 x (3 fresh + 1520 cache-created + 14210 cache-read) in, 62 + 11 out
    "claude": Expect(
        model="claude-sonnet-4-5",
        tokens_in=31466,
        tokens_out=73,
        tokens_cached=28420,
        cost_source="reported",
    ),
    # turn.completed's sums
    "codex": Expect(
        model="gpt-5.5",
        tokens_in=18240,
        tokens_out=57,
        tokens_cached=16128,
        cost_source="estimated",
    ),
    # stats: input_tokens (cached included); output 46 plus 42 thought tokens, billed as output
    "gemini": Expect(
        model="gemini-2.5-flash",
        tokens_in=16246,
        tokens_out=88,
        tokens_cached=12288,
        cost_source="estimated",
    ),
}


def estimate(model: str, tokens_in: int, tokens_out: int, cached: int) -> float:
    """USD from PRICES, as SPEC §2's `prices` means it (cached input at the cached rate)."""
    p = PRICES[model]
    return (
        (tokens_in - cached) * p["input"] + cached * p["cached"] + tokens_out * p["output"]
    ) / 1e6
