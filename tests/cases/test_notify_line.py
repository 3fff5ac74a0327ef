"""Case notifications on the member's own channel: a LINE push, else the SMS.

Against a real database (both backends) and the loopback stand-in of the LINE API.
"""

from __future__ import annotations

import json

from bot.cases import CaseType, ChannelNotifier, Outcome, decide_case, extend_case, move_case
from bot.cases.types import CaseStatus
from bot.channels.guard import hashed_sender
from bot.db.models import OutboundMessage
from tests.line_stand_in import ACCESS_TOKEN, Failure, line_stand_in
from tests.test_cases_service import Desk, at, conv
from tests.test_cases_staff import desk  # noqa: F401 - the fixture

pytest_plugins = ["tests.db_fixtures"]

LINE_USER = "U4af4980629a0b8e5c1f3a7d9e2b6c001"


def opened_on_line(desk: Desk) -> str:  # noqa: F811
    number = desk.open(c=conv(sender=f"line:{LINE_USER}", channel="line")).case_number
    desk.run(lambda s: move_case(s, number, CaseStatus.UNDER_REVIEW, "田中", "確認", at(1)))
    return number


def test_a_case_opened_on_line_is_told_by_push(desk):  # noqa: F811
    number = opened_on_line(desk)
    with line_stand_in() as line:
        notifier = ChannelNotifier(desk.notifier, ACCESS_TOKEN, line.url)
        desk.run(lambda s: extend_case(s, number, 10, "田中", "照会中のため", at(2), notifier))
        desk.run(lambda s: decide_case(s, number, Outcome.DISCLOSED, "鈴木", at(3), notifier))
    pushes = [call for call in line.calls if call.path == "/v2/bot/message/push"]
    assert [call.body["to"] for call in pushes] == [LINE_USER, LINE_USER]
    assert all(number in call.texts[0] for call in pushes)
    assert all({k.lower() for k in call.headers} >= {"x-line-retry-key"} for call in pushes)
    rows = desk.rows(OutboundMessage)
    assert [(r.channel, r.to, r.status) for r in rows] == [
        ("line", hashed_sender(LINE_USER), "sent"),
        ("line", hashed_sender(LINE_USER), "sent"),
    ]
    assert not desk.outbox.exists() or desk.outbox.read_text("utf-8") == ""


def test_a_failing_push_falls_back_to_the_sms(desk):  # noqa: F811
    number = opened_on_line(desk)
    with line_stand_in() as line:
        line.fail_next = [Failure(500), Failure(500), Failure(500)]
        notifier = ChannelNotifier(desk.notifier, ACCESS_TOKEN, line.url)
        desk.run(lambda s: extend_case(s, number, 10, "田中", "照会中のため", at(2), notifier))
    rows = desk.rows(OutboundMessage)
    assert [(r.channel, r.status) for r in rows] == [("line", "failed"), ("sms", "sent")]
    sms = [json.loads(line) for line in desk.outbox.read_text("utf-8").splitlines()]
    assert number in sms[-1]["text"]


def test_without_line_or_for_other_channels_the_sms_is_used(desk):  # noqa: F811
    number = desk.open(CaseType.CORRECTION).case_number  # opened through REST
    desk.run(lambda s: move_case(s, number, CaseStatus.UNDER_REVIEW, "田中", "確認", at(1)))
    notifier = ChannelNotifier(desk.notifier, access_token="")
    desk.run(lambda s: decide_case(s, number, Outcome.CORRECTED, "鈴木", at(2), notifier))
    assert [(r.channel, r.status) for r in desk.rows(OutboundMessage)] == [("sms", "sent")]
