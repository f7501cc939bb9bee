"""Targets by tier over the quarter: attainment by KPI and tier, and tier targets judged.

Hand-built histories are KPI rows whose actuals and baselines are written out; targets, met flags
and attainments are worked out as scoring does, so every share, quantile and verdict below can be
checked by hand. A growth of g is written as an actual of 100 * (1 + g) over a baseline of 100.
The demo test checks what the data gives for the star tier's 20% growth target company-wide
over the 12 months ending 2026-09.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from kpilib import paths
from kpilib.calibration import (
    ATTAINMENT_COLUMNS,
    JUSTIFICATION_COLUMNS,
    attainment_chart,
    quarter_attainment,
    quarter_attainment_table,
    tier_justification,
    tier_table,
)
from kpilib.history import ScoreHistory, score_months
from kpilib.io import read_source
from kpilib.params import Scheme, load_scheme
from kpilib.periods import months_ending, parse_quarter, quarter_months
from kpilib.plots import ReportFigure
from kpilib.scoring import KPI_COLUMNS, attainment, is_met, kpi_target

JAN, FEB, MAR = (pd.Period(m, "M") for m in ("2026-01", "2026-02", "2026-03"))

SCHEME = Scheme.model_validate(
    {
        "name": "Tier test",
        "goals": [
            {
                "id": "sales",
                "name": "Sales",
                "weight": 0.6,
                "kpis": [
                    {
                        "id": "growth",
                        "name": "Sales growth",
                        "metric": "revenue",
                        "target": {"type": "relative", "value": 0.10, "by_tier": {"star": 0.20}},
                    },
                    {"metric": "deals_won", "target": {"value": 2}},
                    {
                        "id": "department_increase",
                        "name": "Department increase",
                        "metric": "revenue",
                        "level": "department",
                        "target": {"type": "increase", "value": 100},
                    },
                ],
            },
            {
                "id": "service",
                "name": "Service",
                "weight": 0.4,
                "kpis": [{"metric": "response_hours", "target": {"value": 8}}],
            },
        ],
    }
)


def kpi_rows(key: str, rows, tiers) -> pd.DataFrame:
    """Scored rows from ``(entity, month, KPI id, actual[, baseline])``, as scoring does."""
    kpis = {kpi.key: (kpi, weight) for _, kpi, weight in SCHEME.weighted_kpis()}
    records = []
    for entity, period, kpi_id, actual, *rest in rows:
        kpi, weight = kpis[kpi_id]
        base = float(rest[0]) if rest else math.nan
        target = kpi_target(kpi, base, tiers.get(entity))
        records.append(
            {
                key: entity,
                "goal": "g",
                "kpi": kpi.key,
                "label": kpi.label,
                "metric": kpi.metric,
                "level": kpi.level,
                "polarity": kpi.direction,
                "weight": weight,
                "actual": float(actual),
                "baseline": base,
                "target": target,
                "met": is_met(float(actual), target, kpi.direction),
                "attainment": attainment(float(actual), target, kpi.direction, 1.2),
                "period": period,
            }
        )
    return pd.DataFrame(records, columns=[key, *KPI_COLUMNS, "period"])


def hand_history(manager_rows=(), department_rows=(), tiers=None) -> ScoreHistory:
    tiers = tiers or {}
    manager_kpis = kpi_rows("manager_id", manager_rows, tiers)
    department_kpis = kpi_rows("department_id", department_rows, {})
    people = manager_kpis[["manager_id", "period"]].drop_duplicates()
    managers = people.assign(
        tier=[tiers.get(m, "regular") for m in people["manager_id"]], name=people["manager_id"]
    )
    return ScoreHistory(
        months=tuple(sorted({*manager_kpis["period"], *department_kpis["period"]})),
        cards=(),
        manager_kpis=manager_kpis,
        department_kpis=department_kpis,
        managers=managers,
        departments=pd.DataFrame({"department_id": [], "name": [], "period": []}),
    )


def two_months() -> ScoreHistory:
    """m1 (star), m2 and m3 (regular; m3 only in February), department d1.

    Growth: m1 +30% (met 20%) then +10% (missed); m2 +11% (met 10%) then +5% (missed); m3 +20%
    (met). Deals won against 2: m1 3 then 1, m2 2 then 0, m3 4. Department increase over a
    baseline of 100 against +100: 250 (met) then 150 (missed). m1's January response time has no
    data.
    """
    return hand_history(
        [
            ("m1", JAN, "growth", 130, 100),
            ("m1", FEB, "growth", 110, 100),
            ("m2", JAN, "growth", 111, 100),
            ("m2", FEB, "growth", 105, 100),
            ("m3", FEB, "growth", 120, 100),
            ("m1", JAN, "deals_won", 3),
            ("m1", FEB, "deals_won", 1),
            ("m2", JAN, "deals_won", 2),
            ("m2", FEB, "deals_won", 0),
            ("m3", FEB, "deals_won", 4),
            ("m1", JAN, "response_hours", math.nan),
        ],
        [
            ("d1", JAN, "department_increase", 250, 100),
            ("d1", FEB, "department_increase", 150, 100),
        ],
        tiers={"m1": "star"},
    )


def row_of(table: pd.DataFrame, kpi: str, tier: str = "all") -> dict:
    rows = table.loc[table["kpi"].eq(kpi) & table["tier"].eq(tier)]
    assert 1 == len(rows)
    return rows.iloc[0].to_dict()


# --- attainment over the quarter --------------------------------------------------------------


def test_one_row_per_kpi_and_tier_group_then_a_column_per_month():
    attainment = quarter_attainment(two_months(), SCHEME, [JAN, FEB])
    assert [*ATTAINMENT_COLUMNS, "2026-01", "2026-02"] == list(attainment.columns)
    assert [
        ("growth", "star", 0.2),
        ("growth", "other tiers", 0.1),
        ("deals_won", "all", 2.0),
        ("department_increase", "all", 100.0),
        ("response_hours", "all", 8.0),
    ] == list(zip(attainment["kpi"], attainment["tier"], attainment["target"], strict=True))


def test_shares_met_overall_and_by_month_are_as_worked_out():
    attainment = quarter_attainment(two_months(), SCHEME, [JAN, FEB])
    star, others = row_of(attainment, "growth", "star"), row_of(attainment, "growth", "other tiers")
    assert (2, 0.5, 1.0, 0.0) == (star["n"], star["share_met"], star["2026-01"], star["2026-02"])
    assert (3, pytest.approx(2 / 3), 1.0, 0.5) == (
        others["n"],
        others["share_met"],
        others["2026-01"],
        others["2026-02"],
    )
    department = row_of(attainment, "department_increase")
    assert ("department", 2, 0.5, 1.0, 0.0) == (
        department["level"],
        department["n"],
        department["share_met"],
        department["2026-01"],
        department["2026-02"],
    )


def test_attainment_quantiles_are_of_the_capped_attainments():
    # Deals won 3, 1, 2, 0, 4 against 2: attainments 1.2 (capped), 0.5, 1.0, 0.0, 1.2 (capped).
    deals = row_of(quarter_attainment(two_months(), SCHEME, [JAN, FEB]), "deals_won")
    assert (5, 0.6, 1.0, pytest.approx(1 / 3)) == (
        deals["n"],
        deals["share_met"],
        deals["2026-01"],
        deals["2026-02"],
    )
    assert pytest.approx([0.2, 0.5, 1.0, 1.2, 1.2]) == [
        deals[q] for q in ("p10", "p25", "median", "p75", "p90")
    ]
    star = row_of(quarter_attainment(two_months(), SCHEME, [JAN, FEB]), "growth", "star")
    assert pytest.approx((130 / 120 + 110 / 120) / 2) == star["median"]


def test_a_kpi_without_data_is_no_data_not_zero():
    response = row_of(quarter_attainment(two_months(), SCHEME, [JAN, FEB]), "response_hours")
    assert 0 == response["n"]
    assert all(math.isnan(response[c]) for c in ("median", "share_met", "2026-01", "2026-02"))


def test_only_the_chosen_months_count_and_others_are_an_error():
    deals = row_of(quarter_attainment(two_months(), SCHEME, [FEB]), "deals_won")
    assert (3, pytest.approx(1 / 3)) == (deals["n"], deals["share_met"])
    assert "2026-01" not in deals
    with pytest.raises(ValueError, match="2026-03"):
        quarter_attainment(two_months(), SCHEME, [FEB, MAR])
    with pytest.raises(ValueError, match="No months"):
        tier_justification(two_months(), SCHEME, [])


def test_the_attainment_table_is_text_with_targets_in_their_terms():
    table = quarter_attainment_table(quarter_attainment(two_months(), SCHEME, [JAN, FEB]), "RUB")
    assert all(isinstance(v, str) for v in table.to_numpy().ravel())
    assert ["Sales growth", "star", "+20% over the baseline", "2 manager-months", "50.0%"] == [
        table.at[0, c] for c in ("KPI", "Tier", "Target", "Judged on", "Met")
    ]
    assert ["100.0%", "0.0%"] == [
        table.at[0, "Met in January 2026"],
        table.at[0, "Met in February 2026"],
    ]
    assert ["100 RUB over the baseline", "2 department-months"] == [
        table.at[3, "Target"],
        table.at[3, "Judged on"],
    ]
    assert ["8.0 h", "no data", "no data"] == [
        table.at[4, c] for c in ("Target", "Median", "Met in January 2026")
    ]


def test_the_chart_has_a_panel_per_kpi_and_says_no_data():
    figure = attainment_chart(two_months(), SCHEME, [JAN, FEB])
    assert isinstance(figure, ReportFigure)
    shown = [ax for ax in figure.axes if ax.get_visible()]
    assert [
        "Sales growth",
        "Deals won",
        "Department increase (departments)",
        "Response hours",
    ] == [ax.get_title() for ax in shown]
    assert ["no data", "no data"] == [t.get_text() for t in shown[3].texts]
    assert ["100%", "0%", "100%", "50%"] == [t.get_text() for t in shown[0].texts]
    assert "Sales growth (star) 50.0%; Sales growth (other tiers) 66.7%" in figure.alt


# --- tier targets -----------------------------------------------------------------------------

OTHERS = [0.12, 0.15, 0.05, 0.11, 0.02, 0.19, 0.13, 0.08, 0.30, 0.01]  # 6 of 10 reach 10%


def tiered(star_growth, other_growth=OTHERS) -> ScoreHistory:
    """One manager-month per growth value, in January: stars s0, s1, ...; others o0, o1, ..."""
    stars = [(f"s{n}", JAN, "growth", 100 * (1 + g), 100) for n, g in enumerate(star_growth)]
    others = [(f"o{n}", JAN, "growth", 100 * (1 + g), 100) for n, g in enumerate(other_growth)]
    return hand_history(stars + others, tiers={f"s{n}": "star" for n in range(len(star_growth))})


def test_a_tier_meeting_its_target_about_as_often_as_the_others_is_justified():
    stars = [0.25, 0.22, 0.30, 0.05, 0.10, 0.15, 0.00, 0.21]  # 4 of 8 reach 20%
    justification = tier_justification(tiered(stars), SCHEME, [JAN])
    assert JUSTIFICATION_COLUMNS == list(justification.columns)
    row = row_of(justification, "growth", "star")
    assert (0.2, 0.1, 8, 10, 0.5, 0.6) == (
        row["tier_target"],
        row["others_target"],
        row["tier_n"],
        row["others_n"],
        row["tier_share_met"],
        row["others_share_met"],
    )
    # Medians: (0.15 + 0.21) / 2 and (0.11 + 0.12) / 2; of the others only +30% reaches +20%.
    assert (pytest.approx(0.18), pytest.approx(0.115), 0.1) == (
        row["tier_median"],
        row["others_median"],
        row["others_at_tier_target"],
    )
    # Met as often as the others (60%): the stars' 40% quantile, 0.10 + 0.8 * 0.05 = 0.14;
    # 5 of 8 reach it.
    assert (0.14, 0.625) == (row["equal_share_target"], row["equal_share"])
    assert True is row["justified"]
    assert row["sentence"].startswith(
        "Sales growth: Star managers met their target of +20% over the baseline in 50.0% of 8 "
        "manager-months; the other managers met theirs (+10% over the baseline) in 60.0% of 10, "
        "and would have met +20% over the baseline in 10.0%. Star managers' median result was "
        "+18% over the baseline"
    )
    assert row["sentence"].endswith(
        "The stricter target is fair: they meet it about as often as the others meet theirs "
        "(within 15.0 pp)."
    )


def test_a_tier_meeting_its_target_far_less_often_is_not_justified_and_gets_a_target():
    stars = [0.25, 0.05, 0.10, 0.15, 0.00, 0.02, 0.12, 0.08]  # 1 of 8 reach 20%
    row = row_of(tier_justification(tiered(stars), SCHEME, [JAN]), "growth", "star")
    assert (0.125, False) == (row["tier_share_met"], row["justified"])
    # The 40% quantile: 0.05 + 0.8 * 0.03 = 0.074, stated as 0.07; 5 of 8 reach it.
    assert (0.07, 0.625) == (row["equal_share_target"], row["equal_share"])
    assert row["sentence"].endswith(
        "The stricter target is not justified by their history: they meet it 47.5 pp less often "
        "than the others meet theirs. A target of +7% over the baseline would be met as often "
        "(in 62.5% of their manager-months)."
    )


def test_a_tier_meeting_its_target_far_more_often_is_not_justified_either():
    stars = [0.25, 0.30, 0.40, 0.50, 0.22, 0.21, 0.35, 0.60]  # all reach 20%
    row = row_of(tier_justification(tiered(stars), SCHEME, [JAN]), "growth", "star")
    assert (1.0, False, 0.29) == (
        row["tier_share_met"],
        row["justified"],
        row["equal_share_target"],
    )
    assert "They meet the stricter target 40.0 pp more often than the others" in row["sentence"]


def test_too_few_manager_months_leave_the_tier_unjudged():
    justification = tier_justification(tiered([0.3, 0.1, 0.2, 0.0, 0.5]), SCHEME, [JAN])
    row = row_of(justification, "growth", "star")
    assert pd.isna(row["justified"]) and math.isnan(row["equal_share_target"])
    assert "Too little history to judge" in row["sentence"]
    assert "too little data" == tier_table(justification, "RUB").at[0, "Justified"]


def test_only_kpis_with_tier_targets_are_judged():
    justification = tier_justification(two_months(), SCHEME, [JAN, FEB])
    assert [("growth", "star")] == list(
        zip(justification["kpi"], justification["tier"], strict=True)
    )


def test_the_tier_table_is_text():
    stars = [0.25, 0.22, 0.30, 0.05, 0.10, 0.15, 0.00, 0.21]
    table = tier_table(tier_justification(tiered(stars), SCHEME, [JAN]), "RUB")
    assert all(isinstance(v, str) for v in table.to_numpy().ravel())
    assert [
        "Sales growth",
        "star",
        "+20% over the baseline",
        "50.0% of 8",
        "+10% over the baseline",
        "60.0% of 10",
        "+14% over the baseline",
        "yes",
    ] == [
        table.at[0, c]
        for c in ("KPI", "Tier", "Target", "Met", "Others' target", "Others met",
                  "Met as often at", "Justified")
    ]  # fmt: skip


# --- the demo data ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def company_year(source) -> tuple[ScoreHistory, Scheme]:
    scheme = load_scheme(paths.DEFAULT_SCHEME)
    months = months_ending(pd.Period("2026-09", "M"), 12)
    return score_months(read_source(source), scheme, months), scheme


def test_the_demo_star_growth_target_is_met_about_as_often_as_the_others_ten_percent(
    company_year,
):
    """Stars grow at the regulars' rate, but a manager's monthly growth over the same month a
    year ago spreads so widely that a 20% target is met almost as often as a 10% one: the others
    themselves would have met 20% nearly as often as 10%. By the rule, the star target holds."""
    history, scheme = company_year
    justification = tier_justification(history, scheme, history.months)
    row = row_of(justification, "manager_sales_growth", "star")
    assert (59, 269) == (row["tier_n"], row["others_n"])
    assert (pytest.approx(31 / 59), pytest.approx(130 / 269)) == (
        row["tier_share_met"],
        row["others_share_met"],
    )
    assert abs(row["others_at_tier_target"] - row["others_share_met"]) < 0.05
    assert True is row["justified"]


def test_the_demo_quarter_has_every_manager_month_in_its_tier_group(company_year):
    history, scheme = company_year
    attainment = quarter_attainment(history, scheme, quarter_months(parse_quarter("2026Q3")))
    # 28 managers (5 stars) and 4 sales departments over 3 months.
    assert (15, 69, 12) == (
        row_of(attainment, "manager_sales_growth", "star")["n"],
        row_of(attainment, "manager_sales_growth", "other tiers")["n"],
        row_of(attainment, "department_sales_increase")["n"],
    )


def test_one_star_is_too_few_to_judge_the_star_target(source):
    # North has one star: twelve of her months are one person's luck, not a tier's history.
    scheme = load_scheme(paths.DEFAULT_SCHEME)
    months = months_ending(pd.Period("2026-09", "M"), 12)
    history = score_months(read_source(source), scheme, months, "north")
    row = row_of(
        tier_justification(history, scheme, history.months), "manager_sales_growth", "star"
    )
    assert (1, 12) == (row["tier_managers"], row["tier_n"])
    assert pd.isna(row["justified"])
    assert "Too little history to judge the tier's own target (1 star manager(s)" in row["sentence"]
