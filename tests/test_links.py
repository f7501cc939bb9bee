"""KPI -> result links: fixed-effects estimates with lags, and the keep / re-weight / drop verdicts.

Hand-built histories are grids of managers x months whose results are written as a manager's
level plus a month's level plus the KPI's effect plus a noise pattern. The patterns are chosen so
that the answer can be worked out by hand: the noise sums to zero over every manager and every
month and is orthogonal to the met flag, so the fixed-effects estimate is exactly the planted
effect, and its clustered standard error follows from the per-manager sums of flag x noise (see
`test_a_perfectly_linked_kpi_gives_the_planted_effect_and_its_hand_worked_interval`). Verdict
rules are tested on hand-written link rows. The demo data tests check the planted links.
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kpilib import paths
from kpilib.demo import ground_truth
from kpilib.display import NO_DATA
from kpilib.history import ScoreHistory, score_months
from kpilib.io import read_source
from kpilib.links import (
    LAGS,
    LINK_COLUMNS,
    MATERIAL,
    RESULTS,
    SHARED_REASON,
    VERDICT_COLUMNS,
    VERDICTS,
    intended_result,
    kpi_links,
    kpi_verdicts,
    links_chart,
    links_note,
    links_table,
    verdict_table,
)
from kpilib.params import Kpi, Scheme, load_scheme
from kpilib.periods import months_ending
from kpilib.plots import ReportFigure
from kpilib.quarterly import QUARTERLY_METRICS
from kpilib.scoring import Scorecard

SHOWN = QUARTERLY_METRICS  # what the quarterly report scores
YEAR = list(pd.period_range("2026-01", periods=12, freq="M"))
LEVEL_3_LAGS = 1 - 0.05 / 6  # the upper quantile of a two-sided 95% interval over 3 lags


# --- hand-built histories ---------------------------------------------------------------------


def one_kpi_scheme(metric: str = "leads", level: str = "manager", name: str = "Deals"):
    kpi = {"id": "k", "name": name, "metric": metric, "level": level, "target": {"value": 2}}
    return Scheme.model_validate(
        {"name": "Links test", "goals": [{"id": "g", "name": "Goal", "weight": 1, "kpis": [kpi]}]}
    )


def grid_history(rows: pd.DataFrame) -> ScoreHistory:
    """A history from one row per manager-month: manager_id, department_id, period, ``y`` (every
    result) and ``met`` (the flag of KPI ``k``; None for no data)."""
    rows = rows.assign(period=pd.PeriodIndex(rows["period"], freq="M"))
    months = tuple(sorted(rows["period"].unique()))
    empty = pd.DataFrame()
    cards = tuple(
        Scorecard(
            period=month,
            managers=empty,
            departments=empty,
            manager_kpis=empty,
            department_kpis=empty,
            manager_metrics=pd.DataFrame(
                {result: mine["y"].to_numpy() for result in RESULTS},
                index=pd.Index(mine["manager_id"], name="manager_id"),
            ),
            department_metrics=empty,
        )
        for month in months
        for mine in [rows.loc[rows["period"].eq(month)]]
    )
    kpis = rows[["manager_id", "period"]].assign(kpi="k", met=rows["met"].astype(object))
    return ScoreHistory(
        months=months,
        cards=cards,
        manager_kpis=kpis,
        department_kpis=empty,
        managers=rows[["manager_id", "department_id", "period"]],
        departments=empty,
    )


def grid(managers: int, months: list[pd.Period], met, result, departments=None) -> pd.DataFrame:
    """Manager i in month t (0-based): met(i, t) and result(i, t)."""
    return pd.DataFrame(
        [
            {
                "manager_id": f"m{i}",
                "department_id": departments(i) if departments else "d",
                "period": str(month),
                "met": met(i, t),
                "y": float(result(i, t)),
            }
            for i in range(managers)
            for t, month in enumerate(months)
        ]
    )


def level(i: int, t: int) -> float:
    """Each manager's and each month's own level: what the fixed effects take out."""
    return 1_000_000 + 100_000 * i + 50_000 * t


def halves(i: int) -> int:
    """+1, +1, -1, -1, ... over managers: sums to zero over every 4 managers."""
    return 1 if i % 4 in (0, 1) else -1


def checkerboard(i: int, t: int) -> bool:
    return (i + t) % 2 == 0


# With 8 managers x 12 months, flag x = checkerboard and noise e = c * halves(i) * (-1)^t, both
# sum to zero over every manager and month once x is centred (x - 1/2 = ±1/2), and they are
# orthogonal, so OLS with manager and month effects returns the planted effect exactly and the
# residuals are e. Clustered by manager: each manager's sum of (x - 1/2) * e is c * 12 / 2 = 6c
# in size, so the variance is 8 * 36c² / (sum of (x - 1/2)² = 24)² = c²/2, times the small-sample
# factor G/(G-1) * (n-1)/(n-k) = 8/7 * 95/76 (n = 96 manager-months, k = 1 + 1 + 7 + 11 = 20
# coefficients), with a t-distribution of 8 - 1 = 7 degrees of freedom.
SE_FACTOR = math.sqrt(0.5 * 8 / 7 * 95 / 76)


def linked(effect: float, noise: float):
    def result(i: int, t: int) -> float:
        return level(i, t) + effect * checkerboard(i, t) + noise * halves(i) * (-1) ** t

    return result


def test_a_perfectly_linked_kpi_gives_the_planted_effect_and_its_hand_worked_interval():
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, one_kpi_scheme(), YEAR, lags=(0,))
    row = links.loc[links["result"].eq("net_profit")].iloc[0]
    se = 10_000 * SE_FACTOR  # 8,451.5 RUB
    half = stats.t.ppf(0.975, 7) * se
    mean = 1_000_000 + 100_000 * 3.5 + 50_000 * 5.5 + 200_000 * 0.5  # 1,725,000
    assert (96, 8, 8, 48, 48) == (row["n"], row["managers"], row["clusters"], row["met"],
                                  row["missed"])  # fmt: skip
    assert 200_000 == pytest.approx(row["effect"], rel=1e-9)
    assert 200_000 - half == pytest.approx(row["low"], rel=1e-9)
    assert 200_000 + half == pytest.approx(row["high"], rel=1e-9)
    assert 200_000 / se == pytest.approx(row["t"], rel=1e-9)
    assert 2 * stats.t.sf(200_000 / se, 7) == pytest.approx(row["p_value"], rel=1e-6)
    assert mean == pytest.approx(row["mean_result"])
    assert 200_000 / mean == pytest.approx(row["relative"], rel=1e-9)
    assert (200_000 - half) / mean == pytest.approx(row["relative_low"], rel=1e-9)
    assert row["estimable"] and "" == row["reason"]


def test_intervals_are_adjusted_for_the_number_of_lags_looked_at():
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, one_kpi_scheme(), YEAR)  # lags 0, 1 and 2
    row = links.loc[links["result"].eq("net_profit") & links["lag"].eq(0)].iloc[0]
    half = stats.t.ppf(LEVEL_3_LAGS, 7) * 10_000 * SE_FACTOR
    assert 200_000 + half == pytest.approx(row["high"], rel=1e-9)
    assert "95% intervals, adjusted for looking at 3 lags" in links_note(LAGS)


def test_months_before_the_history_leave_fewer_observations_for_later_lags_not_an_error():
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, one_kpi_scheme(), YEAR)
    profit = links.loc[links["result"].eq("net_profit")]
    # The first month has no flag a month before it, the first two none two months before.
    assert [96, 88, 80] == profit["n"].to_list()
    assert [0, 1, 2] == profit["lag"].to_list()


def test_links_have_one_row_per_kpi_result_and_lag_in_order_with_the_documented_columns():
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, one_kpi_scheme(), YEAR)
    assert LINK_COLUMNS == list(links.columns)
    expected = [(result, lag) for result in RESULTS for lag in LAGS]
    assert expected == list(zip(links["result"], links["lag"], strict=True))
    assert [True] * 3 + [False] * 6 == links["intended"].to_list()  # deals drive net profit


def test_a_perfectly_linked_kpi_is_kept_with_a_sentence_giving_its_size():
    scheme = one_kpi_scheme()
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    verdicts = kpi_verdicts(kpi_links(history, scheme, YEAR, lags=(0,)), scheme)
    row = verdicts.iloc[0]
    assert VERDICT_COLUMNS == list(verdicts.columns)
    assert ("keep", 0, 96, 1.0) == (row["verdict"], row["lag"], row["n"], row["weight"])
    # 200,000 / 1,725,000 = 11.6%
    assert row["sentence"].startswith(
        "Deals: keep; meeting it goes with 11.6% more net profit in the same month (95% CI +"
    )


# The unlinked KPI: x = 1 when (manager odd) xor (month in the second half of each 4), so
# x - 1/2 = -(-1)^i * q(t) / 2 with q = +1, +1, -1, -1, ...; noise c * halves(i) * q(t) sums to
# zero over managers and months and is orthogonal to x (the sum over managers of (-1)^i * halves
# is zero), so the effect is exactly zero; each manager's sum of (x - 1/2) * noise is again 6c in
# size, so the standard error is c * SE_FACTOR as above.
def quarter_sign(t: int) -> int:
    return 1 if t % 4 in (0, 1) else -1


def unlinked_flag(i: int, t: int) -> bool:
    return (i % 2 == 1) != (t % 4 in (2, 3))


def unlinked(noise: float):
    def result(i: int, t: int) -> float:
        return level(i, t) + noise * halves(i) * quarter_sign(t)

    return result


def test_an_unlinked_kpi_has_no_effect_and_is_dropped_when_the_data_rule_out_a_useful_link():
    scheme = one_kpi_scheme()
    history = grid_history(grid(8, YEAR, unlinked_flag, unlinked(10_000)))
    links = kpi_links(history, scheme, YEAR, lags=(0,))
    row = links.iloc[0]
    half = stats.t.ppf(0.975, 7) * 10_000 * SE_FACTOR  # 19,985 RUB
    mean = 1_000_000 + 100_000 * 3.5 + 50_000 * 5.5  # 1,625,000
    assert 0 == pytest.approx(row["effect"], abs=1e-6)
    assert half == pytest.approx(row["high"], rel=1e-9)
    assert half / mean < MATERIAL  # 1.2%: a useful effect of 10% is ruled out
    verdict = kpi_verdicts(links, scheme).iloc[0]
    assert "drop" == verdict["verdict"]
    assert "the data rule out a useful link to net profit" in verdict["sentence"]
    assert "at most +1.2% net profit, below the 10.0% that would matter" in verdict["sentence"]


def test_an_unlinked_kpi_with_noisy_results_is_re_weighted_not_dropped():
    scheme = one_kpi_scheme()
    history = grid_history(grid(8, YEAR, unlinked_flag, unlinked(200_000)))
    links = kpi_links(history, scheme, YEAR, lags=(0,))
    half = stats.t.ppf(0.975, 7) * 200_000 * SE_FACTOR  # 399,700 RUB: 24.6% of the mean
    assert half == pytest.approx(links["high"].iloc[0], rel=1e-9)
    verdict = kpi_verdicts(links, scheme).iloc[0]
    assert "re-weight" == verdict["verdict"]
    assert (
        "Deals: re-weight; no clear link yet (net profit in the same month between 24.6% lower "
        "and 24.6% higher when it was met; 96 manager-months); move weight to KPIs with a proven "
        "link and check again next quarter." == verdict["sentence"]
    )


def test_a_kpi_that_leads_its_result_by_two_months_is_kept_as_a_leading_indicator():
    rng = np.random.default_rng(7)
    months = list(pd.period_range("2025-11", periods=14, freq="M"))
    flags = rng.random((10, 14)) < 0.5
    noise = rng.normal(0, 50_000, (10, 14))

    def result(i: int, t: int) -> float:
        earlier = flags[i, t - 2] if t >= 2 else False
        return level(i, t) + 300_000 * earlier + noise[i, t]

    history = grid_history(grid(10, months, lambda i, t: bool(flags[i, t]), result))
    scheme = one_kpi_scheme()
    links = kpi_links(history, scheme, months[2:])
    profit = links.loc[links["result"].eq("net_profit")].set_index("lag")
    assert [120, 120, 120] == profit["n"].to_list()  # the history starts two months early
    assert 250_000 < profit.at[2, "effect"] < 350_000
    assert profit.at[0, "low"] < 0 < profit.at[0, "high"]
    assert profit.at[1, "low"] < 0 < profit.at[1, "high"]
    verdict = kpi_verdicts(links, scheme).iloc[0]
    assert ("keep", 2) == (verdict["verdict"], verdict["lag"])
    assert "meeting it is followed by" in verdict["sentence"]
    assert "net profit two months later" in verdict["sentence"]
    assert verdict["sentence"].endswith(
        "while the same month shows no clear link: a leading indicator."
    )


# --- too little data and no variation -----------------------------------------------------------


def judged(history: ScoreHistory, scheme: Scheme) -> tuple[pd.Series, pd.Series]:
    links = kpi_links(history, scheme, YEAR)
    return links.iloc[0], kpi_verdicts(links, scheme).iloc[0]


def test_fewer_than_30_manager_months_cannot_be_judged():
    history = grid_history(grid(2, YEAR, checkerboard, linked(200_000, 10_000)))
    link, verdict = judged(history, one_kpi_scheme())
    assert not link["estimable"]
    assert "too little data to judge: only 24 manager-months (30 needed)" == link["reason"]
    assert math.isnan(link["effect"]) and 24 == link["n"]
    assert ("cannot judge", True) == (verdict["verdict"], pd.isna(verdict["lag"]))
    assert (
        "Deals: cannot judge; too little data to judge: only 24 manager-months (30 needed)."
        == verdict["sentence"]
    )


def test_a_kpi_nearly_always_met_cannot_be_judged_and_says_how_often_it_was_met():
    def met(i: int, t: int) -> bool:
        return not (t == 0 and i < 3)  # missed in 3 manager-months only

    history = grid_history(grid(8, YEAR, met, linked(0, 10_000)))
    link, verdict = judged(history, one_kpi_scheme())
    assert "too little data to judge: met in 93 of 96 manager-months" == link["reason"]
    assert "cannot judge" == verdict["verdict"]
    assert 96 == verdict["n"]


def test_fewer_than_4_managers_cannot_be_judged():
    history = grid_history(grid(3, YEAR, checkerboard, linked(200_000, 10_000)))
    link, _ = judged(history, one_kpi_scheme())
    assert "too little data to judge: only 3 managers (4 needed)" == link["reason"]


def test_a_department_kpi_within_one_department_is_left_to_the_company_wide_report():
    history = grid_history(grid(8, YEAR, lambda i, t: t % 2 == 0, linked(0, 10_000)))
    scheme = one_kpi_scheme("revenue", level="department", name="Shared")
    link, verdict = judged(history, scheme)
    assert SHARED_REASON == link["reason"]
    assert f"Shared: cannot judge; {SHARED_REASON}." == verdict["sentence"]


def test_a_kpi_met_by_the_same_managers_every_month_cannot_be_told_from_who_they_are():
    history = grid_history(grid(8, YEAR, lambda i, t: i < 4, linked(0, 10_000)))
    link, _ = judged(history, one_kpi_scheme())
    assert not link["estimable"]
    assert "in step with who the manager is or which month it is" in link["reason"]


def test_a_department_kpi_across_departments_is_clustered_by_department():
    # Departments of two managers each; the department's flag alternates by month and department.
    flag = lambda i, t: (i // 2 + t) % 2 == 0  # noqa: E731
    history = grid_history(grid(20, YEAR, flag, linked(0, 10_000), lambda i: f"d{i // 2}"))
    link, _ = judged(history, one_kpi_scheme("revenue", level="department"))
    assert link["estimable"]
    assert (20, 10) == (link["managers"], link["clusters"])
    # Four departments are too few to judge a goal they share, however many managers.
    history = grid_history(grid(8, YEAR, flag, linked(0, 10_000), lambda i: f"d{i // 2}"))
    link, _ = judged(history, one_kpi_scheme("revenue", level="department"))
    assert not link["estimable"]
    assert "only 4 departments share it (10 needed)" in link["reason"]


def test_months_outside_the_history_give_no_observations_and_no_error():
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, one_kpi_scheme(), [pd.Period("2030-01", "M")])
    assert [0] * 9 == links["n"].to_list()
    assert not links["estimable"].any()


def test_a_negative_lag_is_refused():
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    with pytest.raises(ValueError, match="Lags must be 0 or more"):
        kpi_links(history, one_kpi_scheme(), YEAR, lags=(-1, 0))


def test_the_history_is_not_modified():
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    before = [history.manager_kpis.copy(), history.managers.copy()]
    metrics = [card.manager_metrics.copy() for card in history.cards]
    kpi_links(history, one_kpi_scheme(), YEAR)
    pd.testing.assert_frame_equal(before[0], history.manager_kpis)
    pd.testing.assert_frame_equal(before[1], history.managers)
    for copy, card in zip(metrics, history.cards, strict=True):
        pd.testing.assert_frame_equal(copy, card.manager_metrics)


# --- verdict rules on hand-written links --------------------------------------------------------


def link_rows(*lags: tuple[float, float, float], mean: float = 1000.0, n: int = 96) -> pd.DataFrame:
    """Links of KPI ``k`` on net profit: (effect, low, high) for lags 0, 1, 2, ..."""
    rows = []
    for lag, (effect, low, high) in enumerate(lags):
        scale = mean if mean > 0 else math.nan
        rows.append(
            {
                "kpi": "k", "label": "Deals", "result": "net_profit", "intended": True,
                "lag": lag, "n": n, "managers": 8, "clusters": 8, "met": 48, "missed": 48,
                "effect": effect, "low": low, "high": high, "mean_result": mean,
                "relative": effect / scale, "relative_low": low / scale,
                "relative_high": high / scale, "t": effect / ((high - low) / 5),
                "p_value": math.nan, "estimable": True, "reason": "",
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=LINK_COLUMNS)


def verdict_of(links: pd.DataFrame) -> pd.Series:
    return kpi_verdicts(links, one_kpi_scheme()).iloc[0]


def test_keep_reports_the_lag_with_the_largest_t():
    verdict = verdict_of(link_rows((100, 20, 180), (100, 60, 140), (10, -50, 70)))
    assert ("keep", 1) == (verdict["verdict"], verdict["lag"])
    # The same month is clearly linked too: not a leading indicator.
    assert (
        "Deals: keep; meeting it is followed by 10.0% more net profit one month later "
        "(95% CI +6.0% to +14.0%; 96 manager-months)." == verdict["sentence"]
    )
    assert (100, 60, 140, 0.1) == (verdict["effect"], verdict["low"], verdict["high"],
                                   verdict["relative"])  # fmt: skip


def test_an_interval_below_zero_drops_the_kpi_as_rewarding_the_wrong_thing():
    verdict = verdict_of(link_rows((-100, -180, -20), (10, -50, 70), (20, -40, 80)))
    assert ("drop", 0) == (verdict["verdict"], verdict["lag"])
    assert (
        "Deals: drop; meeting it goes with 10.0% less net profit in the same month "
        "(95% CI \u221218.0% to \u22122.0%; 96 manager-months), the opposite of what it is meant "
        "to do: it rewards the wrong thing." == verdict["sentence"]
    )


def test_conflicting_signs_follow_the_stronger_evidence():
    # Lag 0: t = -100 / (160 / 5) = -3.1; lag 2: t = 150 / (200 / 5) = 3.75, the stronger.
    verdict = verdict_of(link_rows((-100, -180, -20), (10, -50, 70), (150, 50, 250)))
    assert ("keep", 2) == (verdict["verdict"], verdict["lag"])
    assert (
        "Deals: keep; meeting it is followed by 15.0% more net profit two months later (95% CI "
        "+5.0% to +25.0%; 96 manager-months); but 10.0% less in the same month."
        == verdict["sentence"]
    )
    # A strong rise now and a weaker fall a month later: business pulled forward, still kept.
    verdict = verdict_of(link_rows((150, 50, 250), (-100, -180, -20), (10, -50, 70)))
    assert ("keep", 0) == (verdict["verdict"], verdict["lag"])
    assert verdict["sentence"].endswith(
        "but 10.0% less one month later, as if some business were pulled forward."
    )
    # The fall is the stronger: dropped, naming the weaker rise.
    verdict = verdict_of(link_rows((-150, -250, -50), (10, -50, 70), (100, 20, 180)))
    assert ("drop", 0) == (verdict["verdict"], verdict["lag"])
    assert "(a weaker 10.0% more two months later does not make up for it)" in verdict["sentence"]


def test_every_upper_bound_below_the_material_effect_drops_and_names_the_loosest():
    verdict = verdict_of(link_rows((0, -50, 50), (10, -60, 80), (20, -49, 99)))
    assert ("drop", 2) == (verdict["verdict"], verdict["lag"])
    assert "at most +9.9% net profit" in verdict["sentence"]


def test_an_upper_bound_at_the_material_effect_is_not_ruled_out():
    verdict = verdict_of(link_rows((0, -50, 50), (10, -60, 80), (20, -60, 100)))
    assert "re-weight" == verdict["verdict"]


def test_without_a_positive_mean_result_a_link_is_never_dropped_as_immaterial():
    verdict = verdict_of(link_rows((0, -50, 50), (10, -60, 80), mean=-500.0))
    assert "re-weight" == verdict["verdict"]
    assert "net profit one month later between 60 lower and 80 higher" in verdict["sentence"]


def test_no_estimable_lag_cannot_be_judged_with_the_reason_of_the_same_month():
    links = link_rows((0, -1, 1), (0, -1, 1)).assign(
        estimable=False, reason="too little data to judge: met in 332 of 336 manager-months"
    )
    verdict = verdict_of(links)
    assert "cannot judge" == verdict["verdict"]
    assert (
        "Deals: cannot judge; too little data to judge: met in 332 of 336 manager-months."
        == verdict["sentence"]
    )
    assert pd.isna(verdict["lag"]) and math.isnan(verdict["effect"])


def test_verdicts_follow_the_scheme_order_and_name_only_known_verdicts(funnel):
    links = pd.DataFrame(columns=LINK_COLUMNS)
    verdicts = kpi_verdicts(links, funnel)
    assert [kpi.key for _, kpi, _ in funnel.weighted_kpis()] == verdicts["kpi"].to_list()
    assert {"cannot judge"} == set(verdicts["verdict"])
    assert set(verdicts["verdict"]) <= set(VERDICTS)


# --- intended results -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("on_time_delivery", "existing_client_revenue"),
        ("fulfilment_days", "existing_client_revenue"),
        ("response_hours", "existing_client_revenue"),
        ("unanswered_requests", "existing_client_revenue"),
        ("revenue", "net_profit"),
        ("new_clients", "net_profit"),
    ],
)
def test_service_kpis_drive_existing_client_revenue_and_the_others_net_profit(metric, expected):
    assert expected == intended_result(Kpi(metric=metric, target={"value": 1}))


def test_a_kpi_may_name_the_result_it_drives():
    kpi = Kpi(metric="response_hours", target={"value": 8}, drives="revenue")
    assert "revenue" == intended_result(kpi)


# --- tables and chart -----------------------------------------------------------------------------


def test_tables_are_text_with_intervals_and_leave_names_unescaped():
    scheme = one_kpi_scheme(name="<b>Deals</b> & $ales")
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, scheme, YEAR)
    # A month later the checkerboard is reversed: judged on the same month only, it is kept.
    verdicts = kpi_verdicts(links.loc[links["lag"].eq(0)], scheme)
    table = verdict_table(verdicts, "RUB")
    assert [
        "KPI", "Weight", "Drives", "Expected sign", "Found sign", "Verdict", "When",
        "Effect per manager-month", "Relative effect", "Manager-months",
    ] == list(table.columns)  # fmt: skip
    assert all(str(dtype) == "str" for dtype in table.dtypes)
    row = table.iloc[0]
    assert ("<b>Deals</b> & $ales", "100.0%", "Net profit") == (row["KPI"], row["Weight"],
                                                                 row["Drives"])  # fmt: skip
    assert ("+", "keep", "in the same month") == (row["Found sign"], row["Verdict"],
                                                  row["When"])  # fmt: skip
    assert row["Effect per manager-month"].startswith("+200,000 RUB (+")
    assert row["Relative effect"].startswith("+11.6% (+")
    wide = links_table(links, "RUB")
    assert ["KPI", "Result", "Judged on", "Same month", "1 month later", "2 months later",
            "Manager-months", "Not estimable because"] == list(wide.columns)  # fmt: skip
    assert ["Net profit", "Revenue", "Existing-client revenue"] == wide["Result"].to_list()
    assert ["yes", "", ""] == wide["Judged on"].to_list()
    assert wide["Same month"].iloc[0].startswith("+200.0K RUB (+")
    assert "96 / 88 / 80" == wide["Manager-months"].iloc[0]


def test_tables_show_why_a_link_cannot_be_judged():
    scheme = one_kpi_scheme()
    history = grid_history(grid(2, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, scheme, YEAR)
    wide = links_table(links, "RUB")
    assert "not estimable" == wide["Same month"].iloc[0]
    assert wide["Not estimable because"].iloc[0].startswith("too little data to judge: only 24")
    row = verdict_table(kpi_verdicts(links, scheme), "RUB").iloc[0]
    assert (NO_DATA, "none", "cannot judge") == (row["Relative effect"], row["When"],
                                                 row["Verdict"])  # fmt: skip


def test_the_chart_is_a_described_png_that_draws_names_literally():
    scheme = one_kpi_scheme(name="$ales & <b>")
    history = grid_history(grid(8, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, scheme, YEAR, lags=(0,))
    figure = links_chart(links, kpi_verdicts(links, scheme))
    assert isinstance(figure, ReportFigure)
    png, metadata = figure._repr_png_()
    assert png.startswith(b"\x89PNG")
    assert metadata["alt"].startswith("Effect of meeting each KPI on the result it drives")
    assert "$ales & <b>: keep (+11.6% in the same month)" in metadata["alt"]
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert ["\\$ales & <b>\n\u2192 net profit: keep"] == labels


def test_the_chart_marks_a_kpi_that_cannot_be_judged():
    scheme = one_kpi_scheme()
    history = grid_history(grid(2, YEAR, checkerboard, linked(200_000, 10_000)))
    links = kpi_links(history, scheme, YEAR)
    figure = links_chart(links, kpi_verdicts(links, scheme))
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert ["cannot judge"] == texts
    assert figure._repr_png_()[0].startswith(b"\x89PNG")


# --- the demo data: the planted links -------------------------------------------------------------

QUARTER_END = pd.Period("2026-09", freq="M")
JUDGED = months_ending(QUARTER_END, 12)  # 2025-10 .. 2026-09


@pytest.fixture(scope="module")
def funnel() -> Scheme:
    return load_scheme(paths.DEFAULT_SCHEME)


@pytest.fixture(scope="module")
def demo_crm(source):
    return read_source(source)


@pytest.fixture(scope="module")
def demo_links(demo_crm, funnel) -> pd.DataFrame:
    history = score_months(demo_crm, funnel, months_ending(QUARTER_END, 14), None, shown=SHOWN)
    return kpi_links(history, funnel, JUDGED)


@pytest.fixture(scope="module")
def demo_verdicts(demo_links, funnel) -> pd.DataFrame:
    return kpi_verdicts(demo_links, funnel).set_index("kpi")


def kpi_of(scheme: Scheme, metric: str) -> str:
    return next(kpi.key for _, kpi, _ in scheme.weighted_kpis() if kpi.metric == metric)


def test_demo_response_time_leads_existing_client_revenue_by_the_planted_month(
    demo_links, demo_verdicts, funnel
):
    truth = ground_truth()
    key = kpi_of(funnel, truth.lagged_link_metric)
    verdict = demo_verdicts.loc[key]
    assert ("keep", truth.lagged_link_lag, "existing_client_revenue") == (
        verdict["verdict"], verdict["lag"], verdict["result"]
    )  # fmt: skip
    rows = demo_links.loc[demo_links["kpi"].eq(key) & demo_links["result"].eq(verdict["result"])]
    same = rows.loc[rows["lag"].eq(0)].iloc[0]
    assert same["low"] < 0 < same["high"]
    # A slow month costs 35% of the next month's existing-client value; with 30% slow months the
    # mean is 1 - 0.3 * 0.35 of normal, so met vs missed is 0.35 / 0.895 = 39% of the mean.
    planted = truth.lagged_link_loss / (1 - 0.3 * truth.lagged_link_loss)
    assert verdict["relative_low"] < planted < verdict["relative_high"]
    assert "a leading indicator" in verdict["sentence"]


def test_demo_delivery_kpis_planted_without_a_link_are_not_kept(demo_verdicts, funnel):
    for metric in ground_truth().unlinked_metrics:
        assert demo_verdicts.loc[kpi_of(funnel, metric), "verdict"] in ("drop", "re-weight")


@pytest.mark.parametrize("key", ["manager_sales_growth", "new_clients"])
def test_demo_sales_kpis_are_kept_on_net_profit_in_the_same_month(demo_verdicts, key):
    verdict = demo_verdicts.loc[key]
    assert ("keep", 0, "net_profit") == (verdict["verdict"], verdict["lag"], verdict["result"])


def test_demo_company_wide_links_are_estimable_but_the_shared_goal_of_4_departments(demo_links):
    shared = demo_links["kpi"].eq("department_sales_increase")
    assert demo_links.loc[~shared, "estimable"].all()
    assert {4} == set(demo_links.loc[shared, "clusters"])
    assert {28} == set(demo_links.loc[shared, "managers"])
    assert not demo_links.loc[shared, "estimable"].any()


def test_demo_on_time_delivery_is_not_mistaken_for_a_harmful_kpi(demo_verdicts, demo_links):
    # Met or missed, it follows the number of deliveries; with won deals held equal, no link.
    assert "re-weight" == demo_verdicts.loc["on_time_delivery", "verdict"]
    intended = demo_links.loc[demo_links["kpi"].eq("on_time_delivery") & demo_links["intended"]]
    assert (intended["low"] < 0).all() and (intended["high"] > 0).all()


def test_demo_one_department_leaves_the_shared_goal_to_the_company_wide_report(demo_crm, funnel):
    history = score_months(demo_crm, funnel, months_ending(QUARTER_END, 14), "north", shown=SHOWN)
    links = kpi_links(history, funnel, JUDGED, lags=(0,))
    shared = links.loc[links["kpi"].eq("department_sales_increase")]
    assert {SHARED_REASON} == set(shared["reason"])
    verdicts = kpi_verdicts(links, funnel).set_index("kpi")
    assert "cannot judge" == verdicts.loc["department_sales_increase", "verdict"]
    assert "keep" == verdicts.loc["new_clients", "verdict"]
