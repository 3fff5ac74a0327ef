"""Helpers every action adapter shares."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from bot.answers import Reply
from bot.db.session import session_factory
from bot.profiles.loader import cached_profile
from bot.profiles.schema import Profile
from bot.settings import load_settings
from bot.sms import SmsSender, sender_from_settings
from bot.verification import Conversation


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
    """The conversation as the verification service knows it."""
    return Conversation(
        sender_id=tracker.sender_id,
        session_key=session_key(tracker),
        channel=tracker.get_latest_input_channel() or "unknown",
    )


@contextmanager
def db_session() -> Iterator[Session]:
    """One unit of work on the app database, committed when the block ends."""
    with session_factory(load_settings().database_url).begin() as session:
        yield session


def sms_sender() -> SmsSender:
    """The SMS sender the settings select (the demo outbox by default)."""
    return sender_from_settings(load_settings())
