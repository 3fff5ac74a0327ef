"""Answers quoted from the published policy itself, for questions no intent answers.

For a question, the best passage of the organization's policy (``bot.policy.search``)
is quoted word for word: whole sentences (cut only after a 「。」 outside brackets) and
whole lines (list items, table rows), at most about a phone screen, never cut inside a
number, date, name or list item. The reply is a fixed lead sentence, the quote and the
citation (``（出典：<document> <section>）``): nothing else is said, so no number, name or
deadline appears that the quote does not hold. The closest topics follow as quick
replies. Below the threshold the policy is taken not to say it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.policy.answers import (
    INTENT_LABELS,
    MENU_INTENTS,
    Button,
    Reply,
    clarify,
    not_stated,
    out_of_scope,
)
from bot.policy.passages import Passage
from bot.policy.profiles.schema import Profile
from bot.policy.search import Hit, PolicyIndex, index_for, passage_lemmas, query_lemmas

LEAD = "公表されている方針には、次のように書かれています。"
# The share of the question's words (weighted by rarity) the best line must hold for a
# quote. Chosen on bench/data/retrieval_dev.yml (docs/benchmarks.md, 「Policy search」):
# at 0.45, 78 % of the quotes were the expected section and 1 of 59 questions the
# policies do not answer got one; at 0.40, 76 % and 3 of 59.
THRESHOLD = 0.45
QUOTE_CHARS = 200  # a quote fits a phone screen
# A single sentence longer than QUOTE_CHARS is quoted whole up to this (the reply stays
# within the 450 characters of a phone screen); a longer one is never cut, another is
# taken.
SENTENCE_CHARS = 320
BUTTONS = 3
NOT_STATED_SUBJECT = "お尋ねの内容"

# Words that make an out-of-scope message a question about personal information (as
# lemmas of bot.nlu.words). Together with the threshold, they decide whether such a
# message gets a quote instead of the out-of-scope reply: 「保険料はいくら」 has none.
PERSONAL_INFORMATION_WORDS = frozenset(
    {
        *("個人", "情報", "データ", "プライバシー", "開示", "訂正", "削除", "消去", "停止"),
        *("第三者", "提供", "漏洩", "漏れる", "流出", "同意", "共同", "委託", "保管"),
        *("保存", "記録", "名簿", "病歴", "秘密", "守秘", "匿名", "仮名", "マイ", "ナンバー"),
        *("セキュリティ", "本人"),
        # What members ask about that no policy here covers: calls, this chat, web
        # visits, cameras, AI, location. Said not stated (with the window) rather than the
        # out-of-scope reply, which would suggest the question was not about their data.
        *("録音", "通話", "チャット", "履歴", "クッキー", "ai", "人工", "カメラ", "映像"),
        *("位置", "細則"),
    }
)
_OPEN = "（(「『【〔［"
_CLOSE = "）)」』】〕］"


@dataclass(frozen=True)
class Piece:
    """A quotable piece of a passage: one sentence of one line, or a line without 「。」."""

    line: int
    text: str


def sentences(line: str) -> list[str]:
    """``line`` cut after each 「。」 that is not inside brackets (「（以下「組合」という。）」)."""
    found: list[str] = []
    depth = 0
    start = 0
    for position, char in enumerate(line):
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE and depth:
            depth -= 1
        elif char == "。" and depth == 0:
            found.append(line[start : position + 1])
            start = position + 1
    if line[start:].strip():
        found.append(line[start:])
    return [sentence for sentence in found if sentence.strip()]


def pieces(passage: Passage) -> list[Piece]:
    """Every quotable piece of ``passage``, in order."""
    return [
        Piece(number, sentence)
        for number, line in enumerate(passage.lines)
        for sentence in sentences(line)
    ]


def join(found: Sequence[Piece]) -> str:
    """Pieces as printed: sentences of a line together, lines on lines of their own."""
    text = ""
    for index, piece in enumerate(found):
        if index and piece.line != found[index - 1].line:
            text += "\n"
        text += piece.text.strip() if not text or text.endswith("\n") else piece.text
    return text.strip()


def quote(passage: Passage, words: Sequence[str], index: PolicyIndex, line: int | None) -> str:
    """The part of ``passage`` to quote for a question read into ``words``.

    The piece that holds most of the question (in ``line`` when given) and as many
    pieces around it as fit in :data:`QUOTE_CHARS`, preferring those that hold more of
    the question, then more context. Returns "" when nothing can be quoted whole.
    """
    found = pieces(passage)
    if not found:
        return ""
    weights = [index.coverage(words, passage_lemmas(piece.text)) for piece in found]
    candidates = [n for n, piece in enumerate(found) if line is None or piece.line == line]
    candidates = candidates or list(range(len(found)))
    order = sorted(candidates, key=lambda n: (-weights[n], n)) + sorted(
        set(range(len(found))) - set(candidates), key=lambda n: (-weights[n], n)
    )
    for best in order:
        if len(found[best].text) > SENTENCE_CHARS:
            continue
        window = (best, best + 1)
        chosen = (weights[best], len(join(found[best : best + 1])))
        for start in range(best, -1, -1):
            for end in range(best + 1, len(found) + 1):
                text = join(found[start:end])
                if len(text) > QUOTE_CHARS:
                    break
                held = index.coverage(words, passage_lemmas(text))
                if (held, len(text)) > chosen:
                    window, chosen = (start, end), (held, len(text))
            if len(join(found[start : best + 1])) > QUOTE_CHARS:
                break
        return join(found[window[0] : window[1]])
    return ""


def _buttons(
    index: PolicyIndex, words: Sequence[str], ranking: Sequence[str]
) -> tuple[Button, ...]:
    """The closest topics: those of the profile facts the question finds, then the NLU's."""
    intents: list[str] = []
    facts = index.search_lemmas(words, ("fact",), limit=10) if words else []
    candidates = [hit.passage.intent for hit in facts] + list(ranking) + list(MENU_INTENTS)
    for intent in candidates:
        if intent and intent in INTENT_LABELS and intent not in intents:
            intents.append(intent)
    return tuple(Button(INTENT_LABELS[intent], f"/{intent}") for intent in intents[:BUTTONS])


def topic_buttons(
    profile: Profile, words: Sequence[str], ranking: Sequence[str]
) -> tuple[Button, ...]:
    """The closest topics to a question read into ``words`` (see :func:`_buttons`)."""
    return _buttons(index_for(profile), words, ranking)


@dataclass(frozen=True)
class PolicyQuote:
    """What the policy says to a question: the quote, its passage and how sure."""

    hit: Hit
    text: str
    buttons: tuple[Button, ...]

    def reply(self) -> Reply:
        """The lead, the quote and its citation, with the closest topics."""
        return Reply(f"{LEAD}\n「{self.text}」\n{self.hit.passage.citation()}", self.buttons)


def find_quote(
    profile: Profile, question: str, ranking: Sequence[str] = (), threshold: float = THRESHOLD
) -> PolicyQuote | None:
    """The quote answering ``question``, or None when the policy does not say it.

    Args:
        profile: the active organization's profile.
        question: the member's message.
        ranking: intents the NLU found likely, best first (for the quick replies).
        threshold: the least coverage of the question a quoted line must have.
    """
    words = query_lemmas(question)
    if not words:
        return None
    index = index_for(profile)
    for hit in index.search_lemmas(words, ("text",), limit=3):
        if hit.coverage < threshold:
            break
        text = quote(hit.passage, words, index, hit.line)
        if text:
            return PolicyQuote(hit, text, _buttons(index, words, ranking))
    return None


def answer_question(profile: Profile, question: str, ranking: Sequence[str] = ()) -> list[Reply]:
    """The policy's own words for ``question``, or that it does not say, with the window."""
    found = find_quote(profile, question, ranking)
    if found:
        return [found.reply()]
    buttons = topic_buttons(profile, query_lemmas(question), ranking)
    stated = not_stated(profile, NOT_STATED_SUBJECT)
    return [replace(stated, buttons=buttons)]


def about_personal_information(question: str) -> bool:
    """Whether a message names personal information (:data:`PERSONAL_INFORMATION_WORDS`)."""
    return bool(PERSONAL_INFORMATION_WORDS & set(query_lemmas(question)))


def for_fallback(profile: Profile, question: str, ranking: Sequence[str]) -> list[Reply]:
    """No intent was sure: quote the policy if it answers, else ask again with topics."""
    found = find_quote(profile, question, ranking)
    return [found.reply()] if found else clarify(profile, ranking)


def for_out_of_scope(profile: Profile, question: str, ranking: Sequence[str]) -> list[Reply]:
    """The reply to an out-of-scope message.

    About personal information: the policy's words when it answers, else that the
    policy does not say it, with the contact window and the closest topics. About
    anything else: the out-of-scope reply.
    """
    if about_personal_information(question):
        return answer_question(profile, question, ranking)
    return out_of_scope(profile)
