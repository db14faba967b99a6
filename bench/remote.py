"""Figure (l): claims through one bare remote against `git push --atomic --force-with-lease`.

Two figures, over file:// and over a `git daemon` on 127.0.0.1 (receive-pack enabled):

  1. claims per second with 1, 2, 4 and 8 workers: each worker is a process with its own
     clone, running the run loop's own cycle (freq.loop.Worker: exchange with the remote,
     plan, then claim the plan's starts in turn from the worker's offset, as
     Worker._launch does) over one factory of N subjects until every subject is claimed;
     a claim is one atomic push of the subject ref and its cap slot, and two lost races in
     a row are fetched and planned again as in `run`. The steps never run: the figure is
     the claim. Its floor is one `git push --atomic --force-with-lease=REF:OLD` of one
     ref from one process (a new commit each, made untimed) to the same remote, timed in
     the same run before the claims and after them (a push costs more as the remote's
     refs grow: it advertises all of them), the mean of the two medians. Reported per claim
     (wall time / N against the push); target for one worker: at most 1.5x.
  2. one CAS push when the remote holds 1,000 and 10,000 refs: `Store.advance` of one
     subject in remote mode (its fetch not timed) vs the same `git push` floor on that
     remote. Reported (no target): a push's cost grows with the refs the remote
     advertises.

Returns Row keyword dicts (bench/run.py turns them into Row), as bench/agents.py does.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FACTORY = """factory_id: f
state: {initial: new, terminal: [done]}
steps:
  - {id: work, from_states: [new], to_state: done, run: "sleep 1000"}
"""


def _git(cwd: Path, *args: str, env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@contextmanager
def _daemon(base: Path, env: dict[str, str]) -> Iterator[str]:
    """A `git daemon` serving `base` on a free loopback port, receive-pack enabled."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
         f"--base-path={base}", "--export-all", "--enable=receive-pack", str(base)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.02)
        yield f"git://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()


def _bare(where: Path, env: dict[str, str], refs: int = 0) -> Path:
    """A bare remote holding `refs` refs under refs/frequency/subjects/filler/ (one commit)."""
    _git(where.parent, "init", "-q", "--bare", str(where), env=env)
    if refs:
        tree = _git(where, "mktree", env=env, stdin="")
        oid = _git(where, "commit-tree", tree, "-m", "filler", env=env)
        lines = "".join(f"create refs/frequency/subjects/filler/s{i} {oid}\n" for i in range(refs))
        _git(where, "update-ref", "--stdin", env=env, stdin=lines)
        _git(where, "pack-refs", "--all", env=env)
    return where


def push_floor(work: Path, url: str, env: dict[str, str], n: int) -> float:
    """Seconds of one `git push --atomic --force-with-lease=REF:OLD` of one ref (median)."""
    ref = "refs/frequency/bench/floor"
    repo = work / f"floor-{abs(hash(url))}"
    if not repo.exists():
        _git(work, "init", "-q", str(repo), env=env)
    tree = _git(repo, "mktree", env=env, stdin="")
    old = _git(repo, "commit-tree", tree, "-m", "base", env=env)
    _git(repo, "push", "-q", "--force", url, f"{old}:{ref}", env=env)
    commits = []
    parent = old
    for i in range(n):
        parent = _git(repo, "commit-tree", tree, "-p", parent, "-m", f"c{i}", env=env)
        commits.append(parent)
    times = []
    for new in commits:
        t = time.perf_counter()
        subprocess.run(
            ["git", "push", "-q", "--atomic", f"--force-with-lease={ref}:{old}", url,
             f"{new}:{ref}"],
            cwd=repo, env=env, check=True, capture_output=True,
        )  # fmt: skip
        times.append(time.perf_counter() - t)
        old = new
    return statistics.median(times)


def _claimer(clone: str, url: str, env: dict[str, str], go: Any, out: Any) -> None:
    """One worker process: exchange, plan, claim, until nothing is left to claim."""
    os.environ.clear()
    os.environ.update(env)
    from freq.clock import SystemClock
    from freq.config import load_config
    from freq.errors import WriteBlocked
    from freq.loop import Worker
    from freq.store import Store

    clock = SystemClock()
    store = Store.discover(clone, clock=clock)
    store.attach("origin", url)
    config = load_config(Path(clone))
    w = Worker(store, config, clock=clock, worker=f"bench-{os.getpid()}")
    w.claims.max_parallel = 10_000
    w._exchange()  # as `run` starts: the wire's imports and the first fetch are not claims
    go.wait()
    claimed = lost = 0
    idle = 0
    while idle < 3:
        try:
            w._exchange()
            p = w._plan(10_000, None)
        except WriteBlocked:
            continue
        if not p.starts:
            idle += 1
            store.mirror.foreign = True  # type: ignore[union-attr]  # look again
            continue
        idle = 0
        starts = list(p.starts)
        k = w.claims.caps.offset % len(starts)
        missed = 0
        for start in starts[k:] + starts[:k]:  # as Worker._launch: the plan's starts in turn
            if w.claims.claim(start) is not None:
                claimed += 1
                missed = 0
                continue
            lost += 1
            missed += 1
            if missed >= 2:
                break  # others claim from the same state: plan again
    out.put((claimed, lost))
    store.close()


def claims(
    work: Path, url: str, env: dict[str, str], workers: int, n: int, tag: str
) -> tuple[float, float]:
    """(seconds per claim (wall / n) for `workers` processes over `n` subjects at `url`,
    the push floor on that same remote: the mean of its median before the claims, with
    the n subject refs, and after, with the cap slots too)."""
    seed = work / f"seed-{tag}-{workers}"
    _git(work, "clone", "-q", url, str(seed), env=env)
    (seed / ".frequency").mkdir()
    (seed / ".frequency" / "f.yaml").write_text(FACTORY)
    subprocess.run(
        [sys.executable, "-m", "freq", "add", "f", *[f"s{i}" for i in range(n)]],
        cwd=seed, env=env, check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "freq", "sync", "--remote", "origin"],
        cwd=seed, env=env, check=True, capture_output=True,
    )  # fmt: skip
    clones = []
    for i in range(workers):
        c = work / f"clone-{tag}-{workers}-{i}"
        _git(work, "clone", "-q", url, str(c), env=env)
        shutil.copytree(seed / ".frequency", c / ".frequency")
        clones.append(c)
    before = push_floor(work, url, env, 15)
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(str(c), url, env, go, out)) for c in clones]
    for p in procs:
        p.start()
    time.sleep(1.0)  # every worker has opened its store and loaded its config
    t = time.perf_counter()
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - t
    for p in procs:
        p.join()
    total = sum(c for c, _ in results)
    if total != n:
        raise RuntimeError(f"{workers} workers claimed {total} of {n} subjects")
    after = push_floor(work, url, env, 15)
    return wall / n, (before + after) / 2


def one_push(work: Path, url: str, env: dict[str, str], tag: str) -> float:
    """Seconds of one Store.advance in remote mode (median of 5), its fetch untimed."""
    os.environ.update(env)
    from freq import refs, transitions
    from freq.clock import SystemClock
    from freq.store import Store

    clone = work / f"one-{tag}"
    _git(work, "clone", "-q", url, str(clone), env=env)
    _git(clone, "commit", "-q", "--allow-empty", "-m", "i", env=env)
    store = Store.discover(clone, clock=SystemClock())
    mirror = store.attach("origin", url)
    mirror.refresh()
    created = transitions.created("f", "one", "new", at=store.clock.now(), worker="bench")
    ref = refs.subject_ref("f", "one")
    tip = store.advance(ref, created.subject, created.event, expected=None)
    subj = created.subject
    times = []
    for i in range(5):
        change = transitions.moved(subj, state="new", at=store.clock.now(), by="b", reason=str(i))
        t = time.perf_counter()
        tip = store.advance(ref, change.subject, change.event, expected=tip)
        times.append(time.perf_counter() - t)
        subj = change.subject
    store.close()
    return statistics.median(times)


def figure_l(tmp: Path, env: dict[str, str], n: int, ref_counts: tuple[int, ...]) -> list[dict]:
    work = tmp / "remote"
    work.mkdir()
    rows: list[dict] = []
    base = work / "served"
    base.mkdir()
    with _daemon(base, env) as daemon:
        for tag, url_of in (
            ("file", lambda name: f"file://{base / name}"),
            ("git daemon", lambda name: f"{daemon}/{name}"),
        ):
            floor = push_floor(
                work, url_of(_bare(base / f"floor-{tag[:4]}.git", env).name), env, 15
            )
            for workers in (1, 2, 4, 8):
                name = f"claims-{tag[:4]}-{workers}.git"
                _bare(base / name, env)
                per, floor = claims(work, url_of(name), env, workers, n, tag[:4])
                rows.append(
                    {
                        "figure": "l",
                        "what": f"claims through one remote over {tag}, {workers} worker(s) "
                        f"({1 / per:.0f} claims/s)",
                        "size": n,
                        "measured_s": per,
                        "floor_s": floor,
                        "floor": "git push --atomic --force-with-lease (one ref)",
                        "target": 1.5 if workers == 1 else None,
                        "note": "per claim",
                    }
                )
            for count in ref_counts:
                name = f"refs-{tag[:4]}-{count}.git"
                _bare(base / name, env, refs=count)
                floor_n = push_floor(work, url_of(name), env, 5)
                mine = one_push(work, url_of(name), env, f"{tag[:4]}-{count}")
                rows.append(
                    {
                        "figure": "l",
                        "what": f"one CAS push over {tag}, {count:,} refs on the remote",
                        "size": count,
                        "measured_s": mine,
                        "floor_s": floor_n,
                        "floor": "git push --atomic --force-with-lease at the same refs",
                        "target": None,
                    }
                )
    return rows
