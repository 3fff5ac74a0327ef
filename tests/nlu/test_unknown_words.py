from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.tokenizer import JapaneseTokenizer, japanese_tokens
from bot.nlu.unknown_words import UnknownWordsGuard, content_lemmas

TRAINING = ["口座情報は何に使われますか", "こんにちは", "開示請求をしたいです"]


def tokenized(text: str, intent: str | None = None) -> Message:
    message = Message(data={"text": text, **({"intent": intent} if intent else {})})
    JapaneseTokenizer(JapaneseTokenizer.get_default_config()).process([message])
    return message


def trained_guard(tmp_path) -> UnknownWordsGuard:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("unknown_words_guard")
    context = ExecutionContext(graph_schema=None, model_id="test")
    guard = UnknownWordsGuard.create({}, storage, resource, context)
    guard.train(TrainingData([tokenized(t, "some_intent") for t in TRAINING]))
    return UnknownWordsGuard.load({}, storage, resource, context)


def predicted(guard: UnknownWordsGuard, text: str) -> Message:
    message = tokenized(text)
    message.set("intent", {"name": "request_disclosure", "confidence": 0.82})
    guard.process([message])
    return message


def test_particles_symbols_and_numbers_are_not_vocabulary():
    assert content_lemmas(japanese_tokens("口座は１００１です！😀")) == ["口座"]


def test_lone_kana_are_not_words():
    assert content_lemmas(japanese_tokens("ぱぴぷぺぽ")) == ["ぽい"]
    assert content_lemmas(japanese_tokens("妻の情報")) == ["妻", "情報"]


def test_the_vocabulary_survives_persisting_and_loading(tmp_path):
    guard = trained_guard(tmp_path)
    assert {"口座", "使う", "開示", "請求"} <= guard.vocabulary


def test_a_message_of_unknown_words_loses_its_confidence(tmp_path):
    guard = trained_guard(tmp_path)
    for text in ["ぱぴぷぺぽ", "asdfgh", "ほげほげ"]:
        message = predicted(guard, text)
        assert message.get("intent")["confidence"] == 0.0, text
        assert message.get("intent")["name"] == "request_disclosure"


def test_one_known_word_is_enough_to_keep_the_prediction(tmp_path):
    guard = trained_guard(tmp_path)
    for text in ["ぱぴぷぺぽの開示", "口座ってなに", "使われ方"]:
        assert predicted(guard, text).get("intent")["confidence"] == 0.82, text


def test_numbers_and_emoji_alone_are_left_to_the_classifier(tmp_path):
    guard = trained_guard(tmp_path)
    for text in ["１００１－２３", "😀😀😀", "19850401"]:
        assert predicted(guard, text).get("intent")["confidence"] == 0.82, text
