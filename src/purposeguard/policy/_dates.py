"""Calendar arithmetic for legal periods ("3 years", "24 months")."""

from __future__ import annotations

import calendar
import functools
from datetime import UTC, datetime
from typing import Final

__all__ = ["FAR_FUTURE", "add_months"]

FAR_FUTURE: Final = datetime.max.replace(tzinfo=UTC)
"""Stands for "no limit": later than any expiry."""


@functools.lru_cache(maxsize=8192)  # on the hot path: the same instants recur
def add_months(at: datetime, months: int) -> datetime:
    """*at* plus *months* calendar months; the day is clamped to the month's last day
    (29 February plus 12 months is 28 February). Past year 9999: `FAR_FUTURE`."""
    y, m = divmod(at.month - 1 + months, 12)
    year = at.year + y
    if year > 9999:
        return FAR_FUTURE
    month = m + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)
