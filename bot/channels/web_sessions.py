"""The website chat's sessions: issued by the server, resumed only with a secret.

A session id names a conversation (its Rasa sender id is ``web:<id>``) and is shown to
staff, written to logs and kept in the tracker store, so it cannot be what lets a
browser back into the conversation. The server therefore issues, with each id, a
**resume secret** (``secrets.token_urlsafe(32)``, 256 random bits) that only the tab
holding the session knows (the widget keeps it in ``sessionStorage``):

- :meth:`WebSessionStore.open` with no id, an unknown id or a wrong secret starts a
  **new** session (new id, new secret), never the one asked for;
- with the right secret it continues that session and **rotates** the secret: the new
  one is handed back, the old one stops working, so a copied secret is good for one
  resume at most and a resume is noticed by whoever held the session before;
- it records the socket that holds the session, so the caller can end the previous one
  (one live socket per session).

Only the SHA-256 of a secret is stored (for 256 random bits a fast hash suffices: there
is nothing to guess), compared in constant time. The rows live in the app database, so
sessions hold across rasa server processes and restarts. :func:`purge_web_sessions`
deletes sessions not seen for the retention period.

Plain SQLAlchemy, no Rasa import: the retention purge imports it too. The functions
block; the channel calls them off its event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.db.models import WebSession

# The ids this store issues (uuid4().hex): anything else asked for is not looked up.
SESSION_ID = re.compile(r"[0-9a-f]{32}")
SECRET_BYTES = 32
# token_urlsafe(32) is 43 characters; anything much longer is not one of ours.
SECRET = re.compile(r"[A-Za-z0-9_-]{43,128}")
# Compared against when no row matches, so that a miss costs about what a hit does.
_NO_HASH = "0" * 64


def secret_hash(secret: str) -> str:
    """The stored form of a resume secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class OpenedSession:
    """A session handed to a socket.

    Attributes:
        session_id: the session's id (the conversation is ``web:<session_id>``).
        resume_secret: the secret that resumes it next time (the only copy: it is
            stored hashed).
        resumed: True if this continues the session asked for, False if it is new.
        previous_socket: the socket that held the resumed session before, if another.
    """

    session_id: str
    resume_secret: str = field(repr=False)
    resumed: bool
    previous_socket: str | None = None


class WebSessionStore:
    """Issues and resumes website-chat sessions in the app database."""

    def __init__(self, sessions: sessionmaker) -> None:
        """Create the store.

        Args:
            sessions: the app database's session factory.
        """
        self.sessions = sessions

    def open(
        self, socket_id: str, asked_id: object, asked_secret: object, now: datetime
    ) -> OpenedSession:
        """Resume the session asked for if the secret is its current one, else start one.

        One unit of work; the row is locked while its secret is checked and replaced, so
        of two sockets resuming with the same secret at once only one gets the session.

        Args:
            socket_id: the socket that will hold the session.
            asked_id: the session id the browser sent (anything: it is checked here).
            asked_secret: the resume secret the browser sent (anything).
            now: the current time (aware).

        Returns:
            The session and its new secret.
        """
        new_secret = secrets.token_urlsafe(SECRET_BYTES)
        with self.sessions.begin() as session:
            row = _matching(session, asked_id, asked_secret)
            if row is not None:
                previous = row.socket_id if row.socket_id != socket_id else None
                row.secret_hash = secret_hash(new_secret)
                row.socket_id = socket_id
                row.last_seen_at = now
                return OpenedSession(row.id, new_secret, resumed=True, previous_socket=previous)
            session_id = uuid.uuid4().hex
            session.add(
                WebSession(
                    id=session_id,
                    secret_hash=secret_hash(new_secret),
                    socket_id=socket_id,
                    created_at=now,
                    last_seen_at=now,
                )
            )
        return OpenedSession(session_id, new_secret, resumed=False)


def _matching(session: Session, asked_id: object, asked_secret: object) -> WebSession | None:
    """The row of ``asked_id`` if ``asked_secret`` is its current secret, locked; else None."""
    if not (isinstance(asked_id, str) and SESSION_ID.fullmatch(asked_id)):
        return None
    if not (isinstance(asked_secret, str) and SECRET.fullmatch(asked_secret)):
        return None
    row = session.get(WebSession, asked_id, with_for_update=True)
    stored = row.secret_hash if row is not None else _NO_HASH
    if not hmac.compare_digest(secret_hash(asked_secret), stored) or row is None:
        return None
    return row


def purge_web_sessions(session: Session, cutoff: datetime) -> int:
    """Delete the sessions last seen (issued or resumed) before ``cutoff``.

    Meant for the retention purge, with the transcript retention as the period: by then
    the conversation's transcript is gone too, and a browser still holding the secret
    gets a new session.

    Args:
        session: a unit of work of the app database (the caller commits).
        cutoff: an aware datetime.

    Returns:
        How many sessions were deleted.
    """
    result = session.execute(sa.delete(WebSession).where(WebSession.last_seen_at < cutoff))
    return max(result.rowcount or 0, 0)
