"""Formatting for people, and escaping of every CRM string that reaches a report."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kpilib.display import bullets, fmt, fmt_compact, header, note, styled

HOSTILE = '<script>alert(1)</script> & "quotes" <img src=x onerror=alert(2)>'


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1234567.4, "money", "1,234,567 RUB"),
        (0.9523, "share", "95.2%"),
        (3.44, "days", "3.4 days"),
        (1250.0, "hours", "1,250.0 h"),
        (2.0, "count", "2"),
        (2.5, "count", "2.5"),
        (math.nan, "money", "no data"),
        (None, "share", "no data"),
    ],
)
def test_fmt_shows_each_unit_and_no_data(value, unit, expected):
    assert expected == fmt(value, unit)


def test_fmt_compact_shortens_money_for_sentences():
    assert ["12.3M RUB", "450.0K RUB", "999 RUB"] == [
        fmt_compact(v) for v in (12_345_678, 450_000, 999)
    ]


def test_styled_tables_escape_cells_headers_and_caption():
    frame = pd.DataFrame({HOSTILE: [HOSTILE], "Revenue": [1000.0]})
    html = styled(frame, {"Revenue": "money"}, caption=HOSTILE).to_html()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "1,000 RUB" in html


def test_styled_tables_show_missing_values_as_no_data():
    html = styled(pd.DataFrame({"Name": [None], "Score": [math.nan]}), {"Score": "share"}).to_html()
    assert 2 == html.count("no data")


def test_header_bullets_and_notes_escape_their_text():
    for block in (header(HOSTILE, {HOSTILE: HOSTILE}), bullets([HOSTILE]), note(HOSTILE)):
        assert "<script>" not in block.data and "<img" not in block.data
