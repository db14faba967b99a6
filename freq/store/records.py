"""The store's plain records: a ref update of a batch, and one commit of history.

Imports only the standard library and freq.refs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from freq import refs


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One ref of a batch: move `ref` from `expected` (None: it must not exist) to `new`
    (None: delete it)."""

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
