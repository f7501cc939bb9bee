"""The discrepancy register: misses of the month, by how much, and for how many months running.

Hand cases use a tiny source scored over January to March 2025 with a three-KPI scheme of
absolute targets, so every miss is known in advance:

- ``department_revenue`` (department level, shared; revenue >= 150): north (m1's deals only)
  sells 200, 100, 100 (missed February and March); south (m3) sells 200, 50, 200 (missed in
  February only, recovered in March).
- ``deals_won`` (manager level, >= 1; a department's target is the sum of its managers'): m1 and
  m3 win one deal a month, m2 none. So m2 misses every month, and north (1 won against 2) too.
- ``response_hours`` (manager level, <= 8): m1 answers in 4, 10 and 12 hours; m2 gets no
  requests; m3 answers in 10 hours in January and March and has no request in February. North's
  mean is m1's; south's is m3's.
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
from conftest import pipe_table
from hypothesis import given
from hypothesis import strategies as st

from kpilib import paths
from kpilib.demo import ground_truth
from kpilib.discrepancies import (
    REGISTER_COLUMNS,
    discrepancy_register,
    recoveries,
    register_table,
    run_lengths,
    shortfall,
)
from kpilib.history import ScoreHistory, score_months, score_window
from kpilib.io import read_source
from kpilib.params import Scheme, load_scheme
from kpilib.validation import validate_tables

JAN, FEB, MARCH = (pd.Period(m, freq="M") for m in ("2025-01", "2025-02", "2025-03"))
SEPTEMBER_2026 = pd.Period("2026-09", freq="M")


def month(text: str) -> pd.Period:
    return pd.Period(text, freq="M")


# --- shortfall --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "target", "polarity", "expected"),
    [
        (80.0, 100.0, "higher", 20.0),
        (120.0, 100.0, "higher", -20.0),
        (100.0, 100.0, "higher", 0.0),
        (6.0, 4.0, "lower", 2.0),
        (3.0, 4.0, "lower", -1.0),
        (-0.10, -0.05, "higher", 0.05),
    ],
    ids=[
        "higher-short",
        "higher-beaten",
        "higher-exact",
        "lower-short",
        "lower-beaten",
        "negative",
    ],
)
def test_shortfall_is_positive_when_short_and_negative_when_beaten(
    actual, target, polarity, expected
):
    assert pytest.approx(expected) == shortfall(actual, target, polarity)


@given(
    actual=st.floats(-1e9, 1e9),
    target=st.floats(-1e9, 1e9),
    polarity=st.sampled_from(["higher", "lower"]),
)
def test_a_positive_shortfall_is_exactly_a_missed_target(actual, target, polarity):
    missed = actual < target if polarity == "higher" else actual > target
    assert missed == (shortfall(actual, target, polarity) > 0)


# --- run lengths on hand-built KPI rows -------------------------------------------------------


def kpi_rows(*rows: tuple[str, str, str, bool | None]) -> pd.DataFrame:
    """KPI rows (manager, KPI, month, met) as a history's ``manager_kpis`` holds them."""
    return pd.DataFrame(
        {
            "manager_id": [r[0] for r in rows],
            "kpi": [r[1] for r in rows],
            "period": [month(r[2]) for r in rows],
            "met": pd.Series([r[3] for r in rows], dtype=object),
        }
    )


def runs_by_row(runs: pd.DataFrame) -> dict[tuple[str, str, str], tuple[int, str | None]]:
    return {
        (m, k, f"{p:%Y-%m}"): (int(n), None if pd.isna(s) else f"{s:%Y-%m}")
        for m, k, p, n, s in zip(
            runs["manager_id"],
            runs["kpi"],
            runs["period"],
            runs["months_running"],
            runs["since"],
            strict=True,
        )
    }


def test_misses_in_consecutive_months_count_up_from_the_first():
    runs = run_lengths(
        kpi_rows(
            ("m1", "k", "2026-01", False),
            ("m1", "k", "2026-02", False),
            ("m1", "k", "2026-03", False),
        ),
        "manager_id",
    )
    assert {
        ("m1", "k", "2026-01"): (1, "2026-01"),
        ("m1", "k", "2026-02"): (2, "2026-01"),
        ("m1", "k", "2026-03"): (3, "2026-01"),
    } == runs_by_row(runs)


def test_a_met_month_resets_the_run():
    runs = run_lengths(
        kpi_rows(
            ("m1", "k", "2026-01", False),
            ("m1", "k", "2026-02", True),
            ("m1", "k", "2026-03", False),
            ("m1", "k", "2026-04", False),
        ),
        "manager_id",
    )
    assert {
        ("m1", "k", "2026-01"): (1, "2026-01"),
        ("m1", "k", "2026-02"): (0, None),
        ("m1", "k", "2026-03"): (1, "2026-03"),
        ("m1", "k", "2026-04"): (2, "2026-03"),
    } == runs_by_row(runs)


def test_a_month_without_data_breaks_the_run():
    runs = run_lengths(
        kpi_rows(
            ("m1", "k", "2026-01", False),
            ("m1", "k", "2026-02", None),
            ("m1", "k", "2026-03", False),
        ),
        "manager_id",
    )
    assert {
        ("m1", "k", "2026-01"): (1, "2026-01"),
        ("m1", "k", "2026-02"): (0, None),
        ("m1", "k", "2026-03"): (1, "2026-03"),
    } == runs_by_row(runs)


def test_a_month_missing_from_the_rows_breaks_the_run():
    runs = run_lengths(
        kpi_rows(("m1", "k", "2026-01", False), ("m1", "k", "2026-03", False)), "manager_id"
    )
    assert {
        ("m1", "k", "2026-01"): (1, "2026-01"),
        ("m1", "k", "2026-03"): (1, "2026-03"),
    } == runs_by_row(runs)


def test_a_run_continues_across_a_year_end():
    runs = run_lengths(
        kpi_rows(("m1", "k", "2025-12", False), ("m1", "k", "2026-01", False)), "manager_id"
    )
    assert (2, "2025-12") == runs_by_row(runs)[("m1", "k", "2026-01")]


def test_runs_are_counted_per_entity_and_per_kpi_whatever_the_row_order():
    rows = [
        ("m1", "a", "2026-01", False),
        ("m1", "a", "2026-02", False),
        ("m1", "b", "2026-01", True),
        ("m1", "b", "2026-02", False),
        ("m2", "a", "2026-01", True),
        ("m2", "a", "2026-02", False),
        ("m2", "b", "2026-01", False),
        ("m2", "b", "2026-02", False),
    ]
    random.Random(7).shuffle(rows)
    runs = run_lengths(kpi_rows(*rows), "manager_id")
    assert {
        ("m1", "a", "2026-01"): (1, "2026-01"),
        ("m1", "a", "2026-02"): (2, "2026-01"),
        ("m1", "b", "2026-01"): (0, None),
        ("m1", "b", "2026-02"): (1, "2026-02"),
        ("m2", "a", "2026-01"): (0, None),
        ("m2", "a", "2026-02"): (1, "2026-02"),
        ("m2", "b", "2026-01"): (1, "2026-01"),
        ("m2", "b", "2026-02"): (2, "2026-01"),
    } == runs_by_row(runs)


def test_run_lengths_keep_every_row_and_column():
    rows = kpi_rows(("m1", "k", "2026-01", False), ("m2", "k", "2026-01", None)).assign(x=[1, 2])
    runs = run_lengths(rows, "manager_id")
    assert 2 == len(runs)
    assert {"manager_id", "kpi", "period", "met", "x", "months_running", "since"} == set(runs)


def test_run_lengths_of_no_rows_are_no_rows():
    runs = run_lengths(kpi_rows(), "manager_id")
    assert 0 == len(runs)
    assert {"months_running", "since"} <= set(runs)


@st.composite
def month_sequences(draw):
    """One entity's KPI over some months (with gaps): each month met, missed or without data."""
    steps = draw(st.lists(st.integers(1, 3), min_size=1, max_size=15))
    states = draw(
        st.lists(st.sampled_from([True, False, None]), min_size=len(steps), max_size=len(steps))
    )
    first = month("2024-11")
    months, offset = [], 0
    for step in steps:
        offset += step
        months.append(first + offset)
    return list(zip(months, states, strict=True))


@given(month_sequences())
def test_a_run_is_the_number_of_consecutive_missed_months_ending_with_the_month(sequence):
    missed = {p for p, state in sequence if state is False}
    rows = kpi_rows(*[("m1", "k", f"{p:%Y-%m}", state) for p, state in sequence])
    runs = runs_by_row(run_lengths(rows, "manager_id"))
    for period, _ in sequence:
        expected = 0
        while period - expected in missed:
            expected += 1
        since = None if expected == 0 else f"{period - (expected - 1):%Y-%m}"
        assert (expected, since) == runs[("m1", "k", f"{period:%Y-%m}")]


# --- the register on a tiny source ------------------------------------------------------------


def tiny_tables() -> dict[str, pd.DataFrame]:
    return {
        "departments": pipe_table("""
            department_id | name  | kind
            north         | North | sales
            south         | South | sales
        """),
        "managers": pipe_table("""
            manager_id | department_id | name  | tier
            m1         | north         | Anna  | star
            m2         | north         | Boris | regular
            m3         | south         | Vera  | regular
        """),
        "deals": pipe_table("""
            deal_id | manager_id | stage | created_on | closed_on  | amount
            d1      | m1         | won   | 2025-01-02 | 2025-01-10 | 200
            d2      | m1         | won   | 2025-02-01 | 2025-02-10 | 100
            d3      | m1         | won   | 2025-03-01 | 2025-03-10 | 100
            d4      | m3         | won   | 2025-01-03 | 2025-01-12 | 200
            d5      | m3         | won   | 2025-02-03 | 2025-02-12 | 50
            d6      | m3         | won   | 2025-03-03 | 2025-03-12 | 200
        """),
        "requests": pipe_table("""
            request_id | received_at         | first_response_at   | manager_id
            r1         | 2025-01-06 09:00:00 | 2025-01-06 13:00:00 | m1
            r2         | 2025-02-03 09:00:00 | 2025-02-03 19:00:00 | m1
            r3         | 2025-03-03 08:00:00 | 2025-03-03 20:00:00 | m1
            r4         | 2025-01-07 10:00:00 | 2025-01-07 20:00:00 | m3
            r5         | 2025-03-04 10:00:00 | 2025-03-04 20:00:00 | m3
        """),
    }


def tiny_scheme() -> Scheme:
    return Scheme.model_validate(
        {
            "name": "Register test",
            "goals": [
                {
                    "id": "volume",
                    "name": "Volume",
                    "weight": 0.5,
                    "kpis": [
                        {
                            "id": "department_revenue",
                            "name": "Department revenue",
                            "metric": "revenue",
                            "level": "department",
                            "target": {"type": "absolute", "value": 150},
                        },
                        {
                            "metric": "deals_won",
                            "target": {"type": "absolute", "value": 1},
                        },
                    ],
                },
                {
                    "id": "service",
                    "name": "Service",
                    "weight": 0.5,
                    "kpis": [{"metric": "response_hours", "target": {"value": 8}}],
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def tiny_crm():
    return validate_tables(tiny_tables(), source="tiny register source")


@pytest.fixture(scope="module")
def tiny(tiny_crm) -> ScoreHistory:
    return score_months(tiny_crm, tiny_scheme(), [JAN, FEB, MARCH])


@pytest.fixture(scope="module")
def march(tiny) -> pd.DataFrame:
    return discrepancy_register(tiny)


def entries(register: pd.DataFrame) -> list[tuple]:
    return list(zip(register["level"], register["entity_id"], register["kpi"], strict=True))


def test_the_register_lists_every_miss_of_the_month_persistent_first(march):
    # Three months running first, then two, then one; within each, department rows first,
    # then the larger shortfall in percent of the target.
    assert [
        ("department", "north", "deals_won"),
        ("manager", "m2", "deals_won"),
        ("department", "north", "response_hours"),
        ("department", "north", "department_revenue"),
        ("manager", "m1", "response_hours"),
        ("department", "south", "response_hours"),
        ("manager", "m3", "response_hours"),
    ] == entries(march)
    assert [3, 3, 2, 2, 2, 1, 1] == march["months_running"].tolist()


def test_register_rows_have_the_figures_of_the_miss(march):
    rows = march.set_index(["level", "entity_id", "kpi"])
    columns = ["actual", "target", "shortfall", "shortfall_pct", "attainment"]
    figures = {key: list(rows.loc[key, columns]) for key in rows.index}
    expected = {
        ("department", "north", "deals_won"): [1.0, 2.0, 1.0, 0.5, 0.5],
        ("manager", "m2", "deals_won"): [0.0, 1.0, 1.0, 1.0, 0.0],
        ("department", "north", "response_hours"): [12.0, 8.0, 4.0, 0.5, 8 / 12],
        ("department", "north", "department_revenue"): [100.0, 150.0, 50.0, 1 / 3, 100 / 150],
        ("manager", "m1", "response_hours"): [12.0, 8.0, 4.0, 0.5, 8 / 12],
        ("department", "south", "response_hours"): [10.0, 8.0, 2.0, 0.25, 0.8],
        ("manager", "m3", "response_hours"): [10.0, 8.0, 2.0, 0.25, 0.8],
    }
    assert expected.keys() == figures.keys()
    for key, values in expected.items():
        assert pytest.approx(values) == figures[key], key


def test_register_rows_name_the_entity_and_the_kpi(march):
    assert ["North", "Boris", "North", "North", "Anna", "South", "Vera"] == march["name"].tolist()
    first = march.iloc[0]
    assert ("Deals won", "deals_won", "count") == (first["label"], first["metric"], first["unit"])
    revenue = march.loc[march["kpi"].eq("department_revenue")].iloc[0]
    assert ("Department revenue", "revenue", "money") == (
        revenue["label"],
        revenue["metric"],
        revenue["unit"],
    )
    assert ["hours"] == march.loc[march["kpi"].eq("response_hours"), "unit"].unique().tolist()
    assert REGISTER_COLUMNS == list(march.columns)


def test_a_shared_department_kpi_is_registered_once_at_department_level(march, tiny):
    # Every manager of north carries the department's revenue miss in their own KPI rows...
    shared = tiny.manager_kpis.loc[
        tiny.manager_kpis["kpi"].eq("department_revenue")
        & tiny.manager_kpis["period"].eq(MARCH)
        & tiny.manager_kpis["met"].eq(False)
    ]
    assert {"m1", "m2"} == set(shared["manager_id"])
    # ...but the register shows it once, as north's.
    revenue = march.loc[march["kpi"].eq("department_revenue")]
    assert [("department", "north")] == list(
        zip(revenue["level"], revenue["entity_id"], strict=True)
    )


def test_since_and_open_ended_tell_where_a_run_began(march):
    since = [f"{p:%Y-%m}" for p in march["since"]]
    assert ["2025-01", "2025-01", "2025-02", "2025-02", "2025-02", "2025-03", "2025-03"] == since
    # Missed since the history's first month: the run may have begun before it.
    assert [True, True, False, False, False, False, False] == march["open_ended"].tolist()


def test_a_month_without_data_breaks_a_run_in_the_register(march):
    # m3 missed in January, had no request in February and missed in March: one month running.
    m3 = march.loc[march["entity_id"].eq("m3")].iloc[0]
    assert (1, MARCH) == (m3["months_running"], m3["since"])


def test_the_register_of_an_earlier_month(tiny):
    february = discrepancy_register(tiny, FEB)
    assert [
        ("department", "north", "deals_won"),
        ("manager", "m2", "deals_won"),
        ("department", "south", "department_revenue"),  # 50 of 150: 67% short
        ("department", "north", "department_revenue"),  # 100 of 150: 33% short
        ("department", "north", "response_hours"),  # 10 hours against 8: 25% over
        ("manager", "m1", "response_hours"),
    ] == entries(february)
    assert [2, 2, 1, 1, 1, 1] == february["months_running"].tolist()
    assert [True, True, False, False, False, False] == february["open_ended"].tolist()


def test_a_register_of_the_first_month_is_open_ended_throughout(tiny):
    january = discrepancy_register(tiny, JAN)
    assert {
        ("department", "north", "deals_won"),
        ("department", "south", "response_hours"),
        ("manager", "m2", "deals_won"),
        ("manager", "m3", "response_hours"),
    } == set(entries(january))
    assert january["open_ended"].all()
    assert {1} == set(january["months_running"])


def test_a_month_without_misses_has_an_empty_register(tiny_crm):
    # Nobody can miss zero won deals.
    easy = Scheme.model_validate(
        {
            "name": "Nothing to miss",
            "goals": [
                {
                    "id": "volume",
                    "name": "Volume",
                    "weight": 1.0,
                    "kpis": [{"metric": "deals_won", "target": {"value": 0}}],
                }
            ],
        }
    )
    history = score_months(tiny_crm, easy, [MARCH])
    register = discrepancy_register(history)
    assert 0 == len(register)
    assert REGISTER_COLUMNS == list(register.columns)


def test_register_table_says_who_what_and_how_long(march):
    table = register_table(march, "RUB")
    assert ["Who", "KPI", "Actual", "Target", "Short by", "Short by %", "Missed"] == list(table)
    assert "North (department)" == table.loc[0, "Who"]
    assert "Boris" == table.loc[1, "Who"]
    assert "every month shown (3, since 2025-01 or earlier)" == table.loc[0, "Missed"]
    assert "2 months running (since 2025-02)" == table.loc[2, "Missed"]
    assert "this month" == table.loc[6, "Missed"]
    revenue = table.loc[3]
    assert ("100 RUB", "150 RUB", "50 RUB") == (
        revenue["Actual"],
        revenue["Target"],
        revenue["Short by"],
    )
    assert pytest.approx(1 / 3) == revenue["Short by %"]


def test_recoveries_are_department_kpis_met_after_a_miss(tiny):
    recovered = recoveries(tiny, MARCH)
    assert [
        {
            "kpi": "department_revenue",
            "actual": 200.0,
            "target": 150.0,
            "previous_actual": 50.0,
            "months_missed_before": 1,
        }
    ] == recovered[["kpi", "actual", "target", "previous_actual", "months_missed_before"]].to_dict(
        "records"
    )


def test_no_recoveries_in_the_first_month(tiny):
    assert 0 == len(recoveries(tiny, JAN))


# --- the register on the demo data ------------------------------------------------------------


@pytest.fixture(scope="module")
def north(source) -> ScoreHistory:
    """North's twelve months ending September 2026 (the last with the slip is August)."""
    crm = read_source(source)
    return score_window(crm, load_scheme(paths.DEFAULT_SCHEME), SEPTEMBER_2026, 12, "north")


def recount(history: ScoreHistory, level: str, entity: str, kpi: str, period: pd.Period) -> int:
    """Months the KPI was missed in a row up to the month, read off the history's KPI rows."""
    frame = history.department_kpis if level == "department" else history.manager_kpis
    key = "department_id" if level == "department" else "manager_id"
    rows = frame.loc[frame[key].eq(entity) & frame["kpi"].eq(kpi)]
    met = dict(zip(rows["period"], rows["met"], strict=True))
    count = 0
    while met.get(period - count) is False:
        count += 1
    return count


@pytest.mark.parametrize("period", ["2026-06", "2026-08", "2026-09"])
def test_months_running_on_the_demo_is_a_recount_of_the_history(north, period):
    register = discrepancy_register(north, month(period))
    assert len(register) > 0
    for row in register.to_dict("records"):
        expected = recount(north, row["level"], row["entity_id"], row["kpi"], month(period))
        assert expected == row["months_running"], row
        assert month(period) - (expected - 1) == row["since"]
        assert (row["since"] == north.months[0]) == row["open_ended"]


def test_the_demo_register_is_sorted_persistent_first_department_first(north):
    register = discrepancy_register(north)
    keys = [
        (-n, level != "department", -(pct if not math.isnan(pct) else -math.inf))
        for n, level, pct in zip(
            register["months_running"], register["level"], register["shortfall_pct"], strict=True
        )
    ]
    assert sorted(keys) == keys


def test_no_shared_department_kpi_is_registered_for_a_manager_on_the_demo(north):
    for period in north.months[-3:]:
        register = discrepancy_register(north, period)
        managers = register.loc[register["level"].eq("manager")]
        assert "department_sales_increase" not in set(managers["kpi"])
        assert {"north"} == set(register.loc[register["level"].eq("department"), "entity_id"])


@pytest.mark.parametrize("slip", ground_truth().slip_months)
def test_the_logistics_slip_puts_on_time_delivery_in_norths_register(north, slip):
    register = discrepancy_register(north, month(slip))
    on_time = register.loc[
        register["level"].eq("department")
        & register["entity_id"].eq("north")
        & register["kpi"].eq("on_time_delivery")
    ]
    assert 1 == len(on_time)
    row = on_time.iloc[0]
    assert row["actual"] < row["target"]
    assert 0 < row["shortfall"]
    assert "North" == row["name"]


def test_the_slip_is_a_run_of_misses_that_ends_in_september(north):
    runs = run_lengths(north.department_kpis, "department_id")
    on_time = runs.loc[runs["kpi"].eq("on_time_delivery")].set_index("period")
    slip = [month(m) for m in ground_truth().slip_months]
    # The run grows by one in each slip month...
    running = [on_time.loc[m, "months_running"] for m in slip]
    assert [running[0] + k for k in range(len(slip))] == running
    assert 1 <= running[0]
    # ...and logistics recovers in September: the department's recovery is reported.
    recovered = recoveries(north, SEPTEMBER_2026)
    assert "on_time_delivery" in set(recovered["kpi"])
    row = recovered.set_index("kpi").loc["on_time_delivery"]
    assert on_time.loc[slip[-1], "months_running"] == row["months_missed_before"]
