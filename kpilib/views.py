"""The fine-tuning sections of the monthly report as ready-to-show tables, charts and notes.

Each function takes the prepared `MonthlyReport` (and the section's analysis where one feeds
several views) and returns something a notebook cell displays as it is: an escaped table
(`kpilib.display.styled`), a chart, or a note when there is nothing to show. The numbers come
from `kpilib.discrepancies`, `kpilib.explain`, `kpilib.services`, `kpilib.tuning` and
`kpilib.forecast`.
"""

from __future__ import annotations

import math

import pandas as pd
from IPython.display import HTML
from matplotlib.figure import Figure
from pandas.io.formats.style import Styler

from kpilib import plots
from kpilib.decomposition import driver_table
from kpilib.discrepancies import discrepancy_register, register_table
from kpilib.display import SALE_TYPE_LABELS, bullets, fmt, fmt_diff, fmt_met, note, styled
from kpilib.explain import Gap, PeerGap, mix_table, segment_table
from kpilib.forecast import DepartmentForecast, department_forecast, forecast_table
from kpilib.metrics import METRICS
from kpilib.monthly import MonthlyReport
from kpilib.periods import latest_complete_month
from kpilib.plots import waterfall_chart
from kpilib.services import service_history, service_links, service_table
from kpilib.tuning import FLAT, Tuning, calibration_table, whatif_table


def register(report: MonthlyReport) -> Styler | HTML:
    """The discrepancy register of the report's month."""
    rows = discrepancy_register(report.history, report.period)
    if rows.empty:
        return note("No KPI of the department or its managers missed its target this month.")
    return styled(
        register_table(rows, report.currency),
        {"Short by %": "share"},
        report.currency,
        right=["Actual", "Target", "Short by"],
    )


def gap_chart(gap: Gap, currency: str) -> Figure | HTML:
    """The gap's waterfall from the reference to the actual value."""
    if math.isnan(gap.gap):
        return note("The gap cannot be split: the data lacks a figure it needs.")
    what = "Revenue" if gap.metric == "revenue" else "Net profit"
    return waterfall_chart(
        gap.drivers,
        gap.reference_label,
        "Actual",
        currency,
        f"{what}: from {gap.reference_label[:1].lower()}{gap.reference_label[1:]} to actual",
        start=gap.reference,
    )


def gap_table(gap: Gap, currency: str) -> Styler:
    """The gap's drivers, in whole units that add up to the total gap as shown."""
    table = driver_table(gap.drivers, "money", currency)
    return styled(table, currency=currency, right=["Reference", "Actual", "Contribution"])


def mix(report: MonthlyReport, gap: Gap, dimension: str) -> Styler:
    """The revenue gap over a dimension's groups, each change split into volume, mix, avg deal."""
    table = mix_table(report, gap, dimension)
    first = table.columns[0]
    if dimension == "sale_type":
        table[first] = table[first].map(lambda v: SALE_TYPE_LABELS.get(v, v))
    numbers = [c for c in table.columns if c != first]
    return styled(table, currency=report.currency, right=numbers)


def segments(report: MonthlyReport, gap: Gap) -> Styler:
    """The segments that explain most of the revenue gap, and everything else."""
    table = segment_table(report, gap)
    return styled(
        table,
        {"Share of gap": "share"},
        report.currency,
        right=[c for c in table.columns if c not in ("Segment", "Share of gap")],
    )


def services(report: MonthlyReport) -> tuple[HTML, Styler]:
    """The department's service KPIs linked to the service departments: sentences and table."""
    links = service_links(report.crm, report.scheme, report.period, report.department_id)
    return bullets(list(links["sentence"])), styled(
        service_table(links), right=["Actual", "Target", "Its value", "Usual", "Share of shortfall"]
    )


def service_months(report: MonthlyReport) -> Styler | HTML:
    """Month by month: the department's service KPIs beside the responsible department's level."""
    history = service_history(
        report.crm, report.scheme, report.history.months, report.department_id
    )
    if history.empty:
        return note("The scheme sets no service levels with absolute targets.")
    units = history["metric"].map(lambda m: METRICS[m].unit)
    table = pd.DataFrame(
        {
            "Month": [f"{m:%Y-%m}" for m in history["month"]],
            "KPI": history["label"],
            "This department": [fmt(v, u) for v, u in zip(history["actual"], units, strict=True)],
            "Result": history["met"].map(fmt_met),
            "Responsible": history["responsible"].fillna("no data"),
            "Its level company-wide": [
                fmt(v, u) for v, u in zip(history["service_value"], units, strict=True)
            ],
            "It slipped": history["service_missed"].map(
                lambda v: "no data" if v is None or v is pd.NA else "yes" if v else "no"
            ),
        }
    )
    return styled(table, right=["This department", "Its level company-wide"])


def peer_chart(pair: PeerGap | None, currency: str) -> Figure | HTML:
    """The net-profit gap between two managers with about the same revenue, as a waterfall."""
    if pair is None:
        return note(
            "No two managers sold about as much (within 10%) with very different net profit."
        )
    return waterfall_chart(
        pair.drivers,
        str(pair.high["Manager"]),
        str(pair.low["Manager"]),
        currency,
        f"Net profit: from {pair.high['Manager']} to {pair.low['Manager']}",
        start=float(pair.high["Net profit"]),
    )


def peer_table(pair: PeerGap | None, currency: str) -> Styler | HTML:
    """The peer gap's drivers (reference: the manager with the higher net profit)."""
    if pair is None:
        return note("No pair of managers to compare this month.")
    table = driver_table(pair.drivers, "money", currency).rename(
        columns={"Reference": str(pair.high["Manager"]), "Actual": str(pair.low["Manager"])}
    )
    return styled(table, currency=currency, right=list(table.columns[1:]))


def calibration(tuning: Tuning, currency: str) -> Styler:
    """Per KPI and tier: how often its target was met, the verdict and a proposed target."""
    table = calibration_table(tuning.calibration, currency)
    # Only proposals have a share that would meet them; the other rows leave it blank.
    table["Would meet"] = ["" if pd.isna(v) else fmt(v, "share") for v in table["Would meet"]]
    return styled(table, {"Met": "share"}, currency, right=["Target", "Proposed", "Would meet"])


def weights(tuning: Tuning) -> Styler:
    """How much each KPI's weight moves the managers' scores."""
    variance = tuning.variance
    table = pd.DataFrame(
        {
            "KPI": variance["label"],
            "Level": variance["level"],
            "Weight": variance["weight"],
            "Mean attainment": variance["mean_attainment"],
            "Spread": variance["spread"],
            "Spread within a month": variance["spread_within_month"],
            "Score spread it adds": variance["score_spread"],
            "Carries variance": variance["flat"].map({True: "no", False: "yes"}),
            "Tells managers apart in a month": [
                "no data" if pd.isna(v) else "yes" if v >= FLAT else "no (shared or flat)"
                for v in variance["spread_within_month"]
            ],
        }
    )
    shares = ["Weight", "Mean attainment", "Spread", "Spread within a month"]
    return styled(table, {**dict.fromkeys(shares, "share"), "Score spread it adds": "share"})


def whatif(tuning: Tuning) -> Styler | HTML:
    """Per manager: mean score and KPIs met under the current and the proposed targets."""
    if tuning.whatif is None:
        return note("Nothing to re-score: no target was proposed for recalibration.")
    table = whatif_table(tuning.whatif)
    table["Change"] = [fmt_diff(v, "share", signed=True) for v in table["Change"]]
    units = {"Score now": "share", "Score proposed": "share", "KPIs met now": "count",
             "KPIs met proposed": "count"}  # fmt: skip
    return styled(table, units, right=["Change"])


def forecast(report: MonthlyReport) -> DepartmentForecast:
    """The department's revenue forecast for the three months after the report's month.

    When the report's month is not complete in the data (an analyst asked for it), the forecast
    starts from the month before, so that month is forecast rather than read as a slump.
    """
    end = min(report.period, latest_complete_month(report.crm))
    return department_forecast(report.crm, report.department_id, end)


def forecast_chart(result: DepartmentForecast, currency: str) -> Figure:
    """The last months' revenue, then the forecast with its interval, seasonal naive and plan."""
    return plots.forecast_chart(result.history, result.table, currency, result.level)


def forecast_months(result: DepartmentForecast, currency: str) -> Styler:
    """Per future month: forecast, interval, seasonal naive, plan and the chance of reaching it."""
    table = forecast_table(result, currency)
    return styled(table, right=list(table.columns[1:]))


def forecast_backtest(result: DepartmentForecast, currency: str) -> Styler | HTML:
    """The last months forecast one month ahead by the model and by seasonal naive."""
    test = result.backtest
    if test.table.empty:
        return note(test.note or "Too little history to test the forecast on past months.")
    rows = test.table
    table = pd.DataFrame(
        {
            "Month": [f"{m:%Y-%m}" for m in rows["month"]],
            "Actual": [fmt(v, "money", currency) for v in rows["actual"]],
            "Model": [fmt(v, "money", currency) for v in rows["model"]],
            "Same month last year": [fmt(v, "money", currency) for v in rows["naive"]],
        }
    )
    return styled(table, right=["Actual", "Model", "Same month last year"])


def forecast_managers(result: DepartmentForecast, currency: str) -> Styler:
    """Next month's forecast per manager, or why there is none."""
    rows = result.managers
    interval = f"{result.level:.0%} interval"
    table = pd.DataFrame(
        {
            "Manager": rows["name"].fillna(rows["manager_id"]),
            "Months of history": rows["months"],
            "Forecast": [fmt(v, "money", currency) for v in rows["forecast"]],
            f"Low ({interval})": [fmt(v, "money", currency) for v in rows["lower"]],
            f"High ({interval})": [fmt(v, "money", currency) for v in rows["upper"]],
            "Note": rows["reason"].fillna(""),
        }
    )
    return styled(table, {"Months of history": "count"}, currency, right=list(table.columns[2:5]))
