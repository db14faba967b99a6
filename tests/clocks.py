"""Test-only clocks: machines whose wall clocks disagree, sharing one flow of time."""

from __future__ import annotations

from datetime import datetime, timedelta

from freq.clock import FakeClock


class SkewedClock:
    """Another machine's clock on the same FakeClock timeline: its wall clock is `offset`
    seconds off (and can jump), its monotonic clock has an origin of its own; both advance
    when the shared FakeClock does."""

    def __init__(self, base: FakeClock, offset: float, *, mono_origin: float = 0.0) -> None:
        self.base = base
        self.offset = offset
        self.mono_origin = mono_origin

    def now(self) -> datetime:
        return self.base.now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return self.base.monotonic() + self.mono_origin

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    def jump(self, seconds: float) -> None:
        """Set the wall clock forward (or back, when negative) without time passing."""
        self.offset += seconds
