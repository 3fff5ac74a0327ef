"""``python -m bot.cases``: the staff's command line for formal requests.

Examples::

    python -m bot.cases list                          # open cases, overdue first
    python -m bot.cases list --status awaiting_documents
    python -m bot.cases show PR-2025-000001 --staff 田中
    python -m bot.cases move PR-2025-000001 --to under_review --reason "書類受領" --staff 田中
    python -m bot.cases extend PR-2025-000001 --days 30 --reason "…" --staff 田中
    python -m bot.cases decide PR-2025-000001 --outcome disclosed --staff 田中
    python -m bot.cases close PR-2025-000001 --reason "写しを送付済み" --staff 田中

The database is ``DATABASE_URL`` (default: ``var/app.db``) unless ``--url`` is given;
the organization is ``PRIVACY_BOT_ORG``. Every command is audited under the staff
name (``--staff``; for ``list`` and ``show`` the login name when omitted). A refused
command prints why (Japanese, with the English gist) and exits with status 2.
Times are shown in Japan time.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bot.cases.notify import ChannelNotifier, SmsNotifier
from bot.cases.rules import (
    METHOD_LABELS,
    OUTCOME_LABELS,
    ROLE_LABELS,
    STATUS_LABELS,
    TARGET_LABELS,
    TYPE_LABELS,
    describe_fee,
)
from bot.cases.staff import (
    case_detail,
    close_case,
    decide_case,
    extend_case,
    list_cases,
    move_case,
)
from bot.cases.types import CaseError, CaseStatus, CaseView, Outcome, StaffCaseDetail
from bot.core.japan_time import jst_timestamp
from bot.db.session import session_factory
from bot.outbound.sms import sender_from_settings
from bot.policy.profiles.loader import ProfileError, cached_profile
from bot.settings import SettingsError, load_settings

REFUSED = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.cases",
        description="Formal requests (開示等の請求) for staff: list, show, move, extend, "
        "decide, close.",
    )
    parser.add_argument("--url", help="database URL (default: DATABASE_URL, else var/app.db)")
    commands = parser.add_subparsers(dest="command", required=True)
    statuses = [status.value for status in CaseStatus]

    listing = commands.add_parser("list", help="open cases by due date, overdue first")
    listing.add_argument("--status", choices=statuses, help="only this status")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--staff", help="who is listing (default: the login name)")

    show = commands.add_parser("show", help="one case with its history (audited)")
    show.add_argument("case_number")
    show.add_argument("--staff", help="who is reading (default: the login name)")

    move = commands.add_parser("move", help="move a case to another status")
    move.add_argument("case_number")
    move.add_argument("--to", required=True, choices=statuses, dest="to_status")
    move.add_argument("--reason", required=True)
    move.add_argument("--staff", required=True)

    extend = commands.add_parser("extend", help="extend the period (tells the member)")
    extend.add_argument("case_number")
    extend.add_argument("--days", required=True, type=int)
    extend.add_argument("--reason", required=True, help="told to the member")
    extend.add_argument("--staff", required=True)
    extend.add_argument(
        "--longer",
        action="store_true",
        help="past the cap by a 相当の期間 (only where the policy allows it)",
    )

    decide = commands.add_parser("decide", help="record the decision (tells the member)")
    decide.add_argument("case_number")
    decide.add_argument("--outcome", required=True, choices=[item.value for item in Outcome])
    decide.add_argument("--ground", help="legal ground of a refusal or partial outcome")
    decide.add_argument("--explanation", help="the explanation the member is given (36条)")
    decide.add_argument("--staff", required=True)

    close = commands.add_parser("close", help="close a decided case (or one never completed)")
    close.add_argument("case_number")
    close.add_argument("--reason", required=True)
    close.add_argument("--staff", required=True)
    return parser


def _status(status: CaseStatus) -> str:
    return f"{status.value} ({STATUS_LABELS[status]})"


def _kind(view: Any) -> str:
    label = TYPE_LABELS[view.case_type]
    return f"{label}／{TARGET_LABELS[view.target]}" if view.target else label


def _print_change(view: CaseView) -> None:
    print(
        f"{view.case_number}: {_status(view.status)}; due {jst_timestamp(view.due_at)}"
        + (f" (extended {view.extended_days} days)" if view.extended_days else "")
        + (f"; outcome {view.outcome.value}" if view.outcome else "")
    )


def _print_detail(detail: StaffCaseDetail) -> None:
    fields = [
        ("case", detail.case_number),
        ("type", _kind(detail)),
        ("status", _status(detail.status)),
        ("next", ", ".join(status.value for status in detail.allowed_next) or "-"),
        ("requester", f"#{detail.requester_member_id} {detail.requester_name}"),
        ("role", ROLE_LABELS[detail.role]),
        ("subject", f"#{detail.subject_member_id} {detail.subject_name}"),
        ("agent", " / ".join(x for x in (detail.agent_name, detail.agent_contact) if x) or "-"),
        ("scope", "; ".join(detail.scope) or "-"),
        ("method", METHOD_LABELS[detail.method] if detail.method else "-"),
        ("reason", detail.reason or "-"),
        ("wrong", detail.wrong_text or "-"),
        ("right", detail.right_text or "-"),
        ("channel", detail.channel),
        ("received", jst_timestamp(detail.received_at)),
        (
            "due",
            jst_timestamp(detail.due_at) + ("  ** OVERDUE 期限超過 **" if detail.overdue else ""),
        ),
        (
            "period",
            f"{detail.period_days or '-'} days; paused {detail.paused_days}; extended "
            f"{detail.extended_days} of {detail.max_extension_days}",
        ),
        ("extension", detail.extension_reason or "-"),
        ("fee", describe_fee(detail.fee)),
        ("outcome", OUTCOME_LABELS[detail.outcome] if detail.outcome else "-"),
        ("ground", detail.legal_ground or "-"),
        ("explanation", detail.explanation or "-"),
    ]
    for name, value in fields:
        print(f"{name:<12}{value}")
    print("history:")
    for entry in detail.history:
        moved = (
            f"{entry.from_status.value if entry.from_status else '-'} -> {entry.to_status.value}"
        )
        reason = f"  「{entry.reason}」" if entry.reason else ""
        print(f"  {jst_timestamp(entry.at)}  {entry.actor:<20} {entry.action:<10} {moved}{reason}")


def _run(args: argparse.Namespace, session: Session, now: datetime) -> None:
    if args.command == "list":
        status = CaseStatus(args.status) if args.status else None
        staff = args.staff or getpass.getuser()
        rows = list_cases(session, now, status=status, limit=args.limit, staff=staff)
        what = status.value if status else "open"
        print(f"{len(rows)} {what} case(s), overdue first, then by due date (JST):")
        for row in rows:
            flag = "OVERDUE" if row.overdue else ""
            print(
                f"{row.case_number:<16} {row.status.value:<19} {jst_timestamp(row.due_at):<17} "
                f"{flag:<8} {_kind(row)}  (received {jst_timestamp(row.received_at)})"
            )
        return
    if args.command == "show":
        _print_detail(case_detail(session, args.case_number, args.staff or getpass.getuser(), now))
        return
    actions: dict[str, Callable[[], CaseView]] = {
        "move": lambda: move_case(
            session, args.case_number, CaseStatus(args.to_status), args.staff, args.reason, now
        ),
        "extend": lambda: extend_case(
            session,
            args.case_number,
            args.days,
            args.staff,
            args.reason,
            now,
            _notifier(),
            longer=args.longer,
        ),
        "decide": lambda: decide_case(
            session,
            args.case_number,
            Outcome(args.outcome),
            args.staff,
            now,
            _notifier(),
            legal_ground=args.ground,
            explanation=args.explanation,
        ),
        "close": lambda: close_case(session, args.case_number, args.staff, args.reason, now),
    }
    _print_change(actions[args.command]())


def _notifier() -> ChannelNotifier:
    # LINE push for cases opened on LINE (when configured), SMS otherwise.
    return ChannelNotifier(SmsNotifier(sender_from_settings(load_settings())))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (2 when refused)."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        profile = cached_profile(settings.org_id, str(settings.profiles_dir))
    except (SettingsError, ProfileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return REFUSED
    timing = profile.processing_time
    if getattr(args, "longer", False) and not (timing and timing.longer_extension):
        print(f"error: {profile.name}の方針は上限を超える延長を定めていません。", file=sys.stderr)
        return REFUSED
    url = args.url or settings.database_url
    if args.command in ("list", "show"):
        print(f"{profile.name} — {make_url(url).render_as_string(hide_password=True)}")
    try:
        # One transaction per command: a refusal leaves nothing behind, not even the
        # audit row of the attempt.
        with session_factory(url).begin() as session:
            _run(args, session, datetime.now(timezone.utc))
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return REFUSED
    return 0
