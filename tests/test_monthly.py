"""The monthly report's tables on the demo data, and its parameter checks."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from kpilib import paths, snapshots
from kpilib.demo import DemoConfig, ground_truth
from kpilib.errors import ParamsError
from kpilib.io import read_source
from kpilib.monthly import (
    corrections_table,
    data_corrections,
    manager_kpis,
    monthly_json,
    plan_vs_actual,
    prepare_monthly,
    profit_table,
    provenance,
    score_summary,
    trends,
)


def test_unknown_department_is_refused_with_the_known_ones(source):
    with pytest.raises(ParamsError, match="'nowhere'.*north"):
        prepare_monthly(department="nowhere", data=str(source), scheme=SCHEME)


def test_unknown_or_mistyped_parameters_are_refused(source):
    with pytest.raises(ParamsError, match="colour"):
        prepare_monthly(department="north", data=str(source), scheme=SCHEME, colour="red")
    with pytest.raises(ParamsError, match="trend_months"):
        prepare_monthly(department="north", data=str(source), scheme=SCHEME, trend_months="x")


def test_default_period_is_the_latest_complete_month(source):
    latest = prepare_monthly(department="north", data=str(source), scheme=SCHEME)
    assert DemoConfig().end == f"{latest.period:%Y-%m}"


SCHEME = str(paths.DEFAULT_SCHEME)


def _name(report, manager_id: str) -> str:
    names = report.crm.managers.set_index("manager_id")["name"]
    return names[manager_id]


def test_scorecard_covers_every_active_manager_of_the_department(report):
    truth = ground_truth(DemoConfig())
    summary = score_summary(report)
    assert len(report.card.managers) == len(summary)
    assert {"north"} == set(report.card.managers["department_id"])
    planted = {_name(report, truth.high_hours_manager_id), _name(report, truth.revenue_peer_id)}
    assert planted <= set(summary["Manager"])
    kpis_per_manager = manager_kpis(report).groupby("Manager").size()
    assert {6} == set(kpis_per_manager)


def test_profit_table_follows_net_profit_definition(report):
    table = profit_table(report)
    expected = table["Revenue"] - table["Cost price"] - table["Extra costs"]
    assert (expected - table["Net profit"]).abs().max() < 1e-6
    assert (table["Extra costs"] == table["Extra hours"] * 1500).all()


def test_trends_cover_the_trend_window(report):
    table = trends(report)
    assert 12 == len(table)
    assert "2026-09" == f"{table['month'].iloc[-1]:%Y-%m}"


def test_plan_versus_actual_uses_the_plans_table(report):
    plans = plan_vs_actual(report)
    assert (["Revenue"], ["North"]) == (list(plans["Metric"]), list(plans["Who"]))
    assert plans["Actual"].iloc[0] == report.card.department_metrics.loc["north", "revenue"]


def test_results_json_headline_matches_the_department_roll_up(report):
    results = monthly_json(report)
    department = report.card.departments.iloc[0]
    assert department["score"] == results["headline"]["score"]
    assert (
        report.card.department_metrics.loc["north", "net_profit"]
        == results["headline"]["net_profit"]
    )


def test_provenance_records_fingerprint_and_scheme(report):
    rows = dict(zip(provenance(report)["Item"], provenance(report)["Value"], strict=True))
    assert report.crm.fingerprint == rows["Data fingerprint"]
    assert "sales_funnel.yaml" in rows["KPI scheme"]


def test_results_json_records_the_scheme_it_ran_on_so_that_it_validates_back_exactly(report):
    import dataclasses
    import json

    from kpilib.params import Scheme

    data = report.scheme.model_dump(exclude_none=True)
    data["goals"][1]["kpis"][0]["target"]["value"] = 0.15  # a float that binary cannot hold
    data["technical_hour_cost"] = 1234.56
    tuned = dataclasses.replace(report, scheme=Scheme.model_validate(data))
    written = json.loads(json.dumps(monthly_json(tuned), allow_nan=False))
    assert tuned.scheme == Scheme.model_validate(written["scheme_definition"])
    assert report.scheme == Scheme.model_validate(monthly_json(report)["scheme_definition"])


def test_a_report_not_on_a_snapshot_store_says_corrections_are_not_tracked(report):
    corrections = data_corrections(report)

    assert "snapshot store" in corrections.text
    assert corrections.months.empty
    assert corrections_table(corrections, report.currency) is None


def _stored_demo(source, store):
    """The demo ingested as snapshot 1, and north's managers."""
    crm = read_source(source)
    snapshots.ingest(store, crm, "before")
    return crm, crm.managers.loc[crm.managers["department_id"].eq("north"), "manager_id"]


def test_corrections_since_the_previous_snapshot_are_the_departments_own(source, tmp_path):
    store = tmp_path / "kpi.duckdb"
    crm, north = _stored_demo(source, store)
    deals = crm.deals
    won = deals["stage"].eq("won") & deals["closed_on"].dt.to_period("M").eq(pd.Period("2026-08"))
    ours = deals.index[won & deals["manager_id"].isin(north)][0]
    theirs = deals.index[won & ~deals["manager_id"].isin(north)][0]
    edited = deals.assign(
        amount=deals["amount"].add(pd.Series({ours: 1000.0, theirs: 5.0}), fill_value=0)
    )
    snapshots.ingest(store, dataclasses.replace(crm, deals=edited), "after")

    first = prepare_monthly(department="north", period="2026-09", data=f"{store}#1", scheme=SCHEME)
    assert "first" in data_corrections(first).text

    report = prepare_monthly(department="north", period="2026-09", data=f"{store}#2", scheme=SCHEME)
    corrections = data_corrections(report)
    assert corrections.months.index.tolist() == [pd.Period("2026-08", "M")]
    row = corrections.months.loc[pd.Period("2026-08", "M")]
    assert (row["change"], row["edited"], row["late_added"], row["deleted"]) == (1000, 1000, 0, 0)
    assert "+1,000 RUB from deals edited" in corrections.text
    assert "snapshot 1 (before" in corrections.text
    html = corrections_table(corrections, report.currency).to_html()
    assert "+1,000 RUB" in html and "2026-08" in html


def test_a_month_whose_corrections_cancel_out_is_still_shown(source, tmp_path):
    store = tmp_path / "kpi.duckdb"
    crm, north = _stored_demo(source, store)
    deals = crm.deals
    august = deals["closed_on"].dt.to_period("M").eq(pd.Period("2026-08"))
    won = deals.loc[deals["stage"].eq("won") & august & deals["manager_id"].isin(north)].iloc[0]
    late = won.to_frame().T.assign(deal_id="LATE-1").astype(deals.dtypes.to_dict())
    corrected = pd.concat([deals.drop(index=won.name), late], ignore_index=True)
    snapshots.ingest(store, dataclasses.replace(crm, deals=corrected), "after")

    report = prepare_monthly(department="north", period="2026-09", data=f"{store}#2", scheme=SCHEME)
    row = data_corrections(report).months.loc[pd.Period("2026-08", "M")]
    assert row["change"] == 0 and row["late_added"] == -row["deleted"] == won["amount"]
