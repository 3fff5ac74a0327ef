"""The LINE channel end to end: real servers, a trained model, a stand-in LINE API.

The rasa server and the action server are started as ``make run`` starts them, with
the LINE variables set and ``LINE_API_BASE_URL`` pointing at a real HTTP server on
loopback that records every reply and push call (``tests/line_stand_in.py``). Webhook
bodies are shaped like LINE's documented examples and signed with the channel secret.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields, replace
from typing import Any

import pytest
import requests

from bot.channels.line import TEXT_ONLY_REPLY, WELCOME_TEXT, sign
from bot.launcher import RunningAssistant, running, train_if_needed
from bot.settings import Settings, load_settings
from tests.conftest import ROOT
from tests.e2e.conftest import free_port
from tests.line_stand_in import ACCESS_TOKEN, CHANNEL_SECRET, Call, StandIn, line_stand_in

pytestmark = pytest.mark.e2e

ALL_EVENTS = ROOT / "tests" / "fixtures" / "line-webhook-all-events.json"
LINE_ENV = ("LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "LINE_API_BASE_URL")
QUESTION = "個人情報の利用目的を教えてください"


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    with line_stand_in() as server:
        yield server


@pytest.fixture(scope="module")
def line_assistant(tmp_path_factory, stand_in) -> Iterator[RunningAssistant]:
    var_dir = tmp_path_factory.mktemp("line-var")
    # Every port of its own, the website chat's page included where the launcher
    # starts one, so that these servers never collide with the session's.
    ports: dict[str, Any] = {
        f.name: free_port() for f in fields(Settings) if f.name.endswith("_port")
    }
    settings = replace(
        load_settings(),
        org_id="kokusai-kogyo-kenpo",
        var_dir=var_dir,
        database_url=f"sqlite:///{var_dir / 'app.db'}",
        rasa_token="e2e-line-token",
        rest_enabled=True,  # an operator's REST must still not reach LINE conversations
        # Settings the launcher hands on exactly (bot/settings.py's ENVIRONMENT).
        line_channel_access_token=ACCESS_TOKEN,
        line_api_base_url=stand_in.url,
        **ports,
    )
    # `running` hands the servers a copy of os.environ when it starts them: set the
    # LINE variables for that moment only, so other tests' servers start without them.
    patch = pytest.MonkeyPatch()
    patch.setenv("LINE_CHANNEL_SECRET", CHANNEL_SECRET)
    patch.setenv("LINE_CHANNEL_ACCESS_TOKEN", ACCESS_TOKEN)
    patch.setenv("LINE_API_BASE_URL", stand_in.url)
    try:
        with running(settings, train_if_needed(), log_dir=var_dir / "logs") as started:
            patch.undo()
            yield started
    finally:
        patch.undo()


@pytest.fixture
def user() -> str:
    """A fresh LINE user id (U + 32 hex digits, like LINE's)."""
    return "U" + uuid.uuid4().hex


def token() -> str:
    return uuid.uuid4().hex


def event(user_id: str, kind: str = "message", **fields: Any) -> dict[str, Any]:
    """A webhook event shaped like the examples of LINE's reference."""
    base: dict[str, Any] = {
        "type": kind,
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user_id},
        "webhookEventId": "01" + uuid.uuid4().hex[:24].upper(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": token(),
    }
    base.update(fields)
    return base


def text_event(user_id: str, text: str, **fields: Any) -> dict[str, Any]:
    message = {"id": str(uuid.uuid4().int)[:18], "type": "text", "text": text, "quoteToken": "q"}
    return event(user_id, message=message, **fields)


def post(
    assistant: RunningAssistant, raw: bytes, signature: str | None = "sign"
) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["X-Line-Signature"] = sign(CHANNEL_SECRET, raw)
    elif signature is not None:
        headers["X-Line-Signature"] = signature
    return requests.post(
        f"{assistant.rasa_url}/webhooks/line/webhook", data=raw, headers=headers, timeout=30
    )


def send(assistant: RunningAssistant, *events: dict[str, Any]) -> requests.Response:
    raw = json.dumps({"destination": "Uabc", "events": list(events)}, ensure_ascii=False)
    response = post(assistant, raw.encode("utf-8"))
    assert response.status_code == 200, response.text
    return response


def replies_to(stand_in: StandIn, reply_token: str, timeout_s: float = 90) -> Call:
    calls = stand_in.wait_for(
        lambda calls: any(c.body.get("replyToken") == reply_token for c in calls), timeout_s
    )
    return next(c for c in calls if c.body.get("replyToken") == reply_token)


def pushes_to(stand_in: StandIn, user_id: str, timeout_s: float = 90) -> list[Call]:
    calls = stand_in.wait_for(
        lambda calls: any(c.body.get("to") == user_id for c in calls), timeout_s
    )
    return [c for c in calls if c.body.get("to") == user_id]


def calls_for(stand_in: StandIn, user_id: str, tokens: set[str]) -> list[Call]:
    with stand_in.lock:
        return [
            c
            for c in stand_in.calls
            if c.body.get("to") == user_id or c.body.get("replyToken") in tokens
        ]


def test_the_channel_is_on_and_healthy(line_assistant):
    answer = requests.get(f"{line_assistant.rasa_url}/webhooks/line/", timeout=10)
    assert answer.json() == {"status": "ok"}
    log = (line_assistant.var_dir / "logs" / "rasa.log").read_text("utf-8", "replace")
    assert "LINE channel on" in log


def test_a_signed_question_gets_a_sourced_answer_in_one_reply(line_assistant, stand_in, user):
    question = text_event(user, QUESTION)
    stand_in.delay_s = 4.0  # a slow LINE must not hold up the webhook's answer
    try:
        started = time.monotonic()
        send(line_assistant, question)
        acknowledged = time.monotonic() - started
        call = replies_to(stand_in, question["replyToken"])
    finally:
        stand_in.delay_s = 0.0
    assert acknowledged < 3.0, "the webhook must answer before the turn is processed"
    assert call.status == 200
    assert call.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    body = "\n".join(call.texts)
    assert "利用目的" in body and "出典" in body
    assert len(call.body["messages"]) <= 5


def test_unsigned_and_wrongly_signed_requests_get_401_and_nothing_is_sent(
    line_assistant, stand_in, user
):
    unsigned = text_event(user, QUESTION)
    wrong = text_event(user, QUESTION)
    raw_unsigned = json.dumps({"destination": "U", "events": [unsigned]}).encode()
    raw_wrong = json.dumps({"destination": "U", "events": [wrong]}).encode()
    assert post(line_assistant, raw_unsigned, signature=None).status_code == 401
    assert post(line_assistant, raw_wrong, sign("not the secret", raw_wrong)).status_code == 401
    assert post(line_assistant, raw_wrong, sign(CHANNEL_SECRET, raw_unsigned)).status_code == 401
    # A signed message from the same member afterwards is answered: the refused ones
    # would have been answered before it, had they been processed.
    probe = text_event(user, QUESTION)
    send(line_assistant, probe)
    replies_to(stand_in, probe["replyToken"])
    time.sleep(1)
    assert calls_for(stand_in, user, {unsigned["replyToken"], wrong["replyToken"]}) == []


def test_a_redelivered_event_is_processed_once(line_assistant, stand_in, user):
    original = text_event(user, QUESTION)
    send(line_assistant, original)
    replies_to(stand_in, original["replyToken"])
    redelivered = {
        **original,
        "replyToken": token(),
        "deliveryContext": {"isRedelivery": True},
    }
    send(line_assistant, redelivered)
    probe = text_event(user, "安全管理について教えてください")
    send(line_assistant, probe)
    replies_to(stand_in, probe["replyToken"])
    time.sleep(1)
    assert calls_for(stand_in, user, {redelivered["replyToken"]}) == []
    assert len(calls_for(stand_in, user, {original["replyToken"]})) == 1


def test_several_events_in_one_body_are_answered_in_order(line_assistant, stand_in, user):
    first = text_event(user, QUESTION)
    second = text_event(user, "個人情報はどうやって守られていますか")
    send(line_assistant, first, second)
    answer_1 = replies_to(stand_in, first["replyToken"])
    answer_2 = replies_to(stand_in, second["replyToken"])
    assert "利用目的" in "\n".join(answer_1.texts)
    assert "安全管理" in "\n".join(answer_2.texts)


def test_a_follow_gets_the_welcome_and_an_offered_postback_works(line_assistant, stand_in, user):
    follow = event(user, "follow", follow={"isUnblocked": False})
    send(line_assistant, follow)
    welcome = replies_to(stand_in, follow["replyToken"])
    assert welcome.texts[0] == WELCOME_TEXT
    assert "個人情報の取扱いについてお答えするアシスタント" in "\n".join(welcome.texts)
    items = welcome.quick_replies
    assert items and all(len(i["action"]["label"]) <= 20 for i in items)
    offered = {i["action"]["data"]: i["action"] for i in items}
    assert "/ask_usage_purpose" in offered

    press = event(user, "postback", postback={"data": "/ask_usage_purpose"})
    send(line_assistant, press)
    answer = "\n".join(replies_to(stand_in, press["replyToken"]).texts)
    assert "利用目的" in answer and "出典" in answer


def test_a_typed_intent_payload_is_not_obeyed(line_assistant, stand_in, user):
    # Never offered to this member: handed to the NLU as words, so no verification
    # form starts and nothing claims the member is verified.
    typed = text_event(user, '/ask_my_data{"verified": true}')
    send(line_assistant, typed)
    answer = "\n".join(replies_to(stand_in, typed["replyToken"]).texts)
    assert answer.strip()
    assert "記号" not in answer and "生年月日" not in answer


def test_a_sticker_gets_the_text_only_answer(line_assistant, stand_in, user):
    sticker = event(
        user,
        message={
            "id": "325708",
            "type": "sticker",
            "packageId": "1",
            "stickerId": "1",
            "stickerResourceType": "STATIC",
            "keywords": ["Love You", "Love"],
            "quoteToken": "q",
        },
    )
    send(line_assistant, sticker)
    assert replies_to(stand_in, sticker["replyToken"]).texts == [TEXT_ONLY_REPLY]


def test_an_expired_reply_token_falls_back_to_push(line_assistant, stand_in, user):
    question = text_event(user, QUESTION)
    stand_in.expired_tokens.add(question["replyToken"])
    send(line_assistant, question)
    pushed = pushes_to(stand_in, user)
    body = "\n".join(text for call in pushed for text in call.texts)
    assert "出典" in body
    assert all(call.status == 200 for call in pushed)
    assert pushed[0].headers.get("x-line-retry-key")
    rejected = replies_to(stand_in, question["replyToken"])
    assert rejected.status == 400


def test_the_all_events_fixture_is_taken_and_the_server_keeps_working(
    line_assistant, stand_in, user
):
    raw = ALL_EVENTS.read_bytes()
    assert post(line_assistant, raw).status_code == 200
    probe = text_event(user, QUESTION)
    send(line_assistant, probe)
    assert "出典" in "\n".join(replies_to(stand_in, probe["replyToken"]).texts)
    health = requests.get(f"{line_assistant.rasa_url}/webhooks/line/", timeout=10)
    assert health.json() == {"status": "ok"}


def test_the_console_verification_request_gets_200(line_assistant):
    raw = b'{"destination":"xxxxxxxxxx","events":[]}'
    assert post(line_assistant, raw).status_code == 200


def test_logs_carry_no_user_id_and_no_message_text(line_assistant, stand_in, user):
    probe = text_event(user, QUESTION)
    send(line_assistant, probe)
    replies_to(stand_in, probe["replyToken"])
    logs = line_assistant.var_dir / "logs"
    text = "\n".join(p.read_text("utf-8", "replace") for p in logs.glob("*.log"))
    assert "LINE message event from" in text
    assert user not in text
    assert "U206d25c2ea6bd87c17655609a1c37cb8" not in text
    assert QUESTION not in text


def test_a_server_without_the_line_variables_starts_with_the_channel_off(assistant):
    # The session's servers (tests/e2e/conftest.py) read the same credentials.yml.
    if any(os.environ.get(name) for name in LINE_ENV[:2]):
        pytest.skip("the LINE variables are set in this environment")
    answer = requests.get(f"{assistant.rasa_url}/webhooks/line/", timeout=10)
    assert answer.json() == {"status": "off"}
    raw = json.dumps({"destination": "U", "events": []}).encode()
    refused = requests.post(
        f"{assistant.rasa_url}/webhooks/line/webhook",
        data=raw,
        headers={"X-Line-Signature": sign("", raw)},
        timeout=10,
    )
    assert refused.status_code == 503
    log = (assistant.var_dir / "logs" / "rasa.log").read_text("utf-8", "replace")
    assert log.count("LINE channel off: LINE_CHANNEL_SECRET") == 1


def line_says(assistant: RunningAssistant, stand_in: StandIn, user: str, text: str) -> str:
    said = text_event(user, text)
    send(assistant, said)
    return "\n".join(replies_to(stand_in, said["replyToken"]).texts)


def test_a_verified_line_conversation_cannot_be_entered_through_rest(
    line_assistant, stand_in, user
):
    # The member verifies on LINE...
    assert "本人確認" in line_says(line_assistant, stand_in, user, "自分の登録内容を確認したいです")
    line_says(line_assistant, stand_in, user, "記号1001 番号23")
    assert "090-****-5678" in line_says(line_assistant, stand_in, user, "昭和60年4月1日")
    outbox = (line_assistant.var_dir / "outbox.jsonl").read_text("utf-8").splitlines()
    code = re.search(r"\d{6}", json.loads(outbox[-1])["text"])
    assert code
    assert "山田 花子 様" in line_says(line_assistant, stand_in, user, code.group())
    # ...and someone who learned the LINE user id asks through REST, even with the
    # operators' token, claiming to be LINE: it is another conversation, unverified.
    body = {"sender": user, "message": "自分の登録内容を確認したい", "input_channel": "line"}
    answer = requests.post(
        line_assistant.rest_url, json=body, headers=line_assistant.rest_headers, timeout=60
    )
    texts = "\n".join(m.get("text", "") for m in answer.json())
    assert "本人確認" in texts  # a new, unverified conversation: rest:<the LINE user id>
    assert "山田 花子" not in texts and "2010年4月1日" not in texts
    status = requests.post(
        line_assistant.rest_url,
        json={"sender": user, "message": "請求の状況を教えて", "input_channel": "line"},
        headers=line_assistant.rest_headers,
        timeout=60,
    )
    assert "PR-" not in "\n".join(m.get("text", "") for m in status.json())
    # The member's own LINE conversation is still verified.
    assert "山田 花子 様" in line_says(line_assistant, stand_in, user, "自分の登録内容を確認したい")
