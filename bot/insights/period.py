"""The period a page or report covers: the last 7, 30 or 90 days, in Japan time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from bot.core.japan_time import JST, jst_day

PERIOD_DAYS = (7, 30, 90)
DEFAULT_DAYS = 30
# Where Unix time's day 0 starts in Japan: a JST day number is (t + 9 h) // 1 day.
JST_OFFSET_S = 9 * 3600
DAY_S = 86400
EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True)
class Period:
    """The Japan days from ``first`` to ``last`` (both included).

    Attributes:
        first: the first day.
        last: the last day (today, for the pages).
    """

    first: date
    last: date

    @classmethod
    def ending(cls, now: datetime, days: int) -> Period:
        """The ``days`` Japan days up to and including the day of ``now``."""
        today = jst_day(now)
        return cls(today - timedelta(days=days - 1), today)

    @property
    def days(self) -> list[date]:
        """Every day of the period, oldest first."""
        count = (self.last - self.first).days + 1
        return [self.first + timedelta(days=offset) for offset in range(count)]

    @property
    def weeks(self) -> list[date]:
        """The Mondays of the weeks the period touches, oldest first."""
        start = week_of(self.first)
        return [
            start + timedelta(weeks=n) for n in range((week_of(self.last) - start).days // 7 + 1)
        ]

    @property
    def start(self) -> datetime:
        """The first instant of the period (aware)."""
        return datetime.combine(self.first, time.min, tzinfo=JST)

    @property
    def end(self) -> datetime:
        """The first instant after the period (aware)."""
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=JST)


def week_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def day_of_number(number: int) -> date:
    """The Japan date of a JST day number (days since 1970-01-01 in Japan)."""
    return EPOCH_DAY + timedelta(days=number)


def parse_days(value: object) -> int:
    """The period length asked for, if it is one offered; else the default."""
    try:
        days = int(str(value))
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return days if days in PERIOD_DAYS else DEFAULT_DAYS
