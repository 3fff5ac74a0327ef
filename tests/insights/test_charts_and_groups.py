"""The overview's pieces on their own: SVG within the CSP, grouping, periods, text tables."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from bot.insights import svg
from bot.insights.period import Period, parse_days
from bot.insights.report import text_table
from bot.insights.similarity import group_indices
from bot.insights.tables import Table


def test_charts_need_no_style_or_script_and_escape_their_labels():
    charts = [
        svg.bar_chart("件数", ["12/1", "12/2"], {"<b>Web</b>": [3, 0], "LINE": [1, 2]}),
        svg.line_chart("割合", ["12/1週", "12/8週"], {"聞き返し": [0.1, None]}),
        svg.hbar_chart(
            "期限", ["期限超過", "世帯単位の送付に同意しない旨の申出"], {"件数": [2, 0]}
        ),
    ]
    for chart in charts:
        assert chart.startswith("<svg") and chart.endswith("</svg>")
        assert not re.search(r"style|<script|javascript:|href", chart)
    assert "&lt;b&gt;Web&lt;/b&gt;" in charts[0] and "<b>" not in charts[0]
    assert charts[0].count("<rect") >= 3  # three bars and the legend's boxes
    assert "世帯単位の送付に同意し…" in charts[2]  # cut, with the whole label as its title
    assert "<title>世帯単位の送付に同意しない旨の申出</title>" in charts[2]


def test_similar_messages_are_grouped_largest_group_first():
    texts = [
        "通話は録音されていますか",
        "カメラの映像は保存されますか",
        "通話は録音されてますか",
        "電話の通話は録音されていますか",
        "ぱぴぷぺぽ",
    ]
    groups = group_indices(texts)
    assert groups[0] == [0, 2, 3]
    assert sorted(groups[1:]) == [[1], [4]]
    assert group_indices([]) == []


def test_periods_are_japan_days_and_weeks_from_monday():
    period = Period.ending(datetime(2026, 3, 1, 15, 30, tzinfo=timezone.utc), 7)  # 3/2 00:30 JST
    assert (period.first, period.last) == (date(2026, 2, 24), date(2026, 3, 2))
    assert period.weeks == [date(2026, 2, 23), date(2026, 3, 2)]
    assert [parse_days(value) for value in ("7", "90", "1000", "abc", None)] == [7, 90, 30, 30, 30]


def test_text_tables_align_full_width_characters():
    table = Table("t", "題", ("日付", "Webチャット"), (("2026-03-01", "12"),), svg.Markup(""))
    lines = text_table(table).splitlines()
    assert lines[2].startswith("日付        Webチャット")
    assert lines[4] == "2026-03-01           12"
