"""The data of the staff console benchmark (bench/console.py): escalations and Rasa events.

A migrated database gets escalations over six months (the most recent fifth waiting or
in progress in the last week, the others closed) with their audit rows and staff
messages. Rasa's ``events`` table, created from Rasa's own ``SQLTrackerStore`` metadata,
goes where the product keeps it (``tracker.db`` beside a SQLite file, else the same
database) and holds one conversation per escalation, among them a typical one of 100
events and a long one over many sessions: real Rasa events, serialized with
``as_dict()`` and ``json.dumps`` as the SQL tracker store does, in time order across
conversations.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.databases import analyze, bulk_load
from bot.core.conversation import conversation_id
from bot.db.demo import load_demo
from bot.db.migrate import upgrade
from bot.db.models import (
    AuditLog,
    Case,
    Escalation,
    Member,
    OutboundMessage,
    StaffMessage,
    Verification,
)
from bot.db.session import engine_for, session_factory
from bot.handoff.relay import STAFF_PREFIX
from bot.insights.events import ensure_indexes
from bot.settings import load_settings
from bot.staff.accounts import create_account

# The agent the benchmark signs in as; the others only appear as assignees.
AGENT = "bench-agent"
AGENT_PASSWORD = "bench-password-0123"
# The privacy officer who opens the overview (/insights), with the same password.
OFFICER = "bench-officer"
OTHER_STAFF = ("tanaka", "sato", "suzuki", "takahashi", "ito")

SPAN = timedelta(days=180)  # escalations received over six months
OPEN_WINDOW = timedelta(days=7)  # the open ones in the last week ...
OPEN_END = timedelta(hours=3)  # ... up to 3 hours ago (their replies follow)
OPEN_SHARE = 0.2  # of the escalations, waiting or in progress
TURN_GAP_S = 40.0  # between two messages of a member in a session (times a pace)
LATER_GAP_S = 60.0  # between messages while waiting for staff and with them
SHORT_GAP_S = 0.05  # between the assistant's events of one turn
SESSION_GAP_S = 2 * 86400.0  # between two sessions of the same member
TURNS_PER_SESSION = 12
TYPICAL_EVENTS = 100
MIN_EVENTS = 32  # the shortest conversation the plan writes (closed, unverified)
VERIFIED_EVENTS = 60  # shorter ones have no verification in them
CHANNELS = ("socketio", "socketio", "rest", "line")
REASONS = (
    ["member_request"] * 70
    + ["complaint"] * 10
    + ["repeated_fallback"] * 12
    + ["verification_locked"] * 6
    + ["case_needs_person"] * 2
)
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
# Of the policy turns: the NLU did not understand (the assistant asks again), and the
# policy does not say it (the answer marked as the actions mark it).
FALLBACK_SHARE = 0.06
NOT_STATED_SHARE = 0.03
FALLBACK_TEXTS = (
    "えーと、保険証をなくしたかもしれません",
    "電話番号090-1234-5678に折り返しください",
    "あの件どうなりましたか",
    "むすこの分もみたいです",
    "よくわからないです",
)
NOT_STATED_TEXTS = (
    "通話は録音されていますか",
    "ホームページのクッキーは何に使っていますか",
    "AIで個人情報を分析していますか",
)
CLARIFY = "うまく読み取れませんでした。お手数ですが、言い換えてもう一度お送りください。"
CLARIFY_CHOICES = "次のような内容でしょうか。"
NOT_STATED = (
    "申し訳ありません。当組合の「個人情報保護方針」には、通話の録音についての記載が"
    "見当たらないため、こちらではお答えできません。"
)
CASE_TYPES = ("disclosure", "disclosure", "correction", "suspension", "third_party_stop",
              "purpose_notice", "mailing_opt_out")  # fmt: skip
OPEN_CASE_STATUSES = ("received", "awaiting_documents", "under_review", "extended")
CASE_OPEN_SHARE = 0.2
CASE_SPAN = timedelta(days=365)
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

# --- the events: Rasa's own, described by hashable specs --------------------------------

# ("user", text, intent, entity or None), ("bot", text, buttons, staff or None[, kind]),
# ("action", name, policy or None), ("slot", name, value), ("loop", name or None),
# ("session_started",), ("pause",) or ("resume",).
Spec = tuple[Any, ...]


def _user(text: str, intent: str, entity: tuple[str, str] | None = None) -> Spec:
    return ("user", text, intent, entity)


def _bot(text: str, *buttons: tuple[str, str], kind: str | None = None) -> Spec:
    return ("bot", text, buttons, None, kind)


def _action(name: str, policy: str | None = "RulePolicy") -> Spec:
    return ("action", name, policy)


LISTEN = _action("action_listen")
SESSION_START = (
    _action("action_session_start", None),
    ("session_started",),
    _action("action_listen", None),
)
GREETING = (
    _user("こんにちは", "greet"),
    _action("action_greet"),
    _bot(
        "こんにちは。個人情報の取り扱いについてお答えするアシスタントです。",
        ("利用目的", "/ask_usage_purpose"),
        ("担当者と話したい", "/request_human"),
    ),
    LISTEN,
)
VERIFICATION = (  # three messages of the member: the request, the number, the birth date
    (
        _user("自分の登録内容を確認したい", "ask_my_data"),
        _action("verification_form"),
        ("loop", "verification_form"),
        ("slot", "requested_slot", "id_member_number"),
        _action("action_ask_id_member_number"),
        _bot("保険証の記号と番号を教えてください。"),
        LISTEN,
    ),
    (
        _user("記号1001 番号23", "inform", ("member_id", "記号1001 番号23")),
        _action("verification_form"),
        ("slot", "id_member_number", "記号****番号**"),
        ("slot", "requested_slot", "id_birth_date"),
        _bot("生年月日を教えてください（例：1985年4月1日）。"),
        LISTEN,
    ),
    (
        _user("1985年4月1日", "inform", ("birth_date", "1985-04-01")),
        _action("verification_form"),
        ("slot", "id_birth_date", "****年**月**日"),
        ("slot", "id_code", "******"),
        ("loop", None),
        _action("action_verification_done"),
        _bot("本人確認ができました。ご登録の電話番号は090-1234-5678、氏名は山田 太郎様です。"),
        ("slot", "verification_outcome", "verified"),
        LISTEN,
    ),
)
HANDOFF = (  # asked twice: offered, then the conversation is paused
    (
        _user("担当者と話したい", "request_human"),
        _action("action_offer_human"),
        _bot(
            "担当者におつなぎすることもできます。",
            ("担当者と話したい", '/request_human{"handoff_reason": "member_request"}'),
        ),
        ("slot", "handoff_offered", True),
        LISTEN,
    ),
    (
        _user("担当者と話したい", "request_human"),
        _action("action_request_human"),
        _bot(
            "担当者におつなぎします。窓口の受付時間は公表されていないため、担当者から"
            "順番にお返事します。"
        ),
        ("pause",),
        LISTEN,
    ),
)


def _parse_data(text: str, intent: str, entity: tuple[str, str] | None) -> dict[str, Any]:
    """The NLU result as Rasa stores it: intent, ranking of ten, entities, tokens."""
    confidence = 0.97
    others = [name for name in INTENTS if name != intent][:9]
    rest = (1 - confidence) / len(others)
    ranking = [{"name": intent, "confidence": confidence}]
    ranking += [
        {"name": name, "confidence": rest * 0.9**place} for place, name in enumerate(others)
    ]
    entities = []
    if entity is not None:
        entities.append({"entity": entity[0], "start": 0, "end": 9, "value": entity[1]})
    return {
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities,
        "text": text,
        "message_id": "",
        "metadata": {},
        "text_tokens": [[start, start + 1] for start in range(0, len(text), 2)],
        "intent_ranking": ranking,
    }


def rasa_event(spec: Spec, channel: str) -> Any:
    """The Rasa event a spec describes, in a conversation on ``channel``."""
    from rasa.shared.core import events

    kind = spec[0]
    if kind == "user":
        _, text, intent, entity = spec
        parse = _parse_data(text, intent, entity)
        return events.UserUttered(
            text,
            intent=parse["intent"],
            entities=parse["entities"],
            parse_data=parse,
            input_channel=channel,
            message_id="",
            metadata={},
        )
    if kind == "bot":
        # What rasa_sdk's dispatcher.utter_message sends: the extra keys are metadata.
        _, text, buttons, staff, *kind = spec
        data: dict[str, Any] = {
            "elements": [],
            "quick_replies": None,
            "buttons": [{"title": title, "payload": payload} for title, payload in buttons],
            "attachment": None,
            "image": None,
            "custom": {},
        }
        metadata = {"template": None, "response": None, **({"staff": staff} if staff else {})}
        if kind and kind[0]:
            metadata["answer_kind"] = kind[0]
        return events.BotUttered(text, data=data, metadata=metadata)
    if kind == "action":
        _, name, policy = spec
        return events.ActionExecuted(name, policy=policy, confidence=1.0 if policy else None)
    if kind == "slot":
        return events.SlotSet(spec[1], spec[2])
    if kind == "loop":
        return events.ActiveLoop(spec[1])
    if kind == "pause":
        return events.ConversationPaused()
    if kind == "resume":
        return events.ConversationResumed()
    return events.SessionStarted()


@functools.cache
def _template(spec: Spec, channel: str) -> tuple[str, str | None, str | None, dict[str, Any]]:
    """The event's type, intent, action and ``as_dict()``, built once."""
    event = rasa_event(spec, channel)
    data = event.as_dict()
    intent = data.get("parse_data", {}).get("intent", {}).get("name")
    return event.type_name, intent, data.get("name"), data


def event_row(
    sender_id: str, channel: str, timestamp: float, spec: Spec, rng: random.Random
) -> dict[str, Any]:
    """A row of Rasa's events table, as ``SQLTrackerStore`` writes it."""
    type_name, intent, action, template = _template(spec, channel)
    data = {**template, "timestamp": timestamp}
    if type_name == "user":
        message_id = f"{rng.getrandbits(128):032x}"
        data["message_id"] = message_id
        data["parse_data"] = {**template["parse_data"], "message_id": message_id}
    return {
        "sender_id": sender_id,
        "type_name": type_name,
        "timestamp": timestamp,
        "intent_name": intent,
        "action_name": action,
        "data": json.dumps(data),
    }


# --- one conversation ---------------------------------------------------------------------


@dataclass(frozen=True)
class Conversation:
    """The plan of one conversation and its escalation."""

    index: int  # its place in time order (0 = the oldest escalation)
    sender_id: str  # the channel's conversation id: web:, line:U or rest: and 32 hex digits
    channel: str
    status: str  # the escalation's
    handoff_at: datetime  # when the escalation was opened (the conversation paused)
    events: int
    verified: bool  # whether the transcript has a verification form
    staff: str | None  # who claimed it (None while waiting)


def staff_replies(status: str, events: int) -> int:
    """How many staff messages a conversation of ``events`` events has."""
    if status == "waiting":
        return 0
    return max(1, min(events // 200, 400)) if events > 1000 else 2


def conversation_events(plan: Conversation, rng: random.Random) -> list[tuple[float, Spec]]:
    """The conversation's events in time order with their timestamps, ``plan.events`` of them.

    A greeting, sessions of policy questions answered with their source (a verification
    halfway for some members), then the hand-off, paused at ``plan.handoff_at``; while
    waiting the member writes a few more lines; once claimed, staff messages are
    relayed and the member answers; a closed one was handed back (``resume``) and the
    assistant answers again.
    """
    pace = 0.5 + rng.random()
    member_gap, later_gap = TURN_GAP_S * pace, LATER_GAP_S * pace

    def policy_turn() -> tuple[float, Sequence[Spec]]:
        # Five events each: the member's message, the action, two replies, listen.
        roll = rng.random()
        if roll < FALLBACK_SHARE:
            text = FALLBACK_TEXTS[rng.randrange(len(FALLBACK_TEXTS))]
            choices = (("手数料", "/ask_fee"), ("担当者と話したい", "/request_human"))
            clarify = (_action("action_clarify"), _bot(CLARIFY), _bot(CLARIFY_CHOICES, *choices))
            return member_gap, (_user(text, "nlu_fallback"), *clarify, LISTEN)
        if roll < FALLBACK_SHARE + NOT_STATED_SHARE:
            text = NOT_STATED_TEXTS[rng.randrange(len(NOT_STATED_TEXTS))]
            stated = _bot(NOT_STATED, kind="not_stated")
            answer = (_action("action_answer_policy"), stated, _bot(SOURCE), LISTEN)
            return member_gap, (_user(text, "ask_security_measures"), *answer)
        intent, text = POLICY_TURNS[rng.randrange(len(POLICY_TURNS))]
        answer = (_action("action_answer_policy"), _bot(ANSWER), _bot(SOURCE), LISTEN)
        return member_gap, (_user(text, intent), *answer)

    replies = staff_replies(plan.status, plan.events)
    fixed = len(SESSION_START) + len(GREETING) + sum(len(specs) for specs in HANDOFF)
    fixed += 4 * replies  # the staff message (action, bot, listen) and the member's answer
    if plan.verified:
        fixed += sum(len(specs) for specs in VERIFICATION)
    if plan.status == "closed":
        fixed += 6  # resumed, then one more policy turn
    room = plan.events - fixed
    turns = 0  # as many policy turns as fit, a new session every TURNS_PER_SESSION
    while True:
        cost = 5 + (len(SESSION_START) if turns and turns % TURNS_PER_SESSION == 0 else 0)
        if cost > room:
            break
        room -= cost
        turns += 1
    # Blocks of events: the seconds before the first, then SHORT_GAP_S between them.
    middle: list[tuple[float, Sequence[Spec]]] = []
    for turn in range(turns):
        if turn and turn % TURNS_PER_SESSION == 0:
            middle.append((SESSION_GAP_S + member_gap, SESSION_START))
        middle.append(policy_turn())
    if plan.verified:
        halfway = len(middle) // 2
        middle = (
            middle[:halfway] + [(member_gap, specs) for specs in VERIFICATION] + middle[halfway:]
        )
    blocks = [(0.0, SESSION_START), (member_gap, GREETING), *middle]
    blocks += [(member_gap, specs) for specs in HANDOFF]
    for place in range(room):  # the events left over: the member writes, nobody answers yet
        blocks.append((later_gap, [_user(MEMBER_WAITING[place % 4], "affirm")]))
    for place in range(replies):
        relayed = ("bot", STAFF_PREFIX + STAFF_REPLIES[place % 4], (), plan.staff, None)
        staff_turn = (_action("action_relay_staff_message", None), relayed)
        blocks.append((later_gap, (*staff_turn, _action("action_listen", None))))
        blocks.append((later_gap, [_user(MEMBER_REPLIES[place % 4], "inform")]))
    if plan.status == "closed":
        blocks += [(later_gap, [("resume",)]), policy_turn()]
    timed: list[tuple[float, Spec]] = []
    offset = 0.0
    for gap, specs in blocks:
        for place, spec in enumerate(specs):
            offset += gap if place == 0 else SHORT_GAP_S
            timed.append((offset, spec))
    paused = next(offset for offset, spec in timed if spec == ("pause",))
    start = plan.handoff_at.timestamp() - paused
    return [(start + offset, spec) for offset, spec in timed]


# --- the plan of a database ---------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """How big one database is."""

    escalations: int  # one conversation each
    events: int  # in all
    long_events: int  # of the one long conversation
    cases: int = 0  # formal requests over a year (the overview's case charts)

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
    weights = [rng.random() ** 2 + 0.2 for _ in range(count)]  # many short, some long
    scale = (total - MIN_EVENTS * count) / sum(weights)
    lengths = [MIN_EVENTS + int(weight * scale) for weight in weights]
    for place in range(total - sum(lengths)):
        lengths[place % count] += 1
    return lengths


def plan_conversations(
    scale: Scale, now: datetime, seed: int = 20261124
) -> tuple[list[Conversation], int, int]:
    """The escalations and conversations of a database, in time order.

    The most recent :data:`OPEN_SHARE` are open (about 60 % waiting, 40 % in progress),
    the others closed; the typical and the long conversation are in progress, claimed
    by :data:`AGENT`, the long one the most recent. The same seed gives the baseline and
    the large database the same typical and long conversation.

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
    long_index = count - 1
    typical_index = min(closed_count + open_count // 2, long_index - 1)
    statuses[long_index] = statuses[typical_index] = "in_progress"
    rest = scale.events - scale.long_events - TYPICAL_EVENTS
    lengths = _lengths(count - 2, rest, random.Random(seed + 1))
    plans = []
    for index in range(count):
        if index < closed_count:
            place = (index + rng.random()) / max(1, closed_count)
            handoff = now - SPAN + (SPAN - OPEN_WINDOW) * place
        else:
            place = (index - closed_count + rng.random()) / open_count
            handoff = now - OPEN_WINDOW + (OPEN_WINDOW - OPEN_END) * place
        measured = index in (long_index, typical_index)
        if index == long_index:
            events = scale.long_events
        else:
            events = TYPICAL_EVENTS if index == typical_index else lengths.pop()
        status = statuses[index]
        staff = None if status == "waiting" else rng.choice(OTHER_STAFF)
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
                verified=measured or (rng.random() < 0.3 and events >= VERIFIED_EVENTS),
                staff=AGENT if measured else staff,
            )
        )
    return plans, typical_index, long_index


def _escalation_rows(
    plans: list[Conversation], member_ids: list[int], rng: random.Random
) -> list[dict[str, Any]]:
    rows = []
    for plan in plans:
        # Claimed before the first relayed reply (conversation_events), closed later.
        claimed = plan.handoff_at + timedelta(seconds=20)
        closed = claimed + timedelta(minutes=10 + rng.random() * 120)
        reason = "member_request"
        if plan.status == "closed" or plan.index % 3 == 0:
            reason = rng.choice(REASONS)
        rows.append(
            {
                "id": plan.index + 1,
                "created_at": plan.handoff_at,
                "reason": reason,
                "sender_id": plan.sender_id,
                "channel": plan.channel,
                "member_id": rng.choice(member_ids) if plan.verified else None,
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


def _audit_and_staff_rows(
    escalations: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each escalation's audit rows and staff messages (two once claimed)."""
    audits, messages = [], []
    for row in escalations:
        staff = f"staff:{row['assigned_staff']}"
        entries = [(row["created_at"], "system", "escalation.opened")]
        if row["claimed_at"] is not None:
            entries.append((row["claimed_at"], staff, "escalation.claimed"))
            for place, minutes in enumerate((1, 3)):
                sent = row["claimed_at"] + timedelta(minutes=minutes)
                entries.append((sent, staff, "escalation.staff_message"))
                messages.append(
                    {
                        "escalation_id": row["id"],
                        "sender_id": row["sender_id"],
                        "staff": row["assigned_staff"],
                        "text": STAFF_REPLIES[place],
                        "created_at": sent,
                        "delivered_at": sent + timedelta(seconds=1),
                    }
                )
        if row["closed_at"] is not None:
            entries.append((row["closed_at"], staff, "escalation.handed_back"))
        for at, actor, action in entries:
            opened = action == "escalation.opened"
            detail = {"escalation_id": row["id"], **({"reason": row["reason"]} if opened else {})}
            audits.append(
                {
                    "member_id": row["member_id"],
                    "at": at,
                    "actor": actor,
                    "action": action,
                    "sender_id": row["sender_id"] if opened else None,
                    "channel": row["channel"] if opened else None,
                    "detail": detail,
                }
            )
    return audits, messages


def _verification_rows(
    plans: list[Conversation], rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Each verified conversation's verification, its audit rows and its SMS.

    Two verifications in ten fail once before (wrong birth date), one in fifty is locked.
    """
    verifications: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for plan in plans:
        if not plan.verified:
            continue
        started = plan.handoff_at - timedelta(minutes=20 + rng.random() * 60)
        steps = ["verification.failed"] if rng.random() < 0.2 else []
        steps.append("verification.locked" if rng.random() < 0.02 else "verification.succeeded")
        for place, action in enumerate(steps):
            at = started + timedelta(minutes=place)
            verifications.append(
                {
                    "sender_id": plan.sender_id,
                    "session_key": "bench",
                    "channel": plan.channel,
                    "status": action.removeprefix("verification.").replace("succeeded", "verified"),
                    "code_wrong_attempts": 0,
                    "codes_sent": 1,
                    "created_at": at,
                    "last_seen_at": at,
                }
            )
            audits.append(
                {
                    "member_id": None,
                    "at": at + timedelta(seconds=30),
                    "actor": "system",
                    "action": action,
                    "sender_id": plan.sender_id,
                    "channel": plan.channel,
                    "detail": {},
                }
            )
            sent = at + timedelta(seconds=2)
            messages.append(
                {
                    "channel": "sms",
                    "to": "+8190" + f"{rng.randrange(10**8):08d}",
                    "text": "認証コード：［認証コード］",
                    "status": "sent",
                    "created_at": at,
                    "sent_at": sent,
                    "purpose": "verification_code",
                    "attempts": 1,
                }
            )
    return verifications, audits, messages


def _case_rows(
    count: int, member_ids: list[int], now: datetime, rng: random.Random
) -> list[dict[str, Any]]:
    """``count`` requests over a year; the most recent fifth still open, due in 14 days."""
    rows: list[dict[str, Any]] = []
    open_from = count - round(count * CASE_OPEN_SHARE)
    for index in range(count):
        is_open = index >= open_from
        if is_open:
            received = now - timedelta(days=30) * rng.random()
            status = rng.choice(OPEN_CASE_STATUSES)
        else:
            received = now - CASE_SPAN + (CASE_SPAN - timedelta(days=30)) * (index / count)
            status = rng.choice(("closed", "closed", "closed", "withdrawn"))
        case_type = rng.choice(CASE_TYPES)
        member = rng.choice(member_ids)
        extended = 30 if status == "extended" else 0
        rows.append(
            {
                "case_number": f"PR-{received.year}-{index + 1:06d}",
                "case_type": case_type,
                "target": "retained_data" if case_type == "disclosure" else None,
                "requester_member_id": member,
                "subject_member_id": member,
                "role": "self",
                "scope": [],
                "channel": rng.choice(("line", "socketio")),
                "status": status,
                "received_at": received,
                "period_days": 14,
                "max_extension_days": 30,
                "extended_days": extended,
                "paused_days": 0,
                "due_at": received + timedelta(days=14 + extended),
                "fee_kind": "free",
                "closed_at": received + timedelta(days=10) if status == "closed" else None,
                "updated_at": received,
            }
        )
    return rows


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
    queue_first_id: int  # the oldest waiting escalation, else the oldest in progress
    typical_id: int
    long_id: int
    long_events: int
    long_last_event: int
    long_middle_event: int
    typical_last_event: int
    typical_marker: str  # the last member message of the typical conversation
    long_marker: str  # ... and of the long one
    seed_s: float
    events_s: float


def default_tracker_url(url: str) -> str:
    """Where the product keeps Rasa's events by default (``Settings.tracker_url``)."""
    return replace(load_settings({}), database_url=url, tracker_store_url=None).tracker_url


def seed_database(url: str, scale: Scale, now: datetime, seed: int = 20261124) -> Seeded:
    """Migrates the empty database ``url`` and fills it: escalations, audit, staff, events.

    ``now`` is the seed's clock (every escalation is older), ``seed`` that of every
    random choice.
    """
    from rasa.core.tracker_store import SQLTrackerStore

    started = time.perf_counter()
    plans, typical, long = plan_conversations(scale, now, seed)
    upgrade(url)
    with session_factory(url).begin() as session:
        load_demo(session)
        create_account(session, AGENT, "agent", AGENT_PASSWORD, now)
        create_account(session, OFFICER, "privacy_officer", AGENT_PASSWORD, now)
        member_ids = list(session.execute(sa.select(Member.id)).scalars())
    escalations = _escalation_rows(plans, member_ids, random.Random(seed + 2))
    audits, messages = _audit_and_staff_rows(escalations)
    verifications, verification_audits, sms = _verification_rows(plans, random.Random(seed + 3))
    cases = _case_rows(scale.cases, member_ids, now, random.Random(seed + 4))
    engine = engine_for(url)
    with engine.begin() as connection:
        connection.execute(Escalation.__table__.insert(), escalations)
        connection.execute(AuditLog.__table__.insert(), audits + verification_audits)
        connection.execute(StaffMessage.__table__.insert(), messages)
        if verifications:
            connection.execute(Verification.__table__.insert(), verifications)
            connection.execute(OutboundMessage.__table__.insert(), sms)
        if cases:
            connection.execute(Case.__table__.insert(), cases)
        if engine.dialect.name == "postgresql":  # the ids were given: move the sequence on
            connection.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('escalations', 'id'), "
                "(SELECT max(id) FROM escalations))"
            )
    analyze(url, "escalations", "audit_log", "staff_messages", "verifications", "cases")
    analyze(url, "outbound_messages")
    events_started = time.perf_counter()
    timed = []
    for plan in plans:
        rng = random.Random(seed * 1_000_003 + plan.index)
        timed += [(at, plan, spec) for at, spec in conversation_events(plan, rng)]
    timed.sort(key=lambda event: event[0])  # as the tracker store receives them
    rows_rng = random.Random(seed)
    rows = (event_row(plan.sender_id, plan.channel, at, spec, rows_rng) for at, plan, spec in timed)
    tracker_url = default_tracker_url(url)
    events_table = SQLTrackerStore.SQLEvent.__table__
    with engine_for(tracker_url).begin() as connection:
        events_table.create(connection, checkfirst=True)
    events = bulk_load(tracker_url, "events", rows)
    # As the rasa server's tracker store does when it starts (bot.redacting_tracker_store).
    ensure_indexes(engine_for(tracker_url))
    tracker_engine = engine_for(tracker_url)
    if tracker_engine.dialect.name == "postgresql":
        # Autovacuum's work after a bulk load, done now: statistics, and the visibility
        # map without which PostgreSQL cannot answer from an index alone.
        with tracker_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM (ANALYZE) events")
    events_s = time.perf_counter() - events_started
    column = events_table.c
    with engine_for(tracker_url).connect() as connection:
        long_ids = list(
            connection.execute(
                sa.select(column.id)
                .where(column.sender_id == plans[long].sender_id)
                .order_by(column.id)
            ).scalars()
        )
        typical_last = connection.execute(
            sa.select(sa.func.max(column.id)).where(column.sender_id == plans[typical].sender_id)
        ).scalar_one()
    open_plans = [plan for plan in plans if plan.status != "closed"]
    first = min(open_plans, key=lambda plan: (plan.status != "waiting", plan.index))
    return Seeded(
        url=url,
        tracker_url=tracker_url,
        long_sender=plans[long].sender_id,
        typical_sender=plans[typical].sender_id,
        escalations=len(escalations),
        events=events,
        statuses=dict(Counter(plan.status for plan in plans)),
        open_count=len(open_plans),
        queue_first_id=first.index + 1,
        typical_id=typical + 1,
        long_id=long + 1,
        long_events=len(long_ids),
        long_last_event=long_ids[-1],
        long_middle_event=long_ids[len(long_ids) // 2],
        typical_last_event=typical_last,
        typical_marker=MEMBER_REPLIES[1],
        long_marker=MEMBER_REPLIES[(staff_replies("in_progress", scale.long_events) - 1) % 4],
        seed_s=time.perf_counter() - started,
        events_s=events_s,
    )
