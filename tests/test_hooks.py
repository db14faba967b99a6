"""The hooks' checks (freq/hooks.py, freq/ops/hooks.py) on real repositories: histories that
`git freq` wrote pass, rewrites, deletions and forged commits are refused in one line, and
`hooks install` puts the shims in place. Real pushes through the shims: tests/e2e."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from freq import ops, refs
from freq import transitions as t
from freq.errors import UsageError
from freq.hooks import Push, Refusal, parse_pre_push
from freq.runtime import Event, Subject

from .conftest import FreqRepo, git, new_repo

pytestmark = pytest.mark.git

ZERO = "0" * 40
TTL = timedelta(seconds=60)
ROOT = Path(__file__).resolve().parent.parent
FACTORIES = {
    ".frequency/f.yaml": """
    factory_id: f
    state: {initial: new, terminal: [done]}
    steps:
      - {id: work, from_states: [new], to_state: built, run: "true", outcomes: {3: new}}
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


@pytest.fixture
def ran(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    """A repository whose main branch holds the configuration, where `git freq` ran: f/a and
    f/b done (with a lock and cap slots), g/x in the dead-letter queue."""
    r: FreqRepo = freq_repo(FACTORIES)
    r.write(".frequency/frequency.yaml", "max_parallel: 2\n")
    r.git("add", ".frequency")
    r.git("commit", "-q", "-m", "factories")
    r.run("add", "f", "a", "b").assert_success()
    r.run("add", "g", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    return r


def _tips(r: FreqRepo, prefix: str = "refs/frequency/") -> dict[str, str]:
    out = r.git("for-each-ref", "--format=%(refname) %(objectname)", prefix)
    return dict(line.split() for line in out.splitlines())


def _update(r: FreqRepo, ref: str, old: str | None, new: str | None) -> list[str]:
    """The update hook's refusals, run as git runs it in the repository receiving a push
    (here the repository itself: every object is there)."""
    res = ops.hook_update(r.path / ".git", ref, old or ZERO, new or ZERO)
    return [f"{x.ref}: {x.why}" for x in res.refused]


def _commit(r: FreqRepo, files: dict[str, bytes], message: str, parent: str | None) -> str:
    """A commit of `files` made with git's plumbing (nothing of Frequency's writing)."""
    lines = []
    for name, data in files.items():
        path = r.path / ".git" / "forged-blob"
        path.write_bytes(data)
        blob = r.git("hash-object", "-w", str(path)).strip()
        lines.append(f"100644 blob {blob}\t{name}")
    tree = r.git("mktree", input_text="".join(f"{ln}\n" for ln in lines)).strip()
    args = ["commit-tree", tree, "-F", "-", *(["-p", parent] if parent else [])]
    return r.git(*args, input_text=message).strip()


def _subject(r: FreqRepo, oid: str) -> Subject:
    raw = r.git("show", f"{oid}:subject.json").encode()
    return refs.subject_from_json(raw, where=oid)


def _forge(r: FreqRepo, parent: str, subject: Subject, event: Event) -> str:
    files = {refs.SUBJECT_FILE: refs.subject_to_json(subject)}
    return _commit(r, files, refs.format_message(event), parent)


# ---------------------------------------------------------------- parsing


def test_pre_push_lines_are_parsed_as_git_writes_them() -> None:
    """`<local ref> <local sha> <remote ref> <remote sha>`; all zeros: deleted or new."""
    a = "a" * 40
    got = parse_pre_push(
        f"refs/heads/main {a} refs/heads/main {ZERO}\n\n(delete) {ZERO} refs/heads/x {a}\n"
    )
    assert got == [
        Push(local_ref="refs/heads/main", local=a, remote_ref="refs/heads/main", remote=None),
        Push(local_ref="(delete)", local=None, remote_ref="refs/heads/x", remote=a),
    ]
    with pytest.raises(UsageError) as bad:
        parse_pre_push("refs/heads/main abc\n")
    assert bad.value.message == (
        "pre-push stdin line 1: 'refs/heads/main abc' is not `<local ref> <local sha> "
        "<remote ref> <remote sha>`"
    )
    with pytest.raises(UsageError) as short:
        parse_pre_push(f"refs/heads/main abc refs/heads/main {ZERO}\n")
    assert short.value.message == "pre-push stdin line 1: 'abc' is not a full object id"


# ---------------------------------------------------------------- update


def test_update_accepts_what_git_freq_wrote(ran: FreqRepo) -> None:
    """Every ref of a real run, created whole or moved on from an older commit, passes."""
    tips = _tips(ran)
    assert {r.rsplit("/", 1)[0] for r in tips} >= {
        "refs/frequency/subjects/f",
        "refs/frequency/subjects/g",
        "refs/frequency/dlq",
        "refs/frequency/locks",
        "refs/frequency/caps/global",
    }
    for ref, tip in tips.items():
        assert _update(ran, ref, None, tip) == [], ref
    a = "refs/frequency/subjects/f/a"
    first = ran.git("rev-list", "--max-parents=0", a).strip()
    assert _update(ran, a, first, tips[a]) == []


def test_update_refuses_deleting_history_but_not_slots_or_locks(ran: FreqRepo) -> None:
    """A subject's history and a dead-letter queue are never deleted; cap slots and locks
    may be."""
    tips = _tips(ran)
    assert _update(
        ran, "refs/frequency/subjects/f/a", tips["refs/frequency/subjects/f/a"], None
    ) == ["refs/frequency/subjects/f/a: deleting a subject's history is refused: it is append-only"]
    assert _update(ran, "refs/frequency/dlq/g", tips["refs/frequency/dlq/g"], None) == [
        "refs/frequency/dlq/g: deleting a dead-letter queue is refused: it is append-only"
    ]
    slot = next(r for r in tips if r.startswith(refs.CAPS))
    assert _update(ran, slot, tips[slot], None) == []
    assert (
        _update(ran, "refs/frequency/locks/deploy", tips["refs/frequency/locks/deploy"], None) == []
    )


def test_update_refuses_rewrites_except_of_cap_slots(ran: FreqRepo) -> None:
    """A non-fast-forward update of a queue, a subject or a lock is refused; a cap slot
    points at another claim commit by design."""
    tips = _tips(ran)
    rewritten = _commit(ran, {"x": b"y"}, "history, rewritten\n", None)
    why = (
        "not a fast-forward: history under refs/frequency/ only grows (fetch and let "
        "Frequency replay its events; never force)"
    )
    for ref in (
        "refs/frequency/dlq/g",
        "refs/frequency/subjects/f/a",
        "refs/frequency/locks/deploy",
    ):
        assert _update(ran, ref, tips[ref], rewritten) == [f"{ref}: {why}"], ref
    slots = sorted(r for r in tips if r.startswith(refs.CAPS))
    assert _update(ran, slots[0], tips[slots[0]], tips["refs/frequency/subjects/g/x"]) == []


def test_update_refuses_forged_commits(ran: FreqRepo) -> None:
    """On top of a real tip: a subject.json that is not JSON, a falling epoch, a state no
    step produces (by HEAD's configuration), a merge; each named in one line."""
    ref = "refs/frequency/subjects/f/a"
    tip = _tips(ran)[ref]
    done = _subject(ran, tip)
    at = done.updated_at
    change = t.moved(done, state="new", at=at, by="mallory", reason="again")
    event = change.event
    bad_json = _commit(ran, {"subject.json": b"{oops"}, refs.format_message(event), tip)
    short = bad_json[:12]
    assert _update(ran, ref, tip, bad_json) == [
        f"{ref}: commit {short}: its subject.json is not JSON (Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1))"
    ]
    falling = _forge(ran, tip, replace(change.subject, epoch=0), replace(event, epoch=0))
    assert _update(ran, ref, tip, falling) == [
        f"{ref}: commit {falling[:12]}: Freq-Epoch 0 is below its parent's epoch "
        f"{done.epoch}: the result of an attempt that was fenced off"
    ]
    claimed = t.claimed(change.subject, step="work", attempt=1, worker="w", at=at, ttl=TTL)
    moved_tip = _forge(ran, tip, change.subject, event)
    claim_tip = _forge(ran, moved_tip, claimed.subject, claimed.event)
    wrong = t.succeeded(
        claimed.subject, to_state="done", at=at, worker="w", duration_ms=1, exit_code=0
    )
    bogus = _forge(ran, claim_tip, wrong.subject, wrong.event)
    assert _update(ran, ref, tip, bogus) == [
        f"{ref}: commit {bogus[:12]}: work cannot move it from 'new' to 'done' (a success of "
        "it enters built, new)"
    ]
    assert _update(ran, ref, tip, claim_tip) == []  # the two good commits below it pass
    other = _tips(ran)["refs/frequency/subjects/f/b"]
    merge = ran.git("commit-tree", f"{tip}^{{tree}}", "-p", tip, "-p", other, "-m", "m").strip()
    assert _update(ran, ref, tip, merge) == [
        f"{ref}: commit {merge[:12]}: a merge; its history is one line of commits"
    ]


def test_without_head_configuration_only_structure_is_judged(ran: FreqRepo) -> None:
    """A HEAD branch without .frequency/ (or with an invalid one) leaves the states to the
    writers: a success into any state passes, a falling epoch still does not."""
    ref = "refs/frequency/subjects/f/a"
    tip = _tips(ran)[ref]
    done = _subject(ran, tip)
    moved = t.moved(done, state="new", at=done.updated_at, by="m", reason="x")
    at = done.updated_at
    claimed = t.claimed(moved.subject, step="work", attempt=1, worker="w", at=at, ttl=TTL)
    wrong = t.succeeded(
        claimed.subject, to_state="done", at=at, worker="w", duration_ms=1, exit_code=0
    )
    a = _forge(ran, tip, moved.subject, moved.event)
    b = _forge(ran, a, claimed.subject, claimed.event)
    c = _forge(ran, b, wrong.subject, wrong.event)
    assert len(_update(ran, ref, tip, c)) == 1
    ran.write(".frequency/f.yaml", "factory_id: f\nstate: {initial: new}\nsteps: oops\n")
    ran.git("commit", "-q", "-am", "broken")
    assert _update(ran, ref, tip, c) == []
    ran.git("rm", "-q", "-r", ".frequency")
    ran.git("commit", "-q", "-m", "gone")
    assert _update(ran, ref, tip, c) == []
    assert (
        len(_update(ran, ref, tip, _forge(ran, tip, replace(moved.subject, epoch=0), moved.event)))
        == 1
    )


def test_update_refuses_malformed_dead_letter_entries(ran: FreqRepo) -> None:
    """A dead-letter queue's new commit must be a well-formed entry of that queue."""
    ref = "refs/frequency/dlq/g"
    tip = _tips(ran)[ref]
    entry = json.loads(ran.git("show", f"{tip}:entry.json"))
    message = ran.git("log", "-1", "--format=%B", tip)
    good = _commit(ran, {"entry.json": json.dumps(entry).encode(), "output.log": b""}, message, tip)
    assert _update(ran, ref, tip, good) == []
    other = _commit(
        ran, {"entry.json": json.dumps({**entry, "factory": "f"}).encode()}, message, tip
    )
    assert _update(ran, ref, tip, other) == [
        f"{ref}: commit {other[:12]}: its entry belongs to factory 'f', not 'g'"
    ]
    broken = _commit(ran, {"entry.json": b"[]"}, message, tip)
    assert _update(ran, ref, tip, broken) == [
        f"{ref}: commit {broken[:12]}: its entry.json is malformed (list indices must be "
        "integers or slices, not str)"
    ]
    lying = _commit(
        ran,
        {"entry.json": json.dumps(entry).encode()},
        message.replace("dlq-entry", "dlq-requeue"),
        tip,
    )
    assert _update(ran, ref, tip, lying) == [
        f"{ref}: commit {lying[:12]}: its Freq-Event trailer is 'dlq-requeue'; its entry.json "
        "says 'dlq-entry'"
    ]


def test_update_leaves_other_refs_alone(ran: FreqRepo) -> None:
    """Branches and tags are not Frequency's to judge (and are answered without opening
    the repository)."""
    head = ran.git("rev-parse", "HEAD").strip()
    assert _update(ran, "refs/heads/main", head, None) == []
    assert ops.hook_update("/nonexistent", "refs/heads/main", head, ZERO).refused == ()


def test_hook_update_cli_prints_one_line_per_refusal(ran: FreqRepo) -> None:
    """`git freq hook update` in the repository: `freq: REF: WHY`, exit 1; silent 0 when it
    accepts; a malformed object id is a usage error."""
    tip = _tips(ran)["refs/frequency/dlq/g"]
    env = {"GIT_DIR": str(ran.path / ".git")}
    res = ran.run("hook", "update", "refs/frequency/dlq/g", tip, ZERO, env=env).assert_failure()
    assert (res.out, res.err) == (
        "",
        "freq: refs/frequency/dlq/g: deleting a dead-letter queue is refused: it is append-only\n",
    )
    ok = ran.run("hook", "update", "refs/frequency/dlq/g", ZERO, tip, env=env).assert_success()
    assert (ok.out, ok.err) == ("", "")
    bad = ran.run("hook", "update", "refs/frequency/dlq/g", "nope", tip, env=env)
    assert (bad.code, bad.err) == (2, "git freq: update: 'nope' is not a full object id\n")
    js = ran.run("hook", "update", "refs/frequency/dlq/g", tip, ZERO, "--json", env=env)
    assert js.code == 1
    assert json.loads(js.out) == {
        "refused": [
            {
                "ref": "refs/frequency/dlq/g",
                "why": "deleting a dead-letter queue is refused: it is append-only",
            }
        ]
    }


# ---------------------------------------------------------------- pre-push


def _pre_push(r: FreqRepo, *lines: tuple[str, str | None, str, str | None]) -> list[Refusal]:
    text = "".join(f"{lr} {ls or ZERO} {rr} {rs or ZERO}\n" for lr, ls, rr, rs in lines)
    app = ops.App(r.path)
    try:
        return list(ops.hook_pre_push(app, remote="origin", url="u", stdin=text).refused)
    finally:
        app.close()


def test_pre_push_refuses_a_branch_with_invalid_configuration(ran: FreqRepo) -> None:
    """The pushed commit's .frequency/ is judged as `validate` judges a checkout: the same
    file:line lines, whatever the working tree holds."""
    ran.write(
        ".frequency/f.yaml",
        """
        factory_id: f
        state: {initial: new, terminal: [done]}
        steps:
          - {id: work, from_states: [new], to_state: done, timeout: soon}
          - {id: ship, from_states: [done], to_state: x, retry: {max_attempts: 0}}
        """,
    )
    *lines, summary = ran.run("validate").assert_failure().err.splitlines()
    assert (len(lines), summary) == (2, "git freq: 2 problems; nothing was run")
    ran.git("checkout", "-q", "-b", "broken")
    ran.git("commit", "-q", "-am", "broken factory")
    bad = ran.git("rev-parse", "HEAD").strip()
    ran.git("checkout", "-q", "main")  # the working tree holds the valid configuration again
    refused = _pre_push(ran, ("refs/heads/broken", bad, "refs/heads/broken", None))
    assert [r.ref for r in refused] == ["refs/heads/broken"] * len(lines)
    assert [r.why for r in refused] == lines
    main = ran.git("rev-parse", "main").strip()
    assert _pre_push(ran, ("refs/heads/main", main, "refs/heads/main", None)) == []
    assert _pre_push(ran, ("(delete)", None, "refs/heads/broken", bad)) == []


def test_pre_push_refuses_rewrites_and_deletions_of_history(ran: FreqRepo) -> None:
    """A forced subject ref, a remote tip this clone never saw (so not below the pushed
    one), a deleted queue; cap slots and lock deletions go through."""
    tips = _tips(ran)
    a = "refs/frequency/subjects/f/a"
    older = ran.git("rev-parse", f"{tips[a]}~1").strip()
    why = (
        "not a fast-forward: history under refs/frequency/ only grows (fetch and let "
        "Frequency replay its events; never force)"
    )
    assert _pre_push(ran, (a, older, a, tips[a])) == [
        Refusal(ref=a, why=f"{why} (the remote has {tips[a][:12]})")
    ]
    assert _pre_push(ran, (a, tips[a], a, older)) == []
    unseen = "e" * 40
    assert _pre_push(ran, (a, tips[a], a, unseen)) == [
        Refusal(ref=a, why=f"{why} (the remote has {unseen[:12]})")
    ]
    dlq = "refs/frequency/dlq/g"
    assert _pre_push(ran, ("(delete)", None, dlq, tips[dlq])) == [
        Refusal(ref=dlq, why="deleting a dead-letter queue is refused: it is append-only")
    ]
    slot = next(r for r in tips if r.startswith(refs.CAPS))
    lock = "refs/frequency/locks/deploy"
    assert (
        _pre_push(ran, ("(delete)", None, slot, tips[slot]), ("(delete)", None, lock, tips[lock]))
        == []
    )


def test_hook_pre_push_cli_reads_stdin(ran: FreqRepo) -> None:
    """`git freq hook pre-push REMOTE URL` reads git's lines from stdin."""
    dlq = "refs/frequency/dlq/g"
    tip = _tips(ran)[dlq]
    res = ran.run("hook", "pre-push", "origin", "u", stdin=f"(delete) {ZERO} {dlq} {tip}\n")
    assert (res.code, res.out, res.err) == (
        1,
        "",
        f"freq: {dlq}: deleting a dead-letter queue is refused: it is append-only\n",
    )
    assert ran.run("hook", "pre-push", "origin", "u", stdin="").assert_success().err == ""


# ---------------------------------------------------------------- install


def test_install_puts_the_shim_in_place_once(repo: FreqRepo) -> None:
    """hooks/pre-push copied as it ships, executable; again, it is left as it is."""
    res = repo.run("hooks", "install").assert_success()
    hook = repo.path / ".git" / "hooks" / "pre-push"
    assert res.out == f"installed: {hook}\n"
    assert hook.read_text() == (ROOT / "hooks" / "pre-push").read_text()
    assert hook.stat().st_mode & stat.S_IXUSR
    assert repo.run("hooks", "install").assert_success().out == f"unchanged: {hook}\n"


def test_install_respects_core_hooks_path(repo: FreqRepo) -> None:
    """core.hooksPath (relative to the working tree, as git reads it) is where it goes."""
    repo.git("config", "core.hooksPath", "githooks")
    (repo.path / "sub").mkdir()
    outcome = repo.run("-C", "sub", "hooks", "install", "--json").assert_success()
    hook = repo.path / "githooks" / "pre-push"
    assert json.loads(outcome.out) == {
        "hooks_dir": str(hook.parent),
        "hooks": [{"name": "pre-push", "path": str(hook), "action": "installed", "kept": None}],
        "dry_run": False,
    }
    assert hook.is_file()


def test_install_refuses_a_foreign_hook_unless_forced(repo: FreqRepo) -> None:
    """Someone else's pre-push is named and kept; --force replaces it and keeps it as .old;
    --dry-run writes nothing."""
    hook = repo.path / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\nexec run-my-checks\n")
    res = repo.run("hooks", "install").assert_failure()
    assert res.err == (
        f"git freq: {hook} exists and is not Frequency's hook; nothing was written; call "
        '`git-freq hook pre-push "$@"` from it, or replace it (it is kept as pre-push.old): '
        "pass --force\n"
    )
    dry = repo.run("hooks", "install", "--force", "--dry-run").assert_success()
    assert dry.out == f"would replace: {hook} (the previous one kept as {hook}.old)\n"
    assert hook.read_text() == "#!/bin/sh\nexec run-my-checks\n"
    repo.run("hooks", "install", "--force").assert_success()
    assert (repo.path / ".git" / "hooks" / "pre-push.old").read_text() == (
        "#!/bin/sh\nexec run-my-checks\n"
    )
    assert "exec git-freq hook pre-push" in hook.read_text()


def test_install_server_goes_into_a_bare_repository(tmp_path: Path, repo: FreqRepo) -> None:
    """--server writes the update shim into the bare repository it runs in; a clone is not
    one, and a bare repository has nothing to pre-push."""
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    server = FreqRepo(bare)
    res = server.run("hooks", "install", "--server").assert_success()
    assert res.out == f"installed: {bare / 'hooks' / 'update'}\n"
    assert (bare / "hooks" / "update").read_text() == (ROOT / "hooks" / "update").read_text()
    assert server.run("hooks", "install").assert_failure().err == (
        f"git freq: {bare} is a bare repository: nobody pushes from it; nothing was written; "
        "for the server-side update hook, pass --server\n"
    )
    assert repo.run("hooks", "install", "--server").assert_failure().err == (
        f"git freq: {repo.path} is not a bare repository: the update hook belongs in the "
        "repository everyone pushes to; nothing was written; run this there, or install the "
        "pre-push hook here without --server\n"
    )
    outside = tmp_path / "plain"
    outside.mkdir()
    assert FreqRepo(outside).run("hooks", "install").assert_failure().err == (
        f"git freq: not a git repository: {outside}; cd into one, or pass -C PATH\n"
    )


def test_shims_only_exec_git_freq(tmp_path: Path) -> None:
    """The shipped shims hand their arguments to `git-freq hook`, or say in one line that
    git-freq is not on PATH (and refuse: a check that cannot run does not pass)."""
    import subprocess

    for name in ("pre-push", "update"):
        shim = ROOT / "hooks" / name
        assert os.access(shim, os.X_OK), shim
        res = subprocess.run(
            [str(shim), "a", "b"],
            check=False,
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        assert res.returncode == 1
        assert len(res.stderr.splitlines()) == 1
        assert res.stderr.startswith("freq: git-freq is not on PATH")
        assert f'exec git-freq hook {name} "$@"' in shim.read_text()
    del tmp_path


def test_a_bare_repository_is_opened_for_the_update_hook(tmp_path: Path) -> None:
    """The update hook runs in the bare repository git receives into (not a clone)."""
    src = new_repo(tmp_path / "src")
    bare = tmp_path / "b.git"
    git(tmp_path, "clone", "-q", "--bare", str(src.path), str(bare))
    head = git(bare, "rev-parse", "HEAD").strip()
    assert ops.hook_update(bare, "refs/frequency/locks/x", ZERO, head).refused == ()
