"""Formatting for people, and escaping of every CRM string that reaches a report."""

from __future__ import annotations

import math
from html import escape

import pandas as pd
import pytest

from kpilib.display import bullets, fmt, fmt_compact, header, html_text, note, styled
from kpilib.quarterly import table as quarterly_table

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


ESCAPED = escape(HOSTILE)  # '&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot; ...'


def escaped_copies(html: str) -> int:
    """How often HOSTILE appears escaped once (pandas writes a quote as &#34;, html as &quot;)."""
    return html.replace("&#34;", "&quot;").count(ESCAPED)


def hostile_table() -> pd.DataFrame:
    """CRM text in every place a table can hold it: cells, headers, index labels, axis names."""
    frame = pd.DataFrame(
        {HOSTILE: [HOSTILE, "Anna"], "Revenue": [1000.0, None]},
        index=pd.Index([HOSTILE, "<b>row</b>"], name=HOSTILE),
    )
    frame.columns.name = HOSTILE
    return frame


@pytest.mark.parametrize("render", ["to_html", "_repr_html_"])
def test_a_table_renders_cells_headers_index_and_caption_only_escaped(render):
    html = getattr(styled(hostile_table(), {"Revenue": "money"}, caption=HOSTILE), render)()
    assert [] == [tag for tag in ("<script", "<img", "<b>row") if tag in html]
    # the cell, the column header and the caption, each escaped exactly once
    assert 3 == escaped_copies(html)
    assert "&amp;lt;" not in html
    assert "1,000 RUB" in html and "no data" in html


def test_a_multi_level_header_is_escaped_at_every_level():
    frame = pd.DataFrame([[HOSTILE]], columns=pd.MultiIndex.from_tuples([(HOSTILE, "<i>x</i>")]))
    html = styled(frame).to_html()
    assert [] == [tag for tag in ("<script", "<img", "<i>x") if tag in html]
    assert (2, 1) == (escaped_copies(html), html.count("&lt;i&gt;x&lt;/i&gt;"))


def test_the_quarterly_text_tables_are_escaped_too():
    html = quarterly_table(hostile_table(), caption=HOSTILE).to_html()
    assert "<script" not in html and "<img" not in html
    assert 3 == escaped_copies(html)


def test_status_cells_carry_a_mark_and_colour_class_beside_the_word():
    frame = pd.DataFrame({"KPI": ["met", "Revenue"], "Result": ["met", "missed"], "N": [1.0, None]})
    page = styled(frame, units={"N": "count"}).to_html()
    assert 'class="data row1 col1 kpi-status kpi-missed" >missed</td>' in page
    assert 'class="data row0 col1 kpi-status kpi-met" >met</td>' in page
    assert 'class="data row0 col0" >met</td>' in page  # a name, not a status
    assert 2 == page.count("kpi-status")


def test_right_to_left_names_are_isolated_so_the_figures_after_them_keep_their_place():
    sentence = 'Lowest: شركة النور للتجارة (58%); then עברית "x" and <b>'
    assert (
        "Lowest: <bdi>شركة النور للتجارة</bdi> (58%); "
        "then <bdi>עברית</bdi> &quot;x&quot; and &lt;b&gt;" == html_text(sentence)
    )
    assert "<li>Lowest: <bdi>شركة" in bullets([sentence]).data


def test_a_table_with_a_repeated_index_still_renders_with_its_status_marks():
    frame = pd.DataFrame({"Result": ["met", "missed"]}, index=[0, 0])
    page = styled(frame).to_html()
    assert ">met</td>" in page and ">missed</td>" in page
