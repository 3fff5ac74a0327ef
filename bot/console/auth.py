"""Signing in and out, the session guard, CSRF, roles, and changing one's password.

- Sign-in: ``POST /login`` with the name, the password and a CSRF token bound to a
  random value in a short-lived cookie (``console_login``): there is no session yet,
  and a forged sign-in (into the attacker's account) is refused. A new session token
  is issued at every sign-in and any session the browser held is ended, so a token
  planted before sign-in is worth nothing (no fixation). Every refusal gets the same
  page after the same scrypt work, and failures are throttled per name, per client
  address (:func:`client_address`) and per name at an address
  (:func:`bot.staff.accounts.authenticate`).
- The session cookie ``console_session`` is HttpOnly, SameSite=Strict, path ``/``,
  Secure when ``CONSOLE_SECURE_COOKIE`` is set; the database keeps only its SHA-256
  (``bot.staff.sessions``).
- :func:`guard` runs before every handler: public handlers pass; everyone else needs a
  live session (else the login page: 302 for pages, 303 after a POST, which is not
  performed, 401 JSON for the page's script) and one of the handler's roles (else
  403); every POST needs the session's CSRF token (form field ``csrf`` or header
  ``X-CSRF-Token``), compared in constant time (else 403, nothing done).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.orm import Session

from bot.console.context import (
    ADMIN,
    EVERYONE,
    STAFF_KEY,
    Console,
    Handler,
    actor_of,
    allow,
    console_of,
    public,
    staff_of,
)
from bot.console.views import redirect, render, see_other
from bot.db.audit import audit
from bot.db.models import StaffRole
from bot.staff.accounts import (
    AccountError,
    SignInPolicy,
    authenticate,
    change_password,
    japanese,
)
from bot.staff.sessions import (
    StaffSessionView,
    check_session,
    create_session,
    end_session,
)

logger = logging.getLogger(__name__)

SESSION_COOKIE = "console_session"
LOGIN_COOKIE = "console_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
FETCH_HEADER = "X-Requested-With"
# A local path to return to after sign-in: no scheme, no host, no "//" or "\" tricks.
_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~/?=&%]*")
MAX_NEXT_CHARS = 512

# X-Forwarded-For hops read at most (a proxy chain is short; the header is not).
MAX_FORWARDED_HOPS = 16
SIGNED_OUT_JSON = "サインインの有効期限が切れました。お手数ですが、もう一度サインインしてください。"
FORBIDDEN_TEXT = "この画面・操作は、あなたの役割では利用できません。"
CSRF_TEXT = (
    "この操作は受け付けられませんでした（確認用のトークンが一致しません）。"
    "お手数ですが、画面を読み込み直してから、もう一度お試しください。"
)


def sign_in_failed(max_delay_minutes: int) -> str:
    """The one answer to every failed sign-in, whatever the cause.

    A wrong name, a wrong or over-long password, a deactivated account and an attempt
    held back by the throttle all get these words, so the page tells nobody which names
    exist or which are being held back.
    """
    return (
        "サインインできませんでした。名前とパスワードをご確認ください。"
        "失敗が続くと、しばらくの間（最長"
        f"{max_delay_minutes}分）サインインを受け付けなくなります。"
        "その場合は、時間をおいてからもう一度お試しください。"
    )


@lru_cache(maxsize=8)
def _networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network, strict=False) for network in trusted)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        found = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(request: web.Request, trusted_proxies: tuple[str, ...] = ()) -> str:
    """The client address sign-in failures are counted under.

    The TCP peer (``request.remote``), unless it is one of ``trusted_proxies``
    (``CONSOLE_TRUSTED_PROXIES``, e.g. the nginx in front of the console): then the
    nearest address in ``X-Forwarded-For`` that is not a trusted proxy, read from the
    right, since everything left of it is whatever the client chose to send. Without
    trusted proxies the header is ignored: anybody can write it. An IPv6 address
    counts as its /64 (one host usually holds the whole network).
    """
    networks = _networks(tuple(trusted_proxies))
    chosen = _ip(request.remote or "")
    if _trusted(chosen, networks):
        hops = [
            hop.strip()
            for value in request.headers.getall("X-Forwarded-For", [])
            for hop in value.split(",")
            if hop.strip()
        ][-MAX_FORWARDED_HOPS:]
        for hop in reversed(hops):
            chosen = _ip(hop)
            if not _trusted(chosen, networks):
                break
    if chosen is None:
        # A garbled hop after a trusted proxy, or no peer address at all: one key for
        # all of them, which only throttles more.
        return "unknown"
    if isinstance(chosen, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{chosen}/64", strict=False))
    return str(chosen)


def signin_policy(console: Console) -> SignInPolicy:
    """The sign-in throttle of this console: its key derives from the app secret."""
    key = hmac.new(console.login_key, b"console-signin-throttle", hashlib.sha256).digest()
    return SignInPolicy(
        key=key, max_delay=timedelta(minutes=console.settings.console_signin_max_delay_minutes)
    )


def home_of(role: StaffRole) -> str:
    """Where a role starts: administrators have no member work, so their accounts page."""
    return "/accounts" if role is StaffRole.ADMIN else "/queue"


def safe_next(value: object) -> str | None:
    """``value`` if it is a path on this site to go back to after sign-in, else None."""
    if not isinstance(value, str) or len(value) > MAX_NEXT_CHARS:
        return None
    if not _LOCAL_PATH.fullmatch(value) or value.startswith(("/login", "/logout")):
        return None
    return value


def login_token(key: bytes, nonce: str) -> str:
    """The sign-in form's CSRF token for the nonce in the browser's login cookie."""
    return hmac.new(key, nonce.encode("utf-8"), hashlib.sha256).hexdigest()


def same(given: object, expected: str) -> bool:
    """Constant-time comparison of a submitted token with the expected one."""
    if not isinstance(given, str) or not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _cookie_options(console: Console) -> dict[str, object]:
    return {
        "httponly": True,
        "samesite": "Strict",
        "secure": console.settings.console_secure_cookie,
        "path": "/",
    }


def wants_json(request: web.Request, handler: object) -> bool:
    """Whether the caller is the page's script (answered in JSON, never redirected)."""
    return bool(getattr(handler, "console_fetch", False)) or request.headers.get(
        FETCH_HEADER, ""
    ).lower() in ("fetch", "xmlhttprequest")


def _signed_out(request: web.Request, as_json: bool, reason: str | None) -> web.Response:
    expired = reason in ("expired", "inactive", "ended")
    notice = "expired" if expired else "signin"
    response: web.Response
    if as_json:
        response = web.json_response(
            {"error": "signed_out", "message": SIGNED_OUT_JSON, "login": f"/login?notice={notice}"},
            status=401,
        )
    else:
        if request.method in ("GET", "HEAD"):
            back = safe_next(request.path_qs)
        else:
            # The POST is not performed; after signing in, back to the page it came from.
            parts = request.path.rstrip("/").split("/")
            back = safe_next("/".join(parts[:-1])) if len(parts) > 3 else None
        location = f"/login?notice={notice}"
        if back:
            location += f"&next={quote(back, safe='')}"
        response = redirect(location, 302 if request.method in ("GET", "HEAD") else 303)
    if request.cookies.get(SESSION_COOKIE):
        response.del_cookie(SESSION_COOKIE, path="/")
    return response


def refusal(request: web.Request, as_json: bool, text: str, status: int = 403) -> web.Response:
    """A refusal in Japanese: JSON for the page's script, a page otherwise."""
    if as_json:
        return web.json_response({"error": "forbidden", "message": text}, status=status)
    return render(request, "error.html", status=status, title="ご利用いただけません", message=text)


async def _audit_refusal(
    console: Console, staff: StaffSessionView, action: str, request: web.Request
) -> None:
    def work(session: Session) -> None:
        audit(
            session,
            console.now(),
            action,
            f"staff:{staff.name}",
            staff_account_id=staff.account_id,
            method=request.method,
            path=request.path,
        )

    await console.unit(work)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sign-in, role and CSRF checks for every request (see the module docstring)."""
    route = request.match_info.handler
    if getattr(route, "console_public", False):
        return await handler(request)
    console = console_of(request)
    as_json = wants_json(request, route)
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return _signed_out(request, as_json, None)
    passive = bool(getattr(route, "console_passive", False))
    now = console.now()
    checked = await console.unit(
        lambda session: check_session(
            session, token, now, console.idle, console.absolute, touch=not passive
        )
    )
    if checked.view is None:
        return _signed_out(request, as_json, checked.reason)
    staff = checked.view
    request[STAFF_KEY] = staff
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception
    roles = getattr(route, "console_roles", None)
    if not roles or staff.role not in roles:
        await _audit_refusal(console, staff, "console.forbidden", request)
        return refusal(request, as_json, FORBIDDEN_TEXT)
    if request.method not in ("GET", "HEAD"):
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            form = await request.post()
            field = form.get(CSRF_FIELD)
            given = field if isinstance(field, str) else None
        if not same(given, staff.csrf_token):
            await _audit_refusal(console, staff, "console.csrf_rejected", request)
            return refusal(request, as_json, CSRF_TEXT)
    return await handler(request)


# --- signing in and out ----------------------------------------------------------------


def _login_page(
    request: web.Request,
    nonce: str,
    *,
    error: str | None = None,
    name: str = "",
    next_path: str | None = None,
    status: int = 200,
) -> web.Response:
    console = console_of(request)
    response = render(
        request,
        "login.html",
        status=status,
        login_csrf=login_token(console.login_key, nonce),
        error=error,
        name=name,
        next_path=next_path or "",
    )
    response.set_cookie(LOGIN_COOKIE, nonce, **_cookie_options(console))  # type: ignore[arg-type]
    return response


@public
async def login_form(request: web.Request) -> web.StreamResponse:
    """``GET /login``: the sign-in form (or the start page for someone signed in)."""
    console = console_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        now = console.now()
        checked = await console.unit(
            lambda session: check_session(
                session, token, now, console.idle, console.absolute, touch=False
            )
        )
        if checked.view is not None:
            raise web.HTTPFound(home_of(checked.view.role))
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = _login_page(request, nonce, next_path=safe_next(request.query.get("next")))
    if token:
        response.del_cookie(SESSION_COOKIE, path="/")
    return response


@public
async def login(request: web.Request) -> web.StreamResponse:
    """``POST /login``: check the password, start a new session, set the cookie."""
    console = console_of(request)
    form = await request.post()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not same(form.get(CSRF_FIELD), login_token(console.login_key, nonce)):
        response = render(
            request,
            "error.html",
            status=403,
            title="ご利用いただけません",
            message=CSRF_TEXT,
            link="/login",
            link_text="サインインの画面へ",
        )
        return response
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    next_path = safe_next(form.get("next"))
    if not name or not password:
        return _login_page(
            request,
            nonce,
            error="名前とパスワードを入力してください。",
            name=name,
            next_path=next_path,
            status=400,
        )
    previous = request.cookies.get(SESSION_COOKIE, "")
    now = console.now()
    address = client_address(request, console.settings.console_trusted_proxies)
    policy = signin_policy(console)

    def work(session: Session) -> tuple[str, StaffSessionView] | None:
        account = authenticate(session, name, password, now, address=address, policy=policy)
        if account is None:
            return None
        if previous:
            end_session(session, previous, now)
        return create_session(session, account.id, now)

    started = await console.unit(work)
    if started is None:
        failed = sign_in_failed(console.settings.console_signin_max_delay_minutes)
        return _login_page(request, nonce, error=failed, name=name, next_path=next_path)
    token, staff = started
    target = next_path if next_path and staff.role is not ADMIN else home_of(staff.role)
    response = redirect(target)
    response.set_cookie(SESSION_COOKIE, token, **_cookie_options(console))  # type: ignore[arg-type]
    return response


@allow(*EVERYONE)
async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /logout``: end the session on the server, drop the cookie."""
    console = console_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    now = console.now()
    await console.unit(lambda session: end_session(session, token, now))
    response = redirect("/login", notice="signed_out")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@allow(*EVERYONE)
async def home(request: web.Request) -> web.StreamResponse:
    """``GET /``: the start page of the signed-in role."""
    raise web.HTTPFound(home_of(staff_of(request).role))


# --- one's own password ------------------------------------------------------------------


@allow(*EVERYONE)
async def password_form(request: web.Request) -> web.StreamResponse:
    """``GET /password``: the form to change one's own password."""
    return render(request, "password.html", error=None)


@allow(*EVERYONE)
async def password_change(request: web.Request) -> web.StreamResponse:
    """``POST /password``: change one's own password; other sessions of it end."""
    console = console_of(request)
    staff = staff_of(request)
    form = await request.post()
    current = str(form.get("current") or "")
    new = str(form.get("new") or "")
    if new != str(form.get("again") or ""):
        return render(
            request, "password.html", status=400, error="新しいパスワードが一致しません。"
        )
    now: datetime = console.now()

    def work(session: Session) -> str | None:
        try:
            change_password(session, staff.account_id, current, new, now, keep_session_id=staff.id)
        except AccountError as error:
            # Caught inside the unit of work: the audit row of a failed attempt stays.
            return japanese(error)
        return None

    error = await console.unit(work)
    if error is not None:
        return render(request, "password.html", status=400, error=error)
    logger.info("password changed by %s", actor_of(request))
    raise see_other("/password", "password_changed")


def routes() -> list[web.RouteDef]:
    """The sign-in, sign-out and password routes."""
    return [
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/", home),
        web.get("/password", password_form),
        web.post("/password", password_change),
    ]
