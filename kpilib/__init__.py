"""KPI report kit: CRM data -> validated tables -> KPI scores -> monthly and quarterly reports.

The names below are what notebooks and analysts use; everything else is internal.
"""

from kpilib import (
    calibration,
    decomposition,
    discrepancies,
    display,
    drill,
    explain,
    forecast,
    history,
    links,
    pilot,
    plots,
    quarterly,
    ranking,
    requirements,
    services,
    snapshots,
    stability,
    tuning,
    views,
)
from kpilib.discrepancies import discrepancy_register, register_table
from kpilib.display import styled
from kpilib.errors import DataContractError, KpiError, ParamsError, ReportError
from kpilib.findings import findings
from kpilib.io import read_source
from kpilib.metrics import METRICS, MetricSettings, indicators, revenue_by
from kpilib.monthly import (
    PROFIT_UNITS,
    TREND_METRICS,
    MonthlyReport,
    business_mix,
    department_kpis,
    kpi_table,
    manager_kpis,
    monthly_json,
    plan_table,
    plan_vs_actual,
    prepare_monthly,
    profit_table,
    provenance,
    report_header,
    revenue_structure,
    save_results,
    score_summary,
    trends,
)
from kpilib.params import Scheme, load_scheme
from kpilib.periods import latest_complete_month, parse_month
from kpilib.scoring import Scorecard, score_period, scorecard_json
from kpilib.sources import open_source
from kpilib.validation import validate_tables

__all__ = [
    "METRICS",
    "PROFIT_UNITS",
    "TREND_METRICS",
    "DataContractError",
    "KpiError",
    "MetricSettings",
    "MonthlyReport",
    "ParamsError",
    "ReportError",
    "Scheme",
    "Scorecard",
    "business_mix",
    "calibration",
    "department_kpis",
    "decomposition",
    "discrepancies",
    "discrepancy_register",
    "display",
    "drill",
    "explain",
    "findings",
    "forecast",
    "history",
    "indicators",
    "kpi_table",
    "links",
    "latest_complete_month",
    "load_scheme",
    "manager_kpis",
    "monthly_json",
    "parse_month",
    "pilot",
    "plan_table",
    "plan_vs_actual",
    "plots",
    "prepare_monthly",
    "profit_table",
    "provenance",
    "quarterly",
    "ranking",
    "read_source",
    "open_source",
    "register_table",
    "report_header",
    "requirements",
    "revenue_by",
    "revenue_structure",
    "save_results",
    "score_period",
    "score_summary",
    "scorecard_json",
    "services",
    "snapshots",
    "stability",
    "styled",
    "trends",
    "tuning",
    "validate_tables",
    "views",
]
