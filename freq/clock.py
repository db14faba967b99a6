"""Time and chance, injected: the only module that reads the wall clock, sleeps, or seeds
randomness.

Imports nothing from freq. Planning code receives `now` from a Clock; tests use FakeClock,
whose sleep advances time instantly, so no test ever waits on the wall clock. Code that
needs randomness (backoff jitter, lock-retry jitter) takes a `Random` made here, seeded
in tests.
"""

from __future__ import annotations

import random  # noqa: TID251 - the one owner of randomness
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where Frequency reads the time and waits."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (durations)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait this long."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)  # noqa: TID251 - the real clock

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)  # noqa: TID251 - the real clock


class FakeClock:
    """A clock that moves only when told to (or when slept on). Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


Random = random.Random


def system_rng() -> Random:
    """A Random seeded from the operating system (production; tests pass their own)."""
    return random.Random()
