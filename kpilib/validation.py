"""Validation of raw tables against the CRM data contract: every problem, at once, in words.

Every table is validated against `kpilib.schemas` (pandera, lazily) and every problem is collected
into one `DataContractError` naming table, column, rule, count and the first offending rows.
Dates are read strictly as ISO 8601. Nothing is dropped or altered silently: the only filled
values are the contract's own defaults (a manager's tier, a deal's sale type), and a note says
how many were filled.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from kpilib.errors import DataContractError
from kpilib.metrics import METRICS
from kpilib.schemas import (
    CRM,
    DEFAULT_TIER,
    FOREIGN_KEYS,
    MODELS,
    REQUIRED_TABLES,
    date_columns,
    first_won_deals,
)

_SHOWN_ROWS = 5


@dataclass(frozen=True)
class Problem:
    """One broken rule of the data contract."""

    table: str
    column: str
    rule: str
    rows: tuple[int, ...]
    values: tuple[str, ...]

    def describe(self) -> str:
        """One line for people: where, which rule, how many, the first rows and their values."""
        shown = ", ".join(
            f"row {row} ({value})" if value else f"row {row}"
            for row, value in zip(self.rows[:_SHOWN_ROWS], self.values[:_SHOWN_ROWS], strict=False)
        )
        more = f", and {len(self.rows) - _SHOWN_ROWS} more" if len(self.rows) > _SHOWN_ROWS else ""
        where = f"{self.table}.{self.column}" if self.column else self.table
        if not self.rows:
            return f"- {where}: {self.rule}"
        return f"- {where}: {self.rule}: {len(self.rows)} row(s): {shown}{more}"


def _problems_from_pandera(table: str, errors: pa.errors.SchemaErrors) -> list[Problem]:
    cases = errors.failure_cases.copy()
    cases["column"] = cases["column"].fillna("").astype(str)
    cases["check"] = cases["check"].astype(str)
    missing = cases["check"].eq("column_in_dataframe")
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"].astype(str)
    # A table-wide rule fails once per column of each offending row: report it once, by rows.
    table_wide = cases["schema_context"].eq("DataFrameSchema") & ~missing
    cases.loc[table_wide, "column"] = ""
    cases.loc[table_wide, "failure_case"] = None
    cases = cases.drop_duplicates(["column", "check", "index"])
    # A value that failed coercion also fails the dtype check and any comparison check of that
    # column; the coercion failure is the one worth telling.
    coerced = set(cases.loc[cases["check"].str.startswith("coerce_dtype"), "column"])
    redundant = cases["column"].isin(coerced) & ~cases["check"].str.startswith("coerce_dtype")
    cases = cases.loc[~redundant]
    problems = []
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        rows = tuple(int(i) + 1 for i in group["index"].dropna())
        values = tuple(_given(v) for v in group["failure_case"])
        problems.append(Problem(table, column, _rule_text(check), rows, values if rows else ()))
    return problems


_TYPE_NAMES = {"'datetime64[ns]'": "a date", "'float64'": "a number", "'str'": "text"}
_RULES = [
    (re.compile(r"coerce_dtype\((.*)\)"), "cannot be read as {}"),
    (re.compile(r"isin\(\[(.*)\]\)"), "must be one of {}"),
    (re.compile(r"greater_than_or_equal_to\((.*)\)"), "must be at least {}"),
    (re.compile(r"str_matches\('(.*)'\)"), "must match the pattern {}"),
]


def _rule_text(check: str) -> str:
    readable = {
        "column_in_dataframe": "required column is missing",
        "field_uniqueness": "values must be unique",
        "not_nullable": "value is required",
    }
    if check in readable:
        return readable[check]
    for pattern, template in _RULES:
        matched = pattern.fullmatch(check)
        if matched:
            value = matched.group(1)
            return template.format(_TYPE_NAMES.get(value, value.replace("'", "")))
    return check


# A time of day followed by a zone designator: "10:00Z", "10:00:00+03:00", "10:00 -0500".
_TIME_ZONE = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
DATE_RULE = "cannot be read as a date (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, no time zone)"
EARLIEST_DAY = pd.Timestamp.min.ceil("D")
"""The first whole day a report can hold (1677-09-22; its dates are nanoseconds from 1970)."""
LATEST_DAY = pd.Timestamp.max.floor("D") - pd.Timedelta(days=1)
"""The last whole day a report can hold (2262-04-10)."""
DATE_RANGE_RULE = (
    f"must be a date from {EARLIEST_DAY:%Y-%m-%d} to {LATEST_DAY:%Y-%m-%d}"
    " (a placeholder such as 9999-12-31 for 'never' is not a date)"
)
# Every value `_TIME_ZONE` finds holds a colon with "Z", "+" or "-" after it. Arrow tests that in
# milliseconds per million values; `_TIME_ZONE` itself needs Python's re (its \d and \s are
# Unicode-aware), about a second per million, so it reads only the values that pass.
_ZONE_CANDIDATE = r"(?s):.*[-+Z]"


def zoned(text: pd.Series) -> pd.Series:
    """Whether each text ends in a time of day with a time-zone designator (`_TIME_ZONE`).

    Args:
        text: Strings (missing values allowed, never zoned).
    """
    result = pd.Series(False, index=text.index)
    candidate = text.str.contains(_ZONE_CANDIDATE, regex=True, na=False).to_numpy(dtype=bool)
    if candidate.any():
        found = text[candidate].str.contains(_TIME_ZONE, regex=True, na=False)
        result[candidate] = found.to_numpy(dtype=bool)
    return result


def read_dates(table: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Read the contract's date columns given as text strictly as ISO 8601, and refuse dates
    (read from text or given as dates) beyond what a report can hold (`DATE_RANGE_RULE`).

    ``03.02.2025`` is ambiguous (3 February or 2 March) and a time-zone offset would move a
    timestamp across midnight or a month's end; both are refused rather than guessed.

    Returns:
        The table with those columns as datetimes (missing where refused), and the problems.
    """
    frame, problems = raw, []
    for column in [name for name in date_columns(table) if name in raw]:
        values = raw[column]
        parsed = values
        if isinstance(values.dtype, pd.DatetimeTZDtype):  # as "+03:00" in text: which day?
            bad = values.notna()
            if bad.any():
                problems.append(_problem(table, column, DATE_RULE, values, bad))
            parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
        elif not pd.api.types.is_datetime64_dtype(values):
            text = values.astype("str").str.strip().where(values.notna())
            text = text.where(text != "")  # a blank cell is an empty one
            with_zone = zoned(text)
            parsed = pd.to_datetime(text.where(~with_zone), format="ISO8601", errors="coerce")
            bad = text.notna() & (with_zone | parsed.isna())
            if bad.any():
                problems.append(_problem(table, column, DATE_RULE, values, bad))
        after = LATEST_DAY + pd.Timedelta(days=1)
        earliest, latest = parsed.min(), parsed.max()  # the ends first: cheaper than a mask
        if pd.notna(earliest) and (earliest < EARLIEST_DAY or latest >= after):
            outside = parsed.notna() & ((parsed < EARLIEST_DAY) | (parsed >= after))
            problems.append(_problem(table, column, DATE_RANGE_RULE, values, outside))
            parsed = parsed.where(~outside)
        if parsed is not values:
            frame = frame.assign(**{column: parsed})
    return frame, problems


def _problem(table: str, column: str, rule: str, values: pd.Series, bad: pd.Series) -> Problem:
    """The problem of the ``bad`` rows of a column, with their values as given."""
    rows = tuple(int(i) + 1 for i in values.index[bad])
    return Problem(table, column, rule, rows, tuple(_given(v) for v in values[bad]))


def validate_table(table: str, raw: pd.DataFrame) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Validate one table against its contract model, collecting every problem.

    Rows are numbered by the table's index (a source's row positions, from 0), so that rows a
    mapping left out do not shift the numbers; the validated table keeps that index.
    """
    numbered = _numbered(raw)
    frame, problems = read_dates(table, numbered)
    try:
        validated = MODELS[table].validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        found = _problems_from_pandera(table, errors) + _behind_unreadable(table, frame, errors)
        return None, problems + _without_refused(_as_given(found, numbered), problems)
    return (None, problems) if problems else (validated, [])


def _behind_unreadable(
    table: str, frame: pd.DataFrame, errors: pa.errors.SchemaErrors
) -> list[Problem]:
    """The rules of a column that its unreadable cells kept from being checked, checked on the
    column's other rows.

    A column with a cell that cannot be read as its type (``n/a`` among amounts) cannot be
    compared at all; without this, a negative amount two rows below the ``n/a`` would only show
    once the ``n/a`` is mended. Only that column is checked again, so a large table is not
    copied and validated once more per such column.
    """
    cases = errors.failure_cases
    unreadable = cases.loc[cases["check"].astype(str).str.startswith("coerce_dtype")]
    columns = MODELS[table].to_schema().columns
    found = []
    for column, cells in unreadable.groupby("column"):
        if cells["index"].isna().any():  # the column as a whole cannot be read: nothing left
            continue
        rest = frame[[column]].drop(index=[int(index) for index in cells["index"]])
        try:
            pa.DataFrameSchema({column: columns[column]}, coerce=True).validate(rest, lazy=True)
        except pa.errors.SchemaErrors as more:
            found += _problems_from_pandera(table, more)
    return found


def _as_given(problems: list[Problem], numbered: pd.DataFrame) -> list[Problem]:
    """The problems with each row's value as the source gave it (``'1e400'``, not the ``inf``
    the contract read it as), so that it can be found in the source."""
    shown = []
    for problem in problems:
        if problem.values and problem.column in numbered:
            cells = numbered[problem.column].reindex([row - 1 for row in problem.rows])
            problem = replace(problem, values=tuple(_given(cell) for cell in cells))
        shown.append(problem)
    return shown


def _given(cell: object) -> str:
    """A source's cell as a problem shows it: quoted, at most 60 characters; empty if missing."""
    return "" if pd.api.types.is_scalar(cell) and pd.isna(cell) else repr(str(cell))[:60]


def _without_refused(found: list[Problem], refused: list[Problem]) -> list[Problem]:
    """The problems found, less "value is required" for the dates `read_dates` refused: those
    are missing now, and the rule would only repeat their problem. Cells that were empty in
    the source are still reported."""
    gone: dict[str, set[int]] = {}
    for problem in refused:
        gone.setdefault(problem.column, set()).update(problem.rows)
    kept = []
    for problem in found:
        if problem.rule == "value is required" and problem.column in gone:
            rows = tuple(row for row in problem.rows if row not in gone[problem.column])
            if not rows:
                continue
            problem = replace(problem, rows=rows, values=("",) * len(rows))  # empty cells
        kept.append(problem)
    return kept


def _numbered(raw: pd.DataFrame) -> pd.DataFrame:
    """The table with row positions as its index: its own when they are, 0, 1, ... otherwise."""
    index = raw.index
    own = pd.api.types.is_integer_dtype(index) and index.is_unique and (index >= 0).all()
    return raw if own else raw.reset_index(drop=True)


def _foreign_key_problems(tables: Mapping[str, pd.DataFrame]) -> list[Problem]:
    problems = []
    for (table, column), (ref_table, ref_column) in FOREIGN_KEYS.items():
        if table not in tables or ref_table not in tables or column not in tables[table]:
            continue
        values = tables[table][column]
        bad = values.notna() & ~_is_in(values, tables[ref_table][ref_column])
        if bad.any():
            rule = f"must refer to an existing {ref_table}.{ref_column}"
            problems.append(_problem(table, column, rule, values, bad))
    return problems


_KEY_COLUMNS = {key for pair in FOREIGN_KEYS.items() for key in pair}


def _keys_as_contract(table: str, raw: pd.DataFrame) -> pd.DataFrame:
    """A table that failed validation, numbered, its key columns read as the contract reads them.

    A database's integer ids become the text that validated tables hold (``1`` -> ``'1'``), so
    the cross-table rules compare like with like: a deal of manager 1 is not reported as pointing
    nowhere because another of its cells broke a rule. A column that cannot be read so is
    compared as given.
    """
    frame = _numbered(raw)
    columns = MODELS[table].to_schema().columns
    for column in [c for t, c in _KEY_COLUMNS if t == table and c in frame]:
        with contextlib.suppress(pa.errors.ParserError, TypeError, ValueError):
            frame = frame.assign(**{column: columns[column].dtype.try_coerce(frame[column])})
    return frame


def _is_in(values: pd.Series, reference: pd.Series) -> pd.Series:
    """Whether each value is one of the reference values (exact match; missing values: False).

    Arrow's set lookup: pandas' ``isin`` on text columns goes through Python objects one by
    one, minutes for the tens of millions of ids of a large source.
    """
    try:
        found = pc.is_in(
            pyarrow.array(values, from_pandas=True, type=pyarrow.large_string()),
            value_set=pyarrow.array(reference.dropna(), type=pyarrow.large_string()).unique(),
        )
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError):  # not text: the type checks say so
        return values.isin(reference)
    return pd.Series(found.fill_null(False).to_numpy(zero_copy_only=False), index=values.index)


def _plan_metric_problems(tables: Mapping[str, pd.DataFrame]) -> list[Problem]:
    """A plan for a metric the kit does not compute would be ignored: refuse it instead."""
    plans = tables.get("plans")
    if plans is None or "metric" not in plans:
        return []
    problems = []
    unknown = plans["metric"].notna() & ~plans["metric"].isin(list(METRICS))
    if unknown.any():
        rule = f"must be one of the kit's metrics ({', '.join(METRICS)})"
        problems.append(_problem("plans", "metric", rule, plans["metric"], unknown))
    # Two plans for the same owner, month and metric leave the target ambiguous.
    key = [c for c in ("period", "metric", "department_id", "manager_id") if c in plans]
    repeated = plans.duplicated(key, keep=False)
    if repeated.any():
        rows = tuple(int(i) + 1 for i in plans.index[repeated])
        shown = tuple(
            " ".join(str(v) for v in values if pd.notna(v) and v != "")[:60]
            for values in plans.loc[repeated, key].itertuples(index=False)
        )
        rule = "must hold one plan per owner, period and metric (these repeat one)"
        problems.append(Problem("plans", ", ".join(key), rule, rows, shown))
    return problems


def _with_contract_defaults(tables: dict[str, pd.DataFrame]) -> tuple[dict, tuple[str, ...]]:
    notes = []
    managers = tables["managers"]
    if "tier" not in managers:
        managers = managers.assign(tier=DEFAULT_TIER)
    elif managers["tier"].isna().any():
        notes.append(
            f"{int(managers['tier'].isna().sum())} manager(s) without a tier: "
            f"'{DEFAULT_TIER}' assumed."
        )
        managers = managers.assign(tier=managers["tier"].fillna(DEFAULT_TIER))
    deals = tables["deals"]
    missing_types = deals["sale_type"].isna().sum() if "sale_type" in deals else len(deals)
    if missing_types and "client_id" in deals:
        deals = deals.assign(sale_type=derive_sale_types(deals))
        notes.append(
            f"{int(missing_types)} deal(s) without a sale type: derived "
            "(a client's first won deal is 'new', later ones 'repeat')."
        )
    return {**tables, "managers": managers, "deals": deals}, tuple(notes)


def derive_sale_types(deals: pd.DataFrame) -> pd.Series:
    """The contract's sale type where the source has none.

    A client's first won deal (by close date) is ``new``; its later deals are ``repeat``; deals of a
    client that has not been won yet are ``new``. Values present in the source are kept.
    """
    if "closed_on" not in deals:  # without close dates no deal is won yet: all are new business
        return deals.get("sale_type", pd.Series(index=deals.index, dtype="str")).fillna("new")
    first = first_won_deals(deals).set_index("client_id")
    first_id = deals["client_id"].map(first["deal_id"])
    first_date = deals["client_id"].map(first["closed_on"])
    won_later = deals["stage"].eq("won") & first_id.notna() & deals["deal_id"].ne(first_id)
    pursued_later = deals["stage"].ne("won") & deals["created_on"].gt(first_date)
    is_later = won_later | pursued_later
    derived = pd.Series("new", index=deals.index, dtype="str").where(~is_later, "repeat")
    if "sale_type" not in deals:
        return derived
    return deals["sale_type"].fillna(derived)


def validate_tables(
    tables: Mapping[str, pd.DataFrame], source: str = "(in memory)", digest: str = ""
) -> CRM:
    """Validate raw tables against the data contract, collecting every problem.

    Args:
        tables: Raw tables keyed by contract table name; ``managers`` and ``deals`` required.
        source: Where they came from, for messages and provenance.
        digest: The source's fingerprint.

    Raises:
        DataContractError: Listing every problem of every table at once.
    """
    missing = [table for table in REQUIRED_TABLES if table not in tables]
    if missing:
        raise DataContractError(
            f"Data source {source} lacks the required table(s) {', '.join(missing)}."
        )
    validated: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    for table, raw in tables.items():
        frame, found = validate_table(table, raw)
        problems += found
        if frame is not None:
            validated[table] = frame
    # Cross-table rules see every table, validated or as read, so no problem hides another.
    every = {
        table: validated[table] if table in validated else _keys_as_contract(table, raw)
        for table, raw in tables.items()
    }
    problems += _foreign_key_problems(every) + _plan_metric_problems(every)
    if problems:
        raise DataContractError(
            f"Data source {source} breaks the data contract ({len(problems)} problem(s); rows are "
            "numbered from 1 after the header):\n" + "\n".join(p.describe() for p in problems)
        )
    validated, notes = _with_contract_defaults(
        {table: frame.reset_index(drop=True) for table, frame in validated.items()}
    )
    return CRM(**validated, fingerprint=digest, source=source, notes=notes)
