"""Japan time: one zone, and one function for each way a time is shown."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from bot.core.japan_time import JST, japanese_date, jst_day, jst_timestamp

# 2026-12-05 15:30 UTC is 2026-12-06 00:30 in Japan: the day has already turned there.
LATE_UTC = datetime(2026, 12, 5, 15, 30, tzinfo=timezone.utc)


def test_japan_is_nine_hours_ahead_of_utc_all_year():
    for month in (1, 7):  # no daylight saving time
        assert datetime(2026, month, 1, tzinfo=JST).utcoffset() == timedelta(hours=9)


def test_one_day_is_a_calendar_day_in_japan():
    # The pause and the period of a case are counted in JST calendar days, never in
    # 24-hour units.
    late_evening = datetime(2025, 1, 6, 23, 0, tzinfo=JST)
    assert jst_day(late_evening) == date(2025, 1, 6)
    assert jst_day(late_evening + timedelta(hours=2)) == date(2025, 1, 7)
    assert jst_day(LATE_UTC) == date(2026, 12, 6)


def test_a_naive_datetime_is_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="aware"):
        jst_day(datetime(2026, 12, 6, 9, 0))
    with pytest.raises(ValueError, match="aware"):
        japanese_date(datetime(2026, 12, 6, 9, 0))


def test_a_date_is_written_the_japanese_way_without_leading_zeros():
    assert japanese_date(date(2026, 2, 5)) == "2026年2月5日"
    assert japanese_date(date(2026, 12, 16)) == "2026年12月16日"


def test_a_time_is_written_as_its_day_in_japan():
    assert japanese_date(LATE_UTC) == "2026年12月6日"


def test_no_date_is_written_as_each_screen_marks_it():
    assert japanese_date(None) == "-"
    assert japanese_date(None, missing="なし") == "なし"


def test_a_timestamp_is_in_japan_time():
    assert jst_timestamp(LATE_UTC) == "2026-12-06 00:30"
    assert jst_timestamp(LATE_UTC, "%Y-%m-%d %H:%M:%S") == "2026-12-06 00:30:00"
    assert jst_timestamp(LATE_UTC, "%H:%M") == "00:30"
    assert jst_timestamp(None) == "-"
