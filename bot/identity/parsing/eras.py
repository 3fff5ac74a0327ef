"""Japanese eras (元号): their first and last days, and era years to Western years."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class Era:
    """One era as members write it on forms.

    Attributes:
        name: the era name, e.g. ``昭和``.
        letter: the one-letter abbreviation used on forms, e.g. ``S`` in ``S60.4.1``.
        first_day: the first day of its 元年.
        last_day: its last day, or None for the current era.
        span: when it ran, in its own years, for error messages.
    """

    name: str
    letter: str
    first_day: datetime.date
    last_day: datetime.date | None
    span: str

    def to_western_year(self, era_year: int) -> int:
        """The Western year of the era's ``era_year``-th year (元年 is 1)."""
        return self.first_day.year + era_year - 1

    def contains(self, day: datetime.date) -> bool:
        """Whether ``day`` falls within the era."""
        return self.first_day <= day and (self.last_day is None or day <= self.last_day)


# The days an emperor died belong to both eras (明治45年7月30日 is 大正元年7月30日 too);
# 昭和 ended on 1月7日 and 平成 began the next day, and 令和 began on 5月1日 by law.
# 明治 is kept only so its dates get a precise error: anything before 1900 is refused.
ERAS = (
    Era("明治", "M", datetime.date(1868, 1, 25), datetime.date(1912, 7, 30), "45年7月30日まで"),
    Era(
        "大正",
        "T",
        datetime.date(1912, 7, 30),
        datetime.date(1926, 12, 25),
        "元年7月30日から15年12月25日まで",
    ),
    Era(
        "昭和",
        "S",
        datetime.date(1926, 12, 25),
        datetime.date(1989, 1, 7),
        "元年12月25日から64年1月7日まで",
    ),
    Era(
        "平成",
        "H",
        datetime.date(1989, 1, 8),
        datetime.date(2019, 4, 30),
        "元年1月8日から31年4月30日まで",
    ),
    Era("令和", "R", datetime.date(2019, 5, 1), None, "元年5月1日から"),
)

_BY_SPELLING = {spelling: era for era in ERAS for spelling in (era.name, era.letter)}


def era_named(spelling: str) -> Era:
    """The era written as ``spelling``: its name or its letter in either case.

    Raises:
        KeyError: when ``spelling`` names no era.
    """
    return _BY_SPELLING[spelling.upper() if spelling.isascii() else spelling]


ERA_SPELLINGS = "|".join(era.name for era in ERAS)
ERA_LETTERS = "".join(era.letter for era in ERAS)
