"""Reporting periods: calendar months, their bounds, and the latest complete month in the data."""

from __future__ import annotations

import re

import pandas as pd

from kpilib.errors import ParamsError
from kpilib.schemas import CRM


def parse_month(text: str) -> pd.Period:
    """A ``YYYY-MM`` string as a monthly period.

    Raises:
        ParamsError: The text is not a month.
    """
    try:
        period = pd.Period(str(text), freq="M")
    except (ValueError, TypeError) as exc:
        raise ParamsError(f"Period {text!r} is not a month in the form YYYY-MM.") from exc
    if pd.isna(period) or f"{period:%Y-%m}" != str(text).strip():
        raise ParamsError(f"Period {text!r} is not a month in the form YYYY-MM.")
    return period


def bounds(period: pd.Period) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The period's first instant and the first instant after it (a half-open interval)."""
    return period.start_time, (period + 1).start_time


def in_period(dates: pd.Series, period: pd.Period) -> pd.Series:
    """Whether each date or timestamp falls inside the period (missing dates do not)."""
    start, end = bounds(period)
    return (dates >= start) & (dates < end)


def rows_in_period(
    crm: CRM, name: str, frame: pd.DataFrame, column: str, period: pd.Period
) -> pd.DataFrame:
    """The rows of `frame` whose date `column` falls inside the period, as `in_period` selects.

    A month's rows come from the frame split by month once and kept with the source
    (`CRM.derived`, under `name` and `column`), so a computation over many months does not scan
    the whole frame for each: `frame` must be derived from `crm`, the same for every call with
    that `name`, and never modified. Other periods (quarters, weeks) are selected directly.
    Do not modify the rows returned.
    """
    if period.freqstr != "M":
        return frame.loc[in_period(frame[column], period)]

    def split() -> dict[pd.Period, pd.DataFrame]:
        months = frame[column].dt.to_period("M")
        return dict(iter(frame.groupby(months, sort=False)))

    months: dict[pd.Period, pd.DataFrame] = crm.derived(f"{name} by month of {column}", split)
    return months.get(period, frame.iloc[0:0])


def months_ending(period: pd.Period, count: int) -> list[pd.Period]:
    """The `count` months up to and including `period`, oldest first."""
    return [period - offset for offset in range(count - 1, -1, -1)]


# Dates of things that happened (not promises): the latest of them dates the export.
ACTIVITY_DATES = {
    "deals": ("created_on", "closed_on"),
    "leads": ("created_on",),
    "requests": ("received_at", "first_response_at"),
    "deliveries": ("delivered_on",),
}


def data_as_of(crm: CRM) -> pd.Timestamp:
    """The day of the latest activity in the data: at most the day the export was taken."""
    latest = [
        table[column].max()
        for name, columns in ACTIVITY_DATES.items()
        if (table := getattr(crm, name)) is not None
        for column in columns
        if column in table
    ]
    return max(d for d in latest if pd.notna(d)).normalize()


def latest_complete_month(crm: CRM) -> pd.Period:
    """The last month the data covers to its final day.

    The month of the latest deal date counts only when that date is the month's last day;
    otherwise the month before it is the latest complete one.
    """
    as_of = data_as_of(crm)
    month = as_of.to_period("M")
    return month if as_of == month.end_time.normalize() else month - 1


def resolve_period(text: str | None, crm: CRM) -> pd.Period:
    """The period a user asked for, or the latest complete month when they gave none.

    Raises:
        ParamsError: The month lies after the data's last date (it would score as all zeros).
    """
    if not text:
        return latest_complete_month(crm)
    period = parse_month(text)
    as_of = data_as_of(crm)
    if period > as_of.to_period("M"):
        raise ParamsError(
            f"Period {text} lies after the data, whose latest date is {as_of:%Y-%m-%d}."
        )
    return period


def parse_quarter(text: str) -> pd.Period:
    """A ``YYYYQn`` string (``2026Q3``) as a quarterly period.

    Raises:
        ParamsError: The text is not a quarter.
    """
    message = f"Period {text!r} is not a quarter in the form YYYYQn (e.g. 2026Q3)."
    if not re.fullmatch(r"\d{4}Q[1-4]", str(text).strip()):
        raise ParamsError(message)
    return pd.Period(str(text).strip(), freq="Q")


def quarter_months(quarter: pd.Period) -> list[pd.Period]:
    """The quarter's three months, oldest first."""
    return list(pd.period_range(quarter.start_time, quarter.end_time, freq="M"))


def latest_complete_quarter(crm: CRM) -> pd.Period:
    """The last quarter whose final month the data covers to its last day."""
    month = latest_complete_month(crm)
    quarter = month.asfreq("Q")
    return quarter if month == quarter_months(quarter)[-1] else quarter - 1


def resolve_quarter(text: str | None, crm: CRM) -> pd.Period:
    """The quarter a user asked for, or the latest complete quarter when they gave none.

    Raises:
        ParamsError: The quarter is not complete in the data (its last month is not covered).
    """
    if not text:
        return latest_complete_quarter(crm)
    quarter = parse_quarter(text)
    latest = latest_complete_month(crm)
    if quarter_months(quarter)[-1] > latest:
        raise ParamsError(
            f"Quarter {text} is not complete in the data, whose latest complete month is "
            f"{latest:%Y-%m}."
        )
    return quarter
