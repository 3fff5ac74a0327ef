"""Helpers every action adapter shares."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.core.conversation import Conversation, channel_of
from bot.db.session import session_factory
from bot.outbound.sms import SmsSender, sender_from_settings
from bot.policy.answers import Reply, contact_line
from bot.policy.profiles.loader import cached_profile
from bot.policy.profiles.schema import Profile
from bot.settings import load_settings

logger = logging.getLogger(__name__)
Run = TypeVar("Run", bound=Callable[..., Awaitable[list[dict[str, Any]]]])


def active_profile() -> Profile:
    """The profile of the organization this action server serves."""
    settings = load_settings()
    return cached_profile(settings.org_id, str(settings.profiles_dir))


def send(dispatcher: CollectingDispatcher, replies: Iterable[Reply]) -> None:
    """Utter each reply, with its quick replies as Rasa buttons."""
    for reply in replies:
        buttons = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
        dispatcher.utter_message(text=reply.text, buttons=buttons or None)


def utc_now() -> datetime:
    """The clock every verification step is judged by."""
    return datetime.now(timezone.utc)


def session_key(tracker: Tracker) -> str:
    """Identifies the current Rasa session: it changes with a new session or /restart.

    A verification is tied to it, so nothing verified carries over to a new session.
    """
    key = "start"
    for event in tracker.events:
        if event.get("event") in ("session_started", "restart"):
            key = f"{event.get('event')}@{event.get('timestamp')}"
    return key


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
    """One unit of work on the app database, committed when the block ends."""
    with session_factory(load_settings().database_url).begin() as session:
        yield session


def sms_sender() -> SmsSender:
    """The SMS sender the settings select (the demo outbox by default)."""
    return sender_from_settings(load_settings())


def database_guard(run: Run) -> Run:
    """Wraps an action's ``run``: if the app database is unreachable, apologize politely.

    The member is told to try again later and given the contact window; nothing they
    said is lost (it stays in the conversation) and no slot changes.
    """

    @functools.wraps(run)
    async def guarded(
        self: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        try:
            return await run(self, dispatcher, tracker, domain)
        except SQLAlchemyError as error:
            # The class name only: a driver's message can quote the values it was given.
            logger.error("app database unavailable: %s", type(error).__name__)
            dispatcher.utter_message(
                text="申し訳ありません。ただいまシステムに接続できないため、お手続きを進められません。"
                f"時間をおいてもう一度お試しいただくか、{contact_line(active_profile())} "
                "へお問い合わせください。"
            )
            return []

    return guarded  # type: ignore[return-value]
