"""The store's plain records: a ref update of a batch, and one commit of history.

Imports only the standard library and freq.refs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from freq import refs

# RefUpdate.expected of a ref pushed with a batch whose other refs fence it: whatever the
# remote holds (a step's work branch, which only the holder of its subject's claim moves;
# the subject ref's expected value in the same atomic push is the check). Remote only.
UNCHECKED = "(unchecked)"


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One ref of a batch: move `ref` from `expected` (None: it must not exist; UNCHECKED:
    on the remote, from wherever it is) to `new` (None: delete it)."""

    ref: str
    new: str | None
    expected: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One commit of a Frequency ref, as `log` shows it."""

    oid: str
    ref: str
    at: datetime
    message: str
    renewal: bool = False  # a lease renewal (folded where people read history)

    @property
    def trailers(self) -> dict[str, str]:
        """The commit's trailers (Freq-*)."""
        return refs.parse_trailers(self.message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainLink:
    """One commit of a ref's first-parent chain, as the object store has it.

    `missing` says what of it is absent: None (the commit, its tree and every file of the tree
    are there), "commit" (then nothing else is known, not even its parent), "tree", a file
    name of its tree (`subject.json`), or "parent" (a second parent of a merge)."""

    oid: str
    parent: str | None = None  # its first parent: None for a root, or when it is missing
    message: str = ""
    missing: str | None = None
    missing_oid: str | None = None

    @property
    def intact(self) -> bool:
        """The commit and everything it names are in the object store."""
        return self.missing is None

    @property
    def headline(self) -> str:
        """The first line of its message, or `(missing)`."""
        return self.message.split("\n", 1)[0] if self.missing != "commit" else "(missing)"
