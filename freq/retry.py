"""Pure retry policy: when a failed attempt may run again.

Imports only the standard library and freq.model: no clock, no global random state; the
caller injects a random.Random (seeded in tests), as Temporal's RetryPolicy is a value.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from freq.model import RetryPolicy


class Rng(Protocol):
    """What the policy needs of a random source (random.Random fits)."""

    def uniform(self, a: float, b: float) -> float:
        """A float between a and b."""
        ...


def next_delay(policy: RetryPolicy, attempt: int, rng: Rng) -> timedelta | None:
    """Delay before attempt `attempt + 1` after attempt `attempt` failed; None when spent.

    delay = min(initial * factor ** (attempt - 1), max), then spread by ±jitter.
    """
    if attempt >= policy.max_attempts:
        return None
    b = policy.backoff
    base = min(b.initial.total_seconds() * b.factor ** max(attempt - 1, 0), b.max.total_seconds())
    spread = base * b.jitter
    return timedelta(seconds=max(0.0, base + rng.uniform(-spread, spread)))
