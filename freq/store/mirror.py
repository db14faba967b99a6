"""Local refs/frequency/* as a mirror of one coordination remote's (SPEC §7).

Imports no dulwich itself: the wire (freq.store.wire) is imported when a Mirror is made.
In remote mode the remote is the truth and every write of the Store is pushed first, as
one atomic compare-and-swap push of all the refs of its batch (a claim and its cap slots,
lanes and locks); only once the remote took it does the local ref follow. A rejected
push is a lost race (RefConflict): the caller fetches and re-plans, nothing is forced.

`refresh` fetches the remote's refs/frequency/* and brings the local refs up to them. A
local ref only follows the remote: it is moved when it is at the value the remote was last
seen with, or when the remote's value descends from it; cap slots (ephemeral: they point
at whichever claim holds them) always take the remote's value. A local ref the remote
lacks or is behind is *ahead* (recorded here while the remote could not be reached, or
written by a command run without `--remote`): `push_ahead` sends it with the remote's
value as the expected one. A ref both sides moved is *diverged*: freq.sync replays its
local events onto the remote's tip where they still apply.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from freq import refs
from freq.errors import RefConflict, RemoteRefused, RemoteUnreachable
from freq.store.records import RefUpdate

if TYPE_CHECKING:
    from freq.store.wire import Wire


FOLLOW = 500  # local refs moved by one batch when following the remote


def remote_wins(ref: str) -> bool:
    """Whether the local `ref` takes the remote's value, whatever it is (or vanishes with
    it): a cap slot, which points wherever its holder is. Narrower than refs.is_ephemeral:
    a salvage ref the remote lacks holds work saved only here, so it is pushed, not lost."""
    return ref.startswith(refs.CAPS)


@dataclass(slots=True)
class Refreshed:
    """What one refresh found: refs the local side is ahead on, refs both sides moved
    (ref → (local, remote)), and how many local refs followed the remote."""

    ahead: dict[str, str] = field(default_factory=dict)
    diverged: dict[str, tuple[str, str]] = field(default_factory=dict)
    followed: int = 0


class Mirror:
    """The rules of remote mode, for one Store and one remote."""

    def __init__(
        self,
        wire: Wire,
        *,
        repo: Callable[[], Any],
        list_refs: Callable[[str], dict[str, str]],
        apply_local: Callable[[Sequence[RefUpdate]], None],
        descends: Callable[[str, str], bool],
        monotonic: Callable[[], float],
    ) -> None:
        self.wire = wire
        self._repo = repo
        self._list_refs = list_refs
        self._apply_local = apply_local
        self._descends = descends
        self._monotonic = monotonic
        self.seen: dict[str, str] = {}  # the remote's refs as last seen (fetch or push)
        self.seen_at: float | None = None  # when (monotonic) the remote last answered
        self.foreign = True  # the last contact showed refs others moved: fetch first
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.wire.name

    # ------------------------------------------------------------ writes

    def push(
        self,
        batch: Sequence[RefUpdate],
        objects: Sequence[Any] | None,
        also: Sequence[RefUpdate] = (),
    ) -> None:
        """Push `batch` atomically with its expected values; `objects` are all the new
        objects it names (their parents are the expected values, which the remote holds
        since it is at them). `also`: refs outside refs/frequency moved in the same atomic
        push (a landing's target branch, a step's work branch; `objects` is None then).
        RefConflict, RemoteRefused, RemoteUnreachable."""
        found = None if objects is None else list(objects)
        try:
            advertised = self.wire.push(self._repo(), [*batch, *also], found, atomic=True)
        except RefConflict:
            self.foreign = True  # the next plan starts from a fetch
            raise
        with self._lock:
            local = self._list_refs(refs.ROOT) if advertised != self.seen else None
            self.seen = dict(advertised)
            for u in batch:
                if not u.ref.startswith(refs.ROOT):
                    continue
                if u.new is None:
                    self.seen.pop(u.ref, None)
                else:
                    self.seen[u.ref] = u.new
            self.seen_at = self._monotonic()
            if local is not None:  # others moved refs since the last contact
                self.foreign = any(local.get(r) != o for r, o in advertised.items())

    def fresh(self, within: float) -> bool:
        """Whether the last contact was less than `within` seconds ago and showed no ref
        that others moved: planning from the local refs then needs no fetch."""
        at = self.seen_at
        return at is not None and not self.foreign and self._monotonic() - at < within

    def branches(self, names: Sequence[str], haves: Sequence[str]) -> dict[str, str]:
        """The remote's refs/heads/<name> for each of `names` that it has (name → commit),
        fetched with their objects; `haves`: commits they likely build on."""
        wanted = [f"refs/heads/{n}" for n in names]
        got = self.wire.fetch(self._repo(), {}, names=wanted, haves=haves).refs
        return {r[len("refs/heads/") :]: oid for r, oid in got.items()}

    # ------------------------------------------------------------ refresh

    def refresh(self) -> Refreshed:
        """Fetch the remote's refs/frequency/* and let each local ref follow it (see the
        module's doc); what is ahead or diverged is returned, not touched."""
        local = self._list_refs(refs.ROOT)
        fetched = self.wire.fetch(self._repo(), local).refs
        out = Refreshed()
        moves: list[RefUpdate] = []
        with self._lock:
            seen = self.seen
            for ref in sorted(set(fetched) | set(local)):
                there, here = fetched.get(ref), local.get(ref)
                if there == here:
                    continue
                if here is None:
                    moves.append(RefUpdate(ref, there, None))
                elif there is None:
                    if remote_wins(ref) or seen.get(ref) == here:
                        moves.append(RefUpdate(ref, None, here))
                    else:
                        out.ahead[ref] = here
                elif remote_wins(ref) or seen.get(ref) == here or self._descends(there, here):
                    moves.append(RefUpdate(ref, there, here))
                elif self._descends(here, there):
                    out.ahead[ref] = here
                else:
                    out.diverged[ref] = (here, there)
            self.seen = dict(fetched)
            self.seen_at = self._monotonic()
            self.foreign = False
        out.followed = self._follow(moves)
        return out

    def _follow(self, moves: list[RefUpdate]) -> int:
        """Apply `moves` locally, FOLLOW at a time (each ref of a batch holds a lock, and a
        file descriptor, until the batch is done: a first fetch may bring tens of
        thousands), or one by one when another local writer moved some of them meanwhile
        (those follow at the next refresh)."""
        done = 0
        for i in range(0, len(moves), FOLLOW):
            part = moves[i : i + FOLLOW]
            try:
                self._apply_local(part)
                done += len(part)
                continue
            except RefConflict:
                pass
            for u in part:
                try:
                    self._apply_local([u])
                    done += 1
                except RefConflict:
                    continue
        return done

    def push_ahead(self, ahead: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
        """Push each ref the local side is ahead on, expecting the value the remote was seen
        with: all in one atomic push, or, when that is refused, each on its own, to tell
        (pushed, lost races, refused with a reason)."""
        pushed: list[str] = []
        lost: list[str] = []
        refused: list[str] = []
        if len(ahead) > 1:  # all in one push when none has moved there (the usual case)
            batch = [RefUpdate(ref, oid, self.seen.get(ref)) for ref, oid in sorted(ahead.items())]
            try:  # atomic: a refusal leaves all of them where they were, for the loop below
                self.wire.push(self._repo(), batch, None, atomic=True)
            except (RefConflict, RemoteRefused):
                pass  # some cannot go: each is tried on its own, below, to say which
            else:
                with self._lock:
                    self.seen.update(ahead)
                return sorted(ahead), lost, refused
        for ref, oid in sorted(ahead.items()):
            update = RefUpdate(ref, oid, self.seen.get(ref))
            try:
                self.wire.push(self._repo(), [update], None, atomic=True)
            except RefConflict:
                lost.append(ref)
                continue
            except RemoteRefused as exc:
                refused.append(f"{ref}: {exc.message}")
                continue
            except RemoteUnreachable:
                raise
            with self._lock:
                self.seen[ref] = oid
            pushed.append(ref)
        return pushed, lost, refused

    def exchange(self) -> tuple[Refreshed, list[str], list[str], list[str]]:
        """refresh, then push_ahead what it found ahead: (refreshed, pushed, lost,
        refused)."""
        found = self.refresh()
        pushed, lost, refused = self.push_ahead(found.ahead) if found.ahead else ([], [], [])
        if lost:
            self.foreign = True
        return found, pushed, lost, refused
