"""git's upkeep while a run goes on (freq.upkeep): `git gc --auto` when the loop starts and
every SWEEP_EVERY seconds after, repacking once packs pile up past git's own limit, with
an object a worker wrote and has not referenced yet kept. Real repositories, real git;
the cadence on a fake clock. gc.autoDetach is off in these repositories so that git's
work is done when the call returns."""

from __future__ import annotations

import random
from pathlib import Path

from freq import upkeep
from freq.clock import FakeClock
from freq.config import load_config
from freq.loop import SWEEP_EVERY, Worker
from freq.report import Collecting, ProgressKind, Reporter
from freq.store import Store

from .conftest import FreqRepo

FACTORY = (
    "factory_id: f\nstate: {initial: new, terminal: [done]}\n"
    "steps: [{id: w, from_states: [new], to_state: done, run: 'true'}]\n"
)
LIMIT = 3  # gc.autoPackLimit in these repositories: more packs than this and gc repacks


def _packs(r: FreqRepo) -> int:
    return len(list((r.path / ".git" / "objects" / "pack").glob("*.pack")))


def _repo(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    r = freq_repo({".frequency/f.yaml": FACTORY})
    r.git("config", "gc.autoDetach", "false")
    r.git("config", "gc.autoPackLimit", str(LIMIT))
    return r


def _worker(r: FreqRepo, clock: FakeClock, reporter: Reporter | None = None) -> Worker:
    return Worker(
        Store.discover(r.path, clock=clock),
        load_config(r.path),
        clock=clock,
        worker="h:1:1",
        rng=random.Random(1),
        reporter=reporter,
    )


def _pile(r: FreqRepo, names: list[str]) -> None:
    """A pack of each subject's objects, as a batch or a fetch writes one."""
    for name in names:
        r.run("add", "f", name).assert_success()
        r.git("repack", "-q", "-d")


def test_gc_auto_repacks_past_git_s_limit_and_keeps_an_unreferenced_new_object(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = _repo(freq_repo)
    _pile(r, ["a", "b"])
    assert upkeep.gc_auto(r.path) is None
    assert _packs(r) == 2  # within the limit: nothing done
    _pile(r, ["c", "d", "e"])
    blob = r.git("hash-object", "-w", "--stdin", input_text="in flight\n").strip()
    r.git("pack-objects", "-q", ".git/objects/pack/pack", input_text=blob + "\n")
    r.git("prune-packed")
    before = r.git("for-each-ref", "refs/frequency")
    assert _packs(r) == 6
    assert upkeep.gc_auto(r.path) is None
    assert _packs(r) == 1
    r.git("cat-file", "-e", blob)  # loosened, not dropped: its writer may still name it
    assert r.git("for-each-ref", "refs/frequency") == before


def test_gc_auto_off_in_the_repository_is_left_off(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = _repo(freq_repo)
    r.git("config", "gc.auto", "0")
    _pile(r, ["a", "b", "c", "d", "e"])
    assert upkeep.gc_auto(r.path) is None
    assert _packs(r) == 5


def test_a_failed_gc_is_one_line(tmp_path: Path) -> None:
    line = upkeep.gc_auto(tmp_path)  # no repository here
    assert line is not None and line.startswith("git gc --auto failed: fatal: not a git")
    assert "\n" not in line


def test_the_loop_runs_it_when_it_starts_then_every_sweep_interval(freq_repo) -> None:  # type: ignore[no-untyped-def]
    r = _repo(freq_repo)
    clock = FakeClock()
    w = _worker(r, clock)
    try:
        _pile(r, ["a", "b", "c", "d"])
        w.run(until_idle=True)
        assert _packs(r) == 1  # at the start of the loop
        _pile(r, ["e", "f", "g", "h"])
        clock.advance(SWEEP_EVERY - 1)
        w.run(until_idle=True)
        assert _packs(r) > LIMIT  # not due yet
        clock.advance(1)
        w.run(until_idle=True)
        assert _packs(r) == 1
        r.run("status").assert_success()  # every subject still reads
    finally:
        w.store.close()


def test_a_failed_upkeep_beside_the_loop_is_one_problem_line(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """git gc --auto runs beside the loop's steps; a failure (here a setting git cannot
    read) is one problem line when the run ends, and the steps ran."""
    r = _repo(freq_repo)
    r.run("add", "f", "a").assert_success()
    r.git("config", "gc.auto", "notanumber")
    seen = Collecting()
    w = _worker(r, FakeClock(), seen)
    try:
        summary = w.run(until_idle=True)
    finally:
        w.store.close()
    assert summary.succeeded == 1
    problems = [p.detail for p in seen.events if p.event is ProgressKind.PROBLEM]
    assert problems == [
        "git gc --auto failed: fatal: bad numeric config value 'notanumber' for 'gc.auto': "
        "invalid unit"
    ]
