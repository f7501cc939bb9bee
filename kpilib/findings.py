"""The plain-language findings that open a monthly report.

Each sentence carries its numbers and names the table they come from, largest issues first:
the department's score, plan misses, KPI misses, the managers' spread, the Vasily/Valery pattern
(equal revenue, unequal profit), and what could not be scored for lack of data.
"""

from __future__ import annotations

import math

import pandas as pd

from kpilib.discrepancies import discrepancy_register, recoveries
from kpilib.display import fmt, fmt_compact, fmt_diff, month_name
from kpilib.explain import department_gap, main_drivers, peer_gap
from kpilib.metrics import ADDITIVE_METRICS, METRICS
from kpilib.monthly import MonthlyReport, plan_vs_actual
from kpilib.params import Kpi
from kpilib.services import service_history, service_links


def findings(report: MonthlyReport) -> list[str]:
    """The report's opening sentences, largest issues first."""
    sentences = [_score_finding(report)]
    sentences += _plan_findings(report)
    sentences += _miss_findings(report)
    sentences += _improvement_findings(report)
    sentences += _earlier_service_findings(report)
    sentences += _manager_findings(report)
    profit = _profit_finding(report)
    if profit:
        sentences.append(profit)
    sentences += _unscored_findings(report)
    return sentences


def _department_row(report: MonthlyReport) -> pd.Series:
    return report.card.departments.set_index("department_id").loc[report.department_id]


def _score_finding(report: MonthlyReport) -> str:
    row = _department_row(report)
    month = month_name(report.period)
    if pd.isna(row["score"]):
        return (
            f"{report.department_name} could not be scored for {month}: no KPI had both an "
            "actual and a target (see the department roll-up)."
        )
    return (
        f"{report.department_name}'s weighted KPI score for {month} is {row['score']:.0%} "
        f"(100% means every target met; a KPI counts up to its cap): {row['kpis_met']} of "
        f"{row['kpis_with_data']} KPIs with data met (see the department roll-up)."
    )


def _plan_findings(report: MonthlyReport) -> list[str]:
    """The department's plans against the actuals; a revenue miss with its main drivers."""
    sentences = []
    for row in plan_vs_actual(report).to_dict("records"):
        if row["level"] != "department" or math.isnan(row["Gap %"]):
            continue
        verb = "missed" if row["Gap"] < 0 else "beat"
        cur = report.currency
        why = ""
        if row["Gap"] < 0 and row["Metric"] == METRICS["revenue"].label:
            drivers = main_drivers(department_gap(report, "revenue"), cur)
            why = f"; the largest contributions to the gap: {drivers}" if drivers else ""
        sentences.append(
            f"{report.department_name} {verb} its {row['Metric'].lower()} plan by "
            f"{abs(row['Gap %']):.1%}: {fmt(row['Actual'], row['unit'], cur)} "
            f"against {fmt(row['Plan'], row['unit'], cur)}{why} (see plan versus actual and "
            "the gap decomposition)."
        )
    return sentences


def _target_basis(kpi: Kpi, baseline: float, unit: str, currency: str) -> str:
    """How a department target was set, e.g. " (baseline 53,200,000 RUB plus 100,000 RUB)"."""
    if kpi.level == "manager" and kpi.metric in ADDITIVE_METRICS:
        return " (the sum of its managers' targets)"
    if kpi.target.type == "absolute" or math.isnan(baseline):
        return ""
    base = fmt(baseline, unit, currency)
    if kpi.target.type == "increase":
        return f" (baseline {base} plus {fmt(kpi.target.value, unit, currency)})"
    return f" (baseline {base} plus {kpi.target.value:.0%} growth)"


def _run_text(months: int, open_ended: bool) -> str:
    if open_ended:
        return f" in every one of the {months} months shown"
    return f" for {months} months running" if months > 1 else ""


def _miss_findings(report: MonthlyReport, most: int = 3) -> list[str]:
    """The department's missed KPIs, persistent misses first, one per metric."""
    register = discrepancy_register(report.history, report.period)
    missed = register.loc[register["level"].eq("department")]
    schema = {kpi.key: kpi for _, kpi, _ in report.scheme.weighted_kpis()}
    kpis = report.card.department_kpis.set_index("kpi")
    links = service_links(report.crm, report.scheme, report.period, report.department_id)
    causes = dict(zip(links["kpi"], links["sentence"], strict=True))
    sentences = []
    for row in missed.drop_duplicates("metric").head(most).to_dict("records"):
        run = _run_text(row["months_running"], row["open_ended"])
        if row["kpi"] in causes:
            # The link's sentence opens with "<KPI> missed (...)" and names the cause.
            cause = causes[row["kpi"]].replace(f"{row['label']} missed", f"{row['label']} missed"
                                               f"{run}", 1)  # fmt: skip
            sentences.append(f"{cause} (See the service departments.)")
            continue
        metric = METRICS[row["metric"]]
        cur = report.currency
        basis = _target_basis(schema[row["kpi"]], kpis.at[row["kpi"], "baseline"], metric.unit,
                              cur)  # fmt: skip
        named = "" if row["label"] == metric.label else f"{metric.label.lower()} "
        sentences.append(
            f"{row['label']} missed{run}: "
            f"{named}{fmt(row['actual'], metric.unit, cur)} against a target of "
            f"{fmt(row['target'], metric.unit, cur)}{basis}, short by "
            f"{fmt_diff(row['shortfall'], metric.unit, cur)} ({row['shortfall_pct']:.1%} of the "
            "target; see the "
            "discrepancy register)."
        )
    return sentences


def _improvement_findings(report: MonthlyReport) -> list[str]:
    """Department KPIs met this month after a run of misses."""
    sentences = []
    for row in recoveries(report.history, report.period).to_dict("records"):
        unit = METRICS[row["metric"]].unit
        cur = report.currency
        run = row["months_missed_before"]
        sentences.append(
            f"Improved: {row['label']} met its target after "
            f"{'a month' if run == 1 else f'{run} months'} of misses: "
            f"{fmt(row['actual'], unit, cur)} against {fmt(row['target'], unit, cur)}, "
            f"from {fmt(row['previous_actual'], unit, cur)} the month before (see the department "
            "roll-up)."
        )
    return sentences


def _earlier_service_findings(report: MonthlyReport) -> list[str]:
    """Service KPIs missed in earlier months of the window because a service department slipped.

    The month's own misses are explained with the register; this names the latest earlier run of
    months in which the department missed a service KPI while the responsible service department
    missed its level company-wide, when that run ended before the report's month, and says
    whether the service department has kept its level since.
    """
    history = service_history(report.crm, report.scheme, report.history.months,
                              report.department_id)  # fmt: skip
    sentences = []
    for _, rows in history.groupby("kpi", sort=False):
        caused = rows.loc[rows["met"].eq(False) & rows["service_missed"].eq(True)]
        if caused.empty:
            continue
        months = list(caused["month"])
        run = [months[-1]]
        for month in reversed(months[:-1]):
            if month != run[0] - 1:
                break
            run.insert(0, month)
        if run[-1] == report.period:
            continue  # the month's own miss, already explained
        last = caused.loc[caused["month"].isin(run)]
        unit = METRICS[last["metric"].iloc[0]].unit
        who = last["responsible"].iloc[0]
        values = last["service_value"]
        span = f"{run[0]:%Y-%m}" if len(run) == 1 else f"{run[0]:%Y-%m} to {run[-1]:%Y-%m}"
        level = (
            fmt(values.iloc[0], unit)
            if len(run) == 1
            else f"{fmt(values.min(), unit)} to {fmt(values.max(), unit)}"
        )
        later = rows.loc[rows["month"].gt(run[-1]) & rows["responsible"].eq(who)]
        if later["service_missed"].eq(False).all():
            since = f"{who} has met its level since {run[-1] + 1:%Y-%m}"
        else:
            since = f"{who} has not kept its level since"
        sentences.append(
            f"Earlier: {last['label'].iloc[0]} missed in {span} while {who} slipped "
            f"company-wide ({level} across all sales departments, against "
            f"{fmt(last['target'].iloc[0], unit)}); {since} (see the service departments, month "
            "by month)."
        )
    return sentences


def _manager_findings(report: MonthlyReport) -> list[str]:
    scored = report.card.managers.dropna(subset=["score"]).sort_values("score")
    if len(scored) < 2:
        return []
    best, worst = scored.iloc[-1], scored.iloc[0]
    return [
        f"Highest manager score: {best['name']} ({best['score']:.0%}); lowest: "
        f"{worst['name']} ({worst['score']:.0%}) (see the scorecard)."
    ]


def _profit_finding(report: MonthlyReport) -> str | None:
    """Two managers with similar revenue and very different net profit, and why."""
    pair = peer_gap(report)
    if pair is None:
        return None
    low, high, cur = pair.low, pair.high, report.currency
    extra = pair.share("extra_costs")
    why = (
        f"; extra technical costs explain {extra:.0%} of the gap (see the net profit gap)"
        if not math.isnan(extra) and extra >= 0.5
        else " (see the net profit gap)"
    )
    return (
        f"{low['Manager']} sold about as much as {high['Manager']} "
        f"({fmt_compact(low['Revenue'], cur)} against {fmt_compact(high['Revenue'], cur)}) "
        f"but brought {fmt_compact(-pair.gap, cur)} less net profit "
        f"({fmt_compact(low['Net profit'], cur)} against {fmt_compact(high['Net profit'], cur)}),"
        f" with {fmt(low['Extra hours'], 'hours')} of extra technical work against "
        f"{fmt(high['Extra hours'], 'hours')}{why}: revenue alone rewards the wrong manager."
    )


def _unscored_findings(report: MonthlyReport) -> list[str]:
    kpis = report.card.department_kpis
    no_actual = kpis.loc[kpis["actual"].isna(), "label"].tolist()
    no_target = kpis.loc[kpis["actual"].notna() & kpis["target"].isna(), "label"].tolist()
    sentences = []
    if no_actual:
        sentences.append(
            f"No data for {', '.join(no_actual)}: the source lacks what these KPIs need, so "
            "they are left out of the scores rather than counted as zero (see the roll-up)."
        )
    if no_target:
        sentences.append(
            f"No target for {', '.join(no_target)}: the baseline period lies outside the data "
            "or had nothing to grow from, so these KPIs are left out of the scores."
        )
    return sentences
