"""Settings read from the environment, in one place.

Every process (action server, launcher, tests) reads its configuration here; the
documented variables and their defaults are listed in ``.env.example``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ORG = "kokusai-kogyo-kenpo"
SMS_BACKENDS = ("outbox", "twilio")
ORIGIN_NETLOC = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class SettingsError(ValueError):
    """A setting in the environment has a value that cannot be used."""


def _port(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name} must be a TCP port number, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """The product's configuration."""

    org_id: str
    profiles_dir: Path
    var_dir: Path
    database_url: str
    rasa_port: int
    action_port: int
    rasa_token: str | None
    # How SMS leave: "outbox" appends them to a JSON-lines file (demo, tests), "twilio"
    # sends them for real. Credentials stay out of repr() so a logged Settings leaks none.
    sms_backend: str = "outbox"
    outbox_file: Path | None = None  # PRIVACY_BOT_OUTBOX; see outbox_path
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_from: str | None = None
    # Key of the HMACs over verification codes and member numbers; see ensure_secret().
    secret: str | None = field(default=None, repr=False)
    # The website chat: the port of its page (bot/channels/webpage.py) and, when the browser
    # must reach the rasa server somewhere else than on the page's host at rasa_port
    # (a TLS proxy in production), that public origin.
    webchat_port: int = 8080
    webchat_rasa_url: str | None = None
    # LINE's intake (bot/channels/line/intake.py), where several replicas have it: the
    # port on which it acknowledges LINE's deliveries for all of them.
    line_intake_port: int = 5006
    # `make cluster` on one machine: how many intake processes share that port (a burst
    # of deliveries is acknowledged by every core), and the nice value of the turn work
    # (rasa and action servers), so that nginx and the intake get the CPU first while
    # they acknowledge a burst (bot/launcher.py, lower_priority).
    line_intake_processes: int = 2
    cluster_turn_nice: int = 10
    # Rasa's SQL tracker store: TRACKER_STORE_URL, else the app database, or beside a
    # SQLite app database a file of its own (see tracker_url). The staff console reads
    # transcripts from it.
    tracker_store_url: str | None = None
    # A Redis lock store (redis://host:port/db) for several rasa servers; REDIS_URL when
    # unset, else in memory (see lock_url).
    lock_store_url: str | None = None
    # Redis for what several rasa servers share (bot/channels/shared_state.py): the channel
    # guard's limits and offered buttons, LINE's webhook event ids and API budget, the
    # website chat's socket.io messages; and the default lock store. Unset: per process.
    redis_url: str | None = None
    # The address every server listens on: loopback unless told otherwise (a container
    # behind a private network sets 0.0.0.0). The public face is nginx (deploy/nginx/).
    bind_host: str = "127.0.0.1"
    # The REST channel is for tests and operators: off unless PRIVACY_BOT_REST=true,
    # and then only with the HTTP API token.
    rest_enabled: bool = False
    # The secret the rasa server sends with every action call; see ensure_action_secret().
    action_secret: str | None = field(default=None, repr=False)
    # The staff console (bot/console): its port, minutes of inactivity that end a
    # session, and whether its cookie is marked Secure (behind TLS in production).
    console_port: int = 5002
    console_idle_minutes: int = 30
    console_secure_cookie: bool = False
    # Days a silent conversation's tracker events are kept (bot/retention.py).
    transcript_retention_days: int = 90
    # Console sign-in (bot/staff/accounts.py): the longest wait that a run of failed
    # sign-ins imposes before the next attempt (the wait doubles up to it), and the
    # reverse proxies (addresses or networks) whose X-Forwarded-For the console
    # believes; none by default: the client is the TCP peer.
    console_signin_max_delay_minutes: int = 15
    console_trusted_proxies: tuple[str, ...] = ()
    # Hand-offs to a person (bot/handoff/escalations.py): new ones per conversation in any 24
    # hours, and across all conversations in any hour. Past either, the member is given
    # the contact window and nothing is queued.
    handoff_max_per_conversation: int = 3
    handoff_max_per_hour: int = 30
    # Verification SMS limits (bot/identity/verification.py), counted in the app database so that
    # they hold across action server replicas: codes sent per member number (記号・番号)
    # in any 24 hours, and per minute across all members.
    verification_sms_per_member_day: int = 5
    verification_sms_per_minute: int = 30
    # The LINE Messaging API (bot/channels/line/api.py) as case notifications use it:
    # the channel access token, and where the API is (None: https://api.line.me; tests
    # point it at a stand-in). The rasa server's LINE channel reads the same variables
    # through credentials.yml.
    line_channel_access_token: str | None = field(default=None, repr=False)
    line_api_base_url: str | None = None
    # The outbox worker (bot/worker): how often it looks for messages to send, how long
    # a claim holds before a dead deliverer's message is settled (an SMS as unknown, a
    # LINE push re-pushed with its retry key), and tries per message before it fails.
    outbox_poll_seconds: int = 1
    outbox_lease_seconds: int = 120
    outbox_max_attempts: int = 5
    # Retention (bot/retention.py), run by the worker every retention_purge_minutes:
    # finished outbound messages are deleted after outbox_retention_days (their phone
    # numbers are masked at the first purge after delivery); staff replies of closed
    # hand-offs after staff_message_retention_days; audit rows after audit_retention_days.
    retention_purge_minutes: int = 60
    outbox_retention_days: int = 365
    staff_message_retention_days: int = 365
    audit_retention_days: int = 1825
    # The action server (actions/offloop.py): threads that run actions' database and
    # network work off its event loop, and the seconds one action's work may take before
    # the member is asked to try again (and its unit of work is rolled back).
    action_threads: int = 8
    action_timeout_seconds: int = 10
    # ACTION_ENDPOINT_URL: where the rasa server calls its actions when not the action
    # server on action_port: `make cluster` points every rasa server at nginx's internal
    # upstream of all action servers (bot/cluster.py), compose at its actions service.
    action_endpoint: str | None = None
    # Messages of the member after which a Rasa session continues in a new one at the
    # next quiet turn (bot/core/sessions.py), so that a turn's cost stays bounded.
    session_turn_limit: int = 20

    @property
    def tracker_url(self) -> str:
        """The SQLAlchemy URL of Rasa's tracker store.

        ``TRACKER_STORE_URL``, else the app database; but when that is a SQLite file,
        ``tracker.db`` beside it. SQLite locks the whole file for every write: staff
        commands call the rasa server inside their unit of work (hand back and close
        resume the conversation), and Rasa's write of the same file would wait for that
        lock until it gave up (after 5 s, falling back to memory and losing the event).
        """
        if self.tracker_store_url:
            return self.tracker_store_url
        prefix = "sqlite:///"
        path = self.database_url[len(prefix) :] if self.database_url.startswith(prefix) else ""
        if path and "?" not in path and path != ":memory:":
            return f"{prefix}{Path(path).with_name('tracker.db')}"
        return self.database_url

    @property
    def lock_url(self) -> str | None:
        """Rasa's Redis lock store: ``LOCK_STORE_URL``, else ``REDIS_URL``, else None (memory).

        Several rasa servers must share their conversation locks as they share the rest;
        ``LOCK_STORE_URL`` is only needed to keep the locks on another Redis.
        """
        return self.lock_store_url or self.redis_url

    @property
    def local_host(self) -> str:
        """How servers on this machine reach one another: the address they listen on.

        The loopback address itself rather than ``localhost`` (which may resolve to
        ``::1`` first); for a wildcard bind, loopback; an IPv6 address in brackets.
        """
        if self.bind_host in ("0.0.0.0", "::"):
            return "127.0.0.1"
        return f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host

    @property
    def rasa_url(self) -> str:
        """Where servers on this machine reach the rasa server's HTTP API."""
        return f"http://{self.local_host}:{self.rasa_port}"

    @property
    def action_endpoint_url(self) -> str:
        """Where the rasa server reaches the action server."""
        return self.action_endpoint or f"http://{self.local_host}:{self.action_port}/webhook"

    @property
    def outbox_path(self) -> Path:
        """The demo SMS outbox: PRIVACY_BOT_OUTBOX, else ``outbox.jsonl`` in the var dir.

        Derived, not stored, so that ``replace(settings, var_dir=...)`` moves it too.
        """
        return self.outbox_file or self.var_dir / "outbox.jsonl"


def _optional(env: dict[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def _sms_backend(env: dict[str, str]) -> str:
    backend = env.get("SMS_BACKEND", "").strip().lower() or "outbox"
    if backend not in SMS_BACKENDS:
        raise SettingsError(
            f"SMS_BACKEND must be one of {', '.join(SMS_BACKENDS)}, got {backend!r}"
        )
    if backend == "twilio":
        # Refused at start-up rather than at the first verification, mid-conversation.
        missing = [
            name
            for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM")
            if not _optional(env, name)
        ]
        if missing:
            raise SettingsError(f"SMS_BACKEND=twilio needs {', '.join(missing)}")
    return backend


def _minutes(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) <= 24 * 60:
        raise SettingsError(f"{name} must be a number of minutes (1–1440), got {raw!r}")
    return int(raw)


def _days(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) <= 3650:
        raise SettingsError(f"{name} must be a number of days (1–3650), got {raw!r}")
    return int(raw)


def _audit_days(env: dict[str, str]) -> int:
    # The database refuses to delete audit rows younger than a year (migration 0008).
    days = _days(env, "AUDIT_RETENTION_DAYS", 1825)
    if days < 365:
        raise SettingsError(f"AUDIT_RETENTION_DAYS must be at least 365, got {days}")
    return days


def _count(env: dict[str, str], name: str, default: int, maximum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) <= maximum:
        raise SettingsError(f"{name} must be a whole number from 1 to {maximum}, got {raw!r}")
    return int(raw)


def _nice(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 19:
        raise SettingsError(f"{name} must be a whole number from 0 to 19, got {raw!r}")
    return int(raw)


def _flag(env: dict[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _networks(env: dict[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (``10.0.0.5``, ``10.0.0.0/24``, ``::1``)."""
    found = []
    for part in env.get(name, "").split(","):
        if not part.strip():
            continue
        try:
            found.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise SettingsError(
                f"{name} must list IP addresses or networks such as 10.0.0.5 or "
                f"10.0.0.0/24, got {part.strip()!r}"
            ) from None
    return tuple(found)


def _redis_url(env: dict[str, str], name: str) -> str | None:
    raw = _optional(env, name)
    scheme = urlsplit(raw).scheme if raw is not None else ""
    if raw is not None and scheme not in ("redis", "rediss"):
        # Only the scheme is quoted: the URL may carry a password.
        raise SettingsError(
            f"{name} must be a redis:// or rediss:// URL, got one with scheme {scheme!r}"
        )
    return raw


def _host(env: dict[str, str], name: str, default: str) -> str:
    """An address to listen on: an IPv4/IPv6 address or ``localhost``, nothing else."""
    raw = env.get(name, "").strip() or default
    if raw == "localhost":
        return "127.0.0.1"
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        raise SettingsError(
            f"{name} must be an IP address such as 127.0.0.1, got {raw!r}"
        ) from None
    return raw


def _origin(env: dict[str, str], name: str) -> str | None:
    """An optional ``http(s)://host[:port]`` origin, without path, query or fragment."""
    raw = _optional(env, name)
    if raw is None:
        return None
    parsed = urlsplit(raw)
    # The origin goes into the page's Content-Security-Policy header: only host names,
    # IP addresses and a port, nothing that could end or extend a directive.
    if (
        parsed.scheme not in ("http", "https")
        or not ORIGIN_NETLOC.fullmatch(parsed.netloc)
        or parsed.path not in ("", "/")
        or parsed.query
        or parsed.fragment
    ):
        raise SettingsError(f"{name} must be an origin like https://chat.example.jp, got {raw!r}")
    return raw.rstrip("/")


def _http_url(env: dict[str, str], name: str) -> str | None:
    """An optional ``http(s)://`` URL, without its trailing slash."""
    raw = _optional(env, name)
    if raw is None:
        return None
    if not raw.startswith(("https://", "http://")):
        raise SettingsError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (the process environment by default)."""
    env = dict(os.environ if env is None else env)
    var_dir = Path(env.get("PRIVACY_BOT_VAR_DIR") or PROJECT_ROOT / "var")
    profiles_dir = Path(
        env.get("PRIVACY_BOT_PROFILES_DIR") or PROJECT_ROOT / "bot" / "policy" / "profiles" / "data"
    )
    settings = Settings(
        org_id=env.get("PRIVACY_BOT_ORG", "").strip() or DEFAULT_ORG,
        profiles_dir=profiles_dir,
        var_dir=var_dir,
        database_url=env.get("DATABASE_URL", "").strip() or f"sqlite:///{var_dir / 'app.db'}",
        rasa_port=_port(env, "RASA_PORT", 5005),
        action_port=_port(env, "ACTION_PORT", 5055),
        rasa_token=env.get("RASA_TOKEN", "").strip() or None,
        sms_backend=_sms_backend(env),
        outbox_file=Path(outbox) if (outbox := _optional(env, "PRIVACY_BOT_OUTBOX")) else None,
        twilio_account_sid=_optional(env, "TWILIO_ACCOUNT_SID"),
        twilio_auth_token=_optional(env, "TWILIO_AUTH_TOKEN"),
        twilio_from=_optional(env, "TWILIO_FROM"),
        secret=_optional(env, "PRIVACY_BOT_SECRET"),
        webchat_port=_port(env, "WEBCHAT_PORT", 8080),
        webchat_rasa_url=_origin(env, "WEBCHAT_RASA_URL"),
        line_intake_port=_port(env, "LINE_INTAKE_PORT", 5006),
        line_intake_processes=_count(env, "LINE_INTAKE_PROCESSES", 2, 16),
        cluster_turn_nice=_nice(env, "CLUSTER_TURN_NICE", 10),
        tracker_store_url=_optional(env, "TRACKER_STORE_URL"),
        lock_store_url=_redis_url(env, "LOCK_STORE_URL"),
        redis_url=_redis_url(env, "REDIS_URL"),
        bind_host=_host(env, "PRIVACY_BOT_BIND_HOST", "127.0.0.1"),
        rest_enabled=_flag(env, "PRIVACY_BOT_REST"),
        action_secret=_optional(env, "ACTION_SERVER_SECRET"),
        console_port=_port(env, "CONSOLE_PORT", 5002),
        console_idle_minutes=_minutes(env, "CONSOLE_IDLE_MINUTES", 30),
        console_secure_cookie=_flag(env, "CONSOLE_SECURE_COOKIE"),
        transcript_retention_days=_days(env, "TRANSCRIPT_RETENTION_DAYS", 90),
        verification_sms_per_member_day=_count(env, "VERIFICATION_SMS_PER_MEMBER_DAY", 5, 1000),
        verification_sms_per_minute=_count(env, "VERIFICATION_SMS_PER_MINUTE", 30, 100_000),
        console_signin_max_delay_minutes=_minutes(env, "CONSOLE_SIGNIN_MAX_DELAY_MINUTES", 15),
        console_trusted_proxies=_networks(env, "CONSOLE_TRUSTED_PROXIES"),
        handoff_max_per_conversation=_count(env, "HANDOFF_MAX_PER_CONVERSATION", 3, 100),
        handoff_max_per_hour=_count(env, "HANDOFF_MAX_PER_HOUR", 30, 100_000),
        line_channel_access_token=_optional(env, "LINE_CHANNEL_ACCESS_TOKEN"),
        line_api_base_url=_http_url(env, "LINE_API_BASE_URL"),
        outbox_poll_seconds=_count(env, "OUTBOX_POLL_SECONDS", 1, 3600),
        outbox_lease_seconds=_count(env, "OUTBOX_LEASE_SECONDS", 120, 86_400),
        outbox_max_attempts=_count(env, "OUTBOX_MAX_ATTEMPTS", 5, 100),
        retention_purge_minutes=_minutes(env, "RETENTION_PURGE_MINUTES", 60),
        outbox_retention_days=_days(env, "OUTBOX_RETENTION_DAYS", 365),
        staff_message_retention_days=_days(env, "STAFF_MESSAGE_RETENTION_DAYS", 365),
        audit_retention_days=_audit_days(env),
        action_threads=_count(env, "ACTION_THREADS", 8, 64),
        action_timeout_seconds=_count(env, "ACTION_TIMEOUT_SECONDS", 10, 240),
        session_turn_limit=_count(env, "SESSION_TURN_LIMIT", 20, 10_000),
        action_endpoint=_http_url(env, "ACTION_ENDPOINT_URL"),
    )
    if (
        settings.tracker_store_url is not None
        and settings.tracker_store_url.startswith("sqlite")
        and settings.tracker_store_url == settings.database_url
    ):
        # Staff commands call the rasa server inside a unit of work of the app database;
        # with one SQLite file, Rasa's write would wait on that lock and be lost.
        raise SettingsError(
            "TRACKER_STORE_URL must not be the SQLite file of DATABASE_URL: "
            "leave it unset (var/tracker.db) or use PostgreSQL"
        )
    return settings


def ensure_secret(settings: Settings) -> str:
    """The hashing secret: PRIVACY_BOT_SECRET, or one generated once into var/secret.

    Raises:
        SettingsError: If the secret file exists but is empty.
    """
    return settings.secret or secret_file(settings.var_dir / "secret")


def ensure_rasa_token(settings: Settings) -> str:
    """The rasa HTTP API token: RASA_TOKEN, or one generated once into var/rasa_token.

    Raises:
        SettingsError: If the token file exists but is empty.
    """
    return settings.rasa_token or secret_file(settings.var_dir / "rasa_token")


def ensure_action_secret(settings: Settings) -> str:
    """What the rasa server proves itself with to the action server.

    ACTION_SERVER_SECRET, or one generated once into var/action_secret.

    Raises:
        SettingsError: If the secret file exists but is empty.
    """
    return settings.action_secret or secret_file(settings.var_dir / "action_secret")


def secret_file(path: Path) -> str:
    """The secret kept in ``path``, generated on first use; never seen half-written.

    The file is created with mode 0600 before anything is written to it and published
    with a hard link, which fails if another process got there first: the servers and
    the launcher may start together on a fresh var dir, and they must all end up with
    the same secret.

    Args:
        path: the file (its folder is created when missing).

    Raises:
        SettingsError: If the file exists but is empty.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise SettingsError(f"{path} is empty: delete it to generate a new secret")
    return value


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by this user only, all at once.

    The text goes into a new file created with mode 0600, which then takes the place
    of ``path`` (``os.replace``): no reader ever sees a half-written file, and the
    secret is never in a file with wider permissions, not even for a moment.

    Args:
        path: the file (its folder is created when missing).
        text: what it holds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(draft, path)
    except BaseException:
        draft.unlink(missing_ok=True)
        raise


# Each setting's environment variable: how the launcher hands the caller's settings to
# the servers it starts (they read them back with load_settings). The secrets are not
# here (but for the LINE access token, below): they go to the servers as var/ files
# (write_private), never in an environment.
ENVIRONMENT: dict[str, str] = {
    "org_id": "PRIVACY_BOT_ORG",
    "profiles_dir": "PRIVACY_BOT_PROFILES_DIR",
    "var_dir": "PRIVACY_BOT_VAR_DIR",
    "database_url": "DATABASE_URL",
    "rasa_port": "RASA_PORT",
    "action_port": "ACTION_PORT",
    "sms_backend": "SMS_BACKEND",
    "outbox_file": "PRIVACY_BOT_OUTBOX",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "twilio_from": "TWILIO_FROM",
    "webchat_port": "WEBCHAT_PORT",
    "webchat_rasa_url": "WEBCHAT_RASA_URL",
    "line_intake_port": "LINE_INTAKE_PORT",
    "line_intake_processes": "LINE_INTAKE_PROCESSES",
    "cluster_turn_nice": "CLUSTER_TURN_NICE",
    "tracker_store_url": "TRACKER_STORE_URL",
    "lock_store_url": "LOCK_STORE_URL",
    "redis_url": "REDIS_URL",
    "bind_host": "PRIVACY_BOT_BIND_HOST",
    "rest_enabled": "PRIVACY_BOT_REST",
    "console_port": "CONSOLE_PORT",
    "console_idle_minutes": "CONSOLE_IDLE_MINUTES",
    "console_secure_cookie": "CONSOLE_SECURE_COOKIE",
    "transcript_retention_days": "TRANSCRIPT_RETENTION_DAYS",
    "verification_sms_per_member_day": "VERIFICATION_SMS_PER_MEMBER_DAY",
    "verification_sms_per_minute": "VERIFICATION_SMS_PER_MINUTE",
    "console_signin_max_delay_minutes": "CONSOLE_SIGNIN_MAX_DELAY_MINUTES",
    "console_trusted_proxies": "CONSOLE_TRUSTED_PROXIES",
    "handoff_max_per_conversation": "HANDOFF_MAX_PER_CONVERSATION",
    "handoff_max_per_hour": "HANDOFF_MAX_PER_HOUR",
    # A secret, yet handed on in the environment, not as a var/ file: the rasa server's
    # LINE channel reads it from there (credentials.yml's ${LINE_CHANNEL_ACCESS_TOKEN}).
    "line_channel_access_token": "LINE_CHANNEL_ACCESS_TOKEN",
    "line_api_base_url": "LINE_API_BASE_URL",
    "outbox_poll_seconds": "OUTBOX_POLL_SECONDS",
    "outbox_lease_seconds": "OUTBOX_LEASE_SECONDS",
    "outbox_max_attempts": "OUTBOX_MAX_ATTEMPTS",
    "retention_purge_minutes": "RETENTION_PURGE_MINUTES",
    "outbox_retention_days": "OUTBOX_RETENTION_DAYS",
    "staff_message_retention_days": "STAFF_MESSAGE_RETENTION_DAYS",
    "audit_retention_days": "AUDIT_RETENTION_DAYS",
    "action_threads": "ACTION_THREADS",
    "action_timeout_seconds": "ACTION_TIMEOUT_SECONDS",
    "session_turn_limit": "SESSION_TURN_LIMIT",
    "action_endpoint": "ACTION_ENDPOINT_URL",
}
# Settings that are secrets, with their variables: files in var/ carry them instead.
SECRETS: dict[str, str] = {
    "rasa_token": "RASA_TOKEN",
    "secret": "PRIVACY_BOT_SECRET",
    "action_secret": "ACTION_SERVER_SECRET",
}


def environment_of(settings: Settings) -> dict[str, str | None]:
    """The environment variables that give a server process exactly these settings.

    None means "unset": the launcher removes that variable from what it hands on, so a
    value the caller changed to the default is not overridden by its own environment.
    The tracker store is given resolved (``tracker_url``), so every server uses the
    same one whatever it would derive. Secrets are left out (see :data:`SECRETS`).

    Args:
        settings: the settings to hand on.
    """
    environment: dict[str, str | None] = {}
    for name, variable in ENVIRONMENT.items():
        value = settings.tracker_url if name == "tracker_store_url" else getattr(settings, name)
        if value is None or value == ():
            environment[variable] = None
        elif isinstance(value, bool):
            environment[variable] = "true" if value else "false"
        elif isinstance(value, tuple):
            environment[variable] = ",".join(value)
        else:
            environment[variable] = str(value)
    for variable in SECRETS.values():
        environment[variable] = None
    return environment
