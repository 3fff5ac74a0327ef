"""SMS senders and the SMS / secret settings."""

from __future__ import annotations

import json
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from twilio.rest import Client

from bot.identity.verification import SmsLimits
from bot.outbound.sms import OutboxSender, SmsSender, TwilioSender, sender_from_settings
from bot.settings import SettingsError, ensure_secret, load_settings

TEXT = "【本人確認】認証コード：123456（5分間有効）。このコードを他人に教えないでください。"


def test_the_outbox_appends_one_json_line_per_sms(tmp_path):
    path = tmp_path / "nested" / "outbox.jsonl"
    clock = datetime(2025, 1, 6, 9, 30, 15, 250000, tzinfo=timezone.utc)
    sender: SmsSender = OutboxSender(path, clock=lambda: clock)
    sender.send("+819012345678", TEXT)
    sender.send("+818022223333", "二通目")
    raw = path.read_text("utf-8")
    assert raw.endswith("\n")
    # ensure_ascii=False: the Japanese text is written as is, not as \\u escapes.
    assert "認証コード" in raw and "\\u" not in raw
    first, second = (json.loads(line) for line in raw.splitlines())
    assert first == {
        "to": "+819012345678",
        "text": TEXT,
        "sent_at": "2025-01-06T09:30:15.250000+00:00",
    }
    assert second["to"] == "+818022223333"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # its lines hold live codes


def test_the_outbox_stamps_utc_by_default(tmp_path):
    OutboxSender(tmp_path / "outbox.jsonl").send("+819012345678", TEXT)
    line = json.loads((tmp_path / "outbox.jsonl").read_text("utf-8"))
    sent_at = datetime.fromisoformat(line["sent_at"])
    offset = sent_at.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - sent_at).total_seconds()) < 60


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "outbox.jsonl"
    long_text = TEXT * 40  # several kB: a torn write would show

    def send_many(worker: int) -> None:
        sender = OutboxSender(path)
        for index in range(50):
            sender.send(f"+8190{worker:04d}{index:04d}", long_text)

    threads = [threading.Thread(target=send_many, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = path.read_text("utf-8").splitlines()
    assert len(lines) == 400
    assert {json.loads(line)["text"] for line in lines} == {long_text}
    assert len({json.loads(line)["to"] for line in lines}) == 400


class FakeMessages:
    def __init__(self) -> None:
        self.created: list[dict[str, str]] = []

    def create(self, **kwargs: str) -> object:
        self.created.append(kwargs)
        return type("Message", (), {"sid": "SM123"})()


class FakeTwilioClient:
    def __init__(self) -> None:
        self.messages = FakeMessages()


def test_twilio_sender_hands_the_message_to_twilio():
    client = FakeTwilioClient()
    sender: SmsSender = TwilioSender("AC123", "token", "+815000000000", client=client)
    sender.send("+819012345678", TEXT)
    assert client.messages.created == [
        {"to": "+819012345678", "from_": "+815000000000", "body": TEXT}
    ]


def test_twilio_sender_builds_a_twilio_client_without_calling_out():
    sender = TwilioSender("AC" + "0" * 32, "token", "+815000000000")
    assert isinstance(sender._client, Client)


def test_the_outbox_is_the_default_under_the_var_dir(tmp_path):
    settings = load_settings({"PRIVACY_BOT_VAR_DIR": str(tmp_path)})
    assert settings.sms_backend == "outbox"
    assert settings.outbox_path == tmp_path / "outbox.jsonl"
    sender = sender_from_settings(settings)
    assert isinstance(sender, OutboxSender) and sender.path == tmp_path / "outbox.jsonl"
    moved = load_settings({"PRIVACY_BOT_OUTBOX": str(tmp_path / "elsewhere.jsonl")})
    assert moved.outbox_path == tmp_path / "elsewhere.jsonl"


def test_twilio_is_selected_with_its_credentials_and_refused_without():
    env = {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "auth-token-value",
        "TWILIO_FROM": "+815000000000",
    }
    settings = load_settings(env)
    assert isinstance(sender_from_settings(settings), TwilioSender)
    assert "auth-token-value" not in repr(settings)
    with pytest.raises(SettingsError, match="TWILIO_AUTH_TOKEN"):
        load_settings({**env, "TWILIO_AUTH_TOKEN": ""})
    with pytest.raises(SettingsError, match="SMS_BACKEND"):
        load_settings({"SMS_BACKEND": "pigeon"})


def test_the_secret_comes_from_the_environment_or_is_generated_once(tmp_path):
    assert ensure_secret(load_settings({"PRIVACY_BOT_SECRET": "from-env"})) == "from-env"
    assert "from-env" not in repr(load_settings({"PRIVACY_BOT_SECRET": "from-env"}))
    settings = load_settings({"PRIVACY_BOT_VAR_DIR": str(tmp_path / "var")})
    first = ensure_secret(settings)
    assert len(first) >= 40
    path: Path = tmp_path / "var" / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret(settings) == first  # kept, not regenerated
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no drafts left
    path.write_text("")
    with pytest.raises(SettingsError, match="empty"):
        ensure_secret(settings)


def test_the_verification_sms_limits_default_and_are_read_from_the_environment():
    defaults = load_settings({})
    assert (defaults.verification_sms_per_member_day, defaults.verification_sms_per_minute) == (
        5,
        30,
    )
    assert SmsLimits.from_settings(defaults) == SmsLimits(per_member_day=5, per_minute=30)
    chosen = load_settings(
        {"VERIFICATION_SMS_PER_MEMBER_DAY": " 3 ", "VERIFICATION_SMS_PER_MINUTE": "120"}
    )
    assert SmsLimits.from_settings(chosen) == SmsLimits(per_member_day=3, per_minute=120)
    for name in ("VERIFICATION_SMS_PER_MEMBER_DAY", "VERIFICATION_SMS_PER_MINUTE"):
        for bad in ("0", "-1", "five", "2.5", "100001"):
            with pytest.raises(SettingsError, match=name):
                load_settings({name: bad})


def test_twilio_calls_give_up_on_a_carrier_that_does_not_answer(monkeypatch):
    # A real socket that accepts and never answers, as a stuck carrier does.
    import socket
    import time

    import requests

    from bot.outbound import sms

    monkeypatch.setattr(sms, "TWILIO_TIMEOUT_S", 0.5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        sender = TwilioSender("AC" + "0" * 32, "token", "+815000000000")
        http = sender._client.http_client
        assert http.timeout == 0.5
        started = time.monotonic()
        with pytest.raises(requests.exceptions.Timeout):
            http.request("POST", f"http://127.0.0.1:{listener.getsockname()[1]}/", data={})
        assert time.monotonic() - started < 5
    finally:
        listener.close()
