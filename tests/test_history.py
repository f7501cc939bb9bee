"""Score histories: consecutive scorecards stacked into long tables with a ``period`` column.

The tests score the small sales source of ``conftest.py`` (north: m1 the star and m2; south: m3)
with the shipped sales funnel scheme. Its deals close in March 2024 and March 2025 only, so the
months in between score zero sales but are covered by the data.
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import sales_tables

from kpilib import open_source
from kpilib.history import (
    HISTORY_METRICS,
    ScoreHistory,
    history_from,
    score_months,
    score_window,
    window_shown,
)
from kpilib.kernels import warm_data
from kpilib.metrics import METRICS
from kpilib.params import load_scheme
from kpilib.scoring import _card_key, score_period
from kpilib.validation import validate_tables

FUNNEL = Path(__file__).resolve().parents[1] / "params" / "schemes" / "sales_funnel.yaml"
JAN, FEB, MARCH = (pd.Period(m, freq="M") for m in ("2025-01", "2025-02", "2025-03"))
STACKED = ("manager_kpis", "department_kpis", "managers", "departments")


@pytest.fixture(scope="module")
def funnel():
    return load_scheme(FUNNEL)


@pytest.fixture(scope="module")
def crm():
    # The `sales_crm` of conftest.py, once per module: histories are slow to score.
    return validate_tables(sales_tables(), source="tests/conftest.py sales source")


@pytest.fixture(scope="module")
def history(crm, funnel) -> ScoreHistory:
    # Months given newest first on purpose: the history puts them oldest first.
    return score_months(crm, funnel, [MARCH, JAN, FEB])


def test_months_and_cards_are_oldest_first_whatever_order_they_were_asked_in(history):
    assert (JAN, FEB, MARCH) == history.months
    assert [JAN, FEB, MARCH] == [card.period for card in history.cards]


@pytest.mark.parametrize("field", STACKED)
def test_each_stacked_table_is_the_months_scorecard_tables_with_their_period(history, field):
    assert ["period"] == [c for c in getattr(history, field).columns if c == "period"]
    stacked = getattr(history, field)
    assert sum(len(getattr(card, field)) for card in history.cards) == len(stacked)
    for card in history.cards:
        month = stacked.loc[stacked["period"].eq(card.period)]
        pd.testing.assert_frame_equal(
            getattr(card, field).reset_index(drop=True),
            month.drop(columns="period").reset_index(drop=True),
            check_dtype=False,  # a month's `met` may be all bool; stacked with others, object
        )


def test_the_period_column_holds_months(history):
    periods = history.manager_kpis["period"]
    assert [JAN, FEB, MARCH] == list(periods.drop_duplicates())
    assert all(isinstance(p, pd.Period) and "M" == p.freqstr for p in periods)


def test_each_month_is_scored_as_its_own_scorecard(crm, funnel, history):
    march = score_period(crm, funnel, MARCH)
    pd.testing.assert_frame_equal(march.manager_kpis, history.card(MARCH).manager_kpis)
    pd.testing.assert_frame_equal(march.managers, history.card(MARCH).managers)


def test_card_returns_the_scorecard_of_the_month(history):
    assert FEB == history.card(FEB).period
    assert history.cards[1] is history.card(FEB)


def test_card_of_a_month_not_in_the_history_raises_key_error(history):
    with pytest.raises(KeyError, match="2024-12"):
        history.card(pd.Period("2024-12", freq="M"))


def test_score_window_scores_the_count_months_ending_with_the_period(crm, funnel, history):
    window = score_window(crm, funnel, MARCH, 2)
    assert (FEB, MARCH) == window.months
    # The last month keeps every indicator, earlier ones at least the history's own.
    assert set(METRICS) == set(window.card(MARCH).department_metrics.columns)
    assert set(HISTORY_METRICS) <= set(window.card(FEB).department_metrics.columns)
    pd.testing.assert_frame_equal(
        history.manager_kpis.loc[history.manager_kpis["period"].ne(JAN)].reset_index(drop=True),
        window.manager_kpis,
        check_dtype=False,
    )


def test_scores_do_not_depend_on_the_indicators_a_history_keeps(crm, funnel, history):
    full = score_months(crm, funnel, history.months, shown=None)
    for field in STACKED:
        pd.testing.assert_frame_equal(getattr(full, field), getattr(history, field))
    kept = history.department_metrics("north")
    assert set(HISTORY_METRICS) <= set(kept.columns)
    pd.testing.assert_frame_equal(full.department_metrics("north")[kept.columns], kept)


def test_score_window_of_one_month_is_that_month(crm, funnel):
    assert (MARCH,) == score_window(crm, funnel, MARCH, 1).months


@pytest.fixture(scope="module")
def south(crm, funnel) -> ScoreHistory:
    return score_months(crm, funnel, [FEB, MARCH], department_id="south")


def test_a_department_history_holds_only_that_departments_managers(south):
    assert {"m3"} == set(south.managers["manager_id"])
    assert {"m3"} == set(south.manager_kpis["manager_id"])
    assert {"south"} == set(south.department_kpis["department_id"])
    assert {"south"} == set(south.departments["department_id"])


def test_without_a_department_every_sales_department_is_scored(history):
    # Logistics is a service department: it has no managers to score and no sales KPIs.
    assert {"north", "south"} == set(history.departments["department_id"])
    assert {"m1", "m2", "m3"} == set(history.managers["manager_id"])
    assert 3 * 3 == len(history.managers)


def test_history_from_orders_cards_oldest_first(history):
    cards = [history.card(MARCH), history.card(JAN)]
    stacked = history_from(cards)
    assert (JAN, MARCH) == stacked.months
    assert cards[0] is stacked.card(MARCH)
    assert [JAN, MARCH] == list(stacked.managers["period"].drop_duplicates())


def test_history_from_refuses_a_month_twice(history):
    card = history.card(MARCH)
    with pytest.raises(ValueError, match="only once"):
        history_from([card, card])


def test_department_metrics_are_the_departments_indicators_month_by_month(history):
    north = history.department_metrics("north")
    assert [JAN, FEB, MARCH] == list(north.index)
    assert "period" == north.index.name
    for card in history.cards:
        expected = card.department_metrics.loc["north"]
        actual = north.loc[card.period, expected.index]
        pd.testing.assert_series_equal(expected, actual, check_names=False)
    # By hand: north sold nothing in January and February 2025, and 1,830,000 in March.
    assert [0.0, 0.0, 1_830_000.0] == north["revenue"].tolist()


def test_department_metrics_of_a_department_not_scored_is_no_data(south):
    north = south.department_metrics("north")
    assert [FEB, MARCH] == list(north.index)
    assert north.isna().all().all()


def test_scores_in_the_history_are_the_scorecards_scores(history):
    scores = history.managers.set_index(["period", "manager_id"])["score"]
    for card in history.cards:
        for manager, score in zip(card.managers["manager_id"], card.managers["score"], strict=True):
            stacked = scores[(card.period, manager)]
            assert (math.isnan(score) and math.isnan(stacked)) or score == stacked


def _assert_same_cards(expected: ScoreHistory, actual: ScoreHistory) -> None:
    assert expected.months == actual.months
    for one, other in zip(expected.cards, actual.cards, strict=True):
        for field in (*STACKED, "manager_kpis", "manager_metrics", "department_metrics"):
            pd.testing.assert_frame_equal(getattr(one, field), getattr(other, field))
    for field in STACKED:
        pd.testing.assert_frame_equal(getattr(expected, field), getattr(actual, field))


def test_a_departments_window_from_kept_company_cards_equals_scoring_it_alone(source, funnel):
    """A batch scores the window once for the whole company; each department's part of it
    must be exactly what scoring the department alone gives."""
    alone, batch = open_source(str(source)), open_source(str(source))
    period = pd.Period("2026-09", freq="M")
    warm_data(batch, funnel, period, 6)  # as a batch does, part of it in a forked process
    kept = [batch.kept(_card_key(funnel, month, shown)) for month, shown in window_shown(period, 6)]
    assert 6 == sum(card is not None for card in kept)

    for department in ("north", "south", "east", "west"):
        _assert_same_cards(
            score_window(alone, funnel, period, 6, department),
            score_window(batch, funnel, period, 6, department),
        )


def test_kept_cards_serve_only_the_same_scheme_month_and_indicators(source, funnel):
    crm = open_source(str(source))
    period = pd.Period("2026-09", freq="M")
    kept = score_period(crm, funnel, period)
    marked = kept.managers.assign(score=7.0)
    crm.keep(_card_key(funnel, period, None), dataclasses.replace(kept, managers=marked))

    assert {7.0} == set(score_period(crm, funnel, period, "north").managers["score"])
    other = funnel.with_hour_cost(funnel.technical_hour_cost + 1)
    assert 7.0 not in set(score_period(crm, other, period, "north").managers["score"])
    assert 7.0 not in set(score_period(crm, funnel, period - 1, "north").managers["score"])
    shown = score_period(crm, funnel, period, "north", HISTORY_METRICS).managers["score"]
    assert 7.0 not in set(shown)
