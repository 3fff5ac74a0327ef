"""Settings read from the environment, in one place.

Every process (action server, launcher, tests) reads its configuration here; the
documented variables and their defaults are listed in ``.env.example``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ORG = "kokusai-kogyo-kenpo"


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

    @property
    def action_endpoint_url(self) -> str:
        """Where the rasa server reaches the action server."""
        return f"http://localhost:{self.action_port}/webhook"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (the process environment by default)."""
    env = dict(os.environ if env is None else env)
    var_dir = Path(env.get("PRIVACY_BOT_VAR_DIR") or PROJECT_ROOT / "var")
    profiles_dir = Path(
        env.get("PRIVACY_BOT_PROFILES_DIR") or PROJECT_ROOT / "bot" / "profiles" / "data"
    )
    return Settings(
        org_id=env.get("PRIVACY_BOT_ORG", "").strip() or DEFAULT_ORG,
        profiles_dir=profiles_dir,
        var_dir=var_dir,
        database_url=env.get("DATABASE_URL", "").strip() or f"sqlite:///{var_dir / 'app.db'}",
        rasa_port=_port(env, "RASA_PORT", 5005),
        action_port=_port(env, "ACTION_PORT", 5055),
        rasa_token=env.get("RASA_TOKEN", "").strip() or None,
    )
