"""REST round trip of a full identity-verification dialog, against FAQ turns.

``python -m bench.verification_dialog [--dialogs N]`` starts the real servers on a
database and var dir of their own, then runs, one after another, ``N`` complete
verifications (ask for one's data → 記号・番号 → 生年月日 → the SMS code, read from the
demo outbox → the record) and, in the same run on the same servers, ``N`` dialogs of
four policy questions: the baseline that needs no database and no SMS. It prints the
per-message p50/p95 of both and their ratio, and the wall time of a whole dialog.

Every message is one POST to the product's REST channel (``PRIVACY_BOT_REST`` on, the
HTTP API token as a bearer header), each dialog a conversation ``rest:bench-…`` of its own.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import requests

from bench.procs import free_port
from bench.stats import percentile
from bot.launcher import RunningAssistant, running, train_if_needed
from bot.settings import load_settings

FAQ_TURNS = (
    "口座情報は何に使われますか",
    "個人情報はどうやって守られていますか",
    "開示請求の手数料はいくらですか",
    "ありがとうございました",
)


def _code(outbox: Path) -> str:
    last = outbox.read_text("utf-8").splitlines()[-1]
    match = re.search(r"\d{6}", json.loads(last)["text"])
    if not match:
        raise RuntimeError("the outbox has no code")
    return match.group()


def _timed_dialog(
    assistant: RunningAssistant, turns: Sequence[str | Callable[[], str]]
) -> list[float]:
    sender = f"bench-{uuid.uuid4().hex[:10]}"
    latencies = []
    for turn in turns:
        text = turn() if callable(turn) else turn
        started = time.perf_counter()
        response = requests.post(
            assistant.rest_url,
            json={"sender": sender, "message": text},
            headers=assistant.rest_headers,
            timeout=60,
        )
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        if not response.json():
            raise RuntimeError(f"no reply to turn {len(latencies)}")
    return latencies


def _summary(name: str, dialogs: list[list[float]]) -> dict[str, float]:
    flat = [value * 1000 for dialog in dialogs for value in dialog]
    walls = [sum(dialog) * 1000 for dialog in dialogs]
    figures = {
        "p50_ms": percentile(flat, 50),
        "p95_ms": percentile(flat, 95),
        "dialog_p50_ms": percentile(walls, 50),
        "dialog_p95_ms": percentile(walls, 95),
    }
    print(
        f"{name:<28} per message p50 {figures['p50_ms']:7.1f} ms  p95 {figures['p95_ms']:7.1f} ms"
        f"   whole dialog p50 {figures['dialog_p50_ms']:7.1f} ms  p95 "
        f"{figures['dialog_p95_ms']:7.1f} ms  ({len(dialogs)} dialogs, {len(flat)} messages)"
    )
    return figures


def run(dialogs: int = 30) -> dict[str, dict[str, float]]:
    """Measure ``dialogs`` verifications and as many FAQ dialogs on fresh servers."""
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        var_dir = Path(tmp)
        settings = replace(
            load_settings(),
            var_dir=var_dir,
            database_url=f"sqlite:///{var_dir / 'app.db'}",
            rasa_port=free_port(),
            action_port=free_port(),
            rasa_token=uuid.uuid4().hex,
            rest_enabled=True,  # off unless enabled; every call then carries the token
            # Every dialog verifies the same demo member, many times a minute: the SMS
            # limits (5 a day per number, 30 a minute) would refuse most of them.
            verification_sms_per_member_day=1000,
            verification_sms_per_minute=100_000,
        )
        outbox = var_dir / "outbox.jsonl"
        with running(settings, train_if_needed(), log_dir=var_dir / "logs") as assistant:
            _timed_dialog(assistant, FAQ_TURNS)  # warm-up: first requests load lazily
            verify: list[str | Callable[[], str]] = [
                "自分の登録内容を確認したいです",
                "記号1001 番号23",
                "昭和60年4月1日",
                lambda: _code(outbox),
            ]
            faq = [_timed_dialog(assistant, FAQ_TURNS) for _ in range(dialogs)]
            verified = [_timed_dialog(assistant, verify) for _ in range(dialogs)]
    results = {
        "faq_dialog": _summary("FAQ dialog (baseline)", faq),
        "verification_dialog": _summary("verification dialog", verified),
    }
    base, measured = results["faq_dialog"], results["verification_dialog"]
    print(
        f"ratio verification/FAQ: p50 {measured['p50_ms'] / base['p50_ms']:.2f}×, "
        f"p95 {measured['p95_ms'] / base['p95_ms']:.2f}× per message"
    )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.verification_dialog")
    parser.add_argument("--dialogs", type=int, default=30)
    args = parser.parse_args(argv)
    run(args.dialogs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
