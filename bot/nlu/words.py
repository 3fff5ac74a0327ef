"""Japanese words and their lemmas with fugashi (MeCab) and unidic-lite, without Rasa.

The one lemmatizer of the project: the Rasa tokenizer (``bot.nlu.tokenizer``) wraps
these words into Rasa tokens, and the policy search (``bot.policy.search``) indexes and
queries the policy texts with them, in the action server, where importing Rasa's NLU
(and TensorFlow with it) only to read words would cost seconds.

The text is NFKC-normalized before MeCab sees it, so half-width kana and full-width
digits are read as words, but every word's ``start``/``end`` points into the text
exactly as it was given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import fugashi

from bot.core.text import normalize_with_spans

# unidic writes the source word of loanwords into the lemma ("ナンバー-number").
_LEMMA_GLOSS = re.compile(r"-[A-Za-z].*$")

# Parts of speech that carry no meaning on their own (unidic pos1). unidic's 記号 is
# not among them: it is what it calls a stray kana such as 「ぱ」.
FUNCTION_POS = frozenset({"助詞", "助動詞", "補助記号", "空白"})
_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ff]")


@dataclass(frozen=True)
class Word:
    """One word: its text as given, where it is, its lemma (lower case) and pos1."""

    text: str
    start: int
    end: int
    lemma: str
    pos: str


@lru_cache(maxsize=1)
def _tagger() -> fugashi.Tagger:
    # Building a tagger loads the dictionary; one per process is enough.
    return fugashi.Tagger()


def japanese_words(text: str) -> list[Word]:
    """Split ``text`` into words whose offsets index the original ``text``."""
    normalized = normalize_with_spans(text)
    words: list[Word] = []
    cursor = 0
    for node in _tagger()(normalized.text):
        surface = node.surface
        if not surface or surface.isspace():
            continue
        start = normalized.text.find(surface, cursor)
        if start < 0:  # MeCab never rewrites surfaces, but never lose the text if it did
            continue
        end = start + len(surface)
        cursor = end
        original_start, original_end = normalized.original_span(start, end)
        feature = node.feature
        lemma = getattr(feature, "lemma", None) or surface
        lemma = _LEMMA_GLOSS.sub("", lemma) or surface
        if words and original_start < words[-1].end:
            # MeCab split one original character group (an emoji joined with ZWJ):
            # the pieces become one word again so no character is counted twice.
            previous = words.pop()
            original_start = previous.start
            original_end = max(original_end, previous.end)
            lemma = previous.lemma + lemma
        pos = getattr(feature, "pos1", None) or ""
        words.append(
            Word(
                text[original_start:original_end],
                original_start,
                original_end,
                lemma.lower(),
                pos,
            )
        )
    return words


def is_content(lemma: str, pos: str) -> bool:
    """Whether a word carries meaning: no particle, symbol, number or lone kana."""
    if pos in FUNCTION_POS:
        return False
    # A word has letters (kana, kanji, latin) and no digits: 1001, 23 or 「－」
    # are values or punctuation whatever part of speech MeCab gives them.
    if any(c.isdigit() for c in lemma) or not any(c.isalpha() for c in lemma):
        return False
    # A lone kana is what MeCab leaves of a typo or of nonsense, not a word: one
    # stray 「プ」 in the training data must not make 「ぱぴぷぺぽ」 look understood.
    return not (len(lemma) == 1 and _KANA.match(lemma))


def content_lemmas(words: Iterable[Word]) -> list[str]:
    """The lemmas of ``words`` that carry meaning, in order."""
    return [word.lemma for word in words if is_content(word.lemma, word.pos)]
