"""The ledger: every attempt end recorded in git, read once, then only what is new.

Must not import click or subprocess; reads only through store, writes nothing. It walks the
first-parent chain of each subject ref (refs/frequency/subjects/*) and the whole history of
each archive ref (refs/frequency/archive/*, whose merges reach archived subjects' last
commits), and keeps per ref the tip it read and the attempt ends (freq.costs.AttemptCost)
below it. A subject's history is append-only, so a later read walks only from the ref's new
tip down to the tip already read; a ref whose new tip does not have the old one below it
(rewritten by `cleanup --repair`) is read again whole, and a deleted ref is dropped. A
commit is immutable, so what was read of it stays true: the cheap path cannot be wrong.

A worker asks `spend` every planning cycle (when a budget is configured): one ref listing,
plus a walk of the commits written since the last cycle. What was read is also kept in
`.git/frequency/cache/ledger.v1.json` (ref → the tip read and its attempt ends), so that a
one-shot command (`costs`, `plan`, `why`) walks only what is new since any process last
saved it. An entry states what the history below one commit id holds, which no later write
can change: a stale or torn file is a miss, never a wrong answer.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from freq import costs, refs
from freq.costs import AttemptCost, Spend
from freq.errors import BrokenHistory, CorruptState
from freq.model import Config
from freq.runtime import CostSource
from freq.store import Store, problem_line

CACHE_NAME = "ledger.v1.json"
# what from_message makes of a commit: bump when it changes, and every saved entry misses
FORMAT = 1


@dataclass(frozen=True, slots=True)
class _Read:
    """What one ref held when it was read at `tip`."""

    tip: str
    costs: tuple[AttemptCost, ...]
    problems: tuple[str, ...] = ()


class Ledger:
    """The attempt ends of one repository, kept current by `refresh`."""

    def __init__(self, store: Store, *, save: bool = False) -> None:
        self.store = store
        self.path = store.state_dir / "cache" / CACHE_NAME
        self.save = save  # write the cache file after a refresh that read anything new
        self._refs: dict[str, _Read] = {}
        self._loaded = False
        self._all: tuple[AttemptCost, ...] | None = None
        self._spend: tuple[tuple[object, ...], Spend] | None = None
        self.walked = 0  # commits read from git so far (what the incremental read saves)

    def refresh(self, subjects: Mapping[tuple[str, str], str] | None = None) -> bool:
        """Read what changed under refs/frequency/subjects/ and archive/ since the last
        refresh (the first one starts from the cache file); whether anything did.
        `subjects`: the subject tips a snapshot just listed ((factory, subject) → tip),
        so that they are not listed again."""
        if not self._loaded:
            self._loaded = True
            self._refs = _load(self.path)
        if subjects is None:
            tips = self.store.list_refs(refs.SUBJECTS)
        else:
            tips = {f"{refs.SUBJECTS}{f}/{s}": tip for (f, s), tip in subjects.items()}
        tips.update(self.store.list_refs(refs.ARCHIVE))
        changed = False
        for ref in [r for r in self._refs if r not in tips]:
            del self._refs[ref]  # deleted: what it recorded is no longer in git's state
            changed = True
        for ref, tip in tips.items():
            known = self._refs.get(ref)
            if known is not None and known.tip == tip:
                continue
            self._refs[ref] = self._read(ref, tip, known)
            changed = True
        if changed:
            self._all = None
            if self.save:
                _save(self.path, self._refs)
        return changed

    def _read(self, ref: str, tip: str, known: _Read | None) -> _Read:
        broken: list[BrokenHistory] = []
        try:
            if ref.startswith(refs.ARCHIVE):  # merges: every parent, every time it moves
                entries = [
                    (e.oid, e.message) for e in self.store.history({ref: tip}, broken=broken)
                ]
                kept: tuple[AttemptCost, ...] = ()
            else:
                stop = known.tip if known is not None else None
                entries, stopped = self.store.messages(ref, tip, stop=stop, broken=broken)
                kept = known.costs if stopped and known is not None else ()
        except CorruptState as exc:
            return _Read(tip=tip, costs=(), problems=(problem_line(exc),))
        self.walked += len(entries)
        new = (c for oid, message in entries if (c := costs.from_message(oid, message)))
        problems = tuple(problem_line(b, "older attempts not counted") for b in broken)
        if kept and known is not None:
            problems = known.problems + problems
        return _Read(tip=tip, costs=(*new, *kept), problems=problems)

    @property
    def problems(self) -> tuple[str, ...]:
        """Why some history could not be read (those attempts are not counted)."""
        return tuple(p for r in sorted(self._refs) for p in self._refs[r].problems)

    def records(self) -> tuple[AttemptCost, ...]:
        """Every attempt end, oldest first (each commit once: an archive reaches commits
        a subject ref may still reach too)."""
        if self._all is None:
            seen: dict[str, AttemptCost] = {}
            for read in self._refs.values():
                for c in read.costs:
                    seen.setdefault(c.commit, c)
            self._all = tuple(sorted(seen.values(), key=lambda c: (c.at, c.commit)))
        return self._all

    def spend(
        self,
        config: Config,
        now: datetime,
        *,
        tips: Mapping[tuple[str, str], str] | None = None,
    ) -> Spend:
        """For every budget of `config`, what was spent in its window at `now` (refreshed
        first, from `tips` if given: see `refresh`). Computed again only when the records
        or the windows changed."""
        self.refresh(tips)
        records = self.records()
        keys = tuple(
            (scope, name, b.per, costs.window_start(now, b.per))
            for scope, name, b in costs.budgets(config)
        )
        cached = self._spend
        if cached is not None and cached[0][0] is records and cached[0][1:] == keys:
            return cached[1]
        spend = costs.spend_of(records, config, now)
        self._spend = ((records, *keys), spend)
        return spend


# ---------------------------------------------------------------- the cache file


def _row(c: AttemptCost) -> list[Any]:
    return [
        c.commit, c.factory, c.subject, c.step, c.attempt, refs.iso(c.at), c.outcome,
        c.duration_ms, c.agent, c.model, c.tokens_in, c.tokens_out, c.tokens_cached, c.usd,
        c.source.value if c.source else None,
    ]  # fmt: skip


def _cost(row: list[Any]) -> AttemptCost:
    commit, factory, subject, step, attempt, at, outcome, ms, agent, model, *rest = row
    t_in, t_out, t_cached, usd, source = rest
    return AttemptCost(
        commit=commit, factory=factory, subject=subject, step=step, attempt=attempt,
        at=refs.parse_iso(at), outcome=outcome, duration_ms=ms, agent=agent, model=model,
        tokens_in=t_in, tokens_out=t_out, tokens_cached=t_cached, usd=usd,
        source=CostSource(source) if source else None,
    )  # fmt: skip


def _load(path: os.PathLike[str]) -> dict[str, _Read]:
    """The refs the cache file holds; nothing when it is missing, torn or of another
    format (the cost is a walk of git history, never a wrong record)."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
        if doc.get("format") != FORMAT:
            return {}
        return {
            ref: _Read(tip=entry["tip"], costs=tuple(_cost(r) for r in entry["costs"]))
            for ref, entry in doc["refs"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _save(path: os.PathLike[str], read: dict[str, _Read]) -> None:
    """Write the cache file by rename (readers see the old file or the new one). Refs
    read with problems are left out: objects may come back (a fetch), so they are read
    again next time."""
    doc = {
        "format": FORMAT,
        "refs": {
            ref: {"tip": r.tip, "costs": [_row(c) for c in r.costs]}
            for ref, r in read.items()
            if not r.problems
        },
    }
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # the cache is an optimisation; state lives in git
