"""Look-back windows (CONSENSUS-RULES.md §7 settings in months): the day that many months before another."""

from __future__ import annotations

from datetime import date


def months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, 28))
