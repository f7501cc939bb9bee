"""Standard indicators per manager or department for a month, and the metric registry.

Every indicator is a pure function of the validated CRM. An indicator whose table or column is
absent from the source is "no data" (NaN), never zero; a ratio with nothing to divide is NaN too.
A sum over deals is zero when the entity simply had no deals in the period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.typing import DataFrameGroupBy

from kpilib.periods import bounds, data_as_of, rows_in_period
from kpilib.schemas import CRM, first_won_deals

Level = Literal["manager", "department"]
KEYS: dict[str, str] = {"manager": "manager_id", "department": "department_id"}


@dataclass(frozen=True)
class Metric:
    """An indicator of the registry: what it measures and which way is better."""

    id: str
    label: str
    unit: Literal["money", "count", "share", "days", "hours"]
    polarity: Literal["higher", "lower"]
    description: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricSettings:
    """Settings the indicators depend on (from the KPI scheme and its KPIs' parameters).

    Attributes:
        technical_hour_cost: Cost of one technical hour, in the reporting currency.
        min_contract: The smallest first contract that makes a client count as new.
        baseline: The months whose mean revenue is the baseline of `revenue_growth`.
    """

    technical_hour_cost: float = 1500.0
    min_contract: float = 0.0
    baseline: tuple[pd.Period, ...] = field(default_factory=tuple)


_REGISTRY = [
    Metric("revenue", "Revenue", "money", "higher", "Amount of won deals closed in the period."),
    Metric("cost_price", "Cost price", "money", "lower", "Cost price of won deals closed."),
    Metric(
        "extra_hours",
        "Extra hours",
        "hours",
        "lower",
        "Technical staff hours on won deals closed in the period.",
    ),
    Metric(
        "extra_costs",
        "Extra costs",
        "money",
        "lower",
        "Technical staff hours on won deals closed, times the hourly cost.",
    ),
    Metric(
        "net_profit",
        "Net profit",
        "money",
        "higher",
        "Revenue minus cost price minus extra costs, over won deals closed in the period.",
    ),
    Metric("deals_won", "Deals won", "count", "higher", "Won deals closed in the period."),
    Metric("win_rate", "Win rate", "share", "higher", "Won / (won + lost) deals closed."),
    Metric("avg_deal", "Average deal", "money", "higher", "Revenue per won deal."),
    Metric(
        "revenue_growth",
        "Revenue growth",
        "share",
        "higher",
        "Revenue over the baseline's mean monthly revenue, minus 1.",
    ),
    Metric(
        "new_clients",
        "New clients",
        "count",
        "higher",
        "Clients whose first won deal closed in the period with a contract of at least the "
        "minimum.",
        params=("min_contract",),
    ),
    Metric(
        "on_time_delivery",
        "On-time delivery",
        "share",
        "higher",
        "Share of deliveries due in the period delivered on or before the promised date.",
    ),
    Metric(
        "fulfilment_days",
        "Fulfilment days",
        "days",
        "lower",
        "Mean days from the deal's close to delivery, for deliveries made in the period.",
    ),
    Metric(
        "response_hours",
        "Response hours",
        "hours",
        "lower",
        "Mean hours from receipt to first response, for requests received in the period "
        "and answered.",
    ),
    Metric(
        "unanswered_requests",
        "Unanswered requests",
        "count",
        "lower",
        "Requests received in the period without a first response.",
    ),
    Metric("leads", "Leads", "count", "higher", "Leads created in the period."),
    Metric(
        "lead_conversion",
        "Lead conversion",
        "share",
        "higher",
        "Share of the period's leads that became a won deal closed by the period's end.",
    ),
    Metric("cost_per_lead", "Cost per lead", "money", "lower", "Lead cost / leads created."),
    Metric(
        "new_business_revenue",
        "New-business revenue",
        "money",
        "higher",
        "Revenue of won deals of sale type 'new'.",
    ),
    Metric(
        "existing_client_revenue",
        "Existing-client revenue",
        "money",
        "higher",
        "Revenue of won deals with existing clients (every sale type but 'new').",
    ),
    Metric(
        "cross_sell_share",
        "Cross-sell share",
        "share",
        "higher",
        "Share of existing-client revenue from cross-selling.",
    ),
    Metric(
        "upsell_share",
        "Upsell share",
        "share",
        "higher",
        "Share of existing-client revenue from upselling.",
    ),
    Metric(
        "subscription_share",
        "Subscription share",
        "share",
        "higher",
        "Share of existing-client revenue from subscriptions.",
    ),
]
METRICS: dict[str, Metric] = {metric.id: metric for metric in _REGISTRY}
# Indicators whose department value is the sum of its managers' values (so are their targets).
ADDITIVE_METRICS = frozenset({
    "revenue", "cost_price", "extra_hours", "extra_costs", "net_profit", "deals_won",
    "new_clients", "unanswered_requests", "leads", "new_business_revenue",
    "existing_client_revenue",
})  # fmt: skip


def deals_with_department(crm: CRM) -> pd.DataFrame:
    """Deals with their manager's department (and tier) attached (do not modify the frame)."""

    def attach() -> pd.DataFrame:
        owners = crm.managers.set_index("manager_id")
        return crm.deals.assign(
            department_id=crm.deals["manager_id"].map(owners["department_id"]),
            tier=crm.deals["manager_id"].map(owners["tier"]),
        )

    return crm.derived("deals_with_department", attach)


def department_deals(crm: CRM, department_id: str) -> pd.DataFrame:
    """A sales department's deals (as `deals_with_department`, in its order; do not modify).

    The deals are split by department once per source (`CRM.derived`), so an analysis of one
    department reads its own rows rather than every deal of the data.
    """
    deals = deals_with_department(crm)

    def split() -> dict[str, pd.DataFrame]:
        return dict(iter(deals.groupby("department_id", sort=False)))

    departments: dict[str, pd.DataFrame] = crm.derived("deals by department", split)
    return departments.get(department_id, deals.iloc[0:0])


def closed_deals(crm: CRM, period: pd.Period) -> pd.DataFrame:
    """Deals closed (won or lost) in the period, with their department (do not modify the frame)."""
    deals = deals_with_department(crm)
    if "closed_on" not in deals:
        return deals.iloc[0:0]
    closed = crm.derived("closed_deals", lambda: deals.loc[deals["stage"].isin(["won", "lost"])])
    return rows_in_period(crm, "closed_deals", closed, "closed_on", period)


def _first_won_deals(crm: CRM) -> pd.DataFrame:
    """Each client's first won deal, with its department (computed once per source)."""
    return crm.derived("first_won_deals", lambda: first_won_deals(deals_with_department(crm)))


def _with_department(crm: CRM, table: str) -> pd.DataFrame:
    """A table with a ``manager_id`` (requests, leads) with the manager's department attached.

    The table's own ``department_id`` (the service department of a request) is replaced. Computed
    once per source; do not modify the frame.
    """

    def attach() -> pd.DataFrame:
        frame = getattr(crm, table).drop(columns=["department_id"], errors="ignore")
        owners = crm.managers.set_index("manager_id")["department_id"]
        return frame.assign(department_id=frame["manager_id"].map(owners))

    return crm.derived(f"{table} with department", attach)


def active_managers(crm: CRM, period: pd.Period) -> pd.DataFrame:
    """Managers employed at some point of the period, or with deals closed in it."""
    start, end = bounds(period)
    managers = crm.managers
    hired = managers["hired_on"] if "hired_on" in managers else pd.Series(pd.NaT, managers.index)
    left = managers["left_on"] if "left_on" in managers else pd.Series(pd.NaT, managers.index)
    employed = (hired.isna() | (hired < end)) & (left.isna() | (left >= start))
    closed = closed_deals(crm, period)["manager_id"].unique()
    return managers.loc[employed | managers["manager_id"].isin(closed)].reset_index(drop=True)


def sales_departments(crm: CRM) -> pd.DataFrame:
    """The departments whose managers sell: ``kind == 'sales'``, or every manager's department."""
    staffed = crm.managers["department_id"].drop_duplicates()
    if crm.departments is None:
        return pd.DataFrame(
            {
                "department_id": staffed.sort_values().to_numpy(),
                "name": staffed.sort_values().to_numpy(),
            }
        )
    departments = crm.departments
    if "kind" in departments:
        departments = departments.loc[departments["kind"].eq("sales") | departments["kind"].isna()]
    departments = departments.loc[departments["department_id"].isin(staffed)]
    return departments.sort_values("department_id").reset_index(drop=True)


def department_names(departments: pd.DataFrame) -> pd.Series:
    """Each department's name by id, its id where the name is missing or empty."""
    ids = departments["department_id"].astype("str")
    names = departments["name"] if "name" in departments else pd.Series(pd.NA, index=ids.index)
    names = names.where(names.astype("str").str.len().gt(0) & names.notna(), ids)
    return pd.Series(names.astype("str").to_numpy(), index=ids.to_numpy(), name="name")


@dataclass(frozen=True)
class _Context:
    crm: CRM
    deals: pd.DataFrame
    period: pd.Period
    key: str
    index: pd.Index
    settings: MetricSettings
    values: dict[str, pd.Series] = field(default_factory=dict, init=False, repr=False)

    def value(self, metric: str) -> pd.Series:
        """An indicator of the context, computed once: indicators build on one another."""
        if metric not in self.values:
            self.values[metric] = _FUNCTIONS[metric](self)
        return self.values[metric]

    @cached_property
    def closed(self) -> pd.DataFrame:
        """Deals closed (won or lost) in the period."""
        return closed_deals(self.crm, self.period)

    @cached_property
    def won(self) -> pd.DataFrame:
        """Won deals closed in the period (computed once per context)."""
        return self.closed.loc[self.closed["stage"].eq("won")]

    @cached_property
    def won_groups(self) -> DataFrameGroupBy:
        """`won` grouped by entity, once for the indicators summing or counting it."""
        return self.won.groupby(self.key)

    def sum(self, frame: pd.DataFrame | DataFrameGroupBy, column: str) -> pd.Series:
        """Per-entity sum; NaN where a value is missing (an unknown cost is not a zero cost)."""
        groups = frame if isinstance(frame, DataFrameGroupBy) else frame.groupby(self.key)
        if column not in groups.obj:
            return self.nan()
        grouped = groups[column]
        totals = grouped.sum().where(grouped.count() == grouped.size())
        return totals.reindex(self.index, fill_value=0.0).astype(float)

    def count(self, frame: pd.DataFrame | DataFrameGroupBy) -> pd.Series:
        groups = frame if isinstance(frame, DataFrameGroupBy) else frame.groupby(self.key)
        return groups.size().reindex(self.index, fill_value=0).astype(float)

    def nan(self) -> pd.Series:
        return pd.Series(np.nan, index=self.index, dtype=float)

    def rows(self, name: str, frame: pd.DataFrame, column: str) -> pd.DataFrame:
        """The rows of a frame derived once per source whose date `column` is in the period."""
        return rows_in_period(self.crm, name, frame, column, self.period)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return numerator.div(denominator.where(denominator != 0))


def _revenue(ctx: _Context) -> pd.Series:
    return ctx.sum(ctx.won_groups, "amount")


def _cost_price(ctx: _Context) -> pd.Series:
    return ctx.sum(ctx.won_groups, "cost_price")


def _extra_hours(ctx: _Context) -> pd.Series:
    return ctx.sum(ctx.won_groups, "extra_hours")


def _extra_costs(ctx: _Context) -> pd.Series:
    return ctx.value("extra_hours") * ctx.settings.technical_hour_cost


def _net_profit(ctx: _Context) -> pd.Series:
    return ctx.value("revenue") - ctx.value("cost_price") - ctx.value("extra_costs")


def _deals_won(ctx: _Context) -> pd.Series:
    return ctx.count(ctx.won_groups)


def _win_rate(ctx: _Context) -> pd.Series:
    return _ratio(ctx.value("deals_won"), ctx.count(ctx.closed))


def _avg_deal(ctx: _Context) -> pd.Series:
    return _ratio(ctx.value("revenue"), ctx.value("deals_won"))


def _revenue_growth(ctx: _Context) -> pd.Series:
    level: Level = "manager" if ctx.key == "manager_id" else "department"
    reference = baseline(
        ctx.crm, ctx.settings.baseline, level, ctx.index, ("revenue",), ctx.settings
    )
    return _ratio(ctx.value("revenue"), reference["revenue"]) - 1


def _new_clients(ctx: _Context) -> pd.Series:
    if "client_id" not in ctx.deals:
        return ctx.nan()
    first = ctx.rows("first_won_deals", _first_won_deals(ctx.crm), "closed_on")
    return ctx.count(first.loc[first["amount"].ge(ctx.settings.min_contract)])


def deliveries_with_deals(crm: CRM) -> pd.DataFrame | None:
    """Deliveries with their deal's manager, sales department and closing date attached.

    The deliveries' own ``department_id`` (the service department delivering) is kept as
    ``service_department_id``; ``department_id`` is the sales department of the deal. None
    without a deliveries table. Do not modify the frame: it is computed once per source.
    """
    if crm.deliveries is None:
        return None

    def attach() -> pd.DataFrame:
        deals = deals_with_department(crm).set_index("deal_id")
        deliveries = crm.deliveries.rename(columns={"department_id": "service_department_id"})
        closed = deliveries["deal_id"].map(deals["closed_on"]) if "closed_on" in deals else pd.NaT
        return deliveries.assign(
            manager_id=deliveries["deal_id"].map(deals["manager_id"]),
            department_id=deliveries["deal_id"].map(deals["department_id"]),
            closed_on=closed,
        )

    return crm.derived("deliveries_with_deals", attach)


def _on_time_delivery(ctx: _Context) -> pd.Series:
    deliveries = deliveries_with_deals(ctx.crm)
    if deliveries is None:
        return ctx.nan()
    due = ctx.rows("deliveries_with_deals", deliveries, "promised_on")
    delivered = due["delivered_on"] if "delivered_on" in due else pd.Series(pd.NaT, due.index)
    on_time = due.loc[delivered.notna() & (delivered <= due["promised_on"])]
    return _ratio(ctx.count(on_time), ctx.count(due))


def _fulfilment_days(ctx: _Context) -> pd.Series:
    deliveries = deliveries_with_deals(ctx.crm)
    if deliveries is None or "delivered_on" not in deliveries:
        return ctx.nan()
    made = ctx.rows("deliveries_with_deals", deliveries, "delivered_on")
    days = (made["delivered_on"] - made["closed_on"]).dt.days
    return days.groupby(made[ctx.key]).mean().reindex(ctx.index).astype(float)


def _requests(ctx: _Context) -> pd.DataFrame | None:
    requests = ctx.crm.requests
    if requests is None or "manager_id" not in requests:
        return None
    return ctx.rows("requests", _with_department(ctx.crm, "requests"), "received_at")


def _response_hours(ctx: _Context) -> pd.Series:
    received = _requests(ctx)
    if received is None or "first_response_at" not in received:
        return ctx.nan()
    hours = (received["first_response_at"] - received["received_at"]).dt.total_seconds() / 3600
    return hours.groupby(received[ctx.key]).mean().reindex(ctx.index).astype(float)


def _unanswered_requests(ctx: _Context) -> pd.Series:
    received = _requests(ctx)
    if received is None or "first_response_at" not in received:
        return ctx.nan()
    return ctx.count(received.loc[received["first_response_at"].isna()])


def _period_leads(ctx: _Context) -> pd.DataFrame | None:
    leads = ctx.crm.leads
    if leads is None or "manager_id" not in leads:
        return None
    return ctx.rows("leads", _with_department(ctx.crm, "leads"), "created_on")


def _leads(ctx: _Context) -> pd.Series:
    leads = _period_leads(ctx)
    return ctx.nan() if leads is None else ctx.count(leads)


def _lead_conversion(ctx: _Context) -> pd.Series:
    leads = _period_leads(ctx)
    if leads is None or "lead_id" not in ctx.deals:
        return ctx.nan()
    _, end = bounds(ctx.period)
    deals = ctx.deals

    def first_close() -> pd.Series:
        won = deals.loc[deals["stage"].eq("won")]
        return won.groupby("lead_id")["closed_on"].min()

    # A lead converted by the period's end when a won deal of it closed before then.
    first = ctx.crm.derived("first won close of each lead", first_close)
    # `reindex`, not `map`: pandas cannot map through an empty series of dates.
    closed = pd.Series(first.reindex(leads["lead_id"]).to_numpy(), index=leads.index)
    return _ratio(ctx.count(leads.loc[closed < end]), ctx.count(leads))


def _cost_per_lead(ctx: _Context) -> pd.Series:
    leads = _period_leads(ctx)
    if leads is None:
        return ctx.nan()
    return _ratio(ctx.sum(leads, "cost"), ctx.count(leads))


def _sale_type_revenue(ctx: _Context, types: tuple[str, ...]) -> pd.Series:
    if "sale_type" not in ctx.deals:
        return ctx.nan()
    won = ctx.won
    return ctx.sum(won.loc[won["sale_type"].isin(types)], "amount")


_EXISTING = ("repeat", "upsell", "cross_sell", "subscription")


def _share_of_existing(sale_type: str) -> Callable[[_Context], pd.Series]:
    def share(ctx: _Context) -> pd.Series:
        return _ratio(_sale_type_revenue(ctx, (sale_type,)), ctx.value("existing_client_revenue"))

    return share


_FUNCTIONS: dict[str, Callable[[_Context], pd.Series]] = {
    "revenue": _revenue,
    "cost_price": _cost_price,
    "extra_hours": _extra_hours,
    "extra_costs": _extra_costs,
    "net_profit": _net_profit,
    "deals_won": _deals_won,
    "win_rate": _win_rate,
    "avg_deal": _avg_deal,
    "revenue_growth": _revenue_growth,
    "new_clients": _new_clients,
    "on_time_delivery": _on_time_delivery,
    "fulfilment_days": _fulfilment_days,
    "response_hours": _response_hours,
    "unanswered_requests": _unanswered_requests,
    "leads": _leads,
    "lead_conversion": _lead_conversion,
    "cost_per_lead": _cost_per_lead,
    "new_business_revenue": lambda ctx: _sale_type_revenue(ctx, ("new",)),
    "existing_client_revenue": lambda ctx: _sale_type_revenue(ctx, _EXISTING),
    "cross_sell_share": _share_of_existing("cross_sell"),
    "upsell_share": _share_of_existing("upsell"),
    "subscription_share": _share_of_existing("subscription"),
}


def first_month(crm: CRM) -> pd.Period:
    """The first month the data covers: the month of the earliest deal closed (won or lost).

    Deals created before that month are the pipeline the data starts with, not results: a
    month without any close in the data is a month the data does not cover.
    """

    def find() -> pd.Period:
        closed = crm.deals.loc[crm.deals["stage"].isin(["won", "lost"])]
        dates = closed["closed_on"] if "closed_on" in closed and not closed.empty else None
        start = dates.min() if dates is not None else crm.deals["created_on"].min()
        return start.to_period("M")

    return crm.derived("first_month", find)


def covers(crm: CRM, period: pd.Period) -> bool:
    """Whether the data covers the month: from its first close to the last date in it."""
    if crm.deals.empty:
        return False
    last = crm.derived("last_month", lambda: data_as_of(crm).to_period("M"))
    return first_month(crm) <= period <= last


def baseline(
    crm: CRM,
    months: tuple[pd.Period, ...],
    level: Level,
    index: pd.Index,
    metrics: tuple[str, ...],
    settings: MetricSettings,
) -> pd.DataFrame:
    """Each indicator's mean over the baseline months; NaN where no baseline month has data.

    Months outside the data are "no data", never zero, so a baseline reaching back before the
    data begins gives no growth and no relative target rather than an easy one.
    """
    if not months:
        return pd.DataFrame(np.nan, index=index, columns=list(metrics), dtype=float)
    plain = replace(settings, baseline=())
    frames = [indicators(crm, month, level, plain, metrics, index) for month in months]
    return pd.concat(frames).groupby(level=0).mean().reindex(index)


def entities(crm: CRM, period: pd.Period, level: Level) -> pd.Index:
    """The managers active in the period, or the sales departments, as an index of ids."""
    if level == "manager":
        ids = active_managers(crm, period)["manager_id"]
    else:
        ids = sales_departments(crm)["department_id"]
    return pd.Index(ids, name=KEYS[level], dtype="str")


def indicators(
    crm: CRM,
    period: pd.Period,
    level: Level = "manager",
    settings: MetricSettings | None = None,
    metrics: tuple[str, ...] | None = None,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """Every registered indicator (or the named ones) per manager or department for one month.

    Args:
        crm: Validated data source.
        period: The month.
        level: ``manager`` or ``department``.
        settings: Hourly cost, minimum contract and baseline months.
        metrics: Indicator ids to compute; all registered ones when omitted.
        index: The entities to compute for; the period's active managers or the sales
            departments when omitted.

    Returns:
        One row per entity (index named ``manager_id`` or ``department_id``), one float column per
        indicator; NaN is "no data", as is every indicator of a month the data does not cover.
    """
    settings = settings or MetricSettings()
    index = index if index is not None else entities(crm, period, level)
    chosen = metrics or tuple(METRICS)
    if not covers(crm, period):
        return pd.DataFrame(np.nan, index=index, columns=list(chosen), dtype=float)
    ctx = _Context(
        crm=crm,
        deals=deals_with_department(crm),
        period=period,
        key=KEYS[level],
        index=index,
        settings=settings,
    )
    return pd.DataFrame({metric: ctx.value(metric) for metric in chosen}, index=ctx.index)


def revenue_by(
    crm: CRM,
    period: pd.Period,
    dimension: Literal["product", "sale_type", "segment"],
    department_id: str | None = None,
) -> pd.DataFrame:
    """Revenue of won deals closed in the period by product, sale type or client segment.

    Returns:
        Columns ``dimension`` (display name), ``revenue`` and ``share``, largest first; empty when
        the source lacks the dimension.
    """
    closed = closed_deals(crm, period)
    won = closed.loc[closed["stage"].eq("won")]
    if department_id is not None:
        won = won.loc[won["department_id"].eq(department_id)]
    labels = _dimension_labels(crm, won, dimension)
    if labels is None:
        return pd.DataFrame(
            {
                dimension: pd.Series(dtype="str"),
                "revenue": pd.Series(dtype=float),
                "share": pd.Series(dtype=float),
            }
        )
    table = won.groupby(labels.fillna("(none)"))["amount"].sum().rename("revenue")
    table = table.sort_values(ascending=False).rename_axis(dimension).reset_index()
    total = table["revenue"].sum()
    return table.assign(share=table["revenue"] / total if total else np.nan)


def _dimension_labels(crm: CRM, won: pd.DataFrame, dimension: str) -> pd.Series | None:
    if dimension == "sale_type":
        return won.get("sale_type")
    if dimension == "product":
        if "product_id" not in won:
            return None
        if crm.products is None or "name" not in crm.products:
            return won["product_id"]
        return (
            won["product_id"]
            .map(lookup(crm, "products", "product_id", "name"))
            .fillna(won["product_id"])
        )
    if crm.clients is None or "segment" not in crm.clients or "client_id" not in won:
        return None
    return won["client_id"].map(lookup(crm, "clients", "client_id", "segment"))


def lookup(crm: CRM, table: str, key: str, column: str) -> pd.Series:
    """A table's `column` indexed by its `key` column, made once per source (`CRM.derived`).

    Mapping a few rows through it does not rebuild the index of a large table each time. The
    table must hold both columns; do not modify the series.
    """
    frame = getattr(crm, table)

    def make() -> pd.Series:
        series = frame.set_index(key)[column]
        # Builds the index's hash table now, kept with it: every `map` through the series
        # needs it, and forks of this process (a batch's reports) then inherit it built.
        series.index.is_unique  # noqa: B018
        return series

    return crm.derived(f"{table} {column} by {key}", make)


DIMENSION_LOOKUPS = (
    ("products", "product_id", "name"),
    ("clients", "client_id", "segment"),
    ("leads", "lead_id", "channel"),
)
"""The `lookup` tables the deal dimensions read (product, segment, channel)."""


def keep_lookups(crm: CRM) -> None:
    """Make once the `DIMENSION_LOOKUPS` the source holds, for every later analysis of it."""
    for table, key, column in DIMENSION_LOOKUPS:
        frame = getattr(crm, table)
        if frame is not None and key in frame and column in frame:
            lookup(crm, table, key, column)
