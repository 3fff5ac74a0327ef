"""The website chat's channel: Rasa's socketio channel behind the shared channel guard.

``credentials.yml`` names this class by its module path, which is how Rasa 3.6 loads a
channel that is not built in (``rasa.core.run._create_single_channel``). It keeps the
name ``socketio`` and every option of Rasa's :class:`SocketIOInput` (event names,
``session_persistence``, ``socketio_path``), so the page connects exactly as it would to
the stock channel. What it adds, on every message a member sends:

- the :class:`~bot.channels.guard.ChannelGuard` decides first: a member over the rate
  limit or the length limit gets a polite notice and Rasa sees nothing; a typed
  ``/intent`` payload reaches Rasa as an intent only if the bot offered it as a button
  (otherwise it goes on as plain words, without the slash);
- the buttons the bot sends are reported to the guard as offered, whichever way they
  leave (an answer to the member, or a message sent through Rasa's HTTP API);
- metadata sent by the browser is dropped: nothing the product runs reads it, and
  whatever a browser claims about itself must not reach the tracker as if it were true.

It also replaces two handlers of Rasa's blueprint. ``session_request`` awaits
``enter_room``, which Rasa 3.6 forgets to do with python-socketio 5 (the stock channel
with ``session_persistence`` answers nobody), and issues its own ids. A message counts
only for the session its socket confirmed, so knowing a session id is not enough to
speak into that conversation.

Sender ids are the socketio session ids (``session_persistence: true``), so the rate
limit and the offered buttons follow a conversation across page reloads and reconnects.
"""

from __future__ import annotations

import inspect
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from sanic import Blueprint
from socketio import AsyncServer

from bot.channels.guard import ChannelGuard, hashed_sender

logger = logging.getLogger(__name__)

DEFAULT_MAX_PER_MINUTE = 20
# The session ids this channel issues (uuid4().hex); anything else asked for is replaced.
SESSION_ID = re.compile(r"[0-9a-f]{32}")


class GuardedSocketIOOutput(SocketIOOutput):
    """Rasa's socketio output that tells the guard which buttons it sent."""

    def __init__(self, sio: AsyncServer, bot_message_evt: str, guard: ChannelGuard) -> None:
        """Create the output channel.

        Args:
            sio: the socket.io server of the input channel.
            bot_message_evt: the event bot messages are emitted as.
            guard: the guard to report offered buttons to.
        """
        super().__init__(sio, bot_message_evt)
        self.guard = guard

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        """Record the buttons' payloads as offered, then send text and buttons.

        Recorded before sending: a member who taps at once must find the offer there.
        """
        self.guard.offered(recipient_id, [str(button.get("payload", "")) for button in buttons])
        await super().send_text_with_buttons(recipient_id, text, buttons, **kwargs)


class WebchatInput(SocketIOInput):
    """Rasa's socketio input channel with the channel guard applied to every message."""

    def __init__(self, *args: Any, guard: ChannelGuard | None = None, **kwargs: Any) -> None:
        """Create the channel; arguments as for :class:`SocketIOInput`.

        Args:
            *args: passed to :class:`SocketIOInput`.
            guard: the guard to apply (a default one when None).
            **kwargs: passed to :class:`SocketIOInput`.
        """
        super().__init__(*args, **kwargs)
        self.guard = guard or ChannelGuard(max_per_minute=DEFAULT_MAX_PER_MINUTE)
        # socket id -> the session it confirmed; forgotten when the socket goes.
        self.sessions: dict[str, str] = {}

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        """Build the channel from its ``credentials.yml`` block.

        Besides Rasa's socketio options, ``max_messages_per_minute`` sets the rate limit
        per conversation (default 20).
        """
        options = dict(credentials or {})
        per_minute = int(options.pop("max_messages_per_minute", DEFAULT_MAX_PER_MINUTE))
        channel = super().from_credentials(options)
        assert isinstance(channel, WebchatInput)  # SocketIOInput builds cls(...)
        channel.guard = ChannelGuard(max_per_minute=per_minute)
        return channel

    def get_output_channel(self) -> OutputChannel | None:
        """The output channel for messages sent through Rasa's HTTP API."""
        if self.sio is None:
            return super().get_output_channel()  # warns, returns None
        return GuardedSocketIOOutput(self.sio, self.bot_message_evt, self.guard)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Rasa's socketio blueprint with the session and message handlers replaced.

        Rasa's blueprint keeps its health route and connect handler; this channel's own
        ``session_request``, message and ``disconnect`` handlers take the place of
        Rasa's (python-socketio keeps one handler per event, the last registered).
        """
        blueprint = super().blueprint(on_new_message)
        sio = self.sio
        assert sio is not None  # set by SocketIOInput.blueprint

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Any) -> None:
            await self.start_session(sio, sid, data)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any) -> None:
            await self.receive(sio, sid, data, on_new_message)

        @sio.on("disconnect", namespace=self.namespace)
        async def disconnect(sid: str, *_: Any) -> None:
            self.sessions.pop(sid, None)

        return blueprint

    async def start_session(self, sio: AsyncServer, sid: str, data: Any) -> None:
        """Answer ``session_request``: continue the session asked for, or start one.

        Args:
            sio: the socket.io server.
            sid: the socket asking.
            data: ``{"session_id": ...}``; an id not in the form this channel issues
                (32 hex digits) is replaced by a new one.
        """
        asked = data.get("session_id") if isinstance(data, dict) else None
        session_id = asked if isinstance(asked, str) and SESSION_ID.fullmatch(asked) else None
        session_id = session_id or uuid.uuid4().hex
        if self.session_persistence:
            # Rasa 3.6 calls enter_room without awaiting it, and python-socketio 5 made
            # it a coroutine: the stock channel never joins the session's room, so the
            # bot's answers (emitted to that room) reach nobody. Awaited here.
            joined = sio.enter_room(sid, session_id, namespace=self.namespace)
            if inspect.isawaitable(joined):
                await joined
            self.sessions[sid] = session_id
        await sio.emit("session_confirm", session_id, room=sid, namespace=self.namespace)

    async def receive(
        self,
        sio: AsyncServer,
        sid: str,
        data: Any,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> None:
        """Turn a member's socket event into a message for the guard and then Rasa.

        With session persistence, a message counts only for the session this socket
        confirmed: a socket cannot speak into a conversation whose id it merely claims.

        Args:
            sio: the socket.io server.
            sid: the socket the message came on.
            data: ``{"message": ..., "session_id": ...}`` as the widget sends it.
            on_new_message: Rasa's handler.
        """
        if not isinstance(data, dict):
            return
        if self.session_persistence:
            sender_id = self.sessions.get(sid)
            if sender_id is None or data.get("session_id") != sender_id:
                logger.warning("Message on a socket without that confirmed session: ignored")
                return
        else:
            sender_id = sid
        text = data.get("message")
        message = UserMessage(
            text if isinstance(text, str) else "",
            GuardedSocketIOOutput(sio, self.bot_message_evt, self.guard),
            sender_id,
            input_channel=self.name(),
            # Whatever the browser sends as metadata is dropped (see the module doc).
            metadata={},
        )
        await self.handle(message, on_new_message)

    async def handle(
        self, message: UserMessage, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> None:
        """Apply the guard to one member message and hand on what it admits.

        Args:
            message: the message as Rasa's socketio channel built it.
            on_new_message: Rasa's handler, which runs the message through the bot.
        """
        verdict = self.guard.admit(message.sender_id, message.text or "")
        if verdict.reply:
            await message.output_channel.send_text_message(message.sender_id, verdict.reply)
        if verdict.text is None:
            logger.debug("Message from %s not handed on", hashed_sender(message.sender_id))
            return
        message.text = verdict.text
        await on_new_message(message)
