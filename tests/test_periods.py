"""Reporting periods: parsing months, their bounds, and the latest complete month."""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import pandas as pd
import pytest

from kpilib.errors import ParamsError
from kpilib.periods import (
    bounds,
    data_as_of,
    in_period,
    latest_complete_month,
    latest_complete_quarter,
    months_ending,
    parse_month,
    parse_quarter,
    quarter_months,
    resolve_period,
    resolve_quarter,
    rows_in_period,
)
from kpilib.schemas import CRM
from kpilib.validation import validate_tables

MARCH = pd.Period("2025-03", freq="M")


def source_with_last_deal_on(day: str) -> CRM:
    managers = pd.DataFrame({"manager_id": ["m1"], "department_id": ["d1"]}, dtype="str")
    deals = pd.DataFrame(
        {
            "deal_id": ["1", "2"],
            "manager_id": ["m1", "m1"],
            "stage": ["won", "open"],
            "created_on": ["2025-01-10", "2025-02-01"],
            "closed_on": [day, None],
            "amount": ["100", "50"],
        },
        dtype="str",
    )
    return validate_tables({"managers": managers, "deals": deals})


def test_parse_month_accepts_yyyy_mm():
    assert MARCH == parse_month("2025-03")


@pytest.mark.parametrize(
    "text",
    [
        "2025-3",
        "2025-13",
        "March",
        "2025-03-01",
        "202503",
        pytest.param("", id="empty"),
        pytest.param("NaT"),
    ],
)
def test_parse_month_refuses_anything_but_yyyy_mm(text):
    with pytest.raises(ParamsError, match="not a month in the form YYYY-MM"):
        parse_month(text)


def test_bounds_are_the_first_instant_and_the_first_instant_after():
    assert (pd.Timestamp("2025-03-01"), pd.Timestamp("2025-04-01")) == bounds(MARCH)


def test_in_period_is_half_open_and_missing_dates_are_outside():
    dates = pd.Series(
        pd.to_datetime(
            ["2025-02-28 23:59", "2025-03-01 00:00", "2025-03-31 23:59", "2025-04-01 00:00", None]
        )
    )
    assert [False, True, True, False, False] == in_period(dates, MARCH).tolist()


@pytest.mark.parametrize(
    "period",
    [MARCH, pd.Period("2024-03", "M"), pd.Period("2025-04", "M"), pd.Period("2025Q1", "Q")],
    ids=["month", "another month", "month without rows", "quarter"],
)
def test_rows_in_period_are_the_rows_in_period_selects(sales_crm, period):
    deals = sales_crm.deals
    expected = deals.loc[in_period(deals["closed_on"], period)]
    pd.testing.assert_frame_equal(
        expected, rows_in_period(sales_crm, "deals", deals, "closed_on", period)
    )


def test_rows_in_period_split_the_frame_by_month_once_per_source(sales_crm):
    deals = sales_crm.deals
    first = rows_in_period(sales_crm, "deals", deals, "closed_on", MARCH)
    assert first is rows_in_period(sales_crm, "deals", deals, "closed_on", MARCH)
    assert ["d11", "d12", "d13", "d14", "d16"] == first["deal_id"].tolist()


def test_months_ending_lists_the_months_up_to_the_period_oldest_first():
    expected = [
        pd.Period("2024-12", "M"),
        pd.Period("2025-01", "M"),
        pd.Period("2025-02", "M"),
        MARCH,
    ]
    assert expected == months_ending(MARCH, 4)


def test_months_ending_of_one_month_is_that_month():
    assert [MARCH] == months_ending(MARCH, 1)


def test_a_month_whose_last_day_has_a_deal_is_complete():
    assert MARCH == latest_complete_month(source_with_last_deal_on("2025-03-31"))


def test_a_month_the_data_ends_in_the_middle_of_is_not_complete():
    assert pd.Period("2025-02", "M") == latest_complete_month(
        source_with_last_deal_on("2025-03-15")
    )


def test_resolve_period_takes_the_users_month_or_the_latest_complete_one():
    crm = source_with_last_deal_on("2025-03-15")
    assert (pd.Period("2024-11", "M"), pd.Period("2025-02", "M")) == (
        resolve_period("2024-11", crm),
        resolve_period(None, crm),
    )


def test_a_period_after_the_data_is_refused(sales_crm):
    with pytest.raises(ParamsError, match="after the data"):
        resolve_period("2025-04", sales_crm)
    assert pd.Period("2025-03", "M") == resolve_period("2025-03", sales_crm)


def test_the_data_is_dated_by_its_latest_activity_in_any_table(raw_sales):
    # The last deal date is 2025-03-25; a request received on the 31st completes March.
    requests = raw_sales["requests"]
    late = requests.iloc[[0]].assign(
        request_id="r9", received_at="2025-03-31 18:00:00", first_response_at=""
    )
    crm = validate_tables({**raw_sales, "requests": pd.concat([requests, late])})
    assert pd.Timestamp("2025-03-31") == data_as_of(crm)
    assert pd.Period("2025-03", "M") == latest_complete_month(crm)


# --- quarters -------------------------------------------------------------------------------------


def test_parse_quarter_accepts_yyyyqn_and_lists_its_months():
    quarter = parse_quarter("2026Q3")
    assert pd.Period("2026Q3", freq="Q") == quarter
    assert [pd.Period(m, "M") for m in ("2026-07", "2026-08", "2026-09")] == quarter_months(quarter)


@pytest.mark.parametrize("text", ["2026Q5", "2026-Q3", "2026q3", "Q3 2026", "2026-09", "", "26Q1"])
def test_parse_quarter_refuses_anything_but_yyyyqn(text):
    with pytest.raises(ParamsError, match="not a quarter in the form YYYYQn"):
        parse_quarter(text)


def test_a_quarter_is_complete_when_its_last_month_is():
    assert pd.Period("2025Q1", "Q") == latest_complete_quarter(
        source_with_last_deal_on("2025-03-31")
    )
    assert pd.Period("2024Q4", "Q") == latest_complete_quarter(
        source_with_last_deal_on("2025-03-30")
    )
    assert pd.Period("2024Q4", "Q") == latest_complete_quarter(
        source_with_last_deal_on("2025-01-31")
    )


def test_resolve_quarter_takes_the_users_quarter_or_the_latest_complete_one():
    crm = source_with_last_deal_on("2025-03-15")
    assert (pd.Period("2024Q2", "Q"), pd.Period("2024Q4", "Q")) == (
        resolve_quarter("2024Q2", crm),
        resolve_quarter(None, crm),
    )
    with pytest.raises(ParamsError, match="Quarter 2025Q1 is not complete in the data"):
        resolve_quarter("2025Q1", crm)
