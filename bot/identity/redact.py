"""Masking of personal values in free text, and a logging filter that applies it.

Members type their birth date, phone and 記号・番号 into the chat, and any of it can
reach a log line (a message echoed in a debug line, an exception text). :func:`redact`
masks everything that looks like one of those values; :func:`install_redaction` makes
every log handler see records only after masking.

Redaction errs on the side of masking: a version number like ``3.10.2`` may be masked as
a date, but a birth date in any spelling the parsers accept is never left in clear.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from phonenumbers import Leniency, PhoneNumberMatcher

from bot.core.text import normalize_with_spans
from bot.identity.parsing.chars import DASHES, KANJI_NUMERALS
from bot.identity.parsing.dates import DATE_PATTERN
from bot.identity.parsing.eras import ERA_LETTERS, ERA_SPELLINGS

DATE_MASK = "[日付]"
PHONE_MASK = "[電話]"
NUMBER_MASK = "[番号]"
# What a log record says when it could not be redacted: better no message than one
# that might hold a personal value.
UNREDACTABLE_MESSAGE = "[ログの内容を伏せました]"

# An era year alone (昭和60年, H1年) is half a birth date.
_ERA_YEAR = re.compile(
    rf"(?:{ERA_SPELLINGS}|(?<![A-Za-z])[{ERA_LETTERS}{ERA_LETTERS.lower()}])\s{{0,2}}"
    rf"(?:元|[0-9]{{1,2}}|[{KANJI_NUMERALS}]{{1,3}})\s{{0,2}}年"
)
# 記号1001, 番号は23: only the digits are masked, the label stays readable.
_LABELLED_NUMBER = re.compile(r"(?:記号|番号)[^0-9記番号]{0,6}([0-9]+)")
# 1001-23, 1001の23, 1001番の23, 1001 23. Unbounded digit runs are safe: the
# lookbehind stops a match from starting inside a run, so the scan stays linear.
_NUMBER_PAIR = re.compile(rf"(?<![0-9])[0-9]+\s{{0,2}}(?:[{DASHES}]|番?の|\s)\s{{0,2}}[0-9]+")
_LONG_DIGIT_RUN = re.compile(r"[0-9]{4,}")
_DIGIT = re.compile(f"[0-9{KANJI_NUMERALS}]")
# The product's own identifiers, not personal values: case numbers (PR-2026-000123),
# 32-digit hex ids (drafts) and 12-digit hex hashes (senders in channel logs), the hex
# ones only with a letter in them, so that no run of plain digits slips through.
_OWN_IDENTIFIERS = re.compile(
    r"(?<![0-9A-Za-z])(?:PR-[0-9]{4}-[0-9]{6}|(?=[0-9]*[a-f])(?:[0-9a-f]{32}|[0-9a-f]{12}))"
    r"(?![0-9A-Za-z])"
)

_Span = tuple[int, int, str]


def redact(text: str) -> str:
    """Mask birth dates, phone numbers, 記号・番号 and any run of 4 or more digits.

    Dates (every spelling :func:`bot.identity.parsing.parse_birth_date` reads, and era years
    like ``昭和60年``) become ``[日付]``, phone numbers ``[電話]``, and 記号・番号 or
    other long numbers ``[番号]``. The rest of the text is returned exactly as it was,
    full-width characters and emoji included.

    Args:
        text: any text, e.g. a formatted log message.

    Returns:
        The text with the values masked.
    """
    out: list[str] = []
    cursor = 0
    for start, end, mask in personal_spans(text):
        out.append(text[cursor : max(cursor, start)])
        out.append(mask)
        cursor = max(cursor, end)
    out.append(text[cursor:])
    return "".join(out)


def personal_spans(text: str) -> list[tuple[int, int, str]]:
    """Where :func:`redact` finds personal values in ``text``, in the text as given.

    Args:
        text: any text.

    Returns:
        ``(start, end, mask)`` per value, in order, where ``mask`` is
        :data:`DATE_MASK`, :data:`PHONE_MASK` or :data:`NUMBER_MASK`. Spans may touch
        but never overlap, except that two may share an original character that NFKC
        split in two (㏠ → 1日).
    """
    normalized = normalize_with_spans(text)
    found: list[tuple[int, int, str]] = []
    for start, end, mask in _claim_spans(normalized.text):
        # NFKC can turn one character into several (㏠ → 1日); a span may then end
        # inside the original character, which is masked whole.
        original_start, original_end = normalized.original_span(start, end)
        found.append((original_start, original_end, mask))
    return found


def _candidates(text: str) -> Iterator[_Span]:
    # In order of priority: where candidates overlap, the earlier one names the mask.
    for match in DATE_PATTERN.finditer(text):
        yield match.start(), match.end(), DATE_MASK
    for match in _ERA_YEAR.finditer(text):
        yield match.start(), match.end(), DATE_MASK
    for found in PhoneNumberMatcher(text, "JP", leniency=Leniency.POSSIBLE):
        yield found.start, found.end, PHONE_MASK
    for match in _LABELLED_NUMBER.finditer(text):
        yield match.start(1), match.end(1), NUMBER_MASK
    for match in _NUMBER_PAIR.finditer(text):
        yield match.start(), match.end(), NUMBER_MASK
    for match in _LONG_DIGIT_RUN.finditer(text):
        yield match.start(), match.end(), NUMBER_MASK


def _claim_spans(text: str) -> list[_Span]:
    taken = bytearray(len(text))
    for match in _OWN_IDENTIFIERS.finditer(text):
        taken[match.start() : match.end()] = b"\x01" * (match.end() - match.start())
    spans: list[_Span] = []
    for start, end, mask in _candidates(text):
        if not any(taken[start:end]):
            spans.append((start, end, mask))
            taken[start:end] = b"\x01" * (end - start)
            continue
        # Partly covered by a stronger match: mask the digits it leaves uncovered
        # ("1985-04-01-23" leaves "23"), trimmed so separators stay as they are.
        index = start
        while index < end:
            if taken[index]:
                index += 1
                continue
            piece_end = index
            while piece_end < end and not taken[piece_end]:
                piece_end += 1
            digits = [m.start() for m in _DIGIT.finditer(text, index, piece_end)]
            if digits:
                spans.append((digits[0], digits[-1] + 1, mask))
                taken[digits[0] : digits[-1] + 1] = b"\x01" * (digits[-1] + 1 - digits[0])
            index = piece_end
    return sorted(spans)


class RedactingFilter(logging.Filter):
    """A logging filter that masks personal values in every record it sees.

    The message is formatted first (``msg % args``) and then redacted, so a value
    passed as an argument is masked too; ``args`` is cleared. Exception and stack
    texts are redacted the same way. The filter never raises and never drops a
    record: if redaction fails, the message is replaced by a placeholder.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always lets it through."""
        try:
            record.msg = redact(_message(record))
            record.args = ()
            if record.exc_info and not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        except Exception:
            record.msg, record.args = UNREDACTABLE_MESSAGE, ()
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        # Arguments that do not fit the format: keep both, masked, rather than lose them.
        return f"{record.msg} {record.args!r}"


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Make sure no log handler sees a personal value in clear.

    Attaches a :class:`RedactingFilter` to every handler of the root logger (records
    propagated from any logger pass them), to ``logger`` itself (the root logger when
    None) and to ``logger``'s own handlers. Calling it again adds no second filter.
    Handlers added later are not covered: call it again after configuring logging.
    Warnings are routed through logging (``logging.captureWarnings``) so they are
    redacted as well.

    Args:
        logger: the logger to protect besides the root logger's handlers.
    """
    # Python and Rasa warnings (Rasa's echo a malformed payload as typed) are printed by
    # the warnings module, not logged: routed through logging, they pass the filter too.
    logging.captureWarnings(True)
    root = logging.getLogger()
    target = logger or root
    filterers: list[logging.Filterer] = [*root.handlers, target, *target.handlers]
    for filterer in filterers:
        if not any(isinstance(existing, RedactingFilter) for existing in filterer.filters):
            filterer.addFilter(RedactingFilter())
