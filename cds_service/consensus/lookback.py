"""Look-back windows (CONSENSUS-RULES.md §7 settings in months): the day that many months before another."""

from __future__ import annotations

from datetime import date


def months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, 28))


# REC-QCT asks about the body habitus now: BMI (recorded, or derived from weight and height) counts only from
# the last BODY_MEASURE_YEARS (an implementation choice). The query plan bounds its own searches by the same
# window (`date=ge`), and the engine applies it to every record however it came (prefetch under any key, a
# Bundle on disk, a population screen), so all give the same cards. Two years keep a yearly outpatient's
# latest BMI and make a monthly one's fit in two pages of 50.
BODY_MEASURE_YEARS = 2


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def body_measures_since(today: date) -> date:
    return years_before(today, BODY_MEASURE_YEARS)
