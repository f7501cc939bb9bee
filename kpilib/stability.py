"""How the KPI scheme's targets and weights changed over a quarter, and attainment with them.

The working group fine-tunes the scheme every month, so the months of a quarter may have run on
different targets and weights. Each monthly run records the scheme it used in its results file
(``reports/monthly/<YYYY-MM>/<department_id>.kpis.json``, read by
`kpilib.io.read_recorded_results`). `schemes_in_use` takes the recorded scheme of every month and
department, or the current scheme file where none was recorded (the month never ran, or ran before
results recorded their scheme), and says which. `scheme_changes` lists what changed from one month
to the next; `score_in_use` scores each month and department under the scheme it ran on, and
`attainment_by_month` summarises how many managers met each KPI month by month.

Keys read from a recorded results file: ``scheme_definition`` (the scheme as
``Scheme.model_dump(mode="json", exclude_none=True)`` writes it; a key given as null counts as left
out) and, where present, ``period`` (``YYYY-MM``) and ``department_id``, which must name the
file's own month and department. A file without ``scheme_definition`` counts as not recorded.

Changes compare each month with the month before it in the sequence given: to see a change made
at the start of a quarter, include the month before the quarter. Targets are compared exactly as
stated in the schemes (values in their own terms: a value, a growth rate over the baseline, or an
increase over it); weights are each KPI's weight in the whole scheme (goal weight times its share
of the goal), so a goal's new weight shows as new weights of its KPIs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import ValidationError

from kpilib.display import fmt, fmt_signed, in_sentence, listing
from kpilib.errors import KpiError
from kpilib.history import HISTORY_METRICS, ScoreHistory, history_from
from kpilib.metrics import METRICS
from kpilib.params import Kpi, Scheme, Target
from kpilib.periods import quarter_months
from kpilib.schemas import CRM
from kpilib.scoring import Scorecard, restrict, score_period
from kpilib.tuning import ALL_TIERS, OTHER_TIERS

TERM_COLUMNS = [
    "kpi",
    "label",
    "goal",
    "level",
    "metric",
    "weight",
    "target_type",
    "tier",
    "target",
]
CHANGE_COLUMNS = [
    "department_id",
    "month",
    "kpi",
    "label",
    "what",
    "before",
    "after",
    "tier",
    "metric",
    "type_before",
    "type_after",
]
ATTAINMENT_COLUMNS = [
    "department_id",
    "department",
    "month",
    "kpi",
    "label",
    "share_met",
    "mean_attainment",
    "n",
]
TABLE_COLUMNS = [
    "Department",
    "KPI",
    "Month",
    "Scheme",
    "Target",
    "Weight",
    "Managers meeting it",
    "Mean attainment",
    "Managers with data",
    "Change",
]

TARGET, WEIGHT, ADDED, REMOVED, TARGET_TYPE = "target", "weight", "added", "removed", "target type"
DEFINITION = "definition"  # another setting of a KPI or of the whole scheme (see `scheme_changes`)
WHOLE_SCHEME = "(scheme)"  # the ``kpi`` of a change to a scheme-wide setting
_WEIGHT_TOLERANCE = 1e-9  # weights are products of stated shares: equal up to float rounding
_TARGET_TYPES = {
    "absolute": "a fixed value",
    "relative": "growth over the baseline",
    "increase": "an increase over the baseline",
}


@dataclass(frozen=True)
class SchemeInUse:
    """The scheme a department's month ran on, and where it comes from.

    Attributes:
        month: The month.
        department_id: The department.
        scheme: The scheme in use.
        source: ``recorded in reports/monthly/<YYYY-MM>/<department_id>.kpis.json``, or
            ``current scheme file (...)`` with the reason no recorded scheme was found.
    """

    month: pd.Period
    department_id: str
    scheme: Scheme
    source: str

    @property
    def recorded(self) -> bool:
        """Whether the scheme is the one recorded by the month's run."""
        return self.source.startswith("recorded")


def _without_none(value: Any) -> Any:
    """JSON data with every null-valued key left out (a null key means "not given")."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def _recorded_scheme(
    record: Mapping[str, Any], month: pd.Period, department_id: str, where: str
) -> Scheme:
    period, own = record.get("period"), record.get("department_id")
    if period is not None and str(period) != f"{month:%Y-%m}":
        raise KpiError(f"The recorded results {where} are for period {period}, not {month:%Y-%m}.")
    if own is not None and str(own) != department_id:
        raise KpiError(
            f"The recorded results {where} are for department {own}, not {department_id}."
        )
    try:
        return Scheme.model_validate(_without_none(record["scheme_definition"]))
    except ValidationError as error:
        problems = "\n".join(
            f"- {'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors()
        )
        raise KpiError(
            f"The scheme recorded for {department_id} in {month:%Y-%m} ({where}) is invalid:\n"
            f"{problems}"
        ) from None


def schemes_in_use(
    recorded: Mapping[tuple[pd.Period, str], dict | str],
    months: Sequence[pd.Period],
    department_ids: Sequence[str],
    current: Scheme,
) -> list[SchemeInUse]:
    """The scheme each department's month ran on: recorded where the run recorded it.

    Args:
        recorded: The parsed results files by (month, department), as
            `kpilib.io.read_recorded_results` returns them.
        months: The months, in any order.
        department_ids: The departments (every sales department for the company-wide report).
        current: The current scheme file's scheme, which stands in where nothing was recorded.

    Returns:
        One entry per department and month: departments in the order given, months oldest first.

    A file that cannot be read (given as the text of its problem), a recorded scheme that no
    longer validates, or a file naming another month or department is not used: the current file
    stands in and the source says why.
    """
    in_use = []
    for department_id in department_ids:
        for month in sorted(months):
            record = recorded.get((month, department_id))
            where = f"reports/monthly/{month:%Y-%m}/{department_id}.kpis.json"
            if record is None:
                reason = f"no recorded report for {month:%Y-%m}"
            elif isinstance(record, str):
                reason = f"the recorded report for {month:%Y-%m} is unusable: {record}"
            elif record.get("scheme_definition") is None:
                reason = f"the recorded report for {month:%Y-%m} does not record its scheme"
            else:
                try:
                    scheme = _recorded_scheme(record, month, department_id, where)
                except KpiError as error:
                    reason = f"the recorded report is unusable: {str(error).splitlines()[0]}"
                else:
                    source = f"recorded in {where}"
                    in_use.append(SchemeInUse(month, department_id, scheme, source))
                    continue
            in_use.append(
                SchemeInUse(month, department_id, current, f"current scheme file ({reason})")
            )
    return in_use


def _tier_values(target: Target) -> dict[str, float]:
    """The target's values by tier group: ``all``, or each named tier and ``other tiers``."""
    if not target.by_tier:
        return {ALL_TIERS: target.value}
    return {**{tier: target.by_tier[tier] for tier in sorted(target.by_tier)},
            OTHER_TIERS: target.value}  # fmt: skip


def scheme_terms(scheme: Scheme) -> pd.DataFrame:
    """The scheme's targets and weights: one row per KPI and tier group.

    Returns:
        ``TERM_COLUMNS``: the KPI's id, label, goal (name), level and metric; ``weight`` in the
        whole scheme; ``target_type``; ``tier`` (``all``, or each tier of ``by_tier`` and
        ``other tiers``); ``target`` (the stated value in the target's own terms).
    """
    rows = [
        {
            "kpi": kpi.key,
            "label": kpi.label,
            "goal": goal.name,
            "level": kpi.level,
            "metric": kpi.metric,
            "weight": weight,
            "target_type": kpi.target.type,
            "tier": tier,
            "target": value,
        }
        for goal, kpi, weight in scheme.weighted_kpis()
        for tier, value in _tier_values(kpi.target).items()
    ]
    return pd.DataFrame(rows, columns=TERM_COLUMNS)


def _number(value: float) -> str:
    return fmt(value, "count")


def _kpi_settings(kpi: Kpi) -> dict[str, str]:
    """A KPI's settings besides target and weight, as text (what `DEFINITION` rows compare)."""
    settings = {
        "metric": kpi.metric,
        "level": kpi.level,
        "better": kpi.direction,
        "cap": "scheme default" if kpi.cap is None else _number(kpi.cap),
        "drives": kpi.drives or "the default result",
    }
    return {**settings, **{name: _number(value) for name, value in sorted(kpi.params.items())}}


def _scheme_settings(scheme: Scheme) -> dict[str, tuple[str, str]]:
    """Scheme-wide settings as (label, text)."""
    baseline = scheme.baseline
    return {
        "technical_hour_cost": ("Technical hour cost", _number(scheme.technical_hour_cost)),
        "baseline": (
            "Baseline",
            "the same month a year ago"
            if baseline.method == "year_ago"
            else f"the {baseline.months} months before",
        ),
        "default_cap": ("Attainment cap", _number(scheme.default_cap)),
    }


def _change(
    department_id: str,
    month: pd.Period,
    kpi: Kpi,
    what: str,
    before: object,
    after: object,
    tier: str = "",
    types: tuple[str | None, str | None] = (None, None),
) -> dict[str, Any]:
    return {
        "department_id": department_id,
        "month": month,
        "kpi": kpi.key,
        "label": kpi.label,
        "what": what,
        "before": before,
        "after": after,
        "tier": tier,
        "metric": kpi.metric,
        "type_before": types[0],
        "type_after": types[1],
    }


def _kpi_changes(
    department_id: str, month: pd.Period, old: tuple[Kpi, float], new: tuple[Kpi, float]
) -> list[dict[str, Any]]:
    (was, old_weight), (kpi, weight) = old, new
    types = (was.target.type, kpi.target.type)
    rows = []
    retyped = types[0] != types[1]
    if retyped:
        rows.append(_change(department_id, month, kpi, TARGET_TYPE, *types, types=types))
    tiers = sorted(set(was.target.by_tier) | set(kpi.target.by_tier))
    plain = OTHER_TIERS if tiers else ALL_TIERS
    for tier in [*tiers, plain]:
        own = None if tier == plain else tier
        before, after = was.target.value_for(own), kpi.target.value_for(own)
        if retyped or before != after:
            what = TARGET if own is None else f"{TARGET} ({tier})"
            rows.append(_change(department_id, month, kpi, what, before, after, tier, types))
    if not math.isclose(old_weight, weight, rel_tol=0, abs_tol=_WEIGHT_TOLERANCE):
        rows.append(_change(department_id, month, kpi, WEIGHT, old_weight, weight, types=types))
    before_settings, after_settings = _kpi_settings(was), _kpi_settings(kpi)
    for name in [*before_settings, *(k for k in after_settings if k not in before_settings)]:
        before = before_settings.get(name, "not set")
        after = after_settings.get(name, "not set")
        if before != after:
            rows.append(
                _change(department_id, month, kpi, DEFINITION, f"{name} {before}",
                        f"{name} {after}", types=types)
            )  # fmt: skip
    return rows


def _scheme_changes(
    department_id: str, month: pd.Period, old: Scheme, new: Scheme
) -> list[dict[str, Any]]:
    before_kpis = {kpi.key: (kpi, weight) for _, kpi, weight in old.weighted_kpis()}
    after_kpis = {kpi.key: (kpi, weight) for _, kpi, weight in new.weighted_kpis()}
    rows = []
    for key, (kpi, weight) in after_kpis.items():
        types = (None, kpi.target.type)
        if key not in before_kpis:
            rows.append(_change(department_id, month, kpi, ADDED, math.nan, weight, types=types))
        else:
            rows.extend(_kpi_changes(department_id, month, before_kpis[key], (kpi, weight)))
    for key, (kpi, weight) in before_kpis.items():
        if key not in after_kpis:
            types = (kpi.target.type, None)
            rows.append(_change(department_id, month, kpi, REMOVED, weight, math.nan, types=types))
    old_settings, new_settings = _scheme_settings(old), _scheme_settings(new)
    for name, (label, before) in old_settings.items():
        after = new_settings[name][1]
        if before != after:
            rows.append(
                {
                    **dict.fromkeys(CHANGE_COLUMNS),
                    "department_id": department_id,
                    "month": month,
                    "kpi": WHOLE_SCHEME,
                    "label": label,
                    "what": DEFINITION,
                    "before": before,
                    "after": after,
                    "tier": "",
                }
            )
    return rows


def scheme_changes(in_use: Sequence[SchemeInUse]) -> pd.DataFrame:
    """What changed in each department's scheme from one month to the next.

    Args:
        in_use: The schemes in use (`schemes_in_use`); each department's months are compared in
            order, each with the month before it in the sequence.

    Returns:
        ``CHANGE_COLUMNS``, one row per change, dated by the month the new value applied from.
        ``what`` is ``target`` (the plain value, for ``all`` or ``other tiers``), ``target
        (<tier>)`` (a tier's own value, e.g. ``target (star)``), ``weight`` (in the whole
        scheme), ``added`` and ``removed`` (``before``/``after`` the KPI's weight, NaN on the
        side without it), ``target type`` (``before``/``after`` the types; the values of every
        tier group follow as ``target`` rows in their own terms), or ``definition`` (another
        setting, ``before``/``after`` as text: a metric parameter such as ``min_contract``,
        polarity, cap, level, result driven, or with ``kpi`` ``(scheme)`` the hour cost, baseline
        or default cap). ``type_before``/``type_after`` are the target types on each side (for
        formatting values). Empty, with these columns, when nothing changed.
    """
    by_department: dict[str, list[SchemeInUse]] = {}
    for item in in_use:
        by_department.setdefault(item.department_id, []).append(item)
    rows = []
    for department_id, items in by_department.items():
        ordered = sorted(items, key=lambda item: item.month)
        for before, after in zip(ordered, ordered[1:], strict=False):
            # A month read with the current file says nothing of what changed around it.
            if before.recorded and after.recorded and before.scheme != after.scheme:
                rows.extend(_scheme_changes(department_id, after.month, before.scheme,
                                            after.scheme))  # fmt: skip
    frame = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    frame["before"] = frame["before"].astype(object)
    frame["after"] = frame["after"].astype(object)
    return frame


def _score_month(
    crm: CRM, month: pd.Period, items: Sequence[SchemeInUse], shown: tuple[str, ...] | None
) -> Scorecard:
    """One month: departments on the same scheme scored together, then stacked."""
    groups: list[tuple[Scheme, list[str]]] = []
    for item in sorted(items, key=lambda item: item.department_id):
        group = next((g for g in groups if g[0] == item.scheme), None)
        if group is None:
            groups.append((item.scheme, [item.department_id]))
        else:
            group[1].append(item.department_id)
    cards = [
        score_period(crm, scheme, month, ids[0], shown)
        if len(ids) == 1
        else restrict(score_period(crm, scheme, month, None, shown), ids)
        for scheme, ids in groups
    ]
    return cards[0] if len(cards) == 1 else _merge_cards(month, cards)


def _merge_cards(period: pd.Period, cards: Sequence[Scorecard]) -> Scorecard:
    def stacked(field: str) -> pd.DataFrame:
        frames = [getattr(card, field) for card in cards]
        keep_index = field.endswith("_metrics")
        return pd.concat(frames, ignore_index=not keep_index)

    return Scorecard(
        period=period,
        managers=stacked("managers"),
        departments=stacked("departments"),
        manager_kpis=stacked("manager_kpis"),
        department_kpis=stacked("department_kpis"),
        manager_metrics=stacked("manager_metrics"),
        department_metrics=stacked("department_metrics"),
    )


def score_in_use(
    crm: CRM,
    in_use: Sequence[SchemeInUse],
    shown: tuple[str, ...] | None = HISTORY_METRICS,
) -> ScoreHistory:
    """Score each department's month under the scheme it ran on.

    A history scored with one (the current) scheme judges every month against today's targets,
    which hides what a change of target did; this one judges each month against its own.

    Args:
        crm: Validated data source.
        in_use: The schemes in use (`schemes_in_use`).
        shown: The indicators kept beside each scheme's own (see `kpilib.history.score_months`).

    Returns:
        The history of the months, oldest first; each month's scorecard holds every department
        of `in_use` (those with managers that month), each scored with its own scheme;
        departments on the same scheme are scored together, as `score_months` would.
    """
    by_month: dict[pd.Period, list[SchemeInUse]] = {}
    for item in in_use:
        by_month.setdefault(item.month, []).append(item)
    return history_from(
        [_score_month(crm, month, items, shown) for month, items in by_month.items()]
    )


def attainment_by_month(history: ScoreHistory, months: Sequence[pd.Period]) -> pd.DataFrame:
    """Per department, month and KPI: how many managers met it and their mean attainment.

    The managers' KPI rows of the history are summarised as they were scored: pass
    `score_in_use` to judge each month against the targets it ran on, or a history scored with
    one scheme to judge every month against that scheme's targets. A department-level KPI (a
    shared goal) counts once per manager, as it enters every manager's score.

    Args:
        history: Scored months.
        months: The months to summarise; each must be in the history.

    Returns:
        ``ATTAINMENT_COLUMNS``: ``department`` is the department's name, ``share_met`` the share
        of the managers with data who met the KPI, ``mean_attainment`` their mean attainment and
        ``n`` how many managers had data (NaN shares when none had). Rows by department, month,
        then the KPIs in the scheme's order.

    Raises:
        KeyError: A month is not in the history.
    """
    missing = [f"{month:%Y-%m}" for month in months if month not in history.months]
    if missing:
        raise KeyError(f"{', '.join(missing)} not among the history's months")
    kpis = history.manager_kpis
    rows = kpis.loc[kpis["period"].isin(list(months))].merge(
        history.managers[["manager_id", "period", "department_id"]],
        on=["manager_id", "period"],
        how="left",
    )
    names = dict(
        zip(history.departments["department_id"], history.departments["name"], strict=True)
    )
    order = {kpi: n for n, kpi in enumerate(kpis["kpi"].drop_duplicates())}
    records = []
    for (department_id, month, kpi), group in rows.groupby(
        ["department_id", "period", "kpi"], sort=False
    ):
        met = group["met"].dropna().astype(bool)
        records.append(
            {
                "department_id": department_id,
                "department": str(names.get(department_id, department_id)),
                "month": month,
                "kpi": kpi,
                "label": group["label"].iloc[0],
                "share_met": float(met.mean()) if len(met) else math.nan,
                "mean_attainment": float(group["attainment"].mean()),
                "n": len(met),
            }
        )
    frame = pd.DataFrame(records, columns=ATTAINMENT_COLUMNS)
    if frame.empty:
        return frame
    frame = frame.assign(_order=frame["kpi"].map(order))
    frame = frame.sort_values(["department_id", "month", "_order"], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


# --- sentences and the table ------------------------------------------------------------------


def _span(months: Sequence[pd.Period]) -> str:
    months = sorted(set(months))
    quarter = months[0].asfreq("Q")
    if months == quarter_months(quarter):
        return f"in {quarter}"
    if len(months) == 1:
        return f"in {months[0]:%Y-%m}"
    return f"from {months[0]:%Y-%m} to {months[-1]:%Y-%m}"


def target_text(value: object, target_type: str | None, metric: str, currency: str) -> str:
    """A stated target for people: ``2``, ``+10.0% over the baseline``, ``95.0%``."""
    if target_type == "relative":
        return f"{fmt_signed(value, 'share')} over the baseline"
    unit = METRICS[metric].unit if metric in METRICS else "count"
    if target_type == "increase":
        return f"{fmt_signed(value, unit, currency)} over the baseline"
    return fmt(value, unit, currency)


def _target_move(row: Mapping[str, Any], currency: str) -> str:
    """``from 2 to 3``; growth targets ``from +10.0% to +15.0% over the baseline``."""
    types, metric = (row["type_before"], row["type_after"]), row["metric"]
    if types[0] == types[1] and types[0] in ("relative", "increase"):
        unit = "share" if types[0] == "relative" else METRICS[metric].unit
        before = fmt_signed(row["before"], unit, currency)
        return f"from {before} to {fmt_signed(row['after'], unit, currency)} over the baseline"
    before = target_text(row["before"], types[0], metric, currency)
    after = target_text(row["after"], types[1], metric, currency)
    return f"from {before} to {after}"


def _harder(row: Mapping[str, Any], direction: str) -> bool:
    rose = float(row["after"]) > float(row["before"])
    return rose if direction == "higher" else not rose


@dataclass(frozen=True)
class _Shares:
    """Pooled share of managers meeting each KPI, by (department, month, KPI)."""

    met: dict[tuple[str, pd.Period, str], tuple[float, int]]

    def share(self, departments: Sequence[str], month: pd.Period, kpi: str) -> float:
        found = [self.met.get((d, month, kpi), (math.nan, 0)) for d in departments]
        total = sum(n for share, n in found if n)
        if not total:
            return math.nan
        return sum(share * n for share, n in found if n) / total


def _shares(attainment: pd.DataFrame) -> _Shares:
    return _Shares(
        {
            (d, m, k): (float(s), int(n))
            for d, m, k, s, n in zip(
                attainment["department_id"], attainment["month"], attainment["kpi"],
                attainment["share_met"], attainment["n"], strict=True,
            )
        }
    )  # fmt: skip


def _previous(in_use: Sequence[SchemeInUse]) -> dict[tuple[str, pd.Period], SchemeInUse]:
    """For each (department, month), the entry of the month before it in the sequence."""
    by_department: dict[str, list[SchemeInUse]] = {}
    for item in in_use:
        by_department.setdefault(item.department_id, []).append(item)
    before = {}
    for department_id, items in by_department.items():
        ordered = sorted(items, key=lambda item: item.month)
        for old, new in zip(ordered, ordered[1:], strict=False):
            before[(department_id, new.month)] = old
    return before


def _hashable(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _directions(in_use: Sequence[SchemeInUse]) -> dict[tuple[str, pd.Period, str], str]:
    return {
        (item.department_id, item.month, kpi.key): kpi.direction
        for item in in_use
        for _, kpi, _ in item.scheme.weighted_kpis()
    }


def _names(attainment: pd.DataFrame, in_use: Sequence[SchemeInUse]) -> dict[str, str]:
    names = {item.department_id: item.department_id for item in in_use}
    if "department" in attainment:
        names.update(zip(attainment["department_id"], attainment["department"], strict=True))
    return names


def _change_sentences(
    in_use: Sequence[SchemeInUse],
    changes: pd.DataFrame,
    attainment: pd.DataFrame,
    currency: str,
) -> list[str]:
    departments = list(dict.fromkeys(item.department_id for item in in_use))
    names = _names(attainment, in_use)
    shares = _shares(attainment)
    previous = _previous(in_use)
    directions = _directions(in_use)
    # The same change in several departments is one sentence about all of them.
    groups: dict[tuple[Any, ...], list[str]] = {}
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in changes.to_dict("records"):
        key = (row["month"], row["kpi"], row["what"], row["tier"],
               _hashable(row["before"]), _hashable(row["after"]))  # fmt: skip
        groups.setdefault(key, []).append(row["department_id"])
        first.setdefault(key, row)
    by_subject: dict[tuple[pd.Period, tuple[str, ...]], list[dict[str, Any]]] = {}
    for key, owners in groups.items():
        by_subject.setdefault((key[0], tuple(owners)), []).append(first[key])
    sentences = []
    for (month, owners), rows in sorted(
        by_subject.items(), key=lambda item: (item[0][0], departments.index(item[0][1][0]))
    ):
        if len(owners) == len(departments) > 1:
            subject = "Every department"
        else:
            subject = listing([names[d] for d in owners])
        before = previous[(owners[0], month)].month

        def moved(
            kpi: str,
            month: pd.Period = month,
            before: pd.Period = before,
            owners: tuple[str, ...] = owners,
        ) -> str:
            old, new = shares.share(owners, before, kpi), shares.share(owners, month, kpi)
            return f"went from {fmt(old, 'share')} in {before:%Y-%m} to {fmt(new, 'share')}"

        weights = [row for row in rows if row["what"] == WEIGHT]
        for row in rows:
            what, label = row["what"], row["label"]
            if what in (TARGET_TYPE, WEIGHT):
                continue
            if what.startswith(TARGET):
                who = "" if row["tier"] in (ALL_TIERS, "") else (
                    " for managers of other tiers" if row["tier"] == OTHER_TIERS
                    else f" for {row['tier']} managers"
                )  # fmt: skip
                if row["type_before"] != row["type_after"]:
                    verb, note = "changed", (
                        f" (from {_TARGET_TYPES.get(row['type_before'], row['type_before'])} to "
                        f"{_TARGET_TYPES.get(row['type_after'], row['type_after'])})"
                    )  # fmt: skip
                else:
                    rose = float(row["after"]) > float(row["before"])
                    direction = directions.get((owners[0], month, row["kpi"]), "higher")
                    hard = "harder" if _harder(row, direction) else "easier"
                    article = "a" if hard == "harder" else "an"
                    verb, note = ("raised" if rose else "lowered"), f" ({article} {hard} target)"
                sentences.append(
                    f"{subject} {verb} the {in_sentence(label)} target{who} "
                    f"{_target_move(row, currency)} in {month:%Y-%m}{note}; the share of "
                    f"managers{' (all tiers)' if who else ''} meeting it "
                    f"{moved(row['kpi'])}."
                )
            elif what == ADDED:
                sentences.append(
                    f"{subject} added the KPI {label} (weight {fmt(row['after'], 'share')}) in "
                    f"{month:%Y-%m}; {fmt(shares.share(owners, month, row['kpi']), 'share')} "
                    "of managers met it that month."
                )
            elif what == REMOVED:
                sentences.append(
                    f"{subject} removed the KPI {label} (weight {fmt(row['before'], 'share')}) "
                    f"in {month:%Y-%m}."
                )
            elif row["kpi"] == WHOLE_SCHEME:
                sentences.append(
                    f"{subject} changed the scheme's {in_sentence(label)} in {month:%Y-%m} from "
                    f"{row['before']} to {row['after']}."
                )
            else:
                sentences.append(
                    f"{subject} changed how {in_sentence(label)} is measured in {month:%Y-%m}: "
                    f"{row['before']} became {row['after']}."
                )
        if weights:
            parts = [
                f"{in_sentence(row['label'])} from {fmt(row['before'], 'share')} to "
                f"{fmt(row['after'], 'share')}"
                for row in weights
            ]
            # A KPI given more weight: did more managers meet it? (unless its target moved too,
            # which the target's own sentence already answers)
            retargeted = {row["kpi"] for row in rows if row["what"].startswith(TARGET)}
            risen = [
                f"{in_sentence(row['label'])} {moved(row['kpi'])}"
                for row in weights
                if float(row["after"]) > float(row["before"]) and row["kpi"] not in retargeted
            ]
            tail = f"; the share of managers meeting {', '.join(risen)}" if risen else ""
            sentences.append(
                f"{subject} re-weighted the KPIs in {month:%Y-%m}: {', '.join(parts)}{tail}."
            )
    return sentences


def _fallback_sentence(
    in_use: Sequence[SchemeInUse], names: Mapping[str, str], label: str, span: str
) -> str | None:
    months: dict[str, list[pd.Period]] = {}
    for item in in_use:
        months.setdefault(item.department_id, [])
        if not item.recorded:
            months[item.department_id].append(item.month)
    if not any(months.values()):
        return None
    stands_in = f"the current scheme file '{label}' stands in"
    if all(not item.recorded for item in in_use):
        return (
            f"No month {span} has a recorded report of the "
            f"scheme it ran on, so {stands_in} for every month: changes of targets and weights "
            "made during the period cannot be seen."
        )
    by_months: dict[tuple[pd.Period, ...], list[str]] = {}
    for department_id, missing in months.items():
        if missing:
            by_months.setdefault(tuple(sorted(missing)), []).append(names[department_id])
    parts = [
        f"{listing([f'{m:%Y-%m}' for m in missing])} ("
        + ("every department" if len(who) == len(months) > 1 else listing(who))
        + ")"
        for missing, who in by_months.items()
    ]
    return (
        f"No recorded report gives the scheme in use for {'; '.join(parts)}, so {stands_in} "
        "there, and changes of targets and weights to and from those months cannot be seen."
    )


def stability_sentences(
    in_use: Sequence[SchemeInUse],
    changes: pd.DataFrame,
    attainment: pd.DataFrame,
    period: pd.Period | str | None = None,
    *,
    scheme_label: str | None = None,
    currency: str = "RUB",
) -> list[str]:
    """How targets and weights changed over the months, in plain sentences with the numbers.

    Args:
        in_use: The schemes in use (`schemes_in_use`).
        changes: Their changes (`scheme_changes`).
        attainment: `attainment_by_month` over the same months (from `score_in_use`, so that
            each month is judged against its own targets); its department names name the
            departments.
        period: What the months are called in sentences (the quarter, ``2026Q3``); when
            omitted, the quarter if they are one, else ``from <first> to <last>``.
        scheme_label: How to call the current scheme file where it stands in (its file name,
            say); the scheme's name when omitted.
        currency: The reporting currency.

    Returns:
        A sentence per change (the same change in several departments is one sentence), each with
        the share of managers meeting the KPI the month before and the month of the change; or
        one sentence saying nothing changed; then one naming the months without a recorded
        scheme, where the current scheme file stood in.
    """
    if not in_use:
        return []
    names = _names(attainment, in_use)
    fallback = next((item.scheme for item in in_use if not item.recorded), None)
    label = scheme_label or (fallback.name if fallback is not None else "")
    span = f"in {period}" if period is not None else _span([item.month for item in in_use])
    closing = _fallback_sentence(in_use, names, label, span)
    if all(not item.recorded for item in in_use):
        return [closing] if closing else []
    if changes.empty:
        recorded = sorted({item.scheme.name for item in in_use if item.recorded})
        quoted = listing([f"'{name}'" for name in recorded])
        if closing is None:
            runs = (
                f"every month ran on the recorded scheme {quoted}"
                if len(recorded) == 1
                else f"every month ran on recorded schemes with the same terms ({quoted})"
            )
            sentences = [f"Targets and weights did not change {span} ({runs})."]
        else:
            sentences = [
                f"Targets and weights did not change {span} as far as the recorded reports show "
                f"(recorded scheme {quoted})."
            ]
    else:
        sentences = _change_sentences(in_use, changes, attainment, currency)
    return [*sentences, closing] if closing else sentences


def _stated_target(kpi: Kpi, currency: str) -> str:
    text = target_text(kpi.target.value, kpi.target.type, kpi.metric, currency)
    tiers = [
        f"{tier}: {target_text(value, kpi.target.type, kpi.metric, currency)}"
        for tier, value in sorted(kpi.target.by_tier.items())
    ]
    return "; ".join([text, *tiers])


def _change_text(row: Mapping[str, Any], currency: str) -> str:
    what = row["what"]
    if what == ADDED:
        return "added"
    if what == REMOVED:
        return "removed"
    if what == WEIGHT:
        return f"weight {fmt(row['before'], 'share')} \u2192 {fmt(row['after'], 'share')}"
    if what == TARGET_TYPE:
        return f"target type {row['before']} \u2192 {row['after']}"
    if what.startswith(TARGET):
        before = target_text(row["before"], row["type_before"], row["metric"], currency)
        after = target_text(row["after"], row["type_after"], row["metric"], currency)
        return f"{what} {before} \u2192 {after}"
    if row["kpi"] == WHOLE_SCHEME:
        return f"{in_sentence(row['label'])} {row['before']} \u2192 {row['after']}"
    return f"{row['before']} \u2192 {row['after']}"


def stability_table(
    changes: pd.DataFrame,
    attainment: pd.DataFrame,
    in_use: Sequence[SchemeInUse],
    currency: str = "RUB",
) -> pd.DataFrame:
    """Per department, KPI and month: the target and weight in use, attainment, and the changes.

    Args:
        changes: `scheme_changes` of `in_use`.
        attainment: `attainment_by_month` over the same months.
        in_use: The schemes in use, which give each month's targets and weights.
        currency: The reporting currency.

    Returns:
        ``TABLE_COLUMNS``, every cell text: ``Scheme`` says whether the month's scheme was
        recorded or the current file stood in; ``Change`` lists the month's changes against the
        month before (``target 2 → 3``, ``weight 30.0% → 40.0%``, ``added``, ``removed``); a KPI
        removed that month has a row with empty target and weight; scheme-wide changes are rows
        of KPI ``(whole scheme)``.
    """
    names = _names(attainment, in_use)
    figures = {
        (d, m, k): (s, a, n)
        for d, m, k, s, a, n in zip(
            attainment["department_id"], attainment["month"], attainment["kpi"],
            attainment["share_met"], attainment["mean_attainment"], attainment["n"], strict=True,
        )
    }  # fmt: skip
    notes: dict[tuple[str, pd.Period, str], list[str]] = {}
    labels: dict[str, str] = {}
    for row in changes.to_dict("records"):
        key = (row["department_id"], row["month"], row["kpi"])
        notes.setdefault(key, []).append(_change_text(row, currency))
        labels.setdefault(row["kpi"], row["label"])
    rows = []
    departments = list(dict.fromkeys(item.department_id for item in in_use))
    for department_id in departments:
        items = sorted(
            (item for item in in_use if item.department_id == department_id),
            key=lambda item: item.month,
        )
        kpis: dict[str, None] = {}
        for item in items:
            kpis.update(dict.fromkeys(kpi.key for _, kpi, _ in item.scheme.weighted_kpis()))
        keys = [*kpis, *(k for k in labels if k not in kpis and k != WHOLE_SCHEME)]
        if any(k[0] == department_id and k[2] == WHOLE_SCHEME for k in notes):
            keys.append(WHOLE_SCHEME)
        for key in keys:
            for item in items:
                own = {kpi.key: (kpi, weight) for _, kpi, weight in item.scheme.weighted_kpis()}
                change = notes.get((department_id, item.month, key), [])
                if key not in own and not change:
                    continue
                kpi, weight = own.get(key, (None, math.nan))
                share, mean, n = figures.get((department_id, item.month, key), (math.nan,) * 3)
                rows.append(
                    {
                        "Department": names[department_id],
                        "KPI": kpi.label if kpi is not None else (
                            "(whole scheme)" if key == WHOLE_SCHEME else labels.get(key, key)
                        ),
                        "Month": f"{item.month:%Y-%m}",
                        "Scheme": "recorded" if item.recorded else "current file",
                        "Target": _stated_target(kpi, currency) if kpi is not None else "",
                        "Weight": fmt(weight, "share") if kpi is not None else "",
                        "Managers meeting it": fmt(share, "share"),
                        "Mean attainment": fmt(mean, "share"),
                        "Managers with data": fmt(n, "count"),
                        "Change": "; ".join(change),
                    }
                )  # fmt: skip
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
