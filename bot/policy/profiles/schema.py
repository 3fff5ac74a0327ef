"""The shape of an organization profile, checked when a profile is loaded.

A profile holds only what the organization's published policy says, each fact with
the section it comes from. Optional fields are optional because some policies do not
say them; an absent fact makes the assistant say it cannot confirm it, never guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field, root_validator, validator

from bot.policy.profiles.topics import TOPIC_IDS

REQUEST_TYPES = (
    "purpose_notice",
    "disclosure",
    "third_party_record_disclosure",
    "receipt_disclosure",
    "correction",
    "suspension",
    "third_party_stop",
    "mailing_opt_out",
)

# The questions a profile can answer with a plain fact; each ``ask_*`` intent that
# is not built from structured data below maps to one of these keys.
FACT_KEYS = (
    "security_measures",
    "third_party_provision",
    "outsourcing",
    "sensitive_data",
    "my_number",
    "request_procedure",
    "agents",
    "identity_documents",
    "complaints",
    "email_fax",
    "household_mailing",
    "employer_sharing",
    "anonymized_data",
    "breach_response",
    "retention",
    "foreign_transfer",
)


# A document key: what a source writes before its colon to cite one of ``documents``.
DOCUMENT_KEY = re.compile(r"[a-z][a-z0-9_]*")


def source_parts(source: str) -> list[tuple[str | None, str]]:
    """The parts of a ``source``: ``(document key or None for policy_title, section)``.

    A source is one part or several separated by ``;``; a part is a section as printed
    (``"2."``), or a document key, a colon and a section (``"consent:"`` cites the
    whole document, ``"health:申込み"`` its section).
    """
    parts: list[tuple[str | None, str]] = []
    for part in source.split(";"):
        key, colon, section = part.strip().partition(":")
        if colon and DOCUMENT_KEY.fullmatch(key.strip()):
            parts.append((key.strip(), section.strip()))
        else:
            parts.append((None, part.strip()))
    return parts


def iter_sources(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``source`` in a parsed profile (or part of one), with its field path."""
    if isinstance(value, BaseModel):
        for name, item in value:
            where = f"{path}.{name}" if path else name
            if name == "source" and isinstance(item, str):
                yield where, item
            else:
                yield from iter_sources(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_sources(item, f"{path}.{index}")


class _Strict(BaseModel):
    class Config:
        extra = "forbid"
        allow_mutation = False


class Fact(_Strict):
    """One thing the policy says, in polite member-facing Japanese, with its source."""

    summary: str = Field(..., min_length=1)
    details: list[str] = []
    source: str = Field(..., min_length=1)


class Contact(_Strict):
    """The window members contact; fields the policy does not publish stay empty."""

    name: str
    department: str | None = None
    phone: str | None = None
    phone_note: str | None = None
    fax: str | None = None
    email: str | None = None
    url: str | None = None
    address: str | None = None
    hours: str | None = None
    source: str


class UsageCategory(_Strict):
    """One row of the usage-purpose table: a kind of information and its purposes."""

    label: str
    topics: list[str] = []
    purposes: list[str] = Field(..., min_items=1)

    @validator("topics", each_item=True)
    def _known_topic(cls, topic: str) -> str:  # noqa: N805 - pydantic validator
        if topic not in TOPIC_IDS:
            raise ValueError(f"unknown topic {topic!r}; known: {sorted(TOPIC_IDS)}")
        return topic


class UsagePurposes(Fact):
    """The usage-purpose table with a row per kind of information."""

    categories: list[UsageCategory] = []


class JointUse(_Strict):
    """One joint-use arrangement (共同利用) as the policy publishes it."""

    partner: str
    purpose: str
    items: str
    handlers: str | None = None
    manager: str | None = None
    source: str


class Fees(Fact):
    """Request fees. ``policy`` says how the amount is set; never a made-up figure."""

    policy: Literal["free", "fixed", "detailed_rules"]
    amount_yen: int | None = Field(None, ge=0)
    applies_to: list[Literal[REQUEST_TYPES]] = []  # type: ignore[valid-type]

    @root_validator(skip_on_failure=True)
    def _amount_matches_policy(cls, values: dict) -> dict:  # noqa: N805
        fixed = values.get("policy") == "fixed"
        if fixed != (values.get("amount_yen") is not None):
            raise ValueError("amount_yen is set exactly when policy is 'fixed'")
        return values


class ProcessingTime(Fact):
    """How long a request takes and how far it may be extended, in days.

    ``starts`` says what starts the period: the request itself, or (as where the
    policy counts from the day the request form and its documents are submitted) the
    documents, in which case a case waits for them before it gets a due date.
    ``longer_extension`` is set where the policy allows a longer, unspecified extension
    (「相当の期間」) beyond ``extension_days`` for especially heavy requests.
    """

    days: int | None = Field(None, gt=0)
    extension_days: int | None = Field(None, gt=0)
    starts: Literal["request", "documents"] = "request"
    longer_extension: bool = False


class Requests(_Strict):
    """Which formal requests the organization accepts, and how they are made.

    ``submission`` is what the policy says about where and how a request is made;
    absent, the member is told to ask the contact window. ``notes`` holds what the
    policy says about one request type (e.g. data a legal duty keeps from erasure),
    keyed by the request type.
    """

    types: list[Literal[REQUEST_TYPES]] = Field(..., min_items=1)  # type: ignore[valid-type]
    source: str
    submission: Fact | None = None
    notes: dict[Literal[REQUEST_TYPES], Fact] = {}  # type: ignore[valid-type]


class IdentifierPart(_Strict):
    """One labelled number of a member identifier, e.g. 記号 or 番号."""

    label: str = Field(..., min_length=1)
    max_digits: int = Field(..., gt=0, le=16)


class MemberIdentifier(_Strict):
    """What identifies a member of this organization in identity verification.

    Not a fact of the published policy but the organization's own set-up (which card
    or certificate its members hold): the assistant asks for it and never cites it.
    ``parts`` are read in order from the member's message: one number, or two (e.g.
    記号 and 番号). The record labels name the dates and family members as this
    organization calls them; ``dependants`` is absent where it has none.
    """

    label: str = Field(..., min_length=1)
    printed_on: str = Field(..., min_length=1)
    parts: list[IdentifierPart] = Field(..., min_items=1, max_items=2)
    example: str = Field(..., min_length=1)
    joined_label: str = "資格取得日"
    left_label: str = "資格喪失日"
    dependants_label: str | None = "被扶養者"


class Facts(_Strict):
    """Plain facts, one per kind of question; absent when the policy is silent."""

    security_measures: Fact | None = None
    third_party_provision: Fact | None = None
    outsourcing: Fact | None = None
    sensitive_data: Fact | None = None
    my_number: Fact | None = None
    request_procedure: Fact | None = None
    agents: Fact | None = None
    identity_documents: Fact | None = None
    complaints: Fact | None = None
    email_fax: Fact | None = None
    household_mailing: Fact | None = None
    employer_sharing: Fact | None = None
    anonymized_data: Fact | None = None
    breach_response: Fact | None = None
    retention: Fact | None = None
    foreign_transfer: Fact | None = None


class Profile(_Strict):
    """Everything the assistant may say about one organization."""

    id: str = Field(..., regex=r"^[a-z0-9-]+$")
    name: str
    kind: Literal["kenpo", "kyosai"]
    policy_title: str
    # The other documents the policy text publishes, by a short key a source cites them
    # with (see ``source_parts``); a source without a key cites ``policy_title``.
    documents: dict[str, str] = {}
    address: Fact | None = None
    representative: Fact | None = None
    # What the policy itself says about making the name, address and representative
    # known, when it does not print them (osaka 第21条).
    organization_rule: Fact | None = None
    contact: Contact
    member_identifier: MemberIdentifier
    usage_purposes: UsagePurposes
    facts: Facts = Facts()
    joint_use: list[JointUse] = []
    joint_use_note: Fact | None = None
    fees: Fees | None = None
    processing_time: ProcessingTime | None = None
    requests: Requests | None = None

    @validator("documents")
    def _document_keys(cls, documents: dict[str, str]) -> dict[str, str]:  # noqa: N805
        for key, title in documents.items():
            if not DOCUMENT_KEY.fullmatch(key):
                raise ValueError(f"document key {key!r} must be lower-case letters, digits, _")
            if not title.strip():
                raise ValueError(f"document {key!r} needs its title")
        return documents

    @root_validator(skip_on_failure=True)
    def _sources_cite_known_documents(cls, values: dict) -> dict:  # noqa: N805
        known = values.get("documents", {})
        errors = []
        for name, value in values.items():
            for where, source in iter_sources(value, name):
                for key, _section in source_parts(source):
                    if key is not None and key not in known:
                        listed = ", ".join(sorted(known)) or "none; add it under documents"
                        errors.append(f"{where}: unknown document key {key!r} (known: {listed})")
        if errors:
            raise ValueError("; ".join(errors))
        return values
