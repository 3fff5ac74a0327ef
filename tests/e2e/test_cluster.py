"""`make cluster` for real: two rasa replicas behind nginx, on PostgreSQL and Redis.

The cluster is started as ``bot.cluster`` starts it, on free ports, a fresh PostgreSQL
database (created and dropped here) and a Redis db of its own, with the LINE channel on
and pointed at a stand-in LINE API on loopback (``tests/line_stand_in.py``); members
talk to it over real HTTP and socket.io, staff through the console. A conversation keeps
its state whichever replica takes a turn (the tracker is in PostgreSQL, the locks in
Redis); a LINE event redelivered to the other replica is answered once, and one
member's messages spread over both replicas meet the rate limit of one; a staff reply
sent through the first replica reaches a socket held by the second; a worker killed
while it delivers leaves each message delivered once after its restart; a replica's
action server killed alone costs the member a silent turn (a known gap, an expected
failure) but nothing else; and a replica killed in the middle of a conversation costs
the member nothing: nginx takes the next message to the other one, which goes on from
the stored conversation, and nothing is opened twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest
import redis
import requests
import socketio
import sqlalchemy as sa
import yaml

from bot.channels.guard import RATE_LIMITED_REPLY
from bot.channels.line.config import LineConfig
from bot.channels.line.signature import sign
from bot.cluster import NGINX, RunningCluster, cluster_running
from bot.db.models import OutboundMessage, StaffMessage
from bot.db.session import session_factory
from bot.launcher import QUIET_ENV, RunningAssistant, train_if_needed, wait_until_up
from bot.outbound.sender import AFTER_COMMIT_KEY, LINE, SMS, enqueue
from bot.settings import PROJECT_ROOT, Settings, environment_of, load_settings
from bot.staff.accounts import create_account
from tests.e2e.conftest import free_port
from tests.e2e.records import database, latest_code
from tests.e2e.rest import joined, rest_post
from tests.e2e.test_line import replies_to, send, text_event
from tests.line_stand_in import ACCESS_TOKEN, CHANNEL_SECRET, StandIn, line_stand_in

pytestmark = pytest.mark.e2e

POSTGRES = os.environ.get("PRIVACY_BOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
# A Redis db of this test's own: the cluster's keys have no prefix of ours to clean by.
REDIS_URL = os.environ.get("PRIVACY_BOT_TEST_CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/9")
CASE_NUMBER = re.compile(r"PR-\d{4}-\d{6}")
# nginx's access line ends '... 200 <upstream addresses> <their response times>
# <request time>'; addresses and times are separated alike (", " next upstream, " : "
# after an internal redirect such as the intake's fallback).
UPSTREAM = re.compile(r'" \d{3} (.+?) ([\d.-]+(?:(?:, | : )[\d.-]+)*) [\d.]+$')
# How long a dead deliverer's claim holds before the worker settles it (the cluster's
# OUTBOX_LEASE_SECONDS): short, so that the worker test need not wait two minutes.
LEASE_S = 2
STAFF_NAME = "tanaka"
STAFF_PASSWORD = "cluster-e2e-password"
QUESTION = "個人情報の利用目的を教えてください"


def missing(reason: str) -> None:
    if os.environ.get("PRIVACY_BOT_REQUIRE_BROWSER"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def fresh_database() -> Iterator[str]:
    admin = sa.create_engine(
        f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    name = f"privacy_cluster_e2e_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        missing(f"PostgreSQL is not reachable at {POSTGRES}: {type(error).__name__}")
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def fresh_redis() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as error:
        missing(f"Redis is not reachable at {REDIS_URL}: {type(error).__name__}")
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    with line_stand_in() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(fresh_database, fresh_redis, stand_in, tmp_path_factory) -> Iterator[RunningCluster]:
    if not os.path.exists(NGINX):
        missing("nginx is not installed (make test installs Debian's nginx as root)")
    var_dir = tmp_path_factory.mktemp("cluster")
    settings = replace(
        load_settings(),
        org_id="kokusai-kogyo-kenpo",
        var_dir=var_dir,
        database_url=fresh_database,
        tracker_store_url=None,  # the app database, as `make cluster` has it
        redis_url=fresh_redis,
        lock_store_url=None,
        rasa_port=free_port(),
        action_port=free_port(),
        webchat_port=free_port(),
        console_port=free_port(),
        rasa_token="e2e-cluster-token",
        rest_enabled=True,
        console_secure_cookie=False,  # plain HTTP on loopback
        # LINE's API is the stand-in (handed on as settings, bot/settings.py's ENVIRONMENT).
        line_channel_access_token=ACCESS_TOKEN,
        line_api_base_url=stand_in.url,
        outbox_lease_seconds=LEASE_S,
    )
    # The channel secret is no setting: the rasa servers read it from the environment
    # they are started with (credentials.yml). Set for that moment only.
    patch = pytest.MonkeyPatch()
    patch.setenv("LINE_CHANNEL_SECRET", CHANNEL_SECRET)
    try:
        with cluster_running(
            settings,
            train_if_needed(),
            public_port=free_port(),
            second_ports=(free_port(), free_port()),
            actions_port=free_port(),
            intake_port=free_port(),
        ) as started:
            patch.undo()
            yield started
    finally:
        patch.undo()


def buttons(messages: list[dict]) -> list[dict]:
    return [button for m in messages for button in m.get("buttons") or []]


def disclosure_until_confirmation(say: Callable[[str], list[dict]], outbox: RunningAssistant):
    """Verify as the demo member and fill a disclosure request up to its confirmation."""
    assert "本人確認" in joined(say("保有個人データの開示を請求したいです"))
    assert "生年月日" in joined(say("記号1001 番号23"))
    assert "090-****-5678" in joined(say("昭和60年4月1日"))
    body = joined(say(latest_code(outbox)))
    assert "確認できました" in body and "開示のご請求を承ります" in body
    assert "対象となる情報" in joined(say("1"))
    paper = next(b for b in buttons(say("すべて")) if "書面" in b["title"])
    assert "よろしいですか" in joined(say(paper["payload"]))


def cases_numbered(cluster: RunningCluster, number: str) -> int:
    with database(cluster.replicas[0]).connect() as connection:
        return connection.execute(
            sa.text("SELECT count(*) FROM cases WHERE case_number = :n"), {"n": number}
        ).scalar_one()


def all_cases(cluster: RunningCluster) -> int:
    with database(cluster.replicas[0]).connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM cases")).scalar_one()


def test_turns_alternating_between_replicas_keep_the_conversation(cluster):
    conversation = f"rest:cluster-{uuid.uuid4().hex[:8]}"
    served: list[str] = []

    def say(text: str) -> list[dict]:
        # Each turn straight to the other replica's REST webhook: nothing pins it.
        replica = cluster.replicas[len(served) % 2]
        served.append(replica.rasa_url)
        return rest_post(replica, conversation, text)

    disclosure_until_confirmation(say, cluster.replicas[0])
    opened = joined(say("はい、請求します"))
    number = CASE_NUMBER.search(opened)
    assert number, opened
    say("はい、請求します")  # confirming again, on the other replica, opens nothing
    assert cases_numbered(cluster, number.group()) == 1
    # Withdrawn, so that the demo member may open another one in the next test.
    assert number.group() in joined(say("請求を取り下げたいです"))
    assert "取り下げました" in joined(say("はい、取り下げます"))
    assert len(set(served)) == 2 and len(served) >= 11
    # The verification form's first step once set a slot "None", an error in Rasa's log.
    for replica in (1, 2):
        assert "Tried to set non existent slot" not in log_of(cluster, replica)


def through_nginx(cluster: RunningCluster, conversation: str, text: str) -> list[dict]:
    response = requests.post(
        cluster.rest_url,
        json={"sender": conversation.removeprefix("rest:"), "message": text},
        headers=cluster.replicas[0].rest_headers,
        timeout=60,
    )
    response.raise_for_status()
    return response.json()


def test_a_browser_stays_on_the_replica_that_holds_its_socket(cluster):
    # A long-polling session lives in one rasa process: a poll reaching the other
    # replica is refused (400). nginx's cookie keeps every poll on the first replica.
    browser = requests.Session()
    handshake = browser.get(f"{cluster.url}/socket.io/?EIO=4&transport=polling", timeout=10)
    assert handshake.status_code == 200 and "privacy_route" in browser.cookies
    sid = json.loads(handshake.text[1:])["sid"]
    polls = [
        browser.post(
            f"{cluster.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data="40", timeout=10
        ).status_code
        for _ in range(8)
    ]
    assert polls == [200] * 8
    # Without the cookie each request is placed anew: some land on the other replica.
    stranger = [
        requests.post(
            f"{cluster.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data="40", timeout=10
        ).status_code
        for _ in range(16)
    ]
    assert 400 in stranger


def test_the_public_port_lets_a_stranger_reach_only_the_member_channels(cluster):
    # Rasa's HTTP API (trackers, parsing, the model) is never behind nginx.
    for method, path in (
        ("GET", "/conversations/rest:someone/tracker"),
        ("POST", "/conversations/rest:someone/trigger_intent"),
        ("POST", "/model/parse"),
        ("GET", "/status"),
        ("GET", "/webhooks/rest/"),
    ):
        response = requests.request(method, f"{cluster.url}{path}", json={}, timeout=10)
        assert response.status_code == 404, (method, path, response.status_code)
    # The REST channel is reached but answers only with the HTTP API token.
    for headers in ({}, {"Authorization": "Bearer forged"}):
        response = requests.post(
            cluster.rest_url,
            json={"sender": "x", "message": "こんにちは"},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 401
    # The LINE webhook takes POST only (its signature is checked by the channel).
    assert requests.get(f"{cluster.url}/webhooks/line/webhook", timeout=10).status_code == 403


def log_of(cluster: RunningCluster, replica: int, name: str = "rasa.log") -> str:
    """What a replica's server (1 or 2) logged so far."""
    path = cluster.replicas[0].var_dir / "logs" / f"replica-{replica}" / name
    return path.read_text("utf-8", "replace")


def line_limit() -> int:
    """The LINE channel guard's messages per minute, as credentials.yml configures it."""
    credentials = yaml.safe_load((PROJECT_ROOT / "credentials.yml").read_text("utf-8"))
    return LineConfig.from_credentials(
        credentials.get("bot.channels.line.LineInput")
    ).max_per_minute


def line_user() -> str:
    """A fresh LINE user id (U + 32 hex digits, like LINE's)."""
    return "U" + uuid.uuid4().hex


def calls_to(stand_in: StandIn, user: str, reply_tokens: set[str]) -> list[Any]:
    """The stand-in's reply and push calls for ``user`` or with one of ``reply_tokens``."""
    with stand_in.lock:
        return [
            call
            for call in stand_in.calls
            if call.body.get("to") == user or call.body.get("replyToken") in reply_tokens
        ]


def test_a_line_event_redelivered_to_the_other_replica_is_answered_once(cluster, stand_in):
    first, second = cluster.replicas
    user = line_user()
    original = text_event(user, QUESTION)
    send(first, original)
    assert "出典" in "\n".join(replies_to(stand_in, original["replyToken"]).texts)
    # LINE redelivers the event (its answer to LINE was lost, say), and this time its
    # request reaches the other replica: same webhookEventId, a new reply token.
    redelivered = {
        **original,
        "replyToken": uuid.uuid4().hex,
        "deliveryContext": {"isRedelivery": True},
    }
    probe = text_event(user, "個人情報はどうやって守られていますか")
    # One body: the events are processed in order, so once the probe is answered the
    # redelivered event has been dealt with.
    send(second, redelivered, probe)
    assert "安全管理" in "\n".join(replies_to(stand_in, probe["replyToken"]).texts)
    answered = calls_to(stand_in, user, {original["replyToken"], redelivered["replyToken"]})
    assert [call.body.get("replyToken") for call in answered] == [original["replyToken"]]
    # The second replica knew the event from the first one's record of it (in Redis).
    assert "LINE redelivered message event already processed: skipped" in log_of(cluster, 2)


def test_one_members_line_messages_over_both_replicas_meet_one_rate_limit(cluster, stand_in):
    limit = line_limit()
    user, bystander = line_user(), line_user()
    # Within the limit: each message to the other replica, each answered by the bot.
    for count in range(limit):
        said = text_event(user, "こんにちは")
        send(cluster.replicas[count % 2], said)
        texts = replies_to(stand_in, said["replyToken"]).texts
        assert texts and RATE_LIMITED_REPLY not in texts, (count, texts)
    # Each replica has had half of them: a guard of its own would let the next through.
    # It gets the notice alone, as one replica would answer...
    over = text_event(user, "こんにちは")
    send(cluster.replicas[limit % 2], over)
    assert replies_to(stand_in, over["replyToken"]).texts == [RATE_LIMITED_REPLY]
    # ... and then silence, on the other replica too. A bystander's message in the same
    # body is answered after it: by then the silenced one had its turn.
    silenced = text_event(user, "こんにちは")
    probe = text_event(bystander, "こんにちは")
    send(cluster.replicas[(limit + 1) % 2], silenced, probe)
    replies_to(stand_in, probe["replyToken"])
    # Neither a reply to the silenced message nor any push to the member.
    assert calls_to(stand_in, user, {silenced["replyToken"]}) == []


def post_to_edge(cluster: RunningCluster, *events: dict, signature: str = "") -> int:
    """A LINE webhook body posted to nginx, signed as LINE signs unless told otherwise."""
    raw = json.dumps({"destination": "Uabc", "events": list(events)}, ensure_ascii=False)
    body = raw.encode("utf-8")
    response = requests.post(
        f"{cluster.url}/webhooks/line/webhook",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Line-Signature": signature or sign(CHANNEL_SECRET, body),
        },
        timeout=30,
    )
    return response.status_code


def intake_address(cluster: RunningCluster) -> str:
    return f"127.0.0.1:{cluster.replicas[0].settings.line_intake_port}"


def line_upstreams_from(cluster: RunningCluster, start: int, count: int) -> list[str]:
    """Where nginx sent LINE webhook requests ``start`` to ``start + count`` (0-based).

    nginx writes a request's access line after its response is sent: the client may
    have its answer a moment before the line is there.
    """
    deadline = time.monotonic() + 10
    while True:
        found = upstreams(cluster, "/webhooks/line/webhook")[start : start + count]
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_line_deliveries_at_the_edge_are_acknowledged_by_the_intake_and_answered_once(
    cluster, stand_in
):
    events = [text_event(line_user(), QUESTION) for _ in range(4)]
    logged = len(upstreams(cluster, "/webhooks/line/webhook"))
    assert [post_to_edge(cluster, event) for event in events] == [200] * 4
    # nginx gave them to the intake alone, which acknowledged them for both replicas.
    assert line_upstreams_from(cluster, logged, 4) == [intake_address(cluster)] * 4
    for event in events:
        assert "出典" in "\n".join(replies_to(stand_in, event["replyToken"]).texts)
        user = event["source"]["userId"]
        assert len(calls_to(stand_in, user, {event["replyToken"]})) == 1
    # A stranger's body is refused at the intake and never queued for a rasa server.
    forged = text_event(line_user(), QUESTION)
    assert post_to_edge(cluster, forged, signature=sign("guessed", b"{}")) == 401
    assert line_upstreams_from(cluster, logged + 4, 1) == [intake_address(cluster)]
    time.sleep(2)
    assert calls_to(stand_in, forged["source"]["userId"], {forged["replyToken"]}) == []
    inbox = redis.Redis.from_url(REDIS_URL)
    assert inbox.llen("privacy-bot:line:inbox") == 0
    inbox.close()


class ChatMember:
    """A website-chat member's socket.io connection (long-polling) to one rasa server."""

    def __init__(self, rasa_url: str) -> None:
        self.said: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.confirmed = threading.Event()
        self.session_id = ""
        self.client = socketio.Client(reconnection=False)
        self.client.on("session_confirm", self._confirm)
        self.client.on("bot_uttered", self._uttered)
        self.client.connect(rasa_url, transports=["polling"], wait_timeout=20)
        self.client.emit("session_request", {})
        assert self.confirmed.wait(30), "no session_confirm"

    def _confirm(self, data: dict[str, Any]) -> None:
        self.session_id = data["session_id"]
        self.confirmed.set()

    def _uttered(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.said.append(data)

    @property
    def sender_id(self) -> str:
        """The conversation's id in Rasa and in the escalations table."""
        return f"web:{self.session_id}"

    def say(self, text: str) -> None:
        self.client.emit("user_uttered", {"message": text, "session_id": self.session_id})

    def close(self) -> None:
        """Leave: without waiting for the long-poll in progress to end (up to 25 s)."""
        self.client.eio.disconnect(abort=True)

    def texts(self) -> list[str]:
        with self.lock:
            return [str(message.get("text", "")) for message in self.said]

    def wait_for(self, part: str, timeout_s: float = 60) -> str:
        """The first message received that contains ``part``, waiting for it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [text for text in self.texts() if part in text]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no message with {part!r}: {self.texts()}")


CSRF_FIELD = re.compile(r'name="csrf" value="([0-9A-Za-z_\-]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([0-9A-Za-z_\-]+)">')


def signed_in_staff(console_url: str) -> requests.Session:
    """A browser-like HTTP session of the staff member, signed in to the console."""
    staff = requests.Session()
    form = staff.get(f"{console_url}login", timeout=10)
    token = CSRF_FIELD.search(form.text)
    assert form.status_code == 200 and token, form.text[:300]
    answer = staff.post(
        f"{console_url}login",
        data={"csrf": token.group(1), "name": STAFF_NAME, "password": STAFF_PASSWORD, "next": ""},
        timeout=30,
    )
    assert answer.status_code == 200 and "console_session" in staff.cookies, answer.text[:300]
    return staff


def console_post(staff: requests.Session, page_url: str, action: str, **form: str) -> Any:
    """POST a form of the escalation page with the session's CSRF token, as its button does."""
    page = staff.get(page_url, timeout=30)
    token = CSRF_META.search(page.text)
    assert page.status_code == 200 and token, page.text[:300]
    return staff.post(f"{page_url}/{action}", data={"csrf": token.group(1), **form}, timeout=60)


def test_every_server_keeps_its_start_up_objects_out_of_full_collections(cluster):
    # bot.core.heap: a full collection of a loaded rasa server stopped it for 0.8 s.
    # The intake's log is shared by its processes: one line each.
    expected = {
        1: {"rasa.log": 1, "actions.log": 1, "worker.log": 1, "line-intake.log": 2},
        2: {"rasa.log": 1, "actions.log": 1},
    }
    for replica, logs in expected.items():
        for name, count in logs.items():
            lines = re.findall(
                "Start-up objects kept out of full garbage collections",
                log_of(cluster, replica, name),
            )
            assert len(lines) >= count, (replica, name)


def test_a_staff_reply_reaches_a_socket_held_by_the_other_replica(cluster):
    first, second = cluster.replicas
    with session_factory(first.settings.database_url).begin() as session:
        create_account(session, STAFF_NAME, "agent", STAFF_PASSWORD, datetime.now(timezone.utc))
    # The member's socket is on the second replica; the console (on the first replica's
    # machine) calls the first replica's HTTP API.
    assert first.console_url and not second.console_url
    member = ChatMember(second.rasa_url)
    try:
        member.say("担当者と話したいです")
        member.wait_for("担当者と話したい")
        member.say("担当者と話したいです")
        member.wait_for("担当者におつなぎします")
        with database(first).connect() as connection:
            escalation_id = connection.execute(
                sa.text("SELECT id FROM escalations WHERE sender_id = :s"),
                {"s": member.sender_id},
            ).scalar_one()
        staff = signed_in_staff(first.console_url)
        page_url = f"{first.console_url}escalations/{escalation_id}"
        claimed = console_post(staff, page_url, "claim")
        assert claimed.status_code == 200 and claimed.history[0].status_code == 303
        replied = console_post(staff, page_url, "reply", text="担当の田中です。ご用件を伺います。")
        assert replied.status_code == 200 and replied.history[0].status_code == 303, replied.text
        assert member.wait_for("担当者より：") == "担当者より：担当の田中です。ご用件を伺います。"
    finally:
        member.close()
    with database(first).connect() as connection:
        delivered = connection.execute(
            sa.select(StaffMessage.text, StaffMessage.delivered_at).where(
                StaffMessage.escalation_id == escalation_id
            )
        ).all()
    assert [(text, at is not None) for text, at in delivered] == [
        ("担当の田中です。ご用件を伺います。", True)
    ]
    assert member.texts().count("担当者より：担当の田中です。ご用件を伺います。") == 1


def server_environment(settings: Settings) -> dict[str, str]:
    """The environment ``bot.launcher.running`` starts a replica's servers with."""
    env = {**os.environ, **QUIET_ENV, "LINE_CHANNEL_SECRET": CHANNEL_SECRET}
    for variable, value in environment_of(settings).items():
        if value is None:
            env.pop(variable, None)
        else:
            env[variable] = value
    return env


def runs(process: subprocess.Popen[bytes], module: str) -> bool:
    """Whether ``process`` was started as ``python -m module``."""
    return isinstance(process.args, list) and process.args[1:] == ["-m", module]


def restart_on_first(cluster: RunningCluster, module: str, log: str) -> None:
    """Start the first replica's ``python -m module`` again in place of its dead one.

    The cluster has no restart of its own (a supervisor or Kubernetes would do it); the
    new process takes the dead one's place in the replica's list, which the cluster
    stops when it ends.
    """
    replica = cluster.replicas[0]
    (index,) = [i for i, p in enumerate(replica.processes) if runs(p, module)]
    assert replica.processes[index].poll() is not None, f"{module} is still running"
    output = (replica.var_dir / "logs" / "replica-1" / log).open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=PROJECT_ROOT,
        env=server_environment(replica.settings),
        stdout=output,
        stderr=output,
        start_new_session=True,
    )
    output.close()
    replica.processes[index] = process


def killed(replica: RunningAssistant, module: str) -> None:
    """SIGKILL the replica's ``python -m module`` process (and its group)."""
    (process,) = [p for p in replica.processes if runs(p, module)]
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(10) == -signal.SIGKILL


def outbox_rows(settings: Settings) -> dict[int, tuple[str, str]]:
    with session_factory(settings.database_url).begin() as session:
        return {
            row.id: (row.status, row.retry_key or "")
            for row in session.execute(sa.select(OutboundMessage)).scalars()
        }


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_a_worker_killed_while_delivering_leaves_each_message_delivered_once(
    cluster, stand_in, monkeypatch
):
    first = cluster.replicas[0]
    sessions = session_factory(first.settings.database_url)
    member = line_user()
    code_1, code_2 = (f"{uuid.uuid4().int % 1_000_000:06d}" for _ in range(2))
    phone = f"+8190{uuid.uuid4().int % 100_000_000:08d}"
    # LINE accepts the first push to the member and never answers it (lost on the way).
    release = threading.Event()
    answer = stand_in.answer

    def lost_answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
        status, payload, extra = answer(path, headers, body)
        if body.get("to") == member and status == 200:
            release.wait(30)
        return status, payload, extra

    monkeypatch.setattr(stand_in, "answer", lost_answer)
    now = datetime.now(timezone.utc)
    with sessions.begin() as session:
        # Written by a process that died right after its commit: the worker's to send.
        sms_1 = enqueue(session, SMS, phone, "コード ******", now, send_text=f"コード {code_1}")
        push = enqueue(session, LINE, "hashed", "お知らせ", now, address=member)
        session.info.pop(AFTER_COMMIT_KEY)
    try:
        # The worker sends the SMS, then pushes: LINE has it, the worker waits...
        stand_in.wait_for(lambda calls: any(c.body.get("to") == member for c in calls), 30)
        killed(first, "bot.worker")  # ... and dies before LINE's answer
        rows = outbox_rows(first.settings)
        assert (rows[sms_1.message_id][0], rows[push.message_id][0]) == ("sent", "sending")
        with sessions.begin() as session:
            # Committed while no worker runs.
            sms_2 = enqueue(session, SMS, phone, "コード ******", now, send_text=f"コード {code_2}")
            session.info.pop(AFTER_COMMIT_KEY)
    finally:
        release.set()
    restart_on_first(cluster, "bot.worker", "worker.log")
    ours = (sms_1.message_id, push.message_id, sms_2.message_id)
    wait_until(
        lambda: [outbox_rows(first.settings)[i][0] for i in ours] == ["sent"] * 3,
        "the restarted worker to settle every row",
    )
    # The push: once more with its retry key, which LINE answers 409: shown once.
    pushes = [c for c in stand_in.calls if c.body.get("to") == member]
    assert [c.status for c in pushes] == [200, 409]
    assert {c.headers["x-line-retry-key"] for c in pushes} == {
        outbox_rows(first.settings)[push.message_id][1]
    }
    # The SMS: each code in the member's phone (the outbox file) once.
    sms = [json.loads(line) for line in first.settings.outbox_path.read_text("utf-8").splitlines()]
    to_phone = [message["text"] for message in sms if message["to"] == phone]
    assert to_phone == [f"コード {code_1}", f"コード {code_2}"]
    # Neither worker logged where the messages went.
    logged = log_of(cluster, 1, "worker.log")
    assert phone not in logged and member not in logged


def test_an_action_server_killed_alone_costs_the_member_nothing(cluster):
    first, second = cluster.replicas
    conversation = f"rest:cluster-{uuid.uuid4().hex[:8]}"

    def on(replica: RunningAssistant) -> Callable[[str], list[dict]]:
        return lambda text: rest_post(replica, conversation, text)

    disclosure_until_confirmation(on(second), first)
    before = all_cases(cluster)
    failed_action = "Encountered an exception while running action"
    failures = log_of(cluster, 1).count(failed_action)
    # The first replica's action server dies alone; its rasa server lives on and takes
    # the member's confirmation. nginx passes the action call on to the other action
    # server (the dead one refused the connection: nothing was sent to it).
    # nginx's listener for the action servers is no way in: without the rasa servers'
    # secret the action server refuses the call, and nothing else is routed.
    relay = str(first.settings.action_endpoint)
    forged = {"next_action": "action_answer_policy", "sender_id": "x", "tracker": {}}
    assert requests.post(relay, json=forged, timeout=10).status_code == 401
    root = relay.removesuffix("/webhook")
    assert requests.get(f"{root}/health", timeout=10).status_code == 404
    killed(first, "bot.action_server")
    try:
        opened = joined(on(first)("はい、請求します"))
        again = joined(on(first)("はい、請求します"))  # confirming again opens nothing
    finally:
        restart_on_first(cluster, "bot.action_server", "actions.log")
        wait_until_up(f"{first.action_url}/health", 120, first.processes[0])
    number = CASE_NUMBER.search(opened)
    assert number, opened
    assert again.strip()
    assert cases_numbered(cluster, number.group()) == 1
    assert all_cases(cluster) == before + 1
    assert log_of(cluster, 1).count(failed_action) == failures  # no action call failed
    # Withdrawn on the restarted unit, so that the demo member may open another one.
    assert number.group() in joined(on(first)("請求を取り下げたいです"))
    assert "取り下げました" in joined(on(first)("はい、取り下げます"))


def upstreams(cluster: RunningCluster, path: str) -> list[str]:
    """The replicas nginx sent each request for ``path`` to, from its access log."""
    log = cluster.replicas[0].var_dir / "nginx" / "access.log"
    lines = log.read_text("utf-8").splitlines()
    # '... "POST /path HTTP/1.1" 200 127.0.0.1:A, 127.0.0.1:B 0.100, 0.020 0.123': tried
    # A, then B.
    found = [UPSTREAM.search(line) for line in lines if f" {path} " in line]
    assert all(found), "nginx's access log format changed: update this test"
    return [match.group(1) for match in found if match]


def test_a_killed_replica_costs_the_member_nothing(cluster):
    conversation = f"rest:cluster-{uuid.uuid4().hex[:8]}"

    def say(text: str) -> list[dict]:
        return through_nginx(cluster, conversation, text)

    disclosure_until_confirmation(say, cluster.replicas[0])
    before = all_cases(cluster)
    rasa = {f"127.0.0.1:{replica.settings.rasa_port}" for replica in cluster.replicas}
    assert set(upstreams(cluster, "/webhooks/rest/webhook")) == rasa  # both took turns
    # The second replica dies without a word: its rasa server and its action server.
    for process in cluster.replicas[1].processes:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    opened = joined(say("はい、請求します"))
    number = CASE_NUMBER.search(opened)
    assert number, opened
    say("はい、請求します")
    status = joined(say("請求の状況を教えてください"))
    assert number.group() in status
    assert cases_numbered(cluster, number.group()) == 1
    assert all_cases(cluster) == before + 1, opened
    dead = f"127.0.0.1:{cluster.replicas[1].settings.rasa_port}"
    after_kill = upstreams(cluster, "/webhooks/rest/webhook")[-3:]
    assert all(
        taken.endswith(f"127.0.0.1:{cluster.replicas[0].settings.rasa_port}")
        for taken in after_kill
    ), after_kill
    assert dead in " ".join(after_kill)  # nginx tried the dead one and went on


def test_a_killed_intake_leaves_line_deliveries_to_the_rasa_servers(cluster, stand_in):
    # Last in this module: the intake stays dead, every process of it (they share a port).
    intakes = [
        process
        for process in cluster.replicas[0].processes
        if "bot.channels.line.intake" in process.args
    ]
    assert len(intakes) == cluster.replicas[0].settings.line_intake_processes == 2
    for intake in intakes:
        os.killpg(intake.pid, signal.SIGKILL)
        intake.wait()
    event = text_event(line_user(), QUESTION)
    logged = len(upstreams(cluster, "/webhooks/line/webhook"))
    assert post_to_edge(cluster, event) == 200
    assert "出典" in "\n".join(replies_to(stand_in, event["replyToken"]).texts)
    # nginx tried the intake, then passed the delivery to a rasa server itself.
    [tried] = line_upstreams_from(cluster, logged, 1)
    rasa = f"127.0.0.1:{cluster.replicas[0].settings.rasa_port}"
    assert tried.startswith(intake_address(cluster)) and tried.endswith(rasa), tried
    assert len(calls_to(stand_in, event["source"]["userId"], {event["replyToken"]})) == 1
