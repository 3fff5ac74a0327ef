"""The contact window's opening hours, from the free text the profile publishes.

Only what is reliably parseable is parsed: time ranges ``H:MM–H:MM`` together with the
days they apply to (``平日``, a weekday range like ``月～金``, or every day minus the
weekdays named as excluded, ``土曜、日曜…を除く``). Anything else gives None: the
caller then quotes the text as published and never guesses. Public holidays and the
year-end break are recorded as excluded but not computed, so callers only say
"from ... on" (以降), which stays true when the day turns out to be a holiday.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from bot.core.japan_time import JST
from bot.core.text import fold

WEEKDAYS = "月火水木金土日"  # Monday = 0, as datetime.weekday()

_DASH = "~〜～‐‑–—―－-"
_RANGE = re.compile(rf"(\d{{1,2}}):(\d{{2}})\s*[{_DASH}]\s*(\d{{1,2}}):(\d{{2}})")
_DAY_RANGE = re.compile(
    rf"([{WEEKDAYS}])(?:曜日?)?\s*[{_DASH}]\s*([{WEEKDAYS}])(?:曜日?)?(?![{_DASH}]?\d)"
)
_NAMED_DAY = re.compile(rf"([{WEEKDAYS}])曜")


@dataclass(frozen=True)
class Schedule:
    """Opening hours: the weekdays (0 = Monday) and the time ranges on each of them."""

    weekdays: frozenset[int]
    ranges: tuple[tuple[time, time], ...]
    excludes_holidays: bool = False
    excludes_year_end: bool = False

    def is_open(self, now: datetime) -> bool:
        """Whether ``now`` is inside the hours (holidays aside)."""
        local = now.astimezone(JST)
        if local.weekday() not in self.weekdays:
            return False
        return any(start <= local.time() < end for start, end in self.ranges)

    def next_opening(self, now: datetime) -> datetime:
        """The next start of a range after ``now``, in JST (holidays aside)."""
        local = now.astimezone(JST)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            if day.weekday() not in self.weekdays:
                continue
            for start, _end in self.ranges:
                opening = datetime.combine(day, start, tzinfo=JST)
                if opening > local:
                    return opening
        raise AssertionError("a schedule with weekdays and ranges opens within a week")


def parse_hours(text: str | None) -> Schedule | None:
    """The schedule in ``text``, or None when it cannot be read reliably.

    Args:
        text: the profile's ``contact.hours`` as published.
    """
    if not text or not text.strip():
        return None
    plain = fold(text)
    ranges = []
    for match in _RANGE.finditer(plain):
        h1, m1, h2, m2 = (int(group) for group in match.groups())
        if not (0 <= h1 < 24 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60):
            return None
        start, end = time(h1, m1), time(23, 59, 59) if h2 == 24 else time(h2, m2)
        if end <= start:
            return None
        ranges.append((start, end))
    if not ranges:
        return None
    without_times = _RANGE.sub(" ", plain)
    days: set[int] | None = None
    if "平日" in without_times:
        days = set(range(5))
    for match in _DAY_RANGE.finditer(without_times):
        first, last = WEEKDAYS.index(match[1]), WEEKDAYS.index(match[2])
        if last < first:
            return None
        days = (days or set()) | set(range(first, last + 1))
    excluded_part = ""
    if "除" in without_times:
        excluded_part = without_times[: without_times.rindex("除")]
        opening = max(excluded_part.rfind(bracket) for bracket in "(（")
        if opening >= 0:
            excluded_part = excluded_part[opening:]
        excluded = {WEEKDAYS.index(day) for day in _NAMED_DAY.findall(excluded_part)}
        if excluded:
            days = (days if days is not None else set(range(7))) - excluded
    if not days:
        return None
    return Schedule(
        weekdays=frozenset(days),
        ranges=tuple(sorted(ranges)),
        excludes_holidays="祝" in without_times,
        excludes_year_end="年末年始" in without_times,
    )


def opening_label(moment: datetime) -> str:
    """「月曜 9:00」: a weekday and a time, in Japan time."""
    local = moment.astimezone(JST)
    return f"{WEEKDAYS[local.weekday()]}曜 {local.hour}:{local.minute:02d}"
