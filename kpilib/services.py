"""Service levels: how the service departments' work feeds the sales departments' service KPIs.

A sales KPI scheme sets levels for other departments: deliveries on time, orders fulfilled within
days, requests answered within hours. Each delivery and each request names the service department
responsible for it (``deliveries.department_id``, ``requests.department_id``); this module links a
sales department's miss of such a KPI to the service department that handled most of the shortfall
and says whether that department slipped across the whole company (a systemic slip) or met its
level (the shortfall is the sales department's own).

Values follow the period rules of `kpilib.metrics`: a delivery counts for on-time delivery in the
month (or week) it was promised, for fulfilment days in the month it was delivered (days from the
deal's close), and a request for response hours in the month it was received; a month the data
does not cover has no data. A service department's company-wide value pools the deliveries and
requests of every sales department's deals and managers. Items without a responsible department
form the group ``(not assigned)``; they are never dropped. NaN is "no data".

A week counts as a slip week when it missed the level by more than chance explains at the week's
volume: a one-sided test at the 5% level (exact binomial for a share, a normal approximation for a
mean). Weekly noise around a level is not a slip: at 30 deliveries a week, two late ones already
put a department that is on time 97% of the time below 95%.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kpilib.display import NO_DATA, fmt, fmt_met, is_known, month_name
from kpilib.errors import ParamsError
from kpilib.metrics import (
    METRICS,
    deliveries_with_deals,
    first_month,
    sales_departments,
)
from kpilib.params import Scheme
from kpilib.periods import data_as_of, rows_in_period
from kpilib.schemas import CRM
from kpilib.scoring import is_met

NOT_ASSIGNED = "(not assigned)"
USUAL_MONTHS = 6  # a service department's usual value: the median of this many months before
SLIP_ALPHA = 0.05  # a week slipped when a department at the level would do as badly this rarely
FOLLOW_MONTHS = 3  # a slip run overlapping a month is followed this many months after it
_Z_CRITICAL = 1.6448536269514722  # the one-sided 5% point of the standard normal distribution


@dataclass(frozen=True)
class ServiceMetric:
    """A service indicator: where its items live and how sentences speak of it.

    Attributes:
        metric: The indicator's id in `kpilib.metrics.METRICS`.
        table: The CRM table of its items (``deliveries`` or ``requests``).
        dated_by: The column whose month or week an item counts in.
        shortfall: What falls short (``late deliveries``).
        measure: What the value is (``on-time share``).
    """

    metric: str
    table: str
    dated_by: str
    shortfall: str
    measure: str


SERVICE_METRICS: dict[str, ServiceMetric] = {
    spec.metric: spec
    for spec in (
        ServiceMetric(
            "on_time_delivery", "deliveries", "promised_on", "late deliveries", "on-time share"
        ),
        ServiceMetric(
            "fulfilment_days",
            "deliveries",
            "delivered_on",
            "fulfilment days above the target",
            "mean fulfilment time",
        ),
        ServiceMetric(
            "response_hours",
            "requests",
            "received_at",
            "response hours above the target",
            "mean response time",
        ),
    )
}

LEVEL_COLUMNS = ["kpi", "label", "metric", "target", "polarity", "reason"]
COMPLIANCE_COLUMNS = [
    "service_department_id", "service_department", "month", "kpi", "label", "metric", "actual",
    "target", "polarity", "met", "count",
]  # fmt: skip
WEEKLY_COLUMNS = ["week", "week_start", "actual", "target", "met", "count", "slipped"]
LINK_COLUMNS = [
    "kpi", "label", "metric", "actual", "target", "polarity", "met", "count", "responsible_id",
    "responsible", "shortfall_share", "service_value", "service_usual", "service_missed",
    "slip_weeks", "coincides", "sentence",
]  # fmt: skip
HISTORY_COLUMNS = [
    "month", "kpi", "label", "metric", "actual", "target", "met", "responsible_id", "responsible",
    "shortfall_share", "service_value", "service_missed",
]  # fmt: skip
TABLE_COLUMNS = [
    "KPI", "Actual", "Target", "Result", "Responsible", "Its value", "Usual",
    "Share of shortfall", "Slip weeks",
]  # fmt: skip


def service_levels(scheme: Scheme) -> pd.DataFrame:
    """The levels the scheme sets for service departments: its KPIs on service metrics.

    Args:
        scheme: The KPI scheme.

    Returns:
        One row per KPI on a service metric: ``kpi``, ``label``, ``metric``, ``target``,
        ``polarity`` and ``reason``. Only an absolute target is a level a service department can
        be held to: any other KPI is listed with a NaN ``target`` and its ``reason``, which is
        empty for usable levels.
    """
    rows = []
    for _, kpi, _ in scheme.weighted_kpis():
        if kpi.metric not in SERVICE_METRICS:
            continue
        usable = kpi.target.type == "absolute"
        reason = f"its target is {kpi.target.type} to a baseline, not a fixed service level"
        rows.append(
            {
                "kpi": kpi.key,
                "label": kpi.label,
                "metric": kpi.metric,
                "target": float(kpi.target.value) if usable else math.nan,
                "polarity": kpi.direction,
                "reason": "" if usable else reason,
            }
        )
    return pd.DataFrame(rows, columns=LEVEL_COLUMNS)


def service_compliance(crm: CRM, scheme: Scheme, months: Sequence[pd.Period]) -> pd.DataFrame:
    """Each service department's company-wide value of every service level, month by month.

    Args:
        crm: Validated data source.
        scheme: The KPI scheme setting the levels.
        months: The months.

    Returns:
        One row per service department x month x service KPI with an absolute target:
        ``service_department_id`` (``(not assigned)`` for items without one), its name,
        ``month``, ``actual`` over all sales departments' deliveries or requests, ``target``,
        ``met`` (nullable boolean) and ``count``, the items measured (deliveries due, deliveries
        made, requests answered). A department is listed for a metric when it is responsible for
        any of its items in the data.
    """
    source = _source(crm)
    periods = [pd.Period(month, "M") for month in months]
    frames = [_monthly(source, level, periods) for level in _usable(scheme).to_dict("records")]
    if not frames:
        return _frame([], COMPLIANCE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def weekly_compliance(
    crm: CRM, scheme: Scheme, service_department_id: str, metric: str, months: Sequence[pd.Period]
) -> pd.DataFrame:
    """A service department's company-wide value of one service level, ISO week by ISO week.

    Weeks run Monday to Sunday; every week overlapping the months is shown whole (a week
    straddling two months counts all its days). Only items dated within the data count (a
    delivery promised after the data's last day is not yet due); a week without items has no
    data.

    Args:
        crm: Validated data source.
        scheme: The KPI scheme setting the level.
        service_department_id: The service department, or ``(not assigned)``.
        metric: A key of `SERVICE_METRICS`.
        months: The months whose weeks to show.

    Returns:
        One row per week, oldest first: ``week`` (``2026-W23``), ``week_start`` (its Monday),
        ``actual``, ``target``, ``met``, ``count`` and ``slipped`` (missed by more than chance).

    Raises:
        ParamsError: The metric is not a service metric or the scheme sets it no absolute level.
    """
    level = _level(scheme, metric)
    periods = [pd.Period(month, "M") for month in months]
    return _weekly(_source(crm), service_department_id, level, periods).copy()


def slip_weeks(weekly: pd.DataFrame) -> list[tuple[str, str]]:
    """Runs of slip weeks, as (first week, last week) labels.

    A single week that is not a slip week (met, missed within chance, or without data) between
    two slip weeks is bridged: one good week inside a slip does not end it. Two such weeks do.

    Args:
        weekly: Consecutive weeks from `weekly_compliance`; its ``slipped`` column marks slip
            weeks (a table without it is read by ``met`` being False).

    Returns:
        The runs in time order; empty when no week slipped.
    """
    ordered = weekly.sort_values("week_start") if "week_start" in weekly else weekly
    flags = ordered["slipped"] if "slipped" in ordered else ordered["met"].eq(False)
    labels = ordered["week"].to_list()
    runs: list[tuple[int, int]] = []
    for position, flag in enumerate(flags.fillna(False).astype(bool)):
        if not flag:
            continue
        if runs and position - runs[-1][1] <= 2:
            runs[-1] = (runs[-1][0], position)
        else:
            runs.append((position, position))
    return [(labels[first], labels[last]) for first, last in runs]


def service_links(
    crm: CRM, scheme: Scheme, period: pd.Period, sales_department_id: str
) -> pd.DataFrame:
    """A sales department's service KPIs in a month, each linked to the department behind it.

    The responsible service department handled most of the sales department's shortfall (late
    deliveries, days or hours above the target); without a shortfall, most of its items. Its
    company-wide value shows whether it slipped for everyone that month (``service_missed``) or
    whether the shortfall is the sales department's own; its usual value is the median of its
    values in the 6 months before. Slip weeks are its runs of slip weeks overlapping the month,
    each followed up to 6 months before and 3 after.

    Args:
        crm: Validated data source.
        scheme: The KPI scheme.
        period: The month.
        sales_department_id: The sales department.

    Returns:
        One row per service KPI of the scheme: ``actual``, ``target``, ``met``, ``count``,
        ``responsible_id`` and ``responsible`` (its name), ``shortfall_share`` (share of the sales
        department's shortfall handled by it; NaN without a shortfall), ``service_value``,
        ``service_usual``, ``service_missed``, ``slip_weeks`` (text, empty when none),
        ``coincides`` (share of the sales department's shortfall dated in those weeks) and
        ``sentence``. A KPI without an absolute target is listed with its reason as the sentence.
    """
    period = pd.Period(period, "M")
    levels = service_levels(scheme)

    def compute() -> pd.DataFrame:
        source = _source(crm)
        months = [period - offset for offset in range(USUAL_MONTHS, -1, -1)]
        rows = []
        for level in levels.to_dict("records"):
            if level["reason"]:
                rows.append(_skipped(source, level, period, sales_department_id))
                continue
            compliance = _by_service(source, level, months)
            row = _link(source, level, period, sales_department_id, compliance)
            row.update(_slip_context(source, level, period, sales_department_id, row))
            row["sentence"] = _sentence(source, row, period, sales_department_id)
            rows.append(row)
        return _frame(rows, LINK_COLUMNS)

    key = (_levels_key(levels), period, sales_department_id)
    return _kept(crm, "service links", key, compute)


def keep_company_values(
    crm: CRM, scheme: Scheme, period: pd.Period, months: Sequence[pd.Period]
) -> None:
    """Compute once the company-wide monthly values every sales department's report reads.

    Each report's `service_links` for `period` and `service_history` over `months` compare the
    department with the service departments' values for the whole company; these are kept
    with the source, so a batch computes them once rather than once per report.
    """
    source = _source(crm)
    period = pd.Period(period, "M")
    linked = [period - offset for offset in range(USUAL_MONTHS, -1, -1)]
    history = [pd.Period(month, "M") for month in months]
    for level in _usable(scheme).to_dict("records"):
        _by_service(source, level, linked)
        _by_service(source, level, history)
        for month in dict.fromkeys([*linked, *history]):
            if source.covers(month):
                source.by_department(level["metric"], month)


def service_table(links: pd.DataFrame) -> pd.DataFrame:
    """The links of `service_links` as text for a report table.

    Args:
        links: The table from `service_links`.

    Returns:
        Columns KPI, Actual, Target, Result, Responsible, Its value, Usual, Share of shortfall
        and Slip weeks, every cell a string.
    """
    rows = []
    for link in links.to_dict("records"):
        unit = METRICS[link["metric"]].unit
        share = fmt(link["shortfall_share"], "share")
        if is_known(link["actual"]) and not is_known(link["shortfall_share"]):
            share = "no shortfall"
        rows.append(
            [
                link["label"],
                fmt(link["actual"], unit),
                fmt(link["target"], unit),
                fmt_met(link["met"]),
                link["responsible"] if is_known(link["responsible"]) else NO_DATA,
                fmt(link["service_value"], unit),
                fmt(link["service_usual"], unit),
                share,
                link["slip_weeks"] or "none",
            ]
        )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS, dtype="str")


def service_history(
    crm: CRM, scheme: Scheme, months: Sequence[pd.Period], sales_department_id: str
) -> pd.DataFrame:
    """A sales department's service KPIs month by month beside the responsible departments.

    Args:
        crm: Validated data source.
        scheme: The KPI scheme.
        months: The months.
        sales_department_id: The sales department.

    Returns:
        One row per month x service KPI with an absolute target, by month: ``actual``,
        ``target``, ``met``, ``responsible_id``, ``responsible``, ``shortfall_share`` and the
        responsible department's company-wide ``service_value`` and ``service_missed``.
    """
    periods = [pd.Period(month, "M") for month in months]
    levels = _usable(scheme)

    def compute() -> pd.DataFrame:
        source = _source(crm)
        rows = []
        for level in levels.to_dict("records"):
            compliance = _by_service(source, level, periods)
            for period in periods:
                link = _link(source, level, period, sales_department_id, compliance)
                rows.append({"month": period, **link})
        history = _frame(rows, HISTORY_COLUMNS)
        return history.sort_values("month", kind="stable", ignore_index=True)

    key = (_levels_key(levels), tuple(periods), sales_department_id)
    return _kept(crm, "service histories", key, compute)


def _levels_key(levels: pd.DataFrame) -> tuple[Hashable, ...]:
    """Service levels (`service_levels`) as a dictionary key; a missing target is None."""
    return tuple(_level_key(level) for level in levels.to_dict("records"))


def _kept(crm: CRM, name: str, key: Hashable, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """A table computed once per source and arguments (`CRM.derived`); each caller gets a copy.

    A report asks for the same service table from several sections.
    """
    kept: dict[Hashable, pd.DataFrame] = crm.derived(name, dict)
    if key not in kept:
        kept[key] = compute()
    return kept[key].copy()


# --- the data -----------------------------------------------------------------------------------


def _source(crm: CRM) -> _Source:
    """The source's `_Source`, made once per source."""
    return crm.derived("service source", lambda: _Source(crm))


class _Source:
    """The CRM with what every computation here needs once: names, coverage and items."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self.names: dict[str, str] = {}
        if crm.departments is not None and "name" in crm.departments:
            shown = crm.departments["name"].fillna(crm.departments["department_id"])
            self.names = dict(zip(crm.departments["department_id"], shown, strict=True))
        self.first = first_month(crm) if not crm.deals.empty else None
        self.as_of = data_as_of(crm) if not crm.deals.empty else None
        self._items: dict[str, pd.DataFrame] = {}
        self._services: dict[str, list[str]] = {}
        # Company-wide values by (level, months) and (service, level, months): the same for
        # every sales department's report, so computed once per source (do not modify them).
        self.monthly: dict[Hashable, pd.DataFrame] = {}
        self.weekly: dict[Hashable, pd.DataFrame] = {}
        # The same values by service department (`_by_service`), and each month's items by
        # sales department (`department_items`): what every link looks up.
        self.by_service: dict[Hashable, dict[str, list[tuple[pd.Period, float]]]] = {}
        self._by_department: dict[tuple[str, pd.Period], dict[str, pd.DataFrame]] = {}

    def name(self, department_id: str) -> str:
        """A department's name (its id when unnamed)."""
        return self.names.get(department_id, department_id)

    def covers(self, period: pd.Period) -> bool:
        """Whether the data covers the month (as `kpilib.metrics.covers`)."""
        if self.first is None or self.as_of is None:
            return False
        return self.first <= period <= self.as_of.to_period("M")

    def dated(self, items: pd.DataFrame) -> pd.DataFrame:
        """The items dated within the data: from its first month to its last day."""
        if self.first is None or self.as_of is None:
            return items.iloc[0:0]
        end = self.as_of + pd.Timedelta(days=1)
        return items.loc[(items["date"] >= self.first.start_time) & (items["date"] < end)]

    def items(self, metric: str) -> pd.DataFrame:
        """The metric's items (see `_items`), computed once."""
        if metric not in self._items:
            self._items[metric] = _items(self.crm, metric)
        return self._items[metric]

    def services(self, metric: str) -> list[str]:
        """The responsible departments of the metric's items, in id order, found once."""
        if metric not in self._services:
            found = self.items(metric)["service"].unique()
            self._services[metric] = sorted(found, key=_id_order)
        return self._services[metric]

    def month_items(self, metric: str, period: pd.Period) -> pd.DataFrame:
        """The metric's items dated in the month."""
        name = f"service items of {metric}"
        return rows_in_period(self.crm, name, self.items(metric), "date", period)

    def by_department(self, metric: str, period: pd.Period) -> dict[str, pd.DataFrame]:
        """The metric's items dated in the month, split by sales department once (kept)."""
        key = (metric, period)
        if key not in self._by_department:
            items = self.month_items(metric, period)
            self._by_department[key] = dict(iter(items.groupby("department_id", sort=False)))
        return self._by_department[key]

    def department_items(self, metric: str, period: pd.Period, department_id: str) -> pd.DataFrame:
        """A sales department's items of the metric dated in the month, in their order (do not
        modify them)."""
        found = self.by_department(metric, period).get(department_id)
        return self.items(metric).iloc[0:0] if found is None else found


def _items(crm: CRM, metric: str) -> pd.DataFrame:
    """The items of a service metric on sales departments' deals and managers.

    Returns:
        Columns ``service`` (responsible department or ``(not assigned)``), ``department_id``
        (the sales department), ``date`` (what the item counts by) and ``value`` (1 or 0 for on
        time, days, hours; NaN when it cannot be measured, which keeps it out of the mean).
    """
    spec = SERVICE_METRICS[metric]
    table = getattr(crm, spec.table)
    columns = {"service": "str", "department_id": "str", "date": "datetime64[us]", "value": float}
    if table is None or spec.dated_by not in table:
        return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in columns.items()})
    missing = pd.Series(pd.NaT, index=table.index, dtype="datetime64[us]")
    unknown = pd.Series(None, index=table.index, dtype="str")
    if spec.table == "deliveries":
        # The deliveries with their deal's department and closing date, kept with the source.
        linked = deliveries_with_deals(crm)
        department = linked["department_id"]
        delivered = table.get("delivered_on", missing)
        if metric == "on_time_delivery":
            value = (delivered.notna() & (delivered <= table["promised_on"])).astype(float)
        else:
            closed = linked["closed_on"] if "closed_on" in crm.deals else missing
            value = (delivered - closed).dt.days.astype(float)
    else:
        owners = crm.managers.set_index("manager_id")["department_id"]
        department = table.get("manager_id", unknown).map(owners)
        answered = table.get("first_response_at", missing)
        value = ((answered - table["received_at"]).dt.total_seconds() / 3600).astype(float)
    responsible = table.get("department_id", unknown).astype("str")
    items = pd.DataFrame(
        {
            "service": responsible.fillna(NOT_ASSIGNED),
            "department_id": department.astype("str"),
            "date": table[spec.dated_by],
            "value": value,
        }
    )
    sales = set(sales_departments(crm)["department_id"])
    keep = items["department_id"].isin(sales) & items["date"].notna()
    return items.loc[keep].reset_index(drop=True)


def _shortfall(items: pd.DataFrame, level: dict[str, Any]) -> pd.Series:
    """Each item's shortfall: 1 for a late delivery; days or hours beyond the target."""
    beyond = level["target"] - items["value"]
    if level["polarity"] == "lower":
        beyond = -beyond
    if METRICS[level["metric"]].unit == "share":
        return beyond.gt(0).astype(float)
    return beyond.clip(lower=0).fillna(0.0)


def _own(source: _Source, metric: str, period: pd.Period, department_id: str) -> pd.DataFrame:
    """A sales department's items of the month (none when the data does not cover it)."""
    if not source.covers(period):
        return source.items(metric).iloc[0:0]
    return source.department_items(metric, period, department_id)


# --- monthly and weekly values ------------------------------------------------------------------


def _level_key(level: dict[str, Any]) -> Hashable:
    """A service level (a row of `service_levels`) as a dictionary key; NaN is None."""
    return tuple(
        (name, None if isinstance(value, float) and math.isnan(value) else value)
        for name, value in level.items()
    )


def _monthly(source: _Source, level: dict[str, Any], periods: list[pd.Period]) -> pd.DataFrame:
    """Each service department's company-wide value of the level in the months (kept)."""
    key = (_level_key(level), tuple(periods))
    if key not in source.monthly:
        source.monthly[key] = _monthly_values(source, level, periods)
    return source.monthly[key]


def _by_service(
    source: _Source, level: dict[str, Any], periods: list[pd.Period]
) -> dict[str, list[tuple[pd.Period, float]]]:
    """`_monthly`'s values as (month, actual) pairs per service department, in its row order
    (kept)."""
    key = (_level_key(level), tuple(periods))
    if key not in source.by_service:
        table = _monthly(source, level, periods)
        pairs: dict[str, list[tuple[pd.Period, float]]] = {}
        for service, month, actual in zip(
            table["service_department_id"], table["month"], table["actual"], strict=True
        ):
            pairs.setdefault(service, []).append((month, float(actual)))
        source.by_service[key] = pairs
    return source.by_service[key]


def _monthly_values(
    source: _Source, level: dict[str, Any], periods: list[pd.Period]
) -> pd.DataFrame:
    metric = level["metric"]
    covered = [period for period in dict.fromkeys(periods) if source.covers(period)]
    # Each month's items in their order, so every group sums its values as over all items.
    parts = [source.month_items(metric, period) for period in covered]
    chosen = pd.concat(parts) if parts else source.items(metric).iloc[0:0]
    sizes = [len(part) for part in parts]
    month = pd.Series(pd.PeriodIndex(covered, freq="M").repeat(sizes), index=chosen.index)
    values = chosen["value"].groupby([chosen["service"], month])
    means, counts = values.mean(), values.count()
    rows = []
    for service in source.services(metric):
        for period in periods:
            actual = float(means.get((service, period), math.nan))
            rows.append(
                {
                    "service_department_id": service,
                    "service_department": source.name(service),
                    "month": period,
                    **_level_fields(level),
                    "actual": actual,
                    "met": is_met(actual, level["target"], level["polarity"]),
                    "count": int(counts.get((service, period), 0)),
                }
            )
    return _frame(rows, COMPLIANCE_COLUMNS)


def _monday(dates: pd.Series) -> pd.Series:
    days = dates.dt.normalize()
    return days - pd.to_timedelta(days.dt.day_of_week, unit="D")


def _weekly(
    source: _Source, service: str, level: dict[str, Any], periods: list[pd.Period]
) -> pd.DataFrame:
    """A service department's company-wide value of the level week by week (kept)."""
    key = (service, _level_key(level), tuple(periods))
    if key not in source.weekly:
        source.weekly[key] = _weekly_values(source, service, level, periods)
    return source.weekly[key]


def _weekly_values(
    source: _Source, service: str, level: dict[str, Any], periods: list[pd.Period]
) -> pd.DataFrame:
    mondays = sorted(
        {
            monday
            for period in periods
            for monday in pd.date_range(
                period.start_time - pd.Timedelta(days=period.start_time.day_of_week),
                period.end_time.normalize(),
                freq="7D",
            )
        }
    )
    items = source.items(level["metric"])
    own = source.dated(items.loc[items["service"].eq(service)])
    stats = own["value"].groupby(_monday(own["date"])).agg(["mean", "count", "sum", "std"])
    stats = stats.reindex(pd.DatetimeIndex(mondays))
    rows = []
    for monday, week in stats.iterrows():
        iso = monday.isocalendar()
        count = 0 if math.isnan(week["count"]) else int(week["count"])
        actual = float(week["mean"]) if count else math.nan
        rows.append(
            {
                "week": f"{iso.year}-W{iso.week:02d}",
                "week_start": monday,
                "actual": actual,
                "target": level["target"],
                "met": is_met(actual, level["target"], level["polarity"]),
                "count": count,
                "slipped": _slipped(actual, count, float(week["sum"]), float(week["std"]), level),
            }
        )
    return _frame(rows, WEEKLY_COLUMNS)


def _slipped(
    actual: float, count: int, total: float, spread: float, level: dict[str, Any]
) -> bool | None:
    """Whether a week missed the level by more than chance at its volume (one-sided, 5%).

    For a share, whether a department exactly at the level would do as badly this rarely (exact
    binomial); for a mean, whether it lies beyond the level by more than 1.645 standard errors.
    A level of 0% or 100% is missed beyond chance by any miss. None for a week without data.
    """
    target, higher = level["target"], level["polarity"] == "higher"
    met = is_met(actual, target, level["polarity"])
    if met is None:
        return None
    if met:
        return False
    if METRICS[level["metric"]].unit == "share":
        if not 0 < target < 1:
            return True
        hits = round(total)
        if higher:
            return _binomial_cdf(hits, count, target) < SLIP_ALPHA
        return 1 - _binomial_cdf(hits - 1, count, target) < SLIP_ALPHA
    if count < 2:
        return False  # one item says nothing about a week's level
    if spread == 0:
        return True
    z = (actual - target) / (spread / math.sqrt(count))
    return (-z if higher else z) > _Z_CRITICAL


def _binomial_cdf(successes: int, trials: int, p: float) -> float:
    """P(X <= successes) for X ~ Binomial(trials, p) with 0 < p < 1, summed in log space."""
    if successes < 0:
        return 0.0
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(trials + 1)
    terms = (
        log_n - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * log_p + (trials - k) * log_q
        for k in range(min(successes, trials) + 1)
    )
    return min(1.0, math.fsum(math.exp(term) for term in terms))


# --- links --------------------------------------------------------------------------------------


def _usable(scheme: Scheme) -> pd.DataFrame:
    levels = service_levels(scheme)
    return levels.loc[levels["reason"].eq("")]


def _level(scheme: Scheme, metric: str) -> dict[str, Any]:
    if metric not in SERVICE_METRICS:
        known = ", ".join(SERVICE_METRICS)
        raise ParamsError(f"{metric!r} is not a service metric; service metrics: {known}.")
    levels = _usable(scheme)
    chosen = levels.loc[levels["metric"].eq(metric)]
    if chosen.empty:
        raise ParamsError(f"The KPI scheme {scheme.name!r} sets no absolute level for {metric!r}.")
    return chosen.iloc[0].to_dict()


def _level_fields(level: dict[str, Any]) -> dict[str, Any]:
    return {key: level[key] for key in ("kpi", "label", "metric", "target", "polarity")}


def _id_order(department_id: str) -> tuple[bool, str]:
    """Departments by id, the unassigned group last."""
    return department_id == NOT_ASSIGNED, department_id


def _largest(totals: pd.Series) -> str:
    """The key with the largest total; a tie goes to the first by id, the unassigned group last."""
    ordered = sorted(totals.items(), key=lambda item: _id_order(item[0]))
    top = max(total for _, total in ordered)
    return str(next(key for key, total in ordered if total == top))


def _link(
    source: _Source,
    level: dict[str, Any],
    period: pd.Period,
    sales_department_id: str,
    compliance: dict[str, list[tuple[pd.Period, float]]],
) -> dict[str, Any]:
    """The sales department's KPI in the month and the service department responsible for it,
    beside that department's company-wide values (`compliance`, from `_by_service`)."""
    own = _own(source, level["metric"], period, sales_department_id)
    values = own["value"].dropna()
    actual = float(values.mean()) if len(values) else math.nan
    shortfall = _shortfall(own, level).groupby(own["service"]).sum()
    responsible, share = None, math.nan
    if shortfall.sum() > 0:
        responsible = _largest(shortfall)
        share = float(shortfall[responsible] / shortfall.sum())
    elif len(own):
        responsible = _largest(own.groupby("service").size())
    theirs = compliance.get(responsible, []) if responsible is not None else []
    now = [actual for month, actual in theirs if month == period]
    before = [actual for month, actual in theirs if month < period and not math.isnan(actual)]
    service_value = now[0] if now else math.nan
    service_met = is_met(service_value, level["target"], level["polarity"])
    return {
        **_level_fields(level),
        "actual": actual,
        "met": is_met(actual, level["target"], level["polarity"]),
        "count": len(values),
        "responsible_id": responsible,
        "responsible": None if responsible is None else source.name(responsible),
        "shortfall_share": share,
        "service_value": service_value,
        "service_usual": float(np.median(before)) if before else math.nan,
        "service_missed": None if service_met is None else not service_met,
    }


def _slip_context(
    source: _Source,
    level: dict[str, Any],
    period: pd.Period,
    sales_department_id: str,
    link: dict[str, Any],
) -> dict[str, Any]:
    """The responsible department's slip runs overlapping the month, and the shortfall in them."""
    if link["responsible_id"] is None:
        return {"slip_weeks": "", "coincides": math.nan}
    window = [period + offset for offset in range(-USUAL_MONTHS, FOLLOW_MONTHS + 1)]
    weekly = _weekly(source, link["responsible_id"], level, window)
    starts = weekly.set_index("week")["week_start"]
    week = pd.Timedelta(days=7)
    runs = [
        (first, last)
        for first, last in slip_weeks(weekly)
        if starts[first] < (period + 1).start_time and starts[last] + week > period.start_time
    ]
    own = _own(source, level["metric"], period, sales_department_id)
    shortfall = _shortfall(own, level)
    monday = _monday(own["date"])
    inside = pd.Series(False, index=own.index)
    for first, last in runs:
        inside |= (monday >= starts[first]) & (monday <= starts[last])
    total = shortfall.sum()
    return {
        "slip_weeks": ", ".join(a if a == b else f"{a} to {b}" for a, b in runs),
        "coincides": float(shortfall[inside].sum() / total) if total > 0 else math.nan,
    }


def _skipped(
    source: _Source, level: dict[str, Any], period: pd.Period, sales_department_id: str
) -> dict[str, Any]:
    """The row of a KPI that sets no service level: its actual and the reason."""
    values = _own(source, level["metric"], period, sales_department_id)["value"].dropna()
    return {
        **_level_fields(level),
        "actual": float(values.mean()) if len(values) else math.nan,
        "count": len(values),
        "slip_weeks": "",
        "sentence": f"{level['label']} is not linked to a service department: {level['reason']}.",
    }


def _sentence(
    source: _Source, row: dict[str, Any], period: pd.Period, sales_department_id: str
) -> str:
    """One plain sentence with the numbers of a link."""
    unit, spec = METRICS[row["metric"]].unit, SERVICE_METRICS[row["metric"]]
    label, name = row["label"], row["responsible"]
    if math.isnan(row["actual"]):
        return f"{label}: no data for {source.name(sales_department_id)} in {month_name(period)}."
    figures = f"({fmt(row['actual'], unit)} against {fmt(row['target'], unit)})"
    company = fmt(row["service_value"], unit)
    usual = ""
    if not math.isnan(row["service_usual"]):
        usual = f" against {fmt(row['service_usual'], unit)} usually"
    share = fmt(row["shortfall_share"], "share")
    missed = row["service_missed"]
    if row["met"]:
        if missed is None or row["responsible_id"] == NOT_ASSIGNED:
            return f"{label} met {figures}."
        if missed:
            return (
                f"{label} met {figures}, though {name} missed its level company-wide ({company})."
            )
        return f"{label} met {figures}; {name} met its level company-wide too ({company})."
    if row["responsible_id"] == NOT_ASSIGNED:
        return (
            f"{label} missed {figures}; {share} of this department's {spec.shortfall} have no "
            "responsible service department recorded."
        )
    if missed is None:
        return f"{label} missed {figures}; {name}'s level company-wide has no data."
    if not missed:
        return (
            f"{label} missed {figures}, but {name} met its level company-wide ({company}): "
            f"the {spec.shortfall} are this department's own."
        )
    theirs = f"its {spec.measure} across all departments was {company}{usual}"
    ours = f"{share} of this department's {spec.shortfall} were its"
    weeks, coincides = row["slip_weeks"], fmt(row["coincides"], "share")
    if weeks and row["coincides"] >= 0.5:
        plural = "weeks" if " to " in weeks or "," in weeks else "week"
        return (
            f"{label} missed {figures} because {name} slipped in {plural} {weeks}: {theirs}, "
            f"and {ours}; {coincides} fell in those weeks."
        )
    if weeks:
        detail = f"only {coincides} fell in its slip weeks ({weeks})"
    else:
        detail = "in no single week did it miss by more than chance"
    return (
        f"{label} missed {figures} because {name} slipped across all departments that month: "
        f"{theirs}, and {ours}; {detail}."
    )


# --- helpers ------------------------------------------------------------------------------------


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """Rows as a frame of the given columns; ``met``, ``slipped`` and ``service_missed`` nullable
    booleans, numbers floats."""
    frame = pd.DataFrame(rows, columns=columns)
    for flag in ("met", "service_missed", "slipped"):
        if flag in frame:
            values = [bool(v) if is_known(v) else None for v in frame[flag]]
            frame[flag] = pd.array(values, dtype="boolean")
    for number in ("actual", "target", "shortfall_share", "service_value", "service_usual"):
        if number in frame:
            frame[number] = frame[number].astype(float)
    return frame
