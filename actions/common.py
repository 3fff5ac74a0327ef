"""Helpers every action adapter shares."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from actions import offloop
from bot.core import sessions
from bot.core.conversation import Conversation, channel_of
from bot.db.session import session_factory
from bot.outbound.sms import SmsSender, sender_from_settings
from bot.policy.answers import Reply, contact_line
from bot.policy.profiles.loader import cached_profile
from bot.policy.profiles.schema import Profile
from bot.settings import load_settings

logger = logging.getLogger(__name__)
Events = list[dict[str, Any]]
BlockingRun = Callable[[Any, CollectingDispatcher, Tracker, dict[str, Any]], Events]


def active_profile() -> Profile:
    """The profile of the organization this action server serves."""
    settings = load_settings()
    return cached_profile(settings.org_id, str(settings.profiles_dir))


def form_step_events(slots: dict[str, Any], requested: str | None) -> list[dict[str, Any]]:
    """A form step's slot updates as events.

    A step that updates nothing sets the requested slot again (to None), so that Rasa
    does not take the turn from the form. Before the form has asked for anything (Rasa
    also validates as a form starts) there is no such slot, and nothing is set.

    Args:
        slots: the step's slot updates.
        requested: the slot the form asked for, if any.
    """
    updates = slots or ({requested: None} if requested else {})
    return [SlotSet(name, value) for name, value in updates.items()]


def send(dispatcher: CollectingDispatcher, replies: Iterable[Reply]) -> None:
    """Utter each reply, with its quick replies as Rasa buttons."""
    for reply in replies:
        buttons = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
        # Extra keys become the bot event's metadata: the overview counts the kind.
        marks = {"answer_kind": reply.kind} if reply.kind else {}
        dispatcher.utter_message(text=reply.text, buttons=buttons or None, **marks)


def utc_now() -> datetime:
    """The clock every verification step is judged by."""
    return datetime.now(timezone.utc)


def session_key(tracker: Tracker) -> str:
    """Identifies the current Rasa session: it changes with a new session or /restart.

    A verification is tied to it, so nothing verified carries over to a new session,
    but for one that continues a long conversation (:mod:`bot.core.sessions`).
    """
    return sessions.session_key(tracker.events)


def conversation_of(tracker: Tracker) -> Conversation:
    """The conversation as the verification service knows it.

    The channel is read from the conversation id's prefix, which only the channel
    itself sets (``line:``, ``web:``, ``rest:``), not from the ``input_channel`` a
    message claims.
    """
    return Conversation(
        sender_id=tracker.sender_id,
        session_key=session_key(tracker),
        channel=channel_of(tracker.sender_id) or "unknown",
    )


@contextmanager
def db_session() -> Iterator[Session]:
    """One unit of work on the app database, committed when the block ends.

    Run by an action's work in the action pool (``actions.offloop``), its PostgreSQL
    statements end at the work's deadline, and it rolls back instead of committing
    once the member has been told to try again.
    """
    with session_factory(load_settings().database_url).begin() as session:
        offloop.limit_statements(session)
        yield session
        work = offloop.current_work()
        if work is not None:
            work.may_commit()


def sms_sender() -> SmsSender:
    """The SMS sender the settings select (the demo outbox by default)."""
    return sender_from_settings(load_settings())


def blocking_action(run: BlockingRun) -> Callable[..., Coroutine[Any, Any, Events]]:
    """Make a blocking ``run`` an action's async ``run`` that never blocks the loop.

    The decorated method runs in the action pool (``actions.offloop``) with a
    dispatcher of its own; what it uttered is handed to rasa-sdk's dispatcher on the
    loop (``CollectingDispatcher`` is not thread-safe). When the app database fails or
    the work times out, the member is told politely to try again later and given the
    contact window: no slot changes, nothing they said is lost (it stays in the
    conversation), and a unit of work that had not begun to commit is rolled back.
    """

    @functools.wraps(run)
    async def off_loop(
        self: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> Events:
        own = CollectingDispatcher()
        try:
            events = await offloop.in_thread(run, self, own, tracker, domain)
        except (SQLAlchemyError, offloop.WorkTimedOutError) as error:
            # The class name only: a driver's message can quote the values it was given.
            logger.error("action %s failed: %s", self.name(), type(error).__name__)
            dispatcher.utter_message(text=try_again_later())
            return []
        dispatcher.messages.extend(own.messages)
        return events

    return off_loop


def try_again_later() -> str:
    """The apology for an action that could not reach the app database in time."""
    return (
        "申し訳ありません。ただいまシステムに接続できないため、お手続きを進められません。"
        f"時間をおいてもう一度お試しいただくか、{contact_line(active_profile())} "
        "へお問い合わせください。"
    )
