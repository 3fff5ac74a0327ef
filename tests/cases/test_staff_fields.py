"""The masked fields of a case, revealed one at a time (:func:`case_field_value`)."""

from __future__ import annotations

import pytest

from bot.cases.staff import MASKED_FIELDS, case_field_value
from bot.cases.types import CaseType, RequesterRole


def test_each_masked_field_has_its_clear_value(desk):
    number = desk.open(
        kind=CaseType.CORRECTION,
        wrong_text="旧住所は大阪市北区梅田九丁目",
        right_text="新住所は大阪市中央区難波八丁目",
        scope=["住所"],
    ).case_number
    values = desk.run(
        lambda session: {field: case_field_value(session, number, field) for field in MASKED_FIELDS}
    )
    assert {field: found.value for field, found in values.items()} == {
        "requester_name": "山田 太郎",
        "subject_name": "山田 太郎",
        "agent_name": "",
        "agent_contact": "",
        "wrong_text": "旧住所は大阪市北区梅田九丁目",
        "right_text": "新住所は大阪市中央区難波八丁目",
    }
    assert {(found.case_number, found.subject_member_id) for found in values.values()} == {
        (number, desk.taro)
    }


def test_a_guardian_and_the_dependant_are_named_apart(desk):
    number = desk.open(subject_member_id=desk.hanako, role=RequesterRole.LEGAL_GUARDIAN).case_number
    requester, subject = desk.run(
        lambda session: [
            case_field_value(session, number, field) for field in ("requester_name", "subject_name")
        ]
    )
    assert (requester.value, subject.value) == ("山田 太郎", "山田 花子")
    assert subject.subject_member_id == desk.hanako


def test_an_agents_name_and_contact_are_the_cases_own(desk):
    number = desk.open(
        role=RequesterRole.APPOINTED_AGENT, agent_name="弁護士 甲", agent_contact="06-0000-0000"
    ).case_number
    name, contact = desk.run(
        lambda session: [
            case_field_value(session, number, field) for field in ("agent_name", "agent_contact")
        ]
    )
    assert (name.value, contact.value) == ("弁護士 甲", "06-0000-0000")


def test_no_case_gives_none_and_an_unmasked_field_is_refused(desk):
    assert (
        desk.run(lambda session: case_field_value(session, "PR-2025-999999", "agent_name")) is None
    )
    with pytest.raises(ValueError):
        desk.run(lambda session: case_field_value(session, "PR-2025-999999", "phone"))
