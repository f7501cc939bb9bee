"""Drill-through: the rows behind an indicator, and the exploration helpers."""

from __future__ import annotations

import pandas as pd
import pytest

from kpilib import paths
from kpilib.demo import DemoConfig, ground_truth
from kpilib.drill import (
    explore,
    kpi_over_months,
    managers_over_months,
    most_missing_manager,
    rows_behind,
    worst_month,
)
from kpilib.errors import ParamsError
from kpilib.io import read_source
from kpilib.metrics import MetricSettings, indicators
from kpilib.validation import validate_tables

SCHEME = str(paths.DEFAULT_SCHEME)
SEPTEMBER = pd.Period("2026-09", "M")


@pytest.fixture(scope="module")
def crm(source):
    return read_source(source)


@pytest.fixture(scope="module")
def on_time(source):
    return explore(
        "north", "on_time_delivery", str(source), SCHEME, first="2026-04", last="2026-09"
    )


@pytest.mark.parametrize("department", ["north", "east"])
def test_the_rows_behind_each_indicator_give_back_its_value(crm, department):
    settings = MetricSettings(min_contract=1_500_000)
    values = indicators(crm, SEPTEMBER, "department", settings).loc[department]

    def rows(metric):
        return rows_behind(crm, metric, SEPTEMBER, department, settings=settings)

    assert values["revenue"] == rows("revenue")["amount"].sum()
    assert values["deals_won"] == len(rows("deals_won"))
    assert values["win_rate"] == pytest.approx(1 - rows("win_rate")["flag"].mean())
    assert values["on_time_delivery"] == pytest.approx(1 - rows("on_time_delivery")["flag"].mean())
    assert values["fulfilment_days"] == pytest.approx(
        rows("fulfilment_days")["fulfilment_days"].mean()
    )
    assert values["response_hours"] == pytest.approx(
        rows("response_hours")["response_hours"].mean()
    )
    assert values["leads"] == len(rows("leads"))
    assert values["new_clients"] == (~rows("new_clients")["flag"]).sum()


def test_rows_behind_one_manager_and_flagged_rows_first(crm):
    rows = rows_behind(crm, "on_time_delivery", pd.Period("2026-08", "M"), manager_id="M001")
    assert {"M001"} == set(rows["manager_id"])
    assert list(rows["flag"]) == sorted(rows["flag"], reverse=True)
    assert rows["flag"].any()  # the logistics slip: some of his deliveries came late
    assert (rows.loc[rows["flag"], "days_late"].fillna(1) > 0).all()


def test_rows_behind_say_why_when_the_source_lacks_the_table(raw_sales):
    del raw_sales["requests"]
    crm = validate_tables(raw_sales, source="no requests")
    rows = rows_behind(crm, "response_hours", pd.Period("2025-03", "M"))
    assert rows.empty
    assert "lacks what Response hours needs" in rows.attrs["note"]


def test_an_unknown_metric_is_refused(crm):
    with pytest.raises(ParamsError, match="Unknown metric 'nonsense'"):
        rows_behind(crm, "nonsense", SEPTEMBER)


def test_exploring_a_kpi_follows_its_run_of_misses_and_finds_the_worst_month(on_time):
    truth = ground_truth(DemoConfig())
    months = kpi_over_months(on_time)
    assert [pd.Period(m, "M") for m in ("2026-04", "2026-05", "2026-06", "2026-07", "2026-08",
                                          "2026-09")] == list(months["period"])  # fmt: skip
    slip = months.loc[months["period"].astype(str).isin(truth.slip_months)]
    assert not slip["met"].any()
    assert list(slip["months_running"]) == sorted(slip["months_running"])
    assert str(worst_month(on_time)) in truth.slip_months


def test_exploring_shows_every_manager_by_month_and_who_missed_most(on_time):
    grid = managers_over_months(on_time)
    names = set(on_time.crm.managers.loc[on_time.crm.managers["department_id"].eq("north"),
                                         "name"])  # fmt: skip
    assert set(grid.index) <= names and len(grid.columns) == 6
    kpis = on_time.history.manager_kpis
    missed = kpis.loc[kpis["kpi"].eq("on_time_delivery") & kpis["met"].eq(False), "manager_id"]
    assert missed.value_counts().max() == missed.value_counts()[most_missing_manager(on_time)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"department": "logistics"}, "not a sales department"),
        ({"kpi": "nonsense"}, "KPI 'nonsense' is not in the scheme"),
        ({"first": "2026-09", "last": "2026-05"}, "after the last"),
        ({"last": "2027-01"}, "lies after the data"),
    ],
)
def test_exploring_refuses_what_it_cannot_show(source, kwargs, message):
    given = {"department": "north", "kpi": "on_time_delivery", **kwargs}
    with pytest.raises(ParamsError, match=message):
        explore(given.pop("department"), given.pop("kpi"), str(source), SCHEME, **given)
