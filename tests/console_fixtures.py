"""The staff console as a real HTTP server on a free loopback port, for ``requests`` clients.

Every test module has it (``pytest_plugins`` of tests/conftest.py). The ``console``
fixture runs :func:`bot.console.app.create_app` over the migrated test database (SQLite
file or PostgreSQL schema) with the demo members, a clock the test moves, staff accounts
of each role, and a Rasa API address where nothing listens (the rasa server is "down"
unless a test gives another one).
"""

from __future__ import annotations

import asyncio
import html.parser
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.orm import sessionmaker

from bot.console.app import create_app
from bot.db.models import AuditLog
from bot.handoff.rasa_api import RasaApi
from bot.handoff.transcripts import dispose_tracker_engines, tracker_engine
from bot.settings import Settings, load_settings
from bot.staff.accounts import create_account

NOW = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)  # Monday 09:00 JST
PASSWORD = "correct horse battery staple"
# name -> role
STAFF = {
    "tanaka": "agent",
    "sato": "agent",
    "suzuki": "privacy_officer",
    "kanri": "admin",
}
HEADERS = {
    "Content-Security-Policy",
    "X-Frame-Options",
    "Referrer-Policy",
    "X-Content-Type-Options",
    "Cache-Control",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Clock:
    """The console's clock, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class ServerThread:
    """An aiohttp application served by an AppRunner on 127.0.0.1 in a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> str:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


class _Forms(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs}
        if tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.hidden.setdefault(found["name"], found.get("value", ""))
        if tag == "meta" and found.get("name"):
            self.meta[found["name"]] = found.get("content", "")


def hidden_field(page: str, name: str) -> str:
    parser = _Forms()
    parser.feed(page)
    return parser.hidden.get(name, "")


def csrf_meta(page: str) -> str:
    parser = _Forms()
    parser.feed(page)
    return parser.meta.get("csrf-token", "")


def text_of(page: str) -> str:
    """The visible text of a page, roughly (tags removed, entities kept as written)."""
    return re.sub(r"<[^>]+>", " ", page)


@dataclass
class Staff:
    """A signed-in browser: a ``requests.Session`` and its CSRF token."""

    base: str
    http: requests.Session
    name: str
    csrf: str = ""

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        response = self.http.get(self.url(path), timeout=30, **kwargs)
        token = (
            csrf_meta(response.text)
            if "text/html" in response.headers.get("Content-Type", "")
            else ""
        )
        if token:
            self.csrf = token
        return response

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf", self.csrf)
        return self.http.post(self.url(path), data=body, timeout=30, **kwargs)

    def fetch_post(
        self, path: str, data: dict[str, Any], token: str | None = None
    ) -> requests.Response:
        """A POST as the page's script makes it: CSRF in the header."""
        headers = {"X-Requested-With": "fetch"}
        if token is not None or self.csrf:
            headers["X-CSRF-Token"] = self.csrf if token is None else token
        return self.http.post(
            self.url(path), data=data, headers=headers, timeout=30, allow_redirects=False
        )


@dataclass
class RunningConsole:
    """The console under test and what a test needs around it."""

    base: str
    clock: Clock
    sessions: sessionmaker
    url: str
    settings: Settings
    server: ServerThread
    accounts: dict[str, int] = field(default_factory=dict)

    def browser(self) -> requests.Session:
        return requests.Session()

    def login_form(self, http: requests.Session) -> str:
        page = http.get(self.base + "/login", timeout=30)
        assert page.status_code == 200, page.status_code
        return hidden_field(page.text, "csrf")

    def attempt(
        self,
        name: str,
        password: str,
        http: requests.Session | None = None,
        *,
        forwarded_for: str | None = None,
    ) -> requests.Response:
        """One sign-in; ``forwarded_for`` sends X-Forwarded-For (as a proxy would)."""
        http = http or self.browser()
        token = self.login_form(http)
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        return http.post(
            self.base + "/login",
            data={"name": name, "password": password, "csrf": token},
            headers=headers,
            timeout=30,
            allow_redirects=False,
        )

    def sign_in(
        self,
        name: str,
        password: str = PASSWORD,
        http: requests.Session | None = None,
        *,
        forwarded_for: str | None = None,
    ) -> Staff:
        http = http or self.browser()
        answer = self.attempt(name, password, http, forwarded_for=forwarded_for)
        assert answer.status_code == 303, (answer.status_code, text_of(answer.text)[:300])
        staff = Staff(self.base, http, name)
        landing = staff.get(answer.headers["Location"])
        assert landing.status_code == 200, landing.status_code
        return staff

    def audit(self, action: str | None = None) -> list[AuditLog]:
        with self.sessions.begin() as session:
            query = sa.select(AuditLog).order_by(AuditLog.id)
            if action is not None:
                query = query.where(AuditLog.action == action)
            return list(session.execute(query).scalars())


def start_console(
    sessions: sessionmaker,
    url: str,
    *,
    settings: Settings | None = None,
    rasa_url: str | None = None,
    clock: Clock | None = None,
) -> RunningConsole:
    settings = settings or replace(load_settings(), database_url=url)
    clock = clock or Clock(NOW)
    rasa = RasaApi(rasa_url or f"http://127.0.0.1:{free_port()}", "console-test-token")
    app = create_app(settings, sessions, tracker_engine(url), rasa, clock)
    server = ServerThread(app)
    base = server.start()
    return RunningConsole(base, clock, sessions, url, settings, server)


@pytest.fixture
def console(demo, migrated_url: str) -> Iterator[RunningConsole]:
    """The console over the demo database, with one account per entry of STAFF."""
    accounts = {}
    with demo.begin() as session:
        for name, role in STAFF.items():
            accounts[name] = create_account(session, name, role, PASSWORD, NOW).id
    running = start_console(demo, migrated_url)
    running.accounts = accounts
    try:
        yield running
    finally:
        running.server.stop()
        dispose_tracker_engines(migrated_url)
