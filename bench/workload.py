"""What the benchmarks measure on: temporary repositories, a factory, subjects, git floors.

Everything here is set-up or a floor measured with the real git CLI. The figures
themselves (and the table) are in bench/run.py.
"""

from __future__ import annotations

import itertools
import os
import random
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from freq import refs, transitions
from freq.classify import Ending
from freq.model import Capacity, Config, Factory, FailureKind, Not, Step, SubjectState
from freq.runtime import AgentUsage, Claim, CostSource, Event, EventKind, LastError, Subject
from freq.store import RefUpdate, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FACTORY = "build"
STATES = ("selected", "implemented", "reviewed", "validated", "promoted")
STEPS = (  # the seed's build factory: id, from, to
    ("implement", "selected", "implemented"),
    ("review", "implemented", "reviewed"),
    ("build_validate", "reviewed", "validated"),
    ("promote", "validated", "promoted"),
)

BUILD_YAML = """\
factory_id: build
description: Build an app, from selection to promotion (benchmark copy).
state:
  initial: selected
  terminal: [promoted, failed]
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
    run: "true"
  - id: review
    from_states: [implemented]
    to_state: reviewed
    run: "true"
  - id: build_validate
    from_states: [reviewed]
    to_state: validated
    run: "true"
  - id: promote
    from_states: [validated]
    to_state: promoted
    run: "true"
"""


# ---------------------------------------------------------------- timing


def best_of(
    fn: Callable[[], object], reps: int = 3, *, before: Callable[[], object] | None = None
) -> float:
    """The fastest of `reps` runs of `fn`, in seconds; `before` runs untimed ahead of each."""
    best = float("inf")
    for _ in range(reps):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# ---------------------------------------------------------------- git


def hermetic_env(home: Path) -> dict[str, str]:
    """The environment for every git (and git-freq) process: no user or system config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        GIT_AUTHOR_DATE="2026-01-01T00:00:00Z",
        GIT_COMMITTER_DATE="2026-01-01T00:00:00Z",
        LC_ALL="C",
    )
    return env


def git(repo: Path, env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    """Run the git CLI in `repo`; its stdout, stripped."""
    out = subprocess.run(
        ["git", *args], cwd=repo, env=env, input=stdin, capture_output=True, check=True
    )
    return out.stdout.decode().strip()


def init_repo(path: Path, env: dict[str, str]) -> Path:
    """A fresh non-bare repository at `path`."""
    path.mkdir(parents=True)
    git(path, env, "init", "-q", "-b", "main")
    return path


def open_store(repo: Path) -> Store:
    """A fresh Store of `repo` as every command opens it (freq.ops.App: with its bulk reader,
    one `git cat-file --batch` for a cold read)."""
    from freq.ops.app import App

    return App(repo).store


def read_floor(repo: Path, env: dict[str, str], reps: int = 3) -> float:
    """Best-of time of the git CLI reading every subject.json (the figure (b)/(c) floor)."""
    pipeline = (
        "git for-each-ref --format='%(refname):subject.json' "
        f"{refs.SUBJECTS.rstrip('/')} | git cat-file --batch > /dev/null"
    )

    def once() -> None:
        subprocess.run(pipeline, shell=True, cwd=repo, env=env, check=True)

    return best_of(once, reps)


def count_subject_refs(repo: Path, env: dict[str, str]) -> int:
    """How many refs git sees under refs/frequency/subjects."""
    out = git(repo, env, "for-each-ref", "--format=%(refname)", refs.SUBJECTS.rstrip("/"))
    return len(out.splitlines())


class Plumbing:
    """Transitions done with 4 git processes each (the figure (a) floor).

    Each: `hash-object -w --stdin` (subject.json), `mktree`, `commit-tree -p <parent>`,
    `update-ref <ref> <new> <old>`: the objects and CAS ref move of a Store.advance.
    """

    REF = "refs/frequency/subjects/plumbing/one"

    def __init__(self, repo: Path, env: dict[str, str]) -> None:
        self.repo, self.env = repo, env
        self.tip: str | None = None
        self.done = 0
        self.transition()  # warm-up, and the first parent

    def _git(self, *args: str, stdin: bytes | None = None) -> str:
        return git(self.repo, self.env, *args, stdin=stdin)

    def transition(self) -> None:
        i = self.done = self.done + 1
        blob = self._git("hash-object", "-w", "--stdin", stdin=b'{"state": "s%d"}\n' % i)
        tree = self._git("mktree", stdin=f"100644 blob {blob}\t{refs.SUBJECT_FILE}\n".encode())
        parents = ["-p", self.tip] if self.tip else []
        commit = self._git("commit-tree", *parents, "-m", f"plumbing/one: step {i}", tree)
        self._git("update-ref", self.REF, commit, self.tip or "0" * 40)
        self.tip = commit

    def batch(self, n: int) -> float:
        """Seconds per transition over `n` more transitions."""
        t = time.perf_counter()
        for _ in range(n):
            self.transition()
        return (time.perf_counter() - t) / n


def freq_command() -> list[str]:
    """How to start `git freq` from this interpreter's environment."""
    script = Path(sys.executable).parent / "git-freq"  # the venv's bin/, not resolved
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "freq"]


def describe(cmd: list[str]) -> str:
    """A command line as a user would type it."""
    return " ".join(shlex.quote(c) for c in cmd)


# ---------------------------------------------------------------- the factory and subjects


def factory(path: str = ".frequency/build.yaml") -> Factory:
    """The seed's 4-step build factory with `run: "true"` steps."""
    steps = tuple(Step(id=i, from_states=(a,), to_state=b, run="true") for i, a, b in STEPS)
    return Factory(
        factory_id=FACTORY,
        path=path,
        initial=STATES[0],
        terminal=(STATES[-1], "failed"),
        steps=steps,
    )


def config(root: Path) -> Config:
    """A Config holding the one factory, built directly from freq.model."""
    return Config(root=str(root), factories=(factory(),))


def subjects(n: int) -> list[tuple[Subject, Event]]:
    """`n` subjects spread round-robin over the states, with a few claims and failures.

    Every 50th non-terminal subject is running (a live claim) and every 20th is in backoff
    after a failure, so snapshot parses every kind of field and plan sees every kind of wait.
    """
    out = []
    for i in range(n):
        state = STATES[i % len(STATES)]
        at = T0 + timedelta(seconds=i)
        s = Subject(
            factory=FACTORY,
            name=f"app-{i:05d}",
            state=state,
            data=MappingProxyType({"owner": f"team-{i % 7}", "n": str(i)}),
            created_at=at,
            updated_at=at,
            entered_at=at,
        )
        step = next((sid for sid, a, _ in STEPS if a == state), None)
        if step is not None and i % 50 == 3:
            s = replace(
                s,
                epoch=1,
                attempt=1,
                claim=Claim(
                    holder="bench:1:1",
                    step=step,
                    attempt=1,
                    epoch=1,
                    claimed_at=at,
                    expires_at=at + timedelta(days=1),
                ),
            )
        elif step is not None and i % 20 == 7:
            s = replace(
                s,
                attempt=1,
                not_before=at + timedelta(days=1),
                last_error=LastError(
                    step=step,
                    attempt=1,
                    exit_code=1,
                    kind=FailureKind.RETRYABLE,
                    reason="exit 1",
                    at=at,
                    summary="make: *** [all] Error 1",
                    fingerprint="0123abcd",
                ),
            )
        ev = Event(
            kind=EventKind.CREATED,
            factory=FACTORY,
            subject=s.name,
            at=at,
            worker="bench:1:1",
            to_state=state,
        )
        out.append((s, ev))
    return out


def transition_event(s: Subject, to: str, i: int) -> Event:
    """The event of one successful step from `s.state` to `to`."""
    return Event(
        kind=EventKind.TRANSITIONED,
        factory=s.factory,
        subject=s.name,
        at=T0 + timedelta(seconds=i),
        worker="bench:1:1",
        step="implement",
        from_state=s.state,
        to_state=to,
        attempt=1,
        epoch=s.epoch,
        duration_ms=5,
        exit_code=0,
    )


# ---------------------------------------------------------------- figure (g): predicates

MESH_STATES = ("a", "b", "c", "d", "e")  # e is terminal; subjects are created in a..d


def mesh_factory(k: int, n_factories: int, *, requires: bool = True) -> Factory:
    """Factory f<k> of a ring of `n_factories`: 4 `true` steps a→b→c→d→e, each requiring
    3 pure predicates on the neighbouring factories (no command/changed: no outside world).

    - the same-named subject of the previous factory has reached c, d or e (about half
      of the subjects pass, so the plan has starts, cap waits and predicate waits);
    - the next factory holds fewer than 10,000 subjects in a or b (always holds);
    - not: the same-named subject of the factory after next is in e (always holds).
    """
    prev, nxt, other = (f"f{(k + d) % n_factories}" for d in (-1, 1, 2))
    preds = (
        SubjectState(factory_id=prev, subject="{subject}", states=("c", "d", "e")),
        Capacity(factory_id=nxt, states=("a", "b"), below=10_000),
        Not(item=SubjectState(factory_id=other, subject="{subject}", states=("e",))),
    )
    steps = tuple(
        Step(
            id=f"to_{b}",
            from_states=(a,),
            to_state=b,
            run="true",
            requires=preds if requires else (),
        )
        for a, b in itertools.pairwise(MESH_STATES)
    )
    return Factory(
        factory_id=f"f{k}",
        path=f".frequency/f{k}.yaml",
        initial=MESH_STATES[0],
        terminal=(MESH_STATES[-1],),
        steps=steps,
    )


def mesh_config(root: Path, n_factories: int, *, requires: bool = True) -> Config:
    """Factories f0..f<n-1>, each step with 3 predicates (or none), built from freq.model."""
    facs = tuple(mesh_factory(k, n_factories, requires=requires) for k in range(n_factories))
    return Config(root=str(root), factories=facs)


def mesh_subjects(n_factories: int, per: int) -> list[tuple[Subject, Event]]:
    """`per` subjects s-00000.. in each factory, spread over states a..d.

    The same names recur in every factory, so `subject_state` predicates find their
    counterpart; the spread is shifted by factory, so neighbours differ in state.
    """
    out = []
    for k in range(n_factories):
        fid = f"f{k}"
        for i in range(per):
            state = MESH_STATES[(i + k) % 4]
            at = T0 + timedelta(seconds=i)
            s = Subject(
                factory=fid,
                name=f"s-{i:05d}",
                state=state,
                data=MappingProxyType({"n": str(i)}),
                created_at=at,
                updated_at=at,
                entered_at=at,
            )
            ev = Event(
                kind=EventKind.CREATED,
                factory=fid,
                subject=s.name,
                at=at,
                worker="bench:1:1",
                to_state=state,
            )
            out.append((s, ev))
    return out


# ---------------------------------------------------------------- figure (i): costs

AGENT_YAML = """\
factory_id: build
state:
  initial: selected
  terminal: [reviewed]
limits: {budget: {usd: 100, per: day}}
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
    agent: {use: claude, prompt: "implement {subject}"}
  - id: review
    from_states: [implemented]
    to_state: reviewed
    run: "true"
"""


def write_attempts(store: Store, n: int, *, failures: int = 1, group: int = 30) -> int:
    """Give `n` new subjects of factory `build` a history of agent and shell attempts, as
    the run loop writes them: `failures` failed claude attempts of `implement` (with
    usage), a successful one, then a successful shell `review`: (failures + 2) claims and
    as many attempt ends per subject. Written `group` subjects per ref batch; returns the
    number of attempt ends written."""
    rng = random.Random(7)
    implement = Step(id="implement", from_states=("selected",), to_state="implemented")
    created = []
    for i in range(n):
        at = T0 + timedelta(seconds=i)
        c = transitions.created(FACTORY, f"app-{i:05d}", "selected", at=at, worker="bench:1:1")
        created.append((c.subject, c.event))
    tips = store.create_many(created)
    ends = 0
    for first in range(0, n, group):
        batch = []
        chunk = zip(created[first : first + group], tips[first : first + group], strict=True)
        for (subj0, _ev), tip in chunk:
            subj, parent, t = subj0, tip, subj0.created_at
            ref = refs.subject_ref(subj.factory, subj.name)
            for k in range(failures + 2):
                t += timedelta(minutes=1)
                step = "review" if k == failures + 1 else "implement"
                claim = transitions.claimed(
                    subj, step=step, attempt=subj.attempt + 1, worker="bench:1:1", at=t,
                    ttl=timedelta(minutes=5),
                )  # fmt: skip
                parent = store.prepare(claim.subject, claim.event, parent=parent, output=b"")
                t += timedelta(minutes=3)
                usage = AgentUsage(
                    agent="claude", model="claude-sonnet-4", tokens_in=12_000 + k,
                    tokens_out=800, tokens_cached=9_000, cost_usd=0.042,
                    cost_source=CostSource.REPORTED, session=f"s-{subj.name}",
                )  # fmt: skip
                if k < failures:
                    end, _ = transitions.failed(
                        claim.subject, implement, Ending(exit_code=1, tail="overloaded"),
                        how="exit 1", duration_ms=180_000, at=t, worker="bench:1:1", rng=rng,
                    )  # fmt: skip
                else:
                    to = "reviewed" if step == "review" else "implemented"
                    end = transitions.succeeded(
                        claim.subject, to_state=to, at=t, worker="bench:1:1",
                        duration_ms=180_000 if step == "implement" else 2_000, exit_code=0,
                    )  # fmt: skip
                event = replace(end.event, usage=usage) if step == "implement" else end.event
                parent = store.prepare(end.subject, event, parent=parent, output=b"done\n")
                subj = end.subject
                ends += 1
            batch.append(RefUpdate(ref, parent, tip))
        store.update(batch)
    return ends
