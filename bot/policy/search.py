"""Ranked search over an organization's passages, on fugashi lemmas.

Each line of a section (a paragraph, list item or table row) is one unit, read with its
section's label and chapter, so a question lands on the line that answers it and the
line names its section; each profile fact is one unit. Units are ranked by BM25
(``rank-bm25``, chosen by measurement: docs/benchmarks.md, 「Policy search」) over the
content lemmas of ``bot.nlu.words``; a passage scores as its best unit.

How sure a hit is does not come from the ranking score, whose scale depends on the
question's length, but from its coverage: the share of the question's words (weighted
by how rare they are in the organization's policy, an unknown word as the rarest) that
the best unit contains. The answer builder compares that with a threshold.

An index is built once per organization and process, lazily (:func:`index_for`).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np

from bot.core.text import fold
from bot.nlu.words import content_lemmas, japanese_words
from bot.policy.passages import Passage, passages
from bot.policy.profiles.schema import Profile

# Words that frame a question rather than say what it is about (「教えてください」,
# 「どうすればいいですか」, 「～ことはありますか」), as unidic lemmas: left out of the
# query, so a question is judged by its subject alone.
QUESTION_WORDS = frozenset(
    {
        *("為る", "有る", "居る", "成る", "出来る", "来る", "仕舞う", "御"),
        *("教える", "知る", "分かる", "下さる", "頂く", "貰う", "呉れる", "欲しい"),
        *("思う", "言う", "聞く", "願う", "良い", "大丈夫", "本当"),
        *("何", "どう", "どの", "どんな", "何処", "何時", "誰", "何方", "何故", "何れ"),
        *("事", "物", "為", "様", "所", "方", "私", "僕", "自分"),
    }
)
# Members' everyday words for what the policies say in legal terms (lemmas): a question
# word also finds the policy's words for it. General vocabulary, not one policy's.
MEMBER_WORDS: dict[str, tuple[str, ...]] = {
    "漏れる": ("漏洩",),
    "流出": ("漏洩",),
    "見せる": ("開示",),
    "見る": ("開示",),
    "直す": ("訂正",),
    "間違う": ("訂正",),
    "間違い": ("訂正",),
    "消す": ("削除", "消去"),
    "止める": ("停止",),
    "渡す": ("提供",),
    "伝わる": ("提供",),
    "共有": ("提供", "共同"),
    "会社": ("事業", "事業者"),
    "勤め先": ("事業",),
    "職場": ("事業",),
    "家族": ("世帯", "扶養"),
    "子供": ("未成年", "成年"),
    "親": ("法定", "代理"),
    "代わり": ("代理",),
    "金": ("手数",),
    "費用": ("手数",),
    "病気": ("病歴",),
    "海外": ("外国",),
    "業者": ("委託",),
    "任せる": ("委託",),
    "ハッキング": ("不正", "アクセス"),
    "ウイルス": ("不正", "アクセス"),
    "裁判": ("訴え",),
    "履歴": ("応募", "採用"),
    "就職": ("採用", "応募"),
    "ナンバー": ("番号",),
    "責任": ("管理",),
    "問い合わせ": ("窓口", "問合せ"),
    "相談": ("窓口",),
    "日数": ("日",),
    "伸ばす": ("延長",),
    "ファックス": ("fax",),
    "診断": ("健診", "診査"),
    "申し出る": ("申し出",),
    "断る": ("拒む",),
}
# A member's message is short; the channels cut longer ones. Reading at most this
# much keeps a pasted page from costing more than a message.
MAX_QUERY_CHARS = 1000


def query_lemmas(text: str) -> list[str]:
    """The content lemmas of a question, without the words that only frame it."""
    lemmas = content_lemmas(japanese_words(text[:MAX_QUERY_CHARS]))
    return [lemma for lemma in lemmas if lemma not in QUESTION_WORDS]


def passage_lemmas(text: str) -> list[str]:
    """The content lemmas of a piece of policy text."""
    return content_lemmas(japanese_words(text))


class Scorer(Protocol):
    """A ranking function over tokenized units (the benchmark compares several)."""

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """One score per unit, higher is better."""


ScorerFactory = Callable[[Sequence[Sequence[str]]], Scorer]


class Bm25Scorer:
    """BM25 (``BM25Okapi`` of rank-bm25, its default k1 = 1.5, b = 0.75)."""

    def __init__(self, units: Sequence[Sequence[str]]):
        """Index ``units`` (lists of lemmas)."""
        from rank_bm25 import BM25Okapi  # imported here: only an index build needs it

        self._bm25 = BM25Okapi([list(unit) for unit in units])

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 of every unit for ``query``."""
        return np.asarray(self._bm25.get_scores(list(query)), dtype=float)


@dataclass(frozen=True)
class Unit:
    """What one ranked item is: a line of a passage (or a whole fact) and its lemmas."""

    passage: int
    line: int | None
    lemmas: tuple[str, ...]


@dataclass(frozen=True)
class Hit:
    """A passage found for a question.

    Attributes:
        passage: the passage.
        line: the index of its best line, None for a whole fact.
        score: the ranking score of that line.
        coverage: the weighted share of the question's words the line contains (0–1).
        words: the question's words found in it.
    """

    passage: Passage
    line: int | None
    score: float
    coverage: float
    words: frozenset[str]


def _units(found: Sequence[Passage], granularity: str = "line") -> list[Unit]:
    units: list[Unit] = []
    for index, passage in enumerate(found):
        where = passage_lemmas(" ".join(filter(None, (passage.context, passage.label))))
        if passage.kind == "fact" or granularity == "section":
            words = where + passage_lemmas(passage.text)
            units.append(Unit(index, None, tuple(words)))
            continue
        for number, line in enumerate(passage.lines):
            units.append(Unit(index, number, tuple(where + passage_lemmas(line))))
    return units


class PolicyIndex:
    """The passages of one organization, ranked for a question."""

    def __init__(
        self,
        found: Sequence[Passage],
        scorer: ScorerFactory = Bm25Scorer,
        granularity: str = "line",
        member_words: dict[str, tuple[str, ...]] = MEMBER_WORDS,
    ) -> None:
        """Index ``found``; the other arguments are for the benchmark."""
        self.passages = tuple(found)
        self._member_words = member_words
        self.units = _units(self.passages, granularity)
        self._scorer = scorer([unit.lemmas for unit in self.units])
        count = len(self.units)
        frequency: Counter[str] = Counter()
        for unit in self.units:
            frequency.update(set(unit.lemmas))
        self._idf = {word: _idf(count, n) for word, n in frequency.items()}
        self._unknown_idf = _idf(count, 0)

    @cached_property
    def folded_text(self) -> str:
        """Every line of every passage, NFKC-folded and lower-cased, for plain lookups."""
        return fold("\n".join(line for passage in self.passages for line in passage.lines)).lower()

    def _forms(self, word: str) -> tuple[str, ...]:
        return (word, *self._member_words.get(word, ()))

    def weight(self, word: str) -> float:
        """How much a question word counts: rarer in the policy, more; unknown, most.

        A member's word the policy does not use counts as its policy word.
        """
        known = [self._idf[form] for form in self._forms(word) if form in self._idf]
        return max(known) if known else self._unknown_idf

    def found_words(self, words: Iterable[str], unit_words: Iterable[str]) -> frozenset[str]:
        """The question's ``words`` that ``unit_words`` contain (or their policy words)."""
        present = set(unit_words)
        return frozenset(w for w in words if any(form in present for form in self._forms(w)))

    def coverage(self, words: Iterable[str], unit_words: Iterable[str]) -> float:
        """The weighted share of ``words`` found in ``unit_words``."""
        wanted = set(words)
        total = sum(self.weight(word) for word in wanted)
        if not total:
            return 0.0
        found = self.found_words(wanted, unit_words)
        return sum(self.weight(word) for word in found) / total

    def search(self, question: str, kinds: Sequence[str] = ("text",), limit: int = 5) -> list[Hit]:
        """The best passages of the given kinds for ``question``, best first."""
        return self.search_lemmas(query_lemmas(question), kinds, limit)

    def search_lemmas(
        self, words: Sequence[str], kinds: Sequence[str] = ("text",), limit: int = 5
    ) -> list[Hit]:
        """:meth:`search` for a question already read into lemmas."""
        if not words or not self.units:
            return []
        scores = self._scorer.scores([form for word in words for form in self._forms(word)])
        best: dict[int, tuple[float, int]] = {}
        for position in np.argsort(-scores, kind="stable"):
            score = float(scores[position])
            if score <= 0:
                break
            unit = self.units[position]
            if self.passages[unit.passage].kind not in kinds or unit.passage in best:
                continue
            best[unit.passage] = (score, int(position))
            if len(best) >= limit:
                break
        hits = []
        for passage_index, (score, position) in best.items():
            unit = self.units[position]
            line, lemmas = unit.line, unit.lemmas
            if line is None and self.passages[passage_index].kind == "text":
                line, lemmas = self._best_line(passage_index, words)
            hits.append(
                Hit(
                    passage=self.passages[passage_index],
                    line=line,
                    score=score,
                    coverage=self.coverage(words, lemmas),
                    words=self.found_words(words, lemmas),
                )
            )
        return hits

    def _best_line(self, passage_index: int, words: Sequence[str]) -> tuple[int, tuple[str, ...]]:
        """For a whole-section unit: the line (with its label) that covers most of the words."""
        passage = self.passages[passage_index]
        where = passage_lemmas(" ".join(filter(None, (passage.context, passage.label))))
        lines = [tuple(where + passage_lemmas(line)) for line in passage.lines]
        best = max(range(len(lines)), key=lambda n: (self.coverage(words, lines[n]), -n))
        return best, lines[best]


def _idf(count: int, n: int) -> float:
    return math.log(1 + (count - n + 0.5) / (n + 0.5))


_INDEXES: dict[str, tuple[Profile, PolicyIndex]] = {}
_LOCK = threading.Lock()


def index_for(profile: Profile) -> PolicyIndex:
    """The index of ``profile``'s organization, built on first use in this process."""
    with _LOCK:
        cached = _INDEXES.get(profile.id)
        if cached is None or (cached[0] is not profile and cached[0] != profile):
            cached = (profile, PolicyIndex(passages(profile)))
            _INDEXES[profile.id] = cached
        return cached[1]
