"""Formatting for people: numbers by unit, "no data" for missing, every CRM string escaped.

Tables reach the report as pandas Stylers whose every cell, header and index label is HTML-escaped
(pandas does not escape by default), so a client called ``<script>`` shows as text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape

import pandas as pd
from IPython.display import HTML
from pandas.io.formats.style import Styler

NO_DATA = "no data"
SALE_TYPE_LABELS = {
    "new": "New business",
    "repeat": "Repeat",
    "upsell": "Upsell",
    "cross_sell": "Cross-sell",
    "subscription": "Subscription",
}  # the contract's sale types as people read them
MONTH_FORMAT = "%B %Y"


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def is_known(value: object) -> bool:
    """Whether a value is data: not None, NA or NaN."""
    return not _missing(value)


def listing(items: Sequence[str]) -> str:
    """Names in a sentence: ``North``, ``North and South``, ``North, South and West``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def in_sentence(label: str) -> str:
    """A label inside a sentence: ``New clients`` reads ``new clients``; ``CRM leads`` stays."""
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def fmt(value: object, unit: str, currency: str = "RUB") -> str:
    """A value in its unit for people: ``1,234,567 RUB``, ``95.2%``, ``3.4 days``, ``no data``."""
    if _missing(value):
        return NO_DATA
    number = float(value)  # type: ignore[arg-type]
    if unit == "money":
        return f"{number:,.0f} {currency}"
    if unit == "share":
        return f"{number:.1%}"
    if unit == "days":
        return f"{number:.1f} days"
    if unit == "hours":
        return f"{number:,.1f} h"
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"


def fmt_diff(value: object, unit: str, currency: str = "RUB", signed: bool = False) -> str:
    """A difference in its unit; a difference of shares is in percentage points (``26.6 pp``).

    With `signed`, a positive difference shows its plus sign (``+2.5 pp``).
    """
    if signed and not _missing(value) and float(value) > 0:  # type: ignore[arg-type]
        return "+" + fmt_diff(value, unit, currency)
    if unit == "share" and not _missing(value):
        return f"{float(value) * 100:.1f} pp"  # type: ignore[arg-type]
    return fmt(value, unit, currency)


def fmt_signed(value: object, unit: str, currency: str = "RUB") -> str:
    """A contribution with its sign: ``+1,234 RUB``, ``-1,234 RUB`` (a true minus sign); unit
    ``compact`` for short money (``+1.2M RUB``)."""
    if _missing(value):
        return NO_DATA
    number = float(value)  # type: ignore[arg-type]
    sign = "+" if number > 0 else "\u2212" if number < 0 else ""
    if unit == "compact":
        return sign + fmt_compact(abs(number), currency)
    return sign + fmt(abs(number), unit, currency)


def fmt_compact(value: object, currency: str = "RUB") -> str:
    """Money in short form for sentences: ``12.3M RUB``, ``450K RUB``."""
    if _missing(value):
        return NO_DATA
    number = float(value)  # type: ignore[arg-type]
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(number) >= size:
            return f"{number / size:,.1f}{suffix} {currency}"
    return f"{number:,.0f} {currency}"


def fmt_met(met: object) -> str:
    """A KPI's met flag as a mark: ``met``, ``missed`` or ``no data``."""
    if _missing(met):
        return NO_DATA
    return "met" if met else "missed"


def month_name(period: pd.Period) -> str:
    """``October 2026``."""
    return f"{period:{MONTH_FORMAT}}"


def styled(
    frame: pd.DataFrame,
    units: Mapping[str, str] | None = None,
    currency: str = "RUB",
    caption: str | None = None,
    right: Sequence[str] = (),
) -> Styler:
    """A table ready for the report: values formatted by unit, everything HTML-escaped.

    Args:
        frame: The table; its columns are display names.
        units: Unit of each numeric column (``money``, ``share``, ``count``, ``days``, ``hours``).
        currency: Currency of money columns.
        caption: Optional caption, escaped too.
        right: Columns of numbers already formatted as text, aligned like numbers.
    """
    units = dict(units or {})
    text = frame.copy()
    for column in text.columns:
        if column in units:
            text[column] = [fmt(v, units[column], currency) for v in frame[column]]
        else:
            text[column] = [NO_DATA if _missing(v) else str(v) for v in frame[column]]
    styler = (
        text.style.format(escape="html")
        .format_index(escape="html", axis=0)
        .format_index(escape="html", axis=1)
        .hide(axis="index")
        .set_table_attributes('class="kpi-table"')
    )
    numbers = set(units) | set(right)
    align = {
        column: [
            {"selector": "", "props": f"text-align: {'right' if column in numbers else 'left'}"}
        ]
        for column in text.columns
    }
    styler = styler.set_table_styles(align, overwrite=False)
    if text.index.is_unique and text.columns.is_unique:  # pandas can place classes only then
        styler = styler.set_td_classes(status_classes(text))
    if caption:
        styler = styler.set_caption(escape(caption))
    return styler


STATUS_CLASSES = {"met": "kpi-status kpi-met", "missed": "kpi-status kpi-missed"}
"""The traffic light of a KPI's status cell: a mark and a colour beside the word (report.css)."""


def status_classes(text: pd.DataFrame) -> pd.DataFrame:
    """CSS classes for a table's cells: `STATUS_CLASSES` in status columns, none elsewhere.

    A status column holds only ``met``, ``missed`` and ``no data`` (a name column that happens
    to hold the word ``met`` is not one). The word stays in the cell; the stylesheet adds a mark
    (✔, ✘) and a colour, so the status reads the same in print, in grey and to a screen reader.
    """

    def classes(column: pd.Series) -> pd.Series:
        values = set(column)
        if values & set(STATUS_CLASSES) and values <= {*STATUS_CLASSES, NO_DATA}:
            return column.map(lambda v: STATUS_CLASSES.get(v, ""))
        return column.map(lambda _: "")

    return text.apply(classes)


# Letters of right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko, ... and their
# presentation forms), and a run of them with the spaces and marks between.
_RTL = "\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc"
_RTL_RUN = re.compile(f"[{_RTL}](?:[{_RTL}\\s\u200c\u200d'\".,-]*[{_RTL}])?")


def html_text(text: str) -> str:
    """Text for a page: HTML-escaped, each right-to-left run isolated in ``<bdi>``.

    In an English sentence, an Arabic or Hebrew name would otherwise carry the figures after it
    into its own direction: "lowest: شركة (58%)" would read "(%58) شركة".
    """
    pieces, last = [], 0
    for run in _RTL_RUN.finditer(text):
        pieces += [escape(text[last : run.start()]), f"<bdi>{escape(run.group(0))}</bdi>"]
        last = run.end()
    return "".join([*pieces, escape(text[last:])])


def header(title: str, facts: Mapping[str, str]) -> HTML:
    """The report's opening block: an escaped title and the parameters it ran with."""
    items = "".join(
        f"<tr><th>{html_text(k)}</th><td>{html_text(v)}</td></tr>" for k, v in facts.items()
    )
    return HTML(
        f'<div class="kpi-header"><p class="kpi-title">{html_text(title)}</p>'
        f'<table class="kpi-params">{items}</table></div>'
    )


def bullets(sentences: list[str]) -> HTML:
    """Sentences as an escaped bullet list."""
    items = "".join(f"<li>{html_text(sentence)}</li>" for sentence in sentences)
    return HTML(f'<ul class="kpi-findings">{items}</ul>')


def note(text: str) -> HTML:
    """A short escaped remark in place of a table that has nothing to show."""
    return HTML(f'<p class="kpi-note">{html_text(text)}</p>')
