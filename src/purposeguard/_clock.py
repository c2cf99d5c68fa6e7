"""Clocks: every time check in purposeguard reads the guard's clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from ._errors import PolicyError

__all__ = ["FrozenClock", "SystemClock", "ensure_aware"]


def ensure_aware(value: object, what: str) -> datetime:
    """Return *value* as a timezone-aware UTC datetime, or raise PolicyError."""
    if not isinstance(value, datetime):
        raise PolicyError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise PolicyError(f"{what} must be timezone-aware (got a naive datetime)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PolicyError(f"{what} is out of range once converted to UTC") from None


class SystemClock:
    """The wall clock, in UTC."""

    __slots__ = ()

    def now(self) -> datetime:
        """Return the current time as a timezone-aware UTC datetime."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FrozenClock:
    """A clock that only moves when told to: for tests and simulations.

    `FrozenClock()` starts at the current wall-clock time; `FrozenClock(at)` at
    *at*, which must be timezone-aware. Thread-safe.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = datetime.now(UTC) if at is None else ensure_aware(at, "FrozenClock(at)")

    def now(self) -> datetime:
        """Return the frozen time."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock by *delta* (which may be negative) and return the new time."""
        if not isinstance(delta, timedelta):
            raise PolicyError(f"advance() takes a timedelta, got {type(delta).__name__}")
        with self._lock:
            self._now = self._now + delta
            return self._now

    def set(self, at: datetime) -> None:
        """Set the clock to *at* (timezone-aware)."""
        value = ensure_aware(at, "FrozenClock.set(at)")
        with self._lock:
            self._now = value

    def __repr__(self) -> str:
        return f"FrozenClock({self._now.isoformat()!r})"
