"""The cost of a turn late in a long conversation against early, on the SQL tracker store.

``python -m bench.long_conversation [--turns 150] [--conversations 1] [--turn-limit N]
[--backends sqlite,postgresql]`` starts the product's servers (rasa server with the
redacting SQL tracker store, action server; bench.servers.running_product, i.e.
bot.launcher.running) once per tracker store and session setting, and sends one member's
FAQ questions over REST, one turn at most every 1.1 s (the REST channel's rate limit
is 60 a minute per sender), for ``--turns`` turns. It prints the median
turn time of each block of 10 turns, the ratio of the last block to the first, and how
many Rasa sessions the conversation had in the tracker store. After each turn it sends
one turn of a short conversation (a new sender every 10 turns), whose median per block
is the machine's load at that moment: the ratios are also given with each block divided
by it, since other work on a shared machine moves the absolute figures.

Two settings per store, on fresh servers each:

- ``unbounded``: ``SESSION_TURN_LIMIT`` above the conversation's length, so the whole
  conversation is one Rasa session, as before the limit existed (the rasa server still
  counts the session's messages every turn, which costs microseconds);
- ``bounded``: the product's ``SESSION_TURN_LIMIT`` (or ``--turn-limit``).

The tracker store (``TRACKER_STORE_URL``) is a SQLite file, then a PostgreSQL database
``privacy_bench_long_…`` created for each run and dropped afterwards
(``PRIVACY_BOT_BENCH_POSTGRES_URL`` or the local server, as bench.databases); the app
database is a SQLite file (an FAQ turn does not touch it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import aiohttp
import sqlalchemy as sa

from bench import cli
from bench.databases import _reachable_postgres
from bench.rest import post_message
from bench.servers import running_product
from bot.launcher import RunningAssistant
from bot.settings import load_settings

logger = logging.getLogger("bench.long_conversation")  # __name__ is "__main__" under -m

BLOCK = 10
# The REST channel lets a sender send 60 messages a minute (credentials.yml): one turn
# starts at most every 1.1 s, as a member who types fast; the turn time excludes the wait.
TURN_INTERVAL_S = 1.1
UNBOUNDED = 10_000  # a turn limit no benchmark conversation reaches
DATABASE_PREFIX = "privacy_bench_long_"
# FAQ questions, each answered from the profile by action_answer_policy (no form, no
# database): what a member asks in a long conversation, asked again and again.
QUESTIONS = (
    "口座情報は何に使われますか",
    "個人情報はどうやって守られていますか",
    "開示請求の手数料はいくらですか",
    "個人情報の保存期間を教えてください",
    "第三者に提供することはありますか",
    "マイナンバーは何に使いますか",
    "苦情はどこに言えばいいですか",
    "開示請求にはどれくらい時間がかかりますか",
    "ありがとうございました",
    "委託先に個人情報を渡していますか",
)


@dataclass
class Run:
    """One conversation setting on one store: turn times in order, and the sessions."""

    store: str
    setting: str
    limit: int
    seconds: list[list[float]]  # per conversation, per turn
    sessions: list[int]  # per conversation: its Rasa sessions in the tracker store
    baseline: list[list[float]]  # per conversation, the short conversations' turn after each

    def block_ms(self, index: int, kind: str = "seconds") -> float:
        """The median turn time of block ``index`` (turns 10i+1 … 10i+10), all conversations.

        Args:
            index: the block.
            kind: ``seconds`` (the long conversation) or ``baseline`` (the short ones
                sent between its turns).
        """
        series: list[list[float]] = getattr(self, kind)
        pooled = [turn for turns in series for turn in turns[index * BLOCK : (index + 1) * BLOCK]]
        return statistics.median(pooled) * 1000

    def load_adjusted(self, index: int) -> float:
        """Block ``index``'s median over the short conversations' median at the same time."""
        return self.block_ms(index) / self.block_ms(index, "baseline")

    @property
    def blocks(self) -> int:
        """How many full blocks of 10 turns every conversation has."""
        return min(len(turns) for turns in self.seconds) // BLOCK


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    """A new PostgreSQL database ``privacy_bench_long_…``, dropped afterwards; None if none."""
    admin_url, problem = _reachable_postgres()
    if admin_url is None:
        logger.warning("PostgreSQL skipped: %s", problem)
        yield None
        return
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def session_count(tracker_url: str, sender: str) -> int:
    """How many Rasa sessions the conversation ``sender`` has in the tracker store."""
    engine = sa.create_engine(tracker_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sa.text(
                    "SELECT count(*) FROM events "
                    "WHERE sender_id = :sender AND type_name = 'session_started'"
                ),
                {"sender": sender},
            ).scalar_one()
        return int(found)
    finally:
        engine.dispose()


async def conversation(
    assistant: RunningAssistant, sender: str, turns: int, baseline: bool = True
) -> tuple[list[float], list[float]]:
    """Sends ``turns`` FAQ questions as ``sender`` (conversation ``rest:<sender>``).

    With ``baseline``, each turn is followed by one turn of a short conversation (a new
    sender every 10 turns, so each is in its first 10 turns): the machine's load at that
    moment, which the long conversation's turns are divided by.

    Returns:
        The seconds of each turn of the long conversation, and of each baseline turn.

    Raises:
        RuntimeError: If a turn fails or gets no answer.
    """
    took: list[float] = []
    fresh: list[float] = []
    short = f"{sender}-short"
    async with aiohttp.ClientSession(headers=assistant.rest_headers) as http:

        async def turn_of(who: str, index: int) -> float:
            text = QUESTIONS[index % len(QUESTIONS)]
            reply = await post_message(http, assistant.rest_url, who, text, 60.0)
            if reply.error or not reply.messages:
                raise RuntimeError(f"{who} turn {index + 1}: {reply.error or 'no reply'}")
            return reply.seconds

        for turn in range(turns):
            started = time.monotonic()
            took.append(await turn_of(sender, turn))
            if baseline:
                fresh.append(await turn_of(f"{short}{turn // BLOCK}", turn))
            await asyncio.sleep(max(0.0, TURN_INTERVAL_S - (time.monotonic() - started)))
    return took, fresh


def measure(
    store: str, setting: str, limit: int, turns: int, conversations: int, **changes: str
) -> Run:
    """One setting on fresh servers: a warm-up, then ``conversations`` long conversations."""
    logger.info("%s, %s (turn limit %d): starting the servers", store, setting, limit)
    with running_product(session_turn_limit=limit, **changes) as assistant:
        asyncio.run(conversation(assistant, "bench-long-warmup", 3, baseline=False))
        run = Run(store, setting, limit, [], [], [])
        for index in range(conversations):
            sender = f"bench-long-{uuid.uuid4().hex[:10]}"
            took, fresh = asyncio.run(conversation(assistant, sender, turns))
            run.seconds.append(took)
            run.baseline.append(fresh)
            tracker_url = assistant.settings.tracker_url
            run.sessions.append(session_count(tracker_url, f"rest:{sender}"))
            logger.info("%s, %s: conversation %d done", store, setting, index + 1)
    blocks = ", ".join(
        f"{run.block_ms(i):.1f}/{run.block_ms(i, 'baseline'):.1f}" for i in range(run.blocks)
    )
    logger.info("%s, %s: block medians (ms) %s; sessions %s", store, setting, blocks, run.sessions)
    return run


def report(runs: Sequence[Run]) -> list[str]:
    """The Markdown table of block medians and the last/first ratios of each run."""
    blocks = min(run.blocks for run in runs)
    header = ["turns", *(f"{run.store} {run.setting} (ms)" for run in runs)]
    lines = ["| " + " | ".join(header) + " |", "| :--- |" + " ---: |" * len(runs)]
    for index in range(blocks):
        cells = [
            f"{run.block_ms(index):.1f} ({run.block_ms(index, 'baseline'):.1f})" for run in runs
        ]
        lines.append(f"| {index * BLOCK + 1}–{(index + 1) * BLOCK} | " + " | ".join(cells) + " |")
    last = f"{(blocks - 1) * BLOCK + 1}–{blocks * BLOCK}"

    def row(label: str, cells: Iterable[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    lines += [
        row(
            f"ratio {last} / 1–10",
            (f"{run.block_ms(blocks - 1) / run.block_ms(0):.2f}×" for run in runs),
        ),
        row(
            f"ratio {last} / 1–10, each over its short conversations",
            (f"{run.load_adjusted(blocks - 1) / run.load_adjusted(0):.2f}×" for run in runs),
        ),
        row(
            "ratio slowest block / 1–10, each over its short conversations",
            (
                f"{max(run.load_adjusted(i) for i in range(blocks)) / run.load_adjusted(0):.2f}×"
                for run in runs
            ),
        ),
        row("Rasa sessions per conversation", (",".join(map(str, r.sessions)) for r in runs)),
        row("turn limit", (str(r.limit) if r.limit < UNBOUNDED else "none" for r in runs)),
    ]
    return lines


def run(turns: int, conversations: int, limit: int, stores: Sequence[str]) -> int:
    """Measures both settings on each store and prints the report."""
    runs: list[Run] = []
    settings = (("unbounded", UNBOUNDED), ("bounded", limit))
    if "sqlite" in stores:
        for setting, turn_limit in settings:
            runs.append(measure("SQLite", setting, turn_limit, turns, conversations))
    if "postgresql" in stores:
        for setting, turn_limit in settings:
            # A fresh database per setting: neither run reads the other's events.
            with postgres_database() as url:
                if url is None:
                    break
                runs.append(
                    measure(
                        "PostgreSQL",
                        setting,
                        turn_limit,
                        turns,
                        conversations,
                        tracker_store_url=url,
                    )
                )
    print(
        f"Median turn time per block of {BLOCK} turns, one REST conversation of {turns} FAQ "
        f"questions (x{conversations}), redacting SQL tracker store; in brackets the median "
        "of the short conversations' turns sent between them (the machine's load):"
    )
    for line in report(runs):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = cli.parser("python -m bench.long_conversation", __doc__)
    parser.add_argument("--turns", type=cli.at_least(BLOCK * 2), default=150)
    parser.add_argument("--conversations", type=cli.at_least(1), default=1)
    parser.add_argument(
        "--turn-limit", type=cli.at_least(1), default=load_settings().session_turn_limit
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    stores = [name.strip() for name in args.backends.split(",") if name.strip()]
    return cli.run(lambda: run(args.turns, args.conversations, args.turn_limit, stores))


if __name__ == "__main__":
    raise SystemExit(main())
