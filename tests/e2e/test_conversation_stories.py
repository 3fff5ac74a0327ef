"""Replay the conversation tests' user turns on the running servers.

`rasa test core` (make stories) checks the dialogue; every question there is answered by
the same action, so it cannot tell one intent from another. Here each user turn is
parsed by the trained model and answered through the REST channel: the intent and the
entities must be the ones the story names, and the answer must be sourced.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
import yaml

from bot.policy.answers import contact_line
from bot.policy.profiles.loader import load_profile
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\{(?P<json>[^}]+)\}|\((?P<name>[^)]+)\))")


def user_turns():
    stories = yaml.safe_load((ROOT / "tests" / "stories" / "test_conversations.yml").read_text())
    for story in stories["stories"]:
        for step in story["steps"]:
            if "user" in step:
                yield pytest.param(step["user"].strip(), step["intent"], id=story["story"])


def plain_text_and_entities(annotated: str) -> tuple[str, list[tuple[str, str]]]:
    entities = []
    for match in ANNOTATION.finditer(annotated):
        if match["json"]:
            spec = json.loads("{" + match["json"] + "}")
            entities.append((spec["entity"], spec.get("value", match["text"])))
        else:
            entities.append((match["name"], match["text"]))
    return ANNOTATION.sub(lambda m: m["text"], annotated), entities


@pytest.mark.parametrize(("annotated", "intent"), list(user_turns()))
def test_each_story_turn_is_understood_and_answered(assistant, say, annotated, intent):
    text, entities = plain_text_and_entities(annotated)
    parsed = requests.post(
        f"{assistant.rasa_url}/model/parse",
        params={"token": assistant.token},
        json={"text": text},
        timeout=30,
    ).json()
    assert parsed["intent"]["name"] == intent, parsed["intent_ranking"][:3]
    found = {(e["entity"], e["value"]) for e in parsed["entities"]}
    assert set(entities) <= found

    body = "\n".join(m.get("text", "") for m in say(text))
    assert body.strip()
    profile = load_profile("kokusai-kogyo-kenpo")
    if intent in ("ask_my_data", "check_case_status", "cancel_case"):
        assert "本人確認" in body  # own data and own cases: verification first
    elif intent.startswith("request_"):
        # A request the policy offers starts with verification; any other names the window.
        assert "本人確認" in body or contact_line(profile) in body
    elif intent.startswith("ask_"):
        assert "出典：" in body or contact_line(profile) in body
