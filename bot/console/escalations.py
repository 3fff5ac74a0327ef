"""The queue and the escalation page: read the conversation, claim, reply, hand back, close.

The queue is read by :mod:`bot.handoff.queue` (waiting oldest first, then in progress,
50 to a page), an escalation by :mod:`bot.handoff.detail`.

The escalation page shows the conversation from Rasa's tracker store
(:mod:`bot.handoff.transcripts`) with personal values masked; a masked value is revealed one at
a time (``POST /escalations/{id}/reveal``), and every reveal is audited without the
value. New lines are fetched by the page's script (``/lines?after=``), and the queue
page fetches its tables again every few seconds (``/queue/live``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.console.context import CASEWORKERS, Console, allow, console_of, staff_of
from bot.console.views import render, render_text, see_other
from bot.db.audit import audit
from bot.db.models import EscalationStatus
from bot.handoff import escalations, handback
from bot.handoff.detail import EscalationDetail, escalation_detail
from bot.handoff.escalations import EscalationError
from bot.handoff.queue import PAGE_SIZE, QueuePage, queue_page
from bot.handoff.rasa_api import RasaApiError
from bot.handoff.relay import MAX_TEXT_LENGTH, RelayError, send_staff_message
from bot.handoff.transcripts import Transcript, TranscriptError, read_transcript, reveal_field

logger = logging.getLogger(__name__)

LINES_PER_PAGE = 100
MAX_REPLY_CHARS = MAX_TEXT_LENGTH
MAX_NOTE_CHARS = 2000

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


async def _queue_page(request: web.Request) -> QueuePage:
    console = console_of(request)
    page = _int(request.query.get("page"), 1) or 1
    return await console.unit(queue_page, console.now(), page, PAGE_SIZE)


@allow(*CASEWORKERS)
async def queue(request: web.Request) -> web.StreamResponse:
    """``GET /queue``: the open escalations, waiting first."""
    return render(request, "queue.html", queue=await _queue_page(request))


@allow(*CASEWORKERS, fetch=True, passive=True)
async def queue_live(request: web.Request) -> web.StreamResponse:
    """``GET /queue/live?page=``: the queue's tables again, as an HTML fragment.

    The open queue page fetches it every few seconds (same origin, so within the
    console's Content-Security-Policy) and puts it in place: a new hand-off shows up
    without a reload, and the page counts the waiting members in its title
    (``X-Waiting-Count``) and announces new ones. Like the transcript's polling it is
    not a staff action and does not keep the session alive.
    """
    page = await _queue_page(request)
    return web.Response(
        text=render_text(request, "_queue.html", queue=page),
        content_type="text/html",
        charset="utf-8",
        headers={"X-Waiting-Count": str(page.waiting_count)},
    )


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
    try:
        transcript = await console.tracker(
            read_transcript,
            detail.sender_id,
            known_names=detail.known_names,
            public_numbers=console.public_numbers,
            **kwargs,
        )
        return transcript, None
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
    try:
        field, value = await console.tracker(
            reveal_field,
            detail.sender_id,
            event_id,
            index,
            known_names=detail.known_names,
            public_numbers=console.public_numbers,
        )
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
            kind=field.kind,
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
    """``POST /escalations/{id}/hand-back``: resume the assistant, tell the member, close."""
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
    rasa = console.rasa_api
    resume = rasa.resume

    def work(session: Session) -> None:
        if give_back:
            # The member is told, on their own channel, that the assistant answers again.
            handback.hand_back(
                session,
                escalation_id,
                staff.name,
                now,
                rasa,
                console.handback_notice,
                note=note or None,
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
        web.get("/queue/live", queue_live),
        web.get(base, show),
        web.get(f"{base}/lines", lines),
        web.post(f"{base}/reveal", reveal),
        web.post(f"{base}/claim", claim),
        web.post(f"{base}/reply", reply),
        web.post(f"{base}/retry", retry),
        web.post(f"{base}/hand-back", hand_back),
        web.post(f"{base}/close", close),
    ]
