"""The formal requests (cases): the work list, one case, and moving it along.

Everything goes through :mod:`bot.cases.staff` (which checks the lifecycle, the
extension cap and what a decision needs, writes the history and the audit rows, and
tells the member through the console's notifier). A refusal is shown in Japanese next
to the form it came from, with what was typed kept. Only privacy officers decide.

Names, the agent's contact and the correction texts are masked on the page; each is
revealed on request (``POST /cases/{number}/reveal``), audited without the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.cases.staff import (
    case_detail,
    case_field_value,
    close_case,
    decide_case,
    extend_case,
    list_cases,
    move_case,
)
from bot.cases.types import (
    EXPLANATION_REQUIRED,
    GROUND_REQUIRED,
    OUTCOMES_BY_TYPE,
    CaseError,
    CaseStatus,
    Outcome,
    StaffCaseDetail,
)
from bot.console.context import CASEWORKERS, OFFICER, allow, console_of, staff_of
from bot.console.views import render, see_other
from bot.db.audit import audit

LIST_LIMIT = 200
MAX_TEXT = 4000
NUMBER_PATTERN = r"[A-Za-z]{2}-\d{4}-\d{6}"
# Moves made with their own forms (extend, decide, close), not with the plain move form.
_OWN_FORMS = (CaseStatus.EXTENDED, CaseStatus.DECIDED, CaseStatus.CLOSED)
# Fields shown masked on the case page, revealed one at a time.
MASKED_FIELDS: Mapping[str, str] = {
    "requester_name": "請求者の氏名",
    "subject_name": "本人（対象者）の氏名",
    "agent_name": "代理人の氏名",
    "agent_contact": "代理人の連絡先",
    "wrong_text": "誤っている内容",
    "right_text": "正しい内容",
}
_CLI_HINT = re.compile(r"（--[a-z-]+）")


def console_message(error: Exception) -> str:
    """A service refusal as the console shows it: the Japanese part, no CLI flags."""
    text = str(error).split(" / ", 1)[0]
    return _CLI_HINT.sub("", text).strip()


def _number(request: web.Request) -> str:
    return request.match_info["number"].upper()


@allow(*CASEWORKERS)
async def case_list(request: web.Request) -> web.StreamResponse:
    """``GET /cases?status=``: open cases (or one status), overdue first, then by due date."""
    console = console_of(request)
    staff = staff_of(request)
    raw = request.query.get("status", "")
    status = CaseStatus(raw) if raw in {item.value for item in CaseStatus} else None
    now = console.now()
    rows = await console.unit(
        lambda session: list_cases(session, now, status=status, limit=LIST_LIMIT, staff=staff.name)
    )
    return render(
        request,
        "cases.html",
        rows=rows,
        selected=status,
        statuses=list(CaseStatus),
        limit=LIST_LIMIT,
    )


async def case_page(
    request: web.Request,
    number: str,
    *,
    errors: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    """Render a case (also after a refused change, with the message and what was typed)."""
    console = console_of(request)
    staff = staff_of(request)
    now = console.now()

    def load(session: Session) -> StaffCaseDetail | None:
        try:
            detail = case_detail(session, number, staff.name, now)
        except CaseError:
            return None
        audit(
            session,
            now,
            "console.viewed",
            f"staff:{staff.name}",
            member_id=detail.subject_member_id,
            page="case",
            case_number=detail.case_number,
        )
        return detail

    detail = await console.unit(load)
    if detail is None:
        raise web.HTTPNotFound()
    outcomes = [
        (outcome, outcome in GROUND_REQUIRED, outcome in EXPLANATION_REQUIRED)
        for outcome in OUTCOMES_BY_TYPE[detail.case_type]
    ]
    left = max(0, detail.max_extension_days - detail.extended_days)
    return render(
        request,
        "case.html",
        status=status,
        case=detail,
        moves=[item for item in detail.allowed_next if item not in _OWN_FORMS],
        can_extend=CaseStatus.EXTENDED in detail.allowed_next,
        can_decide=CaseStatus.DECIDED in detail.allowed_next,
        can_close=CaseStatus.CLOSED in detail.allowed_next,
        extension_left=left,
        longer_extension=console.longer_extension,
        outcomes=outcomes,
        officer=staff.role is OFFICER,
        errors=errors or {},
        values=values or {},
        masked_fields=MASKED_FIELDS,
        now=now,
    )


@allow(*CASEWORKERS)
async def show(request: web.Request) -> web.StreamResponse:
    """``GET /cases/{number}``: one case with its history (audited)."""
    return await case_page(request, _number(request))


def _text(form: Any, name: str) -> str:
    return str(form.get(name) or "").replace("\r\n", "\n").strip()


async def _change(
    request: web.Request,
    form_name: str,
    values: dict[str, str],
    change: Callable[[Session], object],
    notice: str,
) -> web.StreamResponse:
    """Run one change; on refusal, the case page with the message next to ``form_name``."""
    console = console_of(request)
    number = _number(request)
    too_long = [name for name, value in values.items() if len(value) > MAX_TEXT]
    if too_long:
        message = f"入力は{MAX_TEXT}文字以内にしてください。"
        return await case_page(
            request, number, errors={form_name: message}, values=values, status=400
        )
    try:
        await console.unit(change)
    except CaseError as error:
        return await case_page(
            request,
            number,
            errors={form_name: console_message(error)},
            values=values,
            status=422,
        )
    raise see_other(f"/cases/{number}", notice)


@allow(*CASEWORKERS)
async def move(request: web.Request) -> web.StreamResponse:
    """``POST /cases/{number}/move`` (``to``, ``reason``)."""
    console = console_of(request)
    staff = staff_of(request)
    form = await request.post()
    values = {"to": _text(form, "to"), "move_reason": _text(form, "reason")}
    now = console.now()

    def change(session: Session) -> object:
        try:
            target = CaseStatus(values["to"])
        except ValueError as error:
            raise CaseError("移す先の状態を選んでください。") from error
        return move_case(session, _number(request), target, staff.name, values["move_reason"], now)

    return await _change(request, "move", values, change, "moved")


@allow(*CASEWORKERS)
async def extend(request: web.Request) -> web.StreamResponse:
    """``POST /cases/{number}/extend`` (``days``, ``reason``): the member is told."""
    console = console_of(request)
    staff = staff_of(request)
    form = await request.post()
    values = {"days": _text(form, "days"), "extend_reason": _text(form, "reason")}
    longer = console.longer_extension and _text(form, "longer") == "on"
    now = console.now()

    def change(session: Session) -> object:
        days = values["days"]
        if not days.isdigit() or not 0 < int(days) < 10000:
            raise CaseError("延長する日数は1以上の整数で入力してください。")
        return extend_case(
            session,
            _number(request),
            int(days),
            staff.name,
            values["extend_reason"],
            now,
            console.notifier,
            longer=longer,
        )

    return await _change(request, "extend", values, change, "extended")


@allow(OFFICER)
async def decide(request: web.Request) -> web.StreamResponse:
    """``POST /cases/{number}/decide`` (``outcome``, ``ground``, ``explanation``).

    Privacy officers only. The member is told.
    """
    console = console_of(request)
    staff = staff_of(request)
    form = await request.post()
    values = {
        "outcome": _text(form, "outcome"),
        "ground": _text(form, "ground"),
        "explanation": _text(form, "explanation"),
    }
    now = console.now()

    def change(session: Session) -> object:
        try:
            outcome = Outcome(values["outcome"])
        except ValueError as error:
            raise CaseError("決定の結果を選んでください。") from error
        return decide_case(
            session,
            _number(request),
            outcome,
            staff.name,
            now,
            console.notifier,
            legal_ground=values["ground"] or None,
            explanation=values["explanation"] or None,
        )

    return await _change(request, "decide", values, change, "decided")


@allow(*CASEWORKERS)
async def close(request: web.Request) -> web.StreamResponse:
    """``POST /cases/{number}/close`` (``reason``)."""
    console = console_of(request)
    staff = staff_of(request)
    form = await request.post()
    values = {"close_reason": _text(form, "reason")}
    now = console.now()

    def change(session: Session) -> object:
        return close_case(session, _number(request), staff.name, values["close_reason"], now)

    return await _change(request, "close", values, change, "case_closed")


@allow(*CASEWORKERS, fetch=True)
async def reveal(request: web.Request) -> web.StreamResponse:
    """``POST /cases/{number}/reveal`` (``field``): one masked value, the look audited."""
    console = console_of(request)
    staff = staff_of(request)
    form = await request.post()
    name = str(form.get("field") or "")
    if name not in MASKED_FIELDS:
        return web.json_response(
            {"error": "bad_request", "message": "不正な指定です。"}, status=400
        )
    number = _number(request)
    now = console.now()

    def look(session: Session) -> str | None:
        found = case_field_value(session, number, name)
        if found is None:
            return None
        audit(
            session,
            now,
            "console.revealed",
            f"staff:{staff.name}",
            member_id=found.subject_member_id,
            case_number=found.case_number,
            field=name,
        )
        return found.value

    value = await console.unit(look)
    if value is None:
        return web.json_response({"error": "not_found", "message": "見つかりません。"}, status=404)
    return web.json_response({"value": value})


def routes() -> list[web.RouteDef]:
    """The case routes."""
    base = f"/cases/{{number:{NUMBER_PATTERN}}}"
    return [
        web.get("/cases", case_list),
        web.get(base, show),
        web.post(f"{base}/move", move),
        web.post(f"{base}/extend", extend),
        web.post(f"{base}/decide", decide),
        web.post(f"{base}/close", close),
        web.post(f"{base}/reveal", reveal),
    ]
