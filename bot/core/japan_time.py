"""Japan time: the one time zone of every date a member or staff member is shown.

Times are stored in UTC (aware datetimes); whatever is counted in days or shown to a
person is taken in Japan time. Three outputs, one function each:

- :func:`jst_day`: the calendar day in Japan (a :class:`~datetime.date`), for counting
  days and years;
- :func:`japanese_date`: a day as Japanese text, ``2026年12月6日``, for members' replies,
  SMS, staff messages and the console's date columns;
- :func:`jst_timestamp`: date and time as digits, ``2026-12-06 09:05``, for the staff
  console's and the staff command line's time columns.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

# Japan has had no daylight saving time since 1951: a fixed offset is exact.
JST = timezone(timedelta(hours=9), "JST")

TIMESTAMP_PATTERN = "%Y-%m-%d %H:%M"


def jst_day(moment: datetime) -> date:
    """The calendar day in Japan at ``moment``.

    Args:
        moment: an aware datetime.

    Raises:
        ValueError: For a naive datetime, whose zone would be a guess.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("an aware datetime is needed")
    return moment.astimezone(JST).date()


def japanese_date(value: date | datetime | None, missing: str = "-") -> str:
    """A day written the Japanese way, e.g. ``2026年12月6日``.

    Args:
        value: a calendar day, or an aware datetime (its day in Japan is written).
        missing: what to write for None; each screen has its own mark for "no date".

    Raises:
        ValueError: For a naive datetime.
    """
    if value is None:
        return missing
    # A datetime is a date too: it is taken to its day in Japan first.
    day = jst_day(value) if isinstance(value, datetime) else value
    return f"{day.year}年{day.month}月{day.day}日"


def jst_timestamp(moment: datetime | None, pattern: str = TIMESTAMP_PATTERN) -> str:
    """``moment`` in Japan time as ``YYYY-MM-DD HH:MM`` (or ``pattern``); ``-`` for None.

    Args:
        moment: an aware datetime, or None.
        pattern: a :meth:`~datetime.datetime.strftime` pattern (the console also shows
            seconds, ``%Y-%m-%d %H:%M:%S``, and times of day, ``%H:%M``).
    """
    return "-" if moment is None else moment.astimezone(JST).strftime(pattern)
