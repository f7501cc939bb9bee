"""The quarterly verification report: parameters, the analyses together, findings and results.

The planted truth of the demo (kpilib.demo) is checked here through the report itself: what
management reads must find the lagged KPI, the KPIs without a link, the pilot's uplift and the
manager whose technical hours eat his profit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from IPython.display import HTML
from pandas.io.formats.style import Styler

from kpilib import paths, quarterly
from kpilib.demo import ground_truth
from kpilib.errors import ParamsError
from kpilib.io import write_json
from kpilib.links import VERDICTS
from kpilib.params import load_scheme
from kpilib.plots import ReportFigure

SCHEME = str(paths.DEFAULT_SCHEME)
TRUTH = ground_truth()
Q3 = pd.Period("2026Q3", "Q")


def _prepare(source: Path, **parameters: object) -> quarterly.QuarterlyReport:
    values = {"data": str(source), "scheme": SCHEME, "period": "2026Q3", **parameters}
    return quarterly.prepare_quarterly(**values)


@pytest.fixture(scope="module")
def company(source, tmp_path_factory) -> tuple[quarterly.QuarterlyReport, quarterly.Verification]:
    empty = tmp_path_factory.mktemp("reports")
    report = _prepare(source, reports=str(empty))
    return report, quarterly.verify(report)


@pytest.fixture(scope="module")
def north(source, tmp_path_factory) -> tuple[quarterly.QuarterlyReport, quarterly.Verification]:
    empty = tmp_path_factory.mktemp("reports")
    report = _prepare(source, department="north", reports=str(empty))
    return report, quarterly.verify(report)


# --- parameters ---------------------------------------------------------------------------------


def test_the_default_quarter_is_the_latest_complete_one(source):
    report = quarterly.prepare_quarterly(data=str(source), scheme=SCHEME, link_months=6)
    # The demo ends with October 2026: the third quarter is the latest complete one.
    assert Q3 == report.quarter
    assert [pd.Period(m, "M") for m in ("2026-07", "2026-08", "2026-09")] == list(report.months)
    assert pd.period_range("2026-04", "2026-09", freq="M").tolist() == list(report.window)
    # Two months before the window give the lagged KPIs their flags.
    assert pd.period_range("2026-02", "2026-09", freq="M").tolist() == list(report.history.months)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"period": "2026Q4"}, "Quarter 2026Q4 is not complete in the data"),
        ({"period": "2026-09"}, "not a quarter in the form YYYYQn"),
        ({"period": "2024Q2"}, "Quarter 2024Q2 begins before the data, which starts in 2024-05"),
        ({"department": "logistics"}, "'logistics' is not a sales department"),
        ({"link_months": 3}, "link_months"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_parameters_are_refused_with_a_clear_message(source, parameters, message):
    with pytest.raises(ParamsError, match=message):
        _prepare(source, **parameters)


def test_a_quarter_near_the_start_of_the_data_judges_only_the_months_it_holds(source):
    report = _prepare(source, period="2024Q3", department="north")
    assert pd.period_range("2024-05", "2024-09", freq="M").tolist() == list(report.window)
    assert report.window == report.history.months
    assert "2024-05 to 2024-09 (5 months)" in quarterly.report_header(report).data


def test_the_company_wide_report_covers_every_sales_department(company):
    report, _ = company
    assert (None, "company", "All sales departments") == (
        report.department_id,
        report.report_id,
        report.department_name,
    )
    assert ("east", "north", "south", "west") == report.departments
    assert {"east", "north", "south", "west"} == set(report.history.managers["department_id"])


# --- the planted truth, as the report finds it --------------------------------------------------


def test_the_kpi_planted_with_a_lagged_link_is_kept_with_its_lag(company):
    _, result = company
    verdicts = result.verdicts.set_index("kpi")
    row = verdicts.loc[TRUTH.lagged_link_metric]
    assert ("keep", TRUTH.lagged_link_lag, "existing_client_revenue") == (
        row["verdict"],
        row["lag"],
        row["result"],
    )
    assert "a leading indicator" in row["sentence"]


@pytest.mark.parametrize("metric", TRUTH.unlinked_metrics)
def test_the_kpis_planted_without_a_link_are_dropped_or_re_weighted(company, metric):
    _, result = company
    assert result.verdicts.set_index("kpi").loc[metric, "verdict"] in ("drop", "re-weight")


def test_the_pilots_planted_uplift_lies_in_its_intervals(company):
    _, result = company
    (pilot,) = result.pilots
    assert (TRUTH.pilot_department_id, TRUTH.pilot_start.to_period("M")) == (
        pilot.department_id,
        pilot.start,
    )
    effects = pilot.effects.set_index("metric")
    for metric in ("deals_won", "revenue"):
        assert effects.at[metric, "low"] < TRUTH.pilot_uplift < effects.at[metric, "high"]


def test_the_high_extra_hours_manager_is_flagged_and_his_peer_is_not(company, north):
    for _, result in (company, north):
        flagged = set(result.ranks.loc[result.ranks["flagged"], "manager_id"])
        assert TRUTH.high_hours_manager_id in flagged
        assert TRUTH.revenue_peer_id not in flagged


def test_the_logistics_slip_shows_in_the_service_levels(company):
    _, result = company
    on_time = result.compliance.loc[
        result.compliance["service_department_id"].eq(TRUTH.slipping_department_id)
        & result.compliance["metric"].eq("on_time_delivery")
    ].set_index("month")
    slipped = [f"{m:%Y-%m}" for m in on_time.index[on_time["met"].eq(False)]]
    assert ["2026-07", "2026-08"] == slipped  # the quarter's part of the planted slip


# --- findings and views -------------------------------------------------------------------------


def test_findings_open_with_one_verdict_per_kpi(company):
    report, result = company
    sentences = quarterly.findings(report, result)
    labels = [kpi.label for _, kpi, _ in report.scheme.weighted_kpis()]
    opening = sentences[: len(labels)]
    assert all(s.startswith(f"{label}: ") for s, label in zip(opening, labels, strict=True))
    assert all(any(f": {v}" in s for v in VERDICTS) for s in opening)
    assert any(s.startswith("East has run the KPI system since 1 November 2025") for s in sentences)
    assert any("Vasily Orlov ranks" in s for s in sentences)


def test_a_department_without_a_pilot_says_it_is_the_comparison(north):
    report, result = north
    assert () == result.pilots
    text = " ".join(quarterly.findings(report, result))
    assert "North does not pilot the KPI system" in text
    (view,) = quarterly.pilot_views(report, result)
    assert isinstance(view, HTML) and "does not pilot" in view.data


def test_every_view_renders_to_an_escaped_table_chart_or_note(company):
    report, result = company
    views = [
        quarterly.verdicts_view(result, report.currency),
        quarterly.links_view(result, report.currency),
        quarterly.ranking_view(result, report.currency),
        quarterly.attainment_view(result, report.currency),
        quarterly.tiers_view(result, report.currency),
        quarterly.compliance_view(result),
        quarterly.compliance_figure(result),
        quarterly.coinciding_view(result),
        quarterly.stability_view(report, result),
        quarterly.stability_bullets(report, result),
        quarterly.provenance_view(report, result),
        quarterly.attainment_figure(report),
        *quarterly.pilot_views(report, result),
    ]
    assert all(isinstance(v, Styler | HTML | ReportFigure) for v in views)
    ranking = quarterly.ranking_view(result, report.currency).to_html()
    assert "Vasily Orlov" in ranking


def test_a_table_aligns_numbers_right_and_text_left():
    frame = pd.DataFrame({"KPI": ["New clients"], "Effect": ["+12.5%"], "Money": ["−1,000 RUB"]})
    html = quarterly.table(frame).to_html()
    assert html.count("text-align: right") == 2 and html.count("text-align: left") == 1


# --- machine-readable results and recorded schemes ------------------------------------------------


def test_results_are_plain_json_with_the_verdict_counts(company, tmp_path):
    report, result = company
    data = quarterly.quarterly_json(report, result)
    text = json.dumps(data, allow_nan=False, sort_keys=True)
    assert text == json.dumps(
        quarterly.quarterly_json(report, result), allow_nan=False, sort_keys=True
    )
    headline = data["headline"]
    assert len(report.scheme.weighted_kpis()) == sum(headline["verdicts"].values())
    assert ("2026Q3", "company") == (data["period"], data["department_id"])
    assert TRUTH.high_hours_manager_id in data["flagged_managers"]
    assert ["east"] == [pilot["department_id"] for pilot in data["pilots"]]
    quarterly.save_results(report, result, str(tmp_path / "company.kpis.json"))
    assert data == json.loads((tmp_path / "company.kpis.json").read_text(encoding="utf-8"))


def test_a_target_changed_in_a_recorded_month_shows_in_the_stability_section(source, tmp_path):
    scheme = load_scheme(paths.DEFAULT_SCHEME)
    definition = scheme.model_dump(mode="json", exclude_none=True)
    raised = json.loads(json.dumps(definition))
    for goal in raised["goals"]:
        for kpi in goal["kpis"]:
            if kpi["metric"] == "new_clients":
                kpi["target"]["value"] = 3
    for month, recorded in (("2026-07", definition), ("2026-08", raised)):
        record = {"period": month, "department_id": "north", "scheme_definition": recorded}
        write_json(record, tmp_path / "monthly" / month / "north.kpis.json")
    report = _prepare(source, department="north", reports=str(tmp_path))
    result = quarterly.verify(report)
    changes = result.changes
    raised_rows = changes.loc[changes["kpi"].eq("new_clients") & changes["what"].eq("target")]
    # September has no recorded report: the current file stands in, and no change is claimed
    # to or from it.
    assert [pd.Period("2026-08", "M")] == list(raised_rows["month"])
    assert [(2, 3)] == list(zip(raised_rows["before"], raised_rows["after"], strict=True))
    text = " ".join(quarterly.findings(report, result))
    assert "raised the new clients target from 2 to 3 in 2026-08" in text
    assert ["2026-07", "2026-08"] == [f"{s.month:%Y-%m}" for s in result.schemes if s.recorded]
