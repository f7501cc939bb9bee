"""Drill-through: the deal, delivery, request or lead rows behind a KPI's value in a month.

Each indicator counts particular rows by particular dates (won deals by closing date, deliveries
by promised date for on-time delivery and by delivery date for fulfilment, requests by receipt,
leads by creation). `rows_behind` returns exactly those rows for a department or a manager, with
the column the indicator reads and a ``flag`` marking the rows that pull it towards a miss where
the rows themselves tell (late or undelivered, unanswered, lost, not converted, below the minimum
contract; fulfilment and money indicators flag none, their values are in the rows), so that an
analyst can see what a number is made of.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from kpilib import paths
from kpilib.discrepancies import run_lengths
from kpilib.errors import ParamsError
from kpilib.history import ScoreHistory, score_months
from kpilib.metrics import (
    METRICS,
    MetricSettings,
    deals_with_department,
    deliveries_with_deals,
    sales_departments,
)
from kpilib.params import Kpi, Scheme, load_scheme
from kpilib.periods import in_period, parse_month, resolve_period
from kpilib.schemas import CRM, first_won_deals
from kpilib.sources import open_source

_DEAL_VIEW = ["deal_id", "manager_id", "department_id", "stage", "created_on", "closed_on",
              "amount", "client_id", "product_id", "sale_type", "cost_price", "extra_hours",
              "lead_id"]  # fmt: skip


def _deals(crm: CRM) -> pd.DataFrame:
    deals = deals_with_department(crm)
    return deals[[c for c in _DEAL_VIEW if c in deals]]


def _won(crm: CRM, period: pd.Period, settings: MetricSettings) -> pd.DataFrame:
    deals = _deals(crm)
    if "closed_on" not in deals:
        return deals.iloc[0:0].assign(flag=pd.Series(dtype=bool))
    won = deals.loc[deals["stage"].eq("won") & in_period(deals["closed_on"], period)]
    return won.assign(flag=False)


def _closed(crm: CRM, period: pd.Period, settings: MetricSettings) -> pd.DataFrame:
    deals = _deals(crm)
    if "closed_on" not in deals:
        return deals.iloc[0:0].assign(flag=pd.Series(dtype=bool))
    closed = deals.loc[deals["stage"].isin(["won", "lost"]) & in_period(deals["closed_on"], period)]
    return closed.assign(flag=closed["stage"].eq("lost"))


def _new_clients(crm: CRM, period: pd.Period, settings: MetricSettings) -> pd.DataFrame:
    first = first_won_deals(_deals(crm))
    if first.empty:
        return first.assign(flag=pd.Series(dtype=bool))
    month = first.loc[in_period(first["closed_on"], period)]
    # Flagged: a client's first deal below the minimum contract does not count as a new client.
    return month.assign(flag=month["amount"].lt(settings.min_contract))


def _on_time(crm: CRM, period: pd.Period, settings: MetricSettings) -> pd.DataFrame | None:
    deliveries = deliveries_with_deals(crm)
    if deliveries is None:
        return None
    due = deliveries.loc[in_period(deliveries["promised_on"], period)]
    delivered = due["delivered_on"] if "delivered_on" in due else pd.Series(pd.NaT, due.index)
    late_days = (delivered - due["promised_on"]).dt.days
    return due.assign(
        days_late=late_days.clip(lower=0),
        flag=delivered.isna() | (delivered > due["promised_on"]),
    )


def _fulfilment(crm: CRM, period: pd.Period, settings: MetricSettings) -> pd.DataFrame | None:
    deliveries = deliveries_with_deals(crm)
    if deliveries is None or "delivered_on" not in deliveries:
        return None
    made = deliveries.loc[in_period(deliveries["delivered_on"], period)]
    days = (made["delivered_on"] - made["closed_on"]).dt.days
    return made.assign(fulfilment_days=days, flag=False)


def _requests(crm: CRM, period: pd.Period, settings: MetricSettings) -> pd.DataFrame | None:
    requests = crm.requests
    if requests is None or "manager_id" not in requests:
        return None
    owners = crm.managers.set_index("manager_id")["department_id"]
    received = requests.loc[in_period(requests["received_at"], period)].rename(
        columns={"department_id": "service_department_id"}
    )
    answered = (
        received["first_response_at"]
        if "first_response_at" in received
        else pd.Series(pd.NaT, received.index)
    )
    hours = (answered - received["received_at"]).dt.total_seconds() / 3600
    return received.assign(
        department_id=received["manager_id"].map(owners),
        response_hours=hours,
        flag=answered.isna(),
    )


def _leads(crm: CRM, period: pd.Period, settings: MetricSettings) -> pd.DataFrame | None:
    leads = crm.leads
    if leads is None or "manager_id" not in leads:
        return None
    owners = crm.managers.set_index("manager_id")["department_id"]
    month = leads.loc[in_period(leads["created_on"], period)]
    won = set()
    if "lead_id" in crm.deals:
        won = set(crm.deals.loc[crm.deals["stage"].eq("won"), "lead_id"].dropna())
    return month.assign(
        department_id=month["manager_id"].map(owners),
        converted=month["lead_id"].isin(won),
        flag=~month["lead_id"].isin(won),
    )


_SOURCES: dict[str, Callable[[CRM, pd.Period, MetricSettings], pd.DataFrame | None]] = {
    "on_time_delivery": _on_time,
    "fulfilment_days": _fulfilment,
    "response_hours": _requests,
    "unanswered_requests": _requests,
    "leads": _leads,
    "lead_conversion": _leads,
    "cost_per_lead": _leads,
    "win_rate": _closed,
    "new_clients": _new_clients,
}
# Revenue, costs, profit, deal counts and revenue shares all read the month's won deals.


def rows_behind(
    crm: CRM,
    metric: str,
    period: pd.Period,
    department_id: str | None = None,
    manager_id: str | None = None,
    settings: MetricSettings | None = None,
) -> pd.DataFrame:
    """The rows an indicator counts for a department or manager in a month.

    Args:
        crm: Validated data source.
        metric: A registered metric id.
        period: The month.
        department_id: Keep the rows of this sales department.
        manager_id: Keep the rows of this manager.
        settings: The indicator settings (the minimum contract of new clients).

    Returns:
        The rows, flagged rows first (``flag``: late or undelivered, unanswered, lost, not
        converted, below the minimum contract). Empty with the reason in ``attrs["note"]`` when
        the source lacks what the indicator needs.

    Raises:
        ParamsError: The metric is not registered.
    """
    if metric not in METRICS:
        raise ParamsError(f"Unknown metric {metric!r}; known: {', '.join(METRICS)}.")
    settings = settings or MetricSettings()
    rows = _SOURCES.get(metric, _won)(crm, period, settings)
    if rows is None:
        empty = pd.DataFrame()
        empty.attrs["note"] = f"The data source lacks what {METRICS[metric].label} needs."
        return empty
    if department_id is not None:
        rows = rows.loc[rows["department_id"].eq(department_id)]
    if manager_id is not None:
        rows = rows.loc[rows["manager_id"].eq(manager_id)]
    return rows.sort_values("flag", ascending=False, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Exploration:
    """A department, one of its KPIs and a range of months, scored for drilling down."""

    crm: CRM
    scheme: Scheme
    kpi: Kpi
    department_id: str
    history: ScoreHistory

    @property
    def months(self) -> tuple[pd.Period, ...]:
        """The months explored, oldest first."""
        return self.history.months


def explore(
    department: str,
    kpi: str,
    data: str,
    scheme: str,
    first: str = "",
    last: str = "",
    months: int = 6,
    mapping: str = "",
) -> Exploration:
    """Read the data and score a department's months for exploring one KPI.

    Args:
        department: A sales department id.
        kpi: The KPI's id in the scheme.
        data: The data source (`kpilib.sources.open_source`; relative paths start at the kit's
            folder).
        scheme: The KPI scheme file.
        first: The first month, YYYY-MM; `months` months before `last` when empty.
        last: The last month, YYYY-MM; the latest complete month when empty.
        months: How many months when `first` is empty.
        mapping: The YAML mapping the source is read through; empty: none.

    Raises:
        ParamsError: Unknown department or KPI, or months outside the data.
    """
    crm = open_source(data, mapping or None)
    chosen = load_scheme(paths.resolve(scheme))
    kpis = {k.key: k for _, k, _ in chosen.weighted_kpis()}
    if kpi not in kpis:
        raise ParamsError(f"KPI {kpi!r} is not in the scheme; its KPIs: {', '.join(kpis)}.")
    known = list(sales_departments(crm)["department_id"])
    if department not in known:
        raise ParamsError(f"Department {department!r} is not a sales department: {known}.")
    end = resolve_period(last, crm)
    start = parse_month(first) if first else end - (months - 1)
    if start > end:
        raise ParamsError(f"The first month {start:%Y-%m} is after the last {end:%Y-%m}.")
    span = list(pd.period_range(start, end, freq="M"))
    return Exploration(crm, chosen, kpis[kpi], department, score_months(crm, chosen, span,
                                                                         department))  # fmt: skip


def kpi_over_months(ex: Exploration) -> pd.DataFrame:
    """The department's KPI month by month: actual, target, met, attainment, months running."""
    runs = run_lengths(ex.history.department_kpis, "department_id")
    rows = runs.loc[runs["kpi"].eq(ex.kpi.key)].sort_values("period")
    return rows[["period", "actual", "target", "met", "attainment", "months_running"]].reset_index(
        drop=True
    )


def managers_over_months(ex: Exploration, value: str = "actual") -> pd.DataFrame:
    """Each manager's KPI value (``actual``, ``attainment`` or ``met``) by month."""
    kpis = ex.history.manager_kpis
    rows = kpis.loc[kpis["kpi"].eq(ex.kpi.key)]
    names = ex.history.managers.drop_duplicates("manager_id", keep="last").set_index("manager_id")[
        "name"
    ]
    table = rows.pivot_table(index="manager_id", columns="period", values=value, aggfunc="first",
                             dropna=False)  # fmt: skip
    labels = [str(names.get(manager, manager)) for manager in table.index]
    return table.set_axis(pd.Index(labels, name="manager"), axis=0)


def worst_month(ex: Exploration) -> pd.Period:
    """The explored month where the department's KPI was attained least (the last on ties)."""
    months = kpi_over_months(ex).dropna(subset=["attainment"])
    if months.empty:
        return ex.months[-1]
    return months.loc[months["attainment"][::-1].idxmin(), "period"]


def most_missing_manager(ex: Exploration) -> str | None:
    """The manager who missed the KPI most often over the months (None when nobody did)."""
    kpis = ex.history.manager_kpis
    missed = kpis.loc[kpis["kpi"].eq(ex.kpi.key) & kpis["met"].eq(False)]
    if missed.empty:
        return None
    return str(missed["manager_id"].value_counts().sort_index().idxmax())
