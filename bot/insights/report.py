"""The overview's figures as plain-text tables or CSV, for a monthly report."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Sequence

from bot.core.japan_time import jst_timestamp
from bot.insights.figures import Figures
from bot.insights.tables import Table, all_tables


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal (full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * max(0, width - _width(text))
    return gap + text if right else text + gap


def text_table(table: Table) -> str:
    """One figure as an aligned text table (numbers right-aligned)."""
    rows = [table.headers, *table.rows]
    widths = [max(_width(row[column]) for row in rows) for column in range(len(table.headers))]
    lines = [f"## {table.title}", ""]
    for place, row in enumerate(rows):
        cells = [
            _pad(cell, widths[column], right=column > 0 and place > 0)
            for column, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if place == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _heading(figures: Figures) -> str:
    period = figures.period
    return (
        f"# 利用状況 {period.first.isoformat()} 〜 {period.last.isoformat()}"
        f"（{len(period.days)}日間、集計 {jst_timestamp(figures.now)} JST）"
    )


def as_text(figures: Figures, tables: Sequence[Table] | None = None) -> str:
    """Every figure as text tables under a heading with the period."""
    shown = all_tables(figures) if tables is None else tables
    return "\n\n".join([_heading(figures), *(text_table(table) for table in shown)]) + "\n"


def as_csv(figures: Figures, tables: Sequence[Table] | None = None) -> str:
    """Every figure as one CSV: ``figure,row,column,value`` (long form, one line a cell)."""
    shown = all_tables(figures) if tables is None else tables
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["figure", "period_first", "period_last", "row", "column", "value"])
    for table in shown:
        for row in table.rows:
            for column, value in zip(table.headers[1:], row[1:], strict=True):
                writer.writerow(
                    [table.key, figures.period.first, figures.period.last, row[0], column, value]
                )
    return out.getvalue()
