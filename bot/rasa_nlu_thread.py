"""The rasa server's NLU off its event loop.

Rasa parses each member's message synchronously inside the event loop
(``MessageProcessor.parse_message`` calls the model's graph directly): while one
message is tokenized and classified, the server reads no other request. Under a burst
of LINE deliveries, whose webhook must be acknowledged at once, the acknowledgements
then wait behind other members' parsing. :func:`install` makes ``parse_message`` run
the graph in one thread of its own and wait for it, so the loop keeps answering
meanwhile. One thread: messages are parsed one at a time, as before (MeCab's tagger and
the classifiers are not shared between threads), and the dialogue's policies stay on
the loop. Rasa has no setting for this, hence the replaced method; ``bot.rasa_server``
installs it before Rasa starts.

Unlike Rasa's own method, the replacement does not log the parsed text (a member's
message) at debug level.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.processor import MessageProcessor
from rasa.shared.core.trackers import DialogueStateTracker

THREAD_NAME = "privacy-nlu"
_INSTALLED = "_privacy_bot_nlu_thread"
_executor: ThreadPoolExecutor | None = None


def _nlu_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
    return _executor


def install() -> None:
    """Make Rasa's message processor parse messages in the NLU thread. Idempotent."""
    current = MessageProcessor.parse_message
    original = getattr(current, _INSTALLED, current)

    async def parse_message(
        self: MessageProcessor,
        message: UserMessage,
        tracker: DialogueStateTracker | None = None,
        only_output_properties: bool = True,
    ) -> dict[str, Any]:
        if self.http_interpreter:  # parsing elsewhere already waits without blocking
            return await original(self, message, tracker, only_output_properties)
        parse = functools.partial(
            self._parse_message_with_graph,
            message,
            tracker or DialogueStateTracker.from_events(message.sender_id, []),
            only_output_properties,
        )
        parse_data: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
            _nlu_executor(), parse
        )
        # What Rasa's own method does after parsing.
        self._update_full_retrieval_intent(parse_data)
        self._check_for_unseen_features(parse_data)
        return parse_data

    setattr(parse_message, _INSTALLED, original)
    MessageProcessor.parse_message = parse_message
