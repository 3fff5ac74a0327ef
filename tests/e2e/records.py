"""What the running assistant wrote, as the e2e tests read it: its database and the
demo SMS outbox (a member's phone)."""

from __future__ import annotations

import json
import re

import sqlalchemy as sa

from bot.launcher import RunningAssistant

# 山田 太郎's phone, where his verification codes go.
PHONE_A = "+819012345678"


def latest_code(assistant: RunningAssistant, to: str = PHONE_A) -> str:
    """The verification code in the last SMS to ``to``."""
    lines = (assistant.var_dir / "outbox.jsonl").read_text("utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines if json.loads(line)["to"] == to]
    match = re.search(r"\d{6}", texts[-1])
    assert match, texts[-1]
    return match.group()


def database(assistant: RunningAssistant) -> sa.engine.Engine:
    """An engine on the assistant's app database."""
    return sa.create_engine(assistant.settings.database_url)
