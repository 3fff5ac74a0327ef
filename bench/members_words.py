"""Members' words: the assistant on questions as members put them, per organization.

``python -m bench.members_words`` (``make bench-words``) sends every question of
bench/data/members_words.yml through the REST round trip of the product's servers: the
rasa server once, with the trained model, and the action server once per organization
(``PRIVACY_BOT_ORG``: only the action server reads the profile), each question the first
message of a conversation of its own. The conversation's intent is read from the
tracker (Rasa's HTTP API). Each reply is classified by :func:`classify`:

- topic: the intent is the expected one and the assistant did not ask again (for a
  question about a request, it also answered instead of starting the verification);
- section: a citation （出典：…） in the reply names the expected policy section;
- not in policy: the reply says the policy does not say it (「記載が見当たらない」) and
  gives the contact window;
- asked again: the ask-again message (「うまく読み取れませんでした」);
- wrong: anything else.

right = topic + section + not in policy. The figures are printed overall, per
organization and per kind of expectation (intent, question about a request, section,
not in policy).

``--offline`` runs only the trained NLU (Rasa's ``Agent``, no servers) on the items that
expect an intent: the intent before and after the FallbackClassifier, overall and per
organization; ``--holdout`` adds bench/data/nlu_holdout.yml.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import re
import sys
import tempfile
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yaml

from bench import cli
from bench.report import DASH, num, table
from bench.rest import REST_WEBHOOK, Reply, pool, post_message
from bench.servers import VAR_DIR, free_port, local_url, server
from bot.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEV_SET = PROJECT_ROOT / "bench" / "data" / "members_words.yml"
HOLDOUT = PROJECT_ROOT / "bench" / "data" / "nlu_holdout.yml"
POLICY_TEXTS = PROJECT_ROOT / "bot" / "policy" / "texts"

# What the replies say (bot/policy/answers.py, bot/identity/dialog.py); the unit tests
# check that the product's own texts still carry them.
ASK_AGAIN = "うまく読み取れませんでした"
NOT_STATED = "記載が見当たらない"
ANSWER_FIRST_BUTTON = "この請求を始める"
VERIFICATION_STARTED = "ご本人確認をさせてください"
FALLBACK_INTENT = "nlu_fallback"

TOPIC, SECTION, NOT_IN_POLICY, ASKED_AGAIN, WRONG = (
    "topic",
    "section",
    "not_in_policy",
    "asked_again",
    "wrong",
)
OUTCOMES = (TOPIC, SECTION, NOT_IN_POLICY, ASKED_AGAIN, WRONG)
RIGHT = frozenset({TOPIC, SECTION, NOT_IN_POLICY})
OUTCOME_TITLES = {
    TOPIC: "right topic",
    SECTION: "right section quoted",
    NOT_IN_POLICY: "not in policy, said so",
    ASKED_AGAIN: "asked again",
    WRONG: "wrong",
}
KINDS = ("intent", "question", "section", "not_in_policy")
KIND_TITLES = {
    "intent": "intent",
    "question": "question about a request",
    "section": "section",
    "not_in_policy": "not in policy",
}

REQUEST_TIMEOUT_S = 60.0


# --- the development set ----------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What the right answer to one question is (see the header of the dev set)."""

    intent: str | None = None
    question: bool = False  # a question about a request: answer first
    section: str | None = None  # for an intent item: a passage that also answers it
    not_in_policy: bool = False

    @property
    def kind(self) -> str:
        """``intent``, ``question``, ``section`` or ``not_in_policy``."""
        if self.intent:
            return "question" if self.question else "intent"
        return "section" if self.section else "not_in_policy"


@dataclass(frozen=True)
class DevItem:
    """One question of the development set."""

    org: str
    text: str
    expected: Expectation


def load_items(path: Path = DEV_SET) -> list[DevItem]:
    """The items of the development set, checked for shape.

    Raises:
        ValueError: If an item lacks its org or text, or does not state exactly one
            expected outcome (intent, section or not_in_policy; an intent item may add a
            section and ``question``).
    """
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    items = []
    for number, raw in enumerate(loaded.get("items") or [], start=1):
        where = f"{path.name} item {number}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: not a mapping")
        unknown = set(raw) - {"org", "text", "intent", "question", "section", "not_in_policy"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        org, text = str(raw.get("org") or "").strip(), str(raw.get("text") or "").strip()
        if not org or not text:
            raise ValueError(f"{where}: org and text are required")
        intent = raw.get("intent")
        section = raw.get("section")
        not_in_policy = raw.get("not_in_policy") is True
        stated = [bool(intent), bool(section) and not intent, not_in_policy]
        if sum(stated) != 1:
            raise ValueError(f"{where}: state exactly one of intent, section, not_in_policy")
        if raw.get("question") and not intent:
            raise ValueError(f"{where}: question: true needs an intent")
        expected = Expectation(
            intent=str(intent) if intent else None,
            question=raw.get("question") is True,
            section=str(section) if section else None,
            not_in_policy=not_in_policy,
        )
        items.append(DevItem(org, text, expected))
    return items


# --- citations and sections -------------------------------------------------------------

_NUMBERED = re.compile(r"^(?:(?P<part>.+?)\s+)?(?P<number>\d+\.|第\d+条(?:の\d+)?)$")
_ARTICLE_RANGE = re.compile(r"第(\d+)条\s*[〜~～\-－]\s*第(\d+)条")
_CITATION_OPEN = "(出典:"


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def citations(text: str) -> list[str]:
    """The body of every citation （出典：…） in ``text``, NFKC-folded.

    The body may hold parentheses of its own (a title such as 「…方針（プライバシー
    ポリシー）」), so the closing one is found by counting.
    """
    folded = _fold(text)
    found = []
    start = folded.find(_CITATION_OPEN)
    while start != -1:
        depth, index = 1, start + len(_CITATION_OPEN)
        while index < len(folded) and depth:
            depth += {"(": 1, ")": -1}.get(folded[index], 0)
            index += 1
        found.append(folded[start + len(_CITATION_OPEN) : index - (depth == 0)].strip())
        start = folded.find(_CITATION_OPEN, index)
    return found


def _number_pattern(number: str) -> re.Pattern[str]:
    tail = r"(?![0-9]|の[0-9])" if number.endswith("条") else ""
    return re.compile(r"(?<![0-9])" + re.escape(number) + tail)


def _in_range(number: str, citation: str) -> bool:
    match = re.fullmatch(r"第(\d+)条", number)
    if not match:
        return False
    article = int(match.group(1))
    return any(int(low) <= article <= int(high) for low, high in _ARTICLE_RANGE.findall(citation))


def cites(citation: str, label: str) -> bool:
    """Whether one citation body names the section ``label``.

    ``label`` is a section as printed in the policy: ``5.`` (not ``15.``), ``第27条``
    (also ``第27条第2項`` and a range ``第25条〜第30条``, not ``第27条の2``), ``第14条の2``,
    ``<part> 6.`` (the number in the chain of numbers right after that part's name:
    ``個人情報の取扱いについて 2.・6.(2)``), or a heading (found as written, 【】 aside).
    """
    citation, label = _fold(citation), _fold(label).strip()
    numbered = _NUMBERED.match(label)
    if not numbered:
        heading = label.strip("【】")
        return bool(heading) and heading in citation.replace("【", "").replace("】", "")
    number, part = numbered.group("number"), numbered.group("part")
    pattern = _number_pattern(number)
    if part is None:
        return bool(pattern.search(citation)) or _in_range(number, citation)
    chain = re.compile(re.escape(part) + r"\s*((?:(?:\d+\.|\(\d+\))\s*[・、,]?\s*)+)")
    return any(pattern.search(match.group(1)) for match in chain.finditer(citation))


def section_labels_in(policy_text: str, label: str) -> bool:
    """Whether ``label`` names a section that the policy text has (a check of the dev set)."""
    folded = _fold(policy_text)
    numbered = _NUMBERED.match(_fold(label).strip())
    if not numbered:
        return _fold(label).strip().strip("【】") in folded
    part, number = numbered.group("part"), numbered.group("number")
    if part is not None and part not in folded:
        return False
    return bool(_number_pattern(number).search(folded))


# --- classifying one reply ---------------------------------------------------------------


@dataclass(frozen=True)
class BotReply:
    """What the assistant answered to one question: its messages, buttons and intent."""

    texts: tuple[str, ...]
    buttons: tuple[str, ...] = ()  # the titles
    intent: str | None = None  # the conversation's intent (tracker or parse)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one question and, when it is not right, why."""

    outcome: str
    reason: str = ""

    @property
    def right(self) -> bool:
        """Topic, section or not in policy."""
        return self.outcome in RIGHT


def classify(reply: BotReply, expected: Expectation, contact: Sequence[str] = ()) -> Verdict:
    """The outcome of one reply against what was expected (a pure function).

    Args:
        reply: the assistant's messages, button titles and recognized intent.
        expected: the item's expectation.
        contact: strings of the organization's contact window (its phone number, else
            its name), one of which a not-in-policy answer must give.
    """
    text = "\n".join(reply.texts)
    if ASK_AGAIN in text:
        return Verdict(ASKED_AGAIN)
    found = citations(text)
    if expected.not_in_policy:
        if NOT_STATED not in text:
            return Verdict(WRONG, f"answered as {reply.intent}, not as not stated")
        if contact and not any(marker in text for marker in contact):
            return Verdict(WRONG, "said not stated without the contact window")
        return Verdict(NOT_IN_POLICY)
    section_quoted = bool(expected.section) and any(
        cites(citation, str(expected.section)) for citation in found
    )
    if expected.intent:
        if reply.intent == expected.intent:
            verification = VERIFICATION_STARTED in text
            if expected.question and verification and ANSWER_FIRST_BUTTON not in reply.buttons:
                return Verdict(WRONG, "started the verification instead of answering")
            return Verdict(TOPIC)
        if section_quoted:
            return Verdict(SECTION)
        return Verdict(WRONG, f"intent {reply.intent}")
    if section_quoted:
        return Verdict(SECTION)
    quoted = "; ".join(found) or "no citation"
    return Verdict(WRONG, f"intent {reply.intent}, cited {quoted}")


def contact_markers(org: str) -> list[str]:
    """What a not-in-policy answer must name of ``org``'s window: its phone, else its name."""
    from bot.policy.profiles.loader import load_profile

    window = load_profile(org).contact
    return [window.phone] if window.phone else [window.name]


# --- tallies and the report -----------------------------------------------------------------


@dataclass
class Tally:
    """Outcomes counted."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str) -> None:
        """Counts one outcome."""
        self.counts[outcome] += 1

    @property
    def total(self) -> int:
        """Questions counted."""
        return sum(self.counts.values())

    @property
    def right(self) -> int:
        """Topic + section + not in policy."""
        return sum(self.counts[outcome] for outcome in RIGHT)

    def rate(self, count: int) -> float | None:
        """``count`` as a share of the total."""
        return count / self.total if self.total else None


@dataclass(frozen=True)
class Record:
    """One question's result in the REST run."""

    org: str
    text: str
    kind: str
    expected: str  # the intent, section or "not in policy"
    intent: str | None
    outcome: str
    reason: str
    answer: str  # the bot's messages, joined


@dataclass
class RestRun:
    """Every question's result of one REST run."""

    records: list[Record] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # requests that failed

    def tally(self, org: str | None = None, kind: str | None = None) -> Tally:
        """The outcomes of the records of ``org`` and ``kind`` (all when None)."""
        tally = Tally()
        for record in self.records:
            if (org is None or record.org == org) and (kind is None or record.kind == kind):
                tally.add(record.outcome)
        return tally


def _described(expected: Expectation) -> str:
    if expected.intent:
        return expected.intent + (" (question)" if expected.question else "")
    return f"section {expected.section}" if expected.section else "not in policy"


def _rows(groups: Iterable[tuple[str, Tally]]) -> list[list[str]]:
    rows = []
    for name, tally in groups:
        cells = [f"{tally.counts[outcome]}" for outcome in OUTCOMES]
        rows.append(
            [name, str(tally.total), *cells, f"{tally.right}", num(tally.rate(tally.right))]
        )
    return rows


def rest_section(run: RestRun) -> list[str]:
    """The report's lines for a REST run: counts and rates overall, per org, per kind."""
    orgs = sorted({record.org for record in run.records})
    header = ["", "questions", *(OUTCOME_TITLES[o] for o in OUTCOMES), "right", "right rate"]
    overall = run.tally()
    lines = [
        f"- {overall.total} questions of `{DEV_SET.relative_to(PROJECT_ROOT)}`, each the first "
        "message of a REST conversation of its own; the action server restarted per "
        "organization (`PRIVACY_BOT_ORG`).",
        "- right = right topic + right section quoted + not in policy said so.",
        "",
        *table(
            ["organization", *header[1:]],
            _rows([("all", overall), *((org, run.tally(org)) for org in orgs)]),
            "l" + "r" * (len(header) - 1),
        ),
        "",
        *table(
            ["expected", *header[1:]],
            _rows(
                (KIND_TITLES[kind], run.tally(kind=kind))
                for kind in KINDS
                if run.tally(kind=kind).total
            ),
            "l" + "r" * (len(header) - 1),
        ),
    ]
    rates = ", ".join(
        f"{OUTCOME_TITLES[outcome]} {num(overall.rate(overall.counts[outcome]))}"
        for outcome in OUTCOMES
    )
    lines += ["", f"Rates overall: {rates}."]
    if run.errors:
        lines += ["", f"Requests that failed: {len(run.errors)} ({'; '.join(run.errors[:5])})."]
    return lines


# --- the REST run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rasa:
    url: str
    token: str
    headers: dict[str, str]
    env: dict[str, str]
    action_port: int


@contextmanager
def _rasa_server(model: Path, run_dir: Path) -> Iterator[_Rasa]:
    """The product's rasa server, as bench.latency starts it, on a var dir of its own."""
    from bench.latency import product_env, product_rasa_server_command, product_server_files
    from bot.settings import ensure_rasa_token, load_settings

    action_port, rasa_port = free_port(), free_port()
    env = product_env(run_dir / "var", action_port, rasa_port)
    endpoints, credentials, headers = product_server_files(env, run_dir / "servers", 5)
    token = ensure_rasa_token(load_settings(env))
    command = product_rasa_server_command(model, endpoints, credentials)
    ready = f"{local_url(rasa_port)}/"
    with server("members-words rasa server", command, ready, env):
        yield _Rasa(local_url(rasa_port), token, headers, env, action_port)


@contextmanager
def _action_server(rasa: _Rasa, org: str) -> Iterator[None]:
    env = {**rasa.env, "PRIVACY_BOT_ORG": org}
    command = [sys.executable, "-m", "bot.action_server"]
    ready = f"{local_url(rasa.action_port)}/health"
    with server(f"members-words action server {org}", command, ready, env):
        yield


async def _ask(http: aiohttp.ClientSession, rasa: _Rasa, text: str) -> tuple[Reply, str | None]:
    """Sends ``text`` as a new conversation; the reply and the conversation's intent."""
    sender = f"words-{uuid.uuid4().hex[:16]}"
    reply = await post_message(http, rasa.url + REST_WEBHOOK, sender, text, REQUEST_TIMEOUT_S)
    if reply.error:
        return reply, None
    conversation = quote(f"rest:{sender}", safe=":@")
    async with http.get(
        f"{rasa.url}/conversations/{conversation}/tracker",
        params={"token": rasa.token},
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    ) as response:
        tracker = await response.json(content_type=None) if response.status == 200 else {}
    intent = ((tracker.get("latest_message") or {}).get("intent") or {}).get("name")
    return reply, intent


def _bot_reply(reply: Reply, intent: str | None) -> BotReply:
    texts = tuple(str(message.get("text") or "") for message in reply.messages)
    buttons = tuple(
        str(button.get("title") or "")
        for message in reply.messages
        for button in message.get("buttons") or []
    )
    return BotReply(texts, buttons, intent)


async def _ask_org(
    rasa: _Rasa,
    org: str,
    asked: Sequence[DevItem],
    concurrency: int,
    run: RestRun,
) -> None:
    """Sends the questions of one organization, ``concurrency`` at a time."""
    contact = contact_markers(org)
    async with aiohttp.ClientSession(headers=rasa.headers) as http:

        async def one(index: int) -> None:
            item = asked[index]
            reply, intent = await _ask(http, rasa, item.text)
            if reply.error:
                run.errors.append(f"{org}: {reply.error}")
            bot = _bot_reply(reply, intent)
            verdict = classify(bot, item.expected, contact)
            run.records.append(
                Record(
                    org,
                    item.text,
                    item.expected.kind,
                    _described(item.expected),
                    intent,
                    verdict.outcome,
                    verdict.reason,
                    "\n".join(bot.texts),
                )
            )

        await pool(len(asked), concurrency, one)


def run_rest(model: Path, items: Sequence[DevItem], run_dir: Path, concurrency: int = 2) -> RestRun:
    """Sends every item through REST: one rasa server, an action server per organization."""
    run = RestRun()
    with _rasa_server(model, run_dir) as rasa:
        for org in sorted({item.org for item in items}):
            asked = [item for item in items if item.org == org]
            logger.info("%s: %d questions", org, len(asked))
            with _action_server(rasa, org):
                asyncio.run(_ask_org(rasa, org, asked, concurrency, run))
            tally = run.tally(org)
            logger.info("%s: right %d of %d", org, tally.right, tally.total)
    return run


# --- the offline run (NLU only) -----------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """The NLU's answer to one text: the intent after and before the FallbackClassifier."""

    text: str
    expected: str
    org: str  # "" for the holdout
    intent: str | None
    before_fallback: str | None
    confidence: float


@dataclass
class OfflineRun:
    """Predictions of one model on the dev set's intent items (and the holdout)."""

    model: str
    dev: list[Prediction] = field(default_factory=list)
    holdout: list[Prediction] = field(default_factory=list)


def before_fallback(parsed: Mapping[str, Any]) -> str | None:
    """The classifier's intent without the FallbackClassifier (as `rasa test nlu` scores)."""
    intent = (parsed.get("intent") or {}).get("name")
    if intent != FALLBACK_INTENT:
        return str(intent) if intent else None
    for ranked in parsed.get("intent_ranking") or []:
        if ranked.get("name") != FALLBACK_INTENT:
            return str(ranked.get("name"))
    return None


def _parse_all(model: Path, texts: Sequence[str]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # else Rasa logs every parse on stdout
    agent = Agent.load(str(model))

    async def parse() -> list[dict[str, Any]]:
        return [await agent.parse_message(text) for text in texts]

    return asyncio.run(parse())


def _holdout_examples(path: Path = HOLDOUT) -> list[tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    return [
        (message.get("text"), message.get("intent"))
        for message in load_data(str(path)).training_examples
        if message.get("text") and message.get("intent")
    ]


def run_offline(model: Path, items: Sequence[DevItem], holdout: bool = False) -> OfflineRun:
    """Parses the intent items (and the holdout) with the model's NLU, no servers."""
    wanted = [item for item in items if item.expected.intent]
    examples = [(item.text, str(item.expected.intent), item.org) for item in wanted]
    if holdout:
        examples += [(text, intent, "") for text, intent in _holdout_examples()]
    parsed = _parse_all(model, [text for text, _, _ in examples])
    run = OfflineRun(str(model))
    for (text, expected, org), result in zip(examples, parsed, strict=True):
        intent = result.get("intent") or {}
        prediction = Prediction(
            text,
            expected,
            org,
            intent.get("name"),
            before_fallback(result),
            float(intent.get("confidence") or 0.0),
        )
        (run.dev if org else run.holdout).append(prediction)
    return run


def _accuracy_row(name: str, predictions: Sequence[Prediction]) -> list[str]:
    total = len(predictions)
    after = sum(p.intent == p.expected for p in predictions)
    before = sum(p.before_fallback == p.expected for p in predictions)
    fallback = sum(p.intent == FALLBACK_INTENT for p in predictions)
    wrong = total - after - fallback

    def share(count: int) -> str:
        return num(count / total) if total else DASH

    return [name, str(total), share(before), share(after), share(fallback), share(wrong)]


def offline_section(run: OfflineRun, items: Sequence[DevItem]) -> list[str]:
    """The report's lines for an offline run: intent accuracy on the dev set (and holdout)."""
    kinds = {(item.org, item.text): item.expected.kind for item in items}
    orgs = sorted({p.org for p in run.dev})
    rows = [_accuracy_row("dev set, intent items", run.dev)]
    rows += [_accuracy_row(org, [p for p in run.dev if p.org == org]) for org in orgs]
    for kind in ("intent", "question"):
        chosen = [p for p in run.dev if kinds.get((p.org, p.text)) == kind]
        rows.append(_accuracy_row(f"kind: {KIND_TITLES[kind]}", chosen))
    if run.holdout:
        rows.append(_accuracy_row("holdout (nlu_holdout.yml)", run.holdout))
    header = [
        "texts",
        "n",
        "accuracy before fallback",
        "accuracy (fallback counted wrong)",
        "asked again (nlu_fallback)",
        "wrong intent",
    ]
    confusions = Counter(
        (p.expected, p.intent) for p in run.dev if p.intent != p.expected
    ).most_common(12)
    lines = [
        f"- model: `{run.model}`; Rasa's Agent parse, no servers.",
        "- accuracy before fallback: the classifier's top intent, as `rasa test nlu` scores;"
        " with the FallbackClassifier a message under its threshold is asked again.",
        "",
        *table(header, rows, "lrrrrr"),
    ]
    if confusions:
        lines += ["", "Most frequent misses on the dev set (expected → predicted):", ""]
        lines += table(
            ["expected → predicted", "count"],
            [
                [f"{expected} → {predicted}", str(count)]
                for (expected, predicted), count in confusions
            ],
            "lr",
        )
    return lines


# --- as a phase of `python -m bench` ---------------------------------------------------------


def offline_in_subprocess(model: Path, out: Path) -> OfflineRun:
    """``--offline`` in a process of its own (TensorFlow stays out of the caller)."""
    from bench.servers import child_env, run_command
    from bench.training import COMMAND_TIMEOUT_S

    command = [sys.executable, "-m", "bench.members_words", "--offline", "--model", str(model)]
    run_command(
        "members' words NLU",
        [*command, "--json", str(out)],
        child_env(),
        COMMAND_TIMEOUT_S,
        cwd=PROJECT_ROOT,
    )
    loaded = json.loads(out.read_text(encoding="utf-8"))
    return OfflineRun(
        str(loaded["model"]),
        dev=[Prediction(**prediction) for prediction in loaded["dev"]],
        holdout=[Prediction(**prediction) for prediction in loaded["holdout"]],
    )


def bench_section(nlu_model: Path | None, full_model: Path | None, run_dir: Path) -> list[str]:
    """The members' words section of `python -m bench`, from the models that run trained.

    The NLU-only model is parsed offline; the full model answers through REST.
    """
    items = load_items()
    lines = ["", "## 6. Members' words (bench/data/members_words.yml)"]
    if nlu_model and nlu_model.exists():
        offline = offline_in_subprocess(nlu_model, run_dir / "members-words-offline.json")
        lines += ["", "### NLU only (the product pipeline's NLU model)", ""]
        lines += offline_section(offline, items)
    if full_model and full_model.exists():
        rest = run_rest(full_model, items, run_dir / "members-words")
        lines += ["", "### Through REST (the product's full model and servers)", ""]
        lines += rest_section(rest)
    if len(lines) == 2:
        lines += ["", "No model was trained in this run (see Errors)."]
    return lines


# --- the command line -----------------------------------------------------------------------


def _default_model() -> Path:
    from bot.launcher import model_path

    model = model_path()
    if not model.exists():
        raise SystemExit(f"no model for the current training data at {model}: run `make train`")
    return model


def _parser() -> argparse.ArgumentParser:
    parser = cli.parser("python -m bench.members_words", __doc__)
    parser.add_argument("--model", type=Path, help="the model (default: the current one)")
    parser.add_argument("--offline", action="store_true", help="NLU only, no servers")
    parser.add_argument("--holdout", action="store_true", help="offline: also the holdout")
    parser.add_argument("--org", action="append", help="only this organization (repeatable)")
    parser.add_argument("--concurrency", type=cli.at_least(1), default=2)
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: prints the figures as Markdown."""
    args = _parser().parse_args(argv)
    items = [item for item in load_items() if not args.org or item.org in args.org]

    def measure() -> int:
        model = args.model or _default_model()
        if args.offline:
            offline = run_offline(model, items, args.holdout)
            lines = ["## Members' words, NLU only", "", *offline_section(offline, items)]
            figures: Any = dataclasses.asdict(offline)
        else:
            VAR_DIR.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="words-", dir=VAR_DIR) as folder:
                rest = run_rest(model, items, Path(folder), args.concurrency)
            lines = [
                "## Members' words through REST",
                "",
                f"- model: `{model}`",
                *rest_section(rest),
            ]
            figures = dataclasses.asdict(rest)
        sys.stdout.write("\n".join(lines) + "\n")
        if args.json:
            args.json.write_text(
                json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8"
            )
        return 0

    return cli.run(measure)


if __name__ == "__main__":
    raise SystemExit(main())
