"""The console's sign-in, sessions, CSRF, roles and security headers, over real HTTP.

Each test runs the console as a real aiohttp server on a loopback port over the migrated
SQLite file and PostgreSQL schema, and talks to it with ``requests`` as a browser would.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa

from bot.console.app import CONTENT_SECURITY_POLICY
from bot.core.conversation import Conversation
from bot.db.models import Escalation, StaffAccount, StaffSession
from bot.handoff import escalations
from bot.settings import load_settings
from bot.staff import accounts
from bot.staff.accounts import create_account, set_active
from tests.console_fixtures import (
    HEADERS,
    NOW,
    PASSWORD,
    RunningConsole,
    hidden_field,
    start_console,
    text_of,
)

FAILED = "サインインできませんでした。名前とパスワードをご確認ください。"


def escalation(console: RunningConsole, sender: str = "c1", reason: str = "complaint") -> int:
    with console.sessions.begin() as session:
        view = escalations.escalate(
            session, Conversation(sender, "s", "socketio"), reason, console.clock()
        )
    return view.id


def status_of(console: RunningConsole, escalation_id: int) -> str:
    with console.sessions.begin() as session:
        return session.get(Escalation, escalation_id).status


def live_sessions(console: RunningConsole, name: str) -> list[StaffSession]:
    with console.sessions.begin() as session:
        return list(
            session.execute(
                sa.select(StaffSession)
                .join(StaffAccount, StaffAccount.id == StaffSession.account_id)
                .where(StaffAccount.name == name, StaffSession.ended_at.is_(None))
            ).scalars()
        )


def session_cookie(response: requests.Response) -> str:
    return response.headers.get("Set-Cookie", "")


# --- signing in ---------------------------------------------------------------------------


def test_sign_in_sets_a_strict_http_only_cookie_whose_hash_only_is_stored(console):
    answer = console.attempt("tanaka", PASSWORD)
    assert answer.status_code == 303 and answer.headers["Location"] == "/queue"
    cookie = answer.cookies["console_session"]
    header = session_cookie(answer)
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    assert "Secure" not in header  # CONSOLE_SECURE_COOKIE is off in the tests
    [row] = live_sessions(console, "tanaka")
    assert row.id == hashlib.sha256(cookie.encode()).hexdigest() and row.id != cookie
    login = console.audit("staff.login")
    assert [entry.actor for entry in login] == ["staff:tanaka"]
    assert PASSWORD not in str([entry.detail for entry in console.audit()])
    assert cookie not in str([entry.detail for entry in console.audit()])


def test_the_secure_flag_follows_the_setting(demo, migrated_url):
    with demo.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
    settings = replace(load_settings(), database_url=migrated_url, console_secure_cookie=True)
    running = start_console(demo, migrated_url, settings=settings)
    try:
        http = requests.Session()
        form = http.get(running.base + "/login")
        assert "Secure" in form.headers["Set-Cookie"]
        # requests keeps Secure cookies for https only: hand the nonce back explicitly.
        nonce = form.cookies["console_login"]
        answer = http.post(
            running.base + "/login",
            data={"name": "tanaka", "password": PASSWORD, "csrf": hidden_field(form.text, "csrf")},
            cookies={"console_login": nonce},
            allow_redirects=False,
        )
        assert answer.status_code == 303 and "Secure" in session_cookie(answer)
    finally:
        running.server.stop()


def test_wrong_password_and_unknown_name_get_the_same_answer(console):
    wrong = console.attempt("tanaka", PASSWORD + "x")
    unknown = console.attempt("nobody", PASSWORD)
    for answer in (wrong, unknown):
        assert answer.status_code == 200
        assert FAILED in answer.text
        assert "console_session" not in answer.cookies

    assert same_page(wrong, "tanaka") == same_page(unknown, "nobody")
    assert [entry.action for entry in console.audit()][-2:] == [
        "staff.login_failed",
        "staff.login_failed",
    ]
    assert live_sessions(console, "tanaka") == []


def same_page(answer: requests.Response, name: str) -> str:
    """The page without the form token (each browser has its own) and the echoed name."""
    return re.sub(r'value="[0-9a-f]{64}"', "", answer.text).replace(f'value="{name}"', "")


def deactivate(console: RunningConsole, name: str) -> None:
    with console.sessions.begin() as session:
        set_active(session, console.accounts[name], False, "kanri", console.clock())


def test_every_failed_sign_in_gets_the_same_page_after_one_bounded_scrypt(console, monkeypatch):
    deactivate(console, "sato")
    for _ in range(4):  # suzuki now waits at this address (three failures are free)
        assert FAILED in console.attempt("suzuki", "not the password!").text
    calls: list[int] = []
    real = accounts.hash_password

    def counted(password: str, salt: str) -> str:
        calls.append(len(password))
        return real(password, salt)

    monkeypatch.setattr(accounts, "hash_password", counted)
    paths = {
        "unknown name": ("nobody", PASSWORD),
        "wrong password": ("tanaka", PASSWORD + "x"),
        # The right password followed by more: it used to skip scrypt, which told that
        # the name existed.
        "over-long password": ("tanaka", PASSWORD + "x" * 300),
        "inactive account": ("sato", PASSWORD),
        "throttled account, right password": ("suzuki", PASSWORD),
    }
    pages = {}
    for path, (name, password) in paths.items():
        calls.clear()
        answer = console.attempt(name, password)
        assert answer.status_code == 200 and FAILED in answer.text, path
        assert "console_session" not in answer.cookies, path
        assert len(calls) == 1 and calls[0] <= accounts.MAX_PASSWORD_CHARS, (path, calls)
        pages[path] = same_page(answer, name)
    assert len(set(pages.values())) == 1, list(pages)
    assert "最長15分" in next(iter(pages.values()))
    why = [entry.detail.get("why") for entry in console.audit("staff.login_failed")][-5:]
    assert why == ["unknown", "wrong_password", "too_long", "inactive", "throttled"]
    assert live_sessions(console, "suzuki") == []


def test_the_wait_grows_with_each_failure_and_nothing_stays_locked(console):
    for _ in range(4):
        assert FAILED in console.attempt("tanaka", "not the password!").text
    # Fourth failure: one minute, during which even the right password is refused.
    console.clock.advance(seconds=59)
    assert FAILED in console.attempt("tanaka", PASSWORD).text
    console.clock.advance(seconds=1)
    assert FAILED in console.attempt("tanaka", "not the password!").text  # fifth: two
    console.clock.advance(seconds=119)
    assert FAILED in console.attempt("tanaka", PASSWORD).text
    console.clock.advance(seconds=1)
    assert console.attempt("tanaka", PASSWORD).status_code == 303
    waits = [entry.detail["seconds"] for entry in console.audit("staff.throttled")]
    assert waits == [60, 120]
    assert console.audit("staff.locked") == []


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(console):
    # Without CONSOLE_TRUSTED_PROXIES the header is anybody's: every failure counts under
    # the TCP peer, so changing the header buys no new attempts.
    for number in range(11):
        assert (
            FAILED
            in console.attempt(
                f"name{number}", "not the password!", forwarded_for=f"192.0.2.{number}"
            ).text
        )
    assert FAILED in console.attempt("tanaka", PASSWORD, forwarded_for="192.0.2.200").text
    addresses = {entry.detail["address"] for entry in console.audit("staff.login_failed")}
    assert addresses == {"127.0.0.1"}
    console.clock.advance(minutes=1)
    assert console.attempt("tanaka", PASSWORD).status_code == 303


def test_behind_a_trusted_proxy_an_attacker_elsewhere_does_not_keep_staff_out(demo, migrated_url):
    with demo.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
    settings = replace(
        load_settings(), database_url=migrated_url, console_trusted_proxies=("127.0.0.1/32",)
    )
    running = start_console(demo, migrated_url, settings=settings)
    office = "198.51.100.7"
    try:
        running.sign_in("tanaka", forwarded_for=office)  # the office becomes a known address
        # An attacker from many addresses; a spoofed left-most hop changes nothing: the
        # address is the nearest one the trusted proxy saw.
        for host in range(12):
            answer = running.attempt(
                "tanaka", "not the password!", forwarded_for=f"{office}, 192.0.2.{host}"
            )
            assert FAILED in answer.text
        counted = {entry.detail["address"] for entry in running.audit("staff.login_failed")}
        assert counted == {f"192.0.2.{host}" for host in range(12)}
        # The staff member still signs in from the office at once...
        assert running.attempt("tanaka", PASSWORD, forwarded_for=office).status_code == 303
        # ...and from a new address once the name-wide wait (one minute here) has passed.
        new = "233.252.0.5"
        assert FAILED in running.attempt("tanaka", PASSWORD, forwarded_for=new).text
        running.clock.advance(minutes=1)
        assert running.attempt("tanaka", PASSWORD, forwarded_for=new).status_code == 303
    finally:
        running.server.stop()


def test_the_login_form_needs_its_csrf_token(console):
    http = requests.Session()
    console.login_form(http)  # the nonce cookie is set
    for token in ("", "forged"):
        answer = http.post(
            console.base + "/login",
            data={"name": "tanaka", "password": PASSWORD, "csrf": token},
            allow_redirects=False,
            timeout=30,
        )
        assert answer.status_code == 403 and "トークン" in answer.text
    # A token from another browser's form does not fit this browser's nonce.
    other = requests.Session()
    token = console.login_form(other)
    stranger = requests.Session()
    answer = stranger.post(
        console.base + "/login",
        data={"name": "tanaka", "password": PASSWORD, "csrf": token},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 403
    assert live_sessions(console, "tanaka") == [] and console.audit("staff.login") == []


def test_a_new_session_id_at_sign_in_and_the_old_one_ends(console):
    http = requests.Session()
    http.cookies.set("console_session", "planted-by-an-attacker", domain="127.0.0.1", path="/")
    second_tab = console.login_form(http)
    console.sign_in("tanaka", http=http)
    issued = http.cookies.get("console_session")
    assert issued and issued != "planted-by-an-attacker"
    # Signing in again in the same browser (from the other tab, here as someone else)
    # rotates the id and ends the session that was there.
    again = http.post(
        console.base + "/login",
        data={"name": "sato", "password": PASSWORD, "csrf": second_tab},
        allow_redirects=False,
    )
    assert again.status_code == 303
    assert http.cookies.get("console_session") not in (None, issued)
    assert live_sessions(console, "tanaka") == []
    assert len(live_sessions(console, "sato")) == 1
    stale = requests.Session()
    stale.cookies.set("console_session", issued)
    assert stale.get(console.base + "/queue", allow_redirects=False).status_code == 302


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(console):
    http = requests.Session()
    first = http.get(console.base + "/cases?status=received", allow_redirects=False)
    location = first.headers["Location"]
    assert first.status_code == 302 and location.startswith("/login?")
    assert parse_qs(urlsplit(location).query)["next"] == ["/cases?status=received"]
    page = http.get(console.base + location)
    assert "この画面を見るにはサインインしてください" in page.text
    token = console.login_form(http)
    answer = http.post(
        console.base + "/login",
        data={
            "name": "tanaka",
            "password": PASSWORD,
            "csrf": token,
            "next": "/cases?status=received",
        },
        allow_redirects=False,
    )
    assert answer.headers["Location"] == "/cases?status=received"
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/login"):
        answer = console.attempt("tanaka", PASSWORD)  # fresh browser
        http = requests.Session()
        token = console.login_form(http)
        answer = http.post(
            console.base + "/login",
            data={"name": "tanaka", "password": PASSWORD, "csrf": token, "next": evil},
            allow_redirects=False,
        )
        assert answer.headers["Location"] == "/queue", evil


# --- session expiry -----------------------------------------------------------------------


def test_an_idle_session_expires_politely_and_its_post_is_not_performed(console):
    staff = console.sign_in("tanaka")
    waiting = escalation(console)
    console.clock.advance(minutes=29)
    assert staff.get("/queue").status_code == 200  # activity: the idle time starts again
    console.clock.advance(minutes=30, seconds=1)
    answer = staff.post(f"/escalations/{waiting}/claim")
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/login?notice=expired")
    assert status_of(console, waiting) == "waiting"
    login = staff.get(answer.headers["Location"])
    assert (
        "一定時間操作がなかったため" in login.text
        and "もう一度サインインしてください" in login.text
    )
    [expired] = console.audit("staff.session_expired")
    assert expired.actor == "staff:tanaka" and expired.detail["limit"] == "idle"
    # Ended for good: the same cookie stays refused even if time went backwards.
    console.clock.advance(minutes=-60)
    assert staff.get("/queue").status_code == 302


def test_the_page_script_gets_401_json_and_polling_does_not_keep_a_session_alive(console):
    staff = console.sign_in("tanaka")
    waiting = escalation(console)
    for _ in range(2):
        console.clock.advance(minutes=12)
        polled = staff.http.get(
            staff.url(f"/escalations/{waiting}/lines?after=0"),
            headers={"X-Requested-With": "fetch"},
            allow_redirects=False,
        )
        assert polled.status_code in (200, 503)  # 503: this database has no events table
    console.clock.advance(minutes=7)  # 31 minutes after the last page the person opened
    answer = staff.http.get(
        staff.url(f"/escalations/{waiting}/lines?after=0"), allow_redirects=False
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "signed_out" and "サインイン" in answer.json()["message"]


def test_a_session_ends_twelve_hours_after_sign_in_however_active(console):
    staff = console.sign_in("tanaka")
    for _ in range(24):
        console.clock.advance(minutes=29)
        assert staff.get("/queue").status_code == 200
    console.clock.advance(minutes=25)  # 12 h 01 min after sign-in
    answer = staff.get("/queue")
    assert answer.status_code == 302 and "notice=expired" in answer.headers["Location"]
    [expired] = console.audit("staff.session_expired")
    assert expired.detail["limit"] == "absolute"


# --- signing out ---------------------------------------------------------------------------


def test_sign_out_ends_the_session_on_the_server(console):
    staff = console.sign_in("tanaka")
    token = staff.http.cookies.get("console_session")
    assert staff.post("/logout", csrf=False).status_code == 403  # CSRF applies here too
    assert len(live_sessions(console, "tanaka")) == 1
    answer = staff.post("/logout")
    assert answer.status_code == 303 and answer.headers["Location"] == "/login?notice=signed_out"
    assert live_sessions(console, "tanaka") == []
    assert [entry.actor for entry in console.audit("staff.logout")] == ["staff:tanaka"]
    replay = requests.Session()
    replay.cookies.set("console_session", token)
    assert replay.get(console.base + "/queue", allow_redirects=False).status_code == 302


# --- CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
def test_a_post_without_the_right_csrf_token_is_refused_and_changes_nothing(console, token):
    staff = console.sign_in("tanaka")
    waiting = escalation(console)
    data = {} if token is None else {"csrf": token}
    answer = staff.post(f"/escalations/{waiting}/claim", data, csrf=False)
    assert answer.status_code == 403
    assert "画面を読み込み直して" in answer.text and "もう一度お試しください" in answer.text
    assert '<html lang="ja">' in answer.text
    assert status_of(console, waiting) == "waiting"
    assert len(console.audit("console.csrf_rejected")) == 1
    # Another session's token is no better.
    other = console.sign_in("sato")
    assert (
        staff.post(f"/escalations/{waiting}/claim", {"csrf": other.csrf}, csrf=False).status_code
        == 403
    )
    assert staff.post(f"/escalations/{waiting}/claim").status_code == 303
    assert status_of(console, waiting) == "in_progress"


def test_the_csrf_header_works_for_fetch_posts_and_is_checked(console):
    staff = console.sign_in("tanaka")
    waiting = escalation(console)
    refused = staff.fetch_post(f"/escalations/{waiting}/reveal", {"event_id": 1, "field": 0}, "x")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert console.audit("console.revealed") == []


# --- roles -------------------------------------------------------------------------------------


def test_a_signed_out_visitor_gets_only_the_login_page(console):
    http = requests.Session()
    for path in (
        "/",
        "/queue",
        "/cases",
        "/audit",
        "/accounts",
        "/password",
        "/escalations/1",
        "/nothing-here",
    ):
        answer = http.get(console.base + path, allow_redirects=False)
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/login"), path
    for path in ("/escalations/1/claim", "/accounts", "/logout", "/cases/PR-2026-000001/move"):
        answer = http.post(console.base + path, data={}, allow_redirects=False)
        assert answer.status_code == 303 and answer.headers["Location"].startswith("/login"), path
    fetched = http.post(
        console.base + "/escalations/1/reveal",
        data={"event_id": 1, "field": 0},
        allow_redirects=False,
    )
    assert fetched.status_code == 401 and fetched.json()["error"] == "signed_out"
    assert http.get(console.base + "/health").text == "ok"
    assert http.get(console.base + "/static/console.css").status_code == 200
    assert http.get(console.base + "/login").status_code == 200


def test_an_agent_cannot_open_the_audit_log_accounts_or_decide(console):
    staff = console.sign_in("tanaka")
    for path in ("/audit", "/accounts"):
        answer = staff.get(path)
        assert answer.status_code == 403 and "あなたの役割では利用できません" in answer.text, path
    refused = staff.post("/cases/PR-2026-000001/decide", {"outcome": "disclosed"})
    assert refused.status_code == 403
    assert len(console.audit("console.forbidden")) == 3


def test_an_admin_sees_accounts_and_no_member_data(console):
    admin = console.sign_in("kanri")
    assert admin.get("/").headers["Location"] == "/accounts"
    waiting = escalation(console)
    for path in ("/queue", "/cases", f"/escalations/{waiting}", "/audit", "/cases/PR-2026-000001"):
        assert admin.get(path).status_code == 403, path
    assert admin.post(f"/escalations/{waiting}/claim").status_code == 403
    assert status_of(console, waiting) == "waiting"
    page = admin.get("/accounts")
    assert page.status_code == 200 and 'href="/queue"' not in page.text
    assert console.audit("console.viewed") == []


def test_an_officer_reaches_queue_cases_and_audit_but_not_accounts(console):
    officer = console.sign_in("suzuki")
    for path in ("/queue", "/cases", "/audit"):
        assert officer.get(path).status_code == 200, path
    assert officer.get("/accounts").status_code == 403


# --- headers and pages ---------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(console):
    http = requests.Session()
    answers = [
        http.get(console.base + "/login"),
        http.get(console.base + "/queue", allow_redirects=False),
        http.get(console.base + "/health"),
        http.get(console.base + "/static/console.js"),
    ]
    staff = console.sign_in("tanaka")
    answers += [
        staff.get("/queue"),
        staff.get("/audit"),
        staff.get("/nothing"),
        staff.post("/logout", csrf=False),
    ]
    for answer in answers:
        missing = HEADERS - set(answer.headers)
        assert not missing, (answer.url, missing)
        assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "default-src 'self'" in CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answers[4].headers["Cache-Control"] == "no-store"
    assert answers[3].headers["Cache-Control"] == "no-cache"  # the script: no personal data


def test_pages_are_japanese_without_inline_script(console):
    staff = console.sign_in("suzuki")
    for path in ("/queue", "/cases", "/audit", "/password"):
        page = staff.get(path).text
        assert '<html lang="ja">' in page
        assert "<script>" not in page and "style=" not in page and "onclick" not in page
        assert '<script src="/static/console.js" defer></script>' in page
    missing = staff.get("/nothing")
    assert missing.status_code == 404 and "ページが見つかりません" in missing.text


def test_a_staff_member_changes_their_password_and_other_sessions_end(console):
    here = console.sign_in("tanaka")
    elsewhere = console.sign_in("tanaka")
    wrong = here.post(
        "/password",
        {"current": "nope", "new": "another good password", "again": "another good password"},
    )
    assert wrong.status_code == 400 and "現在のパスワードが違います" in wrong.text
    short = here.post("/password", {"current": PASSWORD, "new": "short", "again": "short"})
    assert short.status_code == 400 and "12文字以上" in short.text
    done = here.post(
        "/password",
        {"current": PASSWORD, "new": "another good password", "again": "another good password"},
    )
    assert done.status_code == 303
    assert here.get("/queue").status_code == 200
    assert elsewhere.get("/queue").status_code == 302
    assert console.attempt("tanaka", PASSWORD).status_code == 200
    assert console.attempt("tanaka", "another good password").status_code == 303
    assert [e.action for e in console.audit() if e.action.startswith("staff.password")] == [
        "staff.password_change_failed",
        "staff.password_changed",
    ]
    assert "another good password" not in text_of(str([e.detail for e in console.audit()]))
