"""Scorecards of consecutive months, stacked into long tables with a ``period`` column.

The monthly fine-tuning asks questions no single month answers: for how many months has a KPI
been missed, which targets nearly everyone beats, how would last quarter have scored under a new
scheme. They all read a `ScoreHistory`: every month scored with the same scheme and rules as the
month's own report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from kpilib.params import Scheme
from kpilib.periods import months_ending
from kpilib.schemas import CRM
from kpilib.scoring import Scorecard, score_period


@dataclass(frozen=True)
class ScoreHistory:
    """Scorecards of several months, oldest first, and their tables stacked by ``period``.

    Attributes:
        months: The months scored, oldest first.
        cards: The scorecard of each month, in the same order.
        manager_kpis: Every manager's KPI rows of every month.
        department_kpis: Every department's KPI rows of every month.
        managers: Managers' weighted scores per month.
        departments: Departments' weighted scores per month.
    """

    months: tuple[pd.Period, ...]
    cards: tuple[Scorecard, ...]
    manager_kpis: pd.DataFrame
    department_kpis: pd.DataFrame
    managers: pd.DataFrame
    departments: pd.DataFrame

    def card(self, period: pd.Period) -> Scorecard:
        """The scorecard of one of the months.

        Raises:
            KeyError: The month is not in the history.
        """
        if period not in self.months:
            raise KeyError(f"{period} is not among the history's months")
        return self.cards[self.months.index(period)]

    def department_metrics(self, department_id: str) -> pd.DataFrame:
        """One department's indicators month by month (rows are months, oldest first).

        Only the indicators every month of the history holds (see `score_months`' ``shown``);
        a month in which the department had nobody to score is a row of NaN ("no data").
        """
        columns = self.cards[0].department_metrics.columns
        for card in self.cards[1:]:
            columns = columns.intersection(card.department_metrics.columns, sort=False)
        rows = {
            month: card.department_metrics.reindex(index=[department_id], columns=columns).iloc[0]
            for month, card in zip(self.months, self.cards, strict=True)
        }
        frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis("period")
        return frame.set_axis(pd.PeriodIndex(self.months, freq="M", name="period"))


def chosen_months(history: ScoreHistory, months: Sequence[pd.Period]) -> list[pd.Period]:
    """The given months, sorted and each once, all of them in the history.

    Raises:
        ValueError: No months given, or a month the history does not hold.
    """
    chosen = sorted({pd.Period(month, "M") for month in months})
    if not chosen:
        raise ValueError("No months given.")
    missing = [f"{month:%Y-%m}" for month in chosen if month not in history.months]
    if missing:
        raise ValueError(f"Months {', '.join(missing)} are not in the score history.")
    return chosen


def _stack(cards: Sequence[Scorecard], field: str) -> pd.DataFrame:
    frames = [getattr(card, field).assign(period=card.period) for card in cards]
    return pd.concat(frames, ignore_index=True)


def history_from(cards: Sequence[Scorecard]) -> ScoreHistory:
    """Stack scorecards (of distinct months, any order) into a history, oldest first."""
    ordered = sorted(cards, key=lambda card: card.period)
    months = tuple(card.period for card in ordered)
    if len(set(months)) != len(months):
        raise ValueError("Each month may appear only once in a score history.")
    return ScoreHistory(
        months=months,
        cards=tuple(ordered),
        manager_kpis=_stack(ordered, "manager_kpis"),
        department_kpis=_stack(ordered, "department_kpis"),
        managers=_stack(ordered, "managers"),
        departments=_stack(ordered, "departments"),
    )


# The indicators a history keeps beside the scheme's own: those of the trends and the profit.
HISTORY_METRICS = ("revenue", "net_profit", "deals_won", "win_rate", "avg_deal")


def score_months(
    crm: CRM,
    scheme: Scheme,
    months: Sequence[pd.Period],
    department_id: str | None = None,
    shown: tuple[str, ...] | None = HISTORY_METRICS,
) -> ScoreHistory:
    """Score each month with the same scheme (one department or every sales department).

    Args:
        crm: Validated data source.
        scheme: The KPI scheme.
        months: The months to score, in any order, each once.
        department_id: Restrict to one department; all sales departments when omitted.
        shown: The indicators kept beside the scheme's (see `score_period`); every registered
            one when None.

    Returns:
        The history, oldest month first.
    """
    return history_from(
        [score_period(crm, scheme, month, department_id, shown) for month in months]
    )


def window_shown(period: pd.Period, count: int) -> list[tuple[pd.Period, tuple[str, ...] | None]]:
    """The months `score_window` scores, oldest first, each with the indicators it keeps."""
    earlier: list[tuple[pd.Period, tuple[str, ...] | None]] = [
        (month, HISTORY_METRICS) for month in months_ending(period - 1, count - 1)
    ]
    return [*earlier, (period, None)]


def score_window(
    crm: CRM, scheme: Scheme, period: pd.Period, count: int, department_id: str | None = None
) -> ScoreHistory:
    """Score the `count` months ending with `period`; `period` itself with every indicator."""
    return history_from(
        [
            score_period(crm, scheme, month, department_id, shown)
            for month, shown in window_shown(period, count)
        ]
    )
