"""Score versus profit: ranks, the flag, rank agreement, sentences, table and chart.

Hand-built histories are scorecards whose managers' scores and summed indicators are written out,
so every rank, flag and correlation below is worked out by hand. The demo tests check that the
planted high-extra-hours manager (Vasily Orlov) is flagged and his equal-revenue peer (Valery
Smirnov) is not, company-wide and in north, for 2026Q2 and 2026Q3.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy.stats import spearmanr

from kpilib import paths
from kpilib.demo import ground_truth
from kpilib.history import ScoreHistory, history_from, score_months
from kpilib.io import read_source
from kpilib.params import load_scheme
from kpilib.periods import parse_quarter, quarter_months
from kpilib.plots import ReportFigure
from kpilib.quarterly import QUARTERLY_METRICS
from kpilib.ranking import (
    MIN_MANAGERS,
    RANK_COLUMNS,
    SPEARMAN_VARIANCE,
    Z_95,
    flagged_sentences,
    min_gap,
    rank_agreement,
    ranking_chart,
    ranking_table,
    score_profit_ranks,
)
from kpilib.scoring import KPI_COLUMNS, Scorecard

JAN, FEB, MAR = (pd.Period(m, "M") for m in ("2026-01", "2026-02", "2026-03"))
QUARTERLY_SHOWN = QUARTERLY_METRICS  # what the quarterly report scores


def card(period: pd.Period, rows, metrics=("revenue", "net_profit", "extra_costs")) -> Scorecard:
    """A scorecard of ``(id, department, tier, name, score, *metrics)`` rows."""
    managers = pd.DataFrame(
        [row[:5] for row in rows],
        columns=["manager_id", "department_id", "tier", "name", "score"],
    )
    values = pd.DataFrame(
        [[float(v) for v in row[5:]] for row in rows],
        columns=list(metrics),
        index=pd.Index([row[0] for row in rows], name="manager_id"),
    )
    return Scorecard(
        period=period,
        managers=managers,
        departments=pd.DataFrame({"department_id": [], "name": []}),
        manager_kpis=pd.DataFrame(columns=["manager_id", *KPI_COLUMNS]),
        department_kpis=pd.DataFrame(columns=["department_id", *KPI_COLUMNS]),
        manager_metrics=values,
        department_metrics=pd.DataFrame(),
    )


def eight_managers() -> ScoreHistory:
    """Two months, eight managers (thousands of RUB per month).

    Mean score, then the two months' revenue / net profit / extra costs:
        a 100% 300/100/0   b 90% 200/20/60   c 80% 204/90/0   d 70% 100/60/0   (north)
        e 60%  80/40/0     f 50%  60/30/0    g 40%  40/10/0   h 30%  50/25/0   (south)
    h joins in February. Score ranks follow the letters; profit ranks are a 1, c 2, d 3, e 4,
    f 5, h 6, b 7, g 8. Flagged: profit rank at least 8/3, so 3 places, below the score rank: b
    alone (5 places; g is 8th by profit but 7th by score). Net margins: a 33.3%, b 10%, c 44.1%,
    d 60%, e 50%, f 50%, g 25%, h 50%; median 47.1%, so b and g lie 15 pp or more below it (a, at
    33.3%, does not): flagged b and g.
    """
    january = [
        ("a", "north", "star", "Anna", 1.0, 150e3, 50e3, 0),
        ("b", "north", "regular", "Boris", 0.8, 100e3, 10e3, 30e3),
        ("c", "north", "regular", "Clara", 0.8, 102e3, 45e3, 0),
        ("d", "north", "regular", "Denis", 0.7, 50e3, 30e3, 0),
        ("e", "south", "regular", "Egor", 0.6, 40e3, 20e3, 0),
        ("f", "south", "regular", "Fedor", 0.5, 30e3, 15e3, 0),
        ("g", "south", "regular", "Galina", 0.4, 20e3, 5e3, 0),
    ]
    february = [
        ("a", "north", "star", "Anna", 1.0, 150e3, 50e3, 0),
        ("b", "north", "regular", "Boris", 1.0, 100e3, 10e3, 30e3),
        ("c", "north", "regular", "Clara", 0.8, 102e3, 45e3, 0),
        ("d", "north", "regular", "Denis", 0.7, 50e3, 30e3, 0),
        ("e", "south", "regular", "Egor", 0.6, 40e3, 20e3, 0),
        ("f", "south", "regular", "Fedor", 0.5, 30e3, 15e3, 0),
        ("g", "south", "regular", "Galina", 0.4, 20e3, 5e3, 0),
        ("h", "south", "regular", "Hanna", 0.3, 50e3, 25e3, 0),
    ]
    return history_from([card(JAN, january), card(FEB, february)])


@pytest.fixture(scope="module")
def ranks() -> pd.DataFrame:
    return score_profit_ranks(eight_managers(), [JAN, FEB])


# --- ranks and the flag -----------------------------------------------------------------------


def test_ranks_hold_one_row_per_manager_with_sums_and_ratios(ranks):
    assert RANK_COLUMNS == list(ranks.columns)
    assert list("abcdefgh") == list(ranks["manager_id"])
    b = ranks.set_index("manager_id").loc["b"]
    assert (2, pytest.approx(0.9), 200e3, 20e3, 60e3) == (
        b["months"],
        b["score"],
        b["revenue"],
        b["net_profit"],
        b["extra_costs"],
    )
    assert (pytest.approx(0.1), pytest.approx(0.3)) == (b["margin"], b["extra_cost_share"])
    h = ranks.set_index("manager_id").loc["h"]
    assert (1, pytest.approx(0.3), 50e3) == (h["months"], h["score"], h["revenue"])


def test_score_and_profit_ranks_and_the_flags_are_as_worked_out(ranks):
    assert [1, 2, 3, 4, 5, 6, 7, 8] == ranks["score_rank"].to_list()
    # Profit a month worked: a 50, b 10, c 45, d 30, e 20, f 15, g 5, h 25 (one month).
    assert [1, 7, 2, 3, 5, 6, 8, 4] == ranks["profit_rank"].to_list()
    assert ["b", "g"] == ranks.loc[ranks["flagged"], "manager_id"].to_list()


def test_the_flag_needs_a_third_of_the_group_and_at_least_two_places():
    assert [2, 2, 2, 3, 3, 10] == [min_gap(n) for n in (2, 3, 6, 7, 9, 28)]
    # Two managers ranked in opposite order by score and profit: one place is no signal.
    rows = [
        ("a", "north", "regular", "A", 0.9, 100, 10, 0),
        ("b", "north", "regular", "B", 0.8, 100, 30, 0),
    ]
    ranks = score_profit_ranks(history_from([card(JAN, rows)]), [JAN])
    assert [False, False] == ranks["flagged"].to_list()


def test_only_the_chosen_months_count():
    # January alone: b scores 80%, tied with c for 2nd; h was not active, so seven managers.
    january = score_profit_ranks(eight_managers(), [JAN]).set_index("manager_id")
    assert 7 == len(january)
    assert (2, 2, 100e3) == (
        january.at["b", "score_rank"],
        january.at["c", "score_rank"],
        january.at["b", "revenue"],
    )
    # Seven ranked: flagged 3 places or more lower by profit; b is 6th by profit, 4 places. Margins
    # 33.3, 10, 44.1, 60, 50, 50 and 25%: median 44.1%, so b and g are 15 pp or more below it.
    assert ["b", "g"] == january.index[january["flagged"]].to_list()


def test_a_manager_without_profit_data_is_not_ranked_or_flagged():
    rows = [
        ("a", "north", "regular", "A", 0.9, 100, 30, 0),
        ("b", "north", "regular", "B", 0.8, 100, math.nan, 0),
        ("c", "north", "regular", "C", 0.7, 100, 10, 0),
    ]
    ranks = score_profit_ranks(history_from([card(JAN, rows)]), [JAN])
    assert ["a", "c", "b"] == ranks["manager_id"].to_list()
    assert [1, 2] == ranks["score_rank"].iloc[:2].to_list()
    assert ranks["score_rank"].isna().iloc[2] and ranks["profit_rank"].isna().iloc[2]
    assert [False, False, False] == ranks["flagged"].to_list()


def test_a_history_without_extra_costs_has_no_data_there_not_zero():
    rows = [("a", "north", "regular", "A", 0.9, 100, 10)]
    history = history_from([card(JAN, rows, metrics=("revenue", "net_profit"))])
    ranks = score_profit_ranks(history, [JAN])
    assert math.isnan(ranks.at[0, "extra_costs"]) and math.isnan(ranks.at[0, "extra_cost_share"])


def test_a_month_outside_the_history_or_no_month_is_an_error():
    with pytest.raises(ValueError, match="2026-03"):
        score_profit_ranks(eight_managers(), [JAN, MAR])
    with pytest.raises(ValueError, match="No months"):
        score_profit_ranks(eight_managers(), [])


def test_without_any_profit_data_nobody_is_ranked_and_the_sentence_says_so():
    rows = [("a", "north", "regular", "A", 0.9, 100, math.nan, 0)]
    ranks = score_profit_ranks(history_from([card(JAN, rows)]), [JAN])
    assert ["No manager has both a KPI score and a net profit over the months."] == (
        flagged_sentences(ranks, "RUB")
    )
    assert 0 == rank_agreement(ranks).n


def test_ranking_does_not_change_the_history():
    history = eight_managers()
    before = history.managers.copy()
    score_profit_ranks(history, [JAN, FEB])
    pd.testing.assert_frame_equal(before, history.managers)


# --- rank agreement ---------------------------------------------------------------------------


def test_rank_agreement_is_spearmans_rho_with_a_fisher_z_interval(ranks):
    # Rank differences 0, -5, 1, 1, 0, 0, -1, 4: sum of squares 44; rho = 1 - 6*44/(8*63).
    rho = 1 - 6 * 44 / (8 * 63)
    half = Z_95 * math.sqrt(SPEARMAN_VARIANCE / 5)
    agreement = rank_agreement(ranks)
    assert (pytest.approx(rho), 8) == (agreement.rho, agreement.n)
    assert pytest.approx(spearmanr(ranks["score"], ranks["profit_per_month"]).statistic) == rho
    assert pytest.approx(math.tanh(math.atanh(rho) - half)) == agreement.low
    assert pytest.approx(math.tanh(math.atanh(rho) + half)) == agreement.high
    assert "rank correlation 0.48 (95% CI \u22120.37 to 0.89) over 8 managers" in agreement.sentence
    assert "no link at all cannot be ruled out" in agreement.sentence


def test_too_few_managers_give_no_correlation_and_say_so():
    rows = [(f"m{n}", "north", "regular", f"M{n}", n / 10, 100, n, 0) for n in range(4)]
    agreement = rank_agreement(score_profit_ranks(history_from([card(JAN, rows)]), [JAN]))
    assert MIN_MANAGERS > agreement.n == 4
    assert math.isnan(agreement.rho) and math.isnan(agreement.low)
    assert "too few" in agreement.sentence


def test_a_perfect_agreement_has_a_finite_interval_at_one():
    rows = [(f"m{n}", "north", "regular", f"M{n}", n / 10, 100, n, 0) for n in range(6)]
    agreement = rank_agreement(score_profit_ranks(history_from([card(JAN, rows)]), [JAN]))
    assert (1.0, 1.0) == (pytest.approx(agreement.rho), pytest.approx(agreement.high))
    assert "much as net profit does" in agreement.sentence


# --- sentences, table and chart ---------------------------------------------------------------


def test_the_flag_sentence_gives_ranks_the_cause_and_the_revenue_peer(ranks):
    assert [
        "Boris ranks 2nd of 8 by KPI score but 7th by net profit (20,000 RUB): technical hours "
        "cost 30.0% of the revenue, against 0.0% for the group's median manager. Clara, of the "
        "same department with revenue within 2.0% of it, made 90,000 RUB net profit (70,000 RUB "
        "more) and ranks 3rd by KPI score.",
        "Galina ranks 7th of 8 by KPI score but 8th by net profit (10,000 RUB): net profit is "
        "25.0% of the revenue, against 47.1% for the group's median manager.",
    ] == flagged_sentences(ranks, "RUB")


def test_a_thin_margin_without_hours_is_named_and_no_peer_outside_five_percent():
    # b: 100 revenue, 5 profit, no hours; margins of the others 40-50%; nobody within 5 revenue.
    rows = [
        ("a", "north", "regular", "A", 0.9, 200, 100, 0),
        ("b", "north", "regular", "B", 0.8, 100, 5, 0),
        ("c", "north", "regular", "C", 0.7, 150, 60, 0),
        ("d", "north", "regular", "D", 0.6, 90, 40, 0),
        ("e", "north", "regular", "E", 0.5, 30, 15, 0),
    ]
    ranks = score_profit_ranks(history_from([card(JAN, rows)]), [JAN])
    # Margins 50%, 5%, 40%, 44.4%, 50%: median 44.4%.
    assert [
        "B ranks 2nd of 5 by KPI score but 5th by net profit (5 RUB): net profit is 5.0% of the "
        "revenue, against 44.4% for the group's median manager."
    ] == flagged_sentences(ranks, "RUB")


def test_low_revenue_is_the_cause_when_costs_are_ordinary():
    rows = [
        ("a", "north", "regular", "A", 0.9, 200, 100, 0),
        ("b", "north", "regular", "B", 0.8, 10, 5, 0),
        ("c", "north", "regular", "C", 0.7, 150, 75, 0),
        ("d", "north", "regular", "D", 0.6, 90, 45, 0),
        ("e", "north", "regular", "E", 0.5, 30, 15, 0),
    ]
    ranks = score_profit_ranks(history_from([card(JAN, rows)]), [JAN])
    (sentence,) = flagged_sentences(ranks, "RUB")
    assert sentence.endswith("the revenue itself is low (10 RUB, 5th of 5).")


def test_nobody_flagged_is_one_sentence_saying_so():
    rows = [(f"m{n}", "north", "regular", f"M{n}", n / 10, 100, n, 0) for n in range(6)]
    ranks = score_profit_ranks(history_from([card(JAN, rows)]), [JAN])
    (sentence,) = flagged_sentences(ranks, "RUB")
    assert sentence.startswith(
        "No manager's net profit rank lies a third of the group or more (2 "
        "places of 6) below their KPI score rank"
    )


def test_the_table_is_text_in_score_rank_order(ranks):
    table = ranking_table(ranks, "RUB")
    assert [
        "Score rank",
        "Manager",
        "Department",
        "Tier",
        "Months",
        "KPI score",
        "Net profit",
        "Net profit a month",
        "Profit rank",
        "Revenue",
        "Net margin",
        "Technical hours cost",
        "Flag",
    ] == list(table.columns)
    assert all(isinstance(v, str) for v in table.to_numpy().ravel())
    assert ["2", "Boris", "90.0%", "20,000 RUB", "7", "30.0%", "score high, profit low"] == [
        table.at[1, c]
        for c in ("Score rank", "Manager", "KPI score", "Net profit", "Profit rank",
                  "Technical hours cost", "Flag")
    ]  # fmt: skip


def test_the_chart_labels_flagged_managers_literally():
    rows = [
        ("a", "north", "regular", "A", 0.9, 200, 100, 0),
        ("b", "north", "regular", "$B$", 0.8, 100, 5, 0),
        ("c", "north", "regular", "C", 0.7, 150, 60, 0),
        ("d", "north", "regular", "D", 0.6, 90, 40, 0),
        ("e", "north", "regular", "E", 0.5, 30, 15, 0),
    ]
    figure = ranking_chart(score_profit_ranks(history_from([card(JAN, rows)]), [JAN]), "RUB")
    assert isinstance(figure, ReportFigure)
    assert ["\\$B\\$"] == [text.get_text() for text in figure.axes[0].texts]
    assert "for 5 managers; flagged for a high score and low profit: $B$." in figure.alt


# --- the demo data ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_histories(source) -> dict[str | None, ScoreHistory]:
    crm = read_source(source)
    scheme = load_scheme(paths.DEFAULT_SCHEME)
    months = [*quarter_months(parse_quarter("2026Q2")), *quarter_months(parse_quarter("2026Q3"))]
    return {
        department: score_months(crm, scheme, months, department, shown=QUARTERLY_SHOWN)
        for department in (None, "north")
    }


@pytest.mark.parametrize("department", [None, "north"])
@pytest.mark.parametrize("quarter", ["2026Q2", "2026Q3"])
def test_the_high_hours_manager_is_flagged_and_his_equal_revenue_peer_is_not(
    demo_histories, department, quarter
):
    truth = ground_truth()
    ranks = score_profit_ranks(demo_histories[department], quarter_months(parse_quarter(quarter)))
    flagged = set(ranks.loc[ranks["flagged"], "manager_id"])
    assert truth.high_hours_manager_id in flagged
    assert truth.revenue_peer_id not in flagged
    # Few others: in 2026Q2 two managers company-wide whose profit rank trails their score rank
    # by ten places or more; nobody else in north or in 2026Q3.
    assert len(flagged) <= 3
    vasily = ranks.set_index("manager_id").loc[truth.high_hours_manager_id]
    low, high = truth.high_hours_cost_share
    assert low - 0.02 <= vasily["extra_cost_share"] <= high
    (sentence,) = [s for s in flagged_sentences(ranks, "RUB") if s.startswith("Vasily Orlov")]
    assert "technical hours cost" in sentence
    assert "Valery Smirnov, of the same department with revenue within" in sentence


def test_company_wide_score_and_profit_rank_managers_alike_in_2026q3(demo_histories):
    ranks = score_profit_ranks(demo_histories[None], quarter_months(parse_quarter("2026Q3")))
    agreement = rank_agreement(ranks)
    assert 28 == agreement.n
    assert 0 < agreement.low < agreement.rho < agreement.high


def test_a_manager_hired_in_the_last_month_is_ranked_on_the_months_worked():
    # n joins in February: 48 a month is second only to a (50 a month), though her 48 over the
    # two months is less than a's 100, c's 90 or d's 60 (ranked on those, 4th: flagged).
    jan = [("a", "north", "regular", "A", 0.9, 150e3, 50e3, 0),
           ("c", "north", "regular", "C", 0.8, 102e3, 45e3, 0),
           ("d", "north", "regular", "D", 0.7, 50e3, 30e3, 0)]  # fmt: skip
    feb = [*jan, ("n", "north", "regular", "N", 0.95, 100e3, 48e3, 0)]
    ranks = score_profit_ranks(history_from([card(JAN, jan), card(FEB, feb)]), [JAN, FEB])
    n = ranks.set_index("manager_id").loc["n"]
    assert (1, 48e3, 1, 2) == (n["months"], n["net_profit"], n["score_rank"], n["profit_rank"])
    assert not ranks["flagged"].any()
