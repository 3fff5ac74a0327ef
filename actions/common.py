"""Helpers every action adapter shares."""

from __future__ import annotations

from collections.abc import Iterable

from rasa_sdk.executor import CollectingDispatcher

from bot.answers import Reply
from bot.profiles.loader import cached_profile
from bot.profiles.schema import Profile
from bot.settings import load_settings


def active_profile() -> Profile:
    """The profile of the organization this action server serves."""
    settings = load_settings()
    return cached_profile(settings.org_id, str(settings.profiles_dir))


def send(dispatcher: CollectingDispatcher, replies: Iterable[Reply]) -> None:
    """Utter each reply, with its quick replies as Rasa buttons."""
    for reply in replies:
        buttons = [{"title": b.title, "payload": b.payload} for b in reply.buttons]
        dispatcher.utter_message(text=reply.text, buttons=buttons or None)
