"""The data of the staff console benchmark (bench/console.py): escalations and Rasa events.

A database migrated by ``bot.db.migrate.upgrade`` gets escalations spread over six
months (the most recent fifth waiting or in progress in the last week, the rest closed),
with their audit rows and staff messages, and Rasa's ``events`` table where the product
puts it by default (``tracker.db`` beside a SQLite file, else the same database; see
``Settings.tracker_url``), created from Rasa's own ``SQLTrackerStore`` metadata so that its
columns and its index on ``sender_id`` are Rasa's. It holds one conversation per
escalation, among them a typical one of 100 events and a long one over many sessions.
The events are real Rasa events (``UserUttered`` with its parse data, ``BotUttered``,
``ActionExecuted``, ``SlotSet``, ``ActiveLoop``, ``SessionStarted``,
``ConversationPaused``/``Resumed``) serialized with ``as_dict()`` and ``json.dumps`` as
the SQL tracker store stores them, interleaved in time order as many conversations write
them, and bulk-inserted with SQLAlchemy Core in batches.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.core.conversation import conversation_id
from bot.db.demo import load_demo
from bot.db.migrate import upgrade
from bot.db.models import AuditLog, Escalation, Member, StaffMessage
from bot.db.session import engine_for, session_factory
from bot.handoff.relay import STAFF_PREFIX
from bot.settings import load_settings
from bot.staff.accounts import create_account

# The agent the benchmark signs in as; the others only appear as assignees.
AGENT = "bench-agent"
AGENT_PASSWORD = "bench-password-0123"
OTHER_STAFF = ("tanaka", "sato", "suzuki", "takahashi", "ito")

SPAN = timedelta(days=180)  # escalations received over six months
OPEN_WINDOW = timedelta(days=7)  # the open ones in the last week ...
OPEN_END = timedelta(hours=3)  # ... up to 3 hours ago (their replies follow)
TURN_GAP_S = 40.0  # seconds between two messages of a member in a session
SHORT_GAP_S = 0.05  # between the assistant's events of one turn
SESSION_GAP_S = 2 * 86400.0  # between two sessions of the same member
TURNS_PER_SESSION = 12
TYPICAL_EVENTS = 100
MIN_EVENTS = 32  # the shortest conversation the plan can write (closed, unverified)
VERIFIED_EVENTS = 60  # shorter ones have no verification in them
BATCH = 10_000
OPEN_SHARE = 0.2  # of the escalations, waiting or in progress
CHANNELS = ("socketio", "socketio", "rest", "line")
REASONS = (
    ["member_request"] * 70
    + ["complaint"] * 10
    + ["repeated_fallback"] * 12
    + ["verification_locked"] * 6
    + ["case_needs_person"] * 2
)

# --- the conversations: real Rasa events, serialized as the SQL tracker store does -----


POLICY_TURNS = (
    ("ask_usage_purpose", "個人情報の利用目的を教えてください"),
    ("ask_security_measures", "個人情報はどうやって守られていますか"),
    ("ask_fee", "開示請求の手数料はいくらですか"),
    ("ask_third_party_provision", "第三者に提供されることはありますか"),
    ("ask_processing_time", "開示請求をしたらどのくらいで回答がもらえますか"),
    ("ask_contact", "問い合わせ先を教えてください"),
    ("ask_employer_sharing", "健診の結果は会社にも伝わりますか"),
    ("ask_household_mailing", "医療費通知を家族に見られたくないです"),
)
ANSWER = (
    "当組合では、保険給付、保健事業、保険料の徴収など、健康保険事業の運営に必要な範囲で"
    "個人情報を利用しています。法令に基づく場合を除き、ご本人の同意なく目的外に利用する"
    "ことはありません。詳しくは個人情報保護方針の「利用目的」をご覧ください。"
)
SOURCE = "出典：個人情報保護方針 第2条（利用目的）https://www.example.or.jp/privacy/"
INTENTS = (
    "greet", "request_human", "ask_usage_purpose", "ask_security_measures", "ask_fee",
    "ask_contact", "ask_my_data", "inform", "affirm", "out_of_scope", "ask_complaint",
)  # fmt: skip
MEMBER_WAITING = (
    "よろしくお願いします",
    "まだでしょうか",
    "急ぎではありません",
    "電話でも大丈夫です",
)
MEMBER_REPLIES = (
    "はい、お願いします",
    "昨年の医療費通知の件です",
    "わかりました。ありがとうございます",
    "書類は郵送でお願いできますか",
)
STAFF_REPLIES = (
    "担当の田中です。ご用件を伺います。",
    "確認いたしますので、少々お待ちください。",
    "お待たせしました。ご依頼の書類は来週発送いたします。",
    "ほかにご不明な点はございますか。",
)

# One row of Rasa's events table: timestamp, type_name, intent_name, action_name, data.
EventRow = tuple[float, str, str | None, str | None, str]


def _ranking(intent: str, confidence: float) -> list[dict[str, Any]]:
    others = [name for name in INTENTS if name != intent][:9]
    rest = (1 - confidence) / len(others)
    return [{"name": intent, "confidence": confidence}] + [
        {"name": name, "confidence": rest * (0.9**k)} for k, name in enumerate(others)
    ]


class EventFactory:
    """Rasa events as the SQL tracker store stores them: one row per event.

    Each event is built as a Rasa event object once per distinct content, turned into
    ``as_dict()``; each row then gets its own timestamp and message ids and is dumped
    with ``json.dumps`` as ``SQLTrackerStore.save`` does.
    """

    def __init__(self, rng: random.Random) -> None:
        """Builds the templates (imports Rasa's event classes once)."""
        from rasa.shared.core import events as rasa_events

        self.rng = rng
        self._events = rasa_events
        self._cache: dict[tuple[Any, ...], tuple[str, str | None, str | None, dict[str, Any]]] = {}

    def _template(
        self, key: tuple[Any, ...], build: Callable[[], Any]
    ) -> tuple[str, str | None, str | None, dict[str, Any]]:
        found = self._cache.get(key)
        if found is None:
            event = build()
            data = event.as_dict()
            intent = data.get("parse_data", {}).get("intent", {}).get("name")
            found = (event.type_name, intent, data.get("name"), data)
            self._cache[key] = found
        return found

    def _row(self, key: tuple[Any, ...], build: Callable[[], Any], timestamp: float) -> EventRow:
        type_name, intent, action, template = self._template(key, build)
        data = dict(template)
        data["timestamp"] = timestamp
        if type_name == "user":
            message_id = f"{self.rng.getrandbits(128):032x}"
            data["message_id"] = message_id
            data["parse_data"] = {**template["parse_data"], "message_id": message_id}
        return (timestamp, type_name, intent, action, json.dumps(data))

    def user(
        self,
        text: str,
        intent: str,
        timestamp: float,
        channel: str,
        entities: Sequence[Mapping[str, Any]] = (),
    ) -> EventRow:
        """A member's message with NLU parse data (intent ranking, entities, tokens)."""
        confidence = 0.97 if intent != "nlu_fallback" else 0.3
        ev = self._events

        def build() -> Any:
            parse = {
                "intent": {"name": intent, "confidence": confidence},
                "entities": [dict(entity) for entity in entities],
                "text": text,
                "message_id": "",
                "metadata": {},
                "text_tokens": [[k, k + 1] for k in range(0, len(text), 2)],
                "intent_ranking": _ranking(intent, confidence),
            }
            return ev.UserUttered(
                text,
                intent=parse["intent"],
                entities=parse["entities"],
                parse_data=parse,
                input_channel=channel,
                message_id="",
                metadata={},
            )

        key = ("user", text, intent, channel, json.dumps(list(entities)))
        return self._row(key, build, timestamp)

    def bot(
        self,
        text: str,
        timestamp: float,
        buttons: Sequence[tuple[str, str]] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> EventRow:
        """A bot message as a custom action sends it (all of Rasa's data keys)."""
        ev = self._events

        def build() -> Any:
            # What rasa_sdk's dispatcher.utter_message sends and Rasa's
            # create_bot_utterance turns into an event: the extra keys are metadata.
            data: dict[str, Any] = {
                "elements": [],
                "quick_replies": None,
                "buttons": [{"title": t, "payload": p} for t, p in buttons],
                "attachment": None,
                "image": None,
                "custom": {},
            }
            extra = {"template": None, "response": None, **(metadata or {})}
            return ev.BotUttered(text, data=data, metadata=extra)

        key = ("bot", text, tuple(buttons), json.dumps(dict(metadata or {}), sort_keys=True))
        return self._row(key, build, timestamp)

    def action(self, name: str, timestamp: float, policy: str | None = "RulePolicy") -> EventRow:
        """An executed action with the policy that predicted it."""
        ev = self._events
        confidence = 1.0 if policy else None
        return self._row(
            ("action", name, policy),
            lambda: ev.ActionExecuted(name, policy=policy, confidence=confidence),
            timestamp,
        )

    def slot(self, name: str, value: Any, timestamp: float) -> EventRow:
        """A slot set by an action."""
        ev = self._events
        return self._row(("slot", name, repr(value)), lambda: ev.SlotSet(name, value), timestamp)

    def loop(self, name: str | None, timestamp: float) -> EventRow:
        """A form starting (its name) or ending (None)."""
        ev = self._events
        return self._row(("loop", name), lambda: ev.ActiveLoop(name), timestamp)

    def simple(self, kind: str, timestamp: float) -> EventRow:
        """``session_started``, ``pause`` or ``resume``."""
        ev = self._events
        classes = {
            "session_started": ev.SessionStarted,
            "pause": ev.ConversationPaused,
            "resume": ev.ConversationResumed,
        }
        return self._row((kind,), classes[kind], timestamp)


@dataclass(frozen=True)
class Conversation:
    """The plan of one conversation and its escalation.

    Attributes:
        index: its place in time order (0 = the oldest escalation).
        sender_id: Rasa's sender id, the channel's conversation id: ``web:`` and 32 hex
            digits as the website chat issues them, ``line:U`` and 32 for LINE, ``rest:``
            and 32 for REST (:mod:`bot.core.conversation`).
        channel: the member's channel.
        status: the escalation's status.
        handoff_at: when the escalation was opened (the conversation paused).
        events: how many events the conversation has.
        verified: whether the member verified (a verification form in the transcript).
        staff: the staff member who claimed it (None while waiting).
    """

    index: int
    sender_id: str
    channel: str
    status: str
    handoff_at: datetime
    events: int
    verified: bool
    staff: str | None


def _structure(turns: int, verified: bool, status: str, replies: int) -> int:
    """Events a conversation of ``turns`` policy turns has (see :func:`conversation_rows`)."""
    sessions = max(1, math.ceil(turns / TURNS_PER_SESSION))
    count = 3 * sessions + 4 + 5 * turns + (22 if verified else 0) + 10  # greet, hand-off
    if status != "waiting":
        count += 4 * replies  # each staff message (action, bot, listen), the member's answer
    if status == "closed":
        count += 1 + 5  # resume, then a question the assistant answers again
    return count


def _replies(status: str, events: int) -> int:
    if status == "waiting":
        return 0
    return max(1, min(events // 200, 400)) if events > 1000 else 2


def _turns_for(events: int, verified: bool, status: str) -> tuple[int, int]:
    """Policy turns and member messages in waiting that make exactly ``events`` events."""
    replies = _replies(status, events)
    turns = max(0, (events - _structure(0, verified, status, replies)) // 5)
    while turns > 0 and _structure(turns, verified, status, replies) > events:
        turns -= 1
    return turns, events - _structure(turns, verified, status, replies)


def conversation_rows(
    plan: Conversation, factory: EventFactory, rng: random.Random
) -> Iterator[EventRow]:
    """The conversation's events in time order, exactly ``plan.events`` of them.

    Sessions of policy questions (a greeting, questions answered with their source, a
    verification for some members), then the hand-off: asked twice, the assistant
    pauses; while waiting the member writes a few more lines; once claimed, staff
    messages are relayed (``action_relay_staff_message``) and the member answers; a
    closed one was handed back (``resume``) and the assistant answers again.
    """
    turns, extra = _turns_for(plan.events, plan.verified, plan.status)
    replies = _replies(plan.status, plan.events)
    channel = plan.channel
    handoff = plan.handoff_at.timestamp()
    sessions = max(1, math.ceil(turns / TURNS_PER_SESSION))
    # A member's messages (and the start of a session) come TURN_GAP_S * pace apart, the
    # assistant's events SHORT_GAP_S after them. Counting both up to the pause gives the
    # start that puts the pause exactly at the escalation's created_at.
    pace = 0.5 + rng.random()
    waits = sessions + 1 + turns + (3 if plan.verified else 0) + 2
    events = 3 * sessions + 4 + 5 * turns + (22 if plan.verified else 0) + 9
    span = waits * TURN_GAP_S * pace + (events - waits) * SHORT_GAP_S
    tick = [handoff - span - (sessions - 1) * SESSION_GAP_S]

    def at(member: bool = False, gap: float = TURN_GAP_S) -> float:
        tick[0] += gap * pace if member else SHORT_GAP_S
        return tick[0]

    def session_start() -> Iterator[EventRow]:
        yield factory.action("action_session_start", at(True), policy=None)
        yield factory.simple("session_started", at())
        yield factory.action("action_listen", at(), policy=None)

    def policy_turn() -> Iterator[EventRow]:
        intent, text = POLICY_TURNS[rng.randrange(len(POLICY_TURNS))]
        yield factory.user(text, intent, at(True), channel)
        yield factory.action("action_answer_policy", at())
        yield factory.bot(ANSWER, at())
        yield factory.bot(SOURCE, at())
        yield factory.action("action_listen", at())

    def verification() -> Iterator[EventRow]:
        yield factory.user("自分の登録内容を確認したい", "ask_my_data", at(True), channel)
        yield factory.action("verification_form", at())
        yield factory.loop("verification_form", at())
        yield factory.slot("requested_slot", "id_member_number", at())
        yield factory.action("action_ask_id_member_number", at())
        yield factory.bot("保険証の記号と番号を教えてください。", at())
        yield factory.action("action_listen", at())
        number = [{"entity": "member_id", "start": 0, "end": 9, "value": "記号1001 番号23"}]
        yield factory.user("記号1001 番号23", "inform", at(True), channel, number)
        yield factory.action("verification_form", at())
        yield factory.slot("id_member_number", "記号****番号**", at())
        yield factory.slot("requested_slot", "id_birth_date", at())
        yield factory.bot("生年月日を教えてください（例：1985年4月1日）。", at())
        yield factory.action("action_listen", at())
        born = [{"entity": "birth_date", "start": 0, "end": 9, "value": "1985-04-01"}]
        yield factory.user("1985年4月1日", "inform", at(True), channel, born)
        yield factory.action("verification_form", at())
        yield factory.slot("id_birth_date", "****年**月**日", at())
        yield factory.slot("id_code", "******", at())
        yield factory.loop(None, at())
        yield factory.action("action_verification_done", at())
        yield factory.bot(
            "本人確認ができました。ご登録の電話番号は090-1234-5678、氏名は山田 太郎様です。",
            at(),
        )
        yield factory.slot("verification_outcome", "verified", at())
        yield factory.action("action_listen", at())

    def handoff_turns() -> Iterator[EventRow]:
        yield factory.user("担当者と話したい", "request_human", at(True), channel)
        yield factory.action("action_offer_human", at())
        yield factory.bot(
            "担当者におつなぎすることもできます。",
            at(),
            buttons=[("担当者と話したい", '/request_human{"handoff_reason": "member_request"}')],
        )
        yield factory.slot("handoff_offered", True, at())
        yield factory.action("action_listen", at())
        yield factory.user("担当者と話したい", "request_human", at(True), channel)
        yield factory.action("action_request_human", at())
        yield factory.bot(
            "担当者におつなぎします。窓口の受付時間は公表されていないため、担当者から"
            "順番にお返事します。",
            at(),
        )
        paused = factory.simple("pause", at())
        if abs(paused[0] - handoff) > 0.01:  # the plan's arithmetic and the events disagree
            raise AssertionError(f"paused at {paused[0]}, planned {handoff}")
        yield paused
        yield factory.action("action_listen", at())

    yield from session_start()
    yield factory.user("こんにちは", "greet", at(True), channel)
    yield factory.action("action_greet", at())
    yield factory.bot(
        "こんにちは。個人情報の取り扱いについてお答えするアシスタントです。",
        at(),
        buttons=[("利用目的", "/ask_usage_purpose"), ("担当者と話したい", "/request_human")],
    )
    yield factory.action("action_listen", at())
    verify_at = turns // 2 if plan.verified else -1
    for turn in range(turns):
        if turn and turn % TURNS_PER_SESSION == 0:
            tick[0] += SESSION_GAP_S
            yield from session_start()
        if turn == verify_at:
            yield from verification()
        yield from policy_turn()
    if plan.verified and turns == 0:
        yield from verification()
    yield from handoff_turns()
    for k in range(extra):  # the member writes while nobody has answered yet
        yield factory.user(
            MEMBER_WAITING[k % len(MEMBER_WAITING)], "affirm", at(True, 60.0), channel
        )
    if plan.status == "waiting":
        return
    staff = plan.staff or OTHER_STAFF[0]
    for k in range(replies):
        yield factory.action("action_relay_staff_message", at(True, 60.0), policy=None)
        text = STAFF_PREFIX + STAFF_REPLIES[k % len(STAFF_REPLIES)]
        yield factory.bot(text, at(), metadata={"staff": staff})
        yield factory.action("action_listen", at(), policy=None)
        reply = MEMBER_REPLIES[k % len(MEMBER_REPLIES)]
        yield factory.user(reply, "inform", at(True, 60.0), channel)
    if plan.status == "closed":
        yield factory.simple("resume", at(True, 60.0))
        yield from policy_turn()


# --- the plan of a database ---------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """How big one database is.

    Attributes:
        escalations: escalations, one conversation each.
        events: tracker events in all.
        long_events: events of the one long conversation.
    """

    escalations: int
    events: int
    long_events: int

    def check(self) -> None:
        """Refuses sizes the plan cannot write."""
        if self.escalations < 3:
            raise ValueError("at least 3 escalations")
        rest = self.events - self.long_events - TYPICAL_EVENTS
        if self.long_events < 2 * TYPICAL_EVENTS or rest < MIN_EVENTS * (self.escalations - 2):
            raise ValueError(
                f"{self.events:,} events cannot hold a {self.long_events:,}-event conversation, "
                f"a {TYPICAL_EVENTS}-event one and {self.escalations - 2:,} more of at least "
                f"{MIN_EVENTS} events"
            )


def _lengths(count: int, total: int, rng: random.Random) -> list[int]:
    """``count`` conversation lengths of at least MIN_EVENTS, summing to ``total``."""
    if count == 0:
        return []
    spare = total - MIN_EVENTS * count
    weights = [rng.random() ** 2 + 0.2 for _ in range(count)]  # many short, some long
    scale = spare / sum(weights)
    lengths = [MIN_EVENTS + int(w * scale) for w in weights]
    for k in range(total - sum(lengths)):
        lengths[k % count] += 1
    return lengths


def plan_conversations(
    scale: Scale, now: datetime, seed: int = 20261124
) -> tuple[list[Conversation], int, int]:
    """The escalations and conversations of a database, in time order.

    The most recent :data:`OPEN_SHARE` are open (about 60 % waiting, 40 % in progress), the
    others closed; the typical and the long conversation are in progress, claimed by
    :data:`AGENT`, the long one the most recent of those. The baseline and the large
    database get the same typical and long conversation (same seed).

    Returns:
        The conversations, and the index of the typical and of the long one.
    """
    scale.check()
    rng = random.Random(seed)
    count = scale.escalations
    open_count = max(2, round(count * OPEN_SHARE))
    closed_count = count - open_count
    statuses = ["closed"] * closed_count + [
        "in_progress" if rng.random() < 0.4 else "waiting" for _ in range(open_count)
    ]
    # The measured ones: the last open one (long) and one in the middle of the open ones.
    long_index = count - 1
    typical_index = closed_count + open_count // 2
    if typical_index == long_index:
        typical_index -= 1
    statuses[long_index] = statuses[typical_index] = "in_progress"
    lengths = _lengths(
        count - 2, scale.events - scale.long_events - TYPICAL_EVENTS, random.Random(seed + 1)
    )
    closed_span = SPAN - OPEN_WINDOW
    plans = []
    for index in range(count):
        if index < closed_count:
            handoff = now - SPAN + closed_span * ((index + rng.random()) / max(1, closed_count))
        else:
            place = (index - closed_count + rng.random()) / open_count
            handoff = now - OPEN_WINDOW + (OPEN_WINDOW - OPEN_END) * place
        if index == long_index:
            events = scale.long_events
        elif index == typical_index:
            events = TYPICAL_EVENTS
        else:
            events = lengths.pop()
        status = statuses[index]
        staff = None if status == "waiting" else rng.choice(OTHER_STAFF)
        if index in (long_index, typical_index):
            staff = AGENT
        native = f"{rng.getrandbits(128):032x}"
        channel = rng.choice(CHANNELS)
        plans.append(
            Conversation(
                index=index,
                sender_id=conversation_id(channel, f"U{native}" if channel == "line" else native),
                channel=channel,
                status=status,
                handoff_at=handoff,
                events=events,
                verified=index in (long_index, typical_index)
                or (rng.random() < 0.3 and events >= VERIFIED_EVENTS),
                staff=staff,
            )
        )
    return plans, typical_index, long_index


# --- seeding ----------------------------------------------------------------------------


@dataclass
class Seeded:
    """A seeded database and what the benchmark measures in it."""

    url: str
    tracker_url: str
    long_sender: str
    typical_sender: str
    escalations: int
    events: int
    statuses: dict[str, int]
    open_count: int
    queue_first_id: int
    typical_id: int
    long_id: int
    long_events: int
    long_last_event: int
    long_middle_event: int
    typical_last_event: int
    typical_marker: str
    long_marker: str
    seed_s: float
    events_s: float


def _events_table() -> sa.Table:
    from rasa.core.tracker_store import SQLTrackerStore

    table: sa.Table = SQLTrackerStore.SQLEvent.__table__
    return table


def _escalation_rows(
    plans: Sequence[Conversation], member_ids: Sequence[int], rng: random.Random
) -> list[dict[str, Any]]:
    rows = []
    for plan in plans:
        # Claimed before the first relayed reply (conversation_rows), closed later.
        claimed = plan.handoff_at + timedelta(seconds=20)
        closed = claimed + timedelta(minutes=10 + rng.random() * 120)
        reason = (
            "member_request" if plan.status != "closed" and plan.index % 3 else rng.choice(REASONS)
        )
        rows.append(
            {
                "id": plan.index + 1,
                "created_at": plan.handoff_at,
                "reason": reason,
                "sender_id": plan.sender_id,
                "channel": plan.channel,
                "member_id": rng.choice(member_ids) if plan.verified and member_ids else None,
                "status": plan.status,
                "note": "電話で対応済み"
                if plan.status == "closed" and rng.random() < 0.1
                else None,
                "assigned_staff": plan.staff,
                "claimed_at": claimed if plan.status != "waiting" else None,
                "closed_at": closed if plan.status == "closed" else None,
                "paused": reason != "verification_locked",
            }
        )
    return rows


def _audit_rows(escalations: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The audit rows of each escalation: opened, claimed, two staff messages, handed back."""
    for row in escalations:
        staff = f"staff:{row['assigned_staff']}"
        entries = [(row["created_at"], "system", "escalation.opened")]
        if row["claimed_at"] is not None:
            claimed = row["claimed_at"]
            entries.append((claimed, staff, "escalation.claimed"))
            for minutes in (1, 3):
                entries.append(
                    (claimed + timedelta(minutes=minutes), staff, "escalation.staff_message")
                )
        if row["closed_at"] is not None:
            entries.append((row["closed_at"], staff, "escalation.handed_back"))
        for at, actor, action in entries:
            opened = action == "escalation.opened"
            yield {
                "member_id": row["member_id"],
                "at": at,
                "actor": actor,
                "action": action,
                "sender_id": row["sender_id"] if opened else None,
                "channel": row["channel"] if opened else None,
                "detail": {
                    "escalation_id": row["id"],
                    **({"reason": row["reason"]} if opened else {}),
                },
            }


def _staff_message_rows(escalations: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in escalations:
        if row["claimed_at"] is None:
            continue
        for k, minutes in enumerate((1, 3)):
            sent = row["claimed_at"] + timedelta(minutes=minutes)
            yield {
                "escalation_id": row["id"],
                "sender_id": row["sender_id"],
                "staff": row["assigned_staff"],
                "text": STAFF_REPLIES[k],
                "created_at": sent,
                "delivered_at": sent + timedelta(seconds=1),
            }


def _insert(connection: sa.engine.Connection, table: sa.Table, rows: Iterable[Any]) -> int:
    """Inserts ``rows`` in batches of :data:`BATCH`; returns how many there were."""
    remaining, count = iter(rows), 0
    while batch := list(itertools.islice(remaining, BATCH)):
        connection.execute(table.insert(), batch)
        count += len(batch)
    return count


def _event_rows(plans: Sequence[Conversation], seed: int) -> Iterator[dict[str, Any]]:
    """Every conversation's events, merged in time order as the store receives them."""
    factory = EventFactory(random.Random(seed))

    def tagged(plan: Conversation) -> Iterator[tuple[float, int, str, tuple[Any, ...]]]:
        rng = random.Random(seed * 1_000_003 + plan.index)
        for row in conversation_rows(plan, factory, rng):
            yield (row[0], plan.index, plan.sender_id, row)

    for _, _, sender_id, row in heapq.merge(*(tagged(plan) for plan in plans)):
        timestamp, type_name, intent, action, data = row
        yield {
            "sender_id": sender_id,
            "type_name": type_name,
            "timestamp": timestamp,
            "intent_name": intent,
            "action_name": action,
            "data": data,
        }


def default_tracker_url(url: str) -> str:
    """Where the product keeps Rasa's events for the app database ``url`` by default.

    ``Settings.tracker_url`` without ``TRACKER_STORE_URL``: the same PostgreSQL
    database, or ``tracker.db`` beside a SQLite file.
    """
    return replace(load_settings({}), database_url=url, tracker_store_url=None).tracker_url


def seed_database(url: str, scale: Scale, now: datetime, seed: int = 20261124) -> Seeded:
    """Migrates the empty database ``url`` and fills it: escalations, audit, staff, events.

    Rasa's events go where the product keeps them by default (:func:`default_tracker_url`);
    ``now`` is the seed's clock (every escalation is older), ``seed`` that of every random
    choice.
    """
    started = time.perf_counter()
    tracker_url = default_tracker_url(url)
    plans, typical, long = plan_conversations(scale, now, seed)
    upgrade(url)
    engine = engine_for(url)
    sessions = session_factory(url)
    with sessions.begin() as session:
        load_demo(session)
        create_account(session, AGENT, "agent", AGENT_PASSWORD, now)
        member_ids = list(session.execute(sa.select(Member.id)).scalars())
    rows = _escalation_rows(plans, member_ids, random.Random(seed + 2))
    with engine.begin() as connection:
        _insert(connection, Escalation.__table__, rows)
        _insert(connection, AuditLog.__table__, _audit_rows(rows))
        _insert(connection, StaffMessage.__table__, _staff_message_rows(rows))
        if engine.dialect.name == "postgresql":
            # The ids were given explicitly: move the sequence past them.
            connection.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('escalations', 'id'), "
                    "(SELECT max(id) FROM escalations))"
                )
            )
            # Statistics now rather than whenever autovacuum gets to it.
            for table in ("escalations", "audit_log", "staff_messages"):
                connection.exec_driver_sql(f"ANALYZE {table}")
    events_table = _events_table()
    tracker = engine_for(tracker_url)
    events_started = time.perf_counter()
    with tracker.begin() as connection:
        events_table.create(connection, checkfirst=True)
        events = _insert(connection, events_table, _event_rows(plans, seed))
    events_s = time.perf_counter() - events_started
    with tracker.begin() as connection:
        if tracker.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE events")
        ids = list(
            connection.execute(
                sa.select(events_table.c.id)
                .where(events_table.c.sender_id == plans[long].sender_id)
                .order_by(events_table.c.id)
            ).scalars()
        )
        typical_last = connection.execute(
            sa.select(sa.func.max(events_table.c.id)).where(
                events_table.c.sender_id == plans[typical].sender_id
            )
        ).scalar_one()
    return Seeded(
        url=url,
        tracker_url=tracker_url,
        long_sender=plans[long].sender_id,
        typical_sender=plans[typical].sender_id,
        escalations=len(rows),
        events=events,
        statuses=dict(Counter(plan.status for plan in plans)),
        open_count=sum(1 for plan in plans if plan.status != "closed"),
        # The queue's first row: the oldest waiting one, else the oldest in progress.
        queue_first_id=min(
            (plan.status != "waiting", plan.index) for plan in plans if plan.status != "closed"
        )[1]
        + 1,
        typical_id=typical + 1,
        long_id=long + 1,
        long_events=len(ids),
        long_last_event=ids[-1],
        long_middle_event=ids[len(ids) // 2],
        typical_last_event=typical_last,
        typical_marker=MEMBER_REPLIES[1],
        long_marker=MEMBER_REPLIES[(_replies("in_progress", scale.long_events) - 1) % 4],
        seed_s=time.perf_counter() - started,
        events_s=events_s,
    )
