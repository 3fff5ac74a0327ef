"""`make cluster` for real: two rasa replicas behind nginx, on PostgreSQL and Redis.

The cluster is started as ``bot.cluster`` starts it, on free ports, a fresh PostgreSQL
database (created and dropped here) and a Redis db of its own; members talk to it over
real HTTP. A conversation keeps its state whichever replica takes a turn (the tracker is
in PostgreSQL, the locks in Redis), and a replica killed in the middle of a conversation
costs the member nothing: nginx takes the next message to the other one, which goes on
from the stored conversation, and nothing is opened twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import redis
import requests
import sqlalchemy as sa

from bot.cluster import NGINX, RunningCluster, cluster_running
from bot.launcher import RunningAssistant, train_if_needed
from bot.settings import load_settings
from tests.e2e.conftest import free_port
from tests.e2e.records import database, latest_code
from tests.e2e.rest import joined, rest_post

pytestmark = pytest.mark.e2e

POSTGRES = os.environ.get("PRIVACY_BOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
# A Redis db of this test's own: the cluster's keys have no prefix of ours to clean by.
REDIS_URL = os.environ.get("PRIVACY_BOT_TEST_CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/9")
CASE_NUMBER = re.compile(r"PR-\d{4}-\d{6}")
UPSTREAM = re.compile(r'" \d{3} (.+) [\d.]+$')


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
def cluster(fresh_database, fresh_redis, tmp_path_factory) -> Iterator[RunningCluster]:
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
    )
    with cluster_running(
        settings,
        train_if_needed(),
        public_port=free_port(),
        second_ports=(free_port(), free_port()),
    ) as started:
        yield started


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


def upstreams(cluster: RunningCluster, path: str) -> list[str]:
    """The replicas nginx sent each request for ``path`` to, from its access log."""
    log = cluster.replicas[0].var_dir / "nginx" / "access.log"
    lines = log.read_text("utf-8").splitlines()
    # '... "POST /path HTTP/1.1" 200 127.0.0.1:A, 127.0.0.1:B 0.123': tried A, then B.
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
