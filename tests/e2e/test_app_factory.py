"""The ten-pipeline app factory runs to completion, and its history shows every
cross-factory predicate held when each step was claimed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
APPS = [f"app-{n}{v}" for v in ("", "-v2") for n in (1, 2, 3)]
# the prices of frequency.yaml, USD per million tokens: input, output, cached input
PRICES = {"gpt-5.5": (1.25, 10.0, 0.125), "gemini-2.5-flash": (0.30, 2.50, 0.03)}


@dataclass(frozen=True)
class Demo:
    """The repository `run-demo.sh` left, and what it printed."""

    repo: Path
    out: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One run of the demo, shared by the tests that read what it left."""
    repo = tmp_path_factory.mktemp("demo") / "app-factory"
    res = subprocess.run(
        ["bash", str(SCRIPT), str(repo)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr
    assert "Traceback" not in res.stderr
    return Demo(repo=repo, out=res.stdout)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def _agent_attempts(repo: Path) -> list[tuple[str, dict[str, str]]]:
    """(commit, trailers) of every commit under refs/frequency/subjects that ended an
    agent attempt (it has a Freq-Agent trailer)."""
    fmt = "%x1e%H%x1f%(trailers:unfold,separator=%x1f)"
    out = _git(repo, "log", f"--format={fmt}", "--glob=refs/frequency/subjects")
    found = []
    for chunk in out.split("\x1e")[1:]:
        sha, *fields = chunk.strip().split("\x1f")
        trailers = dict(f.split(": ", 1) for f in fields if ": " in f)
        if "Freq-Agent" in trailers:
            found.append((sha, trailers))
    return found


def _last_event(repo: Path, t: dict[str, str], kind: str) -> dict[str, Any]:
    """The last stdout event of a type in the attempt's log (its full output; git keeps
    the agent's verdict and words, not the raw stream)."""
    log = (
        repo
        / ".git"
        / "frequency"
        / "logs"
        / t["Freq-Factory"]
        / t["Freq-Subject"]
        / f"{t['Freq-Step']}-{t['Freq-Attempt']}-{t['Freq-Epoch']}.log"
    )
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{") and json.loads(line).get("type") == kind:
            event: dict[str, Any] = json.loads(line)
            return event
    raise AssertionError(f"no {kind} event in {log}")


def test_app_factory_runs_to_completion_honouring_every_predicate(demo: Demo) -> None:
    """All ten factories end with every subject terminal, in well under a minute, and
    each claim of a step with `requires:` happened when its predicates held."""
    repo, env = demo.repo, ENV
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


def test_agent_attempts_carry_the_adapters_usage_and_cost_trailers(demo: Demo) -> None:
    """Every agent attempt of the demo ran a stand-in CLI through the real adapter: its
    commit names the agent and model and carries the tokens and the cost, reported by the
    Claude Code stand-in (the result event's total_cost_usd) and estimated from prices for
    the Codex and Gemini stand-ins, whose streams say only tokens."""
    attempts = _agent_attempts(demo.repo)
    by_step: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
    for sha, t in attempts:
        # no agent attempt failed: each ran in a worktree and queued its work to land
        assert t["Freq-Event"] == "queued", t
        by_step[t["Freq-Step"]].append((sha, t))
    # each app is implemented and reviewed twice (the first review asks for changes); an
    # implement the merge queue turned away (a conflict on APPS.md) ran once more
    turned = _git(
        demo.repo, "log", "--format=%s", "--grep=turned away", "refs/frequency/queue/main"
    ).splitlines()
    assert {k: len(v) for k, v in by_step.items()} == {
        "implement": 12 + len(turned),
        "review": 12,
        "document": 6,
    }
    for _sha, t in by_step["implement"]:
        assert (t["Freq-Agent"], t["Freq-Model"]) == ("implementer", "claude-sonnet-4-5")
        assert t["Freq-Cost-Source"] == "reported"
        result = _last_event(demo.repo, t, "result")
        assert t["Freq-Cost-Usd"] == f"{result['total_cost_usd']:.6f}"
        assert t["Freq-Session"] == result["session_id"]
        used = result["modelUsage"].values()
        assert int(t["Freq-Tokens-Out"]) == sum(m["outputTokens"] for m in used) > 100
        assert int(t["Freq-Tokens-In"]) > int(t["Freq-Tokens-Cached"]) > 10_000
    for step, agent, model, trailer_of in (
        ("review", "reviewer", "gpt-5.5", "turn.completed"),
        ("document", "writer", "gemini-2.5-flash", "result"),
    ):
        for _sha, t in by_step[step]:
            assert (t["Freq-Agent"], t["Freq-Model"]) == (agent, model)
            assert t["Freq-Cost-Source"] == "estimated"
            event = _last_event(demo.repo, t, trailer_of)
            if step == "review":
                u = event["usage"]
                tokens = (u["input_tokens"], u["output_tokens"], u["cached_input_tokens"])
            else:
                st = event["stats"]  # thoughts are billed as output: total - input
                out = st["total_tokens"] - st["input_tokens"]
                tokens = (st["input_tokens"], out, st["cached"])
            assert (
                tuple(
                    int(t[k]) for k in ("Freq-Tokens-In", "Freq-Tokens-Out", "Freq-Tokens-Cached")
                )
                == tokens
            )
            price_in, price_out, price_cached = PRICES[model]
            fresh = tokens[0] - tokens[2]
            usd = (fresh * price_in + tokens[2] * price_cached + tokens[1] * price_out) / 1e6
            assert abs(float(t["Freq-Cost-Usd"]) - usd) < 2e-6, (t, usd)
    assert "Freq-Cost-Source: reported" in demo.out  # the demo prints both kinds
    assert "Freq-Cost-Source: estimated" in demo.out


def test_implement_commits_the_app_and_the_fixes_the_review_asked_for(demo: Demo) -> None:
    """The Claude Code stand-in wrote each app and committed it in its worktree by itself
    (git add and git commit through its Bash tool), then the fixes and the tests the Codex
    stand-in's first review asked for; each landed on main through the merge queue, and
    the user's checkout of main followed, clean."""
    files = set(_git(demo.repo, "ls-tree", "-r", "--name-only", "main").split())
    for app in APPS:
        assert {f"src/{app}.js", f"test/{app}.test.js"} <= files, app
        log = _git(demo.repo, "log", "--format=%s%n%b%x00", "main", "--", f"src/{app}.js")
        messages = [m.strip() for m in log.split("\x00") if m.strip()]
        assert [m.splitlines()[0] for m in messages] == [
            f"Address the review of {app}",
            f"Implement {app}",
        ]
        assert all(
            "Co-Authored-By: Claude Code stand-in <claude-stand-in@example.invalid>" in m
            for m in messages
        )
        assert "escapeHtml" in _git(demo.repo, "show", f"main:src/{app}.js")
        review = (demo.repo / "reviews" / f"{app}.md").read_text()
        assert review.startswith("Verdict: approved\n"), review
    assert _git(demo.repo, "status", "--porcelain") == ""
    # every review before an approval sent the app back from decide, by its exit code 3
    sent_back = _git(
        demo.repo, "log", "--format=%s", "--glob=refs/frequency/subjects/build"
    ).splitlines()
    assert sum(": decide reviewed -> selected" in m for m in sent_back) == len(APPS)
    assert sum(": decide reviewed -> approved" in m for m in sent_back) == len(APPS)


def test_the_merge_queue_lands_every_agents_work_and_handles_the_conflicts(demo: Demo) -> None:
    """Implements overlap and all list their app at the end of APPS.md: the queue turns
    the later of a pair away (a conflict on APPS.md, recorded with its path), its next
    attempt starts from the new tip, and every app ends listed once on main; the demo
    prints what landed, the queue's history and the pool."""
    listed = _git(demo.repo, "show", "main:APPS.md").splitlines()
    assert sorted(listed[1:]) == sorted(f"- {app}: src/{app}.js" for app in APPS)
    history = _git(demo.repo, "log", "--format=%s", "refs/frequency/queue/main").splitlines()
    turned = [h for h in history if "turned away" in h]
    assert turned and all("merge conflict on main in APPS.md" in h for h in turned)
    conflicts = _git(
        demo.repo,
        "log",
        "--format=%(trailers:key=Freq-Conflict,valueonly)",
        "--glob=refs/frequency/subjects/build",
    ).split()
    assert set(conflicts) == {"APPS.md"}
    landed = [h for h in history if "landed" in h]
    reviews = [f"reviews/{app}.md" for app in APPS]
    assert set(reviews) <= set(_git(demo.repo, "ls-tree", "-r", "--name-only", "main").split())
    assert len(landed) >= 4 * len(APPS)  # implement and review twice each, at least
    for line in ("git log --oneline main", "refs/frequency/queue/main", "git worktree list"):
        assert line in demo.out
    assert _git(demo.repo, "branch", "--list", "freq/*").strip() == ""
