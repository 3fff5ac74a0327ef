"""Checks of the NLU training data (data/*.yml), the held-out set
(bench/data/nlu_holdout.yml), both read with Rasa's own loader, and of the texts of the
members' words development set (bench/data/members_words.yml), never trained on."""

from __future__ import annotations

import difflib
import unicodedata
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from rasa.shared.nlu.training_data.loading import load_data
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bench.members_words import DEV_SET, load_items
from bench.nlu import nlu_files
from bot.nlu.tokenizer import japanese_tokens
from bot.policy.profiles.topics import TOPIC_IDS
from tests.conftest import ROOT

TRAINING_FILE = ROOT / "data"  # every NLU file in it: nlu.yml, nlu_identity.yml
HOLDOUT_FILE = ROOT / "bench" / "data" / "nlu_holdout.yml"

# The intents the stories, rules and domain are written against.
CONTRACT_INTENTS = frozenset(
    {
        "greet",
        "goodbye",
        "thank",
        "affirm",
        "deny",
        "bot_challenge",
        "request_human",
        "out_of_scope",
        "inform",
        "ask_usage_purpose",
        "ask_security_measures",
        "ask_third_party_provision",
        "ask_joint_use",
        "ask_outsourcing",
        "ask_sensitive_data",
        "ask_my_number",
        "ask_request_procedure",
        "ask_fee",
        "ask_processing_time",
        "ask_agent_request",
        "ask_identity_documents",
        "ask_contact",
        "ask_complaint",
        "ask_email_fax",
        "ask_household_mailing",
        "ask_employer_sharing",
        "ask_anonymized_data",
        "ask_data_breach",
        "request_disclosure",
        "request_correction",
        "request_suspension",
        "request_third_party_stop",
        "request_purpose_notice",
        "request_mailing_opt_out",
        "ask_my_data",
        "check_case_status",
        "cancel_case",
    }
)

# Intents in the data beyond the contract, each with a one-line reason.
EXTRA_INTENTS: dict[str, str] = {
    "ask_retention": "how long data is kept, when it is erased (often asked by members)",
    "ask_foreign_transfer": "whether data is handled abroad or sent to a foreign party",
    "ask_organization": "the organization's address and representative (法32条1項1号)",
    "stop": "「やめる」: ends the identity verification form",
    "resend_code": "asks for a new one-time code during verification",
    "ask_other_person_data": "asks for someone else's data: refused, even for family",
}

ENTITY_NAMES = frozenset(
    {"info_category", "member_id", "birth_date", "person_name", "phone_number", "case_id"}
)

MIN_TRAINING_EXAMPLES = 20
HOLDOUT_MIN, HOLDOUT_MAX = 8, 10
# Share of ask_usage_purpose examples that must name a kind of information.
MIN_USAGE_PURPOSE_ANNOTATED = 0.6
# Two texts at least this similar (after normalization) count as near-identical.
NEAR_DUPLICATE_RATIO = 0.85


@cache
def _load(path: Path) -> TrainingData:
    files = nlu_files(path)
    assert files, f"no NLU data in {path}"
    return TrainingData().merge(*(load_data(str(file)) for file in files))


@pytest.fixture(scope="module")
def training() -> TrainingData:
    return _load(TRAINING_FILE)


@pytest.fixture(scope="module")
def holdout() -> TrainingData:
    return _load(HOLDOUT_FILE)


@pytest.fixture(scope="module", params=["training", "holdout"])
def dataset(request: pytest.FixtureRequest) -> TrainingData:
    return _load(TRAINING_FILE if request.param == "training" else HOLDOUT_FILE)


def _examples(data: TrainingData) -> list[Message]:
    return [m for m in data.training_examples if m.get("intent")]


def _intent_counts(data: TrainingData) -> Counter[str]:
    return Counter(m.get("intent") for m in _examples(data))


def comparable(text: str) -> str:
    """NFKC, lower case, no punctuation, symbols, spaces or control characters."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in folded if unicodedata.category(c)[0] not in "PSZC")


def _resolve(value: str, synonyms: dict[str, str]) -> str:
    return synonyms.get(value, synonyms.get(value.lower(), value))


# --- intents -------------------------------------------------------------------------


def test_extra_intents_have_a_one_line_reason() -> None:
    for intent, reason in EXTRA_INTENTS.items():
        assert intent not in CONTRACT_INTENTS, intent
        assert reason.strip() and "\n" not in reason, intent


def test_every_contract_intent_has_enough_training_examples(training: TrainingData) -> None:
    counts = _intent_counts(training)
    short = {
        i: counts.get(i, 0) for i in CONTRACT_INTENTS if counts.get(i, 0) < MIN_TRAINING_EXAMPLES
    }
    assert not short, f"intents with fewer than {MIN_TRAINING_EXAMPLES} examples: {short}"


def test_no_intent_outside_the_contract(dataset: TrainingData) -> None:
    unknown = set(_intent_counts(dataset)) - CONTRACT_INTENTS - set(EXTRA_INTENTS)
    assert not unknown, f"intents outside the contract: {sorted(unknown)}"


def test_no_text_belongs_to_two_training_intents(training: TrainingData) -> None:
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for message in _examples(training):
        key = comparable(message.get("text"))
        if key in seen and seen[key][0] != message.get("intent"):
            clashes.append((seen[key], (message.get("intent"), message.get("text"))))
        seen.setdefault(key, (message.get("intent"), message.get("text")))
    assert not clashes, clashes


# --- entities ------------------------------------------------------------------------


def test_entity_names_are_known(dataset: TrainingData) -> None:
    unknown = {
        (e["entity"], m.get("text"))
        for m in _examples(dataset)
        for e in m.get("entities") or []
        if e["entity"] not in ENTITY_NAMES
    }
    assert not unknown, unknown


def test_entities_start_and_end_on_token_boundaries(dataset: TrainingData) -> None:
    misaligned = []
    for message in _examples(dataset):
        text = message.get("text")
        entities = message.get("entities") or []
        if not entities:
            continue
        tokens = japanese_tokens(text)
        starts = {t.start for t in tokens}
        ends = {t.end for t in tokens}
        for entity in entities:
            start, end = entity["start"], entity["end"]
            if start not in starts or end not in ends or not text[start:end].strip():
                misaligned.append(
                    (text, entity["entity"], text[start:end], "|".join(t.text for t in tokens))
                )
    assert not misaligned, "\n".join(map(str, misaligned))


def test_synonyms_map_to_topic_ids(training: TrainingData) -> None:
    bad = {k: v for k, v in training.entity_synonyms.items() if v not in TOPIC_IDS}
    assert not bad, bad


def test_info_category_values_are_topic_ids(training: TrainingData, dataset: TrainingData) -> None:
    synonyms = {**dataset.entity_synonyms, **training.entity_synonyms}
    bad = []
    for message in _examples(dataset):
        for entity in message.get("entities") or []:
            if entity["entity"] != "info_category":
                continue
            value = _resolve(str(entity["value"]), synonyms)
            if value not in TOPIC_IDS:
                bad.append((message.get("text"), entity["value"], value))
    assert not bad, "\n".join(map(str, bad))


def test_usage_purpose_examples_mostly_name_a_kind_of_information(training: TrainingData) -> None:
    examples = [m for m in _examples(training) if m.get("intent") == "ask_usage_purpose"]
    annotated = [
        m for m in examples if any(e["entity"] == "info_category" for e in m.get("entities") or [])
    ]
    assert len(annotated) >= MIN_USAGE_PURPOSE_ANNOTATED * len(examples), (
        len(annotated),
        len(examples),
    )


def test_value_entities_appear_in_inform(training: TrainingData) -> None:
    in_inform = {
        e["entity"]
        for m in _examples(training)
        if m.get("intent") == "inform"
        for e in m.get("entities") or []
    }
    assert {"member_id", "birth_date", "person_name", "phone_number", "case_id"} <= in_inform


# --- holdout -------------------------------------------------------------------------


def test_holdout_covers_every_intent(holdout: TrainingData) -> None:
    counts = _intent_counts(holdout)
    wrong = {
        i: counts.get(i, 0)
        for i in CONTRACT_INTENTS | set(EXTRA_INTENTS)
        if not HOLDOUT_MIN <= counts.get(i, 0) <= HOLDOUT_MAX
    }
    assert not wrong, f"holdout intents outside {HOLDOUT_MIN}-{HOLDOUT_MAX} examples: {wrong}"


def test_holdout_shares_no_text_with_training(
    training: TrainingData, holdout: TrainingData
) -> None:
    train_texts = {comparable(m.get("text")) for m in _examples(training)}
    shared = [m.get("text") for m in _examples(holdout) if comparable(m.get("text")) in train_texts]
    assert not shared, f"holdout texts also in training: {shared}"


def _near_duplicates(texts: list[str], training: TrainingData) -> list[tuple[str, str]]:
    """Each of ``texts`` with a training text at least NEAR_DUPLICATE_RATIO similar."""
    train_texts = sorted({comparable(m.get("text")) for m in _examples(training)})
    near = []
    for original in texts:
        text = comparable(original)
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(text)
        for other in train_texts:
            matcher.set_seq1(other)
            if (
                matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO
                and matcher.quick_ratio() >= NEAR_DUPLICATE_RATIO
                and matcher.ratio() >= NEAR_DUPLICATE_RATIO
            ):
                near.append((original, other))
    return near


def test_holdout_has_no_near_duplicate_of_training(
    training: TrainingData, holdout: TrainingData
) -> None:
    near = _near_duplicates([m.get("text") for m in _examples(holdout)], training)
    assert not near, "\n".join(map(str, near))


def test_holdout_texts_are_unique(holdout: TrainingData) -> None:
    counts = Counter(comparable(m.get("text")) for m in _examples(holdout))
    assert not [t for t, n in counts.items() if n > 1]


# --- members' words development set (bench/data/members_words.yml) --------------------


@pytest.fixture(scope="module")
def dev_texts() -> list[str]:
    return [item.text for item in load_items(DEV_SET)]


def test_dev_set_shares_no_text_with_training(training: TrainingData, dev_texts: list[str]) -> None:
    train_texts = {comparable(m.get("text")) for m in _examples(training)}
    shared = [text for text in dev_texts if comparable(text) in train_texts]
    assert not shared, f"members' words dev texts also in training: {shared}"


def test_dev_set_has_no_near_duplicate_of_training(
    training: TrainingData, dev_texts: list[str]
) -> None:
    near = _near_duplicates(dev_texts, training)
    assert not near, "\n".join(map(str, near))


def test_dev_set_texts_are_unique(dev_texts: list[str]) -> None:
    counts = Counter(comparable(text) for text in dev_texts)
    assert not [t for t, n in counts.items() if n > 1]


def test_the_domain_declares_exactly_the_trained_intents(training: TrainingData) -> None:
    import yaml

    from tests.conftest import ROOT

    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert set(domain["intents"]) == set(_intent_counts(training))
