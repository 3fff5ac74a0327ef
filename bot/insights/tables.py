"""The overview's figures as labelled tables and charts, in Japanese.

One description of each figure serves the console page (a chart and, under it, the
same numbers as a table) and the command line (the table, or CSV).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from markupsafe import Markup

from bot.cases.rules import STATUS_LABELS, TYPE_LABELS
from bot.cases.types import OPEN_STATUSES
from bot.db.models import CaseType
from bot.insights import svg
from bot.insights.figures import OTHER, Figures
from bot.policy.answers import INTENT_LABELS

CHANNEL_NAMES = {
    "socketio": "Webチャット",
    "line": "LINE",
    "rest": "REST（試験用）",
    "other": "その他",
}
EXTRA_INTENTS = {
    "nlu_fallback": "聞き返し（理解できず）",
    "greet": "あいさつ",
    "goodbye": "終わりのあいさつ",
    "thank": "お礼",
    "affirm": "はい",
    "deny": "いいえ",
    "inform": "情報の入力",
    "request_human": "担当者希望",
    "out_of_scope": "対象外の質問",
    "bot_challenge": "ボットかどうか",
    "stop": "中止",
    "resend_code": "認証コードの再送",
    "ask_my_data": "自分の登録内容",
    "check_case_status": "請求の状況確認",
    "cancel_case": "請求の取下げ",
    "ask_other_person_data": "他人の情報",
    OTHER: "その他",
    "unknown": "不明",
}
VERIFICATION_NAMES = {
    "started": "開始",
    "completed": "完了",
    "failed": "不一致・失敗",
    "locked": "ロック",
}
DEADLINE_NAMES = {
    "overdue": "期限超過",
    "soon": "7日以内に期限",
    "later": "8日以上先",
    "paused": "期限停止中（書類待ち）",
    "none": "期限なし",
}


def intent_name(intent: str) -> str:
    """An intent in Japanese (its name when it has no label)."""
    return INTENT_LABELS.get(intent) or EXTRA_INTENTS.get(intent) or intent


def _md(day: date) -> str:
    return f"{day.month}/{day.day}"


def _week(day: date) -> str:
    return f"{_md(day)}週"


def _percent(count: int, total: int) -> str:
    return f"{count}（{count / total * 100:.1f}%）" if total else f"{count}（-）"


@dataclass(frozen=True)
class Table:
    """One figure: its title, a chart and the same numbers as rows."""

    key: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    chart: Markup


def _channels(figures: Figures) -> list[str]:
    """Web chat and LINE always; REST (tests) and others only when they had messages."""
    return [
        name
        for name, values in figures.messages.items()
        if name in ("socketio", "line") or any(values)
    ]


def daily_traffic(figures: Figures) -> list[Table]:
    """Conversations and messages per day by channel."""
    days = figures.period.days
    labels = [_md(day) for day in days]
    channels = _channels(figures)
    tables = []
    for key, title, data in (
        ("messages", "会員のメッセージ数（日別・チャネル別）", figures.messages),
        ("conversations", "会話数（日別・チャネル別）", figures.conversations),
    ):
        series = {CHANNEL_NAMES.get(name, name): data[name] for name in channels}
        rows = tuple(
            (day.isoformat(), *(str(data[name][place]) for name in channels))
            for place, day in enumerate(days)
        )
        headers = ("日付", *series)
        tables.append(Table(key, title, headers, rows, svg.bar_chart(title, labels, series)))
    return tables


def intents(figures: Figures) -> Table:
    """Topics asked per week."""
    weeks = figures.period.weeks
    series = {intent_name(name): values for name, values in figures.intents.items()}
    title = "質問のトピック（週別、多い順）"
    rows = tuple(
        (week.isoformat(), *(str(values[place]) for values in series.values()))
        for place, week in enumerate(weeks)
    )
    chart = svg.bar_chart(title, [_week(week) for week in weeks], series, height=260)
    return Table("intents", title, ("週（月曜）", *series), rows, chart)


def failures(figures: Figures) -> Table:
    """Shares of messages asked again, answered 'not stated', handed to staff, per week."""
    weeks = figures.period.weeks
    title = "聞き返し・「方針に記載なし」・担当者への引継ぎの割合（週別）"
    series = {
        "聞き返し": figures.share(figures.fallbacks),
        "方針に記載なし": figures.share(figures.not_stated),
        "担当者へ引継ぎ": figures.share(figures.handoffs),
    }
    rows = tuple(
        (
            week.isoformat(),
            str(figures.weekly_messages[place]),
            _percent(figures.fallbacks[place], figures.weekly_messages[place]),
            _percent(figures.not_stated[place], figures.weekly_messages[place]),
            _percent(figures.handoffs[place], figures.weekly_messages[place]),
        )
        for place, week in enumerate(weeks)
    )
    headers = ("週（月曜）", "メッセージ数", *series)
    return Table(
        "failures", title, headers, rows, svg.line_chart(title, [_week(w) for w in weeks], series)
    )


def verification(figures: Figures) -> Table:
    """Verification steps in the period."""
    title = "本人確認（期間合計）"
    labels = [VERIFICATION_NAMES[step] for step in figures.verification]
    values = list(figures.verification.values())
    rows = tuple((label, str(value)) for label, value in zip(labels, values, strict=True))
    chart = svg.hbar_chart(title, labels, {"件数": values})
    return Table("verification", title, ("段階", "件数"), rows, chart)


def sms(figures: Figures) -> Table:
    """SMS sent per day."""
    days = figures.period.days
    title = "SMS送信数（日別）"
    rows = tuple(
        (day.isoformat(), str(count)) for day, count in zip(days, figures.sms, strict=True)
    )
    chart = svg.bar_chart(title, [_md(day) for day in days], {"送信済み": figures.sms})
    return Table("sms", title, ("日付", "送信済み"), rows, chart)


def open_cases(figures: Figures) -> Table:
    """Open cases by type and status."""
    title = "対応中の請求（種類・状態別）"
    types = list(CaseType)
    series = {
        STATUS_LABELS[status]: [
            figures.open_cases.get((kind.value, status.value), 0) for kind in types
        ]
        for status in OPEN_STATUSES
    }
    labels = [TYPE_LABELS[kind] for kind in types]
    rows = tuple(
        (labels[place], *(str(values[place]) for values in series.values()))
        for place in range(len(types))
    )
    return Table("cases", title, ("種類", *series), rows, svg.hbar_chart(title, labels, series))


def deadlines(figures: Figures) -> Table:
    """Open cases by deadline."""
    title = "対応中の請求の期限"
    labels = [DEADLINE_NAMES[key] for key in figures.deadlines]
    values = list(figures.deadlines.values())
    rows = tuple((label, str(value)) for label, value in zip(labels, values, strict=True))
    chart = svg.hbar_chart(title, labels, {"件数": values})
    return Table("deadlines", title, ("期限", "件数"), rows, chart)


def all_tables(figures: Figures) -> list[Table]:
    """Every figure of the overview, in the page's order."""
    return [
        *daily_traffic(figures),
        intents(figures),
        failures(figures),
        verification(figures),
        sms(figures),
        open_cases(figures),
        deadlines(figures),
    ]
