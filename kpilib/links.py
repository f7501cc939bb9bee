"""Do the KPIs still drive results? Each KPI's link to the business result it is meant to raise.

Every quarter the working group checks, KPI by KPI, whether months in which managers met it are
months of better results. An observation is a manager-month in the judged months with a known
result (net profit, revenue or existing-client revenue, from the history's scorecards) and a
known met flag of the KPI ``lag`` months earlier for the same manager (0, 1 or 2 months: a KPI
may lead its result). A month before the history's first month has no flag: fewer
observations, never an error.

The model is ordinary least squares ``result ~ met + manager effects + month effects``. Month
effects take out seasonality and company-wide shocks; manager effects compare every manager with
their own usual level, so a star's big months do not pass for the KPI's doing. ``effect`` is how
much higher the result is (money per manager-month) in months the KPI was met ``lag`` months
before than in months it was missed; ``relative`` is that as a share of the mean result.
For a customer-service KPI the won deals of the result month are held equal too
(``VOLUME``): its met flag is a share or a mean over the deliveries or requests of the month, and a
busy manager has more of them to get wrong, which would otherwise pass for a link (meeting
on-time delivery would seem to cost revenue). Standard errors are clustered by manager (by
department for a shared department KPI, whose met
flag is one per department and month, so its managers are not independent evidence of it), with
a t-distribution of (clusters - 1) degrees of freedom. Several lags are looked at, so the
intervals hold for all of them at once (Bonferroni): 95% intervals, adjusted for looking at 3
lags, are each at level 1 - 0.05/3.

A link is not estimable (``reason`` says why) with fewer than 30 observations, fewer than 5 met
or 5 missed, a met flag that does not vary once the manager and month effects are taken out (a
department KPI within one department is the same for every manager in a month), or fewer than 4
clusters.

Verdicts, per KPI, on its intended result (`intended_result`); meeting a KPI should raise it:

- **cannot judge**: no lag is estimable.
- **keep**: some lag's interval lies above zero, and the strongest evidence (largest ``|t|`` among
  the lags whose interval excludes zero) is such a rise. That lag is reported; a later lag with the
  same month not clearly linked is a leading indicator. A weaker fall at another lag (business
  pulled forward from the next month) is named in the sentence.
- **drop**: the strongest evidence is a fall (meeting it goes with worse results: it rewards the
  wrong thing), or no interval lies above zero and every estimable lag's upper bound is below a
  material effect, ``MATERIAL`` = 10% of the mean result (the data rule out a useful link).
- **re-weight**: otherwise: no clear link yet and a useful one not ruled out; move its weight to
  KPIs with a proven link and check again next quarter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from kpilib.display import NO_DATA, fmt, fmt_compact, fmt_signed, is_known
from kpilib.history import ScoreHistory
from kpilib.params import Kpi, Scheme
from kpilib.plots import PALETTE, ReportFigure, literal, new_figure
from kpilib.services import SERVICE_METRICS

RESULTS: dict[str, str] = {
    "net_profit": "Net profit",
    "revenue": "Revenue",
    "existing_client_revenue": "Existing-client revenue",
}
LAGS = (0, 1, 2)
VERDICTS = ("keep", "re-weight", "drop", "cannot judge")
ALPHA = 0.05  # family-wise error over the lags looked at
MIN_OBSERVATIONS = 30  # manager-months needed to estimate a link
MIN_EACH = 5  # met and missed manager-months needed, each
MIN_CLUSTERS = 4  # managers (departments for a shared KPI) needed
MATERIAL = 0.10  # the smallest useful effect, as a share of the mean result
MIN_SHARED_CLUSTERS = 10  # departments needed to judge a shared department KPI
VOLUME = "deals_won"  # held equal for service KPIs (see the module docstring)
# KPIs counted on the same won deals as the results: their link holds partly by construction.
SAME_DEALS = frozenset({
    "revenue", "revenue_growth", "net_profit", "deals_won", "avg_deal", "new_clients",
    "new_business_revenue", "existing_client_revenue", "cost_price", "extra_costs",
})  # fmt: skip
# Service KPIs are meant to keep clients buying; the rest to raise profit.
SERVICE_KPI_METRICS = frozenset({*SERVICE_METRICS, "unanswered_requests"})
_FLAT = 1e-9  # residual variation of a 0/1 flag below this per observation: none at all

LINK_COLUMNS = [
    "kpi", "label", "result", "intended", "lag", "n", "managers", "clusters", "met", "missed",
    "effect", "low", "high", "mean_result", "relative", "relative_low", "relative_high", "t",
    "p_value", "estimable", "reason",
]  # fmt: skip
VERDICT_COLUMNS = [
    "kpi", "label", "weight", "result", "verdict", "lag", "effect", "low", "high", "relative",
    "relative_low", "relative_high", "n", "sentence",
]  # fmt: skip
SHARED_REASON = (
    "shared by every manager of the department in a month; judged in the company-wide report"
)
_LAG_WORDS = {0: "in the same month", 1: "one month later", 2: "two months later"}


def intended_result(kpi: Kpi) -> str:
    """The business result a KPI is meant to raise (a key of `RESULTS`).

    The scheme's ``drives`` when given; otherwise existing-client revenue for service KPIs
    (delivery, fulfilment, response, unanswered requests) and net profit for every other KPI.
    """
    if kpi.drives is not None:
        return kpi.drives
    return "existing_client_revenue" if kpi.metric in SERVICE_KPI_METRICS else "net_profit"


def links_note(lags: Sequence[int] = LAGS) -> str:
    """The note under a links or verdict table: what the effects and intervals are."""
    return (
        "Effect: how much higher a manager's monthly result is when the KPI was met (the same "
        "month or months before) than when it was missed, comparing each manager with their own "
        "usual level and each month with the company's; "
        f"95% intervals, adjusted for looking at {len(lags)} lags."
    )


def kpi_links(
    history: ScoreHistory,
    scheme: Scheme,
    months: Sequence[pd.Period],
    lags: Sequence[int] = LAGS,
) -> pd.DataFrame:
    """The link between meeting each KPI and each result, at each lag, across manager-months.

    Args:
        history: Scored months; its scorecards' manager metrics must hold the `RESULTS` columns
            (see `score_months`' ``shown``) and it should start ``max(lags)`` months before
            `months` for every lag to have all its observations.
        scheme: The KPI scheme (which KPIs, their labels and levels).
        months: The result months judged, e.g. the 12 months ending with the quarter.
        lags: Months from the KPI's flag to the result; 95% intervals, adjusted for looking at
            ``len(lags)`` lags.

    Returns:
        One row per KPI (scheme order) x result (`RESULTS` order) x lag (``LINK_COLUMNS``):
        ``n`` manager-months used, distinct ``managers``, ``clusters`` (managers, or departments
        for a shared KPI), ``met`` and ``missed`` counts, ``effect`` (money per manager-month)
        with its interval ``low``-``high``, ``mean_result``, ``relative`` (effect / mean result)
        with ``relative_low``-``relative_high`` (NaN unless the mean result is positive), ``t``,
        ``p_value``, ``estimable`` and ``reason`` (why not; empty when estimable).
        ``intended`` marks the KPI's intended result (`intended_result`).

    Raises:
        ValueError: A lag is negative (a result cannot come before the KPI that drives it).
    """
    if any(lag < 0 for lag in lags):
        raise ValueError(f"Lags must be 0 or more months, not {list(lags)}.")
    level = 1 - ALPHA / max(len(lags), 1)
    results = _results(history, months)
    flags = _flags(history)
    volume = VOLUME in results
    rows = []
    for _, kpi, _ in scheme.weighted_kpis():
        mine = flags.loc[flags["kpi"].eq(kpi.key)]
        joined = {lag: _joined(results, mine, lag) for lag in lags}
        for result in RESULTS:
            for lag in lags:
                held = volume and kpi.metric in SERVICE_KPI_METRICS
                sample = _sample(joined[lag], result, kpi.level, held)
                fit = _estimate(sample, kpi.level, level)
                intended = result == intended_result(kpi)
                rows.append({"kpi": kpi.key, "label": kpi.label, "result": result,
                             "intended": intended, "lag": lag, **fit})  # fmt: skip
    return _frame(rows, LINK_COLUMNS).astype(
        {"intended": "bool", "estimable": "bool", "reason": "str"}
    )


def _results(history: ScoreHistory, months: Sequence[pd.Period]) -> pd.DataFrame:
    """Each manager-month's results in the judged months (long: manager_id, period, results)."""
    wanted = {pd.Period(month, "M") for month in months}
    frames = [
        card.manager_metrics.reindex(
            columns=[*RESULTS, *([VOLUME] if VOLUME in card.manager_metrics else [])]
        )
        .rename_axis("manager_id")
        .reset_index()
        .assign(period=month)
        for month, card in zip(history.months, history.cards, strict=True)
        if month in wanted
    ]
    if not frames:
        return pd.DataFrame(columns=["manager_id", *RESULTS, "period"])
    return pd.concat(frames, ignore_index=True)


def _flags(history: ScoreHistory) -> pd.DataFrame:
    """Every known met flag with the manager's department in that month."""
    kpis = history.manager_kpis.loc[
        history.manager_kpis["met"].notna(), ["manager_id", "period", "kpi", "met"]
    ]
    departments = history.managers[["manager_id", "period", "department_id"]]
    return kpis.merge(departments, on=["manager_id", "period"], how="left")


def _joined(results: pd.DataFrame, flags: pd.DataFrame, lag: int) -> pd.DataFrame:
    """Each result month beside the same manager's flag `lag` months earlier (where known)."""
    shifted = flags.assign(period=flags["period"] + lag)
    return results.merge(shifted, on=["manager_id", "period"], how="inner")


def _sample(joined: pd.DataFrame, result: str, level: str, volume: bool) -> pd.DataFrame:
    """Observations: result months with a known result and a known flag (and volume, if held)."""
    joined = joined.loc[joined[result].notna()]
    if volume:
        joined = joined.loc[joined[VOLUME].notna()]
    cluster = joined["department_id"] if level == "department" else joined["manager_id"]
    held = {"volume": joined[VOLUME].astype(float).to_numpy()} if volume else {}
    return pd.DataFrame(
        {
            **held,
            "y": joined[result].astype(float).to_numpy(),
            "x": joined["met"].astype(bool).astype(float).to_numpy(),
            "unit": joined["manager_id"].astype(str).to_numpy(),
            "month": joined["period"].astype(str).to_numpy(),
            "cluster": cluster.fillna(joined["manager_id"]).astype(str).to_numpy(),
        }
    )


def _estimate(sample: pd.DataFrame, kpi_level: str, level: float) -> dict[str, Any]:
    """The fixed-effects estimate of one link, or the reason it cannot be estimated."""
    n = len(sample)
    met = int(sample["x"].sum())
    mean = float(sample["y"].mean()) if n else math.nan
    row: dict[str, Any] = {
        "n": n,
        "managers": int(sample["unit"].nunique()),
        "clusters": int(sample["cluster"].nunique()),
        "met": met,
        "missed": n - met,
        "mean_result": mean,
        "estimable": False,
    }
    reason = _too_little(row)
    if reason:
        return {**row, "reason": reason}
    design = _design(sample)
    if sm.OLS(design[:, 1], np.delete(design, 1, axis=1)).fit().ssr <= _FLAT * n:
        shared = kpi_level == "department"
        return {**row, "reason": SHARED_REASON if shared else _IN_STEP}
    needed = MIN_SHARED_CLUSTERS if kpi_level == "department" else MIN_CLUSTERS
    if row["clusters"] < needed:
        who = "departments share it" if kpi_level == "department" else "managers"
        return {**row, "reason": f"too little data to judge: only {row['clusters']} {who} "
                                 f"({needed} needed)"}  # fmt: skip
    groups = pd.factorize(sample["cluster"])[0]
    model = sm.OLS(sample["y"].to_numpy(), design)
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    # The test of the one coefficient: the fixed effects' own standard errors are never needed
    # (with few clusters their covariance is singular and their square roots warn).
    test = fit.t_test(np.eye(design.shape[1])[1])
    low, high = (float(v) for v in test.conf_int(alpha=1 - level)[0])
    effect, t = float(test.effect[0]), float(np.ravel(test.tvalue)[0])
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(t)):
        return {**row, "reason": "the model could not be estimated on these manager-months"}
    scale = mean if mean > 0 else math.nan  # a share of a loss-making mean says nothing
    return {
        **row,
        "effect": effect,
        "low": low,
        "high": high,
        "relative": effect / scale,
        "relative_low": low / scale,
        "relative_high": high / scale,
        "t": t,
        "p_value": float(np.ravel(test.pvalue)[0]),
        "estimable": True,
        "reason": "",
    }


def _design(sample: pd.DataFrame) -> np.ndarray:
    """Columns: intercept, the met flag, then manager and month indicators (first ones left out,
    as the intercept stands for them)."""
    effects = pd.get_dummies(sample[["unit", "month"]], drop_first=True, dtype=float)
    held = [sample["volume"].to_numpy()] if "volume" in sample else []
    columns = [np.ones(len(sample)), sample["x"].to_numpy(), *held, effects.to_numpy()]
    return np.column_stack(columns)


_IN_STEP = (
    "met or missed in step with who the manager is or which month it is, so its own link "
    "cannot be told apart"
)


def _too_little(row: dict[str, Any]) -> str:
    if row["n"] == 0:
        return "no manager-months with both a result and the KPI's value"
    if row["n"] < MIN_OBSERVATIONS:
        return (
            f"too little data to judge: only {row['n']} manager-months ({MIN_OBSERVATIONS} needed)"
        )
    if min(row["met"], row["missed"]) < MIN_EACH:
        return f"too little data to judge: met in {row['met']} of {row['n']} manager-months"
    return ""


# --- verdicts -----------------------------------------------------------------------------------


def kpi_verdicts(links: pd.DataFrame, scheme: Scheme) -> pd.DataFrame:
    """One verdict per KPI on its intended result: keep, re-weight, drop or cannot judge.

    Args:
        links: The table from `kpi_links`.
        scheme: The KPI scheme (order, weights, intended results).

    Returns:
        One row per KPI in scheme order (``VERDICT_COLUMNS``): its ``weight`` in the whole
        scheme, the intended ``result``, the ``verdict`` (see the module docstring), the ``lag``
        of the evidence (NA when none) with its ``effect``, interval, relative effect and ``n``,
        and a ``sentence`` for management.
    """
    rows = []
    for _, kpi, weight in scheme.weighted_kpis():
        result = intended_result(kpi)
        mine = links.loc[links["kpi"].eq(kpi.key) & links["result"].eq(result)]
        verdict, evidence, sentence = _judge(kpi.label, result, mine)
        if verdict == "keep" and kpi.metric in SAME_DEALS:
            sentence = sentence[:-1] + " (partly by construction: the KPI counts the same deals)."
        picked = {} if evidence is None else evidence
        rows.append(
            {
                "kpi": kpi.key,
                "label": kpi.label,
                "weight": weight,
                "result": result,
                "verdict": verdict,
                "lag": picked.get("lag", pd.NA),
                **{key: picked.get(key, math.nan) for key in VERDICT_COLUMNS[6:12]},
                "n": picked.get("n", _lag0_n(mine)),
                "sentence": sentence,
            }
        )
    return _frame(rows, VERDICT_COLUMNS).astype({"lag": "Int64", "n": "Int64"})


def _lag0_n(rows: pd.DataFrame) -> int:
    return int(rows["n"].iloc[0]) if len(rows) else 0


def _judge(label: str, result: str, rows: pd.DataFrame) -> tuple[str, dict[str, Any] | None, str]:
    """The verdict, the row of its evidence and the sentence saying why."""
    what = RESULTS[result].lower()
    known = [row for row in rows.to_dict("records") if row["estimable"]]
    if not known:
        reason = rows["reason"].iloc[0] if len(rows) else "no links were estimated"
        return "cannot judge", None, f"{label}: cannot judge; {reason}."
    above = [row for row in known if row["low"] > 0]
    below = [row for row in known if row["high"] < 0]
    clear = max([*above, *below], key=lambda row: abs(row["t"]), default=None)
    if clear is not None and clear["t"] > 0:
        sentence = _keep_sentence(label, what, clear, known)
        if below:
            worst = min(below, key=lambda row: row["t"])
            forward = (
                ", as if some business were pulled forward" if worst["lag"] > clear["lag"] else ""
            )
            sentence = f"{sentence[:-1]}; but {_size(worst, 'less')} {_when(worst)}{forward}."
        return "keep", clear, sentence
    if clear is not None:
        note = ""
        if above:
            best = max(above, key=lambda row: row["t"])
            note = f" (a weaker {_size(best, 'more')} {_when(best)} does not make up for it)"
        return (
            "drop",
            clear,
            (
                f"{label}: drop; meeting it goes with {_size(clear, 'less')} {what} "
                f"{_when(clear)} ({_interval(clear)}; {clear['n']} manager-months){note}, the "
                "opposite of what it is meant to do: it rewards the wrong thing."
            ),
        )
    bounds = [row["relative_high"] for row in known]
    if not above and all(is_known(bound) for bound in bounds) and max(bounds) < MATERIAL:
        loosest = max(known, key=lambda row: row["relative_high"])
        most = fmt_signed(loosest["relative_high"], "share")
        return (
            "drop",
            loosest,
            (
                f"{label}: drop; the data rule out a useful link to {what}: at every lag looked "
                f"at, meeting it goes with at most {most} {what}, below the "
                f"{fmt(MATERIAL, 'share')} that would matter."
            ),
        )
    strongest = max(known, key=lambda row: abs(row["t"]))
    return (
        "re-weight",
        strongest,
        (
            f"{label}: re-weight; no clear link yet ({what} {_when(strongest)} "
            f"{_range(strongest)} when it was met; {strongest['n']} manager-months); move weight "
            "to KPIs with a proven link and check again next quarter."
        ),
    )


def _keep_sentence(label: str, what: str, best: dict[str, Any], known: list[dict]) -> str:
    evidence = f"({_interval(best)}; {best['n']} manager-months)"
    if best["lag"] == 0:
        return (
            f"{label}: keep; meeting it goes with {_size(best, 'more')} {what} {_when(best)} "
            f"{evidence}."
        )
    same = [row for row in known if row["lag"] == 0]
    leading = not same or same[0]["low"] <= 0 <= same[0]["high"]
    tail = ", while the same month shows no clear link: a leading indicator" if leading else ""
    return (
        f"{label}: keep; meeting it is followed by {_size(best, 'more')} {what} "
        f"{_when(best)} {evidence}{tail}."
    )


def _when(row: dict[str, Any]) -> str:
    """When the result follows the flag: ``in the same month``, ``one month later``, ..."""
    return _LAG_WORDS.get(int(row["lag"]), f"{int(row['lag'])} months later")


def _size(row: dict[str, Any], direction: str) -> str:
    """``18.5% more`` (relative when the mean result is positive, else money)."""
    if is_known(row["relative"]):
        return f"{fmt(abs(row['relative']), 'share')} {direction}"
    return f"{fmt_compact(abs(row['effect']), '').strip()} {direction}"


def _bound(row: dict[str, Any], side: str) -> str:
    if is_known(row[f"relative_{side}"]):
        return fmt_signed(row[f"relative_{side}"], "share")
    return fmt_signed(row[side], "money", "per manager-month")


def _range(row: dict[str, Any]) -> str:
    """``between 28.5% lower and 42.0% higher`` (an interval spanning zero, in words)."""
    low, high = row["relative_low"], row["relative_high"]
    if is_known(low) and is_known(high):
        words = [fmt(abs(value), "share") for value in (low, high)]
    else:
        low, high = row["low"], row["high"]
        words = [fmt_compact(abs(value), "").strip() for value in (low, high)]
    lower = "lower" if low < 0 else "higher"
    higher = "lower" if high < 0 else "higher"
    return f"between {words[0]} {lower} and {words[1]} {higher}"


def _interval(row: dict[str, Any]) -> str:
    return f"95% CI {_bound(row, 'low')} to {_bound(row, 'high')}"


# --- tables and chart ---------------------------------------------------------------------------


def verdict_table(verdicts: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The verdicts as text for the report, one row per KPI.

    Args:
        verdicts: The table from `kpi_verdicts`.
        currency: Of the money effects.

    Returns:
        Columns KPI, Weight, Drives, Expected sign, Found sign, Verdict, When, Effect per
        manager-month, Relative effect and Manager-months, every cell a string (the verdict's
        sentence is a finding of the report);
        effects carry their 95% intervals, adjusted for looking at 3 lags (`links_note`).
    """
    rows = []
    for row in verdicts.to_dict("records"):
        has = is_known(row["effect"])
        rows.append(
            [
                row["label"],
                fmt(row["weight"], "share"),
                RESULTS[row["result"]],
                "+ (higher when met)",
                _found(row) if has else NO_DATA,
                row["verdict"],
                _when(row) if has else "none",
                _money_cell(row, currency) if has else NO_DATA,
                _relative_cell(row) if has else NO_DATA,
                fmt(row["n"], "count"),
            ]
        )
    columns = [
        "KPI", "Weight", "Drives", "Expected sign", "Found sign", "Verdict", "When",
        "Effect per manager-month", "Relative effect", "Manager-months",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns, dtype="str")


def _found(row: dict[str, Any]) -> str:
    if row["low"] > 0:
        return "+"
    if row["high"] < 0:
        return "\u2212"
    return "none clear"


_EFFECT = ("effect", "low", "high")


def _money_cell(row: dict[str, Any], currency: str) -> str:
    effect, low, high = (fmt_signed(row[key], "money", currency) for key in _EFFECT)
    return f"{effect} ({low} to {high})"


def _relative_cell(row: dict[str, Any]) -> str:
    if not is_known(row["relative"]):
        return NO_DATA
    return (
        f"{fmt_signed(row['relative'], 'share')} ({fmt_signed(row['relative_low'], 'share')} to "
        f"{fmt_signed(row['relative_high'], 'share')})"
    )


def links_table(links: pd.DataFrame, currency: str) -> pd.DataFrame:
    """Every KPI's link to every result as text: one row per KPI x result, a column per lag.

    Args:
        links: The table from `kpi_links`.
        currency: Of the money effects.

    Returns:
        Columns KPI, Result, Judged on (``yes`` on the KPI's intended result), one column per
        lag (``Same month``, ``1 month later``, ...) holding the effect per manager-month with
        its interval and the relative effect with its interval, or ``not estimable``, then
        Manager-months (per lag, in the same order) and Not estimable because. Intervals are
        95%, adjusted for looking at all the lags (`links_note`).
    """
    lags = _lags_of(links)
    heads = {lag: _lag_head(lag) for lag in lags}
    rows = []
    for (_, result), group in links.groupby(["kpi", "result"], sort=False):
        by_lag = {int(row["lag"]): row for row in group.to_dict("records")}
        reasons = dict.fromkeys(r["reason"] for r in by_lag.values() if not r["estimable"])
        rows.append(
            {
                "KPI": group["label"].iloc[0],
                "Result": RESULTS.get(result, result),
                "Judged on": "yes" if bool(group["intended"].iloc[0]) else "",
                **{heads[lag]: _link_cell(by_lag.get(lag), currency) for lag in lags},
                "Manager-months": " / ".join(
                    fmt(by_lag[lag]["n"], "count") if lag in by_lag else NO_DATA for lag in lags
                ),
                "Not estimable because": "; ".join(reasons),
            }
        )
    columns = [
        "KPI", "Result", "Judged on", *heads.values(), "Manager-months", "Not estimable because",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns, dtype="str")


def _lags_of(links: pd.DataFrame) -> list[int]:
    return sorted(int(lag) for lag in links["lag"].unique()) if len(links) else list(LAGS)


def _lag_head(lag: int) -> str:
    if lag == 0:
        return "Same month"
    return f"{lag} month later" if lag == 1 else f"{lag} months later"


def _link_cell(row: dict[str, Any] | None, currency: str) -> str:
    if row is None:
        return NO_DATA
    if not row["estimable"]:
        return "not estimable"
    effect, low, high = (fmt_signed(row[key], "compact", currency) for key in _EFFECT)
    money = f"{effect} ({low} to {high})"
    relative = _relative_cell(row)
    return money if relative == NO_DATA else f"{money}; {relative}"


def links_chart(links: pd.DataFrame, verdicts: pd.DataFrame) -> ReportFigure:
    """Dots and whiskers: the relative effect of meeting each KPI on its intended result, by lag.

    A dot is the effect as a share of the mean result, its whisker the 95% interval adjusted for
    the lags looked at; green when the interval lies above zero, red below, grey when it spans
    zero; the marker tells the lag. A KPI without an estimable lag reads "cannot judge".

    Args:
        links: The table from `kpi_links`.
        verdicts: The table from `kpi_verdicts` (which KPIs, their results and verdicts).
    """
    lags = _lags_of(links)
    names = literal(
        pd.Series(
            [
                f"{label}\n\u2192 {RESULTS[result].lower()}: {verdict}"
                for label, result, verdict in zip(
                    verdicts["label"], verdicts["result"], verdicts["verdict"], strict=True
                )
            ],
            dtype="str",
        )
    )
    height = 0.85 * max(len(verdicts), 2) + 1.8
    figure = new_figure(9, height, _chart_alt(verdicts, len(lags)))
    ax = figure.subplots()
    offsets = np.linspace(-0.25, 0.25, len(lags)) if len(lags) > 1 else np.zeros(1)
    for position, verdict in enumerate(verdicts.to_dict("records")):
        mine = links.loc[links["kpi"].eq(verdict["kpi"]) & links["result"].eq(verdict["result"])]
        shown = mine.loc[mine["estimable"] & mine["relative"].notna()]
        for number, lag in enumerate(lags):
            row = shown.loc[shown["lag"].eq(lag)]
            if not row.empty:
                marker = _MARKERS[number % len(_MARKERS)]
                _whisker(ax, row.iloc[0], position + offsets[number], marker)
        if shown.empty:
            text = "cannot judge" if verdict["verdict"] == "cannot judge" else (
                "not drawn: the mean result is not positive")  # fmt: skip
            ax.annotate(text, (0, position), xytext=(6, 0), textcoords="offset points",
                        va="center")  # fmt: skip
        if position:
            ax.axhline(position - 0.5, color="#e0e0e0", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=1)
    handles = [
        Line2D([], [], marker=_MARKERS[number % len(_MARKERS)], color="black", linestyle="none",
               label=f"result {_when({'lag': lag})}")
        for number, lag in enumerate(lags)
    ] + [
        Line2D([], [], color=PALETTE[key], linewidth=2, label=text)
        for key, text in (("met", "clearly higher when met"), ("missed", "clearly lower when met"),
                          ("revenue", "no clear difference"))
    ]  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.set_yticks(range(len(verdicts)), labels=list(names))
    ax.set_ylim(len(verdicts) - 0.5, -0.5)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set(
        title="Does meeting each KPI go with a better result?",
        xlabel=(
            "Result when the KPI was met vs missed, % of the mean monthly result\n"
            f"(95% intervals, adjusted for looking at {len(lags)} lags)"
        ),
        ylabel="",
    )
    return figure


_MARKERS = ("o", "s", "^", "D", "v")


def _whisker(ax: Axes, link: pd.Series, y: float, marker: str) -> None:
    """One lag's dot and interval, coloured by whether it lies clearly above or below zero."""
    colour = (
        PALETTE["met"] if link["relative_low"] > 0
        else PALETTE["missed"] if link["relative_high"] < 0
        else PALETTE["revenue"]
    )  # fmt: skip
    ax.plot([link["relative_low"], link["relative_high"]], [y, y], color=colour, linewidth=2)
    ax.plot(link["relative"], y, marker=marker, color=colour, markersize=7, linestyle="none")


def _chart_alt(verdicts: pd.DataFrame, lag_count: int) -> str:
    parts = []
    for row in verdicts.to_dict("records"):
        text = f"{row['label']}: {row['verdict']}"
        if is_known(row["relative"]):
            text += f" ({fmt_signed(row['relative'], 'share')} {_when(row)})"
        parts.append(text)
    return (
        "Effect of meeting each KPI on the result it drives, as a share of the mean result, "
        f"with 95% intervals adjusted for {lag_count} lags; " + "; ".join(parts) + "."
    )


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)
