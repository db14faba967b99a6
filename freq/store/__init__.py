"""The state store: the only code that reads or writes git objects and refs.

Must not import click, subprocess or any freq module above it (see STYLE.md layers);
dulwich is imported only by freq.store.git (and freq.store.wire, for a remote), and only
when objects are built or read.

Every ref update is a compare-and-swap against the value that was read: `advance` moves
one ref; `update` moves several refs as one batch (each with its expected old value, all
or none: every ref locked in name order, checked, the prepared objects written, then the
refs in the order given, so a crash can only leave a prefix of the batch and the order
says which prefix is harmless); `create_many` creates many subject refs at once in
packed-refs under a creation lock (all or nothing). A lost race raises RefConflict and
writes nothing; callers re-read and re-plan. Refs and loose objects are written in git's
formats by freq.store.refdb, with lock files that tell whether their writer is alive
(freq.store.lockfiles). Commits are built from blobs and trees in the object store, never
through the user's HEAD, index, branches or working tree.

Reading the whole state is `snapshot()`. Its cost is dominated by reading each tip's
subject.json; content-addressed caches (`.git/frequency/cache/`, keyed by commit id,
append-only, written through by every writer) make a re-read cost one file read plus a ref
listing, however many subjects there are (GIT-NOTES.md).

    core      the Store: rules of every write, the snapshot, reads
    git       dulwich: building and reading objects, history
    refdb     ref batches, packed-refs and loose objects in git's formats
    lockfiles git lock files with an flock: a dead writer's lock is known at once
    cache     the commit id → document caches
    beacon    how local processes wake each other
    locate    finding the repository without opening it
    records   RefUpdate (UNCHECKED), HistoryEntry, ChainLink
    mirror    remote mode: every write pushed first, local refs following the remote
    wire      dulwich's client: CAS pushes and narrow fetches over every transport
"""

from __future__ import annotations

from freq.store.core import Store, short
from freq.store.records import UNCHECKED, ChainLink, HistoryEntry, RefUpdate
from freq.store.snapshot import problem_line

__all__ = [
    "UNCHECKED",
    "ChainLink",
    "HistoryEntry",
    "RefUpdate",
    "Store",
    "problem_line",
    "short",
]
