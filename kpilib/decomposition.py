"""Exact, additive explanations of a revenue or net-profit gap.

A gap is an actual figure minus a reference: the plan, a baseline (the mean of earlier months) or a
peer manager. Every split here adds up to the gap exactly, so a report needs no "unexplained" line;
where a remainder is shown ("everything else") it is named as such.

- ``driver_gap`` splits the gap over the sales funnel (leads, closed deals per lead, win rate,
  average deal; for net profit also gross margin and extra costs) by the Shapley decomposition.
- ``mix_gap`` and ``mix_by`` split a revenue gap into volume, mix and average-deal (rate) effects
  over the groups of a dimension (product, client segment, sale type, new versus existing business).
- ``top_segments`` names the few disjoint segments (combinations of product, segment, channel) that
  explain most of a revenue gap.
- ``whole_units`` and ``driver_table`` display contributions in whole currency units that still add
  up to the displayed gap.

A missing figure is NaN ("no data") and stays so through every split; it never becomes zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, permutations
from typing import Literal

import numpy as np
import pandas as pd

from kpilib.display import NO_DATA, fmt, fmt_signed
from kpilib.metrics import (
    KEYS,
    Level,
    MetricSettings,
    _dimension_labels,
    closed_deals,
    covers,
    deals_with_department,
    indicators,
    lookup,
)
from kpilib.schemas import CRM

NONE_LABEL = "(none)"
NO_LEAD_LABEL = "(no lead)"
EVERYTHING_ELSE = "everything else"
DIMENSIONS = ("product", "segment", "sale_type", "business", "channel")
BUSINESS_LABELS = {"new": "New business", "existing": "Existing clients"}
_PREFER_GENERAL = 1.1  # a narrower segment must explain 10% more than its broader one to win


# --- funnel state ----------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    if math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


@dataclass(frozen=True)
class Funnel:
    """The sales funnel of a manager or department over a month (or a mean over months).

    Attributes:
        leads: Leads created; NaN when the source has no leads by manager.
        closed: Deals closed, won or lost.
        won: Won deals closed.
        revenue: Amount of the won deals.
        cost_price: Their cost price; NaN when any is unknown.
        extra_hours: Technical staff hours on them; NaN when any is unknown.
        hour_cost: Cost of one technical hour.
    """

    leads: float
    closed: float
    won: float
    revenue: float
    cost_price: float
    extra_hours: float
    hour_cost: float

    @property
    def closed_per_lead(self) -> float:
        """Deals closed per lead created (NaN without leads)."""
        return _ratio(self.closed, self.leads)

    @property
    def win_rate(self) -> float:
        """Won deals over closed deals (NaN without closed deals)."""
        return _ratio(self.won, self.closed)

    @property
    def avg_deal(self) -> float:
        """Revenue per won deal (NaN without won deals)."""
        return _ratio(self.revenue, self.won)

    @property
    def gross_profit(self) -> float:
        """Revenue minus cost price."""
        return self.revenue - self.cost_price

    @property
    def gross_margin(self) -> float:
        """Gross profit over revenue (NaN without revenue)."""
        return _ratio(self.gross_profit, self.revenue)

    @property
    def extra_costs(self) -> float:
        """Extra hours times the hourly cost."""
        return self.extra_hours * self.hour_cost

    @property
    def net_profit(self) -> float:
        """Revenue minus cost price minus extra costs."""
        return self.gross_profit - self.extra_costs


_FUNNEL_METRICS = ("leads", "deals_won", "revenue", "cost_price", "extra_hours")


def funnel(
    crm: CRM, months: Sequence[pd.Period], level: Level, entity_id: str, hour_cost: float
) -> Funnel:
    """A manager's or department's funnel: one month's, or the monthly mean over several.

    Figures are those of `kpilib.metrics.indicators` (a department's deals and leads are its
    managers'). Months the data does not cover are left out of a mean, as in a baseline; within
    the months it covers, an unknown figure (a missing cost price, say) makes the mean unknown too.

    Args:
        crm: Validated data source.
        months: The month, or the months of a baseline (trailing months, the month a year ago).
        level: ``manager`` or ``department``.
        entity_id: The manager's or department's id.
        hour_cost: Cost of one technical hour.

    Returns:
        The funnel; every figure NaN when the data covers none of the months.
    """
    settings = MetricSettings(technical_hour_cost=hour_cost)
    index = pd.Index([entity_id], name=KEYS[level], dtype="str")
    rows = []
    for month in months:
        if not covers(crm, month):
            continue
        values = indicators(crm, month, level, settings, _FUNNEL_METRICS, index).iloc[0]
        closed = closed_deals(crm, month)[KEYS[level]].eq(entity_id)
        rows.append({**values.to_dict(), "closed": float(closed.sum())})
    mean = pd.DataFrame(rows, columns=[*_FUNNEL_METRICS, "closed"], dtype=float).mean(skipna=False)
    return Funnel(
        leads=float(mean["leads"]),
        closed=float(mean["closed"]),
        won=float(mean["deals_won"]),
        revenue=float(mean["revenue"]),
        cost_price=float(mean["cost_price"]),
        extra_hours=float(mean["extra_hours"]),
        hour_cost=float(hour_cost),
    )


def plan_funnel(reference: Funnel, plan_revenue: float) -> Funnel:
    """The funnel a revenue plan implies, read through a reference funnel.

    A plan states revenue only. It is read here as the reference's funnel (a baseline, typically)
    grown or shrunk to the plan's revenue: every volume (leads, closed and won deals, revenue, cost
    price, extra hours) is scaled by plan revenue / reference revenue, so every rate (closed deals
    per lead, win rate, average deal, gross margin, hours per deal) is the reference's. A gap to
    the plan then splits into "fewer leads than the plan needs" and "rates below the reference's".

    Args:
        reference: The funnel whose rates the plan assumes.
        plan_revenue: The plan's revenue.

    Returns:
        The plan's funnel. When the reference has no revenue to scale (zero or unknown), only the
        revenue is known and every other volume is NaN, so the whole revenue gap is one "Revenue"
        contribution and a net-profit gap is unknown.
    """
    if math.isnan(reference.revenue) or reference.revenue <= 0:
        nan = math.nan
        return Funnel(nan, nan, nan, float(plan_revenue), nan, nan, reference.hour_cost)
    scale = plan_revenue / reference.revenue
    return Funnel(
        leads=reference.leads * scale,
        closed=reference.closed * scale,
        won=reference.won * scale,
        revenue=float(plan_revenue),
        cost_price=reference.cost_price * scale,
        extra_hours=reference.extra_hours * scale,
        hour_cost=reference.hour_cost,
    )


def plan_target(
    crm: CRM, period: pd.Period, level: Level, entity_id: str, metric: str = "revenue"
) -> float:
    """The plan's target of a metric for a manager or department and month.

    Returns:
        The target (the sum when the source repeats a plan); NaN when there is none.
    """
    plans = crm.plans
    key = KEYS[level]
    if plans is None or key not in plans:
        return math.nan
    rows = plans.loc[
        plans["period"].eq(f"{period:%Y-%m}")
        & plans["metric"].eq(metric)
        & plans[key].eq(entity_id)
    ]
    return float(rows["target"].sum(min_count=1))


# --- drivers: Shapley split over the funnel ---------------------------------------------------

# The funnel's volumes in order; each factor is a volume over the previous one kept.
_CHAIN = ("leads", "closed", "won", "revenue", "gross_profit")
# (previous volume, volume) -> (factor id, label, unit); None is the chain's start.
_FACTORS: dict[tuple[str | None, str], tuple[str, str, str]] = {
    (None, "leads"): ("leads", "Leads", "count"),
    (None, "closed"): ("closed", "Closed deals", "count"),
    (None, "won"): ("won", "Won deals", "count"),
    (None, "revenue"): ("revenue", "Revenue", "money"),
    (None, "gross_profit"): ("gross_profit", "Gross profit", "money"),
    ("leads", "closed"): ("closed_per_lead", "Closed deals per lead", "ratio"),
    ("leads", "won"): ("won_per_lead", "Won deals per lead", "ratio"),
    ("leads", "revenue"): ("revenue_per_lead", "Revenue per lead", "money"),
    ("leads", "gross_profit"): ("gross_profit_per_lead", "Gross profit per lead", "money"),
    ("closed", "won"): ("win_rate", "Win rate", "share"),
    ("closed", "revenue"): ("revenue_per_closed", "Revenue per closed deal", "money"),
    ("closed", "gross_profit"): (
        "gross_profit_per_closed",
        "Gross profit per closed deal",
        "money",
    ),
    ("won", "revenue"): ("avg_deal", "Average deal", "money"),
    ("won", "gross_profit"): ("gross_profit_per_won", "Gross profit per won deal", "money"),
    ("revenue", "gross_profit"): ("gross_margin", "Cost price (gross margin)", "share"),
}
EXTRA_COSTS = ("extra_costs", "Extra costs", "money")
FACTOR_UNITS = {factor: unit for factor, _, unit in [*_FACTORS.values(), EXTRA_COSTS]}
GAP_COLUMNS = ["factor", "label", "reference", "actual", "contribution"]


def shapley_product(reference: Sequence[float], actual: Sequence[float]) -> list[float]:
    """Shapley split of the change of a product of factors from reference to actual values.

    Each factor's contribution is its marginal effect on the product averaged over every order in
    which the factors can change from their reference to their actual value. The contributions
    add up to ``prod(actual) - prod(reference)`` exactly (up to floating-point rounding), and zeros
    are harmless, unlike a log-based (Divisia) split.

    Args:
        reference: The factors' reference values.
        actual: Their actual values, in the same order (at most 8 factors).

    Returns:
        One contribution per factor.
    """
    count = len(reference)
    if count != len(actual) or count > 8:
        raise ValueError("give as many actual as reference values, at most 8")
    totals = [0.0] * count
    orders = list(permutations(range(count)))
    for order in orders:
        state = list(reference)
        before = math.prod(state)
        for position in order:
            state[position] = actual[position]
            after = math.prod(state)
            totals[position] += after - before
            before = after
    return [total / len(orders) for total in totals]


def _usable(value: float) -> bool:
    return not math.isnan(value) and value != 0


def driver_gap(
    actual: Funnel, reference: Funnel, metric: Literal["revenue", "net_profit"]
) -> pd.DataFrame:
    """Split the revenue or net-profit gap (actual minus reference) over the funnel's drivers.

    Revenue = leads x closed deals per lead x win rate x average deal, and net profit = revenue x
    gross margin - extra costs. The product's change is split by the Shapley decomposition (see
    `shapley_product`); the gross margin's contribution is the cost-price effect. Extra costs
    contribute minus their change (extra hours' change times the hourly cost).

    A factor that is undefined in either state is merged with the one before it, so the chain
    skips the volume that cannot divide, and the contributions still add up exactly:

    - no leads data, or zero leads: the chain starts at closed deals (the volume);
    - no closed deals: closed deals per lead and win rate merge into won deals per lead (or the
      chain starts at won deals when leads are skipped too);
    - no won deals: win rate and average deal merge into revenue per closed deal; revenue in that
      state is just 0, and the merged factor carries the drop;
    - no revenue (net profit only): average deal and gross margin merge into gross profit per won
      deal.

    Args:
        actual: The actual funnel.
        reference: The reference funnel (plan, baseline or peer).
        metric: ``revenue`` or ``net_profit``.

    Returns:
        One row per factor: ``factor`` (id), ``label``, the factor's ``reference`` and ``actual``
        values, and its ``contribution`` to the gap. NaN contributions when either state's metric
        is unknown (unknown cost price or extra hours, for net profit).

    Raises:
        ValueError: An unknown metric, or states with different hourly costs.
    """
    if metric not in ("revenue", "net_profit"):
        raise ValueError(f"metric must be 'revenue' or 'net_profit', not {metric!r}")
    if metric == "net_profit" and actual.hour_cost != reference.hour_cost:
        raise ValueError(
            f"both states must use the same hourly cost "
            f"({actual.hour_cost:g} against {reference.hour_cost:g})"
        )
    chain = _CHAIN[:4] if metric == "revenue" else _CHAIN
    kept = [
        volume
        for volume in chain[:-1]
        if _usable(getattr(actual, volume)) and _usable(getattr(reference, volume))
    ] + [chain[-1]]
    rows = []
    previous = None
    for volume in kept:
        factor, label, _ = _FACTORS[(previous, volume)]
        values = [
            getattr(state, volume) / (getattr(state, previous) if previous else 1.0)
            for state in (reference, actual)
        ]
        rows.append({"factor": factor, "label": label, "reference": values[0], "actual": values[1]})
        previous = volume
    contributions = shapley_product([r["reference"] for r in rows], [r["actual"] for r in rows])
    for row, contribution in zip(rows, contributions, strict=True):
        row["contribution"] = contribution
    if metric == "net_profit":
        factor, label, _ = EXTRA_COSTS
        change = (actual.extra_hours - reference.extra_hours) * actual.hour_cost
        rows.append({
            "factor": factor, "label": label, "reference": reference.extra_costs,
            "actual": actual.extra_costs, "contribution": -change,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=GAP_COLUMNS)


def _gap_totals(gap: pd.DataFrame) -> tuple[float, float]:
    """The metric's reference and actual values, rebuilt from a `driver_gap` table."""
    chain = gap.loc[gap["factor"].ne(EXTRA_COSTS[0])]
    extra = gap.loc[gap["factor"].eq(EXTRA_COSTS[0])]
    totals = []
    for column in ("reference", "actual"):
        value = math.prod(chain[column].astype(float))
        totals.append(value - float(extra[column].sum()) if not extra.empty else value)
    return totals[0], totals[1]


# --- display -----------------------------------------------------------------------------------


def whole_units(contributions: pd.Series, total: float) -> pd.Series:
    """Contributions rounded to whole units that add up exactly to ``round(total)``.

    The largest-remainder method: every contribution is rounded down, then the units still
    missing go one each to the largest remainders (or, when there are too many, are taken from
    the smallest). Without a known total or with an unknown contribution the sum cannot be kept;
    the contributions are then rounded one by one (NaN stays NaN).

    Args:
        contributions: The exact contributions.
        total: The gap they add up to.

    Returns:
        Whole numbers (as floats) with the contributions' index.
    """
    values = contributions.to_numpy(dtype=float)
    if math.isnan(total) or np.isnan(values).any() or values.size == 0:
        return contributions.astype(float).round()
    floors = np.floor(values)
    missing = int(round(total) - floors.sum())
    remainders = values - floors
    extra = np.full(values.size, missing // values.size, dtype=float)
    left = missing - int(extra[0]) * values.size  # 0 <= left < size
    order = np.argsort(-remainders, kind="stable")
    extra[order[:left]] += 1
    return pd.Series(floors + extra, index=contributions.index, name=contributions.name)


def _factor_value(value: float, unit: str, currency: str) -> str:
    if unit == "ratio":
        return NO_DATA if math.isnan(value) else f"{value:,.2f}"
    return fmt(value, unit, currency)


def driver_table(gap: pd.DataFrame, unit: str, currency: str) -> pd.DataFrame:
    """A `driver_gap` table for people: factor values formatted, contributions in whole units.

    The contributions are rounded by `whole_units` so that they add up to the "Total gap" row,
    which is the rounded actual minus the rounded reference value: the table adds up as shown.

    Args:
        gap: The output of `driver_gap`.
        unit: The unit of the contributions and the gap (``money`` for revenue and net profit).
        currency: The reporting currency.

    Returns:
        Text columns ``Factor``, ``Reference``, ``Actual`` and ``Contribution``; the last row is
        "Total gap" with the metric's reference and actual values.
    """
    reference, actual = _gap_totals(gap)
    known = not (math.isnan(reference) or math.isnan(actual))
    total_gap = float(round(actual) - round(reference)) if known else math.nan
    rounded = whole_units(gap["contribution"], total_gap)
    units = [FACTOR_UNITS[factor] for factor in gap["factor"]]
    values = {
        column.capitalize(): [
            _factor_value(v, u, currency) for v, u in zip(gap[column], units, strict=True)
        ]
        for column in ("reference", "actual")
    }
    table = pd.DataFrame({
        "Factor": gap["label"].astype("str").to_list(),
        **values,
        "Contribution": [fmt_signed(v, unit, currency) for v in rounded],
    })  # fmt: skip
    total = {
        "Factor": "Total gap",
        "Reference": fmt(reference, unit, currency),
        "Actual": fmt(actual, unit, currency),
        "Contribution": fmt_signed(total_gap, unit, currency),
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


# --- mix: volume, mix and rate effects over a dimension's groups ------------------------------


@dataclass(frozen=True)
class MixGap:
    """A revenue gap split over the groups of a dimension.

    Attributes:
        groups: One row per group: ``group``, ``reference_deals``, ``actual_deals``,
            ``reference_avg_deal``, ``actual_avg_deal``, ``reference_revenue``,
            ``actual_revenue``, ``change`` and its parts ``volume``, ``mix`` and ``rate`` (which
            add up to ``change``); largest change first.
        effects: Rows ``volume``, ``mix`` and ``rate`` (column ``effect``) with ``label`` and
            ``contribution``; they add up to the revenue gap.
    """

    groups: pd.DataFrame
    effects: pd.DataFrame

    @property
    def reference_revenue(self) -> float:
        """The reference's revenue."""
        return float(self.groups["reference_revenue"].sum(min_count=1))

    @property
    def actual_revenue(self) -> float:
        """The actual revenue."""
        return float(self.groups["actual_revenue"].sum(min_count=1))


def _by_group(won: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    if not labels.index.equals(won.index):
        raise ValueError("labels must have the won deals' index")
    groups = labels.astype("object").where(labels.notna(), NONE_LABEL).astype("str")
    amounts = won["amount"].astype(float)
    return pd.DataFrame({
        "deals": amounts.groupby(groups).size().astype(float),
        "revenue": amounts.groupby(groups).sum(),
    })  # fmt: skip


def _shares(n0: np.ndarray, n1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each group's share of the deals; a state without deals takes the other's shares."""
    total0, total1 = n0.sum(), n1.sum()
    if total0 > 0 and total1 > 0:
        return n0 / total0, n1 / total1
    if total0 > 0:
        return n0 / total0, n0 / total0
    if total1 > 0:
        return n1 / total1, n1 / total1
    return np.zeros_like(n1), np.zeros_like(n1)


def mix_gap(
    actual_won: pd.DataFrame,
    reference_won: pd.DataFrame,
    labels_actual: pd.Series,
    labels_reference: pd.Series,
    reference_scale: float = 1.0,
) -> MixGap:
    """Split a revenue gap into volume, mix and rate effects over a dimension's groups.

    With N the number of won deals, s_g a group's share of them and a_g its average deal
    (0 = reference, 1 = actual):

    - volume effect = (N1 - N0) x the reference's average deal;
    - mix effect = N1 x sum over groups of (s1_g - s0_g) x a0_g (selling more in dearer groups);
    - rate effect = N1 x sum over groups of s1_g x (a1_g - a0_g) (dearer deals within groups).

    A group sold in one state only takes the other state's average deal, so its whole change is
    volume and mix and everything stays exact. When one state has no deals at all, its shares are
    taken to be the other's: the gap is then all volume. Each effect is also split by group
    (volume: (N1 - N0) x s0_g x a0_g), so each group's parts add up to its change.

    Args:
        actual_won: Actual won deals (column ``amount``).
        reference_won: Reference won deals (column ``amount``).
        labels_actual: Each actual deal's group, with the frame's index; missing is "(none)".
        labels_reference: Each reference deal's group, likewise.
        reference_scale: Factor on the reference's deal counts (and so its revenue): 1 / months
            for a monthly mean, plan / reference revenue to read a plan through the reference.
            NaN makes every reference figure unknown.

    Returns:
        The groups and the effects.
    """
    if reference_scale < 0:
        raise ValueError("reference_scale must not be negative")
    table = (
        pd.concat(
            {
                "actual": _by_group(actual_won, labels_actual),
                "reference": _by_group(reference_won, labels_reference),
            },
            axis=1,
        )
        .fillna(0.0)
        .sort_index()
    )
    n1, r1 = table[("actual", "deals")].to_numpy(), table[("actual", "revenue")].to_numpy()
    n0 = table[("reference", "deals")].to_numpy() * reference_scale
    r0 = table[("reference", "revenue")].to_numpy() * reference_scale
    with np.errstate(divide="ignore", invalid="ignore"):
        a0 = np.where(n0 > 0, r0 / n0, np.nan)
        a1 = np.where(n1 > 0, r1 / n1, np.nan)
    # A group absent from one state takes the other's average deal (0 when in neither: weight 0).
    a0_used = np.nan_to_num(np.where(n0 > 0, a0, a1))
    a1_used = np.nan_to_num(np.where(n1 > 0, a1, a0_used))
    s0, s1 = _shares(n0, n1)
    total0, total1 = n0.sum(), n1.sum()
    volume = (total1 - total0) * s0 * a0_used
    mix = total1 * (s1 - s0) * a0_used
    rate = total1 * s1 * (a1_used - a0_used)
    if math.isnan(reference_scale):
        volume = mix = rate = np.full_like(n1, np.nan)
    groups = pd.DataFrame({
        "group": table.index.astype("str"),
        "reference_deals": n0, "actual_deals": n1,
        "reference_avg_deal": a0, "actual_avg_deal": a1,
        "reference_revenue": r0, "actual_revenue": r1, "change": r1 - r0,
        "volume": volume, "mix": mix, "rate": rate,
    })  # fmt: skip
    order = np.argsort(-np.abs(groups["change"].to_numpy()), kind="stable")
    effects = pd.DataFrame({
        "effect": ["volume", "mix", "rate"],
        "label": [
            "Volume (number of won deals)",
            "Mix (shift between groups)",
            "Rate (average deal within groups)",
        ],
        "contribution": [volume.sum(), mix.sum(), rate.sum()],
    })  # fmt: skip
    return MixGap(groups=groups.iloc[order].reset_index(drop=True), effects=effects)


def dimension_labels(crm: CRM, won: pd.DataFrame, dimension: str) -> pd.Series | None:
    """Each deal's group in a dimension; None when the source lacks the dimension.

    Dimensions: ``product`` (product name), ``segment`` (the client's segment), ``sale_type``,
    ``business`` ("New business" for sale type ``new``, "Existing clients" for the others) and
    ``channel`` (the channel of the deal's lead, "(no lead)" for a deal without one). A deal whose
    group is unknown gets NaN, which the splits show as "(none)".
    """
    if dimension in ("product", "segment", "sale_type"):
        return _dimension_labels(crm, won, dimension)
    if dimension == "business":
        if "sale_type" not in won:
            return None
        existing = BUSINESS_LABELS["existing"]
        labels = won["sale_type"].map(lambda t: BUSINESS_LABELS["new"] if t == "new" else existing)
        return labels.where(won["sale_type"].notna())
    if dimension == "channel":
        leads = crm.leads
        if leads is None or "channel" not in leads or "lead_id" not in won:
            return None
        channels = won["lead_id"].map(lookup(crm, "leads", "lead_id", "channel"))
        return channels.astype("object").where(won["lead_id"].notna(), NO_LEAD_LABEL)
    raise ValueError(f"unknown dimension {dimension!r}; known: {', '.join(DIMENSIONS)}")


def labelled_won(
    crm: CRM,
    months: Sequence[pd.Period],
    department_id: str | None = None,
    dimensions: Sequence[str] = (),
) -> pd.DataFrame:
    """Won deals closed in the months, with one label column per dimension the source has.

    Args:
        crm: Validated data source.
        months: The months.
        department_id: Only this department's deals (through their managers); all when None.
        dimensions: Dimensions of `dimension_labels`; each becomes a column named after it
            (missing labels "(none)"); a dimension the source lacks is left out.

    Returns:
        The won deals with ``department_id`` and the label columns.
    """
    parts = []
    for month in dict.fromkeys(months):
        part = closed_deals(crm, month)
        keep = part["stage"].eq("won")
        if department_id is not None:
            keep &= part["department_id"].eq(department_id)
        parts.append(part.loc[keep])
    if not parts:
        won = deals_with_department(crm).iloc[0:0]
    elif len(parts) == 1:
        won = parts[0]
    else:  # in the order of the deals, as one selection from them would give
        won = pd.concat(parts).sort_index(kind="stable")
    labels = {}
    for dimension in dimensions:
        found = dimension_labels(crm, won, dimension)
        if found is not None:
            labels[dimension] = found.astype("object").where(found.notna(), NONE_LABEL)
    return won.assign(**labels)


def _covered(crm: CRM, months: Sequence[pd.Period]) -> list[pd.Period]:
    return [month for month in months if covers(crm, month)]


def reference_won(
    crm: CRM,
    months: Sequence[pd.Period],
    department_id: str | None,
    dimensions: Sequence[str],
    plan_revenue: float | None = None,
) -> tuple[pd.DataFrame, float]:
    """The reference's won deals (in the months the data covers) and the scale that makes them
    the reference: the mean month, or with a plan, the plan's revenue read through their mix.

    Returns:
        The labelled won deals (as `labelled_won`) and the factor on their revenue; NaN when the
        data covers none of the months or, with a plan, they hold no revenue to scale.
    """
    covered = _covered(crm, months)
    won = labelled_won(crm, covered, department_id, dimensions)
    total = float(won["amount"].sum())
    if plan_revenue is not None:
        return won, plan_revenue / total if total > 0 else math.nan
    return won, 1 / len(covered) if covered else math.nan


def mix_by(
    crm: CRM,
    period: pd.Period,
    reference_months: Sequence[pd.Period],
    department_id: str | None,
    dimension: Literal["product", "segment", "sale_type", "business"],
    plan_revenue: float | None = None,
) -> MixGap:
    """A department's revenue gap in a month split by `mix_gap` over a dimension's groups.

    The reference is the mean month of the reference months the data covers; with a plan, it is
    those months' deals scaled to the plan's revenue (the plan read through the reference's mix
    and average deals, as in `plan_funnel`). Without the dimension in the source, every deal is in
    the group "(none)" and the gap is volume and rate only.

    Args:
        crm: Validated data source.
        period: The month.
        reference_months: The baseline months (for a plan, the months whose mix it assumes).
        department_id: The department; the whole company when None.
        dimension: ``product``, ``segment``, ``sale_type`` or ``business``.
        plan_revenue: The plan's revenue, when the reference is the plan.

    Returns:
        The split; every reference figure NaN when the reference months have no data (or, with a
        plan, no revenue to read it through).
    """
    actual = labelled_won(crm, [period], department_id, (dimension,))
    reference, scale = reference_won(crm, reference_months, department_id, (dimension,),
                                     plan_revenue)  # fmt: skip

    def labels(won: pd.DataFrame) -> pd.Series:
        return won[dimension] if dimension in won else pd.Series(np.nan, index=won.index)

    return mix_gap(actual, reference, labels(actual), labels(reference), scale)


# --- segments that explain most of the gap ----------------------------------------------------

SEGMENT_COLUMNS = ["segment", "reference_revenue", "actual_revenue", "contribution", "share_of_gap"]


@dataclass(frozen=True)
class _Segment:
    conditions: tuple[tuple[str, str], ...]
    reference: float
    actual: float

    @property
    def contribution(self) -> float:
        return self.actual - self.reference

    @property
    def label(self) -> str:
        return ", ".join(f"{dimension} = {value}" for dimension, value in self.conditions)

    def disjoint(self, other: _Segment) -> bool:
        mine = dict(self.conditions)
        return any(mine.get(d, v) != v for d, v in other.conditions)

    def generalisations(self) -> list[tuple[tuple[str, str], ...]]:
        size = len(self.conditions)
        return [c for k in range(1, size) for c in combinations(self.conditions, k)]


def _segments(
    actual: pd.DataFrame, reference: pd.DataFrame, dimensions: list[str], scale: float
) -> list[_Segment]:
    found = []
    for size in range(1, min(3, len(dimensions)) + 1):
        for combo in combinations(dimensions, size):
            sums = pd.concat(
                {
                    "actual": actual.groupby(list(combo))["amount"].sum(),
                    "reference": reference.groupby(list(combo))["amount"].sum(),
                },
                axis=1,
            ).fillna(0.0)
            for key, row in sums.iterrows():
                values = key if isinstance(key, tuple) else (key,)
                conditions = tuple(zip(combo, (str(v) for v in values), strict=True))
                found.append(_Segment(conditions, row["reference"] * scale, row["actual"]))
    return found


def _pick(segments: list[_Segment], direction: float, most: int, tiny: float) -> list[_Segment]:
    """Greedy choice of disjoint segments, broader ones preferred unless clearly outdone."""

    def score(segment: _Segment) -> float:
        return direction * segment.contribution

    picked: list[_Segment] = []
    while len(picked) < most:
        open_ = {
            s.conditions: s
            for s in segments
            if score(s) > tiny and all(s.disjoint(p) for p in picked)
        }
        eligible = [
            s
            for s in open_.values()
            if not any(
                _PREFER_GENERAL * score(open_[g]) > score(s)
                for g in s.generalisations()
                if g in open_
            )
        ]
        if not eligible:
            break
        picked.append(min(eligible, key=lambda s: (-score(s), len(s.conditions), s.label)))
    return picked


def top_segments(
    actual_won: pd.DataFrame,
    reference_won: pd.DataFrame,
    dimensions: Sequence[str] = ("product", "segment", "channel"),
    most: int = 5,
    reference_scale: float = 1.0,
) -> pd.DataFrame:
    """The few disjoint segments that explain most of a revenue gap, and everything else.

    Candidate segments are all value combinations of one, two or three of the dimensions (for
    example "product = Support contract, segment = SMB"). Up to `most` mutually disjoint segments
    (two are disjoint when they differ in the value of a dimension they share) are picked greedily,
    largest contribution in the gap's direction first; a narrower segment is passed over in favour
    of a broader one containing it unless it explains at least 1.1x as much. The last row,
    "everything else", is the gap minus the picked segments' contributions, so the rows add up to
    the gap exactly.

    Args:
        actual_won: Actual won deals with ``amount`` and one label column per dimension (as from
            `labelled_won`); dimensions missing from either frame are left out.
        reference_won: Reference won deals, likewise.
        dimensions: The dimensions to combine.
        most: The most segments to name.
        reference_scale: Factor on the reference's revenue (see `mix_gap`).

    Returns:
        Columns ``segment``, ``reference_revenue``, ``actual_revenue``, ``contribution`` and
        ``share_of_gap`` (NaN when the gap is zero).
    """
    if reference_scale < 0:
        raise ValueError("reference_scale must not be negative")
    used = [d for d in dimensions if d in actual_won and d in reference_won]

    def prepared(won: pd.DataFrame) -> pd.DataFrame:
        columns = {
            d: won[d].astype("object").where(won[d].notna(), NONE_LABEL).astype("str") for d in used
        }
        return won[["amount"]].astype(float).assign(**columns)

    actual, reference = prepared(actual_won), prepared(reference_won)
    actual_total = float(actual["amount"].sum())
    reference_total = float(reference["amount"].sum()) * reference_scale
    gap = actual_total - reference_total
    picked: list[_Segment] = []
    if not math.isnan(gap):
        tiny = 1e-9 * max(actual_total, reference_total, 1.0)
        segments = _segments(actual, reference, used, reference_scale)
        picked = _pick(segments, 1.0 if gap >= 0 else -1.0, most, tiny)
    rows = [[s.label, s.reference, s.actual, s.contribution] for s in picked]
    rest = [
        EVERYTHING_ELSE,
        reference_total - sum(s.reference for s in picked),
        actual_total - sum(s.actual for s in picked),
        gap - sum(s.contribution for s in picked),
    ]
    table = pd.DataFrame([*rows, rest], columns=SEGMENT_COLUMNS[:-1])
    return table.assign(share_of_gap=table["contribution"] / gap if gap else math.nan)
