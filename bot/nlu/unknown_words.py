"""Marks messages made only of words the assistant was never trained on as unsure.

DIET's softmax spreads a message over the known intents even when nothing in it
resembles the training data (「ぱぴぷぺぽ」 came out as ``request_disclosure`` at 0.82),
and character n-grams make that worse for kana. A message whose every content word is
unknown cannot be understood, so this component sets its intent confidence to zero and
lets the ``FallbackClassifier`` that follows turn it into ``nlu_fallback``: the member
gets a polite clarification with the likely topics instead of a confident wrong answer.
Numbers and symbols are values, not vocabulary, and never count either way.
"""

from __future__ import annotations

import json
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.constants import INTENT, TEXT, TEXT_TOKENS
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.persisted import read_persisted
from bot.nlu.tokenizer import POS_TAG_KEY
from bot.nlu.words import is_content

_VOCABULARY_FILE = "vocabulary.json"
UNKNOWN_WORDS_KEY = "unknown_words"


def content_lemmas(tokens: list[Token]) -> list[str]:
    """The lemmas of ``tokens`` that carry meaning: no particles, symbols or numbers."""
    lemmas = []
    for token in tokens:
        lemma = token.lemma or token.text
        if is_content(lemma, token.get(POS_TAG_KEY) or ""):
            lemmas.append(lemma)
    return lemmas


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class UnknownWordsGuard(GraphComponent):
    """Zeroes the intent confidence of messages with no known content word."""

    @classmethod
    def required_components(cls) -> list[type]:
        """It reads tokens; in config.yml it comes after the intent classifier."""
        return [Tokenizer]

    def __init__(
        self,
        model_storage: ModelStorage,
        resource: Resource,
        vocabulary: set[str] | None = None,
    ) -> None:
        """Creates the guard; ``vocabulary`` is empty until trained."""
        self._model_storage = model_storage
        self._resource = resource
        self.vocabulary = vocabulary or set()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> UnknownWordsGuard:
        """Creates an untrained guard."""
        return cls(model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> UnknownWordsGuard:
        """Loads the vocabulary saved by :meth:`train`."""
        words = read_persisted(
            model_storage,
            resource,
            lambda d: json.loads((d / _VOCABULARY_FILE).read_text("utf-8")),
        )
        return cls(model_storage, resource, set(words or []))

    def train(self, training_data: TrainingData) -> Resource:
        """Remembers every content lemma of the training examples."""
        for example in training_data.intent_examples:
            self.vocabulary.update(content_lemmas(example.get(TEXT_TOKENS) or []))
        with self._model_storage.write_to(self._resource) as directory:
            (directory / _VOCABULARY_FILE).write_text(
                json.dumps(sorted(self.vocabulary), ensure_ascii=False), "utf-8"
            )
        return self._resource

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Nothing to add to the training data."""
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Zeroes the confidence of each message that has content words, none known."""
        for message in messages:
            intent = message.get(INTENT)
            if not intent or not self.vocabulary or not message.get(TEXT):
                continue
            lemmas = content_lemmas(message.get(TEXT_TOKENS) or [])
            unknown = bool(lemmas) and not any(lemma in self.vocabulary for lemma in lemmas)
            message.set(UNKNOWN_WORDS_KEY, unknown, add_to_output=True)
            if unknown:
                message.set(INTENT, {**intent, "confidence": 0.0}, add_to_output=True)
        return messages
