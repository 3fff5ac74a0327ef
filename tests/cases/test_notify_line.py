"""Case notifications on the member's own channel: a LINE push, else the SMS.

Against a real database (both backends) and the loopback stand-in of the LINE API.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.cases import CaseType, ChannelNotifier, Outcome, decide_case, extend_case, move_case
from bot.cases.types import CaseStatus
from bot.channels.guard import hashed_sender
from bot.db.models import OutboundMessage
from bot.outbound.outbox import ApiPusher, Carriers, RetryPolicy
from bot.settings import SettingsError, load_settings
from tests.cases.desk import Desk, at, conv
from tests.line_stand_in import ACCESS_TOKEN, Failure, line_stand_in
from tests.outbound.draining import drain

LINE_USER = "U4af4980629a0b8e5c1f3a7d9e2b6c001"


def opened_on_line(desk: Desk) -> str:
    number = desk.open(c=conv(sender=f"line:{LINE_USER}", channel="line")).case_number
    desk.run(lambda s: move_case(s, number, CaseStatus.UNDER_REVIEW, "田中", "確認", at(1)))
    return number


def test_a_case_opened_on_line_is_told_by_push(desk):
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


def test_a_failing_push_falls_back_to_the_sms(desk):
    number = opened_on_line(desk)
    with line_stand_in() as line:
        line.fail_next = [Failure(500), Failure(500), Failure(500)]
        notifier = ChannelNotifier(desk.notifier, ACCESS_TOKEN, line.url)
        desk.run(lambda s: extend_case(s, number, 10, "田中", "照会中のため", at(2), notifier))
        assert [(r.channel, r.status) for r in desk.rows(OutboundMessage)] == [("line", "pending")]
        carriers = Carriers(desk.notifier.sender, ApiPusher(ACCESS_TOKEN, line.url))
        drain(desk.sessions, carriers, policy=RetryPolicy(max_attempts=3))
    # Three tries with one retry key, then the SMS (sent right after the worker's commit).
    keys = {
        v for call in line.calls for k, v in call.headers.items() if k.lower() == "x-line-retry-key"
    }
    assert len(line.calls) == 3 and len(keys) == 1
    rows = desk.rows(OutboundMessage)
    assert [(r.channel, r.status) for r in rows] == [("line", "failed"), ("sms", "sent")]
    sms = [json.loads(line) for line in desk.outbox.read_text("utf-8").splitlines()]
    assert number in sms[-1]["text"]


def test_without_line_or_for_other_channels_the_sms_is_used(desk):
    number = desk.open(CaseType.CORRECTION).case_number  # opened through REST
    desk.run(lambda s: move_case(s, number, CaseStatus.UNDER_REVIEW, "田中", "確認", at(1)))
    notifier = ChannelNotifier(desk.notifier, access_token="")
    desk.run(lambda s: decide_case(s, number, Outcome.CORRECTED, "鈴木", at(2), notifier))
    assert [(r.channel, r.status) for r in desk.rows(OutboundMessage)] == [("sms", "sent")]


def test_a_refused_push_is_not_retried_and_the_sms_goes(desk):
    number = opened_on_line(desk)
    with line_stand_in() as line:
        line.fail_next = [Failure(400, "The request body has 1 error(s)")]
        notifier = ChannelNotifier(desk.notifier, ACCESS_TOKEN, line.url)
        desk.run(lambda s: extend_case(s, number, 10, "田中", "照会中のため", at(2), notifier))
    assert len(line.calls) == 1
    rows = desk.rows(OutboundMessage)
    assert [(r.channel, r.status, r.error) for r in rows] == [
        ("line", "failed", "HTTP 400"),
        ("sms", "sent", None),
    ]


def test_a_push_retried_after_a_lost_answer_is_sent_once(desk):
    # The channel's client and its retry key: LINE's 409 to the retry means "done".
    number = opened_on_line(desk)
    with line_stand_in() as line:
        line.lose_answers = 1
        notifier = ChannelNotifier(desk.notifier, ACCESS_TOKEN, line.url)
        desk.run(lambda s: extend_case(s, number, 10, "田中", "照会中のため", at(2), notifier))
        drain(desk.sessions, Carriers(line=ApiPusher(ACCESS_TOKEN, line.url)))
    assert [call.status for call in line.calls] == [500, 409]
    assert [(r.channel, r.status) for r in desk.rows(OutboundMessage)] == [("line", "sent")]


def test_the_console_pushes_from_a_worker_thread(desk):
    # The console runs staff actions in worker threads while its event loop runs.
    number = opened_on_line(desk)
    with line_stand_in() as line:
        notifier = ChannelNotifier(desk.notifier, ACCESS_TOKEN, line.url)

        async def console() -> None:
            await asyncio.to_thread(
                desk.run,
                lambda s: extend_case(s, number, 10, "田中", "照会中のため", at(2), notifier),
            )

        asyncio.run(console())
    assert [call.body["to"] for call in line.successful()] == [LINE_USER]
    assert [(r.channel, r.status) for r in desk.rows(OutboundMessage)] == [("line", "sent")]


def test_the_line_settings_come_from_bot_settings(monkeypatch):
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "the-token")
    monkeypatch.setenv("LINE_API_BASE_URL", "http://127.0.0.1:9/")
    settings = load_settings()
    assert settings.line_channel_access_token == "the-token"
    assert settings.line_api_base_url == "http://127.0.0.1:9"
    assert "the-token" not in repr(settings)
    notifier = ChannelNotifier()
    assert (notifier.access_token, notifier.api_base_url) == ("the-token", "http://127.0.0.1:9")
    monkeypatch.delenv("LINE_CHANNEL_ACCESS_TOKEN")
    monkeypatch.delenv("LINE_API_BASE_URL")
    off = ChannelNotifier()
    assert (off.access_token, off.api_base_url) == ("", "https://api.line.me")
    with pytest.raises(SettingsError, match="LINE_API_BASE_URL"):
        load_settings({"LINE_API_BASE_URL": "ftp://example.org"})
