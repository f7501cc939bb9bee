"""The sales scheme's requirements to other departments, checked over a quarter (or any months).

A sales KPI scheme sets levels for the service departments: deliveries on time, orders fulfilled
within days, requests answered within hours (`kpilib.services.service_levels`). The quarterly
verification asks two questions of them:

1. Did each service department meet its levels, month by month, across the whole company
   (`requirement_compliance`, built on `kpilib.services.service_compliance`)?
2. How many of the sales managers' misses of those KPIs fell in a month in which the service
   department responsible for the sales department missed its level company-wide
   (`coinciding_misses`)? A miss in such a month may be the service department's doing; a miss in
   a month it met its level is the manager's own. The responsible department of a sales
   department and month is the one `kpilib.services.service_history` names: the one that handled
   most of the sales department's shortfall that month (most of its items without a shortfall).

Items without a responsible department form the group ``(not assigned)``: it is shown like a
department, but a month in which it missed is not a service department's miss, so no manager's
miss coincides with it. NaN and None are "no data", never zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.ticker import PercentFormatter

from kpilib.display import NO_DATA, fmt, fmt_met, in_sentence, is_known, listing
from kpilib.history import ScoreHistory
from kpilib.metrics import METRICS, sales_departments
from kpilib.params import Scheme
from kpilib.plots import PALETTE, ReportFigure, chart_labels, literal, new_figure
from kpilib.schemas import CRM
from kpilib.services import (
    NOT_ASSIGNED,
    SERVICE_METRICS,
    service_compliance,
    service_history,
    service_levels,
)

ALL_SALES = "All sales departments"  # department_id and name of the company total rows
COMPLIANCE_COLUMNS = [
    "service_department_id", "service_department", "kpi", "label", "metric", "target", "month",
    "actual", "met", "count", "polarity",
]  # fmt: skip
COINCIDING_COLUMNS = [
    "department_id", "kpi", "label", "responsible", "misses", "coinciding", "share",
    "observations", "department", "metric",
]  # fmt: skip
COINCIDING_TABLE_COLUMNS = [
    "Sales department", "KPI", "Responsible", "Managers' misses",
    "In a month the service department missed", "Share", "Manager-months with data",
]  # fmt: skip
_LINE_STYLES = ("-", "--", ":", "-.")


# --- the computations ---------------------------------------------------------------------------


def requirement_compliance(crm: CRM, scheme: Scheme, months: Sequence[pd.Period]) -> pd.DataFrame:
    """Each service department's company-wide value of every service level the scheme sets.

    Only KPIs with an absolute target are levels a service department can be held to (see
    `kpilib.services.service_levels`). A department is listed for a KPI when it is responsible for
    any of the KPI's items in the data, so a month without its items shows as no data.

    Args:
        crm: Validated data source.
        scheme: The KPI scheme setting the levels.
        months: The months (for the quarterly report, the quarter's three).

    Returns:
        One row per service department x service KPI x month, ordered by department (the group
        ``(not assigned)`` last), KPI in the scheme's order and month: ``service_department_id``,
        ``service_department`` (its name), ``kpi``, ``label``, ``metric``, ``target`` (the level),
        ``month``, ``actual`` (over every sales department's deliveries or requests), ``met``
        (nullable boolean), ``count`` (items measured) and ``polarity`` (``higher``: the value
        must reach the level; ``lower``: it must not exceed it). Months met of months with data
        are ``met`` summed over ``met.notna()`` per department and KPI. Empty when the scheme sets
        no service level or the data holds no deliveries or requests.
    """
    compliance = service_compliance(crm, scheme, months)
    order = {kpi.key: position for position, (_, kpi, _) in enumerate(scheme.weighted_kpis())}
    keys = pd.DataFrame(
        {
            "unassigned": compliance["service_department_id"].eq(NOT_ASSIGNED),
            "service": compliance["service_department_id"],
            "kpi": compliance["kpi"].map(order),
            "month": compliance["month"],
        }
    )
    ordered = keys.sort_values(["unassigned", "service", "kpi", "month"], kind="stable").index
    return compliance.loc[ordered, COMPLIANCE_COLUMNS].reset_index(drop=True)


def coinciding_misses(
    history: ScoreHistory, crm: CRM, scheme: Scheme, months: Sequence[pd.Period]
) -> pd.DataFrame:
    """How many of the sales managers' service KPI misses fell in a month the service slipped.

    For each sales department of the history and each service KPI with an absolute target: the
    manager-months of `months` that missed the KPI (``met`` False in ``history.manager_kpis``)
    and how many of them fell in a month in which the department's responsible service department
    (`kpilib.services.service_history`) missed its level company-wide. A month whose responsible
    group is ``(not assigned)`` never coincides: no service department answers for it.

    Args:
        history: The scored months (one department or every sales department); it must hold
            every month of `months`.
        crm: The validated data source the history was scored on.
        scheme: The KPI scheme the history was scored with.
        months: The months to count.

    Returns:
        One row per service KPI (scheme order) x sales department of the history (by id; a
        department that is not a sales department, `kpilib.metrics.sales_departments`, is left
        out), then, when the history holds more than one sales department, the KPI's company
        total (department ``All sales departments``): ``department_id``, ``kpi``, ``label``,
        ``responsible`` (the names of the responsible departments of the months with items,
        most months first, joined by ``, ``; missing without items), ``misses``,
        ``coinciding``, ``share`` (coinciding / misses; NaN without misses), ``observations``
        (manager-months with data), ``department`` (the sales department's name) and ``metric``
        (the KPI's indicator).

    Raises:
        KeyError: A month is not in the history.
    """
    periods = [pd.Period(month, "M") for month in months]
    absent = [str(period) for period in periods if period not in history.months]
    if absent:
        raise KeyError(f"{', '.join(absent)} not among the history's months")
    levels = service_levels(scheme)
    levels = levels.loc[levels["reason"].eq("")]
    rows = history.manager_kpis.loc[history.manager_kpis["period"].isin(periods)]
    owners = history.managers[["manager_id", "period", "department_id"]]
    rows = rows.merge(owners, on=["manager_id", "period"], how="left")
    names = _department_names(history)
    sales = set(sales_departments(crm)["department_id"])
    departments = sorted(department for department in names if department in sales)
    links = {
        department: service_history(crm, scheme, periods, department) for department in departments
    }
    records = []
    for level in levels.to_dict("records"):
        mine = rows.loc[rows["kpi"].eq(level["kpi"])]
        counted = []
        for department in departments:
            own = mine.loc[mine["department_id"].eq(department)]
            link = links[department]
            link = link.loc[link["kpi"].eq(level["kpi"])].set_index("month")
            counted.append(_count(department, names[department], level, own, link))
        records.extend(counted)
        if len(departments) > 1:
            records.append(_total(level, counted))
    frame = pd.DataFrame(records, columns=COINCIDING_COLUMNS)
    for number in ("misses", "coinciding", "observations"):
        frame[number] = frame[number].astype(int)
    frame["share"] = frame["share"].astype(float)
    return frame


def _department_names(history: ScoreHistory) -> dict[str, str]:
    """The history's sales departments by id, with their names (the id when unnamed)."""
    names = {}
    for department in history.managers["department_id"].dropna().unique():
        names[str(department)] = str(department)
    departments = history.departments
    if "name" in departments:
        for department, name in zip(departments["department_id"], departments["name"], strict=True):
            if department in names and is_known(name):
                names[department] = str(name)
    return names


def _count(
    department: str,
    name: str,
    level: dict[str, Any],
    own: pd.DataFrame,
    link: pd.DataFrame,
) -> dict[str, Any]:
    """One sales department's misses of one KPI and those in months the service missed.

    Besides the columns, the row keeps ``_months`` (months each responsible department answered
    for) and ``_names`` (their names) for the company total.
    """
    missed = own.loc[_flag(own["met"], False)]
    slipped = _flag(link["service_missed"], True) & link["responsible_id"].ne(NOT_ASSIGNED)
    slipped_months = set(link.index[slipped])
    misses = len(missed)
    coinciding = int(missed["period"].isin(slipped_months).sum())
    assigned = link.loc[link["responsible_id"].notna()]
    months = assigned["responsible_id"].value_counts().to_dict()
    names = dict(zip(assigned["responsible_id"], assigned["responsible"], strict=True))
    return {
        "department_id": department,
        "kpi": level["kpi"],
        "label": level["label"],
        "responsible": _named(months, names),
        "misses": misses,
        "coinciding": coinciding,
        "share": coinciding / misses if misses else math.nan,
        "observations": int(own["met"].notna().sum()),
        "department": name,
        "metric": level["metric"],
        "_months": months,
        "_names": names,
    }


def _named(months: dict[str, int], names: dict[str, str]) -> str | None:
    """The responsible departments' names, most months first (ties by id, unassigned last)."""
    if not months:
        return None
    ordered = sorted(months, key=lambda key: (-months[key], *_id_order(key)))
    return ", ".join(names[key] for key in ordered)


def _total(level: dict[str, Any], counted: list[dict[str, Any]]) -> dict[str, Any]:
    """The company total of one KPI over the sales departments' rows."""
    misses = sum(row["misses"] for row in counted)
    coinciding = sum(row["coinciding"] for row in counted)
    months: dict[str, int] = {}
    names: dict[str, str] = {}
    for row in counted:
        names.update(row["_names"])
        for key, count in row["_months"].items():
            months[key] = months.get(key, 0) + count
    return {
        "department_id": ALL_SALES,
        "kpi": level["kpi"],
        "label": level["label"],
        "responsible": _named(months, names),
        "misses": misses,
        "coinciding": coinciding,
        "share": coinciding / misses if misses else math.nan,
        "observations": sum(row["observations"] for row in counted),
        "department": ALL_SALES,
        "metric": level["metric"],
    }


# --- sentences ----------------------------------------------------------------------------------


def requirement_sentences(
    compliance: pd.DataFrame, coinciding: pd.DataFrame, months: Sequence[pd.Period]
) -> list[str]:
    """The findings on the service levels in plain sentences, each with its numbers.

    One sentence per service department and KPI: in how many months it missed its level (with
    the values of those months) or that it met it in every month (with its worst month; a single
    month with data is named with its value), and what share of the sales managers' misses of the
    KPI fell in the months it missed (a single miss is told as one). Where the managers' misses
    are linked to several responsible departments, a sentence of their own says so.

    Args:
        compliance: The table from `requirement_compliance`.
        coinciding: The table from `coinciding_misses` over the same months.
        months: The months (a calendar quarter's three are named as the quarter, ``2026Q3``).

    Returns:
        The sentences; one saying there is nothing to check when the scheme sets no service level
        or the data holds no deliveries or requests.
    """
    periods = [pd.Period(month, "M") for month in months]
    if compliance.empty:
        if coinciding.empty:
            return [
                "The KPI scheme sets no fixed service level for other departments (no on-time "
                "delivery, fulfilment or response KPI with an absolute target), so there is no "
                "requirement to check."
            ]
        return [
            "The data holds no deliveries or requests, so the service levels cannot be checked."
        ]
    span = _span(periods)
    chosen = compliance.loc[compliance["month"].isin(periods)]
    sentences = []
    for kpi in dict.fromkeys([*compliance["kpi"], *coinciding["kpi"]]):
        summary = _kpi_summary(coinciding, kpi)
        rows = chosen.loc[chosen["kpi"].eq(kpi)]
        if rows.empty:
            sentences.append(_unchecked_sentence(compliance, coinciding, kpi))
            continue
        attached = False
        for _, group in rows.groupby("service_department_id", sort=False):
            name = group["service_department"].iloc[0]
            sole = summary is not None and summary["responsible"] == name
            sentences.append(_level_sentence(group, span, periods, summary if sole else None))
            attached = attached or sole
        if summary is not None and not attached and summary["misses"] > 0:
            sentences.append(_shared_sentence(summary, span))
    return sentences


def _unchecked_sentence(compliance: pd.DataFrame, coinciding: pd.DataFrame, kpi: str) -> str:
    """A level no service department could be checked against: no items for it."""
    rows = compliance.loc[compliance["kpi"].eq(kpi)]
    if rows.empty:
        rows = coinciding.loc[coinciding["kpi"].eq(kpi)]
    label = in_sentence(rows["label"].iloc[0])
    metric = rows["metric"].iloc[0] if "metric" in rows else None
    table = SERVICE_METRICS[metric].table if metric in SERVICE_METRICS else "deliveries or requests"
    return f"The {label} level cannot be checked: the data holds no {table} for it."


def _kpi_summary(coinciding: pd.DataFrame, kpi: str) -> dict[str, Any] | None:
    """The KPI's company total row, or its only department's row."""
    rows = coinciding.loc[coinciding["kpi"].eq(kpi)]
    total = rows.loc[rows["department_id"].eq(ALL_SALES)]
    if len(total):
        return total.iloc[0].to_dict()
    return rows.iloc[0].to_dict() if len(rows) == 1 else None


def _level_sentence(
    rows: pd.DataFrame, span: str, periods: list[pd.Period], summary: dict[str, Any] | None
) -> str:
    """One service department's record against one level, and the managers' misses beside it."""
    first = rows.iloc[0]
    unit = METRICS[first["metric"]].unit
    subject, plural = _subject(first)
    label = in_sentence(first["label"])
    level = f"the {label} level ({_level_text(first['target'], first['polarity'], unit)})"
    known = rows.loc[rows["met"].notna()]
    if known.empty:
        return f"{subject} {'have' if plural else 'has'} no {label} data for {span}."
    within = "" if len(known) == len(periods) else " with data"
    missed = known.loc[~known["met"].astype(bool)]
    if len(known) == 1:
        verb = "met" if missed.empty else "missed"
        sentence = f"{subject} {verb} {level} in {_only_month(known.iloc[0], span, periods, unit)}"
    elif missed.empty:
        actual = known["actual"]
        worst = actual.idxmin() if first["polarity"] == "higher" else actual.idxmax()
        sentence = (
            f"{subject} met {level} in every month of {span}{within} (worst month: "
            f"{_month(known.at[worst, 'month'], periods)}, {fmt(known.at[worst, 'actual'], unit)})"
        )
    else:
        values = [
            f"{_month(month, periods)} {fmt(actual, unit)}"
            for month, actual in zip(missed["month"], missed["actual"], strict=True)
        ]
        sentence = (
            f"{subject} missed {level} in {len(missed)} of {len(known)} months of {span}{within} "
            f"({', '.join(values)})"
        )
    if summary is None:
        return sentence + "."
    if missed.empty:
        if summary["coinciding"] == 0:
            return f"{sentence}; {_own_clause(summary, label)}."
        those = "a month in which it missed its level"
        return f"{sentence}; {_coinciding_clause(summary, label, those)}."
    if first["service_department_id"] == NOT_ASSIGNED and summary["misses"]:
        return (
            f"{sentence}; {_whose(summary)} {_misses(summary['misses'], label)} cannot be laid "
            "on a service department."
        )
    those = "those months" if len(missed) > 1 else "that month"
    clause = _coinciding_clause(summary, label, those)
    if summary["misses"] > 1 and len(missed) < len(known):
        # Misses spread evenly over the months would fall there this often by chance alone.
        chance = len(missed) / len(known)
        clause += f" (spread evenly over the months, {fmt(chance, 'share')} would)"
    return f"{sentence}; {clause}."


def _only_month(row: pd.Series, span: str, periods: list[pd.Period], unit: str) -> str:
    """The one month with data: ``March 2025 (50.0%)``, or ``March (50.0%), the only month of
    March to April 2025 with data``."""
    value = fmt(row["actual"], unit)
    if len(periods) == 1:
        return f"{span} ({value})"
    return f"{_month(row['month'], periods)} ({value}), the only month of {span} with data"


def _coinciding_clause(summary: dict[str, Any], label: str, those: str) -> str:
    """What share of the managers' misses fell in the months the service department missed."""
    misses, coinciding = summary["misses"], summary["coinciding"]
    if misses == 0:
        return _none_clause(summary, label)
    if misses == 1:
        fell = "fell" if coinciding else "did not fall"
        return f"{_whose(summary)} {_misses(1, label)} {fell} in {those}"
    return (
        f"{fmt(summary['share'], 'share')} of {_whose(summary)} misses of {label} "
        f"({fmt(coinciding, 'count')} of {fmt(misses, 'count')}) fell in {those}"
    )


def _own_clause(summary: dict[str, Any], label: str) -> str:
    """The managers' misses in months the service department met its level: their own."""
    misses = summary["misses"]
    if misses == 0:
        return _none_clause(summary, label)
    return (
        f"{_whose(summary)} {_misses(misses, label)} (of {_observed(summary)}) "
        f"{'is' if misses == 1 else 'are'} therefore their own"
    )


def _none_clause(summary: dict[str, Any], label: str) -> str:
    """No manager missed the KPI (or none has data for it)."""
    who = "sales manager" if summary["department_id"] == ALL_SALES else "manager"
    where = "" if summary["department_id"] == ALL_SALES else f" of {summary['department']}"
    if summary["observations"] == 0:
        return f"no {who}{where} has {label} data"
    return f"no {who}{where} missed {label} ({_observed(summary)})"


def _shared_sentence(summary: dict[str, Any], span: str) -> str:
    """The managers' misses of a KPI several service departments answer for."""
    label = in_sentence(summary["label"])
    misses, coinciding = summary["misses"], summary["coinciding"]
    where = (
        "a month in which the service department responsible that month "
        f"({summary['responsible']}) missed its level"
    )
    if misses == 1:
        fell = "fell" if coinciding else "did not fall"
        whose = _whose(summary, capital=True)
        return f"{whose} {_misses(1, label)} in {span} {fell} in {where}."
    return (
        f"{fmt(summary['share'], 'share')} of {_whose(summary)} misses of {label} in {span} "
        f"({fmt(coinciding, 'count')} of {fmt(misses, 'count')}) fell in {where}."
    )


def _misses(count: int, label: str) -> str:
    """``1 miss of on-time delivery``, ``3 misses of on-time delivery``."""
    return f"{fmt(count, 'count')} {'miss' if count == 1 else 'misses'} of {label}"


def _whose(summary: dict[str, Any], capital: bool = False) -> str:
    """Whose misses: ``the sales managers'`` (``The`` to open a sentence), ``North's managers'``."""
    if summary["department_id"] == ALL_SALES:
        return f"{'The' if capital else 'the'} sales managers'"
    return f"{summary['department']}'s managers'"


def _observed(summary: dict[str, Any]) -> str:
    count = summary["observations"]
    return f"{fmt(count, 'count')} manager-month{'' if count == 1 else 's'} with data"


def _subject(row: pd.Series) -> tuple[str, bool]:
    """Who the sentence is about, and whether the subject is plural."""
    if row["service_department_id"] == NOT_ASSIGNED:
        table = SERVICE_METRICS[row["metric"]].table
        return f"{table.capitalize()} without a responsible department", True
    return str(row["service_department"]), False


def _level_text(target: float, polarity: str, unit: str) -> str:
    return f"{'at least' if polarity == 'higher' else 'at most'} {fmt(target, unit)}"


def _month(period: pd.Period, periods: list[pd.Period]) -> str:
    """A month in a sentence: ``July``, with its year when the months span several years."""
    if len({p.year for p in periods} | {period.year}) == 1:
        return f"{period:%B}"
    return f"{period:%B %Y}"


def _span(periods: list[pd.Period]) -> str:
    """The months as people name them: ``2026Q3``, ``July 2026``, ``May to August 2026``."""
    if not periods:
        return "no months"
    ordered = sorted(periods)
    first, last = ordered[0], ordered[-1]
    quarter = first.asfreq("Q")
    whole = pd.period_range(quarter.start_time, quarter.end_time, freq="M")
    if len(ordered) == 3 and list(whole) == ordered:
        return str(quarter)
    if first == last:
        return f"{first:%B %Y}"
    if first.year == last.year:
        return f"{first:%B} to {last:%B %Y}"
    return f"{first:%B %Y} to {last:%B %Y}"


# --- tables and the chart -----------------------------------------------------------------------


def compliance_table(compliance: pd.DataFrame) -> pd.DataFrame:
    """The compliance as text for a report table: one row per service department and KPI.

    Args:
        compliance: The table from `requirement_compliance`.

    Returns:
        Columns Service department, KPI, Level (``at least 95.0%``), one column per month
        (``Jul 2026``: the value and whether it met the level, or ``no data``) and Months met
        (``2 of 3``, of the months with data), every cell a string.
    """
    months = sorted(compliance["month"].unique())
    labels = [f"{month:%b %Y}" for month in months]
    rows = []
    for _, group in compliance.groupby(["service_department_id", "kpi"], sort=False):
        first = group.iloc[0]
        unit = METRICS[first["metric"]].unit
        by_month = group.set_index("month")
        cells = []
        for month in months:
            if month not in by_month.index or not is_known(by_month.at[month, "actual"]):
                cells.append(NO_DATA)
                continue
            actual, met = by_month.at[month, "actual"], by_month.at[month, "met"]
            cells.append(f"{fmt(actual, unit)} ({fmt_met(met)})")
        known = group["met"].dropna()
        tally = f"{int(known.astype(bool).sum())} of {len(known)}" if len(known) else NO_DATA
        rows.append(
            [
                str(first["service_department"]),
                str(first["label"]),
                _level_text(first["target"], first["polarity"], unit),
                *cells,
                tally,
            ]
        )
    columns = ["Service department", "KPI", "Level", *labels, "Months met"]
    return pd.DataFrame(rows, columns=columns, dtype="str")


def coinciding_table(coinciding: pd.DataFrame) -> pd.DataFrame:
    """The coinciding misses as text for a report table.

    Args:
        coinciding: The table from `coinciding_misses`.

    Returns:
        Columns Sales department, KPI, Responsible, Managers' misses, In a month the service
        department missed, Share (``no misses`` without misses, ``no data`` without
        manager-months with data) and Manager-months with data, every cell a string.
    """
    rows = []
    for row in coinciding.to_dict("records"):
        share = fmt(row["share"], "share") if row["misses"] else "no misses"
        if not row["observations"]:
            share = NO_DATA
        rows.append(
            [
                str(row["department"]),
                str(row["label"]),
                str(row["responsible"]) if is_known(row["responsible"]) else NO_DATA,
                fmt(row["misses"], "count"),
                fmt(row["coinciding"], "count"),
                share,
                fmt(row["observations"], "count"),
            ]
        )
    return pd.DataFrame(rows, columns=COINCIDING_TABLE_COLUMNS, dtype="str")


def compliance_chart(compliance: pd.DataFrame) -> ReportFigure:
    """Small multiples: each service KPI's monthly value per service department against its level.

    Each panel draws one line per service department (markers green where the month met the
    level, red where it missed) and the level as a dashed line; a month without data is a gap.

    Args:
        compliance: The table from `requirement_compliance`.

    Returns:
        The figure, described by its alternative text (which months each department missed).
    """
    kpis = list(dict.fromkeys(compliance["kpi"]))
    if not kpis:
        figure = new_figure(6, 1.5, "No service levels to show.")
        ax = figure.subplots()
        ax.text(0.5, 0.5, "No service levels to show", ha="center", va="center")
        ax.set_axis_off()
        return figure
    months = sorted(compliance["month"].unique())
    columns = min(len(kpis), 3)
    panels = (len(kpis) + columns - 1) // columns
    figure = new_figure(3.6 * columns + 0.6, 3.2 * panels + 0.4, _chart_alt(compliance, kpis))
    axes = figure.subplots(panels, columns, squeeze=False).ravel()
    positions = {month: position for position, month in enumerate(months)}
    for ax, kpi in zip(axes, kpis, strict=False):
        rows = compliance.loc[compliance["kpi"].eq(kpi)]
        first = rows.iloc[0]
        unit = METRICS[first["metric"]].unit
        groups = rows.groupby("service_department_id", sort=False)
        names = rows.drop_duplicates("service_department_id").set_index("service_department_id")
        labels = chart_labels(names["service_department"])
        shown: set[str] = set()
        for number, (service, group) in enumerate(groups):
            group = group.sort_values("month")
            x = [positions[month] for month in group["month"]]
            name = labels[service]
            ax.plot(
                x,
                group["actual"].to_numpy(dtype=float),
                color=PALETTE["profit"],
                linestyle=_LINE_STYLES[number % len(_LINE_STYLES)],
                label=name,
                zorder=2,
            )
            for outcome, marker in (("met", "o"), ("missed", "X")):
                chosen = _flag(group["met"], outcome == "met").to_numpy()
                if not chosen.any():
                    continue
                ax.scatter(
                    [position for position, keep in zip(x, chosen, strict=True) if keep],
                    group["actual"].to_numpy(dtype=float)[chosen],
                    color=PALETTE[outcome],
                    marker=marker,
                    s=50,
                    zorder=3,
                    label=outcome if outcome not in shown else None,
                )
                shown.add(outcome)
        level = f"Level: {_level_text(first['target'], first['polarity'], unit)}"
        ax.axhline(first["target"], color="black", linewidth=1, linestyle="--", label=level)
        if unit == "share":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xticks(range(len(months)), labels=[f"{month:%b %Y}" for month in months])
        ax.tick_params(axis="x", labelrotation=45)
        ylabel = {"days": "days", "hours": "hours"}.get(unit, "")
        ax.set(title=literal(pd.Series([first["label"]])).iloc[0], xlabel="", ylabel=ylabel)
        ax.legend(loc="best", fontsize="small")
    for ax in axes[len(kpis) :]:
        ax.set_visible(False)
    return figure


def _chart_alt(compliance: pd.DataFrame, kpis: list[str]) -> str:
    """What the chart shows: each department's months below its level, per KPI."""
    parts = []
    for kpi in kpis:
        rows = compliance.loc[compliance["kpi"].eq(kpi)]
        first = rows.iloc[0]
        unit = METRICS[first["metric"]].unit
        level = _level_text(first["target"], first["polarity"], unit)
        facts = []
        for _, group in rows.groupby("service_department_id", sort=False):
            name = group["service_department"].iloc[0]
            missed = group.loc[group["met"].eq(False).fillna(False).astype(bool), "month"]
            if group["met"].isna().all():
                facts.append(f"{name} no data")
            elif missed.empty:
                facts.append(f"{name} met it every month with data")
            else:
                listed = listing([f"{month:%B %Y}" for month in missed])
                facts.append(f"{name} missed it in {listed}")
        parts.append(f"{first['label']} against its level ({level}): {'; '.join(facts)}")
    return "Service levels by month. " + ". ".join(parts) + "."


# --- helpers ------------------------------------------------------------------------------------


def _id_order(department_id: str) -> tuple[bool, str]:
    """Departments by id, the unassigned group last."""
    return department_id == NOT_ASSIGNED, department_id


def _flag(flags: pd.Series, value: bool) -> pd.Series:
    """Where a flag (bool, None or NA) has this value; no data has neither value."""
    return flags.astype("boolean").eq(value).fillna(False).astype(bool)
