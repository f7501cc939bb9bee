"""Fine-tuning: target calibration, weights without variance, and what-ifs (API and ``kpi whatif``).

Calibration cases use hand-built histories: KPI rows whose actuals, baselines and targets are
written out, so the share that met a target and the proposed target can be worked out by hand
(proposals are the value that 60% of past observations reached, rounded as a scheme would state
it). What-ifs run on the small sales source of ``conftest.py`` and on north's demo data.
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpilib import paths
from kpilib.cli import main
from kpilib.history import ScoreHistory, score_window
from kpilib.io import read_source, read_yaml, write_tables
from kpilib.params import Kpi, Scheme, load_scheme
from kpilib.scoring import KPI_COLUMNS, attainment, is_met, kpi_target
from kpilib.testing import vasily_valery_tables
from kpilib.tuning import (
    AIM,
    ALL_TIERS,
    CALIBRATION_COLUMNS,
    EASY,
    HARD,
    MIN_OBSERVATIONS,
    _calibrate,
    compare,
    nice,
    proposed_scheme,
    target_calibration,
    tuning_proposals,
    weight_variance,
    whatif,
    whatif_table,
)

MARCH = pd.Period("2025-03", freq="M")
SEPTEMBER_2026 = pd.Period("2026-09", freq="M")
WHATIF_MONTHS = [pd.Period("2026-08", freq="M"), SEPTEMBER_2026]
FUNNEL = paths.DEFAULT_SCHEME


def months(count: int) -> list[pd.Period]:
    return list(pd.period_range("2026-01", periods=count, freq="M"))


# --- hand-built histories ---------------------------------------------------------------------

SCHEME = Scheme.model_validate(
    {
        "name": "Calibration test",
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


def _with_response_target(value: float) -> Scheme:
    data = SCHEME.model_dump(exclude_none=True)
    data["goals"][1]["kpis"][0]["target"]["value"] = value
    return Scheme.model_validate(data)


HOUR, QUARTER_HOUR = _with_response_target(1), _with_response_target(0.25)


COLUMNS = [*KPI_COLUMNS, "period"]


def kpi_rows(scheme: Scheme, key: str, rows, tiers) -> pd.DataFrame:
    """Scored KPI rows from ``(entity, month, KPI id, actual[, baseline])``, worked out as
    scoring does: the target from the scheme (and the entity's tier), then met and attainment."""
    kpis = {kpi.key: (kpi, weight) for _, kpi, weight in scheme.weighted_kpis()}
    records = []
    for entity, period, kpi_id, actual, *rest in rows:
        kpi, weight = kpis[kpi_id]
        base = float(rest[0]) if rest else math.nan
        target = kpi_target(kpi, base, tiers.get(entity))
        actual = float(actual)
        records.append(
            {
                key: entity,
                "kpi": kpi.key,
                "label": kpi.label,
                "metric": kpi.metric,
                "level": kpi.level,
                "polarity": kpi.direction,
                "weight": weight,
                "actual": actual,
                "baseline": base,
                "target": target,
                "met": is_met(actual, target, kpi.direction),
                "attainment": attainment(actual, target, kpi.direction, scheme.default_cap),
                "period": period,
            }
        )
    return pd.DataFrame(records, columns=[key, *COLUMNS])


def hand_history(
    manager_rows=(), department_rows=(), tiers=None, scheme: Scheme = SCHEME
) -> ScoreHistory:
    """A history of hand-written KPI rows: ``(entity, month, KPI, actual[, baseline])``."""
    tiers = tiers or {}
    manager_kpis = kpi_rows(scheme, "manager_id", manager_rows, tiers)
    department_kpis = kpi_rows(scheme, "department_id", department_rows, {})
    people = manager_kpis[["manager_id", "period"]].drop_duplicates()
    managers = people.assign(
        tier=[tiers.get(m) for m in people["manager_id"]], name=people["manager_id"]
    )
    return ScoreHistory(
        months=tuple(sorted({*manager_kpis["period"], *department_kpis["period"]})),
        cards=(),
        manager_kpis=manager_kpis,
        department_kpis=department_kpis,
        managers=managers,
        departments=pd.DataFrame({"department_id": [], "name": [], "period": []}),
    )


def one_kpi(kpi: str, actuals, scheme: Scheme = SCHEME) -> ScoreHistory:
    """Each actual is one manager-month of the KPI: managers m0, m1, ... in January 2026."""
    month = months(1)[0]
    return hand_history(
        [(f"m{n}", month, kpi, actual) for n, actual in enumerate(actuals)], scheme=scheme
    )


def calibration_row(calibration: pd.DataFrame, kpi: str, tier: str = "all") -> dict:
    rows = calibration.loc[calibration["kpi"].eq(kpi) & calibration["tier"].eq(tier)]
    assert 1 == len(rows)
    return rows.iloc[0].to_dict()


# --- target calibration -----------------------------------------------------------------------


def test_calibration_has_one_row_per_kpi_and_tier_group_with_its_columns():
    calibration = target_calibration(one_kpi("deals_won", [3] * 6), SCHEME)
    assert CALIBRATION_COLUMNS == list(calibration.columns)
    assert [
        ("growth", "star"),
        ("growth", "other tiers"),
        ("deals_won", "all"),
        ("department_increase", "all"),
        ("response_hours", "all"),
    ] == list(zip(calibration["kpi"], calibration["tier"], strict=True))


def test_a_target_every_manager_meets_is_too_easy_and_the_proposal_is_stricter():
    # Ten manager-months winning 3 to 12 deals against a target of 2: met 10 times out of 10.
    # The 40% quantile is 6.6 deals; a count is proposed whole and rounded up: 7.
    row = calibration_row(
        target_calibration(one_kpi("deals_won", range(3, 13)), SCHEME), "deals_won"
    )
    assert ("too easy", 10, 1.0, 2.0) == (
        row["verdict"],
        row["observations"],
        row["share_met"],
        row["current"],
    )
    assert 7.0 == row["proposed"]
    # 7 to 12 deals meet it: 6 of 10, the aim.
    assert pytest.approx(AIM) == row["expected_share"]


def test_the_expected_share_is_what_history_says_of_the_rounded_proposal_not_the_aim():
    actuals = [3, 3, 4, 4, 4, 5, 6, 7, 8, 9]
    row = calibration_row(target_calibration(one_kpi("deals_won", actuals), SCHEME), "deals_won")
    # The 40% quantile is 4 deals; 8 of the 10 manager-months won at least 4.
    assert ("too easy", 4.0) == (row["verdict"], row["proposed"])
    assert pytest.approx(0.8) == row["expected_share"]


def test_a_target_nobody_meets_is_too_hard_and_the_proposal_is_easier():
    # Response in 2 to 11 hours against a target of 1 hour (lower is better): never met. The
    # 60% quantile is 7.4 hours, stated to the half hour: 7.5; 2 to 7 hours meet it, 6 of 10.
    history = one_kpi("response_hours", range(2, 12), HOUR)
    row = calibration_row(target_calibration(history, HOUR), "response_hours")
    assert ("too hard", 0.0, 1.0) == (row["verdict"], row["share_met"], row["current"])
    assert (7.5, pytest.approx(0.6)) == (row["proposed"], row["expected_share"])


def test_a_target_met_about_half_the_time_is_fine_with_no_proposal():
    row = calibration_row(
        target_calibration(one_kpi("deals_won", [1, 1, 1, 2, 2, 2, 3, 0]), SCHEME), "deals_won"
    )
    assert ("fine", 0.5) == (row["verdict"], row["share_met"])
    assert math.isnan(row["proposed"]) and math.isnan(row["expected_share"])


def test_fewer_observations_than_the_minimum_are_too_little_data():
    row = calibration_row(
        target_calibration(one_kpi("deals_won", [5] * (MIN_OBSERVATIONS - 1)), SCHEME),
        "deals_won",
    )
    assert ("too little data", MIN_OBSERVATIONS - 1, 1.0) == (
        row["verdict"],
        row["observations"],
        row["share_met"],
    )
    assert math.isnan(row["proposed"])


def test_rows_without_data_are_not_observations():
    # Six manager-months, two without any request answered: four observations only.
    history = one_kpi("response_hours", [2, 3, math.nan, 4, math.nan, 5])
    row = calibration_row(target_calibration(history, SCHEME), "response_hours")
    assert ("too little data", 4) == (row["verdict"], row["observations"])


def test_a_kpi_without_any_rows_is_too_little_data():
    row = calibration_row(
        target_calibration(one_kpi("deals_won", [3] * 6), SCHEME), "growth", "star"
    )
    assert ("too little data", 0) == (row["verdict"], row["observations"])
    assert math.isnan(row["share_met"])


@pytest.fixture(scope="module")
def tiered() -> ScoreHistory:
    """Growth of two stars (target +20%) and three others (+10%) over three months.

    Stars grow -10% to +15%: never 20%. The others (one without a tier) grow 50% to 130%:
    always over 10%.
    """
    star_growth = iter([-0.10, -0.05, 0.0, 0.05, 0.10, 0.15])
    other_growth = iter([0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3])
    rows = []
    for month in months(3):
        for manager in ("s1", "s2"):
            rows.append((manager, month, "growth", round(100 * (1 + next(star_growth))), 100))
        for manager in ("r1", "r2", "r3"):
            rows.append((manager, month, "growth", round(100 * (1 + next(other_growth))), 100))
    return hand_history(rows, tiers={"s1": "star", "s2": "star", "r1": "regular", "r2": "new"})


def test_a_by_tier_target_is_judged_per_tier_with_the_rest_together(tiered):
    calibration = target_calibration(tiered, SCHEME)
    star = calibration_row(calibration, "growth", "star")
    others = calibration_row(calibration, "growth", "other tiers")
    assert ("too hard", 6, 0.0, 0.20) == (
        star["verdict"],
        star["observations"],
        star["share_met"],
        star["current"],
    )
    assert ("too easy", 9, 1.0, 0.10) == (
        others["verdict"],
        others["observations"],
        others["share_met"],
        others["current"],
    )


def test_relative_targets_are_proposed_as_growth_rates(tiered):
    calibration = target_calibration(tiered, SCHEME)
    star = calibration_row(calibration, "growth", "star")
    others = calibration_row(calibration, "growth", "other tiers")
    assert ("relative", "relative") == (star["target_type"], others["target_type"])
    # Stars: the 40% quantile of -10%..+15% is 0% growth, which 4 of the 6 reached.
    assert (0.0, pytest.approx(4 / 6)) == (star["proposed"], star["expected_share"])
    # Others: the 40% quantile of 50%..130% is 82% growth (not 182 currency units); 90% to 130%
    # reach it, 5 of 9.
    assert (pytest.approx(0.82), pytest.approx(5 / 9)) == (
        others["proposed"],
        others["expected_share"],
    )


def test_department_kpis_are_judged_over_department_months():
    # Six department-months beating the +100 increase by 200 to 700: proposed +400, met 4 of 6.
    month = months(6)
    history = hand_history(
        department_rows=[
            ("north", m, "department_increase", 1000 + inc, 1000)
            for m, inc in zip(month, range(200, 800, 100), strict=True)
        ]
    )
    row = calibration_row(target_calibration(history, SCHEME), "department_increase")
    assert ("department", "too easy", 6, "increase", 100.0) == (
        row["level"],
        row["verdict"],
        row["observations"],
        row["target_type"],
        row["current"],
    )
    assert (400.0, pytest.approx(4 / 6)) == (row["proposed"], row["expected_share"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=MIN_OBSERVATIONS, max_size=30))
def test_expected_share_is_the_share_of_history_meeting_the_proposal(deals):
    row = calibration_row(target_calibration(one_kpi("deals_won", deals), SCHEME), "deals_won")
    if math.isnan(row["proposed"]):
        # No proposal: nothing to recalibrate, or only a target of zero would fit history.
        assert row["verdict"] in ("fine", "too little data") or (
            "too hard" == row["verdict"] and pd.Series(deals).quantile(1 - AIM) <= 0
        )
        return
    meeting = sum(d >= row["proposed"] for d in deals) / len(deals)
    assert pytest.approx(meeting) == row["expected_share"]
    assert row["proposed"] == int(row["proposed"])  # counts are proposed whole
    if row["verdict"] == "too easy":
        assert row["proposed"] >= row["current"]
        assert row["expected_share"] <= row["share_met"]
    else:
        assert "too hard" == row["verdict"]
        assert row["proposed"] <= row["current"]
        assert row["expected_share"] >= row["share_met"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.5, 48.0), min_size=MIN_OBSERVATIONS, max_size=30))
def test_a_lower_is_better_proposal_is_met_by_the_share_at_or_below_it(hours):
    # A target of a quarter of an hour nobody meets.
    row = calibration_row(
        target_calibration(one_kpi("response_hours", hours, QUARTER_HOUR), QUARTER_HOUR),
        "response_hours",
    )
    assert "too hard" == row["verdict"]
    assert row["proposed"] * 2 == int(row["proposed"] * 2)  # hours to the half hour
    meeting = sum(h <= row["proposed"] for h in hours) / len(hours)
    assert pytest.approx(meeting) == row["expected_share"]


# --- rounding proposals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "target_type", "polarity", "expected"),
    [
        (6.2, "count", "absolute", "higher", 7.0),
        (6.8, "count", "absolute", "lower", 6.0),
        (7.4, "hours", "absolute", "lower", 7.5),
        (7.1, "hours", "absolute", "lower", 7.0),
        (3.3, "days", "absolute", "lower", 3.5),
        (0.9234, "share", "absolute", "higher", 0.92),
        (1_234_567.0, "money", "absolute", "higher", 1_230_000.0),
        (987.6, "money", "increase", "higher", 988.0),
        (-45_678.0, "money", "increase", "higher", -45_700.0),
        (0.0, "money", "absolute", "higher", 0.0),
        (0.1234, "money", "relative", "higher", 0.12),
        (1.5, "count", "relative", "higher", 1.5),
    ],
    ids=[
        "count-up",
        "count-down-when-lower-is-better",
        "hours-half",
        "hours-whole",
        "days-half",
        "share-percent",
        "money-three-digits",
        "money-small",
        "money-negative",
        "money-zero",
        "growth-rate-percent",
        "growth-rate-of-a-count",
    ],
)
def test_nice_states_a_proposal_as_a_scheme_would(value, unit, target_type, polarity, expected):
    assert pytest.approx(expected) == nice(value, unit, target_type, polarity)


def test_nice_leaves_no_value_as_no_value():
    assert math.isnan(nice(math.nan, "money", "absolute", "higher"))


# --- the proposed scheme ----------------------------------------------------------------------


def _targets(scheme: Scheme) -> dict[str, dict]:
    return {
        kpi.key: kpi.target.model_dump(exclude_none=True) for _, kpi, _ in scheme.weighted_kpis()
    }


def test_proposed_scheme_replaces_the_proposed_targets_by_tier_too(tiered):
    calibration = target_calibration(tiered, SCHEME)
    proposed = proposed_scheme(SCHEME, calibration)
    expected = _targets(SCHEME)
    expected["growth"] = {"type": "relative", "value": 0.82, "by_tier": {"star": 0.0}}
    actual = _targets(proposed)
    assert expected.keys() == actual.keys()
    assert pytest.approx(expected["growth"].pop("value")) == actual["growth"].pop("value")
    assert expected == actual


def test_proposed_scheme_changes_nothing_but_targets_and_still_validates(tiered):
    proposed = proposed_scheme(SCHEME, target_calibration(tiered, SCHEME))
    assert proposed == Scheme.model_validate(proposed.model_dump(exclude_none=True))

    def without_targets(scheme: Scheme) -> dict:
        data = scheme.model_dump(exclude_none=True)
        for goal in data["goals"]:
            for kpi in goal["kpis"]:
                kpi.pop("target")
        return data

    assert without_targets(SCHEME) == without_targets(proposed)


def test_proposed_scheme_of_a_calibration_without_proposals_is_the_scheme():
    calibration = target_calibration(one_kpi("deals_won", [1, 1, 1, 2, 2, 2, 3, 0]), SCHEME)
    assert SCHEME == proposed_scheme(SCHEME, calibration)


def test_proposed_scheme_for_a_flat_target_sets_the_value():
    history = one_kpi("response_hours", range(2, 12), HOUR)
    calibration = target_calibration(history, HOUR)
    proposed = proposed_scheme(HOUR, calibration)
    assert {"type": "absolute", "value": 7.5, "by_tier": {}} == _targets(proposed)["response_hours"]


# --- proposals in sentences -------------------------------------------------------------------


def test_tuning_proposals_state_the_numbers(tiered):
    calibration = target_calibration(tiered, SCHEME)
    sentences = tuning_proposals(calibration, weight_variance(tiered, SCHEME), "RUB")
    assert (
        "Sales growth for star: nearly no one reaches the target of +20% over the baseline (met "
        "in 0% of 6 manager-months); proposed target +0% over the baseline, which 67% of them "
        "would have met."
    ) in sentences
    assert (
        "Sales growth for other tiers: nearly everyone beats the target of +10% over the "
        "baseline (met in 100% of 9 manager-months); proposed target +82% over the baseline, "
        "which 56% of them would have met."
    ) in sentences


def test_tuning_proposals_count_department_kpis_in_department_months():
    history = hand_history(
        department_rows=[
            ("north", m, "department_increase", 1000 + inc, 1000)
            for m, inc in zip(months(6), range(200, 800, 100), strict=True)
        ]
    )
    calibration = target_calibration(history, SCHEME)
    assert [
        "Department increase: nearly everyone beats the target of 100 RUB over the baseline (met "
        "in 100% of 6 department-months); proposed target 400 RUB over the baseline, which 67% "
        "of them would have met."
    ] == tuning_proposals(calibration, weight_variance(history, SCHEME), "RUB")


def test_tuning_proposals_state_absolute_targets_in_their_unit():
    history = one_kpi("response_hours", range(2, 12), HOUR)
    calibration = target_calibration(history, HOUR)
    sentences = tuning_proposals(calibration, weight_variance(history, SCHEME), "RUB")
    assert [
        "Response hours: nearly no one reaches the target of 1.0 h (met in 0% of 10 "
        "manager-months); proposed target 7.5 h, which 60% of them would have met."
    ] == sentences


# --- weight variance --------------------------------------------------------------------------


def test_a_kpi_everyone_attains_alike_is_flat_and_one_that_varies_is_not():
    rows = []
    for n, month in enumerate(months(3)):
        for manager, deals in (("m1", 1 + n), ("m2", 4), ("m3", 0)):
            rows.append((manager, month, "response_hours", 2.0 + n))  # always at the cap
            rows.append((manager, month, "deals_won", deals))
    variance = weight_variance(hand_history(rows), SCHEME).set_index("kpi")
    assert bool(variance.loc["response_hours", "flat"])
    assert 0.0 == pytest.approx(variance.loc["response_hours", "spread"], abs=1e-12)
    assert pytest.approx(1.2) == variance.loc["response_hours", "mean_attainment"]
    assert not variance.loc["deals_won", "flat"]
    assert 9 == variance.loc["deals_won", "observations"]
    # Deals won attain 0.5/1/1.2 (m1), 1.2 (m2) and 0 (m3) in turn.
    attainments = [0.5, 1.2, 0.0, 1.0, 1.2, 0.0, 1.2, 1.2, 0.0]
    assert pytest.approx(pd.Series(attainments).std(ddof=0)) == variance.loc["deals_won", "spread"]
    weight = variance.loc["deals_won", "weight"]
    assert (
        pytest.approx(weight * variance.loc["deals_won", "spread"])
        == variance.loc["deals_won", "score_spread"]
    )
    # A KPI without any rows has no spread and is not called flat.
    assert 0 == variance.loc["growth", "observations"]
    assert not variance.loc["growth", "flat"]


# --- the demo: north's recent months ----------------------------------------------------------


@pytest.fixture(scope="module")
def demo(source):
    return read_source(source)


@pytest.fixture(scope="module")
def funnel():
    return load_scheme(FUNNEL)


@pytest.fixture(scope="module")
def north(demo, funnel) -> ScoreHistory:
    return score_window(demo, funnel, SEPTEMBER_2026, 3, "north")


def test_on_the_demo_slow_answers_give_response_hours_variance(north, funnel):
    variance = weight_variance(north, funnel).set_index("kpi")
    # The demo's slow-answer months move response hours off the cap for some managers.
    assert not variance.loc["response_hours", "flat"]
    assert variance.loc["response_hours", "mean_attainment"] < 1.2
    assert not variance.loc["new_clients", "flat"]
    assert variance.loc["new_clients", "spread"] > 0.1
    # The shared department goal is the same for everyone within a month.
    assert 0.0 == variance.loc["department_sales_increase", "spread_within_month"]


def test_on_the_demo_the_response_target_is_too_easy_and_a_stricter_one_is_proposed(north, funnel):
    # July to September 2026 in north: one slow-answer manager-month in 21.
    calibration = target_calibration(north, funnel)
    row = calibration_row(calibration, "response_hours")
    assert ("too easy", 20 / 21, 21) == (row["verdict"], row["share_met"], row["observations"])
    assert row["proposed"] < 8
    own = north.manager_kpis.loc[north.manager_kpis["kpi"].eq("response_hours"), "actual"]
    assert pytest.approx((own <= row["proposed"]).mean()) == row["expected_share"]
    sentences = tuning_proposals(calibration, weight_variance(north, funnel), "RUB")
    assert any(s.startswith("Response hours: nearly everyone beats") for s in sentences)


# --- what-ifs ---------------------------------------------------------------------------------


def test_compare_uses_no_deprecated_pandas_api(north):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        compare(north, north)


def test_a_scheme_against_itself_changes_nothing(sales_crm, funnel):
    result = whatif(sales_crm, funnel, funnel, [MARCH])
    assert (MARCH,) == result.months
    assert ["m1", "m2", "m3"] == sorted(result.managers["manager_id"])
    assert [0.0, 0.0, 0.0] == result.managers["change"].tolist()
    assert (result.managers["kpis_met_current"] == result.managers["kpis_met_proposed"]).all()
    pd.testing.assert_series_equal(
        result.kpis["share_met_current"], result.kpis["share_met_proposed"], check_names=False
    )
    assert 0.0 == result.total["change"]
    assert 3.0 == result.total["managers"]
    assert result.total["score_current"] == result.total["score_proposed"]


def test_compare_of_a_history_with_itself_changes_nothing_on_the_demo(north):
    result = compare(north, north)
    assert {0.0} == set(result.managers["change"])
    assert result.total["kpis_met_current"] == result.total["kpis_met_proposed"]


def test_compare_refuses_histories_of_different_months(north, demo, funnel):
    shorter = score_window(demo, funnel, SEPTEMBER_2026, 1, "north")
    with pytest.raises(ValueError, match="same months"):
        compare(north, shorter)


def test_a_kpi_only_in_one_scheme_is_no_data_on_the_other_side(sales_crm, funnel):
    data = funnel.model_dump(exclude_none=True)
    service = data["goals"][2]
    service["kpis"] = [k for k in service["kpis"] if k["id"] != "response_hours"]
    without = Scheme.model_validate(data)
    kpis = whatif(sales_crm, funnel, without, [MARCH]).kpis.set_index("kpi")
    assert math.isnan(kpis.loc["response_hours", "share_met_proposed"])
    assert not math.isnan(kpis.loc["response_hours", "share_met_current"])
    assert "Response hours" == kpis.loc["response_hours", "label"]


@pytest.fixture(scope="module")
def stricter_file(tmp_path_factory) -> Path:
    """The shipped scheme with a response target of 4 hours instead of 8."""
    path = tmp_path_factory.mktemp("schemes") / "stricter.yaml"
    shutil.copy(FUNNEL, path)
    text = path.read_text(encoding="utf-8")
    assert 1 == text.count("value: 8}")
    path.write_text(text.replace("value: 8}", "value: 4}"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stricter(demo, funnel, stricter_file):
    return whatif(demo, funnel, load_scheme(stricter_file), WHATIF_MONTHS, "north")


def test_a_stricter_response_target_lowers_or_keeps_every_score(stricter):
    managers = stricter.managers
    assert 7 == len(managers)
    assert (managers["score_proposed"] <= managers["score_current"] + 1e-12).all()
    assert (managers["change"] <= 1e-12).all()
    assert (managers["kpis_met_proposed"] <= managers["kpis_met_current"]).all()
    assert stricter.total["change"] < 0


def test_a_stricter_response_target_is_met_less_often_and_nothing_else_moves(stricter):
    kpis = stricter.kpis.set_index("kpi")
    now, proposed = kpis["share_met_current"], kpis["share_met_proposed"]
    assert proposed["response_hours"] < now["response_hours"]
    others = kpis.index.drop("response_hours")
    pd.testing.assert_series_equal(now[others], proposed[others], check_names=False)


def test_whatif_table_has_a_row_per_manager_and_a_total(stricter):
    table = whatif_table(stricter)
    assert len(stricter.managers) + 1 == len(table)
    total = table.iloc[-1]
    assert "All 7 managers" == total["Manager"]
    assert pytest.approx(stricter.total["change"]) == total["Change"]
    names = stricter.managers.sort_values("manager_id")["name"].tolist()
    assert names == table["Manager"].iloc[:-1].tolist()
    assert {"north"} == set(table["Department"].iloc[:-1])
    assert pytest.approx(stricter.total["kpis_met_proposed"]) == total["KPIs met proposed"]


# --- kpi whatif -------------------------------------------------------------------------------


def whatif_args(source: Path, scheme: Path, first: str, last: str, *extra: str) -> list[str]:
    return [
        "whatif",
        "--scheme",
        str(scheme),
        "--from",
        first,
        "--to",
        last,
        "--data",
        str(source),
        *extra,
    ]


def test_kpi_whatif_prints_the_comparison_table(source, stricter_file, stricter, capsys):
    args = whatif_args(source, stricter_file, "2026-08", "2026-09", "--department", "north")
    assert 0 == main(args)
    out = capsys.readouterr().out
    assert out.startswith("What-if over 2026-08 to 2026-09 (2 months): ")
    for name in stricter.managers["name"]:
        assert name in out
    assert "All 7 managers" in out
    assert "Share of manager-months meeting each KPI" in out
    assert "Response hours" in out


def test_kpi_whatif_json_has_the_totals_of_the_whatif(source, stricter_file, stricter, capsys):
    args = whatif_args(source, stricter_file, "2026-08", "2026-09", "--department", "north")
    assert 0 == main([*args, "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert ["2026-08", "2026-09"] == data["months"]
    assert pytest.approx(stricter.total) == data["total"]
    assert 7 == len(data["managers"])
    assert {"kpi", "share_met_current", "share_met_proposed"} <= set(data["kpis"][0])


@pytest.mark.parametrize(
    ("first", "last", "extra", "message"),
    [
        ("2026-09", "2026-08", (), "--from 2026-09 is after --to 2026-08"),
        ("2026-10", "2026-11", (), "lies after the data"),
        ("2026-08", "2026-09", ("--department", "nowhere"), "'nowhere' is not a sales department"),
        ("2026-08", "2026/09", (), "not a month in the form YYYY-MM"),
        ("2019-01", "2026-09", (), "--from 2019-01 lies before the data, which begins in 2024-05"),
    ],
    ids=["from-after-to", "after-the-data", "unknown-department", "not-a-month", "before-data"],
)
def test_kpi_whatif_refuses_bad_arguments_with_a_message(
    source, first, last, extra, message, caplog, capsys
):
    assert 2 == main(whatif_args(source, FUNNEL, first, last, *extra))
    assert message in caplog.text
    assert "Traceback" not in caplog.text
    assert "" == capsys.readouterr().out


def test_kpi_whatif_json_writes_no_data_as_null(tmp_path, capsys):
    # The documents' example has no clients, deliveries or requests, and no deals a year
    # before March 2025: no KPI of the shipped scheme has data, so nobody is scored.
    write_tables(vasily_valery_tables(), tmp_path / "example")
    args = whatif_args(tmp_path / "example", FUNNEL, "2025-03", "2025-03", "--format", "json")
    assert 0 == main(args)

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    data = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert None is data["total"]["score_current"]


def test_kpi_whatif_refuses_an_invalid_scheme_file(source, tmp_path, caplog, capsys):
    data = read_yaml(FUNNEL)
    data["goals"][0]["weight"] = 0.5  # the goal weights no longer sum to 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    assert 2 == main(whatif_args(source, bad, "2026-08", "2026-09"))
    assert f"KPI scheme {bad} is invalid" in caplog.text
    assert "goal weights sum to" in caplog.text
    assert "" == capsys.readouterr().out


def test_kpi_whatif_refuses_a_missing_scheme_file(source, tmp_path, caplog):
    missing = tmp_path / "missing.yaml"
    assert 2 == main(whatif_args(source, missing, "2026-08", "2026-09"))
    assert f"Cannot read {missing}" in caplog.text


def test_a_count_target_nobody_reaches_is_not_recalibrated_to_zero():
    kpi = Kpi(metric="new_clients", target={"type": "absolute", "value": 2})
    rows = pd.DataFrame({"actual": [0.0] * 9 + [1.0], "baseline": math.nan, "met": [False] * 10})
    row = _calibrate(kpi, ALL_TIERS, rows, EASY, HARD, AIM)
    assert "too hard" == row["verdict"]
    assert math.isnan(row["proposed"]) and math.isnan(row["expected_share"])
