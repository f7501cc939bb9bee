"""Revenue forecast: monthly history, ETS and seasonal naive, backtest, plans, sentence, chart.

Synthetic series are a monthly seasonal pattern times 40M plus normal noise from a seeded
generator (the seed is given where it is used). Demo figures come from the ``source`` fixture.
"""

# STYLE.md: asserts read `expected == actual`, which ruff's SIM300 calls a Yoda condition.

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from kpilib import forecast as fc
from kpilib.errors import ParamsError
from kpilib.io import read_source
from kpilib.metrics import indicators, sales_departments
from kpilib.periods import latest_complete_month
from kpilib.plots import ReportFigure, forecast_chart

PATTERN = np.array([0.75, 0.92, 1.18, 1.05, 0.95, 1.00, 0.90, 0.78, 1.05, 1.08, 1.10, 1.24])
BASE = 40e6


def synthetic(months: int, noise: float, seed: int, start: str = "2022-01") -> pd.Series:
    """BASE x PATTERN[calendar month] plus normal noise of ``noise`` x BASE."""
    index = pd.period_range(start, periods=months, freq="M", name="month")
    rng = np.random.default_rng(seed)
    return pd.Series(truth(index) + rng.normal(0.0, noise * BASE, months), index=index)


def truth(months: pd.PeriodIndex) -> np.ndarray:
    return BASE * PATTERN[np.asarray(months.month) - 1]


@pytest.fixture(scope="module")
def crm(source):
    return read_source(source)


@pytest.fixture(scope="module")
def end(crm) -> pd.Period:
    return latest_complete_month(crm)


@pytest.fixture(scope="module")
def run(crm, end) -> tuple[dict[str, fc.DepartmentForecast], list[warnings.WarningMessage]]:
    """Every sales department's forecast, and the warnings raised while making them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        departments = sales_departments(crm)["department_id"]
        return {d: fc.department_forecast(crm, d, end) for d in departments}, caught


@pytest.fixture(scope="module")
def forecasts(run) -> dict[str, fc.DepartmentForecast]:
    return run[0]


# --- monthly history ------------------------------------------------------------------------


def test_department_revenue_agrees_with_the_indicators(crm, end):
    revenue = fc.monthly_revenue(crm, end)
    months = [revenue.index[0], revenue.index[7], revenue.index[18], end]
    for month in months:
        expected = indicators(crm, month, "department", metrics=("revenue",))["revenue"]
        pd.testing.assert_series_equal(
            expected, revenue.loc[month, expected.index], check_names=False
        )
    assert list(sales_departments(crm)["department_id"]) == list(revenue.columns)


def test_manager_revenue_agrees_with_the_indicators_and_is_nan_off_staff(crm, end):
    roster = crm.managers.loc[crm.managers["department_id"].eq("west")]
    leaver = roster.loc[roster["left_on"].notna()].iloc[0]
    hire = roster.loc[roster["hired_on"].eq(roster["hired_on"].max())].iloc[0]
    left = leaver["left_on"].to_period("M")
    revenue = fc.monthly_revenue(crm, end, "manager", "west")
    assert set(roster["manager_id"]) == set(revenue.columns)
    for month in [revenue.index[0], left, left + 1, end]:
        actual = indicators(crm, month, "manager", metrics=("revenue",))["revenue"]
        actual = actual.loc[actual.index.isin(revenue.columns)]
        assert actual.to_dict() == revenue.loc[month, actual.index].to_dict()
        assert revenue.loc[month].drop(actual.index).isna().all()  # not active: no data
    assert revenue.loc[left + 1 :, leaver["manager_id"]].isna().all()
    assert revenue.loc[: hire["hired_on"].to_period("M") - 1, hire["manager_id"]].isna().all()
    assert revenue.loc[hire["hired_on"].to_period("M") :, hire["manager_id"]].notna().all()


def test_months_without_sales_are_zero_and_months_without_data_nan(sales_crm):
    """Conftest source: deals close in March 2024 and March 2025 only; m3 won 50,000 in 2024-03."""
    end = pd.Period("2025-05", freq="M")
    revenue = fc.monthly_revenue(sales_crm, end, "manager")
    assert [0.0, 0.0, 0.0] == revenue.loc["2024-06"].tolist()
    assert revenue.loc["2025-04":].isna().all().all()  # after the data's last date
    assert 350_000.0 == revenue.loc["2024-03"].sum()
    hired = sales_crm.managers.assign(
        hired_on=pd.to_datetime(["2020-01-01", "2020-01-01", "2024-09-15"])
    )
    later = dataclasses.replace(sales_crm, managers=hired)
    revenue = fc.monthly_revenue(later, end, "manager")
    assert 50_000.0 == revenue.at[pd.Period("2024-03", "M"), "m3"]  # a close before hiring shows
    assert revenue.loc["2024-04":"2024-08", "m3"].isna().all()
    assert 0.0 == revenue.at[pd.Period("2024-09", "M"), "m3"]


# --- forecasts ------------------------------------------------------------------------------


def test_a_known_seasonal_pattern_is_forecast_inside_the_interval():
    """Seed 3, noise 3% of the level: the true means lie in the 95% interval and near the point."""
    series = synthetic(36, 0.03, seed=3)
    result = fc.forecast_series(series, horizon=3, level=0.95)
    expected_months = pd.period_range("2025-01", periods=3, freq="M")
    assert list(expected_months) == list(result["month"])
    assert ["ETS(A,N,A)"] * 3 == list(result["method"])
    mean = truth(expected_months)
    assert ((result["lower"] <= mean) & (mean <= result["upper"])).all()
    np.testing.assert_allclose(mean, result["forecast"], rtol=0.05)


def test_ets_beats_seasonal_naive_on_noisy_seasonal_series():
    """Seeds 0-2, noise 15% of the level, 48 months; the last 12 of each forecast one at a time.

    Seasonal naive's error is the difference of two noisy months; the model averages the
    season over several years, so its pooled mean absolute error is clearly lower (about 0.8 of
    naive's in theory; 0.77 for these seeds, 0.68-0.93 for other triples of seeds).
    """
    tests = [fc.backtest(synthetic(48, 0.15, seed), holdout=12) for seed in range(3)]
    assert all(12 == t.months and "" == t.note for t in tests)
    model = sum(t.mae_model for t in tests)
    naive = sum(t.mae_naive for t in tests)
    assert model < 0.95 * naive


def test_intervals_hold_the_forecast_and_widen_with_the_horizon():
    for months in (36, 18):
        result = fc.forecast_series(synthetic(months, 0.1, seed=5), horizon=3)
        assert (result["lower"] <= result["forecast"]).all()
        assert (result["forecast"] <= result["upper"]).all()
        assert (np.diff(result["std"]) > 0).all()
        assert (np.diff(result["upper"] - result["lower"]) > 0).all()


def test_the_forecast_does_not_depend_on_the_unit_of_money():
    """Millions or roubles: the same fit (fitted on raw roubles, the optimiser stops far off)."""
    roubles = synthetic(30, 0.15, seed=9)
    millions = fc.forecast_series(roubles / 1e6)
    columns = ["forecast", "lower", "upper", "std"]
    np.testing.assert_allclose(
        millions[columns].to_numpy() * 1e6, fc.forecast_series(roubles)[columns], rtol=1e-6
    )


@pytest.mark.parametrize("months", [18, 30])
def test_the_forecast_is_statsmodels_own_without_the_parameters_covariance(months, monkeypatch):
    """The fit skips only the covariance matrix: forecasts and intervals are exactly those of
    statsmodels' plain ETSModel, and no Hessian of the likelihood is computed."""
    series = synthetic(months, 0.1, seed=4)
    data = series.to_numpy()
    scale = float(np.abs(data).mean())
    seasonal = months >= fc.SEASONAL_MONTHS
    plain = fc.ETSModel(
        pd.Series(data / scale),
        error="add",
        seasonal="add" if seasonal else None,
        seasonal_periods=fc.SEASON if seasonal else None,
    ).fit(disp=False)
    expected = plain.get_prediction(start=months, end=months + 2)

    def no_hessian(*args: object, **kwargs: object) -> None:
        raise AssertionError("the forecast computed a Hessian")

    monkeypatch.setattr(fc.ETSModel, "hessian", no_hessian)
    result, _ = fc._fit(data / scale, seasonal)
    got = result.get_prediction(start=months, end=months + 2)
    assert plain.params.tolist() == result.params.tolist()
    assert np.asarray(expected.predicted_mean).tolist() == np.asarray(got.predicted_mean).tolist()
    assert (
        np.asarray(expected.forecast_variance).tolist()
        == np.asarray(got.forecast_variance).tolist()
    )


def test_history_length_decides_the_model():
    series = synthetic(30, 0.1, seed=1)
    assert fc.forecast_series(series.iloc[:11]).empty
    assert list(fc.COLUMNS) == list(fc.forecast_series(series.iloc[:11]).columns)
    assert ["ETS(A,N,N)"] == list(fc.forecast_series(series.iloc[:12], 1)["method"])
    assert ["ETS(A,N,N)"] == list(fc.forecast_series(series.iloc[:23], 1)["method"])
    assert ["ETS(A,N,A)"] == list(fc.forecast_series(series.iloc[:24], 1)["method"])
    assert fc.seasonal_naive(series.iloc[:12]).empty
    assert 3 == len(fc.seasonal_naive(series.iloc[:13]))


def test_seasonal_naive_repeats_last_year_with_an_interval_from_its_past_errors():
    series = synthetic(30, 0.1, seed=2)
    result = fc.seasonal_naive(series, horizon=3)
    np.testing.assert_array_equal(series.iloc[18:21].to_numpy(), result["forecast"])
    errors = series.to_numpy()[12:] - series.to_numpy()[:-12]
    low, high = np.quantile(errors, [0.1, 0.9])
    np.testing.assert_allclose(series.iloc[18:21].to_numpy() + high, result["upper"])
    np.testing.assert_allclose(np.maximum(series.iloc[18:21].to_numpy() + low, 0), result["lower"])


def test_leading_months_without_data_are_trimmed_and_a_gap_is_an_error():
    series = synthetic(20, 0.1, seed=4)
    hired_late = pd.concat(
        [pd.Series(np.nan, index=pd.period_range(end="2021-12", periods=6, freq="M")), series]
    )
    pd.testing.assert_frame_equal(fc.forecast_series(series), fc.forecast_series(hired_late))
    gap = series.copy()
    gap.iloc[10] = np.nan
    with pytest.raises(ValueError, match="2022-11"):
        fc.forecast_series(gap)
    with pytest.raises(ValueError, match="2022-11"):
        fc.backtest(gap)


def test_a_short_history_backtest_says_what_it_could_not_do():
    result = fc.backtest(synthetic(20, 0.1, seed=6), holdout=6)
    assert 6 == len(result.table)
    assert ["ETS(A,N,N)"] * 6 == list(result.table["method"])
    assert 6 == result.months  # 14 or more months before each: both forecasts exist
    assert result.note.startswith("The backtest had 20 months of history")
    assert "6 were forecast without seasonality" in result.note
    tiny = fc.backtest(synthetic(10, 0.1, seed=6), holdout=6)
    assert 0 == tiny.months and math.isnan(tiny.ratio) and not tiny.beats_naive
    assert "of the 6 months tested, 6 could not be compared" in tiny.note


def test_plan_probability():
    assert 0.5 == pytest.approx(fc.plan_probability(40e6, 5e6, 40e6))
    above, below = fc.plan_probability(40e6, 5e6, 46e6), fc.plan_probability(40e6, 5e6, 34e6)
    assert 1.0 == pytest.approx(above + below)
    assert 0.1 == pytest.approx(fc.plan_probability(40e6, 5e6, 40e6 + 1.2815515655 * 5e6))
    assert math.isnan(fc.plan_probability(40e6, 5e6, math.nan))
    assert math.isnan(fc.plan_probability(40e6, math.nan, 40e6))
    assert (1.0, 0.0) == (fc.plan_probability(5.0, 0.0, 5.0), fc.plan_probability(5.0, 0.0, 6.0))


# --- the demo's departments -----------------------------------------------------------------


def test_every_demo_department_is_backtested_and_the_sentence_says_whether_it_beats_naive(
    forecasts,
):
    for f in forecasts.values():
        bt = f.backtest
        assert (6, "") == (bt.months, bt.note)
        assert bt.beats_naive == (bt.ratio < 1)
        sentence = fc.forecast_sentence(f, "RUB")
        assert ("less than the same-month-last-year rule" in sentence) == bt.beats_naive
        assert ("more than the same-month-last-year rule" in sentence) == (not bt.beats_naive)
        assert ("treat the forecast with caution" in sentence) == (not bt.beats_naive)


def test_the_table_holds_the_forecast_naive_plan_and_probability(crm, end, forecasts):
    f = forecasts["north"]
    months = pd.period_range(end + 1, periods=3, freq="M")
    assert list(months) == list(f.table["month"])
    model = fc.forecast_series(f.history, 3)
    pd.testing.assert_series_equal(model["forecast"], f.table["forecast"])
    naive = fc.seasonal_naive(f.history, 3)
    pd.testing.assert_series_equal(naive["forecast"], f.table["naive"], check_names=False)
    plans = crm.plans.loc[crm.plans["department_id"].eq("north")].set_index("period")["target"]
    expected = [plans.get(f"{m:%Y-%m}", np.nan) for m in months]
    np.testing.assert_array_equal(expected, f.table["plan"])
    probability = [
        fc.plan_probability(r.forecast, r.std, r.plan) for r in f.table.itertuples(index=False)
    ]
    np.testing.assert_allclose(probability, f.table["probability"])


def test_only_the_departments_own_revenue_plan_counts(crm, end):
    month = f"{end + 1:%Y-%m}"
    keep = ~crm.plans["period"].eq(month)
    manager = crm.managers.loc[crm.managers["department_id"].eq("north"), "manager_id"].iloc[0]
    extra = pd.DataFrame(
        {
            "period": [month, month, month],
            "metric": ["revenue", "revenue", "deals_won"],
            "target": [45e6, 9e6, 100.0],
            "department_id": ["north", None, "north"],
            "manager_id": [None, manager, None],
        }
    )
    plans = pd.concat([crm.plans.loc[keep], extra], ignore_index=True)
    months = pd.period_range(end + 1, periods=1, freq="M")
    assert [45e6] == fc.revenue_plans(
        dataclasses.replace(crm, plans=plans), "north", months
    ).tolist()
    twice = pd.concat([plans, extra.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match=month):
        fc.revenue_plans(dataclasses.replace(crm, plans=twice), "north", months)
    assert fc.revenue_plans(dataclasses.replace(crm, plans=None), "north", months).isna().all()


def test_every_manager_is_listed_with_a_forecast_or_a_reason(crm, end, forecasts):
    managers = forecasts["west"].managers
    roster = crm.managers.loc[crm.managers["department_id"].eq("west")]
    assert list(roster["manager_id"]) == list(managers["manager_id"])
    gone = managers["reason"].str.startswith("not on staff")
    assert list(roster["left_on"].notna()) == list(gone)
    assert managers.loc[gone, "forecast"].isna().all()
    assert (
        managers.loc[~gone, "forecast"].notna().all()
        and (managers.loc[~gone, "reason"] == "").all()
    )


def test_a_short_history_gives_reasons_and_a_cautious_sentence(crm):
    """West at December 2025: 20 months of data; M024 left in February, M029 came in March."""
    f = fc.department_forecast(crm, "west", pd.Period("2025-12", freq="M"))
    assert (f.table["method"] == "ETS(A,N,N)").all()
    reasons = f.managers.set_index("manager_id")["reason"]
    assert reasons["M024"].startswith("not on staff in December 2025")  # left in February
    assert reasons["M029"].startswith("history too short: 10 months with data")
    assert f.backtest.note.startswith("The backtest had 20 months of history")
    assert f.backtest.note in fc.forecast_sentence(f, "RUB")


def test_no_warning_reaches_the_report(run):
    assert [] == [f"{w.category.__name__}: {w.message}" for w in run[1]]


def test_department_forecast_refuses_unknown_departments_and_incomplete_months(crm, end):
    with pytest.raises(ParamsError, match="logistics"):
        fc.department_forecast(crm, "logistics", end)
    with pytest.raises(ParamsError, match="not complete"):
        fc.department_forecast(crm, "north", end + 1)


# --- for people -----------------------------------------------------------------------------


def test_the_sentence_gives_the_numbers_and_says_when_the_model_loses(forecasts):
    f = forecasts["north"]
    row = f.table.iloc[0]
    wins = dataclasses.replace(f.backtest, ratio=0.88, beats_naive=True, coverage=5 / 6)
    sentence = fc.forecast_sentence(dataclasses.replace(f, backtest=wins), "RUB")
    month = f"{row['month']:%B %Y}"
    assert sentence.startswith(
        f"Revenue for {month} is forecast at {row['forecast'] / 1e6:.1f}M RUB"
    )
    assert f"80% interval {row['lower'] / 1e6:.1f}M-{row['upper'] / 1e6:.1f}M" in sentence
    assert f"the plan of {row['plan'] / 1e6:.1f}M RUB" in sentence
    assert f"probability of {row['probability']:.1%}" in sentence
    assert "erred by 12.0% less than" in sentence and "5 of the 6 actual values" in sentence
    assert "caution" not in sentence
    loses = dataclasses.replace(f.backtest, ratio=1.08, beats_naive=False)
    sentence = fc.forecast_sentence(dataclasses.replace(f, backtest=loses), "RUB")
    assert "erred by 8.0% more than" in sentence and sentence.endswith("with caution.")
    no_plan = dataclasses.replace(f, table=f.table.assign(plan=np.nan, probability=np.nan))
    assert "no revenue plan is set" in fc.forecast_sentence(no_plan, "RUB")


def test_forecast_table_formats_money_and_the_chance_as_a_share(forecasts):
    f = forecasts["east"]
    table = fc.forecast_table(f, "RUB")
    row = f.table.iloc[0]
    assert f"{row['month']:%B %Y}" == table["Month"].iloc[0]
    assert f"{row['forecast']:,.0f} RUB" == table["Forecast"].iloc[0]
    assert f"{row['probability']:.1%}" == table["Chance of reaching plan"].iloc[0]
    assert "Low (80% interval)" in table


def test_forecast_chart_is_a_described_png(forecasts):
    f = forecasts["east"]
    figure = forecast_chart(f.history, f.table, "RUB")
    assert isinstance(figure, ReportFigure)
    png, metadata = figure._repr_png_()
    assert png.startswith(b"\x89PNG")
    first, last = f.table["month"].iloc[0], f.table["month"].iloc[-1]
    assert f"forecast for {first:%B %Y} to {last:%B %Y}" in metadata["alt"]
    ax = figure.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    expected = [
        "Actual revenue", "Forecast", "80% interval",
        "Same month last year (seasonal naive)", "Plan",
    ]  # fmt: skip
    assert expected == labels
    assert "Revenue, RUB" == ax.get_ylabel()
    assert 18 == len(ax.get_lines()[0].get_xdata())


def test_too_little_history_gives_no_forecast_and_says_so(crm):
    """Nine months of demo data (May 2024 to January 2025)."""
    f = fc.department_forecast(crm, "east", pd.Period("2025-01", freq="M"))
    assert f.table["forecast"].isna().all() and f.table["probability"].isna().all()
    assert f.table["plan"].notna().all()  # the plans are there all the same
    sentence = fc.forecast_sentence(f, "RUB")
    assert sentence.startswith("Revenue for February 2025 is not forecast")
    assert "9 months of revenue history" in sentence
    assert ["no data"] * 3 == fc.forecast_table(f, "RUB")["Forecast"].tolist()
    figure = forecast_chart(f.history, f.table, "RUB")
    assert "no forecast for February 2025 to April 2025" in figure.alt
    assert figure._repr_png_()[0].startswith(b"\x89PNG")


def test_a_forecast_that_could_not_be_tested_says_so(crm):
    """Thirteen months (May 2024 to May 2025): a forecast, but no month to compare it on."""
    f = fc.department_forecast(crm, "north", pd.Period("2025-05", freq="M"))
    assert f.table["forecast"].notna().all() and 0 == f.backtest.months
    sentence = fc.forecast_sentence(f, "RUB")
    assert "The forecast could not be tested against the same-month-last-year rule" in sentence
    assert f.backtest.note in sentence and sentence.endswith("Treat the forecast with caution.")
