"""Why a department's month missed: its revenue and profit gaps, explained for the report.

The monthly report's "why" sections read these functions: the department's revenue gap to its
plan (or, without a plan, to its baseline) and its net-profit gap to the baseline, split exactly
over the sales funnel, the business mix and the segments that explain most of it; and the profit
gap between two managers with about the same revenue. The splits themselves live in
`kpilib.decomposition`; this module chooses the references and words them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd

from kpilib.decomposition import (
    driver_gap,
    funnel,
    labelled_won,
    mix_by,
    plan_funnel,
    plan_target,
    reference_won,
    top_segments,
    whole_units,
)
from kpilib.display import fmt, fmt_compact, fmt_signed, month_name
from kpilib.metrics import covers
from kpilib.monthly import MonthlyReport, profit_table

# Two managers "sold about as much" within this share of revenue, and their profit differs
# "very" when by more than this share of revenue.
SIMILAR_REVENUE = 0.10
PROFIT_GAP = 0.15
TRAILING_MONTHS = 3  # the reference when the scheme's baseline months lie outside the data
MIX_DIMENSIONS = {
    "business": "New business or existing clients",
    "sale_type": "Sale type",
    "product": "Product",
    "segment": "Client segment",
}


@dataclass(frozen=True)
class Gap:
    """A department's revenue or net-profit gap in a month, split over the funnel.

    Attributes:
        metric: ``revenue`` or ``net_profit``.
        reference_name: ``plan`` or ``baseline``.
        reference_label: How the reference reads in a chart or sentence.
        reference_months: The months whose funnel (rates, mix) the reference reads through.
        plan: The plan's value when the reference is the plan, else None.
        reference: The reference value of the metric.
        actual: The actual value.
        drivers: The `kpilib.decomposition.driver_gap` table.
    """

    metric: Literal["revenue", "net_profit"]
    reference_name: Literal["plan", "baseline"]
    reference_label: str
    reference_months: tuple[pd.Period, ...]
    plan: float | None
    reference: float
    actual: float
    drivers: pd.DataFrame

    @property
    def gap(self) -> float:
        """Actual minus reference."""
        return self.actual - self.reference


def reference_months(report: MonthlyReport) -> tuple[pd.Period, ...]:
    """The scheme's baseline months the data covers, or else the trailing months it covers.

    Empty in the data's first month: there is nothing before it to compare with.
    """
    for months in (
        report.scheme.baseline.months_for(report.period),
        tuple(report.period - k for k in range(TRAILING_MONTHS, 0, -1)),
    ):
        covered = tuple(month for month in months if covers(report.crm, month))
        if covered:
            return covered
    return ()


def _months_label(months: tuple[pd.Period, ...]) -> str:
    if not months:
        return "no earlier month in the data"
    if len(months) == 1:
        return month_name(months[0])
    return f"{months[0]:%Y-%m} to {months[-1]:%Y-%m} (monthly mean)"


def department_gap(
    report: MonthlyReport, metric: Literal["revenue", "net_profit"] = "revenue"
) -> Gap:
    """The department's gap to its plan for the month, or to its baseline without a plan.

    The plan states a total only; it is read through the baseline's funnel scaled to the plan
    (see `kpilib.decomposition.plan_funnel`), so the split says which rates fell short of the
    baseline's and how far volume fell short of what the plan needed.
    """
    months = reference_months(report)
    cost = report.scheme.technical_hour_cost
    actual = funnel(report.crm, [report.period], "department", report.department_id, cost)
    base = funnel(report.crm, months, "department", report.department_id, cost)
    plan = plan_target(report.crm, report.period, "department", report.department_id, metric)
    if not math.isnan(plan) and metric == "revenue":
        reference = plan_funnel(base, plan)
        name, label = "plan", "Plan"
    else:
        plan, reference = math.nan, base
        name, label = "baseline", f"Baseline ({_months_label(months)})"
    drivers = driver_gap(actual, reference, metric)
    value = (lambda f: f.revenue) if metric == "revenue" else (lambda f: f.net_profit)
    return Gap(
        metric=metric,
        reference_name=name,  # type: ignore[arg-type]
        reference_label=label,
        reference_months=months,
        plan=None if math.isnan(plan) else plan,
        reference=value(reference),
        actual=value(actual),
        drivers=drivers,
    )


def main_drivers(gap: Gap, currency: str, most: int = 3) -> str:
    """The largest contributions in the gap's own direction, e.g. "win rate −6.3M RUB, ..."."""
    if math.isnan(gap.gap):
        return ""
    drivers = gap.drivers.assign(
        shown=whole_units(gap.drivers["contribution"], round(gap.actual) - round(gap.reference))
    )
    direction = drivers["shown"] * (1 if gap.gap >= 0 else -1)
    main = drivers.loc[direction > 0].assign(size=direction).nlargest(most, "size")
    return ", ".join(
        f"{row['label'].lower()} {fmt_signed(row['shown'], 'compact', currency)}"
        for row in main.to_dict("records")
    )


def gap_sentence(gap: Gap, currency: str, most: int = 3) -> str:
    """The gap in one sentence: its size and its largest contributions in its own direction."""
    what = "Revenue" if gap.metric == "revenue" else "Net profit"
    against = "the plan" if gap.reference_name == "plan" else "the baseline"
    if gap.reference_name == "baseline" and not gap.reference_months:
        return f"{what} cannot be compared with a baseline: the data holds no earlier month."
    if math.isnan(gap.gap):
        return f"{what} cannot be compared with {against}: the data lacks a figure it needs."
    verb = "missed" if gap.gap < 0 else "beat"
    parts = main_drivers(gap, currency, most)
    because = f"; the largest contributions: {parts}" if parts else ""
    return (
        f"{what} {verb} {against} by {fmt_compact(abs(gap.gap), currency)} "
        f"({fmt_compact(gap.actual, currency)} against {fmt_compact(gap.reference, currency)})"
        f"{because} (see the gap decomposition; the contributions add up to the gap)."
    )


def _printed(reference: pd.Series, actual: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Reference and actual in whole units that add up to their rounded totals, and each row's
    change as their printed difference: every row and every column adds up as shown."""
    shown_reference = whole_units(reference, reference.sum())
    shown_actual = whole_units(actual, actual.sum())
    return shown_reference, shown_actual, shown_actual - shown_reference


def mix_table(report: MonthlyReport, gap: Gap, dimension: str) -> pd.DataFrame:
    """The revenue gap over a dimension's groups: each group's change and its parts, and a total.

    Every figure is in whole units; each row's volume, mix and average-deal parts add up to its
    change, and the changes add up to the total row's, the revenue gap as printed.
    """
    split = mix_by(
        report.crm,
        report.period,
        gap.reference_months,
        report.department_id,
        dimension,  # type: ignore[arg-type]
        plan_revenue=gap.plan,
    )
    groups = split.groups
    reference, actual, change = _printed(groups["reference_revenue"], groups["actual_revenue"])
    parts = groups[["volume", "mix", "rate"]].astype(float).copy()
    for row, total in enumerate(change):
        if pd.notna(total):
            parts.iloc[row] = whole_units(parts.iloc[row], total).to_numpy()
    labels = groups["group"].astype("str").tolist() + ["Total"]
    columns = {
        gap.reference_label: [*reference, reference.sum(min_count=1)],
        "Actual": [*actual, actual.sum(min_count=1)],
        "Change": [*change, change.sum(min_count=1)],
        "of which volume": [*parts["volume"], parts["volume"].sum(min_count=1)],
        "mix": [*parts["mix"], parts["mix"].sum(min_count=1)],
        "average deal": [*parts["rate"], parts["rate"].sum(min_count=1)],
    }
    cur = report.currency
    table = {MIX_DIMENSIONS[dimension]: labels}
    for column, values in columns.items():
        signed = column not in (gap.reference_label, "Actual")
        table[column] = [
            fmt_signed(v, "money", cur) if signed else fmt(v, "money", cur) for v in values
        ]
    return pd.DataFrame(table)


def segment_table(report: MonthlyReport, gap: Gap, most: int = 5) -> pd.DataFrame:
    """The few segments (product x client segment x channel) that explain most of the gap."""
    dimensions = ("product", "segment", "channel")
    actual = labelled_won(report.crm, [report.period], report.department_id, dimensions)
    reference, scale = reference_won(
        report.crm, gap.reference_months, report.department_id, dimensions, gap.plan
    )
    table = top_segments(actual, reference, dimensions, most, scale)
    cur = report.currency
    shown_reference, shown_actual, contribution = _printed(
        table["reference_revenue"], table["actual_revenue"]
    )
    return pd.DataFrame(
        {
            "Segment": table["segment"].astype("str"),
            gap.reference_label: [fmt(v, "money", cur) for v in shown_reference],
            "Actual": [fmt(v, "money", cur) for v in shown_actual],
            "Contribution": [fmt_signed(v, "money", cur) for v in contribution],
            "Share of gap": table["share_of_gap"],
        }
    )


@dataclass(frozen=True)
class PeerGap:
    """Two managers with about the same revenue and very different net profit.

    Attributes:
        low: The manager with the lower net profit (a `profit_table` row).
        high: The manager with the higher net profit.
        drivers: The net-profit gap (low minus high) split over the funnel and extra costs.
    """

    low: dict
    high: dict
    drivers: pd.DataFrame

    @property
    def gap(self) -> float:
        """The low manager's net profit minus the high one's."""
        return float(self.low["Net profit"] - self.high["Net profit"])

    def share(self, factor: str) -> float:
        """A factor's share of the gap."""
        rows = self.drivers.loc[self.drivers["factor"].eq(factor), "contribution"]
        return float(rows.sum()) / self.gap if self.gap else math.nan


def peer_gap(report: MonthlyReport) -> PeerGap | None:
    """The pair of managers with similar revenue and the widest net-profit gap, explained.

    Similar revenue: within ``SIMILAR_REVENUE`` of the larger; a wide gap: more than
    ``PROFIT_GAP`` of the larger revenue. The gap (lower minus higher net profit) splits exactly
    into revenue, cost price (gross margin) and extra costs. None when no pair qualifies.
    """
    table = profit_table(report).dropna(subset=["Revenue", "Net profit"])
    ids = report.card.managers.set_index("name")["manager_id"]
    rows = table.loc[table["Revenue"] > 0].to_dict("records")
    pairs = [
        (abs(a["Net profit"] - b["Net profit"]), a, b)
        for i, a in enumerate(rows)
        for b in rows[i + 1 :]
        if abs(a["Revenue"] - b["Revenue"]) <= SIMILAR_REVENUE * max(a["Revenue"], b["Revenue"])
    ]
    pairs = [p for p in pairs if p[0] > PROFIT_GAP * max(p[1]["Revenue"], p[2]["Revenue"])]
    if not pairs:
        return None
    _, a, b = max(pairs, key=lambda pair: pair[0])
    low, high = (a, b) if a["Net profit"] < b["Net profit"] else (b, a)
    cost = report.scheme.technical_hour_cost
    # Between two managers of about the same revenue the funnel of a few deals each says little;
    # the split is revenue, cost price (gross margin) and extra costs.
    nan = math.nan
    states = [
        replace(
            funnel(report.crm, [report.period], "manager", str(ids[row["Manager"]]), cost),
            leads=nan,
            closed=nan,
            won=nan,
        )
        for row in (low, high)
    ]
    return PeerGap(low, high, driver_gap(states[0], states[1], "net_profit"))
