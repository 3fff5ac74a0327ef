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

It also replaces Rasa's ``session_request``, message and ``disconnect`` handlers, for
sessions a browser cannot take from someone else (:mod:`bot.channels.web_sessions`):

- the server issues every session id, with a resume secret that only the tab holding
  the session knows; ``session_confirm`` carries both (``{"session_id": ...,
  "resume_secret": ...}``). A ``session_request`` resumes a session only with its
  current secret, which is then replaced; with the id alone, a wrong or an old secret
  it gets a **new** session, never the one asked for;
- one live socket per session: when a socket resumes a session that another socket
  holds, that one is told (``session_taken_over``) and disconnected;
- a message is taken only from a socket that confirmed a session, and only if it names
  that session: knowing an id is not enough to speak into its conversation;
- the conversation (Rasa's sender id) is ``web:<session id>``
  (:func:`bot.core.conversation.conversation_id`), and the socket.io room of a session
  is that conversation id, so the output channel emits to the recipient id as Rasa
  gives it, for answers and for messages sent through the HTTP API alike. The id staff
  and logs see is no credential.

It also awaits ``enter_room``, which Rasa 3.6 forgets to do with python-socketio 5 (the
stock channel with ``session_persistence`` answers nobody). ``session_persistence: true``
is required: the rate limit, the offered buttons and the tracker follow a conversation
across page reloads and reconnects.

With ``REDIS_URL``, the channel builds its socket.io server with python-socketio's
``AsyncRedisManager`` (Rasa's blueprint builds a plain one, so the blueprint is this
channel's own, keeping Rasa's health route and connect check): every emit is published
in Redis and reaches the room's sockets on every replica. That is how a staff reply
reaches a member whose socket is on another rasa server than the one the console called
(``/conversations/<id>/execute?output_channel=latest`` makes Rasa call
:meth:`WebchatInput.get_output_channel`, whose output emits through this server), and
how a socket whose session was resumed elsewhere is told and disconnected. The guard is
then the shared one (:mod:`bot.channels.shared_guard`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from rasa.core.channels.channel import (
    InputChannel,
    OutputChannel,
    UserMessage,
    decode_bearer_token,
)
from rasa.core.channels.socketio import SocketBlueprint, SocketIOInput, SocketIOOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncRedisManager, AsyncServer
from sqlalchemy.exc import SQLAlchemyError

from bot.channels.guard import ChannelGuard, Guard, hashed_sender
from bot.channels.shared_guard import SharedChannelGuard
from bot.channels.shared_state import CONNECT_TIMEOUT_S, KEY_PREFIX, connect_checked
from bot.channels.web_sessions import OpenedSession, WebSessionStore
from bot.core.conversation import channel_of, conversation_id
from bot.db.session import session_factory
from bot.settings import load_settings

logger = logging.getLogger(__name__)

DEFAULT_MAX_PER_MINUTE = 20
CHANNEL = "socketio"  # Rasa's name of this channel; its conversations are web:<id>
SESSION_CONFIRM_EVT = "session_confirm"
# Sent to a socket whose session another socket resumed, just before it is disconnected.
SESSION_TAKEN_OVER_EVT = "session_taken_over"


def room_of(session_id: str) -> str:
    """The socket.io room of a session: its conversation id, ``web:<session_id>``.

    The output channel gets the conversation id as the recipient and emits to it as is:
    answers and messages sent through the HTTP API reach the room without a lookup.
    """
    return conversation_id(CHANNEL, session_id)


class GuardedSocketIOOutput(SocketIOOutput):
    """Rasa's socketio output that tells the guard which buttons it sent.

    It sends only to website-chat conversations (``web:...``): any other recipient id
    (a LINE or REST conversation sent through the HTTP API with
    ``output_channel=socketio``) could otherwise name a socket's own room.
    """

    def __init__(self, sio: AsyncServer, bot_message_evt: str, guard: Guard) -> None:
        """Create the output channel.

        Args:
            sio: the socket.io server of the input channel.
            bot_message_evt: the event bot messages are emitted as.
            guard: the guard to report offered buttons to.
        """
        super().__init__(sio, bot_message_evt)
        self.guard = guard

    async def _send_message(self, socket_id: str, response: Any) -> None:
        """Emit one bot message to the room of the conversation ``socket_id`` names.

        Args:
            socket_id: the recipient, a conversation id (Rasa's parameter name).
            response: the message.
        """
        if channel_of(socket_id) != CHANNEL:
            logger.warning("Not a website-chat conversation: message not sent")
            return
        await self.sio.emit(self.bot_message_evt, response, room=socket_id)

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        """Send a custom payload to the recipient's room, and only there.

        Rasa's version lets the payload name its own ``room``; here the recipient decides.
        """
        await self._send_message(recipient_id, json_message)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        """Record the buttons' payloads as offered, then send text and buttons.

        Recorded before sending: a member who taps at once must find the offer there.
        """
        payloads = [str(button.get("payload", "")) for button in buttons]
        await self.guard.offered_async(recipient_id, payloads)
        await super().send_text_with_buttons(recipient_id, text, buttons, **kwargs)


class WebchatInput(SocketIOInput):
    """Rasa's socketio input channel with server-issued sessions and the channel guard."""

    def __init__(
        self,
        *args: Any,
        guard: Guard | None = None,
        store: WebSessionStore | None = None,
        redis_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Create the channel; arguments as for :class:`SocketIOInput`.

        Args:
            *args: passed to :class:`SocketIOInput`.
            guard: the guard to apply (a default one when None).
            store: where sessions are kept (the app database of the settings when None,
                opened on first use).
            redis_url: Redis for the socket.io server's messages (None: this process
                only).
            **kwargs: passed to :class:`SocketIOInput`.

        Raises:
            ValueError: Without ``session_persistence``: a conversation would then be a
                socket, gone with every reload.
        """
        super().__init__(*args, **kwargs)
        if not self.session_persistence:
            raise ValueError("the website chat's channel needs session_persistence: true")
        self.guard: Guard = guard or ChannelGuard(max_per_minute=DEFAULT_MAX_PER_MINUTE)
        self.store = store
        self.redis_url = redis_url
        # The Redis pub/sub channel of the socket.io servers; every replica uses the same.
        self.socketio_channel = f"{KEY_PREFIX}socketio"
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
        # socket id -> the session it confirmed, and back; both forgotten when it goes.
        self.sessions: dict[str, str] = {}
        self.holders: dict[str, str] = {}

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        """Build the channel from its ``credentials.yml`` block.

        Besides Rasa's socketio options, ``max_messages_per_minute`` sets the rate limit
        per conversation (default 20). With ``REDIS_URL`` set, the guard and the socket.io
        server's messages are shared with the other replicas in Redis.

        Raises:
            SettingsError: If ``REDIS_URL`` is set and Redis does not answer.
        """
        options = dict(credentials or {})
        per_minute = int(options.pop("max_messages_per_minute", DEFAULT_MAX_PER_MINUTE))
        channel = super().from_credentials(options)
        assert isinstance(channel, WebchatInput)  # SocketIOInput builds cls(...)
        redis_url = load_settings().redis_url
        if redis_url is None:
            channel.guard = ChannelGuard(max_per_minute=per_minute)
        else:
            client = connect_checked(redis_url)
            channel.guard = SharedChannelGuard(client, cls.name(), per_minute)
            channel.redis_url = redis_url
        return channel

    def session_store(self) -> WebSessionStore:
        """The session store; the app database of the settings unless one was given.

        The rasa server runs this channel: its app database is ``DATABASE_URL``, as for
        every other process of the product.
        """
        if self.store is None:
            self.store = WebSessionStore(session_factory(load_settings().database_url))
        return self.store

    def get_output_channel(self) -> OutputChannel | None:
        """The output channel for messages sent through Rasa's HTTP API."""
        if self.sio is None:
            return super().get_output_channel()  # warns, returns None
        return GuardedSocketIOOutput(self.sio, self.bot_message_evt, self.guard)

    def make_server(self) -> AsyncServer:
        """The socket.io server: with a Redis URL, its emits reach every replica's sockets.

        ``cors_allowed_origins=[]`` as in Rasa's blueprint: CORS is left to Sanic.
        """
        manager = None
        if self.redis_url:
            manager = AsyncRedisManager(
                self.redis_url,
                channel=self.socketio_channel,
                # No socket_timeout: the manager's listener waits on an idle connection.
                redis_options={"socket_connect_timeout": CONNECT_TIMEOUT_S},
            )
        return AsyncServer(async_mode="sanic", cors_allowed_origins=[], client_manager=manager)

    def may_connect(self, auth: Any) -> bool:
        """Rasa's connect check: with ``jwt_key``, a socket needs a valid token."""
        if not self.jwt_key:
            return True
        token = auth.get("token") if isinstance(auth, dict) else None
        if not token:
            return False
        return bool(decode_bearer_token(token, self.jwt_key, self.jwt_algorithm))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The socketio blueprint: Rasa's routes, this channel's server and handlers.

        Rasa's blueprint builds its own ``AsyncServer``, which cannot be given a client
        manager; this one is built by :meth:`make_server`. It keeps Rasa's health route
        and connect check; this channel's ``session_request``, message and
        ``disconnect`` handlers take the place of Rasa's.
        """
        sio = self.make_server()
        self.sio = sio  # Rasa's get_output_channel emits through it
        blueprint = SocketBlueprint(sio, self.socketio_path, "socketio_webhook", __name__)

        @blueprint.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @sio.on("connect", namespace=self.namespace)
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
            return self.may_connect(auth)

        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Any = None) -> None:
            await self.start_session(sio, sid, data)

        @sio.on(self.user_message_evt, namespace=self.namespace)
        async def handle_message(sid: str, data: Any = None) -> None:
            await self.receive(sio, sid, data, on_new_message)

        @sio.on("disconnect", namespace=self.namespace)
        async def disconnect(sid: str, *_: Any) -> None:
            self.forget(sid)

        return blueprint

    def forget(self, sid: str) -> str | None:
        """Forget the session of socket ``sid`` (gone, or moving to another session).

        Returns:
            The session it held, if any.
        """
        session_id = self.sessions.pop(sid, None)
        if session_id is not None and self.holders.get(session_id) == sid:
            del self.holders[session_id]
        return session_id

    async def start_session(self, sio: AsyncServer, sid: str, data: Any) -> None:
        """Answer ``session_request``: resume the session asked for, or start a new one.

        Args:
            sio: the socket.io server.
            sid: the socket asking.
            data: ``{"session_id": ..., "resume_secret": ...}``; without the session's
                current secret a new session is started (see the module doc).
        """
        asked = data if isinstance(data, dict) else {}
        try:
            opened = await asyncio.to_thread(
                self.session_store().open,
                sid,
                asked.get("session_id"),
                asked.get("resume_secret"),
                self.clock(),
            )
        except SQLAlchemyError:
            # The socket cannot be given a session; disconnected, the widget retries.
            logger.exception("Website-chat session not opened: app database error")
            await sio.disconnect(sid, namespace=self.namespace)
            return
        if not opened.resumed and asked.get("session_id") is not None:
            logger.info("Website-chat session not resumed (no valid secret): a new one issued")

        previous = self.forget(sid)
        if previous is not None:
            await sio.leave_room(sid, room_of(previous), namespace=self.namespace)
        for holder in {opened.previous_socket, self.holders.get(opened.session_id)}:
            if holder is not None and holder != sid:
                await self.end_taken_over(sio, holder, opened.session_id)

        try:
            # Rasa 3.6 calls enter_room without awaiting it, and python-socketio 5 made
            # it a coroutine: the stock channel never joins the session's room, so the
            # bot's answers (emitted to that room) reach nobody. Awaited here.
            await sio.enter_room(sid, room_of(opened.session_id), namespace=self.namespace)
        except (KeyError, ValueError):
            # python-socketio's refusal for a socket that disconnected meanwhile.
            logger.info("Socket gone before its session was confirmed")
            return
        self.sessions[sid] = opened.session_id
        self.holders[opened.session_id] = sid
        await sio.emit(
            SESSION_CONFIRM_EVT, confirmation(opened), room=sid, namespace=self.namespace
        )

    async def end_taken_over(self, sio: AsyncServer, holder: str, session_id: str) -> None:
        """Tell socket ``holder`` that another socket resumed its session; disconnect it.

        It is forgotten and leaves the room first: from now on nothing it sends counts,
        and nothing of the conversation reaches it.

        Args:
            sio: the socket.io server.
            holder: the socket that held the session until now (maybe gone, or held by
                another rasa server process: then this reaches it only through a shared
                socket.io message queue, and its secret is void all the same).
            session_id: the session.
        """
        self.forget(holder)
        await sio.leave_room(holder, room_of(session_id), namespace=self.namespace)
        await sio.emit(SESSION_TAKEN_OVER_EVT, {}, room=holder, namespace=self.namespace)
        await sio.disconnect(holder, namespace=self.namespace)

    async def receive(
        self,
        sio: AsyncServer,
        sid: str,
        data: Any,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
    ) -> None:
        """Turn a member's socket event into a message for the guard and then Rasa.

        A message counts only for the session this socket confirmed, and only if it
        names that session: a socket cannot speak into a conversation whose id it merely
        claims.

        Args:
            sio: the socket.io server.
            sid: the socket the message came on.
            data: ``{"message": ..., "session_id": ...}`` as the widget sends it.
            on_new_message: Rasa's handler.
        """
        if not isinstance(data, dict):
            return
        session_id = self.sessions.get(sid)
        if session_id is None or data.get("session_id") != session_id:
            logger.warning("Message on a socket without that confirmed session: ignored")
            return
        text = data.get("message")
        message = UserMessage(
            text if isinstance(text, str) else "",
            GuardedSocketIOOutput(sio, self.bot_message_evt, self.guard),
            room_of(session_id),
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
        verdict = await self.guard.admit_async(message.sender_id, message.text or "")
        if verdict.reply:
            await message.output_channel.send_text_message(message.sender_id, verdict.reply)
        if verdict.text is None:
            logger.debug("Message from %s not handed on", hashed_sender(message.sender_id))
            return
        message.text = verdict.text
        await on_new_message(message)


def confirmation(opened: OpenedSession) -> dict[str, str]:
    """The ``session_confirm`` payload: the session id and the secret that resumes it."""
    return {"session_id": opened.session_id, "resume_secret": opened.resume_secret}
