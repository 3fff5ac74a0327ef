"""Rendering: the Jinja2 environment, Japanese labels, times in JST, masks, notices.

Templates autoescape everything (``autoescape=True``), so text from members and staff
is shown, never interpreted. Every time is stored in UTC and shown in Japan time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.cases.rules import (
    METHOD_LABELS,
    OUTCOME_LABELS,
    ROLE_LABELS,
    STATUS_LABELS,
    TARGET_LABELS,
    TYPE_LABELS,
    describe_fee,
)
from bot.console.context import console_of
from bot.core.japan_time import japanese_date, jst_timestamp
from bot.db.models import StaffRole

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

REASON_LABELS: Mapping[str, str] = {
    "member_request": "担当者希望",
    "complaint": "苦情",
    "repeated_fallback": "自動応答で解決せず",
    "verification_locked": "本人確認ロック",
    "case_needs_person": "請求に担当者の対応が必要",
    "case_notification_failed": "請求の通知に失敗",
}
CHANNEL_LABELS: Mapping[str, str] = {
    "socketio": "Webチャット",
    "line": "LINE",
    "rest": "REST（試験用）",
}
ESCALATION_STATUS_LABELS: Mapping[str, str] = {
    "waiting": "対応待ち",
    "in_progress": "対応中",
    "closed": "完了",
}
STAFF_ROLE_LABELS: Mapping[StaffRole, str] = {
    StaffRole.AGENT: "担当者",
    StaffRole.PRIVACY_OFFICER: "個人情報保護管理者",
    StaffRole.ADMIN: "システム管理者",
}
SPEAKER_LABELS: Mapping[str, str] = {
    "member": "会員",
    "assistant": "アシスタント",
    "staff": "担当者",
    "system": "システム",
}

HISTORY_ACTIONS: Mapping[str, str] = {
    "opened": "受付",
    "moved": "状態の変更",
    "extended": "期限の延長",
    "decided": "決定",
    "closed": "完了",
    "withdrawn": "取下げ",
}

# Messages after a redirect, chosen by a fixed code in the URL: nothing from the URL is
# ever shown as it is.
NOTICES: Mapping[str, str] = {
    "expired": "一定時間操作がなかったため、またはサインインから時間が経ったため、"
    "サインアウトしました。お手数ですが、もう一度サインインしてください。",
    "signed_out": "サインアウトしました。",
    "signin": "この画面を見るにはサインインしてください。",
    "claimed": "この案件の担当になりました。",
    "sent": "メッセージを送信しました。",
    "handed_back": "会話をアシスタントに戻し、案件を完了にしました。",
    "closed": "案件を完了にしました。",
    "moved": "請求の状態を変更しました。",
    "extended": "期限を延長し、ご本人に通知しました。",
    "decided": "決定を記録し、ご本人に通知しました。",
    "case_closed": "請求を完了にしました。",
    "created": "アカウントを作成しました。",
    "deactivated": "アカウントを無効にしました。",
    "activated": "アカウントを有効にしました。",
    "reset": "パスワードを再設定しました。このアカウントのサインイン中の画面は終了しました。",
    "password_changed": "パスワードを変更しました。",
}


def duration(span: timedelta | None) -> str:
    """A waiting time in Japanese: ``12分``, ``1時間5分``, ``2日3時間``."""
    if span is None:
        return "-"
    minutes = max(0, int(span.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}日{hours}時間" if hours else f"{days}日"
    if hours:
        return f"{hours}時間{minutes}分" if minutes else f"{hours}時間"
    return f"{minutes}分"


def mask_name(name: str | None) -> str:
    """A name with all but its first character hidden: ``山田 太郎`` → ``山＊ ＊＊``."""
    if not name:
        return "-"
    shown = False
    masked = []
    for char in name:
        if char in " 　":
            masked.append(char)
        elif not shown:
            masked.append(char)
            shown = True
        else:
            masked.append("＊")
    return "".join(masked)


def label(mapping: Mapping[Any, str], key: Any) -> str:
    """A label from ``mapping``, the key itself when there is none."""
    if key is None:
        return "-"
    return mapping.get(key, str(getattr(key, "value", key)))


def environment() -> jinja2.Environment:
    """The console's template environment."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        jst=jst_timestamp,
        jst_date=japanese_date,
        duration=duration,
        mask_name=mask_name,
        reason=lambda key: label(REASON_LABELS, key),
        channel=lambda key: label(CHANNEL_LABELS, key),
        escalation_status=lambda key: label(ESCALATION_STATUS_LABELS, key),
        staff_role=lambda key: label(STAFF_ROLE_LABELS, key),
        speaker=lambda key: label(SPEAKER_LABELS, key),
        case_type=lambda key: label(TYPE_LABELS, key),
        case_target=lambda key: label(TARGET_LABELS, key),
        case_status=lambda key: label(STATUS_LABELS, key),
        case_role=lambda key: label(ROLE_LABELS, key),
        case_method=lambda key: label(METHOD_LABELS, key),
        outcome=lambda key: label(OUTCOME_LABELS, key),
        history_action=lambda key: label(HISTORY_ACTIONS, key),
        fee=describe_fee,
    )
    env.globals.update(StaffRole=StaffRole)
    return env


def render_text(request: web.Request, template: str, **context: Any) -> str:
    """A template rendered with the request's common context."""
    console = console_of(request)
    staff = request.get("console_staff")
    notice = NOTICES.get(request.query.get("notice", ""))
    values = {
        "staff": staff,
        "csrf": staff.csrf_token if staff is not None else "",
        "notice": notice,
        "path": request.path,
        **context,
    }
    return console.templates.get_template(template).render(values)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """An HTML page."""
    return web.Response(
        text=render_text(request, template, **context),
        status=status,
        content_type="text/html",
        charset="utf-8",
    )


def with_notice(location: str, notice: str | None) -> str:
    """``location`` with a fixed notice code for the next page."""
    if not notice:
        return location
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}notice={notice}"


def see_other(location: str, notice: str | None = None) -> web.HTTPSeeOther:
    """A redirect after a POST (303), with a fixed notice code, to raise."""
    return web.HTTPSeeOther(with_notice(location, notice))


def redirect(location: str, status: int = 303, notice: str | None = None) -> web.Response:
    """A redirect to return (not raise), e.g. to set or drop a cookie on it."""
    return web.Response(status=status, headers={"Location": with_notice(location, notice)})
