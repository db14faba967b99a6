"""Subject discovery (`subjects.discover`): one subject per glob match or command output line.

Must not import click. Globs are matched against the working tree; commands run through
proc at the repository root. New subjects are created in one write per factory; subjects
that exist already are left alone, and names that cannot be ref names are refused with
the reason (SPEC §2, issue 5).
"""

from __future__ import annotations

import glob as globbing
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from freq import proc, refs, transitions
from freq.clock import Clock
from freq.errors import SubjectExists
from freq.model import Discover, Factory, data_problem, name_problem
from freq.runtime import Emitted
from freq.store import Store

COMMAND_TIMEOUT = 60.0
EMIT_PREFIX = "freq:subject "
_BAD = re.compile(r"[^A-Za-z0-9._+@-]+")


def subject_name(raw: str) -> str:
    """A match's basename made into a ref component: runs of other characters become `-`,
    and dots and dashes at either end go (`apps/My App!/` → `My-App`)."""
    base = os.path.basename(raw.rstrip("/\\").strip())
    return _BAD.sub("-", base).strip(".-")


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """What one factory's discovery found."""

    factory: str
    added: tuple[str, ...] = ()
    existing: int = 0
    refused: tuple[str, ...] = field(default_factory=tuple)  # "name: reason"
    errors: tuple[str, ...] = field(default_factory=tuple)  # a command that failed


def _glob(root: Path, pattern: str) -> list[str]:
    return sorted(globbing.glob(pattern, root_dir=root, recursive=True))


def _command(root: Path, command: str, clock: Clock) -> tuple[list[str], str | None]:
    res = proc.run(
        command,
        cwd=root,
        env=proc.build_env({"FREQ_REPO": str(root)}),
        clock=clock,
        timeout=COMMAND_TIMEOUT,
    )
    if not res.ok:
        return [], f"`{command}`: {res.describe()}"
    return [ln for ln in res.tail.decode("utf-8", "replace").splitlines() if ln.strip()], None


def candidates(
    root: Path, sources: Iterable[Discover], clock: Clock
) -> tuple[list[str], list[str]]:
    """Raw names from every source (glob matches, command lines), and command errors."""
    names: list[str] = []
    errors: list[str] = []
    for src in sources:
        if src.glob:
            names += _glob(root, src.glob)
        if src.command:
            lines, err = _command(root, src.command, clock)
            names += lines
            if err:
                errors.append(err)
    return names, errors


DISCOVERED_AS = "discovered_as"  # data key: the match or line a subject's name came from


def discover(store: Store, factory: Factory, *, clock: Clock, worker: str) -> Found:
    """Create the subjects `factory.discover` finds that do not exist yet.

    Each keeps the match it came from in its data (`discovered_as`), since the name is a
    sanitised basename. Two different matches that make one name are both refused, naming
    each other: merging them would hide one, and picking one would depend on order."""
    raw, errors = candidates(store.root, factory.discover, clock)
    origins: dict[str, list[str]] = {}
    refused: list[str] = []
    for item in raw:
        name = subject_name(item)
        problem = name_problem(name)
        if problem:
            refused.append(f"{item!r}: subject name {name!r} {problem}")
        elif item not in origins.setdefault(name, []):
            origins[name].append(item)
    names: dict[str, str] = {}
    for name, items in origins.items():
        if len(items) == 1:
            names[name] = items[0]
            continue
        both = " and ".join(repr(i) for i in items)
        refused.append(f"{both} both make subject name {name!r}; none of them was created")
    wanted = [
        Emitted(
            factory=factory.factory_id,
            state=factory.initial,
            name=n,
            data=MappingProxyType({DISCOVERED_AS: item}),
        )
        for n, item in names.items()
    ]
    created = ensure(store, wanted, clock=clock, worker=worker, reason="discovered")
    return Found(
        factory=factory.factory_id,
        added=tuple(c.split("/", 1)[1] for c in created),
        existing=len(names) - len(created),
        refused=tuple(refused),
        errors=tuple(errors),
    )


def parse_emitted(
    lines: Iterable[str], factory: str, state: str
) -> tuple[list[Emitted], list[str]]:
    """`freq:subject NAME [KEY=VALUE ...]` lines → subjects to create, and problems."""
    out: dict[str, Emitted] = {}
    problems: list[str] = []
    for line in lines:
        if not line.startswith(EMIT_PREFIX):
            continue
        name, *pairs = line[len(EMIT_PREFIX) :].split() or [""]
        problem = name_problem(name)
        data = dict(p.split("=", 1) for p in pairs if "=" in p)
        bad_data = data_problem(data)
        if problem:
            problems.append(f"emitted subject name {name!r} {problem}")
        elif len(data) != len(pairs):
            problems.append(f"emitted subject {name!r}: data must be KEY=VALUE")
        elif bad_data:
            problems.append(f"emitted subject {name!r}: {bad_data}")
        else:
            out.setdefault(
                name, Emitted(factory=factory, state=state, name=name, data=MappingProxyType(data))
            )
    return list(out.values()), problems


def ensure(
    store: Store, wanted: Iterable[Emitted], *, clock: Clock, worker: str, reason: str
) -> list[str]:
    """Create those of `wanted` that do not exist yet, live or archived (idempotent); their
    names."""
    by_factory: dict[str, list[Emitted]] = {}
    for e in wanted:
        by_factory.setdefault(e.factory, []).append(e)
    created: list[str] = []
    for factory, items in by_factory.items():
        for _ in range(5):  # another worker may create some of them at the same moment
            prefix = f"{refs.SUBJECTS}{factory}/"
            existing = {r[len(prefix) :] for r in store.list_refs(prefix)}
            # an archived subject exists too: discovery and emits never re-create it
            fresh = [e for e in items if e.name not in existing]
            gone = store.archived_of(factory, (e.name for e in fresh))
            new = [e for e in fresh if e.name not in gone]
            now = clock.now()
            try:
                if new:
                    store.create_many(
                        [
                            (c.subject, c.event)
                            for c in (
                                transitions.created(
                                    factory,
                                    e.name,
                                    e.state,
                                    at=now,
                                    worker=worker,
                                    data=e.data,
                                    reason=reason,
                                )
                                for e in new
                            )
                        ]
                    )
            except SubjectExists:
                continue
            created += [f"{factory}/{e.name}" for e in new]
            break
        else:
            raise SubjectExists(f"creating subjects in {factory} kept racing other writers")
    return created
