"""Real `git push` through the shipped shims: the update hook in a bare remote, the pre-push
hook in a clone, both running the installed `git-freq` from PATH. What the pusher sees is
git's own output: `remote: freq: REF: WHY` for the server's refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from freq import refs
from freq import transitions as t
from tests.conftest import FreqRepo, git, new_repo

pytestmark = [pytest.mark.e2e, pytest.mark.git]

BIN = Path(sys.executable).parent
CONFIG = {
    ".frequency/f.yaml": """
    factory_id: f
    state: {initial: new, terminal: [done]}
    steps:
      - {id: work, from_states: [new], to_state: built, run: "true"}
      - {id: ship, from_states: [built], to_state: done, run: "true", locks: [deploy]}
    """,
    ".frequency/g.yaml": """
    factory_id: g
    state: {initial: new, terminal: [done]}
    steps:
      - id: work
        from_states: [new]
        to_state: done
        run: "echo broken >&2; exit 3"
        retry: {max_attempts: 1}
    """,
}
NOT_FF = (
    "not a fast-forward: history under refs/frequency/ only grows (fetch and let Frequency "
    "replay its events; never force)"
)


def _env() -> dict[str, str]:
    """The pusher's environment, the venv's bin first: git runs the hooks with this PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def _freq(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "git-freq"), *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _push(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "origin", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _said(res: subprocess.CompletedProcess[str], prefix: str) -> list[str]:
    """The lines of a push's stderr that start with `prefix` (git pads `remote:` lines)."""
    return [ln.rstrip() for ln in res.stderr.splitlines() if ln.startswith(prefix)]


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, FreqRepo]:
    """A bare remote with the update hook installed by `git freq hooks install --server`,
    and a clone whose main branch (the remote's HEAD) holds the factories."""
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    installed = _freq(bare, "hooks", "install", "--server")
    assert installed.returncode == 0, installed.stderr
    clone = new_repo(tmp_path / "clone")
    for rel, text in CONFIG.items():
        clone.write(rel, text)
    clone.git("add", ".frequency")
    clone.git("commit", "-q", "-m", "factories")
    clone.git("remote", "add", "origin", str(bare))
    assert _push(clone.path, "main").returncode == 0
    return bare, clone


def test_a_history_git_freq_made_is_accepted_and_kept_honest(
    shared: tuple[Path, FreqRepo],
) -> None:
    """What `git freq` writes is pushed as is, first whole and then as new commits on top;
    a cap slot may be deleted; a forced rewrite of the dead-letter queue, a deleted subject
    and forged commits are refused, each in the one line the pusher sees."""
    bare, clone = shared
    assert _freq(clone.path, "add", "f", "a", "b").returncode == 0
    assert _freq(clone.path, "add", "g", "x").returncode == 0
    assert _freq(clone.path, "run", "--once").returncode == 0
    first = _push(clone.path, "refs/frequency/*:refs/frequency/*")
    assert first.returncode == 0, first.stderr
    assert "remote: freq:" not in first.stderr
    assert _freq(clone.path, "run", "--until-idle").returncode == 0
    # forced: cap slots move to other claim commits by design; the hook judges the rest
    more = _push(clone.path, "+refs/frequency/*:refs/frequency/*")
    assert more.returncode == 0, more.stderr
    pushed = git(bare, "for-each-ref", "--format=%(refname)", "refs/frequency/")
    assert "refs/frequency/dlq/g" in pushed and "refs/frequency/locks/deploy" in pushed

    slot = next(r for r in pushed.splitlines() if r.startswith(refs.CAPS))
    assert _push(clone.path, f":{slot}").returncode == 0

    dlq = "refs/frequency/dlq/g"
    tree = clone.git("rev-parse", f"{dlq}^{{tree}}").strip()
    root = clone.git("commit-tree", tree, "-m", "the queue, rewritten").strip()
    rewrite = _push(clone.path, "--force", f"{root}:{dlq}")
    assert rewrite.returncode != 0
    assert _said(rewrite, "remote: freq:") == [f"remote: freq: {dlq}: {NOT_FF}"]

    gone = _push(clone.path, ":refs/frequency/subjects/f/a")
    assert gone.returncode != 0
    assert _said(gone, "remote: freq:") == [
        "remote: freq: refs/frequency/subjects/f/a: deleting a subject's history is refused: "
        "it is append-only"
    ]

    ref = "refs/frequency/subjects/f/b"
    tip = clone.git("rev-parse", ref).strip()
    done = refs.subject_from_json(clone.git("show", f"{tip}:subject.json").encode(), where=tip)
    moved = t.moved(done, state="new", at=done.updated_at, by="mallory", reason="again")

    def forged(raw: bytes, message: str) -> str:
        blob_file = clone.path / ".git" / "forged"
        blob_file.write_bytes(raw)
        blob = clone.git("hash-object", "-w", str(blob_file)).strip()
        tree = clone.git("mktree", input_text=f"100644 blob {blob}\tsubject.json\n").strip()
        return clone.git("commit-tree", tree, "-p", tip, "-F", "-", input_text=message).strip()

    message = refs.format_message(moved.event)
    cases = {
        forged(b"{oops", message): (
            "its subject.json is not JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1))"
        ),
        forged(refs.subject_to_json(replace(moved.subject, epoch=0)), message): (
            f"its epoch falls from {done.epoch} to 0 (epochs fence attempts, never fall)"
        ),
        forged(
            refs.subject_to_json(moved.subject),
            refs.format_message(replace(moved.event, from_state="built")),
        ): "Freq-From is 'built', but its parent left it in 'done'",
    }
    for oid, why in cases.items():
        res = _push(clone.path, f"{oid}:{ref}")
        assert res.returncode != 0, oid
        assert _said(res, "remote: freq:") == [f"remote: freq: {ref}: commit {oid[:12]}: {why}"]
    assert git(bare, "rev-parse", ref).strip() == tip


def test_an_impossible_state_change_is_refused_by_the_default_branch_config(
    shared: tuple[Path, FreqRepo],
) -> None:
    """A claim and a success that moves work's subject to done (work gives built): refused
    by main's .frequency/, with both commits pushed at once and judged oldest first."""
    _bare, clone = shared
    assert _freq(clone.path, "add", "f", "c").returncode == 0
    assert _push(clone.path, "refs/frequency/*:refs/frequency/*").returncode == 0
    ref = "refs/frequency/subjects/f/c"
    tip = clone.git("rev-parse", ref).strip()
    new = refs.subject_from_json(clone.git("show", f"{tip}:subject.json").encode(), where=tip)
    at = new.updated_at
    claim = t.claimed(new, step="work", attempt=1, worker="w", at=at, ttl=timedelta(minutes=1))
    done = t.succeeded(
        claim.subject, to_state="done", at=at, worker="w", duration_ms=1, exit_code=0
    )
    oids = []
    parent = tip
    for change in (claim, done):
        blob_file = clone.path / ".git" / "forged"
        blob_file.write_bytes(refs.subject_to_json(change.subject))
        blob = clone.git("hash-object", "-w", str(blob_file)).strip()
        tree = clone.git("mktree", input_text=f"100644 blob {blob}\tsubject.json\n").strip()
        parent = clone.git(
            "commit-tree",
            tree,
            "-p",
            parent,
            "-F",
            "-",
            input_text=refs.format_message(change.event),
        ).strip()
        oids.append(parent)
    res = _push(clone.path, f"{oids[-1]}:{ref}")
    assert _said(res, "remote: freq:") == [
        f"remote: freq: {ref}: commit {oids[-1][:12]}: work cannot move it from 'new' to "
        "'done' (a success of it enters built)"
    ]
    assert _push(clone.path, f"{oids[0]}:{ref}").returncode == 0  # the claim alone is legal


def test_pre_push_refuses_invalid_config_and_rewrites(shared: tuple[Path, FreqRepo]) -> None:
    """The clone's pre-push hook (`git freq hooks install`): a branch whose .frequency/ does
    not validate is refused with validate's lines, and so is a forced subject ref."""
    _bare, clone = shared
    assert _freq(clone.path, "hooks", "install").returncode == 0
    clone.write(".frequency/f.yaml", "factory_id: f\nstate: {initial: new}\nsteps: []\n")
    *expected, summary = _freq(clone.path, "validate").stderr.splitlines()
    assert summary == f"git freq: {len(expected)} problems; nothing was run"
    clone.git("checkout", "-q", "-b", "broken")
    clone.git("commit", "-q", "-am", "broken")
    res = _push(clone.path, "broken")
    assert res.returncode != 0
    assert _said(res, "freq:") == [f"freq: refs/heads/broken: {line}" for line in expected]
    assert "broken" not in git(clone.path, "ls-remote", "origin")
    clone.git("checkout", "-q", "main")

    assert _freq(clone.path, "add", "f", "d").returncode == 0
    assert _freq(clone.path, "run", "--once").returncode == 0
    assert _push(clone.path, "refs/frequency/*:refs/frequency/*").returncode == 0
    ref = "refs/frequency/subjects/f/d"
    tip = clone.git("rev-parse", ref).strip()
    clone.git("update-ref", ref, f"{tip}~1")
    forced = _push(clone.path, "--force", ref)
    assert forced.returncode != 0
    assert _said(forced, "freq:") == [f"freq: {ref}: {NOT_FF} (the remote has {tip[:12]})"]
    assert (
        json.loads(_freq(clone.path, "hooks", "install", "--json").stdout)["hooks"][0]["action"]
        == "unchanged"
    )


def test_an_archive_pass_the_update_hook_refuses_stops_archiving_for_the_run(
    shared: tuple[Path, FreqRepo],
) -> None:
    """The update hook refuses deleting subject refs, which archiving does: `run --remote`
    says so once and goes on with the subjects live, nothing half-written on the remote."""
    bare, clone = shared
    clone.write(".frequency/frequency.yaml", "archive_after: 0\n")
    assert _freq(clone.path, "add", "f", "a").returncode == 0
    done = _freq(clone.path, "run", "--remote", "origin", "--until-idle")
    assert done.returncode == 0, done.stderr
    assert "archiving stopped for this run: remote origin refused" in done.stderr
    assert done.stderr.count("archiving stopped") == 1
    listed = git(bare, "for-each-ref", "--format=%(refname)", "refs/frequency/").split()
    assert "refs/frequency/subjects/f/a" in listed
    assert not any(r.startswith("refs/frequency/archive/") for r in listed)  # all or nothing
