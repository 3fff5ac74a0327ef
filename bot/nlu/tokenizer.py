"""A Rasa tokenizer for Japanese built on fugashi (MeCab) with the unidic-lite dictionary.

The message is NFKC-normalized before MeCab sees it, so half-width kana and
full-width digits are read as words, but every token's ``start``/``end`` points into
the message exactly as the member sent it, which is what entity annotations use.
The words come from ``bot.nlu.words`` (the project's one lemmatizer, free of Rasa).
Each token carries the dictionary lemma (``使わ`` → ``使う``), used by the count
vectors featurizer, and its part of speech, usable by the lexical featurizer.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.words import japanese_words

POS_TAG_KEY = "pos"  # the key Rasa's LexicalSyntacticFeaturizer reads


def japanese_tokens(text: str) -> list[Token]:
    """Split ``text`` into tokens whose offsets index the original ``text``."""
    return [
        Token(word.text, word.start, word.end, data={POS_TAG_KEY: word.pos}, lemma=word.lemma)
        for word in japanese_words(text)
    ]


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
