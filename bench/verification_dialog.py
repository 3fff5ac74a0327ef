"""REST round trip of a whole identity-verification dialog, against FAQ turns.

``python -m bench.verification_dialog [--dialogs N]`` starts the real servers on a
database and var dir of their own (bench.servers.running_product), then runs, one after
another, ``N`` dialogs of four policy questions (the baseline: no database, no SMS) and,
on the same servers, ``N`` complete verifications (ask for one's data → 記号・番号 →
生年月日 → the SMS code, read from the demo outbox → the record). It prints the p50/p95
per message and per whole dialog of both, and their ratios.

Every message is one POST to the product's REST channel with the HTTP API token, each
dialog a conversation ``rest:bench-…`` of its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Sequence

import aiohttp

from bench import cli
from bench.report import ratio_line, timing_line
from bench.rest import post_message
from bench.servers import running_product
from bench.stats import Timings
from bot.launcher import RunningAssistant

FAQ_TURNS = (
    "口座情報は何に使われますか",
    "個人情報はどうやって守られていますか",
    "開示請求の手数料はいくらですか",
    "ありがとうございました",
)

Turn = str | Callable[[], str]  # a message, or how to read it when it is due


async def timed_dialogs(
    assistant: RunningAssistant, dialogs: int, turns: Sequence[Turn]
) -> dict[str, Timings]:
    """Runs ``dialogs`` dialogs of ``turns`` one after another; times messages and dialogs.

    Raises:
        RuntimeError: If a message fails or gets no answer.
    """
    timings = {"per message": Timings(), "whole dialog": Timings()}
    async with aiohttp.ClientSession(headers=assistant.rest_headers) as http:
        for _ in range(dialogs):
            sender = f"bench-{uuid.uuid4().hex[:10]}"
            took: list[float] = []
            for turn in turns:
                text = turn() if callable(turn) else turn
                reply = await post_message(http, assistant.rest_url, sender, text, 60.0)
                if reply.error or not reply.messages:
                    raise RuntimeError(f"turn {len(took) + 1}: {reply.error or 'no reply'}")
                took.append(reply.seconds)
            timings["per message"].seconds += took
            timings["whole dialog"].seconds.append(sum(took))
    return timings


def run(dialogs: int) -> int:
    """Measures ``dialogs`` FAQ dialogs and as many verifications on fresh servers."""
    # Every dialog verifies the same demo member, many times a minute: the SMS limits
    # (5 a day per number, 30 a minute) would refuse most of them.
    with running_product(
        verification_sms_per_member_day=1000, verification_sms_per_minute=100_000
    ) as assistant:

        def code() -> str:
            last = assistant.settings.outbox_path.read_text("utf-8").splitlines()[-1]
            match = re.search(r"\d{6}", json.loads(last)["text"])
            if not match:
                raise RuntimeError("the outbox has no code")
            return match.group()

        verify: list[Turn] = [
            "自分の登録内容を確認したいです",
            "記号1001 番号23",
            "昭和60年4月1日",
            code,
        ]
        asyncio.run(timed_dialogs(assistant, 1, FAQ_TURNS))  # warm-up: first requests load lazily
        faq = asyncio.run(timed_dialogs(assistant, dialogs, FAQ_TURNS))
        verified = asyncio.run(timed_dialogs(assistant, dialogs, verify))
    print(timing_line(f"FAQ dialog, {len(FAQ_TURNS)} messages (baseline)", faq))
    print(timing_line(f"verification dialog, {len(verify)} messages", verified))
    print(ratio_line(f"ratio verification/FAQ over {dialogs} dialogs each", faq, verified))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = cli.parser("python -m bench.verification_dialog", __doc__)
    parser.add_argument("--dialogs", type=cli.at_least(1), default=30)
    args = parser.parse_args(argv)
    return cli.run(lambda: run(args.dialogs))


if __name__ == "__main__":
    raise SystemExit(main())
