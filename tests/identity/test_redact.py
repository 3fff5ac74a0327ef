import io
import logging
import re

import pytest

import bot.identity.redact
from bot.identity.redact import (
    UNREDACTABLE_MESSAGE,
    RedactingFilter,
    install_redaction,
    redact,
)
from tests.identity.dates import ACCEPTED_DATES

PERSONAL_DIGITS = re.compile(r"[0-9０-９〇一二三四五六七八九十]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1985-04-01", "[日付]"),
        ("昭和60年4月1日", "[日付]"),
        ("090-1234-5678", "[電話]"),
        ("+819012345678", "[電話]"),
        ("+81 90 1234 5678", "[電話]"),
        ("03-3273-6974", "[電話]"),
        ("1001-23", "[番号]"),
        ("1001の23", "[番号]"),
        ("1001番の23番", "[番号]番"),
        ("記号1001 番号23", "記号[番号] 番号[番号]"),
        ("記号は1001で番号は23です", "記号は[番号]で番号は[番号]です"),
        ("番号は23です", "番号は[番号]です"),
        ("会員ID 98765", "会員ID [番号]"),
        ("19850401", "[日付]"),
        ("昭和60年生まれ", "[日付]生まれ"),
        ("member 1001-23 born 1985-04-01", "member [番号] born [日付]"),
        ("1985-04-01 090-1234-5678", "[日付] [電話]"),
    ],
)
def test_masks_personal_values(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("date_text", ACCEPTED_DATES.keys())
def test_masks_every_date_spelling_the_parser_accepts(date_text):
    redacted = redact(f"誕生日は{date_text}です")
    assert "[日付]" in redacted
    assert not PERSONAL_DIGITS.search(redacted)


@pytest.mark.parametrize(
    "text",
    [
        "個人情報の開示請求",
        "開示請求は3営業日以内にお返事します。",
        "第2条の規定により、訂正・利用停止を請求できます",
        "マイナンバーカードをお持ちですか？😀\n",
        "ナンバー",
        "",
    ],
)
def test_leaves_other_text_intact(text):
    assert redact(text) == text


def test_keeps_surrounding_text_exactly_as_written():
    assert redact("（会員）１００１－２３です😀\n次へ") == "（会員）[番号]です😀\n次へ"
    assert redact("ｶﾞｲﾄﾞ 090ー1234ー5678 ﾃﾞｽ") == "ｶﾞｲﾄﾞ [電話] ﾃﾞｽ"


def test_digits_left_beside_a_stronger_match_are_masked_too():
    redacted = redact("1985-04-01-23")
    assert redacted.startswith("[日付]-")
    assert not re.search(r"[0-9]", redacted)


def test_redaction_is_idempotent():
    once = redact("member 1001-23 born 昭和60年4月1日 tel 090-1234-5678")
    assert redact(once) == once


LONG_INPUTS = {
    "digits": "1" * 5000,
    "dashed digits": "1-" * 2500,
    "spaced digits": "1 " * 2500,
    "era names": "昭和" * 2500,
    "labels": "記号 1" * 1000,
    "kanji numerals": "一" * 5000,
    "phones": "090-1234-5678 " * 357,
    "emoji and line breaks": "😀\n" * 2500,
}


@pytest.mark.parametrize("text", LONG_INPUTS.values(), ids=LONG_INPUTS.keys())
def test_long_input_returns_without_long_digit_runs(text):
    assert not re.search(r"[0-9]{4}", redact(text))


# --- logging ---------------------------------------------------------------------


@pytest.fixture
def stream():
    return io.StringIO()


@pytest.fixture
def handler(stream):
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return handler


@pytest.fixture
def logger(handler, request):
    logger = logging.getLogger(f"tests.redact.{request.node.name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
    logger.filters.clear()


@pytest.fixture
def root_handlers(monkeypatch, handler):
    # The root logger is shared with pytest: give it only our handler for this test.
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "filters", [])
    return root


def test_logging_call_emits_neither_value(logger, stream):
    install_redaction(logger)
    logger.info("member %s born %s", "1001-23", "1985-04-01")
    output = stream.getvalue()
    assert "1001" not in output and "23" not in output
    assert "1985" not in output and "04-01" not in output
    assert output == "INFO member [番号] born [日付]\n"


def test_records_propagated_to_root_handlers_are_redacted(root_handlers, stream):
    child = logging.getLogger("tests.redact.child")
    child.setLevel(logging.INFO)
    install_redaction()
    child.info("phone %s", "090-1234-5678")
    assert stream.getvalue() == "INFO phone [電話]\n"


def test_install_is_idempotent(root_handlers, logger, handler):
    install_redaction(logger)
    install_redaction(logger)
    install_redaction()
    for filterer in (handler, logger, root_handlers):
        assert sum(isinstance(f, RedactingFilter) for f in filterer.filters) == 1


def test_exception_text_is_redacted(logger, stream):
    install_redaction(logger)
    try:
        raise ValueError("bad birth date 1985-04-01")
    except ValueError:
        logger.exception("failed for %s", "090-1234-5678")
    output = stream.getvalue()
    assert "1985-04-01" not in output and "090-1234-5678" not in output
    assert "ValueError: bad birth date [日付]" in output


def test_mapping_arguments_are_redacted(logger, stream):
    install_redaction(logger)
    logger.info("%(who)s", {"who": "記号1001 番号23"})
    assert stream.getvalue() == "INFO 記号[番号] 番号[番号]\n"


def test_arguments_that_do_not_fit_the_format_are_still_redacted(logger, stream):
    install_redaction(logger)
    logger.info("member %s born %s", "1001-23")
    output = stream.getvalue()
    assert "1001" not in output
    assert output.startswith("INFO member %s born %s")


def make_record(msg, args):
    return logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)


def test_filter_formats_then_redacts_and_clears_args():
    record = make_record("born %s", ("昭和60年4月1日",))
    assert RedactingFilter().filter(record) is True
    assert record.msg == "born [日付]"
    assert not record.args
    assert record.getMessage() == "born [日付]"


def test_filter_never_raises_and_hides_what_it_cannot_redact(monkeypatch):
    def broken(text: str) -> str:
        raise RuntimeError("redaction broke")

    monkeypatch.setattr(bot.identity.redact, "redact", broken)
    record = make_record("born %s", ("1985-04-01",))
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == UNREDACTABLE_MESSAGE


def test_filter_handles_objects_whose_str_raises():
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    record = make_record("value %s", (Unprintable(),))
    assert RedactingFilter().filter(record) is True
    assert "1985" not in record.getMessage()


def test_warnings_are_redacted_too():
    # In a process of its own: pytest records warnings itself and would hide the path.
    import subprocess
    import sys

    script = (
        "import logging, warnings\n"
        "logging.basicConfig()\n"
        "from bot.identity.redact import install_redaction\n"
        "install_redaction()\n"
        'warnings.warn(\'Failed to parse /inform{"id_birth_date": "1985-04-01"}\')\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Failed to parse" in result.stderr
    assert "1985-04-01" not in result.stderr


def test_the_products_own_identifiers_stay_readable():
    draft = "0f3c2a9e8b7d4c1aa2b3c4d5e6f70819"
    line = f"case PR-2026-000123 from draft {draft} for 090-1234-5678"
    assert redact(line) == f"case PR-2026-000123 from draft {draft} for [電話]"
    # Only the exact shapes: a longer run is still masked.
    assert "0000123" not in redact("PR-2026-0000123")


def test_hashed_sender_ids_stay_readable_but_digit_runs_do_not():
    assert (
        redact("sender 2bd8f4a91ceb sent 12 characters") == "sender 2bd8f4a91ceb sent 12 characters"
    )
    assert "123456789012" not in redact("sender 123456789012")
