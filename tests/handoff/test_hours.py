"""Opening hours from the profiles' free text: parsed when reliable, quoted otherwise."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from bot.core.japan_time import JST
from bot.handoff.dialog import when_answered
from bot.handoff.hours import parse_hours
from bot.policy.profiles.loader import load_profile

WEEKDAYS = frozenset(range(5))
MONDAY_10 = datetime(2025, 11, 24, 10, 30, tzinfo=JST)  # a Monday
FRIDAY_18 = datetime(2025, 11, 28, 18, 0, tzinfo=JST)
SATURDAY = datetime(2025, 11, 29, 11, 0, tzinfo=JST)


@pytest.mark.parametrize(
    ("org", "weekdays", "ranges"),
    [
        ("benesse-kenpo", WEEKDAYS, ((time(10), time(12)), (time(13), time(17)))),
        ("gunma-shoko-kyosai", WEEKDAYS, ((time(9), time(17)),)),
        ("kokusai-kogyo-kenpo", None, None),
        ("osaka-city-kyosai", None, None),
        ("coop-kyosai", None, None),
    ],
)
def test_each_profile_is_parsed_or_honestly_not(org, weekdays, ranges):
    profile = load_profile(org)
    schedule = parse_hours(profile.contact.hours)
    if weekdays is None:
        assert profile.contact.hours is None and schedule is None
        assert "公表されていません" in when_answered(profile, MONDAY_10)
        return
    assert schedule is not None
    assert (schedule.weekdays, schedule.ranges) == (weekdays, ranges)
    assert schedule.excludes_holidays


def test_benesse_lunch_break_and_next_opening():
    profile = load_profile("benesse-kenpo")
    schedule = parse_hours(profile.contact.hours)
    assert schedule is not None
    assert schedule.is_open(MONDAY_10)
    assert not schedule.is_open(MONDAY_10.replace(hour=12, minute=30))
    assert schedule.next_opening(MONDAY_10.replace(hour=12, minute=30)) == MONDAY_10.replace(
        hour=13, minute=0
    )
    assert "受付時間（10:00〜12:00" in when_answered(profile, MONDAY_10)
    assert "次の受付時間（月曜 10:00）以降" in when_answered(profile, FRIDAY_18)
    assert "次の受付時間（月曜 10:00）以降" in when_answered(profile, SATURDAY)


def test_gunma_outside_hours_names_the_next_opening():
    profile = load_profile("gunma-shoko-kyosai")
    assert "受付時間（9:00～17:00（月～金）" in when_answered(profile, MONDAY_10)
    assert "次の受付時間（月曜 9:00）以降" in when_answered(profile, SATURDAY)
    early = MONDAY_10.replace(hour=7)
    assert "次の受付時間（月曜 9:00）以降" in when_answered(profile, early)


@pytest.mark.parametrize(
    "text",
    ["随時", "9:00〜17:00", "お問い合わせください", "平日 17:00〜9:00", "金～月 9:00〜17:00"],
)
def test_what_cannot_be_read_reliably_is_quoted_as_published(text):
    assert parse_hours(text) is None
    profile = load_profile("kokusai-kogyo-kenpo")
    profile = profile.copy(update={"contact": profile.contact.copy(update={"hours": text})})
    assert f"受付時間：{text}" in when_answered(profile, MONDAY_10)


def test_common_forms():
    assert parse_hours("平日 9:00〜17:00") is not None
    schedule = parse_hours("月曜日～土曜日 ９：００～１２：００")
    assert schedule is not None and schedule.weekdays == frozenset(range(6))
