"""Fine-tuning proposals: targets to recalibrate, weights that carry no variance, and what-ifs.

Over recent months of scored history, a target that nearly every manager beats rewards nothing
and one that nearly nobody reaches motivates nobody. `target_calibration` finds both and proposes
a target from history: the value that the share ``aim`` of past manager-months reached, in the
target's own terms (an absolute value, a growth rate over the baseline, or an increase over it).
`weight_variance` finds KPIs whose attainment is the same for everyone, so their weight adds a
constant to every score. `whatif` re-scores past months under another scheme.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kpilib.display import fmt
from kpilib.history import ScoreHistory, history_from, score_months
from kpilib.metrics import METRICS
from kpilib.monthly import MonthlyReport
from kpilib.params import Kpi, Scheme, Target
from kpilib.schemas import CRM

EASY = 0.9  # a target met in at least this share of manager-months is "nearly everyone beats it"
HARD = 0.1  # met in at most this share: "nearly no one reaches it"
AIM = 0.6  # a recalibrated target is met in about this share of past manager-months
MIN_OBSERVATIONS = 6  # fewer manager-months with data than this: too little to judge
FLAT = 0.02  # attainment varying less than this (standard deviation) carries no variance
ALL_TIERS = "all"
OTHER_TIERS = "other tiers"

CALIBRATION_COLUMNS = [
    "kpi",
    "level",
    "label",
    "metric",
    "tier",
    "target_type",
    "current",
    "observations",
    "share_met",
    "verdict",
    "proposed",
    "expected_share",
]


def attainment_space(rows: pd.DataFrame, target_type: str) -> pd.Series:
    """Each row's actual in the terms of its target: value, growth rate or increase."""
    if target_type == "absolute":
        return rows["actual"]
    base = (
        rows["baseline"].where(rows["baseline"] > 0)
        if target_type == "relative"
        else (rows["baseline"])
    )
    if target_type == "relative":
        return rows["actual"] / base - 1
    return rows["actual"] - base


def nice(value: float, unit: str, target_type: str, polarity: str) -> float:
    """Round a proposed target to what a scheme would state; counts stay whole numbers."""
    if math.isnan(value):
        return value
    if target_type == "relative":
        return round(value, 2)
    if unit == "count":
        return float(math.ceil(value) if polarity == "higher" else math.floor(value))
    if unit == "share":
        return round(value, 2)
    if unit in ("days", "hours"):
        return round(value * 2) / 2
    if value == 0:
        return 0.0
    digits = 2 - int(math.floor(math.log10(abs(value))))
    return round(value, digits)


def meets(values: pd.Series, target: float, polarity: str) -> pd.Series:
    """Whether each value meets the target, in the KPI's direction."""
    return values >= target if polarity == "higher" else values <= target


def tier_groups(kpi: Kpi, tiers: pd.Series) -> list[tuple[str, pd.Series]]:
    """The KPI's tier groups with their masks over `tiers`: each named tier, then the others."""
    if not kpi.target.by_tier:
        return [(ALL_TIERS, pd.Series(True, index=tiers.index))]
    groups = [(tier, tiers.eq(tier)) for tier in sorted(kpi.target.by_tier)]
    others = ~tiers.isin(list(kpi.target.by_tier))
    return [*groups, (OTHER_TIERS, others)]


def target_calibration(
    history: ScoreHistory,
    scheme: Scheme,
    easy: float = EASY,
    hard: float = HARD,
    aim: float = AIM,
) -> pd.DataFrame:
    """Per KPI (and tier, where the target differs by tier): how often it was met, and a proposal.

    Manager-level KPIs are judged over manager-months, department-level ones over the history's
    department-months.

    Returns:
        One row per KPI and tier group (``CALIBRATION_COLUMNS``). ``verdict`` is ``too easy``,
        ``too hard``, ``fine`` or ``too little data``; ``proposed`` (in the target's own terms:
        a value, a growth rate or an increase) and ``expected_share`` (the share of past
        manager-months that would have met it) are given for too easy and too hard targets.
    """
    managers = history.managers[["manager_id", "period", "tier"]]
    own = history.manager_kpis.loc[history.manager_kpis["level"].eq("manager")]
    own = own.merge(managers, on=["manager_id", "period"], how="left")
    rows = []
    for _, kpi, _ in scheme.weighted_kpis():
        if kpi.level == "manager":
            frame = own.loc[own["kpi"].eq(kpi.key)]
            groups = tier_groups(kpi, frame["tier"])
        else:
            frame = history.department_kpis.loc[history.department_kpis["kpi"].eq(kpi.key)]
            groups = [(ALL_TIERS, pd.Series(True, index=frame.index))]
        for tier, members in groups:
            rows.append(_calibrate(kpi, tier, frame.loc[members], easy, hard, aim))
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def _calibrate(
    kpi: Kpi, tier: str, rows: pd.DataFrame, easy: float, hard: float, aim: float
) -> dict[str, object]:
    known = rows.loc[rows["met"].notna()]
    current = kpi.target.value_for(None if tier in (ALL_TIERS, OTHER_TIERS) else tier)
    share = float(known["met"].astype(bool).mean()) if len(known) else math.nan
    verdict = (
        "too little data"
        if len(known) < MIN_OBSERVATIONS
        else "too easy"
        if share >= easy
        else "too hard"
        if share <= hard
        else "fine"
    )
    proposed = expected = math.nan
    if verdict in ("too easy", "too hard"):
        values = attainment_space(known, kpi.target.type).dropna()
        if len(values) >= MIN_OBSERVATIONS:
            quantile = 1 - aim if kpi.direction == "higher" else aim
            unit = METRICS[kpi.metric].unit
            proposed = nice(float(values.quantile(quantile)), unit, kpi.target.type,
                             kpi.direction)  # fmt: skip
            if kpi.target.type == "absolute" and kpi.direction == "higher" and proposed <= 0:
                # A target met by doing nothing recalibrates nothing: leave it to people.
                proposed = math.nan
            else:
                expected = float(meets(values, proposed, kpi.direction).mean())
    return {
        "kpi": kpi.key,
        "level": kpi.level,
        "label": kpi.label,
        "metric": kpi.metric,
        "tier": tier,
        "target_type": kpi.target.type,
        "current": current,
        "observations": len(known),
        "share_met": share,
        "verdict": verdict,
        "proposed": proposed,
        "expected_share": expected,
    }


def proposed_scheme(scheme: Scheme, calibration: pd.DataFrame) -> Scheme:
    """The scheme with every proposed target of the calibration in place of the current one."""
    proposals = calibration.dropna(subset=["proposed"])
    goals = []
    for goal in scheme.goals:
        kpis = []
        for kpi in goal.kpis:
            mine = proposals.loc[proposals["kpi"].eq(kpi.key)]
            target = kpi.target
            for tier, value in zip(mine["tier"], mine["proposed"], strict=True):
                if tier in (ALL_TIERS, OTHER_TIERS):
                    target = target.model_copy(update={"value": float(value)})
                else:
                    by_tier = {**target.by_tier, tier: float(value)}
                    target = target.model_copy(update={"by_tier": by_tier})
            kpis.append(kpi.model_copy(update={"target": Target.model_validate(
                target.model_dump())}))  # fmt: skip
        goals.append(goal.model_copy(update={"kpis": kpis}))
    return scheme.model_copy(update={"goals": goals})


def weight_variance(history: ScoreHistory, scheme: Scheme) -> pd.DataFrame:
    """How much each KPI's weight moves managers' scores.

    Returns:
        Per KPI: its weight, the standard deviation of its attainment over all manager-months
        (``spread``), the mean standard deviation across managers within a month
        (``spread_within_month``: zero for a shared department goal), the spread its weight
        gives scores (``weight * spread``) and ``flat`` when the spread is below ``FLAT``.
    """
    kpis = history.manager_kpis
    rows = []
    for _, kpi, weight in scheme.weighted_kpis():
        mine = kpis.loc[kpis["kpi"].eq(kpi.key) & kpis["attainment"].notna()]
        spread = float(mine["attainment"].std(ddof=0)) if len(mine) > 1 else math.nan
        within = mine.groupby("period")["attainment"].std(ddof=0).mean() if len(mine) else np.nan
        rows.append(
            {
                "kpi": kpi.key,
                "label": kpi.label,
                "level": kpi.level,
                "weight": weight,
                "observations": len(mine),
                "mean_attainment": float(mine["attainment"].mean()) if len(mine) else math.nan,
                "spread": spread,
                "spread_within_month": float(within),
                "score_spread": weight * spread,
                "flat": bool(spread < FLAT) if not math.isnan(spread) else False,
            }
        )
    return pd.DataFrame(rows)


def tuning_proposals(calibration: pd.DataFrame, variance: pd.DataFrame, currency: str) -> list[str]:
    """The proposals in plain sentences, each with its numbers."""
    sentences = []
    for row in calibration.to_dict("records"):
        if row["verdict"] not in ("too easy", "too hard"):
            continue
        who = "" if row["tier"] == ALL_TIERS else f" for {row['tier']}"
        state = "nearly everyone beats" if row["verdict"] == "too easy" else "nearly no one reaches"
        current = target_text(row["current"], row["target_type"], row["metric"], currency)
        sentence = (
            f"{row['label']}{who}: {state} the target of {current} (met in "
            f"{row['share_met']:.0%} of {row['observations']} {row['level']}-months)"
        )
        if math.isnan(row["proposed"]):
            sentences.append(
                sentence + "; history gives no sensible target to propose (too few values, or "
                "only a target of zero), so this one is for the working group to set."
            )
            continue
        proposed = target_text(row["proposed"], row["target_type"], row["metric"], currency)
        sentences.append(
            f"{sentence}; proposed target {proposed}, which {row['expected_share']:.0%} of "
            "them would have met."
        )
    for row in variance.to_dict("records"):
        if row["flat"]:
            sentences.append(
                f"{row['label']} carries no variance: its attainment was "
                f"{row['mean_attainment']:.0%} for everyone (spread {row['spread'] * 100:.1f} pp), "
                "so its "
                f"weight of {row['weight']:.0%} adds the same to every score; move the weight to "
                "KPIs that tell managers apart, or sharpen the target."
            )
    return sentences


def target_text(value: float, target_type: str, metric: str, currency: str) -> str:
    """A target as a scheme states it: ``+10% over the baseline``, ``2``, ``4.0 days``."""
    if target_type == "relative":
        return f"{value:+.0%} over the baseline"
    text = fmt(value, METRICS[metric].unit, currency)
    return f"{text} over the baseline" if target_type == "increase" else text


def calibration_table(calibration: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The calibration formatted for the report."""
    return pd.DataFrame(
        {
            "KPI": calibration["label"],
            "Tier": calibration["tier"],
            "Target": [
                target_text(v, t, m, currency)
                for v, t, m in zip(calibration["current"], calibration["target_type"],
                                   calibration["metric"], strict=True)
            ],
            "Judged on": [
                f"{n} {level}-months"
                for n, level in zip(calibration["observations"], calibration["level"], strict=True)
            ],
            "Met": calibration["share_met"],
            "Verdict": calibration["verdict"],
            "Proposed": [
                "" if math.isnan(v) else target_text(v, t, m, currency)
                for v, t, m in zip(calibration["proposed"], calibration["target_type"],
                                   calibration["metric"], strict=True)
            ],
            "Would meet": calibration["expected_share"],
        }
    )  # fmt: skip


@dataclass(frozen=True)
class WhatIf:
    """Past months scored under the current and a proposed scheme.

    Attributes:
        months: The months re-scored.
        managers: Per manager: mean score and KPIs met under each scheme, and the change.
        kpis: Per KPI id: share of manager-months met and mean attainment under each scheme
            (NaN on the side of a scheme without that KPI).
        total: The same figures over all managers (``managers`` = how many were scored).
    """

    months: tuple[pd.Period, ...]
    managers: pd.DataFrame
    kpis: pd.DataFrame
    total: dict[str, float]


def _manager_summary(history: ScoreHistory) -> pd.DataFrame:
    scores = history.managers.groupby("manager_id").agg(
        name=("name", "last"),
        department_id=("department_id", "last"),
        score=("score", "mean"),
        months=("score", "count"),
    )
    met = history.manager_kpis.groupby("manager_id").agg(
        kpis_met=("met", lambda s: int(s.eq(True).sum())),
        kpis_with_data=("met", lambda s: int(s.notna().sum())),
    )
    return scores.join(met)


def _kpi_summary(history: ScoreHistory) -> pd.DataFrame:
    kpis = history.manager_kpis
    return kpis.groupby("kpi", sort=False).agg(
        label=("label", "first"),
        share_met=("met", lambda s: float(s.dropna().astype(bool).mean()) if s.notna().any()
                   else math.nan),
        attainment=("attainment", "mean"),
    )  # fmt: skip


def compare(current: ScoreHistory, proposed: ScoreHistory) -> WhatIf:
    """Compare two histories of the same months scored under two schemes."""
    if current.months != proposed.months:
        raise ValueError("What-if histories must cover the same months.")
    mine, theirs = _manager_summary(current), _manager_summary(proposed)
    managers = mine.merge(
        theirs[["score", "kpis_met", "kpis_with_data"]],
        left_index=True,
        right_index=True,
        how="outer",
        suffixes=("_current", "_proposed"),
    )
    managers = managers.assign(change=managers["score_proposed"] - managers["score_current"])
    kpis = _kpi_summary(current).merge(
        _kpi_summary(proposed),
        left_index=True,
        right_index=True,
        how="outer",
        suffixes=("_current", "_proposed"),
    )
    kpis = kpis.assign(label=kpis["label_current"].fillna(kpis["label_proposed"])).drop(
        columns=["label_current", "label_proposed"]
    )
    total = {
        "managers": float(managers["score_current"].notna().sum()),
        "score_current": float(managers["score_current"].mean()),
        "score_proposed": float(managers["score_proposed"].mean()),
        "change": float(managers["change"].mean()),
        "kpis_met_current": float(managers["kpis_met_current"].sum()),
        "kpis_met_proposed": float(managers["kpis_met_proposed"].sum()),
    }
    return WhatIf(current.months, managers.reset_index(), kpis.reset_index(), total)


def whatif(
    crm: CRM,
    current: Scheme,
    proposed: Scheme,
    months: Sequence[pd.Period],
    department_id: str | None = None,
) -> WhatIf:
    """Re-score past months under a proposed scheme and compare with the current one.

    Args:
        crm: Validated data source.
        current: The scheme in force.
        proposed: The scheme to try.
        months: The months to re-score.
        department_id: One department; every sales department when omitted.
    """
    return compare(
        score_months(crm, current, months, department_id),
        score_months(crm, proposed, months, department_id),
    )


def whatif_table(result: WhatIf) -> pd.DataFrame:
    """Per manager and in total: mean score and KPIs met under both schemes, and the change."""
    managers = result.managers.sort_values(["department_id", "manager_id"])
    rows = pd.DataFrame(
        {
            "Manager": managers["name"].fillna(managers["manager_id"]).to_numpy(),
            "Department": managers["department_id"].to_numpy(),
            "Score now": managers["score_current"].to_numpy(),
            "Score proposed": managers["score_proposed"].to_numpy(),
            "Change": managers["change"].to_numpy(),
            "KPIs met now": managers["kpis_met_current"].to_numpy(),
            "KPIs met proposed": managers["kpis_met_proposed"].to_numpy(),
        }
    )
    total = result.total
    rows.loc[len(rows)] = [
        f"All {int(total['managers'])} managers",
        "",
        total["score_current"],
        total["score_proposed"],
        total["change"],
        total["kpis_met_current"],
        total["kpis_met_proposed"],
    ]
    return rows


TUNING_MONTHS = 6  # the recent months a monthly report judges targets and weights over


@dataclass(frozen=True)
class Tuning:
    """A monthly report's fine-tuning proposals and what they would have done.

    Attributes:
        months: The recent months judged.
        calibration: `target_calibration` over those months.
        variance: `weight_variance` over those months.
        proposals: The proposals in plain sentences.
        scheme: The scheme with every proposed target in place.
        whatif: The months re-scored under that scheme (None when nothing is proposed).
    """

    months: tuple[pd.Period, ...]
    calibration: pd.DataFrame
    variance: pd.DataFrame
    proposals: list[str]
    scheme: Scheme
    whatif: WhatIf | None


def report_tuning(report: MonthlyReport, months: int = TUNING_MONTHS) -> Tuning:
    """Judge the report's scheme over its department's recent months and try the proposals."""
    recent = history_from(report.history.cards[-months:])
    calibration = target_calibration(recent, report.scheme)
    variance = weight_variance(recent, report.scheme)
    proposed = proposed_scheme(report.scheme, calibration)
    result = None
    if proposed != report.scheme:
        again = score_months(report.crm, proposed, recent.months, report.department_id)
        result = compare(recent, again)
    return Tuning(
        months=recent.months,
        calibration=calibration,
        variance=variance,
        proposals=tuning_proposals(calibration, variance, report.currency),
        scheme=proposed,
        whatif=result,
    )


def whatif_sentence(tuning: Tuning) -> str:
    """What the proposed targets would have done to the scores over the months judged."""
    span = f"{tuning.months[0]:%Y-%m} to {tuning.months[-1]:%Y-%m}"
    if tuning.whatif is None:
        return f"No target needs recalibrating on {span}: every verdict is fine or lacks data."
    total = tuning.whatif.total
    return (
        f"Had the proposed targets applied over {span}, the managers' mean score would have been "
        f"{total['score_proposed']:.1%} instead of {total['score_current']:.1%} "
        f"({total['change'] * 100:+.1f} pp), and {int(total['kpis_met_proposed'])} KPI targets "
        f"met over all manager-months instead of {int(total['kpis_met_current'])} (see the "
        "what-if table)."
    )
