"""Secrets never stored: values of environment variables named like keys and tokens.

Pure (standard library only). Whatever Frequency stores — a step's log, the output tail in
git, a commit's trailers, a crash report — passes through a Redactor built from the
environment the step ran with (STYLE.md habit 10; all-repos' hide_api_key_repr).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

# names that hold secrets: *KEY*, *TOKEN*, *SECRET* (and passwords), any case
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MIN_SECRET = 6  # shorter values (`1`, `true`, `yes`) are not secrets worth hiding, only noise
MASK = "[redacted]"


@functools.lru_cache(maxsize=4096)  # every step asks of nearly the same names
def is_secret_name(name: str) -> bool:
    """Whether an environment variable's value is kept out of everything stored."""
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Replaces each secret value by `[redacted]` in text and bytes."""

    __slots__ = ("_bytes", "_text")

    def __init__(self, values: Iterable[str]) -> None:
        kept = sorted({v for v in values if len(v) >= MIN_SECRET}, key=len, reverse=True)
        self._text = re.compile("|".join(map(re.escape, kept))) if kept else None
        self._bytes = re.compile(b"|".join(re.escape(v.encode()) for v in kept)) if kept else None

    @classmethod
    def of_env(cls, env: Mapping[str, str]) -> Redactor:
        """The redactor of every secret-named variable of `env`."""
        return _redactor(frozenset(v for k, v in env.items() if is_secret_name(k)))

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, value: str) -> str:
        """`value` with every secret masked."""
        return self._text.sub(MASK, value) if self._text is not None else value

    def data(self, value: bytes) -> bytes:
        """`value` with every secret masked."""
        return self._bytes.sub(MASK.encode(), value) if self._bytes is not None else value

    def __repr__(self) -> str:
        return "Redactor(...)"  # never the values


# every step builds the redactor of its environment, which is nearly always the one the
# last step had: its patterns are compiled once
@functools.lru_cache(maxsize=64)
def _redactor(values: frozenset[str]) -> Redactor:
    return Redactor(values)
