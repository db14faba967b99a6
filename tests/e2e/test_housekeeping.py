"""Housekeeping while workers write: `git pack-refs --all`, plain `git gc` and `git freq
cleanup` (which packs refs/frequency/* once loose refs pile up) run over and over while
three writer processes move their own subjects and race for one shared ref. No update a
writer was told succeeded may be lost: every chain is as long as its successes say."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from freq.ops.cleanup import LOOSE_PILE
from tests.conftest import FreqRepo, git

pytestmark = [pytest.mark.e2e, pytest.mark.git]

WRITERS = 3
OWN = LOOSE_PILE // 2  # subjects per writer: together they pile up loose refs to pack
ROUNDS = OWN  # each subject moved once: 3 x 128 loose refs by the end

# One writer: ROUNDS times, move one of its own subjects (CAS on the tip it last wrote:
# a conflict there would mean a lost update) and win one CAS on the shared ref (re-read on
# a lost race). A git lock held by the housekeeping is waited out, never counted.
WRITER = """
import json, sys
from freq import refs, transitions
from freq.clock import SystemClock
from freq.errors import RefConflict, WriteBlocked
from freq.store import Store

root, me, own, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = Store.discover(root, clock=SystemClock())
now = store.clock.now
names = [f"{me}-{i}" for i in range(own)]
subjects = {}
for n in names:
    subj, tip = store.read_subject("f", n)
    subjects[n] = [subj, tip, 0]
shared = "refs/frequency/locks/shared"
wins = 0
for r in range(rounds):
    n = names[r % own]
    subj, tip, done = subjects[n]
    change = transitions.moved(subj, state="new", at=now(), by=me, reason=str(r))
    while True:
        try:
            ref = refs.subject_ref("f", n)
            tip = store.advance(ref, change.subject, change.event, expected=tip)
            break
        except WriteBlocked:
            continue
    subjects[n] = [change.subject, tip, done + 1]
    while True:
        at = store.read_ref(shared)
        try:
            store.write_doc(shared, {"lock.json": b"{}"}, f"{me} {r}\\n", at=now(), expected=at)
            wins += 1
            break
        except (RefConflict, WriteBlocked):
            continue
store.close()
print(json.dumps({"moves": {n: v[2] for n, v in subjects.items()}, "wins": wins}))
"""

# Until the stop file exists: pack every ref, gc, cleanup; `started` once it is under way
HOUSEKEEPING = """
set -u
while :; do
    git pack-refs --all || exit 1
    [ -e "$1.started" ] || touch "$1.started"
    git gc --quiet || exit 1
    "$2" -m freq cleanup >/dev/null; [ $? -le 1 ] || exit 1
    [ -e "$1" ] && break
done
"""


def _chain(r: FreqRepo, ref: str) -> int:
    return int(git(r.path, "rev-list", "--count", "--first-parent", ref).strip())


def test_pack_refs_gc_and_cleanup_during_writes_lose_no_update(freq_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = freq_repo(
        {
            ".frequency/f.yaml": (
                "factory_id: f\nstate: {initial: new, terminal: [done]}\n"
                "steps: [{id: w, from_states: [new], to_state: done, run: 'true'}]\n"
            )
        }
    )
    names = [f"w{k}-{i}" for k in range(WRITERS) for i in range(OWN)]
    r.run("add", "f", *names).assert_success()
    stop = tmp_path / "stop"
    keeper = subprocess.Popen(
        ["sh", "-c", HOUSEKEEPING, "housekeeping", str(stop), sys.executable],
        cwd=r.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = tmp_path / "stop.started"
    for _ in range(600):  # the writers start once the housekeeping is under way
        if started.exists() or keeper.poll() is not None:
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            keeper.wait(timeout=0.05)
    assert started.exists(), keeper.communicate()[1]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(r.path), f"w{k}", str(OWN), str(ROUNDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(WRITERS)
    ]
    results = []
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        results.append(json.loads(out))
    stop.touch()
    _out, err = keeper.communicate(timeout=300)
    assert keeper.returncode == 0, err
    # every move a writer was told succeeded is on its subject's chain, and every win on
    # the shared ref's: nothing the housekeeping did turned an update into a lost one
    for res in results:
        for name, moves in res["moves"].items():
            assert _chain(r, f"refs/frequency/subjects/f/{name}") == 1 + moves
    assert _chain(r, "refs/frequency/locks/shared") == sum(res["wins"] for res in results)
    assert sum(res["wins"] for res in results) == WRITERS * ROUNDS
    subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=r.path, check=True)
    r.run("cleanup").assert_success()
