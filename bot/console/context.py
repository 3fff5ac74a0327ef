"""What every console handler needs: the application's parts, who is signed in, the rules.

Access is declared on each route handler and enforced in one place
(:func:`bot.console.auth.guard`): :func:`public` (no sign-in: the login page, the health
check, the style sheet and script) or :func:`allow` with the roles that may use it. A
handler with neither is refused to everyone, so a forgotten declaration fails closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import jinja2
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bot.cases.notify import Notifier
from bot.db.models import StaffRole
from bot.handoff.rasa_api import RasaApi
from bot.settings import Settings
from bot.staff.sessions import StaffSessionView

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

AGENT = StaffRole.AGENT
OFFICER = StaffRole.PRIVACY_OFFICER
ADMIN = StaffRole.ADMIN
# Who works member matters: escalations and cases. Administrators never see member data.
CASEWORKERS = (AGENT, OFFICER)
EVERYONE = (AGENT, OFFICER, ADMIN)


@dataclass
class Console:
    """The running console's parts, shared by every request.

    Attributes:
        settings: the product's settings.
        sessions: the app database's session factory (one per process).
        tracker_engine: the engine of Rasa's tracker store (transcripts).
        rasa_api: the rasa server's HTTP API (resume, relay).
        clock: the current time (aware UTC); tests pass a controllable one.
        notifier: how members are told about case extensions and decisions.
        templates: the Jinja2 environment (autoescaping).
        login_key: key of the sign-in form's CSRF tokens.
        idle: inactivity after which a session ends.
        absolute: time after sign-in after which a session ends regardless.
        public_numbers: the organization's published phone and fax numbers, which
            transcripts leave readable (they are not anybody's personal data).
        longer_extension: the policy allows extending past its cap by a 「相当の期間」
            where processing is especially heavy.
        handback_notice: what the member is told when staff hand the conversation
            back, in the organization's words (:mod:`bot.handoff.handback`).
    """

    settings: Settings
    sessions: sessionmaker
    tracker_engine: Engine
    rasa_api: RasaApi
    clock: Callable[[], datetime]
    notifier: Notifier
    templates: jinja2.Environment
    login_key: bytes
    idle: timedelta
    absolute: timedelta
    public_numbers: tuple[str, ...] = ()
    longer_extension: bool = False
    handback_notice: str = ""

    def now(self) -> datetime:
        """The current time, from the console's clock."""
        return self.clock()

    async def unit(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(session, *args)`` in one transaction, in a worker thread.

        The database calls are synchronous; running them in a thread keeps the event
        loop serving other staff meanwhile. Committed when ``work`` returns, rolled
        back when it raises.
        """
        return await asyncio.to_thread(self._unit, work, *args)

    def _unit(self, work: Callable[..., T], *args: Any) -> T:
        with self.sessions.begin() as session:
            return work(session, *args)

    async def tracker(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``work(connection, *args, **kwargs)`` on the tracker store, in a worker thread.

        The transcripts' counterpart of :meth:`unit`: one connection to Rasa's tracker
        store (read only), returned to the pool when ``work`` is done.
        """
        return await asyncio.to_thread(self._tracker, work, args, kwargs)

    def _tracker(self, work: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        with self.tracker_engine.connect() as connection:
            return work(connection, *args, **kwargs)

    async def thread(self, work: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (Rasa's API, the reply relay) in a worker thread."""
        return await asyncio.to_thread(work, *args)


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
STAFF_KEY = "console_staff"


def console_of(request: web.Request) -> Console:
    """The console serving ``request``."""
    return request.app[CONSOLE]


def staff_of(request: web.Request) -> StaffSessionView:
    """The signed-in staff member of ``request`` (set by the guard)."""
    staff = request.get(STAFF_KEY)
    if not isinstance(staff, StaffSessionView):
        raise web.HTTPForbidden()
    return staff


def actor_of(request: web.Request) -> str:
    """The staff name actions are recorded under."""
    return staff_of(request).name


def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without signing in."""
    handler.console_public = True  # type: ignore[attr-defined]
    return handler


def allow(
    *roles: StaffRole, fetch: bool = False, passive: bool = False
) -> Callable[[Handler], Handler]:
    """Mark a handler as reachable by the signed-in staff of ``roles``.

    Args:
        roles: the roles that may use it.
        fetch: called by the page's script (answers 401/403 as JSON, not a redirect).
        passive: not a staff action (the page's polling): does not keep the session
            alive, so an open page does not defeat the idle timeout.
    """

    def mark(handler: Handler) -> Handler:
        handler.console_roles = frozenset(roles)  # type: ignore[attr-defined]
        handler.console_fetch = fetch  # type: ignore[attr-defined]
        handler.console_passive = passive  # type: ignore[attr-defined]
        return handler

    return mark
