import pytest
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.linear_blend import LinearIntentBlend, blend
from bot.nlu.tokenizer import JapaneseTokenizer

TRAINING = {
    "ask_usage_purpose": ["口座情報は何に使われますか", "健診結果の利用目的", "何に使うの"],
    "request_disclosure": ["開示請求をしたいです", "自分の情報を開示して", "レセプトの開示"],
    "greet": ["こんにちは", "おはようございます", "こんばんは"],
}


def tokenized(text: str, intent: str | None = None) -> Message:
    message = Message(data={"text": text, **({"intent": intent} if intent else {})})
    JapaneseTokenizer(JapaneseTokenizer.get_default_config()).process([message])
    return message


@pytest.fixture
def trained(tmp_path) -> LinearIntentBlend:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("linear_blend")
    context = ExecutionContext(graph_schema=None, model_id="test")
    config = LinearIntentBlend.get_default_config()
    component = LinearIntentBlend.create(config, storage, resource, context)
    examples = [tokenized(t, intent) for intent, texts in TRAINING.items() for t in texts]
    component.train(TrainingData(examples))
    return LinearIntentBlend.load(config, storage, resource, context)


def predicted(component: LinearIntentBlend, text: str, diet: dict[str, float]) -> Message:
    message = tokenized(text)
    ranking = [{"name": n, "confidence": c} for n, c in diet.items()]
    message.set("intent", ranking[0])
    message.set("intent_ranking", ranking)
    component.process([message])
    return message


def test_blend_weights_both_and_keeps_labels_only_one_knows():
    assert blend({"a": 0.8, "b": 0.2}, {"b": 1.0}, 0.5) == [("b", 0.6), ("a", 0.4)]


def test_a_diet_mistake_the_linear_model_disagrees_with_is_overruled(trained):
    message = predicted(trained, "開示請求したい", {"greet": 0.55, "request_disclosure": 0.45})
    assert message.get("intent")["name"] == "request_disclosure"
    ranking = message.get("intent_ranking")
    assert ranking[0] == message.get("intent")
    assert sum(entry["confidence"] for entry in ranking) == pytest.approx(1.0)


def test_a_confident_diet_answer_stands(trained):
    message = predicted(trained, "開示請求したい", {"greet": 0.99, "request_disclosure": 0.01})
    assert message.get("intent")["name"] == "greet"


def test_a_message_without_ranking_is_left_alone(trained):
    message = tokenized("こんにちは")
    trained.process([message])
    assert message.get("intent") is None


def test_a_model_trained_without_nlu_data_loads_and_leaves_messages_alone(tmp_path):
    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(graph_schema=None, model_id="test")
    config = LinearIntentBlend.get_default_config()
    untrained = LinearIntentBlend.load(config, storage, Resource("never_written"), context)
    assert untrained.model is None
    message = tokenized("開示請求したい")
    ranking = [
        {"name": "greet", "confidence": 0.6},
        {"name": "request_disclosure", "confidence": 0.4},
    ]
    message.set("intent", ranking[0])
    message.set("intent_ranking", ranking)
    untrained.process([message])
    assert message.get("intent_ranking") == ranking
