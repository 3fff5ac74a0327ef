"""Going through the verification form in the action tests, as a demo member does."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rasa_sdk import Tracker

from actions.identity import ValidateVerificationForm
from tests.action_runs import run, slot_events

# 山田 太郎: 記号・番号 and birth date as a member types them.
MEMBER_A = ("記号1001 番号23", "1985年4月1日")


def outbox_code(tmp_path: Path) -> str:
    """The code of the last SMS in the demo outbox of the test's var dir."""
    last = (tmp_path / "var" / "outbox.jsonl").read_text("utf-8").splitlines()[-1]
    match = re.search(r"\d{6}", json.loads(last)["text"])
    assert match
    return match.group()


def verify(
    tracker: Callable[..., Tracker],
    tmp_path: Path,
    member: tuple[str, str] = MEMBER_A,
    sender: str = "member-1",
) -> list[dict[str, Any]]:
    """The history of a conversation that went through the verification form.

    Each answer (記号・番号, birth date, then the code from the demo outbox) runs the
    form's validation action, as Rasa runs it for the requested slot.
    """
    form = ValidateVerificationForm()
    history: list[dict[str, Any]] = []
    for text, slot in [
        (member[0], "id_member_number"),
        (member[1], "id_birth_date"),
        (None, "id_code"),
    ]:
        text = text or outbox_code(tmp_path)
        events, _ = run(
            form,
            tracker(
                text,
                slots={**slot_events(history), "requested_slot": slot},
                history=history,
                sender=sender,
            ),
        )
        history += [{"event": "user", "text": text}, *events]
    assert slot_events(history)["verification_outcome"] == "verified"
    return history
