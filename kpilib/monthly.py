"""The monthly report of one sales department: its validated inputs, tables and findings.

`prepare_monthly` turns the notebook's plain parameters into a `MonthlyReport` (data read and
validated, scheme loaded, month scored); the other functions derive the report's tables and
plain-language findings from it. Every number in a finding is in one of the tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML
from pandas.io.formats.style import Styler
from pydantic import BaseModel, ConfigDict, Field

from kpilib import paths, snapshots
from kpilib.display import (
    SALE_TYPE_LABELS,
    fmt,
    fmt_met,
    fmt_signed,
    header,
    month_name,
    note,
    styled,
)
from kpilib.errors import ParamsError
from kpilib.history import HISTORY_METRICS, ScoreHistory, score_window
from kpilib.io import write_json
from kpilib.metrics import METRICS, department_names, revenue_by, sales_departments
from kpilib.params import Number, Scheme, Whole, load_report_inputs, validate_report_parameters
from kpilib.periods import resolve_period
from kpilib.schemas import CRM
from kpilib.scoring import Scorecard, scorecard_json

TREND_METRICS = HISTORY_METRICS  # the trend charts show what every scored month keeps


class MonthlyParams(BaseModel):
    """The monthly notebook's parameters, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    department: str = Field(min_length=1)
    period: str = ""
    data: str = Field(min_length=1)
    scheme: str = Field(min_length=1)
    currency: str = Field(default="RUB", min_length=1)
    trend_months: Whole = Field(default=12, ge=2, le=60)
    technical_hour_cost: Number | None = Field(default=None, ge=0)
    department_name: str = ""
    mapping: str = ""  # YAML mapping the data source is read through; empty: none


@dataclass(frozen=True)
class MonthlyReport:
    """Everything one department's monthly report shows, computed once."""

    params: MonthlyParams
    crm: CRM
    scheme: Scheme
    scheme_file: Path
    period: pd.Period
    department_id: str
    department_name: str
    card: Scorecard
    history: ScoreHistory

    @property
    def currency(self) -> str:
        """The reporting currency."""
        return self.params.currency


def prepare_monthly(**parameters: Any) -> MonthlyReport:
    """Validate the notebook's parameters, read the data and score the department's month.

    Raises:
        ParamsError: A parameter is invalid or the department is not a sales department.
        DataContractError: The data source breaks the contract.
    """
    params = validate_report_parameters(MonthlyParams, parameters)
    crm, scheme_file, scheme = load_report_inputs(
        params.data, params.scheme, params.technical_hour_cost, params.mapping
    )
    departments = sales_departments(crm)
    if params.department not in set(departments["department_id"]):
        known = ", ".join(departments["department_id"])
        raise ParamsError(
            f"Department {params.department!r} is not a sales department of the "
            f"data (known: {known})."
        )
    period = resolve_period(params.period, crm)
    name = params.department_name or department_names(departments)[params.department]
    history = score_window(crm, scheme, period, params.trend_months, params.department)
    return MonthlyReport(
        params,
        crm,
        scheme,
        scheme_file,
        period,
        params.department,
        str(name),
        history.card(period),
        history,
    )


def _manager_names(report: MonthlyReport) -> pd.Series:
    return report.card.managers.set_index("manager_id")["name"].astype(str)


def score_summary(report: MonthlyReport) -> pd.DataFrame:
    """One row per manager: tier, weighted score, KPIs met, weight covered by data."""
    managers = report.card.managers.sort_values("score", ascending=False, na_position="last")
    return pd.DataFrame(
        {
            "Manager": managers["name"],
            "Tier": managers["tier"],
            "Score": managers["score"],
            "KPIs met": [
                f"{m} of {n}"
                for m, n in zip(managers["kpis_met"], managers["kpis_with_data"], strict=True)
            ],
            "Weight with data": managers["coverage"],
        }
    )


def _kpi_rows(kpis: pd.DataFrame, currency: str) -> pd.DataFrame:
    units = kpis["metric"].map(lambda m: METRICS[m].unit)
    return pd.DataFrame(
        {
            "Goal": kpis["goal"],
            "KPI": kpis["label"],
            "Actual": [fmt(v, u, currency) for v, u in zip(kpis["actual"], units, strict=True)],
            "Target": [fmt(v, u, currency) for v, u in zip(kpis["target"], units, strict=True)],
            "Result": kpis["met"].map(fmt_met),
            "Attainment": kpis["attainment"],
            "Weight": kpis["weight"],
        }
    )


KPI_UNITS = {"Attainment": "share", "Weight": "share"}


def kpi_table(rows: pd.DataFrame) -> Styler:
    """A table of KPI rows (`department_kpis` or `manager_kpis`) ready for the report."""
    return styled(rows, KPI_UNITS, right=["Actual", "Target"])


def department_kpis(report: MonthlyReport) -> pd.DataFrame:
    """The department roll-up: every KPI of the scheme on the department's figures."""
    return _kpi_rows(report.card.department_kpis, report.currency)


def manager_kpis(report: MonthlyReport) -> pd.DataFrame:
    """Every manager's KPIs: actual, target, met, attainment and weight."""
    kpis = report.card.manager_kpis
    rows = _kpi_rows(kpis, report.currency)
    return pd.concat(
        [kpis["manager_id"].map(_manager_names(report)).rename("Manager"), rows], axis=1
    ).drop(columns="Goal")


def profit_table(report: MonthlyReport) -> pd.DataFrame:
    """Net profit per manager in the shape of the source documents' Vasily/Valery table."""
    metrics = report.card.manager_metrics
    names = _manager_names(report).reindex(metrics.index)
    table = pd.DataFrame(
        {
            "Manager": names.to_numpy(),
            "Revenue": metrics["revenue"].to_numpy(),
            "Cost price": metrics["cost_price"].to_numpy(),
            "Extra hours": metrics["extra_hours"].to_numpy(),
            "Extra costs": metrics["extra_costs"].to_numpy(),
            "Net profit": metrics["net_profit"].to_numpy(),
        }
    )
    table = table.assign(
        **{"Net margin": table["Net profit"] / table["Revenue"].where(table["Revenue"] > 0)}
    )
    return table.sort_values("Revenue", ascending=False).reset_index(drop=True)


PROFIT_UNITS = {
    "Revenue": "money",
    "Cost price": "money",
    "Extra hours": "hours",
    "Extra costs": "money",
    "Net profit": "money",
    "Net margin": "share",
}


def revenue_structure(report: MonthlyReport, dimension: str) -> pd.DataFrame:
    """The department's revenue by product, client segment or sale type."""
    table = revenue_by(report.crm, report.period, dimension, report.department_id)  # type: ignore[arg-type]
    if dimension == "sale_type":
        table[dimension] = table[dimension].map(lambda v: SALE_TYPE_LABELS.get(v, v))
    return table.rename(
        columns={
            dimension: dimension.replace("_", " ").capitalize(),
            "revenue": "Revenue",
            "share": "Share",
        }
    )


def business_mix(report: MonthlyReport) -> pd.DataFrame:
    """New business versus existing clients, and the existing-client revenue's composition."""
    metrics = report.card.department_metrics.loc[report.department_id]
    rows = [
        "new_business_revenue",
        "existing_client_revenue",
        "cross_sell_share",
        "upsell_share",
        "subscription_share",
    ]
    return pd.DataFrame(
        {
            "Indicator": [METRICS[m].label for m in rows],
            "Value": [fmt(metrics[m], METRICS[m].unit, report.currency) for m in rows],
        }
    )


def trends(report: MonthlyReport) -> pd.DataFrame:
    """The department's indicators month by month over the trend window, oldest first."""
    metrics = report.history.department_metrics(report.department_id)
    table = metrics[list(TREND_METRICS)].astype(float)
    return table.assign(month=table.index.to_timestamp()).reset_index(drop=True)[
        ["month", *TREND_METRICS]
    ]


PLAN_COLUMNS = ["Who", "level", "Metric", "Plan", "Actual", "Gap", "Gap %", "unit"]


def plan_vs_actual(report: MonthlyReport) -> pd.DataFrame:
    """The month's plans against the actuals: the department's own, then its managers'.

    Returns:
        One row per plan (``level`` is ``department`` or ``manager``); empty without plans.
    """
    plans = report.crm.plans
    if plans is None:
        return pd.DataFrame(columns=PLAN_COLUMNS)
    month = plans.loc[plans["period"].eq(f"{report.period:%Y-%m}")]
    card = report.card
    owners = [
        ("department", "department_id", card.department_metrics, {report.department_id:
                                                                  report.department_name}),
        ("manager", "manager_id", card.manager_metrics, _manager_names(report).to_dict()),
    ]  # fmt: skip
    rows = []
    for level, key, actuals, names in owners:
        if key not in month:
            continue
        for owner, metric, target in month.loc[
            month[key].isin(list(names)), [key, "metric", "target"]
        ].itertuples(index=False):
            actual = float(actuals.at[owner, metric])
            gap = actual - target
            rows.append({
                "Who": names[owner], "level": level, "Metric": METRICS[metric].label,
                "Plan": target, "Actual": actual, "Gap": gap,
                "Gap %": gap / target if target else math.nan, "unit": METRICS[metric].unit,
            })  # fmt: skip
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def provenance(report: MonthlyReport) -> pd.DataFrame:
    """What the report ran on: parameters, data fingerprint, scheme, kit version, run time."""
    rows = {
        "Department": f"{report.department_name} ({report.department_id})",
        "Period": f"{report.period:%Y-%m}",
        "Data source": report.crm.source,
        "Data fingerprint": report.crm.fingerprint,
        "KPI scheme": f"{report.scheme.name} ({report.scheme_file.name})",
        "Currency": report.currency,
        "Technical hour cost": fmt(report.scheme.technical_hour_cost, "money", report.currency),
        "Trend months": str(report.params.trend_months),
        "Kit version": version("kpilib"),
        "Run at (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }
    notes = "; ".join(report.crm.notes)
    if notes:
        rows["Data notes"] = notes
    return pd.DataFrame({"Item": list(rows), "Value": list(rows.values())})


def monthly_json(report: MonthlyReport) -> dict[str, Any]:
    """The report's machine-readable results (``<department>.kpis.json``).

    ``scheme_definition`` records the full scheme the month ran on (with the run's technical hour
    cost), so that later reports see how targets and weights changed from month to month; it
    validates back with `Scheme.model_validate` (keys left out of the scheme are left out here).
    """
    data = scorecard_json(report.card)
    department = next(d for d in data["departments"] if d["department_id"] == report.department_id)
    return {
        "period": data["period"],
        "department_id": report.department_id,
        "department_name": report.department_name,
        "currency": report.currency,
        "scheme": report.scheme.name,
        "scheme_definition": report.scheme.model_dump(mode="json", exclude_none=True),
        "data_fingerprint": report.crm.fingerprint,
        "headline": {
            "score": department["score"],
            "revenue": department["metrics"]["revenue"],
            "net_profit": department["metrics"]["net_profit"],
            "kpis_met": department["kpis_met"],
            "kpis_with_data": department["kpis_with_data"],
            "kpis_total": department["kpis_total"],
        },
        "department": department,
        "managers": data["managers"],
    }


def save_results(report: MonthlyReport, path: str) -> None:
    """Write the machine-readable results where the runner asked (nothing when `path` is empty)."""
    if path:
        write_json(monthly_json(report), Path(path))


def report_header(report: MonthlyReport) -> HTML:
    """The report's title and the parameters it ran with."""
    return header(
        f"{report.department_name}: monthly KPI report, {month_name(report.period)}",
        {
            "Department": f"{report.department_name} ({report.department_id})",
            "Period": f"{report.period:%Y-%m}",
            "KPI scheme": report.scheme.name,
            "Managers scored": str(len(report.card.managers)),
            "Data source": report.crm.source,
        },
    )


def plan_table(report: MonthlyReport) -> Styler | HTML:
    """Plan versus actual for display, or a note when the data holds no plans for the month."""
    plans = plan_vs_actual(report)
    if plans.empty:
        return note("The data source holds no plans for this department and month.")
    cur = report.currency
    shown = pd.DataFrame(
        {
            "Who": plans["Who"],
            "Metric": plans["Metric"],
            "Plan": [fmt(v, u, cur) for v, u in zip(plans["Plan"], plans["unit"], strict=True)],
            "Actual": [fmt(v, u, cur) for v, u in zip(plans["Actual"], plans["unit"], strict=True)],
            "Gap": [fmt(v, u, cur) for v, u in zip(plans["Gap"], plans["unit"], strict=True)],
            "Gap %": plans["Gap %"],
        }
    )
    return styled(shown, {"Gap %": "share"}, cur, right=["Plan", "Actual", "Gap"])


@dataclass(frozen=True)
class Corrections:
    """How the department's past months changed between the previous snapshot and this one.

    Attributes:
        text: One paragraph for people.
        months: `kpilib.snapshots.corrections_by_month` for the department's managers, only the
            months whose won revenue changed; empty when nothing can be compared.
    """

    text: str
    months: pd.DataFrame


def data_corrections(report: MonthlyReport) -> Corrections:
    """What of the change since the previous CRM export is data being corrected, not business.

    Compares the snapshot the report runs on with the one before it in the store: deals added
    late into months the previous export already covered, deals deleted and deals edited. Only
    a report on a snapshot store (``kpi ingest``, then ``--data data/kpi.duckdb``) can say it.
    """
    empty = pd.DataFrame()
    if not snapshots.is_store(report.params.data):
        return Corrections(
            "Corrections between CRM exports are tracked when the reports run on a snapshot "
            "store (`kpi ingest`, then `--data data/kpi.duckdb`); this source is read as it is "
            "now, so its past months cannot be compared with what earlier reports showed.",
            empty,
        )
    store, ref = snapshots.parse_ref(report.params.data)
    store = paths.resolve(store)
    current = snapshots.find_snapshot(store, ref)
    order = (current.taken_at, current.id)
    if not any((s.taken_at, s.id) < order for s in snapshots.list_snapshots(store)):
        return Corrections(
            f"Snapshot {current.id} ({current.label}) is the store's first: there is no earlier "
            "export to compare with.",
            empty,
        )
    diff = snapshots.diff_snapshots(store, None, str(current.id))
    managers = report.crm.managers
    own = managers.loc[managers["department_id"].eq(report.department_id), "manager_id"]
    table = snapshots.corrections_by_month(diff, list(own))
    # A month whose late additions and deletions cancel out was corrected all the same.
    changed = table.loc[table[["late_added", "deleted", "edited"]].ne(0).any(axis=1)]
    previous = f"snapshot {diff.old.id} ({diff.old.label}, taken {diff.old.taken_at:%Y-%m-%d})"
    if changed.empty:
        return Corrections(
            f"Compared with {previous}, the department's won revenue of the months it covered "
            f"(to {diff.covered:%Y-%m}) is unchanged: every change since is business."
            if diff.covered is not None
            else f"{previous} covered no complete month: there is nothing to correct.",
            empty,
        )
    cur = report.currency
    total = changed.sum()
    parts = ", ".join(
        f"{fmt_signed(total[column], 'money', cur)} {words}"
        for column, words in [
            ("late_added", "from deals added late"),
            ("deleted", "from deals deleted"),
            ("edited", "from deals edited"),
        ]
        if total[column] != 0
    )
    text = (
        f"Compared with {previous}, the department's won revenue of {len(changed)} month(s) it "
        f"already covered changed by {fmt_signed(total['change'], 'money', cur)} ({parts}): "
        "data being corrected, not business."
    )
    last = diff.covered
    if last in changed.index:
        row = changed.loc[last]
        text += (
            f" {month_name(last)} stood at {fmt(row['revenue_old'], 'money', cur)} in that export "
            f"and stands at {fmt(row['revenue_new'], 'money', cur)} now, so a comparison of this "
            "month with last month's report carries that correction."
        )
    return Corrections(text, changed)


def corrections_table(corrections: Corrections, currency: str) -> Styler | None:
    """The corrected months for display; nothing when no month changed."""
    if corrections.months.empty:
        return None
    labels = {
        "revenue_old": "Previous export",
        "revenue_new": "This export",
        "change": "Change",
        "late_added": "Added late",
        "deleted": "Deleted",
        "edited": "Edited",
    }
    months = corrections.months
    shown = pd.DataFrame({"Month": [f"{month:%Y-%m}" for month in months.index]})
    for column, label in labels.items():
        values = months[column].tolist()
        if column.startswith("revenue"):
            shown[label] = [fmt(v, "money", currency) for v in values]
        else:
            shown[label] = [fmt_signed(v, "money", currency) for v in values]
    return styled(shown, currency=currency, right=list(labels.values()))
