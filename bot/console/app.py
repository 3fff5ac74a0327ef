"""The console's aiohttp application: routes, the guard, error pages, security headers.

:func:`create_app` takes its parts (settings, the app database's session factory, the
tracker store's engine, the rasa server's API, a clock), so tests run it against real
databases with a clock they control. Every response carries strict security headers:
a Content-Security-Policy of the console's own files only (no inline script or style),
no framing, no referrer, no MIME sniffing, and ``Cache-Control: no-store`` on everything
but the style sheet and the script, since pages show personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from bot.cases.notify import ChannelNotifier, Notifier, SmsNotifier
from bot.console import accounts, audit_log, auth, cases, escalations, insights
from bot.console.context import CONSOLE, Console, Handler, public
from bot.console.views import environment, render
from bot.handoff.handback import handed_back_text_for
from bot.handoff.rasa_api import RasaApi
from bot.outbound.sms import sender_from_settings
from bot.policy.profiles.loader import ProfileError, load_profile
from bot.settings import Settings, ensure_secret
from bot.staff.sessions import ABSOLUTE_LIMIT

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# A fixed table, not a directory: nothing else is ever served as a file.
STATIC_FILES: dict[str, tuple[Path, str]] = {
    "/static/console.css": (STATIC_DIR / "console.css", "text/css"),
    "/static/console.js": (STATIC_DIR / "console.js", "text/javascript"),
}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
DATABASE_DOWN = (
    "データベースに接続できないため、処理できませんでした。"
    "しばらくしてから、もう一度お試しください。"
)
UNEXPECTED = (
    "予期しないエラーが発生したため、処理できませんでした。"
    "お手数ですが、しばらくしてからもう一度お試しください。"
)


def utc_now() -> datetime:
    """The wall clock, aware UTC."""
    return datetime.now(timezone.utc)


@public
async def health(request: web.Request) -> web.StreamResponse:
    """``GET /health``: 200 ``ok`` when the server answers (no sign-in)."""
    return web.Response(text="ok")


@public
async def favicon(request: web.Request) -> web.StreamResponse:
    """``GET /favicon.ico``: nothing (browsers ask for it on every page)."""
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})


def _static(path: Path, media_type: str) -> Handler:
    body = path.read_bytes()

    @public
    async def serve(request: web.Request) -> web.StreamResponse:
        # Revalidated on every use: a new version is picked up at once.
        return web.Response(
            body=body,
            content_type=media_type,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    return serve


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers.setdefault("Cache-Control", "no-store")


def _page_error(request: web.Request, status: int, title: str, message: str) -> web.Response:
    if auth.wants_json(request, request.match_info.handler):
        return web.json_response({"error": title, "message": message}, status=status)
    return render(request, "error.html", status=status, title=title, message=message)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Japanese pages for errors; the database away gives 503 and loses nothing typed."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status == 404:
            return _page_error(
                request, 404, "ページが見つかりません", "お探しのページは見つかりませんでした。"
            )
        if error.status == 405:
            return _page_error(request, 405, "ご利用いただけません", "この操作はできません。")
        if error.status == 403:
            return _page_error(request, 403, "ご利用いただけません", auth.FORBIDDEN_TEXT)
        raise
    except SQLAlchemyError as error:
        logger.error(
            "database error on %s %s: %s", request.method, request.path, type(error).__name__
        )
        return await _database_down(request)
    except Exception:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return _page_error(request, 500, "エラーが発生しました", UNEXPECTED)


async def _database_down(request: web.Request) -> web.Response:
    """503; a reply that was being sent is shown again so that it is not lost."""
    if auth.wants_json(request, request.match_info.handler):
        return web.json_response({"error": "unavailable", "message": DATABASE_DOWN}, status=503)
    kept = ""
    if request.method == "POST" and request.path.endswith("/reply"):
        form = await request.post()
        kept = str(form.get("text") or "")
    return render(
        request,
        "error.html",
        status=503,
        title="ただいま処理できません",
        message=DATABASE_DOWN,
        kept_text=kept,
        link=request.path.rsplit("/", 1)[0] if kept else "/",
        link_text="案件の画面へ戻る" if kept else "最初の画面へ戻る",
    )


def published_numbers(settings: Settings) -> tuple[str, ...]:
    """The organization's contact phone and fax from its profile (none if unreadable)."""
    try:
        contact = load_profile(settings.org_id, settings.profiles_dir).contact
    except ProfileError:
        return ()
    return tuple(number for number in (contact.phone, contact.fax) if number)


def allows_longer_extension(settings: Settings) -> bool:
    """Whether the organization's policy allows a longer 「相当の期間」 extension."""
    try:
        timing = load_profile(settings.org_id, settings.profiles_dir).processing_time
    except ProfileError:
        return False
    return timing is not None and timing.longer_extension


def create_app(
    settings: Settings,
    sessions: sessionmaker,
    tracker_engine: Engine,
    rasa_api: RasaApi,
    clock: Callable[[], datetime] = utc_now,
    *,
    notifier: Notifier | None = None,
    absolute: timedelta = ABSOLUTE_LIMIT,
) -> web.Application:
    """The console application.

    Args:
        settings: the product's settings (idle minutes, secure cookie, secret).
        sessions: the app database's session factory (one per process).
        tracker_engine: the engine of Rasa's tracker store.
        rasa_api: the rasa server's HTTP API.
        clock: the current time (aware UTC).
        notifier: how members are told of case extensions and decisions (default:
            their own channel, LINE or SMS, as ``python -m bot.cases`` does).
        absolute: the longest a session lasts after sign-in.
    """
    login_key = hmac.new(
        ensure_secret(settings).encode("utf-8"), b"console-login-csrf", hashlib.sha256
    ).digest()
    console = Console(
        settings=settings,
        sessions=sessions,
        tracker_engine=tracker_engine,
        rasa_api=rasa_api,
        clock=clock,
        notifier=notifier or ChannelNotifier(SmsNotifier(sender_from_settings(settings))),
        templates=environment(),
        login_key=login_key,
        idle=timedelta(minutes=settings.console_idle_minutes),
        absolute=absolute,
        public_numbers=published_numbers(settings),
        longer_extension=allows_longer_extension(settings),
        handback_notice=handed_back_text_for(settings.org_id, settings.profiles_dir),
    )
    app = web.Application(middlewares=[errors, auth.guard], client_max_size=256 * 1024)
    app[CONSOLE] = console
    app.router.add_get("/health", health)
    app.router.add_get("/favicon.ico", favicon)
    for path, (file, media_type) in STATIC_FILES.items():
        app.router.add_get(path, _static(file, media_type))
    app.add_routes(auth.routes())
    app.add_routes(escalations.routes())
    app.add_routes(cases.routes())
    app.add_routes(audit_log.routes())
    app.add_routes(insights.routes())
    app.add_routes(accounts.routes())
    # aiohttp types this signal's callbacks as taking one argument; they get two.
    app.on_response_prepare.append(_security_headers)  # type: ignore[arg-type]
    return app
