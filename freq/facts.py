"""Facts from outside git that predicates need, gathered once per planning cycle.

Must not import click or dulwich. `command` predicates (SPEC §4) run here through proc,
at the repository root, each at most once per cycle and only when some subject sits in
a state the predicate's step starts from. `changed` predicates compare the branch's tree
now with its tree when the step last succeeded for the subject (the commit remembered
in the subject's `marks`). The planner receives the answers as data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from freq.clock import Clock
from freq.model import Changed, Command, Config, Predicate, Step, format_duration
from freq.predicates import Facts, leaves
from freq.runtime import Snapshot
from freq.store import Store


def commands_in(preds: Iterable[Predicate]) -> Iterator[Command]:
    """Every `command` predicate in a `requires:` tree."""
    return (p for p in leaves(preds) if isinstance(p, Command))


def gather(
    config: Config,
    snap: Snapshot,
    *,
    store: Store,
    clock: Clock,
    factories: tuple[str, ...] | None = None,
) -> Facts:
    """Run each `command` predicate that could matter now, once (exit 0: it holds), and
    answer each `changed` predicate of a waiting subject from git history."""
    root: Path = store.root
    occupied = {(f, s.state) for (f, _), s in snap.subjects.items()}
    wanted: dict[Command, None] = {}
    for fac in config.factories:
        if factories is not None and fac.factory_id not in factories:
            continue
        for step in fac.steps:
            if any((fac.factory_id, st) in occupied for st in step.from_states):
                for cmd in commands_in(step.requires):
                    wanted.setdefault(cmd, None)
    answers: dict[Command, bool] = {}
    notes: dict[Command, str] = {}
    for cmd in wanted:
        from freq import proc  # processes only when a command predicate can matter now

        res = proc.run(
            cmd.run,
            cwd=root,
            env=proc.build_env({"FREQ_REPO": str(root)}),
            clock=clock,
            timeout=cmd.timeout.total_seconds(),
            grace=1.0,
        )
        answers[cmd] = res.ok
        if res.timed_out:
            notes[cmd] = f"timed out after {format_duration(cmd.timeout)}"
        elif res.error or res.signal is not None:
            notes[cmd] = f"did not exit 0 ({res.describe()})"
    missing: set[str | None] = set()
    changed = gather_changed(config, snap, store, factories, missing)
    return Facts(
        commands=answers,
        changed=changed,
        command_notes=notes,
        missing_branches=frozenset(missing),
    )


def changes_in(preds: Iterable[Predicate]) -> Iterator[Changed]:
    """Every `changed` predicate in a `requires:` tree."""
    return (p for p in leaves(preds) if isinstance(p, Changed))


def path_matches(pattern: str, path: str) -> bool:
    """Glob over repository paths: `*` and `?` stay within a folder, `**` spans folders,
    and a pattern naming a folder (`src` or `src/`) covers everything under it."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out.append("/?")
                i += 1
            continue
        c = pattern[i]
        out.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
        i += 1
    rx = "".join(out).rstrip("/")
    return re.fullmatch(rx + "(/.*)?", path) is not None


def gather_changed(
    config: Config,
    snap: Snapshot,
    store: Store,
    factories: tuple[str, ...] | None,
    missing: set[str | None] | None = None,
) -> dict[tuple[Changed, str, str], bool]:
    """For each waiting subject whose step has `changed` predicates: did files under the
    paths change on the branch since that step last succeeded for it (or ever, if never)?
    Branches that do not exist are added to `missing`."""
    out: dict[tuple[Changed, str, str], bool] = {}
    tips: dict[str | None, str | None] = {}
    diffs: dict[tuple[str | None, str], list[str]] = {}
    for fac in config.factories:
        if factories is not None and fac.factory_id not in factories:
            continue
        for step in fac.steps:
            preds = list(changes_in(step.requires))
            if not preds:
                continue
            for subj in snap.in_factory(fac.factory_id):
                if subj.state not in step.from_states:
                    continue
                for pred in preds:
                    if pred.branch not in tips:
                        tips[pred.branch] = store.branch_tip(pred.branch)
                    tip = tips[pred.branch]
                    if tip is None:
                        out[(pred, fac.factory_id, subj.name)] = False
                        if missing is not None:
                            missing.add(pred.branch)
                        continue
                    since = subj.marks.get(step.id)
                    if (since, tip) not in diffs:
                        diffs[(since, tip)] = (
                            [] if since == tip else store.changed_paths(since, tip)
                        )
                    changed = diffs[(since, tip)]
                    out[(pred, fac.factory_id, subj.name)] = any(
                        path_matches(g, p) for g in pred.paths for p in changed
                    )
    return out


def mark_for(step: Step, store: Store) -> str | None:
    """The branch commit to remember when `step` succeeds, if it has `changed` predicates."""
    preds = list(changes_in(step.requires))
    return store.branch_tip(preds[0].branch) if preds else None
