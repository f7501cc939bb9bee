"""The discrepancy register: every KPI missed in a month, by how much, and for how long.

A miss is a KPI row whose actual did not meet its target (``met`` is False); rows without an actual
or a target are not misses but "no data" and break a run of misses. The size of a miss is the
shortfall in the KPI's own unit, positive when short: ``target - actual`` for higher-is-better
KPIs and ``actual - target`` for lower-is-better ones, and in percent of the target.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kpilib.display import fmt, fmt_diff
from kpilib.history import ScoreHistory
from kpilib.metrics import METRICS

REGISTER_COLUMNS = [
    "level",
    "entity_id",
    "name",
    "kpi",
    "label",
    "metric",
    "unit",
    "actual",
    "target",
    "shortfall",
    "shortfall_pct",
    "attainment",
    "months_running",
    "since",
    "open_ended",
]


def shortfall(actual: float, target: float, polarity: str) -> float:
    """How far an actual falls short of its target, in the KPI's unit (negative when beaten).

    Examples:
        >>> shortfall(80.0, 100.0, "higher")
        20.0
        >>> shortfall(6.0, 4.0, "lower")
        2.0
    """
    return target - actual if polarity == "higher" else actual - target


def run_lengths(kpis: pd.DataFrame, key: str) -> pd.DataFrame:
    """Consecutive months missed, ending at each row's month, per (entity, KPI).

    Args:
        kpis: KPI rows of several months (a history's ``manager_kpis`` or ``department_kpis``).
        key: The entity column, ``manager_id`` or ``department_id``.

    Returns:
        The rows with ``months_running`` (0 when not missed) and ``since`` (the first month of
        the run, NaT-like None when not missed). A month without data, or a month missing from
        the history, ends a run.
    """
    ordered = kpis.sort_values([key, "kpi", "period"]).reset_index(drop=True)
    missed = ordered["met"].eq(False).to_numpy()
    periods = ordered["period"].to_numpy()
    same = (ordered[key].to_numpy()[1:] == ordered[key].to_numpy()[:-1]) & (
        ordered["kpi"].to_numpy()[1:] == ordered["kpi"].to_numpy()[:-1]
    )
    adjacent = np.array(
        [later == earlier + 1 for earlier, later in zip(periods[:-1], periods[1:], strict=True)],
        dtype=bool,
    )
    running = np.zeros(len(ordered), dtype=int)
    since: list[pd.Period | None] = [None] * len(ordered)
    for row in range(len(ordered)):
        if not missed[row]:
            continue
        continues = row > 0 and same[row - 1] and adjacent[row - 1] and missed[row - 1]
        running[row] = running[row - 1] + 1 if continues else 1
        since[row] = since[row - 1] if continues else periods[row]
    return ordered.assign(months_running=running, since=since)


def _level_rows(kpis: pd.DataFrame, key: str, level: str, period: pd.Period) -> pd.DataFrame:
    runs = run_lengths(kpis, key)
    month = runs.loc[runs["period"].eq(period) & runs["met"].eq(False)]
    if level == "manager":
        # A shared department KPI is the department's miss, registered once at department level.
        month = month.loc[month["level"].eq("manager")]
    short = [
        shortfall(a, t, p)
        for a, t, p in zip(month["actual"], month["target"], month["polarity"], strict=True)
    ]
    return pd.DataFrame(
        {
            "level": level,
            "entity_id": month[key].to_numpy(),
            "kpi": month["kpi"].to_numpy(),
            "label": month["label"].to_numpy(),
            "metric": month["metric"].to_numpy(),
            "unit": [METRICS[m].unit for m in month["metric"]],
            "actual": month["actual"].to_numpy(),
            "target": month["target"].to_numpy(),
            "shortfall": short,
            "shortfall_pct": [
                s / abs(t) if t else math.nan for s, t in zip(short, month["target"], strict=True)
            ],
            "attainment": month["attainment"].to_numpy(),
            "months_running": month["months_running"].to_numpy(),
            "since": month["since"].to_numpy(),
        }
    )


def discrepancy_register(history: ScoreHistory, period: pd.Period | None = None) -> pd.DataFrame:
    """Every (department or manager, KPI) that missed its target in the month.

    Args:
        history: Scored months ending with (or including) the month.
        period: The month; the history's last month when omitted.

    Returns:
        One row per miss (columns ``REGISTER_COLUMNS``), persistent misses first: by months
        running, then department before managers, then by shortfall in percent of the target.
    """
    period = period if period is not None else history.months[-1]
    names = _names(history)
    frames = [
        _level_rows(history.department_kpis, "department_id", "department", period),
        _level_rows(history.manager_kpis, "manager_id", "manager", period),
    ]
    register = pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
    register = register.assign(
        name=[names.get((lvl, e), e) for lvl, e in zip(register["level"], register["entity_id"],
                                                        strict=True)]
    )  # fmt: skip
    register = register.assign(
        # A run that reaches back to the history's first month may have begun earlier.
        open_ended=register["since"].eq(history.months[0]).to_numpy(dtype=bool),
        _department=register["level"].ne("department"),
    )
    register = register.sort_values(
        ["months_running", "_department", "shortfall_pct"],
        ascending=[False, True, False],
        na_position="last",
        kind="stable",
    )
    return register[REGISTER_COLUMNS].reset_index(drop=True)


def _names(history: ScoreHistory) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {}
    for level, frame, key in (
        ("department", history.departments, "department_id"),
        ("manager", history.managers, "manager_id"),
    ):
        for entity, name in zip(frame[key], frame["name"], strict=True):
            names[(level, entity)] = str(name)
    return names


def recoveries(history: ScoreHistory, period: pd.Period | None = None) -> pd.DataFrame:
    """Department KPIs met in the month after being missed in the month before.

    Returns:
        Columns ``department_id``, ``kpi``, ``label``, ``metric``, ``actual``, ``target``,
        ``previous_actual``,
        ``months_missed_before`` (the length of the run of misses that ended).
    """
    period = period if period is not None else history.months[-1]
    columns = ["department_id", "kpi", "label", "metric", "actual", "target", "previous_actual",
               "months_missed_before"]  # fmt: skip
    runs = run_lengths(history.department_kpis, "department_id")
    before = runs.loc[runs["period"].eq(period - 1) & runs["met"].eq(False)]
    now = runs.loc[runs["period"].eq(period) & runs["met"].eq(True)]
    joined = now.merge(
        before[["department_id", "kpi", "actual", "months_running"]],
        on=["department_id", "kpi"],
        suffixes=("", "_before"),
    )
    return pd.DataFrame(
        {
            "department_id": joined["department_id"],
            "kpi": joined["kpi"],
            "label": joined["label"],
            "metric": joined["metric"],
            "actual": joined["actual"],
            "target": joined["target"],
            "previous_actual": joined["actual_before"],
            "months_missed_before": joined["months_running_before"],
        },
        columns=columns,
    )


def register_table(register: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The register formatted for the report: who, KPI, actual, target, shortfall, run."""
    units = register["unit"]
    return pd.DataFrame(
        {
            "Who": [
                f"{name} (department)" if level == "department" else name
                for name, level in zip(register["name"], register["level"], strict=True)
            ],
            "KPI": register["label"],
            "Actual": [fmt(v, u, currency) for v, u in zip(register["actual"], units,
                                                             strict=True)],
            "Target": [fmt(v, u, currency) for v, u in zip(register["target"], units,
                                                             strict=True)],
            "Short by": [fmt_diff(v, u, currency) for v, u in zip(register["shortfall"], units,
                                                              strict=True)],
            "Short by %": register["shortfall_pct"],
            "Missed": [_running(n, s, o) for n, s, o in zip(register["months_running"],
                       register["since"], register["open_ended"], strict=True)],
        }
    )  # fmt: skip


def _running(months: int, since: pd.Period, open_ended: bool) -> str:
    if open_ended:
        return f"every month shown ({months}, since {since:%Y-%m} or earlier)"
    if months <= 1:
        return "this month"
    return f"{months} months running (since {since:%Y-%m})"
