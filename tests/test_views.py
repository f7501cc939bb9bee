"""The monthly report's fine-tuning views: what each shows, and that CRM text stays escaped."""

from __future__ import annotations

import pytest
from IPython.display import HTML
from pandas.io.formats.style import Styler

from kpilib import views
from kpilib.explain import department_gap, peer_gap
from kpilib.plots import ReportFigure
from kpilib.tuning import report_tuning


def _html(shown) -> str:
    return shown.to_html() if isinstance(shown, Styler) else shown.data


def test_the_register_lists_the_months_misses_with_their_run(report):
    html = _html(views.register(report))
    assert "New clients" in html and "months running (since" in html


@pytest.mark.parametrize("metric", ["revenue", "net_profit"])
def test_gap_views_are_a_waterfall_with_alt_text_and_a_table_ending_in_the_total(report, metric):
    gap = department_gap(report, metric)
    chart = views.gap_chart(gap, report.currency)
    assert isinstance(chart, ReportFigure)
    png, meta = chart._repr_png_()
    assert png.startswith(b"\x89PNG") and "Actual" in meta["alt"]
    assert "Total gap" in _html(views.gap_table(gap, report.currency))


def test_mix_views_name_sale_types_for_people(report):
    gap = department_gap(report, "revenue")
    html = _html(views.mix(report, gap, "sale_type"))
    assert "Cross-sell" in html and "cross_sell" not in html
    assert "everything else" in _html(views.segments(report, gap))


def test_service_views_give_sentences_a_table_and_the_months(report):
    sentences, table = views.services(report)
    assert isinstance(sentences, HTML) and "Logistics" in sentences.data
    assert "Slip weeks" in table.to_html()
    months = _html(views.service_months(report))
    assert "2026-07" in months and "Its level company-wide" in months


def test_peer_views_split_the_profit_gap_of_the_pair(report):
    pair = peer_gap(report)
    assert isinstance(views.peer_chart(pair, report.currency), ReportFigure)
    assert "Extra costs" in _html(views.peer_table(pair, report.currency))
    assert "No two managers" in views.peer_chart(None, report.currency).data


def test_tuning_views_show_calibration_weights_and_the_whatif(report):
    tuning = report_tuning(report, 3)  # July to September: the response target is too easy
    assert "too easy" in _html(views.calibration(tuning, report.currency))
    assert "Carries variance" in _html(views.weights(tuning))
    whatif = _html(views.whatif(tuning))
    assert "All 7 managers" in whatif and " pp" in whatif


def test_forecast_views_show_the_months_the_backtest_and_the_managers(report):
    outlook = views.forecast(report)
    assert isinstance(views.forecast_chart(outlook, report.currency), ReportFigure)
    assert "October 2026" in _html(views.forecast_months(outlook, report.currency))
    assert "Same month last year" in _html(views.forecast_backtest(outlook, report.currency))
    assert "Months of history" in _html(views.forecast_managers(outlook, report.currency))
