"""The quarterly verification report: do the KPIs still drive results, did the pilot work.

`prepare_quarterly` turns the notebook's plain parameters into a `QuarterlyReport` (data read and
validated, scheme loaded, the months the report judges scored once); `verify` runs every analysis
of the quarter on it and returns a `Verification` the notebook shows section by section. A report
covers one sales department or, without a department, the whole company (every sales department
pooled). Every number in a verdict is in one of the report's tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from IPython.display import HTML
from pandas.io.formats.style import Styler
from pydantic import BaseModel, ConfigDict, Field

from kpilib import paths
from kpilib.calibration import (
    attainment_chart,
    quarter_attainment,
    quarter_attainment_table,
    tier_justification,
    tier_table,
)
from kpilib.display import NO_DATA, bullets, fmt, header, html_text, note, styled
from kpilib.errors import ParamsError
from kpilib.history import ScoreHistory, history_from, score_months
from kpilib.io import read_recorded_results, write_json
from kpilib.links import (
    kpi_links,
    kpi_verdicts,
    links_note,
    links_table,
    verdict_table,
)
from kpilib.metrics import department_names, first_month, sales_departments
from kpilib.params import Number, Scheme, Whole, load_report_inputs, validate_report_parameters
from kpilib.periods import months_ending, quarter_months, resolve_quarter
from kpilib.pilot import (
    PilotEvaluation,
    evaluate_pilot,
    pilot_chart,
    pilot_departments,
    pilot_table,
    recommendation,
)
from kpilib.plots import ReportFigure
from kpilib.ranking import (
    RankAgreement,
    flagged_sentences,
    rank_agreement,
    ranking_table,
    score_profit_ranks,
)
from kpilib.requirements import (
    coinciding_misses,
    coinciding_table,
    compliance_chart,
    compliance_table,
    requirement_compliance,
    requirement_sentences,
)
from kpilib.schemas import CRM
from kpilib.scoring import json_value
from kpilib.stability import (
    SchemeInUse,
    attainment_by_month,
    scheme_changes,
    schemes_in_use,
    score_in_use,
    stability_sentences,
    stability_table,
)

COMPANY = paths.COMPANY_REPORT  # the report id (and file name) of the company-wide report
# Indicators the quarter's history keeps beside the scheme's: the results KPIs are judged against
# and what the score-versus-profit ranking sums.
QUARTERLY_METRICS = (
    "revenue",
    "net_profit",
    "existing_client_revenue",
    "extra_costs",
    "cost_price",
    "deals_won",
)
MAX_LAG = 2  # months a KPI may lead its result by


class QuarterlyParams(BaseModel):
    """The quarterly notebook's parameters, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    department: str = ""  # empty: the company-wide report
    period: str = ""  # YYYYQn; empty: the latest complete quarter
    data: str = Field(min_length=1)
    scheme: str = Field(min_length=1)
    currency: str = Field(default="RUB", min_length=1)
    link_months: Whole = Field(default=12, ge=6, le=36)
    technical_hour_cost: Number | None = Field(default=None, ge=0)
    department_name: str = ""
    mapping: str = ""  # YAML mapping the data source is read through; empty: none
    reports: str = ""  # the reports folder whose monthly outputs record each month's scheme


@dataclass(frozen=True)
class QuarterlyReport:
    """What one quarterly report judges, read and scored once.

    Attributes:
        quarter: The quarter.
        months: Its three months, oldest first.
        window: The months the KPI links are judged over (`link_months` ending with the quarter).
        department_id: The department, or None for the company-wide report.
        departments: The sales departments the report covers.
        history: Every month of the window and the `MAX_LAG` months before it, scored.
        quarter_scores: The same history restricted to the quarter's months.
    """

    params: QuarterlyParams
    crm: CRM
    scheme: Scheme
    scheme_file: Path
    quarter: pd.Period
    months: tuple[pd.Period, ...]
    window: tuple[pd.Period, ...]
    department_id: str | None
    department_name: str
    departments: tuple[str, ...]
    history: ScoreHistory
    quarter_scores: ScoreHistory

    @property
    def currency(self) -> str:
        """The reporting currency."""
        return self.params.currency

    @property
    def report_id(self) -> str:
        """The department id, or ``company`` for the company-wide report."""
        return self.department_id or COMPANY


def prepare_quarterly(**parameters: Any) -> QuarterlyReport:
    """Validate the notebook's parameters, read the data and score the months the report judges.

    Raises:
        ParamsError: A parameter is invalid, the quarter is not complete in the data, or the
            department is not a sales department.
        DataContractError: The data source breaks the contract.
    """
    params = validate_report_parameters(QuarterlyParams, parameters)
    crm, scheme_file, scheme = load_report_inputs(
        params.data, params.scheme, params.technical_hour_cost, params.mapping
    )
    departments = sales_departments(crm)
    known = list(departments["department_id"])
    department = params.department or None
    if department is not None and department not in known:
        raise ParamsError(
            f"Department {department!r} is not a sales department of the data "
            f"(known: {', '.join(known)})."
        )
    quarter = resolve_quarter(params.period, crm)
    months = tuple(quarter_months(quarter))
    start = first_month(crm)
    if months[0] < start:
        raise ParamsError(
            f"Quarter {quarter} begins before the data, which starts in {start:%Y-%m}: "
            "choose a quarter the data covers whole."
        )
    # The links are judged over the months the data holds, at most `link_months` of them.
    window = tuple(m for m in months_ending(months[-1], params.link_months) if m >= start)
    scored = [m for m in months_ending(months[-1], params.link_months + MAX_LAG) if m >= start]
    history = score_months(crm, scheme, scored, department, QUARTERLY_METRICS)
    return QuarterlyReport(
        params=params,
        crm=crm,
        scheme=scheme,
        scheme_file=scheme_file,
        quarter=quarter,
        months=months,
        window=window,
        department_id=department,
        department_name=_name(params, departments, department),
        departments=tuple([department] if department else known),
        history=history,
        quarter_scores=history_from([history.card(month) for month in months]),
    )


def _name(params: QuarterlyParams, departments: pd.DataFrame, department: str | None) -> str:
    if params.department_name:
        return params.department_name
    if department is None:
        return "All sales departments"
    return str(department_names(departments)[department])


# --- the analyses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """Every analysis of the quarter, computed once (see each module for the columns).

    Attributes:
        links: KPI -> result effects by result and lag (`kpilib.links.kpi_links`).
        verdicts: One verdict per KPI (`kpilib.links.kpi_verdicts`).
        ranks: Managers by score and by net profit over the quarter (`kpilib.ranking`).
        agreement: How well the two rankings agree.
        attainment: Attainment by KPI and tier over the quarter (`kpilib.calibration`).
        tiers: Whether tier targets are justified by their history.
        pilots: The evaluation of every pilot department the report covers (`kpilib.pilot`).
        compliance: Service departments' levels by month (`kpilib.requirements`).
        coinciding: Sales KPI misses coinciding with a service department's misses.
        schemes: The scheme in use in each month and department (`kpilib.stability`).
        changes: Targets and weights that changed during the quarter.
        monthly_attainment: Share meeting each KPI, month by month.
    """

    links: pd.DataFrame
    verdicts: pd.DataFrame
    ranks: pd.DataFrame
    agreement: RankAgreement
    attainment: pd.DataFrame
    tiers: pd.DataFrame
    pilots: tuple[PilotEvaluation, ...]
    compliance: pd.DataFrame
    coinciding: pd.DataFrame
    schemes: tuple[SchemeInUse, ...]
    changes: pd.DataFrame
    monthly_attainment: pd.DataFrame


def verify(report: QuarterlyReport) -> Verification:
    """Run every analysis of the quarterly verification on the report's data."""
    quarter = report.quarter_scores
    links = kpi_links(report.history, report.scheme, report.window)
    ranks = score_profit_ranks(quarter, report.months)
    # The month before the quarter too, so that a change made at the quarter's start shows.
    followed = (report.months[0] - 1, *report.months)
    recorded = read_recorded_results(
        paths.resolve(report.params.reports or paths.REPORTS), followed, report.departments
    )
    schemes = schemes_in_use(recorded, followed, report.departments, report.scheme)
    return Verification(
        links=links,
        verdicts=kpi_verdicts(links, report.scheme),
        ranks=ranks,
        agreement=rank_agreement(ranks),
        attainment=quarter_attainment(quarter, report.scheme, report.months),
        tiers=tier_justification(report.history, report.scheme, report.window, report.currency),
        pilots=_pilots(report),
        compliance=requirement_compliance(report.crm, report.scheme, report.months),
        coinciding=coinciding_misses(quarter, report.crm, report.scheme, report.months),
        schemes=tuple(schemes),
        changes=scheme_changes(schemes),
        # Each month judged against the targets it ran on, not today's.
        monthly_attainment=attainment_by_month(score_in_use(report.crm, schemes), followed),
    )


def _pilots(report: QuarterlyReport) -> tuple[PilotEvaluation, ...]:
    pilots = pilot_departments(report.crm)
    covered = [d for d in pilots["department_id"] if d in report.departments]
    end = report.months[-1]
    settings = report.scheme.settings(end)
    return tuple(evaluate_pilot(report.crm, d, end, settings=settings) for d in covered)


# --- findings -----------------------------------------------------------------------------------


def findings(report: QuarterlyReport, result: Verification) -> list[str]:
    """The verdicts of the quarter in plain language, the KPIs first.

    One sentence per KPI verdict, then the managers whose score and profit disagree, the rank
    agreement, the pilots' recommendations, the service departments and the scheme's changes.
    """
    sentences = [str(s) for s in result.verdicts["sentence"]]
    sentences += flagged_sentences(result.ranks, report.currency)
    sentences.append(result.agreement.sentence)
    sentences += [str(s) for s in result.tiers.get("sentence", pd.Series(dtype="str"))]
    sentences += [recommendation(pilot, report.currency) for pilot in result.pilots]
    if not result.pilots:
        sentences.append(_no_pilot_sentence(report))
    sentences += requirement_sentences(result.compliance, result.coinciding, report.months)
    sentences += stability_sentences(
        result.schemes,
        result.changes,
        result.monthly_attainment,
        report.quarter,
        currency=report.currency,
    )
    return [s for s in sentences if s]


def _no_pilot_sentence(report: QuarterlyReport) -> str:
    pilots = pilot_departments(report.crm)
    if pilots.empty:
        return (
            "No department pilots the KPI system (no department has a start date in the data), "
            "so there is no pilot to evaluate."
        )
    names = ", ".join(pilots["department_id"])
    return (
        f"{report.department_name} does not pilot the KPI system; it is one of the departments "
        f"the pilot ({names}) is compared with, in the company-wide report."
    )


def verdict_counts(verdicts: pd.DataFrame) -> dict[str, int]:
    """How many KPIs got each verdict, in the order keep, re-weight, drop, cannot judge."""
    counts = verdicts["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in ("keep", "re-weight", "drop", "cannot judge")}


# --- header, provenance, machine-readable results ------------------------------------------------


def report_header(report: QuarterlyReport) -> HTML:
    """The report's title and the parameters it ran with."""
    window = f"{report.window[0]:%Y-%m} to {report.window[-1]:%Y-%m}"
    return header(
        f"{report.department_name}: quarterly KPI verification, {report.quarter}",
        {
            "Covers": _covers(report),
            "Quarter": f"{report.quarter} ({report.months[0]:%Y-%m} to {report.months[-1]:%Y-%m})",
            "KPI links judged over": f"{window} ({len(report.window)} months)",
            "KPI scheme": report.scheme.name,
            "Data source": report.crm.source,
        },
    )


def _covers(report: QuarterlyReport) -> str:
    if report.department_id is None:
        return f"every sales department ({', '.join(report.departments)})"
    return f"{report.department_name} ({report.department_id})"


def provenance(report: QuarterlyReport, result: Verification) -> pd.DataFrame:
    """What the report ran on: parameters, data fingerprint, schemes, kit version, run time."""
    sources = sorted({s.source for s in result.schemes})
    rows = {
        "Covers": _covers(report),
        "Quarter": str(report.quarter),
        "KPI links judged over": f"{report.window[0]:%Y-%m} to {report.window[-1]:%Y-%m}",
        "Data source": report.crm.source,
        "Data fingerprint": report.crm.fingerprint,
        "KPI scheme": f"{report.scheme.name} ({report.scheme_file.name})",
        "Schemes of the quarter's months": "; ".join(sources),
        "Currency": report.currency,
        "Technical hour cost": fmt(report.scheme.technical_hour_cost, "money", report.currency),
        "Kit version": version("kpilib"),
        "Run at (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
    }
    notes = "; ".join(report.crm.notes)
    if notes:
        rows["Data notes"] = notes
    return pd.DataFrame({"Item": list(rows), "Value": list(rows.values())})


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    present = [c for c in columns if c in frame.columns]
    return [{k: json_value(v) for k, v in row.items()} for row in frame[present].to_dict("records")]


def quarterly_json(report: QuarterlyReport, result: Verification) -> dict[str, Any]:
    """The report's machine-readable results (``<department>.kpis.json``)."""
    quarter = report.quarter_scores
    covered = quarter.departments["department_id"].isin(report.departments)
    departments = quarter.departments.loc[covered]
    metrics = pd.concat([card.department_metrics for card in quarter.cards])
    metrics = metrics.loc[metrics.index.isin(report.departments)]
    return {
        "period": str(report.quarter),
        "department_id": report.report_id,
        "department_name": report.department_name,
        "currency": report.currency,
        "scheme": report.scheme.name,
        "scheme_definition": report.scheme.model_dump(mode="json", exclude_none=True),
        "data_fingerprint": report.crm.fingerprint,
        "months": [f"{m:%Y-%m}" for m in report.months],
        "window": [f"{m:%Y-%m}" for m in report.window],
        "headline": {
            "score": json_value(float(departments["score"].mean())),
            "revenue": json_value(float(metrics["revenue"].sum(min_count=1))),
            "net_profit": json_value(float(metrics["net_profit"].sum(min_count=1))),
            "verdicts": verdict_counts(result.verdicts),
        },
        "verdicts": _records(
            result.verdicts,
            ["kpi", "label", "result", "verdict", "lag", "effect", "low", "high", "relative", "n"],
        ),
        "links": _records(
            result.links,
            ["kpi", "result", "lag", "n", "effect", "low", "high", "relative", "p_value"],
        ),
        "rank_agreement": {
            "rho": json_value(result.agreement.rho),
            "low": json_value(result.agreement.low),
            "high": json_value(result.agreement.high),
            "n": result.agreement.n,
        },
        "flagged_managers": list(result.ranks.loc[result.ranks["flagged"], "manager_id"]),
        "pilots": [_pilot_json(p) for p in result.pilots],
        "scheme_changes": _records(result.changes, list(result.changes.columns)),
    }


def _pilot_json(pilot: PilotEvaluation) -> dict[str, Any]:
    return {
        "department_id": pilot.department_id,
        "start": f"{pilot.start:%Y-%m}",
        "verdict": pilot.verdict,
        "effects": _records(
            pilot.effects, ["metric", "factor", "low", "high", "p_value", "pre_trend", "parallel"]
        ),
    }


def save_results(report: QuarterlyReport, result: Verification, path: str) -> None:
    """Write the machine-readable results where the runner asked (nothing when `path` is empty)."""
    if path:
        write_json(quarterly_json(report, result), Path(path))


# --- views: what each section of the notebook shows -----------------------------------------------

_NUMBER = re.compile(r"^[\s]*[-+\u2212]?[\d.,]")


def table(frame: pd.DataFrame, caption: str | None = None) -> Styler:
    """A text table from the analyses, escaped; columns of numbers aligned right."""
    right = [
        column
        for column in frame.columns
        if (cells := [str(v) for v in frame[column] if str(v) not in ("", NO_DATA)])
        and all(_NUMBER.match(cell) for cell in cells)
    ]
    return styled(frame, caption=caption, right=right)


def verdicts_view(result: Verification, currency: str) -> Styler:
    """The verdict per KPI with its evidence."""
    return table(verdict_table(result.verdicts, currency), links_note())


def links_view(result: Verification, currency: str) -> Styler:
    """Every KPI's link to every result at every lag."""
    return table(links_table(result.links, currency), links_note())


def ranking_view(result: Verification, currency: str) -> Styler:
    """Managers by KPI score beside their net profit rank."""
    return table(ranking_table(result.ranks, currency))


def attainment_view(result: Verification, currency: str) -> Styler:
    """Attainment by KPI and tier over the quarter, and the share meeting it each month."""
    return table(quarter_attainment_table(result.attainment, currency))


def tiers_view(result: Verification, currency: str) -> Styler | HTML:
    """Whether each tier's own target is justified by its history."""
    if result.tiers.empty:
        return note("The scheme sets no target that differs by tier.")
    return table(tier_table(result.tiers, currency))


def attainment_figure(report: QuarterlyReport) -> ReportFigure:
    """Share of managers meeting each KPI, month by month of the quarter."""
    return attainment_chart(report.quarter_scores, report.scheme, report.months)


def pilot_views(report: QuarterlyReport, result: Verification) -> list[Any]:
    """For each pilot the report covers: the recommendation, the estimates and the chart."""
    if not result.pilots:
        return [note(_no_pilot_sentence(report))]
    views: list[Any] = []
    for pilot in result.pilots:
        views.append(HTML(f"<p>{html_text(recommendation(pilot, report.currency))}</p>"))
        if pilot.verdict != "cannot evaluate":
            views.append(table(pilot_table(pilot, report.currency)))
            views.append(pilot_chart(pilot, "revenue", report.currency))
    return views


def compliance_view(result: Verification) -> Styler | HTML:
    """Each service department's level by month."""
    if result.compliance.empty:
        return note("The scheme sets no service level that a service department can be held to.")
    return table(compliance_table(result.compliance))


def compliance_figure(result: Verification) -> ReportFigure | HTML:
    """Each service department's value by month against its level."""
    if result.compliance.empty:
        return note("No service levels to draw.")
    return compliance_chart(result.compliance)


def coinciding_view(result: Verification) -> Styler | HTML:
    """Sales managers' service KPI misses falling in months the service department missed."""
    if result.coinciding.empty:
        return note("No sales manager missed a service KPI in the quarter.")
    return table(coinciding_table(result.coinciding))


def stability_view(report: QuarterlyReport, result: Verification) -> Styler:
    """Targets, weights and attainment month by month, with the changes marked."""
    frame = stability_table(
        result.changes, result.monthly_attainment, result.schemes, report.currency
    )
    return table(frame)


def stability_bullets(report: QuarterlyReport, result: Verification) -> HTML:
    """How the scheme changed over the quarter, in sentences."""
    return bullets(
        stability_sentences(
            result.schemes,
            result.changes,
            result.monthly_attainment,
            report.quarter,
            currency=report.currency,
        )
    )


def provenance_view(report: QuarterlyReport, result: Verification) -> Styler:
    """The provenance block."""
    return table(provenance(report, result))
