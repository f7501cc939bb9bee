"""Validating raw tables against the data contract: every problem at once, in words."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpilib.errors import DataContractError
from kpilib.testing import vasily_valery, vasily_valery_tables
from kpilib.validation import _TIME_ZONE, DATE_RULE, _is_in, validate_tables, zoned

# --- helpers -----------------------------------------------------------------------------------


def contract_error(tables: dict[str, pd.DataFrame]) -> str:
    """The message of the DataContractError that validating `tables` raises."""
    with pytest.raises(DataContractError) as raised:
        validate_tables(tables)
    return str(raised.value)


def lines_with(message: str, rule: str) -> list[str]:
    return [line for line in message.splitlines() if rule in line]


def reported_rows(line: str) -> list[int]:
    return [int(n) for n in re.findall(r"\brow (\d+)", line)]


def problem_count(message: str) -> int:
    return int(re.search(r"\((\d+) problem\(s\)", message).group(1))


def small_source() -> dict[str, pd.DataFrame]:
    """Two managers and three valid deals (rows 1-3), all text, ready to be broken."""
    managers = pd.DataFrame(
        {"manager_id": ["m1", "m2"], "department_id": ["d1", "d1"]}, dtype="str"
    )
    deals = pd.DataFrame(
        {
            "deal_id": ["d1", "d2", "d3"],
            "manager_id": ["m1", "m1", "m2"],
            "stage": ["won", "won", "lost"],
            "created_on": ["2025-03-01", "2025-03-02", "2025-03-03"],
            "closed_on": ["2025-03-05", "2025-03-06", "2025-03-07"],
            "amount": ["100", "200", "300"],
        },
        dtype="str",
    )
    return {"managers": managers, "deals": deals}


def broken(table: str, row: int, **values: str | None) -> dict[str, pd.DataFrame]:
    """`small_source` with the given cells of one 1-based data row replaced."""
    tables = small_source()
    if table == "plans":
        tables["plans"] = pd.DataFrame(
            {"period": ["2025-03"], "metric": ["revenue"], "target": ["1000"]}, dtype="str"
        )
    frame = tables[table]
    for column, value in values.items():
        if column not in frame:
            frame[column] = pd.Series([None] * len(frame), dtype="str")
        frame.loc[row - 1, column] = value
    return tables


# --- refusing a source ------------------------------------------------------------------------


def test_in_memory_tables_without_deals_are_refused_naming_deals():
    with pytest.raises(DataContractError, match=r"required table\(s\) deals\."):
        validate_tables({"managers": small_source()["managers"]})


# One broken rule at a time: (input, where, rule, rows). `where` is ``table.column`` for a
# column's rule and the table alone for a rule across columns.
ONE_PROBLEM = [
    pytest.param(
        broken("deals", 2, created_on="2025-02-30"),
        "deals.created_on",
        "cannot be read as a date",
        [2],
        id="unparseable-date",
    ),
    pytest.param(
        broken("deals", 2, created_on="9999-12-31"),
        "deals.created_on",
        "must be a date from 1677-09-22 to 2262-04-10",
        [2],
        id="date-beyond-what-a-report-holds",
    ),
    pytest.param(
        broken("deals", 3, amount="-5"),
        "deals.amount",
        "must be at least 0",
        [3],
        id="negative-amount",
    ),
    pytest.param(
        broken("deals", 2, amount="inf"),
        "deals.amount",
        "must be a finite number",
        [2],
        id="infinite-amount",
    ),
    pytest.param(
        broken("deals", 1, amount="1e400"),
        "deals.amount",
        "must be a finite number",
        [1],
        id="amount-beyond-a-float",
    ),
    pytest.param(
        broken("deals", 3, cost_price="Infinity"),
        "deals.cost_price",
        "must be a finite number",
        [3],
        id="infinite-cost-price",
    ),
    pytest.param(
        broken("plans", 1, target="-inf", department_id="d1"),
        "plans.target",
        "must be a finite number",
        [1],
        id="infinite-plan-target",
    ),
    pytest.param(
        broken("deals", 2, stage="pending"),
        "deals.stage",
        "must be one of open, won, lost",
        [2],
        id="unknown-stage",
    ),
    pytest.param(
        broken("deals", 3, deal_id="d1"),
        "deals.deal_id",
        "values must be unique",
        [1, 3],
        id="duplicate-id",
    ),
    pytest.param(
        broken("deals", 3, manager_id="ghost"),
        "deals.manager_id",
        "must refer to an existing managers.manager_id",
        [3],
        id="unknown-manager",
    ),
    pytest.param(
        broken("deals", 2, closed_on=None),
        "deals",
        "closed_on is required for won and lost deals",
        [2],
        id="won-without-close",
    ),
    pytest.param(
        broken("deals", 3, closed_on="2025-03-01"),
        "deals",
        "closed_on must not be before created_on",
        [3],
        id="closed-before-created",
    ),
    pytest.param(
        broken("plans", 1, manager_id="m1", department_id="d1"),
        "plans",
        "exactly one of manager_id and department_id must be set",
        [1],
        id="plan-with-two-owners",
    ),
]


@pytest.mark.parametrize(("tables", "where", "rule", "rows"), ONE_PROBLEM)
def test_a_broken_rule_is_one_problem_naming_table_column_rule_count_and_rows(
    tables, where, rule, rows
):
    message = contract_error(tables)
    lines = lines_with(message, rule)
    assert 1 == problem_count(message)
    assert 1 == len(lines)
    assert lines[0].startswith(f"- {where}")
    assert f": {len(rows)} row(s): " in lines[0]
    assert rows == reported_rows(lines[0])


def test_infinite_extra_hours_and_lead_costs_are_refused_and_missing_ones_are_not():
    tables = small_source()
    tables["deals"]["extra_hours"] = pd.Series(["2", "inf", None], dtype="str")
    tables["leads"] = pd.DataFrame(
        {"lead_id": ["l1", "l2"], "created_on": ["2025-03-01"] * 2, "cost": [None, "Infinity"]},
        dtype="str",
    )
    message = contract_error(tables)
    assert 2 == problem_count(message)
    [hours] = lines_with(message, "deals.extra_hours")
    assert "- deals.extra_hours: must be a finite number: 1 row(s): row 2 ('inf')" == hours
    [cost] = lines_with(message, "leads.cost")
    assert "- leads.cost: must be a finite number: 1 row(s): row 2 ('Infinity')" == cost


def test_an_unreadable_number_does_not_hide_the_other_rules_of_its_column():
    # "n/a" cannot be a number; the rows below it are still compared, in the same round
    tables = small_source()
    tables["deals"]["amount"] = ["n/a", "inf", "-3"]
    tables["deals"]["cost_price"] = ["1", "x", "-2"]
    message = contract_error(tables)
    assert 5 == problem_count(message)
    assert [1] == reported_rows(lines_with(message, "deals.amount: cannot be read")[0])
    assert [2] == reported_rows(lines_with(message, "deals.amount: must be a finite")[0])
    assert [3] == reported_rows(lines_with(message, "deals.amount: must be at least 0")[0])
    assert [2] == reported_rows(lines_with(message, "deals.cost_price: cannot be read")[0])
    assert [3] == reported_rows(lines_with(message, "deals.cost_price: must be at least 0")[0])


def test_a_column_that_cannot_be_read_at_all_is_one_problem(tmp_path):
    # Parquet can hold a list in every cell: no row can be read, none is checked further
    tables = small_source()
    tables["deals"]["amount"] = [[1.0], [2.0], [-3.0]]
    tables["deals"].to_parquet(tmp_path / "deals.parquet")
    tables["deals"] = pd.read_parquet(tmp_path / "deals.parquet")
    message = contract_error(tables)
    assert ["- deals.amount: cannot be read as a number"] == lines_with(message, "deals.amount")
    assert 1 == problem_count(message)


def test_a_broken_value_is_shown_as_the_source_wrote_it():
    [line] = lines_with(contract_error(broken("deals", 1, amount="1e400")), "deals.amount")
    assert line.endswith("row 1 ('1e400')")  # not the inf it reads as


def test_dates_read_as_dates_beyond_what_a_report_holds_are_refused_with_their_rows():
    # Parquet and databases hand over dates as dates, in a wider range than the kit's.
    tables = small_source()
    tables["deals"]["created_on"] = pd.to_datetime(
        pd.Series(["2025-03-01", "9999-12-31", "2025-03-03"])
    ).astype("datetime64[us]")
    message = contract_error(tables)
    assert 1 == problem_count(message)
    [line] = lines_with(message, "deals.created_on")
    assert [2] == reported_rows(line)
    assert "('9999-12-31 00:00:00')" in line


def test_the_range_of_dates_is_whole_days_as_its_rule_says():
    tables = small_source()
    tables["deals"]["created_on"] = ["1677-09-21 12:00", "2262-04-10 23:59", "2262-04-11"]
    tables["deals"]["stage"] = "open"
    tables["deals"]["closed_on"] = None
    [line] = lines_with(contract_error(tables), "deals.created_on")
    assert [1, 3] == reported_rows(line)


def test_a_date_column_with_time_zones_is_refused_row_by_row_not_moved_to_utc():
    # Parquet and databases can hand over zoned timestamps; 01:00 in Moscow is the day before
    # in UTC, so the day cannot be told: refused as the same text would be.
    tables = small_source()
    tables["deals"]["created_on"] = pd.Series(
        pd.to_datetime(["2025-04-01 01:00", "2025-03-02 00:00", None])
    ).dt.tz_localize("Europe/Moscow")
    message = contract_error(tables)
    [line] = lines_with(message, "deals.created_on: cannot be read as a date")
    assert [1, 2] == reported_rows(line)
    assert "('2025-04-01 01:00:00+03:00')" in line
    [empty] = lines_with(message, "deals.created_on: value is required")
    assert [3] == reported_rows(empty)


def test_an_empty_required_date_is_reported_beside_a_refused_one_in_its_column():
    tables = small_source()
    tables["deals"]["created_on"] = [None, "9999-12-31", "2025-03-03"]
    message = contract_error(tables)
    assert 2 == problem_count(message)
    [empty] = lines_with(message, "deals.created_on: value is required")
    assert [1] == reported_rows(empty)


def test_year_one_is_refused_with_its_row():
    message = contract_error(broken("deals", 1, closed_on="0001-01-01"))
    [line] = lines_with(message, "deals.closed_on")
    assert "must be a date from 1677-09-22 to 2262-04-10" in line
    assert [1] == reported_rows(line)


def test_an_unparseable_date_names_table_column_rule_and_row():
    message = contract_error(broken("deals", 2, created_on="2025-02-30"))
    [line] = lines_with(message, "cannot be read as")
    assert f"- deals.created_on: {DATE_RULE}: 1 row(s): row 2 ('2025-02-30')" == line


def test_a_problem_shows_its_first_five_rows_and_counts_the_rest():
    tables = small_source()
    tables["deals"] = pd.concat([tables["deals"]] * 3, ignore_index=True).assign(
        deal_id=[f"d{n}" for n in range(9)], amount=["1", "-1", "-2"] * 3
    )
    [line] = lines_with(contract_error(tables), "must be at least 0")
    assert "- deals.amount: must be at least 0: 6 row(s): " in line
    assert [2, 3, 5, 6, 8] == reported_rows(line)
    assert line.endswith(", and 1 more")
    assert "row 2 ('-1')" in line  # as the source wrote it


def test_problems_of_several_tables_are_collected_into_one_error():
    tables = broken("deals", 2, amount="-5")
    tables["deals"].loc[2, "stage"] = "pending"
    managers = tables["managers"]
    tables["managers"] = pd.concat([managers, managers.iloc[[0]]], ignore_index=True)
    tables["plans"] = pd.DataFrame(
        {"period": ["2025-3"], "metric": ["revenue"], "target": ["1"], "department_id": ["d1"]},
        dtype="str",
    )
    message = contract_error(tables)
    expected = {
        "- managers.manager_id: values must be unique": [1, 3],
        "- deals.amount: must be at least 0": [2],
        "- deals.stage: must be one of open, won, lost": [3],
        "- plans.period: must match the pattern": [1],
    }
    assert expected == {
        start: reported_rows(line)
        for start in expected
        for line in message.splitlines()
        if line.startswith(start)
    }
    assert 4 == problem_count(message)


def test_an_unparseable_date_does_not_hide_a_deal_closed_before_it_was_created():
    tables = broken("deals", 2, created_on="someday")
    tables["deals"].loc[2, "closed_on"] = "2025-03-01"
    [line] = lines_with(contract_error(tables), "closed_on must not be before created_on")
    assert [3] == reported_rows(line)


def test_an_unparseable_timestamp_does_not_hide_a_response_before_its_request():
    tables = small_source()
    tables["requests"] = pd.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "received_at": ["yesterday", "2025-03-03 10:00:00"],
            "first_response_at": [None, "2025-03-03 09:00:00"],
        },
        dtype="str",
    )
    [line] = lines_with(contract_error(tables), "first_response_at must not be before received_at")
    assert [2] == reported_rows(line)


def test_an_unknown_manager_is_reported_even_when_the_deals_have_other_problems():
    tables = broken("deals", 2, amount="-5")
    tables["deals"].loc[2, "manager_id"] = "ghost"
    [line] = lines_with(contract_error(tables), "must refer to an existing managers.manager_id")
    assert line.startswith("- deals.manager_id")
    assert [3] == reported_rows(line)


def test_integer_ids_of_a_table_that_breaks_a_rule_are_compared_as_the_contracts_text():
    # A database gives integer ids; a table with a broken rule is compared as read, and its
    # manager 1 must still be the validated managers' '1'.
    managers = pd.DataFrame({"manager_id": [1, 2], "department_id": [10, 10]})
    deals = pd.DataFrame(
        {
            "deal_id": [1, 2, 3],
            "manager_id": [1, 2, 7],
            "stage": ["won", "won", "open"],
            "created_on": ["2025-03-01"] * 3,
            "closed_on": ["2025-03-02", "2025-03-02", None],
            "amount": [5.0, -1.0, 3.0],
        }
    )
    message = contract_error({"managers": managers, "deals": deals})
    assert 2 == problem_count(message)
    [line] = lines_with(message, "must refer to an existing managers.manager_id")
    assert [3] == reported_rows(line)
    # and the other way round: the referenced table breaks a rule, the deals are valid
    deals = deals.assign(amount=[5.0, 1.0, 3.0])
    message = contract_error(
        {"managers": managers.assign(department_id=[10, None]), "deals": deals}
    )
    [line] = lines_with(message, "must refer to an existing managers.manager_id")
    assert [3] == reported_rows(line)


def test_every_problem_of_a_bad_source_is_collected_into_one_error():
    deals = pd.DataFrame(
        {
            "deal_id": ["d1", "d2", "d3", "d4", "d1", "d6", "d7", "d8"],
            "manager_id": ["m1", "m1", "m1", "m1", "m1", "m1", "m1", "ghost"],
            "stage": ["won", "won", "won", "pending", "won", "won", "lost", "won"],
            "created_on": ["2025-03-01", "2025-02-30"] + ["2025-03-01"] * 6,
            "closed_on": ["2025-03-05"] * 5 + [None, "2025-02-01", "2025-03-05"],
            "amount": ["100", "100", "-5", "100", "100", "100", "100", "100"],
        },
        dtype="str",
    )
    plans = pd.DataFrame(
        {
            "period": ["2025-03"],
            "metric": ["revenue"],
            "target": ["1"],
            "manager_id": ["m1"],
            "department_id": ["d1"],
        },
        dtype="str",
    )
    message = contract_error(
        {"managers": small_source()["managers"], "deals": deals, "plans": plans}
    )
    expected = {
        "cannot be read as a date": [2],
        "must be at least 0": [3],
        "must be one of open, won, lost": [4],
        "values must be unique": [1, 5],
        "closed_on is required for won and lost deals": [6],
        "closed_on must not be before created_on": [7],
        "must refer to an existing managers.manager_id": [8],
        "exactly one of manager_id and department_id must be set": [1],
    }
    assert expected == {
        rule: [row for line in lines_with(message, rule) for row in reported_rows(line)]
        for rule in expected
    }
    assert 8 == problem_count(message)


# --- contract defaults ------------------------------------------------------------------------


def test_a_manager_without_a_tier_column_is_regular():
    assert ["regular", "regular"] == vasily_valery().managers["tier"].tolist()


def test_a_blank_tier_becomes_regular_with_a_note(sales_crm):
    assert ["star", "regular", "regular"] == sales_crm.managers["tier"].tolist()
    assert ["1 manager(s) without a tier: 'regular' assumed."] == [
        note for note in sales_crm.notes if "tier" in note
    ]


def test_sale_type_is_derived_from_each_clients_first_won_deal_with_a_note(sales_crm):
    expected = {
        "d01": "new",  # c1's first won deal
        "d02": "new",  # c2's first won deal
        "d03": "new",  # c3's first won deal
        "d11": "new",  # c4's first won deal
        "d12": "repeat",  # c1 again, a year later
        "d13": "repeat",  # lost, but c2 was won before it was created
        "d14": "new",  # c5's first won deal
        "d15": "repeat",  # open, c2 was won before
        "d16": "repeat",  # c3 again
    }
    assert expected == dict(
        zip(sales_crm.deals["deal_id"], sales_crm.deals["sale_type"], strict=True)
    )
    assert any(
        note.startswith("9 deal(s) without a sale type: derived") for note in sales_crm.notes
    )


def test_a_sale_type_given_by_the_source_is_kept(raw_sales):
    raw_sales["deals"]["sale_type"] = pd.Series([None] * 9, dtype="str")
    raw_sales["deals"].loc[4, "sale_type"] = "upsell"  # d12
    crm = validate_tables(raw_sales)
    types = dict(zip(crm.deals["deal_id"], crm.deals["sale_type"], strict=True))
    assert ("upsell", "new") == (types["d12"], types["d11"])
    assert any(note.startswith("8 deal(s) without a sale type") for note in crm.notes)


# --- dates, sale types, plans -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["03.02.2025", "02/03/2025", "3 Feb 2025"])
def test_an_ambiguous_local_date_format_is_refused_not_guessed(text):
    [line] = lines_with(contract_error(broken("deals", 2, created_on=text)), "deals.created_on")
    assert "cannot be read as a date" in line and [2] == reported_rows(line)


@pytest.mark.parametrize("text", ["2025-03-31T23:30:00+03:00", "2025-03-31 22:00Z"])
def test_a_timestamp_with_a_time_zone_is_refused_rather_than_shifted(text):
    [line] = lines_with(contract_error(broken("deals", 2, created_on=text)), "deals.created_on")
    assert "no time zone" in line and [2] == reported_rows(line)


_DIGIT = st.sampled_from(["0", "1", "9", "\u0663"])  # U+0663: an Arabic-Indic digit
_TIMESTAMPS = st.tuples(
    st.sampled_from(["", "2025-03-31 ", "2025-03-31T", "x"]),
    st.lists(_DIGIT, min_size=2, max_size=2).map("".join),
    st.sampled_from([":", "."]),
    st.lists(_DIGIT, min_size=1, max_size=2).map("".join),
    st.sampled_from(["", ":00", ":00.5", ":0"]),
    st.sampled_from(["", " ", "  ", "\n", "\x0b", "\u00a0", "\t"]),
    st.sampled_from(["", "Z", "z", "+03", "-0500", "+03:00", "-", "+3", "-05:0"]),
    st.sampled_from(["", "a", "\n", " "]),
).map("".join)
_SCRAPS = st.lists(
    st.sampled_from(["1", "0", "\u0663", ":", ".", "+", "-", "Z", " ", "\n", "\x0b", "T"]),
    max_size=14,
).map("".join)


@given(st.lists(st.one_of(st.none(), _TIMESTAMPS, _SCRAPS), max_size=20))
def test_zoned_finds_exactly_what_the_time_zone_pattern_finds(values):
    """The Arrow pre-test may only narrow the work: the result is Python's re's, value by value
    (Unicode digits, a newline or a vertical tab before the zone, lower-case z included)."""
    text = pd.Series(values, dtype="str")
    expected = text.str.contains(_TIME_ZONE, regex=True, na=False)
    assert expected.tolist() == zoned(text).tolist()


def test_zoned_reads_designators_after_any_time_of_day():
    text = pd.Series(
        ["2025-03-31 22:00Z", "2025-03-31T23:30:00+03:00", "2025-03-31 10:00 -0500", None]
        + ["2025-03-31 22:00", "2025-03-31", "12:30-", "2025-03-31 22:00\n+03:00"],
        dtype="str",
    )
    assert [True, True, True, False, False, False, False, True] == zoned(text).tolist()


def test_iso_dates_and_times_are_read_with_or_without_a_t():
    tables = broken("deals", 2, created_on="2025-03-01T10:15:00")
    crm = validate_tables(tables)
    assert pd.Timestamp("2025-03-01 10:15:00") == crm.deals.loc[1, "created_on"]


def test_only_one_of_two_deals_won_the_same_day_for_a_new_client_is_new():
    tables = vasily_valery_tables()
    tables["deals"] = tables["deals"].assign(client_id="c1", closed_on="2025-03-20")
    crm = validate_tables(tables)
    assert ["new", "repeat"] == crm.deals.sort_values("deal_id")["sale_type"].tolist()


def test_a_source_of_open_deals_without_a_close_date_column_is_valid():
    tables = vasily_valery_tables()
    deals = tables["deals"].drop(columns="closed_on").assign(stage="open", client_id="c1")
    crm = validate_tables({**tables, "deals": deals})
    assert ["new", "new"] == crm.deals["sale_type"].tolist()


def test_a_plan_for_a_metric_the_kit_does_not_compute_is_refused_not_ignored():
    tables = broken("plans", 1, metric="turnover")
    [line] = lines_with(contract_error(tables), "plans.metric")
    assert "must be one of the kit's metrics" in line and [1] == reported_rows(line)


def test_two_plans_for_the_same_owner_month_and_metric_are_refused(raw_sales):
    plans = pd.DataFrame(
        {
            "period": ["2025-03", "2025-03", "2025-03"],
            "metric": ["revenue", "revenue", "revenue"],
            "target": [100.0, 50.0, 70.0],
            "department_id": ["north", "north", "south"],
        }
    )
    with pytest.raises(DataContractError) as error:
        validate_tables({**raw_sales, "plans": plans}, source="repeated plans")
    message = str(error.value)
    assert "must hold one plan per owner, period and metric" in message
    assert "row 1 (2025-03 revenue north), row 2 (2025-03 revenue north)" in message
    assert "row 3" not in message


@given(
    st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=30),
    st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=30),
)
def test_foreign_key_lookup_matches_pandas_isin_exactly(values, reference):
    left = pd.Series(values, dtype="str")
    right = pd.Series(reference, dtype="str")
    found = _is_in(left, right)
    expected = left.isin(right.dropna())
    assert found[left.notna()].tolist() == expected[left.notna()].tolist()
    assert found.index.equals(left.index)
