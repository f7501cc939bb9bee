"""The CRM data contract's models, checked directly with pandera."""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from kpilib.schemas import (
    CRM,
    DEFAULT_TIER,
    FOREIGN_KEYS,
    MODELS,
    OPTIONAL_TABLES,
    REQUIRED_TABLES,
    Deals,
    Managers,
    Plans,
    Requests,
    contract_columns,
)


def broken_rules(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> dict[str, list[int]]:
    """Each failed check of `model` on `frame`, with the (0-based) index of its failing rows."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        return {
            str(check): sorted({int(i) for i in group["index"].dropna()})
            for check, group in cases.groupby("check")
        }
    return {}


def deals(**columns: list[str | None]) -> pd.DataFrame:
    """One valid won deal per list position, with the given columns replaced."""
    size = len(next(iter(columns.values()))) if columns else 1
    base = {
        "deal_id": [str(n) for n in range(1, size + 1)],
        "manager_id": ["m1"] * size,
        "stage": ["won"] * size,
        "created_on": ["2025-03-01"] * size,
        "closed_on": ["2025-03-05"] * size,
        "amount": ["100"] * size,
    }
    return pd.DataFrame({**base, **columns}, dtype="str")


def test_only_managers_and_deals_are_required_tables():
    assert ("managers", "deals") == REQUIRED_TABLES
    assert set(MODELS) - {"managers", "deals"} == set(OPTIONAL_TABLES)


def test_contract_columns_list_the_required_columns_first_in_contract_order():
    expected = ["deal_id", "manager_id", "stage", "created_on", "closed_on", "amount"]
    assert expected == contract_columns("deals")[:6]


def test_deals_manager_id_is_a_foreign_key_to_managers():
    assert ("managers", "manager_id") == FOREIGN_KEYS[("deals", "manager_id")]


def test_identifiers_stay_strings_exactly_as_written():
    raw = pd.DataFrame(
        {"manager_id": ["007", "NO", "NA"], "department_id": ["01", "1", "NULL"]}, dtype="str"
    )
    validated = Managers.validate(raw)
    assert ["007", "NO", "NA"] == validated["manager_id"].tolist()
    assert ["01", "1", "NULL"] == validated["department_id"].tolist()


def test_extra_columns_of_a_crm_export_are_kept_untouched():
    validated = Deals.validate(deals(crm_colour=["blue"]))
    assert ["blue"] == validated["crm_colour"].tolist()


def test_a_valid_deal_is_coerced_to_the_contract_types():
    validated = Deals.validate(deals())
    assert pd.Timestamp("2025-03-05") == validated.at[0, "closed_on"]
    assert 100.0 == validated.at[0, "amount"]


def test_an_open_deal_needs_no_close_date():
    assert {} == broken_rules(Deals, deals(stage=["open"], closed_on=[None]))


@pytest.mark.parametrize(
    ("frame", "rule", "rows"),
    [
        (deals(stage=["won", "pending"]), "isin(['open', 'won', 'lost'])", [1]),
        (deals(amount=["100", "-1"]), "greater_than_or_equal_to(0)", [1]),
        (deals(deal_id=["7", "7"]), "field_uniqueness", [0, 1]),
        (
            deals(stage=["lost", "won"], closed_on=["2025-03-05", None]),
            "closed_on is required for won and lost deals",
            [1],
        ),
        (
            deals(closed_on=["2025-03-05", "2025-02-28"]),
            "closed_on must not be before created_on",
            [1],
        ),
    ],
    ids=["unknown-stage", "negative-amount", "duplicate-id", "won-without-close", "closed-early"],
)
def test_deals_rules_flag_the_offending_rows(frame, rule, rows):
    assert rows == broken_rules(Deals, frame)[rule]


def test_an_unparseable_date_is_a_coercion_failure_not_a_silent_nat():
    broken = broken_rules(Deals, deals(created_on=["2025-03-01", "2025-02-30"]))
    assert [1] == broken["coerce_dtype('datetime64[ns]')"]


def test_a_response_before_the_request_is_refused():
    requests = pd.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "received_at": ["2025-03-03 09:00:00", "2025-03-03 09:00:00"],
            "first_response_at": ["2025-03-03 10:00:00", "2025-03-03 08:59:00"],
        },
        dtype="str",
    )
    assert [1] == broken_rules(Requests, requests)[
        "first_response_at must not be before received_at"
    ]


@pytest.mark.parametrize(
    ("manager_id", "department_id", "valid"),
    [("m1", None, True), (None, "north", True), ("m1", "north", False), (None, None, False)],
    ids=["manager", "department", "both", "neither"],
)
def test_a_plan_belongs_to_exactly_one_manager_or_department(manager_id, department_id, valid):
    plans = pd.DataFrame(
        {
            "period": ["2025-03"],
            "metric": ["revenue"],
            "target": ["1000"],
            "manager_id": [manager_id],
            "department_id": [department_id],
        },
        dtype="str",
    )
    rule = "exactly one of manager_id and department_id must be set"
    assert valid == (rule not in broken_rules(Plans, plans))


@pytest.mark.parametrize("period", ["2025-3", "2025-13", "March", "2025-03-01"])
def test_a_plan_period_must_be_a_month_written_yyyy_mm(period):
    plans = pd.DataFrame(
        {"period": [period], "metric": ["revenue"], "target": ["1"], "department_id": ["north"]},
        dtype="str",
    )
    broken = broken_rules(Plans, plans)
    assert [[0]] == [rows for rule, rows in broken.items() if rule.startswith("str_matches")]


def test_crm_has_reports_absent_optional_tables():
    crm = CRM(managers=pd.DataFrame(), deals=pd.DataFrame(), leads=pd.DataFrame())
    assert (True, True, False) == (crm.has("leads"), crm.has("deals"), crm.has("deliveries"))


def test_crm_tables_are_the_present_ones_in_contract_order():
    leads = pd.DataFrame({"lead_id": ["l1"]})
    crm = CRM(leads=leads, managers=pd.DataFrame(), deals=pd.DataFrame())
    assert ["managers", "deals", "leads"] == list(crm.tables())
    assert crm.tables()["leads"] is leads


def test_the_default_tier_is_regular():
    assert "regular" == DEFAULT_TIER
