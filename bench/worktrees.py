"""Figure (k): the worktree pool and the merge queue against the git commands they stand on.

One repository per run: `Sizes.dirs` x `Sizes.per` small files (FULL: 100 x 100; QUICK,
for `--quick`: 10 x 100, 6 queue entries, shorter sleeps) committed on `main` by `git
fast-import`, plus `package-lock.json` and a `.gitignore` of `node_modules/`; the user's
checkout is on branch `dev` (as in tests/e2e/test_worktrees.py), so landings on `main`
never have to bring a checkout along. Four figures:

  1. a fresh worktree ready for a step: `Pool.acquire` on an empty pool vs `git worktree
     add --detach <path> <commit>`; each slot or worktree is removed between repetitions.
     Target: at most 1.2x.
  2. a worktree from the pool whose `setup:` is slow (a sleep, then node_modules): a pooled
     re-acquire (the slot released, the same package-lock.json, so setup is skipped; the
     base alternates between two commits, as a step after a landing would see) vs `git
     worktree add` plus that setup run once. Target: the pool at least 10x faster (0.1x).
  3. landing N branches that each change one distinct file (N = 20): `Lander.serve("main")`
     over N real queue entries (no check, batch 1) vs, per branch, `git merge-tree
     --write-tree`, `git commit-tree -p main` and `git update-ref refs/heads/main <new>
     <old>` from a Python loop. Target: at most 1.5x. Both end on the same tree (checked).
  4. the same N entries with a passing `merge.check` (a sleep): `batch: N` (one check of
     all) vs `batch: 1` (N checks, one at a time), with `batch: 5` as context. Target:
     batched at least 2x faster (0.5x).

Queue entries are made the way a worktree step's success makes them, untimed: the branch
`freq/<factory>/<subject>/work` (one commit off main, written once by fast-import), the
subject created holding a claim, then `transitions.queued` through the store. The timed
part is the landing alone. The Pool and Lander run in this process, with os.environ
swapped for the hermetic environment meanwhile (freq.proc hands os.environ to git).

Returns Row keyword dicts (bench/run.py turns them into Row), as bench/agents.py does.
"""

from __future__ import annotations

import contextlib
import cProfile
import itertools
import os
import pstats
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import workload as w

from freq import refs, transitions
from freq.clock import SystemClock, system_rng
from freq.config import load_config
from freq.landing import Lander, branch_for
from freq.model import Config, Setup, Worktrees
from freq.report import Reporter
from freq.runtime import Claim, Event, EventKind, Landing, Subject
from freq.store import RefUpdate, Store
from freq.worktrees import Holder, Pool

TARGET = "main"
STEP = "work"
WORKER = "bench:1:1"
LOCK_FILE = "package-lock.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """What one run of figure (k) measures on."""

    dirs: int  # the repository holds dirs x per files
    per: int
    branches: int  # queue entries of figures 3 and 4
    setup_sleep: float  # seconds the slow setup of figure 2 sleeps
    check_sleep: float  # seconds the merge check of figure 4 sleeps
    reps: int  # repetitions of figure 3 and of figure 2's re-acquire (medians)
    slow_reps: int  # of what checks out the whole tree: figure 1, figure 2's floor
    check_reps: int  # repetitions of figure 4's landings (batch 1 sleeps branches x check)

    @property
    def files(self) -> int:
        return self.dirs * self.per


FULL = Sizes(
    dirs=100,
    per=100,
    branches=20,
    setup_sleep=2.0,
    check_sleep=0.2,
    reps=5,
    slow_reps=3,
    check_reps=2,
)
QUICK = Sizes(
    dirs=10,
    per=100,
    branches=6,
    setup_sleep=0.3,
    check_sleep=0.05,
    reps=2,
    slow_reps=2,
    check_reps=1,
)


def _factory_yaml(fid: str, merge: str = "") -> str:
    """A one-step worktree factory; its `run:` never runs here (the entries it would queue
    are made directly), but the step's `merge:` is what the Lander reads."""
    return (
        f"factory_id: {fid}\n"
        "state: {initial: new, terminal: [done]}\n"
        "steps:\n"
        f"  - id: {STEP}\n"
        "    from_states: [new]\n"
        "    to_state: done\n"
        "    isolation: worktree\n"
        '    run: \'echo "$FREQ_SUBJECT" > "$FREQ_SUBJECT.txt"\'\n'
        + (f"    merge: {merge}\n" if merge else "")
    )


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """os.environ is `env` meanwhile: the git processes freq.proc starts are hermetic."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _median(fn: Callable[[], float], reps: int) -> float:
    return statistics.median(fn() for _ in range(reps))


# ---------------------------------------------------------------- the repository


def _content(d: int, f: int, gen: int) -> bytes:
    return b"file %03d/%03d generation %d\n" % (d, f, gen)


def _fast_import(repo: Path, env: dict[str, str], stream: list[bytes]) -> None:
    subprocess.run(
        ["git", "fast-import", "--quiet", "--done"],
        cwd=repo,
        env=env,
        input=b"".join([*stream, b"done\n"]),
        check=True,
    )


def _inline(path: str, data: bytes) -> bytes:
    return b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data)


def _commit_header(ref: str, message: str, parent: str | None) -> bytes:
    msg = message.encode()
    head = b"commit %s\ncommitter Bench <bench@example.com> 1767225600 +0000\n" % ref.encode()
    head += b"data %d\n%s\n" % (len(msg), msg)
    return head + (b"from %s\n" % parent.encode() if parent else b"")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Repo:
    """The figure's repository, as make_repo left it."""

    path: Path
    base: str  # main's first commit: every branch forks from it, every landing starts on it
    commits: tuple[str, ...]  # one per queue entry, each changing one file of its own dir
    config: Config


def make_repo(path: Path, env: dict[str, str], sizes: Sizes) -> _Repo:
    """The repository of the figure: files on main, the entries' commits, the factories."""
    repo = w.init_repo(path, env)
    stream = [_commit_header("refs/heads/main", f"{sizes.files:,} files", None)]
    stream += [
        _inline(f"d{d:03d}/f{f:03d}.txt", _content(d, f, 0))
        for d in range(sizes.dirs)
        for f in range(sizes.per)
    ]
    stream += [
        _inline(LOCK_FILE, b'{"lockfileVersion": 3, "packages": {}}\n'),
        _inline(".gitignore", b"node_modules/\n"),
        b"\n",
    ]
    _fast_import(repo, env, stream)
    base = w.git(repo, env, "rev-parse", "refs/heads/main")
    # each entry's commit changes one file of its own dir (dirs spread over the tree)
    spread = [(i * sizes.dirs // sizes.branches, i % sizes.per) for i in range(sizes.branches)]
    stream = []
    for i, (d, f) in enumerate(spread):
        stream.append(_commit_header(f"refs/bench/k/{i:02d}", f"change d{d:03d}/f{f:03d}", base))
        stream += [_inline(f"d{d:03d}/f{f:03d}.txt", _content(d, f, 1)), b"\n"]
    _fast_import(repo, env, stream)
    commits = tuple(
        w.git(repo, env, "rev-parse", f"refs/bench/k/{i:02d}") for i in range(sizes.branches)
    )
    w.git(repo, env, "reset", "-q", "--hard")  # the user's checkout: main's files, then dev
    w.git(repo, env, "checkout", "-q", "-b", "dev")
    fdir = repo / ".frequency"
    fdir.mkdir()
    (fdir / "frequency.yaml").write_text("max_parallel: 4\n")
    check = f"sleep {sizes.check_sleep:g}"
    (fdir / "plain.yaml").write_text(_factory_yaml("plain"))
    (fdir / "one.yaml").write_text(_factory_yaml("one", f"{{check: '{check}', batch: 1}}"))
    (fdir / "five.yaml").write_text(_factory_yaml("five", f"{{check: '{check}', batch: 5}}"))
    all_ = f"{{check: '{check}', batch: {sizes.branches}}}"
    (fdir / "all.yaml").write_text(_factory_yaml("all", all_))
    w.git(repo, env, "add", ".frequency")
    w.git(repo, env, "commit", "-q", "-m", "factories")
    return _Repo(path=repo, base=base, commits=commits, config=load_config(repo))


def _pool(repo: Path) -> Pool:
    return Pool(repo, repo / ".git", Worktrees(), clock=SystemClock())


def _holder(subject: str) -> Holder:
    return Holder(factory="plain", subject=subject, step=STEP, attempt=1, epoch=1, worker=WORKER)


def _remove_all(pool: Pool) -> None:
    for info in pool.slots():
        pool.remove(info.slot)


# ---------------------------------------------------------------- 1 and 2: the pool


def _fresh(r: _Repo, env: dict[str, str], reps: int) -> dict[str, Any]:
    """Pool.acquire on an empty pool vs `git worktree add --detach`, interleaved."""
    pool = _pool(r.path)
    floor_at = r.path / ".git" / "bench-floor-wt"
    branch = branch_for("plain", "fresh", STEP)

    def acquire() -> float:
        _remove_all(pool)
        t = time.perf_counter()
        co = pool.acquire(_holder("fresh"), base=r.base, branch=branch)
        took = time.perf_counter() - t
        if not co.fresh or not (co.path / "d000" / "f000.txt").is_file():
            raise RuntimeError(f"acquire on an empty pool gave {co}")
        pool.release(co)
        pool.remove(co.slot)
        return took

    def floor() -> float:
        t = time.perf_counter()
        w.git(r.path, env, "worktree", "add", "-q", "--detach", str(floor_at), r.base)
        took = time.perf_counter() - t
        w.git(r.path, env, "worktree", "remove", "--force", str(floor_at))
        return took

    runs = [(acquire(), floor()) for _ in range(reps)]
    measured = statistics.median(a for a, _ in runs)
    floor_s = statistics.median(f for _, f in runs)
    return {
        "figure": "k",
        "what": "fresh worktree ready for a step (Pool.acquire, empty pool)",
        "size": 0,
        "measured_s": measured,
        "floor_s": floor_s,
        "floor": "git worktree add --detach <path> <commit>",
        "target": 1.2,
        "note": f"median of {reps} interleaved; the slot (or worktree) removed between "
        "repetitions; the pool's one git process is `worktree add --force -B <branch>`",
    }


def _reacquire(r: _Repo, env: dict[str, str], sizes: Sizes) -> dict[str, Any]:
    """A pooled re-acquire whose setup is skipped vs a new worktree plus that setup."""
    pool = _pool(r.path)
    _remove_all(pool)
    run = f"sleep {sizes.setup_sleep:g} && mkdir -p node_modules && touch node_modules/.ok"
    setup = Setup(run=run, when_changed=(LOCK_FILE,))
    branch = branch_for("plain", "setup", STEP)
    bases = itertools.cycle((r.commits[0], r.base))  # the lock file is the same in both
    first = pool.acquire(_holder("setup"), base=r.base, branch=branch, setup=setup)
    if first.setup != "ran":
        raise RuntimeError(f"the first acquire did not run setup: {first.setup}")
    pool.release(first)

    def again() -> float:
        base = next(bases)
        t = time.perf_counter()
        co = pool.acquire(_holder("setup"), base=base, branch=branch, setup=setup)
        took = time.perf_counter() - t
        ok = (co.path / "node_modules" / ".ok").is_file()
        pool.release(co)
        if co.fresh or co.setup != "skipped" or not ok:
            raise RuntimeError(f"re-acquire: fresh={co.fresh} setup={co.setup} installed={ok}")
        return took

    floor_at = r.path / ".git" / "bench-floor-setup"

    def floor() -> float:
        t = time.perf_counter()
        w.git(r.path, env, "worktree", "add", "-q", "--detach", str(floor_at), r.base)
        subprocess.run(["/bin/sh", "-c", run], cwd=floor_at, env=env, check=True)
        took = time.perf_counter() - t
        w.git(r.path, env, "worktree", "remove", "--force", str(floor_at))
        return took

    measured = _median(again, sizes.reps)
    floor_s = _median(floor, sizes.slow_reps)
    # the slot stays: the merge checks of figure 4 find a warm pool, as a running loop does
    quick = (
        ""
        if sizes.setup_sleep == FULL.setup_sleep
        else f" (--quick: sleep {sizes.setup_sleep:g}, not {FULL.setup_sleep:g}; still over "
        "5x what a re-acquire takes)"
    )
    return {
        "figure": "k",
        "what": "worktree from the pool, slow setup skipped (re-acquire)",
        "size": 0,
        "measured_s": measured,
        "floor_s": floor_s,
        "floor": "git worktree add + the setup run once",
        "target": 0.1,
        "note": f"setup `{run}`{quick}, when_changed [{LOCK_FILE}]; median of {sizes.reps} "
        f"re-acquires (checkout -f -B, clean, ls-files; base alternating between two "
        f"commits), floor median of {sizes.slow_reps}",
    }


# ---------------------------------------------------------------- 3 and 4: the queue


class _Queue:
    """Queue entries made as a worktree step's success makes them, and the landing floor."""

    def __init__(self, r: _Repo, env: dict[str, str]) -> None:
        self.r = r
        self.env = env
        self.store = Store.discover(r.path, clock=SystemClock())
        self.made = 0
        self.floor_tree: str | None = None
        self.where = ""

    def close(self) -> None:
        self.store.close()

    def _reset_main(self) -> None:
        w.git(self.r.path, self.env, "update-ref", "refs/heads/main", self.r.base)

    def fill(self, factory: str) -> list[str]:
        """Put one entry per commit in the queue of main (fresh subjects each time), with
        main back at the base; their names."""
        self._reset_main()
        self.made += 1
        names = [f"r{self.made:02d}-{i:02d}" for i in range(len(self.r.commits))]
        branches = [branch_for(factory, n, STEP) for n in names]
        made = zip(branches, self.r.commits, strict=True)
        lines = "".join(f"create refs/heads/{b} {c}\n" for b, c in made)
        w.git(self.r.path, self.env, "update-ref", "--stdin", stdin=lines.encode())
        now = SystemClock().now()
        claimed = []
        for n in names:
            s = Subject(
                factory=factory,
                name=n,
                state="new",
                epoch=1,
                attempt=1,
                claim=Claim(
                    holder=WORKER,
                    step=STEP,
                    attempt=1,
                    epoch=1,
                    claimed_at=now,
                    expires_at=now + timedelta(hours=1),
                ),
                created_at=now,
                updated_at=now,
                entered_at=now,
            )
            ev = Event(kind=EventKind.CREATED, factory=factory, subject=n, at=now, worker=WORKER)
            claimed.append((s, ev))
        tips = self.store.create_many(claimed)
        batch = []
        for i, ((s, _), tip) in enumerate(zip(claimed, tips, strict=True)):
            landing = Landing(
                step=STEP,
                attempt=1,
                to_state="done",
                target=TARGET,
                branch=branches[i],
                commit=self.r.commits[i],
                base=self.r.base,
                queued_at=now + timedelta(microseconds=i),
            )
            change = transitions.queued(
                s, landing=landing, at=now, worker=WORKER, duration_ms=5, exit_code=0
            )
            oid = self.store.prepare(change.subject, change.event, parent=tip)
            batch.append(RefUpdate(refs.subject_ref(factory, s.name), oid, tip))
        self.store.update(batch)
        return names

    def land(self, factory: str, config: Config, pool: Pool, *, profile: bool = False) -> float:
        """Seconds of one Lander.serve(main) over a fresh queue of the factory's entries.
        With `profile`, the serving runs under cProfile and `where` says where it went."""
        names = self.fill(factory)
        lander = Lander(
            self.store,
            config,
            pool,
            clock=SystemClock(),
            worker=WORKER,
            reporter=Reporter(),
            rng=system_rng(),
        )
        prof = cProfile.Profile() if profile else None
        t = time.perf_counter()
        out = lander.serve(TARGET) if prof is None else prof.runcall(lander.serve, TARGET)
        took = time.perf_counter() - t
        landed = sorted(d.subject for d in out.done if d.ok)
        if landed != names or out.waiting or out.busy:
            raise RuntimeError(
                f"landed {len(landed)} of {len(names)}: waiting={out.waiting} busy={out.busy}"
            )
        self._same_tree()
        if prof is not None:
            self.where = _where(prof, len(names))
        return took

    def floor(self) -> float:
        """Per branch: merge-tree, commit-tree -p main, update-ref main <new> <old>."""
        self._reset_main()
        repo, env = self.r.path, self.env

        def git(*args: str) -> str:
            return (
                subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, check=True)
                .stdout.decode()
                .strip()
            )

        t = time.perf_counter()
        old = self.r.base
        for i in range(len(self.r.commits)):
            tree = git("merge-tree", "--write-tree", "main", f"refs/bench/k/{i:02d}")
            new = git("commit-tree", tree, "-p", "main", "-m", f"land {i}")
            git("update-ref", "refs/heads/main", new, old)
            old = new
        took = time.perf_counter() - t
        self.floor_tree = w.git(repo, env, "rev-parse", "main^{tree}")
        return took

    def _same_tree(self) -> None:
        if self.floor_tree is None:
            return
        tree = w.git(self.r.path, self.env, "rev-parse", "main^{tree}")
        if tree != self.floor_tree:
            raise RuntimeError(f"the lander's main has tree {tree}, the floor's {self.floor_tree}")

    def checks_run(self) -> int:
        logs = self.r.path / ".git" / "frequency" / "logs" / "queue" / TARGET
        return sum(1 for p in logs.glob("*.log") if not p.name.endswith(".setup.log"))


def _where(prof: cProfile.Profile, n: int) -> str:
    """Where one profiled serving went: git processes (freq.proc.git) and the store's
    durable commits (Store.update, and Store._swap under advance/write_doc), per entry."""
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, fn), (*_, ct, _) in stats.items() if fn == "serve") or 1.0

    def part(file: str, *names: str) -> tuple[int, float]:
        got = [
            (nc, ct)
            for (path, _, fn), (_, nc, _, ct, _) in stats.items()
            if path.endswith(file) and fn in names
        ]
        return sum(nc for nc, _ in got), sum(ct for _, ct in got)

    git_n, git_s = part("freq/proc.py", "git")
    store_n, store_s = part("freq/store/core.py", "update", "_swap")
    return (
        f"profiled: {git_n / n:.1f} git processes per entry ({git_s / total:.0%} of the time, "
        f"{git_s / git_n * 1e3:.1f} ms each), {store_n / n:.1f} store commits per entry "
        f"({store_s / total:.0%}), the rest {1 - (git_s + store_s) / total:.0%}"
    )


def _queue_rows(r: _Repo, env: dict[str, str], sizes: Sizes) -> list[dict[str, Any]]:
    n = sizes.branches
    pool = _pool(r.path)
    q = _Queue(r, env)
    try:
        # untimed: a free slot in the pool (figure 2's, else a new one), a floor's tree
        warm = pool.acquire(_holder("warm"), base=r.base, branch=None)
        pool.release(warm)
        q.floor()
        runs = [(q.land("plain", r.config, pool), q.floor()) for _ in range(sizes.reps)]
        land_s = statistics.median(a for a, _ in runs)
        floor_s = statistics.median(f for _, f in runs)
        q.land("plain", r.config, pool, profile=True)  # untimed: where the time goes
        checked: dict[str, tuple[float, int]] = {}
        for fid in ("all", "one", "five"):
            before = q.checks_run()
            took = _median(lambda f=fid: q.land(f, r.config, pool), sizes.check_reps)
            checked[fid] = (took, (q.checks_run() - before) // sizes.check_reps)
    finally:
        q.close()
        _remove_all(pool)
    (all_s, all_n), (one_s, one_n), (five_s, five_n) = (checked[f] for f in ("all", "one", "five"))
    check = f"check `sleep {sizes.check_sleep:g}`"
    return [
        {
            "figure": "k",
            "what": f"landing {n} branches, distinct files (Lander.serve, no check)",
            "size": n,
            "measured_s": land_s,
            "floor_s": floor_s,
            "floor": "per branch: git merge-tree + commit-tree + update-ref (python loop)",
            "target": 1.5,
            "note": f"median of {sizes.reps} interleaved, {land_s / n * 1e3:.1f} ms per entry "
            f"vs {floor_s / n * 1e3:.1f} ms; both end on the same tree; rebase, batch 1; "
            f"{q.where}",
        },
        {
            "figure": "k",
            "what": f"landing {n} entries with a passing check, batch {n} vs batch 1",
            "size": n,
            "measured_s": all_s,
            "floor_s": one_s,
            "floor": f"the same {n} entries with merge.batch 1 (checked one at a time)",
            "target": 0.5,
            "note": f"{check} in a pool worktree (warm); median of {sizes.check_reps}; checks per "
            f"landing: batch {n} {all_n}, batch 1 {one_n}",
        },
        {
            "figure": "k",
            "what": "  same, batch 5 (context)",
            "size": n,
            "measured_s": five_s,
            "floor_s": one_s,
            "floor": f"the same {n} entries with merge.batch 1 (checked one at a time)",
            "note": f"{five_n} checks per landing",
        },
    ]


def figure_k(tmp: Path, env: dict[str, str], sizes: Sizes) -> list[dict[str, Any]]:
    """The pool and the merge queue on one repository of `sizes.files` files."""
    with _environ(env):
        t = time.perf_counter()
        r = make_repo(tmp / "k-repo", env, sizes)
        made = time.perf_counter() - t
        try:
            rows = [_fresh(r, env, sizes.slow_reps), _reacquire(r, env, sizes)]
            rows += _queue_rows(r, env, sizes)
        finally:
            shutil.rmtree(r.path, ignore_errors=True)
    for row in rows[:2]:
        row["size"] = sizes.files
    rows[0]["note"] += f"; set-up: {sizes.files:,} files committed and checked out in {made:.1f} s"
    return rows
