"""The action server's loop stays free while one action waits on the database.

The actions run through rasa-sdk's own ``ActionExecutor`` (what the action server's
``/webhook`` calls) on one event loop, against a real migrated SQLite file and a real
PostgreSQL schema.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from rasa_sdk import Tracker
from rasa_sdk.executor import ActionExecutor
from sqlalchemy.engine import make_url

from actions import offloop
from actions.common import try_again_later
from bot.db.models import Escalation
from bot.handoff import escalations
from bot.identity import verification
from bot.settings import SettingsError, load_settings
from tests.conftest import build_tracker
from tests.db_fixtures import backend_of

APOLOGY = "ただいまシステムに接続できない"


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    """Each test's settings size the pool; no thread outlives its test."""
    offloop.shutdown()
    yield
    offloop.shutdown()


@pytest.fixture
def database(demo, migrated_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return demo


@pytest.fixture
def executor() -> ActionExecutor:
    actions = ActionExecutor()
    actions.register_package("actions")
    return actions


def call(name: str, tracker: Tracker) -> dict[str, Any]:
    """The body the rasa server posts to the action server's webhook."""
    return {"next_action": name, "sender_id": tracker.sender_id, "tracker": tracker.current_state()}


def texts(response: dict[str, Any] | None) -> str:
    assert response is not None
    return "\n".join(r.get("text") or "" for r in response["responses"])


def policy_question(sender: str) -> Tracker:
    return build_tracker("手数料はかかりますか", "ask_fee", sender=sender)


def my_data(sender: str) -> Tracker:
    return build_tracker("登録内容を見たい", "ask_my_data", sender=sender)


async def wait_until(condition: threading.Event, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition.is_set():
        assert time.monotonic() < deadline, "the held action never reached the database"
        await asyncio.sleep(0.01)


def test_a_policy_answer_is_not_kept_waiting_by_another_members_database_work(
    database, executor, monkeypatch
):
    entered, release = threading.Event(), threading.Event()
    real = verification.read_own_record

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        # Bounded: were the action still run on the loop, this wait would block the
        # loop itself; the assertions below then fail instead of the test hanging.
        release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(verification, "read_own_record", held)

    async def scenario() -> tuple[str, str, bool]:
        slow = asyncio.ensure_future(executor.run(call("action_my_data", my_data("member-a"))))
        await wait_until(entered)
        quick = await asyncio.wait_for(
            executor.run(call("action_answer_policy", policy_question("member-b"))), 3
        )
        still_held = not slow.done()
        release.set()
        return texts(quick), texts(await slow), still_held

    quick, slow, still_held = asyncio.run(scenario())
    assert still_held, "the policy answer waited for the other member's database work"
    assert "手数料" in quick
    # The held action then finished as usual: unverified, so verification starts.
    assert "本人確認" in slow and APOLOGY not in slow


def test_a_query_held_by_a_lock_times_out_politely_and_frees_its_thread(
    database, executor, migrated_url, monkeypatch
):
    if backend_of(migrated_url) != "postgresql":
        pytest.skip("row and table locks that make a query wait: PostgreSQL")
    monkeypatch.setenv("ACTION_TIMEOUT_SECONDS", "2")
    # A backstop well past the action's deadline: were the query not bounded by it,
    # it would fail here after 8 s (and the test with it) instead of waiting forever.
    url = make_url(migrated_url)
    options = f"-clock_timeout=8000 {url.query.get('options', '')}".strip()
    backstop = url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", backstop)
    holder = sa.create_engine(migrated_url, future=True)
    try:
        with holder.connect() as lock:
            lock.execute(sa.text("LOCK TABLE verifications IN ACCESS EXCLUSIVE MODE"))

            def waiting() -> int:
                return int(
                    lock.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_locks"
                            " WHERE NOT granted AND relation = 'verifications'::regclass"
                        )
                    ).scalar_one()
                )

            async def scenario() -> tuple[str, str, bool]:
                slow = asyncio.ensure_future(
                    executor.run(call("action_my_data", my_data("member-a")))
                )
                deadline = time.monotonic() + 5
                while not waiting():
                    assert time.monotonic() < deadline, "the action's query never waited"
                    await asyncio.sleep(0.01)
                # The query now waits on the lock; another member's answer goes on.
                quick = await asyncio.wait_for(
                    executor.run(call("action_answer_policy", policy_question("b"))), 3
                )
                still_held = not slow.done()
                return texts(quick), texts(await slow), still_held

            quick, slow, still_held = asyncio.run(scenario())
            assert "手数料" in quick
            assert still_held
            assert slow == try_again_later()
            # statement_timeout ended the waiting query in its thread: no one waits on
            # the lock that is still held.
            deadline = time.monotonic() + 5
            while waiting() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert waiting() == 0
            lock.rollback()
    finally:
        holder.dispose()


def test_a_timed_out_hand_off_is_rolled_back_and_the_member_asked_to_retry(
    database, executor, monkeypatch
):
    monkeypatch.setenv("ACTION_TIMEOUT_SECONDS", "1")
    real = escalations.hand_off

    def slow_hand_off(*args: Any, **kwargs: Any) -> Any:
        outcome = real(*args, **kwargs)  # the escalation row is written, not committed
        time.sleep(1.5)
        return outcome

    monkeypatch.setattr(escalations, "hand_off", slow_hand_off)
    tracker = build_tracker(
        "担当者と話したい",
        "request_human",
        slots={"handoff_offered": True},  # offered before: this request hands over
    )
    response = asyncio.run(executor.run(call("action_request_human", tracker)))
    assert texts(response) == try_again_later()
    assert response is not None and response["events"] == []
    offloop.shutdown()  # the abandoned thread has ended: its commit was refused
    with database.begin() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Escalation)).scalar() == 0

    # Nothing is lost: asked again, the member is handed over, once.
    monkeypatch.setattr(escalations, "hand_off", real)
    response = asyncio.run(executor.run(call("action_request_human", tracker)))
    assert APOLOGY not in texts(response)
    with database.begin() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Escalation)).scalar() == 1


def test_a_database_error_in_the_thread_gets_the_polite_reply(database, executor, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(verification, "read_own_record", broken)
    response = asyncio.run(executor.run(call("action_my_data", my_data("member-a"))))
    assert texts(response) == try_again_later()
    assert response is not None and response["events"] == []


def test_the_loop_and_the_thread_agree_on_who_decides_the_outcome():
    begun = offloop.Work(60)
    begun.may_commit()
    assert begun.abandon() is False  # a commit under way is waited for

    given_up = offloop.Work(60)
    assert given_up.abandon() is True
    with pytest.raises(offloop.WorkTimedOutError):
        given_up.may_commit()

    late = offloop.Work(0)
    with pytest.raises(offloop.WorkTimedOutError):
        late.may_commit()
    assert late.abandon() is True


def test_the_pool_and_the_deadline_are_settings_with_bounds():
    settings = load_settings({})
    assert (settings.action_threads, settings.action_timeout_seconds) == (8, 10)
    assert load_settings({"ACTION_THREADS": "16"}).action_threads == 16
    for name, value in [("ACTION_THREADS", "0"), ("ACTION_TIMEOUT_SECONDS", "1.5")]:
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})
