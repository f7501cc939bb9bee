"""Score versus profit: do the managers the KPI system rates highest earn the company the most?

Over a quarter (or any months of a score history) managers are ranked twice: by their mean
weighted KPI score and by the net profit of their deals (revenue minus cost price minus the
technical staff's hours). A manager is **flagged** when the score rates them above what their deals
earn the company, in either of two ways:

- their net profit rank lies at least a third of the group below their score rank, and at least
  two places (of 28 managers: 5th by score and 15th or lower by profit; of 7: three places); or
- their net margin (net profit / revenue) is at least `MARGIN_GAP` (15 percentage points) below
  the group's median margin: the score counts their revenue in full, yet it turns into far less
  profit than anyone else's.

That is the design's Vasily/Valery pattern: equal revenue and so an equal score, but technical
hours eat one manager's profit, so a KPI system that rewards revenue rewards the wrong manager.
The rules look at gaps rather than at fixed bands ("upper half by score, bottom quarter by
profit") because such a manager's score is ordinary rather than outstanding, and in a weak quarter
low: it is the profit that falls far behind what the score credits.

Net profit is ranked per month worked (the sum over the months with a score, divided by their
number), as the score is a mean: a manager hired in the quarter's last month is not ranked low for
the months before they came. The group is the managers with both a score and a net profit over the
months; ranks count from 1
(the best), tied managers share the better rank. How well the two rankings agree is Spearman's rank
correlation with a 95% confidence interval from Fisher's z transform, with the variance
``1.06 / (n - 3)`` that Fieller, Hartley and Pearson give for a rank correlation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from matplotlib.ticker import PercentFormatter

from kpilib.display import NO_DATA, fmt
from kpilib.history import ScoreHistory, chosen_months
from kpilib.plots import PALETTE, ReportFigure, chart_labels, money_axis, new_figure

RANK_GAP = 1 / 3  # flagged: profit rank at least this share of the group below the score rank
MIN_GAP = 2  # ...and at least this many places (in a tiny group one place is no signal)
MARGIN_GAP = 0.15  # or flagged: net margin at least this far below the group's median margin
PEER_REVENUE = 0.05  # a revenue peer: same department, revenue within this share of the manager's
NOTABLE = 0.05  # a cost share or margin this far (5 pp) from the group's median explains a flag
MIN_MANAGERS = 5  # fewer managers than this: no rank correlation
Z_95 = 1.959963984540054
SPEARMAN_VARIANCE = 1.06  # Fieller, Hartley and Pearson's variance factor for Fisher's z of rho
SUMMED = ("revenue", "net_profit", "extra_costs")

RANK_COLUMNS = [
    "manager_id",
    "name",
    "department_id",
    "tier",
    "months",
    "score",
    "net_profit",
    "revenue",
    "extra_costs",
    "profit_per_month",
    "margin",
    "extra_cost_share",
    "score_rank",
    "profit_rank",
    "flagged",
]


@dataclass(frozen=True)
class RankAgreement:
    """How alike the KPI score and net profit rank the managers.

    Attributes:
        rho: Spearman's rank correlation (NaN with fewer than `MIN_MANAGERS` managers or when
            either ranking is all ties).
        low: Lower end of its 95% confidence interval.
        high: Upper end of it.
        n: Managers with both a score and a net profit.
        sentence: The agreement in plain language, with its numbers.
    """

    rho: float
    low: float
    high: float
    n: int
    sentence: str


def _sums(history: ScoreHistory, months: list[pd.Period]) -> pd.DataFrame:
    """Revenue, net profit and extra costs per manager summed over the months (NaN: no data)."""
    frames = [history.card(month).manager_metrics.reindex(columns=list(SUMMED)) for month in months]
    sums = pd.concat(frames).groupby(level=0).sum(min_count=1)
    return sums.rename_axis("manager_id").reset_index()


def min_gap(size: int) -> int:
    """Places by which a manager's profit rank must trail their score rank to be flagged."""
    return max(MIN_GAP, math.ceil(RANK_GAP * size - 1e-9))


def score_profit_ranks(history: ScoreHistory, months: Sequence[pd.Period]) -> pd.DataFrame:
    """Managers ranked by KPI score and by net profit over some months of a history.

    Args:
        history: Scored months whose cards hold ``revenue``, ``net_profit`` and ``extra_costs``
            (see `score_months`' ``shown``); a missing indicator is "no data".
        months: The months to rank over (the quarter), each in the history.

    Returns:
        One row per manager active in any of the months (``RANK_COLUMNS``): name, department
        and tier as in the latest of those months; ``months`` with a score; ``score``, the mean
        weighted score; sums of ``net_profit``, ``revenue`` and ``extra_costs``; ``margin``
        (net profit / revenue) and ``extra_cost_share`` (extra costs / revenue); ``score_rank``
        and ``profit_rank`` within the group (1 = best, ties share the better rank; NA outside the
        group) and ``flagged``. Sorted by score rank, managers outside the group last.

    Raises:
        ValueError: No months, or a month not in the history.
    """
    chosen = chosen_months(history, months)
    scored = history.managers.loc[history.managers["period"].isin(chosen)].sort_values("period")
    people = scored.groupby("manager_id", sort=False).agg(
        name=("name", "last"),
        department_id=("department_id", "last"),
        tier=("tier", "last"),
        months=("score", "count"),
        score=("score", "mean"),
    )
    ranks = people.reset_index().merge(_sums(history, chosen), on="manager_id", how="left")
    revenue = ranks["revenue"].where(ranks["revenue"] > 0)
    worked = ranks["months"].where(ranks["months"] > 0)
    ranks = ranks.assign(
        profit_per_month=ranks["net_profit"] / worked,
        margin=ranks["net_profit"] / revenue,
        extra_cost_share=ranks["extra_costs"] / revenue,
    )
    group = ranks["score"].notna() & ranks["net_profit"].notna()
    size = int(group.sum())

    def rank(column: str) -> pd.Series:
        values = ranks[column].where(group).rank(ascending=False, method="min")
        return values.astype("Int64")

    ranks = ranks.assign(score_rank=rank("score"), profit_rank=rank("profit_per_month"))
    behind = ranks["profit_rank"] - ranks["score_rank"] >= min_gap(size)
    thin = ranks["margin"] <= ranks["margin"].where(group).median() - MARGIN_GAP
    flagged = behind.fillna(False).astype(bool) | (thin.fillna(False).astype(bool) & group)
    ranks = ranks.assign(flagged=flagged)
    ranks = ranks.sort_values(
        ["score_rank", "profit_rank", "manager_id"], na_position="last", kind="stable"
    )
    return ranks[RANK_COLUMNS].reset_index(drop=True)


def _group(ranks: pd.DataFrame) -> pd.DataFrame:
    return ranks.loc[ranks["score_rank"].notna() & ranks["profit_rank"].notna()]


def _corr_text(value: float) -> str:
    return f"{value:.2f}".replace("-", "\u2212")


def rank_agreement(ranks: pd.DataFrame) -> RankAgreement:
    """Spearman's rank correlation of KPI score and net profit, with its 95% interval.

    Args:
        ranks: The table of `score_profit_ranks`.

    Returns:
        The correlation over the managers with both values; NaN and a plain sentence with
        fewer than `MIN_MANAGERS` of them or when everyone has the same score or profit.
    """
    group = _group(ranks)
    n = len(group)
    if n < MIN_MANAGERS:
        return RankAgreement(
            math.nan,
            math.nan,
            math.nan,
            n,
            f"Only {n} manager(s) have both a KPI score and a net profit, too few to say "
            f"whether the score ranks managers as profit does (at least {MIN_MANAGERS} needed).",
        )
    if group["score"].nunique() < 2 or group["profit_per_month"].nunique() < 2:
        return RankAgreement(
            math.nan,
            math.nan,
            math.nan,
            n,
            f"All {n} managers have the same KPI score or the same net profit, so the two "
            "cannot be compared by rank.",
        )
    rho = float(group["score"].rank().corr(group["profit_per_month"].rank()))
    z = math.atanh(min(max(rho, -1 + 1e-12), 1 - 1e-12))
    half = Z_95 * math.sqrt(SPEARMAN_VARIANCE / (n - 3))
    low, high = math.tanh(z - half), math.tanh(z + half)
    return RankAgreement(rho, low, high, n, _agreement_sentence(rho, low, high, n))


def _agreement_sentence(rho: float, low: float, high: float, n: int) -> str:
    numbers = (
        f"rank correlation {_corr_text(rho)} (95% CI {_corr_text(low)} to {_corr_text(high)}) "
        f"over {n} managers"
    )
    if rho >= 0.2:
        alike = "much as" if rho >= 0.7 else "somewhat as" if rho >= 0.4 else "only loosely as"
        sentence = f"The KPI score ranks managers {alike} net profit does: {numbers}"
    elif rho <= -0.2:
        sentence = (
            f"The KPI score ranks managers in the opposite order to net profit: {numbers}; the "
            "higher the score, the lower the profit"
        )
    else:
        sentence = f"The KPI score and net profit rank managers almost independently: {numbers}"
    if low <= 0 <= high:
        sentence += "; with so few managers, no link at all cannot be ruled out"
    elif rho < 0.4:
        sentence += "; a high score says little about who earns the company the most"
    return sentence + "."


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def _peer(ranks: pd.DataFrame, row: pd.Series) -> pd.Series | None:
    """The manager of the same department with the closest revenue, within `PEER_REVENUE`."""
    revenue = row["revenue"]
    if pd.isna(revenue) or revenue <= 0:
        return None
    others = ranks.loc[
        ranks["department_id"].eq(row["department_id"])
        & ranks["manager_id"].ne(row["manager_id"])
        & ranks["net_profit"].notna()
    ]
    gap = (others["revenue"] - revenue).abs()
    close = gap.loc[gap <= PEER_REVENUE * revenue]
    return None if close.empty else others.loc[close.sort_values(kind="stable").index[0]]


def _reason(row: pd.Series, group: pd.DataFrame, currency: str) -> str:
    """Why the profit is low: technical hours, a thin margin, or little revenue."""
    typical_cost = group["extra_cost_share"].median()
    typical_margin = group["margin"].median()
    if row["extra_cost_share"] >= typical_cost + NOTABLE:
        return (
            f"technical hours cost {fmt(row['extra_cost_share'], 'share')} of the revenue, "
            f"against {fmt(typical_cost, 'share')} for the group's median manager"
        )
    if row["margin"] <= typical_margin - NOTABLE:
        return (
            f"net profit is {fmt(row['margin'], 'share')} of the revenue, against "
            f"{fmt(typical_margin, 'share')} for the group's median manager"
        )
    revenue_rank = int(group["revenue"].rank(ascending=False, method="min")[row.name])
    return (
        f"the revenue itself is low ({fmt(row['revenue'], 'money', currency)}, "
        f"{_ordinal(revenue_rank)} of {len(group)})"
    )


def _peer_text(peer: pd.Series, row: pd.Series, currency: str) -> str:
    gap = abs(peer["revenue"] - row["revenue"]) / row["revenue"]
    more = peer["net_profit"] - row["net_profit"]
    revenue = "equal revenue" if gap < 0.0005 else f"revenue within {fmt(gap, 'share')} of it"
    rank = (
        f"ranks {_ordinal(int(peer['score_rank']))} by KPI score"
        if pd.notna(peer["score_rank"])
        else "has no KPI score"
    )
    return (
        f" {peer['name']}, of the same department with {revenue}, made "
        f"{fmt(peer['net_profit'], 'money', currency)} net profit "
        f"({fmt(abs(more), 'money', currency)} {'more' if more >= 0 else 'less'}) and {rank}."
    )


def flagged_sentences(ranks: pd.DataFrame, currency: str) -> list[str]:
    """One sentence per flagged manager: both ranks, why the profit is low, and a revenue peer.

    The reason is the first that holds: technical hours cost at least 5 pp more of the revenue
    than for the group's median manager; the net margin is at least 5 pp below the median; else
    the revenue itself is low. The peer is the manager of the same department whose revenue is
    closest, within 5%; the sentence names them only when there is one.

    Args:
        ranks: The table of `score_profit_ranks`.
        currency: Currency of money.

    Returns:
        The sentences in score-rank order; a single sentence saying so when nobody is flagged.
    """
    group = _group(ranks)
    flagged = ranks.loc[ranks["flagged"]]
    if group.empty:
        return ["No manager has both a KPI score and a net profit over the months."]
    if flagged.empty:
        return [
            f"No manager's net profit rank lies a third of the group or more "
            f"({min_gap(len(group))} places of {len(group)}) below their KPI score rank, and no "
            f"net margin lies {fmt(MARGIN_GAP, 'share')} or more below the group's median: the "
            "score rates nobody far above what their deals earn the company."
        ]
    sentences = []
    for _, row in flagged.iterrows():
        sentence = (
            f"{row['name']} ranks {_ordinal(int(row['score_rank']))} of {len(group)} by KPI "
            f"score but {_ordinal(int(row['profit_rank']))} by net profit "
            f"({fmt(row['net_profit'], 'money', currency)}): {_reason(row, group, currency)}."
        )
        peer = _peer(ranks, row)
        sentences.append(sentence + ("" if peer is None else _peer_text(peer, row, currency)))
    return sentences


def ranking_table(ranks: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The ranking as text for the report, in score-rank order.

    Args:
        ranks: The table of `score_profit_ranks`.
        currency: Currency of money.

    Returns:
        Columns Score rank, Manager, Department, Tier, Months, KPI score, Net profit, Net profit
        a month, Profit rank, Revenue, Net margin, Technical hours cost (a share of revenue) and
        Flag, every
        cell a string.
    """

    def rank(values: pd.Series) -> list[str]:
        return [NO_DATA if pd.isna(v) else str(int(v)) for v in values]

    return pd.DataFrame(
        {
            "Score rank": rank(ranks["score_rank"]),
            "Manager": ranks["name"].fillna(ranks["manager_id"]).astype(str).to_list(),
            "Department": ranks["department_id"].astype(str).to_list(),
            "Tier": ranks["tier"].fillna(NO_DATA).astype(str).to_list(),
            "Months": [str(int(v)) for v in ranks["months"]],
            "KPI score": [fmt(v, "share") for v in ranks["score"]],
            "Net profit": [fmt(v, "money", currency) for v in ranks["net_profit"]],
            "Net profit a month": [fmt(v, "money", currency) for v in ranks["profit_per_month"]],
            "Profit rank": rank(ranks["profit_rank"]),
            "Revenue": [fmt(v, "money", currency) for v in ranks["revenue"]],
            "Net margin": [fmt(v, "share") for v in ranks["margin"]],
            "Technical hours cost": [fmt(v, "share") for v in ranks["extra_cost_share"]],
            "Flag": ["score high, profit low" if f else "" for f in ranks["flagged"]],
        },
        dtype="str",
    )


def ranking_chart(ranks: pd.DataFrame, currency: str) -> ReportFigure:
    """Each manager's KPI score against net profit; flagged managers in red and labelled.

    Args:
        ranks: The table of `score_profit_ranks`.
        currency: For the profit axis.
    """
    group = _group(ranks)
    flagged = group.loc[group["flagged"]]
    names = ", ".join(flagged["name"].astype(str)) or "none"
    alt = (
        f"Mean KPI score against net profit for {len(group)} managers; flagged for a high score "
        f"and low profit: {names}. {rank_agreement(ranks).sentence}"
    )
    figure = new_figure(8, 5.5, alt)
    ax = figure.subplots()
    rest = group.loc[~group["flagged"]]
    ax.scatter(rest["score"], rest["net_profit"], color=PALETTE["profit"], label="Other managers")
    ax.scatter(
        flagged["score"],
        flagged["net_profit"],
        color=PALETTE["missed"],
        marker="D",
        label="Flagged: ranked a third of the group lower by profit than by score",
    )
    for label, x, y in zip(
        chart_labels(flagged["name"]), flagged["score"], flagged["net_profit"], strict=True
    ):
        ax.annotate(label, (x, y), xytext=(6, 4), textcoords="offset points", fontsize="small")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(money_axis(currency))
    ax.set(
        title="KPI score and net profit",
        xlabel="Mean weighted KPI score (100% = every target met)",
        ylabel=f"Net profit, {currency}",
    )
    if len(group):
        ax.legend(loc="upper left", fontsize="small")
    return figure
