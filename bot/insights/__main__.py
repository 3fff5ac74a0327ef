"""``python -m bot.insights``: the overview's figures as tables (or ``--csv``).

Reads ``DATABASE_URL`` and ``TRACKER_STORE_URL`` as every process does. The period is
the last ``--days`` Japan days up to today, or up to ``--until`` (a date) for a report
of a past month: ``python -m bot.insights --days 30 --until 2026-11-30 --csv``. Open
cases and their deadlines are always as of now (the cases table keeps no history of
its counts).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone

from bot.db.session import session_factory
from bot.handoff.transcripts import tracker_engine
from bot.insights.figures import compute
from bot.insights.period import Period
from bot.insights.report import as_csv, as_text
from bot.settings import SettingsError, load_settings

MAX_DAYS = 366


def _days(value: str) -> int:
    days = int(value)
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"1 to {MAX_DAYS}")
    return days


def main(argv: Sequence[str] | None = None, now: datetime | None = None) -> int:
    """Print the figures; 2 when the settings are unusable."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.insights", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--days", type=_days, default=30, help="days in the period (default 30)")
    parser.add_argument("--until", type=date.fromisoformat, help="last day (YYYY-MM-DD, JST)")
    parser.add_argument("--csv", action="store_true", help="CSV instead of text tables")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    moment = now or datetime.now(timezone.utc)
    period = Period.ending(moment, args.days)
    if args.until is not None:
        period = Period(args.until - timedelta(days=args.days - 1), args.until)
    with (
        session_factory(settings.database_url).begin() as session,
        tracker_engine(settings.tracker_url).connect() as connection,
    ):
        result = compute(session, connection, moment, period)
    sys.stdout.write(as_csv(result) if args.csv else as_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
