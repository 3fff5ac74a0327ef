"""The published policies as passages: each document's own sections and articles.

Each organization's policy ships as published in ``texts/<id>.txt``; ``texts/documents.yml``
says which documents the text holds, where each was published and how it divides (its
「1.」 sections, 「第27条」 articles or the headings a scraped page prints). A
:class:`Passage` is one section's body as printed, line by line (a paragraph, a list
item, a table row), with the label a member finds it under and the document's address.
The organization's profile adds its facts as passages too, each with the intent that
answers it: they carry the members' own words for a topic.

Nothing here rewrites the policy: markup (list bullets, table bars, Markdown headings)
is dropped and lines that a page break cut in two are joined, but every character of
a passage's lines is the published text's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, Union

import yaml
from pydantic import BaseModel, ValidationError

from bot.policy.profiles.schema import Fact, Profile

TEXTS_DIR = Path(__file__).with_name("texts")
DOCUMENTS_FILE = "documents.yml"


class PassageError(Exception):
    """``documents.yml`` or a text does not divide as described."""


@dataclass(frozen=True)
class Passage:
    """One section of a published document, or one fact of the profile.

    Attributes:
        org_id: the organization's profile id.
        document: the title of the published document it belongs to.
        label: the section as printed (「1. 個人情報の利用目的」, 「第27条 開示等の請求等方法」,
            「基本理念」), or "" when the document is one section.
        lines: the body, one printed line (paragraph, list item, table row) each.
        url: where the document was published, if the text says; else None.
        url_note: where ``url`` comes from, or why there is none.
        kind: "text" for the published text, "fact" for a profile fact.
        intent: for a fact, the intent whose answer it is.
        context: words that locate the passage (a chapter title), searched, never quoted.
    """

    org_id: str
    document: str
    label: str
    lines: tuple[str, ...]
    url: str | None
    url_note: str
    kind: Literal["text", "fact"] = "text"
    intent: str | None = None
    context: str = ""

    @property
    def text(self) -> str:
        """The body as one string, a line each."""
        return "\n".join(self.lines)

    @property
    def source(self) -> str:
        """Where it is in the document, as ``answers.citation`` names a source."""
        return self.label

    def citation(self) -> str:
        """The line naming where a quote comes from, in ``answers.citation``'s form."""
        where = f"{self.document} {self.label}" if self.label else self.document
        return f"（出典：{where}）"


# --- documents.yml -----------------------------------------------------------------


class _Spec(BaseModel):
    class Config:
        extra = "forbid"
        allow_mutation = False


class SectionSpec(_Spec):
    """One hand-listed section: its label and where it starts."""

    label: str
    heading: str | None = None
    at: str | None = None


class DocumentSpec(_Spec):
    """One published document in an organization's text."""

    title: str
    begins: str
    url: str | None
    url_note: str
    sections: Union[Literal["numbered", "articles", "whole"], list[SectionSpec]]  # noqa: UP007


class OrganizationSpec(_Spec):
    """How one organization's text divides."""

    documents: list[DocumentSpec]
    drop: list[str] = []
    page_breaks: bool = False


def _specs(texts_dir: Path) -> dict[str, OrganizationSpec]:
    path = texts_dir / DOCUMENTS_FILE
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return {org: OrganizationSpec.parse_obj(spec) for org, spec in raw.items()}
    except (OSError, yaml.YAMLError, ValidationError, AttributeError) as error:
        raise PassageError(f"{path}: {error}") from error


# --- splitting ---------------------------------------------------------------------

_MARKUP = re.compile(r"^(?:#+\s*|[-•]\s+)+")
_ORDERED_MARKER = re.compile(
    r"^\d+\.\s+(?=\d)"
)  # 「1. 1各種…」: the list's number, then the text's
_INLINE_ITEM = re.compile(r"(?<=。)\s*-\s+(?=[(（])")  # 「…利用しません。- (1)…」 on one line
_NUMBERED = re.compile(r"^\d{1,2}\.[ \t]*\S.*$", re.MULTILINE)
_ARTICLE = re.compile(r"^(?:-\s+)?(第\d+条(?:の\d+)?)[ \u3000]", re.MULTILINE)
_SUPPLEMENT = re.compile(r"^附\s*則\s*$", re.MULTILINE)
_CAPTION = re.compile(r"^(?:#+\s*)?[（(]([^（()）]+)[）)]$")
_CHAPTER = re.compile(r"^#+\s*(第\d+章\s+.+)$")
_HIRAGANA = re.compile(r"^[\u3041-\u309f]")
_OPEN = "（(「『【〔［"
_CLOSE = "）)」』】〕］"


def _bracket_depth(text: str) -> int:
    depth = 0
    for char in text:
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE and depth:
            depth -= 1
    return depth


def _continues(previous: str, line: str, page_breaks: bool) -> bool:
    """Whether ``line`` goes on with ``previous``: a line break cut the sentence.

    A line ending in 「、」 or inside brackets always goes on. In a text converted from
    pages (``page_breaks``), so does a line starting with hiragana after one that did
    not end its sentence (「…個人情報」 / 「の適切な取扱いに…」).
    """
    if previous.endswith("、") or _bracket_depth(previous) > 0:
        return True
    return page_breaks and not previous.endswith("。") and bool(_HIRAGANA.match(line))


def _clean(raw: str) -> str:
    line = _MARKUP.sub("", raw.strip())
    line = _ORDERED_MARKER.sub("", line)
    if "|" in line:  # a table row: its cells, without the bars
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        cells = [cell for cell in cells if cell.strip("-: ")]
        line = "\u3000".join(cells)
    line = line.replace("\t", "\u3000")
    return re.sub(r"[ ]{2,}", " ", line).strip()


def body_lines(body: str, drop: Sequence[str] = (), page_breaks: bool = False) -> tuple[str, ...]:
    """The printed lines of a section's body, without markup, cut lines joined."""
    lines: list[str] = []
    for raw in _INLINE_ITEM.sub("\n- ", body).splitlines():
        line = _clean(raw)
        if not line or line in drop:
            continue
        if lines and _continues(lines[-1], line, page_breaks):
            lines[-1] += line
        else:
            lines.append(line)
    return tuple(lines)


def _line_spans(text: str) -> Iterator[tuple[int, int, str]]:
    start = 0
    for line in text.splitlines(keepends=True):
        yield start, start + len(line), line.strip()
        start += len(line)


def _document_spans(text: str, documents: Sequence[DocumentSpec]) -> list[tuple[int, int]]:
    """Where each document's content starts (after its title line) and ends."""
    starts: list[tuple[int, int]] = []
    cursor = 0
    for document in documents:
        found = next(
            (
                (line_start, line_end)
                for line_start, line_end, line in _line_spans(text)
                if line_start >= cursor and _MARKUP.sub("", line) == document.begins
            ),
            None,
        )
        if found is None:
            raise PassageError(f"document {document.title!r}: no line {document.begins!r}")
        starts.append(found)
        cursor = found[1]
    ends = [line_start for line_start, _ in starts[1:]] + [len(text)]
    return [(content_start, end) for (_, content_start), end in zip(starts, ends, strict=True)]


def _listed(text: str, sections: Sequence[SectionSpec]) -> list[tuple[str, str, str]]:
    bounds: list[tuple[str, int, int]] = []  # label, where it starts, where its body starts
    cursor = 0
    for section in sections:
        marker = section.heading if section.heading is not None else section.at
        if not marker:
            raise PassageError(f"section {section.label!r}: give heading or at")
        where = text.find(marker, cursor)
        if where < 0:
            raise PassageError(f"section {section.label!r}: {marker!r} not found")
        body_start = where + len(marker) if section.heading is not None else where
        bounds.append((section.label, where, body_start))
        cursor = body_start
    ends = [start for _, start, _ in bounds[1:]] + [len(text)]
    return [(label, text[body:end], "") for (label, _, body), end in zip(bounds, ends, strict=True)]


def _numbered(text: str) -> list[tuple[str, str, str]]:
    headings = list(_NUMBERED.finditer(text))
    ends = [match.start() for match in headings[1:]] + [len(text)]
    return [
        (" ".join(match.group(0).split()), text[match.end() : end], "")
        for match, end in zip(headings, ends, strict=True)
    ]


def _articles(text: str) -> list[tuple[str, str, str]]:
    """Articles with their captions and chapters, then the 附則 as one section."""
    supplement = _SUPPLEMENT.search(text)
    main = text[: supplement.start()] if supplement else text
    starts = list(_ARTICLE.finditer(main))
    sections: list[tuple[str, str, str]] = []
    chapter = ""
    for index, match in enumerate(starts):
        before = main[starts[index - 1].end() if index else 0 : match.start()]
        caption = ""
        for line in (line.strip() for line in before.splitlines()):
            if chapter_match := _CHAPTER.match(line):
                chapter = chapter_match.group(1)
            elif caption_match := _CAPTION.match(line):
                caption = caption_match.group(1)
        end = starts[index + 1].start() if index + 1 < len(starts) else len(main)
        label = f"{match.group(1)} {caption}".strip()
        sections.append((label, _without_trailing_captions(main[match.end() : end]), chapter))
    if supplement:
        sections.append(("附則", _SUPPLEMENT.sub("", text[supplement.start() :]), ""))
    return sections


def _without_trailing_captions(body: str) -> str:
    """An article's body without the next article's caption and chapter lines."""
    lines = body.splitlines()
    while lines and (
        not lines[-1].strip()
        or _CAPTION.match(lines[-1].strip())
        or _CHAPTER.match(lines[-1].strip())
    ):
        lines.pop()
    return "\n".join(lines)


def _sections(text: str, document: DocumentSpec) -> list[tuple[str, str, str]]:
    if document.sections == "whole":
        return [("", text, "")]
    if document.sections == "numbered":
        return _numbered(text)
    if document.sections == "articles":
        return _articles(text)
    return _listed(text, document.sections)


@cache
def text_passages(org_id: str, texts_dir: Path = TEXTS_DIR) -> tuple[Passage, ...]:
    """The sections of ``org_id``'s published text, in order; none without a text.

    Raises:
        PassageError: the text does not divide as ``documents.yml`` says.
    """
    specs = _specs(texts_dir)
    spec = specs.get(org_id)
    path = texts_dir / f"{org_id}.txt"
    if spec is None or not path.is_file():
        return ()
    text = path.read_text(encoding="utf-8")
    passages: list[Passage] = []
    for document, (start, end) in zip(
        spec.documents, _document_spans(text, spec.documents), strict=True
    ):
        for label, body, context in _sections(text[start:end], document):
            lines = body_lines(body, spec.drop, spec.page_breaks)
            if lines:
                passages.append(
                    Passage(
                        org_id=org_id,
                        document=document.title,
                        label=label,
                        lines=lines,
                        url=document.url,
                        url_note=document.url_note,
                        context=context,
                    )
                )
    return tuple(passages)


# --- the profile's facts -------------------------------------------------------------

# The fact keys of the profile whose answer is not the plain ``ask_<key>`` intent.
_FACT_INTENTS = {
    "security_measures": "ask_security_measures",
    "third_party_provision": "ask_third_party_provision",
    "outsourcing": "ask_outsourcing",
    "sensitive_data": "ask_sensitive_data",
    "my_number": "ask_my_number",
    "request_procedure": "ask_request_procedure",
    "agents": "ask_agent_request",
    "identity_documents": "ask_identity_documents",
    "complaints": "ask_complaint",
    "email_fax": "ask_email_fax",
    "household_mailing": "ask_household_mailing",
    "employer_sharing": "ask_employer_sharing",
    "anonymized_data": "ask_anonymized_data",
    "breach_response": "ask_data_breach",
    "retention": "ask_retention",
    "foreign_transfer": "ask_foreign_transfer",
}


def fact_passages(profile: Profile) -> tuple[Passage, ...]:
    """The profile's facts as passages, each with the intent that answers it."""
    first = next(iter(text_passages(profile.id)), None)
    url = first.url if first else None
    note = first.url_note if first else "公表されている方針の本文がない。"

    def passage(intent: str, source: str, lines: Sequence[str]) -> Passage:
        return Passage(
            org_id=profile.id,
            document=profile.policy_title,
            label=source,
            lines=tuple(line for line in lines if line),
            url=url,
            url_note=note,
            kind="fact",
            intent=intent,
        )

    def fact(intent: str, item: Fact) -> Passage:
        return passage(intent, item.source, [item.summary, *item.details])

    found = [fact("ask_usage_purpose", profile.usage_purposes)]
    found.extend(
        passage("ask_usage_purpose", profile.usage_purposes.source, [row.label, *row.purposes])
        for row in profile.usage_purposes.categories
    )
    for key, intent in _FACT_INTENTS.items():
        item = getattr(profile.facts, key)
        if item is not None:
            found.append(fact(intent, item))
    window = profile.contact
    found.append(
        passage(
            "ask_contact",
            window.source,
            [window.name, window.department or "", window.phone or "", window.hours or ""],
        )
    )
    found.extend(
        passage("ask_joint_use", entry.source, [entry.partner, entry.purpose, entry.items])
        for entry in profile.joint_use
    )
    if profile.joint_use_note:
        found.append(fact("ask_joint_use", profile.joint_use_note))
    if profile.fees:
        found.append(fact("ask_fee", profile.fees))
    if profile.processing_time:
        found.append(fact("ask_processing_time", profile.processing_time))
    found.extend(
        fact("ask_organization", item)
        for item in (profile.address, profile.representative, profile.organization_rule)
        if item is not None
    )
    return tuple(found)


def passages(profile: Profile, texts_dir: Path = TEXTS_DIR) -> tuple[Passage, ...]:
    """Everything searchable for ``profile``'s organization: its text, then its facts."""
    return (*text_passages(profile.id, texts_dir), *fact_passages(profile))
