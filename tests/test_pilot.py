"""KPI pilot evaluation: difference in differences with a pre-trend check.

The small tests build a source of two sales departments, North (the pilot, from 2025-07-01:
managers t1..t4) and South (never piloted: c1..c4), with won deals of 100 RUB (cost price 40, so
60 RUB net profit each) in January to September 2025. Won deals per manager and month:

    before (Jan-Jun)      t1 2 3 2 2 2 3   t2 3 2 2 2 3 2   t3 3 2 3 2 2 2   t4 2 2 2 3 2 3
                          c1 2 2 3 2 3 3   c2 3 3 2 3 2 2   c3 3 2 2 3 2 2   c4 2 2 3 2 2 3
    after (Jul-Sep, UP)   t1 4 5 4         t2 5 4 5         t3 5 5 4         t4 4 5 5
                          c1 3 3 2         c2 3 3 3         c3 2 3 2         c4 3 2 3

Totals: North 56 before and 55 after, South 58 and 32. On a balanced panel the Poisson factor
is the ratio of the after/before ratios, (55/56) / (32/58) = 1595/896 = 1.7801 (the same for
revenue: every deal is worth the same), and the least-squares effect on net profit is the
difference of the differences of means per manager and month: North 140 -> 275 RUB, South
145 -> 160 RUB, so 135 - 15 = 120 RUB, a factor 1 + 120/140 = 13/7. Each manager's months
before the start are another manager's of the same side in reverse order, so the data is the
same read backwards in time: the pre-trend is exactly 0, with an interval around it.

In DOWN, North's managers win one deal a month after the start: (12/56) / (32/58) = 87/224 and
net profit 140 -> 60 RUB, so (-80 - 15) / 140 = -95/140: a factor 9/28.
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import re

import pandas as pd
import pytest

import kpilib.demo
from kpilib.demo import DemoConfig, generate, ground_truth
from kpilib.errors import ParamsError
from kpilib.io import read_source
from kpilib.pilot import (
    EFFECT_COLUMNS,
    MONTHLY_COLUMNS,
    TABLE_COLUMNS,
    PilotEvaluation,
    evaluate_pilot,
    pilot_chart,
    pilot_departments,
    pilot_table,
    recommendation,
)
from kpilib.plots import ReportFigure
from kpilib.validation import validate_tables

TRUTH = ground_truth(DemoConfig())
SEPTEMBER_2025 = pd.Period("2025-09", "M")
SEPTEMBER_2026 = pd.Period("2026-09", "M")

BEFORE = {
    "t1": [2, 3, 2, 2, 2, 3],
    "t2": [3, 2, 2, 2, 3, 2],
    "t3": [3, 2, 3, 2, 2, 2],
    "t4": [2, 2, 2, 3, 2, 3],
    "c1": [2, 2, 3, 2, 3, 3],
    "c2": [3, 3, 2, 3, 2, 2],
    "c3": [3, 2, 2, 3, 2, 2],
    "c4": [2, 2, 3, 2, 2, 3],
}
AFTER_UP = {
    "t1": [4, 5, 4],
    "t2": [5, 4, 5],
    "t3": [5, 5, 4],
    "t4": [4, 5, 5],
    "c1": [3, 3, 2],
    "c2": [3, 3, 3],
    "c3": [2, 3, 2],
    "c4": [3, 2, 3],
}
AFTER_DOWN = {**AFTER_UP, **{m: [1, 1, 1] for m in ("t1", "t2", "t3", "t4")}}


def pilot_tables(
    won: dict[str, list[int]],
    kpi_since: tuple[str | None, str | None] = ("2025-07-01", None),
    amounts: dict[str, list[int]] | None = None,
    north_name: str = "North",
) -> dict[str, pd.DataFrame]:
    """Raw tables: managers t* in north and c* in south, won deals from January 2025.

    Args:
        won: Won deals per manager and month, from January 2025.
        kpi_since: North's and South's start of the KPI system.
        amounts: Amount of each month's deals per manager (100 RUB when omitted).
        north_name: North's name.
    """
    departments = pd.DataFrame(
        {
            "department_id": ["north", "south", "logistics"],
            "name": [north_name, "South", "Logistics"],
            "kind": ["sales", "sales", "service"],
            "kpi_since": [kpi_since[0], kpi_since[1], None],
        },
        dtype="str",
    )
    managers = pd.DataFrame(
        {
            "manager_id": list(won),
            "department_id": ["north" if m.startswith("t") else "south" for m in won],
        },
        dtype="str",
    )
    deals = []
    for manager, counts in won.items():
        for offset, count in enumerate(counts):
            month = pd.Period("2025-01", "M") + offset
            amount = 100 if amounts is None else amounts[manager][offset]
            for k in range(count):
                deals.append(
                    {
                        "deal_id": f"{manager}-{offset}-{k}",
                        "manager_id": manager,
                        "stage": "won",
                        "created_on": f"{month}-01",
                        "closed_on": f"{month}-{10 + k:02d}",
                        "amount": str(amount),
                        "cost_price": str(amount * 0.4),
                        "extra_hours": "0",
                    }
                )
    return {
        "departments": departments,
        "managers": managers,
        "deals": pd.DataFrame(deals, dtype="str"),
    }


def pilot_crm(after: dict[str, list[int]] = AFTER_UP, **options):
    won = {manager: BEFORE[manager] + after[manager] for manager in BEFORE}
    return validate_tables(pilot_tables(won, **options), source="tests/test_pilot.py")


@pytest.fixture(scope="module")
def up() -> PilotEvaluation:
    return evaluate_pilot(pilot_crm(AFTER_UP), "north", SEPTEMBER_2025)


@pytest.fixture(scope="module")
def demo(source):
    return read_source(source)


@pytest.fixture(scope="module")
def east(demo) -> PilotEvaluation:
    return evaluate_pilot(demo, "east", SEPTEMBER_2026)


def demo_with_uplift(uplift: float):
    """The default demo generated with another pilot uplift, and the uplift planted."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kpilib.demo, "PILOT_UPLIFT", uplift)
        crm = validate_tables(generate(DemoConfig()), source=f"demo, pilot uplift {uplift}")
        return crm, ground_truth(DemoConfig()).pilot_uplift


@pytest.fixture(scope="module")
def no_effect():
    return demo_with_uplift(1.0)


@pytest.fixture(scope="module")
def strong_effect():
    return demo_with_uplift(1.5)


def effect(evaluation: PilotEvaluation, metric: str) -> dict:
    return evaluation.effects.set_index("metric").loc[metric].to_dict()


# --- pilot departments --------------------------------------------------------------------------


def test_pilot_departments_lists_the_demo_pilot(demo):
    pilots = pilot_departments(demo)

    assert ["department_id", "name", "kpi_since"] == list(pilots.columns)
    assert [TRUTH.pilot_department_id] == pilots["department_id"].to_list()
    assert ["East"] == pilots["name"].to_list()
    assert [TRUTH.pilot_start] == pilots["kpi_since"].to_list()


def test_pilot_departments_is_empty_without_kpi_since(sales_crm):
    pilots = pilot_departments(sales_crm)

    assert pilots.empty
    assert ["department_id", "name", "kpi_since"] == list(pilots.columns)


# --- hand-built sources -------------------------------------------------------------------------


def test_factors_are_the_ratio_of_ratios_and_the_difference_of_means(up):
    deals, revenue, profit = (effect(up, m) for m in ("deals_won", "revenue", "net_profit"))

    assert 1595 / 896 == pytest.approx(deals["factor"], rel=1e-6)
    assert 1595 / 896 == pytest.approx(revenue["factor"], rel=1e-6)
    assert 13 / 7 == pytest.approx(profit["factor"], rel=1e-9)
    assert ("poisson", "poisson", "least squares") == (
        deals["method"],
        revenue["method"],
        profit["method"],
    )
    for row in (deals, revenue, profit):
        assert row["low"] < row["factor"] < row["high"]
        assert 0 == pytest.approx(row["pre_trend"], abs=1e-9)
        assert row["pre_low"] < 0 < row["pre_high"]
        assert row["parallel"] is True
        assert (6, 3, 4, 4) == (
            row["months_before"],
            row["months_after"],
            row["treated_managers"],
            row["control_managers"],
        )
    assert (140.0, 275.0, 145.0, 160.0) == pytest.approx(
        (
            profit["treated_before"],
            profit["treated_after"],
            profit["control_before"],
            profit["control_after"],
        )
    )
    assert (56 / 24, 55 / 12) == pytest.approx((deals["treated_before"], deals["treated_after"]))


def test_a_clear_rise_with_parallel_trends_is_extended(up):
    assert "extend" == up.verdict
    assert "" == up.reason
    assert ("north", "North", ("south",), ("South",)) == (
        up.department_id,
        up.name,
        up.control_ids,
        up.control_names,
    )
    assert (pd.Period("2025-07", "M"), SEPTEMBER_2025) == (up.start, up.end)
    assert EFFECT_COLUMNS == list(up.effects.columns)
    assert effect(up, "deals_won")["low"] > 1
    assert effect(up, "revenue")["low"] > 1


def test_a_clear_fall_is_not_extended():
    down = evaluate_pilot(pilot_crm(AFTER_DOWN), "north", SEPTEMBER_2025)

    assert "do not extend" == down.verdict
    assert 87 / 224 == pytest.approx(effect(down, "deals_won")["factor"], rel=1e-6)
    assert 87 / 224 == pytest.approx(effect(down, "revenue")["factor"], rel=1e-6)
    assert 9 / 28 == pytest.approx(effect(down, "net_profit")["factor"], rel=1e-9)
    assert effect(down, "revenue")["high"] < 1
    text = recommendation(down, "RUB")
    assert "won deals fell 61.2%" in text
    assert "Recommendation: do not extend the KPI system to South" in text


def test_a_trend_before_the_start_makes_the_comparison_untrustworthy():
    # North's managers sell one deal a month worth 100 * 2^month (January = 0), South's one of
    # 100: before the start North's revenue doubles every month against South's (growth 100%).
    won = {manager: [1] * 9 for manager in ("t1", "t2", "c1", "c2")}
    amounts = {
        "t1": [100 * 2**month for month in range(9)],
        "t2": [100 * 2**month for month in range(9)],
        "c1": [100] * 9,
        "c2": [100] * 9,
    }
    crm = validate_tables(pilot_tables(won, amounts=amounts), source="doubling")

    pilot = evaluate_pilot(crm, "north", SEPTEMBER_2025, metrics=("revenue",))

    revenue = effect(pilot, "revenue")
    assert 1.0 == pytest.approx(revenue["pre_trend"], rel=1e-6)
    assert revenue["parallel"] is False
    assert "continue the pilot" == pilot.verdict
    text = recommendation(pilot, "RUB")
    assert "North's revenue grew 100.0% a month faster than the other departments'" in text
    assert "not yet trustworthy" in text
    assert "Recommendation: continue the pilot in North" in text


def test_monthly_means_per_manager(up):
    deals = up.monthly.loc[up.monthly["metric"].eq("deals_won")].set_index("month")

    assert MONTHLY_COLUMNS == list(up.monthly.columns)
    assert list(pd.period_range("2025-01", "2025-09", freq="M")) == list(deals.index)
    # January: North 2+3+3+2 and South 2+3+3+2 deals over 4 managers each.
    assert (2.5, 2.5, 1.0) == tuple(
        deals.loc[pd.Period("2025-01", "M"), ["treated", "control", "ratio"]]
    )
    # July: North 4+5+5+4 = 18, South 3+3+2+3 = 11.
    july = deals.loc[pd.Period("2025-07", "M")]
    assert (4.5, 2.75) == (july["treated"], july["control"])
    assert 18 / 11 == pytest.approx(july["ratio"])


@pytest.mark.parametrize(
    ("department", "end", "options", "reason"),
    [
        ("nowhere", "2025-09", {}, "there is no sales department 'nowhere'"),
        ("south", "2025-09", {}, "South has no start date of the KPI system"),
        ("north", "2025-06", {}, "the pilot starts after the period"),
        (
            "north",
            "2025-09",
            {"kpi_since": ("2025-07-01", "2026-01-01")},
            "there is no sales department without the KPI system",
        ),
        ("north", "2025-09", {"kpi_since": ("2025-04-01", None)}, "only 3 months before"),
        ("north", "2025-08", {}, "the pilot has run only 2 full months"),
        # A start in mid-June: July is the first full month, June is left out: 5 months before.
        ("north", "2025-09", {"kpi_since": ("2025-06-15", None)}, "only 5 months before"),
    ],
)
def test_cannot_evaluate(department, end, options, reason):
    pilot = evaluate_pilot(pilot_crm(**options), department, pd.Period(end, "M"))

    assert "cannot evaluate" == pilot.verdict
    assert reason in pilot.reason
    assert pilot.effects.empty
    assert EFFECT_COLUMNS == list(pilot.effects.columns)
    assert reason in recommendation(pilot, "RUB")
    assert pilot_table(pilot, "RUB").empty


def test_a_mid_month_start_begins_with_the_next_month():
    pilot = evaluate_pilot(pilot_crm(kpi_since=("2025-06-15", None)), "north", SEPTEMBER_2025)

    assert pd.Period("2025-07", "M") == pilot.start
    assert pd.Timestamp("2025-06-15") == pilot.kpi_since
    figure = pilot_chart(pilot, "deals_won")
    assert "KPI system starts\n15 June 2025" in [text.get_text() for text in figure.axes[0].texts]


def test_one_manager_on_a_side_cannot_be_evaluated():
    won = {manager: BEFORE[manager] + AFTER_UP[manager] for manager in ("t1", "c1", "c2")}
    crm = validate_tables(pilot_tables(won), source="one pilot manager")

    pilot = evaluate_pilot(crm, "north", SEPTEMBER_2025)

    assert "cannot evaluate" == pilot.verdict
    assert "North has 1 manager and the other departments 2 managers" in pilot.reason


def test_unknown_metric_is_an_error():
    with pytest.raises(ParamsError, match="not indicators"):
        evaluate_pilot(pilot_crm(), "north", SEPTEMBER_2025, metrics=("happiness",))


def test_inputs_are_not_changed():
    crm = pilot_crm()
    deals, departments = crm.deals.copy(), crm.departments.copy()

    evaluate_pilot(crm, "north", SEPTEMBER_2025)

    pd.testing.assert_frame_equal(deals, crm.deals)
    pd.testing.assert_frame_equal(departments, crm.departments)


def test_recommendation_gives_the_numbers_and_the_decision(up):
    text = recommendation(up, "RUB")

    assert text.startswith("North has run the KPI system since 1 July 2025.")
    assert "Over 3 months of the pilot up to September 2025" in text
    assert "its 4 managers were compared with the 4 managers of South" in text
    assert "6 months before the start" in text
    assert "North's won deals rose 78.0% (95% CI " in text
    assert "net profit rose 85.7% (95% CI " in text
    # Net profit: 120 RUB more per manager and month than without the pilot.
    assert "about 120 RUB more per manager and month" in text
    assert "the comparison is trustworthy" in text
    assert text.endswith("Recommendation: extend the KPI system to South.")


def test_pilot_table_is_text(up):
    table = pilot_table(up, "EUR").set_index("Indicator")

    assert TABLE_COLUMNS[1:] == list(table.columns)
    assert ["Deals won", "Revenue", "Net profit"] == list(table.index)
    assert all(isinstance(cell, str) for cell in table.to_numpy().ravel())
    deals, profit = table.loc["Deals won"], table.loc["Net profit"]
    assert "78.0%" == deals["Change with the KPI system"]
    assert "85.7%" == profit["Change with the KPI system"]
    assert re.fullmatch(r"-?\d+\.\d% to -?\d+\.\d%", deals["95% interval"])
    assert "0.0%" == deals["Monthly growth gap before the start"]
    assert "yes" == deals["Parallel before the start"]
    assert "2.3 \u2192 4.6" == deals["Pilot department per manager and month"]
    assert "140 EUR \u2192 275 EUR" == profit["Pilot department per manager and month"]
    assert "145 EUR \u2192 160 EUR" == profit["Others per manager and month"]
    assert "6 / 3" == deals["Months before / after"]
    assert "4 / 4" == deals["Managers (pilot / others)"]


def test_pilot_chart_marks_the_start(up):
    figure = pilot_chart(up, "revenue", currency="EUR")

    assert isinstance(figure, ReportFigure)
    top, bottom = figure.axes
    assert "Revenue per manager and month: North against South" == top.get_title()
    assert "Revenue per manager, EUR" == top.get_ylabel()
    assert "KPI system starts\nJuly 2025" in [text.get_text() for text in top.texts]
    assert "July 2025" in figure.alt
    assert "North" in figure.alt and "South" in figure.alt
    assert "78.0%" in figure.alt
    assert len(up.monthly.loc[up.monthly["metric"].eq("revenue")]) == len(top.lines[0].get_xdata())


def test_pilot_chart_draws_crm_names_literally():
    pilot = evaluate_pilot(pilot_crm(north_name="North $1"), "north", SEPTEMBER_2025)

    figure = pilot_chart(pilot, "deals_won")

    assert "Deals won per manager and month: North \\$1 against South" == figure.axes[0].get_title()


def test_pilot_chart_without_data_says_so():
    figure = pilot_chart(evaluate_pilot(pilot_crm(), "nowhere", SEPTEMBER_2025))

    assert isinstance(figure, ReportFigure)
    assert figure.alt.startswith("No monthly revenue")


# --- demo data ----------------------------------------------------------------------------------


def test_demo_pilot_finds_the_planted_uplift_in_won_deals_and_revenue(east):
    assert (pd.Period("2025-11", "M"), SEPTEMBER_2026) == (east.start, east.end)
    assert ("north", "south", "west") == east.control_ids
    for metric in ("deals_won", "revenue"):
        row = effect(east, metric)
        assert row["low"] < TRUTH.pilot_uplift < row["high"], metric
        assert row["factor"] > 1, metric
    deals = effect(east, "deals_won")
    # 2024-05..2025-10 before, 2025-11..2026-09 after; West's leaver and her successor are two.
    assert (18, 11, 7, 22) == (
        deals["months_before"],
        deals["months_after"],
        deals["treated_managers"],
        deals["control_managers"],
    )
    # Seven managers over eleven months cannot confirm a 15% uplift beyond noise: the intervals
    # reach below 1, so the verdict is to continue the pilot, naming the comparison departments.
    assert effect(east, "revenue")["low"] < 1
    assert "continue the pilot" == east.verdict
    assert "Recommendation: continue the pilot in East" in recommendation(east, "RUB")
    assert "North, South and West" in recommendation(east, "RUB")


def test_demo_end_after_the_data_uses_the_last_month(demo):
    pilot = evaluate_pilot(demo, "east", pd.Period("2027-03", "M"), metrics=("deals_won",))

    assert pd.Period(DemoConfig().end, "M") == pilot.end
    assert 12 == effect(pilot, "deals_won")["months_after"]


def test_demo_without_an_uplift_finds_none(no_effect):
    crm, uplift = no_effect
    pilot = evaluate_pilot(crm, "east", SEPTEMBER_2026)

    assert 1.0 == uplift
    for row in pilot.effects.to_dict("records"):
        assert row["low"] < 1 < row["high"], row["metric"]
    assert "extend" != pilot.verdict


def test_demo_with_a_strong_uplift_is_extended(strong_effect):
    crm, uplift = strong_effect
    pilot = evaluate_pilot(crm, "east", SEPTEMBER_2026)

    for metric in ("deals_won", "revenue"):
        row = effect(pilot, metric)
        assert 1 < row["low"] < uplift < row["high"], metric
        assert row["parallel"] is True
    assert "extend" == pilot.verdict
    assert recommendation(pilot, "RUB").endswith(
        "Recommendation: extend the KPI system to North, South and West."
    )
