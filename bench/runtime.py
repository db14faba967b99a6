"""Runtime figures: `git freq run` as real processes, against shell floors measured alongside.

Figures (targets from the issue), registered in bench/run.py after (a)-(c):
  (d) N subjects through a 4-step factory of `run: "true"` steps (a->b->c->d->e) with
      `max_parallel: 4`, by 1 process and by 4 processes started together, vs
      (i) xargs -P4 running the same 4N `sh -c true` commands and (ii) the same plus one
      git-plumbing commit per step. Target: overhead per step at most 2x floor (ii)'s
      per-step cost.
  (e) the same factory with `sleep 0.05` steps: 4 processes vs 1 process with one slot;
      target: 4 processes at least 1.5x faster.
  (f) latencies, median and p95: eligible -> start, success -> next step start, and a
      lock or cap slot released in one process -> the waiting step's start in another.
      Target: each under 100 ms.

Every function returns Row keyword dicts (bench/run.py turns them into Row), so this module
does not import run.py (which imports it).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import workload as w

from freq import ops

PARALLEL = 4  # max_parallel, the xargs -P of the floors, and the number of worker processes
STEPS = 4
STATES = ("a", "b", "c", "d", "e")
FACTORY = "f"
WORKER_TIMEOUT = 600.0  # seconds; a run still going after this is killed and reported

OVERHEAD_DEF = (
    "overhead per step = (wall - floor (i) wall) x 4 / steps, i.e. extra slot-seconds per step "
    "with 4 slots busy; floor (ii)'s per-step cost = (floor (ii) wall - floor (i) wall) x 4 / "
    "steps, the same formula"
)

# one git-plumbing commit per step, in a ref per subject: $1 = subject, $2 = step number
PLUMBING_STEP = r"""true
ref=refs/frequency/subjects/f/$1
b=$(printf '{"state": "s%s"}\n' "$2" | git hash-object -w --stdin) || exit 1
t=$(printf '100644 blob %s\tsubject.json\n' "$b" | git mktree) || exit 1
if [ "$2" = 1 ]; then
  c=$(git commit-tree -m "f/$1: s$2" "$t") && git update-ref "$ref" "$c" ""
else
  c=$(git commit-tree -p "$ref" -m "f/$1: s$2" "$t") && git update-ref "$ref" "$c" "$c^"
fi
"""

# a step that stamps its start and end (epoch seconds) into $STAMP_LOG
STAMP = (
    'echo "$(date +%s.%N) $FREQ_SUBJECT $FREQ_STEP $FREQ_ATTEMPT {what} $FREQ_WORKER"'
    ' >> "$STAMP_LOG"'
)


def stamped(sleep: float) -> str:
    """A step command: stamp start, sleep, stamp end."""
    mid = f"; sleep {sleep:g}; " if sleep else "; "
    return STAMP.format(what="start") + mid + STAMP.format(what="end")


# ---------------------------------------------------------------- set-up


def _factory_yaml(fid: str, steps: Sequence[tuple[str, str, str, str]], extra: str = "") -> str:
    """A factory file; `steps` are (id, from, to, run); `extra` is added to every step."""
    states = [steps[0][1], *(s[2] for s in steps)]
    lines = [
        f"factory_id: {fid}",
        "state:",
        f"  initial: {states[0]}",
        f"  terminal: [{states[-1]}]",
        "steps:",
    ]
    for sid, a, b, run in steps:
        lines += [
            f"  - id: {sid}",
            f"    from_states: [{a}]",
            f"    to_state: {b}",
            f"    run: {json.dumps(run)}",
        ]
        if extra:
            lines.append(f"    {extra}")
    return "\n".join(lines) + "\n"


def chain_yaml(run: str, fid: str = FACTORY) -> str:
    """The 4-step factory a->b->c->d->e, every step running `run`."""
    return _factory_yaml(fid, [(f"s{i + 1}", STATES[i], STATES[i + 1], run) for i in range(STEPS)])


def make_repo(
    path: Path,
    env: dict[str, str],
    factories: dict[str, str],
    settings: str = f"max_parallel: {PARALLEL}\n",
) -> Path:
    """A fresh repository with one commit, `.frequency/frequency.yaml` and the factories."""
    repo = w.init_repo(path, env)
    w.git(repo, env, "commit", "-q", "--allow-empty", "-m", "init")
    (repo / ".frequency").mkdir()
    (repo / ".frequency" / "frequency.yaml").write_text(settings)
    for name, text in factories.items():
        (repo / ".frequency" / f"{name}.yaml").write_text(text)
    _freq(repo, env, "validate")
    return repo


def _freq(repo: Path, env: dict[str, str], *args: str) -> str:
    """Run `git freq ARGS` to completion; its stdout; RuntimeError with stderr's last line."""
    proc = subprocess.run(
        [*w.freq_command(), *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"git freq {args[0]}: exit {proc.returncode}: {tail[:200]}")
    return proc.stdout


def add_subjects(
    repo: Path, env: dict[str, str], names: Iterable[str], factory: str = FACTORY
) -> None:
    listing = repo / ".git" / "bench-subjects.txt"
    listing.write_text("".join(f"{n}\n" for n in names))
    _freq(repo, env, "add", factory, "--from", str(listing))


def state_counts(repo: Path, env: dict[str, str]) -> dict[str, dict[str, int]]:
    """factory -> state -> count, from `git freq status --json`."""
    data = json.loads(_freq(repo, env, "status", "--json"))
    return {f["factory"]: dict(f["states"]) for f in data["factories"]}


def check_finished(repo: Path, env: dict[str, str], n: int, factory: str = FACTORY) -> None:
    counts = state_counts(repo, env)[factory]
    if counts.get(STATES[-1], 0) != n:
        raise RuntimeError(
            f"{counts.get(STATES[-1], 0)} of {n} subjects reached {STATES[-1]!r}: {counts}"
        )


# ---------------------------------------------------------------- workers


@dataclass
class RunStats:
    """What the worker processes of one scenario printed in their summaries."""

    wall: float
    succeeded: int = 0
    lost_races: int = 0
    cpu: float = 0.0  # user+sys seconds of the worker processes and their children


def run_workers(repo: Path, env: dict[str, str], procs: int, *args: str) -> RunStats:
    """`git freq run --until-idle ARGS` as `procs` processes started together; wall time
    until the last one exits. RuntimeError if any fails."""
    cmd = [*w.freq_command(), "run", "--until-idle", "--json", *args]
    outs = [repo / ".git" / f"bench-worker-{i}.out" for i in range(procs)]
    before = os.times()
    t = time.perf_counter()
    children = []
    for out in outs:
        with out.open("wb") as f, out.with_suffix(".err").open("wb") as e:
            children.append(subprocess.Popen(cmd, cwd=repo, env=env, stdout=f, stderr=e))
    try:
        codes = [c.wait(timeout=WORKER_TIMEOUT) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
    wall = time.perf_counter() - t
    after = os.times()
    stats = RunStats(
        wall=wall,
        cpu=(after.children_user - before.children_user)
        + (after.children_system - before.children_system),
    )
    for code, out in zip(codes, outs, strict=True):
        if code != 0:
            err = out.with_suffix(".err").read_text(errors="replace").strip().splitlines()
            raise RuntimeError(f"worker exit {code}: {(err or ['no output'])[-1][:200]}")
        summary = json.loads(out.read_text())
        stats.succeeded += summary["succeeded"]
        stats.lost_races += summary["lost_races"]
    return stats


# ---------------------------------------------------------------- floors


def _xargs(
    repo: Path, env: dict[str, str], items: str, per: int, script: str, parallel: int = PARALLEL
) -> float:
    t = time.perf_counter()
    subprocess.run(
        ["xargs", f"-P{parallel}", f"-n{per}", "/bin/sh", "-c", script, "_"],
        input=items.encode(),
        cwd=repo,
        env=env,
        check=True,
    )
    return time.perf_counter() - t


def floor_spawn(repo: Path, env: dict[str, str], steps: int, parallel: int = PARALLEL) -> float:
    """Floor (i): `steps` times `sh -c true` (as freq runs `run: "true"`), `parallel` (4)
    at a time."""
    return _xargs(repo, env, "x\n" * steps, 1, "true", parallel)


def floor_plumbing(repo: Path, env: dict[str, str], n: int, parallel: int = PARALLEL) -> float:
    """Floor (ii): floor (i) plus one commit per step (hash-object, mktree, commit-tree,
    update-ref with the old value) on a ref per subject, step by step over all subjects."""
    items = "".join(f"x-{i:05d} {k}\n" for k in range(1, STEPS + 1) for i in range(n))
    took = _xargs(repo, env, items, 2, PLUMBING_STEP, parallel)
    made = w.count_subject_refs(repo, env)
    tips = w.git(
        repo, env, "for-each-ref", "--format=%(contents:subject)", "refs/frequency/subjects/f"
    ).splitlines()
    if made != n or any(not t.endswith(f": s{STEPS}") for t in tips):
        raise RuntimeError(f"floor (ii) left {made} refs, not all at s{STEPS}")
    return took


# ---------------------------------------------------------------- (d) throughput


def _row(
    figure: str,
    what: str,
    size: int,
    measured: float,
    floor: float,
    floor_name: str,
    target: float | None = None,
    note: str = "",
    error: str = "",
) -> dict[str, Any]:
    return {
        "figure": figure,
        "what": what,
        "size": size,
        "measured_s": measured,
        "floor_s": floor,
        "floor": floor_name,
        "target": target,
        "note": note,
        "error": error,
    }


def figure_d(tmp: Path, env: dict[str, str], n: int, *, full_n: int = 1000) -> list[dict[str, Any]]:
    """`true` steps: total wall and overhead per step of 1 and 4 processes vs the floors."""
    steps = n * STEPS
    names = [f"x-{i:05d}" for i in range(n)]
    floor_name = "xargs -P4: sh -c true + git plumbing commit per step (ii) - same without (i)"
    scale = (
        ""
        if n >= full_n
        else f"{n:,} subjects, not the issue's {full_n:,} (kept under the time budget; the per-"
        "step ratio is what counts); "
    )
    # the floors, measured around the freq runs so a slow spell hits both
    base = w.init_repo(tmp / "d-floor", env)
    spawn = [floor_spawn(base, env, steps)]
    plumb = [floor_plumbing(w.init_repo(tmp / "d-plumb-0", env), env, n)]
    runs: dict[int, RunStats] = {}
    errors: dict[int, str] = {}
    for procs in (1, PARALLEL):
        repo = make_repo(tmp / f"d-run-{procs}", env, {FACTORY: chain_yaml("true")})
        add_subjects(repo, env, names)
        try:
            runs[procs] = run_workers(repo, env, procs)
            check_finished(repo, env, n)
        except RuntimeError as exc:
            errors[procs] = str(exc)
    spawn.append(floor_spawn(base, env, steps))
    plumb.append(floor_plumbing(w.init_repo(tmp / "d-plumb-1", env), env, n))
    f_i, f_ii = min(spawn), min(plumb)
    per_commit = (f_ii - f_i) * PARALLEL / steps
    rows = []
    for procs in (1, PARALLEL):
        what = f"`true` steps, {procs} process{'es' if procs > 1 else ''}: overhead per step"
        if procs in errors:
            rows.append(_row("d", what, n, 0.0, 0.0, floor_name, 2.0, error=errors[procs]))
            continue
        r = runs[procs]
        overhead = (r.wall - f_i) * PARALLEL / steps
        rows.append(
            _row(
                "d",
                what,
                n,
                overhead,
                per_commit,
                floor_name,
                2.0,
                note=f"{scale}{steps:,} steps in {r.wall:.2f} s wall "
                f"({steps / r.wall:.0f} steps/s, floor (i) {f_i:.2f} s, "
                f"floor (ii) {f_ii:.2f} s); {r.succeeded} succeeded, "
                f"{r.lost_races} lost races; worker CPU {r.cpu:.1f} s "
                f"({r.cpu / steps * 1e3:.1f} ms/step); {OVERHEAD_DEF}",
            )
        )
        rows.append(
            _row(
                "d",
                f"  total wall, {procs} process{'es' if procs > 1 else ''} (context)",
                n,
                r.wall,
                f_i,
                "xargs -P4 sh -c true (i)",
            )
        )
    rows.append(
        _row(
            "d",
            "  floor (ii) wall: (i) + plumbing commit per step (context)",
            n,
            f_ii,
            f_i,
            "xargs -P4 sh -c true (i)",
            note=f"best of 2 each, one before and one after the freq runs; "
            f"(i) {', '.join(f'{x:.2f}' for x in spawn)} s, "
            f"(ii) {', '.join(f'{x:.2f}' for x in plumb)} s",
        )
    )
    return rows


# ---------------------------------------------------------------- (e) scaling


def concurrency(stamps: Sequence[Stamp]) -> tuple[int, float]:
    """(most steps running at once, time-weighted mean) from start/end stamps."""
    events = sorted((s.at, 1 if s.what == "start" else -1) for s in stamps)
    if len(events) < 2:
        return 0, 0.0
    cur = top = 0
    area = 0.0
    last = events[0][0]
    for at, d in events:
        area += cur * (at - last)
        last = at
        cur += d
        top = max(top, cur)
    return top, area / (events[-1][0] - events[0][0])


def figure_e(tmp: Path, env: dict[str, str], n: int, sleep: float = 0.05) -> list[dict[str, Any]]:
    """`sleep 0.05` steps: 4 processes sharing the global cap of 4 vs 1 process with 1 slot."""
    steps = n * STEPS
    names = [f"x-{i:05d}" for i in range(n)]
    walls: dict[str, RunStats] = {}
    conc: dict[str, tuple[int, float]] = {}
    scenarios = (("one", 1, ("--max-parallel", "1")), ("one4", 1, ()), ("four", PARALLEL, ()))
    for key, procs, args in scenarios:
        log = tmp / f"e-{key}.log"
        repo = make_repo(tmp / f"e-{key}", env, {FACTORY: chain_yaml(stamped(sleep))})
        add_subjects(repo, env, names)
        walls[key] = run_workers(repo, {**env, "STAMP_LOG": str(log)}, procs, *args)
        check_finished(repo, env, n)
        conc[key] = concurrency(read_stamps(log))
    one, one4, four = walls["one"], walls["one4"], walls["four"]
    floor_name = "1 `git freq run` process with --max-parallel 1 (same steps)"
    ideal = steps * sleep

    def busy(key: str) -> str:
        top, mean = conc[key]
        flag = f" EXCEEDS max_parallel {PARALLEL}" if top > PARALLEL else ""
        return f"steps running at once: mean {mean:.2f}, max {top}{flag}"

    return [
        _row(
            "e",
            f"`sleep {sleep:g}` steps, 4 processes vs 1 process with 1 slot",
            n,
            four.wall,
            one.wall,
            floor_name,
            round(1 / 1.5, 3),
            note=f"speed-up {one.wall / four.wall:.2f}x (target >= 1.5x, ideal 4x); "
            f"{steps} steps, each `sleep {sleep:g}` between two timestamp lines; sleeps "
            f"alone: {ideal:.1f} s serial, {ideal / PARALLEL:.1f} s 4-wide; the 4 "
            f"processes each run `git freq run --until-idle` under the shared global "
            f"max_parallel 4, a cap across all processes (so the 4 together cannot exceed "
            f"4 slots, and against 1 process using the same 4 slots the best possible is "
            f"1.0x): the target asks that several processes add up to the slots one "
            f"process with one slot cannot; 4 processes: {busy('four')}, "
            f"{four.lost_races} lost races, worker CPU {four.cpu:.1f} s; 1 process, 1 "
            f"slot: {busy('one')}, worker CPU {one.cpu:.1f} s",
        ),
        _row(
            "e",
            "  1 process using all 4 slots (context)",
            n,
            one4.wall,
            one.wall,
            floor_name,
            note=f"speed-up {one.wall / one4.wall:.2f}x over 1 slot; the 4 processes take "
            f"{four.wall / one4.wall:.2f}x this time ({four.wall:.2f} s vs "
            f"{one4.wall:.2f} s); {busy('one4')}, worker CPU {one4.cpu:.1f} s",
        ),
    ]


# ---------------------------------------------------------------- (f) latencies


@dataclass(frozen=True, slots=True)
class Stamp:
    at: float
    subject: str
    step: str
    attempt: int
    what: str  # start | end
    worker: str


def read_stamps(path: Path) -> list[Stamp]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 6:
                out.append(
                    Stamp(float(parts[0]), parts[1], parts[2], int(parts[3]), parts[4], parts[5])
                )
    return out


class Worker:
    """A long-running `git freq run` (no --until-idle); SIGTERM makes it finish and exit."""

    def __init__(self, repo: Path, env: dict[str, str], *args: str) -> None:
        self.out = repo / ".git" / f"bench-worker-{'-'.join(args) or 'all'}.out"
        with self.out.open("wb") as f:
            self.proc = subprocess.Popen(
                [*w.freq_command(), "run", *args],
                cwd=repo,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
            )

    def cpu(self) -> float:
        """User+system CPU seconds of the process so far (from /proc; 0 if unreadable)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(log: Path, pred: Any, timeout: float = 15.0, what: str = "") -> Stamp:
    """The first stamp in `log` that satisfies `pred`, polling every 2 ms."""
    deadline = time.monotonic() + timeout
    while True:
        for s in read_stamps(log):
            if pred(s):
                return s
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.002)


def _add_one(app: ops.App, factory: str, name: str) -> float:
    """Add one subject in this process, through the code `git freq add` runs; the wall-clock
    time just after its ref was written (when it became eligible). In-process because a
    `git freq add` process spends some 10-20 ms exiting after its write."""
    ops.add_subjects(app, factory, [(name, {})])
    return time.time()


def _chain_samples(
    tmp: Path, env: dict[str, str], samples: int
) -> tuple[list[float], list[float], float]:
    """Subjects added one at a time to an idle worker: (eligible -> s1 start, step k end ->
    step k+1 start, idle worker CPU seconds per second)."""
    log = tmp / "f-chain.log"
    wenv = {**env, "STAMP_LOG": str(log)}
    repo = make_repo(tmp / "f-chain", env, {FACTORY: chain_yaml(stamped(0.02))})
    app = ops.App(repo)
    worker = Worker(repo, wenv)
    eligible: list[float] = []
    chained: list[float] = []
    try:
        time.sleep(1.0)  # start-up, then measure what an idle worker burns
        c0, t0 = worker.cpu(), time.monotonic()
        time.sleep(2.0)
        idle_cpu = (worker.cpu() - c0) / (time.monotonic() - t0)
        for i in range(samples):
            name = f"c-{i:03d}"
            added = _add_one(app, FACTORY, name)
            first = wait_for(
                log,
                lambda s, n=name: s.subject == n and s.step == "s1" and s.what == "start",
                what=f"{name} s1 start",
            )
            eligible.append(first.at - added)
            wait_for(
                log,
                lambda s, n=name: s.subject == n and s.step == f"s{STEPS}" and s.what == "end",
                what=f"{name} s{STEPS} end",
            )
        time.sleep(0.2)
    finally:
        worker.stop()
        app.close()
    stamps = read_stamps(log)
    at = {(s.subject, s.step, s.what): s.at for s in stamps}
    for i in range(samples):
        for k in range(1, STEPS):
            chained.append(
                at[(f"c-{i:03d}", f"s{k + 1}", "start")] - at[(f"c-{i:03d}", f"s{k}", "end")]
            )
    check_finished(repo, env, samples)
    return eligible, chained, idle_cpu


def handoff_yaml(fid: str, step: str, run: str, lock: bool) -> str:
    return _factory_yaml(fid, [(step, "a", "b", run)], 'locks: ["L"]' if lock else "")


def _handoff_samples(
    tmp: Path, env: dict[str, str], samples: int, *, lock: bool, hold: float = 0.3
) -> list[float]:
    """Worker A (factory ha) runs a step holding lock L (or the only global slot) for `hold`
    seconds; worker B (factory hb) is asked meanwhile to run a step needing the same; sample =
    A's step end -> B's step start."""
    kind = "lock" if lock else "slot"
    log = tmp / f"f-{kind}.log"
    wenv = {**env, "STAMP_LOG": str(log)}
    repo = make_repo(
        tmp / f"f-{kind}",
        env,
        {
            "ha": handoff_yaml("ha", "hold", stamped(hold), lock),
            "hb": handoff_yaml("hb", "take", stamped(0), lock),
        },
        settings=f"max_parallel: {PARALLEL if lock else 1}\n",
    )
    app = ops.App(repo)
    a = Worker(repo, wenv, "--factory", "ha")
    b = Worker(repo, wenv, "--factory", "hb")
    out = []
    try:
        time.sleep(1.0)
        for i in range(samples):
            h, t = f"h-{i:03d}", f"t-{i:03d}"
            _add_one(app, "ha", h)
            wait_for(log, lambda s, n=h: s.subject == n and s.what == "start", what=f"{h} start")
            _add_one(app, "hb", t)
            took = wait_for(
                log, lambda s, n=t: s.subject == n and s.what == "start", what=f"{t} start"
            )
            held = wait_for(log, lambda s, n=h: s.subject == n and s.what == "end", what=f"{h} end")
            if took.at < held.at or took.worker == held.worker:
                raise RuntimeError(
                    f"{kind} not respected: {t} started at {took.at:.3f} by "
                    f"{took.worker} before {h} ended at {held.at:.3f} "
                    f"by {held.worker}"
                )
            out.append(took.at - held.at)
            wait_for(log, lambda s, n=t: s.subject == n and s.what == "end", what=f"{t} end")
            time.sleep(0.05)  # let B record and release before the next round
    finally:
        a.stop()
        b.stop()
        app.close()
    return out


def _pct(xs: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation."""
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def figure_f(tmp: Path, env: dict[str, str], samples: int) -> list[dict[str, Any]]:
    """Three latencies (the third as a lock and as a cap slot), median and p95 each."""
    budget = "the issue's 100 ms latency budget (absolute)"
    eligible, chained, idle_cpu = _chain_samples(tmp, env, samples)
    sets = [
        (
            "eligible -> step start",
            eligible,
            "the subject's ref is written (ops.add_subjects, the code of `git freq add`, in the "
            "bench process) -> the step's first stamp; one idle `git freq run` worker, subjects "
            "added one at a time",
        ),
        (
            "success -> next step start",
            chained,
            "step k's last stamp (just before it exits) -> step k+1's first stamp, same subject, "
            "one worker, one subject in flight, `sleep 0.02` steps",
        ),
    ]
    handoffs = {
        "named lock": "worker A (--factory ha) runs a 0.3 s step holding lock L; worker B "
        "(--factory hb) is given a step needing L meanwhile; A's step end -> B's step start",
        "cap slot": "as for the lock, with global max_parallel: 1 instead of a lock: A's step "
        "holds the only slot; A's step end -> B's step start",
    }
    for name, note in handoffs.items():
        what = f"release -> start in another process ({name})"
        try:
            sets.append(
                (what, _handoff_samples(tmp, env, samples, lock=name == "named lock"), note)
            )
        except RuntimeError as exc:
            sets.append((what, [], str(exc)))
    rows = []
    for what, xs, note in sets:
        if not xs:
            rows.append(_row("f", what, 0, 0.0, 0.0, budget, 1.0, error=note))
            continue
        med, p95 = statistics.median(xs), _pct(xs, 0.95)
        rows.append(
            _row(
                "f",
                f"{what}, median",
                len(xs),
                med,
                0.1,
                budget,
                1.0,
                note=f"{note}; min {min(xs) * 1e3:.1f} ms, max {max(xs) * 1e3:.1f} ms",
            )
        )
        rows.append(_row("f", f"{what}, p95", len(xs), p95, 0.1, budget, 1.0))
    rows.append(
        _row(
            "f",
            "  idle `git freq run`: CPU time per second (context)",
            0,
            idle_cpu,
            0.0,
            "-",
            note="measured over 2 s before the first subject was added",
        )
    )
    return rows
