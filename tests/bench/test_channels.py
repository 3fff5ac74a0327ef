"""The channel benchmark (bench/channels.py, bench/line.py): its pure parts, the LINE
stand-in, and one tiny real run."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from bench import channels
from bench.channels import (
    LINE_DOCS,
    QUESTIONS,
    Results,
    Sizes,
    WebSession,
    count_web,
    line_view,
    main,
    report,
    rest_baseline,
    socket_view,
    web_scripts,
    web_traffic,
)
from bench.line import (
    MESSAGES_PER_LINE_USER,
    PUSH_PATH,
    REPLY_PATH,
    ApiCall,
    Delivery,
    LineCounts,
    LineOutcome,
    LineStandIn,
    conversations,
    count_line,
    line_traffic,
    parts,
    plan_line,
    prepared_request,
    signed_request,
)
from bench.rest import Reply, pool
from bench.servers import free_port
from bench.stats import Timings
from bot.channels.line import LineConfig, LineInput
from bot.channels.line.signature import signature_valid

SECRET = "bench-test-secret"

# --- the plan and the bodies -------------------------------------------------------------


def _users(deliveries: int, concurrency: int) -> int:
    return len({delivery.user_id for delivery in plan_line(deliveries, concurrency, QUESTIONS)})


def test_the_full_plan_has_200_deliveries_five_of_them_redeliveries():
    plan = plan_line(200, 8, QUESTIONS)
    assert len(plan) == 200
    originals = [delivery for delivery in plan if not delivery.redelivery]
    repeats = [delivery for delivery in plan if delivery.redelivery]
    assert len(repeats) == 5
    assert plan[-5:] == repeats  # redeliveries go last, after their originals
    per_user = Counter(delivery.user_id for delivery in originals)
    assert len(per_user) == 39
    assert max(per_user.values()) <= MESSAGES_PER_LINE_USER  # far below the guard's 20/min
    assert all(first.user != second.user for first, second in itertools.pairwise(originals))
    users = conversations(plan)
    assert [[delivery.turn for delivery in user] for user in users] == [list(range(5))] * 39
    assert all(len({delivery.user_id for delivery in user}) == 1 for user in users)
    assert len({delivery.event_id for delivery in originals}) == len(originals)
    assert len({delivery.reply_token for delivery in plan}) == len(plan)
    assert {delivery.text for delivery in originals} == set(QUESTIONS)


def test_a_redelivery_repeats_its_original_event_with_a_reply_token_of_its_own():
    plan = plan_line(40, 4, QUESTIONS)
    repeat = next(delivery for delivery in plan if delivery.redelivery)
    original = next(
        delivery
        for delivery in plan
        if (delivery.user, delivery.turn) == (repeat.user, repeat.turn)
    )
    assert (repeat.event_id, repeat.user_id, repeat.text) == (
        original.event_id,
        original.user_id,
        original.text,
    )
    assert repeat.reply_token != original.reply_token and not original.redelivery
    event = json.loads(signed_request(repeat, SECRET)[0])["events"][0]
    first = json.loads(signed_request(original, SECRET)[0])["events"][0]
    assert event["deliveryContext"] == {"isRedelivery": True}
    assert first["deliveryContext"] == {"isRedelivery": False}
    assert event["message"]["id"] == first["message"]["id"]


def test_tiny_plans_and_user_counts():
    plan = plan_line(6, 8, QUESTIONS)
    assert [delivery.redelivery for delivery in plan] == [False] * 5 + [True]
    assert len({delivery.user_id for delivery in plan}) == 5
    assert [delivery.redelivery for delivery in plan_line(1, 1, QUESTIONS)] == [False]
    assert _users(21, 8) == 10  # at least 10
    assert _users(52, 16) == 17  # more users than deliveries in flight
    assert _users(4, 8) == 3  # at most one per message (one of the four is redelivered)
    assert plan_line(10, 2, QUESTIONS, seed=1) == plan_line(10, 2, QUESTIONS, seed=1)
    assert plan_line(10, 2, QUESTIONS, seed=1) != plan_line(10, 2, QUESTIONS, seed=2)


def test_the_channel_accepts_the_signed_body_and_refuses_another_secret():
    delivery = plan_line(2, 1, QUESTIONS)[0]
    body, headers = signed_request(delivery, SECRET)
    channel = LineInput(LineConfig(channel_secret=SECRET, access_token="token"))
    status, events = channel.accept(body, headers["X-Line-Signature"])
    assert status == 200
    assert events[0]["message"]["text"] == delivery.text
    assert events[0]["source"] == {"type": "user", "userId": delivery.user_id}
    assert events[0]["replyToken"] == delivery.reply_token
    assert events[0]["webhookEventId"] == delivery.event_id
    other = signed_request(delivery, "another")[1]["X-Line-Signature"]
    assert channel.accept(body, other)[0] == 401


def test_web_scripts_start_each_session_at_another_question():
    scripts = web_scripts(3, 2)
    assert scripts == [list(QUESTIONS[0:2]), list(QUESTIONS[1:3]), list(QUESTIONS[2:4])]


def test_answers_are_compared_as_the_channels_cut_them():
    rest: list[dict[str, Any]] = [
        {"recipient_id": "x", "text": "前文\n\n本文", "buttons": [{"title": "t", "payload": "/p"}]},
        {"recipient_id": "x", "text": "出典"},
        {"recipient_id": "x", "image": "https://example.org/a.png"},
    ]
    assert socket_view(rest) == ["前文", "本文", "出典", ""]
    assert line_view(rest) == ["前文", "本文", "出典"]
    assert parts(["前文\n\n本文", "出典"]) == line_view(rest)


def test_the_rest_baseline_times_answers_and_keeps_them_as_the_channel_shows_them():
    replies = {
        (0, 0): Reply(0.1, [{"text": "前文\n\n本文"}]),
        (0, 1): Reply(0.2, []),
        (1, 0): Reply(30.0, [], "timeout"),
    }
    timings, expected = rest_baseline(replies, 2.0, line_view)
    assert timings.seconds == [0.1] and timings.wall_s == 2.0
    assert timings.failures == {"no answer": 1, "timeout": 1}
    assert expected == {(0, 0): ["前文", "本文"], (0, 1): None, (1, 0): None}


# --- counting --------------------------------------------------------------------------


def _reply(delivery: Delivery, at: float, texts=("answer",), status: int = 200) -> ApiCall:
    body = {
        "replyToken": delivery.reply_token,
        "messages": [{"type": "text", "text": text} for text in texts],
    }
    return ApiCall(REPLY_PATH, body, status, at)


def test_count_line_finds_missing_duplicate_late_mismatched_and_redelivered_replies():
    plan = plan_line(6, 2, QUESTIONS)
    outcomes = {
        delivery.reply_token: LineOutcome(sent_at=10.0 * place, status=200, ack_s=0.002)
        for place, delivery in enumerate(plan)
    }
    outcomes[plan[2].reply_token] = LineOutcome(sent_at=20.0, status=500, ack_s=0.001)
    calls = [
        _reply(plan[0], 0.5),
        _reply(plan[1], 10.4),
        _reply(plan[1], 10.9, status=400),  # the same token again: a duplicate
        # plan[2]: never answered
        _reply(plan[3], 30.0 + 61.0),  # later than the timeout
        _reply(plan[4], 40.3, texts=("another member's answer",)),
        _reply(plan[5], 50.2),  # the redelivery was answered
        ApiCall(PUSH_PATH, {"to": plan[0].user_id, "messages": []}, 200, 1.0),
        ApiCall(PUSH_PATH, {"to": "Usomeone-else", "messages": []}, 200, 1.0),
    ]
    expected = {(delivery.user, delivery.turn): ["answer"] for delivery in plan}
    counts = count_line(plan, outcomes, calls, expected, timeout_s=60.0)
    assert counts.deliveries == 6
    assert counts.acknowledged == 5
    assert counts.replies_expected == 5
    assert counts.replies_received == 3  # 0, 1 and 4
    assert counts.missing == 2  # 2 (none) and 3 (late)
    assert counts.duplicate_calls == 1
    assert (counts.redeliveries, counts.redeliveries_answered) == (1, 1)
    assert counts.pushes == 1
    assert counts.mismatched == 1
    assert counts.reply_s == pytest.approx([0.5, 0.4, 0.3])
    assert not counts.ok


def _clean_outcomes(plan: list[Delivery], ack_s: float) -> dict[str, LineOutcome]:
    return {
        delivery.reply_token: LineOutcome(sent_at=float(place), status=200, ack_s=ack_s)
        for place, delivery in enumerate(plan)
    }


def _clean_calls(plan: list[Delivery], after: float) -> list[ApiCall]:
    return [
        _reply(delivery, place + after)
        for place, delivery in enumerate(plan)
        if not delivery.redelivery
    ]


def test_count_line_of_a_clean_run_is_ok():
    plan = plan_line(6, 2, QUESTIONS)
    counts = count_line(plan, _clean_outcomes(plan, 0.01), _clean_calls(plan, 0.25), {}, 60.0)
    assert counts.ok
    assert (counts.replies_received, counts.within_limit) == (5, 6)
    assert counts.reply_s == pytest.approx([0.25] * 5)


def test_count_web_attributes_events_to_the_question_before_them():
    good = WebSession(0, ["q1", "q2"], True, [10.0, 20.0], [(10.5, "a"), (10.7, "b"), (20.2, "c")])
    doubled = WebSession(1, ["q1"], True, [10.0], [(5.0, "early"), (10.3, "c"), (10.4, "c")])
    foreign = WebSession(2, ["q1"], True, [10.0], [(10.3, "someone else's")])
    late = WebSession(3, ["q1"], True, [10.0], [(75.0, "c")])
    unconnected = WebSession(4, ["q1", "q2"])
    expected = {
        (0, 0): ["a", "b"],
        (0, 1): ["c"],
        (1, 0): ["c"],
        (2, 0): ["c"],
        (3, 0): ["c"],
        (4, 0): ["c"],
        (4, 1): ["c"],
    }
    counts = count_web([good, doubled, foreign, late, unconnected], expected, timeout_s=60.0)
    assert counts.sessions == 5
    assert counts.connected == 4
    assert counts.messages == 7
    assert counts.answered == 4  # good ×2, doubled, foreign (mismatched, but answered)
    assert counts.unanswered == 3  # late, and the unconnected session's two
    assert counts.extra == 2  # before the first question, and the second "c"
    assert counts.mismatched == 1
    assert counts.reply_s == pytest.approx([0.7, 0.2, 0.3, 0.3])
    assert not counts.ok


def test_count_web_without_a_known_answer_takes_the_first_event():
    session = WebSession(0, ["q1"], True, [1.0], [(1.5, "x"), (1.6, "y")])
    counts = count_web([session], {(0, 0): None}, timeout_s=60.0)
    assert (counts.answered, counts.extra, counts.mismatched) == (1, 0, 0)
    assert counts.ok


# --- the machinery ---------------------------------------------------------------------------


def test_the_pool_runs_every_job_once_with_bounded_concurrency():
    seen: list[int] = []
    running = 0
    most = 0

    async def job(index: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (index % 3))
        seen.append(index)
        running -= 1

    asyncio.run(pool(20, 4, job))
    assert sorted(seen) == list(range(20))
    assert most == 4


def test_the_stand_in_answers_like_line_and_hands_over_the_reply():
    async def scenario() -> None:
        stand_in = LineStandIn("token")
        url = await stand_in.start(free_port())
        auth = {"Authorization": "Bearer token"}
        body = {"replyToken": "r1", "messages": [{"type": "text", "text": "こんにちは"}]}
        try:
            async with aiohttp.ClientSession() as http:
                waiting = asyncio.create_task(stand_in.wait_reply("r1", 10))
                async with http.post(url + REPLY_PATH, json=body, headers=auth) as answer:
                    assert answer.status == 200
                    assert len((await answer.json())["sentMessages"]) == 1
                assert await waiting
                async with http.post(url + REPLY_PATH, json=body, headers=auth) as answer:
                    assert answer.status == 400
                    assert (await answer.json())["message"] == "Invalid reply token"
                async with http.post(url + REPLY_PATH, json=body) as answer:
                    assert answer.status == 401
                too_many = {"to": "U1", "messages": [{"type": "text", "text": "x"}] * 6}
                async with http.post(url + PUSH_PATH, json=too_many, headers=auth) as answer:
                    assert answer.status == 400
            assert [(call.status, call.texts) for call in stand_in.calls][:3] == [
                (200, ["こんにちは"]),
                (400, ["こんにちは"]),
                (401, ["こんにちは"]),
            ]
            assert not await stand_in.wait_reply("never", 0.05)
        finally:
            await stand_in.close()

    asyncio.run(scenario())


def _results(ok: bool) -> Results:
    plan = plan_line(6, 2, QUESTIONS)
    calls = _clean_calls(plan, 0.2)
    line = count_line(plan, _clean_outcomes(plan, 0.003), calls if ok else calls[1:], {}, 60.0)
    web = count_web([WebSession(0, ["q"], True, [1.0], [(1.1, "a")])], {(0, 0): ["a"]}, 60.0)
    latencies = {
        "REST sequential": Timings([0.05], wall_s=1.0),
        "REST like LINE": Timings([0.1, 0.1], wall_s=1.0),
        "LINE": Timings(line.reply_s, {"missing": line.missing}, 1.0),
        "REST like website chat": Timings([0.1], wall_s=1.0),
        "website chat": Timings(web.reply_s, {}, 1.0),
    }
    sizes = Sizes(deliveries=6, sessions=1, messages_per_session=1, concurrency=2)
    return Results(sizes, line, web, latencies, line_users=5)


def test_the_report_gives_the_counts_ratios_machine_and_line_s_limit():
    header = ["- Date: 2026-01-01 00:00 UTC · took 1.0 min", "- Machine: nproc 2"]
    text = report(_results(ok=True), header)
    assert LINE_DOCS in text and "within 2 seconds" in text
    assert "| acknowledgement p50 / p95 / max | 3.0 / 3.0 / 3.0 ms |" in text
    assert "| replies received | 5 of 5 |" in text
    assert "| redeliveries answered again | 0 of 1 |" in text
    row = "| LINE (webhook sent → reply call) | 2 | 5 | 0 | 200.0 | 200.0 | 200.0 | 5.0 |"
    assert row + " 2.00× | 2.00× | REST at 2 |" in text
    assert "| website chat (question sent → whole answer) | 1 | 1 | 0 | 100.0 |" in text
    assert "nproc 2" in text and "2026-01-01" in text
    assert text.endswith("Nothing dropped or duplicated: yes")
    failed = report(_results(ok=False), header)
    assert "| missing replies | 1 |" in failed
    assert "| LINE (webhook sent → reply call) | 2 | 4 | 1 |" in failed
    assert failed.endswith("Nothing dropped or duplicated: **NO** (see the counts above)")


@pytest.mark.parametrize("flag", ["--line-deliveries", "--web-sessions", "--concurrency"])
def test_sizes_below_one_are_refused(flag):
    with pytest.raises(SystemExit) as refused:
        main([flag, "0"])
    assert refused.value.code == 2


# --- one tiny run against the real servers -----------------------------------------------


@pytest.mark.e2e
def test_a_tiny_run_drops_and_duplicates_nothing(capsys):
    code = main(["--line-deliveries", "6", "--web-sessions", "3", "--messages-per-session", "1"])
    out = capsys.readouterr().out
    print(out)
    assert "| deliveries acknowledged (HTTP 200) | 6 of 6 |" in out
    assert "| replies received | 5 of 5 |" in out
    assert "| duplicate reply calls (same replyToken) | 0 |" in out
    assert "| redeliveries answered again | 0 of 1 |" in out
    assert "| push calls | 0 |" in out
    assert "| sessions connected (session_confirm) | 3 of 3 |" in out
    assert "| messages answered | 3 of 3 |" in out
    assert "| extra bot messages (answer twice or to another session) | 0 |" in out
    assert out.rstrip().endswith("Nothing dropped or duplicated: yes")
    assert code == 0


# --- the traffic, against stand-ins for the product's channels ----------------------------


async def _fake_line_channel(stand_in_url: str, port: int) -> web.AppRunner:
    """A LINE webhook that answers 200 at once, then replies once per new message.

    As LINE's channel does, it refuses a body whose signature is not the channel's.
    """
    http = aiohttp.ClientSession()
    auth = {"Authorization": "Bearer token"}

    async def reply(event: dict[str, Any]) -> None:
        body = {"replyToken": event["replyToken"], "messages": [{"type": "text", "text": "答え"}]}
        async with http.post(stand_in_url + REPLY_PATH, json=body, headers=auth):
            pass

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        if not signature_valid(SECRET, raw, request.headers.get("X-Line-Signature")):
            return web.Response(status=401)
        for event in json.loads(raw)["events"]:
            if not event["deliveryContext"]["isRedelivery"]:
                asyncio.get_running_loop().create_task(reply(event))
        return web.Response()

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.on_cleanup.append(lambda _: http.close())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@contextlib.asynccontextmanager
async def _fake_line() -> AsyncIterator[tuple[str, LineStandIn]]:
    """The fake channel's webhook URL and the stand-in it replies through, while in use."""
    stand_in = LineStandIn("token")
    stand_in_url = await stand_in.start(free_port())
    port = free_port()
    runner = await _fake_line_channel(stand_in_url, port)
    try:
        yield f"http://127.0.0.1:{port}/webhook", stand_in
    finally:
        await runner.cleanup()
        await stand_in.close()


def test_line_traffic_sends_every_delivery_and_waits_for_each_reply():
    plan = plan_line(12, 3, QUESTIONS)

    async def scenario() -> LineCounts:
        async with _fake_line() as (webhook, stand_in):
            outcomes, wall_s = await line_traffic(webhook, stand_in, plan, SECRET, 3, 10)
            await asyncio.sleep(0.2)  # a wrong answer to a redelivery would come now
        assert wall_s > 0
        expected = {(delivery.user, delivery.turn): ["答え"] for delivery in plan}
        return count_line(plan, outcomes, stand_in.calls, expected, 10)

    counts = asyncio.run(scenario())
    assert counts.ok
    assert (counts.acknowledged, counts.replies_received) == (12, 11)


def test_a_delivery_refused_or_unanswered_is_not_counted_as_acknowledged():
    plan = plan_line(4, 2, QUESTIONS)

    async def scenario() -> tuple[dict[str, int], int]:
        async with _fake_line() as (webhook, stand_in):
            # Signed with another secret: the channel answers 401 to each.
            refused, _ = await line_traffic(webhook, stand_in, plan, "not-the-secret", 2, 1)
            # Nothing listens there: no answer at all.
            nowhere = f"http://127.0.0.1:{free_port()}/webhook"
            gone, _ = await line_traffic(nowhere, stand_in, plan, SECRET, 2, 1)
        statuses = Counter(str(outcome.status) for outcome in refused.values())
        return dict(statuses), count_line(plan, gone, stand_in.calls, {}, 1).acknowledged

    statuses, acknowledged = asyncio.run(scenario())
    assert statuses == {"401": 4}
    assert acknowledged == 0
    with pytest.raises(ValueError):
        prepared_request("https://example.jp/webhook", b"{}", {})


def test_web_traffic_counts_each_session_s_answers(monkeypatch):
    server = socketio.AsyncServer(async_mode="aiohttp")

    @server.on("session_request")
    async def session_request(sid: str, data: Any) -> None:
        await server.emit("session_confirm", {"session_id": sid, "resume_secret": "s"}, to=sid)

    @server.on("user_uttered")
    async def user_uttered(sid: str, data: Any) -> None:
        for text in ("前文", "本文"):
            await server.emit("bot_uttered", {"text": text}, to=sid)

    async def scenario() -> None:
        app = web.Application()
        server.attach(app)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        scripts = web_scripts(3, 2)
        expected = {(session, turn): ["前文", "本文"] for session in range(3) for turn in range(2)}
        try:
            sessions, _ = await web_traffic(f"http://127.0.0.1:{port}", scripts, expected, 10)
        finally:
            await runner.cleanup()
        counts = count_web(sessions, expected, 10)
        assert counts.ok and (counts.connected, counts.answered) == (3, 6)

    monkeypatch.setattr(channels, "GRACE_S", 0.1)
    asyncio.run(scenario())
