"""Indicators per manager and department for a month, on tiny hand-checked sources.

The expected figures come from the sales source in ``conftest.py`` (March 2025 unless said):

    m1 (north, star): won d11 1,600,000 (c4's first, from lead l1) and d12 50,000 (c1 again);
                      lost d13 70,000. Deliveries: d11 4 days after close, a day early;
                      d12 8 days after close, 3 days late. Requests: 4 h and 14 h.
    m2 (north):       won d14 180,000 (c5's first, from lead l3); d15 open. Delivery of d14
                      due 2025-03-20, not delivered. One request, unanswered.
    m3 (south):       won d16 60,000 (c3 again); delivered 3 days after close, on the day due.
                      One request answered in 2.5 h. No leads.
    March 2024:       m1 100,000, m2 200,000, m3 50,000.
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kpilib.metrics import (
    METRICS,
    MetricSettings,
    closed_deals,
    deals_with_department,
    department_deals,
    department_names,
    entities,
    indicators,
    lookup,
    revenue_by,
)
from kpilib.testing import vasily_valery
from kpilib.validation import validate_tables

MARCH = pd.Period("2025-03", freq="M")
YEAR_AGO = pd.Period("2024-03", freq="M")


def column(frame: pd.DataFrame, metric: str) -> dict[str, float]:
    return {key: float(value) for key, value in frame[metric].items()}


# --- the documents' example -------------------------------------------------------------------


def test_the_documents_example_net_profit_of_vasily_and_valery():
    actual = indicators(vasily_valery(), MARCH, metrics=("revenue", "extra_costs", "net_profit"))
    expected = pd.DataFrame(
        {
            "revenue": [400_000.0, 400_000.0],
            "extra_costs": [150_000.0, 0.0],
            "net_profit": [100_000.0, 250_000.0],
        },
        index=pd.Index(["vasily", "valery"], name="manager_id", dtype="str"),
    )
    pd.testing.assert_frame_equal(expected, actual)


def test_extra_costs_follow_the_hourly_cost_setting():
    actual = indicators(
        vasily_valery(),
        MARCH,
        settings=MetricSettings(technical_hour_cost=2000),
        metrics=("net_profit",),
    )
    assert {"vasily": 50_000.0, "valery": 250_000.0} == column(actual, "net_profit")


def test_an_unknown_cost_price_is_no_data_not_a_zero_cost():
    tables = vasily_valery().deals.assign(cost_price=[150_000.0, np.nan])
    crm = validate_tables({"managers": vasily_valery().managers, "deals": tables})
    actual = indicators(crm, MARCH, metrics=("net_profit",))
    assert [100_000.0, True] == [
        actual.at["vasily", "net_profit"],
        bool(np.isnan(actual.at["valery", "net_profit"])),
    ]


# --- deal indicators --------------------------------------------------------------------------


def test_revenue_deals_won_win_rate_and_average_deal(sales_crm):
    actual = indicators(sales_crm, MARCH, metrics=("revenue", "deals_won", "win_rate", "avg_deal"))
    expected = pd.DataFrame(
        {
            "revenue": [1_650_000.0, 180_000.0, 60_000.0],
            "deals_won": [2.0, 1.0, 1.0],
            "win_rate": [2 / 3, 1.0, 1.0],
            "avg_deal": [825_000.0, 180_000.0, 60_000.0],
        },
        index=pd.Index(["m1", "m2", "m3"], name="manager_id", dtype="str"),
    )
    pd.testing.assert_frame_equal(expected, actual)


def test_a_manager_without_deals_in_the_month_has_zero_revenue_and_no_win_rate(sales_crm):
    # June 2024 lies between the data's first and last dates, with no deal in it.
    april = indicators(
        sales_crm, pd.Period("2024-06", "M"), metrics=("revenue", "deals_won", "win_rate")
    )
    assert [0.0, 0.0, True] == [
        april.at["m1", "revenue"],
        april.at["m1", "deals_won"],
        bool(np.isnan(april.at["m1", "win_rate"])),
    ]


def test_revenue_growth_against_the_same_month_a_year_ago(sales_crm):
    settings = MetricSettings(baseline=(YEAR_AGO,))
    actual = indicators(sales_crm, MARCH, settings=settings, metrics=("revenue_growth",))
    expected = {
        "m1": 1_650_000 / 100_000 - 1,
        "m2": 180_000 / 200_000 - 1,
        "m3": 60_000 / 50_000 - 1,
    }
    assert pytest.approx(expected) == column(actual, "revenue_growth")


def test_revenue_growth_without_a_baseline_is_no_data(sales_crm):
    no_baseline = indicators(sales_crm, MARCH, metrics=("revenue_growth",))
    before_data = indicators(
        sales_crm,
        YEAR_AGO,
        metrics=("revenue_growth",),
        settings=MetricSettings(baseline=(pd.Period("2023-03", "M"),)),
    )
    assert (True, True) == (
        no_baseline["revenue_growth"].isna().all(),
        before_data["revenue_growth"].isna().all(),
    )


# --- new clients ------------------------------------------------------------------------------


def test_new_clients_count_first_won_deals_of_at_least_the_minimum_contract(sales_crm):
    settings = MetricSettings(min_contract=1_500_000)
    actual = indicators(sales_crm, MARCH, settings=settings, metrics=("new_clients",))
    # c4's first contract (1.6M) counts; c5's (180,000) is below the minimum; c1 was won in 2024.
    assert {"m1": 1.0, "m2": 0.0, "m3": 0.0} == column(actual, "new_clients")


def test_new_clients_without_a_minimum_count_every_first_won_deal_of_the_month(sales_crm):
    actual = indicators(sales_crm, MARCH, metrics=("new_clients",))
    assert {"m1": 1.0, "m2": 1.0, "m3": 0.0} == column(actual, "new_clients")


def test_a_client_first_won_long_ago_is_not_new_again(sales_crm):
    actual = indicators(sales_crm, YEAR_AGO, metrics=("new_clients",))
    assert {"m1": 1.0, "m2": 1.0, "m3": 1.0} == column(actual, "new_clients")


# --- service departments' indicators ----------------------------------------------------------


def test_on_time_delivery_counts_an_undelivered_due_delivery_as_late(sales_crm):
    actual = indicators(sales_crm, MARCH, metrics=("on_time_delivery",))
    assert {"m1": 0.5, "m2": 0.0, "m3": 1.0} == column(actual, "on_time_delivery")


def test_fulfilment_days_is_the_mean_from_close_to_delivery(sales_crm):
    actual = indicators(sales_crm, MARCH, metrics=("fulfilment_days",))
    assert {"m1": (4 + 8) / 2, "m3": 3.0} == {
        key: value for key, value in column(actual, "fulfilment_days").items() if key != "m2"
    }
    assert np.isnan(actual.at["m2", "fulfilment_days"])  # nothing delivered yet


def test_response_hours_is_the_mean_over_answered_requests(sales_crm):
    actual = indicators(sales_crm, MARCH, metrics=("response_hours", "unanswered_requests"))
    assert {"m1": (4 + 14) / 2, "m3": 2.5} == {
        key: value for key, value in column(actual, "response_hours").items() if key != "m2"
    }
    assert np.isnan(actual.at["m2", "response_hours"])
    assert {"m1": 0.0, "m2": 1.0, "m3": 0.0} == column(actual, "unanswered_requests")


def test_leads_lead_conversion_and_cost_per_lead(sales_crm):
    actual = indicators(sales_crm, MARCH, metrics=("leads", "lead_conversion", "cost_per_lead"))
    expected = pd.DataFrame(
        {
            "leads": [2.0, 1.0, 0.0],
            "lead_conversion": [0.5, 1.0, np.nan],
            "cost_per_lead": [(1000 + 3000) / 2, 2000.0, np.nan],
        },
        index=pd.Index(["m1", "m2", "m3"], name="manager_id", dtype="str"),
    )
    pd.testing.assert_frame_equal(expected, actual)


@pytest.mark.parametrize(
    ("stage", "closed_on", "expected"),
    [
        ("won", "2025-02-25", 1.0),
        ("won", "2025-03-01", 0.0),
        ("lost", "2025-02-25", 0.0),
    ],
    ids=["won in the month", "won after the month", "lost"],
)
def test_a_lead_converts_by_a_deal_won_before_the_months_end(raw_sales, stage, closed_on, expected):
    # l4 is m2's only February lead.
    deal = {"deal_id": "d17", "manager_id": "m2", "stage": stage, "created_on": "2025-02-21",
            "closed_on": closed_on, "amount": "10000", "lead_id": "l4"}  # fmt: skip
    raw_sales["deals"] = pd.concat(
        [raw_sales["deals"], pd.DataFrame([deal], dtype="str")], ignore_index=True
    )
    february = pd.Period("2025-02", "M")
    actual = indicators(validate_tables(raw_sales), february, metrics=("lead_conversion",))
    assert expected == actual.at["m2", "lead_conversion"]


# --- no data is not zero ----------------------------------------------------------------------

NEEDS_OPTIONAL_TABLE = (
    "on_time_delivery",
    "fulfilment_days",
    "response_hours",
    "unanswered_requests",
    "leads",
    "lead_conversion",
    "cost_per_lead",
)


@pytest.mark.parametrize("metric", NEEDS_OPTIONAL_TABLE)
def test_an_absent_optional_table_is_no_data_not_zero(metric):
    actual = indicators(vasily_valery(), MARCH, metrics=(metric,))
    assert [True, True] == actual[metric].isna().tolist()


def test_new_clients_without_client_ids_is_no_data():
    assert indicators(vasily_valery(), MARCH, metrics=("new_clients",))["new_clients"].isna().all()


def test_a_present_table_without_rows_in_the_month_counts_zero(raw_sales):
    raw_sales["leads"] = raw_sales["leads"].iloc[0:0]
    raw_sales["deals"] = raw_sales["deals"].drop(columns="lead_id")
    crm = validate_tables(raw_sales)
    actual = indicators(crm, MARCH, metrics=("leads", "unanswered_requests"))
    assert {"m1": 0.0, "m2": 0.0, "m3": 0.0} == column(actual, "leads")
    assert {"m1": 0.0, "m2": 1.0, "m3": 0.0} == column(actual, "unanswered_requests")


def test_a_month_before_the_data_begins_is_all_no_data(sales_crm):
    actual = indicators(sales_crm, pd.Period("2024-02", "M"))
    assert (["m1", "m2", "m3"], True) == (actual.index.tolist(), actual.isna().all().all())


def test_a_source_without_any_deal_is_all_no_data_and_does_not_crash():
    crm = validate_tables(
        {
            "managers": pd.DataFrame({"manager_id": ["m1"], "department_id": ["d1"]}, dtype="str"),
            "deals": pd.DataFrame(
                {
                    name: pd.Series([], dtype="str")
                    for name in (
                        "deal_id",
                        "manager_id",
                        "stage",
                        "created_on",
                        "closed_on",
                        "amount",
                    )
                }
            ),
        }
    )
    actual = indicators(crm, MARCH, metrics=("revenue", "deals_won"))
    assert (["m1"], True) == (actual.index.tolist(), actual.isna().all().all())


def test_every_indicator_is_a_float_column_and_all_registered_ones_are_computed(sales_crm):
    actual = indicators(sales_crm, MARCH)
    assert list(METRICS) == actual.columns.tolist()
    assert {"float64"} == {str(dtype) for dtype in actual.dtypes}


def test_indicators_do_not_mutate_the_source(sales_crm):
    before = {name: getattr(sales_crm, name).copy() for name in ("managers", "deals", "leads")}
    indicators(sales_crm, MARCH, "department")
    indicators(sales_crm, MARCH, settings=MetricSettings(baseline=(YEAR_AGO,)))
    for name, frame in before.items():
        pd.testing.assert_frame_equal(frame, getattr(sales_crm, name))


def test_a_months_indicators_do_not_depend_on_the_months_computed_before_on_the_source(
    raw_sales,
):
    months = [MARCH, YEAR_AGO, pd.Period("2025-02", "M"), pd.Period("2024-02", "M")]
    settings = MetricSettings(baseline=(YEAR_AGO,), min_contract=100000.0)
    shared = validate_tables({name: frame.copy() for name, frame in raw_sales.items()})
    for level in ("manager", "department"):
        for month in reversed(months):
            alone = validate_tables({name: frame.copy() for name, frame in raw_sales.items()})
            pd.testing.assert_frame_equal(
                indicators(alone, month, level, settings),
                indicators(shared, month, level, settings),
            )


def test_closed_deals_are_the_won_and_lost_deals_closed_in_the_period_with_departments(
    sales_crm,
):
    march = closed_deals(sales_crm, MARCH)
    assert ["d11", "d12", "d13", "d14", "d16"] == march["deal_id"].tolist()
    assert ["north", "north", "north", "north", "south"] == march["department_id"].tolist()
    pd.testing.assert_frame_equal(march, closed_deals(sales_crm, pd.Period("2025Q1", "Q")))
    assert closed_deals(sales_crm, pd.Period("2025-04", "M")).empty


# --- entities and levels ----------------------------------------------------------------------


def test_managers_of_a_month_are_those_employed_in_it_or_closing_deals_in_it(raw_sales, table):
    raw_sales["managers"] = table("""
        manager_id | department_id | hired_on   | left_on
        m1         | north         |            |
        m2         | north         | 2025-03-31 |
        m3         | south         |            | 2025-02-15
        m4         | south         | 2023-01-01 | 2025-02-15
        m5         | south         | 2025-04-01 |
    """)
    crm = validate_tables(raw_sales)
    # m3 left in February but closed d16 in March; m4 left without deals; m5 starts in April.
    assert ["m1", "m2", "m3"] == entities(crm, MARCH, "manager").tolist()


def test_departments_are_the_sales_departments_only(sales_crm):
    assert ["north", "south"] == entities(sales_crm, MARCH, "department").tolist()


ADDITIVE = (
    "revenue",
    "net_profit",
    "deals_won",
    "new_clients",
    "unanswered_requests",
    "leads",
    "new_business_revenue",
    "existing_client_revenue",
)


def test_department_level_sums_its_managers(sales_crm):
    managers = indicators(sales_crm, MARCH, metrics=ADDITIVE)
    departments = indicators(sales_crm, MARCH, "department", metrics=ADDITIVE)
    owners = sales_crm.managers.set_index("manager_id")["department_id"]
    summed = managers.groupby(managers.index.map(owners)).sum(min_count=1)
    pd.testing.assert_frame_equal(summed, departments, check_names=False)
    assert 1_830_000.0 == departments.at["north", "revenue"]


def test_department_level_ratios_pool_the_managers_rows(sales_crm):
    actual = indicators(
        sales_crm, MARCH, "department", metrics=("win_rate", "on_time_delivery", "fulfilment_days")
    )
    expected = pd.DataFrame(
        {
            "win_rate": [3 / 4, 1.0],
            "on_time_delivery": [1 / 3, 1.0],
            "fulfilment_days": [(4 + 8) / 2, 3.0],
        },
        index=pd.Index(["north", "south"], name="department_id", dtype="str"),
    )
    pd.testing.assert_frame_equal(expected, actual)


# --- revenue by dimension ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dimension", "expected"),
    [
        ("product", {"Servers": 1_660_000.0, "Support": 230_000.0}),
        ("segment", {"Enterprise": 1_600_000.0, "SMB": 290_000.0}),
        ("sale_type", {"new": 1_780_000.0, "repeat": 110_000.0}),
    ],
)
def test_revenue_by_dimension_largest_first_with_shares(sales_crm, dimension, expected):
    actual = revenue_by(sales_crm, MARCH, dimension)
    assert list(expected) == actual[dimension].tolist()
    assert expected == dict(zip(actual[dimension], actual["revenue"], strict=True))
    assert pytest.approx([v / 1_890_000 for v in expected.values()]) == actual["share"].tolist()


def test_revenue_by_for_one_department(sales_crm):
    actual = revenue_by(sales_crm, MARCH, "product", department_id="south")
    assert [("Servers", 60_000.0, 1.0)] == list(actual.itertuples(index=False, name=None))


def test_revenue_by_a_dimension_the_source_lacks_is_empty():
    actual = revenue_by(vasily_valery(), MARCH, "segment")
    assert (["segment", "revenue", "share"], 0) == (actual.columns.tolist(), len(actual))


def test_department_names_fall_back_to_the_id_where_the_name_is_missing():
    departments = pd.DataFrame(
        {"department_id": ["north", "south", "007"], "name": ["North", None, ""]}, dtype="str"
    )
    assert {"north": "North", "south": "south", "007": "007"} == department_names(
        departments
    ).to_dict()
    assert {"east": "east"} == department_names(pd.DataFrame({"department_id": ["east"]})).to_dict()


def test_a_departments_deals_are_its_rows_of_all_deals_in_their_order(sales_crm):
    deals = deals_with_department(sales_crm)
    for department in deals["department_id"].dropna().unique():
        expected = deals.loc[deals["department_id"].eq(department)]
        pd.testing.assert_frame_equal(expected, department_deals(sales_crm, department))
    assert department_deals(sales_crm, "nowhere").empty
    assert department_deals(sales_crm, department) is department_deals(sales_crm, department)


def test_lookup_indexes_a_column_by_its_key_once_per_source(sales_crm):
    names = lookup(sales_crm, "products", "product_id", "name")
    expected = sales_crm.products.set_index("product_id")["name"]
    pd.testing.assert_series_equal(expected, names)
    assert names is lookup(sales_crm, "products", "product_id", "name")
