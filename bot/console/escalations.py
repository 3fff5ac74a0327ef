"""The queue and the escalation page: read the conversation, claim, reply, hand back, close.

The queue lists the waiting escalations oldest first, then those in progress, 50 to a
page. Each page costs two counts and two short index range scans of
``ix_escalations_status_created_at`` (ids only, then the rows of those ids), whatever
the number of escalations.

The escalation page shows the conversation from Rasa's tracker store
(:mod:`bot.handoff.transcripts`) with personal values masked; a masked value is revealed one at
a time (``POST /escalations/{id}/reveal``), and every reveal is audited without the
value. New lines are fetched by the page's script (``/lines?after=``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from bot.console.context import CASEWORKERS, Console, allow, console_of, staff_of
from bot.console.views import render, render_text, see_other
from bot.db.audit import audit
from bot.db.models import Escalation, EscalationStatus, Member, StaffMessage
from bot.handoff import escalations
from bot.handoff.escalations import EscalationError
from bot.handoff.rasa_api import RasaApiError
from bot.handoff.relay import MAX_TEXT_LENGTH, RelayError, send_staff_message
from bot.handoff.transcripts import Transcript, TranscriptError, read_transcript, reveal_field

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
LINES_PER_PAGE = 100
MAX_REPLY_CHARS = MAX_TEXT_LENGTH
MAX_NOTE_CHARS = 2000

WAITING = EscalationStatus.WAITING.value
IN_PROGRESS = EscalationStatus.IN_PROGRESS.value
CLOSED = EscalationStatus.CLOSED.value

RASA_DOWN = (
    "アシスタントのサーバーに接続できなかったため、処理できませんでした。"
    "案件は変更していません。しばらくしてから、もう一度お試しください。"
)
TRANSCRIPT_DOWN = (
    "会話の記録を読み込めませんでした（会話の保存先に接続できません）。"
    "しばらくしてから、画面を読み込み直してください。"
)


# --- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    """One escalation in the queue."""

    id: int
    status: str
    reason: str
    channel: str | None
    created_at: datetime
    waiting: timedelta
    assigned_staff: str | None
    claimed_at: datetime | None
    verified: bool


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue: waiting ones first (oldest first), then those in progress."""

    waiting: list[QueueRow]
    in_progress: list[QueueRow]
    page: int
    pages: int
    waiting_count: int
    in_progress_count: int


def _count(session: Session, status: str) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Escalation).where(Escalation.status == status)
        ).scalar_one()
    )


def queue_ids_statement(status: str, offset: int, limit: int) -> Select:
    """The ids of one status's slice of the queue, oldest first.

    Ids only: the index (status, created_at) answers it without reading the rows it
    skips (on SQLite the id is part of every index), so a deep page costs little more
    than the first.
    """
    return (
        select(Escalation.id)
        .where(Escalation.status == status)
        .order_by(Escalation.created_at, Escalation.id)
        .offset(offset)
        .limit(limit)
    )


def _ids(session: Session, status: str, offset: int, limit: int) -> list[int]:
    return list(session.execute(queue_ids_statement(status, offset, limit)).scalars())


def _rows(session: Session, ids: list[int], now: datetime) -> list[QueueRow]:
    if not ids:
        return []
    found = {
        row.id: row
        for row in session.execute(select(Escalation).where(Escalation.id.in_(ids))).scalars()
    }
    return [
        QueueRow(
            id=row.id,
            status=row.status,
            reason=row.reason,
            channel=row.channel,
            created_at=row.created_at,
            waiting=now - row.created_at,
            assigned_staff=row.assigned_staff,
            claimed_at=row.claimed_at,
            verified=row.member_id is not None,
        )
        for row in (found[i] for i in ids if i in found)
    ]


def queue_page(session: Session, now: datetime, page: int, size: int = PAGE_SIZE) -> QueuePage:
    """Page ``page`` (from 1) of the open escalations: waiting first, then in progress.

    Args:
        session: the unit of work.
        now: the current time, for the waiting times.
        page: the page asked for; clamped to the pages there are.
        size: escalations per page.
    """
    waiting_count = _count(session, WAITING)
    in_progress_count = _count(session, IN_PROGRESS)
    pages = max(1, math.ceil((waiting_count + in_progress_count) / size))
    page = min(max(1, page), pages)
    offset = (page - 1) * size
    waiting_ids = _ids(session, WAITING, offset, size) if offset < waiting_count else []
    room = size - len(waiting_ids)
    progress_ids = (
        _ids(session, IN_PROGRESS, max(0, offset - waiting_count), room) if room > 0 else []
    )
    return QueuePage(
        waiting=_rows(session, waiting_ids, now),
        in_progress=_rows(session, progress_ids, now),
        page=page,
        pages=pages,
        waiting_count=waiting_count,
        in_progress_count=in_progress_count,
    )


@dataclass(frozen=True)
class PendingMessage:
    """A staff reply stored but not yet delivered to the member."""

    id: int
    staff: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class EscalationDetail:
    """Everything the escalation page shows besides the transcript."""

    id: int
    status: str
    reason: str
    channel: str | None
    sender_id: str | None
    member_id: int | None
    member_name: str | None  # shown masked
    created_at: datetime
    waiting: timedelta
    assigned_staff: str | None
    claimed_at: datetime | None
    closed_at: datetime | None
    note: str | None
    paused: bool
    known_names: tuple[str, ...]
    pending: tuple[PendingMessage, ...]


def known_names(session: Session, member_id: int | None) -> tuple[str, ...]:
    """The names to mask in a verified member's conversation.

    The member's own, their dependants' and, for a dependant, the insured person's and
    the other dependants': a family talks about each other.
    """
    if member_id is None:
        return ()
    member = session.get(Member, member_id)
    if member is None:
        return ()
    family = member.insured_id or member.id
    names = session.execute(
        select(Member.name).where(or_(Member.id == family, Member.insured_id == family))
    ).scalars()
    return tuple(dict.fromkeys([member.name, *names]))


def escalation_detail(
    session: Session, escalation_id: int, now: datetime
) -> EscalationDetail | None:
    """One escalation with the verified member's name and the undelivered replies."""
    row = session.get(Escalation, escalation_id, populate_existing=True)
    if row is None:
        return None
    member = session.get(Member, row.member_id) if row.member_id is not None else None
    pending = session.execute(
        select(StaffMessage)
        .where(StaffMessage.escalation_id == row.id, StaffMessage.delivered_at.is_(None))
        .order_by(StaffMessage.id)
    ).scalars()
    return EscalationDetail(
        id=row.id,
        status=row.status,
        reason=row.reason,
        channel=row.channel,
        sender_id=row.sender_id,
        member_id=row.member_id,
        member_name=member.name if member is not None else None,
        created_at=row.created_at,
        waiting=(row.claimed_at or row.closed_at or now) - row.created_at,
        assigned_staff=row.assigned_staff,
        claimed_at=row.claimed_at,
        closed_at=row.closed_at,
        note=row.note,
        paused=bool(row.paused),
        known_names=known_names(session, row.member_id),
        pending=tuple(
            PendingMessage(id=m.id, staff=m.staff, text=m.text, created_at=m.created_at)
            for m in pending
        ),
    )


def _viewed(
    session: Session, now: datetime, staff: str, page: str, detail: EscalationDetail
) -> None:
    audit(
        session,
        now,
        "console.viewed",
        f"staff:{staff}",
        member_id=detail.member_id,
        page=page,
        escalation_id=detail.id,
    )


# --- handlers ------------------------------------------------------------------------


def _int(value: object, default: int | None = None) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return default
    return number if 0 <= number < 2**62 else default


@allow(*CASEWORKERS)
async def queue(request: web.Request) -> web.StreamResponse:
    """``GET /queue``: the open escalations, waiting first."""
    console = console_of(request)
    now = console.now()
    page = await console.unit(queue_page, now, _int(request.query.get("page"), 1) or 1)
    return render(request, "queue.html", queue=page)


def _escalation_id(request: web.Request) -> int:
    escalation_id = _int(request.match_info["id"])
    if escalation_id is None:
        raise web.HTTPNotFound()
    return escalation_id


async def _transcript(
    console: Console, detail: EscalationDetail, **kwargs: Any
) -> tuple[Transcript | None, str | None]:
    """The transcript page, or why it could not be read (the page is shown anyway)."""
    if not detail.sender_id:
        return None, None
    sender_id = detail.sender_id

    def read() -> Transcript:
        with console.tracker_engine.connect() as connection:
            return read_transcript(
                connection,
                sender_id,
                known_names=detail.known_names,
                public_numbers=console.public_numbers,
                **kwargs,
            )

    try:
        return await console.thread(read), None
    except SQLAlchemyError as error:
        logger.warning(
            "transcript of escalation %s unreadable: %s", detail.id, type(error).__name__
        )
        return None, TRANSCRIPT_DOWN


async def escalation_page(
    request: web.Request,
    escalation_id: int,
    *,
    error: str | None = None,
    reply_text: str = "",
    note_text: str = "",
    status: int = 200,
    clear_draft: bool = False,
) -> web.Response:
    """Render the escalation page (also after a refused action, with the typed text)."""
    console = console_of(request)
    staff = staff_of(request)
    now = console.now()
    before = _int(request.query.get("before")) if request.method == "GET" else None

    def load(session: Session) -> EscalationDetail | None:
        detail = escalation_detail(session, escalation_id, now)
        if detail is not None:
            _viewed(session, now, staff.name, "escalation", detail)
        return detail

    detail = await console.unit(load)
    if detail is None:
        raise web.HTTPNotFound()
    transcript, transcript_error = await _transcript(
        console, detail, before_event_id=before, limit=LINES_PER_PAGE
    )
    last_event = transcript.lines[-1].event_id if transcript and transcript.lines else 0
    return render(
        request,
        "escalation.html",
        status=status,
        escalation=detail,
        transcript=transcript,
        transcript_error=transcript_error,
        before=before,
        last_event=last_event,
        mine=detail.assigned_staff == staff.name,
        error=error,
        reply_text=reply_text,
        note_text=note_text,
        max_reply=MAX_REPLY_CHARS,
        clear_draft=clear_draft
        or (request.method == "GET" and request.query.get("notice") == "sent"),
    )


@allow(*CASEWORKERS)
async def show(request: web.Request) -> web.StreamResponse:
    """``GET /escalations/{id}``: the escalation and its conversation (audited)."""
    return await escalation_page(request, _escalation_id(request))


@allow(*CASEWORKERS, fetch=True, passive=True)
async def lines(request: web.Request) -> web.StreamResponse:
    """``GET /escalations/{id}/lines?after=``: the newer lines as an HTML fragment.

    Called every few seconds by the open page; it is not a staff action, so it does not
    keep the session alive (see :func:`bot.console.context.allow`).
    """
    console = console_of(request)
    escalation_id = _escalation_id(request)
    after = _int(request.query.get("after"), 0) or 0
    now = console.now()
    detail = await console.unit(escalation_detail, escalation_id, now)
    if detail is None:
        return web.json_response({"error": "not_found"}, status=404)
    transcript, problem = await _transcript(
        console, detail, after_event_id=after, limit=LINES_PER_PAGE
    )
    if problem is not None:
        return web.json_response({"error": "unavailable", "message": problem}, status=503)
    new_lines = transcript.lines if transcript else []
    # Nothing new: an empty body, the cheapest answer to the most common poll.
    text = (
        render_text(request, "lines.html", lines=new_lines, escalation=detail) if new_lines else ""
    )
    last = new_lines[-1].event_id if new_lines else after
    return web.Response(
        text=text,
        content_type="text/html",
        charset="utf-8",
        headers={"X-Last-Event-Id": str(last), "X-Escalation-Status": detail.status},
    )


@allow(*CASEWORKERS, fetch=True)
async def reveal(request: web.Request) -> web.StreamResponse:
    """``POST /escalations/{id}/reveal`` (``event_id``, ``field``): one masked value.

    The look is audited (staff, escalation, event, kind of field; never the value)
    before the value leaves the server.
    """
    console = console_of(request)
    staff = staff_of(request)
    escalation_id = _escalation_id(request)
    form = await request.post()
    event_id = _int(form.get("event_id"))
    index = _int(form.get("field"))
    if event_id is None or index is None:
        return web.json_response(
            {"error": "bad_request", "message": "不正な指定です。"}, status=400
        )
    now = console.now()
    detail = await console.unit(escalation_detail, escalation_id, now)
    if detail is None or not detail.sender_id:
        return web.json_response({"error": "not_found", "message": "見つかりません。"}, status=404)
    sender_id = detail.sender_id

    def look() -> tuple[str, str]:
        with console.tracker_engine.connect() as connection:
            field, value = reveal_field(
                connection,
                sender_id,
                event_id,
                index,
                known_names=detail.known_names,
                public_numbers=console.public_numbers,
            )
        return field.kind, value

    try:
        kind, value = await console.thread(look)
    except TranscriptError:
        return web.json_response({"error": "not_found", "message": "見つかりません。"}, status=404)
    except SQLAlchemyError:
        return web.json_response({"error": "unavailable", "message": TRANSCRIPT_DOWN}, status=503)

    def record(session: Session) -> None:
        audit(
            session,
            now,
            "console.revealed",
            f"staff:{staff.name}",
            member_id=detail.member_id,
            escalation_id=escalation_id,
            event_id=event_id,
            field=index,
            kind=kind,
        )

    await console.unit(record)
    return web.json_response({"value": value})


def _conflict(detail: EscalationDetail | None, me: str) -> str:
    if detail is None:
        return "この案件は見つかりません。"
    if detail.status == CLOSED:
        return "この案件はすでに完了しています。"
    if detail.status == IN_PROGRESS and detail.assigned_staff != me:
        return f"この案件は、すでに{detail.assigned_staff}さんが担当しています。"
    return "この操作は、いまの案件の状態ではできません。画面を読み込み直してください。"


@allow(*CASEWORKERS)
async def claim(request: web.Request) -> web.StreamResponse:
    """``POST /escalations/{id}/claim``: take a waiting escalation."""
    console = console_of(request)
    staff = staff_of(request)
    escalation_id = _escalation_id(request)
    now = console.now()

    def work(session: Session) -> EscalationDetail | None:
        try:
            escalations.claim(session, escalation_id, staff.name, now)
        except EscalationError:
            return escalation_detail(session, escalation_id, now)
        return None

    refused = await console.unit(work)
    if refused is None:
        raise see_other(f"/escalations/{escalation_id}", "claimed")
    if refused.status == IN_PROGRESS and refused.assigned_staff == staff.name:
        raise see_other(f"/escalations/{escalation_id}", "claimed")
    return await escalation_page(
        request, escalation_id, error=_conflict(refused, staff.name), status=409
    )


async def _open_for(
    request: web.Request, escalation_id: int, *, assignee_only: bool
) -> EscalationDetail | str:
    """The escalation if the signed-in staff member may act on it now, else why not."""
    console = console_of(request)
    staff = staff_of(request)
    detail = await console.unit(escalation_detail, escalation_id, console.now())
    if detail is None:
        raise web.HTTPNotFound()
    if detail.status == CLOSED:
        return _conflict(detail, staff.name)
    if detail.status == IN_PROGRESS and detail.assigned_staff != staff.name:
        return _conflict(detail, staff.name)
    if assignee_only and detail.status != IN_PROGRESS:
        return "返信するには、先にこの案件の担当になってください（「担当する」ボタン）。"
    return detail


@allow(*CASEWORKERS)
async def reply(request: web.Request) -> web.StreamResponse:
    """``POST /escalations/{id}/reply`` (``text``): send a message to the member.

    Only the assignee of an escalation in progress. :func:`send_staff_message` stores
    the message, then asks the rasa server to deliver it. A refusal keeps the text in
    the form; a message stored but not delivered (the rasa server away) is listed as
    waiting and goes with the next one, so the form is emptied to avoid sending twice.
    """
    console = console_of(request)
    staff = staff_of(request)
    escalation_id = _escalation_id(request)
    form = await request.post()
    text = str(form.get("text") or "")
    allowed = await _open_for(request, escalation_id, assignee_only=True)
    if isinstance(allowed, str):
        return await escalation_page(
            request, escalation_id, error=allowed, reply_text=text, status=409
        )
    try:
        await console.thread(
            send_staff_message,
            console.sessions,
            escalation_id,
            staff.name,
            text,
            console.now(),
            console.rasa_api,
        )
    except RelayError as error:
        stored = error.stored is not None
        logger.warning(
            "reply to escalation %s: %s",
            escalation_id,
            "stored, not relayed" if stored else "refused",
        )
        return await escalation_page(
            request,
            escalation_id,
            error=str(error),
            reply_text="" if stored else text,
            status=502 if stored else 400,
            clear_draft=stored,
        )
    raise see_other(f"/escalations/{escalation_id}", "sent")


@allow(*CASEWORKERS)
async def retry(request: web.Request) -> web.StreamResponse:
    """``POST /escalations/{id}/retry``: ask the rasa server again to deliver waiting replies."""
    console = console_of(request)
    escalation_id = _escalation_id(request)
    allowed = await _open_for(request, escalation_id, assignee_only=True)
    if isinstance(allowed, str):
        return await escalation_page(request, escalation_id, error=allowed, status=409)
    sender_id = allowed.sender_id
    if not sender_id or not allowed.pending:
        raise see_other(f"/escalations/{escalation_id}")
    try:
        await console.thread(console.rasa_api.relay, sender_id)
    except RasaApiError as error:
        logger.warning("retry of escalation %s failed: %s", escalation_id, type(error).__name__)
        return await escalation_page(
            request,
            escalation_id,
            error="アシスタントのサーバーに接続できないため、まだ届けられません。"
            "返信は保存されています。しばらくしてから、もう一度お試しください。",
            status=502,
        )
    raise see_other(f"/escalations/{escalation_id}", "sent")


def _note(form: Any) -> str:
    return str(form.get("note") or "").replace("\r\n", "\n").strip()


@allow(*CASEWORKERS)
async def hand_back(request: web.Request) -> web.StreamResponse:
    """``POST /escalations/{id}/hand-back``: resume the assistant and close."""
    return await _finish(request, give_back=True)


@allow(*CASEWORKERS)
async def close(request: web.Request) -> web.StreamResponse:
    """``POST /escalations/{id}/close`` (``note``): close; a paused conversation resumes."""
    return await _finish(request, give_back=False)


async def _finish(request: web.Request, *, give_back: bool) -> web.StreamResponse:
    console = console_of(request)
    staff = staff_of(request)
    escalation_id = _escalation_id(request)
    form = await request.post()
    note = _note(form)
    if len(note) > MAX_NOTE_CHARS:
        return await escalation_page(
            request,
            escalation_id,
            error=f"メモは{MAX_NOTE_CHARS}文字以内にしてください。",
            note_text=note,
            status=400,
        )
    allowed = await _open_for(request, escalation_id, assignee_only=False)
    if isinstance(allowed, str):
        return await escalation_page(
            request, escalation_id, error=allowed, note_text=note, status=409
        )
    now = console.now()
    resume = console.rasa_api.resume

    def work(session: Session) -> None:
        if give_back:
            escalations.hand_back(
                session, escalation_id, staff.name, now, resume=resume, note=note or None
            )
        else:
            escalations.close(session, escalation_id, staff.name, note or None, now, resume=resume)

    try:
        await console.unit(work)
    except RasaApiError as error:
        logger.warning("escalation %s not closed: %s", escalation_id, type(error).__name__)
        return await escalation_page(
            request, escalation_id, error=RASA_DOWN, note_text=note, status=502
        )
    except EscalationError:
        return await escalation_page(
            request,
            escalation_id,
            error="この案件はすでに完了しています。",
            note_text=note,
            status=409,
        )
    raise see_other(f"/escalations/{escalation_id}", "handed_back" if give_back else "closed")


def routes() -> list[web.RouteDef]:
    """The queue and escalation routes."""
    base = r"/escalations/{id:\d+}"
    return [
        web.get("/queue", queue),
        web.get(base, show),
        web.get(f"{base}/lines", lines),
        web.post(f"{base}/reveal", reveal),
        web.post(f"{base}/claim", claim),
        web.post(f"{base}/reply", reply),
        web.post(f"{base}/retry", retry),
        web.post(f"{base}/hand-back", hand_back),
        web.post(f"{base}/close", close),
    ]
