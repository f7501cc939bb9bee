"""Revenue forecast for the coming months per sales department and manager.

The model is exponential smoothing (ETS, statsmodels' ``ETSModel``) with additive errors: with at
least two years of monthly revenue it models a twelve-month seasonality, with one to two years the
level alone, and with less than a year it does not forecast. Every forecast has an interval and a
standard deviation, is compared with the seasonal-naive rule (a month brings what the same month
brought a year earlier), and is checked by a rolling-origin backtest over the last months of the
history. The probability of reaching a plan is read off a normal distribution around the forecast.

Missing revenue is "no data" (NaN), never zero: a manager's months before he was hired or after he
left are NaN, and a month without data inside a history is an error rather than a guess.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import norm
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.exponential_smoothing.ets import ETSModel, ETSResults, ETSResultsWrapper

from kpilib.display import fmt, fmt_compact, month_name
from kpilib.errors import ParamsError
from kpilib.metrics import (
    deals_with_department,
    department_deals,
    first_month,
    sales_departments,
)
from kpilib.periods import data_as_of, latest_complete_month
from kpilib.schemas import CRM

SEASON = 12  # months in a seasonal cycle
MIN_MONTHS = 12  # the least history a forecast is made from
SEASONAL_MONTHS = 2 * SEASON  # the least history the seasonal model is fitted to
NAIVE_MONTHS = SEASON + 1  # seasonal naive needs one past error to size its interval
COLUMNS = ["month", "forecast", "lower", "upper", "std", "method"]
SEASONAL_METHOD, PLAIN_METHOD, NAIVE_METHOD = "ETS(A,N,A)", "ETS(A,N,N)", "seasonal naive"


# --- history --------------------------------------------------------------------------------


def monthly_revenue(
    crm: CRM,
    end: pd.Period,
    level: Literal["manager", "department"] = "department",
    department_id: str | None = None,
) -> pd.DataFrame:
    """Revenue of won deals by closing month, per sales department or per manager.

    Args:
        crm: Validated data source.
        end: The last month of the table.
        level: ``department`` (one column per sales department) or ``manager`` (one per manager).
        department_id: Only this department's column, or only its managers.

    Returns:
        Index: every month from ``first_month(crm)`` to ``end`` (a monthly ``PeriodIndex`` named
        ``month``); one float column per entity. Months the data does not cover are NaN, and so
        are a manager's months before his ``hired_on`` or after his ``left_on`` unless he closed
        a deal in them; a month in which an employed manager closed nothing is 0. The figures
        equal ``kpilib.metrics.indicators(crm, month, level)["revenue"]``.
    """
    if level not in ("manager", "department"):
        raise ValueError(f"The level must be 'manager' or 'department', not {level!r}.")
    months = pd.period_range(first_month(crm), end, freq="M", name="month")
    key = "manager_id" if level == "manager" else "department_id"
    if level == "manager":
        managers = crm.managers
        if department_id is not None:
            managers = managers.loc[managers["department_id"].eq(department_id)]
        ids = pd.Index(managers["manager_id"], dtype="str", name=key)
    else:
        ids = pd.Index(sales_departments(crm)["department_id"], dtype="str", name=key)
        if department_id is not None:
            ids = ids[ids == department_id]
    if department_id is None:
        deals = deals_with_department(crm)
    else:  # the department's managers closed only the department's deals
        deals = department_deals(crm, department_id)
    if "closed_on" not in deals:  # a source of open deals only
        deals = deals.assign(closed_on=pd.NaT)
    closed = deals.loc[deals["stage"].isin(["won", "lost"]) & deals["closed_on"].notna()]
    closed = closed.assign(month=closed["closed_on"].dt.to_period("M"))
    won = closed.loc[closed["stage"].eq("won")]
    revenue = (
        won.groupby(["month", key])["amount"]
        .sum()
        .unstack(fill_value=0.0)
        .reindex(index=months, columns=ids, fill_value=0.0)
        .astype(float)
    )
    revenue = revenue.where(
        pd.Series(months <= data_as_of(crm).to_period("M"), index=months), axis=0
    )
    if level == "manager":
        revenue = revenue.where(_on_staff(crm, months, ids, closed))
    return revenue


def _on_staff(
    crm: CRM, months: pd.PeriodIndex, ids: pd.Index, closed: pd.DataFrame
) -> pd.DataFrame:
    """Whether each manager was employed in a month or closed a deal in it (as active_managers)."""
    managers = crm.managers.set_index("manager_id").reindex(ids)
    starts = months.start_time.to_numpy()[:, None]
    ends = (months + 1).start_time.to_numpy()[:, None]
    employed = np.ones((len(months), len(ids)), dtype=bool)
    if "hired_on" in managers:
        hired = managers["hired_on"].to_numpy()[None, :]
        employed &= pd.isna(hired) | (hired < ends)
    if "left_on" in managers:
        left = managers["left_on"].to_numpy()[None, :]
        employed &= pd.isna(left) | (left >= starts)
    dealt = (
        closed.groupby(["month", "manager_id"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=months, columns=ids, fill_value=0)
        .gt(0)
        .to_numpy()
    )
    return pd.DataFrame(employed | dealt, index=months, columns=ids)


def usable_history(history: pd.Series) -> pd.Series:
    """The history a forecast is made from: leading months without data trimmed.

    Args:
        history: Monthly values on a gap-free monthly ``PeriodIndex``; NaN is "no data".

    Returns:
        The history from its first month with data on, as floats (empty when it has none).

    Raises:
        ValueError: The index is not consecutive months, or a month after the first with data
            has none (a gap cannot be told apart from a month without sales).
    """
    index = history.index
    if not isinstance(index, pd.PeriodIndex) or index.freqstr != "M":
        raise ValueError("A revenue history needs a monthly PeriodIndex.")
    if len(index) and not index.equals(pd.period_range(index[0], periods=len(index), freq="M")):
        raise ValueError("A revenue history must hold consecutive months, oldest first.")
    values = history.astype(float)
    known = values.notna().to_numpy()
    if not known.any():
        return values.iloc[0:0]
    values = values.iloc[int(known.argmax()) :]
    missing = values.index[values.isna()]
    if len(missing):
        shown = ", ".join(f"{m:%Y-%m}" for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValueError(
            f"The revenue history{_of(history)} has no data for {shown}{more}, after "
            f"{values.index[0]:%Y-%m} which has: a forecast needs every month from the first on."
        )
    if not np.isfinite(values.to_numpy()).all():
        raise ValueError(f"The revenue history{_of(history)} holds an infinite value.")
    return values


def _of(history: pd.Series) -> str:
    return f" of {history.name}" if history.name is not None else ""


# --- forecasts ------------------------------------------------------------------------------


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "month": pd.PeriodIndex([], freq="M"),
            "forecast": pd.Series(dtype=float),
            "lower": pd.Series(dtype=float),
            "upper": pd.Series(dtype=float),
            "std": pd.Series(dtype=float),
            "method": pd.Series(dtype="str"),
        }
    )


def _check(horizon: int, level: float) -> None:
    if not 1 <= horizon <= SEASON:
        raise ValueError(f"The horizon must be 1 to {SEASON} months, not {horizon}.")
    if not 0 < level < 1:
        raise ValueError(f"The interval level must lie between 0 and 1, not {level}.")


def _frame(
    last: pd.Period,
    mean: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    std: np.ndarray,
    method: str,
) -> pd.DataFrame:
    """Forecast rows; revenue is never negative, so no bound or point goes below zero."""
    return pd.DataFrame(
        {
            "month": pd.period_range(last + 1, periods=len(mean), freq="M"),
            "forecast": np.maximum(mean, 0.0),
            "lower": np.maximum(lower, 0.0),
            "upper": np.maximum(upper, 0.0),
            "std": std.astype(float),
            "method": pd.Series([method] * len(mean), dtype="str"),
        }
    )


def forecast_series(history: pd.Series, horizon: int = 3, level: float = 0.8) -> pd.DataFrame:
    """Forecast a monthly revenue series with exponential smoothing.

    With at least 24 months of history the model has additive errors, no trend and an additive
    seasonality of 12 months, ETS(A,N,A); with 12 to 23 months it has no seasonality, ETS(A,N,N).
    The standard deviation is the model's analytical one with the residual variance divided by
    the degrees of freedom left after the estimated parameters (smoothing weights and initial
    states), as in R's ``forecast::ets``, rather than by the number of months: a seasonal model
    estimates 15 parameters, and two or three years of residuals alone would make its intervals
    far too narrow. A history whose months all hold the same value is forecast as that value
    with no spread (method ``constant``).

    Args:
        history: Monthly revenue on a monthly ``PeriodIndex``; leading NaN months (before a
            manager was hired) are left out.
        horizon: Months to forecast after the history's last month (1 to 12).
        level: Coverage of the interval (0.8 gives the 10% and 90% quantiles).

    Returns:
        One row per future month: ``month`` (Period), ``forecast``, ``lower``, ``upper``,
        ``std`` (of the forecast, for probabilities), ``method`` (such as ``ETS(A,N,A)``: additive
        error, no trend, additive seasonality). Revenue is never negative, so a forecast or bound
        below zero is shown as zero. Empty when fewer than 12 months have data.

    Raises:
        ValueError: A month inside the history has no data, or the index is not monthly.
    """
    _check(horizon, level)
    values = usable_history(history)
    if len(values) < MIN_MONTHS:
        return _empty()
    last = values.index[-1]
    data = values.to_numpy()
    if np.ptp(data) == 0:  # ETS cannot estimate a variance of zero
        zeros = np.zeros(horizon)
        same = zeros + data[0]
        return _frame(last, same, same, same, zeros, "constant")
    scale = float(np.abs(data).mean())  # models fit better on numbers near 1; ETS(A) scales exactly
    result, method = _fit(data / scale, seasonal=len(data) >= SEASONAL_MONTHS)
    n, k = len(data), result.model.k_params
    prediction = result.get_prediction(start=n, end=n + horizon - 1)
    mean = np.asarray(prediction.predicted_mean) * scale
    std = np.sqrt(np.asarray(prediction.forecast_variance) * n / (n - k)) * scale
    z = norm.ppf(0.5 + level / 2)
    return _frame(last, mean, mean - z * std, mean + z * std, std, method)


class _PointResults(ETSResults):
    """ETS results without the covariance matrix of the estimated parameters.

    statsmodels computes that matrix, from a numerical Hessian of the likelihood, whenever it
    makes results: about a fifth of a fit on two or three years of months. The forecast and its
    interval never read it (they come from the smoothing parameters and the residuals), so it is
    left out; the results then hold no covariance, as statsmodels' own results do where the
    matrix is singular.
    """

    @property
    def cov_params_approx(self) -> np.ndarray:
        raise np.linalg.LinAlgError("not computed: the forecast does not use it")


class _PointETS(ETSModel):
    """An `ETSModel` whose fit makes `_PointResults`."""

    @property
    def _res_classes(self) -> dict[str, tuple[type, type]]:
        return {"fit": (_PointResults, ETSResultsWrapper)}


def _fit(data: np.ndarray, seasonal: bool) -> tuple[ETSResults, str]:
    """The fitted ETS model and its name, such as ``ETS(A,N,A)``.

    A (damped) trend is not offered: on two to three years of monthly sales the AIC picks one
    in about half the fits without forecasting better, and the AICc never picks one.
    """
    model = _PointETS(
        pd.Series(data),  # a plain array trips statsmodels' prediction on its index
        error="add",
        seasonal="add" if seasonal else None,
        seasonal_periods=SEASON if seasonal else None,
    )
    with warnings.catch_warnings(record=True) as caught:
        # statsmodels' optimiser warnings would reach notebook output; they are kept as a remark
        # in the method's name instead.
        warnings.simplefilter("always")
        result = model.fit(disp=False)
    name = SEASONAL_METHOD if seasonal else PLAIN_METHOD
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        name += " (fit did not converge)"
    return result, name


def seasonal_naive(history: pd.Series, horizon: int = 3, level: float = 0.8) -> pd.DataFrame:
    """Forecast each month as the same month a year earlier.

    The interval is the forecast plus the empirical quantiles of the rule's past errors (each
    month with data a year before it, minus that month's value); ``std`` is those errors'
    standard deviation.

    Args:
        history: Monthly revenue on a monthly ``PeriodIndex``; leading NaN months are left out.
        horizon: Months to forecast (1 to 12).
        level: Coverage of the interval.

    Returns:
        The columns of ``forecast_series``, ``method`` ``seasonal naive``; empty with fewer than
        13 months of data.
    """
    _check(horizon, level)
    values = usable_history(history)
    if len(values) < NAIVE_MONTHS:
        return _empty()
    data = values.to_numpy()
    errors = data[SEASON:] - data[:-SEASON]
    low, high = np.quantile(errors, [(1 - level) / 2, (1 + level) / 2])
    mean = data[len(data) - SEASON : len(data) - SEASON + horizon]
    spread = np.full(horizon, errors.std(ddof=1) if len(errors) > 1 else np.nan)
    return _frame(values.index[-1], mean, mean + low, mean + high, spread, NAIVE_METHOD)


def plan_probability(forecast: float, std: float, plan: float) -> float:
    """The probability that revenue reaches the plan, revenue ~ Normal(forecast, std).

    Returns:
        P(revenue >= plan); NaN when the plan, forecast or std is NaN. A std of 0 gives 1 or 0.
    """
    if any(_missing(v) for v in (forecast, std, plan)):
        return math.nan
    if std < 0:
        raise ValueError(f"A standard deviation cannot be negative ({std}).")
    if std == 0:
        return 1.0 if forecast >= plan else 0.0
    return float(norm.sf(plan, loc=forecast, scale=std))


def _missing(value: object) -> bool:
    return value is None or pd.isna(value)  # type: ignore[arg-type]


# --- backtest -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backtest:
    """One-month-ahead forecasts of the model and of seasonal naive for the last months.

    Attributes:
        table: One row per held-out month: ``month``, ``actual``, ``model``, ``lower``,
            ``upper`` (the model's interval), ``method``, ``naive``.
        months: Held-out months where both forecasts exist (the ones the figures compare).
        mae_model: The model's mean absolute error over those months.
        mae_naive: Seasonal naive's mean absolute error over the same months.
        ratio: ``mae_model / mae_naive`` (below 1: the model erred less); NaN without months.
        beats_naive: Whether ``ratio`` is below 1 (False when it is NaN).
        coverage: Share of the months whose actual lies inside the model's interval.
        level: The interval's coverage level.
        note: What limited the backtest, for people; empty when it ran in full.
    """

    table: pd.DataFrame
    months: int
    mae_model: float
    mae_naive: float
    ratio: float
    beats_naive: bool
    coverage: float
    level: float
    note: str


def backtest(history: pd.Series, holdout: int = 6, level: float = 0.8) -> Backtest:
    """Rolling-origin backtest: refit on each month's past and forecast that month.

    Args:
        history: Monthly revenue on a monthly ``PeriodIndex``.
        holdout: How many of the last months to forecast, each from the months before it.
        level: Coverage of the model's interval.

    Returns:
        The per-month forecasts and their errors. With fewer than ``24 + holdout`` months the
        early held-out months are forecast without seasonality (or not at all), and ``note``
        says so.
    """
    if holdout < 1:
        raise ValueError(f"The holdout must be at least one month, not {holdout}.")
    values = usable_history(history)
    rows = []
    for end in range(max(len(values) - holdout, 0), len(values)):
        past = values.iloc[:end]
        model = forecast_series(past, 1, level) if end else _empty()
        naive = seasonal_naive(past, 1, level) if end else _empty()
        rows.append(
            {
                "month": values.index[end],
                "actual": values.iloc[end],
                "model": _first(model, "forecast"),
                "lower": _first(model, "lower"),
                "upper": _first(model, "upper"),
                "method": model["method"].iloc[0] if len(model) else None,
                "naive": _first(naive, "forecast"),
            }
        )
    table = pd.DataFrame(
        rows, columns=["month", "actual", "model", "lower", "upper", "method", "naive"]
    )
    table = table.astype(
        {"actual": float, "model": float, "lower": float, "upper": float, "naive": float}
    )
    table["method"] = table["method"].astype("str")
    both = table.dropna(subset=["model", "naive"])
    mae_model = float((both["actual"] - both["model"]).abs().mean()) if len(both) else math.nan
    mae_naive = float((both["actual"] - both["naive"]).abs().mean()) if len(both) else math.nan
    ratio = mae_model / mae_naive if mae_naive and not math.isnan(mae_naive) else math.nan
    inside = both["actual"].between(both["lower"], both["upper"])
    return Backtest(
        table=table,
        months=len(both),
        mae_model=mae_model,
        mae_naive=mae_naive,
        ratio=ratio,
        beats_naive=bool(ratio < 1),
        coverage=float(inside.mean()) if len(both) else math.nan,
        level=level,
        note=_backtest_note(len(values), holdout, table),
    )


def _first(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].iloc[0]) if len(frame) else math.nan


def _backtest_note(months: int, holdout: int, table: pd.DataFrame) -> str:
    if months >= SEASONAL_MONTHS + holdout:
        return ""
    parts = []
    uncompared = int((table["model"].isna() | table["naive"].isna()).sum())
    if uncompared:
        parts.append(
            f"{uncompared} could not be compared, with too little history before "
            f"{'it' if uncompared == 1 else 'them'} (the model needs {MIN_MONTHS} months, "
            f"seasonal naive {NAIVE_MONTHS})"
        )
    plain = int(table["method"].str.startswith(PLAIN_METHOD, na=False).sum())
    if plain:
        parts.append(
            f"{plain} {'was' if plain == 1 else 'were'} forecast without seasonality, with fewer "
            f"than {SEASONAL_MONTHS} months before {'it' if plain == 1 else 'them'}"
        )
    tested = f"{len(table)} months tested" if len(table) != 1 else "1 month tested"
    return (
        f"The backtest had {months} months of history, fewer than the {SEASONAL_MONTHS + holdout} "
        f"it needs in full: of the {tested}, {' and '.join(parts)}."
    )


# --- a department's forecast ----------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentForecast:
    """A sales department's revenue forecast with its checks.

    Attributes:
        department_id: The department.
        end: The last month of history; the forecast covers the months after it.
        level: Coverage of the intervals.
        history: The department's monthly revenue up to ``end`` (see ``monthly_revenue``).
        table: One row per future month: ``month``, ``forecast``, ``lower``, ``upper``, ``std``,
            ``method``, ``naive`` (seasonal naive), ``naive_lower``, ``naive_upper``, ``plan``
            (the department's own revenue plan; NaN without one) and ``probability`` (of
            reaching the plan). Forecast columns are NaN when the history is too short.
        managers: One row per manager of the department: ``manager_id``, ``name``, ``months``
            (with data), next month's ``forecast``, ``lower``, ``upper``, ``std``, ``method``,
            and ``reason`` (why there is no forecast; empty when there is one).
        backtest: The backtest of the department's series.
    """

    department_id: str
    end: pd.Period
    level: float
    history: pd.Series
    table: pd.DataFrame
    managers: pd.DataFrame
    backtest: Backtest


def department_forecast(
    crm: CRM, department_id: str, end: pd.Period, horizon: int = 3, level: float = 0.8
) -> DepartmentForecast:
    """Forecast a sales department's revenue for the months after ``end``, and its managers'.

    Args:
        crm: Validated data source.
        department_id: A sales department.
        end: The last month of history: a month the data covers to its last day.
        horizon: Months to forecast (1 to 12).
        level: Coverage of the intervals.

    Returns:
        The department's forecast, seasonal naive, plans and probabilities, its managers' next
        month, and the backtest of the department's series.

    Raises:
        ParamsError: The department is not a sales department, or ``end`` is not complete in
            the data (a partial month would read as a slump).
    """
    _check(horizon, level)
    end = pd.Period(end, freq="M")
    known = sales_departments(crm)["department_id"]
    if department_id not in set(known):
        raise ParamsError(
            f"Department {department_id!r} is not a sales department of the data "
            f"(known: {', '.join(known)})."
        )
    complete = latest_complete_month(crm)
    if end > complete:
        raise ParamsError(
            f"Month {end:%Y-%m} is not complete in the data (the latest complete month is "
            f"{complete:%Y-%m}); a forecast starts after a complete month."
        )
    history = monthly_revenue(crm, end, "department", department_id)[department_id]
    months = pd.period_range(end + 1, periods=horizon, freq="M", name="month")
    model = forecast_series(history, horizon, level).set_index("month").reindex(months)
    naive = seasonal_naive(history, horizon, level).set_index("month").reindex(months)
    plans = revenue_plans(crm, department_id, months)
    table = model.assign(
        naive=naive["forecast"],
        naive_lower=naive["lower"],
        naive_upper=naive["upper"],
        plan=plans,
        probability=[
            plan_probability(f, s, p)
            for f, s, p in zip(model["forecast"], model["std"], plans, strict=True)
        ],
    ).reset_index()
    return DepartmentForecast(
        department_id=department_id,
        end=end,
        level=level,
        history=history,
        table=table,
        managers=_manager_forecasts(crm, department_id, end, level),
        backtest=backtest(history, level=level),
    )


def revenue_plans(crm: CRM, department_id: str, months: pd.PeriodIndex) -> pd.Series:
    """The department's own revenue plan per month (rows with no manager); NaN without one.

    Raises:
        ValueError: The plans hold more than one department revenue plan for a month.
    """
    plans = crm.plans
    if plans is None or "department_id" not in plans:
        return pd.Series(np.nan, index=months, dtype=float, name="plan")
    own = plans["metric"].eq("revenue") & plans["department_id"].eq(department_id)
    if "manager_id" in plans:
        own &= plans["manager_id"].isna()
    rows = plans.loc[own & plans["period"].isin([f"{m:%Y-%m}" for m in months])]
    twice = rows["period"].loc[rows["period"].duplicated()].unique()
    if len(twice):
        raise ValueError(
            f"The plans hold more than one revenue plan of department {department_id!r} for "
            f"{', '.join(twice)}."
        )
    targets = rows.set_index("period")["target"].astype(float)
    return pd.Series(
        [targets.get(f"{m:%Y-%m}", np.nan) for m in months], index=months, dtype=float, name="plan"
    )


def _manager_forecasts(crm: CRM, department_id: str, end: pd.Period, level: float) -> pd.DataFrame:
    """Next month's forecast per manager of the department, or why there is none."""
    revenue = monthly_revenue(crm, end, "manager", department_id)
    roster = crm.managers.set_index("manager_id")
    names = roster["name"] if "name" in roster else pd.Series(dtype="str")
    rows = []
    for manager_id, series in revenue.items():
        name = names.get(manager_id)
        row = {
            "manager_id": manager_id,
            "name": str(name) if not _missing(name) else str(manager_id),
            "months": int(series.notna().sum()),
            "month": end + 1,
        }
        result, reason = _empty(), ""
        if series.empty or pd.isna(series.iloc[-1]):
            reason = f"not on staff in {month_name(end)}"
        else:
            try:
                result = forecast_series(series, 1, level)
            except ValueError as error:  # a gap in the history: shown, not hidden
                reason = str(error)
            else:
                if result.empty:
                    have = f"{row['months']} month{'' if row['months'] == 1 else 's'}"
                    reason = f"history too short: {have} with data, {MIN_MONTHS} needed"
        for column in ("forecast", "lower", "upper", "std"):
            row[column] = _first(result, column)
        row["method"] = result["method"].iloc[0] if len(result) else None
        row["reason"] = reason
        rows.append(row)
    columns = ["manager_id", "name", "months", "month", "forecast", "lower", "upper", "std"]
    frame = pd.DataFrame(rows, columns=[*columns, "method", "reason"])
    return frame.astype({"forecast": float, "lower": float, "upper": float, "std": float})


# --- for people -----------------------------------------------------------------------------


def forecast_table(f: DepartmentForecast, currency: str) -> pd.DataFrame:
    """The department's forecast as text for the report, one row per future month."""
    t = f.table
    interval = f"{f.level:.0%} interval"

    def money(column: str) -> list[str]:
        return [fmt(v, "money", currency) for v in t[column]]

    return pd.DataFrame(
        {
            "Month": [month_name(m) for m in t["month"]],
            "Forecast": money("forecast"),
            f"Low ({interval})": money("lower"),
            f"High ({interval})": money("upper"),
            "Same month last year": money("naive"),
            "Plan": money("plan"),
            "Chance of reaching plan": [fmt(p, "share") for p in t["probability"]],
        }
    )


def forecast_sentence(f: DepartmentForecast, currency: str) -> str:
    """The next month's forecast, its chance of reaching plan and how far to trust it, in words."""
    first = f.table.iloc[0]
    month = month_name(first["month"])
    if _missing(first["forecast"]):
        months = len(usable_history(f.history))
        return (
            f"Revenue for {month} is not forecast: the department has {months} months of "
            f"revenue history and a forecast needs at least {MIN_MONTHS}."
        )
    low, high = (fmt_compact(first[c], "").strip() for c in ("lower", "upper"))
    text = (
        f"Revenue for {month} is forecast at {fmt_compact(first['forecast'], currency)} "
        f"({f.level:.0%} interval {low}-{high})"
    )
    if _missing(first["plan"]):
        text += "; no revenue plan is set for that month."
    else:
        text += (
            f"; the plan of {fmt_compact(first['plan'], currency)} is reached with a "
            f"probability of {fmt(first['probability'], 'share')}."
        )
    return f"{text} {_trust(f.backtest)}"


def _trust(bt: Backtest) -> str:
    rule = "the same-month-last-year rule (seasonal naive)"
    if math.isnan(bt.ratio):
        note = f" {bt.note}" if bt.note else ""
        return (
            f"The forecast could not be tested against {rule}.{note} Treat the forecast with "
            "caution."
        )
    inside = int(round(bt.coverage * bt.months))
    last = "the last month" if bt.months == 1 else f"the last {bt.months} months"
    start = f"On {last} the model's one-month forecasts erred by"
    interval = f"the {bt.level:.0%} interval"
    if bt.months == 1:
        checked = f"the actual value fell {'inside' if inside else 'outside'} {interval}"
    else:
        checked = f"{inside} of the {bt.months} actual values fell inside {interval}"
    if bt.beats_naive:
        text = f"{start} {fmt(1 - bt.ratio, 'share')} less than {rule}, and {checked}."
    elif bt.ratio == 1:
        text = f"{start} as much as {rule}, and {checked}; treat the forecast with caution."
    else:
        text = (
            f"{start} {fmt(bt.ratio - 1, 'share')} more than {rule}, and {checked}; treat the "
            "forecast with caution."
        )
    return f"{text} {bt.note}" if bt.note else text
