"""A Rasa tokenizer for Japanese built on fugashi (MeCab) with the unidic-lite dictionary.

The message is NFKC-normalized before MeCab sees it, so half-width kana and
full-width digits are read as words, but every token's ``start``/``end`` points into
the message exactly as the member sent it, which is what entity annotations use.
Each token carries the dictionary lemma (``使わ`` → ``使う``), used by the count
vectors featurizer, and its part of speech, usable by the lexical featurizer.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import fugashi
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

from bot.core.text import normalize_with_spans

POS_TAG_KEY = "pos"  # the key Rasa's LexicalSyntacticFeaturizer reads
# unidic writes the source word of loanwords into the lemma ("ナンバー-number").
_LEMMA_GLOSS = re.compile(r"-[A-Za-z].*$")


@lru_cache(maxsize=1)
def _tagger() -> fugashi.Tagger:
    # Building a tagger loads the dictionary; one per process is enough.
    return fugashi.Tagger()


def japanese_tokens(text: str) -> list[Token]:
    """Split ``text`` into tokens whose offsets index the original ``text``."""
    normalized = normalize_with_spans(text)
    tokens: list[Token] = []
    cursor = 0
    for word in _tagger()(normalized.text):
        surface = word.surface
        if not surface or surface.isspace():
            continue
        start = normalized.text.find(surface, cursor)
        if start < 0:  # MeCab never rewrites surfaces, but never lose the text if it did
            continue
        end = start + len(surface)
        cursor = end
        original_start, original_end = normalized.original_span(start, end)
        feature = word.feature
        lemma = getattr(feature, "lemma", None) or surface
        lemma = _LEMMA_GLOSS.sub("", lemma) or surface
        if tokens and original_start < tokens[-1].end:
            # MeCab split one original character group (an emoji joined with ZWJ):
            # the pieces become one token again so no character is counted twice.
            previous = tokens.pop()
            original_start = previous.start
            original_end = max(original_end, previous.end)
            lemma = previous.lemma + lemma
        pos = getattr(feature, "pos1", None) or ""
        tokens.append(
            Token(
                text[original_start:original_end],
                original_start,
                original_end,
                data={POS_TAG_KEY: pos},
                lemma=lemma.lower(),
            )
        )
    return tokens


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class JapaneseTokenizer(Tokenizer):
    """Tokenizes Japanese (and mixed Japanese/ASCII) messages with fugashi."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The component's default config (same keys as Rasa's own tokenizers)."""
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    @staticmethod
    def required_packages() -> list[str]:
        """Packages needed to run the component."""
        return ["fugashi", "unidic_lite"]

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> JapaneseTokenizer:
        """Creates the tokenizer (it has nothing to train or persist)."""
        return cls(config)

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Tokenizes the text of ``attribute`` of ``message``."""
        text = message.get(attribute) or ""
        tokens = japanese_tokens(text)
        return self._apply_token_pattern(tokens)
