"""Staff accounts for administrators: list, create, deactivate, activate, reset password.

Administrators see accounts and nothing of members (separation of duties). Every change
is audited by :mod:`bot.staff.accounts`; a deactivation or a password reset ends the
account's sessions at once. Each account shows who created it, and whether failures from
many addresses hold its name back for now (its owner's known addresses still pass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web
from sqlalchemy.orm import Session

from bot.console.auth import signin_policy
from bot.console.context import ADMIN, allow, console_of, staff_of
from bot.console.views import render, see_other
from bot.db.models import StaffRole
from bot.staff.accounts import (
    AccountError,
    StaffView,
    create_account,
    japanese,
    list_accounts,
    reset_password,
    set_active,
)


async def accounts_page(
    request: web.Request,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    """Render the accounts page (also after a refused change, with the message)."""
    console = console_of(request)
    now, policy = console.now(), signin_policy(console)
    accounts = await console.unit(lambda session: list_accounts(session, now, policy))
    return render(
        request,
        "accounts.html",
        status=status,
        accounts=accounts,
        roles=list(StaffRole),
        errors=errors or {},
        values=values or {},
        now=now,
    )


@allow(ADMIN)
async def accounts(request: web.Request) -> web.StreamResponse:
    """``GET /accounts``: every staff account and the form for a new one."""
    return await accounts_page(request)


async def _change(
    request: web.Request,
    form_name: str,
    values: dict[str, str],
    change: Callable[[Session], StaffView],
    notice: str,
) -> web.StreamResponse:
    console = console_of(request)
    try:
        await console.unit(change)
    except AccountError as error:
        return await accounts_page(
            request, errors={form_name: japanese(error)}, values=values, status=400
        )
    raise see_other("/accounts", notice)


def _account_id(request: web.Request) -> int:
    return int(request.match_info["id"])


@allow(ADMIN)
async def create(request: web.Request) -> web.StreamResponse:
    """``POST /accounts`` (``name``, ``role``, ``password``, ``again``).

    The account records the signed-in administrator as its creator.
    """
    console = console_of(request)
    admin = staff_of(request).name
    form = await request.post()
    name = str(form.get("name") or "").strip()
    role = str(form.get("role") or "")
    password = str(form.get("password") or "")
    values = {"name": name, "role": role}
    if password != str(form.get("again") or ""):
        return await accounts_page(
            request, errors={"create": "パスワードが一致しません。"}, values=values, status=400
        )
    now = console.now()
    return await _change(
        request,
        "create",
        values,
        lambda session: create_account(
            session, name, role, password, now, created_by=admin, actor=f"staff:{admin}"
        ),
        "created",
    )


@allow(ADMIN)
async def deactivate(request: web.Request) -> web.StreamResponse:
    """``POST /accounts/{id}/deactivate``: no sign-in any more; its sessions end."""
    console = console_of(request)
    account_id, actor, now = _account_id(request), staff_of(request).name, console.now()
    return await _change(
        request,
        f"account-{account_id}",
        {},
        lambda session: set_active(session, account_id, False, actor, now),
        "deactivated",
    )


@allow(ADMIN)
async def activate(request: web.Request) -> web.StreamResponse:
    """``POST /accounts/{id}/activate``: sign-in allowed again (and any lock lifted)."""
    console = console_of(request)
    account_id, actor, now = _account_id(request), staff_of(request).name, console.now()
    return await _change(
        request,
        f"account-{account_id}",
        {},
        lambda session: set_active(session, account_id, True, actor, now),
        "activated",
    )


@allow(ADMIN)
async def reset(request: web.Request) -> web.StreamResponse:
    """``POST /accounts/{id}/password`` (``password``, ``again``): a new password."""
    console = console_of(request)
    account_id, actor, now = _account_id(request), staff_of(request).name, console.now()
    form = await request.post()
    password = str(form.get("password") or "")
    if password != str(form.get("again") or ""):
        return await accounts_page(
            request,
            errors={f"account-{account_id}": "パスワードが一致しません。"},
            status=400,
        )
    return await _change(
        request,
        f"account-{account_id}",
        {},
        lambda session: reset_password(session, account_id, password, actor, now),
        "reset",
    )


def routes() -> list[web.RouteDef]:
    """The account routes."""
    base = r"/accounts/{id:\d{1,12}}"
    return [
        web.get("/accounts", accounts),
        web.post("/accounts", create),
        web.post(f"{base}/deactivate", deactivate),
        web.post(f"{base}/activate", activate),
        web.post(f"{base}/password", reset),
    ]
