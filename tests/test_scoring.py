"""Scoring: attainment, targets, weighted scores and the scorecard of a month.

The scorecard tests score March 2025 of the sales source in ``conftest.py`` (see
``test_metrics.py`` for its figures) with the shipped sales funnel scheme, whose baseline is the
same month a year earlier (March 2024: m1 100,000, m2 200,000, m3 50,000; north 300,000).
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpilib.params import Kpi, load_scheme
from kpilib.scoring import (
    _summed_targets,
    attainment,
    is_met,
    kpi_target,
    score_period,
    scorecard_json,
    weighted_score,
)
from kpilib.validation import validate_tables

FUNNEL = Path(__file__).resolve().parents[1] / "params" / "schemes" / "sales_funnel.yaml"
MARCH = pd.Period("2025-03", freq="M")

finite = st.floats(allow_nan=False, allow_infinity=False)
caps = st.floats(min_value=0.01, max_value=100, allow_nan=False)
polarities = st.sampled_from(["higher", "lower"])


@pytest.fixture(scope="module")
def funnel():
    return load_scheme(FUNNEL)


@pytest.fixture
def card(sales_crm, funnel):
    return score_period(sales_crm, funnel, MARCH)


def kpi_rows(card, manager: str) -> dict[str, dict]:
    rows = card.manager_kpis.loc[card.manager_kpis["manager_id"].eq(manager)]
    return {row["kpi"]: row for row in rows.to_dict("records")}


# --- attainment and is_met --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "target", "polarity", "cap", "expected"),
    [
        (110.0, 100.0, "higher", 1.2, 1.1),
        (100.0, 100.0, "higher", 1.2, 1.0),
        (150.0, 100.0, "higher", 1.2, 1.2),
        (-10.0, 100.0, "higher", 1.2, 0.0),
        (5.0, 4.0, "lower", 1.2, 0.8),
        (2.0, 4.0, "lower", 1.2, 1.2),
        (0.0, 4.0, "lower", 1.2, 1.2),
        (0.0, 0.0, "higher", 1.5, 1.5),
        (-1.0, 0.0, "higher", 1.5, 0.0),
        (0.0, 0.0, "lower", 1.5, 1.5),
        (1.0, 0.0, "lower", 1.5, 0.0),
        (-0.02, -0.05, "higher", 1.2, 1.2),
        (-0.10, -0.05, "higher", 1.2, 0.0),
        (-0.10, -0.05, "lower", 1.2, 1.2),
    ],
    ids=[
        "above",
        "exactly",
        "capped",
        "negative-actual",
        "lower-missed",
        "lower-capped",
        "lower-zero-actual",
        "zero-target-met",
        "zero-target-missed",
        "lower-zero-target-met",
        "lower-zero-target-missed",
        "negative-target-met",
        "negative-target-missed",
        "lower-negative-target-met",
    ],
)
def test_attainment(actual, target, polarity, cap, expected):
    assert expected == attainment(actual, target, polarity, cap)


@pytest.mark.parametrize(("actual", "target"), [(math.nan, 100.0), (100.0, math.nan)])
def test_attainment_without_data_is_nan(actual, target):
    assert math.isnan(attainment(actual, target, "higher", 1.2))


@pytest.mark.parametrize(
    ("actual", "target", "polarity", "expected"),
    [
        (100.0, 100.0, "higher", True),
        (99.0, 100.0, "higher", False),
        (4.0, 4.0, "lower", True),
        (4.5, 4.0, "lower", False),
        (math.nan, 4.0, "lower", None),
        (4.0, math.nan, "higher", None),
    ],
)
def test_is_met(actual, target, polarity, expected):
    assert expected is is_met(actual, target, polarity)


@given(actual=finite, target=finite, polarity=polarities, cap=caps)
def test_attainment_is_always_within_zero_and_the_cap(actual, target, polarity, cap):
    assert 0.0 <= attainment(actual, target, polarity, cap) <= cap


@given(a=finite, b=finite, target=finite, cap=caps)
def test_for_lower_is_better_a_smaller_actual_never_scores_lower(a, b, target, cap):
    smaller, larger = sorted((a, b))
    assert attainment(smaller, target, "lower", cap) >= attainment(larger, target, "lower", cap)


@given(a=finite, b=finite, target=finite, cap=caps)
def test_for_higher_is_better_a_larger_actual_never_scores_lower(a, b, target, cap):
    smaller, larger = sorted((a, b))
    assert attainment(larger, target, "higher", cap) >= attainment(smaller, target, "higher", cap)


@given(actual=finite, target=finite, polarity=polarities, cap=caps)
def test_attainment_is_the_cap_or_zero_exactly_when_a_non_positive_target_is_met_or_not(
    actual, target, polarity, cap
):
    if target <= 0:
        met = is_met(actual, target, polarity)
        assert (cap if met else 0.0) == attainment(actual, target, polarity, cap)


# --- weighted score ---------------------------------------------------------------------------


def test_weighted_score_ignores_kpis_without_data_and_reports_coverage():
    score, coverage = weighted_score(pd.Series([1.0, math.nan, 0.5]), pd.Series([0.5, 0.3, 0.2]))
    assert pytest.approx(((0.5 * 1.0 + 0.2 * 0.5) / 0.7, 0.7)) == (score, coverage)


def test_weighted_score_without_any_data_is_nan_with_zero_coverage():
    score, coverage = weighted_score(pd.Series([math.nan, math.nan]), pd.Series([0.5, 0.5]))
    assert (True, 0.0) == (math.isnan(score), coverage)


def test_a_manager_at_the_cap_on_every_kpi_with_data_scores_exactly_the_cap():
    score, _ = weighted_score(pd.Series([1.2, 1.2, math.nan]), pd.Series([0.15, 0.30, 0.55]))
    assert 1.2 == score


@st.composite
def scored_kpis(draw):
    caps_ = draw(st.lists(caps, min_size=1, max_size=8))
    weights = draw(
        st.lists(st.floats(min_value=0.001, max_value=1), min_size=len(caps_), max_size=len(caps_))
    )
    attainments = [draw(st.none() | st.floats(min_value=0, max_value=cap)) for cap in caps_]
    return caps_, weights, [math.nan if a is None else a for a in attainments]


@given(scored_kpis())
def test_weighted_score_stays_within_zero_and_the_largest_cap(kpis):
    caps_, weights, attainments = kpis
    score, coverage = weighted_score(pd.Series(attainments), pd.Series(weights))
    known = [w for w, a in zip(weights, attainments, strict=True) if not math.isnan(a)]
    assert pytest.approx(sum(known) / sum(weights)) == coverage
    if known:
        # The mean is computed in floating point: allow the last digit of the largest cap.
        assert 0.0 <= score <= max(caps_) * (1 + 1e-12)
    else:
        assert math.isnan(score)


# --- targets ----------------------------------------------------------------------------------


def kpi(target: dict, metric: str = "revenue") -> Kpi:
    return Kpi(metric=metric, target=target)


@pytest.mark.parametrize(
    ("target", "baseline", "tier", "expected"),
    [
        ({"type": "absolute", "value": 2}, 5.0, "regular", 2.0),
        ({"type": "absolute", "value": 2}, math.nan, None, 2.0),
        ({"type": "increase", "value": 100_000}, 300_000.0, None, 400_000.0),
        ({"type": "relative", "value": 0.10}, 100_000.0, "regular", 110_000.0),
        (
            {"type": "relative", "value": 0.10, "by_tier": {"star": 0.20}},
            100_000.0,
            "star",
            120_000.0,
        ),
        (
            {"type": "relative", "value": 0.10, "by_tier": {"star": 0.20}},
            100_000.0,
            "regular",
            110_000.0,
        ),
        (
            {"type": "relative", "value": 0.10, "by_tier": {"star": 0.20}},
            100_000.0,
            None,
            110_000.0,
        ),
    ],
    ids=[
        "absolute",
        "absolute-without-baseline",
        "increase",
        "relative",
        "star-tier",
        "regular-tier",
        "department",
    ],
)
def test_kpi_target(target, baseline, tier, expected):
    assert pytest.approx(expected) == kpi_target(kpi(target), baseline, tier)


@pytest.mark.parametrize(
    ("target", "baseline"),
    [
        ({"type": "relative", "value": 0.1}, math.nan),
        ({"type": "relative", "value": 0.1}, 0.0),
        ({"type": "increase", "value": 100}, math.nan),
    ],
    ids=["relative-no-baseline", "relative-zero-baseline", "increase-no-baseline"],
)
def test_a_target_over_no_baseline_is_no_target(target, baseline):
    assert math.isnan(kpi_target(kpi(target), baseline, "regular"))


# --- the scorecard of a month -----------------------------------------------------------------


def test_department_kpis_are_shared_by_every_manager_of_the_department(card):
    department = card.department_kpis.set_index(["department_id", "kpi"])
    columns = ["actual", "target", "met", "attainment", "weight"]
    for manager, department_id in [("m1", "north"), ("m2", "north"), ("m3", "south")]:
        shared = kpi_rows(card, manager)["department_sales_increase"]
        expected = department.loc[(department_id, "department_sales_increase"), columns]
        assert expected.tolist() == [shared[c] for c in columns]
    north = kpi_rows(card, "m1")["department_sales_increase"]
    assert (1_830_000.0, 400_000.0, True, 1.2) == (
        north["actual"],
        north["target"],
        north["met"],
        north["attainment"],
    )


def test_growth_targets_follow_the_tier_a_star_20_percent_a_regular_10(card):
    assert pytest.approx([120_000.0, 220_000.0, 55_000.0]) == [
        kpi_rows(card, m)["manager_sales_growth"]["target"] for m in ("m1", "m2", "m3")
    ]


def test_a_managers_score_is_the_weighted_mean_attainment_by_hand(card):
    service = 0.40 / 3
    m1 = (
        0.15 * 1.2  # department: 1,830,000 against 300,000 + 100,000, capped
        + 0.15 * 1.2  # growth: 1,650,000 against 120,000, capped
        + 0.30 * 1 / 2  # one new client of two
        + service * (0.5 / 0.95)  # on-time delivery 50% of 95%
        + service * (4 / 6)  # fulfilment 6 days against 4
        + service * (8 / 9)
    )  # response 9 hours against 8
    # m2 has no fulfilment and no response time: those weights are left out, not scored zero.
    m2_weight = 0.15 + 0.15 + 0.30 + service
    m2 = (0.15 * 1.2 + 0.15 * 180_000 / 220_000 + 0.30 * 0 + service * 0) / m2_weight
    scores = card.managers.set_index("manager_id")
    assert pytest.approx([m1, m2]) == scores.loc[["m1", "m2"], "score"].tolist()
    assert pytest.approx([1.0, m2_weight]) == scores.loc[["m1", "m2"], "coverage"].tolist()
    assert [2, 1] == scores.loc[["m1", "m2"], "kpis_met"].tolist()


def test_the_scorecard_lists_each_manager_with_every_kpi_of_the_scheme(card, funnel):
    keys = [kpi.key for _, kpi, _ in funnel.weighted_kpis()]
    assert ["m1", "m2", "m3"] == card.managers["manager_id"].tolist()
    for manager in ("m1", "m2", "m3"):
        assert keys == list(kpi_rows(card, manager))


def test_score_period_for_one_department_scores_only_it(sales_crm, funnel):
    south = score_period(sales_crm, funnel, MARCH, department_id="south")
    assert (["m3"], ["south"]) == (
        south.managers["manager_id"].tolist(),
        south.departments["department_id"].tolist(),
    )


def test_score_period_does_not_mutate_the_source(sales_crm, funnel):
    before = sales_crm.deals.copy()
    score_period(sales_crm, funnel, MARCH)
    pd.testing.assert_frame_equal(before, sales_crm.deals)


def test_scorecard_json_has_the_documented_keys_and_null_for_no_data(card):
    data = json.loads(json.dumps(scorecard_json(card), allow_nan=False))
    assert "2025-03" == data["period"]
    m2 = next(m for m in data["managers"] if m["manager_id"] == "m2")
    assert {"manager_id", "department_id", "tier", "score", "metrics", "kpis"} <= set(m2)
    assert ("north", "regular") == (m2["department_id"], m2["tier"])
    kpis = {entry["kpi"]: entry for entry in m2["kpis"]}
    assert {"kpi", "actual", "target", "met", "attainment", "weight"} <= set(kpis["new_clients"])
    assert {
        "kpi": "fulfilment_days",
        "actual": None,
        "target": 4.0,
        "met": None,
        "attainment": None,
    } == {
        key: kpis["fulfilment_days"][key]
        for key in ("kpi", "actual", "target", "met", "attainment")
    }
    assert (180_000.0, None) == (m2["metrics"]["revenue"], m2["metrics"]["response_hours"])


def test_department_targets_of_additive_kpis_are_the_sum_of_its_managers(card):
    department = card.department_kpis.set_index(["department_id", "kpi"])
    # North: two managers, each asked for two new clients; growth targets 120,000 + 220,000.
    assert 4.0 == department.loc[("north", "new_clients"), "target"]
    assert pytest.approx(340_000.0) == department.loc[("north", "manager_sales_growth"), "target"]
    # Shares are not additive: the department keeps the scheme's own target.
    assert 0.95 == department.loc[("north", "on_time_delivery"), "target"]


def test_a_baseline_before_the_data_begins_gives_no_target_not_an_easy_one(sales_crm, funnel):
    # March 2024 is the data's first month: its year-ago baseline lies outside the data.
    first = score_period(sales_crm, funnel, pd.Period("2024-03", "M"))
    rows = first.department_kpis.set_index(["department_id", "kpi"])
    assert math.isnan(rows.loc[("north", "department_sales_increase"), "target"])
    assert rows.loc[("north", "department_sales_increase"), "met"] is None


def test_a_manager_without_a_name_is_shown_by_id(raw_sales, funnel):
    managers = raw_sales["managers"].assign(name=[None, "Boris", "Vera"])
    crm = validate_tables({**raw_sales, "managers": managers})
    card = score_period(crm, funnel, MARCH)
    assert ["m1", "Boris", "Vera"] == card.managers["name"].tolist()


@given(
    st.lists(
        st.floats(min_value=-1e12, max_value=1e12, allow_nan=False) | st.just(math.nan),
        min_size=1,
        max_size=12,
    ),
    st.integers(min_value=0, max_value=12),
)
def test_a_departments_summed_target_is_exact_whatever_else_is_scored_with_it(targets, others):
    """The sum is exactly rounded, so a department scored alone or beside others (as a batch
    scores the whole company) gets the very same target."""
    mine = [f"m{n}" for n in range(len(targets))]
    theirs = [f"o{n}" for n in range(others)]
    managers = pd.DataFrame(
        {"manager_id": mine + theirs, "department_id": ["d"] * len(mine) + ["e"] * others}
    )
    rows = pd.DataFrame(
        {
            "manager_id": mine + theirs,
            "metric": "revenue",
            "kpi": "sales",
            "target": targets + [1e12 / 3] * others,
        }
    )

    alone = _summed_targets(rows.iloc[: len(mine)], managers.iloc[: len(mine)])
    together = _summed_targets(rows, managers)

    known = [t for t in targets if not math.isnan(t)]
    expected = math.fsum(known) if known else math.nan
    assert [expected] == [alone[("d", "sales")]] or math.isnan(expected)
    assert alone[("d", "sales")] == together[("d", "sales")] or math.isnan(expected)
    assert math.isnan(expected) == math.isnan(together[("d", "sales")])
