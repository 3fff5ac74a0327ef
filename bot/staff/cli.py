"""``python -m bot.staff``: staff accounts and the escalation queue on the command line.

Examples::

    python -m bot.staff create-account tanaka --role agent          # asks for the password
    echo "$PW" | python -m bot.staff create-account tanaka --role admin --password-stdin
    python -m bot.staff queue                                      # waiting, oldest first
    python -m bot.staff claim 12 --staff tanaka
    python -m bot.staff reply 12 --staff tanaka --text "お調べしますのでお待ちください"
    python -m bot.staff hand-back 12 --staff tanaka                # resume, tell the member, close
    python -m bot.staff close 12 --staff tanaka --note "電話で対応済み"  # resumes too

The database is ``DATABASE_URL`` (default ``var/app.db``) unless ``--url`` is given;
``create-account`` records the operating-system user who ran it as the account's
creator (``cli:<user>``, or ``cli`` when the user cannot be told).
``reply``, ``hand-back`` and ``close`` reach the rasa server at ``--rasa-url`` (default
``http://localhost:RASA_PORT``) with its token (``RASA_TOKEN``, else the one the
launcher generated in ``var/rasa_token``). ``reply`` reads the text from standard input
when ``--text`` is not given. A refused command prints why and exits with status 2.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

from bot.db.models import StaffRole
from bot.db.session import session_factory
from bot.handoff.escalations import EscalationError, EscalationView, claim, close, queue
from bot.handoff.handback import hand_back, handed_back_text_for
from bot.handoff.rasa_api import RasaApi, RasaApiError
from bot.handoff.relay import RelayError, send_staff_message
from bot.settings import Settings, ensure_rasa_token, load_settings
from bot.staff.accounts import AccountError, create_account

REFUSED = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot.staff", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="database URL (default: DATABASE_URL, else var/app.db)")
    commands = parser.add_subparsers(dest="command", required=True)

    account = commands.add_parser("create-account", help="create a staff account")
    account.add_argument("name")
    account.add_argument("--role", required=True, choices=[role.value for role in StaffRole])
    account.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    listing = commands.add_parser("queue", help="waiting escalations, oldest first")
    listing.add_argument("--limit", type=int, default=50)

    for name, text in (
        ("claim", "take a waiting escalation"),
        ("reply", "send a reply to the member of an escalation in progress"),
        ("hand-back", "resume the conversation in Rasa and close the escalation"),
        ("close", "close an escalation (a paused conversation is resumed)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("escalation_id", type=int)
        command.add_argument("--staff", required=True, help="who does it (audited)")
        if name in ("hand-back", "close"):
            command.add_argument("--note", help="internal note")
        if name == "reply":
            command.add_argument("--text", help="the reply (default: read standard input)")
        if name != "claim":
            command.add_argument("--rasa-url", help="default: http://localhost:RASA_PORT")
    return parser


def _rasa(settings: Settings, url: str | None) -> RasaApi:
    return RasaApi(url or settings.rasa_url, ensure_rasa_token(settings))


def _line(view: EscalationView) -> str:
    waited = ""
    if view.waiting is not None:
        minutes = int(view.waiting.total_seconds() // 60)
        waited = f"  waiting {minutes // 60}h{minutes % 60:02d}m"
    staff = f"  {view.assigned_staff}" if view.assigned_staff else ""
    return (
        f"#{view.id}  {view.status}  {view.reason}  {view.channel or '-'}  "
        f"{view.sender_id or '-'}  member {view.member_id or '-'}{staff}{waited}"
    )


def _password(read_stdin: bool) -> str:
    if read_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the passwords differ")
    return first


def cli_creator() -> str:
    """Who creates an account from the command line: ``cli:<os user>``, or ``cli``."""
    try:
        user = getpass.getuser().strip()
    except (KeyError, OSError, ImportError):
        # No login name in the environment and no password-database entry.
        user = ""
    return f"cli:{user}" if user else "cli"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 when done, 2 when refused."""
    args = _parser().parse_args(argv)
    settings = load_settings()
    sessions = session_factory(args.url or settings.database_url)
    now = datetime.now(timezone.utc)
    try:
        if args.command == "reply":
            text = args.text if args.text is not None else sys.stdin.read()
            sent = send_staff_message(
                sessions,
                args.escalation_id,
                args.staff,
                text,
                now,
                _rasa(settings, args.rasa_url),
            )
            print(f"reply #{sent.id} delivered to escalation #{args.escalation_id}")
            return 0
        with sessions.begin() as session:
            if args.command == "create-account":
                made = create_account(
                    session,
                    args.name,
                    args.role,
                    _password(args.password_stdin),
                    now,
                    created_by=cli_creator(),
                )
                print(f"account created: {made.name} ({made.role.value})")
            elif args.command == "queue":
                views = queue(session, now, args.limit)
                for view in views:
                    print(_line(view))
                print(f"waiting: {len(views)}")
            elif args.command == "claim":
                print(_line(claim(session, args.escalation_id, args.staff, now)))
            elif args.command == "close":
                view = close(
                    session,
                    args.escalation_id,
                    args.staff,
                    args.note,
                    now,
                    resume=lambda sender: _rasa(settings, args.rasa_url).resume(sender),
                )
                print(_line(view))
            else:
                view = hand_back(
                    session,
                    args.escalation_id,
                    args.staff,
                    now,
                    _rasa(settings, args.rasa_url),
                    handed_back_text_for(settings.org_id, settings.profiles_dir),
                    note=args.note,
                )
                print(_line(view))
    except (AccountError, EscalationError, RasaApiError, RelayError) as error:
        print(f"refused: {error}", file=sys.stderr)
        return REFUSED
    return 0
