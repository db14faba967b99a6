"""The ten-pipeline app factory runs to completion, and its history shows every
cross-factory predicate held when each step was claimed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from freq.config import load_config
from freq.model import AllOf, AnyOf, Capacity, Not, Predicate, SubjectState

pytestmark = [pytest.mark.e2e, pytest.mark.git]

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "app-factory" / "run-demo.sh"
CREATE_KINDS = {"created", "transitioned", "moved", "parked", "requeued"}


def _history(repo: Path) -> list[dict[str, str]]:
    """Every event commit under refs/frequency/subjects, with its trailers."""
    fmt = "%x1e%(trailers:unfold,separator=%x1f)"
    out = subprocess.run(
        ["git", "log", f"--format={fmt}", "--glob=refs/frequency/subjects"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    events = []
    for chunk in out.split("\x1e")[1:]:
        fields = dict(f.split(": ", 1) for f in chunk.strip().split("\x1f") if ": " in f)
        if "Freq-At" in fields:
            events.append(fields)
    return events


class Timeline:
    """The state of every subject at any instant, rebuilt from the trailers."""

    def __init__(self, events: list[dict[str, str]]) -> None:
        self.changes: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        self.claims: list[tuple[str, str, str, str]] = []  # at, factory, subject, step
        for e in events:
            key = (e["Freq-Factory"], e["Freq-Subject"])
            if e["Freq-Event"] in CREATE_KINDS and "Freq-To" in e:
                self.changes[key].append((e["Freq-At"], e["Freq-To"]))
            if e["Freq-Event"] == "claimed":
                self.claims.append((e["Freq-At"], *key, e["Freq-Step"]))
            if "Freq-Claims" in e:
                self.claims.append((e["Freq-At"], *key, e["Freq-Claims"].split()[0]))
        for v in self.changes.values():
            v.sort()

    def state_at(self, key: tuple[str, str], at: str) -> str | None:
        state = None
        for when, to in self.changes.get(key, ()):
            if when > at:
                break
            state = to
        return state

    def holds(self, pred: Predicate, subject: str, at: str) -> bool:
        if isinstance(pred, SubjectState):
            name = pred.subject.replace("{subject}", subject)
            return self.state_at((pred.factory_id, name), at) in pred.states
        if isinstance(pred, Capacity):
            n = sum(
                1
                for (f, _), _v in self.changes.items()
                if f == pred.factory_id and self.state_at((f, _), at) in pred.states
            )
            return n < pred.below
        if isinstance(pred, AllOf):
            return all(self.holds(p, subject, at) for p in pred.items)
        if isinstance(pred, AnyOf):
            return any(self.holds(p, subject, at) for p in pred.items)
        assert isinstance(pred, Not)
        return not self.holds(pred.item, subject, at)


def test_app_factory_runs_to_completion_honouring_every_predicate(tmp_path: Path) -> None:
    """All ten factories end with every subject terminal, in well under a minute, and
    each claim of a step with `requires:` happened when its predicates held."""
    repo = tmp_path / "app-factory"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    res = subprocess.run(
        ["bash", str(SCRIPT), str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    status = json.loads(
        subprocess.run(
            [sys.executable, "-m", "freq", "status", "--json"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    config = load_config(repo)
    assert len(status["factories"]) == 10
    for fs in status["factories"]:
        fac = config.factory(fs["factory"])
        assert fac is not None
        stuck = {s: n for s, n in fs["states"] if n and s not in fac.terminal}
        assert stuck == {}, fs["factory"]
        assert fs["subjects"] >= 6, fs["factory"]  # 3 ideas, and one more generation
    timeline = Timeline(_history(repo))
    checked = 0
    for at, factory, subject, step_id in timeline.claims:
        fac = config.factory(factory)
        assert fac is not None
        step = fac.step(step_id)
        assert step is not None
        for pred in step.requires:
            assert timeline.holds(pred, subject, at), (factory, subject, step_id, pred, at)
            checked += 1
    assert checked >= 40  # every factory but build has a cross-factory predicate
    released = subprocess.run(
        ["git", "log", "--format=%s", "--glob=refs/frequency/subjects/release-shared"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert sum(": release ready -> released" in m for m in released) == 6  # batched runs
    subprocess.run(["git", "fsck", "--strict"], cwd=repo, check=True, capture_output=True)


def test_graph_draws_the_edges_between_factories(repo) -> None:  # type: ignore[no-untyped-def]
    """`graph` with no factory draws all ten and their predicate and emits edges."""
    import shutil

    shutil.copytree(SCRIPT.parent / ".frequency", repo.path / ".frequency")
    mermaid = repo.run("graph").assert_success().out
    for edge in (
        "build__promoted == emits ==> deploy__queued",
        "build__promoted -. requires ship .-> deploy__queued",
        "build__selected -. capacity < 3 ideate .-> ideas__new",
        "feedback__collected == emits ==> ideas__new",
    ):
        assert edge in mermaid
    assert mermaid.count("  subgraph ") == 10
    dot = repo.run("graph", "--format", "dot").assert_success().out
    assert 'deploy__deployed -> release_shared__ready [label="emits", style=bold];' in dot
