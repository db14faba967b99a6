"""Figure (n): months of history — the archive, reads at 100,000 subjects, the loop's cost in N.

  1. load + plan of N live subjects, warm (cache file present) and cold (cache deleted),
     against `git for-each-ref | git cat-file --batch` over the same refs (figure (b)'s
     floor); targets: warm at most 1x, cold at most 2x. With the peak memory of a process
     that loads N subjects (target at most 300 MB at 100,000), reported as a ratio to 300 MB.
  2. the archive: 1,000 live subjects beside N archived ones (folded by one archive pass,
     itself reported) against the same 1,000 alone: load + plan warm (target 1.5x), and one
     CAS push to a bare remote holding the same refs (target 1.5x): an archived subject is
     no ref, so neither grows with it. The push is timed after the upkeep `run` and
     `archive` do (freq.upkeep, git gc --auto), which repacks the pack per batch the setup
     and the pass wrote (hundreds; a dulwich lookup tries each before the loose objects),
     and, as context, before it.
  3. the run loop's cost per step over N subjects x 4 `true` steps (LOOP_PARALLEL, 2, at a
     time), as runtime.OVERHEAD_DEF defines it with 2 slots, against the same cost of one
     git plumbing commit per step (runtime's floor (ii)); targets: at most 0.8x that floor
     at every N, and flat in N (the largest N within 1.1x of the smallest). git there
     fsyncs nothing (its default core.fsync leaves loose objects and refs unsynced) where
     Frequency makes every step durable; a context row measures the floor again with git
     fsyncing loose objects and refs (DURABLE_GIT), the like-for-like comparison.

Returns Row keyword dicts (bench/run.py turns them into Row), as bench/remote.py does.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import runtime
import workload as w

from freq import archiver, refs, transitions, upkeep
from freq.clock import SystemClock
from freq.planner import plan
from freq.store import Store

FLOOR = "git for-each-ref | git cat-file --batch"
PEAK = 300.0  # MB: the ceiling for a process holding 100,000 subjects
# git made as durable as a Frequency transition: each loose object and ref file fsynced
DURABLE_GIT = {
    "GIT_CONFIG_COUNT": "2",
    "GIT_CONFIG_KEY_0": "core.fsync",
    "GIT_CONFIG_VALUE_0": "loose-object,reference",
    "GIT_CONFIG_KEY_1": "core.fsyncMethod",
    "GIT_CONFIG_VALUE_1": "fsync",
}
LOOP_PARALLEL = 2  # the loop's steps at a time, and the floors' xargs -P: the issue's "2 at a time"

# a child process: load and plan the repository at argv[1]; print its peak RSS in MB
_PEAK = """
import resource, sys
sys.path.insert(0, sys.argv[2])
import workload as w
from datetime import timedelta
from freq.clock import SystemClock
from freq.planner import plan
store = w.open_store(sys.argv[1])
snap = store.snapshot()
plan(w.config(store.root), snap, now=w.T0 + timedelta(hours=1))
store.close()
# VmHWM, this process's own high-water mark: ru_maxrss also counts the parent's memory
# that fork copied before exec (the bench's own, 580 MB after its loads of 100,000)
try:
    with open("/proc/self/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(hwm / 1024)
"""


def _live(tmp: Path, env: dict[str, str], name: str, n: int) -> Path:
    repo = w.init_repo(tmp / name, env)
    store = Store.discover(repo, clock=SystemClock())
    try:
        store.create_many(w.subjects(n))
    finally:
        store.close()
    return repo


def _load_plan(repo: Path, n: int, *, cold: bool) -> float:
    """Best of 3: a fresh Store's snapshot and a plan (RuntimeError unless n subjects)."""
    cache = repo / ".git" / "frequency" / "cache" / "subjects.v1"
    best = float("inf")
    for _ in range(3):
        if cold:
            cache.unlink(missing_ok=True)
        t = time.perf_counter()
        store = w.open_store(repo)
        try:
            snap = store.snapshot()
            plan(w.config(repo), snap, now=w.T0 + timedelta(hours=1))
        finally:
            store.close()
        best = min(best, time.perf_counter() - t)
        if len(snap.subjects) != n or snap.problems:
            raise RuntimeError(f"read {len(snap.subjects)} of {n} subjects: {snap.problems[:1]}")
    return best


def _peak_mb(repo: Path, env: dict[str, str]) -> float:
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(repo), here],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def reads(tmp: Path, env: dict[str, str], sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in sizes:
        repo = _live(tmp, env, f"n-live-{n}", n)
        floor = w.read_floor(repo, env)
        for cold in (False, True):
            rows.append(
                {
                    "figure": "n",
                    "what": "load+plan "
                    + ("cold (cache deleted)" if cold else "warm (cache present)"),
                    "size": n,
                    "measured_s": _load_plan(repo, n, cold=cold),
                    "floor_s": floor,
                    "floor": FLOOR,
                    "target": 2.0 if cold else 1.0,
                    "note": "best of 3, fresh Store each",
                }
            )
        peak = _peak_mb(repo, env)
        rows.append(
            {
                "figure": "n",
                "what": "peak memory of a process that loads and plans",
                "size": n,
                "measured_s": peak,
                "floor_s": PEAK,
                "floor": f"{PEAK:.0f} MB",
                "target": 1.0 if n >= 100_000 else None,
                "unit": "MB",
                "note": "the process's VmHWM (measured and floor in MB)",
            }
        )
    return rows


def _archived(tmp: Path, env: dict[str, str], live: int, n: int) -> tuple[Path, float]:
    """`live` live subjects and `n` archived ones (created in `promoted`, one pass); the
    pass's seconds."""
    repo = _live(tmp, env, f"n-arch-{n}", live)
    store = Store.discover(repo, clock=SystemClock())
    try:
        done = [
            transitions.created(w.FACTORY, f"old-{i:06d}", "promoted", at=w.T0, worker="b")
            for i in range(n)
        ]
        tips = store.create_many([(c.subject, c.event) for c in done])
        items = [(c.subject, tip) for c, tip in zip(done, tips, strict=True)]
        t = time.perf_counter()
        folded = archiver.fold(store, w.FACTORY, items, at=store.clock.now())
        took = time.perf_counter() - t
    finally:
        store.close()
    if len(folded.subjects) != n:
        raise RuntimeError(f"the pass folded {len(folded.subjects)} of {n}")
    return repo, took


PUSHES = 7  # CAS pushes per repository in _pushes, taken in turns


def _pushes(tmp: Path, env: dict[str, str], repos: dict[str, Path]) -> dict[str, float]:
    """Median seconds of PUSHES CAS pushes (Store.advance in remote mode) from each of
    `repos` (tag -> repository) to a bare copy of its refs, the repositories taking turns
    push by push, after one unmeasured push each: the first push of a process warms what
    every later one finds warm, and a figure that timed one repository first charged it."""
    stores: dict[str, list[Any]] = {}
    try:
        for tag, repo in repos.items():
            bare = tmp / f"n-bare-{tag}.git"
            subprocess.run(["git", "init", "-q", "--bare", str(bare)], env=env, check=True)
            subprocess.run(
                ["git", "push", "-q", str(bare), "refs/frequency/*:refs/frequency/*"],
                cwd=repo,
                env=env,
                check=True,
            )
            store = Store.discover(repo, clock=SystemClock())
            stores[tag] = [store]
            store.attach("origin", str(bare)).refresh()
            stores[tag] += [*store.read_subject(w.FACTORY, "app-00000"), []]
        for i in range(PUSHES + 1):
            for entry in stores.values():
                store, subj, tip, times = entry
                # at the wall clock, as a worker writes: git's connectivity check of the
                # push walks back from the new commit only as far as older tips
                change = transitions.moved(
                    subj, state=subj.state, at=store.clock.now(), by="b", reason=str(i)
                )
                t = time.perf_counter()
                tip = store.advance(
                    refs.subject_ref(w.FACTORY, "app-00000"),
                    change.subject,
                    change.event,
                    expected=tip,
                )
                if i:  # the first is the warm-up
                    times.append(time.perf_counter() - t)
                entry[1:3] = change.subject, tip
    finally:
        for entry in stores.values():
            entry[0].close()
    return {tag: statistics.median(entry[3]) for tag, entry in stores.items()}


def _packs(repo: Path) -> int:
    return len(list((repo / ".git" / "objects" / "pack").glob("*.idx")))


def _upkept(repo: Path, env: dict[str, str]) -> None:
    """The upkeep `run` and `archive` do (freq.upkeep: `git gc --auto`), in the foreground
    here (gc.autoDetach off) so that it is over before the pushes are timed."""
    subprocess.run(["git", "config", "gc.autoDetach", "false"], cwd=repo, env=env, check=True)
    failed = upkeep.gc_auto(repo)
    if failed is not None:
        raise RuntimeError(failed)


def archive(tmp: Path, env: dict[str, str], live: int, n: int) -> list[dict[str, Any]]:
    alone = _live(tmp, env, "n-alone", live)
    beside, pass_s = _archived(tmp, env, live, n)
    warm = _load_plan(beside, live, cold=False), _load_plan(alone, live, cold=False)
    piled = _packs(beside)
    left = _pushes(tmp, env, {"beside": beside, "alone": alone})
    _upkept(beside, env)
    pushed = _pushes(tmp, env, {"upkept": beside, "alone-again": alone})
    how = f"Store.advance in remote mode over file://, median of {PUSHES} each, in turns"
    return [
        {
            "figure": "n",
            "what": f"load+plan warm, {live:,} live + {n:,} archived",
            "size": n,
            "measured_s": warm[0],
            "floor_s": warm[1],
            "floor": f"the same, {live:,} live alone",
            "target": 1.5,
            "note": "best of 3 each",
        },
        {
            "figure": "n",
            "what": f"one CAS push, remote with {live:,} live + {n:,} archived",
            "size": n,
            "measured_s": pushed["upkept"],
            "floor_s": pushed["alone-again"],
            "floor": f"the same push, {live:,} live alone ({_packs(alone)} packs)",
            "target": 1.5,
            "note": (
                f"{how} after a warm-up; the local repository after the upkeep `run` and "
                f"`archive` do (git gc --auto): {piled:,} packs before, {_packs(beside)} after"
            ),
        },
        {
            "figure": "n",
            "what": f"  the same push before that upkeep, {piled:,} packs (context)",
            "size": n,
            "measured_s": left["beside"],
            "floor_s": left["alone"],
            "floor": f"the same push, {live:,} live alone",
            "note": (
                f"{how}; a pack per batch the setup and the pass wrote, each tried by every "
                "dulwich lookup before the loose objects"
            ),
        },
        {
            "figure": "n",
            "what": "  the archive pass that folded them (context)",
            "size": n,
            "measured_s": pass_s,
            "floor_s": w.read_floor(alone, env),
            "floor": f"{FLOOR} of {live:,}",
            "note": "a batch per 500 subjects: one commit, one packed-refs rewrite",
        },
    ]


def loop(tmp: Path, env: dict[str, str], sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    per: dict[int, float] = {}
    rows: list[dict[str, Any]] = []
    for n in sizes:
        repo = runtime.make_repo(
            tmp / f"n-loop-{n}",
            env,
            {runtime.FACTORY: runtime.chain_yaml("true")},
            settings=f"max_parallel: {LOOP_PARALLEL}\n",
        )
        runtime.add_subjects(repo, env, (f"s{i:05d}" for i in range(n)))
        stats = runtime.run_workers(repo, env, 1)
        runtime.check_finished(repo, env, n)
        steps = runtime.STEPS * n
        spawn = runtime.floor_spawn(
            w.init_repo(tmp / f"n-spawn-{n}", env), env, steps, LOOP_PARALLEL
        )
        plumb = runtime.floor_plumbing(
            w.init_repo(tmp / f"n-plumb-{n}", env), env, n, LOOP_PARALLEL
        )
        durable = runtime.floor_plumbing(
            w.init_repo(tmp / f"n-durable-{n}", env), {**env, **DURABLE_GIT}, n, LOOP_PARALLEL
        )
        over = (stats.wall - spawn) * LOOP_PARALLEL / steps
        floor = (plumb - spawn) * LOOP_PARALLEL / steps
        per[n] = over
        rows.append(
            {
                "figure": "n",
                "what": f"run loop, overhead per step ({n:,} subjects x {runtime.STEPS} steps)",
                "size": n,
                "measured_s": over,
                "floor_s": floor,
                "floor": "one git plumbing commit per step, same formula",
                "target": 0.8,
                "note": runtime.OVERHEAD_DEF.replace("x 4", f"x {LOOP_PARALLEL}").replace(
                    "4 slots", f"{LOOP_PARALLEL} slots"
                )
                + "; git here fsyncs nothing (its default core.fsync leaves loose objects "
                "and refs to the page cache), where Frequency makes each step's objects and "
                "ref files durable",
            }
        )
        rows.append(
            {
                "figure": "n",
                "what": "  the same, floor with git fsyncing loose objects and refs (context)",
                "size": n,
                "measured_s": over,
                "floor_s": (durable - spawn) * LOOP_PARALLEL / steps,
                "floor": "one plumbing commit per step, core.fsync=loose-object,reference",
                "note": "as durable as Frequency's transitions: the like-for-like comparison",
            }
        )
    small, large = min(per), max(per)
    rows.append(
        {
            "figure": "n",
            "what": f"run loop per step at {large:,} subjects vs at {small:,} (flat in N)",
            "size": large,
            "measured_s": per[large],
            "floor_s": per[small],
            "floor": f"the same at {small:,} subjects",
            "target": 1.1,
        }
    )
    return rows


def figure_n(
    tmp: Path,
    env: dict[str, str],
    read_sizes: tuple[int, ...],
    archived: int,
    loop_sizes: tuple[int, ...],
) -> list[dict[str, Any]]:
    os.environ.update(env)
    work = tmp / "scale"
    work.mkdir()
    # the loop before the archive: its pass deletes 100,000 ref files, and for the next
    # half minute ext4 without a journal (this machine's) skips their freed inodes one by
    # one at every file it creates (perf: recently_deleted under ext4_create), a cost that
    # would be charged to whatever runs next
    return [
        *reads(work, env, read_sizes),
        *loop(work, env, loop_sizes),
        *archive(work, env, 1_000, archived),
    ]
