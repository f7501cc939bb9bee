"""Targets by tier over the quarter: how attainment spreads, and whether a tier's own target holds.

`quarter_attainment` shows, per KPI and tier group (a KPI whose target differs by tier has one
group per named tier and one for the other tiers), how far managers got towards the target over
the months and how many met it each month. Department-level KPIs are judged over the history's
department-months, as in `kpilib.tuning.target_calibration`.

`tier_justification` asks whether a tier's different target (the scheme's ``by_tier``, such as
20% growth for stars against 10% for everyone else) is borne out by history. The rule: a tier's
target is **justified** when the tier meets it about as often as the other tiers meet theirs,
within `JUSTIFIED_WITHIN` (15 percentage points). A higher bar for stars is fair when stars clear
it as often as the others clear theirs; when they clear it much less often the bar is set beyond
what they do, and when much more often it asks less of them than the others' target asks of the
others. With fewer than `tuning.MIN_OBSERVATIONS` manager-months with data in either group, or
fewer than `MIN_TIER_MANAGERS` managers in the tier (one star's luck is not a tier's history), there
is too little history to judge. The tier target that would be met as often as the others meet
theirs is read from the tier's own history and rounded as tuning rounds its proposals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.ticker import PercentFormatter

from kpilib.display import NO_DATA, fmt, fmt_diff, month_name
from kpilib.history import ScoreHistory, chosen_months
from kpilib.metrics import METRICS
from kpilib.params import Kpi, Scheme
from kpilib.plots import PALETTE, ReportFigure, literal, new_figure
from kpilib.tuning import (
    ALL_TIERS,
    MIN_OBSERVATIONS,
    OTHER_TIERS,
    attainment_space,
    meets,
    nice,
    target_text,
    tier_groups,
)

JUSTIFIED_WITHIN = 0.15  # a tier meeting its target within this share of the others is justified
MIN_TIER_MANAGERS = 3  # managers a tier needs before its own target is judged
QUANTILES = {"p10": 0.10, "p25": 0.25, "median": 0.50, "p75": 0.75, "p90": 0.90}

ATTAINMENT_COLUMNS = [
    "kpi",
    "label",
    "level",
    "metric",
    "target_type",
    "tier",
    "target",
    "n",
    *QUANTILES,
    "share_met",
]  # followed by one share-met column per month, named YYYY-MM

JUSTIFICATION_COLUMNS = [
    "kpi",
    "label",
    "metric",
    "target_type",
    "tier",
    "tier_target",
    "others_target",
    "tier_n",
    "tier_managers",
    "others_n",
    "tier_share_met",
    "others_share_met",
    "tier_median",
    "others_median",
    "others_at_tier_target",
    "equal_share_target",
    "equal_share",
    "justified",
    "sentence",
]


def _groups(
    history: ScoreHistory, scheme: Scheme, months: list[pd.Period]
) -> list[tuple[Kpi, str, pd.DataFrame]]:
    """Every KPI's rows over the months, split into its tier groups (as tuning splits them)."""
    managers = history.managers[["manager_id", "period", "tier"]]
    kpis = history.manager_kpis
    own = kpis.loc[kpis["level"].eq("manager") & kpis["period"].isin(months)]
    own = own.merge(managers, on=["manager_id", "period"], how="left")
    departments = history.department_kpis
    departments = departments.loc[departments["period"].isin(months)]
    groups = []
    for _, kpi, _ in scheme.weighted_kpis():
        if kpi.level == "manager":
            rows = own.loc[own["kpi"].eq(kpi.key)]
            split = tier_groups(kpi, rows["tier"])
        else:
            rows = departments.loc[departments["kpi"].eq(kpi.key)]
            split = [(ALL_TIERS, pd.Series(True, index=rows.index))]
        groups.extend((kpi, tier, rows.loc[members]) for tier, members in split)
    return groups


def _share_met(rows: pd.DataFrame) -> float:
    known = rows["met"].dropna()
    return float(known.astype(bool).mean()) if len(known) else math.nan


def _tier_target(kpi: Kpi, tier: str) -> float:
    return kpi.target.value_for(None if tier in (ALL_TIERS, OTHER_TIERS) else tier)


def quarter_attainment(
    history: ScoreHistory, scheme: Scheme, months: Sequence[pd.Period]
) -> pd.DataFrame:
    """Per KPI and tier group: attainment's spread over the months and the share meeting it.

    Args:
        history: Scored months holding `months`.
        scheme: The scheme the history was scored with.
        months: The months to judge (the quarter).

    Returns:
        One row per KPI and tier group (``ATTAINMENT_COLUMNS``): ``tier`` is ``all`` for a KPI
        without tier targets (and every department-level one), else a named tier or ``other
        tiers``; ``target`` in the target's own terms (a value, a growth rate or an increase);
        ``n`` manager-months (department-months for a department KPI) with data; quantiles
        ``p10`` to ``p90`` of attainment (capped as scored); ``share_met`` over all the months;
        then the share met in each month, one column per month named ``YYYY-MM`` (NaN: no
        data).

    Raises:
        ValueError: No months, or a month not in the history.
    """
    chosen = chosen_months(history, months)
    rows = []
    for kpi, tier, frame in _groups(history, scheme, chosen):
        known = frame.loc[frame["met"].notna()]
        attained = known["attainment"].dropna()
        row: dict[str, object] = {
            "kpi": kpi.key,
            "label": kpi.label,
            "level": kpi.level,
            "metric": kpi.metric,
            "target_type": kpi.target.type,
            "tier": tier,
            "target": _tier_target(kpi, tier),
            "n": len(known),
        }
        for name, q in QUANTILES.items():
            row[name] = float(attained.quantile(q)) if len(attained) else math.nan
        row["share_met"] = _share_met(known)
        for month in chosen:
            row[f"{month:%Y-%m}"] = _share_met(known.loc[known["period"].eq(month)])
        rows.append(row)
    return pd.DataFrame(rows, columns=[*ATTAINMENT_COLUMNS, *(f"{m:%Y-%m}" for m in chosen)])


def _month_columns(attainment: pd.DataFrame) -> list[str]:
    return [column for column in attainment.columns if column not in ATTAINMENT_COLUMNS]


def _judged(level: str) -> str:
    return f"{level}-months"


def quarter_attainment_table(attainment: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The attainment of `quarter_attainment` as text for a report table.

    Args:
        attainment: The table of `quarter_attainment`.
        currency: Currency of money targets.

    Returns:
        Columns KPI, Tier, Target, Judged on, Attainment P10, P25, Median, P75, P90, Met, then
        the share met in each month (headed by the month's name), every cell a string.
    """
    table = pd.DataFrame(
        {
            "KPI": attainment["label"].to_list(),
            "Tier": attainment["tier"].astype(str).to_list(),
            "Target": [
                target_text(value, kind, metric, currency)
                for value, kind, metric in zip(
                    attainment["target"],
                    attainment["target_type"],
                    attainment["metric"],
                    strict=True,
                )
            ],
            "Judged on": [
                f"{n} {_judged(level)}"
                for n, level in zip(attainment["n"], attainment["level"], strict=True)
            ],
        },
        dtype="str",
    )
    heads = {"p10": "Attainment P10", "p25": "P25", "median": "Median", "p75": "P75", "p90": "P90"}
    for name, head in heads.items():
        table[head] = [fmt(v, "share") for v in attainment[name]]
    table["Met"] = [fmt(v, "share") for v in attainment["share_met"]]
    for column in _month_columns(attainment):
        table[f"Met in {month_name(pd.Period(column, 'M'))}"] = [
            fmt(v, "share") for v in attainment[column]
        ]
    return table.astype("str")


def _equal_share_target(kpi: Kpi, values: pd.Series, share: float) -> tuple[float, float]:
    """The target the values would meet in about `share` of cases, and the share they do."""
    if len(values) < MIN_OBSERVATIONS or math.isnan(share):
        return math.nan, math.nan
    quantile = 1 - share if kpi.direction == "higher" else share
    unit = METRICS[kpi.metric].unit
    target = nice(float(values.quantile(quantile)), unit, kpi.target.type, kpi.direction)
    if kpi.target.type == "absolute" and kpi.direction == "higher" and target <= 0:
        return math.nan, math.nan  # a target met by doing nothing is no target (as in tuning)
    return target, float(meets(values, target, kpi.direction).mean())


def tier_justification(
    history: ScoreHistory, scheme: Scheme, months: Sequence[pd.Period], currency: str = "RUB"
) -> pd.DataFrame:
    """Whether each tier's own target is borne out by the tier's history (see the module).

    Args:
        history: Scored months holding `months`.
        scheme: The scheme the history was scored with.
        months: The months to judge (the 12 months ending with the quarter's last).
        currency: Currency of money targets in the sentences.

    Returns:
        One row per manager-level KPI with ``by_tier`` targets and each such tier
        (``JUSTIFICATION_COLUMNS``): the tier's and the other tiers' targets, manager-months
        with data (``tier_n``, ``others_n``), the share of them meeting their own target, the
        median result in the target's terms (``tier_median``, ``others_median``: e.g. growth
        over the baseline), ``others_at_tier_target`` (how often the other tiers' results would
        have met the tier's target: near the tier's own share, the tier performs no differently
        and the different target only moves the bar), ``equal_share_target`` (the tier target
        met as often as the others meet theirs) with ``equal_share`` (how often the tier's
        history meets it), ``justified`` (nullable boolean: NA with too little data) and a
        ``sentence``.

    Raises:
        ValueError: No months, or a month not in the history.
    """
    chosen = chosen_months(history, months)
    groups = _groups(history, scheme, chosen)
    rows = []
    for kpi, tier, frame in groups:
        if kpi.level != "manager" or tier in (ALL_TIERS, OTHER_TIERS):
            continue
        others = next(f for k, t, f in groups if k.key == kpi.key and t == OTHER_TIERS)
        rows.append(_justify(kpi, tier, frame, others, currency))
    frame = pd.DataFrame(rows, columns=JUSTIFICATION_COLUMNS)
    return frame.assign(justified=frame["justified"].astype("boolean"))


def _justify(
    kpi: Kpi, tier: str, mine: pd.DataFrame, others: pd.DataFrame, currency: str
) -> dict[str, object]:
    mine, others = mine.loc[mine["met"].notna()], others.loc[others["met"].notna()]
    mine_values = attainment_space(mine, kpi.target.type).dropna()
    other_values = attainment_space(others, kpi.target.type).dropna()
    tier_share, others_share = _share_met(mine), _share_met(others)
    target, share = _equal_share_target(kpi, mine_values, others_share)
    managers = int(mine["manager_id"].nunique()) if "manager_id" in mine else 0
    enough = min(len(mine), len(others)) >= MIN_OBSERVATIONS and managers >= MIN_TIER_MANAGERS
    justified = abs(tier_share - others_share) <= JUSTIFIED_WITHIN if enough else None
    row = {
        "kpi": kpi.key,
        "label": kpi.label,
        "metric": kpi.metric,
        "target_type": kpi.target.type,
        "tier": tier,
        "tier_target": kpi.target.value_for(tier),
        "others_target": kpi.target.value,
        "tier_n": len(mine),
        "tier_managers": managers,
        "others_n": len(others),
        "tier_share_met": tier_share,
        "others_share_met": others_share,
        "tier_median": float(mine_values.median()) if len(mine_values) else math.nan,
        "others_median": float(other_values.median()) if len(other_values) else math.nan,
        "others_at_tier_target": (
            float(meets(other_values, kpi.target.value_for(tier), kpi.direction).mean())
            if len(other_values)
            else math.nan
        ),
        "equal_share_target": target,
        "equal_share": share,
        "justified": justified,
    }
    return {**row, "sentence": _sentence(row, kpi, currency)}


def _sentence(row: dict, kpi: Kpi, currency: str) -> str:
    def text(value: float) -> str:
        if math.isnan(value):
            return NO_DATA
        return target_text(value, row["target_type"], row["metric"], currency)

    who = f"{str(row['tier']).capitalize()} managers"
    opening = (
        f"{kpi.label}: {who} met their target of {text(row['tier_target'])} in "
        f"{fmt(row['tier_share_met'], 'share')} of {row['tier_n']} manager-months; the other "
        f"managers met theirs ({text(row['others_target'])}) in "
        f"{fmt(row['others_share_met'], 'share')} of {row['others_n']}, and would have met "
        f"{text(row['tier_target'])} in {fmt(row['others_at_tier_target'], 'share')}."
    )
    if row["justified"] is None:
        return (
            f"{opening} Too little history to judge the tier's own target ({row['tier_managers']} "
            f"{str(row['tier'])} manager(s); at least {MIN_TIER_MANAGERS} managers and "
            f"{MIN_OBSERVATIONS} manager-months with data in each group are needed)."
        )
    stricter = (row["tier_target"] > row["others_target"]) == (kpi.direction == "higher")
    kind = (
        "the same"
        if row["tier_target"] == row["others_target"]
        else "the stricter"
        if stricter
        else "the easier"
    )
    medians = (
        f" {who}' median result was {text(row['tier_median'])}, the other managers' "
        f"{text(row['others_median'])}."
    )
    gap = fmt_diff(abs(row["tier_share_met"] - row["others_share_met"]), "share")
    if row["justified"]:
        verdict = (
            f" {kind.capitalize()} target is fair: they meet it about as often as the others "
            f"meet theirs (within {fmt_diff(JUSTIFIED_WITHIN, 'share')})."
        )
    elif row["tier_share_met"] < row["others_share_met"]:
        verdict = (
            f" {kind.capitalize()} target is not justified by their history: they meet it "
            f"{gap} less often than the others meet theirs."
        )
    else:
        verdict = (
            f" They meet {kind} target {gap} more often than the others meet theirs, so it asks "
            "less of them than the others' target asks of the others."
        )
    if not row["justified"] and not math.isnan(row["equal_share_target"]):
        verdict += (
            f" A target of {text(row['equal_share_target'])} would be met as often (in "
            f"{fmt(row['equal_share'], 'share')} of their manager-months)."
        )
    return opening + medians + verdict


def tier_table(justification: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The justification of `tier_justification` as text for a report table.

    Args:
        justification: The table of `tier_justification`.
        currency: Currency of money targets.

    Returns:
        Columns KPI, Tier, Target, Met, Others' target, Others met, Median, Others' median,
        Met as often at, and Justified (``yes``, ``no`` or ``too little data``), all strings.
    """

    def text(column: str) -> list[str]:
        return [
            NO_DATA if pd.isna(value) else target_text(value, kind, metric, currency)
            for value, kind, metric in zip(
                justification[column],
                justification["target_type"],
                justification["metric"],
                strict=True,
            )
        ]

    return pd.DataFrame(
        {
            "KPI": justification["label"].to_list(),
            "Tier": justification["tier"].astype(str).to_list(),
            "Target": text("tier_target"),
            "Met": [
                f"{fmt(share, 'share')} of {n}"
                for share, n in zip(
                    justification["tier_share_met"], justification["tier_n"], strict=True
                )
            ],
            "Others' target": text("others_target"),
            "Others met": [
                f"{fmt(share, 'share')} of {n}"
                for share, n in zip(
                    justification["others_share_met"], justification["others_n"], strict=True
                )
            ],
            "Median": text("tier_median"),
            "Others' median": text("others_median"),
            "Met as often at": text("equal_share_target"),
            "Justified": [
                "too little data" if pd.isna(v) else "yes" if v else "no"
                for v in justification["justified"]
            ],
        },
        dtype="str",
    )


def _tier_colours(tiers: list[str]) -> dict[str, object]:
    """Named tiers in shades of the profit blue, the other tiers (or ``all``) in revenue grey."""
    named = list(dict.fromkeys(tier for tier in tiers if tier not in (ALL_TIERS, OTHER_TIERS)))
    shades = sns.light_palette(PALETTE["profit"], n_colors=len(named) + 2, reverse=True)
    colours: dict[str, object] = {ALL_TIERS: PALETTE["profit"], OTHER_TIERS: PALETTE["revenue"]}
    return {**colours, **dict(zip(named, shades, strict=False))}


def attainment_chart(
    history: ScoreHistory, scheme: Scheme, months: Sequence[pd.Period]
) -> ReportFigure:
    """Share meeting each KPI's target per month, one panel per KPI, by tier where they differ.

    Args:
        history: Scored months holding `months`.
        scheme: The scheme the history was scored with.
        months: The months to show (the quarter).

    Raises:
        ValueError: No months, or a month not in the history.
    """
    attainment = quarter_attainment(history, scheme, months)
    columns = _month_columns(attainment)
    kpis = list(dict.fromkeys(attainment["kpi"]))
    span = f"{month_name(pd.Period(columns[0], 'M'))} to {month_name(pd.Period(columns[-1], 'M'))}"
    summary = "; ".join(
        f"{label}{'' if tier == ALL_TIERS else f' ({tier})'} {fmt(share, 'share')}"
        for label, tier, share in zip(
            attainment["label"], attainment["tier"], attainment["share_met"], strict=True
        )
    )
    alt = (
        f"Share of managers (departments, for department KPIs) meeting each KPI's target per "
        f"month from {span}, by tier where targets differ. Over the period: {summary}."
    )
    panels = (len(kpis) + 1) // 2
    figure = new_figure(9, 2.6 * panels + 0.6, alt)
    axes = figure.subplots(panels, 2, sharey=True, squeeze=False).ravel()
    colours = _tier_colours(list(attainment["tier"]))
    for ax, kpi in zip(axes, kpis, strict=False):
        mine = attainment.loc[attainment["kpi"].eq(kpi)]
        width = 0.8 / len(mine)
        for offset, row in enumerate(mine.to_dict("records")):
            positions = [n + (offset - (len(mine) - 1) / 2) * width for n in range(len(columns))]
            shares = [row[column] for column in columns]
            label = "all managers" if row["tier"] == ALL_TIERS else str(row["tier"])
            bars = ax.bar(
                positions,
                [0.0 if math.isnan(s) else s for s in shares],
                width=width,
                color=colours[row["tier"]],
                label=literal(pd.Series([label])).iloc[0],
            )
            marks = [NO_DATA if math.isnan(s) else f"{s:.0%}" for s in shares]
            ax.bar_label(bars, labels=marks, padding=2, fontsize="x-small")
        ax.set_xticks(range(len(columns)), labels=columns)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(0, 1.15)
        title = literal(pd.Series([mine["label"].iloc[0]])).iloc[0]
        title += " (departments)" if mine["level"].iloc[0] == "department" else ""
        ax.set(title=title, xlabel="", ylabel="Met")
        if len(mine) > 1:
            ax.legend(fontsize="x-small", loc="upper right")
    for ax in axes[len(kpis) :]:
        ax.set_visible(False)
    return figure
