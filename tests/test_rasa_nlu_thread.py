"""Rasa's message parsing, moved off the event loop: same result, other thread, in order."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.processor import MessageProcessor

from bot import rasa_nlu_thread


class Recording(MessageProcessor):
    """Rasa's processor with its graph replaced by a slow, recording stand-in."""

    def __init__(self) -> None:  # no model: only the parsing path is exercised
        self.http_interpreter = None
        self.threads: list[str] = []
        self.running = 0
        self.most_at_once = 0

    def _parse_message_with_graph(
        self, message: Any, tracker: Any, only_output_properties: bool = True
    ) -> dict[str, Any]:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.threads.append(threading.current_thread().name)
        time.sleep(0.05)  # a CPU-bound parse, as far as the loop is concerned
        self.running -= 1
        return {
            "text": message.text,
            "intent": {"name": "greet", "confidence": 0.9},
            "entities": [],
        }

    def _check_for_unseen_features(self, parse_data: dict[str, Any]) -> None:
        return None


def test_parsing_runs_in_its_thread_one_at_a_time_while_the_loop_goes_on():
    rasa_nlu_thread.install()
    rasa_nlu_thread.install()  # idempotent: still one wrapper around Rasa's method
    processor = Recording()

    async def scenario() -> tuple[list[dict[str, Any]], int]:
        ticks = 0

        async def ticking() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticker = asyncio.create_task(ticking())
        parsed = await asyncio.gather(
            *(processor.parse_message(UserMessage(f"m{n}", sender_id="s")) for n in range(4))
        )
        ticker.cancel()
        return list(parsed), ticks

    parsed, ticks = asyncio.run(scenario())
    assert [p["text"] for p in parsed] == ["m0", "m1", "m2", "m3"]
    assert all(name.startswith(rasa_nlu_thread.THREAD_NAME) for name in processor.threads)
    assert processor.most_at_once == 1
    # The loop ran other tasks during the 4 × 50 ms of parsing; parsed inline, it could
    # tick only between two messages (at most 5 times).
    assert ticks >= 8
