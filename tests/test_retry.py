"""Backoff schedule with jitter bounds, under an injected RNG."""

from __future__ import annotations

import random
from datetime import timedelta

from freq.model import Backoff, RetryPolicy
from freq.retry import next_delay


def test_exponential_schedule_capped_without_jitter() -> None:
    """initial * factor^(n-1), capped at max; None once attempts are spent."""
    pol = RetryPolicy(
        max_attempts=5,
        backoff=Backoff(
            initial=timedelta(seconds=10), factor=2, max=timedelta(seconds=45), jitter=0
        ),
    )
    rng = random.Random(1)
    got = [next_delay(pol, n, rng) for n in range(1, 6)]
    assert got == [
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=40),
        timedelta(seconds=45),
        None,
    ]


def test_jitter_stays_within_bounds() -> None:
    """With jitter 0.2 every delay lies within ±20% of the base."""
    pol = RetryPolicy(
        max_attempts=10,
        backoff=Backoff(
            initial=timedelta(seconds=100), factor=1, max=timedelta(seconds=100), jitter=0.2
        ),
    )
    rng = random.Random(7)
    delays = [next_delay(pol, 1, rng) for _ in range(500)]
    secs = [d.total_seconds() for d in delays if d is not None]
    assert len(secs) == 500
    assert min(secs) >= 80 and max(secs) <= 120
    assert max(secs) - min(secs) > 30  # the spread is real, not a constant
