"""Scoring: each KPI's actual against its target, attainment with caps, weighted scores.

Attainment is ``actual / target`` for higher-is-better KPIs and ``target / actual`` for
lower-is-better ones, clipped to ``[0, cap]``; a target of zero or below is attained at the cap
when met and at zero when missed. A manager's score is the weighted mean attainment over the
KPIs that have data; ``coverage`` is the share of the scheme's weight that had data, so a score
over "no data" is never mistaken for a zero.

Department-level KPIs are shared goals: they are evaluated on the department's figures and enter
the score of every manager of that department.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kpilib.metrics import (
    ADDITIVE_METRICS,
    KEYS,
    Level,
    MetricSettings,
    active_managers,
    baseline,
    indicators,
)
from kpilib.params import Kpi, Scheme
from kpilib.schemas import CRM

KPI_COLUMNS = [
    "goal",
    "kpi",
    "label",
    "metric",
    "level",
    "polarity",
    "weight",
    "actual",
    "baseline",
    "target",
    "met",
    "attainment",
]


def attainment(actual: float, target: float, polarity: str, cap: float) -> float:
    """How far an actual goes towards its target, clipped to ``[0, cap]``; NaN without data.

    Examples:
        >>> attainment(110.0, 100.0, "higher", 1.2)
        1.1
        >>> attainment(5.0, 4.0, "lower", 1.2)
        0.8
    """
    if math.isnan(actual) or math.isnan(target):
        return math.nan
    if target <= 0:
        return cap if is_met(actual, target, polarity) else 0.0
    if polarity == "higher":
        ratio = actual / target
    else:
        ratio = cap if actual <= 0 else target / actual
    return float(min(max(ratio, 0.0), cap))


def is_met(actual: float, target: float, polarity: str) -> bool | None:
    """Whether the actual meets the target (``None`` when either is missing)."""
    if math.isnan(actual) or math.isnan(target):
        return None
    return actual >= target if polarity == "higher" else actual <= target


def weighted_score(attainments: pd.Series, weights: pd.Series) -> tuple[float, float]:
    """Weighted mean attainment over the KPIs with data, and the weight share they cover."""
    return _weighted(attainments.to_numpy(dtype=float), weights.to_numpy(dtype=float))


def _weighted(attainments: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    known = ~np.isnan(attainments)
    covered = float(weights[known].sum())
    total = float(weights.sum())
    if covered == 0:
        return math.nan, 0.0
    mean = float((attainments[known] * weights[known]).sum() / covered)
    # A weighted mean lies between its extremes; clamp away floating-point overshoot of the cap.
    low, high = float(attainments[known].min()), float(attainments[known].max())
    return min(max(mean, low), high), covered / total


def kpi_target(kpi: Kpi, baseline: float, tier: str | None) -> float:
    """The KPI's target in the metric's unit for an entity with this baseline and tier."""
    value = kpi.target.value_for(tier)
    if kpi.target.type == "absolute":
        return value
    if math.isnan(baseline):
        return math.nan
    if kpi.target.type == "increase":
        return baseline + value
    # Growth over nothing is undefined: a manager without baseline sales has no growth target.
    return baseline * (1 + value) if baseline > 0 else math.nan


@dataclass(frozen=True)
class Scorecard:
    """The scored month: per-KPI rows and weighted scores for managers and departments."""

    period: pd.Period
    managers: pd.DataFrame
    departments: pd.DataFrame
    manager_kpis: pd.DataFrame
    department_kpis: pd.DataFrame
    manager_metrics: pd.DataFrame
    department_metrics: pd.DataFrame


def _evaluate(
    crm: CRM,
    scheme: Scheme,
    period: pd.Period,
    level: Level,
    index: pd.Index,
    tiers: pd.Series,
    targets: Mapping[tuple[str, str], float] | None = None,
    shown: tuple[str, ...] | None = None,
    whole: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long table of KPI rows for entities of one level, and their indicator table.

    Args:
        targets: Targets given from outside, by (entity, KPI id), in place of the scheme's.
        shown: Indicators to compute beside the scheme's; every registered one when None.
        whole: The index holds every entity of the level (see `_tables`).
    """
    settings = scheme.settings(period)
    wanted = None
    if shown is not None:
        needed = [kpi.metric for _, kpi, _ in scheme.weighted_kpis()]
        wanted = tuple(dict.fromkeys([*needed, *shown]))
    kpis = [
        (goal, kpi, weight)
        for goal, kpi, weight in scheme.weighted_kpis()
        if level == "department" or kpi.level == "manager"
    ]
    relative = tuple({kpi.metric for _, kpi, _ in kpis if kpi.target.type != "absolute"})
    metrics, reference = _tables(crm, period, level, settings, wanted, index, relative, whole)
    rows = []
    # Plain dictionaries: a pandas lookup per entity and KPI costs more than the scoring itself.
    tier_of = tiers.to_dict() if level == "manager" else {}
    for goal, kpi, weight in kpis:
        actuals = _kpi_actual(crm, scheme, period, level, index, kpi, metrics).to_dict()
        bases = reference[kpi.metric].to_dict() if kpi.metric in reference else {}
        for entity in index:
            base = float(bases[entity]) if bases else math.nan
            tier = tier_of.get(entity)
            given = (targets or {}).get((entity, kpi.key))
            target = kpi_target(kpi, base, tier) if given is None else given
            value = float(actuals[entity])
            cap = kpi.cap or scheme.default_cap
            rows.append(
                {
                    KEYS[level]: entity,
                    "goal": goal.name,
                    "kpi": kpi.key,
                    "label": kpi.label,
                    "metric": kpi.metric,
                    "level": kpi.level,
                    "polarity": kpi.direction,
                    "weight": weight,
                    "actual": value,
                    "baseline": base,
                    "target": target,
                    "met": is_met(value, target, kpi.direction),
                    "attainment": attainment(value, target, kpi.direction, cap),
                }
            )
    columns = [KEYS[level], *KPI_COLUMNS]
    return pd.DataFrame(rows, columns=columns), metrics


def _tables(
    crm: CRM,
    period: pd.Period,
    level: Level,
    settings: MetricSettings,
    wanted: tuple[str, ...] | None,
    index: pd.Index,
    relative: tuple[str, ...],
    whole: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The entities' indicators and baselines for the month.

    Each entity's values do not depend on which others are scored with it, so the tables of
    every entity of the level (``whole``) are kept with the source, and a later call for some of
    them (one department re-scored under proposed targets, say) takes their rows.
    """
    kept: dict[tuple[object, ...], tuple[pd.DataFrame, pd.DataFrame]]
    kept = crm.derived("metric tables", dict)
    key = (period, level, settings, wanted, tuple(sorted(relative)))
    if key in kept:
        metrics, reference = kept[key]
        metrics = metrics.loc[metrics.index.isin(index)]
        if metrics.index.equals(index):
            return metrics, reference.loc[reference.index.isin(index)]
    metrics = indicators(crm, period, level, settings, wanted, index)
    reference = baseline(crm, settings.baseline, level, index, relative, settings)
    if whole:
        kept[key] = (metrics.copy(), reference.copy())
    return metrics, reference


def _kpi_actual(
    crm: CRM,
    scheme: Scheme,
    period: pd.Period,
    level: Level,
    index: pd.Index,
    kpi: Kpi,
    metrics: pd.DataFrame,
) -> pd.Series:
    if not kpi.params or scheme.settings(period, kpi.params) == scheme.settings(period):
        return metrics[kpi.metric]
    own = scheme.settings(period, kpi.params)
    return indicators(crm, period, level, own, (kpi.metric,), index)[kpi.metric]


def _summed_targets(manager_kpis: pd.DataFrame, managers: pd.DataFrame) -> dict:
    """Department targets of additive manager KPIs: the sum of its managers' targets.

    A department's new clients or revenue is its managers' sum, so its target is too; managers
    without a target (no baseline yet) add nothing to it, and without any the target is NaN.
    The sums are exactly rounded (`math.fsum`): a department's target must not depend on which
    other departments were scored with it, as a running sum's last bit can.
    """
    additive = manager_kpis.loc[manager_kpis["metric"].isin(ADDITIVE_METRICS)]
    department = additive["manager_id"].map(managers.set_index("manager_id")["department_id"])
    sums: dict[tuple[str, str], float] = {}
    for key, targets in additive.groupby([department, additive["kpi"]])["target"]:
        known = targets.dropna()
        sums[key] = math.fsum(known) if len(known) else math.nan
    return sums


def _shared_department_rows(
    manager_frame: pd.DataFrame, department_kpis: pd.DataFrame, scheme: Scheme
) -> pd.DataFrame:
    shared_ids = [kpi.key for _, kpi, _ in scheme.weighted_kpis() if kpi.level == "department"]
    shared = department_kpis.loc[department_kpis["kpi"].isin(shared_ids)]
    rows = manager_frame[["manager_id", "department_id"]].merge(shared, on="department_id")
    return rows.drop(columns="department_id")


def _scores(kpis: pd.DataFrame, key: str) -> pd.DataFrame:
    """Each entity's weighted score and KPI counts, entities in order of first appearance.

    The rows are grouped by position arrays rather than sub-frames: `weighted_score` per entity
    on sub-frames cost more than scoring the KPIs. The arithmetic is `weighted_score`'s.
    """
    codes, entities = pd.factorize(kpis[key], sort=False)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(entities))
    groups = np.split(order, np.cumsum(sizes)[:-1]) if len(entities) else []
    attainments = kpis["attainment"].to_numpy(dtype=float)
    weights = kpis["weight"].to_numpy(dtype=float)
    met = kpis["met"].to_numpy(dtype=object)
    met_known = ~pd.isna(met)
    records = []
    for entity, rows in zip(entities, groups, strict=True):
        score, coverage = _weighted(attainments[rows], weights[rows])
        known = met_known[rows]
        records.append(
            {
                key: entity,
                "score": score,
                "coverage": coverage,
                "kpis_met": int(met[rows][known].sum()),
                "kpis_with_data": int(known.sum()),
                "kpis_total": len(rows),
            }
        )
    return pd.DataFrame(
        records, columns=[key, "score", "coverage", "kpis_met", "kpis_with_data", "kpis_total"]
    )


def score_period(
    crm: CRM,
    scheme: Scheme,
    period: pd.Period,
    department_id: str | None = None,
    shown: tuple[str, ...] | None = None,
) -> Scorecard:
    """Score every active manager and sales department (or one department) for a month.

    Args:
        crm: Validated data source.
        scheme: The KPI scheme.
        period: The month.
        department_id: Restrict to one department; all sales departments when omitted.
        shown: The indicators the scorecard's metric tables hold beside the scheme's own;
            every registered indicator when None. Scores do not depend on it.

    Returns:
        The scorecard of the month. For one department, the department's part of a scorecard
        `keep_scorecard` kept for the whole company, when there is one for the same scheme,
        month and indicators: scoring entities together or apart gives the same rows.
    """
    if department_id is not None:
        kept = crm.kept(_card_key(scheme, period, shown))
        if kept is not None and department_id in set(kept.departments["department_id"]):
            return restrict(kept, [department_id])
    managers = active_managers(crm, period)
    departments = pd.Index(
        managers["department_id"].drop_duplicates().sort_values(), name="department_id", dtype="str"
    )
    if department_id is not None:
        managers = managers.loc[managers["department_id"].eq(department_id)]
        departments = departments[departments == department_id]
    manager_index = pd.Index(managers["manager_id"], name="manager_id", dtype="str")
    tiers = managers.set_index("manager_id")["tier"]
    whole = department_id is None
    own_kpis, manager_metrics = _evaluate(
        crm, scheme, period, "manager", manager_index, tiers, shown=shown, whole=whole
    )
    department_kpis, department_metrics = _evaluate(
        crm,
        scheme,
        period,
        "department",
        departments,
        pd.Series(dtype="str"),
        targets=_summed_targets(own_kpis, managers),
        shown=shown,
        whole=whole,
    )
    manager_kpis = pd.concat(
        [own_kpis, _shared_department_rows(managers, department_kpis, scheme)], ignore_index=True
    )
    order = {kpi.key: n for n, (_, kpi, _) in enumerate(scheme.weighted_kpis())}
    manager_kpis = manager_kpis.sort_values(
        ["manager_id", "kpi"], key=lambda s: s.map(order) if s.name == "kpi" else s
    ).reset_index(drop=True)
    people = managers[["manager_id", "department_id", "tier"]].assign(
        # A manager without a name is shown by id, never as "nan".
        name=managers.get("name", managers["manager_id"]).fillna(managers["manager_id"])
    )
    return Scorecard(
        period=period,
        managers=people.merge(_scores(manager_kpis, "manager_id"), on="manager_id", how="left"),
        departments=_department_frame(crm, departments).merge(
            _scores(department_kpis, "department_id"), on="department_id", how="left"
        ),
        manager_kpis=manager_kpis,
        department_kpis=department_kpis,
        manager_metrics=manager_metrics,
        department_metrics=department_metrics,
    )


def _card_key(scheme: Scheme, period: pd.Period, shown: tuple[str, ...] | None) -> str:
    return f"scorecard {period} {shown!r} {scheme.model_dump_json()}"


def keep_scorecard(
    crm: CRM,
    scheme: Scheme,
    period: pd.Period,
    shown: tuple[str, ...] | None = None,
    card: Scorecard | None = None,
) -> None:
    """Score the month for the whole company once and keep the card with the source.

    Every later `score_period` of one department on the same source, scheme, month and ``shown``
    then takes its rows from this card instead of scoring again: a batch of department reports
    scores each month once, not once per report. A `card` scored already (by
    ``score_period(crm, scheme, period, None, shown)``, in another process say) is kept as it is.
    """
    if card is None:
        card = score_period(crm, scheme, period, None, shown)
    crm.keep(_card_key(scheme, period, shown), card)


def restrict(card: Scorecard, department_ids: Sequence[str]) -> Scorecard:
    """The scorecard of some of its departments: their managers', KPIs' and indicators' rows,
    in the card's order, renumbered from zero and typed as if the card had been scored for them.
    """
    chosen = list(department_ids)
    managers = card.managers.loc[card.managers["department_id"].isin(chosen)]
    ids = list(managers["manager_id"])

    def rows(frame: pd.DataFrame, column: str, keys: list[str]) -> pd.DataFrame:
        # A column such as ``met`` holds bools and None together only where some entity lacked
        # data; the chosen rows get the dtype scoring them alone would have given.
        return frame.loc[frame[column].isin(keys)].reset_index(drop=True).infer_objects()

    return Scorecard(
        period=card.period,
        managers=managers.reset_index(drop=True),
        departments=rows(card.departments, "department_id", chosen),
        manager_kpis=rows(card.manager_kpis, "manager_id", ids),
        department_kpis=rows(card.department_kpis, "department_id", chosen),
        manager_metrics=card.manager_metrics.loc[card.manager_metrics.index.isin(ids)],
        department_metrics=card.department_metrics.loc[card.department_metrics.index.isin(chosen)],
    )


def _department_frame(crm: CRM, ids: pd.Index) -> pd.DataFrame:
    names = pd.Series(ids, index=ids, dtype="str")
    if crm.departments is not None and "name" in crm.departments:
        known = crm.departments.set_index("department_id")["name"]
        names = ids.to_series().map(known).fillna(names)
    return pd.DataFrame({"department_id": ids.to_numpy(), "name": names.to_numpy()})


def json_value(value: Any) -> Any:
    """A table cell as plain JSON: NaN, NA and NaT are None; numpy scalars Python's; a period its
    text."""
    if isinstance(value, pd.Period):
        return str(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _kpi_records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    keep = [
        "kpi",
        "label",
        "goal",
        "metric",
        "level",
        "polarity",
        "actual",
        "baseline",
        "target",
        "met",
        "attainment",
        "weight",
    ]
    records = rows[keep].to_dict("records")
    return [{k: json_value(v) for k, v in record.items()} for record in records]


def _entity_records(
    frame: pd.DataFrame, key: str, kpis: pd.DataFrame, metrics: pd.DataFrame
) -> list[dict[str, Any]]:
    records = []
    for row in frame.to_dict("records"):
        entity = row[key]
        record = {k: json_value(v) for k, v in row.items()}
        record["metrics"] = {m: json_value(v) for m, v in metrics.loc[entity].items()}
        record["kpis"] = _kpi_records(kpis.loc[kpis[key].eq(entity)])
        records.append(record)
    return records


def scorecard_json(card: Scorecard) -> dict[str, Any]:
    """The scorecard as plain JSON data; "no data" is ``None``."""
    return {
        "period": f"{card.period:%Y-%m}",
        "managers": _entity_records(
            card.managers, "manager_id", card.manager_kpis, card.manager_metrics
        ),
        "departments": _entity_records(
            card.departments, "department_id", card.department_kpis, card.department_metrics
        ),
    }
