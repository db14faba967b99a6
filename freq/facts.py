"""Facts from outside git that predicates need, gathered once per planning cycle.

Must not import click or dulwich. `command` predicates (SPEC §4) run here through proc,
at the repository root, each at most once per cycle and only when some subject sits in
a state the predicate's step starts from; the planner receives the answers as data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from freq import proc
from freq.clock import Clock
from freq.model import AllOf, AnyOf, Command, Config, Not, Predicate, Snapshot
from freq.predicates import Facts


def commands_in(preds: Iterable[Predicate]) -> Iterator[Command]:
    """Every `command` predicate in a `requires:` tree."""
    for p in preds:
        if isinstance(p, Command):
            yield p
        elif isinstance(p, AllOf | AnyOf):
            yield from commands_in(p.items)
        elif isinstance(p, Not):
            yield from commands_in((p.item,))


def gather(
    config: Config,
    snap: Snapshot,
    *,
    root: Path,
    clock: Clock,
    factories: tuple[str, ...] | None = None,
) -> Facts:
    """Run each `command` predicate that could matter now, once; exit 0 means it holds."""
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
    for cmd in wanted:
        res = proc.run(
            cmd.run,
            cwd=root,
            env=proc.build_env({"FREQ_REPO": str(root)}),
            clock=clock,
            timeout=cmd.timeout.total_seconds(),
            grace=1.0,
        )
        answers[cmd] = res.ok
    return Facts(commands=answers)
