"""``python -m bot.db``: create or upgrade the app database, load demo or generated members.

Examples::

    python -m bot.db upgrade                    # schema to the newest revision
    python -m bot.db upgrade --demo             # ... and the demo members (idempotent)
    python -m bot.db upgrade --generate 100000  # ... and 100,000 reproducible members
    python -m bot.db current                    # the revision the database is at
    python -m bot.db purge                      # delete what outlived its retention period

The database is ``DATABASE_URL`` (default: ``var/app.db``) unless ``--url`` is given.
Generated members have made-up phone numbers: use them with the outbox SMS backend only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone

from sqlalchemy.engine import make_url

from bot.db.demo import generate_members, load_demo
from bot.db.migrate import current_revision, head_revision, new_revision, upgrade
from bot.db.session import session_factory
from bot.retention import purge_configured
from bot.settings import load_settings


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.db", description="The app database's schema and demo data."
    )
    parser.add_argument("--url", help="database URL (default: DATABASE_URL, else var/app.db)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("upgrade", help="create or upgrade the schema to the newest revision")
    up.add_argument("--demo", action="store_true", help="load the demo members (idempotent)")
    up.add_argument(
        "--generate",
        type=_count,
        default=0,
        metavar="N",
        help="make sure N generated members exist (reproducible; for load tests)",
    )
    commands.add_parser("current", help="print the database's revision and the newest one")
    purging = commands.add_parser(
        "purge",
        help="delete silent conversations' transcripts, abandoned drafts and old failures",
    )
    purging.add_argument(
        "--transcript-days",
        type=_count,
        default=None,
        metavar="DAYS",
        help="keep tracker events this many days (default: TRANSCRIPT_RETENTION_DAYS, 90)",
    )
    revision = commands.add_parser(
        "revision", help="(developers) write a new migration compared against the database"
    )
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--empty", action="store_true", help="no autogenerate")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = _parser().parse_args(argv)
    settings = load_settings()
    url = args.url or settings.database_url
    shown = make_url(url).render_as_string(hide_password=True)
    if args.command == "current":
        print(f"{shown}: {current_revision(url) or '(empty)'} (newest: {head_revision()})")
        return 0
    if args.command == "purge":
        days = args.transcript_days or settings.transcript_retention_days
        result = purge_configured(
            replace(settings, database_url=url), datetime.now(timezone.utc), days
        )
        print(
            f"{shown}: {result.events} events older than {days} days "
            f"({result.conversations} silent conversations), {result.drafts} abandoned "
            f"drafts, {result.failures} verification failures, {result.lockouts} lockouts, "
            f"{result.staff_sessions} console sessions, {result.outbound_deleted} outbound "
            f"messages, {result.staff_messages} staff replies, {result.audit_rows} audit rows "
            f"deleted; {result.outbound_masked} phone numbers masked"
        )
        return 0
    if args.command == "revision":
        new_revision(url, args.message, autogenerate=not args.empty)
        return 0
    upgrade(url)
    print(f"{shown}: schema at revision {current_revision(url)}")
    if args.demo or args.generate:
        with session_factory(url).begin() as session:
            if args.demo:
                print(f"demo members added: {load_demo(session)}")
            if args.generate:
                print(f"generated members added: {generate_members(session, args.generate)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
